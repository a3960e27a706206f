"""A stopped simulator is gone, as a stopped server is: it answers nothing on any connection,
the kept-alive ones included, and leaves no thread behind.  ``stop()`` closed the listening
port only: a client that kept its connection alive (httpx, the openai SDK) still got 200 chat
completions from it, RunPod's ``/run`` took jobs that stayed ``IN_QUEUE`` forever, and each
connection's handler thread lived on until the client hung up."""

from __future__ import annotations

import errno
import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ocrclient.testing import FaultPlan, OcularSimulator, OpenAISimulator, SimReply
from ocrclient.testing.faults import echo_responder
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
    caller, outcome = _in_flight(sim, request)
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


# -- restart(), consistent with stop() ---------------------------------------------------------


def _old_threads(sim: Any) -> list[threading.Thread]:
    """The threads of the simulator's server run now (accepting, serving connections, their
    workers), and RunPod's slot threads."""
    server = sim._server
    threads = [server.thread, *server.threads()]
    return threads + list(getattr(sim, "_threads", []))


def _idle_request(kind: str, sim: Any) -> Request:
    """A request answered at once whatever the plan (the page requests take 30 s here)."""
    if kind == "runpod-local":
        return "POST", "/status/test-none", None, {}
    if kind == "runpod":
        return "GET", f"/v2/{sim.endpoint_id}/health", None, {"Authorization": f"Bearer {sim.api_key}"}
    return "GET", "/health", None, dict(getattr(sim, "modal_headers", None) or {})


def _in_flight(sim: Any, request: Request, serving: Callable[[], bool] | None = None) -> tuple[threading.Thread, list[Any]]:
    """``request`` sent from a thread; returns once the simulator is serving it."""
    serving = serving or (lambda: _busy(sim))
    outcome: list[Any] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
        try:
            reply = _send(conn, request)
            outcome.append((reply.status, reply.read()))
        except (http.client.HTTPException, OSError) as exc:
            outcome.append(exc)
        finally:
            conn.close()

    caller = threading.Thread(target=client)
    caller.start()
    deadline = time.monotonic() + 5
    while not serving() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert serving()
    return caller, outcome


@pytest.mark.parametrize("kind", ["openai", "modal", "ocular", "runpod-local"])
def test_restart_ends_the_old_servers_threads_and_cuts_its_connections(kind: str) -> None:
    """``restart()`` is a stop and a start on the same port: a request in flight and an idle
    kept-alive connection both end with a connection error (no reply, no hang), every thread of
    the old server has ended when it returns (it waited for none of those serving connections,
    and the RunPod simulator's slot threads went on: the one still in its responder, which no
    cut interrupts, outlived it), and a new connection is then served."""
    make, request_of = SIMULATORS[kind]
    sim = make()
    entered = threading.Event()

    def busy_responder(body: dict[str, Any]) -> SimReply:  # the model's work: uninterruptible
        entered.set()
        time.sleep(0.5)
        return echo_responder(body)

    sim.responder = busy_responder
    sim.start()
    try:
        port, request, idle_request = sim.port, request_of(sim), _idle_request(kind, sim)
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        reply = _send(idle, idle_request)
        reply.read()
        assert reply.status == 200 and not reply.will_close, kind
        caller, outcome = _in_flight(sim, request, entered.is_set)
        old = _old_threads(sim)
        sim.responder = echo_responder  # (what the server serves once back)
        started = time.monotonic()
        sim.restart(0.0)
        assert time.monotonic() - started < 3.0, kind
        assert [t.name for t in old if t.is_alive()] == [], kind  # ended, not ending
        caller.join(timeout=5)
        assert not caller.is_alive() and isinstance(outcome[0], http.client.HTTPException | OSError), outcome
        with pytest.raises((http.client.HTTPException, OSError)):  # the kept-alive one: cut
            _send(idle, idle_request).read()
        idle.close()
        again = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            served = _send(again, request)
            assert served.status == 200 and served.read(), kind
        finally:
            again.close()
    finally:
        sim.stop()


@pytest.mark.parametrize("kind", ["openai", "modal", "ocular", "runpod-local"])
def test_a_restarting_server_refuses_connections_and_keeps_its_port(kind: str) -> None:
    """While a restart is down its port refuses connections, and no one else can take it: on a
    busy machine (another server's bind to port 0, a client's ephemeral port) it was taken now
    and then in the down time, and the server could not come back ("Address already in use").
    A bind to the port meanwhile is refused, and the server comes back on it."""
    make, request_of = SIMULATORS[kind]
    sim = make()
    sim.start()
    try:
        port = sim.port
        restarting = threading.Thread(target=sim.restart, args=(1.0,), daemon=True)
        restarting.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # (until the old server has closed)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                break
            except ConnectionResetError:  # (taken into the closing server's backlog, then reset)
                pass
            time.sleep(0.01)
        else:
            raise AssertionError("the port never refused a connection")
        intruder = socket.socket()
        try:
            with pytest.raises(OSError) as taken:
                intruder.bind(("127.0.0.1", port))
            assert taken.value.errno == errno.EADDRINUSE
        finally:
            intruder.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        restarting.join(timeout=10)
        assert not restarting.is_alive()
        again = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            served = _send(again, request_of(sim))
            assert served.status == 200 and served.read(), kind
        finally:
            again.close()
    finally:
        sim.stop()


def test_a_runpod_endpoint_restart_ends_its_workers_and_keeps_the_api_connections() -> None:
    """RunPod's API does not restart with an endpoint: a kept-alive connection goes on being
    answered, the ``/runsync`` held answers the unfinished job at once (then 404: lost), and the
    endpoint's old slot threads have ended when ``restart()`` returns, new ones serving."""
    before = set(threading.enumerate())
    sim = RunPodSimulator(plan=FaultPlan(latency_s=30.0, slots=2)).start()
    try:
        idle_request = _idle_request("runpod", sim)
        idle = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
        assert _send(idle, idle_request).read()
        method, path, body, headers = _runpod(sim)
        caller, outcome = _in_flight(sim, (method, path.replace("/run", "/runsync"), body, headers))
        workers = list(sim._threads)
        sim.plan = FaultPlan(latency_s=0.0, slots=2)
        sim.restart()
        assert [t.name for t in workers if t.is_alive()] == []
        assert len(sim._threads) == 2 and all(t.is_alive() for t in sim._threads)
        caller.join(timeout=5)
        status, raw = outcome[0]
        held = json.loads(raw)
        assert status == 200 and held["status"] in ("IN_QUEUE", "IN_PROGRESS"), held
        lost = _send(idle, ("GET", f"/v2/{sim.endpoint_id}/status/{held['id']}", None, headers))
        assert lost.status == 404 and lost.read()  # on the same connection: kept
        done = _send(idle, (method, path.replace("/run", "/runsync"), {"input": {"x": 3}}, headers))
        assert done.status == 200 and json.loads(done.read())["status"] == "COMPLETED"
        idle.close()
    finally:
        sim.stop()
    assert _new_threads(before) == []


@pytest.mark.parametrize("kind", sorted(SIMULATORS))
def test_every_simulator_still_says_where_it_was_after_stop(kind: str) -> None:
    """``port``, ``url`` and ``base_url`` read after ``stop()`` (a test's teardown logging
    them) gave the last address on the RunPod simulator and raised ``RuntimeError: ... not
    started`` on the others; before ``start()`` each raises on every simulator alike."""
    make, _ = SIMULATORS[kind]
    sim = make()
    names = [n for n in ("port", "url", "base_url") if hasattr(type(sim), n)]
    for name in names:
        with pytest.raises(RuntimeError, match="not started"):
            getattr(sim, name)
    with sim:
        where = {n: getattr(sim, n) for n in names}
    assert {n: getattr(sim, n) for n in names} == where
    assert "port" in names and str(where["port"]) in where.get("base_url", where.get("url", ""))


def test_a_restart_whose_port_another_socket_took_as_it_closed_comes_back_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart keeps its port bound while down; when another socket took it in the moment the
    server closed (a loaded machine's ephemeral port: seen once in the suite), the restart waited
    for nothing and failed with "Address already in use".  It now takes the port back once the
    other socket lets it go."""
    from ocrclient.testing import _server

    real = _server.hold_port
    squatters: list[socket.socket] = []

    def taken_first(host: str, port: int) -> socket.socket | None:
        if not squatters:  # (as the server closed: another socket binds the port for 0.3 s)
            other = socket.socket()
            other.bind((host, port))
            squatters.append(other)
            threading.Timer(0.3, other.close).start()
            return None
        return real(host, port)

    monkeypatch.setattr(_server, "hold_port", taken_first)
    with OpenAISimulator(model="m") as sim:
        port = sim.port
        sim.restart(0.0)
        assert sim.port == port and squatters
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {sim.api_key}"})
        assert conn.getresponse().status == 200
        conn.close()
