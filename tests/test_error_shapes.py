"""Issue 14 defect 3, its whole kind: every error shape each server family answers -> the error
class the client makes of it, served by the simulators and read by each transport that can meet it.

The families: the RunPod serverless API, the official vLLM worker (``runpod-workers/worker-vllm``:
today's proxy worker quotes vLLM's reply in a ``worker_error`` and the job is FAILED with the
``str()`` of it; its startup verdicts; the runpod SDK's shapes for a handler that raised; the
older in-process worker's error items in a COMPLETED output), our own deploy handlers (built by
their real code: ``deploy/ocrworker/envelope.py`` and the TrOCR handler), vLLM's OpenAI server
(``{"error": {...}}`` since 0.10.1, flat ``{"object": "error", ...}`` before), Modal's web
endpoints (``modal-http:`` text), the RunPod pod proxy (HTML pages) and FastAPI (the ocular
contract).  :class:`EndpointError` -- an unknown endpoint id, a model or route the server does not
serve -- stops the whole run; the end-to-end tests at the bottom show that through the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ocrclient.errors import (
    AuthError,
    EndpointError,
    OcrError,
    PermanentError,
    TransientError,
    classify_status,
)
from ocrclient.testing import (
    CannedReply,
    FaultPlan,
    FixedResponder,
    OcularSimulator,
    OpenAISimulator,
)
from ocrclient.testing.runpod_sim import RunPodSimulator
from ocrclient.transports.base import ModelRequest
from ocrclient.transports.ocular import OcularTransport
from ocrclient.transports.openai import OpenAITransport
from ocrclient.transports.runpod import RunPodTransport

from .pdfgen import text_pdf

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
MODEL = "sim/ocr-model"


def _deploy_modules() -> tuple[Any, Any]:
    """``ocrworker.envelope`` and the TrOCR handler, the real code our workers answer with."""
    import importlib.util

    if str(DEPLOY) not in sys.path:
        sys.path.insert(0, str(DEPLOY))
    from ocrworker import envelope

    spec = importlib.util.spec_from_file_location("trocr_handler_shapes", DEPLOY / "runpod-trocr" / "handler.py")
    assert spec and spec.loader
    trocr = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trocr)
    return envelope, trocr


ENVELOPE, TROCR = _deploy_modules()


# ---------------------------------------------------------------------------------------------
# the shapes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One error a server family answers, how a simulator serves it, and what it must become.

    ``how``: ``http`` (``reply``, a :class:`CannedReply`, to every request), ``failed`` (a FAILED
    job whose ``error`` is ``job`` as is) or ``output`` (a COMPLETED job whose output is ``job``).
    """

    family: str
    name: str
    how: str
    expected: type[OcrError]
    reply: CannedReply | None = None
    job: Any = None
    status: int | None = None

    @property
    def id(self) -> str:
        return f"{self.family}:{self.name}"


def http(family: str, name: str, status: int, body: Any, expected: type[OcrError], **kw: Any) -> Shape:
    return Shape(family, name, "http", expected, reply=CannedReply(status, body, **kw), status=status)


def vllm_new(status: int, message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    """vLLM's OpenAI server error body since 0.10.1."""
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def vllm_flat(status: int, message: str, kind: str) -> dict[str, Any]:
    """vLLM's OpenAI server error body before 0.10.1."""
    return {"object": "error", "message": message, "type": kind, "param": None, "code": status}


def worker_vllm(status: int, body: Any) -> str:
    """Today's worker-vllm: vLLM's reply quoted in a ``worker_error`` the handler yields; RunPod
    ends the job FAILED with the ``str()`` of it."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return str({"message": f"vLLM returned HTTP {status}: {text}", "type": "worker_error", "code": None})


def worker_says(message: str) -> str:
    """A worker-vllm ``worker_error`` with a message of its own (no upstream reply)."""
    return str({"message": message, "type": "worker_error", "code": None})


def sdk_exception(exc_type: str, message: str) -> str:
    """The runpod SDK's FAILED ``error`` for a handler that raised (``rp_job.run_job``)."""
    return json.dumps({
        "error_type": f"<class '{exc_type}'>", "error_message": message,
        "error_traceback": f"Traceback (most recent call last):\n  ...\n{exc_type}: {message}\n",
        "hostname": "h", "worker_id": "w", "runpod_version": "1.7.9",
    })  # fmt: skip


def ours(message: str, code: int) -> str:
    """Our ocrworker handlers' FAILED ``error``, made by their own ``error_output``."""
    return str(ENVELOPE.error_output(ENVELOPE.JobError(message, code=code))["error"])


CONTEXT = ("This model's maximum context length is 16384 tokens. However, you requested 20480 "
           "tokens (4096 in the messages, 16384 in the completion). Please reduce the length of "
           "the messages or completion.")  # fmt: skip
NO_MODEL = "The model `datalab-to/chandra` does not exist."
HTML_502 = ("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
            "</h1></center></body></html>")  # fmt: skip
HTML_404 = "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>"
CF_524 = ("<!DOCTYPE html><html><head><title>proxy.runpod.net | 524: A timeout occurred</title>"
          "</head><body>Error code 524</body></html>")  # fmt: skip
CF_522 = ("<!DOCTYPE html><html><head><title>proxy.runpod.net | 522: Connection timed out</title>"
          "</head><body>Error code 522</body></html>")  # fmt: skip

RUNPOD_API = [
    http("runpod-api", "401 unauthorized", 401, b"", AuthError),
    http("runpod-api", "403 forbidden", 403, {"error": "Forbidden"}, AuthError),
    http("runpod-api", "404 unknown endpoint id", 404, {"error": "endpoint abc123 not found"}, EndpointError),
    http("runpod-api", "400 bad body", 400, {"error": "body must be a JSON object with an 'input' field"},
         PermanentError),
    http("runpod-api", "413 body too large", 413, {"error": "request body exceeds the 10 MB limit of /run"},
         PermanentError),
    http("runpod-api", "429 rate limited", 429, {"error": "Too Many Requests"}, TransientError,
         headers=(("Retry-After", "2"),)),
    http("runpod-api", "500 json", 500, {"error": "Internal Server Error"}, TransientError),
    http("runpod-api", "502 html", 502, HTML_502, TransientError),
    http("runpod-api", "503", 503, {"error": "Service Unavailable"}, TransientError),
    http("runpod-api", "504", 504, {"error": "Gateway Timeout"}, TransientError),
]

W = "worker-vllm"
WORKER_VLLM = [
    # today's worker: `vllm serve` behind a proxy handler
    Shape(W, "404 model (vLLM >= 0.10.1)", "failed", EndpointError,
          job=worker_vllm(404, vllm_new(404, NO_MODEL, "NotFoundError", "model")), status=404),
    Shape(W, "404 model (vLLM < 0.10.1)", "failed", EndpointError,
          job=worker_vllm(404, vllm_flat(404, NO_MODEL, "NotFoundError")), status=404),
    Shape(W, "404 route", "failed", EndpointError, job=worker_vllm(404, {"detail": "Not Found"}), status=404),
    Shape(W, "401 from its own server", "failed", EndpointError,
          job=worker_vllm(401, {"error": "Unauthorized"}), status=401),
    Shape(W, "400 context length (new)", "failed", PermanentError,
          job=worker_vllm(400, vllm_new(400, CONTEXT, "BadRequestError")), status=400),
    Shape(W, "400 context length (flat)", "failed", PermanentError,
          job=worker_vllm(400, vllm_flat(400, CONTEXT, "BadRequestError")), status=400),
    Shape(W, "400 two images", "failed", PermanentError,
          job=worker_vllm(400, vllm_new(400, "At most 1 image(s) may be provided in one request.",
                                        "BadRequestError")), status=400),
    Shape(W, "500 engine", "failed", TransientError,
          job=worker_vllm(500, vllm_new(500, "EngineCore encountered an issue. See stack trace (above) "
                                        "for the root cause.", "InternalServerError")), status=500),
    Shape(W, "503", "failed", TransientError,
          job=worker_vllm(503, vllm_new(503, "The engine is not ready", "ServiceUnavailableError")), status=503),
    Shape(W, "429", "failed", TransientError,
          job=worker_vllm(429, vllm_new(429, "Too many requests", "RateLimitError")), status=429),
    Shape(W, "connection to vllm failed", "failed", TransientError,
          job=worker_says("Request to vLLM failed: Cannot connect to host 127.0.0.1:8000")),
    Shape(W, "vllm process gone", "failed", TransientError, job=worker_says("vLLM server process is not running")),
    # its startup verdicts (startup_errors.py), answered to every job
    Shape(W, "startup: model not on hugging face", "failed", EndpointError,
          job=worker_says("org/no-such-model was not found on Hugging Face. Check MODEL_NAME for typos "
                          "(it must be the full `org/repo` id) and MODEL_REVISION if set.")),
    Shape(W, "startup: gated model", "failed", EndpointError,
          job=worker_says("org/gated is gated or private on Hugging Face and the worker was not allowed "
                          "to download it. Set HF_TOKEN to a token whose account has accepted the "
                          "model's license, or pick a public model.")),
    Shape(W, "startup: bad flags", "failed", EndpointError,
          job=worker_says("vLLM rejected its command line: argument --max-model-len: invalid int value: "
                          "'big' Check the environment variables that map to vLLM flags.")),
    Shape(W, "startup: max_model_len", "failed", EndpointError,
          job=worker_says("MAX_MODEL_LEN=65536 is larger than the context length org/m declares in its "
                          "config.json. Lower MAX_MODEL_LEN (or unset it to use the model's own limit).")),
    Shape(W, "startup: architecture", "failed", EndpointError,
          job=worker_says("org/m uses an architecture this vLLM version cannot serve. Check the vLLM "
                          "supported-models list, or try a newer worker release.")),
    Shape(W, "startup: out of gpu memory", "failed", TransientError,
          job=worker_says("org/m ran out of GPU memory during startup. This GPU has 23.6 GiB. Lower "
                          "MAX_MODEL_LEN or MAX_NUM_SEQS, or redeploy on a larger GPU.")),
    # python-exception shapes: the runpod SDK's JSON for a raising handler, a generator's string
    Shape(W, "raised ValueError", "failed", PermanentError,
          job=sdk_exception("ValueError", "openai_input.messages is required")),
    Shape(W, "raised CUDA OOM", "failed", TransientError,
          job=sdk_exception("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB")),
    Shape(W, "raised EngineDeadError", "failed", TransientError,
          job=sdk_exception("vllm.v1.engine.exceptions.EngineDeadError", "EngineCore encountered an issue.")),
    Shape(W, "generator raised", "failed", TransientError,
          job="handler: Engine loop has died \ntraceback: Traceback (most recent call last):\n  ...\n"),
    Shape(W, "generator raised, unexplained", "failed", TransientError,
          job="handler: 'NoneType' object is not subscriptable \ntraceback: Traceback ...\n"),
    # the older in-process worker (AsyncLLMEngine in the handler)
    Shape(W, "old: engine not initialized", "failed", TransientError,
          job="vLLM engine not initialized. Check worker logs for details."),
    Shape(W, "old: 404 model item (flat)", "output", EndpointError,
          job=[vllm_flat(404, NO_MODEL, "NotFoundError")], status=404),
    Shape(W, "old: 404 model item (new)", "output", EndpointError,
          job=[vllm_new(404, NO_MODEL, "NotFoundError", "model")], status=404),
    Shape(W, "old: 400 context item", "output", PermanentError,
          job=[vllm_flat(400, CONTEXT, "BadRequestError")], status=400),
    Shape(W, "old: invalid route item", "output", EndpointError,
          job=[vllm_flat(400, "Invalid route", "BadRequestError")], status=400),
]

OURS = "our-handlers"
OUR_HANDLERS = [
    Shape(OURS, "400 no image", "failed", PermanentError,
          job=ours("the request has no image (expected one image_url part)", 400), status=400),
    # the run's max_tokens over the worker's OCR_MAX_TOKENS_LIMIT: every page's, the run stops
    Shape(OURS, "400 max_tokens", "failed", EndpointError,
          job=ours("max_tokens 20000 exceeds the limit 16384", 400), status=400),
    Shape(OURS, "413 image too large", "failed", PermanentError,
          job=ours("image is 9000x9000 pixels, more than the limit of 40000000", 413), status=413),
    Shape(OURS, "404 route", "failed", EndpointError,
          job=ours("unsupported openai_route '/v1/completions' (use /v1/chat/completions)", 404), status=404),
    Shape(OURS, "404 input path", "failed", PermanentError,
          job=ours("path '/runpod-volume/a.pdf' is not an existing file", 404), status=404),
    Shape(OURS, "500 inference", "failed", TransientError,
          job=str(ENVELOPE.error_output(RuntimeError("CUDA error: an illegal memory access"))["error"]),
          status=500),
    # our workers' startup verdict, kept and answered to every job: the run stops (it retried every
    # page four times), but for running out of GPU memory, which another worker may not
    Shape(OURS, "503 model failed to load", "failed", EndpointError,
          job=ours("chandra model failed to load: OSError: no space left on device", 503), status=503),
    Shape(OURS, "503 model failed to load, out of memory", "failed", TransientError,
          job=ours("chandra model failed to load: OutOfMemoryError: CUDA out of memory", 503), status=503),
    Shape(OURS, "504 pdf_url timeout", "failed", TransientError, job=ours("pdf_url download timed out", 504),
          status=504),
    Shape(OURS, "trocr 400 model not allowed", "failed", EndpointError,
          job=TROCR._error("model_name 'x/y' is not allowed on this server (TROCR_ALLOWED_MODELS)", 400)["error"],
          status=400),
    Shape(OURS, "trocr 404 route", "failed", EndpointError,
          job=TROCR._error("unknown route '/x'; use one of /health, /extract_text", 404)["error"], status=404),
    Shape(OURS, "trocr 400 bad image", "failed", PermanentError,
          job=TROCR._error("image is not valid base64", 400)["error"], status=400),
    Shape(OURS, "trocr 500", "failed", TransientError,
          job=TROCR._error("OCR failed: RuntimeError: boom", 500)["error"], status=500),
]

VLLM = [
    http("vllm", "404 model (>= 0.10.1)", 404, vllm_new(404, NO_MODEL, "NotFoundError", "model"), EndpointError),
    http("vllm", "404 model (< 0.10.1)", 404, vllm_flat(404, NO_MODEL, "NotFoundError"), EndpointError),
    http("vllm", "404 model id with dots", 404,
         vllm_new(404, "The model `Qwen/Qwen2.5-VL-7B-Instruct` does not exist.", "NotFoundError", "model"),
         EndpointError),
    http("vllm", "404 route", 404, {"detail": "Not Found"}, EndpointError),
    http("vllm", "401 api key", 401, {"error": "Unauthorized"}, AuthError),
    http("vllm", "400 context (>= 0.10.1)", 400, vllm_new(400, CONTEXT, "BadRequestError"), PermanentError),
    http("vllm", "400 context (< 0.10.1)", 400, vllm_flat(400, CONTEXT, "BadRequestError"), PermanentError),
    http("vllm", "500 (>= 0.10.1)", 500, vllm_new(500, "EngineCore encountered an issue.", "InternalServerError"),
         TransientError),
    http("vllm", "500 (< 0.10.1)", 500, vllm_flat(500, "Engine loop has died", "InternalServerError"),
         TransientError),
    http("vllm", "503 (>= 0.10.1)", 503, vllm_new(503, "The engine is not ready", "ServiceUnavailableError"),
         TransientError),
]

MODAL = [
    http("modal", "401 no proxy credentials", 401, "modal-http: missing credentials for proxy authorization",
         AuthError),
    http("modal", "401 bad proxy credentials", 401, "modal-http: invalid credentials for proxy authorization",
         AuthError),
    http("modal", "404 no such function", 404, "modal-http: invalid function call", EndpointError),
    http("modal", "404 app stopped", 404, "modal-http: app for invoked web endpoint is stopped", EndpointError),
    http("modal", "404 workspace disabled", 404, "modal-http: workspace my-ws is disabled", EndpointError),
    http("modal", "500 function timed out", 500, "modal-http: internal error: function execution timed out",
         TransientError),
    http("modal", "500 terminated", 500, "modal-http: internal error: function was terminated by signal",
         TransientError),
    http("modal", "429 rate limited", 429, "modal-http: too many requests", TransientError,
         headers=(("Retry-After", "1"),)),
    http("modal", "503", 503, "modal-http: service unavailable", TransientError),
]

POD_PROXY = [
    http("pod-proxy", "502 nothing listening yet", 502, HTML_502, TransientError),
    http("pod-proxy", "404 pod stopped or gone", 404, HTML_404, EndpointError),
    http("pod-proxy", "524 idle cut", 524, CF_524, TransientError),
    http("pod-proxy", "522 origin unreachable", 522, CF_522, TransientError),
]

FASTAPI = [
    http("fastapi", "401 api key", 401, {"detail": "missing or wrong API key"}, AuthError),
    http("fastapi", "400 bad image", 400, {"detail": "Invalid image data: Incorrect padding"}, PermanentError),
    http("fastapi", "400 model not allowed", 400,
         {"detail": "model_name 'x/y' is not allowed on this server (TROCR_ALLOWED_MODELS)"}, EndpointError),
    http("fastapi", "404 route", 404, {"detail": "Not Found"}, EndpointError),
    http("fastapi", "405 method", 405, {"detail": "Method Not Allowed"}, EndpointError),
    http("fastapi", "413 image too large", 413, {"detail": "image is larger than 15728640 bytes"}, PermanentError),
    http("fastapi", "422 validation", 422,
         {"detail": [{"type": "missing", "loc": ["body", "image"], "msg": "Field required"}]}, PermanentError),
    http("fastapi", "500 ocr failed", 500, {"detail": "OCR failed: RuntimeError"}, TransientError),
    http("fastapi", "503", 503, {"detail": "model not loaded"}, TransientError),
]

#: which transport meets which family (a plain HTTP server -- the ocular contract or vLLM -- can
#: sit behind the pod proxy or on Modal)
TABLE: list[tuple[str, Shape]] = (
    [("runpod", s) for s in RUNPOD_API + WORKER_VLLM + OUR_HANDLERS]
    + [("openai", s) for s in VLLM + MODAL + POD_PROXY]
    + [("ocular", s) for s in FASTAPI + MODAL + POD_PROXY]
)


def test_the_table_covers_every_family_class_and_transport() -> None:
    """A check on the table itself: each family reaches each class it can produce."""
    seen = {(t, s.family, s.expected) for t, s in TABLE}
    for family in ("runpod-api", "worker-vllm", "our-handlers"):
        for cls in (EndpointError, PermanentError, TransientError):
            assert ("runpod", family, cls) in seen, (family, cls)
    for transport in ("openai", "ocular"):
        for family in ("modal", "pod-proxy"):
            assert (transport, family, EndpointError) in seen and (transport, family, TransientError) in seen
    assert ("runpod", "runpod-api", AuthError) in seen and ("openai", "vllm", AuthError) in seen
    assert len({(t, s.id) for t, s in TABLE}) == len(TABLE)


# ---------------------------------------------------------------------------------------------
# serving each shape through each transport
# ---------------------------------------------------------------------------------------------


class _Job:
    """The responder of the COMPLETED-output shapes: answers whatever ``output`` holds."""

    output: Any = None

    def __call__(self, body: dict[str, Any]) -> Any:
        return FixedResponder("", data={"raw_output": self.output})(body)


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Any]]:
    job = _Job()
    with (
        RunPodSimulator(plan=FaultPlan(rates={"failed": 1.0})) as failing,
        RunPodSimulator(responder=job) as completing,
        OpenAISimulator(model=MODEL) as direct,
        OpenAISimulator(mode="proxy", model=MODEL) as proxy,
        OpenAISimulator(mode="modal", model=MODEL) as modal,
        OcularSimulator(api_key="k-ocular") as ocular,
    ):
        yield {"failing": failing, "completing": completing, "job": job, "direct": direct,
               "proxy": proxy, "modal": modal, "ocular": ocular}  # fmt: skip


def chat(timeout_s: float = 20) -> ModelRequest:
    return ModelRequest(body={"model": MODEL, "max_tokens": 64, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]}]},
        timeout_s=timeout_s)  # fmt: skip


async def _send(transport: str, shape: Shape, sims: dict[str, Any]) -> OcrError:
    # a RunPod 429 is waited out while the page's time allows (runpod_rate), then raised: a page
    # given 1 s meets its first 429's wait (Retry-After 2 s) past its end
    request = chat(1.0 if shape.status == 429 else 20)
    if transport == "runpod":
        if shape.how == "http":
            sim = sims["completing"]
            sim.force_reply = shape.reply
        elif shape.how == "failed":
            sim = sims["failing"]
            sim.failed_error = shape.job
        else:
            sim = sims["completing"]
            sims["job"].output = shape.job
        t: Any = RunPodTransport(endpoint_id=sim.endpoint_id, api_key=sim.api_key, base_url=sim.base_url,
                                 poll_interval_s=0.01, max_poll_interval_s=0.05)  # fmt: skip
    elif transport == "openai":
        sim = sims[{"modal": "modal", "pod-proxy": "proxy"}.get(shape.family, "direct")]
        sim.force_reply = shape.reply
        t = OpenAITransport(sim.base_url, api_key=sim.api_key, model=MODEL, modal_key="mk-x1",
                            modal_secret="ms-x1")  # fmt: skip
    else:
        sim = sims["ocular"]
        sim.force_reply = shape.reply
        t = OcularTransport(sim.url, api_key="k-ocular")
        request = ModelRequest(kind="ocular", route="/extract_text", body={"image": "aGk="}, timeout_s=20)
    try:
        with pytest.raises(OcrError) as info:
            await t.send(request)
    finally:
        await t.aclose()
        sim.force_reply = None
        if transport == "runpod":
            sims["completing"].force_reply = None
            t.gate.blocked_until = 0.0  # (the endpoint's gate outlives the transport: the next shape starts unblocked)
    return info.value


@pytest.mark.parametrize(("transport", "shape"), TABLE, ids=[f"{t}-{s.id}" for t, s in TABLE])
async def test_every_error_shape_gets_its_class(transport: str, shape: Shape, sims: dict[str, Any]) -> None:
    err = await _send(transport, shape, sims)
    assert type(err) is shape.expected, f"{shape.id} via {transport}: {type(err).__name__}: {err}"
    message = str(err)
    assert "\n" not in message and len(message) < 600, message
    if shape.status is not None:  # a status a worker quotes or codes is read, not guessed
        assert getattr(err, "status", None) == shape.status, message
    if shape.family == "worker-vllm" and "vLLM returned HTTP" in message:
        # vLLM's JSON is read, not pasted: the line says what vLLM said
        assert "{" not in message and "vLLM returned HTTP" in message, message


def test_retry_after_survives_classification() -> None:
    err = classify_status(429, "slow down", retry_after=2.0)
    assert isinstance(err, TransientError) and err.retry_after == 2.0


# ---------------------------------------------------------------------------------------------
# end to end: an endpoint error stops the run, through the CLI
# ---------------------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrclient.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OCRCLIENT_", "VLLM_"))}
    env.update(NO_COLOR="1", COLUMNS="200", OCRCLIENT_CACHE_DIR=str(tmp_path / "cache"),
               OCRCLIENT_CONFIG_DIR=str(tmp_path / "config"), **extra)  # fmt: skip
    return env


@pytest.fixture
def four_pages(tmp_path: Path) -> Path:
    return text_pdf(tmp_path / "doc.pdf", [["one"], ["two"], ["three"], ["four"]], size=(0, 0, 200, 120))


def test_a_worker_404_for_the_model_ends_the_run_after_one_job_per_page(four_pages: Path, tmp_path: Path) -> None:
    """worker-vllm answers every job FAILED with vLLM's 404 for the model: the run stops with one
    clear line and exit 2, each page sent once (it was max_attempts jobs per page)."""
    error = worker_vllm(404, vllm_new(404, NO_MODEL, "NotFoundError", "model"))
    with RunPodSimulator(plan=FaultPlan(rates={"failed": 1.0}), failed_error=error) as sim:
        run = _cli("convert", str(four_pages), "-o", str(tmp_path / "out"), "--backend", "runpod-chandra",
                   "--endpoint-id", sim.endpoint_id, "--base-url", sim.base_url, "--concurrency", "2",
                   env=_env(tmp_path, RUNPOD_API_KEY=str(sim.api_key)))  # fmt: skip
        jobs = dict(sim.jobs_by_key)
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "The model `datalab-to/chandra` does not exist" in lines[0] and "{" not in lines[0], lines[0]
    assert jobs and max(jobs.values()) == 1, jobs  # at most one job per page
    assert len(jobs) <= 4


def _in_process(*args: str, env: dict[str, str]) -> Any:
    from typer.testing import CliRunner

    from ocrclient.cli import app

    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200", **env})


def test_an_unknown_endpoint_id_ends_the_run_at_the_first_page(four_pages: Path, tmp_path: Path) -> None:
    with RunPodSimulator() as sim:
        run = _in_process("convert", str(four_pages), "-o", str(tmp_path / "out"), "--backend", "runpod-olmocr",
                          "--endpoint-id", "no-such-endpoint", "--base-url", sim.base_url, "--concurrency", "1",
                          env={"RUNPOD_API_KEY": str(sim.api_key)})  # fmt: skip
        submits = sim.requests["run"] + sim.requests["runsync"]
    assert run.exit_code == 2, run.output
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'no-such-endpoint' not found (HTTP 404)" in lines[0], run.stderr
    assert submits == 1  # page by page before: one 404 per page


def test_a_model_the_server_does_not_serve_ends_the_run(four_pages: Path, tmp_path: Path) -> None:
    """The same through the OpenAI transport (vLLM reached through the pod proxy)."""
    with OpenAISimulator(mode="proxy", model="some/other-model") as sim:
        run = _in_process("convert", str(four_pages), "-o", str(tmp_path / "out"), "--backend",
                          "runpod-pod-lightonocr2", "--base-url", sim.base_url, "--concurrency", "1",
                          env={"VLLM_API_KEY": str(sim.api_key)})  # fmt: skip
        chats = sim.requests["POST /v1/chat/completions"]
    assert run.exit_code == 2, run.output
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "The model `lightonai/LightOnOCR-2-1B` does not exist" in lines[0], run.stderr
    assert chats == 1


@pytest.mark.parametrize("mode", ["run", "runsync", "local"])
def test_a_404_from_the_endpoint_names_what_to_check_in_each_mode(mode: str, four_pages: Path, tmp_path: Path) -> None:
    """In ``--mode local`` no endpoint id is used: a wrong URL said "RunPod endpoint None not
    found ... check RUNPOD_CHANDRA_ENDPOINT_ID"; it now names the URL to check."""
    with RunPodSimulator() as sim:
        url = f"{sim.base_url}/nowhere" if mode == "local" else sim.base_url
        run = _in_process("convert", str(four_pages), "-o", str(tmp_path / "out"), "--backend", "runpod-chandra",
                          "--endpoint-id", "no-such-endpoint", "--base-url", url, "--mode", mode, "-c", "1",
                          env={"RUNPOD_API_KEY": str(sim.api_key)})  # fmt: skip
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.exit_code == 2 and len(lines) == 1, run.output
    if mode == "local":
        assert "--base-url" in lines[0] and url in lines[0] and "None" not in lines[0], lines[0]
    else:
        assert "'no-such-endpoint' not found" in lines[0] and "--endpoint-id" in lines[0], lines[0]


@pytest.mark.parametrize("suffix", ["/v1/models", "/v2", "/nowhere/v1"])
@pytest.mark.parametrize("command", ["convert", "health"])
def test_a_404_where_the_openai_api_should_be_names_the_url(suffix: str, command: str, four_pages: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    """A base URL naming a path with no OpenAI API on it (``.../v1/models``, a RunPod URL) said
    "HTTP 404: Not Found" (convert) or "GET /v1/models: Not Found" (health): the error names the
    URL the requests went to and what to check; a model the server does not serve still says so
    (above)."""
    with OpenAISimulator(model="m") as sim:
        url = sim.base_url.removesuffix("/v1") + suffix
        args = [str(four_pages), "-o", str(tmp_path / "out"), "-c", "1"] if command == "convert" else []
        run = _in_process(command, *args, "--backend", "openai", "--base-url", url, "--model", "m",
                          env={"OCRCLIENT_API_KEY": str(sim.api_key)})  # fmt: skip
    lines = [line for line in (run.stderr + run.stdout).splitlines() if "HTTP 404" in line]
    assert run.exit_code == 2 and len(lines) == 1, run.output
    assert "no OpenAI-compatible API at http://127.0.0.1:" in lines[0] and "check the base URL" in lines[0], lines[0]


@pytest.mark.parametrize("var", ["VLLM_API_KEY", "OCRCLIENT_API_KEY"])
def test_a_refused_key_names_the_variable_it_came_from(var: str, four_pages: Path, tmp_path: Path) -> None:
    """The pod profile reads VLLM_API_KEY, else OCRCLIENT_API_KEY: a refused key read from the
    second was said to be $VLLM_API_KEY's."""
    with OpenAISimulator(mode="proxy", model="lightonai/LightOnOCR-2-1B") as sim:
        env = {"VLLM_API_KEY": "", "OCRCLIENT_API_KEY": "", var: "wrong-key-0123456789"}
        run = _in_process("convert", str(four_pages), "-o", str(tmp_path / "out"), "--backend", "runpod-pod-lightonocr2",
                          "--base-url", sim.base_url, "-c", "1", env=env)  # fmt: skip
    assert run.exit_code == 2, run.output
    assert f"${var}" in run.stderr and "wrong-key" not in run.stderr, run.stderr


def test_a_404_that_an_input_was_not_found_fails_its_page_not_the_run(four_pages: Path, tmp_path: Path) -> None:
    """A 404 saying what the request named does not exist (an image, a file) fails that page and
    the run goes on; only a 404 that says no API is there stops the run, naming the URL."""
    canned = CannedReply(404, {"error": {"message": "The image file does not exist: /srv/img/123.png"}})
    with OpenAISimulator(model="m", force_reply=canned) as sim:
        run = _in_process("convert", str(four_pages), "-o", str(tmp_path / "out"), "--backend", "openai",
                          "--base-url", sim.base_url, "--model", "m", "-c", "1",
                          env={"OCRCLIENT_API_KEY": str(sim.api_key)})  # fmt: skip
    assert run.exit_code == 1, run.output
    assert "no OpenAI-compatible API" not in run.stderr and "does not exist" in run.stderr, run.stderr
