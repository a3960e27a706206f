"""Searchable PDF writer: the original pages with an invisible text layer.

For a PDF input the pages listed in the :class:`~ocrclient.document.Document` are copied from
the source (``PdfDocument.new()`` + ``import_pages``: content, ``/Rotate``, MediaBox and
CropBox unchanged); for an image input each image becomes a page (sized from the image's own
dpi when it records a sane one, else 72 dpi).  On every page that did not fail, each
text-bearing box gets an invisible text object (text render mode 3), at the finest level the
model gave: the words of a line when present, else the lines of a block, else the block itself
(a multi-line block without line boxes is spread line by line over its box).  Each object is
scaled horizontally so its text spans the box width and sized so the font's ascent-descent
fills the box height; boxes go from displayed-page space to PDF user space with
:func:`ocrclient.geometry.to_pdf_user_space` (undoing ``/Rotate`` and the CropBox offset), and
text on a rotated page runs along the displayed page, so it reads (and selects) upright.

Figure blocks' own text is a description, not page text, and gets no text layer.  Markdown and
HTML markup in block text (tables, emphasis, headings, list bullets) is stripped to its words.

Fonts: text that the standard Helvetica font can encode (WinAnsi) uses Helvetica (nothing is
embedded).  Other text uses a Unicode TrueType font found on the system (``OCRCLIENT_PDF_FONT``,
else DejaVu Sans / Noto Sans / Liberation Sans / Arial at their usual places), embedded once as
a CID font.  Without one, such text is transliterated (accents dropped via NFKD) and characters
that still do not fit are left out, with one warning in the log; nothing ever fails for it.

Failed pages are copied without a text layer.

Example::

    >>> from ocrclient.exporters import pdf                        # doctest: +SKIP
    >>> pdf.write(doc, Path("out/report.pdf"))                      # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import html
import io
import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..document import Block, Document, Page
from ..errors import InputError
from ..geometry import PageBox, to_pdf_user_space
from ._io import atomic_write
from .figures import norm_box, resolve_source

__all__ = ["TextUnit", "plain_text", "render", "text_units", "write"]

log = logging.getLogger("ocrclient.exporters.pdf")

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "C:/Windows/Fonts/arial.ttf",
)

# markup stripped from block text before it becomes a text layer
_IMG = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TAG = re.compile(r"<[^>]{0,2000}>")
_HEAD = re.compile(r"^\s{0,3}#{1,6}\s+", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(?:\[[ xX]\]\s+)?", re.M)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$", re.M)
_EMPH = re.compile(r"(\*\*|__|~~|`+|\$\$?)")


def plain_text(text: str) -> str:
    """Block text without markdown/HTML markup, lines kept, spaces collapsed.

    >>> plain_text("# **Bold** title\\n| a | b |\\n|---|---|\\n| 1 | 2 |")
    'Bold title\\na b\\n1 2'
    """
    t = _IMG.sub("", text)
    t = _LINK.sub(r"\1", t)
    t = re.sub(r"(?i)<br\s*/?>|</(?:p|div|tr|li|h\d)>", "\n", t)
    t = _TAG.sub(" ", t)
    t = html.unescape(t)
    t = _TABLE_RULE.sub("", t)
    t = _HEAD.sub("", t)
    t = _BULLET.sub("", t)
    t = _EMPH.sub("", t)
    t = t.replace("|", " ")
    # control characters (NUL would end the UTF-16 string PDFium reads) become spaces
    t = "".join(ch if ch == "\n" or unicodedata.category(ch) != "Cc" else " " for ch in t)
    lines = [" ".join(line.split()) for line in t.splitlines()]
    return "\n".join(line for line in lines if line)


@dataclass(frozen=True)
class TextUnit:
    """One run of text to place: ``box`` in [0, 1] of the displayed page."""

    text: str
    box: tuple[float, float, float, float]


def _units_of(block: Block, page: Page) -> Iterator[TextUnit]:
    kids = [c for c in block.children if c.text.strip() or c.children]
    if kids and all(norm_box(c, page) is not None for c in kids):
        for child in kids:
            yield from _units_of(child, page)
        return
    if block.type == "figure":
        return
    box = norm_box(block, page)
    text = plain_text(block.text)
    if box is None or not text:
        return
    lines = text.split("\n")
    x0, y0, x1, y1 = box
    step = (y1 - y0) / len(lines)
    for i, line in enumerate(lines):
        yield TextUnit(line, (x0, y0 + i * step, x1, y0 + (i + 1) * step))


def text_units(page: Page) -> list[TextUnit]:
    """What the text layer of ``page`` holds: the finest boxed text of every block (words,
    else lines, else blocks), figures excluded; nothing for a failed page."""
    if page.status == "failed":
        return []
    return [u for b in page.blocks for u in _units_of(b, page)]


# --------------------------------------------------------------------------------------------
# PDFium plumbing
# --------------------------------------------------------------------------------------------

Matrix = tuple[float, float, float, float, float, float]


def _mul(m: Matrix, n: Matrix) -> Matrix:
    """``m`` then ``n`` (PDF row-vector convention: p' = p @ m @ n)."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def _display_to_user(pb: PageBox) -> Matrix:
    """Affine map from displayed-page points with a bottom-left origin to PDF user space."""

    def pt(x: float, y: float) -> tuple[float, float]:
        yt = pb.height - y  # to top-left origin, as to_pdf_user_space expects
        u0, v0, _, _ = to_pdf_user_space((x, yt, x, yt), pb)
        return u0, v0

    ox, oy = pt(0.0, 0.0)
    ax, ay = pt(1.0, 0.0)
    bx, by = pt(0.0, 1.0)
    return (ax - ox, ay - oy, bx - ox, by - oy, ox, oy)


def _utf16(text: str) -> Any:
    raw = text.encode("utf-16-le") + b"\x00\x00"
    buf = (ctypes.c_ushort * (len(raw) // 2)).from_buffer_copy(raw)
    return ctypes.cast(buf, ctypes.POINTER(ctypes.c_ushort)), buf


def _winansi(text: str) -> bool:
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _transliterate(text: str) -> str:
    out = []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch):
            continue
        if _winansi(ch):
            out.append(ch)
    return " ".join("".join(out).split())


def _system_font() -> Path | None:
    env = os.environ.get("OCRCLIENT_PDF_FONT")
    for cand in ([env] if env else []) + list(_FONT_CANDIDATES):
        p = Path(cand)
        if p.suffix.lower() in (".ttf", ".otf") and p.is_file():
            return p
    return None


class _Fonts:
    """Helvetica for WinAnsi text, a lazily embedded system TrueType font for the rest."""

    def __init__(self, pdf: Any) -> None:
        import pypdfium2.raw as pdfium_c

        self._c = pdfium_c
        self._pdf = pdf
        self.helvetica = pdfium_c.FPDFText_LoadStandardFont(pdf.raw, b"Helvetica")
        self._unicode: Any = None
        self._unicode_tried = False
        self._keep: list[Any] = []
        self.dropped = 0
        self.metrics: dict[int, tuple[float, float]] = {}

    def unicode_font(self) -> Any:
        if not self._unicode_tried:
            self._unicode_tried = True
            path = _system_font()
            if path is not None:
                try:
                    data = path.read_bytes()
                    buf = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
                    font = self._c.FPDFText_LoadFont(
                        self._pdf.raw, buf, len(data), self._c.FPDF_FONT_TRUETYPE, 1
                    )
                    if font:
                        self._unicode = font
                        self._keep.append(buf)
                except OSError as exc:
                    log.warning("cannot read font %s: %s", path, exc)
        return self._unicode

    def pick(self, text: str) -> tuple[Any, str]:
        if _winansi(text):
            return self.helvetica, text
        font = self.unicode_font()
        if font:
            return font, text
        clean = _transliterate(text)
        self.dropped += 1
        return self.helvetica, clean

    def ascent_descent(self, font: Any) -> tuple[float, float]:
        key = ctypes.cast(font, ctypes.c_void_p).value or 0
        if key not in self.metrics:
            asc, desc = ctypes.c_float(0.0), ctypes.c_float(0.0)
            ok = self._c.FPDFFont_GetAscent(font, 1.0, ctypes.byref(asc)) and self._c.FPDFFont_GetDescent(
                font, 1.0, ctypes.byref(desc)
            )
            a, d = (float(asc.value), float(desc.value)) if ok else (0.75, -0.25)
            if a - d <= 0.1:
                a, d = 0.75, -0.25
            self.metrics[key] = (a, d)
        return self.metrics[key]

    def close(self) -> None:
        for font in (self.helvetica, self._unicode):
            if font:
                self._c.FPDFFont_Close(font)
        self.helvetica = self._unicode = None


def _place(pdf: Any, raw_page: Any, fonts: _Fonts, unit: TextUnit, disp_w: float, disp_h: float, to_user: Matrix) -> bool:
    import pypdfium2.raw as pdfium_c

    font, text = fonts.pick(unit.text)
    if not text.strip() or not font:
        return False
    x0, y0, x1, y1 = unit.box[0] * disp_w, unit.box[1] * disp_h, unit.box[2] * disp_w, unit.box[3] * disp_h
    box_w, box_h = x1 - x0, y1 - y0
    if box_w <= 0 or box_h <= 0:
        return False
    asc, desc = fonts.ascent_descent(font)
    size = box_h / (asc - desc)
    obj = pdfium_c.FPDFPageObj_CreateTextObj(pdf.raw, font, size)
    if not obj:
        return False
    ptr, _buf = _utf16(text)
    if not pdfium_c.FPDFText_SetText(obj, ptr):
        pdfium_c.FPDFPageObj_Destroy(obj)
        return False
    pdfium_c.FPDFTextObj_SetTextRenderMode(obj, pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE)
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    natural = 0.0
    if pdfium_c.FPDFPageObj_GetBounds(
        obj, ctypes.byref(left), ctypes.byref(bottom), ctypes.byref(right), ctypes.byref(top)
    ):
        # from the text origin to the right edge of the last glyph: text extractors start a
        # word at its origin, so the origin goes on the box's left edge
        natural = float(right.value)
    if natural <= 1e-6:
        natural = 0.5 * size * len(text)
    hscale = box_w / natural
    # text space -> displayed page (bottom-left origin): stretch to the box, baseline raised by
    # the font's descent above the box's bottom edge
    local: Matrix = (hscale, 0.0, 0.0, 1.0, x0, (disp_h - y1) - desc * size)
    a, bb, c, d, e, f = _mul(local, to_user)
    pdfium_c.FPDFPageObj_Transform(obj, a, bb, c, d, e, f)
    pdfium_c.FPDFPage_InsertObject(raw_page, obj)
    return True


def _page_box(pg: Any) -> PageBox:
    w, h = pg.get_size()
    left, bottom, _, _ = pg.get_bbox()
    return PageBox(float(w), float(h), int(pg.get_rotation()), float(left), float(bottom))


def _flatten(img: Any) -> Any:
    """Any PIL mode -> RGB or L, transparency composited onto white."""
    from PIL import Image

    if img.mode in ("RGB", "L"):
        return img
    if img.mode in ("1", "I", "F") or img.mode.startswith("I;16"):
        return img.convert("L")
    rgba = img.convert("RGBA")
    bg = Image.new("RGB", rgba.size, (255, 255, 255))
    bg.paste(rgba, mask=rgba.getchannel("A"))
    return bg


def _add_image_pages(out: Any, source: Path, doc: Document) -> list[Page]:
    """Image input: one page per image frame listed in the document, in document order."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageOps

    placed: list[Page] = []
    with Image.open(source) as raw:
        frames = int(getattr(raw, "n_frames", 1))
        for page in doc.pages:
            if not 1 <= page.page <= frames:
                log.warning("page %d is not in %s; left out of the PDF", page.page, source.name)
                continue
            raw.seek(page.page - 1)
            img = ImageOps.exif_transpose(raw) or raw
            img.load()
            dpi = raw.info.get("dpi", (72, 72))
            try:
                res = float(dpi[0])
            except (TypeError, ValueError, IndexError):
                res = 72.0
            res = res if 30 <= res <= 1200 else 72.0
            img = _flatten(img)
            w_pt, h_pt = img.width * 72.0 / res, img.height * 72.0 / res
            pg = out.new_page(w_pt, h_pt)
            obj = pdfium.PdfImage.new(out)
            obj.set_bitmap(pdfium.PdfBitmap.from_pil(img.convert("RGB") if img.mode != "L" else img))
            obj.set_matrix(pdfium.PdfMatrix().scale(w_pt, h_pt))
            pg.insert_obj(obj)
            pg.gen_content()
            pg.close()
            placed.append(page)
    return placed


def render(doc: Document, *, source: str | Path | None = None, base: Path | None = None) -> bytes:
    """The searchable PDF as bytes.  Raises :class:`InputError` (one line) when the source
    document cannot be found or opened: its pages are what the PDF is made of."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    path = resolve_source(doc, source, base)
    if path is None:
        raise InputError(f"{doc.source}: source file not found; a searchable PDF needs the original pages")
    from ..pages import PDFIUM_LOCK, open_sources

    src_info = open_sources([path])[0]
    with PDFIUM_LOCK:
        out = pdfium.PdfDocument.new()
        src = None
        try:
            if src_info.kind == "pdf":
                src = pdfium.PdfDocument(path)
                placed = [p for p in doc.pages if 1 <= p.page <= len(src)]
                for p in doc.pages:
                    if p not in placed:
                        log.warning("page %d is not in %s; left out of the PDF", p.page, path.name)
                if placed:
                    out.import_pages(src, pages=[p.page - 1 for p in placed])
            else:
                placed = _add_image_pages(out, path, doc)
            fonts = _Fonts(out)
            try:
                for i, page in enumerate(placed):
                    units = text_units(page)
                    if not units:
                        continue
                    pg = out[i]
                    try:
                        pb = _page_box(pg)
                        to_user = _display_to_user(pb)
                        n = sum(_place(out, pg.raw, fonts, u, pb.width, pb.height, to_user) for u in units)
                        if n:
                            pdfium_c.FPDFPage_GenerateContent(pg.raw)
                    finally:
                        pg.close()
                if fonts.dropped:
                    log.warning(
                        "%s: %d text run(s) have characters no available font covers; they were "
                        "transliterated or left out of the text layer (set OCRCLIENT_PDF_FONT to a "
                        "Unicode .ttf to keep them)", doc.source, fonts.dropped,
                    )
                buf = io.BytesIO()
                out.save(buf)
            finally:
                fonts.close()
            return buf.getvalue()
        finally:
            out.close()
            if src is not None:
                src.close()


def write(doc: Document, path: Path, *, source: str | Path | None = None) -> Path:
    """Write the searchable PDF of ``doc`` to ``path`` (see the module docstring)."""
    return atomic_write(path, render(doc, source=source, base=path.parent))
