"""A run's start: nothing the first request does not need stands in its way.

* the render pool's worker processes start in the background when the run enters the pool
  (``async with``), while the process goes on planning, not on the first page's render;
* the openai SDK (1.5-2 s of CPU to import) is imported in a background thread from the moment
  the OpenAI transport is built, not in front of the first request.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from ocrclient.imaging import RenderSpec
from ocrclient.pages import RenderPool, aiter_pages, iter_pages

from .pdfgen import text_pdf


async def test_entering_the_pool_starts_its_workers_in_the_background(tmp_path: Path) -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    pool = RenderPool(workers=2)
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
        async with RenderPool(workers=2) as pool:
            pass  # closed at once, the background start possibly still under way
        assert pool.closed and pool._executor is None and pool._booting is not None
        assert not pool._booting.is_alive()
        assert not ({p.pid for p in multiprocessing.active_children()} - before)


def test_an_inline_pool_starts_nothing() -> None:
    pool = RenderPool(workers=0)
    pool.start_soon()
    assert pool._booting is None and pool._executor is None
    pool.close()


def test_building_the_openai_transport_does_not_wait_for_the_sdk_import(tmp_path: Path) -> None:
    """A stand-in ``openai`` whose import takes 3 s: building the transport returns at once (the
    import runs in a thread), and the first request waits for it and uses it."""
    fake = tmp_path / "fake" / "openai"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(textwrap.dedent("""
        import time
        time.sleep(3)

        class AsyncOpenAI:
            def __init__(self, **kw):
                self.kw = kw
    """))
    code = textwrap.dedent("""
        import asyncio, sys, time
        from ocrclient.transports.openai import OpenAITransport
        t0 = time.monotonic()
        t = OpenAITransport("http://127.0.0.1:9/v1", api_key="k", model="m")
        built = time.monotonic() - t0
        client = asyncio.run(t._sdk())
        used = time.monotonic() - t0
        assert type(client).__name__ == "AsyncOpenAI" and client.kw["max_retries"] == 0
        print(f"{built:.3f} {used:.3f}")
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), *sys.path])}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    built, used = (float(x) for x in run.stdout.split())
    assert built < 1.5, f"building the transport waited {built:.2f} s for the SDK import"
    assert used >= 2.9  # the client was made from the (slow) SDK once its import finished


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


async def test_while_the_workers_start_the_first_page_renders_here_and_the_rest_queue(tmp_path: Path) -> None:
    """The first page does not wait for the fork server; the pages submitted meanwhile do not
    block the caller and come back, in order, as the workers render them -- the same images as
    an inline pool renders."""
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
        async with RenderPool(workers=2) as pool:
            t0 = time.monotonic()
            futs = [pool.submit(src, i, spec) for i in range(6)]
            submitted_in = time.monotonic() - t0
            assert futs[0].done() and not any(f.done() for f in futs[1:])  # first rendered here
            slow.set()
            got = [(await pool.aresult(f)).encoded.data for f in futs]  # type: ignore[union-attr]
        assert pool._rendered_inline and pool.submitted == 6
    finally:
        pool_mod.RenderPool._ensure_executor = real  # type: ignore[method-assign]
    assert submitted_in < 5  # nothing waited for the held start but the one inline render
    assert got == want


async def test_pages_queued_while_starting_are_let_go_when_the_pool_closes(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(4)])
    pages = []
    before = {p.pid for p in multiprocessing.active_children()}
    async with RenderPool(workers=2) as pool:
        async for page in aiter_pages(pdf, RenderSpec(dpi=40), pool=pool):
            pages.append(page)
            break  # abandon the stream with pages still queued for the starting workers
    assert len(pages) == 1 and pages[0].number == 1 and pages[0].encoded is not None and pool.closed
    assert not ({p.pid for p in multiprocessing.active_children()} - before)
