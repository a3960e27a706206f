"""A run's start: nothing the first request does not need stands in its way.

* a default render pool's workers are threads: entering it starts no process;
* an isolated pool's worker processes start in the background when the run enters the pool
  (``async with``), while the process goes on planning, not on the first page's render.

(The OpenAI transport imports no SDK at all: tests/test_openai_without_sdk.py.)
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

from ocrclient.imaging import RenderSpec
from ocrclient.pages import RenderPool, aiter_pages, iter_pages

from .pdfgen import text_pdf


async def test_entering_the_pool_starts_its_workers_in_the_background(tmp_path: Path) -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    pool = RenderPool(workers=2, isolated=True)
    t0 = time.monotonic()
    async with pool:
        entered = time.monotonic() - t0
        deadline = time.monotonic() + 30
        while pool._executor is None or not pool._executor._processes:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the workers never started without a page asked for"
            await _sleep(0.02)
        assert pool.submitted == 0  # started before any page was submitted
        pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]])
        pages = [p async for p in aiter_pages(pdf, RenderSpec(dpi=50), pool=pool)]
        assert [p.number for p in pages] == [1, 2] and all(p.encoded for p in pages)
    assert entered < 0.5, f"entering the pool waited {entered:.2f} s for its workers"
    assert pool.closed and pool._executor is None
    leftover = {p.pid for p in multiprocessing.active_children()} - before
    assert not leftover


async def test_a_pool_closed_while_its_workers_start_leaves_none_running() -> None:
    for _ in range(3):
        before = {p.pid for p in multiprocessing.active_children()}
        async with RenderPool(workers=2, isolated=True) as pool:
            pass  # closed at once, the background start possibly still under way
        assert pool.closed and pool._executor is None and pool._booting is not None
        assert not pool._booting.is_alive()
        assert not ({p.pid for p in multiprocessing.active_children()} - before)


async def test_a_default_pool_renders_in_threads_and_starts_no_process(tmp_path: Path) -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(5)])
    async with RenderPool(workers=2) as pool:
        assert not pool.isolated and pool._booting is None
        pages = [p async for p in aiter_pages(pdf, RenderSpec(dpi=50), pool=pool)]
        assert not ({p.pid for p in multiprocessing.active_children()} - before)
    assert [p.number for p in pages] == [1, 2, 3, 4, 5] and all(p.encoded for p in pages)
    assert pool.closed and pool._executor is None
    assert not [t for t in threading.enumerate() if t.name.startswith("ocrclient-render")]


def test_an_inline_pool_starts_nothing() -> None:
    pool = RenderPool(workers=0)
    pool.start_soon()
    assert pool._booting is None and pool._executor is None
    pool.close()


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


async def test_while_the_workers_start_pages_queue_and_none_renders_here(tmp_path: Path) -> None:
    """An isolated pool draws no page in this process, not even while its fork server starts:
    the pages submitted meanwhile do not block the caller and come back, in order, as the
    workers render them -- the same images as an inline pool renders."""
    import pypdfium2  # noqa: F401 - loaded for the render below either way

    from ocrclient.pages import pool as pool_mod

    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(6)])
    spec = RenderSpec(dpi=40)
    with RenderPool(workers=0) as inline:
        want = [p.encoded.data for p in iter_pages(pdf, spec, pool=inline)]  # type: ignore[union-attr]
    from ocrclient.pages import open_sources

    src = open_sources([pdf])[0]
    slow = threading.Event()
    real = pool_mod.RenderPool._ensure_executor

    def held(self: RenderPool) -> object:  # the fork server "takes" until the test lets it go
        if threading.current_thread().name == "ocrclient-render-pool-start":
            slow.wait(30)
        return real(self)

    pool_mod.RenderPool._ensure_executor = held  # type: ignore[method-assign]
    try:
        async with RenderPool(workers=2, isolated=True) as pool:
            t0 = time.monotonic()
            futs = [pool.submit(src, i, spec) for i in range(6)]
            submitted_in = time.monotonic() - t0
            assert not any(f.done() for f in futs)  # nothing rendered here
            slow.set()
            got = [(await pool.aresult(f)).encoded.data for f in futs]  # type: ignore[union-attr]
        assert pool.submitted == 6
    finally:
        pool_mod.RenderPool._ensure_executor = real  # type: ignore[method-assign]
    assert submitted_in < 5  # nothing waited for the held start
    assert got == want


async def test_pages_queued_while_starting_are_let_go_when_the_pool_closes(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(4)])
    pages = []
    before = {p.pid for p in multiprocessing.active_children()}
    async with RenderPool(workers=2, isolated=True) as pool:
        async for page in aiter_pages(pdf, RenderSpec(dpi=40), pool=pool):
            pages.append(page)
            break  # abandon the stream with pages still queued for the starting workers
    assert len(pages) == 1 and pages[0].number == 1 and pages[0].encoded is not None and pool.closed
    assert not ({p.pid for p in multiprocessing.active_children()} - before)
