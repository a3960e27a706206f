"""A stopped simulator is gone, as a stopped server is: it answers nothing on any connection,
the kept-alive ones included, and leaves no thread behind.  ``stop()`` closed the listening
port only: a client that kept its connection alive (httpx, the openai SDK) still got 200 chat
completions from it, RunPod's ``/run`` took jobs that stayed ``IN_QUEUE`` forever, and each
connection's handler thread lived on until the client hung up."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ocrclient.testing import FaultPlan, OcularSimulator, OpenAISimulator
from ocrclient.testing.hostile import HostileServer
from ocrclient.testing.runpod_sim import RunPodSimulator

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}

#: (simulator, method, path, body, headers) of a request it answers 200
Request = tuple[str, str, Any, dict[str, str]]


def _openai(sim: Any) -> Request:
    auth = {"Authorization": f"Bearer {sim.api_key}"} if sim.api_key else {}
    return "POST", "/v1/chat/completions", CHAT, {**auth, **(sim.modal_headers or {})}


def _runpod(sim: Any) -> Request:
    if sim.flavour == "local":
        return "POST", "/runsync", {"input": {"x": 1}}, {}
    return "POST", f"/v2/{sim.endpoint_id}/run", {"input": {"x": 1}}, {"Authorization": f"Bearer {sim.api_key}"}


SIMULATORS: dict[str, tuple[Callable[[], Any], Callable[[Any], Request]]] = {
    "openai": (lambda: OpenAISimulator(), _openai),
    "openai-proxy": (lambda: OpenAISimulator(mode="proxy"), _openai),
    "modal": (lambda: OpenAISimulator(mode="modal"), _openai),
    "ocular": (lambda: OcularSimulator(), lambda sim: ("POST", "/extract_text", {"image": "aW1hZ2U="}, {})),
    "runpod": (lambda: RunPodSimulator(), _runpod),
    "runpod-local": (lambda: RunPodSimulator(flavour="local"), _runpod),
    "hostile": (lambda: HostileServer("huge_body", healthy_first=10),
                lambda sim: ("POST", "/v1/chat/completions", CHAT, {"Authorization": f"Bearer {sim.api_key}"})),
}


def _send(conn: http.client.HTTPConnection, request: Request) -> http.client.HTTPResponse:
    method, path, body, headers = request
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **headers})
    return conn.getresponse()


def _new_threads(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


@pytest.mark.parametrize("kind", sorted(SIMULATORS))
def test_a_stopped_simulator_answers_nothing_on_a_kept_alive_connection(kind: str) -> None:
    make, request_of = SIMULATORS[kind]
    before = set(threading.enumerate())
    sim = make().start()
    request = request_of(sim)
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        reply = _send(conn, request)
        reply.read()
        assert reply.status == 200, (kind, reply.status)
        assert not reply.will_close, kind  # the connection is kept alive
        sock = conn.sock
        sim.stop()
        with pytest.raises((http.client.HTTPException, OSError)):  # no reply: a reset or an end
            _send(conn, request).read()
        assert conn.sock is None or conn.sock is sock  # (the same connection, not a new one)
    finally:
        conn.close()
        sim.stop()
    assert _new_threads(before) == [], kind  # nothing left once stop() returned
    if kind == "runpod":
        assert sim.jobs_submitted == 1  # the job sent after stop() was not taken


@pytest.mark.parametrize("kind", ["openai", "modal", "ocular", "runpod", "runpod-local"])
def test_stop_ends_a_request_in_flight_and_its_threads(kind: str) -> None:
    """A request the simulator is still serving (a 30 s service time, a /runsync held) is cut
    by stop(), which returns in well under a second with every thread of it ended."""
    make, request_of = SIMULATORS[kind]
    before = set(threading.enumerate())
    sim = make()
    sim.plan = FaultPlan(latency_s=30.0)
    if hasattr(sim, "modal_redirect_after_s"):
        sim.modal_redirect_after_s = 60.0
    sim.start()
    request = request_of(sim)
    if kind == "runpod":
        request = (request[0], request[1].replace("/run", "/runsync"), *request[2:])
    outcome: list[Any] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
        try:
            outcome.append(_send(conn, request).read())
        except (http.client.HTTPException, OSError) as exc:
            outcome.append(exc)
        finally:
            conn.close()

    caller = threading.Thread(target=client)
    caller.start()
    deadline = time.monotonic() + 5
    while not _busy(sim) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _busy(sim), kind
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2.5, kind
    caller.join(timeout=5)
    assert not caller.is_alive() and len(outcome) == 1, kind
    assert _new_threads(before) == [], kind


def _busy(sim: Any) -> bool:
    if isinstance(sim, RunPodSimulator):
        return sim.running_now > 0
    return sim.max_active > 0
