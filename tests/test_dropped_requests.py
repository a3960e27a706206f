"""A server that takes a page's request and hangs up before any reply is a server answering,
not an endpoint with no server behind it: each such request is an attempt of the page's
``max_attempts``, retried with the ordinary backoff, and no "no server answers" warning is said.

It was counted as a connection that found no server (``httpx`` says "Server disconnected without
sending a response" for it as for a kept-alive connection the server had just closed): its tries
were free, backed off up to a minute each past ``max_attempts``, under the outage warning -- one
page of ``runpod-chandra`` against a simulator dropping 85% of its jobs took 188 s.  The whole
kind: every transport that can meet it, on every request of a page (RunPod's submits in both
modes, its status polls; the OpenAI path when its server drops the request)."""

from __future__ import annotations

import re
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.testing import FaultPlan, RunPodSimulator

from .pdfgen import text_pdf

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.1}


def _convert(pdf: Path, **kw: Any) -> tuple[Any, list[str], float]:
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        doc = ocrclient.convert(pdf, cache=False, max_attempts=3, scheduler_options=FAST, **kw)
    return doc, [str(w.message) for w in said], time.monotonic() - started


@pytest.mark.parametrize("mode", ["run", "runsync"])
def test_a_runpod_endpoint_dropping_every_job_spends_the_pages_attempts(mode: str, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    with RunPodSimulator(plan=FaultPlan(rates={"reset": 1.0})) as rp:
        doc, said, took = _convert(pdf, backend="runpod", dialect="plain", model="m", base_url=rp.base_url,
                                   endpoint_id=rp.endpoint_id, api_key=rp.api_key,
                                   transport_options={"mode": mode, "poll_interval_s": 0.05})  # fmt: skip
        submits = rp.requests["run"] + rp.requests["runsync"]
    [page] = doc.pages
    assert page.status == "failed" and page.error is not None and page.error.cause == "reset", page.error
    assert page.attempts == 3 == submits, (page.attempts, submits)
    assert not any("no server answers" in s for s in said), said
    assert took < 20, took


class _Dropping:
    """A server that reads each request whole and closes the connection without a byte of reply
    (a request left unread makes the kernel answer with a reset, which the client reads as a
    connection that failed)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.seen = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                while length and len(body) < int(length[1]) and (chunk := conn.recv(65536)):
                    body += chunk
                if data.startswith(b"POST"):
                    self.seen += 1

    def close(self) -> None:
        self.sock.close()


def test_an_openai_server_dropping_every_request_spends_the_pages_attempts(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    server = _Dropping()
    try:
        doc, said, took = _convert(pdf, backend="openai", dialect="plain", model="m", api_key="k",
                                   base_url=f"http://127.0.0.1:{server.port}/v1")  # fmt: skip
    finally:
        server.close()
    [page] = doc.pages
    assert page.status == "failed" and page.error is not None and page.error.cause == "reset", page.error
    assert page.attempts == 3 == server.seen, (page.attempts, server.seen)
    assert not any("no server answers" in s for s in said), said
    assert took < 20, took
