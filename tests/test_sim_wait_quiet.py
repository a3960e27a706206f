"""``wait_quiet``: a client killed mid-run may have written requests the server reads a moment
later; once ``wait_quiet`` returns, every request it wrote is counted (the crash tests take their
"before" snapshot after it)."""

from __future__ import annotations

import base64
import json
import socket
import time

from ocrclient.testing import FaultPlan, OpenAISimulator

PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


def _request(sim: OpenAISimulator, n: int) -> bytes:
    body = json.dumps({
        "model": sim.model,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": f"page {n}"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        ]}],
    }).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {sim.host}:{sim.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Authorization: Bearer {sim.api_key}\r\n\r\n"
    ).encode()
    return head + body


def test_requests_written_by_a_dead_client_are_counted_once_quiet() -> None:
    sim = OpenAISimulator(plan=FaultPlan(seed=1, latency_s=0.4, slots=2)).start()
    try:
        for n in range(5):  # each written whole, then the socket dies (kill -9 closes it)
            with socket.create_connection((sim.host, sim.port)) as s:
                s.sendall(_request(sim, n))
        # the requests are held in their 0.4 s latency: not quiet yet
        assert sim.wait_quiet(quiet_s=0.1, timeout_s=0.05) is False
        t0 = time.monotonic()
        assert sim.wait_quiet(quiet_s=0.2) is True
        assert time.monotonic() - t0 >= 0.2
        assert sim.requests["POST /v1/chat/completions"] == 5
        assert sum(sim.requests_by_key.values()) == 5
    finally:
        sim.stop()


def test_quiet_server_returns_after_the_quiet_period() -> None:
    sim = OpenAISimulator().start()
    try:
        t0 = time.monotonic()
        assert sim.wait_quiet(quiet_s=0.1) is True
        assert time.monotonic() - t0 < 1.0
    finally:
        sim.stop()


def test_a_fixed_latency_is_one_number_and_a_bad_one_is_refused() -> None:
    """``FaultPlan(latency_s=0.05)`` was taken as given, and every simulator worker died
    unpacking it: each request then waited for the client's timeout, with no word why."""
    import pytest

    assert FaultPlan(latency_s=0.05).latency_s == (0.05, 0.05)
    assert FaultPlan(latency_s=(0.1, 0.2)).latency_s == (0.1, 0.2)
    for bad in ((0.3, 0.1), -1.0):
        with pytest.raises(ValueError, match="latency_s"):
            FaultPlan(latency_s=bad)
