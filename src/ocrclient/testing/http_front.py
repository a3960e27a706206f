"""What stands between a simulated server's answer and the socket: the RunPod pod proxy and
Modal's web endpoint.

A simulator's worker answers a request as *events* (``head``, ``data``, ``end``, ``reset``);
:class:`ProxyFront` writes them to the connection (:meth:`ProxyFront.pump`) under the rules of
the front the simulator plays (:data:`SimulatorMode`):

* ``direct`` — as they come;
* ``proxy`` — the RunPod pod proxy (Cloudflare): no byte for ``proxy_idle_s`` before the
  response starts is a 524 with an HTML body (:data:`CLOUDFLARE_524`); a gap that long
  mid-body cuts the connection;
* ``modal`` — a Modal web endpoint: 401 ``modal-http: ...`` without the right ``Modal-Key`` /
  ``Modal-Secret`` (:meth:`ProxyFront.modal_denied`), and a request not answering after
  ``modal_redirect_after_s`` gets ``303 See Other`` to a result URL that serves it on GET (or,
  not ready after another ``modal_redirect_after_s``, redirects to itself again).

:class:`~ocrclient.testing.http_sim.HTTPSimulator` is built on it.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal

from ._server import ServerOwner, SimHandler, end_chunks, reset, write_chunk, write_reply

__all__ = ["CLOUDFLARE_524", "Dropped", "Emit", "Event", "ProxyFront", "SimRequest", "SimulatorMode", "Stopped", "Worker"]

log = logging.getLogger(__name__)

SimulatorMode = Literal["direct", "proxy", "modal"]

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


class Stopped(Exception):
    """The simulator is shutting down or restarting: the worker gives up."""


class Dropped(Exception):
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


class ProxyFront(ServerOwner):
    """A server owner whose replies pass through the front its ``mode`` names (see the module
    docstring), with the front's counters: ``statuses``, ``proxy_524s``, ``proxy_cuts``,
    ``redirects``, ``resets``."""

    name = "http"
    host: str

    def __init__(
        self,
        mode: SimulatorMode,
        *,
        proxy_idle_s: float,
        modal_redirect_after_s: float,
        modal_key: str | None,
        modal_secret: str | None,
    ) -> None:
        if mode not in ("direct", "proxy", "modal"):
            raise ValueError(f"unknown simulator mode {mode!r}")
        self.mode: SimulatorMode = mode
        self.proxy_idle_s = proxy_idle_s
        self.modal_redirect_after_s = modal_redirect_after_s
        self.modal_key = modal_key or ("wk-sim-" + secrets.token_hex(6) if mode == "modal" else None)
        self.modal_secret = modal_secret or ("ws-sim-" + secrets.token_hex(12) if mode == "modal" else None)
        self._lock = threading.Lock()
        self._results: dict[str, _Recorded] = {}
        self.statuses: Counter[int] = Counter()
        self.proxy_524s = 0
        self.proxy_cuts = 0
        self.redirects = 0
        self.resets = 0

    @property
    def modal_headers(self) -> dict[str, str]:
        """The proxy-auth headers a Modal client must send (empty outside ``modal`` mode)."""
        if self.mode != "modal" or not self.modal_key or not self.modal_secret:
            return {}
        return {"Modal-Key": self.modal_key, "Modal-Secret": self.modal_secret}

    def modal_denied(self, req: SimRequest) -> str | None:
        """Modal's 401 body for a request without the right credentials (``None``: let in)."""
        key, secret = req.header("Modal-Key"), req.header("Modal-Secret")
        if not key or not secret:
            return "modal-http: missing credentials for proxy authorization"
        if key != self.modal_key or secret != self.modal_secret:
            return "modal-http: invalid credentials for proxy authorization"
        return None

    def pump(self, h: SimHandler, req: SimRequest, q: queue.Queue[Event], started: float) -> None:
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
                self._silent(h, req, q, head_sent)
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
                reset(h)
                return
            last_byte = time.monotonic()

    def _silent(self, h: SimHandler, req: SimRequest, q: queue.Queue[Event], head_sent: bool) -> None:
        """The worker said nothing for as long as the front waits: Modal redirects, the proxy
        answers 524 (nothing sent yet) or cuts the connection (mid-body)."""
        if self.mode == "modal":
            self._redirect(h, req, q)
        elif not head_sent:
            with self._lock:
                self.proxy_524s += 1
            self.write_simple(h, 524, CLOUDFLARE_524.encode(), "text/html; charset=UTF-8")
        else:
            with self._lock:
                self.proxy_cuts += 1
            reset(h)

    def _see_other(self, h: SimHandler, req: SimRequest, call_id: str) -> None:
        host = req.header("Host") or f"{self.host}:{self.port}"
        location = f"http://{host}{req.path}?__modal_function_call_id={call_id}"
        self.write_simple(h, 303, b"", "text/plain", [("Location", location)])

    def _redirect(self, h: SimHandler, req: SimRequest, q: queue.Queue[Event]) -> None:
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

        h.server.spawn(collect, f"{self.name}-collect")  # (stop() waits for it)
        self._see_other(h, req, call_id)

    def serve_result(self, h: SimHandler, req: SimRequest, call_id: str, started: float) -> None:
        """GET of a Modal result URL: the recorded reply once it is complete, else another
        303 after ``modal_redirect_after_s``; 404 for an unknown call."""
        with self._lock:
            rec = self._results.get(call_id)
        if rec is None:
            self.write_simple(h, 404, b"modal-http: function call not found", "text/plain")
            return
        if not rec.done.wait(max(0.0, self.modal_redirect_after_s - (time.monotonic() - started))):
            with self._lock:
                self.redirects += 1
            self._see_other(h, req, call_id)
            return
        q: queue.Queue[Event] = queue.Queue()
        for ev in rec.events:
            q.put(ev)
        self.pump(h, req, q, time.monotonic())

    def write_simple(
        self, h: SimHandler, status: int, data: bytes, content_type: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """A whole reply at once (counted in ``statuses``)."""
        with self._lock:
            self.statuses[status] += 1
        write_reply(h, status, data, content_type, headers or ())
