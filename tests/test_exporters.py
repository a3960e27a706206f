"""Exporters against a real (hand-written, scan-like) PDF: markdown with figure crops, JSON,
text, the HTML viewer and the searchable PDF.

The source PDF (written by ``build`` below) has five pages: plain Letter, ``/Rotate 90``, a
CropBox offset, a failed page and a degraded ``/Rotate 270`` page with a CropBox offset.  Its
pages are images only, so ``pdftotext`` of the source is empty and every word found in the
searchable PDF comes from the exporter's invisible text layer.

Word metric (searchable PDF): per page, the multiset of ``\\w+`` tokens (lower-cased) of the
page markdown without image references, against the same tokens of ``pdftotext`` for that page;
recall = |common| / |markdown tokens|, precision = |common| / |pdftotext tokens|.

``pdftotext`` comes from poppler-utils: when it is missing the PDF text tests fail if the
environment variable ``CI`` is set (CI installs it) and are skipped otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pypdfium2 as pdfium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageStat

from ocrclient.document import Block, Document, Page, PageError, json_schema
from ocrclient.errors import InputError
from ocrclient.exporters import markdown, write_outputs
from ocrclient.exporters import pdf as pdf_exporter
from ocrclient.exporters.figures import FIGURE_DPI, figure_blocks
from ocrclient.viewer import render_html

# --------------------------------------------------------------------------------------------
# the test document (also used by test_viewer.py)
# --------------------------------------------------------------------------------------------
# A scan-like multi-page PDF written by hand plus the OCR :class:`Document` that describes it,
# for the exporter and viewer tests.
#
# Each page is one raster image (no text objects, so ``pdftotext`` of the source is empty and
# every word a searchable PDF yields comes from its text layer).  The image shows each block's
# text drawn in its box, and figures as solid colored rectangles.  Pages cover the geometry
# cases: a plain Letter page, ``/Rotate 90``, a CropBox offset, a failed page, and a degraded page
# with ``/Rotate 270`` *and* a CropBox offset.

#: pixels per point of the page images embedded in the generated PDF
PX_PER_PT = 1.5
FIGURE_RGB = (30, 144, 255)


@dataclass
class PageSpec:
    media: tuple[float, float, float, float] = (0, 0, 612, 792)
    crop: tuple[float, float, float, float] | None = None
    rotate: int = 0
    #: (type, text, displayed bbox x0, y0, x1, y1, word-level?)
    items: list[tuple[str, str, tuple[float, float, float, float], bool]] = field(default_factory=list)
    status: str = "ok"

    @property
    def cropbox(self) -> tuple[float, float, float, float]:
        return self.crop or self.media

    @property
    def displayed(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.cropbox
        w, h = x1 - x0, y1 - y0
        return (h, w) if self.rotate % 180 else (w, h)


def _font(size: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for cand in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        if Path(cand).is_file():
            return ImageFont.truetype(cand, max(4, round(size)))
    return ImageFont.load_default(max(4, round(size)))


def _display_image(spec: PageSpec) -> Image.Image:
    w, h = spec.displayed
    img = Image.new("RGB", (round(w * PX_PER_PT), round(h * PX_PER_PT)), "white")
    draw = ImageDraw.Draw(img)
    for kind, text, box, words in spec.items:
        x0, y0, x1, y1 = (v * PX_PER_PT for v in box)
        if words:
            h = box[3] - box[1]
            font = _font(h * PX_PER_PT * 0.8)
            for word, wb in _word_boxes(text, box[0], box[1], h, h * 0.55):
                draw.text((wb[0] * PX_PER_PT, wb[1] * PX_PER_PT), word, fill="black", font=font)
            continue
        if kind == "figure":
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=FIGURE_RGB)
            draw.line((x0, y0, x1 - 1, y1 - 1), fill="white", width=3)
            continue
        lines = [ln for ln in text.replace("|", " ").split("\n") if ln.strip() and "---" not in ln]
        step = (y1 - y0) / max(1, len(lines))
        for i, line in enumerate(lines):
            font = _font(step * 0.75)
            draw.text((x0, y0 + i * step), " ".join(line.split()), fill="black", font=font)
    return img


def _unrotated(img: Image.Image, rotate: int) -> Image.Image:
    """The displayed image is the page content rotated clockwise by /Rotate; undo it."""
    r = rotate % 360
    if r == 90:
        return img.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    if r == 180:
        return img.transpose(Image.Transpose.ROTATE_180)
    if r == 270:
        return img.transpose(Image.Transpose.ROTATE_270)
    return img


def _n(v: float) -> bytes:
    return (f"{v:.3f}".rstrip("0").rstrip(".") or "0").encode()


def write_pdf(path: Path, specs: list[PageSpec]) -> Path:
    objs: list[bytes] = []
    kids: list[int] = []
    # object numbers: 1 catalog, 2 pages, then 3 per page (page, content, image)
    for i, spec in enumerate(specs):
        page_no, content_no, image_no = 3 + 3 * i, 4 + 3 * i, 5 + 3 * i
        kids.append(page_no)
        img = _unrotated(_display_image(spec), spec.rotate)
        cx0, cy0, cx1, cy1 = spec.cropbox
        data = zlib.compress(img.tobytes(), 1)
        image = (
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
            b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n" % (img.width, img.height, len(data))
            + data + b"\nendstream"
        )
        content = b"q %s 0 0 %s %s %s cm /Im0 Do Q" % (_n(cx1 - cx0), _n(cy1 - cy0), _n(cx0), _n(cy0))
        stream = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox [%s] " % b" ".join(_n(v) for v in spec.media)
        if spec.crop:
            page += b"/CropBox [%s] " % b" ".join(_n(v) for v in spec.crop)
        if spec.rotate:
            page += b"/Rotate %d " % spec.rotate
        page += b"/Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>" % (image_no, content_no)
        objs.extend([page, stream, image])
    catalog = b"<< /Type /Catalog /Pages 2 0 R >>"
    pages = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    all_objs = [catalog, pages, *objs]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(all_objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(all_objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(all_objs) + 1, xref)
    path.write_bytes(bytes(out))
    return path


# --------------------------------------------------------------------------------------------
# the document: words laid out left to right, lines top to bottom
# --------------------------------------------------------------------------------------------


def _word_boxes(text: str, x0: float, y0: float, h: float, char_w: float) -> list[tuple[str, tuple[float, float, float, float]]]:
    out = []
    x = x0
    for word in text.split():
        w = char_w * len(word)
        out.append((word, (x, y0, x + w, y0 + h)))
        x += w + char_w * 1.2
    return out


def line_item(kind: str, text: str, x0: float, y0: float, h: float) -> tuple[str, str, tuple[float, float, float, float], bool]:
    """A one-line block whose words get their own boxes (children)."""
    words = _word_boxes(text, x0, y0, h, h * 0.55)
    return kind, text, (x0, y0, words[-1][1][2], y0 + h), True


def block_item(kind: str, text: str, box: tuple[float, float, float, float]) -> tuple[str, str, tuple[float, float, float, float], bool]:
    return kind, text, box, False


def _norm(box: tuple[float, float, float, float], w: float, h: float) -> list[float]:
    return [round(box[0] / w, 6), round(box[1] / h, 6), round(box[2] / w, 6), round(box[3] / h, 6)]


def _block(kind: str, text: str, box: tuple[float, float, float, float], words: bool, w: float, h: float) -> Block:
    children: list[Block] = []
    if words:
        # a paragraph -> one line -> its words (two levels of nesting)
        char_w = (box[3] - box[1]) * 0.55
        wb = [
            Block(type="word", text=t, bbox=list(b), bbox_norm=_norm(b, w, h))
            for t, b in _word_boxes(text, box[0], box[1], box[3] - box[1], char_w)
        ]
        children = [Block(type="line", text=text, bbox=list(box), bbox_norm=_norm(box, w, h), children=wb)]
    return Block(type=kind, text=text, bbox=list(box), bbox_norm=_norm(box, w, h), children=children)


MD_PREFIX = {
    "title": "# ", "section_header": "## ", "list_item": "- ", "page_header": "", "page_footer": "",
}


def markdown_of(kind: str, text: str, fig_ref: str | None) -> str:
    if kind == "figure":
        return fig_ref or ""
    if kind == "equation":
        return f"$${text}$$"
    if kind == "code":
        return f"```\n{text}\n```"
    return MD_PREFIX.get(kind, "") + text


def specs() -> list[PageSpec]:
    p1 = PageSpec(items=[
        line_item("page_header", "ACME annual report", 40, 20, 12),
        line_item("title", "Quarterly Results", 60, 60, 28),
        line_item("section_header", "Overview", 60, 110, 18),
        line_item("text", "Revenue grew strongly this quarter", 60, 140, 14),
        line_item("list_item", "North region doubled", 70, 165, 12),
        line_item("list_item", "South region flat", 70, 185, 12),
        block_item("table", "| Region | Sales |\n|---|---|\n| North | 120 |", (60, 210, 260, 250)),
        block_item("figure", "bar chart of sales", (300, 210, 540, 390)),
        line_item("caption", "Figure one sales by region", 300, 395, 11),
        line_item("equation", "E = mc2", 60, 420, 16),
        line_item("code", "print total", 60, 450, 12),
        line_item("footnote", "Unaudited figures", 60, 720, 9),
        line_item("page_footer", "Page one", 280, 760, 10),
    ])
    p2 = PageSpec(rotate=90, items=[
        line_item("title", "Rotated landscape page", 80, 60, 24),
        line_item("text", "Sideways text must read upright", 80, 120, 16),
        block_item("text", "Second paragraph line one\nSecond paragraph line two", (80, 160, 420, 200)),
        block_item("figure", "landscape figure", (480, 300, 700, 520)),
    ])
    p3 = PageSpec(crop=(40, 60, 560, 720), items=[
        line_item("section_header", "Cropped page heading", 40, 40, 18),
        line_item("text", "Offset crop boxes move everything", 40, 80, 14),
        block_item("figure", "cropped figure", (100, 200, 300, 360)),
        line_item("text", "Text after the figure", 40, 380, 14),
    ])
    p4 = PageSpec(status="failed", items=[line_item("text", "nobody read this page", 60, 100, 14)])
    p5 = PageSpec(rotate=270, crop=(30, 20, 580, 770), status="degraded", items=[
        line_item("text", "Degraded yet readable words", 50, 60, 16),
        line_item("text", "Upside rules apply", 50, 100, 16),
    ])
    return [p1, p2, p3, p4, p5]


def build(tmp: Path, *, source_name: str = "scan.pdf") -> tuple[Path, Document, list[PageSpec]]:
    """Write the PDF to ``tmp/source_name`` and return it with its Document."""
    sp = specs()
    pdf = write_pdf(tmp / source_name, sp)
    pages: list[Page] = []
    for n, spec in enumerate(sp, start=1):
        w, h = spec.displayed
        if spec.status == "failed":
            pages.append(Page(page=n, status="failed", width=w, height=h, rotation=spec.rotate,
                              error=PageError(kind="transient", cause="http_503", message="backend said <b>503</b> & gave up")))
            continue
        blocks = [_block(k, t, b, words, w, h) for k, t, b, words in spec.items]
        md_parts = []
        for k, t, _, _ in spec.items:
            ref = "![chart](image_1.png)" if (n == 1 and k == "figure") else None
            part = markdown_of(k, t, ref)
            if part:
                md_parts.append(part)
        warnings = ["repetition trimmed <script>alert(1)</script>"] if spec.status == "degraded" else []
        pages.append(Page(page=n, status=spec.status, width=w, height=h, rotation=spec.rotate,  # type: ignore[arg-type]
                          markdown="\n\n".join(md_parts), blocks=blocks, warnings=warnings, attempts=1))
    return pdf, Document(source=str(pdf), backend="test", model="fixture", pages=pages), sp


XSS = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} is not installed (apt-get install -y poppler-utils)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Document, Path]:
    """The source PDF, its Document, and an output folder with every format written once."""
    tmp = tmp_path_factory.mktemp("exporters")
    src, doc, _ = build(tmp)
    out = tmp / "out"
    paths = write_outputs(doc, out, "scan", ["md", "json", "txt", "html", "pdf"])
    assert [p.name for p in paths] == ["scan.md", "scan.json", "scan.txt", "scan.html", "scan.pdf"]
    return src, doc, out


def _walk(blocks: list[Block]) -> list[Block]:
    out = []
    for b in blocks:
        out.append(b)
        out.extend(_walk(b.children))
    return out


# --------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------


def test_markdown_links_figure_crops_of_the_right_size(built: tuple[Path, Document, Path]) -> None:
    _, doc, out = built
    md = (out / "scan.md").read_text()
    links = re.findall(r"!\[([^\]]*)\]\(([^)]*)\)", md)
    expected = [(p, b) for p in doc.pages if p.status != "failed" for b in figure_blocks(p)]
    assert len(links) == len(expected) == 3
    scale = FIGURE_DPI / 72.0
    for (alt, link), (page, block) in zip(links, expected, strict=True):
        target = out / unquote(link)
        assert target.is_file(), link
        assert re.fullmatch(rf"scan_figures/page{page.page}_fig1\.png", link)
        assert block.bbox is not None
        with Image.open(target) as crop:
            w, h = crop.size
            assert abs(w - (block.bbox[2] - block.bbox[0]) * scale) <= 1.0
            assert abs(h - (block.bbox[3] - block.bbox[1]) * scale) <= 1.0
            # the figure is a solid rectangle on the page: the crop is that color
            mean = ImageStat.Stat(crop.convert("RGB")).mean
            assert all(abs(m - c) < 25 for m, c in zip(mean, FIGURE_RGB, strict=True)), mean
        assert alt
    # page 1 had its own reference: rewritten in place, alt from the caption next to it
    assert "image_1.png" not in md
    assert links[0][0] == "Figure one sales by region"
    # page 3 had none: inserted after the paragraph of the block before it in block order
    p3 = md.index("Offset crop boxes move everything")
    assert p3 < md.index("scan_figures/page3_fig1.png") < md.index("Text after the figure")
    # page status is in the JSON, not in the markdown (page 4 failed, page 5 is degraded)
    assert "<!--" not in md and "503" not in md
    marked = markdown.render(doc, page_markers=True)
    assert "<!-- page 4 failed: backend said <b>503</b> & gave up -->" in marked
    assert "<!-- page 5 degraded: repetition trimmed" in marked


def test_markdown_page_separators_and_plain_render(built: tuple[Path, Document, Path], tmp_path: Path) -> None:
    _, doc, _ = built
    plain = markdown.render(doc)
    assert "![chart](image_1.png)" in plain  # render() alone never touches figures
    out = markdown.write(doc, tmp_path / "sep.md", page_separators=True)
    text = out.read_text()
    assert [int(n) for n in re.findall(r"<!-- page (\d+) -->", text)] == [1, 2, 3, 4, 5]
    assert (tmp_path / "sep_figures" / "page2_fig1.png").is_file()


_MODEL_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="<>\x00"), max_size=30)
_PAGE = st.fixed_dictionaries({
    "status": st.sampled_from(["ok", "degraded", "failed"]),
    "cached": st.booleans(),
    "markdown": st.one_of(st.just(""), st.just(" \n "), _MODEL_TEXT),
    "warnings": st.lists(st.sampled_from(["no text found", "repetition trimmed", "truncated"]), max_size=2),
})  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(pages=st.lists(_PAGE, max_size=5), markers=st.booleans())
def test_markdown_holds_only_model_text_for_every_page_status(pages: list[dict[str, Any]], markers: bool) -> None:
    """For every page status (ok, degraded, failed; cached or not) and empty documents, the
    written .md holds the text the model read and nothing else — a 0-byte file when it read
    none — unless page markers are asked for; then each page has exactly one marker."""
    doc = Document(source="gone.pdf", backend="t", pages=[
        Page(page=i, status=p["status"], cached=p["cached"], markdown=p["markdown"], warnings=p["warnings"],
             error=PageError(kind="permanent", message="HTTP 503 gave up") if p["status"] == "failed" else None)
        for i, p in enumerate(pages, start=1)
    ])  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        options = {"md": {"page_markers": True}} if markers else None
        (path,) = write_outputs(doc, Path(tmp), "d", ["md"], options=options)
        data = path.read_bytes()
    text = data.decode("utf-8")
    read = [p.markdown.strip() for p in doc.pages if p.status != "failed" and p.markdown.strip()]
    if markers:
        found = re.findall(r"<!-- page (\d+)(?: (degraded|failed)(?:: [^>]*)?)? -->", text)
        assert [int(n) for n, _ in found] == [p.page for p in doc.pages]
        assert [s or "ok" for _, s in found] == [p.status for p in doc.pages]
        text = re.sub(r"<!-- page \d+[^>]*-->", "", text)
    elif not read:
        assert data == b""
    rest = text
    for body in read:  # every page's text, in page order ...
        at = rest.find(body)
        assert at >= 0 and not rest[:at].strip(), (body, rest)
        rest = rest[at + len(body) :]
    assert not rest.strip(), rest  # ... and nothing else
    assert doc.markdown == "\n\n".join(read)  # Document.markdown: the same text


def test_markdown_without_source_is_unchanged_and_says_so(
    built: tuple[Path, Document, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, doc, _ = built
    gone = doc.model_copy(update={"source": str(tmp_path / "moved-away.pdf")})
    with caplog.at_level(logging.WARNING, logger="ocrclient.exporters.markdown"):
        path = markdown.write(gone, tmp_path / "nosrc.md")
    assert path.read_text() == markdown.render(gone)
    assert not (tmp_path / "nosrc_figures").exists()
    assert any("not cropped" in r.getMessage() for r in caplog.records)


def test_markdown_crops_image_inputs_at_their_own_pixels(tmp_path: Path) -> None:
    img = Image.new("RGB", (400, 300), "white")
    img.paste((200, 30, 30), (100, 50, 260, 170))
    src = tmp_path / "photo.png"
    img.save(src)
    bbox = [100.0, 50.0, 260.0, 170.0]
    doc = Document(source=str(src), backend="t", pages=[Page(
        page=1, status="ok", width=400, height=300, markdown="Intro line\n\nOutro",
        blocks=[Block(type="text", text="Intro line", bbox=[10, 10, 100, 30]),
                Block(type="figure", text="red box", bbox=bbox),
                Block(type="text", text="Outro", bbox=[10, 200, 100, 220])])])
    md = markdown.write(doc, tmp_path / "o" / "photo.md").read_text()
    assert md == "Intro line\n\n![red box](photo_figures/page1_fig1.png)\n\nOutro\n"
    with Image.open(tmp_path / "o" / "photo_figures" / "page1_fig1.png") as crop:
        assert crop.size == (160, 120)
        assert crop.convert("RGB").getpixel((80, 60)) == (200, 30, 30)


def test_markdown_rewrites_img_tags_in_order_and_keeps_boxless_refs(tmp_path: Path) -> None:
    img = Image.new("RGB", (300, 300), "white")
    src = tmp_path / "p.png"
    img.save(src)
    md = 'Top\n\n<img src="x.jpg" alt="a &quot;chart&quot;">\n\n![kept]()\n\nMiddle\n\nEnd'
    blocks = [
        Block(type="text", text="Top", bbox=[0, 0, 50, 10]),
        Block(type="figure", text="", bbox=[10, 20, 110, 70]),          # -> the <img> tag
        Block(type="figure", text="no box"),                             # -> ![kept]() as text: no crop
        Block(type="text", text="Middle", bbox=[0, 80, 50, 90]),
        Block(type="figure", text="third", bbox=[0, 100, 30, 130]),     # no ref left: inserted
        Block(type="text", text="End", bbox=[0, 200, 50, 210]),
    ]
    doc = Document(source=str(src), backend="t", pages=[
        Page(page=1, status="ok", width=300, height=300, markdown=md, blocks=blocks)])
    out = markdown.write(doc, tmp_path / "p.md").read_text()
    assert out == (
        'Top\n\n![a "chart"](p_figures/page1_fig1.png)\n\n*[image: kept]*\n\nMiddle'
        "\n\n![third](p_figures/page1_fig3.png)\n\nEnd\n"
    )
    assert sorted(f.name for f in (tmp_path / "p_figures").iterdir()) == ["page1_fig1.png", "page1_fig3.png"]
    # a later run without figures removes the stale crops (and the then empty folder)
    plain = doc.model_copy(update={"pages": [doc.pages[0].model_copy(update={"blocks": blocks[:1]})]})
    markdown.write(plain, tmp_path / "p.md")
    assert not (tmp_path / "p_figures").exists()


# --------------------------------------------------------------------------------------------
# json / txt
# --------------------------------------------------------------------------------------------


def test_json_matches_the_schema(built: tuple[Path, Document, Path]) -> None:
    _, doc, out = built
    raw = (out / "scan.json").read_text()
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(json.loads(raw), json_schema())
    back = Document.model_validate_json(raw)
    assert back == doc
    assert back.pages[1].blocks[1].children[0].children[0].type == "word"


def test_text_has_every_page_separated_by_form_feeds(built: tuple[Path, Document, Path]) -> None:
    _, doc, out = built
    pages = (out / "scan.txt").read_text().split("\f")
    assert len(pages) == len(doc.pages)
    assert "Quarterly Results" in pages[0] and "#" not in pages[0]
    assert pages[3].strip() == ""  # failed
    assert "Degraded yet readable words" in pages[4]


# --------------------------------------------------------------------------------------------
# html viewer
# --------------------------------------------------------------------------------------------


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.in_script = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "script":
            self.in_script += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script -= 1

    def handle_data(self, data: str) -> None:
        if not self.in_script:
            self.text.append(data)


def _parse(html_text: str) -> _Collect:
    p = _Collect()
    p.feed(html_text)
    p.close()
    return p


def test_html_has_one_overlay_per_boxed_block(built: tuple[Path, Document, Path]) -> None:
    _, doc, out = built
    parsed = _parse((out / "scan.html").read_text())
    boxes = [a for t, a in parsed.elements if t == "div" and "box" in a.get("class", "").split()]
    blocks = [(p, b) for p in doc.pages for b in _walk(p.blocks) if b.bbox_norm is not None]
    assert len(boxes) == len(blocks) > 50
    for attrs, (_, block) in zip(boxes, blocks, strict=True):
        assert attrs["data-type"] == block.type
        assert attrs["data-text"] == block.text
        assert f"t-{block.type}" in attrs["class"]
        x0, y0, x1, y1 = block.bbox_norm or []
        style = dict(kv.split(":") for kv in attrs["style"].split(";"))
        assert float(style["left"].rstrip("%")) == pytest.approx(x0 * 100, abs=1e-3)
        assert float(style["top"].rstrip("%")) == pytest.approx(y0 * 100, abs=1e-3)
        assert float(style["width"].rstrip("%")) == pytest.approx((x1 - x0) * 100, abs=1e-3)
        assert float(style["height"].rstrip("%")) == pytest.approx((y1 - y0) * 100, abs=1e-3)
    imgs = [a for t, a in parsed.elements if t == "img"]
    assert len(imgs) == len(doc.pages)  # the source is there: every page has its image
    assert all(a["src"].startswith("data:image/jpeg;base64,") for a in imgs)
    text = " ".join(parsed.text)
    assert "Page 4 failed" in text and "backend said <b>503</b> & gave up" in text
    assert "Page 5 degraded" in text and "repetition trimmed <script>alert(1)</script>" in text
    sections = [a for t, a in parsed.elements if t == "section"]
    assert [a["data-page"] for a in sections] == ["1", "2", "3", "4", "5"]
    assert (sections[1]["data-width"], sections[1]["data-height"]) == ("792", "612")


def test_html_escapes_model_output(built: tuple[Path, Document, Path], tmp_path: Path) -> None:
    src, doc, _ = built
    page = doc.pages[0].model_copy(deep=True)
    page.blocks[1].text = XSS
    page.blocks[1].label = XSS
    page.markdown = XSS
    page.warnings = [XSS]
    evil = doc.model_copy(update={"pages": [page], "source": str(src), "model": XSS})
    html_text = render_html(evil)
    assert "<script>alert" not in html_text and "<img src=x" not in html_text
    parsed = _parse(html_text)
    scripts = [a for t, a in parsed.elements if t == "script"]
    assert len(scripts) == 1 and scripts[0]["nonce"]
    assert not [k for _, a in parsed.elements for k in a if k.startswith("on")]
    for _, a in parsed.elements:
        for key in ("src", "href"):
            if key in a:
                assert a[key].startswith(("data:", "?page=")), a[key]
    box = next(a for t, a in parsed.elements if t == "div" and a.get("data-path") == "1")
    assert box["data-text"] == XSS and box["data-label"] == XSS and XSS in box["title"]
    assert XSS in " ".join(parsed.text)  # shown as text, not markup
    csp = next(a["content"] for t, a in parsed.elements if t == "meta" and a.get("http-equiv"))
    assert f"script-src 'nonce-{scripts[0]['nonce']}'" in csp and "default-src 'none'" in csp


#: text that breaks out of every HTML context it can land in (text, double- and single-quoted
#: attributes, <template>, <pre>, <title>) and a template expression that must stay text
HOSTILE = """</pre></template></title><script>alert("x")</script><img src=x onerror='y'>" ' & {{ 7*7 }}"""


def _everywhere(s: str) -> tuple[Document, dict[int, str], dict[int, str]]:
    """A document with ``s`` in every string that reaches the viewer, and run images / notes
    that hold it too."""
    block = Block(type=s, text=s, label=s, flags=[s], bbox=[1, 1, 50, 50], bbox_norm=[0.1, 0.1, 0.5, 0.5],
                  children=[Block(type="word", text=s, bbox_norm=[0.1, 0.1, 0.2, 0.2])])
    pages = [
        Page(page=1, status="ok", width=612, height=792, markdown=s, warnings=[s], blocks=[block]),
        Page(page=2, status="failed", error=PageError(kind=s, cause=s, message=s)),
        Page(page=3, status="degraded", warnings=[s, s]),
        Page(page=4, status="degraded", error=PageError(kind="bad_output", message=s)),
    ]
    doc = Document(source=s, backend=s, model=s, pages=pages)
    return doc, {1: "data:image/jpeg;base64," + s}, {3: s, 4: s}


def _occurrences(parsed: _Collect, s: str) -> int:
    in_attrs = sum(v.count(s) for _, a in parsed.elements for v in a.values())
    return in_attrs + "".join(parsed.text).count(s)


def test_html_escapes_hostile_text_everywhere_it_appears() -> None:
    """Every string of a Document that reaches the viewer — block text, type, label, flags,
    markdown, warnings, error kind / cause / message, source, backend, model, title, a run's
    image URL and missing-image notes — comes back from an HTML parser as the same text, in
    the same places a harmless marker lands, and adds no element or attribute."""
    marker = "MARKER"
    doc, images, missing = _everywhere(marker)
    plain = _parse(render_html(doc, images=images, missing=missing, title=marker))
    doc, images, missing = _everywhere(HOSTILE)
    raw = render_html(doc, images=images, missing=missing, title=HOSTILE)
    hostile = _parse(raw)
    assert HOSTILE not in raw and "<script>alert" not in raw and "<img src=x" not in raw
    assert "{{ 7*7 }}" in raw.replace("&#39;", "'")  # data is never evaluated as a template
    shape = [(t, sorted(a)) for t, a in plain.elements]
    assert [(t, sorted(a)) for t, a in hostile.elements] == shape  # nothing injected
    assert _occurrences(plain, marker) >= 20  # the marker reached every place listed above
    assert _occurrences(hostile, HOSTILE) == _occurrences(plain, marker)
    assert [a["nonce"] for t, a in hostile.elements if t == "script"] != [""]


def test_html_without_source_draws_blank_pages(built: tuple[Path, Document, Path], tmp_path: Path) -> None:
    _, doc, _ = built
    gone = doc.model_copy(update={"source": str(tmp_path / "nope.pdf")})
    parsed = _parse(render_html(gone))
    assert not [a for t, a in parsed.elements if t == "img"]
    assert len([a for t, a in parsed.elements if t == "div" and a.get("class") == "blank"]) == 5
    assert "source not available" in " ".join(parsed.text)


# --------------------------------------------------------------------------------------------
# searchable pdf
# --------------------------------------------------------------------------------------------


def _tokens(text: str) -> Counter[str]:
    return Counter(re.findall(r"\w+", text.lower()))


def _md_tokens(page: Page) -> Counter[str]:
    return _tokens(re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", page.markdown))


def _pdftotext(path: Path, page: int, *args: str) -> str:
    exe = _need("pdftotext")
    proc = subprocess.run([exe, "-q", "-f", str(page), "-l", str(page), *args, str(path), "-"],
                          capture_output=True, text=True, timeout=30, check=True)
    return proc.stdout


def test_source_has_no_text_of_its_own(built: tuple[Path, Document, Path]) -> None:
    src, doc, _ = built
    for page in doc.pages:
        assert _pdftotext(src, page.page).strip() == ""


def test_searchable_pdf_words_match_the_markdown(built: tuple[Path, Document, Path]) -> None:
    _, doc, out = built
    for page in doc.pages:
        got = _tokens(_pdftotext(out / "scan.pdf", page.page))
        if page.status == "failed":
            assert not got, "a failed page gets no text layer"
            continue
        want = _md_tokens(page)
        common = sum((got & want).values())
        recall, precision = common / sum(want.values()), common / max(1, sum(got.values()))
        assert recall >= 0.98 and precision >= 0.98, (page.page, recall, precision, got, want)


class _Words(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.words: list[tuple[str, tuple[float, float, float, float]]] = []
        self._cur: tuple[float, float, float, float] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "word":
            a = {k: float(v or 0) for k, v in attrs}
            self._cur = (a["xmin"], a["ymin"], a["xmax"], a["ymax"])

    def handle_data(self, data: str) -> None:
        if self._cur is not None and data.strip():
            self.words.append((data.strip(), self._cur))
            self._cur = None


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_searchable_pdf_text_lands_on_the_boxes(built: tuple[Path, Document, Path]) -> None:
    """``pdftotext -bbox-layout -cropbox`` gives word boxes in displayed-page points with a
    top-left origin (rotation applied, relative to the CropBox) — the space of ``bbox``."""
    _, doc, out = built
    checked_pages = set()
    for page in doc.pages:
        if page.status == "failed":
            continue
        parser = _Words()
        parser.feed(_pdftotext(out / "scan.pdf", page.page, "-bbox-layout", "-cropbox"))
        found = parser.words
        words = [b for b in _walk(page.blocks) if b.type == "word"]
        for w in words:
            assert w.bbox is not None
            cands = [box for text, box in found if text == w.text]
            best = max((_iou(tuple(w.bbox), box) for box in cands), default=0.0)
            assert best >= 0.5, (page.page, w.text, w.bbox, cands)
            checked_pages.add(page.page)
        # blocks without word boxes: each extracted word of their text lies inside the box
        for b in page.blocks:
            if b.children or b.type == "figure" or b.bbox is None:
                continue
            bx = tuple(b.bbox)
            for token in pdf_exporter.plain_text(b.text).split():
                inside = [box for text, box in found if text == token and _iou(box, bx) > 0
                          and box[0] >= bx[0] - 2 and box[2] <= bx[2] + 2 and box[1] >= bx[1] - 3 and box[3] <= bx[3] + 3]
                assert inside, (page.page, token, bx)
    assert checked_pages == {1, 2, 3, 5}  # incl. /Rotate 90, CropBox, /Rotate 270 + CropBox


def _render(path: Path, index: int) -> Image.Image:
    doc = pdfium.PdfDocument(path)
    try:
        page = doc[index]
        img = page.render(scale=0.6).to_pil().convert("RGB")
        page.close()
        return img
    finally:
        doc.close()


def test_searchable_pdf_looks_like_the_input(built: tuple[Path, Document, Path]) -> None:
    src, doc, out = built
    for i, page in enumerate(doc.pages):
        a, b = _render(src, i), _render(out / "scan.pdf", i)
        assert a.size == b.size
        w, h = (page.width, page.height)
        assert a.size == (round(w * 0.6), round(h * 0.6)) or abs(a.size[0] - w * 0.6) <= 1
        diff = ImageStat.Stat(ImageChops.difference(a, b).convert("L")).mean[0]
        assert diff < 0.5, (page.page, diff)
        # and the page is not blank (the comparison is meaningful)
        assert a.convert("L").getextrema()[0] < 100


def test_searchable_pdf_from_an_image(tmp_path: Path) -> None:
    _need("pdftotext")
    img = Image.new("RGB", (600, 400), "white")
    src = tmp_path / "shot.png"
    img.save(src, dpi=(144, 144))
    doc = Document(source=str(src), backend="t", pages=[Page(
        page=1, status="ok", width=600, height=400, markdown="hello image world",
        blocks=[Block(type="text", text="hello image world", bbox=[60, 40, 360, 80],
                      bbox_norm=[0.1, 0.1, 0.6, 0.2])])])
    out = pdf_exporter.write(doc, tmp_path / "shot.pdf")
    pdf = pdfium.PdfDocument(out)
    assert pdf[0].get_size() == pytest.approx((300.0, 200.0), abs=0.1)  # 600 px at 144 dpi
    pdf.close()
    parser = _Words()
    parser.feed(_pdftotext(out, 1, "-bbox-layout"))
    assert [t for t, _ in parser.words] == ["hello", "image", "world"]
    x0 = min(b[0] for _, b in parser.words)
    x1 = max(b[2] for _, b in parser.words)
    assert x0 == pytest.approx(30, abs=2) and x1 == pytest.approx(180, abs=2)


def test_searchable_pdf_non_latin_text(built: tuple[Path, Document, Path], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _, doc, _ = built
    page = doc.pages[0].model_copy(deep=True)
    page.blocks = [Block(type="text", text="Привет κόσμος naïve", bbox=[60, 500, 400, 520],
                         bbox_norm=[60 / 612, 500 / 792, 400 / 612, 520 / 792])]
    one = doc.model_copy(update={"pages": [page]})
    if pdf_exporter._system_font() is not None:
        out = pdf_exporter.write(one, tmp_path / "uni.pdf")
        assert _pdftotext(out, 1).split() == ["Привет", "κόσμος", "naïve"]
    # no Unicode font anywhere: transliterated / left out, with a warning, never a crash
    monkeypatch.setattr(pdf_exporter, "_FONT_CANDIDATES", ())
    monkeypatch.delenv("OCRCLIENT_PDF_FONT", raising=False)
    with caplog.at_level(logging.WARNING, logger="ocrclient.exporters.pdf"):
        out = pdf_exporter.write(one, tmp_path / "ascii.pdf")
    assert _pdftotext(out, 1).split() == ["naive"]
    assert any("OCRCLIENT_PDF_FONT" in r.getMessage() for r in caplog.records)


def test_searchable_pdf_needs_the_source(built: tuple[Path, Document, Path], tmp_path: Path) -> None:
    _, doc, _ = built
    gone = doc.model_copy(update={"source": str(tmp_path / "gone.pdf")})
    with pytest.raises(InputError, match="source file not found"):
        pdf_exporter.write(gone, tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


def test_plain_text_strips_markup() -> None:
    assert pdf_exporter.plain_text("<table><tr><td>a &amp; b</td><td>c</td></tr></table>") == "a & b c"
    assert pdf_exporter.plain_text("- **bold** `code` [link](http://x)") == "bold code link"


def test_the_text_keeps_an_images_description_not_its_markup() -> None:
    """Each dialect's figures as markdown images (chandra's alt text with no file, DeepSeek's
    image path): the txt output is the markdown stripped of markup, so it keeps the alt text."""
    from ocrclient.document import Page
    from ocrclient.exporters.text import page_text

    md = "# Results\n\n![Bar chart of revenue by year]()\n\nAs shown ![](images/1.jpg) above.\n\n**Total**: 5"
    assert page_text(Page(page=1, status="ok", markdown=md)) == "Results\n\nBar chart of revenue by year\n\nAs shown  above.\n\nTotal: 5"


#: text with ``<`` and ``>`` that is text, not markup: comparisons, arrows, a bracketed span over
#: lines, an e-mail address in angle brackets, a heap of them
LT_GT_TEXT = [
    "if the depth is < 5 m and the moisture value > 30 percent they are flagged",
    "< 150kg\nMaintenance Manual and Flight Manual - if operating >",
    "x <= 3, y >= 4, a -> b, b <- c, p <> q, 1<2, 3>2",
    "write to <1234@example.org> or call",
    "<<< >>> < > <= =>",
    "the price <\n\nsecond paragraph> here",
]
#: markup the models do write, and the text it stands for (txt: cells by tabs, rows by lines)
MARKUP = [
    ("<table><tr><th>A</th><th>B</th></tr><tr><td>1 &amp; 2</td><td>x &lt; y</td></tr></table>", "A\tB\n1 & 2\tx < y"),
    ("H<sub>2</sub>O and E=mc<sup>2</sup><br>next line", "H2O and E=mc2\nnext line"),
    ('<div class="note" data-bbox="1 2 3 4">boxed</div>', "boxed"),
    ("<p>one</p><p>two</p>", "one\n\ntwo"),
    ("<p>one<p>two", "one\ntwo"),  # blocks and cells whose ends are left out (HTML allows it)
    ("<tr><td>1<td>2</tr>", "1\t2"),
    ("word<hr>word", "word\nword"),
]
#: text with a "<word ...>" that is no HTML tag: it stays
NOT_TAGS = ["x<y and y>z", "if n<m then m>0.", "use the <Enter> key", "a <foo bar=1> b"]


@pytest.mark.parametrize("text", LT_GT_TEXT)
def test_text_between_a_less_than_and_a_greater_than_is_kept(text: str) -> None:
    """The txt output and the searchable PDF's text layer took anything from a ``<`` to the next
    ``>`` for a tag, across lines, and deleted it ("depth is < 5 m ... value > 30" lost all
    between).  Every such text keeps every character (the PDF layer's spaces collapsed)."""
    from ocrclient.document import Page
    from ocrclient.exporters.text import page_text

    assert page_text(Page(page=1, status="ok", markdown=text)) == text.strip()
    assert pdf_exporter.plain_text(text).split() == text.split()


@pytest.mark.parametrize(("markup", "text"), MARKUP)
def test_the_markup_models_write_is_stripped_to_its_text(markup: str, text: str) -> None:
    from ocrclient.document import Page
    from ocrclient.exporters.text import page_text

    assert page_text(Page(page=1, status="ok", markdown=markup)) == text
    assert pdf_exporter.plain_text(markup).split() == text.split()


@pytest.mark.parametrize("text", NOT_TAGS)
def test_a_word_in_angle_brackets_that_is_no_html_tag_is_kept(text: str) -> None:
    from ocrclient.document import Page
    from ocrclient.exporters.text import page_text

    assert page_text(Page(page=1, status="ok", markdown=text)) == text
    assert pdf_exporter.plain_text(text) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab19 <>=.,\n", min_size=1, max_size=80))
def test_no_text_of_ours_is_lost_to_the_markup_stripping(raw: str) -> None:
    """Any text in which no ``<`` opens a tag (none is followed by a letter or ``/``) comes out of
    the txt writer whole (line ends aside)."""
    from ocrclient.document import Page
    from ocrclient.exporters.text import page_text

    text = raw.replace("<a", "< a").replace("<b", "< b")  # (no markdown marks in the alphabet)
    got = page_text(Page(page=1, status="ok", markdown=text))
    assert got == re.sub(r"[ \t]+\n", "\n", text).strip()


# a figure's alt text in the markdown: the caption, else the figure's own text, else the model's
# reference's alt, else "Figure K" -- an image reference among them is no alt text (the whole kind:
# every form a model writes one in, and every dialect that answers with figures)
_FIG_TEXTS = {
    "": "Figure 1", "  ": "Figure 1", "![]()": "Figure 1", "![ ]()": "Figure 1", "![]() ![]()": "Figure 1",
    '<img alt="" src="x.png">': "Figure 1", "<img src='x.png'/>": "Figure 1", "![A chart]()": "A chart",
    '<img alt="A chart">': "A chart", "A chart": "A chart", "![A chart](images/1.jpg)\nmore": "A chart",
}  # fmt: skip


@pytest.mark.parametrize("text", list(_FIG_TEXTS))
@pytest.mark.parametrize("where", ["figure", "caption", "reference"])
def test_figure_alt_text_is_never_an_image_reference(text: str, where: str) -> None:
    from ocrclient.document import Block, Page
    from ocrclient.exporters.markdown import page_markdown

    blocks = [Block(type="figure", text=text if where == "figure" else "", bbox=(10, 10, 50, 50))]
    if where == "caption":
        blocks.append(Block(type="caption", text=text, bbox=(10, 55, 50, 60)))
    md = f"{text if where == 'reference' and text.strip().startswith(('!', '<')) else '![]()'}\n\nAfter"
    page = Page(page=1, width=100, height=100, markdown=md, blocks=blocks, status="ok")
    out = page_markdown(page, {(1, 1): "x_figures/page1_fig1.png"})
    want = _FIG_TEXTS[text] if where != "reference" or text.strip().startswith(("!", "<")) else "Figure 1"
    assert out.startswith(f"![{want}](x_figures/page1_fig1.png)"), out
    assert "\\[" not in out and "![!" not in out, out


@pytest.mark.parametrize("dialect, model", [("chandra", "datalab-to/chandra"), ("deepseek", "deepseek-ai/DeepSeek-OCR"),
                                            ("dots", "rednote-hilab/dots.ocr"), ("lighton", "lightonai/LightOnOCR-2-1B-bbox")])  # fmt: skip
@pytest.mark.parametrize("alt", ["", "A chart"])
def test_every_figure_dialect_writes_a_plain_alt_text(dialect: str, model: str, alt: str, tmp_path: Path) -> None:
    import ocrclient
    from ocrclient.exporters.sink import OutputWriter
    from ocrclient.testing import DialectResponder, OpenAISimulator

    Image.new("RGB", (600, 800), "white").save(tmp_path / "p.png")
    truth = [[("title", "Report", (0.1, 0.05, 0.6, 0.1)), ("figure", alt, (0.1, 0.2, 0.6, 0.5)),
              ("text", "After", (0.1, 0.6, 0.6, 0.7))]]  # fmt: skip
    with OpenAISimulator(model=model, responder=DialectResponder(dialect, truth=truth)) as sim, \
            OutputWriter(tmp_path / "out", ["md"]) as out:  # fmt: skip
        doc = ocrclient.convert(tmp_path / "p.png", backend="openai", dialect=dialect, model=model,
                                base_url=sim.base_url, api_key=sim.api_key, cache=False, outputs=out)  # fmt: skip
    assert doc.pages[0].status == "ok"
    refs = re.findall(r"!\[([^\n]*?)\]\(([^)]*)\)", (tmp_path / "out" / "p.md").read_text())
    assert len(refs) == 1 and refs[0][1] == "p_figures/page1_fig1.png", refs
    assert refs[0][0] and "![" not in refs[0][0] and "\\" not in refs[0][0], refs
    if alt and dialect == "chandra":  # (the one whose replies carry a figure's alt text)
        assert refs[0][0] == alt


@pytest.mark.parametrize("code", [
    "To embed a picture, write `![logo](logo.png)` in the README.",
    "Use ``<img src=\"a.png\">`` for HTML.",
    "```markdown\n![logo](logo.png)\n<img src=\"b.png\">\n```",
    "~~~\n![logo](logo.png)\n~~~",
    "````\n![logo](logo.png)\n```\nstill code\n````",
    "The operator`s manual.",  # (a lone backtick, OCR's apostrophe: no code, the reference after it is the figure's)
    "```\nA fence never closed",
])  # fmt: skip
@pytest.mark.parametrize("ref", ["![](images/1.jpg)", '<img src="x.jpg" alt="Figure 1">', "![image](image_0.png)"])
def test_a_figure_link_never_lands_in_code(code: str, ref: str) -> None:
    """The whole kind: each way markdown holds code (inline spans, fenced blocks) holding an
    image reference, before the figure's own reference in each dialect's syntax.  The K-th
    reference anywhere was taken for the K-th figure: the code read from the page was rewritten
    to point at the crop, and the figure's own reference left dangling (``images/1.jpg``)."""
    md = f"{code}\n\n{ref}\n\nAfter the figure, run `ls`."
    blocks = [Block(type="text", text=code, bbox=[0, 0, 100, 10]), Block(type="figure", text="", bbox=[10, 20, 110, 70])]
    page = Page(page=1, status="ok", width=300, height=300, markdown=md, blocks=blocks)
    out = markdown.page_markdown(page, {(1, 1): "p_figures/page1_fig1.png"})
    assert out.startswith(code), out  # the code as it was read
    assert "](p_figures/page1_fig1.png)" in out.split(code, 1)[1] and ref not in out, out


@pytest.mark.parametrize("inline", ["![ACME logo]()", '<img alt="ACME logo"/>', "![logo](logo.png)"])
@pytest.mark.parametrize("where", ["before", "between", "after", "nested"])
@pytest.mark.parametrize("ref", ["![chart]()", '<img src="x.jpg" alt="chart">', "![image](image_0.png)"])
def test_a_figure_link_never_lands_on_an_image_inside_text(inline: str, where: str, ref: str) -> None:
    """The whole kind: an image written inside a text block (a logo inline in a heading, in a
    list item), in each syntax, before, between or after two figures.  The K-th reference on the
    page was taken for the K-th figure: the chart's crop replaced the logo, and the chart's own
    reference was left empty."""
    text = f"{inline} ACME Corp quarterly report"
    ref2 = ref.replace("chart", "map").replace("x.jpg", "y.jpg").replace("image_0", "image_1")
    fig1 = Block(type="figure", text="chart", bbox=[10, 20, 110, 70])
    fig2 = Block(type="figure", text="map", bbox=[10, 120, 110, 170])
    body = Block(type="text", text="Closing paragraph.", bbox=[0, 200, 100, 210])
    inner = Block(type="text", text=text, bbox=[0, 0, 100, 10])
    holder = Block(type="list", text=f"- {text}", bbox=[0, 0, 100, 10], children=[inner]) if where == "nested" else inner
    parts = {"before": [holder, fig1, fig2, body], "between": [fig1, holder, fig2, body],
             "after": [fig1, fig2, body, holder], "nested": [holder, fig1, fig2, body]}[where]  # fmt: skip
    written = {id(fig1): ref, id(fig2): ref2, id(holder): holder.text, id(body): body.text}
    md = "\n\n".join(written[id(b)] for b in parts)
    page = Page(page=1, status="ok", width=300, height=300, markdown=md, blocks=parts)
    out = markdown.page_markdown(page, {(1, 1): "p_figures/page1_fig1.png", (1, 2): "p_figures/page1_fig2.png"})
    assert markdown.unlinked(text) in out, out  # the text's own image as it was read (one linking nothing as text)
    paras = out.split("\n\n")
    fig_paras = [p for p in paras if "p_figures/" in p]
    assert len(fig_paras) == 2 and "page1_fig1" in fig_paras[0] and "page1_fig2" in fig_paras[1], out
    assert all(text not in p for p in fig_paras), out
    assert ref not in out and ref2 not in out, out  # each figure's own reference points at its crop


def test_a_figure_inside_a_text_block_keeps_its_link() -> None:
    """A block that holds a figure (a container whose text includes the figure's reference): the
    reference is the figure's, not the text's."""
    fig = Block(type="figure", text="chart", bbox=[10, 20, 110, 70])
    box = Block(type="text", text="Sales\n\n![chart]()", bbox=[0, 0, 200, 100], children=[fig])
    page = Page(page=1, status="ok", width=300, height=300, markdown="Sales\n\n![chart]()", blocks=[box])
    out = markdown.page_markdown(page, {(1, 1): "p_figures/page1_fig1.png"})
    assert out == "Sales\n\n![chart](p_figures/page1_fig1.png)", out
