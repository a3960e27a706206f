"""A simulated vLLM OpenAI-compatible server — direct, behind the RunPod pod proxy, or on Modal.

:class:`OpenAISimulator` is a real HTTP/1.1 server on ``127.0.0.1`` (see
:mod:`ocrclient.testing._server`).  It speaks the parts of vLLM's OpenAI API that ocrclient uses:

* ``GET /health`` (200, empty body), ``GET /v1/models`` (model cards with ``max_model_len``),
* ``POST /v1/chat/completions`` as JSON or as SSE (``data: {chunk}`` ... ``data: [DONE]``, with a
  final usage chunk when ``stream_options.include_usage`` is set),
* vLLM's error bodies, ``{"error": {"message", "type", "param", "code"}}`` (``error_shape="new"``)
  or the older flat ``{"object": "error", "message", ...}`` (``error_shape="flat"``), the API-key
  check (401 ``{"error": "Unauthorized"}`` on ``/v1/*``), and vLLM's request checks
  (:mod:`.vllm_checks`, shared with the RunPod simulator's chat jobs): 404 for an unknown model,
  400 for no messages, a ``max_tokens`` that is no integer or below 1 or does not fit in
  ``max_model_len``, a negative ``temperature``, a ``top_p`` outside (0, 1].

Faults come from a seeded :class:`~ocrclient.testing.faults.FaultPlan` (``http_*``, ``reset``,
``hang``, ``slow_first_byte``, ``length``, ``garbage``), plus service slots, latency and cold start;
:meth:`~ocrclient.testing.http_sim.HTTPSimulator.restart` restarts the server on the same port
(requests in flight are cut).  The modes below, slots and faults are the shared machinery of
:mod:`ocrclient.testing.http_sim`; this module is vLLM's contract.

Latency: a healthy request holds its slot for the plan's latency, counted from when it got the
slot (after any cold start; after ``first_byte_delay_s`` for ``slow_first_byte``), the
responder's time included: a JSON reply is written at that deadline, and a stream's n content
chunks at ``latency * i / n`` from the start (deadlines, so sleeps that overshoot do not add up).

Modes:

* ``mode="direct"`` — a vLLM server reached directly.
* ``mode="proxy"`` — the RunPod pod proxy (Cloudflare): if no byte reaches the client for
  ``proxy_idle_s`` before the response starts, the client gets a 524 with an HTML body; a gap that
  long in the middle of a streamed body cuts the connection.
* ``mode="modal"`` — a Modal web endpoint: 401 ``modal-http: missing credentials for proxy
  authorization`` without the right ``Modal-Key`` / ``Modal-Secret`` headers, and a request that
  has not started answering after ``modal_redirect_after_s`` gets ``303 See Other`` to a result URL
  (``?__modal_function_call_id=fc-...``) whose GET answers once the result is ready, or, not
  ready after another ``modal_redirect_after_s``, with another 303 to itself: a client follows
  the redirects until the answer comes.

Example::

    >>> from ocrclient.testing.faults import FaultPlan
    >>> with OpenAISimulator(plan=FaultPlan(latency_s=(0.0, 0.0))) as sim:  # doctest: +SKIP
    ...     sim.base_url, sim.api_key
    ('http://127.0.0.1:53127/v1', 'sk-sim-...')
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any, Literal

from .faults import FaultPlan, Responder, SimReply, cut_at_max_tokens, garbage_reply
from .http_sim import (  # HTTPSimulator .. Worker: re-exported (their old home)
    CLOUDFLARE_524,
    FAULT_STATUS,
    Emit,
    HTTPSimulator,
    SimRequest,
    SimulatorMode,
    Worker,
)
from .vllm_checks import Refusal, check_chat, check_generation

__all__ = ["CLOUDFLARE_524", "FAULT_STATUS", "Emit", "HTTPSimulator", "OpenAISimulator", "SimRequest",
           "SimulatorMode", "Worker"]

_REASON_TYPE = {
    400: "BadRequestError",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFoundError",
    408: "RequestTimeout",
    429: "RateLimitError",
    500: "InternalServerError",
    501: "NotImplementedError",
    502: "BadGateway",
    503: "ServiceUnavailableError",
}


# ---------------------------------------------------------------------------------------------
# the vLLM OpenAI-compatible server
# ---------------------------------------------------------------------------------------------


#: the routes vLLM's server answers here, and the method each takes (another one: 405)
_ROUTES = {"/health": "GET", "/v1/models": "GET", "/v1/chat/completions": "POST"}


class OpenAISimulator(HTTPSimulator):
    """vLLM's OpenAI-compatible API on loopback, with seeded faults.

    Example::

        plan = FaultPlan(seed=1, rates={"http_503": 0.2}, latency_s=(0.05, 0.2), slots=4)
        with OpenAISimulator(plan=plan, mode="proxy", proxy_idle_s=0.5) as sim:
            client = AsyncOpenAI(base_url=sim.base_url, api_key=sim.api_key, max_retries=0)
            ...
            assert sim.max_active <= 4
    """

    name = "openai"

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        responder: Responder | None = None,
        mode: SimulatorMode = "direct",
        api_key: str | None = "auto",
        model: str = "sim/ocr-model",
        max_model_len: int | None = 16384,
        error_shape: Literal["new", "flat"] = "new",
        stream_chunks: int = 8,
        **kwargs: Any,
    ) -> None:
        if api_key == "auto":
            api_key = None if mode == "modal" else "sk-sim-" + secrets.token_hex(12)
        super().__init__(plan=plan, responder=responder, api_key=api_key, mode=mode, **kwargs)
        self.model = model
        self.max_model_len = max_model_len
        if error_shape not in ("new", "flat"):
            raise ValueError("error_shape must be 'new' or 'flat'")
        self.error_shape = error_shape
        self.stream_chunks = max(1, stream_chunks)
        self.streamed = 0
        self.non_streamed = 0

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (ends in ``/v1``)."""
        return self.url + "/v1"

    # -- vLLM error bodies ----------------------------------------------------------------------
    def error_body(self, status: int, message: str, err_type: str | None = None, param: str | None = None) -> dict[str, Any]:
        err_type = err_type or _REASON_TYPE.get(status, "Error")
        if self.error_shape == "flat":
            return {"object": "error", "message": message, "type": err_type, "param": param,
                    "code": status}
        return {"error": {"message": message, "type": err_type, "param": param, "code": status}}

    def emit_error(self, emit: Emit, status: int, message: str, param: str | None = None) -> None:
        headers = []
        if status == 429 and self.plan.retry_after_s is not None:  # (None: a 429 without one)
            headers.append(("Retry-After", f"{self.plan.retry_after_s:g}"))
        self.emit_json(emit, status, self.error_body(status, message, param=param), headers)

    # -- routes --------------------------------------------------------------------------------
    def dispatch(self, req: SimRequest) -> Worker:
        path = req.path.rstrip("/") or "/"
        if path.startswith("/v1") and self.api_key is not None:
            auth = req.header("Authorization") or ""
            if auth != f"Bearer {self.api_key}":
                return lambda emit: self.emit_json(emit, 401, {"error": "Unauthorized"})
        if req.method == "GET" and path == "/health":
            return self._health
        if req.method == "GET" and path == "/v1/models":
            return self._models
        if req.method == "POST" and path == "/v1/chat/completions":
            return lambda emit: self._chat(req, emit)
        allowed = _ROUTES.get(path)
        if allowed is not None:  # a route served, by another method: FastAPI's 405, as vLLM's
            return lambda emit: self.emit_json(emit, 405, {"detail": "Method Not Allowed"}, [("Allow", allowed)])
        return lambda emit: self.emit_json(emit, 404, {"detail": "Not Found"})

    def _health(self, emit: Emit) -> None:
        if self.mode == "modal":
            self.wait_until_ready()
        elif not self.is_ready():
            # the port is not up yet: the pod proxy answers 502, a direct client gets a refusal
            self.emit_bytes(emit, 502, b"Bad Gateway", "text/plain")
            return
        self.emit_bytes(emit, 200, b"", "application/json")

    def _models(self, emit: Emit) -> None:
        self.wait_until_ready()
        card: dict[str, Any] = {
            "id": self.model, "object": "model", "created": int(time.time()),
            "owned_by": "vllm", "root": self.model, "parent": None,
            "max_model_len": self.max_model_len, "permission": [],
        }
        self.emit_json(emit, 200, {"object": "list", "data": [card]})

    def _chat(self, req: SimRequest, emit: Emit) -> None:
        body = req.json
        if not isinstance(body, dict):
            self.emit_error(emit, 400, "request body is not a JSON object")
            return
        stream = bool(body.get("stream"))
        with self._lock:
            if stream:
                self.streamed += 1
            else:
                self.non_streamed += 1
        # (keyed without the stream options, kept in ``bodies`` as received)
        key = self.count_key({k: v for k, v in body.items() if k not in ("stream", "stream_options")}, body)
        fault = self.plan.draw(key)
        if self.force_status is not None:
            self.emit_error(emit, self.force_status, f"forced status {self.force_status}")
            return
        with self.serving(fault) as start:
            if fault in FAULT_STATUS:
                status = FAULT_STATUS[fault]
                msg = {
                    400: "simulated bad request",
                    401: "Unauthorized",
                    429: "simulated rate limit",
                    500: "simulated internal error",
                    502: "simulated bad gateway",
                    503: "simulated overload: the engine is not ready",
                }[status]
                if status == 401:
                    self.emit_json(emit, 401, {"error": "Unauthorized"})
                else:
                    self.emit_error(emit, status, msg)
                return
            try:  # vLLM's checks (shared with the RunPod simulator's chat jobs)
                max_tokens = check_chat(body, model=self.model)
                start = self.first_byte_delayed(start, fault)
                reply = self.responder(body)
                check_generation(body, max_tokens, reply.prompt_tokens, self.max_model_len)
            except Refusal as refused:
                self.emit_error(emit, refused.status, refused.message, param=refused.param)
                return
            reply = _apply_output_fault(reply, fault, max_tokens) if fault else cut_at_max_tokens(reply, max_tokens)
            done = start + self.plan.latency(key)  # the responder's time is part of it
            if stream:
                self._stream(body, reply, (start, done), emit, reset=fault == "reset")
            else:
                data = json.dumps(self._completion(body, reply)).encode()
                self.sleep_until(done)
                if fault == "reset":
                    self.emit_cut(emit, data)
                    return
                self.emit_bytes(emit, 200, data, "application/json")

    # -- reply bodies -------------------------------------------------------------------------
    def _completion(self, body: dict[str, Any], reply: SimReply) -> dict[str, Any]:
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "reasoning_content": None,
                            "tool_calls": []},
                "logprobs": None,
                "finish_reason": reply.finish_reason,
                "stop_reason": None,
            }],
            "usage": _usage(reply),
            "prompt_logprobs": None,
        }

    def _stream(
        self, body: dict[str, Any], reply: SimReply, span: tuple[float, float], emit: Emit, *,
        reset: bool,
    ) -> None:
        """The reply as SSE: the i-th of n content chunks at ``start + (done - start) * i / n``
        on :meth:`clock` (``span`` = (start, done)), the last one at ``done``: deadlines, so the
        stream takes the latency however much each sleep overshoots."""
        start, done = span
        cid = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": self.model,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                "finish_reason": finish}]}
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        pieces = _split(reply.text, self.stream_chunks)
        n = len(pieces)
        chunks = [chunk({"content": piece}, reply.finish_reason if i == n - 1 else None)
                  for i, piece in enumerate(pieces)]
        emit(("head", 200, [("Content-Type", "text/event-stream; charset=utf-8"),
                            ("Cache-Control", "no-cache")], True))
        emit(("data", chunk({"role": "assistant", "content": ""}, None)))
        for i, data in enumerate(chunks, 1):
            self.sleep_until(done if i == n else start + (done - start) * i / n)
            if reset and i > n // 2:
                emit(("reset",))
                return
            emit(("data", data))
        opts = body.get("stream_options") or {}
        if isinstance(opts, dict) and opts.get("include_usage"):
            usage = {"id": cid, "object": "chat.completion.chunk", "created": created,
                     "model": self.model, "choices": [], "usage": _usage(reply)}
            emit(("data", b"data: " + json.dumps(usage).encode() + b"\n\n"))
        emit(("data", b"data: [DONE]\n\n"))
        emit(("end",))


def _usage(reply: SimReply) -> dict[str, Any]:
    return {"prompt_tokens": reply.prompt_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "completion_tokens": reply.completion_tokens, "prompt_tokens_details": None}


def _split(text: str, n: int) -> list[str]:
    """``text`` in ``n`` consecutive pieces (fewer if it is shorter), joined back exactly."""
    if not text:
        return [""]
    n = max(1, min(n, len(text)))
    size, rest = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < rest else 0)
        out.append(text[pos : pos + step])
        pos += step
    return out


def _apply_output_fault(reply: SimReply, fault: str | None, max_tokens: Any) -> SimReply:
    if fault == "length":
        words = reply.text.split(" ")
        cut = " ".join(words[: max(1, len(words) // 2)])
        tokens = max_tokens if isinstance(max_tokens, int) else len(cut.split())
        return SimReply(cut, "length", reply.prompt_tokens, tokens, dict(reply.data))
    if fault == "garbage":
        return garbage_reply(reply)
    return reply
