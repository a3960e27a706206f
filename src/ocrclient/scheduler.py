"""Async page fan-out: concurrency, retries by cause, deadlines, cold starts, cancel, progress.

The scheduler is backend-agnostic and owns every retry (transports never retry).
Pages flow ``render -> build -> send -> parse -> geometry``; a slot of the concurrency limit is
held from send to reply, and :data:`BUILT_AHEAD` pages per slot are pulled from the page stream,
so a freed slot is refilled at once and rendered pages never pile up however long the document.

* **Errors by cause** – :class:`~ocrclient.errors.TransientError` is retried with jittered
  exponential backoff (tenacity), honouring ``Retry-After``; :class:`~ocrclient.errors.BadOutputError`
  is retried with the error handed back to the dialect (temperature ladder, rotation hint);
  :class:`~ocrclient.errors.PermanentError` fails the page at once; :class:`~ocrclient.errors.AuthError`
  and :class:`~ocrclient.errors.EndpointError` (an unknown endpoint id or model) stop the whole
  run at the first reply.  Attempts per page and total time per page are capped.
* **Deadlines** – each attempt has a timeout; until the backend has read a page, attempts get what
  is left of one cold-start allowance, counted from the run's first page sent (:meth:`Scheduler._cold_left`).
* **Adaptive concurrency** – AIMD: a 429 halves the limit, successes climb back by one slot per
  window; the user's limit is the ceiling.  A 5xx is the server's failure: retried, the limit kept.
* **Writes first** – a reply is parsed once the page waiting for the slot it freed is sent
  (:class:`~ocrclient.concurrency.WritesFirst`).
* **Cancel** – cancelling the run cancels in-flight attempts (transports cancel remote jobs), the
  pages that finished are kept in :attr:`Scheduler.partial`, unfinished pages are marked failed
  (with the requests they sent and what those cost).
  A page whose reply had arrived is parsed to its end and kept (its GPU time is paid for).
* **Resume** – finished pages go to the :class:`~ocrclient.cache.PageCache` as read (their
  markdown with the page furniture beside), then take the run's output options
  (``--keep-furniture``: :meth:`Page.as_made`); a rerun sends none, nor does a page like one
  being read meanwhile (it waits for it, then reads it from the cache).

It owns a request's ``page``/``source`` stamps and turns a dialect's parser bug into bad output.
Beside it: the retry policy (:mod:`ocrclient.retries`), the AIMD limit (:mod:`ocrclient.concurrency`),
progress events (:mod:`ocrclient.events`), box mapping (:mod:`ocrclient.geometry`).

Example::

    backend = load_backend("runpod-chandra")
    sched = Scheduler(backend, on_event=print)
    doc = await sched.run_document("a.pdf", aiter_pages("a.pdf", backend.render))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import events
from .cache import PageCache, keeps_furniture, page_key_for
from .concurrency import AdaptiveLimiter, Collections, FirstWindow, WritesFirst
from .document import Document, Page, PageError, RunStats, Usage
from .errors import (
    RUN_STOPPING,
    BadOutputError,
    CancelledRunError,
    EndpointDownError,
    InputError,
    OcrError,
    PermanentError,
    RunAborted,
    TransientError,
)
from .events import DocumentDone, Event, PageDone, PageFailed, PageRetried, PageStarted
from .geometry import content_to_blocks
from .loops import despite_cancel
from .models import Attempt, ModelReply, ModelRequest, PageContent, PageImage
from .recall import Recall
from .registry import Backend
from .retries import PageTries, Reachability, page_retrying
from .secrets import redact
from .transports.limits import MAX_TOKEN_COUNT, request_max_tokens, seconds, token_count
from .twins import Twins

log = logging.getLogger(__name__)

#: replies longer than this are parsed in a worker thread: the event loop never waits for one
OFF_LOOP_REPLY_CHARS = 64 * 1024
#: pages in hand per request slot: one sent, one built and waiting for the slot (with one, a
#: freed slot waited for the parses of a whole round of replies: 0.05 s mean at 8 slots)
BUILT_AHEAD = 2

__all__ = ["ABORTS_RUN", "AdaptiveLimiter", "DocumentDone", "DocumentJob", "Event", "PageDone", "PageFailed",
           "PageRetried", "PageStarted", "RunAborted", "Scheduler", "content_to_blocks"]  # fmt: skip

#: the errors that stop a whole run (not just the page) at the first reply that carries one:
#: a refused key, an endpoint that cannot serve the backend (errors.py), an endpoint gone too long
ABORTS_RUN: tuple[type[OcrError], ...] = (*RUN_STOPPING, EndpointDownError)


@dataclass
class DocumentJob:
    """One document to process: its name, its page stream and, when known, the page numbers the
    stream will yield (so pages never reached before a cancel are still reported)."""

    source: str
    pages: AsyncIterable[PageImage]
    expected_pages: Sequence[int] | None = None


@dataclass
class _Run:
    """Per-document bookkeeping."""

    job: DocumentJob
    pages: dict[int, Page] = field(default_factory=dict)
    inflight: dict[int, PageImage] = field(default_factory=dict)
    #: the attempts of each page in flight (what a page the run stops under sent and spent)
    tries: dict[int, PageTries] = field(default_factory=dict)
    submitted: int = 0
    started: float = field(default_factory=time.monotonic)


class Scheduler:
    """Fans pages of one or many documents out to one backend.

    ``concurrency`` overrides the profile's limit; ``cache`` (a :class:`PageCache`) enables
    resume; ``on_event`` receives every :data:`Event`.  Backoff timing can be tuned for tests
    with ``backoff_initial_s`` / ``backoff_max_s``.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        concurrency: int | None = None,
        cache: PageCache | None = None,
        on_event: Callable[[Event], None] | None = None,
        max_attempts: int | None = None,
        attempt_timeout_s: float | None = None,
        page_deadline_s: float | None = None,
        cold_start_s: float | None = None,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        timeout_grace_s: float = 5.0,
        unreachable_s: float | None = None,
        limiter: AdaptiveLimiter | None = None,
    ) -> None:
        cfg = backend.config
        self.backend = backend
        self.dialect, self.transport = backend.dialect, backend.transport
        #: a GPU-second's price: a pool's members' (when they agree: they are billed), else the profile's
        self._price = getattr(self.transport, "price_per_gpu_second", None) or backend.config.price_per_gpu_second
        self._reports_writes = bool(getattr(self.transport, "reports_writes", False))
        self.cache = cache
        self.recall: Recall | None = None  # (the run's: rendered pages' recall entries are written)
        self._keep_furniture = keeps_furniture(cfg)  # (an output option: the cache holds both markdowns)
        self.on_event = on_event
        self._deliver = events.EventDelivery()
        self._twins: Twins[tuple[str, Page]] = Twins()  # pages alike in flight: one read, its failure shared
        #: requests at the backend, send to reply (a client's ``limiter`` is shared by its runs)
        self.limiter = limiter or AdaptiveLimiter(concurrency or cfg.concurrency)
        #: pages taken from the streams and not finished (:data:`BUILT_AHEAD` per slot; shared with the limiter)
        self._admitted = self.limiter.admission(BUILT_AHEAD)
        self.max_attempts = max_attempts or cfg.max_attempts
        self.attempt_timeout_s = attempt_timeout_s or cfg.attempt_timeout_s
        self.page_deadline_s = page_deadline_s or cfg.page_deadline_s
        self.cold_start_s = cfg.cold_start_s if cold_start_s is None else cold_start_s
        self.backoff_initial_s, self.backoff_max_s, self.timeout_grace_s = backoff_initial_s, backoff_max_s, timeout_grace_s
        self._warm = self.cold_start_s <= 0
        self._cold_from: float | None = None  # (the run's first page sent: its cold start counts from there)
        #: how long the endpoint may find no server before the run stops (see :mod:`.retries`)
        url = getattr(self.transport, "api_url", None) or getattr(self.transport, "base_url", None)
        self._reach = Reachability(unreachable_s or cfg.unreachable_s, url if isinstance(url, str) else None)
        self._window = FirstWindow()  # what only the replies need waits for it
        self._sending = asyncio.Event()  # (each run makes its own: see run_documents)
        self._writes = WritesFirst()  # a freed slot's next request goes out before the parse
        self._abort: OcrError | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._gc = Collections()  # (its fed_all: the run's feeder has sent its last page)
        #: the run's retries by cause, and each document's (by its source)
        self.retries_by_cause: Counter[str] = Counter()
        self._retries_of: dict[str, Counter[str]] = {}
        #: from document :attr:`partial_from` on: the last finished, not yet handed over for sure (after a cancel or abort: every one left, as far as it got)
        self.partial: list[Document] = []
        self.partial_from = 0
        #: how a document stopped part-way is reported, by its number (document mode: split in pages)
        self.report_partial: Callable[[int, Document], Document] | None = None
        #: the events ``on_event`` is told for one of the run's (document mode: a job's as its pages')
        self.events_of: Callable[[Event], Iterable[Event]] | None = None

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            for each in (event,) if self.events_of is None else self.events_of(event):
                self._deliver(self.on_event, each)  # (a broken callback never loses a page)

    # -- public API -----------------------------------------------------------------------
    async def run_document(self, source: str, pages: AsyncIterable[PageImage]) -> Document:
        """Process one document's page stream; returns the Document with pages in order."""
        (doc,) = [d async for d in self.run_documents([DocumentJob(source, pages)])]
        return doc

    async def run_documents(self, documents: Sequence[DocumentJob]) -> AsyncGenerator[Document, None]:
        """Process several documents through one shared concurrency limit, yielding each
        :class:`Document` (pages in order) as soon as its last page is done, in input order."""
        # closed with this generator, not when collected: a caller stopping early ends the run now
        async with contextlib.aclosing(self._run(documents, per_page=False)) as items:
            async for item in items:
                assert isinstance(item, Document)
                yield item

    async def iter_pages(self, source: str, pages: AsyncIterable[PageImage],
                         expected_pages: Sequence[int] | None = None) -> AsyncGenerator[Page, None]:  # fmt: skip
        """Pages of one document as they complete (not in order) — for streaming callers;
        ``expected_pages`` as a :class:`DocumentJob`'s (a stopped run's document holds them all)."""
        job = DocumentJob(source, pages, expected_pages=expected_pages)
        async with contextlib.aclosing(self._run([job], per_page=True)) as items:
            async for item in items:
                if isinstance(item, Page):
                    yield item

    # -- internals ------------------------------------------------------------------------
    async def _run(self, documents: Sequence[DocumentJob], *, per_page: bool) -> AsyncGenerator[Document | Page, None]:
        runs = [_Run(job) for job in documents]
        self._gc.fed_all = False
        results: asyncio.Queue[tuple[int, Page] | None] = asyncio.Queue()
        self._deliver.wake = lambda: results.put_nowait(None)  # (a callback's sys.exit stops the run)
        feeding_done = [False] * len(documents)
        feed_error: list[BaseException] = []

        async def feed() -> None:
            try:
                for i, run in enumerate(runs):
                    run.started = time.monotonic()
                    async for page in run.job.pages:
                        if self._abort is not None:
                            break
                        await self._admitted.acquire()
                        run.submitted += 1
                        self._window.take()
                        run.inflight[page.number], run.tries[page.number] = page, PageTries()
                        task = asyncio.create_task(self._page_task(i, page, results, run.tries[page.number]))
                        self._tasks.add(task)
                        task.add_done_callback(self._page_ended)
                    feeding_done[i] = True
                    await results.put(None)  # wake the collector to re-check completion
                self._gc.fed_all = True
                self._window.all_taken(self.limiter)
            except Exception as exc:  # the page stream broke: surface it to the collector
                feed_error.append(exc)
                await results.put(None)

        self._sending = asyncio.Event()  # set by the first page that is not in the cache
        warming = asyncio.create_task(self._warm_up(self._sending))
        feeder = asyncio.create_task(feed())
        next_doc = 0

        def collect(item: tuple[int, Page]) -> Page:
            idx, page = item
            runs[idx].pages[page.page] = page
            runs[idx].inflight.pop(page.page, None)
            runs[idx].tries.pop(page.page, None)
            return page

        try:
            while next_doc < len(runs):
                item = await results.get()
                if item is not None:
                    page = collect(item)
                    if per_page:
                        yield page
                self._deliver.check()
                if self._abort is not None:
                    raise self._abort
                if feed_error:
                    raise feed_error[0]
                while next_doc < len(runs) and feeding_done[next_doc] and (
                    len(runs[next_doc].pages) >= runs[next_doc].submitted
                ):
                    run = runs[next_doc]
                    doc = self._document(run, time.monotonic() - run.started)
                    # kept until the next is asked for (a stop then reports it); the ones before were handed over
                    self.partial, self.partial_from = ([*self.partial, doc], 0) if per_page else ([doc], next_doc)
                    self._emit(DocumentDone(doc.source, doc))
                    if not per_page:
                        yield doc
                    next_doc, run.pages = next_doc + 1, {}  # (handed over: the run lets its pages go)
        except BaseException as exc:
            await self._cancel_all(feeder)
            while not results.empty():  # pages that finished but were not collected yet: kept
                left = results.get_nowait()
                if left is not None:
                    collect(left)
            reason: OcrError = exc if isinstance(exc, OcrError) else CancelledRunError("cancelled before it finished")
            self._keep_partial(runs, next_doc, reason)
            if isinstance(exc, ABORTS_RUN) and not isinstance(exc, RunAborted):
                raise RunAborted(exc, self.partial) from None
            raise
        finally:
            stopped = [task for task in (feeder, warming) if task.cancel()]  # False: it was done
            await asyncio.gather(*stopped, return_exceptions=True)

    async def _warm_up(self, sending: asyncio.Event) -> None:
        """The backend's warm-up (see ``Backend.warm_up``); with a cache, once a page is to be
        sent: a rerun served from it sends nothing (the OpenAI transport's read of /v1/models
        may start a container scaled to zero)."""
        if self.cache is not None:
            await sending.wait()
        await self.backend.warm_up(self._window.out, self._writes)

    def _keep_partial(self, runs: list[_Run], first: int, reason: OcrError) -> None:
        """The run stopped: its documents from number ``first`` on, as far as they got, in
        :attr:`partial` (unfinished pages failed with ``reason``)."""
        report = self.report_partial or (lambda i, doc: doc)
        self.partial = [
            report(first + i, self._document(r, time.monotonic() - r.started, unfinished=reason))
            for i, r in enumerate(runs[first:])
        ]
        self.partial_from = first

    async def _cancel_all(self, feeder: asyncio.Task[Any]) -> None:
        tasks = [*self._tasks, feeder]
        for t in tasks:
            t.cancel()
        # transports send their remote cancels while unwinding; wait for them (bounded)
        await asyncio.wait(tasks, timeout=15.0)

    def _page_ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)  # a task cancelled before it ran runs no finally: its permit (a client's) goes back here
        self._admitted.release()

    async def _page_task(
        self, doc_index: int, page: PageImage, results: asyncio.Queue[tuple[int, Page] | None], tries: PageTries
    ) -> None:
        try:
            result = await self._process(page, tries)
        except ABORTS_RUN as exc:
            self._abort = exc
            result = self._failed_page(page, exc, tries.sent, tries.usage)
        except Exception as exc:  # a defect (ours, a plugin's): the page fails; the run never waits for it
            log.error("page %s of %s: %s: %s", page.number, page.source, type(exc).__name__, redact(str(exc)),
                      exc_info=log.isEnabledFor(logging.DEBUG))  # fmt: skip
            result = self._failed_page(page, exc, tries.sent, tries.usage)
        await results.put((doc_index, result))
        self._gc.page_done()

    def _failed_page(self, page: PageImage, err: BaseException | PageError, attempts: int, usage: Usage | None = None,
                     kept: Page | None = None) -> Page:  # fmt: skip
        error = err if isinstance(err, PageError) else PageError.of(err)
        spent = {"usage": usage.priced(self._price)} if usage is not None else {}  # (failed attempts are paid for too)
        if kept is not None:  # sent again for --retry-degraded, in vain: its earlier reading stays, never a worse one
            out = kept.model_copy(update={"page": page.number, "cached": True, "attempts": attempts, **spent, "warnings": [
                *kept.warnings, f"sent again (--retry-degraded) and failed: {error.message}; the earlier reading is kept"]}).as_made(self._keep_furniture)
            self._emit(PageDone(page.source, page.number, out.status, attempts, 0.0, True, out))
            return out
        self._emit(PageFailed(page.source, page.number, error, attempts))
        return Page(page=page.number, status="failed", error=error, attempts=attempts, **spent, **page.page_box.page_fields())

    def _cache_key(self, page: PageImage) -> str | None:
        if page.recalled is not None:
            return page.recalled[0]
        return None if self.cache is None or page.encoded is None else page_key_for(page, self.backend.config, self.dialect)

    async def _process(self, page: PageImage, tries: PageTries) -> Page:
        """``page`` read, once no page like it is (:mod:`.twins`): from the cache, or failed as it failed."""
        key = self._cache_key(page)
        if (earlier := await self._twins.wait(key)) is not None and (error := earlier[1].error) is not None:
            where = f"page {earlier[1].page}" + ("" if earlier[0] == page.source else f" of {earlier[0]}")
            self._window.start(self.limiter)  # (it needs no request)
            return self._failed_page(page, error.model_copy(update={"message": f"{error.message} (as {where}, the same page: not sent again)"}), 0,
                                     kept=self._kept(key))  # fmt: skip
        reading, out = self._twins.begin(key), None
        try:
            out = await self._read(page, key, tries)
            return out
        finally:
            self._twins.end(key, reading, (page.source, out) if out is not None and out.status == "failed" else None)

    async def _read(self, page: PageImage, key: str | None, tries: PageTries) -> Page:
        if page.encoded is None and page.recalled is None:
            self._window.start(self.limiter)  # (it needs no request)
            return self._failed_page(page, InputError(page.error or "page could not be rendered", cause="render"), 0)
        if (hit := self._cached(page, key)) is not None:
            if self.recall is not None and page.recalled is None and key is not None:  # (rendered, found: off the loop)
                await asyncio.to_thread(self.recall.remember, page, key)  # (the next run recalls it)
            self._window.start(self.limiter)
            return hit
        self._sending.set()
        started, kept = time.monotonic(), self._kept(key)
        deadline = started + self.page_deadline_s + self._cold_left()
        try:
            page_out = await self._tries(page, deadline, tries)
        except ABORTS_RUN as exc:  # the run stops: this page failed with what it sent and spent
            self._abort = self._abort or exc
            return self._failed_page(page, exc, tries.sent, tries.usage, kept)
        except OcrError as exc:
            if tries.salvaged is None:
                return self._failed_page(page, exc, tries.sent, tries.usage, kept)
            # no attempt was usable, but one said something (paid for): kept, degraded, whatever came after
            salvaged, why = tries.salvaged
            later = [] if exc is why else [f"a later attempt failed: {exc.message}"]
            err = exc if exc.kind == "transient" else why  # (one that may pass: a rerun tries again)
            page_out = salvaged.model_copy(update={"status": "degraded", "error": PageError.of(err),
                                                   "warnings": [*salvaged.warnings, *later]})  # fmt: skip
        page_out = page_out.model_copy(update={"attempts": tries.sent, "latency_s": round(time.monotonic() - (tries.first_sent_at or started), 4),
                                               "usage": tries.usage.priced(self._price)})  # fmt: skip
        self._warm = True
        if key is not None and self.cache is not None:  # (its write and fsync off the event loop)
            # the page is done: a cancel during its write lets the write end, as a reply in hand (_attempt)
            writing = asyncio.ensure_future(asyncio.to_thread(self._store, self.cache, page, key, page_out))
            await despite_cancel(writing)
            writing.result()
        page_out = page_out.as_made(self._keep_furniture)
        self._emit(PageDone(page.source, page.number, page_out.status, tries.sent, page_out.latency_s, False, page_out))
        return page_out

    def _cold_left(self) -> float:
        """What is left of the backend's cold start, one allowance for the run from its first page
        sent until a page is read (an endpoint answering 503 to all gave each page all of it)."""
        self._cold_from = self._cold_from or time.monotonic()
        return 0.0 if self._warm else max(0.0, self.cold_start_s - (time.monotonic() - self._cold_from))

    def _kept(self, key: str | None) -> Page | None:
        """The degraded reading in the cache that ``--retry-degraded`` sends again (``None``: none)."""
        return self.cache.get(key, kept=True) if key is not None and self.cache is not None and self.cache.retry_degraded else None

    def _store(self, cache: PageCache, page: PageImage, key: str, page_out: Page) -> None:
        """A read page into the cache, and its recall entry (:mod:`.recall`): off the event loop."""
        cache.put(key, page_out)
        if self.recall is not None:
            self.recall.remember(page, key)

    def _cached(self, page: PageImage, key: str | None) -> Page | None:
        """The page from the resume cache (recalled: already read from it), or ``None``."""
        hit = page.recalled[1] if page.recalled is not None else (
            self.cache.get(key, furniture=self._keep_furniture) if key is not None and self.cache is not None else None)
        if hit is None:
            return None
        hit = hit.model_copy(update={"page": page.number, "cached": True}).as_made(self._keep_furniture)
        self._emit(PageDone(page.source, page.number, hit.status, 0, 0.0, True, hit))
        return hit

    async def _tries(self, page: PageImage, deadline: float, tries: PageTries) -> Page:
        """Attempt ``page`` until one attempt gives a page, retried by cause
        (:func:`~ocrclient.retries.page_retrying`); what went before is in ``tries``."""
        # the retry state is a reference cycle: its closures must not hold `page` (its image lived on)
        source, number = page.source, page.number

        def on_retry(exc: OcrError, attempt: int, delay: float) -> None:
            self.retries_by_cause[exc.cause] += 1
            self._retries_of.setdefault(source, Counter())[exc.cause] += 1
            self._emit(PageRetried(source, number, attempt, exc.kind, exc.cause, exc.message, delay))

        free = [False]  # the last attempt's verdict (Reachability.after), read by the retry's stop
        retrying = page_retrying(
            max_attempts=self.max_attempts,
            deadline=deadline,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
            on_retry=on_retry,
            free=lambda exc: free[0],  # (it found no server, and none answered meanwhile: see Reachability)
        )
        async for state in retrying:
            started = time.monotonic()
            with state:
                tries.number, tries.handed, tries.written = state.retry_state.attempt_number, False, False
                page_out, usage = await self._attempt(page, tries, deadline)
                tries.usage = tries.usage.add(usage)
            outcome = state.retry_state.outcome
            exc = outcome.exception() if outcome is not None and outcome.failed else None
            cut = isinstance(exc, asyncio.CancelledError) and not tries.written and self._reports_writes  # (cut while being written)
            tries.unsent += exc is not None and (not tries.handed or cut or bool(getattr(exc, "unsent", False)))  # (it never reached a server)
            if isinstance(exc, OcrError):
                tries.last_error, tries.usage = exc, tries.usage.add(exc.spent or Usage())
                if isinstance(exc, BadOutputError) and getattr(exc, "partial_page", None) is not None:
                    tries.salvaged = (exc.partial_page, exc)  # type: ignore[attr-defined]
            free[0], down = self._reach.after(exc, started)
            tries.free += free[0]
            if down is not None:  # the endpoint has been gone too long: the run stops
                raise down
        return page_out

    def _page_from(self, page: PageImage, content: PageContent, request: ModelRequest, warnings: list[str]) -> Page:
        """The page as read (its markdown without the furniture, with it beside: the cache keeps both)."""
        try:
            blocks = content_to_blocks(content, request, page)
        except (ValueError, TypeError) as exc:
            blocks, warnings = [], [*warnings, f"boxes dropped: {exc}"]
        out = Page(page=page.number, status="degraded" if warnings else "ok", warnings=warnings,
                   markdown=content.markdown, blocks=blocks, **page.page_box.page_fields())  # fmt: skip
        out._furniture_markdown = content.furniture_markdown
        return out

    async def _attempt(self, page: PageImage, tries: PageTries, deadline: float) -> tuple[Page, Usage]:
        """One attempt: build, stamp, send, parse; raises the attempt's error by cause."""
        attempt = Attempt(tries.number - tries.free, tries.last_error, dict(tries.context))
        try:
            request = await asyncio.to_thread(self.dialect.build, page, attempt)
        except OcrError:
            raise
        except Exception as exc:  # a dialect bug fails this page, not the run
            raise PermanentError(
                f"request could not be built: {type(exc).__name__}: {exc}", cause="build_error"
            ) from exc
        tries.context = request.context  # what the dialect decided, for the next attempt
        request.page, request.source = page.number, page.source
        async with self.limiter:  # a slot at the backend, from send to reply
            budget = self.attempt_timeout_s + self._cold_left()
            remaining = deadline - time.monotonic()
            if self._abort is not None or remaining <= 0:  # not sent (attempts are the requests sent):
                # the run stops (a 401...), or the deadline passed (the last error says on what)
                last = f" after {tries.sent - 1} attempt(s); the last: {tries.last_error}" if tries.last_error else ""
                raise self._abort or TransientError(f"page deadline passed{last}", cause="deadline")
            request.timeout_s = min(budget, remaining)
            self._window.start(self.limiter)
            tries.first_sent_at = tries.first_sent_at or time.monotonic()
            self._emit(PageStarted(page.source, page.number, attempt.number))
            if self._deliver.stopped_by is not None:  # a callback ended the program (on this event or one before): not sent
                raise asyncio.CancelledError
            tries.handed = True
            with self._writes.writing(lambda: setattr(tries, "written", True)):
                reply = await self._send(request)
            tries.written = True  # (a reply in hand: written, whether the transport says so or not)
        # The reply is in hand, and paid for.  A cancel from here on still parses it (bounded by
        # the reply caps) and keeps its page, which then stops (the cancel wins over a retry).
        cancelled = False
        try:
            await self._writes.after_reply(self.limiter)
        except asyncio.CancelledError:
            cancelled = True
        # a number a server sent stays sane; no reply has more tokens than its request allowed
        most = request_max_tokens(request) or MAX_TOKEN_COUNT
        usage = Usage(
            prompt_tokens=token_count(reply.prompt_tokens),
            completion_tokens=min(token_count(reply.completion_tokens), most),
            gpu_seconds=seconds(reply.gpu_seconds),
            queue_seconds=seconds(reply.queue_seconds),
        )
        try:
            if len(reply.text or "") > OFF_LOOP_REPLY_CHARS:  # parsing it takes a while: not on the loop
                parsing = asyncio.ensure_future(asyncio.to_thread(self._parse, reply, page, request))
                cancelled = await despite_cancel(parsing) or cancelled
                out = parsing.result()
            else:
                out = self._parse(reply, page, request)
        except OcrError as exc:
            exc.spent = usage  # (paid for, though not used)
            if cancelled:
                raise asyncio.CancelledError from None
            raise
        if not cancelled:
            await self.limiter.success()
        return out, usage

    async def _send(self, request: ModelRequest) -> ModelReply:
        """The transport's reply, within the attempt's time; any failure as an OcrError."""
        assert request.timeout_s is not None
        try:  # (awaited in this task, not a new one: no other task runs between the checks above and the send)
            async with asyncio.timeout(request.timeout_s + self.timeout_grace_s):
                return await self.transport.send(request)
        except TimeoutError:
            raise TransientError(f"no reply within {request.timeout_s:.1f} s (the attempt's time: timeout, or what was left of page_deadline_s)", cause="timeout") from None
        except TransientError as exc:
            if exc.status == 429:  # "too many requests": fewer in flight (AIMD)
                self.limiter.congestion()
            raise  # (a 5xx is the server's failure, not a sign of too many: retried, the window kept)
        except OcrError:
            raise
        except Exception as exc:  # a transport bug must not lose the page
            raise TransientError(f"transport error: {type(exc).__name__}: {exc}", cause="transport_bug") from exc

    def _parse(self, reply: ModelReply, page: PageImage, request: ModelRequest) -> Page:
        """The dialect's reading of ``reply``, as a page (pure: may run in a worker thread)."""
        try:
            content = self.dialect.parse(reply, request)
            if reply.finish_reason == "length":
                raise BadOutputError("reply truncated at max_tokens", cause="length", partial=content)
        except BadOutputError as exc:
            if isinstance(exc.partial, PageContent):
                exc.partial_page = self._page_from(  # type: ignore[attr-defined]
                    page, exc.partial, request, [*exc.partial.warnings, exc.message]
                )
            raise
        except OcrError:
            raise
        except Exception as exc:  # a parser bug is bad output, never a crash
            raise BadOutputError(f"reply could not be parsed: {type(exc).__name__}: {exc}", cause="parser_error") from exc
        return self._page_from(page, content, request, list(content.warnings))

    def _document(self, run: _Run, wall_s: float, unfinished: OcrError | None = None) -> Document:
        pages = dict(run.pages)
        if unfinished is not None:
            # pages in flight or never reached when the run stopped: failed, and said (one in flight had no last event)
            for number in sorted(set(run.inflight) | (set(run.job.expected_pages or ()) - set(pages))):
                tries = run.tries.get(number, PageTries())  # (the requests it sent, and what they cost)
                if (page := run.inflight.get(number)) is not None:  # (under --retry-degraded its earlier reading stays)
                    pages[number] = self._failed_page(page, unfinished, tries.sent, tries.usage, self._kept(self._cache_key(page)))
                    continue
                pages[number] = Page(page=number, status="failed", error=(said := PageError.of(unfinished)), attempts=tries.sent, usage=tries.usage.priced(self._price))
                self._emit(PageFailed(run.job.source, number, said, tries.sent))
        ordered = [pages[k] for k in sorted(pages)]
        return Document(source=run.job.source, backend=self.backend.name, model=self.backend.config.model,
                        pages=ordered, stats=self.stats(ordered, wall_s, run.job.source))  # fmt: skip

    def stats(self, pages: Sequence[Page], wall_s: float, source: str | None = None) -> RunStats:
        """The stats of ``pages``: with ``source``, that document's retries; else the run's."""
        retries = self.retries_by_cause if source is None else self._retries_of.get(source, Counter())
        return RunStats.of(pages, wall_s, retries)
