"""RunPod serverless transport: one page = one RunPod job, over plain httpx.

Wire contract (verified against RunPod's docs ``serverless/endpoints/send-requests.mdx`` and the
``runpod`` SDK 1.12 sources; see the module notes at the bottom):

* ``POST {base}/{endpoint}/run`` -> ``{"id", "status"}``, then ``GET .../status/{id}`` until a
  terminal status (``COMPLETED``, ``FAILED``, ``CANCELLED``, ``TIMED_OUT``).  Results of ``/run``
  are kept 30 minutes; we poll with a backoff that starts fast (``poll_interval_s``) and is
  capped (``max_poll_interval_s``), far inside that window.
* ``POST .../runsync?wait=<ms>`` answers with the finished job, or with an unfinished
  ``{"id", "status"}`` that we then poll like a ``/run`` job (``/runsync`` results live ~1 min).
* ``POST .../cancel/{id}``, ``GET .../health``.
* Bodies: ``/run`` <= 10 MB, ``/runsync`` <= 20 MB — checked *before* sending.
* Status replies carry ``delayTime`` (queue) and ``executionTime`` (GPU) in milliseconds.
* ``mode="local"`` talks to the runpod SDK's own test server (``python handler.py
  --rp_serve_api``): no endpoint id in the path, no auth, ``POST /runsync`` runs the job inside
  the request, ``POST /status/{id}`` runs a ``/run`` job synchronously and then forgets it, and
  there is neither ``/cancel`` nor ``/health``.

Envelopes by :attr:`ModelRequest.kind`:

* ``chat``     -> ``{"input": {"openai_route": "/v1/chat/completions", "openai_input": body}}``
  (the official ``runpod-workers/worker-vllm`` contract; its job ``output`` is the aggregated
  list of what the async-generator handler yielded: ``[chat_completion]`` when not streaming,
  SSE strings — or lists of chunk dicts with ``RAW_OPENAI_OUTPUT=0`` — when streaming);
* ``ocular``   -> ``{"input": {"route": request.route, **body}}``;
* ``document`` -> ``{"input": body}`` (the DeepSeek whole-PDF worker; its ``markdown`` is base64).

Error classification of a ``FAILED`` job (its ``error`` is a JSON-encoded string of
``{error_type, error_message, error_traceback, hostname, worker_id, runpod_version}`` for a
handler exception, a plain ``"handler: ... traceback: ..."`` string for a generator handler, or
the ``str()`` of what a generator yielded as ``{"error": x}`` — today's worker-vllm yields
``{"message": "vLLM returned HTTP 404: {...}", "type": "worker_error", "code": None}``): an HTTP
status, from the error's type/code or quoted in its message (``HTTP 404``), is read first — 4xx
but 408/429 permanent, and :class:`EndpointError` (the run stops) when it is about the endpoint
(an unknown model or route, the worker's own server refusing it); then worker-vllm's startup
verdicts about the endpoint's configuration (model not on Hugging Face, gated, bad vLLM flags)
-> :class:`EndpointError`; infrastructure words (out of memory, CUDA, NCCL, killed,
worker/engine crash, timeout, connection) -> :class:`TransientError` ``runpod_failed``;
validation words (ValueError, KeyError, TypeError, ValidationError, invalid, bad request,
missing, unsupported, context length) -> :class:`PermanentError` ``runpod_failed``; anything
else -> transient (the scheduler caps attempts, and an unexplained worker failure is more often
infrastructure than input).

Example::

    transport = RunPodTransport(endpoint_id="abc123", api_key=os.environ["RUNPOD_API_KEY"])
    reply = await transport.send(ModelRequest(body=chat_request, timeout_s=300))
    print(reply.text, reply.gpu_seconds, reply.job_id)
    await transport.aclose()
"""

from __future__ import annotations

import ast
import asyncio
import base64
import binascii
import json
import logging
import re
import reprlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..config import BackendConfig
from ..errors import (
    AuthError,
    BadOutputError,
    CancelledRunError,
    ConfigError,
    EndpointError,
    OcrError,
    PermanentError,
    TransientError,
    classify_status,
    is_endpoint_error,
    parse_retry_after,
    redact,
    register_secret,
)
from .base import Health, ModelReply, ModelRequest, json_bytes, release_request_body
from .limits import (
    DEFAULT_REPLY_BYTES,
    ERROR_BODY_BYTES,
    aloads,
    error_body,
    loads,
    read_capped,
    reply_limit,
    seconds,
    token_count,
)
from .ocular import error_message

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LOCAL_URL",
    "RUNSYNC_LIMIT_BYTES",
    "RUN_LIMIT_BYTES",
    "RunPodTransport",
    "classify_failure",
    "decode_job_error",
    "parse_chat_output",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
#: where ``python handler.py --rp_serve_api`` listens by default (runpod SDK: localhost:8000)
DEFAULT_LOCAL_URL = "http://localhost:8000"
#: RunPod's documented request-body limits (decimal MB, the conservative reading of "10 MB")
RUN_LIMIT_BYTES = 10_000_000
RUNSYNC_LIMIT_BYTES = 20_000_000

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
#: how long a cancelled send (the run stopping: Ctrl-C) and then ``aclose`` wait for the remote
#: cancel of its job, each: the run must end within 2 s even when ``/cancel`` does not answer
INTERRUPT_CANCEL_WAIT_S = 0.75
MODES = ("run", "runsync", "local")
_OPTIONS = {
    "mode",
    "poll_interval_s",
    "max_poll_interval_s",
    "runsync_wait_ms",
    "policy",
    "max_run_bytes",
    "max_runsync_bytes",
    "default_timeout_s",
    "cancel_timeout_s",
    "max_poll_errors",
}
_POLICY_KEYS = {"executionTimeout", "ttl", "lowPriority"}
CHAT_ROUTE = "/v1/chat/completions"


# ---------------------------------------------------------------------------------------------
# error decoding / classification
# ---------------------------------------------------------------------------------------------

_TRANSIENT_WORDS = re.compile(
    r"out of memory|\boom\b|outofmemory|cuda|cublas|cudnn|nccl|\bgpu\b|killed|sigkill|sigterm|"
    r"segmentation fault|core dumped|worker (?:crash|died|exited|lost|shut)|engine (?:dead|died|"
    r"not initialized)|not initialized|enginedeaderror|timed? ?out|timeout|connection|"
    r"temporarily|unavailable|overloaded|memoryerror|broken pipe|startup|no space left|"
    r"exit (?:137|139|-9|-11)\b",
    re.IGNORECASE,
)
_PERMANENT_WORDS = re.compile(
    r"valueerror|keyerror|typeerror|validationerror|jsondecodeerror|unidentifiedimageerror|"
    r"badrequest|bad request|\binvalid\b|must be|missing|required|unsupported|not supported|"
    r"context length|too long|maximum context|exceeds|cannot identify image|unprocessable",
    re.IGNORECASE,
)
#: worker-vllm's answer to every job when vLLM cannot start on the endpoint's configuration
#: (``startup_errors.py``: model not on Hugging Face, gated, bad flags, MAX_MODEL_LEN above the
#: model's, an architecture it cannot serve) -- a restart cannot fix those; its out-of-memory
#: verdict is left transient (an endpoint may offer other, larger GPUs)
_ENDPOINT_WORDS = re.compile(
    r"not found on hugging face|gated or private on hugging face|rejected its command line|"
    r"larger than the context length|architecture this vllm version cannot serve",
    re.IGNORECASE,
)
#: an HTTP status a worker quotes in its message ("vLLM returned HTTP 404: {...}")
_QUOTED_STATUS = re.compile(r"\bHTTP(?:/\d(?:\.\d)?)?[ :]*([1-5]\d\d)\b")


@dataclass
class _JobError:
    kind: str  # error type, e.g. "ValueError"
    message: str


def _first_line(text: str, limit: int = 300) -> str:
    text = text.split("\ntraceback:", 1)[0].split("\nTraceback", 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(raw: Any) -> str:
    """``"<class 'torch.OutOfMemoryError'>"`` -> ``"torch.OutOfMemoryError"``."""
    text = str(raw or "").strip()
    m = re.match(r"<class '([^']+)'>", text)
    return m.group(1) if m else text


def _short(obj: Any) -> str:
    """A compact, bounded rendering of any JSON-ish value (safe on pathological nesting)."""
    try:
        return json.dumps(obj, default=str)[:400]
    except (RecursionError, ValueError, TypeError):
        return reprlib.repr(obj)


def _readable(text: str) -> str:
    """A quoted error body made readable: ``'vLLM returned HTTP 404: {"error": {"message": "The
    model `x` does not exist.", "type": "NotFoundError", ...}}'`` ->
    ``'vLLM returned HTTP 404: The model `x` does not exist. (NotFoundError)'``."""
    m = _QUOTED_STATUS.search(text)
    if not m:
        return text
    rest = text[m.end() :].lstrip(" :")
    if rest[:1] not in ("{", "<") or len(rest) > 1_000_000:
        return text
    try:
        detail = error_message(rest)
    except (ValueError, RecursionError):
        return text
    return f"{text[: m.end()]}: {detail}" if detail else text


def decode_job_error(error: Any, _depth: int = 0) -> tuple[str, str]:
    """Turn the ``error`` of a FAILED job (or an error object in an output) into
    ``(error_type, one-line message)``.

    Handles the runpod SDK's JSON-encoded ``{error_type, error_message, ...}`` string, the
    generator handler's ``"handler: <msg> \\ntraceback: ..."`` string, a Python ``repr`` of a dict
    (what ``rp_job`` makes of a yielded ``{"error": {...}}``), vLLM error objects
    (``{"object": "error", "message", "type", "code"}`` and ``{"error": {"message", ...}}``) and
    plain strings.

    >>> decode_job_error('{"error_type": "<class \\'ValueError\\'>", "error_message": "bad"}')
    ('ValueError', 'bad')
    """
    obj: Any = error
    if isinstance(error, str):
        text = error.strip()
        if text[:1] in "{[":
            try:
                obj = json.loads(text)
            except ValueError:
                try:
                    obj = ast.literal_eval(text)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    obj = text
        if isinstance(obj, str):
            msg = obj
            if msg.startswith("handler:"):
                msg = msg[len("handler:") :]
            return "", _first_line(_readable(msg))
    if isinstance(obj, Mapping):
        if "error" in obj and len(obj) <= 3 and not obj.get("error_message") and _depth < 5:
            inner_type, inner_msg = decode_job_error(obj["error"], _depth + 1)
            code = obj.get("code")
            if code and not inner_type:
                inner_type = str(code)
            return inner_type, inner_msg
        kind = _type_name(obj.get("error_type") or obj.get("type") or "")
        message = obj.get("error_message") or obj.get("message") or obj.get("detail") or ""
        code = obj.get("code")
        if code is not None and str(code) not in kind:
            kind = f"{kind} {code}".strip()
        if not message:
            message = _short(obj)
        return kind, _first_line(_readable(str(message)))
    return "", _first_line(_short(obj))


def classify_failure(kind: str, message: str, *, cause: str, job_id: str | None) -> OcrError:
    """A FAILED job (or an error output) -> Transient, Permanent or Endpoint, by what it says.

    Order: an HTTP status first, from the error's type/code or quoted in the message (4xx
    permanent except 408/425/429, 5xx but 501 transient; a 4xx about the endpoint — see
    :func:`~ocrclient.errors.is_endpoint_error` — and a 401/403 the worker's own server answered
    it are :class:`EndpointError`), then worker-vllm's startup verdicts and "model not served"
    (endpoint), then infrastructure words (transient), then validation words (permanent), else
    transient.

    >>> type(classify_failure("worker_error", "vLLM returned HTTP 404: The model `m` does not "
    ...     "exist. (NotFoundError)", cause="runpod_failed", job_id="j1")).__name__
    'EndpointError'
    """
    label = f"{kind}: {message}" if kind else message
    where = f"RunPod job {job_id} failed" if job_id else "RunPod job failed"
    text = f"{where}: {label}"
    code = re.search(r"\b([45]\d\d)\b", kind) or _QUOTED_STATUS.search(message)
    if code:
        status = int(code.group(1))
        if status in (408, 425, 429) or (status >= 500 and status != 501):
            return TransientError(text, cause=cause, status=status)
        if status in (401, 403) or is_endpoint_error(status, message):
            # a 401/403 inside a job: RunPod took our key, the worker's own server refused it
            return EndpointError(text, cause=cause, status=status)
        if status >= 400:
            return PermanentError(text, cause=cause, status=status)
    if _ENDPOINT_WORDS.search(label) or is_endpoint_error(None, message):
        return EndpointError(text, cause=cause)
    if _TRANSIENT_WORDS.search(label):
        return TransientError(text, cause=cause)
    if _PERMANENT_WORDS.search(label):
        return PermanentError(text, cause=cause)
    return TransientError(text, cause=cause)


def _is_error_obj(item: Any) -> bool:
    return isinstance(item, Mapping) and (
        ("error" in item and item.get("error")) or item.get("object") == "error"
    )


# ---------------------------------------------------------------------------------------------
# output parsing
# ---------------------------------------------------------------------------------------------


@dataclass
class _Chat:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    raw: Any


def _sse_events(text: str) -> list[Any]:
    events: list[Any] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data or data == "[DONE]":
            continue
        try:
            events.append(loads(data))
        except ValueError:
            continue
    return events


def _flatten(output: Any) -> list[Any]:
    """The worker's aggregated stream -> a flat list of items (dicts or plain strings)."""
    items: list[Any] = []
    stack = [output]
    budget = 1_000_000  # bounded, whatever the shape
    while stack and budget > 0:
        budget -= 1
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, str) and "data:" in node:
            items.extend(_sse_events(node))
        else:
            items.append(node)
    return items


def parse_chat_output(output: Any) -> _Chat | Any:
    """Text, finish reason and usage out of worker-vllm's ``openai_route`` output.

    Accepts ``[chat_completion]`` (non-streaming), a bare completion dict, SSE strings or lists
    of ``chat.completion.chunk`` dicts (streaming, aggregated by ``return_aggregate_stream``),
    worker-vllm's native ``{"choices": [{"tokens": [...]}], "usage": {"input", "output"}}``
    batches, and a plain string.  Returns the first error object found instead, if any.
    """
    items = _flatten(output)
    for item in items:
        if _is_error_obj(item):
            return item
    pieces: list[str] = []
    finish: str | None = None
    prompt_tokens = completion_tokens = 0
    found = False
    for item in items:
        if isinstance(item, str):
            pieces.append(item)
            found = True
            continue
        if not isinstance(item, Mapping):
            continue
        choices = item.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
        usage = item.get("usage") or {}
        if isinstance(usage, Mapping):  # whatever the numbers, counts stay sane (limits.token_count)
            prompt_tokens = token_count(usage.get("prompt_tokens") or usage.get("input") or prompt_tokens)
            completion_tokens = token_count(
                usage.get("completion_tokens") or usage.get("output") or completion_tokens
            )
        if isinstance(choice.get("message"), Mapping):  # a whole chat completion: done
            content = choice["message"].get("content")
            return _Chat(
                content if isinstance(content, str) else "",
                choice.get("finish_reason"),
                prompt_tokens,
                completion_tokens,
                output,
            )
        if isinstance(choice.get("delta"), Mapping):
            content = choice["delta"].get("content")
            if isinstance(content, str):
                pieces.append(content)
            found = True
        elif isinstance(choice.get("tokens"), list):
            pieces.extend(str(t) for t in choice["tokens"])
            found = True
        elif isinstance(choice.get("text"), str):
            pieces.append(choice["text"])
            found = True
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    if not found:
        return None
    return _Chat("".join(pieces), finish, prompt_tokens, completion_tokens, output)


def _b64_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return value  # already plain markdown


def _unwrap_single(output: Any) -> Any:
    while isinstance(output, list) and len(output) == 1:
        output = output[0]
    return output


def _readable_error(resp: httpx.Response) -> httpx.Response:
    """An error reply whose JSON is nested too deeply to decode, with that as its body instead
    (so reading its message cannot fail); any other reply as it is."""
    if resp.status_code < 400:
        return resp
    body = error_body(resp.content)
    if body is resp.content:
        return resp
    kept = {k: v for k, v in resp.headers.items() if k.lower() == "retry-after"}
    return httpx.Response(resp.status_code, headers=kept, content=body, request=resp.request)


# ---------------------------------------------------------------------------------------------
# the transport
# ---------------------------------------------------------------------------------------------


@dataclass
class _Job:
    id: str | None = None
    terminal: bool = False


class RunPodTransport:
    """Send one page as one RunPod serverless job and wait for its result.

    Example::

        >>> t = RunPodTransport(endpoint_id="abc123", api_key="rp_xxx", mode="runsync")
        >>> t.url("run")
        'https://api.runpod.ai/v2/abc123/run'

    ``send`` raises :class:`TransientError` / :class:`PermanentError` / :class:`AuthError`; it
    never retries a job itself (the scheduler does).  A ``send`` that is cancelled, times out or
    fails while its job is queued or running cancels the job remotely (best effort; a cancelled
    ``send`` waits at most ``INTERRUPT_CANCEL_WAIT_S`` for it, so Ctrl-C stays prompt).  Every
    reply is read under a cap derived from the request's ``max_tokens`` (:mod:`.limits`).  The one
    blind spot: while the ``/run`` or ``/runsync`` request itself is still open the job id is not
    known yet, so a cancellation then cannot reach the job (it runs, and its result expires).
    """

    def __init__(
        self,
        *,
        endpoint_id: str | None,
        api_key: str | None,
        base_url: str | None = None,
        mode: str = "run",
        poll_interval_s: float = 0.25,
        max_poll_interval_s: float = 5.0,
        runsync_wait_ms: int = 60_000,
        policy: Mapping[str, Any] | None = None,
        max_run_bytes: int = RUN_LIMIT_BYTES,
        max_runsync_bytes: int = RUNSYNC_LIMIT_BYTES,
        default_timeout_s: float = 1800.0,
        cancel_timeout_s: float = 5.0,
        max_poll_errors: int = 5,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"runpod transport: unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if mode != "local" and not endpoint_id:
            raise ConfigError(
                "RunPod endpoint id missing; set RUNPOD_ENDPOINT_ID or pass --endpoint-id"
            )
        if poll_interval_s <= 0 or max_poll_interval_s < poll_interval_s:
            raise ConfigError("runpod transport: need 0 < poll_interval_s <= max_poll_interval_s")
        register_secret(api_key)
        self.mode = mode
        self.endpoint_id = endpoint_id
        self.base_url = (base_url or (DEFAULT_LOCAL_URL if mode == "local" else DEFAULT_BASE_URL)).rstrip("/")
        self.poll_interval_s = float(poll_interval_s)
        self.max_poll_interval_s = float(max_poll_interval_s)
        self.runsync_wait_ms = max(1000, min(int(runsync_wait_ms), 300_000))
        self.policy = dict(policy or {})
        self.max_run_bytes = int(max_run_bytes)
        self.max_runsync_bytes = int(max_runsync_bytes)
        self.default_timeout_s = float(default_timeout_s)
        self.cancel_timeout_s = float(cancel_timeout_s)
        self.max_poll_errors = int(max_poll_errors)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )
        self._headers = headers
        #: job ids submitted and not yet terminal (cancelled by ``aclose``)
        self.in_flight: set[str] = set()
        self._bg: set[asyncio.Future[bool]] = set()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: BackendConfig) -> RunPodTransport:
        """Build from a resolved backend config (``transport_options`` hold the knobs)."""
        opts = dict(cfg.transport_options)
        unknown = set(opts) - _OPTIONS
        if unknown:
            raise ConfigError(
                f"backend {cfg.name!r}: unknown runpod transport_options {sorted(unknown)}; "
                f"known: {', '.join(sorted(_OPTIONS))}"
            )
        mode = str(opts.pop("mode", "run"))
        policy = opts.pop("policy", None)
        if policy is not None and (not isinstance(policy, Mapping) or set(policy) - _POLICY_KEYS):
            raise ConfigError(
                f"backend {cfg.name!r}: transport_options.policy takes only "
                f"{', '.join(sorted(_POLICY_KEYS))} (milliseconds)"
            )
        key_cfg = cfg
        if cfg.api_key is None and not cfg.api_key_env:
            key_cfg = cfg.model_copy(update={"api_key_env": "RUNPOD_API_KEY"})
        api_key = key_cfg.secret()
        if not api_key and mode != "local":
            env = key_cfg.api_key_env or "RUNPOD_API_KEY"
            raise ConfigError(f"backend {cfg.name!r}: RunPod API key missing; set {env}")
        endpoint_id = cfg.resolved_endpoint_id()
        if not endpoint_id and mode != "local":
            raise ConfigError(
                f"backend {cfg.name!r}: RunPod endpoint id missing; set RUNPOD_ENDPOINT_ID "
                "or pass --endpoint-id"
            )
        try:
            return cls(
                endpoint_id=endpoint_id,
                api_key=api_key,
                base_url=cfg.resolved_base_url(),
                mode=mode,
                policy=policy,
                **opts,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backend {cfg.name!r}: bad runpod transport_options ({exc})") from exc

    # -- urls --------------------------------------------------------------------------------
    def url(self, op: str, job_id: str | None = None) -> str:
        """The URL of one operation (``run``, ``runsync``, ``status``, ``cancel``, ``health``)."""
        root = self.base_url if self.mode == "local" else f"{self.base_url}/{self.endpoint_id}"
        return f"{root}/{op}/{job_id}" if job_id else f"{root}/{op}"

    # -- envelope ----------------------------------------------------------------------------
    def envelope(self, request: ModelRequest) -> dict[str, Any]:
        """The RunPod job body for a request (see the module docstring)."""
        if request.kind == "chat":
            job_input: dict[str, Any] = {"openai_route": CHAT_ROUTE, "openai_input": request.body}
        elif request.kind == "ocular":
            job_input = {"route": request.route or "/extract_text", **request.body}
        elif request.kind == "document":
            job_input = dict(request.body)
        else:  # pragma: no cover - guarded by the RequestKind literal
            raise PermanentError(f"runpod transport cannot send a {request.kind!r} request")
        payload: dict[str, Any] = {"input": job_input}
        if self.policy:
            payload["policy"] = dict(self.policy)
        return payload

    def _check_size(self, size: int, route: str) -> None:
        limit = self.max_run_bytes if route == "run" else self.max_runsync_bytes
        if size > limit:
            raise PermanentError(
                f"page payload is {size / 1e6:.1f} MB, over RunPod's {limit / 1e6:g} MB limit "
                f"for /{route}; lower dpi or longest_side, or set the image format to jpeg or webp",
                cause="payload_too_large",
                status=413,
            )

    # -- HTTP --------------------------------------------------------------------------------
    async def _http(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        timeout: float | None = None,
        what: str,
        limit: int = DEFAULT_REPLY_BYTES,
    ) -> httpx.Response:
        """One request, its reply read in full but never past ``limit`` bytes (see
        :mod:`.limits`: over it the connection is closed and ``BadOutputError`` raised)."""
        if self._client.is_closed:
            raise CancelledRunError(f"RunPod {what}: the transport was closed", cause="closed")
        try:
            req = self._client.build_request(
                method,
                url,
                content=content,
                headers=self._headers,
                timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)) if timeout else None,
            )
            resp = await read_capped(self._client, req, limit, what=f"RunPod {what}")
            release_request_body(resp)
            return _readable_error(resp)
        except httpx.TimeoutException as exc:
            raise TransientError(f"RunPod {what}: timed out ({type(exc).__name__})", cause="timeout") from None
        except httpx.TransportError as exc:
            raise TransientError(
                f"RunPod {what}: connection failed ({type(exc).__name__}: {redact(str(exc))})",
                cause="connection",
            ) from None
        except httpx.HTTPError as exc:  # e.g. a body that does not decode as its Content-Encoding says
            raise TransientError(
                f"RunPod {what}: unreadable reply ({type(exc).__name__})", cause="bad_reply"
            ) from None

    @staticmethod
    async def _json(resp: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = await aloads(resp.content)  # NaN -> None; big bodies off the event loop
        except BadOutputError as exc:  # nested too deeply
            raise BadOutputError(f"RunPod {what}: {exc.message}", cause=exc.cause) from None
        except ValueError:
            raise TransientError(
                f"RunPod {what}: HTTP {resp.status_code} with a non-JSON body", cause="bad_reply"
            ) from None
        if not isinstance(data, dict):
            raise TransientError(f"RunPod {what}: unexpected reply {type(data).__name__}", cause="bad_reply")
        return data

    def _raise_http(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code < 400:
            return
        detail = ""
        try:
            body = resp.json()
            if isinstance(body, Mapping):
                detail = str(body.get("error") or body.get("message") or body.get("detail") or "")
            elif isinstance(body, str):
                detail = body
        except ValueError:
            detail = resp.text[:200]
        detail = _first_line(detail, 200)
        code = resp.status_code
        if code in (401, 403):
            raise AuthError(
                f"RunPod {what}: HTTP {code} ({detail or 'unauthorized'}); check the RunPod API key",
                cause=f"http_{code}",
                status=code,
            )
        if code == 413:
            raise PermanentError(
                f"RunPod {what}: HTTP 413 payload too large; lower dpi or longest_side, or use jpeg/webp",
                cause="payload_too_large",
                status=code,
            )
        if code == 404 and what in ("submit", "runsync"):
            raise EndpointError(
                f"RunPod endpoint {self.endpoint_id!r} not found (HTTP 404); check RUNPOD_ENDPOINT_ID / --endpoint-id",
                cause="http_404",
                status=code,
            )
        err = classify_status(
            code, f"RunPod {what}: {detail}".strip(), retry_after=parse_retry_after(resp.headers.get("Retry-After"))
        )
        raise err

    # -- send --------------------------------------------------------------------------------
    async def send(self, request: ModelRequest) -> ModelReply:
        """Submit one job, wait for it, and return its reply (see the class docstring)."""
        started = time.monotonic()
        route = "run" if self.mode == "run" else "runsync"
        data = json_bytes(self.envelope(request))
        self._check_size(len(data), route)
        budget = request.timeout_s if request.timeout_s and request.timeout_s > 0 else self.default_timeout_s
        deadline = started + budget
        job = _Job()
        streamed = request.kind == "chat" and bool(request.body.get("stream"))
        limit = reply_limit(request, streamed=streamed)
        try:
            async with asyncio.timeout(budget):
                status = await self._run(data, route, job, deadline, limit)
        except TimeoutError:
            if job.id and not job.terminal:
                await self._cancel_shielded(job.id)
            what = f"job {job.id}" if job.id else "job submission"
            tail = "; cancelled it" if job.id else ""
            raise TransientError(
                f"RunPod {what} did not finish within {budget:g}s (attempt timeout){tail}",
                cause="timeout",
            ) from None
        except asyncio.CancelledError:  # the run is stopping (Ctrl-C): it must not wait long
            if job.id and not job.terminal:
                await self._cancel_shielded(job.id, wait=INTERRUPT_CANCEL_WAIT_S)
            raise
        except OcrError as exc:
            if job.id and not job.terminal and getattr(exc, "cause", "") != "job_expired":
                await self._cancel_shielded(job.id)
            raise
        finally:
            if job.id:
                self.in_flight.discard(job.id)
        try:
            reply = self._reply(status, request)
        except RecursionError:  # an error or output nested deeper than its readers go
            raise BadOutputError(
                f"RunPod job {job.id}: the reply is nested too deeply to read", cause="reply_too_deep"
            ) from None
        reply.latency_s = time.monotonic() - started
        # a job cannot have queued or run longer than we waited for it (what it costs follows)
        bound = reply.latency_s + 1.0
        if reply.gpu_seconds is not None:
            reply.gpu_seconds = min(reply.gpu_seconds, bound)
        if reply.queue_seconds is not None:
            reply.queue_seconds = min(reply.queue_seconds, bound)
        return reply

    async def _run(self, data: bytes, route: str, job: _Job, deadline: float, limit: int) -> dict[str, Any]:
        if route == "run":
            resp = await self._http("POST", self.url("run"), content=data, timeout=30.0, what="submit", limit=limit)
            self._raise_http(resp, "submit")
            status = await self._json(resp, "submit")
        else:
            remaining = max(1.0, deadline - time.monotonic())
            url = self.url("runsync")
            read_timeout = remaining
            if self.mode != "local":
                wait_ms = max(1000, min(self.runsync_wait_ms, int(remaining * 1000)))
                url = f"{url}?wait={wait_ms}"
                read_timeout = min(remaining, wait_ms / 1000 + 30.0)
            resp = await self._http("POST", url, content=data, timeout=read_timeout, what="runsync", limit=limit)
            self._raise_http(resp, "runsync")
            status = await self._json(resp, "runsync")
        job.id = str(status.get("id") or "") or None
        state = str(status.get("status") or "")
        if state in TERMINAL:
            job.terminal = True
            return status
        if not job.id:
            raise TransientError(f"RunPod {route}: reply without a job id (status {state!r})", cause="bad_reply")
        self.in_flight.add(job.id)
        log.debug("runpod job %s submitted (%s)", job.id, state or "?")
        status = await self._poll(job, deadline, limit)
        job.terminal = True
        return status

    async def _poll(self, job: _Job, deadline: float, limit: int) -> dict[str, Any]:
        assert job.id is not None
        interval = self.poll_interval_s
        errors = 0
        method = "POST" if self.mode == "local" else "GET"
        url = self.url("status", job.id)
        while True:
            remaining = deadline - time.monotonic()
            try:
                resp = await self._http(
                    method, url, timeout=max(1.0, min(30.0, remaining)), what="status", limit=limit
                )
                if resp.status_code == 404:
                    raise TransientError(
                        f"RunPod job {job.id} no longer exists (expired or endpoint restarted); resubmit",
                        cause="job_expired",
                        status=404,
                    )
                self._raise_http(resp, "status")
                status = await self._json(resp, "status")
            except TransientError as exc:
                if exc.cause == "job_expired":
                    raise
                errors += 1
                if errors > self.max_poll_errors:
                    raise
                delay = max(interval, exc.retry_after or 0.0)
                log.debug("runpod status poll for %s failed (%s); retrying in %.2fs", job.id, exc.cause, delay)
                await asyncio.sleep(delay)
                interval = min(interval * 2, self.max_poll_interval_s)
                continue
            errors = 0
            state = str(status.get("status") or "")
            if self.mode == "local" and state == "FAILED" and "not found" in str(status.get("error", "")).lower():
                raise TransientError(
                    f"RunPod job {job.id} is unknown to the local test server; resubmit",
                    cause="job_expired",
                )
            if state in TERMINAL:
                return status
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, self.max_poll_interval_s)

    # -- replies -----------------------------------------------------------------------------
    def _reply(self, status: Mapping[str, Any], request: ModelRequest) -> ModelReply:
        job_id = str(status.get("id") or "") or None
        state = str(status.get("status") or "")
        if state == "FAILED":
            kind, message = decode_job_error(status.get("error") or "no error message")
            raise classify_failure(kind, message, cause="runpod_failed", job_id=job_id)
        if state == "TIMED_OUT":
            raise TransientError(
                f"RunPod job {job_id} TIMED_OUT (executionTimeout reached on the worker)",
                cause="runpod_timed_out",
            )
        if state == "CANCELLED":
            raise TransientError(f"RunPod job {job_id} was CANCELLED on the endpoint", cause="runpod_cancelled")
        output = status.get("output")
        if output is None or output == [] or output == {} or output == "":
            # COMPLETED without output: the platform or handler lost the result (rp_job drops an
            # empty dict; oversized results are not stored).  Not an empty page — a failure
            # worth one more try, and the scheduler's attempt cap bounds it.
            raise TransientError(
                f"RunPod job {job_id} COMPLETED without output (result lost or handler returned nothing)",
                cause="runpod_no_output",
            )
        gpu = status.get("executionTime")
        queue = status.get("delayTime")
        reply = self._parse_output(output, request, job_id)
        reply.job_id = job_id
        reply.gpu_seconds = seconds(gpu, 0.001)  # ms; NaN, negative or absurd -> None / clamped
        reply.queue_seconds = seconds(queue, 0.001)
        return reply

    def _output_error(self, item: Any, job_id: str | None) -> OcrError:
        kind, message = decode_job_error(item)
        return classify_failure(kind, message, cause="worker_error", job_id=job_id)

    def _parse_output(self, output: Any, request: ModelRequest, job_id: str | None) -> ModelReply:
        if request.kind == "chat":
            chat = parse_chat_output(output)
            if chat is None:
                raise TransientError(
                    f"RunPod job {job_id}: output is not a chat completion ({type(output).__name__})",
                    cause="bad_reply",
                )
            if not isinstance(chat, _Chat):
                raise self._output_error(chat, job_id)
            return ModelReply(
                text=chat.text,
                finish_reason=chat.finish_reason,
                prompt_tokens=chat.prompt_tokens,
                completion_tokens=chat.completion_tokens,
                data={"raw": chat.raw},
            )
        item = _unwrap_single(output)
        if _is_error_obj(item):
            raise self._output_error(item, job_id)
        if request.kind == "ocular":
            if isinstance(item, str):
                return ModelReply(text=item, finish_reason="stop")
            if not isinstance(item, Mapping) or not isinstance(item.get("text"), str):
                raise TransientError(f"RunPod job {job_id}: ocular output has no text", cause="bad_reply")
            data = {k: v for k, v in item.items() if k != "text"}
            return ModelReply(text=item["text"], finish_reason="stop", data=data)
        # document (DeepSeek whole-PDF worker)
        if not isinstance(item, Mapping):
            raise TransientError(f"RunPod job {job_id}: document output is not an object", cause="bad_reply")
        if str(item.get("status", "succeeded")).lower() == "failed":
            detail = _first_line(str(item.get("stderr") or item.get("stdout") or "no details"), 240)
            raise classify_failure(
                f"exit {item.get('return_code')}", detail, cause="worker_error", job_id=job_id
            )
        text = _b64_text(item.get("markdown"))
        if text is None:
            where = item.get("markdown_path")
            hint = f" (it is at {where} on the worker; too large to return inline)" if where else ""
            raise PermanentError(
                f"RunPod job {job_id}: the worker returned no markdown{hint}", cause="runpod_output_missing"
            )
        data = {k: v for k, v in item.items() if k not in ("markdown", "layout_pdf_base64")}
        if "detection_markdown" in data:
            data["detection_markdown"] = _b64_text(data["detection_markdown"])
        return ModelReply(text=text, finish_reason="stop", data=data)

    # -- cancel ------------------------------------------------------------------------------
    async def cancel(self, job_id: str) -> bool:
        """Ask RunPod to cancel a job (best effort; ``True`` if the endpoint accepted)."""
        if self.mode == "local" or self._client.is_closed:  # the SDK's test server has no /cancel
            self.in_flight.discard(job_id)
            return False
        try:
            req = self._client.build_request(
                "POST", self.url("cancel", job_id), headers=self._headers, timeout=self.cancel_timeout_s
            )
            resp = await self._client.send(req, stream=True)  # the status is the answer: no body read
            await resp.aclose()
            ok = resp.status_code < 400
            log.debug("runpod cancel %s -> HTTP %s", job_id, resp.status_code)
        except (httpx.HTTPError, OSError) as exc:
            log.debug("runpod cancel %s failed: %s", job_id, type(exc).__name__)
            ok = False
        self.in_flight.discard(job_id)
        return ok

    async def _cancel_shielded(self, job_id: str, wait: float | None = None) -> None:
        """Cancel ``job_id`` even while our own task is being cancelled, waiting ``wait`` seconds
        at most (default: the cancel's own timeout; the request goes on in the background)."""
        task = asyncio.ensure_future(self.cancel(job_id))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        try:
            await asyncio.wait_for(asyncio.shield(task), self.cancel_timeout_s + 1.0 if wait is None else wait)
        except (asyncio.CancelledError, TimeoutError):
            pass  # the shielded task keeps going on its own
        except Exception as exc:  # pragma: no cover - cancel() swallows its errors
            log.debug("runpod cancel %s: %s", job_id, type(exc).__name__)

    # -- health / close ----------------------------------------------------------------------
    async def health(self) -> Health:
        """Endpoint health from ``GET /health`` (workers and queue), never raising."""
        if self.mode == "local":
            try:
                resp = await self._client.get(f"{self.base_url}/openapi.json", timeout=5.0)
            except httpx.HTTPError as exc:
                return Health(False, f"local RunPod test server unreachable at {self.base_url} ({type(exc).__name__})")
            ok = resp.status_code == 200 and "/runsync" in resp.text
            return Health(ok, "local RunPod test server up" if ok else f"local server: HTTP {resp.status_code}")
        try:
            req = self._client.build_request("GET", self.url("health"), headers=self._headers, timeout=10.0)
            resp = await read_capped(self._client, req, ERROR_BODY_BYTES, what="RunPod health")
        except httpx.HTTPError as exc:
            return Health(False, f"cannot reach RunPod at {self.base_url} ({type(exc).__name__})")
        except OcrError as exc:
            return Health(False, exc.message)
        if resp.status_code in (401, 403):
            return Health(False, f"bad API key (HTTP {resp.status_code})")
        if resp.status_code == 404:
            return Health(False, f"endpoint {self.endpoint_id!r} not found (HTTP 404)")
        if resp.status_code >= 400:
            return Health(False, f"RunPod health: HTTP {resp.status_code}")
        try:
            info = loads(resp.content)
        except (ValueError, OcrError):
            return Health(False, "RunPod health: non-JSON reply")
        if not isinstance(info, dict):
            return Health(False, "RunPod health: not a JSON object")
        workers = info.get("workers") or {}
        jobs = info.get("jobs") or {}
        detail = (
            f"endpoint {self.endpoint_id}: workers {workers.get('idle', 0)} idle, "
            f"{workers.get('running', 0)} running; jobs {jobs.get('inQueue', 0)} in queue, "
            f"{jobs.get('inProgress', 0)} in progress"
        )
        return Health(True, detail, dict(info))

    async def aclose(self) -> None:
        """Cancel jobs still in flight (best effort), then close the HTTP client."""
        pending = list(self.in_flight)
        if pending:
            await asyncio.gather(*(self._cancel_shielded(j) for j in pending), return_exceptions=True)
        if self._bg:  # cancels a stopping run left going: a last, short chance to arrive
            await asyncio.wait(list(self._bg), timeout=INTERRUPT_CANCEL_WAIT_S)
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RunPodTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# Sources checked (facts only):
# - runpod/docs serverless/endpoints/send-requests.mdx: routes, 10/20 MB limits, retention
#   (30 min /run, 1 min /runsync, ?wait=1000..300000), /health shape, /cancel reply, policy
#   {executionTimeout (ms, > 5000), lowPriority, ttl (ms, >= 10000)}, rate limits + 429.
# - runpod 1.12 runpod/serverless/modules/rp_job.py: FAILED error = json.dumps({error_type,
#   error_message, error_traceback, hostname, worker_id, runpod_version}); generator errors are
#   "handler: ... \ntraceback: ..."; a yielded {"error": x} ends the job with str(x); an
#   output of {} is dropped (COMPLETED without output).
# - runpod 1.12 rp_fastapi.py: local routes POST /run, /runsync, /stream/{id}, /status/{id}.
# - runpod 1.12 endpoint/asyncio/asyncio_runner.py: Bearer auth, GET /status polling.
# - runpod-workers/worker-vllm src/handler.py, src/engine.py, src/utils.py: async generator,
#   return_aggregate_stream=True, non-stream yields response.model_dump(); stream yields
#   "".join(SSE strings) batches (RAW_OPENAI_OUTPUT=1, default) or lists of chunk dicts.
