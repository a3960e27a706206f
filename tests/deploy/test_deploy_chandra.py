"""deploy/runpod-chandra: request handling with a stand-in model, the load path up to the
model boundary, and the worker started for real with the RunPod SDK's local API server."""

from __future__ import annotations

import asyncio
import json
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from deploy_helpers import DEPLOY, chat_request, data_url, envelope, load_module, page_png
from ocrworker.envelope import ChatPage, Generation
from ocrworker.modelcache import ModelNotCached, resolve_model_path
from ocrworker.standin import describe

HANDLER = DEPLOY / "runpod-chandra" / "handler.py"


@pytest.fixture
def chandra(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("OCRWORKER_STANDIN", raising=False)
    mod = load_module("chandra_handler", HANDLER)
    yield mod
    mod.set_model(None)


def echo_model(calls: list[list[ChatPage]]) -> Any:
    def run(pages: list[ChatPage]) -> list[Generation]:
        calls.append(pages)
        return [
            Generation(text=f"<div>{describe(p)}</div>", prompt_tokens=11, completion_tokens=5)
            for p in pages
        ]

    return run


async def test_single_page_returns_one_chat_completion(chandra: Any) -> None:
    calls: list[list[ChatPage]] = []
    chandra.set_model(echo_model(calls))
    out = await chandra.handler(
        envelope(chat_request(data_url(page_png(130, 70)), prompt="OCR layout"))
    )
    assert isinstance(out, list) and len(out) == 1
    comp = out[0]
    assert comp["object"] == "chat.completion"
    assert comp["model"] == "datalab-to/chandra"
    content = comp["choices"][0]["message"]["content"]
    assert "image 130x70 RGB" in content and "prompt='OCR layout'" in content
    assert comp["choices"][0]["finish_reason"] == "stop"
    assert comp["usage"] == {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    assert set(comp["timing"]) == {"inference_s", "queue_s", "total_s"}
    assert len(calls) == 1 and calls[0][0].max_tokens == 256


async def test_batch_and_concurrent_jobs_share_model_calls(
    chandra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[ChatPage]] = []
    monkeypatch.setattr(chandra.WORKER, "window_s", 0.3)  # generous: a busy CI box is slow
    chandra.set_model(echo_model(calls))
    batch = {
        "id": "b",
        "input": {"pages": [chat_request(data_url(page_png(100 + i, 60))) for i in range(3)]},
    }
    out = await chandra.handler(batch)
    assert [c["choices"][0]["message"]["content"].split()[2] for c in out] == [
        "100x60",
        "101x60",
        "102x60",
    ]
    calls.clear()
    jobs = [
        chandra.handler(envelope(chat_request(data_url(page_png(80 + i, 40))))) for i in range(4)
    ]
    outs = await asyncio.gather(*jobs)
    assert [o[0]["choices"][0]["message"]["content"].split()[2] for o in outs] == [
        f"{80 + i}x40" for i in range(4)
    ]
    assert sum(len(c) for c in calls) == 4 and len(calls) < 4  # grouped into fewer model calls


async def test_models_route(chandra: Any) -> None:
    chandra.set_model(echo_model([]))  # (listed once loaded: a model that cannot load is a 503)
    out = await chandra.handler({"id": "m", "input": {"openai_route": "/v1/models"}})
    assert out[0]["data"][0]["id"] == "datalab-to/chandra"


@pytest.mark.parametrize(
    ("job", "code"),
    [
        (
            {
                "id": "x",
                "input": {
                    "openai_route": "/v1/chat/completions",
                    "openai_input": chat_request(None),
                },
            },
            400,
        ),
        (envelope(chat_request("data:image/png;base64,@@@")), 400),
        ({"id": "x", "input": {"pages": [chat_request(data_url(page_png()))] * 9}}, 413),
        ({"id": "x"}, 400),
    ],
)
async def test_invalid_jobs_return_error_json(chandra: Any, job: dict, code: int) -> None:
    calls: list[list[ChatPage]] = []
    chandra.set_model(echo_model(calls))
    out = await chandra.handler(job)
    assert set(out) == {"error"}
    payload = json.loads(out["error"])
    assert payload["code"] == code and payload["retryable"] is False
    assert calls == []


async def test_model_exception_and_load_failure(
    chandra: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(pages: list[ChatPage]) -> list[Generation]:
        raise RuntimeError("CUDA error: device-side assert")

    chandra.set_model(broken)
    payload = json.loads(
        (await chandra.handler(envelope(chat_request(data_url(page_png())))))["error"]
    )
    assert (
        payload["code"] == 500 and payload["retryable"] and "CUDA error" in payload["error_message"]
    )

    chandra.set_model(None)
    attempts: list[int] = []

    def bad_loader() -> Any:
        attempts.append(1)
        raise FileNotFoundError("no weights")

    monkeypatch.setattr(chandra.WORKER, "loader", bad_loader)
    for _ in range(2):
        payload = json.loads(
            (await chandra.handler(envelope(chat_request(data_url(page_png())))))["error"]
        )
        assert payload["code"] == 503 and payload["error_type"] == "model_not_ready"
        assert "no weights" in payload["error_message"]
    assert attempts == [1]  # loaded once per worker, the failure is remembered
    # every route says so: /v1/models (what `ocr health` asks) listed the model as served
    listed = await chandra.handler({"id": "m", "input": {"openai_route": "/v1/models"}})
    payload = json.loads(listed["error"])
    assert payload["code"] == 503 and "no weights" in payload["error_message"]


def make_cache(root: Path, repo: str, revision: str = "abc123") -> Path:
    repo_dir = root / "hub" / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / revision
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(revision)
    return snap


def test_model_cache_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = make_cache(tmp_path, "datalab-to/chandra")
    assert resolve_model_path("datalab-to/chandra", str(tmp_path)) == str(snap)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotCached, match="not in the model cache"):
        resolve_model_path("datalab-to/chandra-ocr-2", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert (
        resolve_model_path("datalab-to/chandra-ocr-2", str(tmp_path)) == "datalab-to/chandra-ocr-2"
    )
    assert resolve_model_path(str(snap)) == str(snap)


class FakeLLM:
    """Stands in for ``vllm.LLM``: records its arguments and answers ``chat``."""

    instances: ClassVar[list[FakeLLM]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.chats: list[tuple[Any, Any]] = []
        FakeLLM.instances.append(self)

    def chat(self, conversations: list[Any], params: list[Any], use_tqdm: bool = True) -> list[Any]:
        self.chats.append((conversations, params))
        outs = []
        for conv, p in zip(conversations, params, strict=True):
            text = conv[0]["content"][-1]["text"].upper()
            outs.append(
                types.SimpleNamespace(
                    prompt_token_ids=[1, 2, 3],
                    outputs=[
                        types.SimpleNamespace(
                            text=text,
                            finish_reason="length",
                            token_ids=list(range(p.kwargs["max_tokens"])),
                        )
                    ],
                )
            )
        return outs


def fake_vllm_module() -> types.ModuleType:
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM  # type: ignore[attr-defined]
    mod.SamplingParams = lambda **kw: types.SimpleNamespace(kwargs=kw)  # type: ignore[attr-defined]
    return mod


async def test_real_load_path_up_to_the_vllm_boundary(
    chandra: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RUNPOD_HF_CACHE_ROOT", str(tmp_path))
    monkeypatch.setenv("MAX_MODEL_LEN", "20000")
    snap = make_cache(tmp_path, "datalab-to/chandra")
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module())
    FakeLLM.instances.clear()
    chandra.set_model(None)
    out = await chandra.handler(
        envelope(chat_request(data_url(page_png()), prompt="ocr please", temperature=0.2))
    )
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_HOME"] == str(tmp_path)
    (llm,) = FakeLLM.instances
    assert llm.kwargs["model"] == str(snap)
    assert llm.kwargs["max_model_len"] == 20000
    assert llm.kwargs["limit_mm_per_prompt"] == {"image": 1}
    conversations, params = llm.chats[0]
    assert (
        conversations[0][0]["content"][0]["type"] == "image_url"
    )  # messages passed through as sent
    assert params[0].kwargs == {"max_tokens": 256, "temperature": 0.2}
    comp = out[0]
    assert comp["choices"][0]["message"]["content"] == "OCR PLEASE"
    assert comp["choices"][0]["finish_reason"] == "length"
    assert comp["usage"]["prompt_tokens"] == 3 and comp["usage"]["completion_tokens"] == 256


def test_backend_choice_without_vllm(
    chandra: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    make_cache(tmp_path, "datalab-to/chandra")
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setenv("CHANDRA_BACKEND", "vllm")
    with pytest.raises(ImportError):
        chandra.load_model()
    monkeypatch.setenv("CHANDRA_BACKEND", "auto")  # falls back to transformers, which needs torch
    with pytest.raises(ImportError, match="torch"):
        chandra.load_model()
    monkeypatch.setenv("CHANDRA_BACKEND", "tensorrt")
    with pytest.raises(ValueError, match="CHANDRA_BACKEND"):
        chandra.load_model()


def test_handler_module_imports_without_gpu_stack() -> None:
    code = (
        "import sys, importlib.util; sys.modules['torch']=None; sys.modules['vllm']=None; sys.modules['transformers']=None;"
        f"spec=importlib.util.spec_from_file_location('h', {str(HANDLER)!r}); m=importlib.util.module_from_spec(spec);"
        "spec.loader.exec_module(m); print(m.WORKER.served_model)"
    )
    import subprocess

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "datalab-to/chandra"


@pytest.mark.slow
def test_worker_over_the_runpod_local_api(worker_process: Any) -> None:
    wp = worker_process(
        HANDLER, {"OCRWORKER_STANDIN": "echo", "OPENAI_SERVED_MODEL_NAME_OVERRIDE": "chandra"}
    )
    job = envelope(chat_request(data_url(page_png(140, 60)), prompt="hi"))
    with httpx.Client(base_url=wp.base, timeout=30) as client:
        r = client.post("/runsync", json={"input": job["input"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "COMPLETED"
        (comp,) = body["output"]
        assert comp["model"] == "chandra"
        assert "image 140x60 RGB" in comp["choices"][0]["message"]["content"]

        r = client.post("/run", json={"input": {"pages": [job["input"]["openai_input"]] * 2}})
        assert r.json()["status"] == "IN_PROGRESS"
        job_id = r.json()["id"]
        status = client.post(f"/status/{job_id}").json()
        assert status["status"] == "COMPLETED" and len(status["output"]) == 2

        r = client.post(
            "/runsync",
            json={
                "input": {
                    "openai_route": "/v1/chat/completions",
                    "openai_input": chat_request(None),
                }
            },
        )
        failed = r.json()
        assert failed["status"] == "FAILED" and "output" not in failed
        assert json.loads(failed["error"])["error_message"].endswith(
            "(expected one image_url part)"
        )


def test_runpod_hf_cache_root_wins_over_the_images_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our Dockerfiles set HF_HOME; RUNPOD_HF_CACHE_ROOT set on the endpoint did nothing (the
    README says it works). The whole kind: each of the two set or not."""
    from ocrworker.modelcache import DEFAULT_CACHE_ROOT, configure_offline, resolve_model_path

    snap = make_cache(tmp_path / "named", "datalab-to/chandra")
    for var in ("HF_HOME", "HF_HUB_CACHE", "RUNPOD_HF_CACHE_ROOT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "")  # (each restored after the test: configure_offline sets them)
    for hf_home in (None, "/runpod-volume/huggingface-cache"):
        for named in (None, str(tmp_path / "named")):
            for var in ("HF_HOME", "HF_HUB_CACHE", "RUNPOD_HF_CACHE_ROOT"):
                monkeypatch.delenv(var, raising=False)
            if hf_home:
                monkeypatch.setenv("HF_HOME", hf_home)
            if named:
                monkeypatch.setenv("RUNPOD_HF_CACHE_ROOT", named)
            root = configure_offline()
            assert root == (named or hf_home or DEFAULT_CACHE_ROOT)
            if named:
                assert resolve_model_path("datalab-to/chandra") == str(snap)
