"""What the simulated HTTP servers share: proxy and Modal behaviour, slots, cold start, faults.

:class:`HTTPSimulator` is the base of :class:`~ocrclient.testing.OpenAISimulator` and
:class:`~ocrclient.testing.OcularSimulator` (and of your own): a subclass only says, in
:meth:`HTTPSimulator.dispatch`, how its server answers a request — as a *worker* that emits
events (``head``, ``data``, ``end``, ``reset``), run in its own thread — and the base class
serves it on a :class:`~ocrclient.testing._server.LoopbackServer` with what sits around every
such server:

* the plan's service slots, latency, cold start (counted from the first request, and again
  after :meth:`HTTPSimulator.restart`) and the ``hang`` fault (:meth:`HTTPSimulator.serving`);
* ``mode="proxy"`` — the RunPod pod proxy (Cloudflare): no byte for ``proxy_idle_s`` before the
  response starts is a 524 with an HTML body; a gap that long mid-body cuts the connection;
* ``mode="modal"`` — a Modal web endpoint: 401 ``modal-http: ...`` without the right
  ``Modal-Key`` / ``Modal-Secret``, and a request not answering after
  ``modal_redirect_after_s`` gets ``303 See Other`` to a result URL that serves it on GET;
* ``force_reply`` (one exact reply to every request), counters (requests, statuses, bodies,
  concurrency, 524s, cuts, redirects, resets, restarts).

Example (a subclass answering every request with 200 ``{"ok": true}``)::

    class Ok(HTTPSimulator):
        def dispatch(self, req):
            return lambda emit: self.emit_json(emit, 200, {"ok": True})
"""

from __future__ import annotations

import abc
import json
import logging
import queue
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

from ._server import (
    LoopbackServer,
    ServerOwner,
    SimHandler,
    end_chunks,
    read_body,
    reset,
    write_chunk,
    write_reply,
)
from .faults import CannedReply, FaultPlan, Responder, body_key, echo_responder

__all__ = ["CLOUDFLARE_524", "FAULT_STATUS", "Emit", "Event", "HTTPSimulator", "SimRequest", "SimulatorMode", "Worker"]

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


class _Handler(SimHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sim %s: " + format, self.server.owner.name, *args)

    def respond(self) -> None:
        self.server.owner._serve(self)

    do_PUT = SimHandler._any
    do_DELETE = SimHandler._any


class HTTPSimulator(ServerOwner, abc.ABC):
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
        self._server: LoopbackServer | None = None
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
    def start(self) -> Self:
        self._listen(self._port)
        return self

    def _listen(self, port: int) -> None:
        self._server = LoopbackServer.start(
            self, _Handler, host=self.host, port=port, poll_interval=0.01, name=f"{self.name}-sim"
        )
        self._thread = self._server.thread

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop()
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
        raw, _ = read_body(h)
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
                    write_chunk(h, data)
                else:
                    h.wfile.write(data)
                h.wfile.flush()
            elif kind == "end":
                if chunked:
                    end_chunks(h)
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
        write_reply(h, status, data, content_type, headers or ())

    @staticmethod
    def _abort(h: _Handler) -> None:
        """Drop the connection with a TCP reset, mid-reply."""
        reset(h)
