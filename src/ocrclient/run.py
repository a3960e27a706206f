"""A run over many documents through one backend: :class:`Conversion` and its
:class:`ConvertResult` objects, the engine under :class:`~ocrclient.Client` /
:class:`~ocrclient.AsyncClient` and the ``ocr`` command.

It wires ``pages -> scheduler -> document``: open and validate the inputs (one-line
:class:`~ocrclient.errors.InputError` before any work), load the backend, render pages in a shared
process pool (in-process when only one page is selected) at the backend's render spec, fan them
out through one :class:`Scheduler`, and hand back :class:`~ocrclient.document.Document` objects
with every page present, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, aclosing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import docmode
from .cache import PageCache, keeps_furniture
from .concurrency import AdaptiveLimiter
from .config import cache_dir as default_cache_dir
from .document import Document, Page
from .errors import RUN_STOPPING, CancelledRunError, ConfigError, InputError
from .models import PageImage
from .pages import RenderPool, Source, aiter_pages, prepare
from .pages.inputs import prepare_one
from .pages.pool import pool_for
from .recall import NeedsImage, Recall
from .registry import Backend, load_backend
from .scheduler import DocumentJob, Event, Scheduler

if TYPE_CHECKING:
    from .exporters.sink import OutputWriter

__all__ = ["CacheOption", "Conversion", "ConvertResult", "Inputs", "open_cache", "prepare"]

#: what the entry points take as input: a path, bytes, or a list of them (files, folders, globs)
Inputs = str | Path | bytes | Sequence[str | Path | bytes]
#: the ``cache=`` argument: ``True`` (the default cache folder), ``False``/``None`` (no cache), a
#: folder, or a :class:`~ocrclient.cache.PageCache`
CacheOption = bool | str | Path | PageCache | None


@dataclass
class ConvertResult:
    """One input document and its result; with ``outputs=`` (an
    :class:`~ocrclient.exporters.sink.OutputWriter`) also the files written for it and, one line
    each, the formats that could not be written."""

    source: Source
    document: Document
    outputs: list[Path] = field(default_factory=list)
    output_errors: list[str] = field(default_factory=list)


def open_cache(cache: CacheOption) -> PageCache | None:
    """The page cache that ``cache=`` names (see :data:`CacheOption`)."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, PageCache):
        return cache
    if cache is True:
        return PageCache(default_cache_dir())
    if not isinstance(cache, (str, os.PathLike)) or not str(os.fspath(cache)).strip():
        raise ConfigError(f"cache takes True, False, a folder or a PageCache, not {cache!r}")
    return PageCache(os.fspath(cache))


#: what a stopped run marks its unfinished pages failed with: a cancel, or the cause that stopped it
_UNFINISHED = frozenset({CancelledRunError.kind, *(c.kind for c in RUN_STOPPING)})


def begun(doc: Document) -> bool:
    """Whether a page of ``doc``, a stopped run's document, finished: ok, degraded, or failed
    for a reason of its own (not the cancel or the error that stopped the run)."""
    return any(p.status != "failed" or p.error is None or p.error.kind not in _UNFINISHED for p in doc.pages)


def worth_writing(result: ConvertResult, outputs: OutputWriter | None) -> bool:
    """Whether a stopped run writes ``result``: a page of it finished (:func:`begun`), or
    ``outputs`` had begun its files; the others are left for the rerun (the CLI and the Python
    API's ``outputs=`` alike)."""
    return begun(result.document) or (outputs is not None and outputs.began(result.source))


class Conversion:
    """A run over many documents through one backend: one shared concurrency limit, one render
    pool, one cache.  Iterate it (``async for result in conv``) to get each
    :class:`ConvertResult` as soon as its last page is done, in input order.  After a cancel or
    an aborted run, :attr:`partial` holds the documents that were not yielded, with their
    unfinished pages marked failed — so callers can still write what finished
    (``outputs.finish(result.source, result.document)``).

    ``outputs`` (an :class:`~ocrclient.exporters.sink.OutputWriter`) writes each document's
    files as its pages finish, from the run's own page images (figure crops, the viewer's page
    images, the searchable PDF's pages); a result is yielded once its files are written.

    ``render_pool``: a :class:`~ocrclient.pages.RenderPool` the run renders with instead of
    starting its own, and closes when it ends (``ocr convert`` hands over one whose first
    pages it has started with :meth:`~ocrclient.pages.RenderPool.prime`, so they render
    while the backend's transport is imported and built).  ``shared_pool``: one the run renders
    with and leaves open, shared with other runs (an :class:`~ocrclient.AsyncClient`'s: its
    calls at once render on one pool's workers, not each on its own).
    """

    def __init__(
        self,
        inputs: Inputs | None = None,
        *,
        backend: str | Backend | None = None,
        pages: str | None = None,
        password: str | None = None,
        cache: CacheOption = True,
        concurrency: int | None = None,
        on_event: Callable[[Event], None] | None = None,
        scheduler_options: dict[str, Any] | None = None,
        prepared: list[tuple[Source, list[int]]] | None = None,
        document_mode: bool = False,
        outputs: OutputWriter | None = None,
        limiter: AdaptiveLimiter | None = None,
        isolate_render: bool = False,
        render_pool: RenderPool | None = None,
        shared_pool: RenderPool | None = None,
        one_document: bool = False,
        **overrides: Any,
    ) -> None:
        self.inputs = inputs
        #: ``inputs`` is one path or bytes that must name one document (``convert``, ``stream_pages``)
        self.one_document = one_document
        self.backend = backend
        self.pages = pages
        self.password = password
        self.cache = open_cache(cache)
        self.concurrency = concurrency
        self.on_event = on_event
        self.scheduler_options = scheduler_options or {}
        #: send each document whole, as one job (see :mod:`ocrclient.docmode`)
        self.document_mode = document_mode
        self.plan = prepared
        #: the inputs of several that the page range left out (laid out with the others)
        self.left_out: list[Source] = []
        self.outputs = outputs
        self.overrides = overrides
        #: a concurrency limit shared with other runs (an :class:`~ocrclient.AsyncClient`'s):
        #: used instead of the scheduler's own, so ``concurrency`` is then ignored
        self.limiter = limiter
        #: render in worker processes, so a PDFium crash fails the run instead of ending this process
        self.isolate_render = isolate_render
        self.render_pool = render_pool
        self.shared_pool = shared_pool
        self.scheduler: Scheduler | None = None
        #: the run's recall of the pages its cache holds (:mod:`.recall`; ``None`` without a cache)
        self.recall: Recall | None = None
        self.yielded = 0
        self.loaded_backend: Backend | None = None

    @property
    def partial(self) -> list[ConvertResult]:
        if self.scheduler is None or self.plan is None:
            return []
        by_name = {src.name: src for src, _ in self.plan}
        # the scheduler's list starts at its document number partial_from; this run has handed
        # over the first `yielded` documents (a run stopped while its caller held the last one
        # handed over has it in both)
        left = self.scheduler.partial[max(0, self.yielded - self.scheduler.partial_from) :]
        return [ConvertResult(by_name[d.source], d) for d in left if d.source in by_name]

    async def _prepare(self) -> list[tuple[Source, list[int]]]:
        if self.plan is None:
            assert self.inputs is not None or self.one_document, "Conversion needs inputs or prepared"
            inputs: Any = self.inputs  # (one path or bytes, checked there, when one_document)
            out = [self.outputs.out_dir] if self.outputs is not None else []  # (not its own outputs)
            if self.one_document:
                plan = await asyncio.to_thread(prepare_one, inputs, pages=self.pages, password=self.password, exclude=out)
            else:
                plan = await asyncio.to_thread(prepare, inputs, pages=self.pages, password=self.password, exclude=out,
                                               left_out=self.left_out)  # fmt: skip
            self.plan = plan
        return self.plan

    async def _open(self, stack: AsyncExitStack, plan: list[tuple[Source, list[int]]]) -> tuple[Backend, RenderPool]:
        """The backend (closed with ``stack`` unless the caller passed a loaded one) and a render
        pool for ``plan`` (closed with ``stack``, off the event loop)."""
        if isinstance(self.backend, Backend):
            be = self.backend
            be.check_open()
        else:
            be = load_backend(self.backend, **self.overrides)
            stack.push_async_callback(be.aclose)
        self.loaded_backend = be
        given, self.render_pool = self.render_pool, None  # closed by this run, used by no other
        if given is None and self.shared_pool is not None:  # (its owner closes it)
            pool = self.shared_pool
            stack.enter_context(pool.holding([src for src, _ in plan]))  # (its files of bytes go with the run)
            return be, pool
        pool = await stack.enter_async_context(given or pool_for(plan, isolated=self.isolate_render))
        return be, pool

    def _scheduler(self, be: Backend) -> Scheduler:
        """The run's one scheduler (kept in :attr:`scheduler` for :attr:`partial`), writing the
        recall entries of the pages it reads (:mod:`.recall`)."""
        self.scheduler = Scheduler(
            be, concurrency=self.concurrency, cache=self.cache, on_event=self._on_event, limiter=self.limiter,
            **self.scheduler_options,
        )  # fmt: skip
        if self.cache is not None:
            self.recall = Recall(self.cache, be.config, be.dialect.name, be.render, furniture=keeps_furniture(be.config))
            self.scheduler.recall = self.recall
        return self.scheduler

    def _on_event(self, event: Event) -> None:
        """Every scheduler event: to the outputs (finished pages) and to the caller's ``on_event``."""
        if self.outputs is not None:
            with contextlib.suppress(Exception):  # an output's trouble never loses the run
                self.outputs.on_event(event)
        if self.on_event is not None:
            self.on_event(event)

    def _pages(self, src: Source, indices: list[int], be: Backend, pool: RenderPool) -> AsyncIterator[PageImage]:
        """The page stream of one document, a page the cache holds recalled, not rendered, unless
        the document's outputs need its image (:mod:`.recall`); with outputs, each page image is
        handed to the document's sink on its way to the scheduler (the sink starts with the stream)."""
        needs: list[NeedsImage | None] = [None]  # (the sink's, once it is open)
        recall = self.recall
        pick = None if recall is None else lambda s, i: recall.page(s, i, needs[0])
        stream = aiter_pages(src, be.render, pages=indices, pool=pool, recall=pick)
        return stream if self.outputs is None else self._tee(src, indices, stream, needs)

    async def _tee(self, src: Source, indices: list[int], stream: AsyncIterator[PageImage],
                   needs: list[NeedsImage | None]) -> AsyncIterator[PageImage]:  # fmt: skip
        assert self.outputs is not None
        sink = await asyncio.to_thread(self.outputs.open, src, [i + 1 for i in indices])
        needs[0] = sink.needs_image
        # (an unfinished `stream` is closed by the event loop's async-generator finalizer, as it
        # is without outputs; closing it from here while the loop shuts down raised)
        async for page in stream:
            sink.take_image(page)
            yield page

    async def _result(self, src: Source, doc: Document) -> ConvertResult:
        """The result of a finished document, its files written first when there are outputs."""
        if self.outputs is None:
            return ConvertResult(src, doc)
        written = await asyncio.to_thread(self.outputs.finish, src, doc)
        return ConvertResult(src, doc, written.paths, written.errors)

    async def __aiter__(self) -> AsyncGenerator[ConvertResult, None]:
        plan = await self._prepare()
        if self.outputs is not None:  # each input its own output names, before anything is sent
            self.outputs.lay_out([src for src, _ in plan], beside=self.left_out)
        async with AsyncExitStack() as stack:
            be, pool = await self._open(stack, plan)
            if docmode.requested(be.config, self.document_mode):
                # (each inner run closed with this one, not when collected: see Scheduler._run)
                units = await stack.enter_async_context(aclosing(docmode.convert(be, plan, self._scheduler)))
                async for src, cuts, doc in units:
                    if self.outputs is not None:
                        await self._unit_images(src, cuts, doc.pages, be, pool)
                    result = await self._result(src, doc)
                    self.yielded += 1
                    yield result
                return
            sched = self._scheduler(be)
            jobs = [
                DocumentJob(src.name, self._pages(src, indices, be, pool), expected_pages=[i + 1 for i in indices])
                for src, indices in plan
            ]
            docs = await stack.enter_async_context(aclosing(sched.run_documents(jobs)))
            async for doc in docs:
                result = await self._result(plan[self.yielded][0], doc)
                self.yielded += 1
                yield result

    async def iter_pages(self) -> AsyncGenerator[Page, None]:
        """The pages of the one input document as they finish (out of order): what
        :func:`astream_pages` yields."""
        plan = await self._prepare()
        if len(plan) != 1:
            raise InputError(f"streams the pages of one document; the inputs name {len(plan)}")
        ((src, indices),) = plan
        async with AsyncExitStack() as stack:
            be, pool = await self._open(stack, plan)
            sched = self._scheduler(be)
            recall = self.recall
            images = aiter_pages(src, be.render, pages=indices, pool=pool, recall=None if recall is None else recall.page)
            pages = await stack.enter_async_context(
                aclosing(sched.iter_pages(src.name, images, expected_pages=[i + 1 for i in indices]))
            )
            async for page in pages:
                yield page

    async def _unit_images(self, src: Source, units: list[Any], pages: list[Page], be: Backend, pool: RenderPool) -> None:
        """Document mode sends no page images: for the outputs that need them, the run renders
        the pages of the PDFs it sent (the units' own bytes, in memory) and feeds the sink."""
        from .pages import open_sources

        assert self.outputs is not None
        sink = await asyncio.to_thread(self.outputs.open, src, [n for unit in units for n in unit.numbers])
        if not sink.wants_images():
            return
        by_number = {p.page: p for p in pages}
        for unit in units:
            if unit.page.encoded is None:
                continue
            (sent,) = await asyncio.to_thread(open_sources, [unit.page.encoded.data])
            numbers = iter(unit.numbers)
            with pool.holding([sent]):  # (its file, a long-lived pool's, goes when its pages are in)
                async for image in aiter_pages(sent, be.render, pool=pool):
                    number = next(numbers)
                    sink.take_image(replace(image, source=src.name, index=number - 1))
                sink.page_done(number, by_number.get(number))
