"""A server that hangs up a kept-alive connection after its reply without saying
``Connection: close`` (uvicorn after a 500, as the runpod SDK's local server does; a proxy's
idle cut): the client's next request may be written into that closed connection before the
server's FIN arrives, and read "Server disconnected without sending a response".

The whole kind, on the one client recipe every HTTP transport is built with (``make_client``):
each method the request can be sent with, the server closing the connection only once the
next request is in (the race lost every time, not now and then).  Idempotent methods are sent
again on a fresh connection and served; a ``POST`` (a page's job) is not sent twice by the
transport: it fails as a transient ``connection`` error for the scheduler to decide.  Then the
defect as a user met it: ``ocr health`` after a worker's 500 on the SDK's local server.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ocrclient.errors import TransientError
from ocrclient.testing import SimReply
from ocrclient.testing.runpod_sim import RunPodSimulator
from ocrclient.transports.http import make_client, map_errors
from ocrclient.transports.resend import IDEMPOTENT

from .test_runpod_transport import chat_request, transport_for


class ClosingServer:
    """Answers the first request on each connection with 200 ``ok`` (kept alive, no
    ``Connection: close``), then reads the next request whole and closes without a reply."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen: list[tuple[int, str]] = []  # (connection number, method) of each request read
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            n += 1
            t = threading.Thread(target=self._serve, args=(conn, n), daemon=True)
            self._threads.append(t)
            t.start()

    def _read_request(self, f: Any, n: int) -> bool:
        line = f.readline()
        if not line:
            return False
        length = 0
        while (header := f.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        f.read(length)
        self.seen.append((n, line.split()[0].decode()))
        return True

    def _serve(self, conn: socket.socket, n: int) -> None:
        with conn, conn.makefile("rb") as f:
            if not self._read_request(f, n):
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
            self._read_request(f, n)  # the next request, written into a connection about to close

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[ClosingServer]:
    s = ClosingServer()
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"])
async def test_a_request_on_a_connection_the_server_closed(server: ClosingServer, method: str) -> None:
    client = make_client(timeout=httpx.Timeout(10.0), max_connections=1)
    url = f"http://127.0.0.1:{server.port}/x"
    body: dict[str, Any] = {} if method in ("GET", "HEAD", "OPTIONS") else {"content": b'{"a": 1}'}
    try:
        first = await client.request(method, url, **body)
        assert first.status_code == 200
        if method in IDEMPOTENT:
            again = await client.request(method, url, **body)
            assert again.status_code == 200
            # sent on the first connection (closed unanswered), then once more on a new one
            assert server.seen == [(1, method), (1, method), (2, method)]
        else:
            with pytest.raises(TransientError) as failed, map_errors(f"{method} /x"):
                await client.request(method, url, **body)
            assert failed.value.cause == "reset" and "without sending a response" in failed.value.message
            assert server.seen == [(1, method), (1, method)]  # never sent twice by the transport
    finally:
        await client.aclose()


async def test_health_after_a_workers_500_on_the_sdk_local_server() -> None:
    """The local server answers a crashed generator's job with a 500 and hangs up; health asked
    on the same transport right after is up, every time (it failed now and then in CI)."""

    def handler(body: dict[str, Any]) -> SimReply:
        if "boom" in json.dumps(body):
            raise RuntimeError("worker crashed")
        return SimReply("ok", "stop", 1, 2)

    bad = chat_request()
    bad.body["messages"][0]["content"][1]["text"] = "boom"
    with RunPodSimulator(flavour="local", responder=handler) as sim:
        t = transport_for(sim)
        try:
            for _ in range(25):
                with pytest.raises(TransientError) as crash:
                    await t.send(bad)
                assert crash.value.status == 500
                health = await t.health()
                assert health.ok, health.detail
        finally:
            await t.aclose()
