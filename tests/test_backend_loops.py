"""One loaded backend, used from one event loop after another (or from two at once).

A :class:`~ocrclient.Backend` from ``load_backend`` is the user's to keep and to close; the
docs show it lent to clients (``Client(backend=be)``) and to the shortcuts.  Each blocking client
and each ``ocrclient.convert`` runs on an event loop of its own that ends with it, and a script's
``asyncio.run`` ends its loop too.  What a transport holds that belongs to one loop (an httpx
pool's kept-alive connections, a lock) must not be used from the next: a page must not be sent
over a dead loop's connection, fail as a ``transport_bug`` and be retried.

The whole kind: every transport a backend can have -- the embedded engine, the OpenAI-compatible
API, RunPod ``/runsync`` and ``/run``, the plain-HTTP ``ocular`` server and a pool of two
endpoints -- each used in every way a backend is lent: two blocking clients one after the
other, two ``ocrclient.convert`` calls, two ``asyncio.run`` of ``ocrclient.aconvert``, and two
blocking clients at once from two threads.  Every conversion must succeed at the first attempt
of every page, closing the backend must raise nothing, and no connection may stay open once
the backend is closed (a blocking client lets go of its own loop's connections when it closes).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient import Backend, Document
from ocrclient.testing import DialectResponder, FaultPlan, OcularSimulator, OpenAISimulator
from ocrclient.testing.runpod_sim import RunPodSimulator

from .pdfgen import text_pdf

PAGES = 3
KINDS = ["local", "openai", "runpod-runsync", "runpod-run", "ocular", "pool"]
WAYS = ["clients", "shortcuts", "asyncio-runs", "threads"]


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_pdf(tmp_path_factory.mktemp("loops") / "d.pdf", [[f"page {i} text"] for i in range(PAGES)])


@contextmanager
def _backend(kind: str, tmp_path: Path) -> Iterator[tuple[Backend, list[Any]]]:
    """A loaded backend of ``kind`` and the simulators it talks to."""
    plan = FaultPlan(slots=4, latency_s=(0.01, 0.01))
    with ExitStack() as stack:
        sims: list[Any] = []
        over: dict[str, Any]
        if kind == "local":
            name, over = "local", {}
        elif kind == "openai":
            sim = stack.enter_context(OpenAISimulator(plan=plan, api_key="sk-loops-5566", model="sim/ocr-model"))
            sims.append(sim)
            name, over = "openai", {"base_url": sim.base_url, "api_key": "sk-loops-5566", "model": "sim/ocr-model"}
        elif kind.startswith("runpod"):
            sim = stack.enter_context(RunPodSimulator(plan=plan, responder=DialectResponder("plain")))
            sims.append(sim)
            name = "runpod"
            over = {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key, "model": "m",
                    "transport_options": {"mode": kind.split("-")[1], "poll_interval_s": 0.02}}  # fmt: skip
        elif kind == "ocular":
            sim = stack.enter_context(OcularSimulator(plan=plan, responder=DialectResponder("trocr"), api_key="oc-loops-7788"))
            sims.append(sim)
            name, over = "runpod-trocr", {"base_url": sim.url, "api_key": "oc-loops-7788", "transport": "ocular"}
        else:
            a = stack.enter_context(OpenAISimulator(plan=plan, model="sim/ocr-model"))
            b = stack.enter_context(OpenAISimulator(plan=FaultPlan(slots=4, latency_s=(0.01, 0.01)), model="sim/ocr-model"))
            sims += [a, b]
            prof = tmp_path / "pool.toml"
            members = ",\n".join(
                f'  {{ backend = "openai", base_url = "{s.base_url}", api_key = "{s.api_key}", label = "{label}" }}'
                for s, label in ((a, "a"), (b, "b"))
            )
            prof.write_text(f'transport = "pool"\ndialect = "plain"\nmodel = "sim/ocr-model"\n'
                            f"[transport_options]\nmembers = [\n{members},\n]\n", encoding="utf-8")  # fmt: skip
            name, over = str(prof), {}
        be = ocrclient.load_backend(name, render={"dpi": 40}, **over)
        yield be, sims


def _first_time(doc: Document) -> None:
    """Every page ok, each at its first attempt."""
    assert [p.status for p in doc.pages] == ["ok"] * PAGES
    assert doc.stats.attempts == PAGES, doc.stats.retries_by_cause
    assert not doc.stats.retries_by_cause


def _lend(way: str, be: Backend, pdf: Path) -> None:
    """Convert ``pdf`` twice through ``be``, lent in ``way``."""
    if way == "clients":
        for _ in range(2):
            with ocrclient.Client(be, cache=False) as client:
                _first_time(client.convert(pdf))
    elif way == "shortcuts":
        for _ in range(2):
            _first_time(ocrclient.convert(pdf, backend=be, cache=False))
    elif way == "asyncio-runs":
        for _ in range(2):
            _first_time(asyncio.run(ocrclient.aconvert(pdf, backend=be, cache=False)))
    else:
        clients = [ocrclient.Client(be, cache=False) for _ in range(2)]
        docs: list[Document] = []
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def run(client: ocrclient.Client) -> None:
            try:
                start.wait()
                docs.append(client.convert(pdf))
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in clients:
            c.close()
        assert not errors, errors
        for doc in docs:
            _first_time(doc)


def _settles(value: Callable[[], int], want: int, within: float = 5.0) -> int:
    """``value()`` once it equals ``want`` (or the last one read after ``within`` seconds)."""
    deadline = time.monotonic() + within
    got = value()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.02)
        got = value()
    return got


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_backend_lent_to_one_event_loop_after_another(kind: str, way: str, pdf: Path, tmp_path: Path) -> None:
    """... and every loop's connections are closed as that loop ends, by no garbage collection
    (with a script's ``asyncio.run``, the ended loops' sockets stayed open until the collector
    found them: 11 after 20 runs, out of reach of ``Backend.close``)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        with _backend(kind, tmp_path) as (be, sims):
            _lend(way, be, pdf)
            for sim in sims:  # (a blocking client closes its loop's connections as it closes; asyncio.run's as it ends)
                assert _settles(lambda s=sim: s.connections_open, 0) == 0, f"{kind}: connections left open"
            be.close()
            for sim in sims:
                assert sim.connections_accepted >= 1
                assert _settles(lambda s=sim: s.connections_open, 0) == 0, f"{kind}: connections left open"
    finally:
        if collecting:
            gc.enable()


def test_the_model_cards_wait_on_one_event_loop_after_another() -> None:
    """The OpenAI transport's wait for ``/v1/models`` belongs to no loop: requests waiting for the
    cards on one loop, then on the next (the server down both times), each get an empty answer,
    not an error (an ``asyncio.Lock`` waited on one loop cannot be waited on another)."""
    from ocrclient.transports.openai import OpenAITransport

    with OpenAISimulator(model="sim/ocr-model") as sim:
        base = sim.base_url
    t = OpenAITransport(base, api_key="sk-loops-9911", model="sim/ocr-model")  # the port refuses now

    async def waiters() -> list[dict[str, int | None]]:
        t._models_checked_at = -1e9  # the 60 s pause after a failed read: over
        return await asyncio.gather(*(t._cards() for _ in range(3)))

    for _ in range(3):
        assert asyncio.run(waiters()) == [{}, {}, {}]
    # a lock that has waited holds its loop: only the last loop's is kept, not one per loop
    assert len(t._models_locks.loops()) == 1
    asyncio.run(t.aclose())


def test_one_http_client_shared_by_threads_each_running_loop_after_loop() -> None:
    """A transport's HTTP client serves threads that each run event loop after event loop, at
    once (two blocking clients in two threads, each call its own loop): no error from one
    thread's use while another adds or drops its loop's pool, and no more pools kept than loops
    alive.  Thread switches are forced as often as the interpreter allows."""
    import sys

    import httpx

    from ocrclient.transports.http import make_client

    client = make_client(timeout=httpx.Timeout(5), max_connections=4)
    errors: list[BaseException] = []

    async def use() -> None:
        client.build_request("GET", "http://127.0.0.1:9/")
        await client.release()  # type: ignore[attr-defined]
        client.build_request("GET", "http://127.0.0.1:9/")

    def worker() -> None:
        try:
            for _ in range(150):
                asyncio.run(use())
                client.build_request("GET", "http://127.0.0.1:9/")  # outside any loop
        except BaseException as exc:
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    asyncio.run(client.aclose())
    assert client._clients.loops() == []  # type: ignore[attr-defined]


def test_runpod_cancels_of_one_loop_while_another_closes() -> None:
    """The RunPod transport's cancels still going belong to the loops that started them: a
    blocking client closing on its loop (which waits for its own) while another thread's loop
    starts and ends cancels of its own raises nothing.  Thread switches are forced as often as
    the interpreter allows."""
    import sys

    from ocrclient.transports.runpod import RunPodTransport

    with RunPodSimulator() as sim:
        t = RunPodTransport(endpoint_id=sim.endpoint_id, api_key=sim.api_key, base_url=sim.base_url, mode="run")
        stop = threading.Event()

        def other_loop() -> None:  # a run stopping on another client's loop: its cancels go on
            async def cancels() -> None:
                while not stop.is_set():
                    await asyncio.gather(*(t._cancel_shielded(f"job-{i}", wait=0) for i in range(20)))
                    await asyncio.sleep(0)

            asyncio.run(cancels())

        async def closing() -> None:
            for _ in range(3000):
                await t._cancels_sent()

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        other = threading.Thread(target=other_loop)
        other.start()
        try:
            for _ in range(3):
                asyncio.run(closing())
        finally:
            stop.set()
            other.join()
            sys.setswitchinterval(interval)
        asyncio.run(t.aclose())
