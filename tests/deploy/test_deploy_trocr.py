"""deploy/runpod-trocr: the shared core, the FastAPI app, the RunPod handler (in process and
started for real with the RunPod local API server)."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import httpx
import pytest
from deploy_helpers import DEPLOY, load_module, page_png
from fastapi.testclient import TestClient
from PIL import Image

FOLDER = DEPLOY / "runpod-trocr"
core = load_module("trocr_core", FOLDER / "trocr_core.py")


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode()


class Recorder:
    """A recognizer that records the crops it gets; text and log-probs are chosen per test."""

    def __init__(self, texts: list[str] | None = None, prob: float = 0.8) -> None:
        self.calls: list[tuple[str, list[Image.Image], dict[str, Any]]] = []
        self.texts = texts
        self.prob = prob

    def __call__(
        self, name: str, images: list[Image.Image], decoding: dict[str, Any]
    ) -> list[tuple[str, float, int]]:
        self.calls.append((name, images, decoding))
        out = []
        for i, im in enumerate(images):
            text = self.texts[i % len(self.texts)] if self.texts else f"w{im.width}"
            out.append((text, 2 * math.log(self.prob), 2))
        return out


def test_segment_lines_finds_each_line() -> None:
    img = Image.open(__import__("io").BytesIO(page_png(200, 120, lines=3)))
    crops = core.segment_lines(img)
    assert len(crops) == 3
    for crop in crops:
        assert 10 <= crop.height <= 22 and crop.width < 200
    blank = Image.new("RGB", (50, 50), "white")
    assert core.segment_lines(blank) == [blank]
    inverted = Image.open(__import__("io").BytesIO(page_png(200, 120, lines=3, color="black")))
    assert len(core.segment_lines(inverted)) >= 1


async def test_extract_text_lines_confidence_and_model_choice() -> None:
    rec = Recorder(texts=["Invoice INV-2024-001", "Total: $1,234.50"])
    svc = core.OcrService(recognizer=rec)
    out = await svc.route("/extract_text", {"image": b64(page_png(200, 90, lines=2))})
    assert out["text"] == "Invoice INV-2024-001\nTotal: $1,234.50"
    assert out["confidence"] == pytest.approx(0.8)
    assert out["language"] == "en" and out["processing_time"] >= 0
    assert out["metadata"]["lines"] == 2 and out["metadata"]["variants_processed"] == 1
    name, images, decoding = rec.calls[0]
    assert (
        name == "microsoft/trocr-base-printed" and len(images) == 2 and decoding["num_beams"] == 1
    )
    out = await svc.route(
        "/extract_text",
        {
            "image": b64(page_png()),
            "segment_lines": False,
            "model_name": "microsoft/trocr-large-printed",
            "decoding_options": {"max_length": 64},
        },
    )
    name, images, decoding = rec.calls[-1]
    assert name == "microsoft/trocr-large-printed" and len(images) == 1
    assert decoding["max_new_tokens"] == 64 and "max_length" not in decoding


async def test_robust_uses_variants_and_consensus() -> None:
    rec = Recorder(texts=["same"])
    svc = core.OcrService(recognizer=rec)
    out = await svc.route("/extract_text_robust", {"image": b64(page_png())})
    assert (
        out["metadata"]["variants_processed"] == 3
        and out["metadata"]["ensemble_method"] == "consensus"
    )
    assert len(rec.calls) == 3 and rec.calls[0][2]["num_beams"] == 4
    assert core.pick_result([("a", 0.5), ("b", 0.9)]) == ("b", 0.9, "max_confidence")


async def test_structured_extraction() -> None:
    svc = core.OcrService(
        recognizer=Recorder(
            texts=["Invoice # INV-2024-001", "Date: 03/15/2024", "Total: $1,234.50"]
        )
    )
    out = await svc.route(
        "/extract_structured",
        {
            "image": b64(page_png(200, 120, lines=3)),
            "schema": {"invoice_number": "str", "total_amount": "float", "date": "str"},
        },
    )
    assert out["structured_data"] == {
        "invoice_number": "INV-2024-001",
        "total_amount": 1234.5,
        "date": "03/15/2024",
    }
    assert out["metadata"]["schema_keys"] == ["invoice_number", "total_amount", "date"]
    assert core.extract_fields("nothing here", {"date": 1}) == {}


@pytest.mark.parametrize(
    ("route", "body", "status", "needle"),
    [
        ("/extract_text", {"image": "!!!"}, 400, "not valid base64"),
        ("/extract_text", {"image": b64(b"not an image")}, 400, "cannot be decoded"),
        ("/extract_text", {}, 400, "image"),
        (
            "/extract_text",
            {"image": b64(page_png()), "model_name": "evil/model"},
            400,
            "not allowed",
        ),
        (
            "/extract_text",
            {"image": b64(page_png()), "decoding_options": {"trust_remote_code": True}},
            400,
            "unsupported decoding_options",
        ),
        (
            "/extract_text",
            {"image": b64(page_png()), "decoding_options": {"num_beams": 100}},
            400,
            "num_beams",
        ),
        ("/extract_text", {"image": b64(page_png()), "ensemble_size": 9}, 400, "ensemble_size"),
        ("/extract_structured", {"image": b64(page_png())}, 400, "schema"),
        ("/nope", {}, 404, "unknown route"),
    ],
)
async def test_invalid_requests(route: str, body: dict, status: int, needle: str) -> None:
    svc = core.OcrService(recognizer=Recorder())
    with pytest.raises(core.ServiceError) as info:
        await svc.route(route, body)
    assert info.value.status == status and needle in str(info.value)


async def test_oversized_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROCR_MAX_IMAGE_BYTES", "200")
    svc = core.OcrService(recognizer=Recorder())
    with pytest.raises(core.ServiceError) as info:
        await svc.route("/extract_text", {"image": b64(page_png(300, 300))})
    assert info.value.status == 413


async def test_real_model_path_is_lazy_and_needs_torch_only_when_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.delenv("TROCR_STANDIN", raising=False)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "transformers", None)
    svc = core.OcrService()  # no import of torch/transformers yet
    assert isinstance(svc.recognizer, core.TrOcrModels)
    health = svc.health()
    assert {k: health[k] for k in ("status", "models_loaded", "models_failed", "gpu_available", "memory_info")} == {
        "status": "healthy",
        "models_loaded": [],
        "models_failed": {},
        "gpu_available": False,
        "memory_info": {},
    }
    assert svc.default_model in health["models_allowed"]
    with pytest.raises(core.ServiceError, match=r"model failed to load.*ModuleNotFoundError") as refused:
        await svc.route("/extract_text", {"image": b64(page_png(lines=1))})
    assert refused.value.status == 503  # (the load's verdict, kept: see the test below)
    # its health says so now (what `ocr health` reads: the worker is down for that model)
    assert "ModuleNotFoundError" in svc.health()["models_failed"][svc.default_model]


def test_fastapi_app_routes_and_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    app_mod = load_module("trocr_app", FOLDER / "app.py")
    rec = Recorder(texts=["hello"])
    client = TestClient(app_mod.create_app(core.OcrService(recognizer=rec)))
    r = client.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "healthy"
    r = client.post("/extract_text", json={"image": b64(page_png(lines=1))})
    assert r.status_code == 200 and r.json()["text"] == "hello"
    r = client.post("/extract_text", json={"image": "###"})
    assert r.status_code == 400 and "base64" in r.json()["detail"]
    r = client.post(
        "/extract_text", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    monkeypatch.setenv("API_KEY", "s3cret")
    assert client.post("/extract_text", json={"image": b64(page_png())}).status_code == 401
    r = client.post(
        "/extract_text_robust",
        json={"image": b64(page_png())},
        headers={"Authorization": "Bearer s3cret"},
    )
    assert r.status_code == 200 and r.json()["metadata"]["robust_processing"] is True
    assert client.get("/health").status_code == 200
    # what the client's health check stands on (/health asks for no key): an empty body is refused
    # for a wrong key with 401, and for the right one with another 4xx, the model never run
    calls = len(rec.calls)
    assert client.post("/extract_text", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = client.post("/extract_text", json={}, headers={"Authorization": "Bearer s3cret"})
    assert 400 <= r.status_code < 500 and r.status_code not in (401, 403) and len(rec.calls) == calls, r.text


async def test_runpod_handler_envelopes() -> None:
    handler = load_module("trocr_handler", FOLDER / "handler.py")
    handler.set_service(core.OcrService(recognizer=Recorder(texts=["abc"])))
    out = await handler.handler(
        {"id": "1", "input": {"route": "/extract_text", "image": b64(page_png(lines=1))}}
    )
    assert out["text"] == "abc"
    out = await handler.handler(
        {
            "id": "2",
            "input": {"endpoint": "/extract_text", "request": {"image": b64(page_png(lines=1))}},
        }
    )
    assert out["text"] == "abc"
    out = await handler.handler({"id": "3", "input": {"route": "/health"}})
    assert out["status"] == "healthy"
    err = json.loads(
        (await handler.handler({"id": "4", "input": {"route": "/extract_text", "image": "%%"}}))[
            "error"
        ]
    )
    assert err["code"] == 400 and err["error_type"] == "invalid_request"
    err = json.loads((await handler.handler({"id": "5", "input": "text"}))["error"])
    assert err["code"] == 400
    handler.set_service(None)


@pytest.mark.slow
def test_trocr_worker_over_the_runpod_local_api(worker_process: Any) -> None:
    wp = worker_process(FOLDER / "handler.py", {"TROCR_STANDIN": "1"})
    with httpx.Client(base_url=wp.base, timeout=30) as client:
        r = client.post(
            "/runsync",
            json={"input": {"route": "/extract_text", "image": b64(page_png(200, 90, lines=2))}},
        )
        body = r.json()
        assert body["status"] == "COMPLETED", body
        assert body["output"]["text"].count("\n") == 1 and body["output"]["text"].startswith(
            "line "
        )
        assert body["output"]["confidence"] == pytest.approx(0.9)
        job_id = client.post("/run", json={"input": {"route": "/health"}}).json()["id"]
        status = client.post(f"/status/{job_id}").json()
        assert status["status"] == "COMPLETED" and status["output"]["models_loaded"] == ["stand-in"]
        r = client.post("/runsync", json={"input": {"route": "/extract_text", "image": "@@"}})
        assert r.json()["status"] == "FAILED" and json.loads(r.json()["error"])["code"] == 400


class _Arr:
    """A numpy array with the two tensor methods the model path calls (``.to``)."""

    def __init__(self, a: Any) -> None:
        self.a = a

    def to(self, *args: Any, **kwargs: Any) -> Any:
        return self.a


def test_real_model_path_confidence_from_generation_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """TrOcrModels up to the tensor boundary, with numpy standing in for torch tensors."""
    import contextlib
    import sys
    import types

    import numpy as np

    seen: dict[str, Any] = {}
    # decoder start 2, eos 2, pad 1; line 0 = tokens 10 11 <eos>, line 1 = 12 <eos> <pad>
    sequences = np.array([[2, 10, 11, 2], [2, 12, 2, 1]])
    scores = np.log(np.array([[0.9, 0.8, 0.95], [0.5, 0.9, 0.7]]))

    class Model:
        device = "cpu"
        generation_config = types.SimpleNamespace(pad_token_id=1)

        def to(self, device: str) -> Model:
            return self

        def eval(self) -> Model:
            return self

        def parameters(self) -> Any:
            return iter([types.SimpleNamespace(dtype="float32")])

        def generate(self, pixel_values: Any, **kwargs: Any) -> Any:
            seen["generate"] = kwargs
            return types.SimpleNamespace(sequences=sequences, scores=scores)

        def compute_transition_scores(
            self, seqs: Any, sc: Any, beam_indices: Any, normalize_logits: bool
        ) -> Any:
            seen["normalize_logits"] = normalize_logits
            return sc

    class Processor:
        def __call__(self, images: list[Any], return_tensors: str) -> Any:
            seen["images"] = len(images)
            return types.SimpleNamespace(pixel_values=_Arr(np.zeros((len(images), 3, 384, 384))))

        def batch_decode(self, seqs: Any, skip_special_tokens: bool) -> list[str]:
            return [" hello world ", "ok"]

    fake_torch = types.ModuleType("torch")
    fake_torch.cuda = types.SimpleNamespace(is_available=lambda: False)  # type: ignore[attr-defined]
    fake_torch.inference_mode = contextlib.nullcontext  # type: ignore[attr-defined]
    fake_torch.isfinite = np.isfinite  # type: ignore[attr-defined]
    fake_tf = types.ModuleType("transformers")
    fake_tf.TrOCRProcessor = types.SimpleNamespace(from_pretrained=lambda name: Processor())  # type: ignore[attr-defined]
    fake_tf.VisionEncoderDecoderModel = types.SimpleNamespace(from_pretrained=lambda name: Model())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "transformers", fake_tf)

    models = core.TrOcrModels()
    img = Image.new("RGB", (10, 10))
    out = models("microsoft/trocr-base-printed", [img, img], {"num_beams": 1, "max_new_tokens": 64})
    assert models.loaded() == ["microsoft/trocr-base-printed"]
    assert seen["generate"]["output_scores"] and seen["generate"]["return_dict_in_generate"]
    assert seen["generate"]["max_new_tokens"] == 64 and seen["normalize_logits"] is True
    (t0, lp0, n0), (t1, lp1, n1) = out
    assert (t0, n0) == ("hello world", 3) and lp0 == pytest.approx(float(np.log(0.9 * 0.8 * 0.95)))
    assert (t1, n1) == ("ok", 2) and lp1 == pytest.approx(
        float(np.log(0.5 * 0.9))
    )  # the pad step is dropped
    svc = core.OcrService(recognizer=models)
    reply = svc.route_sync("/extract_text", {"image": b64(page_png(200, 90, lines=2))})
    expected = math.exp((lp0 + lp1) / 5)
    assert reply["text"] == "hello world\nok" and reply["confidence"] == pytest.approx(
        expected, abs=1e-6
    )


async def test_sampling_options_reach_generate_and_keep_the_models_own_confidence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retry samples (do_sample + temperature, one beam): the service passes the options to
    ``generate`` and scores the tokens with the raw logits, not the temperature-warped scores."""
    import contextlib
    import sys
    import types

    import numpy as np

    seen: dict[str, Any] = {}
    sequences = np.array([[2, 10, 2]])
    warped = np.log(np.array([[0.99, 0.99]]))  # what sampling at a low temperature saw
    raw = np.log(np.array([[0.6, 0.5]]))  # the model's own probabilities

    class Model:
        device = "cpu"
        generation_config = types.SimpleNamespace(pad_token_id=1)

        def to(self, device: str) -> Model:
            return self

        def eval(self) -> Model:
            return self

        def parameters(self) -> Any:
            return iter([types.SimpleNamespace(dtype="float32")])

        def generate(self, pixel_values: Any, **kwargs: Any) -> Any:
            seen["generate"] = kwargs
            logits = raw if kwargs.get("output_logits") else None
            return types.SimpleNamespace(sequences=sequences, scores=warped, logits=logits)

        def compute_transition_scores(
            self, seqs: Any, sc: Any, beams: Any, normalize_logits: bool
        ) -> Any:
            return sc

    class Processor:
        def __call__(self, images: list[Any], return_tensors: str) -> Any:
            return types.SimpleNamespace(pixel_values=_Arr(np.zeros((len(images), 3, 384, 384))))

        def batch_decode(self, seqs: Any, skip_special_tokens: bool) -> list[str]:
            return ["hi"]

    fake_torch = types.ModuleType("torch")
    fake_torch.cuda = types.SimpleNamespace(is_available=lambda: False)  # type: ignore[attr-defined]
    fake_torch.inference_mode = contextlib.nullcontext  # type: ignore[attr-defined]
    fake_torch.isfinite = np.isfinite  # type: ignore[attr-defined]
    fake_tf = types.ModuleType("transformers")
    fake_tf.TrOCRProcessor = types.SimpleNamespace(from_pretrained=lambda name: Processor())  # type: ignore[attr-defined]
    fake_tf.VisionEncoderDecoderModel = types.SimpleNamespace(from_pretrained=lambda name: Model())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "transformers", fake_tf)

    svc = core.OcrService(recognizer=core.TrOcrModels())
    body = {"image": b64(page_png(lines=1)), "segment_lines": False,
            "decoding_options": {"num_beams": 1, "max_length": 64, "do_sample": True, "temperature": 0.3}}  # fmt: skip
    out = await svc.route("/extract_text", body)
    kwargs = seen["generate"]
    assert kwargs["do_sample"] is True and kwargs["temperature"] == 0.3 and kwargs["num_beams"] == 1
    assert kwargs["output_logits"] is True and kwargs["max_new_tokens"] == 64
    assert out["confidence"] == pytest.approx(math.sqrt(0.6 * 0.5), abs=1e-6)
    # beam search (attempt 1) keeps the generation scores and asks for no logits
    body["decoding_options"] = {"num_beams": 4, "max_length": 64}
    await svc.route("/extract_text", body)
    assert "output_logits" not in seen["generate"] and "do_sample" not in seen["generate"]


# every field the contract declares Optional, sent as null, takes its default; and every model the
# README's default allow-list names is served (trocr-small-handwritten was refused)
_OPTIONAL = ["model_name", "prompt", "use_preprocessing", "ensemble_size", "robust_processing", "decoding_options",
             "options", "segment_lines"]  # fmt: skip


@pytest.mark.parametrize("field", _OPTIONAL)
async def test_every_optional_field_sent_as_null_takes_its_default(field: str) -> None:
    rec = Recorder(texts=["Hello"])
    svc = core.OcrService(recognizer=rec)
    out = await svc.route("/extract_text", {"image": b64(page_png()), field: None})
    assert out["text"].startswith("Hello"), out
    assert rec.calls[0][0] == "microsoft/trocr-base-printed"


@pytest.mark.parametrize("size", ["small", "base", "large"])
@pytest.mark.parametrize("kind", ["printed", "handwritten"])
async def test_the_default_allow_list_is_the_whole_microsoft_set(size: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROCR_ALLOWED_MODELS", raising=False)
    rec = Recorder(texts=["x"])
    svc = core.OcrService(recognizer=rec)
    name = f"microsoft/trocr-{size}-{kind}"
    await svc.route("/extract_text", {"image": b64(page_png()), "model_name": name})
    assert rec.calls[-1][0] == name


async def test_a_model_that_fails_to_load_is_a_kept_503_verdict_the_client_stops_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As deploy/'s other workers do: the load error is kept (not tried again job after job)
    and every job is answered ``503 ... model failed to load``, which the client reads as the
    endpoint's verdict and stops the run on.  Each job tried the load again and failed as a
    retryable 500 ("OCR failed: ModuleNotFoundError"), every page three times."""
    from ocrclient.errors import EndpointError
    from ocrclient.transports.runpod_jobs import classify_failure

    loads: list[str] = []

    def broken(name: str) -> Any:
        loads.append(name)
        raise ModuleNotFoundError("No module named 'torch'")

    monkeypatch.setattr(core.TrOcrModels, "_load", staticmethod(broken))
    monkeypatch.delenv("TROCR_STANDIN", raising=False)
    handler = load_module("trocr_handler_load", FOLDER / "handler.py")
    handler.set_service(core.OcrService())
    try:
        for job in ("1", "2"):
            out = await handler.handler({"id": job, "input": {"route": "/extract_text", "image": b64(page_png(lines=1))}})
            err = json.loads(out["error"])
            assert err["code"] == 503 and err["error_type"] == "model_not_ready", err
            assert "model failed to load" in err["error_message"] and "torch" in err["error_message"], err
            verdict = classify_failure(err["error_type"], err["error_message"], cause="runpod_failed", job_id=job)
            assert isinstance(verdict, EndpointError), verdict
        assert len(loads) == 1  # (kept: the second job did not load again)
    finally:
        handler.set_service(None)
