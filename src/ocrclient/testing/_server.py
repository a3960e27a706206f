"""The loopback HTTP server every simulator runs on, and the ways a reply is written or cut.

Why ``http.server.ThreadingHTTPServer``: ``ocrclient.testing`` must work with the core
dependencies only (FastAPI/uvicorn are dev extras), the stdlib server needs no event loop of its
own (so it runs beside pytest-asyncio's loop without interference), and one thread per
connection is plenty for loopback tests.

* :class:`LoopbackServer` serves one simulator (its ``owner``) in a daemon thread; it tracks its
  open connections so that a restart or stop can cut them all, idle keep-alive ones included
  (a stopped server answers on none and leaves no thread behind), and it
  stays quiet about clients that hang up (cancelled sends, timeouts, resets are normal here).
* :class:`SimHandler` speaks HTTP/1.1 with ``TCP_NODELAY`` and hands each request to
  :meth:`SimHandler.respond` (a simulator's handler overrides it).
* :func:`read_body`, :func:`write_reply` / :func:`write_json`, :func:`write_chunk` /
  :func:`end_chunks` (``Transfer-Encoding: chunked``), and the three ways a connection ends
  early: :func:`hang_up` (FIN: the server goes away), :func:`reset` (a TCP reset, as a dying
  process or a proxy cut).

Example (a server that answers every request with ``{"ok": true}``)::

    >>> class Ok(SimHandler):
    ...     def respond(self) -> None:
    ...         read_body(self)
    ...         write_json(self, 200, {"ok": True})
    >>> server = LoopbackServer.start(None, Ok, name="ok-sim")
    >>> import urllib.request
    >>> urllib.request.urlopen(f"http://127.0.0.1:{server.port}/").read()
    b'{"ok": true}'
    >>> server.stop()
"""

from __future__ import annotations

import abc
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

__all__ = [
    "LoopbackServer",
    "ServerOwner",
    "SimHandler",
    "end_chunks",
    "hang_up",
    "read_body",
    "reset",
    "write_chunk",
    "write_json",
    "write_reply",
]

#: what a client that hangs up raises in the thread serving it
HANGUPS = (TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class LoopbackServer(ThreadingHTTPServer):
    """One run of a simulator's server: a thread per connection, each connection tracked."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    #: the listen backlog of a real server (uvicorn 2048, nginx 511), not socketserver's 5: with
    #: 5, fifty clients connecting at once overflowed it and some saw their connection reset
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int], handler: type[SimHandler], owner: Any, held: socket.socket | None = None) -> None:
        super().__init__(address, handler, bind_and_activate=held is None)
        if held is not None:  # the port a restart kept (hold_port): listened on again
            self.socket.close()
            self.socket = held
            self.server_address = held.getsockname()
            self.server_activate()
        #: the simulator whose requests this server serves (its handler reads it)
        self.owner = owner
        self.handler = handler
        #: set when this run ends (stop, restart): the simulator's workers watch it while they wait
        self.cut = threading.Event()
        self.thread: threading.Thread | None = None
        self.name = "sim"
        self.poll_interval = 0.05
        #: the port :meth:`close` kept bound for :meth:`relisten` (``keep_port``)
        self._held: socket.socket | None = None
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads_alive: set[threading.Thread] = set()
        #: TCP connections accepted by this run (a client that reuses its connections opens
        #: as many as it has requests in flight at once, not one per request)
        self.accepted = 0

    @classmethod
    def start(
        cls, owner: Any, handler: type[SimHandler], *, host: str = "127.0.0.1", port: int = 0,
        poll_interval: float = 0.05, name: str = "sim", held: socket.socket | None = None,
    ) -> LoopbackServer:
        """Listen on ``host:port`` (0: any free port), or on the socket ``held`` for it
        (:func:`hold_port`), and serve in a daemon thread."""
        server = cls((host, port), handler, owner, held)
        server.name, server.poll_interval = name, poll_interval
        server.thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True, name=name
        )
        server.thread.start()
        return server

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def stop(self, join_s: float = 2.0) -> None:
        """Stop as the process would end: the port refuses from now on, every open connection
        (idle keep-alive ones included) is reset, and the threads serving them end, waited for
        up to ``join_s`` seconds in all.  (It closed the port only: a client that kept its
        connection alive was still answered by a stopped simulator, and its handler thread
        lived on until the client hung up.)"""
        self.close()
        self.join(join_s)

    def close(self, keep_port: bool = False) -> None:
        """The first half of :meth:`stop`: :attr:`cut` set, the port closed, every open
        connection reset; what the threads serving them write from now on goes nowhere.  With
        ``keep_port`` (a restart) the port stays bound, not listening (:func:`hold_port`), until
        :meth:`relisten` listens on it again or :meth:`release_port` lets it go."""
        self.cut.set()
        self.shutdown()  # accept no more connections (every accepted one is tracked by now)
        self.server_close()
        if keep_port:
            self._held = hold_port(str(self.server_address[0]), self.port)  # (refusing connections meanwhile)
        self.cut_connections()

    def relisten(self) -> LoopbackServer:
        """The next run of this closed server (:meth:`close` with ``keep_port``): the same
        simulator, handler, name and port, served anew; on a new bind of the port if another
        had taken it meanwhile."""
        held, self._held = self._held, None
        host = str(self.server_address[0])
        deadline = time.monotonic() + 2.0
        while held is None and time.monotonic() < deadline:  # (lost as it closed: a socket that took the port
            time.sleep(0.05)  # may be one going away; seen once in a loaded suite)
            held = hold_port(host, self.port)
        return type(self).start(self.owner, self.handler, host=host, port=self.port, poll_interval=self.poll_interval,
                                name=self.name, held=held)  # fmt: skip

    def release_port(self) -> None:
        """Let go of the port :meth:`close` kept (the simulator stopped while it was down)."""
        held, self._held = self._held, None
        if held is not None:
            held.close()

    def join(self, join_s: float = 2.0) -> None:
        """The second half of :meth:`stop`: wait up to ``join_s`` seconds in all for the
        threads of this run (the one accepting connections, and :meth:`threads`) to end."""
        deadline = time.monotonic() + join_s
        for thread in [*([self.thread] if self.thread is not None else []), *self.threads()]:
            if thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def threads(self) -> list[threading.Thread]:
        """The threads of this run still alive: those serving connections, and those
        :meth:`spawn` started."""
        with self._conn_lock:
            return [t for t in self._threads_alive if t.is_alive()]

    def spawn(self, target: Any, name: str) -> threading.Thread:
        """Start a daemon thread belonging to this run (:meth:`stop` waits for it)."""
        thread = threading.Thread(target=target, daemon=True, name=name)
        with self._conn_lock:
            self._threads_alive = {t for t in self._threads_alive if t.is_alive()}
            self._threads_alive.add(thread)
        thread.start()
        return thread

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
            self.accepted += 1
        self.spawn(lambda: self.process_request_thread(request, client_address), f"{self.name}-conn")

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def open_connections(self) -> int:
        """Connections accepted and not yet ended."""
        with self._conn_lock:
            return len(self._connections)

    def cut_connections(self) -> None:
        """Reset every open connection, idle or mid-reply, as a dying process would."""
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            _reset_socket(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (cancelled sends, timeouts, resets) are normal here: stay quiet;
        anything else is a simulator bug, reported as the stdlib does."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class ServerOwner(abc.ABC):
    """What a simulator holding a :class:`LoopbackServer` gets: a context manager that starts
    and stops it, and its port, still read after the stop (a test's teardown that logs
    ``sim.base_url`` works for every simulator alike)."""

    _server: LoopbackServer | None
    _last_port: int | None = None

    @abc.abstractmethod
    def start(self) -> Self: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is not None:
            return self._server.port
        if self._last_port is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return self._last_port

    def _stop_server(self) -> None:
        """Stop the server and let it go, its port kept for :attr:`port`."""
        if self._server is not None:
            self._last_port = self._server.port
            self._server.stop()
            self._server = None

    def clock(self) -> float:
        """The simulator's clock (``time.monotonic``): what its service deadlines and job times
        are counted on."""
        return time.monotonic()

    @property
    def connections_accepted(self) -> int:
        """TCP connections the simulator accepted since it started (or last restarted): a
        client that keeps its connections alive opens no more than it has requests in flight."""
        return self._server.accepted if self._server is not None else 0

    @property
    def connections_open(self) -> int:
        """TCP connections open now, as the simulator sees them: once a client has closed its
        connections (its transport closed, its event loop's pool let go) this falls to 0 as
        the simulator reads each one's end."""
        return self._server.open_connections() if self._server is not None else 0


class SimHandler(BaseHTTPRequestHandler, abc.ABC):
    """HTTP/1.1 with ``TCP_NODELAY``; every request goes to :meth:`respond`."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle + the client's
    # delayed ACK add ~40 ms to every reply (real servers such as uvicorn set it too)
    disable_nagle_algorithm = True
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the counters
        pass

    @abc.abstractmethod
    def respond(self) -> None:
        """Answer the request (``self.command``, ``self.path``, ``self.headers``)."""

    def _any(self) -> None:
        try:
            self.respond()
        except HANGUPS:  # the client hung up
            self.close_connection = True

    do_GET = _any
    do_POST = _any


def read_body(h: BaseHTTPRequestHandler, limit: int | None = None) -> tuple[bytes, bool]:
    """``(body, too_large)``: the request body by its ``Content-Length``, or its chunks
    (``Transfer-Encoding: chunked``, a streamed upload: vLLM's server and RunPod's gateway take
    one; it was read as no body, a false 400); one over ``limit`` is read and dropped (so the
    client can read the 413 that follows) and ``b""`` returned."""
    if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
        body = _read_chunks(h)
        return (b"", True) if limit is not None and len(body) > limit else (body, False)
    length = int(h.headers.get("Content-Length") or 0)
    if limit is not None and length > limit:
        remaining = length
        while remaining > 0:
            chunk = h.rfile.read(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
        return b"", True
    return (h.rfile.read(length) if length else b""), False


def _read_chunks(h: BaseHTTPRequestHandler) -> bytes:
    """A chunked request body, joined (its trailer read and dropped)."""
    parts: list[bytes] = []
    while True:
        size_line = h.rfile.readline(1024)
        try:
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError:
            break
        if size == 0:
            while h.rfile.readline(1024).strip():  # the trailer, to its blank line
                pass
            break
        parts.append(h.rfile.read(size))
        h.rfile.readline(8)  # the chunk's CRLF
    return b"".join(parts)


def hold_port(host: str, port: int) -> socket.socket | None:
    """``host:port``, just closed by a server that restarts, kept bound and not listening: it
    refuses connections as a server that is down does, and no one else takes it meanwhile (on
    a busy machine another server's bind to port 0, or a client's ephemeral port, took it, and
    the server could not come back: "Address already in use").  ``None`` if it was taken
    already; :meth:`LoopbackServer.start` listens on it again (``held``)."""
    sock = socket.socket(LoopbackServer.address_family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (past its connections' TIME_WAIT)
        sock.bind((host, port))
    except OSError:
        sock.close()
        return None
    return sock


def write_reply(
    h: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """A whole reply with its ``Content-Length``."""
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(data)))
    for name, value in headers:
        h.send_header(name, value)
    h.end_headers()
    if data:
        h.wfile.write(data)
    h.wfile.flush()


def write_json(
    h: BaseHTTPRequestHandler, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()
) -> None:
    write_reply(h, status, json.dumps(obj).encode(), "application/json", headers)


def write_chunk(h: BaseHTTPRequestHandler, data: bytes) -> None:
    """One chunk of a ``Transfer-Encoding: chunked`` body (an empty one ends the body)."""
    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def end_chunks(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"0\r\n\r\n")
    h.wfile.flush()


def hang_up(h: BaseHTTPRequestHandler) -> None:
    """The server goes away: what was written is sent, then a FIN, and no more bytes."""
    h.close_connection = True
    with suppress(OSError):
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_WR)


def reset(h: BaseHTTPRequestHandler) -> None:
    """Drop the connection with a TCP reset, mid-reply."""
    h.close_connection = True
    with suppress(OSError):
        h.wfile.flush()
    _reset_socket(h.connection)


def _reset_socket(conn: socket.socket) -> None:
    """Make the connection end with a TCP reset (on close) and wake its reader now."""
    with suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
