"""Scheduler behaviour against an in-process fake transport driven by a seeded FaultPlan."""

from __future__ import annotations

import asyncio
import itertools
import pickle
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ocrclient.errors as errors_mod
from ocrclient.cache import PageCache
from ocrclient.errors import AuthError, OcrError
from ocrclient.events import PageFailed
from ocrclient.scheduler import (
    ABORTS_RUN,
    BUILT_AHEAD,
    OFF_LOOP_REPLY_CHARS,
    AdaptiveLimiter,
    DocumentJob,
    PageDone,
    PageRetried,
    RunAborted,
    Scheduler,
)
from ocrclient.testing.faults import FaultPlan
from ocrclient.transports import written
from ocrclient.transports.base import Health, ModelReply, ModelRequest

from .fakes import (
    FakeDialect,
    FakeTransport,
    cancel_with_in_flight,
    make_backend,
    make_page,
    page_stream,
)

FAST = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


def sched(transport: FakeTransport, **kw: object) -> Scheduler:
    dialect = kw.pop("dialect", None)
    backend = make_backend(transport, dialect, **{k: kw.pop(k) for k in list(kw) if k in ("concurrency", "max_attempts", "price_per_gpu_second")})
    return Scheduler(backend, **{**FAST, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fault", "retried", "status"),
    [
        ("http_500", True, "ok"),
        ("http_502", True, "ok"),
        ("http_503", True, "ok"),
        ("http_429", True, "ok"),
        ("reset", True, "ok"),
        ("garbage", True, "ok"),
        ("http_400", False, "failed"),
    ],
)
async def test_each_fault_class_is_retried_or_not(fault: str, retried: bool, status: str) -> None:
    plan = FaultPlan(seed=1, rates={fault: 1.0}, max_faults_per_key=1, retry_after_s=0.01)
    t = FakeTransport(plan)
    doc = await sched(t).run_document("doc.pdf", page_stream(3))
    assert [p.status for p in doc.pages] == [status] * 3
    assert all(t.calls[k] == (2 if retried else 1) for k in t.calls)
    if not retried:
        assert doc.pages[0].error is not None and doc.pages[0].error.kind == "permanent"


async def test_retry_after_is_honoured() -> None:
    plan = FaultPlan(seed=1, rates={"http_429": 1.0}, max_faults_per_key=1, retry_after_s=0.4)
    t = FakeTransport(plan)
    doc = await sched(t).run_document("doc.pdf", page_stream(1))
    assert doc.pages[0].status == "ok"
    times = t.call_times["doc.pdf#1"]
    assert times[1] - times[0] >= 0.39


async def test_401_stops_the_run_after_the_first_reply() -> None:
    plan = FaultPlan(seed=1, rates={"http_401": 1.0})
    t = FakeTransport(plan, service_s=0.05)
    s = sched(t, concurrency=2)
    with pytest.raises(RunAborted) as info:
        await s.run_document("doc.pdf", page_stream(50))
    assert "401" in str(info.value)
    # only the requests already in flight when the first 401 came back were ever sent
    assert sum(t.calls.values()) <= 2
    assert t.started_after_401 == 0
    assert t.inflight == 0
    doc = info.value.documents[0]
    assert all(p.status == "failed" for p in doc.pages)


async def test_bad_output_is_retried_with_changed_sampling() -> None:
    plan = FaultPlan(seed=3, rates={"garbage": 1.0}, max_faults_per_key=2)
    t = FakeTransport(plan)
    d = FakeDialect()
    doc = await sched(t, dialect=d).run_document("doc.pdf", page_stream(2))
    assert [p.status for p in doc.pages] == ["ok", "ok"]
    assert d.temperatures[1] == [0.0, 0.3, 0.6]
    assert doc.pages[0].attempts == 3


async def test_bad_output_every_attempt_fails_the_page_with_reason() -> None:
    t = FakeTransport(FaultPlan(seed=3, rates={"garbage": 1.0}))
    doc = await sched(t, max_attempts=3).run_document("doc.pdf", page_stream(1))
    page = doc.pages[0]
    assert page.status == "failed" and page.attempts == 3
    assert page.error is not None and page.error.cause == "repetition"


async def test_truncated_reply_kept_as_degraded_after_attempts() -> None:
    t = FakeTransport(FaultPlan(seed=3, rates={"length": 1.0}))
    doc = await sched(t, max_attempts=2).run_document("doc.pdf", page_stream(1))
    page = doc.pages[0]
    assert page.status == "degraded"
    assert page.markdown == "partial doc.pdf#1"
    assert page.error is not None and page.error.cause == "length"
    assert any("truncated" in w for w in page.warnings)


async def test_results_come_out_in_page_order() -> None:
    class Jittery(FakeTransport):
        async def send(self, request):  # type: ignore[no-untyped-def]
            await asyncio.sleep(random.Random(request.body["page"]).uniform(0, 0.03))
            return await super().send(request)

    t = Jittery()
    s = sched(t, concurrency=8)
    completion = []
    async for page in s.iter_pages("doc.pdf", page_stream(30)):
        completion.append(page.page)
    assert sorted(completion) == list(range(1, 31))
    assert completion != sorted(completion)  # they really did finish out of order
    doc = await sched(Jittery(), concurrency=8).run_document("doc.pdf", page_stream(30))
    assert [p.page for p in doc.pages] == list(range(1, 31))


async def test_boxes_are_mapped_to_page_points() -> None:
    doc = await sched(FakeTransport()).run_document("doc.pdf", page_stream(1))
    block = doc.pages[0].blocks[0]
    assert block.bbox == [153.0, 198.0, 459.0, 594.0]
    assert block.bbox_norm == [0.25, 0.25, 0.75, 0.75]


async def test_cancel_leaves_no_task_running() -> None:
    t = FakeTransport(service_s=10)
    s = sched(t, concurrency=3)
    await cancel_with_in_flight(s, t, pages=10, in_flight=3)
    assert t.inflight == 0
    assert t.cancelled == 3
    others = [x for x in asyncio.all_tasks() if x is not asyncio.current_task()]
    assert others == []
    # what was in hand -- 3 sent, 3 built and waiting for a slot (BUILT_AHEAD) -- is reported as
    # failed/cancelled, never dropped; only the 3 sent reached the transport
    doc = s.partial[0]
    assert {p.page for p in doc.pages} == set(range(1, 3 * BUILT_AHEAD + 1))
    assert all(p.status == "failed" and p.error and p.error.kind == "cancelled" for p in doc.pages)


async def test_cancel_reports_unreached_pages_when_expected_pages_known() -> None:
    t = FakeTransport(service_s=10)
    s = sched(t, concurrency=2)

    async def consume() -> None:
        async for _ in s.run_documents([DocumentJob("doc.pdf", page_stream(6), expected_pages=range(1, 7))]):
            pass

    run = asyncio.create_task(consume())
    while t.inflight < 2:
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert [p.page for p in s.partial[0].pages] == [1, 2, 3, 4, 5, 6]


async def test_hang_times_out_and_is_retried() -> None:
    plan = FaultPlan(seed=1, rates={"hang": 1.0}, max_faults_per_key=1, hang_s=30)
    t = FakeTransport(plan)
    s = sched(t, attempt_timeout_s=0.2, timeout_grace_s=0.05)
    doc = await s.run_document("doc.pdf", page_stream(2))
    assert [p.status for p in doc.pages] == ["ok", "ok"]
    assert s.retries_by_cause["timeout"] == 2
    assert t.cancelled == 2


async def test_cold_start_allowance_applies_until_first_success() -> None:
    t = FakeTransport()
    s = sched(t, attempt_timeout_s=5, cold_start_s=100, concurrency=1)
    await s.run_document("doc.pdf", page_stream(3))
    assert t.timeouts[0] == pytest.approx(105, abs=0.5)
    assert t.timeouts[1] == pytest.approx(5)


async def test_the_cold_start_allowance_is_one_for_the_run_not_one_per_page() -> None:
    """An endpoint answering 503 to every request never reads a page: each page took the whole
    cold-start allowance on top of its deadline (300 s each by default, page after page).  It is
    one allowance, counted from the run's first page sent: the first page has it, the pages that
    start once it is spent have their own deadline alone."""
    t = FakeTransport(FaultPlan(seed=1, rates={"http_503": 1.0}))
    ends = [time.monotonic()]
    s = sched(t, max_attempts=50, page_deadline_s=0.3, cold_start_s=1.5, concurrency=1,
              on_event=lambda e: isinstance(e, PageFailed) and ends.append(time.monotonic()))  # fmt: skip
    doc = await s.run_document("doc.pdf", page_stream(4))
    assert [p.status for p in doc.pages] == ["failed"] * 4 and len(ends) == 5
    first, *later = (b - a for a, b in itertools.pairwise(ends))  # (one page at a time: each page's time)
    assert first >= 1.2, first  # (0.3 s + the allowance)
    assert all(x <= 0.9 for x in later[1:]), later  # (the allowance spent: the deadline alone)


async def test_page_deadline_caps_total_time() -> None:
    t = FakeTransport(FaultPlan(seed=1, rates={"http_503": 1.0}))
    s = sched(t, max_attempts=50, page_deadline_s=0.3)
    doc = await s.run_document("doc.pdf", page_stream(1))
    assert doc.pages[0].status == "failed"
    assert doc.pages[0].latency_s <= 0.5 or doc.stats.wall_s < 1.0


@pytest.mark.parametrize("fault", ["http_500", "http_502", "http_503", "http_429", "reset", "hang"])
async def test_a_page_out_of_time_names_what_the_time_went_on(fault: str) -> None:
    """Every retryable fault that outlasts the page's deadline: the failed page's error names
    the fault it kept meeting, not a bare "deadline passed"."""
    plan = FaultPlan(seed=1, rates={fault: 1.0}, retry_after_s=0.05, hang_s=0.5)
    t = FakeTransport(plan)
    s = sched(t, max_attempts=50, page_deadline_s=0.4, attempt_timeout_s=0.1, timeout_grace_s=0.0)
    doc = await s.run_document("doc.pdf", page_stream(1))
    page = doc.pages[0]
    assert page.status == "failed" and page.error is not None
    named = {"reset": "connection reset", "hang": "no reply within"}.get(fault, fault[5:])
    assert named in page.error.message, page.error.message
    assert t.calls["doc.pdf#1"] >= 2


@pytest.mark.parametrize("retry_after_s", [0.6, 5.0, 3600.0])
async def test_a_retry_after_past_the_deadline_fails_the_page_at_once_with_the_429(retry_after_s: float) -> None:
    """The server asks for a wait that ends past the page's deadline: no attempt is welcome
    before then, so the page fails now (not at the deadline), with the 429 and the wait asked."""
    plan = FaultPlan(seed=1, rates={"http_429": 1.0}, retry_after_s=retry_after_s)
    t = FakeTransport(plan)
    started = time.monotonic()
    doc = await sched(t, max_attempts=5, page_deadline_s=0.5).run_document("doc.pdf", page_stream(1))
    page = doc.pages[0]
    assert page.status == "failed" and page.error is not None
    assert "429" in page.error.message and f"{retry_after_s:g} s" in page.error.message
    assert "past the page's deadline" in page.error.message
    assert t.calls["doc.pdf#1"] == 1 and time.monotonic() - started < 0.4


async def test_a_retry_after_within_the_deadline_is_waited_for() -> None:
    plan = FaultPlan(seed=1, rates={"http_429": 1.0}, max_faults_per_key=1, retry_after_s=0.2)
    t = FakeTransport(plan)
    doc = await sched(t, max_attempts=5, page_deadline_s=2.0).run_document("doc.pdf", page_stream(1))
    assert doc.pages[0].status == "ok" and t.calls["doc.pdf#1"] == 2


async def test_each_documents_retries_are_its_own() -> None:
    """Every document of a run reports the retries its own pages took (each reported the run's
    running total: 7, 12, 12 for documents that took 3, 5, 2), so that, pages all done and none
    cached, a document's retries are its attempts less its pages, and the documents' add up to
    the run's."""
    plan = FaultPlan(seed=3, rates={"http_500": 0.3, "reset": 0.1}, max_faults_per_key=3)
    t = FakeTransport(plan, service_s=0.001)
    s = sched(t, concurrency=4, max_attempts=10)
    jobs = [DocumentJob(f"d{i}.pdf", page_stream(6, f"d{i}.pdf")) for i in range(4)]
    docs = [d async for d in s.run_documents(jobs)]
    assert all(p.status == "ok" for d in docs for p in d.pages)
    own = [sum(d.stats.retries_by_cause.values()) for d in docs]
    assert own == [d.stats.attempts - d.stats.pages for d in docs]
    assert len(set(own)) > 1  # (the seed gives the documents different retries)
    assert sum(own) == sum(s.retries_by_cause.values()) == sum(t.calls.values()) - 24


async def test_render_failure_keeps_the_page() -> None:
    t = FakeTransport()
    doc = await sched(t).run_document("doc.pdf", page_stream(3, errors={1}))
    assert [p.status for p in doc.pages] == ["ok", "failed", "ok"]
    assert doc.pages[1].error is not None and "render failed" in doc.pages[1].error.message
    assert "doc.pdf#2" not in t.calls


async def test_pages_are_pulled_only_when_a_slot_frees() -> None:
    t = FakeTransport(service_s=0.05)
    pulled: list[int] = []
    s = sched(t, concurrency=2)
    run = asyncio.create_task(s.run_document("doc.pdf", page_stream(20, pulled=pulled)))
    await asyncio.sleep(0.02)
    assert len(pulled) <= BUILT_AHEAD * 2 + 1  # two in flight, two built ahead, the feeder holds one more
    await run


async def test_documents_share_one_limit_and_come_back_in_order() -> None:
    t = FakeTransport(service_s=0.01)
    s = sched(t, concurrency=3)
    jobs = [DocumentJob(f"d{i}.pdf", page_stream(5, f"d{i}.pdf")) for i in range(4)]
    docs = [d async for d in s.run_documents(jobs)]
    assert [d.source for d in docs] == ["d0.pdf", "d1.pdf", "d2.pdf", "d3.pdf"]
    assert t.max_inflight == 3
    assert all(len(d.pages) == 5 for d in docs)


async def test_resume_cache_sends_nothing_for_finished_pages(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cache = PageCache(tmp_path)
    t1 = FakeTransport()
    doc1 = await sched(t1, cache=cache).run_document("doc.pdf", page_stream(5))
    assert sum(t1.calls.values()) == 5
    t2 = FakeTransport()
    doc2 = await sched(t2, cache=PageCache(tmp_path)).run_document("doc.pdf", page_stream(5))
    assert sum(t2.calls.values()) == 0
    assert all(p.cached for p in doc2.pages)
    assert [p.markdown for p in doc2.pages] == [p.markdown for p in doc1.pages]
    assert doc2.stats.cached == 5


async def test_pages_are_stored_off_the_event_loop(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A cache write ends in an fsync (milliseconds on a disk, more on a network share): it runs
    in a worker thread, not on the loop that sends and reads every page in flight."""
    import threading

    loop_thread = threading.get_ident()
    writers: list[int] = []

    class Watched(PageCache):
        def put(self, key, page):  # type: ignore[no-untyped-def]
            writers.append(threading.get_ident())
            super().put(key, page)

    await sched(FakeTransport(), cache=Watched(tmp_path)).run_document("doc.pdf", page_stream(4))
    assert len(writers) == 4 and loop_thread not in writers
    assert len(PageCache(tmp_path)) == 4


async def test_failed_pages_are_not_cached(tmp_path) -> None:  # type: ignore[no-untyped-def]
    t = FakeTransport(FaultPlan(seed=1, rates={"http_400": 1.0}))
    await sched(t, cache=PageCache(tmp_path)).run_document("doc.pdf", page_stream(2))
    assert len(PageCache(tmp_path)) == 0


async def test_events_and_stats() -> None:
    events: list[object] = []
    plan = FaultPlan(seed=5, rates={"http_503": 1.0}, max_faults_per_key=1)
    s = sched(FakeTransport(plan), on_event=events.append, price_per_gpu_second=0.001)
    doc = await s.run_document("doc.pdf", page_stream(4))
    kinds = {type(e).__name__ for e in events}
    assert {"PageStarted", "PageRetried", "PageDone", "DocumentDone"} <= kinds
    retried = [e for e in events if isinstance(e, PageRetried)]
    assert len(retried) == 4 and all(e.cause == "http_503" for e in retried)
    assert doc.stats.retries_by_cause == {"http_503": 4}
    assert doc.stats.attempts == 8
    assert doc.stats.usage.completion_tokens == 20
    assert doc.stats.usage.gpu_seconds == pytest.approx(2.0)
    assert doc.stats.usage.cost_usd == pytest.approx(0.002)
    assert doc.stats.latency_p50_s is not None


async def test_aimd_backs_off_on_429_and_climbs_back() -> None:
    lim = AdaptiveLimiter(16, cooldown_s=0)
    lim.congestion()
    assert lim.limit == 8
    lim.congestion()
    assert lim.limit == 4
    for _ in range(200):
        await lim.success()
    assert lim.limit == 16


async def test_scheduler_reduces_concurrency_under_429() -> None:
    plan = FaultPlan(seed=2, rates={"http_429": 0.5}, max_faults_per_key=1, retry_after_s=0.01)
    t = FakeTransport(plan, service_s=0.01)
    s = sched(t, concurrency=16)
    doc = await s.run_document("doc.pdf", page_stream(40))
    assert all(p.status == "ok" for p in doc.pages)
    assert s.limiter.min_seen < 16


@pytest.mark.parametrize("fault", ["http_429", "http_500", "http_502", "http_503", "reset"])
async def test_only_a_429_takes_slots_away(fault: str) -> None:
    """Every transient failure a page can meet, scattered (one page in ten): only "too many
    requests" shrinks the window.  A 503 halved it as a 429 did, and came back one slot per
    window of successes, so 10% of 503s held a run of 8 slots at 4 in flight (38 s for 150 pages
    of 1 s that took 21 s under as many 500s): the user's concurrency is the endpoint's slots,
    and a server's failure is retried, not taken as a sign of too many requests."""
    plan = FaultPlan(seed=3, rates={fault: 0.1}, max_faults_per_key=1, retry_after_s=0.01)
    t = FakeTransport(plan, service_s=0.01)
    s = sched(t, concurrency=16)
    doc = await s.run_document("doc.pdf", page_stream(60))
    assert all(p.status == "ok" for p in doc.pages)
    assert sum(p.attempts for p in doc.pages) > 60  # (faults were met)
    assert (s.limiter.min_seen < 16) is (fault == "http_429"), s.limiter.min_seen


async def test_full_collections_every_n_pages_within_a_time_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages leave reference cycles behind in the libraries they pass through; the scheduler runs
    a full collection every GC_EVERY_PAGES finished pages, unless the last one was so recent
    that collections would take more than GC_MAX_SHARE of the time."""
    import ocrclient.concurrency as pacing

    calls: list[int] = []
    monkeypatch.setattr(pacing.gc, "collect", lambda *a: calls.append(1) or 0)
    monkeypatch.setattr(pacing, "GC_EVERY_PAGES", 10)
    finished: list[object] = []

    async def last_page_held(n: int) -> Any:
        """n pages, the last one only once every other has finished (until it is sent, the
        run's pages are not all sent: see test_no_full_collection_once_the_last_page_is_sent)."""
        async for page in page_stream(n - 1):
            yield page
        while len(finished) < n - 1:
            await asyncio.sleep(0.001)
        yield make_page(n - 1)

    def on_event(event: object) -> None:
        if isinstance(event, PageDone):
            finished.append(event)

    doc = await sched(FakeTransport(FaultPlan(seed=1)), concurrency=4, on_event=on_event).run_document(
        "doc.pdf", last_page_held(45)
    )
    assert doc.stats.ok == 45 and len(calls) == 4  # after pages 10, 20, 30 and 40

    calls.clear()
    s = sched(FakeTransport(FaultPlan(seed=1)), concurrency=4)
    s._gc.last_s = 3600.0  # pretend the last collection took an hour: none for a long while
    s._gc.last_end = time.perf_counter()
    doc = await s.run_document("doc.pdf", page_stream(45))
    assert doc.stats.ok == 45 and calls == []


@pytest.mark.parametrize("pages, concurrency, service_s, expected", [(10, 16, 0.2, 0), (30, 1, 0.001, 2), (20, 16, 0.2, 0)])
async def test_no_full_collection_once_the_last_page_is_sent(
    monkeypatch: pytest.MonkeyPatch, pages: int, concurrency: int, service_s: float, expected: int
) -> None:
    """Once the run's last page is in flight, memory grows no more: a collection due then is
    skipped (at the 64th page of a 64-page run it held up the run's end by ~25 ms).  Every
    page sent at once: none at all; one page in flight (two admitted): after pages 10 and 20,
    not after the 30th.  A scheduler run twice counts afresh each run."""
    import ocrclient.concurrency as pacing

    calls: list[int] = []
    monkeypatch.setattr(pacing.gc, "collect", lambda *a: calls.append(1) or 0)
    monkeypatch.setattr(pacing, "GC_EVERY_PAGES", 10)
    s = sched(FakeTransport(FaultPlan(seed=1), service_s=service_s), concurrency=concurrency)
    for _ in range(2):
        calls.clear()
        s._gc.since = 0
        doc = await s.run_document("doc.pdf", page_stream(pages))
        assert doc.stats.ok == pages and len(calls) == expected


# -- an abort is also its cause (issue 13, defect 4) ---------------------------------------------


class TransportAuthError(AuthError):
    """A transport's own, finer auth error: the abort must be one too."""


def _error_classes() -> list[type[OcrError]]:
    classes = [
        obj
        for obj in vars(errors_mod).values()
        if isinstance(obj, type) and issubclass(obj, OcrError) and obj.__module__ == errors_mod.__name__
    ]
    return [*sorted(classes, key=lambda c: c.__name__), TransportAuthError]


class RaisingTransport:
    def __init__(self, cls: type[OcrError]) -> None:
        self.cls = cls
        self.calls = 0

    async def send(self, request: ModelRequest) -> ModelReply:
        self.calls += 1
        await asyncio.sleep(0.001)
        raise self.cls(f"simulated {self.cls.__name__}")

    async def health(self) -> Health:
        return Health(True, "raising")

    async def aclose(self) -> None:
        pass


async def test_every_error_that_aborts_a_run_is_raised_as_itself() -> None:
    """For every error class of ocrclient.errors (and a transport's own AuthError subclass): if
    a page raising it stops the run, what the run raises is a RunAborted *and* that class — so
    ``except AuthError`` catches a bad key — and it carries what finished."""
    aborted: set[type[OcrError]] = set()
    for cls in _error_classes():
        t = RaisingTransport(cls)
        s = sched(t, concurrency=2, max_attempts=2)  # type: ignore[arg-type]
        try:
            doc = await s.run_document("doc.pdf", page_stream(6))
        except RunAborted as exc:
            aborted.add(cls)
            assert isinstance(exc, cls), f"{type(exc).__name__} is not a {cls.__name__}"
            assert isinstance(exc.error, cls) and exc.cause == exc.error.cause
            assert exc.kind == exc.error.kind
            pages = exc.documents[0].pages
            assert pages and all(p.status == "failed" for p in pages)
            assert t.calls <= 2  # stopped at the first reply: only what was in flight was sent
            assert exc.partial is exc.documents
            with pytest.raises(cls):  # an ordinary `except Cause` catches it
                raise exc
            assert pickle.loads(pickle.dumps(exc)).__class__ is type(exc)
        else:
            assert all(p.status in ("failed", "degraded") for p in doc.pages), cls
    assert aborted == {c for c in _error_classes() if issubclass(c, ABORTS_RUN)}
    assert AuthError in aborted and TransportAuthError in aborted


def test_run_aborted_classes_are_one_per_cause() -> None:
    a = RunAborted(AuthError("HTTP 401", status=401), [])
    b = RunAborted(AuthError("HTTP 403", status=403), [])
    assert type(a) is type(b) and type(a).__name__ == "RunAborted[AuthError]"
    assert isinstance(a, RunAborted) and isinstance(a, AuthError) and a.status == 401
    assert type(RunAborted(TransportAuthError("x"), [])) is not type(a)
    assert str(a) == "run stopped: HTTP 401"


def test_bad_key_against_the_runpod_simulator_is_caught_as_auth_error(tmp_path: Path) -> None:
    """Through the public API: ``except AuthError`` catches a refused key."""
    import ocrclient
    from ocrclient.testing import RunPodSimulator

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "three.pdf", [["one"], ["two"], ["three"]], size=(0, 0, 200, 100))
    with RunPodSimulator() as sim:
        try:
            ocrclient.convert(
                pdf, backend="runpod-chandra", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                api_key="rp_wrong_key_12345", cache=False, render={"dpi": 36},
                transport_options={"poll_interval_s": 0.05},
            )  # fmt: skip
        except AuthError as exc:
            assert isinstance(exc, RunAborted)
            assert "401" in str(exc) and "rp_wrong_key_12345" not in str(exc)
            assert exc.documents and all(p.status == "failed" for p in exc.documents[0].pages)
        else:
            pytest.fail("a refused key did not raise")
        assert sim.jobs_submitted == 0


# ---------------------------------------------------------------------------------------------
# the dialect seam as the scheduler drives it
# ---------------------------------------------------------------------------------------------


class _Script:
    """A transport answering from a script, one item per call (an exception is raised); it
    records every request it was sent."""

    def __init__(self, *items: object) -> None:
        self.items = list(items)
        self.requests: list[ModelRequest] = []

    async def send(self, request: ModelRequest) -> ModelReply:
        self.requests.append(request)
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, ModelReply)
        return item

    async def health(self) -> Health:
        return Health(True, "script")

    async def aclose(self) -> None:
        return None


async def test_a_decision_of_the_dialect_survives_a_transient_error_between_attempts() -> None:
    """olmOCR asks for a quarter turn; the turned attempt times out; the next attempt is still
    sent turned.  The decision travels in the request (``context``) and the scheduler hands it
    to the next attempt (``Attempt.previous_context``): the dialect keeps no per-page state."""
    from ocrclient.dialects.olmocr import OlmOCRDialect
    from ocrclient.errors import TransientError

    fm = "---\nprimary_language: en\nis_rotation_valid: {}\nrotation_correction: {}\nis_table: False\nis_diagram: False\n---\n"
    t = _Script(
        ModelReply(fm.format("False", 90) + "sdrawkcab", finish_reason="stop"),
        TransientError("timed out", cause="timeout"),
        ModelReply(fm.format("True", 0) + "upright text", finish_reason="stop"),
    )
    dialect = OlmOCRDialect(model="m", max_attempts=4)
    backend = make_backend(t, dialect, max_attempts=4)
    doc = await Scheduler(backend, **FAST).run_document("doc.pdf", page_stream(1))  # type: ignore[arg-type]
    assert doc.pages[0].status == "ok" and doc.pages[0].markdown == "upright text"
    assert [r.frame.rotation for r in t.requests if r.frame] == [0, 270, 270]
    assert [r.context["olmocr_rotation"] for r in t.requests] == [0, 90, 90]


async def test_the_scheduler_stamps_page_and_source_and_hands_parse_the_request() -> None:
    """One owner of the stamps: the dialect's request has no page/source, the transport sees
    the scheduler's; ``parse`` gets the very request that was sent."""
    seen: list[tuple[ModelRequest, ModelRequest]] = []

    class Recording(FakeDialect):
        def build(self, page, attempt):  # type: ignore[no-untyped-def]
            request = super().build(page, attempt)
            assert request.page is None and request.source is None
            return request

        def parse(self, reply, request):  # type: ignore[no-untyped-def]
            seen.append((request, t.requests[-1]))
            return super().parse(reply, request)

    t = _Script(*[ModelReply(f"page {i}", finish_reason="stop") for i in range(3)])
    doc = await sched(t, dialect=Recording(), concurrency=1).run_document("doc.pdf", page_stream(3))  # type: ignore[arg-type]
    assert [p.status for p in doc.pages] == ["ok"] * 3
    assert [(r.source, r.page) for r in t.requests] == [("doc.pdf", 1), ("doc.pdf", 2), ("doc.pdf", 3)]
    assert all(parsed is sent for parsed, sent in seen)


async def test_a_parser_bug_is_bad_output_once_for_every_dialect() -> None:
    """Any exception out of ``parse`` (a dialect bug) is turned into bad output by the scheduler
    — the one place that wraps parse errors: retried, then the page fails with the cause."""

    class Buggy(FakeDialect):
        def parse(self, reply, request):  # type: ignore[no-untyped-def]
            raise KeyError("a bug")

    t = _Script(*[ModelReply("text", finish_reason="stop") for _ in range(2)])
    doc = await sched(t, dialect=Buggy(), max_attempts=2).run_document("doc.pdf", page_stream(1))  # type: ignore[arg-type]
    page = doc.pages[0]
    assert page.status == "failed" and page.attempts == 2
    assert page.error is not None and page.error.cause == "parser_error" and "KeyError" in page.error.message


class _AnsweredThenHung:
    """Page 1 is answered (its write reported, as the HTTP transports do); every later page is
    written and then never answered.  As page 1's reply is handed back, ``on_answer`` runs."""

    def __init__(self, text: str, on_answer: Callable[[], None]) -> None:
        self.text, self.on_answer = text, on_answer
        self.sends: Counter[int] = Counter()

    async def send(self, request: ModelRequest) -> ModelReply:
        page = int(request.body["page"])
        self.sends[page] += 1
        written.request_written()
        if page != 1:
            await asyncio.Event().wait()
        self.on_answer()
        return ModelReply(text=self.text, finish_reason="stop")

    async def health(self) -> Health:
        return Health(True, "fake")

    async def aclose(self) -> None:
        pass


def _cancel_after(task: asyncio.Task[Any], *, turns: int = 0, seconds: float = 0.0) -> None:
    """Cancel ``task`` after ``turns`` turns of the event loop, or after ``seconds``."""
    loop = asyncio.get_running_loop()
    if seconds:
        loop.call_later(seconds, task.cancel)
        return

    def turn(left: int) -> None:
        if left == 0:
            task.cancel()
        else:
            loop.call_soon(turn, left - 1)

    turn(turns)


# every moment from the reply's arrival to the page's collection: waiting for the next page's
# write, the parse (on the loop for a short reply, in a thread for a long one), the page waiting
# in the queue for the collector
_MOMENTS = [*(("short", {"turns": n}) for n in range(12)),
            *(("long", {"turns": n}) for n in range(12)),
            *(("long", {"seconds": s}) for s in (0.001, 0.005, 0.02))]


@pytest.mark.parametrize(("reply", "when"), _MOMENTS)
async def test_a_cancel_after_a_reply_arrived_keeps_its_page(reply: str, when: dict[str, Any]) -> None:
    """A page whose reply is in hand (paid for) is never reported cancelled: a cancel (Ctrl-C)
    at any moment after the reply arrived still parses it and keeps it; nothing more is sent."""
    text = "text of doc.pdf#1" if reply == "short" else "x" * (OFF_LOOP_REPLY_CHARS * 4)
    box: list[asyncio.Task[Any]] = []
    t = _AnsweredThenHung(text, lambda: _cancel_after(box[0], **when))
    s = sched(t, concurrency=1)  # type: ignore[arg-type]
    box.append(asyncio.create_task(s.run_document("doc.pdf", page_stream(3))))
    with pytest.raises(asyncio.CancelledError):
        await box[0]
    pages = {p.page: p for p in s.partial[0].pages}
    assert pages[1].status == "ok" and pages[1].markdown == text, pages[1]
    assert all(p.status == "failed" and p.error and p.error.kind == "cancelled" for n, p in pages.items() if n != 1)
    assert t.sends[1] == 1 and t.sends[2] <= 1 and t.sends[3] == 0  # no retry, nothing after the cancel
    assert [x for x in asyncio.all_tasks() if x is not asyncio.current_task()] == []


class _SlowCache(PageCache):
    """A page cache whose write takes 50 ms (a slow disk's fsync)."""

    def put(self, key: str, page: Any) -> None:
        time.sleep(0.05)
        super().put(key, page)


@pytest.mark.parametrize("when", [*({"turns": n} for n in range(10)), *({"seconds": s} for s in (0.001, 0.01, 0.03, 0.045))])
async def test_a_cancel_while_a_finished_page_is_cached_keeps_its_page(when: dict[str, Any], tmp_path: Path) -> None:
    """A page done and being written to the resume cache when the run was cancelled (Ctrl-C): the
    write ended in its thread, but the page was reported cancelled and left out of the outputs
    (about one Ctrl-C in three on a real run).  Every moment of the write: the page is kept, and
    it is in the cache."""
    cache = _SlowCache(tmp_path)
    box: list[asyncio.Task[Any]] = []
    t = _AnsweredThenHung("text of doc.pdf#1", lambda: _cancel_after(box[0], **when))
    s = sched(t, concurrency=1, cache=cache)  # type: ignore[arg-type]
    box.append(asyncio.create_task(s.run_document("doc.pdf", page_stream(3))))
    with pytest.raises(asyncio.CancelledError):
        await box[0]
    pages = {p.page: p for p in s.partial[0].pages}
    assert pages[1].status == "ok" and pages[1].markdown == "text of doc.pdf#1", pages[1]
    assert all(p.status == "failed" and p.error and p.error.kind == "cancelled" for n, p in pages.items() if n != 1)
    assert cache.writes == 1 and t.sends[1] == 1
    assert [x for x in asyncio.all_tasks() if x is not asyncio.current_task()] == []


def _later_failures() -> dict[str, Callable[[], object]]:
    """Every way an attempt can fail without stopping the run, besides bad output with text."""
    from ocrclient.errors import BadOutputError, PermanentError, TransientError

    return {
        "http_500": lambda: errors_mod.classify_status(500, "GPU fell over"),
        "http_503": lambda: errors_mod.classify_status(503, "busy"),
        "reset": lambda: TransientError("connection reset", cause="reset"),
        "timeout": lambda: TransientError("timed out", cause="timeout"),
        "unusable output": lambda: BadOutputError("not a page", cause="bad_reply"),
        "http_400": lambda: PermanentError("HTTP 400: bad request", cause="http_400", status=400),
    }


@pytest.mark.parametrize("later", sorted(_later_failures()))
async def test_text_a_truncated_attempt_returned_is_kept_whatever_fails_after_it(later: str) -> None:
    """The whole kind: attempt 1 returns text cut at ``max_tokens`` (paid for, kept degraded
    when nothing better comes), then every later attempt fails another way.  The page stays
    degraded with that text, its error the truncation, a warning naming the later failure.
    With one attempt it was kept; with more, a 5xx or a timeout at the end dropped it (``failed``,
    empty): allowing retries gave a worse result."""
    make = _later_failures()[later]
    t = _Script(ModelReply("# Invoice 42\n\nTotal: 1,250", finish_reason="length"), *[make() for _ in range(3)])
    doc = await sched(t, max_attempts=4).run_document("doc.pdf", page_stream(1))  # type: ignore[arg-type]
    page = doc.pages[0]
    assert page.status == "degraded", (later, page.status, page.error)
    assert page.markdown == "# Invoice 42\n\nTotal: 1,250"
    assert page.error is not None  # the truncation, or the later failure when that may pass (unsettled)
    if later in ("http_500", "http_503", "reset", "timeout"):
        assert page.error.kind == "transient", page.error
    else:
        assert page.error.cause == "length", page.error
    assert any("later attempt failed" in w for w in page.warnings), page.warnings
    assert any("truncated" in w for w in page.warnings), page.warnings
    assert page.attempts == (2 if later == "http_400" else 4)


async def test_the_latest_salvaged_text_is_kept_and_a_later_good_reply_wins() -> None:
    t = _Script(ModelReply("first cut", finish_reason="length"), ModelReply("second, longer cut", finish_reason="length"),
                errors_mod.classify_status(500, "down"))  # fmt: skip
    page = (await sched(t, max_attempts=3).run_document("doc.pdf", page_stream(1))).pages[0]  # type: ignore[arg-type]
    assert page.status == "degraded" and page.markdown == "second, longer cut"
    t = _Script(ModelReply("cut", finish_reason="length"), errors_mod.classify_status(500, "down"), ModelReply("whole page", finish_reason="stop"))
    page = (await sched(t, max_attempts=3).run_document("doc.pdf", page_stream(1))).pages[0]  # type: ignore[arg-type]
    assert page.status == "ok" and page.markdown == "whole page" and page.error is None
