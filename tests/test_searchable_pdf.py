"""The searchable PDF (``--format pdf``) searches: ``pdftotext`` of it holds the OCR's lines.

The kind (issue 13, defect 5): on scanned pages (image only), born-digital pages (a text layer of
their own) and pages shown rotated (``/Rotate 90`` and ``270``), ``pdftotext`` of the output
holds >= 95 % of the OCR lines verbatim (whitespace-normalized, as whole words) and no line
more often than the OCR has it.  Where the text layer is ours, the page's words must also be
exactly the OCR's words (nothing run together, split into letters, lost or doubled).

* scanned: the bundled sample rasterized to image-only pages and read by the real ``local``
  engine (RapidOCR), whose word boxes touch and overlap ("visit|followed");
* born-digital and rotated: Documents written here with known lines and word boxes shaped like
  an OCR engine's (tight to the ink: words without ascenders lower, without descenders
  shorter; neighbours touching or overlapping), so the check is exact.  Rotated pages hold
  lines that read horizontally as displayed and lines that run vertically, both ways.

``pdftotext`` comes from poppler-utils (see ``test_exporters._need``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from typer.testing import CliRunner

import ocrclient
from ocrclient.cli import app
from ocrclient.document import Block, Document, Page
from ocrclient.exporters import pdf as pdf_exporter
from ocrclient.exporters import write_outputs

from .pdfgen import PdfPage, write_pdf
from .test_exporters import _need, _pdftotext, _Words

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.pdf"
Box = tuple[float, float, float, float]


# --------------------------------------------------------------------------------------------
# the measure
# --------------------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.split())


def _count(line: str, text: str) -> int:
    """How often ``line`` occurs in ``text`` as whole words (both whitespace-normalized)."""
    return len(re.findall(r"(?<!\S)" + re.escape(_norm(line)) + r"(?!\S)", _norm(text)))


def verbatim_share(lines: list[str], text: str) -> float:
    return sum(_count(ln, text) > 0 for ln in lines) / len(lines)


def repeated(lines: list[str], text: str) -> list[str]:
    """Lines found in ``text`` more often than in the OCR's own lines."""
    own = "\n".join(lines)
    return sorted({ln for ln in lines if _count(ln, text) > _count(ln, own)})


def ocr_lines(page: Page) -> list[str]:
    out: list[str] = []

    def walk(blocks: list[Block]) -> None:
        for b in blocks:
            if b.type == "line" and _norm(b.text):
                out.append(_norm(b.text))
            walk(b.children)

    walk(page.blocks)
    return out


def test_the_measure_can_fail() -> None:
    lines = ["visit followed the", "Weather was mild"]
    assert verbatim_share(lines, "each visitfollowed the same\nWeatherwas mild") == 0.0
    assert verbatim_share(lines, "visit followed the\nWeather  was\nmild") == 1.0
    assert repeated(lines, "Weather was mild\nWeather was mild") == ["Weather was mild"]
    assert repeated(["Forty", "Forty five"], "Forty five\nForty") == []


# --------------------------------------------------------------------------------------------
# OCR-like lines with known boxes
# --------------------------------------------------------------------------------------------

_TALL = set("bdfhklt0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DEEP = set("gjpqy,;")
#: gaps between words, in ems, cycled: OCR word boxes touch (0) and overlap (< 0) too
_GAPS = (0.3, 0.0, 0.22, -0.06, 0.35, 0.05)


def _ink(word: str, size: float) -> tuple[float, float]:
    """Where a word's ink starts and ends across its line, in ems from the line's top edge."""
    top = 0.0 if _TALL & set(word) else 0.22
    bottom = 1.0 if _DEEP & set(word) else 0.78
    return top * size, bottom * size


def ocr_line(text: str, x: float, y: float, size: float, page: tuple[float, float], way: str = "ltr",
             words: bool = True) -> Block:
    """A line block at displayed point (x, y) (its top-left corner; for vertical lines the
    corner where the line starts is the top-left for ``ttb`` and bottom-left for ``btt``;
    ``inv``: the ``ltr`` line turned upside down in its place)."""
    pw, ph = page
    boxes: list[tuple[str, Box]] = []
    s = 0.0
    for i, word in enumerate(text.split()):
        length = 0.5 * size * len(word)
        a, b = _ink(word, size)
        if way in ("ltr", "inv"):
            box = (x + s, y + a, x + s + length, y + b)
        elif way == "ttb":  # glyph tops face right: ascenders on the right
            box = (x + size - b, y + s, x + size - a, y + s + length)
        else:  # btt: tops face left
            box = (x + a, y - s - length, x + b, y - s)
        boxes.append((word, box))
        s += length + _GAPS[i % len(_GAPS)] * size
    x0, y0 = min(b[0] for _, b in boxes), min(b[1] for _, b in boxes)
    x1, y1 = max(b[2] for _, b in boxes), max(b[3] for _, b in boxes)

    def norm(b: Box) -> list[float]:
        return [b[0] / pw, b[1] / ph, b[2] / pw, b[3] / ph]

    if way == "inv":  # upside down: the line turned half round about its middle, first word right
        boxes = [(w, (x0 + x1 - b[2], y0 + y1 - b[3], x0 + x1 - b[0], y0 + y1 - b[1])) for w, b in boxes]
    kids = [Block(type="word", text=w, bbox=list(b), bbox_norm=norm(b)) for w, b in boxes] if words else []
    line = (x0, y0, x1, y1)
    return Block(type="line", text=text, bbox=list(line), bbox_norm=norm(line), children=kids)


def paragraph(*lines: Block) -> Block:
    boxes = [ln.bbox for ln in lines if ln.bbox]
    box = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]
    return Block(type="text", text="\n".join(ln.text for ln in lines), bbox=box, children=list(lines))


def make_page(n: int, size: tuple[float, float], blocks: list[Block], rotation: int = 0) -> Page:
    return Page(page=n, status="ok", width=size[0], height=size[1], rotation=rotation,
                markdown="\n\n".join(b.text for b in blocks), blocks=blocks)


def _pdf_words(path: Path, page: int) -> list[tuple[str, Box]]:
    parser = _Words()
    parser.feed(_pdftotext(path, page, "-bbox-layout", "-cropbox"))
    return parser.words


# --------------------------------------------------------------------------------------------
# scanned: the sample, rasterized, read by the real local engine
# --------------------------------------------------------------------------------------------


def rasterize(src: Path, dst: Path, dpi: float = 150) -> Path:
    """An image-only copy of ``src``: each page rendered as displayed, one image per page."""
    pdf = pdfium.PdfDocument(src)
    try:
        images = [pdf[i].render(scale=dpi / 72).to_pil().convert("RGB") for i in range(len(pdf))]
    finally:
        pdf.close()
    images[0].save(dst, save_all=True, append_images=images[1:], resolution=dpi)
    return dst


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Document]:
    _need("pdftotext")
    scan = rasterize(SAMPLE, tmp_path_factory.mktemp("scan") / "sample-scan.pdf")
    return scan, ocrclient.convert(scan, backend="local", cache=False)


@pytest.mark.slow
def test_scanned_pages_hold_every_ocr_line_once(scanned: tuple[Path, Document], tmp_path: Path) -> None:
    scan, doc = scanned
    out = pdf_exporter.write(doc, tmp_path / "searchable.pdf")
    total = found = 0
    for page in doc.pages:
        assert page.status == "ok", page.error
        assert _pdftotext(scan, page.page).strip() == ""  # every word below is from our layer
        lines, text = ocr_lines(page), _pdftotext(out, page.page)
        assert len(lines) >= 5, page.page
        share = verbatim_share(lines, text)
        assert share >= 0.95, (page.page, share, [ln for ln in lines if not _count(ln, text)])
        assert not repeated(lines, text), page.page
        assert Counter(text.split()) == Counter(" ".join(lines).split()), page.page
        total += len(lines)
        found += sum(_count(ln, text) > 0 for ln in lines)
    assert found / total >= 0.95


# --------------------------------------------------------------------------------------------
# rotated: /Rotate 90 and 270, lines across and along the displayed page
# --------------------------------------------------------------------------------------------

ROTATED = [
    # /Rotate 90: user space 300 x 420 shown as 420 x 300
    PdfPage(media=(0, 0, 300, 420), rotate=90, rects=[(20, 20, 40, 60)]),
    # /Rotate 270 with a CropBox offset: crop 280 x 400 shown as 400 x 280
    PdfPage(media=(0, 0, 320, 440), crop=(20, 30, 300, 430), rotate=270, rects=[(40, 50, 60, 90)]),
]


def _rotated_blocks(size: tuple[float, float], tag: str) -> list[Block]:
    return [
        paragraph(
            ocr_line(f"Landscape {tag} heading typed quickly", 40, 30, 16, size),
            ocr_line(f"visit followed the {tag} survey, heavy rain, and joy", 40, 56, 10, size),
            ocr_line(f"Weather was mild for the {tag} period of study", 40, 72, 10, size),
        ),
        paragraph(ocr_line(f"Boxless {tag} line laid out by widths", 40, 100, 11, size, words=False)),
        paragraph(ocr_line(f"RED BOX {tag} reads down", 360, 40, 12, size, way="ttb")),
        paragraph(ocr_line(f"GREEN BOX {tag} reads up", 330, 250, 12, size, way="btt")),
        paragraph(ocr_line(f"Margin {tag} note without word boxes", 300, 40, 10, size, way="ttb", words=False)),
    ]


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Document]:
    _need("pdftotext")
    src = write_pdf(tmp_path_factory.mktemp("rot") / "rotated.pdf", ROTATED)
    pages = []
    for n, (spec, tag) in enumerate(zip(ROTATED, ("ninety", "twoseventy"), strict=True), start=1):
        x0, y0, x1, y1 = spec.crop or spec.media
        size = (y1 - y0, x1 - x0)  # shown turned
        pages.append(make_page(n, size, _rotated_blocks(size, tag), rotation=spec.rotate))
    return src, Document(source=str(src), backend="test", pages=pages)


def test_rotated_pages_hold_every_ocr_line_once(rotated: tuple[Path, Document], tmp_path: Path) -> None:
    src, doc = rotated
    out = pdf_exporter.write(doc, tmp_path / "rotated-searchable.pdf")
    for page in doc.pages:
        assert _pdftotext(src, page.page).strip() == ""
        lines, text = ocr_lines(page), _pdftotext(out, page.page)
        share = verbatim_share(lines, text)
        assert share >= 0.95, (page.page, share, text)
        assert not repeated(lines, text), (page.page, text)
        assert Counter(text.split()) == Counter(" ".join(lines).split()), (page.page, text)


def test_rotated_page_words_sit_in_their_boxes(rotated: tuple[Path, Document], tmp_path: Path) -> None:
    """Each word pdftotext finds lies in the box the OCR gave it (its line's box when the
    line has no word boxes): vertical text runs along its line, not across it."""
    _, doc = rotated
    out = pdf_exporter.write(doc, tmp_path / "rotated-searchable.pdf")
    for page in doc.pages:
        found = _pdf_words(out, page.page)
        want: list[tuple[str, Box]] = []
        for block in page.blocks:
            for line in block.children:
                assert line.bbox is not None
                pairs = [(w.text, w.bbox) for w in line.children] or [(t, line.bbox) for t in line.text.split()]
                want += [(t, tuple(b)) for t, b in pairs if b is not None]  # type: ignore[misc]
        for text, (x0, y0, x1, y1) in want:
            hits = [b for t, b in found if t == text and x0 - 2 <= (b[0] + b[2]) / 2 <= x1 + 2
                    and y0 - 2 <= (b[1] + b[3]) / 2 <= y1 + 2]
            assert hits, (page.page, text, (x0, y0, x1, y1), [f for f in found if f[0] == text])


def test_words_the_line_writes_together_stay_together(tmp_path: Path) -> None:
    """Word boxes are not always words: RapidOCR boxes CJK characters one by one, and may split
    "rain,and" in two.  The line's own text says where its spaces are; no others are added."""
    _need("pdftotext")
    size = (300.0, 200.0)
    src = write_pdf(tmp_path / "blank.pdf", [PdfPage(media=(0, 0, 300, 200), rects=[(5, 5, 9, 9)])])
    line = ocr_line("e - mail rain, and done", 30, 40, 12, size)
    line.text = "e-mail rain,and done"
    doc = Document(source=str(src), backend="test", pages=[make_page(1, size, [paragraph(line)])])
    assert [w.text for w in pdf_exporter.text_lines(doc.pages[0])[0].words] == ["e-mail", "rain,and", "done"]
    text = _pdftotext(pdf_exporter.write(doc, tmp_path / "out.pdf"), 1)
    assert _norm(text) == "e-mail rain,and done"


# --------------------------------------------------------------------------------------------
# born-digital: pages with text of their own are left as they are (unless forced)
# --------------------------------------------------------------------------------------------

BORN = ["Annual report of the northern survey", "Twelve sites were visited in spring",
        "Moisture was measured with a new probe"]
SCAN = ["This page was scanned on a flatbed", "so its words are only in the image",
        "and the OCR layer must carry them"]
STAMPED = ["A scanned page stamped by the clerk", "keeps its stamp as the only own text"]
STAMP = "Exhibit 7 page 3"


def _born_digital(tmp: Path) -> tuple[Path, Document]:
    size = (400.0, 200.0)
    top = 200 - 40
    src = write_pdf(tmp / "mixed.pdf", [
        PdfPage(media=(0, 0, 400, 200), texts=[(30, top - 28 * j, 16, t) for j, t in enumerate(BORN)]),
        PdfPage(media=(0, 0, 400, 200), rects=[(10, 10, 20, 20)]),
        PdfPage(media=(0, 0, 400, 200), rects=[(10, 10, 20, 20)], texts=[(300, 12, 9, STAMP)]),
    ])

    def lines(texts: list[str], size_pt: float, first_top: float) -> list[Block]:
        return [ocr_line(t, 30, first_top + 28 * j, size_pt, size) for j, t in enumerate(texts)]

    stamp = ocr_line(STAMP, 300, 200 - 12 - 0.72 * 9, 9, size)
    doc = Document(source=str(src), backend="test", pages=[
        make_page(1, size, [paragraph(*lines(BORN, 16, 200 - top - 0.72 * 16))]),
        make_page(2, size, [paragraph(*lines(SCAN, 12, 40))]),
        make_page(3, size, [paragraph(*lines(STAMPED, 12, 40)), paragraph(stamp)]),
    ])
    return src, doc


@pytest.fixture(scope="module")
def born(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Document]:
    _need("pdftotext")
    return _born_digital(tmp_path_factory.mktemp("born"))


def test_born_digital_pages_are_left_as_they_are(born: tuple[Path, Document], tmp_path: Path) -> None:
    src, doc = born
    out = pdf_exporter.write(doc, tmp_path / "out.pdf")
    for page in doc.pages:
        lines, text = ocr_lines(page), _pdftotext(out, page.page)
        share = verbatim_share(lines, text)
        assert share >= 0.95, (page.page, share, text)
        assert not repeated(lines, text), (page.page, text)
        assert Counter(text.split()) == Counter(" ".join(lines).split()), (page.page, text)
    # the born-digital page is untouched: the same text, and no text object was added
    assert _pdftotext(out, 1) == _pdftotext(src, 1)
    pdf = pdfium.PdfDocument(out)
    try:
        kinds = [obj.type for obj in pdf[0].get_objects()]
    finally:
        pdf.close()
    assert kinds.count(pdfium.raw.FPDF_PAGEOBJ_TEXT) == len(BORN)
    # the stamp is the stamped scan's own text, once; the rest of that page is the OCR's
    assert _count(STAMP, _pdftotext(out, 3)) == 1


def pdfium_text(path: Path, page: int) -> str:
    """The page's text as PDFium extracts it: unlike pdftotext, which drops or interleaves
    glyphs drawn over glyphs, it keeps two texts at one place apart, so a forced layer shows."""
    pdf = pdfium.PdfDocument(path)
    try:
        tp = pdf[page - 1].get_textpage()
        return str(tp.get_text_range())
    finally:
        pdf.close()


def test_force_ocr_text_writes_over_own_text(born: tuple[Path, Document], tmp_path: Path) -> None:
    _, doc = born
    default = pdf_exporter.write(doc, tmp_path / "default.pdf")
    forced = pdf_exporter.write(doc, tmp_path / "forced.pdf", force_ocr_text=True)
    for line in BORN:
        assert _count(line, pdfium_text(default, 1)) == 1
        assert _count(line, pdfium_text(forced, 1)) == 2  # the page's own line and the OCR's
    assert _count(STAMP, pdfium_text(default, 3)) == 1
    assert _count(STAMP, pdfium_text(forced, 3)) == 2
    # scanned pages are the same either way
    assert _pdftotext(forced, 2) == _pdftotext(default, 2)
    # and through write_outputs, as the CLI calls it
    (path,) = write_outputs(doc, tmp_path / "w", "forced", ["pdf"], options={"pdf": {"force_ocr_text": True}})
    assert pdfium_text(path, 1) == pdfium_text(forced, 1)


def test_text_layer_rule() -> None:
    line = [pdf_exporter.TextLine("Twelve field sites were visited", (0, 0, 1, 1))]
    assert pdf_exporter.has_text_layer("Twelve field sites were visited\r\n", line)
    assert pdf_exporter.has_text_layer("twelve FIELD sites", line)  # most of the words: yes
    assert not pdf_exporter.has_text_layer("Page 3", line)  # a stamp is not a text layer
    assert not pdf_exporter.has_text_layer("\x01\x02 #$%", line)  # nor is junk without Unicode
    assert not pdf_exporter.has_text_layer("", line)


LETTER = ["Dear reader of this letter", "searching finds each line once"]


@pytest.fixture
def one_born_digital_page(tmp_path: Path) -> Iterator[Path]:
    _need("pdftotext")
    yield write_pdf(tmp_path / "letter.pdf", [PdfPage(media=(0, 0, 300, 200), texts=[
        (30, 150, 18, LETTER[0]), (30, 115, 18, LETTER[1])])])


def test_cli_force_ocr_text_flag(one_born_digital_page: Path, tmp_path: Path) -> None:
    """``ocr convert --format pdf`` (real local OCR) leaves the page's own text alone;
    ``--force-ocr-text`` adds the OCR's over it."""
    src = one_born_digital_page
    runs = {}
    for name, extra in (("default", []), ("forced", ["--force-ocr-text"])):
        out = tmp_path / name
        res = CliRunner().invoke(app, ["convert", str(src), "-o", str(out), "--format", "pdf,json",
                                       "--backend", "local", "--no-cache", "-q", *extra],
                                 env={"NO_COLOR": "1"}, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        doc = Document.model_validate_json((out / "letter.json").read_text(encoding="utf-8"))
        assert ocr_lines(doc.pages[0]) == LETTER  # the engine read the page's lines
        runs[name] = out / "letter.pdf"
    assert _pdftotext(runs["default"], 1) == _pdftotext(src, 1)
    for line in LETTER:
        assert _count(line, pdfium_text(runs["default"], 1)) == 1
        assert _count(line, pdfium_text(runs["forced"], 1)) == 2


# an image's page in the searchable PDF is as large as its pixels at the resolution it records,
# across and down apart (a standard fax is 204 x 98 dpi), in the orientation it is displayed in;
# and each word of the text layer lies where the OCR saw it. The whole kind: equal and unequal
# resolutions, each way round, with and without an orientation that turns the image a quarter.
@pytest.mark.parametrize("dpi", [(150, 150), (204, 98), (100, 200)])
@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_image_pages_follow_the_recorded_resolution_on_each_axis(
    dpi: tuple[int, int], orientation: int, tmp_path: Path
) -> None:
    from PIL import Image

    from ocrclient.exporters.sink import OutputWriter
    from ocrclient.testing import DialectResponder, OpenAISimulator

    stored = (800, 500)  # the pixels as stored; orientation 6/8 shows them turned a quarter
    img = Image.new("RGB", stored, "white")
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "scan.jpg"
    img.save(path, dpi=dpi, exif=exif.tobytes())
    turned = orientation in (6, 8)
    shown = stored[::-1] if turned else stored
    dx, dy = dpi[::-1] if turned else dpi  # the resolution across and down the page as shown
    box = (0.2, 0.3, 0.6, 0.4)
    truth = [[("text", "Hello fax", box)]]
    model = "datalab-to/chandra"
    with OpenAISimulator(model=model, responder=DialectResponder("chandra", truth=truth)) as sim, \
            OutputWriter(tmp_path / "out", ["pdf"]) as out:  # fmt: skip
        doc = ocrclient.convert(path, backend="openai", dialect="chandra", model=model, base_url=sim.base_url,
                                api_key=sim.api_key, cache=False, outputs=out)  # fmt: skip
    assert doc.pages[0].status == "ok" and (doc.pages[0].width, doc.pages[0].height) == shown
    pdf = pdfium.PdfDocument(tmp_path / "out" / "scan.pdf")
    w, h = pdf[0].get_size()
    assert (w, h) == pytest.approx((shown[0] * 72 / dx, shown[1] * 72 / dy), abs=0.5)
    (again,) = write_outputs(doc, tmp_path / "again", "scan", ["pdf"])  # (from the document, later)
    assert pdfium.PdfDocument(again)[0].get_size() == pytest.approx((w, h), abs=0.01)
    tp = pdf[0].get_textpage()
    assert "Hello fax" in tp.get_text_range()
    boxes = [tp.get_charbox(i) for i in range(tp.count_chars()) if tp.get_text_range(i, 1).strip()]
    x0, y0 = min(b[0] for b in boxes) / w, 1 - max(b[3] for b in boxes) / h  # (PDF y runs up)
    x1, y1 = max(b[2] for b in boxes) / w, 1 - min(b[1] for b in boxes) / h
    assert box[0] - 0.03 <= x0 and x1 <= box[2] + 0.03 and box[1] - 0.03 <= y0 and y1 <= box[3] + 0.03, (x0, y0, x1, y1)


# every page read is searchable, whichever model read it: the whole kind is every dialect, those
# that give boxes (their words in their boxes: tests above) and those that give none (olmOCR,
# RolmOCR, plain, LightOnOCR without -bbox: the PDF had no text at all, without a word)
_DIALECT_MODELS = {
    "chandra": "datalab-to/chandra", "deepseek": "deepseek-ai/DeepSeek-OCR", "olmocr": "allenai/olmOCR-2-7B-1025-FP8",
    "lighton": "lightonai/LightOnOCR-2-1B", "rolmocr": "reducto/RolmOCR", "plain": "any/vision-model",
    "dots": "rednote-hilab/dots.ocr",
}  # fmt: skip


@pytest.mark.parametrize("dialect", sorted(_DIALECT_MODELS))
def test_every_dialect_gives_a_searchable_pdf(dialect: str, tmp_path: Path) -> None:
    from PIL import Image

    from ocrclient.exporters.pdf_text import word_counts
    from ocrclient.exporters.sink import OutputWriter
    from ocrclient.testing import DialectResponder, OpenAISimulator
    from ocrclient.testing.responders import DIALECT_NAMES

    assert set(DIALECT_NAMES) - set(_DIALECT_MODELS) == {"trocr"}  # (TrOCR reads one line: tests/test_dialect_trocr.py)
    Image.new("RGB", (600, 800), "white").save(tmp_path / "p.png")
    truth = [[("title", "Quarterly report", (0.1, 0.05, 0.6, 0.1)),
              ("text", "Twelve field sites were visited in spring", (0.1, 0.2, 0.9, 0.3)),
              ("text", "Samples went to the lab", (0.1, 0.4, 0.9, 0.45))]]  # fmt: skip
    model = _DIALECT_MODELS[dialect]
    with OpenAISimulator(model=model, responder=DialectResponder(dialect, truth=truth)) as sim, \
            OutputWriter(tmp_path / "out", ["pdf"]) as out:  # fmt: skip
        doc = ocrclient.convert(tmp_path / "p.png", backend="openai", dialect=dialect, model=model,
                                base_url=sim.base_url, api_key=sim.api_key, cache=False, outputs=out)  # fmt: skip
    assert doc.pages[0].status == "ok", doc.pages[0].warnings
    text = pdfium.PdfDocument(tmp_path / "out" / "p.pdf")[0].get_textpage().get_text_range()
    want = word_counts("Quarterly report Twelve field sites were visited in spring Samples went to the lab")
    assert want <= word_counts(text), (dialect, text)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert [ln.split()[0] for ln in lines][:3] == ["Quarterly", "Twelve", "Samples"], lines  # (in reading order)


_MIXES = {
    "every block boxed": (True, True, True),
    "only the figure boxed (LightOnOCR -bbox)": (False, False, True),
    "one text block boxed": (True, False, False),
    "no block boxed": (False, False, False),
}


@pytest.mark.parametrize("mix", sorted(_MIXES))
def test_every_text_block_is_in_the_text_layer_whatever_is_boxed(mix: str) -> None:
    """The whole kind of a page's boxes: all, none, or some of its blocks boxed.  A page whose
    model boxed its figures only (LightOnOCR ``-bbox``) had no text at all in its PDF, with
    exit 0; the text of every block but a figure is in the layer, in reading order."""
    from ocrclient.exporters.pdf_text import text_lines, word_counts

    heading, body, figure = _MIXES[mix]

    def boxed(on: bool, top: float) -> dict[str, list[float]]:  # a band of the page, 0.1 high
        return {"bbox_norm": [0.1, top, 0.9, top + 0.1], "bbox": [61.2, top * 792, 550.8, (top + 0.1) * 792]} if on else {}

    blocks = [Block(type="title", text="Heading zzq", **boxed(heading, 0.1)),
              Block(type="text", text="alpha bravo charlie delta", **boxed(body, 0.3)),
              Block(type="figure", text="", **boxed(figure, 0.6))]  # fmt: skip
    page = Page(page=1, status="ok", width=612, height=792, markdown="# Heading zzq\n\nalpha bravo charlie delta\n\n![](f.png)",
                blocks=blocks)  # fmt: skip
    text = "\n".join(ln.text for ln in text_lines(page))
    assert word_counts("Heading zzq alpha bravo charlie delta") <= word_counts(text), (mix, text)
    assert text.index("zzq") < text.index("charlie") or not heading, text


def test_a_list_without_a_box_keeps_its_items_boxed_or_not() -> None:
    """A block with no box of its own whose children are boxed in part (a list, one item boxed):
    the boxed item on its box, the other laid down the page; both were lost."""
    from ocrclient.exporters.pdf_text import text_lines

    items = [Block(type="text", text="one", bbox_norm=[0.1, 0.2, 0.9, 0.25], bbox=[61.2, 158.4, 550.8, 198.0]),
             Block(type="text", text="two")]  # fmt: skip
    blocks = [Block(type="title", text="Title", bbox_norm=[0.1, 0.05, 0.9, 0.1], bbox=[61.2, 39.6, 550.8, 79.2]),
              Block(type="list", text="- one\n- two", children=items)]  # fmt: skip
    page = Page(page=1, status="ok", width=612, height=792, markdown="# Title\n\n- one\n- two", blocks=blocks)
    assert [ln.text for ln in text_lines(page)] == ["Title", "one", "two"]


_RTL_LINES = ["مرحبا بالعالم", "שלום עולם 2024", "hello world", "מחיר: 35 שקלים"]


@pytest.mark.parametrize("boxed", [False, True], ids=["lines laid down the page", "words in their boxes"])
def test_right_to_left_text_extracts_in_its_own_order(boxed: bool, tmp_path: Path) -> None:
    """Hebrew and Arabic lines (with digits and Latin beside them), laid down the page or word
    by word in their boxes: the text layer wrote them in logical order, and PDFium and pdftotext,
    which read right-to-left glyphs back into logical order, gave every word reversed
    (``שלום`` -> ``םולש``): the PDF could not be searched for any of them."""
    from PIL import Image

    from ocrclient.document import Block

    img = tmp_path / "p.png"
    Image.new("RGB", (800, 1000), "white").save(img)
    blocks = []
    for i, text in enumerate(_RTL_LINES):
        y0, y1 = 0.1 + 0.1 * i, 0.15 + 0.1 * i
        words = text.split()
        kids = [Block(type="word", text=w, bbox_norm=[0.8 - 0.15 * (j + 1), y0, 0.8 - 0.15 * j, y1],
                      bbox=[(0.8 - 0.15 * (j + 1)) * 800, y0 * 1000, (0.8 - 0.15 * j) * 800, y1 * 1000])
                for j, w in enumerate(words)] if boxed and text != "hello world" else []  # fmt: skip
        blocks.append(Block(type="text", text=text, bbox_norm=[0.1, y0, 0.9, y1], bbox=[80, y0 * 1000, 720, y1 * 1000],
                            children=kids))  # fmt: skip
    doc = Document(source=str(img), backend="t", pages=[Page(page=1, status="ok", width=800, height=1000,
                                                              markdown="\n\n".join(_RTL_LINES), blocks=blocks)])  # fmt: skip
    out = pdf_exporter.write(doc, tmp_path / "p.pdf")
    text = pdfium.PdfDocument(out)[0].get_textpage().get_text_range()
    got = [" ".join(ln.split()) for ln in text.splitlines() if ln.strip()]
    assert got == _RTL_LINES, got


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_lines_in_every_direction_sit_in_their_boxes_on_every_page_turn(rotate: int, tmp_path: Path) -> None:
    """Upright, upside-down (a sheet scanned the wrong way up), downward and upward lines, on a
    page shown turned every way: each word pdftotext finds lies in its OCR box.  Upside-down
    lines were laid left to right, each word over another ("ALPHA" found over "CHARLIE")."""
    _need("pdftotext")
    src = write_pdf(tmp_path / "turned.pdf", [PdfPage(media=(0, 0, 400, 500), crop=(10, 20, 390, 480),
                                                      rotate=rotate, rects=[(40, 50, 60, 90)])])  # fmt: skip
    size = (460.0, 380.0) if rotate in (90, 270) else (380.0, 460.0)
    blocks = [
        paragraph(ocr_line("Upright words read along", 30, 30, 14, size)),
        paragraph(ocr_line("Upside down words hang here", 30, 90, 14, size, way="inv")),
        paragraph(ocr_line("Hanging line without boxes", 30, 130, 12, size, way="inv", words=False)),
        paragraph(ocr_line("Downward words run", size[0] - 60, 170, 12, size, way="ttb")),
        paragraph(ocr_line("Upward words climb", size[0] - 110, size[1] - 20, 12, size, way="btt")),
    ]
    doc = Document(source=str(src), backend="test", pages=[make_page(1, size, blocks, rotation=rotate)])
    out = pdf_exporter.write(doc, tmp_path / "turned-searchable.pdf")
    found = _pdf_words(out, 1)
    for block in blocks:
        for line in block.children:
            assert line.bbox is not None
            boxed = [(w.text, w.bbox) for w in line.children]
            for text, (x0, y0, x1, y1) in boxed or [(t, line.bbox) for t in line.text.split()]:
                hits = [b for t, b in found if t == text and x0 - 2 <= (b[0] + b[2]) / 2 <= x1 + 2
                        and y0 - 2 <= (b[1] + b[3]) / 2 <= y1 + 2]  # fmt: skip
                assert hits, (rotate, text, (x0, y0, x1, y1), [f for f in found if f[0] == text])


_SCRIPTS = {
    "Cyrillic": "Привет мир",
    "Greek": "Ελληνικά γράμματα",
    "Japanese": "日本語テキスト",
    "Korean": "한국어 문장",
    "Devanagari": "हिन्दी पाठ",
    "accents": "naïve café déjà",
}


@pytest.mark.parametrize("script", sorted(_SCRIPTS))
def test_text_of_any_script_is_in_the_text_layer_or_said_missing(script: str, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The whole kind: a line in any script is in the searchable PDF's text layer, or a warning
    says that text was left out (CJK went missing from a PDF made with DejaVu Sans, exit 0, no
    word even with -v)."""
    import logging

    src = write_pdf(tmp_path / "blank.pdf", [PdfPage(media=(0, 0, 400, 200), texts=[])])
    text = _SCRIPTS[script]
    page = make_page(1, (400, 200), [paragraph(ocr_line(text, 40, 60, 14, (400, 200), words=False))])
    doc = Document(source=str(src), backend="test", pages=[page])
    with caplog.at_level(logging.WARNING, logger="ocrclient.exporters.pdf"):
        [out] = write_outputs(doc, tmp_path / "out", "blank", ["pdf"])
    pdf = pdfium.PdfDocument(out)
    try:
        layer = pdf[0].get_textpage().get_text_range()
    finally:
        pdf.close()
    kept = all(ch in layer for ch in text if not ch.isspace())
    warned = any("left out of the text layer" in r.getMessage() for r in caplog.records)
    assert kept or warned, (script, layer)
    if pdf_exporter.system_font() is not None and script in ("Cyrillic", "Greek", "accents"):
        assert kept and not warned, (script, layer)
