"""RunPod ``/runsync`` (the profiles' default), RunPod's rate limits and what a run keeps at the
endpoint: every GPU slot fed without a poll delay, no job resubmitted, no job queued beyond
``--concurrency``, a 429 on any route a slow-down and never a failed page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import ocrclient
from ocrclient.config import resolve_config
from ocrclient.errors import TransientError
from ocrclient.registry import load_backend
from ocrclient.testing import FaultPlan
from ocrclient.testing.runpod_limits import DOCUMENTED, RateWindow
from ocrclient.testing.runpod_sim import RunPodSimulator
from ocrclient.transports.base import ModelRequest
from ocrclient.transports.pool import PoolTransport
from ocrclient.transports.runpod import RunPodTransport
from ocrclient.transports.runpod_rate import DOCUMENTED_LIMITS, EndpointGate

from .pdfgen import blank_pdf

RUNPOD_PROFILES = [
    "runpod", "runpod-chandra", "runpod-deepseek-ocr", "runpod-olmocr", "runpod-rolmocr", "runpod-trocr",
]  # fmt: skip


@pytest.fixture
def sims() -> Iterator[Callable[..., RunPodSimulator]]:
    started: list[RunPodSimulator] = []

    def make(**kwargs: Any) -> RunPodSimulator:
        sim = RunPodSimulator(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def page_request(n: int, timeout_s: float = 10.0) -> ModelRequest:
    body = {
        "model": "sim-model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": f"page {n}"}]}],
        "max_tokens": 64,
    }
    return ModelRequest(body=body, timeout_s=timeout_s)


def transport(sim: RunPodSimulator, **kwargs: Any) -> RunPodTransport:
    opts: dict[str, Any] = {"poll_interval_s": 0.02, "max_poll_interval_s": 0.1, **kwargs}
    return RunPodTransport(endpoint_id=sim.endpoint_id, api_key=sim.api_key, base_url=sim.base_url, **opts)


# ---------------------------------------------------------------------------------------------
# the default and the wire
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", RUNPOD_PROFILES)
def test_every_shipped_runpod_serverless_profile_defaults_to_runsync(profile: str) -> None:
    assert resolve_config(profile).transport_options["mode"] == "runsync"


async def test_runsync_finishes_a_short_job_in_one_request(sims: Callable[..., RunPodSimulator]) -> None:
    sim = sims(plan=FaultPlan(latency_s=(0.05, 0.05)))
    t = transport(sim)
    assert t.mode == "runsync"  # the transport's own default too
    try:
        reply = await t.send(page_request(1))
    finally:
        await t.aclose()
    assert reply.text and reply.job_id and reply.job_id.startswith("sync-")
    assert sim.requests["runsync"] == 1 and sim.requests["status"] == 0 and sim.jobs_submitted == 1


async def test_a_job_outlasting_the_hold_goes_on_by_its_id_never_resubmitted(
    sims: Callable[..., RunPodSimulator],
) -> None:
    """``?wait=1000``: RunPod holds the request 1 s, answers the unfinished job with its id; the
    transport polls that id until the job ends -- one job, one ``/runsync``."""
    sim = sims(plan=FaultPlan(latency_s=(1.4, 1.4)))
    t = transport(sim, runsync_wait_ms=1000)
    started = time.monotonic()
    try:
        reply = await t.send(page_request(1))
    finally:
        await t.aclose()
    assert reply.text and reply.job_id and sim.job(reply.job_id) is not None
    assert sim.requests["runsync"] == 1 and sim.requests["status"] >= 1
    assert sim.jobs_submitted == 1 and sim.cancels_received == 0
    assert 1.3 <= time.monotonic() - started < 3.0


async def test_the_simulator_holds_runsync_as_runpod_does(sims: Callable[..., RunPodSimulator]) -> None:
    """Held until the job ends; ``?wait=`` bounds the hold; past it the unfinished job and its id,
    readable at ``/status/{id}`` once done."""
    sim = sims(plan=FaultPlan(latency_s=(1.3, 1.3)))
    auth = {"Authorization": f"Bearer {sim.api_key}"}
    root = f"{sim.base_url}/{sim.endpoint_id}"
    async with httpx.AsyncClient(timeout=10) as client:
        t0 = time.monotonic()
        held = (await client.post(f"{root}/runsync?wait=1000", json={"input": {"x": 1}}, headers=auth)).json()
        waited = time.monotonic() - t0
        assert held["status"] in ("IN_QUEUE", "IN_PROGRESS") and held["id"].startswith("sync-")
        assert 0.9 <= waited < 1.8
        t0 = time.monotonic()
        done = (await client.post(f"{root}/runsync", json={"input": {"x": 2}}, headers=auth)).json()
        assert done["status"] == "COMPLETED" and "output" in done and done["executionTime"] >= 1200
        assert 1.2 <= time.monotonic() - t0 < 2.5  # held to the end (the default hold is 90 s)
        later = (await client.get(f"{root}/status/{held['id']}", headers=auth)).json()
        assert later["status"] == "COMPLETED" and later["id"] == held["id"]


# ---------------------------------------------------------------------------------------------
# rate limits: 429 is a signal to slow down
# ---------------------------------------------------------------------------------------------


def test_the_simulator_refuses_past_a_limit_and_counts() -> None:
    window = RateWindow({"status": (2, 0.2, None), "run": (10, 1.0, 1)})
    assert window.admit("status") and window.admit("stream") and not window.admit("status")
    assert window.admit("run") and not window.admit("run")  # one open at once
    window.leave("run")
    assert window.admit("run")
    time.sleep(0.21)
    assert window.admit("status")
    assert window.refused == {"status": 1, "run": 1}
    assert DOCUMENTED["status"] == (2000, 10.0, 400) and DOCUMENTED_LIMITS["status"].per_second == 200


@pytest.mark.parametrize(
    ("route", "mode", "retry_after"),
    [("run", "run", None), ("runsync", "runsync", 0.1), ("status", "runsync", None), ("status", "run", 0.05)],
)
async def test_a_429_on_each_route_slows_the_endpoint_and_every_page_completes(
    sims: Callable[..., RunPodSimulator], route: str, mode: str, retry_after: float | None
) -> None:
    limits = {route: (3, 0.5, None)}
    sim = sims(plan=FaultPlan(latency_s=(0.15, 0.15), slots=8), rate_limits=limits, rate_retry_after_s=retry_after,
               runsync_block_s=0.05)  # fmt: skip  (a short hold: /runsync jobs go on by /status)
    t = transport(sim, mode=mode, poll_interval_s=0.05)
    t.gate = EndpointGate(backoff_initial_s=0.05, backoff_max_s=0.4)
    try:
        replies = await asyncio.gather(*(t.send(page_request(n)) for n in range(8)))
    finally:
        await t.aclose()
    assert all(r.text for r in replies)
    assert sim.rates.refused[route] > 0 and t.gate.throttles[route] == sim.rates.refused[route]
    assert sim.jobs_submitted == 8 and max(sim.jobs_by_key.values()) == 1  # none resubmitted
    assert sim.cancels_received == 0


async def test_past_the_deadline_a_429_is_the_transient_error_it_is(sims: Callable[..., RunPodSimulator]) -> None:
    sim = sims(rate_limits={"runsync": (0, 1.0, None)}, rate_retry_after_s=30)
    t = transport(sim)
    try:
        with pytest.raises(TransientError) as info:
            await t.send(page_request(1, timeout_s=2.0))
    finally:
        await t.aclose()
    assert info.value.status == 429 and info.value.retry_after == 30.0 and sim.jobs_submitted == 0


async def test_the_gate_backs_off_exponentially_without_retry_after_and_resets() -> None:
    gate = EndpointGate(backoff_initial_s=0.5, backoff_max_s=3.0)

    def after_the_block(op: str, retry_after: float | None) -> float:  # (refused again once it passed)
        gate.blocked_until = time.monotonic() - 0.01
        return gate.throttled(op, retry_after)

    assert [after_the_block("status", None) for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    assert after_the_block("run", 5.0) == 5.0  # Retry-After wins when longer
    gate.succeeded()
    assert after_the_block("cancel", None) == 0.5
    assert gate.throttles == {"status": 4, "run": 1, "cancel": 1}


async def test_status_polls_stay_under_the_documented_limit_at_many_jobs(sims: Callable[..., RunPodSimulator]) -> None:
    """40 jobs polled every 10 ms would ask 4000 status requests/s; the endpoint's gate keeps the
    client at half of RunPod's 200/s, and the simulator (enforcing the documented limits)
    refuses none."""
    sim = sims(plan=FaultPlan(latency_s=(1.0, 1.0), slots=40))
    t = transport(sim, mode="run", poll_interval_s=0.01, max_poll_interval_s=0.01)
    started = time.monotonic()
    try:
        replies = await asyncio.gather(*(t.send(page_request(n)) for n in range(40)))
    finally:
        await t.aclose()
    wall = time.monotonic() - started
    assert all(r.text for r in replies)
    share = DOCUMENTED_LIMITS["status"].per_second * t.gate.share
    assert sim.requests["status"] <= share * wall + 25  # the bucket's burst, at most
    assert sum(sim.rates.refused.values()) == 0


# ---------------------------------------------------------------------------------------------
# what a run keeps at the endpoint
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["runsync", "run"])
async def test_never_more_jobs_at_the_endpoint_than_the_concurrency(tmp_path: Path, mode: str) -> None:
    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 16)
    with RunPodSimulator(plan=FaultPlan(latency_s=(0.1, 0.1), slots=4)) as sim:
        doc = await ocrclient.aconvert(
            pdf, backend="runpod", base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
            model="sim/ocr-model", concurrency=4, cache=False, render={"dpi": 30},
            transport_options={"mode": mode, "poll_interval_s": 0.02},
        )  # fmt: skip
    assert [p.status for p in doc.pages] == ["ok"] * 16
    assert sim.jobs_submitted == 16 and 1 <= sim.max_outstanding <= 4
    assert sim.requests["runsync" if mode == "runsync" else "run"] == 16


async def test_pool_over_two_runpod_endpoints_keeps_each_at_its_share(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 16)
    plan = {"latency_s": (0.1, 0.1), "slots": 2}
    with RunPodSimulator(plan=FaultPlan(**plan)) as a, RunPodSimulator(plan=FaultPlan(**plan)) as b:
        members = [
            {"backend": "runpod", "base_url": s.base_url, "endpoint_id": s.endpoint_id, "api_key": s.api_key,
             "model": "sim/ocr-model", "label": label, "transport_options": {"poll_interval_s": 0.02}}
            for s, label in ((a, "a"), (b, "b"))
        ]  # fmt: skip
        prof = tmp_path / "pool.toml"
        prof.write_text('transport = "pool"\ndialect = "plain"\nmodel = "sim/ocr-model"\n', encoding="utf-8")
        backend = load_backend(str(prof), concurrency=4, render={"dpi": 30},
                               transport_options={"members": members})  # fmt: skip
        try:
            doc = await ocrclient.aconvert(pdf, backend=backend, cache=False, concurrency=4)
        finally:
            await backend.aclose()
    assert [p.status for p in doc.pages] == ["ok"] * 16
    assert isinstance(backend.transport, PoolTransport)
    assert a.jobs_submitted + b.jobs_submitted == 16 and a.jobs_submitted >= 4 and b.jobs_submitted >= 4
    assert a.max_outstanding <= 2 and b.max_outstanding <= 2  # no queue beyond each one's share
    assert a.requests["runsync"] == a.jobs_submitted and a.requests["run"] == 0


def test_rate_share_is_a_profile_option() -> None:
    cfg = resolve_config("runpod", endpoint_id="abc", api_key="rp_x", transport_options={"rate_share": 0.25})
    t = RunPodTransport.from_config(cfg)
    assert t.mode == "runsync" and t.gate.share == 0.25 and t.runsync_wait_ms == 90_000
    with pytest.raises(ValueError):
        EndpointGate(share=0.0)


def test_transports_of_one_endpoint_share_its_gate() -> None:
    a = RunPodTransport(endpoint_id="ep1", api_key="rp_x")
    b = RunPodTransport(endpoint_id="ep1", api_key="rp_x", mode="run")
    c = RunPodTransport(endpoint_id="ep2", api_key="rp_x")
    assert a.gate is b.gate and a.gate is not c.gate
    a.gate.throttled("status", 5.0)
    assert b.gate.blocked_until > time.monotonic() + 4 and c.gate.blocked_until == 0.0


async def test_the_hold_ends_before_the_attempt_so_a_late_job_is_cancelled(
    sims: Callable[..., RunPodSimulator],
) -> None:
    """An attempt of 2 s asks a hold of 1.5 s: the job's id comes back before the deadline, and
    the job still running then is cancelled, not left running beside the retry."""
    sim = sims(plan=FaultPlan(latency_s=(5.0, 5.0)))
    t = transport(sim)
    try:
        with pytest.raises(TransientError) as info:
            await t.send(page_request(1, timeout_s=2.0))
    finally:
        await t.aclose()
    assert info.value.cause == "timeout" and "cancelled it" in info.value.message
    assert sim.requests["runsync"] == 1 and sim.cancels_received == 1 and sim.jobs_submitted == 1


@pytest.mark.parametrize("timeout_s", [0.3, 0.8, 1.2, 1.4])  # (2.0: the test above)
async def test_no_attempt_too_short_for_a_hold_leaves_its_job_running(
    sims: Callable[..., RunPodSimulator], timeout_s: float
) -> None:
    """The whole kind of the case above: every time an attempt can have.  RunPod holds a
    ``/runsync`` at least 1 s, so an attempt with less than ~1.3 s left got its job's id back
    too late (or never) to cancel it, and the job ran on beside the retry.  Such an attempt is
    submitted by ``/run``, whose reply is the id, so every late job is cancelled."""
    sim = sims(plan=FaultPlan(latency_s=(5.0, 5.0)))
    t = transport(sim)
    try:
        with pytest.raises(TransientError) as info:
            await t.send(page_request(1, timeout_s=timeout_s))
    finally:
        await t.aclose()
    assert info.value.cause == "timeout" and "cancelled it" in info.value.message, info.value.message
    assert sim.jobs_submitted == 1 and sim.cancels_received == 1
    for _ in range(300):  # (the simulator frees the slot as it reads the cancel)
        if sim.running_now == 0:
            break
        await asyncio.sleep(0.01)
    assert sim.running_now == 0


@pytest.mark.parametrize("burst", [1, 3, 10, 64])
def test_the_refusals_of_one_burst_are_one_strike(burst: int) -> None:
    """Requests sent together and refused together (429 with Retry-After: 2) are one strike: each
    refusal of the burst doubled the backoff, and 10 pages at 3 per 10 s took 75 s, the endpoint
    held back 4, 8, 16, 30 s.  A refusal after the block has passed is the next strike."""
    import time

    from ocrclient.transports.runpod_rate import EndpointGate

    gate = EndpointGate(backoff_initial_s=0.5, backoff_max_s=30.0)
    t0 = time.monotonic()
    waits = [gate.throttled("runsync", 2.0) for _ in range(burst)]
    assert max(waits) == pytest.approx(2.0) and gate.blocked_until - t0 < 2.5, waits
    gate.blocked_until = time.monotonic() - 0.01  # (the block has passed)
    assert gate.throttled("runsync", None) == pytest.approx(1.0)  # strike 2: 0.5 * 2
    gate.succeeded()
    gate.blocked_until = time.monotonic() - 0.01
    assert gate.throttled("runsync", None) == pytest.approx(0.5)  # back to the bottom


#: every public way to run pages, each given a concurrency three times the profile's own (8)
_WAYS = ["convert", "aconvert", "convert_many", "stream_pages", "Client", "AsyncClient", "load_backend"]


@pytest.mark.parametrize("way", _WAYS)
async def test_every_way_of_running_keeps_the_concurrency_it_is_given(tmp_path: Path, way: str) -> None:
    """``concurrency=24`` means 24 jobs at the endpoint at once, whichever door the pages go
    through: the scheduler's pages in hand were sized from the profile's 8 (16 at most) when a
    client handed the run its own limiter, so a Client of 24 ran 16."""
    pdf = blank_pdf(tmp_path / "doc.pdf", [(100, 130)] * 48)
    with RunPodSimulator(plan=FaultPlan(latency_s=(0.4, 0.4), slots=64)) as sim:
        over: dict[str, Any] = {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key,
                                "model": "sim/ocr-model", "render": {"dpi": 30}}  # fmt: skip
        run = {"cache": False, "concurrency": 24}
        if way == "convert":
            pages = (await asyncio.to_thread(ocrclient.convert, pdf, backend="runpod", **over, **run)).pages
        elif way == "aconvert":
            pages = (await ocrclient.aconvert(pdf, backend="runpod", **over, **run)).pages
        elif way == "convert_many":
            (result,) = await asyncio.to_thread(ocrclient.convert_many, [pdf], backend="runpod", **over, **run)
            pages = result.document.pages
        elif way == "stream_pages":
            pages = await asyncio.to_thread(lambda: list(ocrclient.stream_pages(pdf, backend="runpod", **over, **run)))
        elif way == "Client":
            with ocrclient.Client("runpod", **over, **run) as client:
                pages = (await asyncio.to_thread(client.convert, pdf)).pages
        elif way == "AsyncClient":
            async with ocrclient.AsyncClient("runpod", **over, **run) as aclient:
                pages = (await aclient.convert(pdf)).pages
        else:
            backend = load_backend("runpod", concurrency=24, **over)
            try:
                pages = (await ocrclient.aconvert(pdf, backend=backend, cache=False)).pages
            finally:
                await backend.aclose()
    assert sorted(p.page for p in pages) == list(range(1, 49)) and all(p.status == "ok" for p in pages)
    assert sim.max_outstanding == 24, sim.max_outstanding  # reached, never exceeded
