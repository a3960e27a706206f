"""A page's ``attempts`` are the requests it sent: an attempt cut before its request left (the
page deadline passed while the page waited out a backoff or a slot; the run stopped) is not
one (a 429 with Retry-After 1 s under a 3.5 s deadline sent 2 requests and said 3 attempts, and
the run's stats, ``ocr bench`` and the per-attempt cost counted the third)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import ocrclient
from ocrclient.testing import FaultPlan, OpenAISimulator

from .pdfgen import text_pdf

#: every way a page's attempts end on its deadline, and a run stopped by its server
PLANS = {
    "429 with Retry-After": (FaultPlan(rates={"http_429": 1.0}, retry_after_s=1.0), 2.5),
    "503": (FaultPlan(rates={"http_503": 1.0}), 2.5),
    "hang": (FaultPlan(rates={"hang": 1.0}, hang_s=30.0), 2.5),
    "reset": (FaultPlan(rates={"reset": 1.0}), 2.5),
    "401 stops the run": (FaultPlan(rates={"http_401": 1.0}), 30.0),
}


@pytest.mark.parametrize("name", sorted(PLANS))
def test_a_pages_attempts_are_the_requests_it_sent(name: str, tmp_path: Path) -> None:
    plan, deadline = PLANS[name]
    pdf = text_pdf(tmp_path / "three.pdf", [["one"], ["two"], ["three"]])
    with OpenAISimulator(model="m", plan=plan) as sim:
        try:
            doc = ocrclient.convert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key, model="m",
                                    cache=False, render={"dpi": 36}, concurrency=1, max_attempts=50,
                                    page_deadline_s=deadline, timeout=1.0,
                                    scheduler_options={"backoff_initial_s": 0.2, "backoff_max_s": 0.5})  # fmt: skip
        except ocrclient.RunAborted as stop:
            [doc] = stop.documents
        attempts = sum(p.attempts for p in doc.pages)
        # a try sent just before the page's deadline is read by the server a moment later (on
        # a busy machine, after the run has returned): its count is waited for, a few seconds
        settle = time.monotonic() + 5
        while sim.requests.get("POST /v1/chat/completions", 0) < attempts and time.monotonic() < settle:
            time.sleep(0.02)
        sent = sim.requests.get("POST /v1/chat/completions", 0)
    assert sent >= 1
    assert attempts == doc.stats.attempts, [p.attempts for p in doc.pages]
    if name == "reset":  # (a request whose write failed on a connection the server had just
        assert attempts >= sent  # reset is an attempt the server never read: under load, a few)
    else:
        assert attempts == sent, [p.attempts for p in doc.pages]
    for p in doc.pages:
        if p.error is not None and "after" in p.error.message:
            assert f"after {p.attempts} attempt(s)" in p.error.message, (p.attempts, p.error.message)


def test_every_error_a_page_can_end_with_has_a_kind_the_schema_lists() -> None:
    """``PageError.kind`` is one of the documented kinds whatever the page failed with: each of
    ocrclient's error classes, a plain ``OcrError`` (a plugin's; a page that could not be
    rendered said kind 'error'), a timeout, anything else."""
    import inspect

    from ocrclient import errors
    from ocrclient.document import PAGE_ERROR_KINDS, PageError

    made: list[BaseException] = [TimeoutError(), ValueError("x"), errors.OcrError("x")]
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.OcrError) and cls not in (errors.OutputError, errors.RunAborted):
            made.append(cls("x"))
    made.append(errors.RunAborted(errors.AuthError("x")))
    assert len(made) > 10
    for err in made:
        assert PageError.of(err).kind in PAGE_ERROR_KINDS, (type(err).__name__, PageError.of(err).kind)


def test_a_page_that_cannot_be_rendered_is_an_input_error(tmp_path: Path) -> None:
    from .pdfgen import blank_pdf

    pdf = blank_pdf(tmp_path / "thin.pdf", [(300, 200), (612, 0.5)])
    doc = ocrclient.convert(pdf, backend="local", cache=False, pages="2")
    [page] = doc.pages
    assert page.status == "failed" and page.error is not None
    assert (page.error.kind, page.error.cause) == ("input", "render"), page.error


@pytest.mark.serial  # (under the two processes' load its count was one off in 1 of 5 runs: not yet explained)
def test_tries_that_found_no_server_are_no_attempts(tmp_path: Path) -> None:
    """A server restarting (its port refusing connections for 2 s) after the first page: the
    second page's tries that found no server to connect to are waited out (they cost time, not
    pages) and are no requests: its attempts are the requests the server saw (it said 12, for 2
    requests, past max_attempts 3, and the run's stats 13 for 3)."""
    import threading

    pdf = text_pdf(tmp_path / "two.pdf", [["one"], ["two"]])
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.3)) as sim:

        def on_event(event: object) -> None:
            # as the second page's first try is about to go (PageStarted is told in its task,
            # before the request): the server goes down, and its port is closed before the try
            # goes.  (On PageDone of the first page, the second page's request could already be
            # on the kept-alive connection when the restart reset it: a request sent, rightly an
            # attempt, that the server never read.)
            if isinstance(event, ocrclient.PageStarted) and event.page == 2 and sim.restarts == 0:
                threading.Thread(target=sim.restart, args=(2.0,), daemon=True).start()
                deadline = time.monotonic() + 10
                while sim.restarts == 0 and time.monotonic() < deadline:
                    time.sleep(0.005)

        doc = ocrclient.convert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key, model="m",
                                concurrency=1, cache=False, max_attempts=3, on_event=on_event,
                                scheduler_options={"backoff_initial_s": 0.05, "backoff_max_s": 0.2})  # fmt: skip
        sent = sim.requests["POST /v1/chat/completions"]
    assert [p.status for p in doc.pages] == ["ok", "ok"]
    assert doc.stats.retries_by_cause.get("connection", 0) >= 2  # (it did meet a closed port)
    assert sum(p.attempts for p in doc.pages) == doc.stats.attempts == sent, ([p.attempts for p in doc.pages], sent)
    assert all(p.attempts <= 3 for p in doc.pages)


@pytest.mark.parametrize("cause", ["connection", "timeout", "reset", "http_503"])
@pytest.mark.parametrize("reports", [True, False])
@pytest.mark.parametrize("written_first", [True, False])
async def test_a_try_that_ended_before_its_request_was_written_is_no_attempt(
    cause: str, reports: bool, written_first: bool
) -> None:
    """Every way a try can end with an error, against whether its request was written: it is
    no request (``unsent``) when nothing of it was written and no server could have had it --
    no connection, or its time ran out before the request was whole (a try begun a moment
    before the page's deadline, on a busy machine, counted an attempt the server never saw) --
    but only from a transport known to report its writes (one that never does may well have
    sent it).  A try whose request was written, or that failed otherwise, is an attempt."""
    from ocrclient.concurrency import WritesFirst
    from ocrclient.errors import TransientError
    from ocrclient.transports import written

    writes = WritesFirst()
    if reports:  # an earlier request of the run was reported written
        with writes.writing():
            written.request_written()
    with pytest.raises(TransientError) as caught, writes.writing():
        if written_first:
            written.request_written()
        raise TransientError("the try failed", cause=cause)
    unsent = not written_first and (cause == "connection" or (cause in ("timeout", "reset") and reports))
    assert bool(getattr(caught.value, "unsent", False)) is unsent


class _Stopping(FaultPlan):
    """With ``refuse_third``, the third request the server reads is refused (401) and the others
    answered after 1.5 s; else the first page's request is answered at once and the others
    after 30 s."""

    def __init__(self, refuse_third: bool) -> None:
        super().__init__(latency_s=1.5 if refuse_third else 30.0)
        self.refuse_third, self.calls, self.first_key = refuse_third, 0, ""

    def draw(self, key: str) -> str | None:
        super().draw(key)  # (counted as every request is)
        with self._lock:
            self.calls += 1
            self.first_key = self.first_key or key
            return "http_401" if self.refuse_third and self.calls == 3 else None

    def latency(self, key: str) -> float:
        return 0.0 if key == self.first_key and not self.refuse_third else super().latency(key)


@pytest.mark.parametrize("stop", ["another page's key refused", "the call cancelled"])
async def test_pages_in_flight_when_the_run_stops_count_the_requests_they_sent(stop: str, tmp_path: Path) -> None:
    """The kind: every way a run stops with pages in flight that still hands back what it did
    (a page's 401 stops it: ``RunAborted.documents``; the call cancelled: the partial document
    its outputs writer wrote, as ``ocr convert`` writes on Ctrl-C or SIGTERM).  Each page in
    flight was sent once, and says so, as its ``PageFailed`` event does, and the stats count
    it.  They said 0 attempts (the run's own count dropped them), though the server had read
    their requests and, on a GPU, worked on them.  (A request cut while still being written, as
    its server could not yet read, is none: ``test_a_server_never_reached_stops_the_run...``.)"""
    import asyncio
    import json

    from ocrclient.exporters.sink import OutputWriter

    pdf = text_pdf(tmp_path / "three.pdf", [["one"], ["two"], ["three"]])
    events: list[ocrclient.Event] = []
    refused = stop.endswith("refused")
    settings = {"model": "m", "cache": False, "concurrency": 3, "render": {"dpi": 36}, "on_event": events.append}
    with OpenAISimulator(model="m", plan=_Stopping(refused)) as sim, OutputWriter(tmp_path / "out", ["json"]) as outputs:
        call = asyncio.ensure_future(ocrclient.aconvert(pdf, backend="openai", base_url=sim.base_url,
                                                        api_key=str(sim.api_key), outputs=outputs, **settings))  # fmt: skip
        if refused:
            with pytest.raises(ocrclient.RunAborted) as stopped:
                await call
            [doc] = stopped.value.documents
            pages = [(p.page, p.status, p.attempts) for p in doc.pages]
            assert doc.stats.attempts == 3
            assert [s for _, s, _ in pages] == ["failed"] * 3
        else:
            while sim.requests.get("POST /v1/chat/completions", 0) < 3 or not any(isinstance(e, ocrclient.PageDone) for e in events):
                await asyncio.sleep(0.02)  # the first page done, the others in flight
            await asyncio.sleep(0.3)  # (the server has read them: the client sees them written)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            written = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
            pages = [(p["page"], p["status"], p["attempts"]) for p in written["pages"]]
            assert written["stats"]["attempts"] == 3
            assert sorted(s for _, s, _ in pages) == ["failed", "failed", "ok"]  # (the first the server read: done)
        assert sim.requests.get("POST /v1/chat/completions", 0) == 3
    assert [(n, a) for n, _, a in pages] == [(1, 1), (2, 1), (3, 1)]
    failed = [e for e in events if isinstance(e, ocrclient.PageFailed)]
    assert sorted((e.page, e.attempts) for e in failed) == [(n, 1) for n, status, _ in pages if status == "failed"]


async def test_pages_in_flight_at_a_transport_that_never_says_written_count_as_sent() -> None:
    """The same stop through a transport that does not say when a request is written (the
    local engine's, a plugin's; here the suite's fake): a page it had in hand when the run was
    cancelled was sent (only a transport that says so can tell a request cut while still being
    written), and a page whose reply came before the cancel counts its request too."""

    from ocrclient.scheduler import Scheduler

    from .fakes import FakeTransport, cancel_with_in_flight, make_backend

    transport = FakeTransport(service_s=5.0)
    sched = Scheduler(make_backend(transport))
    await cancel_with_in_flight(sched, transport, pages=3, in_flight=3)
    [doc] = sched.partial
    assert [(p.page, p.status, p.attempts) for p in doc.pages] == [(1, "failed", 1), (2, "failed", 1), (3, "failed", 1)]
    assert doc.stats.attempts == 3
