"""A simulated vLLM OpenAI-compatible server — direct, behind the RunPod pod proxy, or on Modal.

:class:`OpenAISimulator` is a real HTTP/1.1 server on ``127.0.0.1`` (stdlib
``ThreadingHTTPServer`` in a background thread: no extra dependency, real sockets, and blocking
per-request timing code that is easy to read).  It speaks the parts of vLLM's OpenAI API that
ocrclient uses:

* ``GET /health`` (200, empty body), ``GET /v1/models`` (model cards with ``max_model_len``),
* ``POST /v1/chat/completions`` as JSON or as SSE (``data: {chunk}`` ... ``data: [DONE]``, with a
  final usage chunk when ``stream_options.include_usage`` is set),
* vLLM's error bodies, ``{"error": {"message", "type", "param", "code"}}`` (``error_shape="new"``)
  or the older flat ``{"object": "error", "message", ...}`` (``error_shape="flat"``), the API-key
  check (401 ``{"error": "Unauthorized"}`` on ``/v1/*``), 404 for an unknown model and 400 when
  ``max_tokens`` does not fit in ``max_model_len``.

Faults come from a seeded :class:`~ocrclient.testing.faults.FaultPlan` (``http_*``, ``reset``,
``hang``, ``slow_first_byte``, ``length``, ``garbage``), plus service slots, latency and cold start;
:meth:`HTTPSimulator.restart` restarts the server on the same port (requests in flight are cut).

Modes:

* ``mode="direct"`` — a vLLM server reached directly.
* ``mode="proxy"`` — the RunPod pod proxy (Cloudflare): if no byte reaches the client for
  ``proxy_idle_s`` before the response starts, the client gets a 524 with an HTML body; a gap that
  long in the middle of a streamed body cuts the connection.
* ``mode="modal"`` — a Modal web endpoint: 401 ``modal-http: missing credentials for proxy
  authorization`` without the right ``Modal-Key`` / ``Modal-Secret`` headers, and a request that
  has not started answering after ``modal_redirect_after_s`` gets ``303 See Other`` to a result URL
  (``?__modal_function_call_id=fc-...``) that serves the answer on GET, blocking until it is ready.

Example::

    >>> from ocrclient.testing.faults import FaultPlan
    >>> with OpenAISimulator(plan=FaultPlan(latency_s=(0.0, 0.0))) as sim:  # doctest: +SKIP
    ...     sim.base_url, sim.api_key
    ('http://127.0.0.1:53127/v1', 'sk-sim-...')
"""

from __future__ import annotations

import abc
import json
import logging
import queue
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from .faults import CannedReply, FaultPlan, Responder, SimReply, body_key, echo_responder

__all__ = ["HTTPSimulator", "OpenAISimulator", "SimRequest", "SimulatorMode"]

log = logging.getLogger(__name__)

SimulatorMode = Literal["direct", "proxy", "modal"]

#: fault class -> HTTP status it answers with
FAULT_STATUS = {
    "http_400": 400,
    "http_401": 401,
    "http_429": 429,
    "http_500": 500,
    "http_502": 502,
    "http_503": 503,
}

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

CLOUDFLARE_524 = (
    "<!DOCTYPE html>\n<html><head><title>proxy.runpod.net | 524: A timeout occurred</title></head>"
    "<body><div id=\"cf-error-details\"><h1>A timeout occurred</h1>"
    "<p>The origin web server timed out responding to this request.</p>"
    "<span>Error code 524</span></div></body></html>\n"
)

# events a worker emits; the pump turns them into bytes on the socket
Event = tuple[Any, ...]
Emit = Callable[[Event], None]
Worker = Callable[[Emit], None]


class _Stopped(Exception):
    """The simulator is shutting down or restarting: the worker gives up."""


class _Dropped(Exception):
    """The worker hangs up without a reply (the ``hang`` fault, once its time is up)."""


@dataclass
class SimRequest:
    """One request as the simulator saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    json: Any = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class _Recorded:
    events: list[Event] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class _Server(ThreadingHTTPServer):
    """One run of the server process: :meth:`HTTPSimulator.restart` replaces it.  It tracks its
    open connections (so a restart can cut idle keep-alive ones too) and owns ``cut``, the event
    its workers watch while they wait."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    sim: HTTPSimulator

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.cut = threading.Event()
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Reset every open connection, idle or mid-reply, as a dying process would."""
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            _reset(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-reply is normal here (timeouts, cancels): no traceback."""


def _reset(conn: socket.socket) -> None:
    """Make the connection end with a TCP reset (on close) and wake its reader now."""
    with suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle + the client's
    # delayed ACK add ~40 ms to every reply (real servers such as uvicorn set it too)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sim %s: " + format, self.server.sim.name, *args)

    def _handle(self) -> None:
        try:
            self.server.sim._serve(self)
        except (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle


class HTTPSimulator(abc.ABC):
    """Shared machinery of the simulated servers: threaded HTTP server, proxy / Modal behaviour,
    fault plan, slots, cold start, counters.  Subclasses implement :meth:`dispatch`.

    Example (a subclass answering every request with 200 ``ok``)::

        class Ok(HTTPSimulator):
            def dispatch(self, req):
                return lambda emit: self.emit_json(emit, 200, {"ok": True})
    """

    name = "http"

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        responder: Responder | None = None,
        api_key: str | None = None,
        mode: SimulatorMode = "direct",
        proxy_idle_s: float = 100.0,
        modal_redirect_after_s: float = 150.0,
        modal_key: str | None = None,
        modal_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        key_fn: Callable[[Any], str] | None = None,
        force_status: int | None = None,
        force_reply: CannedReply | None = None,
    ) -> None:
        if mode not in ("direct", "proxy", "modal"):
            raise ValueError(f"unknown simulator mode {mode!r}")
        self.plan = plan or FaultPlan()
        self.responder: Responder = responder or echo_responder
        self.api_key = api_key
        self.mode: SimulatorMode = mode
        self.proxy_idle_s = proxy_idle_s
        self.modal_redirect_after_s = modal_redirect_after_s
        self.modal_key = modal_key or ("wk-sim-" + secrets.token_hex(6) if mode == "modal" else None)
        self.modal_secret = modal_secret or (
            "ws-sim-" + secrets.token_hex(12) if mode == "modal" else None
        )
        self.host = host
        self._port = port
        self.key_fn = key_fn or body_key
        #: every POST answers this status (for classification tests); ``None`` = normal
        self.force_status = force_status
        #: every request gets exactly this reply (a server's error shape); ``None`` = normal
        self.force_reply = force_reply
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(max(1, self.plan.slots))
        self._ready_at: float | None = None
        self._results: dict[str, _Recorded] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tls = threading.local()  # .cut: the event a worker thread watches
        self._inflight = 0
        self._active = 0
        # -- counters (read them in tests) --
        self.requests: Counter[str] = Counter()  # "POST /v1/chat/completions" -> n
        self.requests_by_key: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        #: the last ``keep_bodies`` request bodies received (newest last)
        self.bodies: list[Any] = []
        self.keep_bodies = 64
        self.max_concurrency = 0  # most requests in flight at once
        self.max_active = 0  # most requests holding a service slot at once
        self.proxy_524s = 0
        self.proxy_cuts = 0
        self.redirects = 0
        self.resets = 0
        self.restarts = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> HTTPSimulator:
        self._listen(self._port)
        return self

    def _listen(self, port: int) -> None:
        server = _Server((self.host, port))
        server.sim = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True,
            name=f"{self.name}-sim",
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.cut.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def restart(self, down_s: float = 0.1) -> None:
        """A server restart (the process dies and comes back on the same port).

        Every open connection is reset (requests in flight, idle keep-alive connections), the
        workers of the old process give up, the port refuses connections for ``down_s``
        seconds, then the server listens again at the same :attr:`url` (and ``base_url``) and
        loads its models anew: the plan's ``cold_start_s`` runs again from that moment
        (``/health`` answers 502 and requests wait until it is over).  Counters are kept;
        :attr:`restarts` counts the restarts.  Blocks for ``down_s``: from async code call it
        in a thread (``await asyncio.to_thread(sim.restart)``).
        """
        old, thread = self._server, self._thread
        if old is None:
            raise RuntimeError("simulator not started")
        port = int(old.server_address[1])
        old.shutdown()  # accept no more connections
        old.server_close()  # from now on the port refuses them
        old.cut.set()  # the old process's workers stop at their next wait
        old.cut_connections()
        if thread is not None:
            thread.join(timeout=2.0)
        with self._lock:
            self.restarts += 1
        if self._stop.wait(down_s):
            return  # stopped while down
        with self._lock:
            self._ready_at = time.monotonic() + self.plan.cold_start_s
        self._listen(port)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:53127``."""
        return f"http://{self.host}:{self.port}"

    @property
    def modal_headers(self) -> dict[str, str]:
        """The proxy-auth headers a Modal client must send (empty outside ``modal`` mode)."""
        if self.mode != "modal" or not self.modal_key or not self.modal_secret:
            return {}
        return {"Modal-Key": self.modal_key, "Modal-Secret": self.modal_secret}

    # -- helpers for subclasses ------------------------------------------------------------------
    @abc.abstractmethod
    def dispatch(self, req: SimRequest) -> Worker:
        """The worker that answers ``req`` (it runs in its own thread and emits events)."""

    def _cut(self) -> threading.Event:
        """What this worker thread watches: its server run's ``cut`` (set on stop and restart)."""
        cut = getattr(self._tls, "cut", None)
        return cut if cut is not None else self._stop

    def sleep(self, seconds: float) -> None:
        """Sleep, but give up at once when the simulator stops or restarts."""
        if seconds > 0 and self._cut().wait(seconds):
            raise _Stopped

    def wait_until_ready(self) -> None:
        """Block until the cold start (counted from the first request) is over."""
        with self._lock:
            if self._ready_at is None:
                self._ready_at = time.monotonic() + self.plan.cold_start_s
            ready_at = self._ready_at
        self.sleep(ready_at - time.monotonic())

    def is_ready(self) -> bool:
        with self._lock:
            if self._ready_at is None:
                self._ready_at = time.monotonic() + self.plan.cold_start_s
            return time.monotonic() >= self._ready_at

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the plan's service slots (the rest queue)."""
        while not self._slots.acquire(timeout=0.05):
            if self._cut().is_set():
                raise _Stopped
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
            self._slots.release()

    @contextmanager
    def serving(self, fault: str | None) -> Iterator[None]:
        """Hold a service slot once the cold start is over, for one request whose plan drew
        ``fault``: the ``hang`` fault answers nothing for ``plan.hang_s``, then hangs up."""
        with self.slot():
            self.wait_until_ready()
            if fault == "hang":
                self.sleep(self.plan.hang_s)
                raise _Dropped
            yield

    @staticmethod
    def emit_cut(emit: Emit, data: bytes, content_type: str = "application/json") -> None:
        """The ``reset`` fault on a plain reply: the head and half of ``data``, then a reset."""
        emit(("head", 200, [("Content-Type", content_type),
                            ("Content-Length", str(len(data)))], False))
        emit(("data", data[: len(data) // 2]))
        emit(("reset",))

    @staticmethod
    def emit_bytes(
        emit: Emit, status: int, data: bytes, content_type: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        hdrs = [("Content-Type", content_type), ("Content-Length", str(len(data))), *(headers or [])]
        emit(("head", status, hdrs, False))
        if data:
            emit(("data", data))
        emit(("end",))

    def emit_json(
        self, emit: Emit, status: int, obj: Any, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.emit_bytes(emit, status, json.dumps(obj).encode(), "application/json", headers)

    def count_key(self, body: Any) -> str:
        key = self.key_fn(body)
        with self._lock:
            self.requests_by_key[key] += 1
            self.bodies.append(body)
            if len(self.bodies) > self.keep_bodies:  # pages carry images: bound the memory
                del self.bodies[: len(self.bodies) - self.keep_bodies]
        return key

    # -- the request path ---------------------------------------------------------------------
    def _serve(self, h: _Handler) -> None:
        started = time.monotonic()
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        req = SimRequest(h.command, parts.path, parse_qs(parts.query), h.headers, raw)
        if raw:
            with suppress(ValueError):
                req.json = json.loads(raw)
        with self._lock:
            self.requests[f"{req.method} {req.path}"] += 1
            self._inflight += 1
            self.max_concurrency = max(self.max_concurrency, self._inflight)
        try:
            if self.force_reply is not None:
                data, ctype = self.force_reply.encoded()
                self._write_simple(h, self.force_reply.status, data, ctype, list(self.force_reply.headers))
                return
            if self.mode == "modal":
                denied = self._modal_auth(req)
                if denied is not None:
                    self._write_simple(h, 401, denied.encode(), "text/plain; charset=utf-8")
                    return
                call_ids = req.query.get("__modal_function_call_id")
                if call_ids:
                    self._serve_result(h, req, call_ids[0], started)
                    return
            work = self.dispatch(req)
            q: queue.Queue[Event] = queue.Queue()
            cut = h.server.cut

            def run() -> None:
                self._tls.cut = cut
                try:
                    work(q.put)
                except (_Stopped, _Dropped):
                    q.put(("reset",))
                except Exception as exc:  # a bug in a responder: answer 500, like a server
                    log.debug("simulator worker failed: %r", exc)
                    self.emit_json(q.put, 500, {"error": {"message": f"simulator: {exc}",
                                                          "type": "InternalServerError",
                                                          "param": None, "code": 500}})

            threading.Thread(target=run, daemon=True, name=f"{self.name}-work").start()
            self._pump(h, req, q, started)
        finally:
            with self._lock:
                self._inflight -= 1

    def _modal_auth(self, req: SimRequest) -> str | None:
        key, secret = req.header("Modal-Key"), req.header("Modal-Secret")
        if not key or not secret:
            return "modal-http: missing credentials for proxy authorization"
        if key != self.modal_key or secret != self.modal_secret:
            return "modal-http: invalid credentials for proxy authorization"
        return None

    def _pump(self, h: _Handler, req: SimRequest, q: queue.Queue[Event], started: float) -> None:
        """Write the worker's events to the socket, applying the proxy / Modal rules."""
        head_sent = False
        chunked = False
        last_byte = started
        while True:
            timeout: float | None = None
            now = time.monotonic()
            if self.mode == "proxy":
                timeout = self.proxy_idle_s - (now - last_byte)
            elif self.mode == "modal" and not head_sent:
                timeout = self.modal_redirect_after_s - (now - started)
            try:
                ev = q.get(timeout=max(0.0, timeout) if timeout is not None else None)
            except queue.Empty:
                if self.mode == "modal":
                    self._redirect(h, req, q)
                    return
                if not head_sent:
                    with self._lock:
                        self.proxy_524s += 1
                    self._write_simple(h, 524, CLOUDFLARE_524.encode(), "text/html; charset=UTF-8")
                else:
                    with self._lock:
                        self.proxy_cuts += 1
                    self._abort(h)
                return
            kind = ev[0]
            if kind == "head":
                _, status, headers, chunked = ev
                with self._lock:
                    self.statuses[status] += 1
                h.send_response(status)
                for name, value in headers:
                    h.send_header(name, value)
                if chunked:
                    h.send_header("Transfer-Encoding", "chunked")
                h.end_headers()
                head_sent = True
            elif kind == "data":
                data: bytes = ev[1]
                if chunked:
                    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                else:
                    h.wfile.write(data)
                h.wfile.flush()
            elif kind == "end":
                if chunked:
                    h.wfile.write(b"0\r\n\r\n")
                    h.wfile.flush()
                return
            elif kind == "reset":
                with self._lock:
                    self.resets += 1
                self._abort(h)
                return
            last_byte = time.monotonic()

    def _redirect(self, h: _Handler, req: SimRequest, q: queue.Queue[Event]) -> None:
        call_id = "fc-" + uuid.uuid4().hex[:20]
        rec = _Recorded()
        with self._lock:
            self._results[call_id] = rec
            self.redirects += 1

        def collect() -> None:
            while True:
                ev = q.get()
                rec.events.append(ev)
                if ev[0] in ("end", "reset"):
                    rec.done.set()
                    return

        threading.Thread(target=collect, daemon=True, name=f"{self.name}-collect").start()
        host = req.header("Host") or f"{self.host}:{self.port}"
        location = f"http://{host}{req.path}?__modal_function_call_id={call_id}"
        self._write_simple(h, 303, b"", "text/plain", [("Location", location)])

    def _serve_result(self, h: _Handler, req: SimRequest, call_id: str, started: float) -> None:
        with self._lock:
            rec = self._results.get(call_id)
        if rec is None:
            self._write_simple(h, 404, b"modal-http: function call not found", "text/plain")
            return
        if not rec.done.wait(max(0.0, self.modal_redirect_after_s - (time.monotonic() - started))):
            with self._lock:
                self.redirects += 1
            host = req.header("Host") or f"{self.host}:{self.port}"
            location = f"http://{host}{req.path}?__modal_function_call_id={call_id}"
            self._write_simple(h, 303, b"", "text/plain", [("Location", location)])
            return
        q: queue.Queue[Event] = queue.Queue()
        for ev in rec.events:
            q.put(ev)
        self._pump(h, req, q, time.monotonic())

    def _write_simple(
        self, h: _Handler, status: int, data: bytes, content_type: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        with self._lock:
            self.statuses[status] += 1
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        for name, value in headers or []:
            h.send_header(name, value)
        h.end_headers()
        if data:
            h.wfile.write(data)
        h.wfile.flush()

    @staticmethod
    def _abort(h: _Handler) -> None:
        """Drop the connection with a TCP reset, mid-reply."""
        h.close_connection = True
        with suppress(OSError):
            h.wfile.flush()
        _reset(h.connection)


# ---------------------------------------------------------------------------------------------
# the vLLM OpenAI-compatible server
# ---------------------------------------------------------------------------------------------


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

    def __enter__(self) -> OpenAISimulator:
        self.start()
        return self

    # -- vLLM error bodies ----------------------------------------------------------------------
    def error_body(self, status: int, message: str, err_type: str | None = None) -> dict[str, Any]:
        err_type = err_type or _REASON_TYPE.get(status, "Error")
        if self.error_shape == "flat":
            return {"object": "error", "message": message, "type": err_type, "param": None,
                    "code": status}
        return {"error": {"message": message, "type": err_type, "param": None, "code": status}}

    def emit_error(self, emit: Emit, status: int, message: str) -> None:
        headers = []
        if status == 429:
            headers.append(("Retry-After", f"{self.plan.retry_after_s:g}"))
        self.emit_json(emit, status, self.error_body(status, message), headers)

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
        key = self.count_key({k: v for k, v in body.items() if k not in ("stream", "stream_options")})
        fault = self.plan.draw(key)
        if self.force_status is not None:
            self.emit_error(emit, self.force_status, f"forced status {self.force_status}")
            return
        with self.serving(fault):
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
            if body.get("model") != self.model:
                self.emit_error(emit, 404, f"The model `{body.get('model')}` does not exist.")
                return
            if fault == "slow_first_byte":
                self.sleep(self.plan.first_byte_delay_s)
            reply = self.responder(body)
            max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
            prompt_tokens = reply.prompt_tokens
            if (
                self.max_model_len is not None
                and isinstance(max_tokens, int)
                and prompt_tokens + max_tokens > self.max_model_len
            ):
                self.emit_error(
                    emit, 400,
                    f"This model's maximum context length is {self.max_model_len} tokens. "
                    f"However, you requested {max_tokens} output tokens and your prompt contains "
                    f"at least {prompt_tokens} input tokens, for a total of at least "
                    f"{prompt_tokens + max_tokens} tokens. Please reduce the length of the input "
                    "prompt or the number of requested output tokens.",
                )
                return
            reply = _apply_output_fault(reply, fault, max_tokens)
            latency = self.plan.latency(key)
            if stream:
                self._stream(body, reply, latency, emit, reset=fault == "reset")
            else:
                self.sleep(latency)
                data = json.dumps(self._completion(body, reply)).encode()
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
        self, body: dict[str, Any], reply: SimReply, latency: float, emit: Emit, *, reset: bool
    ) -> None:
        cid = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": self.model,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                "finish_reason": finish}]}
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        pieces = _split(reply.text, self.stream_chunks)
        emit(("head", 200, [("Content-Type", "text/event-stream; charset=utf-8"),
                            ("Cache-Control", "no-cache")], True))
        emit(("data", chunk({"role": "assistant", "content": ""}, None)))
        gap = latency / len(pieces)
        for i, piece in enumerate(pieces):
            self.sleep(gap)
            if reset and i >= len(pieces) // 2:
                emit(("reset",))
                return
            last = i == len(pieces) - 1
            emit(("data", chunk({"content": piece}, reply.finish_reason if last else None)))
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
        junk = "\u2591" * 7 + " ::: " + "lorem " * 40
        return SimReply(junk, "stop", reply.prompt_tokens, 47, dict(reply.data))
    return reply
