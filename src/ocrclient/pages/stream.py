"""The page streams: one document's selected pages, rendered in order, pulled lazily.

:func:`iter_pages` and :func:`aiter_pages` are pull-based and bounded: a page is submitted to
the :class:`~ocrclient.pages.pool.RenderPool` only when the consumer asks for the next one, and
at most ``prefetch`` pages are ever rendered-but-not-consumed, so memory stays flat however long
the document.  A page that cannot be rendered is yielded with ``encoded=None`` and ``error``
set, never dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeGuard

from ..errors import InputError
from ..imaging import RenderSpec
from .inputs import open_sources
from .pool import PREFETCH_PER_WORKER, RenderPool, default_workers
from .ranges import select_pages
from .render import PageImage
from .sources import Source, make_source

__all__ = ["aiter_pages", "iter_pages"]

#: ``(source, index) -> PageImage | None``: a page without rendering it, or ``None`` (render it)
Recalled = Callable[[Source, int], PageImage | None]


def _is_open(source: Source | str | Path | bytes, password: str | None) -> TypeGuard[Source]:
    """Whether ``source`` is an opened :class:`Source` that :func:`_resolve` hands back as it
    is (no new password for a PDF): nothing to open or probe."""
    return isinstance(source, Source) and (password is None or source.kind != "pdf" or source.password == password)


def _resolve(source: Source | str | Path | bytes, password: str | None) -> Source:
    if _is_open(source, password):
        return source
    if isinstance(source, Source):  # a PDF given another password: opened again with it
        return make_source(
            name=source.name,
            stem=source.stem,
            path=source.path,
            data=source.data,
            rel=source.rel,
            password=password,
            root=source.root,
        )
    found = open_sources([source], password=password)
    if len(found) != 1:
        raise InputError(
            f"{found[0].name if found else source!r}: matches {len(found)} documents; iterate open_sources() instead"
        )
    return found[0]


def _plan(
    source: Source | str | Path | bytes,
    pages: str | Sequence[int] | None,
    password: str | None,
    pool: RenderPool | None,
    prefetch: int | None,
) -> tuple[Source, list[int], RenderPool, bool, int]:
    src = _resolve(source, password)
    indices = select_pages(pages, src.page_count)
    own = pool is None
    if pool is None:
        pool = RenderPool(workers=0 if len(indices) <= 1 else min(default_workers(), len(indices)))
    depth = prefetch if prefetch is not None else max(1, PREFETCH_PER_WORKER * pool.workers)
    if depth < 1:
        raise ValueError("prefetch must be at least 1")
    return src, indices, pool, own, depth


def iter_pages(
    source: Source | str | Path | bytes,
    spec: RenderSpec,
    *,
    pages: str | Sequence[int] | None = None,
    password: str | None = None,
    pool: RenderPool | None = None,
    prefetch: int | None = None,
) -> Iterator[PageImage]:
    """Yield the selected pages of one document, in page order, rendered to ``spec``.

    ``pages`` is a 1-based range string (``"1-3,7,10-"``) or a sequence of 0-based indices.
    Without ``pool`` a private pool is started and closed with the stream (share a
    :class:`RenderPool` across documents to pay worker start-up once).  At most ``prefetch``
    (default :data:`PREFETCH_PER_WORKER` x workers) pages are rendered ahead of the consumer,
    and nothing is rendered before the first ``next()``.  Input problems raise
    :class:`InputError` when called; a broken pool raises :class:`RenderPoolError` from
    ``next()``.
    """
    src, indices, rpool, own, depth = _plan(source, pages, password, pool, prefetch)
    return _iter(src, indices, spec, rpool, own, depth)


def _iter(
    src: Source, indices: list[int], spec: RenderSpec, pool: RenderPool, own: bool, depth: int
) -> Iterator[PageImage]:
    futures = _submitted(src, indices, spec, pool, depth)
    try:
        for fut in futures:
            yield pool.result(fut)
    finally:
        futures.close()
        if own:
            pool.close()


def _submitted(
    src: Source, indices: list[int], spec: RenderSpec, pool: RenderPool, depth: int, recall: Recalled | None = None
) -> Generator[cf.Future[PageImage], None, None]:
    """The renders of ``indices``, in order, submitted lazily: each pull tops the window up to
    ``depth`` outstanding renders (its share of ``depth`` when other streams render on the pool
    too: :meth:`~ocrclient.pages.RenderPool.window`; nothing is submitted before the first pull)
    and hands over the oldest.  Closing it cancels those not handed over.  Both streams drive
    this one window.  ``recall(src, index)`` gives a page without rendering it when it can
    (:class:`~ocrclient.recall.Recall`): handed over as it is, in its turn."""
    pending: deque[cf.Future[PageImage]] = deque()
    todo = iter(indices)

    def submit(i: int) -> cf.Future[PageImage]:
        if recall is not None and (page := recall(src, i)) is not None:
            done: cf.Future[PageImage] = cf.Future()
            done.set_result(page)
            return done
        return pool.submit(src, i, spec)

    with pool.streaming():
        try:
            while True:
                pending.extend(submit(i) for i in islice(todo, max(0, pool.window(depth) - len(pending))))
                if not pending:
                    return
                yield pending.popleft()
        finally:
            for fut in pending:
                fut.cancel()


async def aiter_pages(
    source: Source | str | Path | bytes,
    spec: RenderSpec,
    *,
    pages: str | Sequence[int] | None = None,
    password: str | None = None,
    pool: RenderPool | None = None,
    prefetch: int | None = None,
    recall: Recalled | None = None,
) -> AsyncIterator[PageImage]:
    """Async twin of :func:`iter_pages` (same arguments, same bounds).  Validation, pool start
    and waiting on renders run off the event loop; being an async generator, it raises
    :class:`InputError` on the first ``__anext__`` rather than on the call.  ``recall(source,
    index)`` gives a page without rendering it when it can (a stat and a small read: on the
    loop, as a render's submit is).

    Example::

        >>> async for page in aiter_pages("a.pdf", RenderSpec(dpi=150), pages="1-3"):  # doctest: +SKIP
        ...     print(page.number, page.frame)
    """
    if pool is not None and _is_open(source, password):  # no file to open, no pool to make
        src, indices, rpool, own, depth = _plan(source, pages, password, pool, prefetch)
    else:  # a file to open and probe, or a pool to make: off the loop
        src, indices, rpool, own, depth = await asyncio.to_thread(
            _plan, source, pages, password, pool, prefetch
        )
    futures = _submitted(src, indices, spec, rpool, depth, recall)
    try:
        while True:
            if rpool.submit_blocks(src):  # processes to start, bytes to spill, renders inline
                fut = await asyncio.to_thread(next, futures, None)
            else:
                fut = next(futures, None)
            if fut is None:
                return
            yield await rpool.aresult(fut)
    finally:
        with contextlib.suppress(ValueError):  # still running in a thread (cancelled): it ends on its own
            futures.close()
        if own:
            await asyncio.to_thread(rpool.close)
