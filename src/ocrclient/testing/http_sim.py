"""What the simulated HTTP servers share: proxy and Modal behaviour, slots, cold start, faults.

:class:`HTTPSimulator` is the base of :class:`~ocrclient.testing.OpenAISimulator` and
:class:`~ocrclient.testing.OcularSimulator` (and of your own): a subclass only says, in
:meth:`HTTPSimulator.dispatch`, how its server answers a request — as a *worker* that emits
events (``head``, ``data``, ``end``, ``reset``), run in its own thread — and the base class
serves it on a :class:`~ocrclient.testing._server.LoopbackServer` with what sits around every
such server:

* the plan's service slots, latency, cold start (counted from the first request, and again
  after :meth:`HTTPSimulator.restart`) and the ``hang`` fault (:meth:`HTTPSimulator.serving`).
  A healthy request holds its slot for the plan's latency counted from when it got the slot
  (after any cold start): :meth:`HTTPSimulator.serving` hands that moment to the worker, which
  sleeps *to deadlines* from it (:meth:`HTTPSimulator.sleep_until`), so the work it does inside
  the slot (the responder, encoding the reply) is part of the latency, not added to it, and a
  sleep that overshoots does not push the next one back — as a GPU server's service time
  includes its preprocessing;
* ``mode="proxy"`` (the RunPod pod proxy: 524s, cut connections) and ``mode="modal"`` (a Modal
  web endpoint: its credentials, 303 redirects to a result URL), played by the front the
  replies pass through (:class:`~ocrclient.testing.http_front.ProxyFront`);
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
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from ..secrets import redact
from ._server import LoopbackServer, SimHandler, read_body
from .faults import CannedReply, FaultPlan, Responder, body_key, echo_responder
from .http_front import (  # CLOUDFLARE_524 .. Worker: re-exported (their old home)
    CLOUDFLARE_524,
    Dropped,
    Emit,
    Event,
    ProxyFront,
    SimRequest,
    SimulatorMode,
    Stopped,
    Worker,
)

__all__ = ["CLOUDFLARE_524", "FAULT_STATUS", "Emit", "Event", "HTTPSimulator", "SimRequest", "SimulatorMode", "Worker"]

log = logging.getLogger(__name__)

#: fault class -> HTTP status it answers with
FAULT_STATUS = {
    "http_400": 400,
    "http_401": 401,
    "http_429": 429,
    "http_500": 500,
    "http_502": 502,
    "http_503": 503,
}


class _Handler(SimHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):  # (a request line may carry ?api_key=...)
            log.debug("sim %s: %s", self.server.owner.name, redact(format % args))

    def respond(self) -> None:
        self.server.owner._serve(self)

    do_PUT = SimHandler._any
    do_DELETE = SimHandler._any


class HTTPSimulator(ProxyFront, abc.ABC):
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
        super().__init__(
            mode,
            proxy_idle_s=proxy_idle_s,
            modal_redirect_after_s=modal_redirect_after_s,
            modal_key=modal_key,
            modal_secret=modal_secret,
        )
        self.plan = plan or FaultPlan()
        self.responder: Responder = responder or echo_responder
        self.api_key = api_key
        self.host = host
        self._port = port
        self.key_fn = key_fn or body_key
        #: every POST answers this status (for classification tests); ``None`` = normal
        self.force_status = force_status
        #: every request gets exactly this reply (a server's error shape); ``None`` = normal
        self.force_reply = force_reply
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(max(1, self.plan.slots))
        self._ready_at: float | None = None
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._tls = threading.local()  # .cut: the event a worker thread watches
        self._inflight = 0
        self._active = 0
        self._open = 0  # requests being read or answered (for wait_quiet)
        self._last_arrival = 0.0
        # -- counters (read them in tests) --
        self.requests: Counter[str] = Counter()  # "POST /v1/chat/completions" -> n
        self.requests_by_key: Counter[str] = Counter()
        #: the last ``keep_bodies`` request bodies received (newest last)
        self.bodies: list[Any] = []
        self.keep_bodies = 64
        self.max_concurrency = 0  # most requests in flight at once
        self.max_active = 0  # most requests holding a service slot at once
        self.restarts = 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Self:
        self._stop.clear()  # (a restart after stop() and start() found it set, and stayed down)
        self._listen(self._port)
        return self

    def _listen(self, port: int) -> None:
        self._server = LoopbackServer.start(self, _Handler, host=self.host, port=port, poll_interval=0.01, name=f"{self.name}-sim")
        self._thread = self._server.thread

    def stop(self) -> None:
        self._stop.set()
        self._stop_server()

    def restart(self, down_s: float = 0.1) -> None:
        """A server restart (the process dies and comes back on the same port).

        As :meth:`stop`: every open connection is reset (requests in flight, idle keep-alive
        connections), the workers of the old process give up and every thread of the old server
        has ended when the port comes back; the port refuses connections for ``down_s``
        seconds, then the server listens again at the same :attr:`url` (and ``base_url``) and
        loads its models anew: the plan's ``cold_start_s`` runs again from that moment
        (``/health`` answers 502 and requests wait until it is over).  Counters are kept;
        :attr:`restarts` counts the restarts.  Blocks for ``down_s``: from async code call it
        in a thread (``await asyncio.to_thread(sim.restart)``).
        """
        old, thread = self._server, self._thread
        if old is None:
            raise RuntimeError("simulator not started")
        # as stop(): the port refuses from now on, every open connection is reset, the old
        # process's workers stop at their next wait, and its threads are waited for (restart
        # returned with them still running, unlike stop())
        old.close(keep_port=True)
        old.join()
        if thread is not None:
            thread.join(timeout=2.0)
        with self._lock:
            self.restarts += 1
        if self._stop.wait(down_s):
            old.release_port()
            return  # stopped while down
        with self._lock:
            self._ready_at = self.clock() + self.plan.cold_start_s
        self._server = old.relisten()
        self._thread = self._server.thread

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:53127``."""
        return f"http://{self.host}:{self.port}"

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
            raise Stopped

    def sleep_until(self, deadline: float) -> None:
        """Sleep until :meth:`clock` reads ``deadline`` (not at all if it is past): the time
        spent since counts toward the wait, and an overshoot of one sleep is not added to the
        next deadline."""
        self.sleep(max(0.0, deadline - self.clock()))

    def first_byte_delayed(self, start: float, fault: str | None) -> float:
        """For the ``slow_first_byte`` fault: nothing for ``plan.first_byte_delay_s`` after
        ``start``, then the service, whose start this returns (``start`` for any other fault)."""
        if fault != "slow_first_byte":
            return start
        start += self.plan.first_byte_delay_s
        self.sleep_until(start)
        return start

    def wait_until_ready(self) -> None:
        """Block until the cold start (counted from the first request) is over."""
        with self._lock:
            if self._ready_at is None:
                self._ready_at = self.clock() + self.plan.cold_start_s
            ready_at = self._ready_at
        self.sleep_until(ready_at)

    def is_ready(self) -> bool:
        with self._lock:
            if self._ready_at is None:
                self._ready_at = self.clock() + self.plan.cold_start_s
            return self.clock() >= self._ready_at

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the plan's service slots (the rest queue)."""
        while not self._slots.acquire(timeout=0.05):
            if self._cut().is_set():
                raise Stopped
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
    def serving(self, fault: str | None) -> Iterator[float]:
        """Hold a service slot once the cold start is over, for one request whose plan drew
        ``fault``, and give the moment (on :meth:`clock`) its service began: the slot got and
        the cold start over.  The worker counts its latency from there
        (``self.sleep_until(start + latency)`` after its own work).  The ``hang`` fault answers
        nothing for ``plan.hang_s``, then hangs up."""
        with self.slot():
            self.wait_until_ready()
            start = self.clock()
            if fault == "hang":
                self.sleep_until(start + self.plan.hang_s)
                raise Dropped
            yield start

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

    def count_key(self, body: Any, received: Any = None) -> str:
        """``body``'s fault key, counted; ``received`` (default ``body``) is kept in
        :attr:`bodies`: the request as it came, where the key leaves some of it out."""
        key = self.key_fn(body)
        with self._lock:
            self.requests_by_key[key] += 1
            self.bodies.append(body if received is None else received)
            if len(self.bodies) > self.keep_bodies:  # pages carry images: bound the memory
                del self.bodies[: len(self.bodies) - self.keep_bodies]
        return key

    # -- the request path ---------------------------------------------------------------------
    def wait_quiet(self, quiet_s: float = 0.3, timeout_s: float = 10.0) -> bool:
        """Block until no request is open and none arrived for ``quiet_s`` seconds (counted
        from the call at the earliest: a connection still in the listen queue is not seen).

        After you kill a client (``kill -9`` mid-run), requests it had already written may
        still be read and counted by the server a moment later; take your "before" snapshot
        of the counters after this returns.  ``False`` when ``timeout_s`` ran out first.
        """
        start = time.monotonic()
        deadline = start + timeout_s
        while True:
            now = time.monotonic()
            with self._lock:
                quiet = self._open == 0 and now - max(self._last_arrival, start) >= quiet_s
            if quiet:
                return True
            if now >= deadline:
                return False
            time.sleep(0.01)

    def _serve(self, h: _Handler) -> None:
        with self._lock:
            self._open += 1
            self._last_arrival = time.monotonic()
        try:
            self._serve_open(h)
        finally:
            with self._lock:
                self._open -= 1

    def _serve_open(self, h: _Handler) -> None:
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
                self.write_simple(h, self.force_reply.status, data, ctype, list(self.force_reply.headers))
                return
            if self.mode == "modal":
                denied = self.modal_denied(req)
                if denied is not None:
                    self.write_simple(h, 401, denied.encode(), "text/plain; charset=utf-8")
                    return
                call_ids = req.query.get("__modal_function_call_id")
                if call_ids:
                    self.serve_result(h, req, call_ids[0], started)
                    return
            work = self.dispatch(req)
            q: queue.Queue[Event] = queue.Queue()
            cut = h.server.cut

            def run() -> None:
                self._tls.cut = cut
                try:
                    work(q.put)
                except (Stopped, Dropped):
                    q.put(("reset",))
                except Exception as exc:  # a bug in a responder: answer 500, like a server
                    log.debug("simulator worker failed: %r", exc)
                    self.emit_json(q.put, 500, {"error": {"message": f"simulator: {exc}",
                                                          "type": "InternalServerError",
                                                          "param": None, "code": 500}})

            h.server.spawn(run, f"{self.name}-work")  # (stop() waits for it)
            self.pump(h, req, q, started)
        finally:
            with self._lock:
                self._inflight -= 1
