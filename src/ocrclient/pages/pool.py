"""The render pool: a few workers that render pages, shared across documents.

By default the workers are threads of this process.  PDFium is not thread-safe, so
:func:`ocrclient.pages.render.render_job` holds :data:`~ocrclient.pages.render.PDFIUM_LOCK` only
while PDFium draws the page (a fifth of a page's time); the PNG encode, most of it, runs outside
the lock and outside the GIL, so two threads keep two cores busy with no process to start, no
second interpreter in memory and no page pickled between processes.  ``isolated=True`` renders
in worker processes instead, from the library's own fork server
(:func:`ocrclient.mpcontext.library_context`, which never runs the caller's ``__main__``): a
PDFium crash on a hostile PDF then stops the run with :class:`RenderPoolError` instead of taking
this process down.  ``workers=0`` renders inline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from PIL import Image

from ..errors import OcrError
from ..imaging import RenderSpec
from .render import (
    PDFIUM_LOCK,
    PageImage,
    RenderJob,
    close_open_documents,
    release_pixels,
    render_job,
)
from .sources import Source

__all__ = ["PREFETCH_PER_WORKER", "RenderPool", "RenderPoolError", "default_workers", "pool_for"]


class RenderPoolError(OcrError):
    """The render pool broke (an isolated pool's worker process died, e.g. PDFium crashed on a
    page)."""

    kind = "render_pool"


#: pages rendered ahead of the consumer, per render worker.  At 2 a worker starved whenever the
#: event loop was busy for a few pages' time (a full GC, a burst of replies): 72-dpi JPEG pages
#: against an instant server ran at 0.72-0.83 of the serial render loop with 2 and 0.82-0.91
#: with 4 (500 pages, two runs each, the setup of benchmarks/bench_scheduler.py (b)).  The memory
#: cost is that many encoded pages (a few MB).
PREFETCH_PER_WORKER = 4

def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers() -> int:
    return max(1, min(2, usable_cpus()))


#: what the render workers' fork server imports once, so each worker starts with it loaded
#: (the render module, and with it the whole ``ocrclient.pages`` package)
_PRELOAD = ("pypdfium2", "PIL.Image", "PIL.PngImagePlugin", render_job.__module__)


def _worker_init() -> None:
    # Ctrl-C is handled by the consumer, which shuts the pool down; workers stay quiet
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _settle(fut: cf.Future[PageImage], done: cf.Future[PageImage]) -> None:
    """``fut`` (not yet settled: running, or a lane's page waiting its turn) takes the outcome
    of ``done``."""
    if done.cancelled():
        fut.set_exception(cf.CancelledError())
        return
    exc = done.exception()
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(done.result())


class RenderPool:
    """A few workers that render pages; share one across documents.

    ``workers`` defaults to ``min(2, usable CPUs)``; ``workers=0`` renders inline in the calling
    thread (useful for one-page inputs and debugging).  By default the workers are threads (see
    the module's text).  ``isolated=True`` makes them processes from the library's own fork
    server (:func:`ocrclient.mpcontext.library_context`): they never run the caller's
    ``__main__``, so no ``if __name__ == "__main__":`` guard is needed in a script, with
    ``python -c``, from stdin, in a notebook or in a web server; forking from it is safe in a
    threaded parent; it preloads pypdfium2 and Pillow once per process, so each later worker
    starts in milliseconds.  Choose it for untrusted PDFs in a long-lived process: a PDFium
    crash then raises :class:`RenderPoolError` instead of ending the process.
    ``start_method`` ("spawn", "forkserver", "fork") asks for an isolated pool on a standard
    ``multiprocessing`` context instead, with its rules about ``__main__``.  The pool keeps the
    last few documents open (per worker process when isolated), so a document is parsed once,
    not once per page.  PDF/image bytes are spilled once to a private temporary directory that
    :meth:`close` removes.

    Example::

        >>> with RenderPool(workers=2) as pool:                     # doctest: +SKIP
        ...     for src in open_sources(["a.pdf", "b.pdf"]):
        ...         pages = list(iter_pages(src, RenderSpec(dpi=100), pool=pool))
    """

    def __init__(
        self, workers: int | None = None, *, isolated: bool = False, start_method: str | None = None
    ) -> None:
        self.workers = default_workers() if workers is None else max(0, int(workers))
        #: workers are processes (a PDFium crash cannot end this one), not threads
        self.isolated = bool(isolated or start_method is not None)
        self._start_method = start_method
        self._executor: cf.Executor | None = None
        self._lock = threading.Lock()
        self._tmpdir: str | None = None
        #: removes ``_tmpdir`` on close, or when a pool nobody closed is collected or the
        #: interpreter exits
        self._rm_tmpdir: weakref.finalize[Any, Any] | None = None
        self._spilled: dict[str, str] = {}
        #: the runs holding each spilled source now (its file goes with the last: :meth:`holding`)
        self._spill_users: dict[str, int] = {}
        #: the runs holding the pool now, and whether the last of them closes it
        self._holders = 0
        self._close_when_idle = False
        self._closed = False
        self._broken: str | None = None
        #: the thread starting the workers in the background (:meth:`start_soon`)
        self._booting: threading.Thread | None = None
        #: number of pages submitted for rendering so far (all streams on this pool)
        self.submitted = 0
        #: renders started by :meth:`prime`, until a stream asks for them
        self._primed: dict[RenderJob, cf.Future[PageImage]] = {}
        #: primed renders that wait for the one before them in their lane: each one's starter
        #: (it starts the render at most once and returns its future, None if the pool refused)
        self._queued: dict[RenderJob, Callable[[], cf.Future[PageImage] | None]] = {}
        #: the page streams rendering on this pool now (:meth:`window`)
        self._streams = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RenderPool:
        self.start_soon()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    def start(self) -> RenderPool:
        """Start the workers now (otherwise they start on first use)."""
        self._ensure_executor()
        return self

    def start_soon(self) -> None:
        """Start the workers and return at once (``async with`` does this).  Threads start at
        once; an isolated pool's processes start in a background thread: the fork server boots
        in its own process while this one goes on.  Meanwhile pages submitted are queued for
        the workers without blocking the caller: none is drawn by PDFium in this process.  A failure is left for the first
        :meth:`submit` to meet."""
        if self.workers == 0 or self._closed or self._executor is not None or self._booting is not None:
            return
        if not self.isolated:
            self._ensure_executor()
            return

        def boot() -> None:
            with contextlib.suppress(Exception):
                ex = self._ensure_executor()
                if ex is not None:  # launch the workers now: submit() would do it on first use
                    ex.submit(os.getpid).result()

        self._booting = threading.Thread(target=boot, name="ocrclient-render-pool-start", daemon=True)
        self._booting.start()

    def _ensure_executor(self) -> cf.Executor | None:
        if self._closed:
            raise RuntimeError("RenderPool is closed")
        if self._broken:
            raise RenderPoolError(self._broken)
        if self.workers == 0:
            return None
        with self._lock:
            if self._closed:  # (closed meanwhile: no executor is built that nothing would shut down)
                raise RuntimeError("RenderPool is closed")
            if self._executor is None and not self.isolated:
                self._executor = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="ocrclient-render")
            if self._executor is None:  # (multiprocessing is imported by isolated pools only)
                import multiprocessing

                from ..mpcontext import library_context

                ctx = (
                    library_context(_PRELOAD)
                    if self._start_method is None
                    else multiprocessing.get_context(self._start_method)
                )
                self._executor = cf.ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=ctx, initializer=_worker_init
                )
            return self._executor

    def close(self) -> None:
        """Stop the workers (pending renders are cancelled; running ones end first) and remove
        spilled bytes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._booting is not None:  # a start under way finishes first: its executor is shut down below
            self._booting.join()
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)
        self._primed.clear()
        self._queued.clear()
        if not self.isolated or self.workers == 0:  # renders in this process cached documents here
            with PDFIUM_LOCK:
                close_open_documents()
        if self._rm_tmpdir is not None:
            self._rm_tmpdir()
            self._tmpdir = self._rm_tmpdir = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def broken(self) -> bool:
        """Whether a worker process died (an isolated pool): every render raises
        :class:`RenderPoolError` from now on."""
        return self._broken is not None

    # -- work --------------------------------------------------------------------------------

    def _path_of(self, source: Source) -> str:
        if source.path is not None:
            return source.key  # (its resolved path, worked out once per source: each call opens its own)
        assert source.data is not None
        key = source.key
        with self._lock:
            spilled = self._spilled.get(key)
            if spilled is None:
                if self._tmpdir is None:
                    self._tmpdir = tempfile.mkdtemp(prefix="ocrclient-pages-")
                    self._rm_tmpdir = weakref.finalize(
                        self, shutil.rmtree, self._tmpdir, ignore_errors=True
                    )
                spilled = os.path.join(
                    self._tmpdir, key.split(":", 1)[1][:32] + "." + (source.format or "bin")
                )
                with open(spilled, "wb") as fh:
                    fh.write(source.data)
                self._spilled[key] = spilled
            return spilled

    def _job(self, source: Source, index: int, spec: RenderSpec) -> RenderJob:
        return RenderJob(
            source.kind,
            self._path_of(source),
            source.password,
            index,
            spec,
            source.name,
            Image.MAX_IMAGE_PIXELS,
        )

    @contextlib.contextmanager
    def streaming(self) -> Iterator[None]:
        """A page stream renders on this pool while inside (see :meth:`window`)."""
        with self._lock:
            self._streams += 1
        try:
            yield
        finally:
            with self._lock:
                self._streams -= 1
                idle = self._streams == 0
            if idle and not (self.isolated and self.workers):  # (a worker process keeps its own)
                release_pixels()  # the page buffer kept from page to page: none while idle

    @contextlib.contextmanager
    def holding(self, sources: Sequence[Source]) -> Iterator[None]:
        """A run of ``sources`` uses this pool while inside: in-memory bytes spilled to a file
        for the workers (whose pages an engine may read again from it, e.g. a text layer) are
        removed when the last run holding them ends, so a long-lived pool (an
        :class:`~ocrclient.AsyncClient`'s) keeps no file of a call that has ended.  (Bytes
        streamed outside any run keep their file until the pool closes.)"""
        keys = [src.key for src in sources if src.path is None]
        with self._lock:
            self._holders += 1
            for key in keys:
                self._spill_users[key] = self._spill_users.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                for key in keys:
                    self._spill_users[key] -= 1
                    if not self._spill_users[key]:
                        del self._spill_users[key]
                # every file no run holds: this run's, and one a cancelled run's render thread
                # wrote after that run had let go (a pool only runs use: a client's)
                gone = [self._spilled.pop(k) for k in [k for k in self._spilled if k not in self._spill_users]]
                close = self._close_when_idle and not self._holders
            for spilled in gone:
                with contextlib.suppress(OSError):
                    os.unlink(spilled)
            if close:  # the client closed while this run went on: the last run closes the pool
                threading.Thread(target=self.close, name="ocrclient-render-pool-close", daemon=True).start()

    def close_when_idle(self) -> None:
        """:meth:`close` now, or when the last run :meth:`holding` this pool ends (a client closed
        under its calls: they finish on the pool rather than meet it closed)."""
        with self._lock:
            self._close_when_idle = True
            busy = self._holders > 0
        if not busy:
            self.close()

    def window(self, depth: int) -> int:
        """How many renders a stream of this pool may have ahead of its consumer, of the
        ``depth`` it asked for: its share of ``depth`` among the streams rendering on the pool
        now, and at least one.  One stream has all of it; the many calls at once of one
        :class:`~ocrclient.AsyncClient` (one pool) hold about ``depth`` rendered pages between
        them, not ``depth`` each (each encoded page is ~0.5 MB at Chandra's size)."""
        return max(1, depth // max(1, self._streams))

    def submit_blocks(self, source: Source) -> bool:
        """Whether :meth:`submit` of a page of ``source`` may hold up its caller: an inline pool
        (``workers=0``) renders in it, an isolated pool may start a worker process at any submit
        (``ProcessPoolExecutor`` starts them one per submit, through the fork server), and
        in-memory bytes are hashed (their key) and, the first time, written to a file.  A thread
        pool given a file only queues a render (the path is resolved once, a few ``lstat``
        calls): an event loop may submit there itself rather than hand it to a thread."""
        return self.workers == 0 or self.isolated or source.path is None

    def prime(self, plan: Sequence[tuple[Source, Sequence[int]]], spec: RenderSpec, pages: int = 1) -> int:
        """Start rendering the first ``pages`` pages of ``plan`` now, before any stream asks for
        them (at most what its streams render ahead of their consumer: :data:`PREFETCH_PER_WORKER`
        per worker); returns how many.  A head start for a caller that knows its first page and render
        spec before the rest of its run is set up: ``ocr convert`` primes its first pages, then
        imports and builds its transport while they render.  A stream's :meth:`submit` of the
        same page at the same spec takes the render under way instead of starting another;
        renders no stream takes are dropped with the pool.

        The primed pages render in order, at most :meth:`prime_lanes` at a time (one on two
        CPUs) while no stream has asked for them: the caller's thread, busy importing, keeps a
        core (a render beside it takes the interpreter lock back after each C call, and the two
        compete for the cores).  A stream that asks for a page still waiting for its turn starts
        it at once.  On two CPUs, three pages primed at once sent ``ocr convert --backend
        runpod-chandra``'s first request 60-80 ms later than one lane (``benchmarks/README.md``,
        session 38).  An inline pool (``workers=0``) primes nothing: its render would block the
        caller."""
        if self.workers == 0 or pages < 1:
            return 0
        pages = min(pages, PREFETCH_PER_WORKER * self.workers)  # (what its streams would render ahead, at most)
        jobs = [self._job(src, i, spec) for src, indices in plan for i in indices[:pages]][:pages]
        lanes = self.prime_lanes()
        started: list[cf.Future[PageImage]] = []
        for job in jobs:
            if job not in self._primed:
                after = started[-lanes] if len(started) >= lanes else None
                self._primed[job] = self._submit_job(job) if after is None else self._queue_after(job, after)
                started.append(self._primed[job])
        return len(jobs)

    def prime_lanes(self) -> int:
        """How many primed pages render at once before a stream asks for them: the workers,
        less one for the caller's thread when that would leave no CPU free, and at least one."""
        return max(1, min(self.workers, usable_cpus() - 1))

    def _queue_after(self, job: RenderJob, after: cf.Future[PageImage]) -> cf.Future[PageImage]:
        """``job`` handed to the workers once ``after`` has ended (however it ended), or when a
        stream asks for it first (:meth:`submit`, which then hands the stream the render's own
        future, so that the stream can cancel it); the future returned stands for it in the lane
        and takes its outcome."""
        fut: cf.Future[PageImage] = cf.Future()
        once = threading.Lock()
        tried: list[cf.Future[PageImage] | None] = []  # (the render's future once started; None: refused)

        def start(wait: bool = True) -> cf.Future[PageImage] | None:
            # the lane's turn (a done-callback, possibly run by ThreadPoolExecutor.shutdown()
            # under its _shutdown_lock) never waits for a stream's submit() starting it: that
            # submit may itself be waiting for the executor's lock
            if not once.acquire(blocking=wait):
                return None
            try:
                if not tried:
                    try:
                        render = self._submit_job(job)
                    except BaseException as exc:  # closed or broken meanwhile: the consumer meets it
                        tried.append(None)
                        fut.set_exception(exc)
                        return None
                    tried.append(render)
                    render.add_done_callback(lambda done: _settle(fut, done))
                return tried[0]
            finally:
                once.release()

        self._queued[job] = start
        after.add_done_callback(lambda _: start(wait=False))
        return fut

    def submit(self, source: Source, index: int, spec: RenderSpec) -> cf.Future[PageImage]:
        """Render one page (0-based ``index``) of ``source``; the future never fails for a bad
        page (it carries ``error``), only for a broken pool.  A page :meth:`prime` started is
        handed over, not rendered again."""
        job = self._job(source, index, spec)
        primed = self._primed.pop(job, None) if self._primed else None
        queued = self._queued.pop(job, None) if primed is not None else None
        if queued is not None:  # waiting in the head start's lane, or started by it: the render itself
            render = queued()
            if render is not None and not render.cancelled():
                return render
            if render is not None:  # cancelled by a close() under way: as any page submitted now
                return self._submit_job(job)
        if primed is not None and not primed.cancelled():
            return primed
        return self._submit_job(job)

    def _submit_job(self, job: RenderJob) -> cf.Future[PageImage]:
        booting = self._booting
        if booting is not None and booting.is_alive() and not self._closed and not self._broken:
            self.submitted += 1
            return self._submit_while_starting(job, booting)
        ex = self._ensure_executor()
        self.submitted += 1
        if ex is None:
            fut: cf.Future[PageImage] = cf.Future()
            fut.set_result(render_job(job))
            return fut
        try:
            return ex.submit(render_job, job)
        except cf.BrokenExecutor as exc:  # BrokenProcessPool (render threads never break)
            raise self._mark_broken() from exc

    def _submit_while_starting(self, job: RenderJob, booting: threading.Thread) -> cf.Future[PageImage]:
        """A page handed to the workers once they are up, by a thread, so the caller (the
        event loop) never waits for the fork server."""
        fut: cf.Future[PageImage] = cf.Future()

        def forward() -> None:
            booting.join()
            if not fut.set_running_or_notify_cancel():  # the stream let it go meanwhile
                return
            try:
                ex = self._ensure_executor()
                assert ex is not None
                inner = ex.submit(render_job, job)
            except BaseException as exc:  # closed or broken meanwhile: the consumer meets it
                fut.set_exception(exc)
                return
            inner.add_done_callback(lambda done: _settle(fut, done))

        threading.Thread(target=forward, name="ocrclient-render-queue", daemon=True).start()
        return fut

    def _mark_broken(self) -> RenderPoolError:
        self._broken = (
            "a render worker process died (PDFium crashed or the process was killed); the render "
            "pool is unusable"
        )
        return RenderPoolError(self._broken)

    def result(self, fut: cf.Future[PageImage]) -> PageImage:
        try:
            return fut.result()
        except cf.BrokenExecutor as exc:
            raise self._mark_broken() from exc

    async def aresult(self, fut: cf.Future[PageImage]) -> PageImage:
        try:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                return fut.result()  # (a primed page usually is done: no trip round the loop)
            return await asyncio.wrap_future(fut)
        except cf.BrokenExecutor as exc:
            raise self._mark_broken() from exc


def pool_for(plan: Sequence[tuple[Source, Sequence[int]]], *, isolated: bool = False) -> RenderPool:
    """The render pool for a run of ``plan`` (each source with its page indices): inline for a
    single page (no worker to start for one render), else the default pool (render threads;
    worker processes when ``isolated``)."""
    single = sum(len(indices) for _, indices in plan) <= 1
    return RenderPool(workers=0) if single and not isolated else RenderPool(isolated=isolated)
