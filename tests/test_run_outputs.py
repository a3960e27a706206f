"""Outputs are written from what the run already has (issue 15, "Exporters take what the run
already has").

The kind: every output made of page images — the markdown's figure crops, the HTML viewer's
page images, the searchable PDF's pages — comes from the run's own renders (or, for a PDF
input's searchable PDF, from the input document the run opened when the document started), so

* a document given as bytes gets them all (the old writers re-opened ``doc.source``, which a
  document made from bytes does not have: no crops, blank viewer pages, no PDF);
* no writer opens the input once its pages are rendered (the input renamed away at that moment
  changes nothing; every open of it is recorded and there is none);
* writing begins as pages finish: a finished page's crops and viewer image are on disk while
  the document's last page is still out, and the sink keeps file names, not page images.
"""

from __future__ import annotations

import base64
import io
import re
import threading
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageChops, ImageStat

import ocrclient
from ocrclient.document import Block, Document, Page
from ocrclient.exporters import write_outputs
from ocrclient.exporters.sink import DocumentSink, OutputWriter
from ocrclient.imaging import RenderSpec
from ocrclient.pages import iter_pages, open_sources
from ocrclient.scheduler import Event, PageDone
from ocrclient.testing import DialectResponder, OpenAISimulator, SentImage, SimReply

from .pdfgen import PdfPage, blank_pdf, write_pdf
from .test_e2e_geometry import displayed_box
from .test_exporters import _need, _pdftotext

MODEL = "datalab-to/chandra"
TEXT = "Hello bytes world"
#: the run's render (the chandra dialect also lifts the shortest side to 1024 px): crops are cut
#: from the image the model saw, not from a re-render at FIGURE_DPI
DPI = 108.0

Box = tuple[float, float, float, float]

#: pages of the test PDF: (media, /Rotate, the figure rectangle in user space)
PAGES: list[tuple[Box, int, Box]] = [
    ((0, 0, 300, 200), 0, (60, 40, 180, 120)),
    ((0, 0, 300, 200), 90, (20, 30, 110, 90)),
    ((0, 0, 240, 320), 0, (40, 200, 200, 300)),
    ((0, 0, 240, 320), 270, (100, 20, 220, 140)),
]


def make_pdf(path: Path) -> tuple[Path, list[Box]]:
    """The test PDF and each page's figure box in [0, 1] of the displayed page."""
    pages, norms = [], []
    for media, rot, rect in PAGES:
        pages.append(PdfPage(media=media, rotate=rot, rects=[rect]))
        x0, y0, x1, y1 = displayed_box(rect, media, rot)
        w, h = (media[2], media[3]) if rot in (0, 180) else (media[3], media[2])
        norms.append((x0 / w, y0 / h, x1 / w, y1 / h))
    return write_pdf(path, pages), norms


def by_aspect(norms: dict[float, Box]) -> Any:
    """A responder truth: a line of text and one figure, the figure's box picked by the image's
    aspect ratio (every test page has its own)."""

    def truth(image: SentImage) -> list[tuple[str, str, Box]]:
        aspect = image.width / image.height
        key = min(norms, key=lambda a: abs(a / aspect - 1))
        return [("text", TEXT, (0.05, 0.02, 0.95, 0.1)), ("figure", "a black box", norms[key])]

    return truth


def aspects(norms: list[Box]) -> dict[float, Box]:
    out = {}
    for (media, rot, _), box in zip(PAGES, norms, strict=True):
        w, h = media[2] - media[0], media[3] - media[1]
        out[(w / h) if rot in (0, 180) else (h / w)] = box
    return out


def convert(source: Any, sim: OpenAISimulator, outputs: OutputWriter, **kw: Any) -> Document:
    return ocrclient.convert(
        source, backend="openai", base_url=sim.base_url, api_key=sim.api_key, model=MODEL, dialect="chandra",
        cache=False, render={"dpi": DPI}, concurrency=8, outputs=outputs, **kw,
    )  # fmt: skip


def darkness(img: Image.Image) -> float:
    return 1 - ImageStat.Stat(img.convert("L")).mean[0] / 255


def html_images(html: str) -> list[Image.Image]:
    urls = re.findall(r'<img class="scan" alt="page \d+" src="data:image/jpeg;base64,([^"]+)"', html)
    return [Image.open(io.BytesIO(base64.b64decode(u))) for u in urls]


def sent_scale(responder: DialectResponder, page: Page) -> float:
    """Pixels per point of the image the model saw for ``page`` (the run's render)."""
    sent = min(responder.seen, key=lambda s: abs(s.width / s.height / (page.width / page.height) - 1))
    return sent.width / page.width


def check_outputs(doc: Document, stem: Path, responder: DialectResponder) -> None:
    """Every page: its figure crop, cut from the image the model saw (the box in points times
    that image's pixels per point), its viewer image, its page in the searchable PDF with the
    OCR's text."""
    md = stem.with_suffix(".md").read_text(encoding="utf-8")
    folder = stem.parent / f"{stem.name}_figures"
    for page in doc.pages:
        assert page.status == "ok", page.error
        fig = next(b for b in page.blocks if b.type == "figure")
        crop_path = folder / f"page{page.page}_fig1.png"
        assert f"{folder.name}/page{page.page}_fig1.png" in md
        assert fig.bbox is not None
        scale = sent_scale(responder, page)
        with Image.open(crop_path) as crop:
            w_pt, h_pt = fig.bbox[2] - fig.bbox[0], fig.bbox[3] - fig.bbox[1]
            assert abs(crop.width - w_pt * scale) <= 1.5 and abs(crop.height - h_pt * scale) <= 1.5, (crop.size, fig.bbox)
            assert darkness(crop) > 0.8, page.page  # the black rectangle, not page background
    html = stem.with_suffix(".html").read_text(encoding="utf-8")
    images = html_images(html)
    assert len(images) == len(doc.pages)
    for img, page in zip(images, doc.pages, strict=True):
        assert abs(img.width / img.height - page.width / page.height) < 0.02
    pdf = pdfium.PdfDocument(stem.with_suffix(".pdf"))
    try:
        assert len(pdf) == len(doc.pages)
        for i, page in enumerate(doc.pages):
            assert pdf[i].get_size() == pytest.approx((page.width, page.height), abs=0.5)
    finally:
        pdf.close()
    for page in doc.pages:
        assert TEXT in " ".join(_pdftotext(stem.with_suffix(".pdf"), page.page).split())


@pytest.fixture
def pdf_input(tmp_path: Path) -> tuple[Path, list[Box]]:
    _need("pdftotext")
    (tmp_path / "in").mkdir()
    return make_pdf(tmp_path / "in" / "doc.pdf")


def test_a_pdf_given_as_bytes_gets_crops_page_images_and_a_searchable_pdf(
    pdf_input: tuple[Path, list[Box]], tmp_path: Path
) -> None:
    path, norms = pdf_input
    data = path.read_bytes()
    responder = DialectResponder("chandra", truth=by_aspect(aspects(norms)))
    out = tmp_path / "out"
    with OpenAISimulator(responder=responder, model=MODEL) as sim, OutputWriter(out, ["md", "json", "html", "pdf"]) as w:
        doc = convert(data, sim, w)
    assert doc.source.startswith("bytes:")
    (stem,) = {p.with_suffix("") for p in out.glob("*.json")}
    check_outputs(doc, stem, responder)
    # the searchable PDF keeps the input's own pages: rotation and vector content as they were
    src, got = pdfium.PdfDocument(data), pdfium.PdfDocument(stem.with_suffix(".pdf"))
    try:
        assert [got[i].get_rotation() for i in range(len(got))] == [rot for _, rot, _ in PAGES]
        for i in range(len(src)):
            a = src[i].render(scale=0.5).to_pil().convert("L")
            b = got[i].render(scale=0.5).to_pil().convert("L")
            assert a.size == b.size
            assert ImageStat.Stat(ImageChops.difference(a, b)).mean[0] < 0.5, i
    finally:
        src.close()
        got.close()
    # nothing is left behind but the outputs (the viewer's spilled page images are gone)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem.name}{s}" for s in (".md", ".json", ".html", ".pdf")] + [f"{stem.name}_figures"]
    )


def test_an_image_given_as_bytes_gets_crops_page_images_and_a_searchable_pdf(tmp_path: Path) -> None:
    _need("pdftotext")
    img = Image.new("RGB", (400, 300), "white")
    img.paste((0, 0, 0), (100, 60, 260, 180))
    buf = io.BytesIO()
    img.save(buf, "PNG", dpi=(144, 144))
    box = (100 / 400, 60 / 300, 260 / 400, 180 / 300)
    responder = DialectResponder("chandra", truth=lambda image: [("text", TEXT, (0.05, 0.02, 0.95, 0.1)),
                                                                  ("figure", "a black box", box)])  # fmt: skip
    out = tmp_path / "out"
    with OpenAISimulator(responder=responder, model=MODEL) as sim, OutputWriter(out, ["md", "html", "pdf"]) as w:
        doc = convert(buf.getvalue(), sim, w)
    (stem,) = {p.with_suffix("") for p in out.glob("*.md")}
    md = stem.with_suffix(".md").read_text(encoding="utf-8")
    assert f"{stem.name}_figures/page1_fig1.png" in md
    scale = sent_scale(responder, doc.pages[0])  # the run's render of the 400 x 300 px image
    with Image.open(stem.parent / f"{stem.name}_figures" / "page1_fig1.png") as crop:
        assert abs(crop.width - 160 * scale) <= 1.5 and abs(crop.height - 120 * scale) <= 1.5
        assert darkness(crop) > 0.8
    assert len(html_images(stem.with_suffix(".html").read_text(encoding="utf-8"))) == 1
    pdf = pdfium.PdfDocument(stem.with_suffix(".pdf"))
    try:
        assert pdf[0].get_size() == pytest.approx((200.0, 150.0), abs=0.1)  # 400 px at 144 dpi
    finally:
        pdf.close()
    assert TEXT in " ".join(_pdftotext(stem.with_suffix(".pdf"), 1).split())
    assert doc.pages[0].status == "ok"


class _OpenGuard:
    """Records every open of the input (by path or by its bytes) through pypdfium2 or PIL."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path, moved: Path) -> None:
        self.paths = {path.resolve(), moved.resolve()}
        self.data = path.read_bytes()
        self.armed = False
        self.opened: list[str] = []
        real_doc, real_open = pdfium.PdfDocument, Image.open
        guard = self

        class GuardedDocument(real_doc):  # type: ignore[misc, valid-type]
            def __init__(self, input: Any, *args: Any, **kwargs: Any) -> None:
                guard.check("pypdfium2.PdfDocument", input)
                super().__init__(input, *args, **kwargs)

        def guarded_open(fp: Any, *args: Any, **kwargs: Any) -> Any:
            guard.check("PIL.Image.open", fp)
            return real_open(fp, *args, **kwargs)

        monkeypatch.setattr(pdfium, "PdfDocument", GuardedDocument)
        monkeypatch.setattr(Image, "open", guarded_open)

    def check(self, what: str, target: Any) -> None:
        if not self.armed:
            return
        if isinstance(target, str | Path) and Path(target).resolve() in self.paths:
            self.opened.append(f"{what}({target})")
        elif isinstance(target, bytes) and target == self.data:
            self.opened.append(f"{what}(<the input's bytes>)")


def test_no_writer_opens_the_input(pdf_input: tuple[Path, list[Box]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulated model answers no page before every page has been rendered and sent; at
    that moment the input is renamed away and every later open of it is recorded.  All outputs
    are still complete — and the old way (writing the Document afterwards, which re-opens the
    input) cannot make them."""
    path, norms = pdf_input
    moved = path.with_name("moved-away.bin")
    guard = _OpenGuard(monkeypatch, path, moved)
    n = len(PAGES)
    all_sent = threading.Event()
    lock = threading.Lock()
    inner = by_aspect(aspects(norms))

    def truth(image: SentImage) -> Any:
        with lock:
            if len(responder.seen) >= n and not all_sent.is_set():
                path.rename(moved)
                guard.armed = True
                all_sent.set()
        assert all_sent.wait(30), "not every page was sent"
        return inner(image)

    responder = DialectResponder("chandra", truth=truth)
    out = tmp_path / "out"
    with OpenAISimulator(responder=responder, model=MODEL) as sim, OutputWriter(out, ["md", "json", "txt", "html", "pdf"]) as w:
        doc = convert(path, sim, w)
    assert not path.exists() and guard.armed
    assert guard.opened == []
    guard.armed = False
    check_outputs(doc, out / "doc", responder)
    # the control: the old way re-opens the input for its pages, and it is gone
    legacy = tmp_path / "legacy"
    write_outputs(doc, legacy, "doc", ["md"])
    assert not (legacy / "doc_figures").exists()


def test_writing_begins_as_pages_finish(pdf_input: tuple[Path, list[Box]], tmp_path: Path) -> None:
    """While the last page is still out, every other page's crop and viewer image are already
    on disk (and the markdown is not: it is written when the document is done)."""
    path, norms = pdf_input
    n = len(PAGES)
    inner = by_aspect(aspects(norms))
    last = threading.Event()

    def truth(image: SentImage) -> Any:
        if image.order == n:  # the last page to arrive answers a second after the others
            last.wait(1.0)
        return inner(image)

    out = tmp_path / "out"
    seen: list[tuple[int, list[str], list[str], bool]] = []

    def on_event(event: Event) -> None:
        if isinstance(event, PageDone):
            figures = sorted(p.name for p in (out / "doc_figures").glob("*.png")) if (out / "doc_figures").is_dir() else []
            spilled = sorted(p.name for p in out.glob(".doc.*.pages/*.jpg"))
            seen.append((event.page, figures, spilled, (out / "doc.md").exists()))

    responder = DialectResponder("chandra", truth=truth)
    with OpenAISimulator(responder=responder, model=MODEL) as sim, OutputWriter(out, ["md", "html"]) as w:
        convert(path, sim, w, on_event=on_event)
    assert len(seen) == n
    page, figures, spilled, md_written = seen[-1]
    others = sorted(p for p, *_ in seen[:-1])
    assert page not in others
    # the last page's own pieces are made beside this event (the outputs get it first and hand
    # the work to their executor): they may be on disk yet or not; every other page's are
    assert [f for f in figures if f != f"page{page}_fig1.png"] == [f"page{p}_fig1.png" for p in others]
    assert [f for f in spilled if f != f"page{page}.jpg"] == [f"page{p}.jpg" for p in others]
    assert not md_written
    assert not list(out.glob(".doc.*.pages"))  # spilled images are gone once the HTML is written


@pytest.mark.parametrize("workers", [0, 2], ids=["inline", "executor"])
def test_a_sink_keeps_file_names_not_page_images(pdf_input: tuple[Path, list[Box]], tmp_path: Path, workers: int) -> None:
    """Memory stays bounded: a finished page's image is dropped, and so is its work's future
    once done (the run's output executor); what stays is its crops' links and the path of its
    spilled viewer image."""
    import concurrent.futures as cf

    path, norms = pdf_input
    (src,) = open_sources([path])
    executor = cf.ThreadPoolExecutor(workers) if workers else None
    sink = DocumentSink.start(src, {"md": tmp_path / "d.md", "html": tmp_path / "d.html"}, pages=len(PAGES), executor=executor)
    images = list(iter_pages(src, RenderSpec(dpi=DPI)))
    for image, box in zip(images, norms, strict=True):
        sink.take_image(image)
        assert sink.expects(image.number)
        page = Page(page=image.number, status="ok", width=image.page_box.width, height=image.page_box.height,
                    blocks=[Block(type="figure", bbox_norm=list(box))])  # fmt: skip
        sink.page_done(image.number, page)
        assert not sink.expects(image.number)
    if executor is not None:
        executor.shutdown(wait=True)
    assert sink._pending == {} and sink._futures == set()
    assert sorted(sink.links) == [(p, 1) for p in range(1, len(PAGES) + 1)]
    assert all(isinstance(f, Path) and f.is_file() for f in sink.html_files.values())
    sink.close()
    assert not any(f.exists() for f in sink.html_files.values())


def test_a_document_stopped_before_its_pages_started_is_still_written(pdf_input: tuple[Path, list[Box]], tmp_path: Path) -> None:
    """A run stopped (Ctrl-C, an abort) before a document's pages started: its outputs are
    written from the Document alone — failed pages, blank viewer pages saying why, the input's
    pages in the PDF."""
    path, _ = pdf_input
    (src,) = open_sources([path])
    doc = Document(source=str(path), backend="t", pages=[
        Page(page=i + 1, status="failed", width=300, height=200) for i in range(len(PAGES))])  # fmt: skip
    with OutputWriter(tmp_path / "out", ["md", "html", "pdf"]) as w:
        written = w.finish(src, doc)
    assert [p.name for p in written.paths] == ["doc.md", "doc.html", "doc.pdf"] and not written.errors
    html = (tmp_path / "out" / "doc.html").read_text(encoding="utf-8")
    assert html.count("the run stopped before this page was rendered") == len(PAGES)
    pdf = pdfium.PdfDocument(tmp_path / "out" / "doc.pdf")
    try:
        assert len(pdf) == len(PAGES)
    finally:
        pdf.close()


def test_finishing_a_sink_twice_writes_once(pdf_input: tuple[Path, list[Box]], tmp_path: Path) -> None:
    """Ctrl-C while a document's files are being written: the partial run's second finish waits
    for the first and returns what it wrote (no second, poorer write over it)."""
    path, _ = pdf_input
    (src,) = open_sources([path])
    doc = Document(source=str(path), backend="t", pages=[Page(page=1, status="ok", markdown="x")])
    sink = DocumentSink.start(src, {"md": tmp_path / "d.md"})
    first = sink.finish(doc)
    assert sink.finish(doc.model_copy(update={"pages": []})) is first
    assert (tmp_path / "d.md").read_text(encoding="utf-8") == "x\n"


class _Stop(Exception):
    """The run stopped (Ctrl-C) at a moment of a document's writing."""


@pytest.mark.parametrize("moment", ["while writing", "written, not handed over"])
async def test_a_run_stopped_around_a_documents_writing_keeps_its_files(
    moment: str, pdf_input: tuple[Path, list[Box]], tmp_path: Path
) -> None:
    """The whole kind of moments a run can stop at while a document's files are written: while
    they are being written (the writing thread goes on) and once they are, before the document
    is handed over.  The stopped run keeps the document (``Conversion.partial``) and
    ``ocr convert`` finishes it again: that second finish must give what the first wrote, not
    write again.  Before, once the first finish was over the writer had let go of the
    document's sink, and the second made a new one without page images: figure crops and the
    viewer's page images lost, over files that had them."""
    from ocrclient.run import Conversion

    path, norms = pdf_input
    responder = DialectResponder("chandra", truth=by_aspect(aspects(norms)))
    out = tmp_path / "out"
    with OpenAISimulator(responder=responder, model=MODEL) as sim, OutputWriter(out, ["md", "json", "html", "pdf"]) as w:
        finish, writing, firsts = w.finish, [], []

        def stopped_finish(src: Any, doc: Document) -> Any:
            if moment == "while writing":  # the thread writes on; the run stops at once
                writing.append(threading.Thread(target=lambda: firsts.append(finish(src, doc))))
                writing[-1].start()
            else:
                firsts.append(finish(src, doc))
            raise _Stop

        w.finish = stopped_finish  # type: ignore[method-assign]
        conv = Conversion(
            inputs=[str(path)], backend="openai", base_url=sim.base_url, api_key=sim.api_key, model=MODEL,
            dialect="chandra", cache=False, render={"dpi": DPI}, concurrency=8, outputs=w,
        )  # fmt: skip
        with pytest.raises(_Stop):
            async for _ in conv:
                pass
        (kept,) = conv.partial
        again = finish(kept.source, kept.document)
        for thread in writing:
            thread.join()
    assert again == firsts[0] and [p.name for p in again.paths] == ["doc.md", "doc.json", "doc.html", "doc.pdf"]
    check_outputs(kept.document, out / "doc", responder)


async def test_a_document_written_without_its_page_images_is_not_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Document mode draws a document's page images for its outputs after its job's reply: a
    run stopped between the two wrote the document, all pages ok, without figure crops or
    viewer images, and the manifest counted it done, so no rerun ever completed it.  Its
    outputs now come with an error line saying so, the manifest does not count it done, and the
    rerun (served by the cache) writes it whole."""
    import base64 as b64

    from ocrclient.cache import PageCache
    from ocrclient.manifest import Manifest
    from ocrclient.run import Conversion
    from ocrclient.testing import RunPodSimulator

    def respond(body: dict[str, Any]) -> SimReply:
        n = len(pdfium.PdfDocument(b64.b64decode(body["pdf_base64"])))
        det = "\n\n<--- Page Split --->\n\n".join(
            f"<|ref|>text<|/ref|><|det|>[[100, 100, 900, 200]]<|/det|>\nPage {i + 1}.\n\n"
            f"<|ref|>image<|/ref|><|det|>[[200, 300, 800, 700]]<|/det|>" for i in range(n))  # fmt: skip
        return SimReply(det.replace("<|ref|>", "").replace("<|/ref|>", ""), data={"detection_markdown": b64.b64encode(det.encode()).decode()})

    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800), (800, 600)])
    out, cache = tmp_path / "out", PageCache(tmp_path / "cache")
    (src,) = open_sources([pdf])
    manifest = Manifest(out)
    with RunPodSimulator(responder=respond) as sim:
        where = {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key}
        with OutputWriter(out, ["md", "json", "html"]) as w:
            stop = _Stop()

            async def stopped(*args: Any) -> None:
                raise stop  # (Ctrl-C as the page images are about to be drawn)

            monkeypatch.setattr(Conversion, "_unit_images", stopped)
            conv = Conversion(prepared=[(src, [0, 1])], backend="runpod-deepseek-ocr", cache=cache, outputs=w,
                              document_mode=True, **where)  # fmt: skip
            with pytest.raises(_Stop):
                async for _ in conv:
                    pass
            (kept,) = conv.partial
            assert [p.status for p in kept.document.pages] == ["ok", "ok"]
            written = w.finish(kept.source, kept.document)
        assert any("written without their page image" in e for e in written.errors), written.errors
        manifest.record(src, kept.document, written.paths, pages=None, output_errors=len(written.errors))
        assert not Manifest(out).done(src, backend=kept.document.backend, model=kept.document.model, pages=None)
        monkeypatch.undo()
        with OutputWriter(out, ["md", "json", "html"]) as w:
            (again,) = [r async for r in Conversion(prepared=[(src, [0, 1])], backend="runpod-deepseek-ocr", cache=cache,
                                                    outputs=w, document_mode=True, **where)]  # fmt: skip
    assert all(p.cached for p in again.document.pages) and not again.output_errors, again.output_errors
    md = (out / "d.md").read_text(encoding="utf-8")
    assert "d_figures/page1_fig1.png" in md and "d_figures/page2_fig1.png" in md
    assert len(html_images((out / "d.html").read_text(encoding="utf-8"))) == 2


def test_a_writer_writes_a_finished_document_again_only_when_it_is_opened_again(tmp_path: Path) -> None:
    """The writer's memory of finished documents: a second finish gives the first's files
    untouched; a document opened again (another run of it through the same writer) is written
    anew; the memory goes with the source."""
    import gc

    pdf = blank_pdf(tmp_path / "d.pdf", [(300, 200)])
    (src,) = open_sources([pdf])

    def doc(text: str) -> Document:
        return Document(source=str(pdf), backend="t", pages=[Page(page=1, status="ok", markdown=text)])

    with OutputWriter(tmp_path / "out", ["md"]) as w:
        first = w.finish(src, doc("first"))
        assert w.finish(src, doc("second")) == first
        assert (tmp_path / "out" / "d.md").read_text(encoding="utf-8") == "first\n"
        w.open(src, [1])
        w.finish(src, doc("third"))
        assert (tmp_path / "out" / "d.md").read_text(encoding="utf-8") == "third\n"
        assert len(w._done) == 1
        del src
        gc.collect()
        assert not w._done


async def test_document_mode_outputs_get_page_images_of_the_pdf_it_sent(tmp_path: Path) -> None:
    """Document mode sends whole PDFs, no page images: the run renders the pages of the PDF it
    sent (in memory) for the outputs that need them."""
    from ocrclient.testing import RunPodSimulator

    from .test_docmode import _responder

    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800), (800, 600), (600, 800)])
    data = pdf.read_bytes()
    out = tmp_path / "out"
    with RunPodSimulator(responder=_responder(2, [])) as sim, OutputWriter(out, ["md", "html", "pdf"]) as w:
        doc = await ocrclient.aconvert(
            data, backend="runpod-deepseek-ocr", pages="2-3", cache=False, outputs=w,
            base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
            dialect_options={"document_mode": True},
        )  # fmt: skip
    assert [p.page for p in doc.pages] == [2, 3]
    (stem,) = {p.with_suffix("") for p in out.glob("*.html")}
    images = html_images(stem.with_suffix(".html").read_text(encoding="utf-8"))
    assert [round(i.width / i.height, 2) for i in images] == [round(800 / 600, 2), round(600 / 800, 2)]
    got = pdfium.PdfDocument(stem.with_suffix(".pdf"))
    try:
        assert [got[i].get_size() for i in range(len(got))] == [(800, 600), (600, 800)]
    finally:
        got.close()


def _named_png(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (320, 120), "white").save(path)
    path.with_suffix(".txt").write_text(text)  # (a file of its own beside it: not an input)
    return path


@pytest.mark.parametrize("how", ["convert", "convert_many", "aconvert"])
def test_one_output_writer_across_calls_never_writes_one_input_over_another(how: str, tmp_path: Path) -> None:
    """The whole kind, for one OutputWriter kept across calls (a service, a loop over files):
    inputs of one name in other folders, in another case, are refused with InputError before
    anything is sent and the first one's files are left as they were; the same input again, and
    other names, are written.  The second call wrote b/x.png's outputs over a/x.png's, without
    a word, where one call with both refuses them."""
    import asyncio

    a = _named_png(tmp_path / "a" / "x.png", "a")
    b = _named_png(tmp_path / "b" / "x.png", "b")
    upper = _named_png(tmp_path / "c" / "X.png", "c")
    other = _named_png(tmp_path / "d" / "y.png", "d")
    out = tmp_path / "out"
    with OpenAISimulator(model=MODEL) as sim, OutputWriter(out, ["md", "json"]) as w:
        settings = {"backend": "openai", "base_url": sim.base_url, "api_key": sim.api_key, "model": MODEL, "cache": False}

        def call(path: Path) -> Any:
            if how == "convert":
                return ocrclient.convert(path, outputs=w, **settings)
            if how == "convert_many":
                return list(ocrclient.convert_many([path], outputs=w, **settings))
            return asyncio.run(ocrclient.aconvert(path, outputs=w, **settings))

        call(a)
        first = (out / "x.json").read_text()
        assert str(a.name) in first or "x.png" in first
        for clash in (b, upper):
            sent = sim.requests["POST /v1/chat/completions"]
            with pytest.raises(ocrclient.InputError, match="already wrote"):
                call(clash)
            assert sim.requests["POST /v1/chat/completions"] == sent, "sent before refusing"
            assert (out / "x.json").read_text() == first
        call(a)  # the same input again: its own files, written anew
        call(other)
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["x.json", "x.md", "y.json", "y.md"]
