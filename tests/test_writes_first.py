"""A freed slot's next request is written before the reply that freed it is parsed
(:class:`ocrclient.concurrency.WritesFirst`, :mod:`ocrclient.transports.written`).

* The scheduler's order, with a fake transport that reports its writes and with one that does
  not (never waited for), and with one that stops reporting (each wait is bounded).
* Every shipped remote profile's transport reports its page requests' writes against its own
  simulator (RunPod ``/runsync`` and ``/run`` + poll, the pod proxy, Modal's redirects, the
  Ocular route, a pool of two endpoints), and the page that takes a freed slot is written
  before the reply that freed it is parsed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ocrclient import concurrency
from ocrclient.concurrency import AdaptiveLimiter, WritesFirst
from ocrclient.pages import aiter_pages
from ocrclient.registry import load_backend
from ocrclient.scheduler import Scheduler
from ocrclient.testing import DialectResponder, FaultPlan, OpenAISimulator
from ocrclient.transports import written
from ocrclient.transports.base import Health, ModelReply, ModelRequest

from .fakes import FakeDialect, make_backend, page_stream
from .test_e2e_backends import CASES, Case, cloud, page_truth
from .test_pool import _pool_profile

# ---------------------------------------------------------------------------------------------
# the scheduler's order, with fakes
# ---------------------------------------------------------------------------------------------


@dataclass
class WritingTransport:
    """Writes a request (a loop turn), reports it when ``reports(page)`` says so, answers
    after ``service_s``; logs ``("written", page)``."""

    log: list[tuple[str, int]]
    service_s: float = 0.01
    reports: Any = lambda page: True
    replied: dict[int, float] = field(default_factory=dict)

    async def send(self, request: ModelRequest) -> ModelReply:
        page = int(request.body["page"])
        await asyncio.sleep(0)
        self.log.append(("written", page))
        if self.reports(page):
            written.request_written()
        await asyncio.sleep(self.service_s)
        self.replied[page] = time.monotonic()
        return ModelReply(text=f"text of {page}", finish_reason="stop")

    async def health(self) -> Health:
        return Health(True, "fake")

    async def aclose(self) -> None:
        pass


class LoggingDialect(FakeDialect):
    def __init__(self, log: list[tuple[str, int]]) -> None:
        super().__init__()
        self.log = log
        self.parsed: dict[int, float] = {}

    def parse(self, reply: ModelReply, request: ModelRequest) -> Any:
        self.log.append(("parsed", int(request.body["page"])))
        self.parsed[int(request.body["page"])] = time.monotonic()
        return super().parse(reply, request)


async def _run(transport: WritingTransport, log: list[tuple[str, int]], pages: int, slots: int) -> Scheduler:
    backend = make_backend(transport, LoggingDialect(log), concurrency=slots)
    sched = Scheduler(backend)
    doc = await sched.run_document("doc.pdf", page_stream(pages))
    assert [p.status for p in doc.pages] == ["ok"] * pages
    return sched


@pytest.mark.parametrize("slots", [1, 2, 3])
async def test_the_page_that_takes_a_freed_slot_is_written_before_the_reply_is_parsed(slots: int) -> None:
    log: list[tuple[str, int]] = []
    sched = await _run(WritingTransport(log), log, pages=7, slots=slots)
    assert sched._writes.reported and not sched._writes.unwritten
    # page k's reply freed the slot page k + slots takes: that page went out first
    for k in range(1, 8 - slots):
        assert log.index(("written", k + slots)) < log.index(("parsed", k)), (k, log)


async def test_a_transport_that_never_reports_is_never_waited_for() -> None:
    """The order of before: a reply is parsed in the turn it arrives, before the next page goes."""
    log: list[tuple[str, int]] = []
    sched = await _run(WritingTransport(log, reports=lambda page: False), log, pages=4, slots=1)
    assert not sched._writes.reported and not sched._writes.unwritten
    for k in range(1, 4):
        assert log.index(("parsed", k)) < log.index(("written", k + 1)), log


async def test_a_write_never_reported_is_waited_for_at_most_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Page 1 reports, no other does: the replies of pages 1 and 2 (each with the next page
    waiting for its slot) are parsed SEND_FIRST_MAX_S after they arrive, not when the next
    page's send ends; page 3's (nothing waits) at once.  Every page is done."""
    monkeypatch.setattr(concurrency, "SEND_FIRST_MAX_S", 0.2)
    log: list[tuple[str, int]] = []
    transport = WritingTransport(log, service_s=0.6, reports=lambda page: page == 1)
    dialect = LoggingDialect(log)
    sched = Scheduler(make_backend(transport, dialect, concurrency=1))
    doc = await sched.run_document("doc.pdf", page_stream(3))
    assert [p.status for p in doc.pages] == ["ok"] * 3 and sched._writes.reported
    waited = {k: dialect.parsed[k] - transport.replied[k] for k in (1, 2, 3)}
    assert 0.18 <= waited[1] < 0.5 and 0.18 <= waited[2] < 0.5, waited
    assert waited[3] < 0.15, waited


async def test_a_reply_waits_for_the_request_that_takes_its_slot_not_for_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two slots: page 1's upload is slow (written after 0.5 s); page 2 is answered at once,
    page 3 takes its slot and is written at once.  Page 2's reply is parsed once page 3 is
    written, not when page 1's upload ends nor at the bound (at 64 slots against an instant
    server some request is always being written: waiting for all of them halved throughput)."""
    monkeypatch.setattr(concurrency, "SEND_FIRST_MAX_S", 0.3)
    log: list[tuple[str, int]] = []

    class SlowFirstUpload(WritingTransport):
        async def send(self, request: ModelRequest) -> ModelReply:
            page = int(request.body["page"])
            await asyncio.sleep(0.5 if page == 1 else 0)
            self.log.append(("written", page))
            written.request_written()
            await asyncio.sleep(0.2 if page == 1 else 0.05)
            self.replied[page] = time.monotonic()
            return ModelReply(text=f"text of {page}", finish_reason="stop")

    transport = SlowFirstUpload(log)
    dialect = LoggingDialect(log)
    sched = Scheduler(make_backend(transport, dialect, concurrency=2))
    doc = await sched.run_document("doc.pdf", page_stream(4))
    assert [p.status for p in doc.pages] == ["ok"] * 4
    assert log.index(("written", 3)) < log.index(("parsed", 2)) < log.index(("written", 1)), log
    assert dialect.parsed[2] - transport.replied[2] < 0.15


async def test_after_reply_returns_at_once_when_no_slot_is_waited_for() -> None:
    writes, limiter = WritesFirst(), AdaptiveLimiter(2)
    with writes.writing():
        written.request_written()
    assert writes.reported and not writes.unwritten
    started = time.monotonic()
    await writes.after_reply(limiter)
    assert time.monotonic() - started < concurrency.SEND_FIRST_MAX_S / 2


async def test_written_is_counted_once_however_often_it_is_reported() -> None:
    """RunPod's /run + poll: the submit and every poll report; the request counts down once."""
    writes = WritesFirst()
    with writes.writing(), writes.writing():
        for _ in range(3):
            written.request_written()  # the inner request's
        assert writes.unwritten == {1}  # the outer one
    assert not writes.unwritten


async def test_the_limiter_tells_a_slot_being_handed_over() -> None:
    limiter = AdaptiveLimiter(1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert limiter.waiting == 1 and not limiter.handing_over()  # no slot free
    await limiter.release()
    assert limiter.handing_over()  # free, and the waiter takes it at its next turn
    await waiter
    assert limiter.waiting == 0 and limiter.in_use == 1 and not limiter.handing_over()


# ---------------------------------------------------------------------------------------------
# every shipped remote profile, against its simulator
# ---------------------------------------------------------------------------------------------


def _write_log(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """When the HTTP layer reports a page request written."""
    times: list[float] = []
    report = written.request_written

    def logged() -> None:
        times.append(time.monotonic())
        report()

    monkeypatch.setattr(written, "request_written", logged)
    return times


async def _check_order(backend: Any, pdf: Path, times: list[float], *, pages: int, one_write_per_page: bool) -> None:
    """Run ``pages`` pages at one slot; every page request is reported written, and page k + 1's
    before page k's reply is parsed."""
    parsed: list[float] = []
    parse = backend.dialect.parse

    def logged_parse(reply: ModelReply, request: ModelRequest) -> Any:
        parsed.append(time.monotonic())
        return parse(reply, request)

    backend.dialect.parse = logged_parse
    sched = Scheduler(backend, concurrency=1)
    doc = await sched.run_document(str(pdf), aiter_pages(pdf, backend.render))
    assert [p.status for p in doc.pages] == ["ok"] * pages, [p.error for p in doc.pages]
    assert sched._writes.reported and not sched._writes.unwritten
    assert len(parsed) == pages
    if one_write_per_page:
        assert len(times) == pages
        for k in range(pages - 1):
            assert times[k + 1] < parsed[k], (times, parsed)


@pytest.mark.parametrize("case", CASES, ids=[c.backend for c in CASES])
async def test_every_remote_profile_reports_its_writes(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .pdfgen import blank_pdf

    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 3)
    times = _write_log(monkeypatch)
    plan = FaultPlan(slots=2, latency_s=(0.15, 0.15))
    with cloud(case, DialectResponder(case.dialect, truth=page_truth), plan) as (_sim, env, over):
        for key in ("MODAL_KEY", "MODAL_SECRET"):
            if key in env:
                monkeypatch.setenv(key, env[key])
        backend = load_backend(case.backend, **over, render={"dpi": 30})
        try:
            await _check_order(backend, pdf, times, pages=3, one_write_per_page=case.cloud != "modal")
        finally:
            await backend.aclose()


async def test_runpod_run_and_poll_reports_its_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .pdfgen import blank_pdf

    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 3)
    times = _write_log(monkeypatch)
    case = next(c for c in CASES if c.backend == "runpod-chandra")
    plan = FaultPlan(slots=2, latency_s=(0.15, 0.15))
    with cloud(case, DialectResponder("chandra", truth=page_truth), plan) as (_sim, _env, over):
        opts = {**over["transport_options"], "mode": "run"}
        backend = load_backend(case.backend, **{**over, "transport_options": opts}, render={"dpi": 30})
        try:
            await _check_order(backend, pdf, times, pages=3, one_write_per_page=False)
        finally:
            await backend.aclose()
    assert len(times) >= 3  # the submits (and the polls) report


async def test_a_pool_of_two_endpoints_reports_its_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from .pdfgen import blank_pdf

    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 4)
    times = _write_log(monkeypatch)
    plan = FaultPlan(latency_s=(0.1, 0.1), slots=4)
    with OpenAISimulator(plan=plan) as a, OpenAISimulator(plan=plan) as b:
        backend = load_backend(str(_pool_profile(tmp_path, a, b)))
        try:
            await _check_order(backend, pdf, times, pages=4, one_write_per_page=True)
        finally:
            await backend.aclose()


async def test_a_trace_extension_already_on_a_request_is_kept() -> None:
    """The client's hook chains its trace to one the request already carries: both are called."""
    import httpx

    from ocrclient.transports.http import make_client

    theirs: list[str] = []

    async def their_trace(event: str, info: dict[str, Any]) -> None:
        theirs.append(event)

    reported: list[bool] = []
    with OpenAISimulator() as sim:
        client = make_client(timeout=httpx.Timeout(5.0), max_connections=1)
        token = written.REQUEST_WRITTEN.set(lambda: reported.append(True))
        try:
            resp = await client.post(f"{sim.base_url}/chat/completions", content=b"{}", extensions={"trace": their_trace})
        finally:
            written.REQUEST_WRITTEN.reset(token)
            await client.aclose()
    assert resp.status_code in (400, 401, 422)  # answered (the body is not a request): it was written
    assert reported == [True]
    assert "http11.send_request_body.complete" in theirs
