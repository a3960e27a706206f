"""A PDF whose page tree points one page at nothing (a ``/Kids`` entry naming a missing object):
that page fails, and every other page is its own.

Two defects met there.  The local engine's furniture check read the neighbouring pages without
a guard, so one unloadable page made its neighbours drop their text layer for OCR.  Worse,
PDFium itself: once a handle has failed to load a page, it can hand back *another* page for a
later index (the 3rd page read as the 4th), so the renderer, the text layer and the searchable
PDF's copy could each put one page's content under another's number.  The kind: the unloadable
page at every position x every order the pages are read in x every reader of a page by its
index; and the whole local run, wherever the page sits."""

from __future__ import annotations

import itertools
from pathlib import Path

import pypdfium2 as pdfium
import pytest

import ocrclient
from ocrclient.engines import text_layer
from ocrclient.exporters.pdf import SearchablePdf
from ocrclient.imaging import RenderSpec
from ocrclient.pages.render import RenderJob, close_open_documents, render_job

from .pdfgen import PdfPage, write_pdf

N = 5


def _report(path: Path, pages: int = N) -> Path:
    return write_pdf(path, [
        PdfPage(media=(0, 0, 612, 792), texts=[
            (72, 750, 10, "Annual Report of the Harbour Board"),
            (72, 640, 12, f"Section {i + 1} reviews the year's shipping and the state of the quays."),
            (72, 620, 12, "Tonnage rose while the dredging programme kept to its budget."),
            (72 + 40 * i, 400, 40, "#"),  # so each page's picture differs too
            (300, 40, 10, str(i + 1)),
        ]) for i in range(pages)
    ])  # fmt: skip


def _unloadable(path: Path, data: bytes, k: int, pages: int = N) -> Path:
    """The same PDF with page ``k``'s entry in the page tree pointing at an object that is not there."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(pages))
    broken = " ".join("99 0 R" if i == k else f"{4 + 2 * i} 0 R" for i in range(pages))
    assert data.count(f"/Kids [{kids}]".encode()) == 1
    path.write_bytes(data.replace(f"/Kids [{kids}]".encode(), f"/Kids [{broken}]".encode()))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Path]]:
    tmp = tmp_path_factory.mktemp("tree")
    intact = _report(tmp / "intact.pdf")
    return intact, {k: _unloadable(tmp / f"broken{k}.pdf", intact.read_bytes(), k) for k in range(N)}


ORDERS = list(itertools.permutations(range(N), 3))
SPEC = RenderSpec(dpi=12)


def _rendered(path: Path, index: int) -> bytes | None:
    image = render_job(RenderJob(kind="pdf", path=str(path), password=None, index=index, spec=SPEC, name=path.name))
    return image.encoded.data if image.encoded is not None and image.error is None else None


def _layer_text(path: Path, index: int) -> str | None:
    try:
        return "".join(c.text for c in text_layer.read_layer(str(path), index).chars)
    except pdfium.PdfiumError:
        return None


def _copied_text(path: Path, order: tuple[int, ...]) -> dict[int, str]:
    """Each page of ``order`` copied into a searchable PDF, in that order -> its text there."""
    from ocrclient.document import Page

    src = pdfium.PdfDocument(str(path))
    pdf = SearchablePdf(src, reopen=lambda: pdfium.PdfDocument(str(path)))
    try:
        for i in order:
            pdf.add(Page(page=i + 1, status="failed", width=612, height=792))
        out = pdfium.PdfDocument(pdf.save())
        return {number: out[pos].get_textpage().get_text_range() for pos, number in enumerate(pdf.placed)}
    finally:
        pdf.close()
        src.close()


@pytest.mark.parametrize("k", range(N))
def test_every_reader_of_a_page_by_its_index_reads_that_page(k: int, files: tuple[Path, dict[int, Path]]) -> None:
    intact, broken = files[0], files[1][k]
    close_open_documents()
    text_layer.close_documents()
    renders = {i: _rendered(intact, i) for i in range(N)}
    layers = {i: _layer_text(intact, i) for i in range(N)}
    copies = _copied_text(intact, tuple(range(N)))
    assert len(set(renders.values())) == N and len(set(layers.values())) == N  # the pages differ
    for order in ORDERS:
        close_open_documents()  # each order starts from handles opened afresh
        text_layer.close_documents()
        for i in order:
            assert _rendered(broken, i) == (None if i == k else renders[i]), (order, i)
            assert _layer_text(broken, i) == (None if i == k else layers[i]), (order, i)
        got = _copied_text(broken, order)
        assert got == {i + 1: copies[i + 1] for i in order if i != k}, order
    close_open_documents()
    text_layer.close_documents()


@pytest.mark.parametrize("k", [0, 1, 2, 4], ids=["first", "second", "middle", "last"])
def test_a_local_run_fails_the_unloadable_page_alone(k: int, files: tuple[Path, dict[int, Path]]) -> None:
    """Every other page reads as in the intact file, from its own text layer, with no warning."""
    intact, broken = files[0], files[1][k]
    good = ocrclient.convert(intact, cache=False)
    bad = ocrclient.convert(broken, cache=False)
    assert all(p.status == "ok" and {b.source for b in p.blocks} == {"text-layer"} for p in good.pages)
    for g, b in zip(good.pages, bad.pages, strict=True):
        if g.page == k + 1:
            assert b.status == "failed", b
            continue
        assert (b.status, {x.source for x in b.blocks}, b.warnings) == ("ok", {"text-layer"}, []), b.page
        assert b.markdown == g.markdown, b.page
