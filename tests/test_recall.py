"""Resume without rendering (:mod:`ocrclient.recall`): a PDF page the page cache already holds is
recalled, not rendered, and gives exactly what rendering it would have.

The cache is keyed by the image sent, so a rerun rendered every page to find it there: 184
cached pages of a 200-page run were rendered again (~7 s) before the first request for page 185
left.  The whole kind, as a second run after a first: nothing changed, a wider page range, every
render setting, a backend setting, the PDF's content, a page cut at ``max_tokens`` retried with
``retry_degraded`` -- each second run sends and yields the same with its recall entries as
without them (the cache copied, its entries removed), and renders only what it sends or what an
output needs; a page whose cache entry was pruned is rendered and sent; a page with figures is
rendered for its crops when the outputs have any, its crops the same as the first run's.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.cache import PageCache
from ocrclient.document import Document
from ocrclient.exporters.sink import OutputWriter
from ocrclient.testing import OpenAISimulator, SimReply

from .fakes import counting_renders
from .pdfgen import text_pdf

PAGES = [[f"Page {n} of the report, its own words."] for n in range(1, 7)]
CHAT = "POST /v1/chat/completions"


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The 0-based index of every page the run renders (the render pool's render_job)."""
    return counting_renders(monkeypatch)


def _image_of(body: dict[str, Any]) -> str:
    return next(p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
                for p in m["content"] if p.get("type") == "image_url")  # fmt: skip


def _pages(doc: Document) -> list[dict[str, Any]]:
    return [p.model_dump(include={"page", "status", "markdown", "blocks", "width", "height", "rotation", "warnings"})
            for p in doc.pages]  # fmt: skip


def _run(pdf: Path, cache: Path, sim: OpenAISimulator, *, retry_degraded: bool = False, **over: Any) -> Document:
    settings: dict[str, Any] = {"backend": "openai", "dialect": "plain", "base_url": sim.base_url, "model": "m",
                                "api_key": sim.api_key, "concurrency": 2, **over}  # fmt: skip
    return ocrclient.convert(pdf, cache=PageCache(cache, retry_degraded=retry_degraded), **settings)


def test_a_rerun_renders_no_page_the_cache_holds(tmp_path: Path, renders: list[int]) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", PAGES)
    with OpenAISimulator(model="m") as sim:
        first = _run(pdf, tmp_path / "c", sim)
        assert sorted(renders) == list(range(6)) and sim.requests[CHAT] == 6
        renders.clear()
        again = _run(pdf, tmp_path / "c", sim)
        assert renders == [] and sim.requests[CHAT] == 6  # (nothing rendered, nothing sent)
    assert _pages(again) == _pages(first) and all(p.cached for p in again.pages)


#: what changes between the first run and the second: (first run's settings, second run's, the
#: PDF's pages for the second run or None)
CHANGES: dict[str, tuple[dict[str, Any], dict[str, Any], list[list[str]] | None]] = {
    "nothing": ({}, {}, None),
    "wider pages": ({"pages": "2-4"}, {}, None),
    "dpi": ({}, {"render": {"dpi": 100}}, None),
    "image format": ({}, {"render": {"format": "jpeg"}}, None),
    "longest side": ({}, {"render": {"longest_side": 700, "dpi": None}}, None),
    "max tokens": ({}, {"sampling": {"max_tokens": 1500}}, None),
    "pdf content": ({}, {}, [*PAGES[:2], ["Page 3, rewritten."], *PAGES[3:]]),
    "degraded retried": ({}, {"retry_degraded": True}, None),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_recall_gives_what_rendering_would_have(change: str, tmp_path: Path, renders: list[int]) -> None:
    first_over, second_over, rewritten = CHANGES[change]
    pdf = text_pdf(tmp_path / "doc.pdf", PAGES)
    order: dict[str, int] = {}
    state = {"cut": True}

    def respond(body: dict[str, Any]) -> SimReply:  # (the third page image seen is cut at max_tokens, at first)
        n = order.setdefault(_image_of(body), len(order) + 1)
        if n == 3 and state["cut"]:
            return SimReply("the page, cut", finish_reason="length")
        return SimReply(f"# Page image {n}\n\nAll of it.")

    with OpenAISimulator(model="m", responder=respond) as sim:
        _run(pdf, tmp_path / "c", sim, concurrency=1, **first_over)
        state["cut"] = False
        if rewritten is not None:
            text_pdf(pdf, rewritten)
        shutil.copytree(tmp_path / "c", tmp_path / "plain")
        shutil.rmtree(tmp_path / "plain" / "recall")  # (the same cache without its recall entries)
        assert any((tmp_path / "c" / "recall").rglob("*")), "the first run wrote no recall entry"
        seen = []
        for cache in ("c", "plain"):
            renders.clear()
            before = sim.requests[CHAT]
            doc = _run(pdf, tmp_path / cache, sim, concurrency=1, **second_over)
            seen.append((_pages(doc), sim.requests[CHAT] - before, sorted(renders)))
    (recalled, sent, rendered), (rendered_doc, sent_plain, _all) = seen
    assert recalled == rendered_doc and sent == sent_plain, change
    # with its entries, a run renders only what it sends; a PDF whose bytes changed, every page
    # (its entries are keyed by the file's bytes: the pages it did not change are served from
    # the cache after their render, as before)
    assert len(rendered) == (len(PAGES) if rewritten is not None else sent), (change, rendered)


def test_a_page_whose_cache_entry_is_gone_is_rendered_and_sent(tmp_path: Path, renders: list[int]) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", PAGES)
    with OpenAISimulator(model="m") as sim:
        first = _run(pdf, tmp_path / "c", sim)
        entries = sorted((tmp_path / "c" / "pages").rglob("*.json"), key=lambda p: p.stat().st_mtime)
        entries[0].unlink()  # (pruned)
        renders.clear()
        again = _run(pdf, tmp_path / "c", sim)
        assert len(renders) == 1 and sim.requests[CHAT] == 7
    assert [p.status for p in again.pages] == ["ok"] * 6 and [p.markdown for p in again.pages] == [p.markdown for p in first.pages]


def _chandra(body: dict[str, Any], order: dict[str, int]) -> SimReply:
    """Chandra 2's HTML: the second page image seen holds a figure, the others text."""
    n = order.setdefault(_image_of(body), len(order) + 1)
    text = f'<div data-bbox="100 100 900 200" data-label="Text"><p>Page image {n}.</p></div>'
    if n == 2:
        text += '<div data-bbox="100 300 600 700" data-label="Image"><img alt="chart"/></div>'
    return SimReply(text)


def _on_disk(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def test_the_caps_count_and_prune_take_in_the_recall_entries(tmp_path: Path, renders: list[int]) -> None:
    """The recall entries were outside the cache's cap: never counted, never pruned (a few
    hundred bytes and a disk block each, one per page ever read).  Now ``info`` counts their
    bytes (its entries are still the pages), a prune takes them by age with the pages, and a
    recall refreshes its entry as a hit refreshes its page: a prune keeps the recently used pair."""
    pdf = text_pdf(tmp_path / "doc.pdf", PAGES)
    with OpenAISimulator(model="m") as sim:
        _run(pdf, tmp_path / "c", sim, pages="1-3")
        for i, f in enumerate(sorted((tmp_path / "c").rglob("*"))):  # (the first three: long unused)
            if f.is_file():
                os.utime(f, (1_000_000 + i, 1_000_000 + i))
        _run(pdf, tmp_path / "c", sim, pages="2")  # (recalled: its page and its entry used now)
        _run(pdf, tmp_path / "c", sim, pages="4-6")
        cache = PageCache(tmp_path / "c", max_bytes=0)
        recall = [f for f in (tmp_path / "c" / "recall").rglob("*") if f.is_file()]
        assert len(recall) == 6 and cache.info().entries == len(cache) == 6
        assert cache.info().bytes == _on_disk(tmp_path / "c") > _on_disk(tmp_path / "c" / "pages")
        # down to what the four recently used pages and their entries take
        files = [f for f in (tmp_path / "c").rglob("*") if f.is_file()]
        fresh = sorted(files, key=lambda f: f.stat().st_mtime)[-8:]
        assert cache.prune(sum(f.stat().st_size for f in fresh)) == 4  # (two pages, their two entries)
        assert sorted(p.name for p in (tmp_path / "c").rglob("*") if p.is_file()) == sorted(f.name for f in fresh)
        renders.clear()
        before = sim.requests[CHAT]
        doc = _run(pdf, tmp_path / "c", sim)
        # pages 2, 4-6 recalled; 1 and 3, pruned with their entries, rendered and sent again
        assert sorted(renders) == [0, 2] and sim.requests[CHAT] - before == 2
        assert [p.status for p in doc.pages] == ["ok"] * 6
        assert cache.prune(0) == 12 and cache.info().bytes == 0 and not any(f.is_file() for f in (tmp_path / "c").rglob("*"))



@pytest.mark.parametrize("formats", [["md", "json"], ["json"], ["md", "json", "html"]], ids=["crops", "no md", "viewer"])
def test_a_page_whose_outputs_need_its_image_is_rendered(formats: list[str], tmp_path: Path, renders: list[int]) -> None:
    """With figure crops (md), the page with a figure is rendered again for its crop and the
    others are recalled; without md none is rendered; the HTML viewer needs every page image.
    The outputs are the first run's."""
    pdf = text_pdf(tmp_path / "doc.pdf", PAGES[:4])
    order: dict[str, int] = {}
    with OpenAISimulator(model="datalab-to/chandra-ocr-2", responder=lambda b: _chandra(b, order)) as sim:
        settings = {"backend": "openai", "dialect": "chandra", "base_url": sim.base_url, "model": "datalab-to/chandra-ocr-2",
                    "api_key": sim.api_key, "concurrency": 1}  # fmt: skip
        outs = []
        for out in ("first", "second"):
            renders.clear()
            with OutputWriter(tmp_path / out, formats) as writer:
                doc = ocrclient.convert(pdf, cache=PageCache(tmp_path / "c"), outputs=writer, **settings)
            outs.append((doc, sorted(renders)))
        assert sim.requests[CHAT] == 4
    (first, _), (second, rendered) = outs
    figure_page = next(p.page for p in first.pages if any(b.type == "figure" for b in p.blocks)) - 1
    want = list(range(4)) if "html" in formats else [figure_page] if "md" in formats else []
    assert rendered == want, (formats, rendered)
    for path in sorted((tmp_path / "first").rglob("*")):
        twin = tmp_path / "second" / path.relative_to(tmp_path / "first")
        if path.is_file() and path.suffix in (".md", ".png"):
            assert twin.read_bytes() == path.read_bytes(), path.name
    if "md" in formats:
        assert any((tmp_path / "second").rglob("*.png")), "no figure crop"
    assert _pages(second) == _pages(first)


def test_a_pdf_replaced_while_its_pages_are_read_is_not_recalled_as_before(tmp_path: Path, renders: list[int]) -> None:
    """A PDF replaced while its first page was being read: its pages' readings are of the bytes
    before, so no recall entry may name them for the file now there (one written when the page
    was stored named the old reading under the new file's identity).  The next run gives what
    rendering gives."""
    pdf = text_pdf(tmp_path / "doc.pdf", PAGES[:2])
    replaced: list[bool] = []

    def respond(body: dict[str, Any]) -> SimReply:
        if not replaced:
            replaced.append(True)
            time.sleep(0.05)
            text_pdf(tmp_path / "new.pdf", [["Another report entirely."], ["Its second page."]])
            os.replace(tmp_path / "new.pdf", pdf)
        return SimReply(f"# Reading {len(replaced)} of {_image_of(body)[-12:]}")

    with OpenAISimulator(model="m", responder=respond) as sim:
        _run(pdf, tmp_path / "c", sim, concurrency=1)
        shutil.copytree(tmp_path / "c", tmp_path / "plain")
        shutil.rmtree(tmp_path / "plain" / "recall", ignore_errors=True)
        seen = []
        for cache in ("c", "plain"):
            before = sim.requests[CHAT]
            doc = _run(pdf, tmp_path / cache, sim, concurrency=1)
            seen.append((_pages(doc), sim.requests[CHAT] - before))
    assert seen[0] == seen[1], seen


def test_the_recall_key_changes_with_the_render_and_encode_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's version stays put while its renderer changes: the source of its render and
    encode modules is in the key, so a changed encoder renders (and sends) as rendering would."""
    import ocrclient.imaging as imaging
    from ocrclient.imaging import RenderSpec
    from ocrclient.recall import _renderer_versions, recall_key

    def key() -> str:
        _renderer_versions.cache_clear()
        return recall_key((1, 2, 3, 4), 0, RenderSpec(dpi=192), {"model": "m"}, "plain")

    before = key()
    changed = tmp_path / "imaging.py"
    changed.write_bytes(Path(str(imaging.__file__)).read_bytes() + b"\n# a changed encoder\n")
    monkeypatch.setattr(imaging, "__file__", str(changed))
    after = key()
    monkeypatch.undo()
    assert after != before and key() == before


def test_stream_pages_recall_and_bytes_inputs_write_no_entry(tmp_path: Path, renders: list[int]) -> None:
    """``stream_pages`` recalls the pages a run cached, as ``convert`` does; a document given as
    bytes (no file to find it by again) is neither recalled nor given entries."""
    pdf = text_pdf(tmp_path / "doc.pdf", PAGES[:3])
    with OpenAISimulator(model="m") as sim:
        settings: dict[str, Any] = {"backend": "openai", "dialect": "plain", "base_url": sim.base_url, "model": "m",
                                    "api_key": sim.api_key}  # fmt: skip
        ocrclient.convert(pdf.read_bytes(), cache=PageCache(tmp_path / "b"), **settings)
        assert not list((tmp_path / "b").glob("recall/*/*"))
        list(ocrclient.stream_pages(pdf, cache=PageCache(tmp_path / "c"), **settings))
        renders.clear()
        again = list(ocrclient.stream_pages(pdf, cache=PageCache(tmp_path / "c"), **settings))
        assert renders == [] and sim.requests[CHAT] == 6
    assert sorted(p.page for p in again) == [1, 2, 3] and all(p.cached for p in again)


def _replace_keeping_size_and_mtime(pdf: Path, lines: list[list[str]], *, in_place: bool) -> None:
    """``pdf`` given other content of its size with its modification time restored: written in
    place (``cp -p``, ``rsync --inplace -t``), or a new file renamed over it (an archive's
    fixed times: another inode)."""
    st = os.stat(pdf)
    new = text_pdf(pdf.with_name("new.pdf"), lines)
    assert new.stat().st_size == st.st_size
    if in_place:
        with open(pdf, "r+b") as fh:
            fh.write(new.read_bytes())
        new.unlink()
    else:
        os.replace(new, pdf)
    os.utime(pdf, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(pdf).st_size, os.stat(pdf).st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def _readings(body: dict[str, Any]) -> SimReply:
    return SimReply(f"reading of image {hash(_image_of(body)) & 0xFFFFFF:06x}")


@pytest.mark.parametrize("how", ["replaced after the head start rendered it", "rewritten in place, mtime kept",
                                 "renamed over, size and mtime kept"])  # fmt: skip
def test_a_file_changed_after_its_pages_were_rendered_never_recalls_their_readings(how: str, tmp_path: Path) -> None:
    """Every way a PDF can change between its pages' render and a later lookup: each rerun sends
    and yields with the recall entries what it does without them.  Before, ``ocr convert``'s head
    start rendered pages before the run looked the file up (a file replaced in between got the
    old pages' readings recalled for the new file ever after), and a file rewritten with its size
    and modification time kept was taken for the same file."""
    import asyncio

    from ocrclient.pages import prepare
    from ocrclient.pages.pool import pool_for
    from ocrclient.registry import load_backend
    from ocrclient.run import Conversion

    pdf = text_pdf(tmp_path / "doc.pdf", [["Version ONE, page 1."], ["Version ONE, page 2."]])
    two = [["Version TWO, page 1."], ["Version TWO, page 2."]]
    with OpenAISimulator(model="m", responder=_readings) as sim:
        settings: dict[str, Any] = {"dialect": "plain", "base_url": sim.base_url, "model": "m", "api_key": sim.api_key}
        if how.startswith("replaced after the head start"):  # (as ocr convert does: prime, then build the backend)
            plan = prepare([str(pdf)])
            backend = load_backend("openai", **settings)
            pool = pool_for(plan)
            pool.start_soon()
            assert pool.prime(plan, backend.render, 3) == 2
            deadline = time.monotonic() + 30
            while any(not f.done() for f in pool._primed.values()) and time.monotonic() < deadline:
                time.sleep(0.02)
            _replace_keeping_size_and_mtime(pdf, two, in_place=False)

            async def first() -> None:
                conv = Conversion(backend=backend, cache=PageCache(tmp_path / "c"), prepared=plan, render_pool=pool)
                (doc,) = [r.document async for r in conv]
                assert [p.status for p in doc.pages] == ["ok", "ok"]

            asyncio.run(first())
            pool.close()
        else:
            ocrclient.convert(pdf, backend="openai", cache=PageCache(tmp_path / "c"), **settings)
            time.sleep(0.02)  # (the change time moves on: its clock ticks in milliseconds)
            _replace_keeping_size_and_mtime(pdf, two, in_place=how.startswith("rewritten"))
        shutil.copytree(tmp_path / "c", tmp_path / "plain")
        shutil.rmtree(tmp_path / "plain" / "recall", ignore_errors=True)
        seen = []
        for cache in ("c", "plain"):
            before = sim.requests[CHAT]
            doc = ocrclient.convert(pdf, backend="openai", cache=PageCache(tmp_path / cache), **settings)
            seen.append((_pages(doc), sim.requests[CHAT] - before))
    assert seen[0] == seen[1], how
    assert seen[0][1] == 2  # (the new file's pages: every one sent)


def test_recall_entries_a_run_writes_on_hits_alone_keep_the_cache_under_its_cap(tmp_path: Path) -> None:
    """A cache whose pages are all there, the PDF found afresh by each run (a checkout, a
    download: another inode): every page is rendered, hit, and given a new entry.  Only a page's
    write enforced the cap, so run after run of hits grew the entries past it for good."""
    src = text_pdf(tmp_path / "src.pdf", [[f"Page {n} of the report."] for n in range(1, 13)])
    with OpenAISimulator(model="m") as sim:
        settings: dict[str, Any] = {"backend": "openai", "dialect": "plain", "base_url": sim.base_url, "model": "m",
                                    "api_key": sim.api_key, "concurrency": 4}  # fmt: skip
        shutil.copy(src, tmp_path / "doc.pdf")
        ocrclient.convert(tmp_path / "doc.pdf", cache=PageCache(tmp_path / "c", max_bytes=0), **settings)
        cap = PageCache(tmp_path / "c", max_bytes=0).info().bytes + 1500
        for _ in range(6):
            (tmp_path / "doc.pdf").unlink()
            shutil.copy(src, tmp_path / "doc.pdf")
            doc = ocrclient.convert(tmp_path / "doc.pdf", cache=PageCache(tmp_path / "c", max_bytes=cap), **settings)
            assert [p.status for p in doc.pages] == ["ok"] * 12
            on_disk = sum(f.stat().st_size for f in (tmp_path / "c").rglob("*") if f.is_file())
            assert on_disk <= cap, (on_disk, cap)


def test_every_write_of_the_cache_is_off_the_event_loop(tmp_path: Path) -> None:
    """A page stored (with its recall entry) on a first run, and a rendered page found in the
    cache on a rerun (its recall entry written): each write waits on the cache's lock (another
    thread's fsync, a prune, the first write's measure of the whole cache), so none runs on the
    loop that sends and reads every page.  A hit's recall entry was written on it."""
    import threading

    loop: set[int] = set()  # (each run's own: a thread's id is given again once it has ended)
    writers: list[tuple[str, int]] = []

    class Watched(PageCache):
        def put(self, key: str, page: Any) -> None:
            writers.append(("put", threading.get_ident()))
            super().put(key, page)

        def put_recall(self, key: str, data: bytes) -> None:
            writers.append(("put_recall", threading.get_ident()))
            super().put_recall(key, data)

    def run() -> tuple[Document, list[str]]:
        loop.clear()
        writers.clear()
        doc = ocrclient.convert(pdf, cache=Watched(tmp_path / "c"), **settings)
        assert loop and not loop & {thread for _, thread in writers}, (loop, writers)
        return doc, sorted(w for w, _ in writers)

    pdf = text_pdf(tmp_path / "doc.pdf", PAGES[:4])
    with OpenAISimulator(model="m") as sim:
        settings: dict[str, Any] = {"backend": "openai", "dialect": "plain", "base_url": sim.base_url, "model": "m",
                                    "api_key": sim.api_key, "on_event": lambda e: loop.add(threading.get_ident())}  # fmt: skip
        assert run()[1] == ["put"] * 4 + ["put_recall"] * 4
        shutil.rmtree(tmp_path / "c" / "recall")  # (the rerun renders each page, finds it, writes its entry)
        doc, written = run()
    assert all(p.cached for p in doc.pages) and written == ["put_recall"] * 4
