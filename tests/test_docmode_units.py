"""--document-mode on long documents: a document goes as several whole-PDF jobs (pages per job
at most ``document_pages``, each job's PDF under RunPod's body limit), and every page selected
comes back once, in order, with its own text and boxes, whatever the cut."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

import ocrclient
from ocrclient import docmode
from ocrclient.pages import open_sources
from ocrclient.pages.ranges import parse_page_range
from ocrclient.testing import FaultPlan, RunPodSimulator, SimReply
from ocrclient.testing.responders import DialectResponder, SentImage

from .pdfgen import blank_pdf

#: page i (0-based) is 300 + 12 i points wide: its width, drawn by the simulated worker at
#: 96 dpi, names it in what the model reads on it
SIZES = [(300 + 12 * i, 500) for i in range(9)]


def _said(image: SentImage) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    return [("title", f"Width {image.width}", (0.1, 0.1, 0.6, 0.2)), ("text", "Body.", (0.1, 0.3, 0.9, 0.5))]


def _drawn_width(points: float) -> int:
    return round(points * 96 / 72)


def _convert(pdf: Path, sim: RunPodSimulator, pages: str | None, **options: Any) -> ocrclient.Document:
    return ocrclient.convert(pdf, backend="runpod-deepseek-ocr", pages=pages, cache=False, document_mode=True,
                             base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
                             **options)  # fmt: skip


@pytest.mark.parametrize("document_pages", [1, 2, 4, 9, 50])
def test_every_page_selected_comes_back_once_in_order_with_its_own_text_whatever_the_cut(
    tmp_path: Path, document_pages: int
) -> None:
    pdf = blank_pdf(tmp_path / "d.pdf", SIZES)
    for pages in (None, "2-3,5,7-", "9", "1,3,5,7,9"):
        responder = DialectResponder("deepseek", truth=_said)
        with RunPodSimulator(responder=responder) as sim:
            doc = _convert(pdf, sim, pages, dialect_options={"document_pages": document_pages})
        wanted = [i + 1 for i in parse_page_range(pages, len(SIZES))] if pages else list(range(1, 10))
        assert [p.page for p in doc.pages] == wanted, (pages, document_pages)
        assert all(p.status == "ok" for p in doc.pages), [(p.page, p.status, p.warnings) for p in doc.pages]
        for page in doc.pages:
            w, h = SIZES[page.page - 1]
            assert f"Width {_drawn_width(w)}" in page.markdown, (pages, document_pages, page.page, page.markdown)
            assert page.blocks[0].bbox == pytest.approx([0.1 * w, 0.1 * h, 0.6 * w, 0.2 * h], abs=0.02 * w)
        assert sim.jobs_submitted == -(-len(wanted) // document_pages), (pages, document_pages)


def test_a_long_document_goes_as_jobs_of_the_default_size_each_under_the_workers_page_limit(tmp_path: Path) -> None:
    """Before, a document went as one job whatever its length, and the worker refuses a PDF of
    more than its MAX_PDF_PAGES (200): every page of a long book failed."""
    pdf = blank_pdf(tmp_path / "long.pdf", [(200, 300)] * (docmode.DOCUMENT_PAGES * 2 + 3))
    sizes: list[int] = []
    lock = threading.Lock()

    def respond(body: dict[str, Any]) -> SimReply:
        sent = pdfium.PdfDocument(base64.b64decode(body["pdf_base64"]))
        with lock:
            sizes.append(len(sent))
        text = "\n\n<--- Page Split --->\n\n".join(f"page {i + 1}" for i in range(len(sent)))
        return SimReply(text + "\n\n<--- Page Split --->\n\n")

    with RunPodSimulator(responder=respond) as sim:
        doc = _convert(pdf, sim, None)
    assert sorted(sizes) == [3, docmode.DOCUMENT_PAGES, docmode.DOCUMENT_PAGES]
    assert [p.page for p in doc.pages] == list(range(1, docmode.DOCUMENT_PAGES * 2 + 4))
    # (degraded: this worker sends no detection markdown, so no boxes) each its own job's page
    assert [p.markdown.strip() for p in doc.pages] == [f"page {(n % docmode.DOCUMENT_PAGES) + 1}" for n in range(len(doc.pages))]
    assert all(p.status == "degraded" and p.error is None for p in doc.pages)


def test_a_failed_job_fails_its_own_pages_only(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "d.pdf", SIZES)
    inner = DialectResponder("deepseek", truth=_said)

    def respond(body: dict[str, Any]) -> SimReply:
        sent = pdfium.PdfDocument(base64.b64decode(body["pdf_base64"]))
        widths = {round(sent[i].get_size()[0]) for i in range(len(sent))}
        if SIZES[4][0] in widths:  # the job carrying page 5 (pages 4-6 with 3 a job)
            raise ValueError("the worker fell over")
        return inner(body)

    with RunPodSimulator(responder=respond, plan=FaultPlan()) as sim:
        doc = _convert(pdf, sim, None, dialect_options={"document_pages": 3},
                       scheduler_options={"backoff_initial_s": 0.01, "backoff_max_s": 0.02})
    assert [p.page for p in doc.pages] == list(range(1, 10))
    assert [p.page for p in doc.pages if p.status == "failed"] == [4, 5, 6]
    assert all(p.status == "ok" for p in doc.pages if p.page not in (4, 5, 6))


def test_units_are_cut_in_halves_until_each_fits_the_body_budget(tmp_path: Path) -> None:
    """Whatever the budget, the units cover the pages selected once, in order; each unit's PDF
    fits, or is a single page (which the transport then refuses with its reason)."""
    pdf = blank_pdf(tmp_path / "d.pdf", SIZES)
    (src,) = open_sources([pdf])
    whole = len(docmode.document_unit(src, list(range(9))).page.encoded.data)
    for budget in (None, whole, whole // 2, whole // 5, 1):
        for indices in ([0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 4, 6, 7, 8]):
            units = docmode.document_units(src, indices, max_pages=4, max_bytes=budget)
            assert [n - 1 for u in units for n in u.numbers] == indices, budget
            for u in units:
                assert len(u.numbers) <= 4
                assert budget is None or len(u.numbers) == 1 or len(u.page.encoded.data) <= budget, budget
    assert len(docmode.document_units(src, list(range(9)), max_pages=9, max_bytes=1)) == 9


def test_the_body_budget_is_runpods_smaller_limit_less_base64_and_the_envelope() -> None:
    class Transport:
        max_run_bytes = 10_000_000
        max_runsync_bytes = 20_000_000

    budget = docmode.body_budget(Transport())
    assert budget is not None and budget * 4 / 3 + 64 * 1024 <= 10_000_000
    assert docmode.body_budget(object()) is None


def test_a_document_over_runpods_body_limit_goes_in_pieces_that_fit(tmp_path: Path) -> None:
    """A PDF over the body limit failed every page ("send its pages instead"); now it is cut
    into jobs under the limit (here a limit made small, as the transport's options allow)."""
    pdf = blank_pdf(tmp_path / "d.pdf", SIZES)
    (src,) = open_sources([pdf])
    whole = len(docmode.document_unit(src, list(range(9))).page.encoded.data)
    limit = whole * 4 // 3 // 2 + 64 * 1024  # about half the document's base64, with the envelope
    responder = DialectResponder("deepseek", truth=_said)
    with RunPodSimulator(responder=responder) as sim:
        doc = _convert(pdf, sim, None, transport_options={"max_run_bytes": limit, "max_runsync_bytes": limit})
    assert [p.page for p in doc.pages] == list(range(1, 10)) and all(p.status == "ok" for p in doc.pages)
    assert sim.jobs_submitted >= 2


def test_outputs_of_a_document_sent_in_several_jobs_have_every_pages_image_crops_and_sizes(tmp_path: Path) -> None:
    """The outputs that need page images (figure crops, the viewer, the searchable PDF) draw them
    from the PDFs that were sent: with several jobs, from each job's own, every page once."""
    from ocrclient.exporters.sink import OutputWriter

    from .test_run_outputs import html_images

    def said(image: SentImage) -> list[tuple[str, str, tuple[float, float, float, float]]]:
        return [*_said(image), ("figure", "", (0.2, 0.55, 0.8, 0.9))]

    sizes = [(300, 400), (400, 300), (320, 420), (420, 320), (500, 360)]
    pdf = blank_pdf(tmp_path / "d.pdf", sizes)
    out = tmp_path / "out"
    with RunPodSimulator(responder=DialectResponder("deepseek", truth=said)) as sim, \
            OutputWriter(out, ["md", "html", "pdf"]) as w:  # fmt: skip
        doc = _convert(pdf, sim, None, outputs=w, dialect_options={"document_pages": 2})
        assert sim.jobs_submitted == 3
    assert [p.page for p in doc.pages] == [1, 2, 3, 4, 5] and all(p.status == "ok" for p in doc.pages)
    md = (out / "d.md").read_text(encoding="utf-8")
    assert all(f"d_figures/page{n}_fig1.png" in md for n in range(1, 6)), md
    images = html_images((out / "d.html").read_text(encoding="utf-8"))
    assert [round(i.width / i.height, 2) for i in images] == [round(w / h, 2) for w, h in sizes]
    got = pdfium.PdfDocument(out / "d.pdf")
    try:
        assert [tuple(round(v) for v in got[i].get_size()) for i in range(len(got))] == sizes
    finally:
        got.close()
