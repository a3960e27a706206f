"""Issue 14, defect 1 and its kind: every request the client can build passes its server's own
validator, so the client and the servers in ``deploy/`` cannot drift apart.

For each named profile (``backends/*.toml``) x attempt 1..max_attempts x page /
document mode, the request is built by the profile's real dialect and wrapped by its real
transport, then checked by the server(s) the profile targets:

* our servers -- the real handler (``deploy/runpod-chandra``, ``deploy/runpod-deepseek-ocr``,
  ``deploy/runpod-trocr`` over RunPod and over plain HTTP) runs it with its CPU stand-in model and
  must answer, not refuse; and no key of it may be one the handler ignores (same model,
  :mod:`ocrclient.contracts`);
* servers that are not ours -- vLLM's OpenAI server (the LightOnOCR pod, the Modal app, the
  generic ``openai`` profile) gets the JSON the OpenAI transport really puts on the wire, RunPod's
  official vLLM worker (olmOCR, RolmOCR, generic ``runpod``) the job input the RunPod transport
  really sends; both are validated by the mirror of that server's request schema, and no key may
  be one the server would silently ignore.

``test_the_checks_catch_a_key_added_on_one_side`` shows each check failing on a request with a key
only one side knows.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_helpers import DEPLOY, load_module
from PIL import Image, ImageDraw
from pydantic import ValidationError

from ocrclient.config import list_profiles, resolve_config
from ocrclient.contracts import unknown_fields
from ocrclient.contracts.ocular import OcularRequest
from ocrclient.contracts.runpod import DocumentJobInput, VllmWorkerInput, WorkerJobInput
from ocrclient.dialects._common import _PASS_THROUGH
from ocrclient.dialects.base import Attempt
from ocrclient.docmode import DocumentDialect, document_unit
from ocrclient.errors import BadOutputError, TransientError
from ocrclient.geometry import PageBox
from ocrclient.imaging import encode
from ocrclient.pages import PageImage, open_sources
from ocrclient.registry import DIALECTS, load_dialect
from ocrclient.transports.base import ModelRequest
from ocrclient.transports.ocular import OcularTransport
from ocrclient.transports.openai import OpenAITransport
from ocrclient.transports.runpod import RunPodTransport

#: the servers each named profile sends its requests to (the profile's "Server:" comment)
SERVERS: dict[str, tuple[str, ...]] = {
    "runpod-chandra": ("chandra", "worker-vllm"),  # ours, or the official worker with the model
    "runpod-deepseek-ocr": ("deepseek",),
    "runpod-olmocr": ("worker-vllm",),
    "runpod-rolmocr": ("worker-vllm",),
    "runpod-trocr": ("trocr", "trocr-http"),  # RunPod handler, or app.py with --transport ocular
    "runpod-pod-lightonocr2": ("vllm",),
    "modal-lightonocr": ("vllm",),
    "openai": ("vllm",),  # any OpenAI-compatible server; vLLM's is the one deploy/ documents
    "runpod": ("worker-vllm", "chandra", "deepseek"),  # the official worker or any deploy/ handler
}
#: profiles that build no request for a server (the engine runs in-process)
NO_SERVER = {"local"}
#: generic profiles take any chat dialect (--dialect)
GENERIC = {"openai", "runpod"}
CHAT_DIALECTS = sorted(set(DIALECTS) - {"rapidocr", "trocr"})
#: a value for every key a profile's [sampling] may pass through to a chat server
PASS_THROUGH_VALUES: dict[str, Any] = {
    "repetition_penalty": 1.05,
    "frequency_penalty": 0.1,
    "presence_penalty": 0.1,
    "top_k": 40,
    "min_p": 0.05,
    "seed": 7,
    "stop": ["</s>"],
    "skip_special_tokens": False,
    "vllm_xargs": {"ngram_size": 20, "whitelist_token_ids": [128821]},
    "include_stop_str_in_output": False,
}


@dataclass
class Case:
    profile: str
    dialect: str
    variant: str
    mode: str  # "page" | "document"

    @property
    def id(self) -> str:
        return f"{self.profile}-{self.dialect}-{self.variant}-{self.mode}"

    def config(self) -> Any:
        over: dict[str, Any] = {
            "model": "contract/model" if self.profile in GENERIC else None,
            "dialect": self.dialect,
            "base_url": "http://server.test/v1",
            "endpoint_id": "contract",
        }
        if self.variant == "pass-through":
            over["sampling"] = dict(PASS_THROUGH_VALUES)
        elif self.variant == "trocr-options":
            over["sampling"] = {"num_beams": 8, "max_tokens": 1024}
            over["dialect_options"] = {
                "segment_lines": False,
                "ensemble_size": 2,
                "use_preprocessing": True,
            }
        elif self.variant == "chandra-2":
            over["model"] = "datalab-to/chandra-ocr-2"
            over["dialect_options"] = {"version": 2}
        return resolve_config(self.profile, **over)


def cases() -> Iterator[Case]:
    for profile in sorted(SERVERS):
        base = resolve_config(profile, model="contract/model" if profile in GENERIC else None)
        dialects = CHAT_DIALECTS if profile in GENERIC else [base.dialect]
        for dialect in dialects:
            variants = ["profile"]
            if profile not in GENERIC:  # a dialect's own profile covers its variants
                variants.append("trocr-options" if dialect == "trocr" else "pass-through")
                if dialect == "chandra":
                    variants.append("chandra-2")
            for variant in variants:
                yield Case(profile, dialect, variant, "page")
                if (
                    base.transport == "runpod"
                    and "deepseek" in SERVERS[profile]
                    and dialect == "deepseek"
                ):
                    yield Case(profile, dialect, variant, "document")


CASES = list(cases())


def test_every_profile_is_checked() -> None:
    assert set(list_profiles()) == set(SERVERS) | NO_SERVER
    assert resolve_config("local").transport == "local"
    assert {c.profile for c in CASES} == set(SERVERS)
    assert {c.mode for c in CASES if c.profile == "runpod-deepseek-ocr"} == {"page", "document"}


# -- pages and attempts ------------------------------------------------------------------------
def page_image(render: Any, width_pt: float = 300, height_pt: float = 200) -> PageImage:
    """A white page with three black text-line bars, rendered at the dialect's own spec."""
    w, h = render.pixel_size(width_pt, height_pt)
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    for i in range(3):
        top = int(h * (0.15 + 0.25 * i))
        draw.rectangle((w // 10, top, w - w // 5, top + max(4, h // 20)), fill="black")
    return PageImage(source="contract.pdf", index=0, page_box=PageBox(width_pt, height_pt),
                     encoded=encode(img, render))  # fmt: skip


def attempts(max_attempts: int) -> list[Attempt]:
    """Attempts 1..max as the scheduler makes them: after a transient error, or after bad output
    that asks for a rotation (olmOCR's hint), alternately."""
    out = [Attempt(1)]
    for n in range(2, max_attempts + 1):
        if n % 2:
            out.append(Attempt(n, TransientError("HTTP 503", cause="http_503")))
        else:
            out.append(
                Attempt(n, BadOutputError("rotated page", cause="rotation", hint={"rotate": 90}))
            )
    return out


def one_page_pdf(tmp_path: Path) -> Path:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(300, 200)
    path = tmp_path / "contract.pdf"
    pdf.save(str(path))
    pdf.close()
    return path


# -- the servers ---------------------------------------------------------------------------------
@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    from ocrworker.standin import standin_from_env

    monkeypatch.setenv("OCRWORKER_STANDIN", "echo")
    monkeypatch.setenv("RUNPOD_API_KEY", "contract-key")
    monkeypatch.setenv("RUNPOD_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("OUTPUT_ROOTS", str(tmp_path / "out"))
    chandra = load_module("contract_chandra", DEPLOY / "runpod-chandra" / "handler.py")
    deepseek = load_module("contract_deepseek", DEPLOY / "runpod-deepseek-ocr" / "handler.py")
    trocr = load_module("contract_trocr", DEPLOY / "runpod-trocr" / "handler.py")
    core = sys.modules["trocr_core"]  # the one the handler uses (loaded once per session)
    app = load_module("contract_trocr_app", DEPLOY / "runpod-trocr" / "app.py")
    service = core.OcrService(recognizer=core.standin_recognizer)
    trocr.set_service(service)
    for module in (chandra, deepseek):
        module.set_model(standin_from_env())
    yield {
        "chandra": chandra,
        "deepseek": deepseek,
        "trocr": trocr,
        "trocr_app": app.create_app(service),
    }
    trocr.set_service(None)


def _error(output: Any) -> str | None:
    """The refusal in a handler's output, or None when it answered."""
    if isinstance(output, dict) and "error" in output:
        return str(json.loads(output["error"]).get("error_message"))
    return None


def _ignored(model: Any, data: dict[str, Any]) -> list[str]:
    """Keys of ``data`` the server's model accepts without using (a refused request: none)."""
    try:
        return unknown_fields(model.model_validate(data))
    except ValidationError:
        return []


def _requested_model(job_input: Any) -> str | None:
    """The model a worker job asks for (its chat request's, or its pages')."""
    if isinstance(job_input, dict):
        if isinstance(job_input.get("model"), str):
            return str(job_input["model"])
        for value in job_input.values():
            found = _requested_model(value)
            if found:
                return found
    if isinstance(job_input, list):
        return next((m for m in map(_requested_model, job_input) if m), None)
    return None


async def check_ours(server: str, job_input: dict[str, Any], handlers: dict[str, Any],
                     caplog: pytest.LogCaptureFixture) -> list[str]:  # fmt: skip
    """Problems our handler ``server`` has with ``job_input`` (empty: served, nothing ignored)."""
    caplog.clear()
    if server == "trocr":
        output = await handlers["trocr"].handler({"id": "contract", "input": job_input})
        body = {k: v for k, v in job_input.items() if k != "route"}
        ignored = _ignored(OcularRequest, body)
    elif "pdf_base64" in job_input:
        output = await handlers["deepseek"].handler({"id": "contract", "input": job_input})
        ignored = _ignored(DocumentJobInput, job_input)
        if _error(output) is None and output.get("status") != "succeeded":
            return [f"document job did not succeed: {str(output)[:200]}"]
    else:
        # deployed for the model the request names (OPENAI_SERVED_MODEL_NAME_OVERRIDE): a worker
        # refuses any other, as vLLM does (test_deploy_chandra: the model another one asks for)
        worker = handlers[server].WORKER
        served, worker.served_model = worker.served_model, _requested_model(job_input) or worker.served_model
        try:
            output = await handlers[server].handler({"id": "contract", "input": job_input})
        finally:
            worker.served_model = served
        ignored = _ignored(WorkerJobInput, job_input)
        if _error(output) is None and not (isinstance(output, list) and output[0]["choices"]):
            return [f"no chat completion: {str(output)[:200]}"]
    problems = [f"{server} refused the request: {_error(output)}"] if _error(output) else []
    problems += [f"{server} ignores {field}" for field in ignored]
    problems += [
        f"{server} logged: {r.getMessage()}" for r in caplog.records if "ignoring" in r.getMessage()
    ]
    return problems


def check_worker_vllm(job_input: dict[str, Any]) -> list[str]:
    try:
        parsed = VllmWorkerInput.model_validate(job_input)
    except ValidationError as exc:
        return [f"worker-vllm refuses: {exc}"]
    return [f"worker-vllm ignores {field}" for field in unknown_fields(parsed)]


def check_vllm(body: dict[str, Any]) -> list[str]:
    from ocrclient.contracts.chat import VllmChatRequest

    try:
        parsed = VllmChatRequest.model_validate(body)
    except ValidationError as exc:
        return [f"vLLM refuses: {exc}"]
    return [f"vLLM ignores {field}" for field in unknown_fields(parsed)]


async def check_trocr_http(request: ModelRequest, app: Any) -> list[str]:
    """The ocular transport's real POST, into app.py (FastAPI) in process."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    transport = OcularTransport(
        "http://trocr.test", route=request.route or "/extract_text", http_client=client
    )
    try:
        reply = await transport.send(request)
    except Exception as exc:
        return [f"trocr over HTTP refused: {exc}"]
    finally:
        await transport.aclose()
        await client.aclose()
    return [] if reply.text else ["trocr over HTTP answered no text"]


class WireCapture:
    """An httpx transport standing in for vLLM's server: records each chat request as sent."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            card = {"id": self.model, "object": "model", "owned_by": "vllm", "max_model_len": 32768}
            return httpx.Response(200, json={"object": "list", "data": [card]})
        body = json.loads(request.content)
        self.bodies.append(body)
        base = {"id": "chatcmpl-1", "created": 0, "model": self.model}
        usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "ok"}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return httpx.Response(
                200, json={**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        chunks = [
            {"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None},
            {"index": 0, "delta": {}, "finish_reason": "stop"},
        ]
        events = [{**base, "object": "chat.completion.chunk", "choices": [c]} for c in chunks]
        events.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(
            200, content=sse.encode(), headers={"content-type": "text/event-stream"}
        )


async def wire_bodies(cfg: Any, request: ModelRequest) -> list[dict[str, Any]]:
    """What the profile's OpenAI transport (built from the profile) puts on the wire."""
    capture = WireCapture(str(cfg.model))
    client = httpx.AsyncClient(transport=httpx.MockTransport(capture))

    class Capturing(OpenAITransport):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "http_client": client})

    transport = Capturing.from_config(cfg)
    try:
        await transport.send(request)
    finally:
        await transport.aclose()
        await client.aclose()
    return capture.bodies


# -- the kind test -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_every_request_passes_its_servers_validator(
    case: Case, servers: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    cfg = case.config()
    dialect = load_dialect(cfg)
    if case.mode == "document":
        dialect = DocumentDialect(dialect, prompt=cfg.dialect_options.get("document_prompt"))
        page = document_unit(open_sources([str(one_page_pdf(tmp_path))])[0], [0]).page
    else:
        page = page_image(dialect.render)
    problems: list[str] = []
    built = 0
    for attempt in attempts(cfg.max_attempts):
        request = dialect.build(page, attempt)
        built += 1
        where = f"attempt {attempt.number}"
        if cfg.transport == "runpod":
            payload = RunPodTransport.from_config(cfg).envelope(request)
            assert set(payload) <= {"input", "policy"}, payload.keys()
            job_input = json.loads(json.dumps(payload["input"]))  # what goes on the wire
            for server in SERVERS[case.profile]:
                if server == "worker-vllm":
                    found = [] if case.mode == "document" else check_worker_vllm(job_input)
                elif server == "trocr-http":
                    found = await check_trocr_http(request, servers["trocr_app"])
                elif case.mode == "document" and server != "deepseek":
                    found = []  # the whole-PDF contract is DeepSeek's only
                else:
                    found = await check_ours(server, job_input, servers, caplog)
                problems += [f"{where}: {p}" for p in found]
        else:
            assert cfg.transport == "openai" and SERVERS[case.profile] == ("vllm",)
            bodies = await wire_bodies(cfg, request)
            assert len(bodies) == 1
            problems += [f"{where}: {p}" for p in check_vllm(bodies[0])]
    assert built == cfg.max_attempts >= 1
    assert problems == []


# -- the checks can fail ---------------------------------------------------------------------------
async def test_the_checks_catch_a_key_added_on_one_side(
    servers: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    chat_cfg = resolve_config("runpod-chandra", endpoint_id="contract")
    chat = load_dialect(chat_cfg).build(page_image(load_dialect(chat_cfg).render), Attempt(2))
    job = RunPodTransport.from_config(chat_cfg).envelope(chat)["input"]
    assert await check_ours("chandra", job, servers, caplog) == [] and check_worker_vllm(job) == []
    # a sampling key the client starts sending that neither server knows
    drifted = {**job, "openai_input": {**job["openai_input"], "top_a": 0.2}}
    assert await check_ours("chandra", drifted, servers, caplog) != []
    assert check_worker_vllm(drifted) != []
    assert check_vllm(drifted["openai_input"]) != []
    # a key vLLM knows but our workers do not implement (logit_bias): only ours complain
    biased = {**job, "openai_input": {**job["openai_input"], "logit_bias": {"5": -100.0}}}
    assert check_worker_vllm(biased) == []
    assert any(
        "ignores openai_input.logit_bias" in p
        for p in await check_ours("deepseek", biased, servers, caplog)
    )
    # a job-level key the worker would ignore
    assert await check_ours("chandra", {**job, "priority": 1}, servers, caplog) != []

    trocr_cfg = resolve_config("runpod-trocr", endpoint_id="contract")
    trocr_dialect = load_dialect(trocr_cfg)
    ocular = trocr_dialect.build(page_image(trocr_dialect.render), Attempt(2))
    job = RunPodTransport.from_config(trocr_cfg).envelope(ocular)["input"]
    assert await check_ours("trocr", job, servers, caplog) == []
    drifted = {**job, "decoding_options": {**job["decoding_options"], "typical_p": 0.9}}
    assert any(
        "unsupported decoding_options: typical_p" in p
        for p in await check_ours("trocr", drifted, servers, caplog)
    )
    assert await check_ours("trocr", {**job, "language": "de"}, servers, caplog) == [
        "trocr ignores language"
    ]

    pdf_job = {"pdf_base64": base64.b64encode(b"%PDF-1.4").decode(), "prompt": "x", "pages": "1-2"}
    assert "deepseek ignores pages" in await check_ours("deepseek", pdf_job, servers, caplog)

    body = {"model": "m", "max_tokens": 8, "stream": False, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}  # fmt: skip
    assert check_vllm(body) != []  # vLLM refuses stream_options without stream
    assert check_vllm({**body, "stream": True}) == []


def test_pass_through_values_cover_every_pass_through_key() -> None:
    # the pass-through variant above sends every key a profile may pass through
    assert set(PASS_THROUGH_VALUES) == _PASS_THROUGH
