"""Searchable PDF writer: the original pages with an invisible text layer.

For a PDF input the pages listed in the :class:`~ocrclient.document.Document` are copied from
the source (``PdfDocument.new()`` + ``import_pages``: content, ``/Rotate``, MediaBox and
CropBox unchanged); for an image input each image becomes a page (sized from the image's own
dpi when it records a sane one, else 72 dpi).

The text layer goes in line by line (:func:`text_lines`): every line the model boxed, with its
word boxes when it gave them, else each block's text spread line by line over its box.  All
words of a line share one font size (the line box's thickness over the font's ascent-descent)
and one baseline, run along the line's direction, and are invisible (text render mode 3).  Each
word is stretched to span its own box along the line (without word boxes: its share of the
line by the font's widths) and is followed by an explicit space, and touching or overlapping
word boxes are pulled apart by :data:`MIN_GAP_EM`, so text extractors (``pdftotext``, PDFium,
viewers' search and copy) read the OCR's lines with their spaces.  Words the line's text writes
without a space between them (CJK characters boxed one by one) stay one run.

Direction: boxes go from displayed-page space to PDF user space with
:func:`ocrclient.geometry.to_pdf_user_space` (undoing ``/Rotate`` and the CropBox offset), and
the text matrix is turned with the page, so on a page shown rotated a line reads horizontally as
displayed.  A line that runs vertically on the displayed page (word boxes stacked, or a box
taller than wide that its text fits that way) gets its text turned along it, top to bottom or
bottom to top, rather than squeezed across it letter by letter.

Pages that already carry text of their own are left as they are: a page whose own extractable
text holds at least half of the OCR's words (:func:`has_text_layer`: a born-digital or already
OCRed page) gets no OCR text, and on other pages a line whose words the page's own text already
holds inside its box (a stamp, a page number) is not added again.  ``force_ocr_text=True`` (CLI
``--force-ocr-text``) adds every OCR line regardless.

Figure blocks' own text is a description, not page text, and gets no text layer.  Markdown and
HTML markup in block text (tables, emphasis, headings, list bullets) is stripped to its words.

Fonts: text that the standard Helvetica font can encode (WinAnsi) uses Helvetica (nothing is
embedded).  Other text uses a Unicode TrueType font found on the system (``OCRCLIENT_PDF_FONT``,
else DejaVu Sans / Noto Sans / Liberation Sans / Arial at their usual places), embedded once as
a CID font.  Without one, such text is transliterated (accents dropped via NFKD) and characters
that still do not fit are left out, with one warning in the log; nothing ever fails for it.

Failed pages are copied without a text layer.

The layer is written with PDFium's page-object API through pypdfium2, which already reads the
pages: a text object per word, then ``FPDFPage_GenerateContent``.  pikepdf (what OCRmyPDF uses)
or reportlab would make a core dependency of what is here a few dozen lines of object placement.

Example::

    >>> from ocrclient.exporters import pdf                        # doctest: +SKIP
    >>> pdf.write(doc, Path("out/report.pdf"))                      # doctest: +SKIP
    >>> pdf.write(doc, Path("out/forced.pdf"), force_ocr_text=True)  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import html
import io
import logging
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..document import Block, Document, Page
from ..errors import InputError
from ..geometry import PageBox, to_pdf_user_space
from ._io import atomic_write
from .figures import norm_box, resolve_source

__all__ = [
    "MIN_GAP_EM",
    "TextLine",
    "TextUnit",
    "has_text_layer",
    "plain_text",
    "render",
    "text_lines",
    "text_units",
    "write",
]

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


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TextUnit:
    """One run of text to place: ``box`` in [0, 1] of the displayed page."""

    text: str
    box: Box


@dataclass(frozen=True)
class TextLine:
    """One line of the text layer: ``box`` in [0, 1] of the displayed page, and its ``words``
    with their own boxes when the model gave them (without them the line's words are laid out
    along the box by the font's widths)."""

    text: str
    box: Box
    words: tuple[TextUnit, ...] = ()


def _union(units: Sequence[TextUnit]) -> Box:
    return (
        min(u.box[0] for u in units),
        min(u.box[1] for u in units),
        max(u.box[2] for u in units),
        max(u.box[3] for u in units),
    )


def _runs(text: str, words: list[TextUnit]) -> list[TextUnit]:
    """The words of a line as its ``text`` separates them: words the text writes with nothing
    between them (CJK characters, which RapidOCR boxes one by one; "rain," + "and" read as
    "rain,and") become one run with their boxes' union.  Words that do not spell the text stay
    as they are.

    >>> [w.text for w in _runs("東京 タワー", [TextUnit(c, (0, 0, 1, 1)) for c in "東京タワー"])]
    ['東京', 'タワー']
    """
    out: list[TextUnit] = []
    pos = 0
    for w in words:
        start = text.find(w.text, pos)
        if start < 0 or text[pos:start].strip():
            return words
        if out and start == pos:
            out[-1] = TextUnit(out[-1].text + w.text, _union([out[-1], w]))
        else:
            out.append(w)
        pos = start + len(w.text)
    return out


def _lines_of(block: Block, page: Page) -> Iterator[TextLine]:
    kids = [c for c in block.children if c.text.strip() or c.children]
    if kids and all(norm_box(c, page) is not None for c in kids):
        if all(c.type == "word" for c in kids):
            words = []
            for c in kids:
                text, box = " ".join(plain_text(c.text).split()), norm_box(c, page)
                if text and box is not None:
                    words.append(TextUnit(text, box))
            if words:
                runs = _runs(" ".join(plain_text(block.text).split()), words)
                yield TextLine(" ".join(w.text for w in runs), norm_box(block, page) or _union(runs), tuple(runs))
            return
        for child in kids:
            yield from _lines_of(child, page)
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
        yield TextLine(line, (x0, y0 + i * step, x1, y0 + (i + 1) * step))


def text_lines(page: Page) -> list[TextLine]:
    """What the text layer of ``page`` holds, line by line: every line the model boxed (with its
    word boxes when it gave them), else each block's text spread line by line over its box;
    figures' own text excluded; nothing for a failed page."""
    if page.status == "failed":
        return []
    return [ln for b in page.blocks for ln in _lines_of(b, page)]


def text_units(page: Page) -> list[TextUnit]:
    """The finest boxed runs of :func:`text_lines`: the words of a line when boxed, else the line."""
    return [u for ln in text_lines(page) for u in (ln.words or (TextUnit(ln.text, ln.box),))]


def _words(text: str) -> Counter[str]:
    return Counter(re.findall(r"\w+", text.casefold()))


def has_text_layer(existing: str, lines: Sequence[TextLine]) -> bool:
    """Whether a page whose own extractable text is ``existing`` already carries the text the OCR
    read (``lines``): it holds at least half of the OCR's words.  A page number or a stamp on a
    scan is not a text layer, nor is text whose font maps to no Unicode (it extracts as junk).

    >>> has_text_layer("Quarterly report 2024", [TextLine("Quarterly report", (0, 0, 1, 1))])
    True
    >>> has_text_layer("Page 3", [TextLine("Twelve field sites were visited", (0, 0, 1, 1))])
    False
    """
    have = _words(existing)
    if not have:
        return False
    want = _words("\n".join(ln.text for ln in lines))
    if not want:
        return True
    return sum((want & have).values()) >= 0.5 * sum(want.values())


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
        self.spaces: dict[int, float] = {}
        self.n_ink: dict[int, float] = {}

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

    def pick(self, text: str) -> tuple[Any, bool]:
        """The font for ``text`` and whether its words must be transliterated to fit it."""
        if _winansi(text):
            return self.helvetica, False
        font = self.unicode_font()
        if font:
            return font, False
        self.dropped += 1
        return self.helvetica, True

    def advance(self, font: Any, size: float, text: str) -> float:
        """Where a character after ``text`` would start: the ink width of ``text + "n"`` less
        that of ``"n"`` (PDFium gives ink bounds only; it does not kern)."""
        key = ctypes.cast(font, ctypes.c_void_p).value or 0
        if key not in self.n_ink:
            self.n_ink[key] = _measure(self._pdf, font, 1.0, "n")
        return _measure(self._pdf, font, size, text + "n") - self.n_ink[key] * size

    def space_advance(self, font: Any) -> float:
        """The advance of a space at size 1 ("n n" minus "nn", so the glyphs' ink cancels)."""
        key = ctypes.cast(font, ctypes.c_void_p).value or 0
        if key not in self.spaces:
            spaced, tight = _measure(self._pdf, font, 1.0, "n n"), _measure(self._pdf, font, 1.0, "nn")
            self.spaces[key] = spaced - tight if spaced > tight else 0.278
        return self.spaces[key]

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


def _new_text(pdf: Any, font: Any, size: float, text: str) -> tuple[Any, float]:
    """A text object of ``text`` and its natural width: from its origin to the right edge of its
    last glyph (text extractors start a word at its origin, so the origin goes on the box's
    start).  ``(None, 0)`` when PDFium refuses the text."""
    import pypdfium2.raw as pdfium_c

    obj = pdfium_c.FPDFPageObj_CreateTextObj(pdf.raw, font, size)
    if not obj:
        return None, 0.0
    ptr, _buf = _utf16(text)
    if not pdfium_c.FPDFText_SetText(obj, ptr):
        pdfium_c.FPDFPageObj_Destroy(obj)
        return None, 0.0
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    natural = 0.0
    if pdfium_c.FPDFPageObj_GetBounds(obj, ctypes.byref(left), ctypes.byref(bottom), ctypes.byref(right), ctypes.byref(top)):
        natural = float(right.value)
    return obj, natural if natural > 1e-6 else 0.5 * size * len(text)


def _measure(pdf: Any, font: Any, size: float, text: str) -> float:
    import pypdfium2.raw as pdfium_c

    obj, natural = _new_text(pdf, font, size, text)
    if obj:
        pdfium_c.FPDFPageObj_Destroy(obj)
    return natural


#: the least gap left between two words of a line, in ems of the line's font size: text
#: extractors join words whose gap is about nothing (poppler's threshold is 0.03 em), and OCR
#: word boxes often touch ("visit|followed")
MIN_GAP_EM = 0.15

#: (ink, advance): a word's width from its origin to the right edge of its last glyph, and to
#: where the next character would start (what extractors take as the word's extent)
Widths = tuple[float, float]


def _fit_words(spans: Sequence[tuple[float, float]], widths: Sequence[Widths], min_gap: float) -> list[tuple[float, float]] | None:
    """``(start, stretch)`` of each word so its ink spans its box along the line, its stretch
    lowered where needed so its advance ends ``min_gap`` before the next word; ``None`` when
    the boxes do not make a line of words in order (a word would lose more than half its
    length, or starts before the one it follows)."""
    out = []
    for i, ((s0, s1), (ink, adv)) in enumerate(zip(spans, widths, strict=True)):
        if s1 <= s0 or ink <= 0:
            return None
        stretch = (s1 - s0) / ink
        if i + 1 < len(spans):
            room = spans[i + 1][0] - min_gap - s0
            if room <= 0 or room / adv < 0.5 * stretch:
                return None
            stretch = min(stretch, room / adv)
        out.append((s0, stretch))
    return out


def _lay_out(widths: Sequence[Widths], space: float, start: float, end: float) -> list[tuple[float, float]]:
    """``(start, stretch)`` of each word set by the font's widths, one space apart, the line
    stretched so the last word's ink ends at ``end``."""
    total = sum(adv for _, adv in widths[:-1]) + widths[-1][0] + space * (len(widths) - 1)
    k = (end - start) / total if total > 0 else 1.0
    out, s = [], start
    for _, adv in widths:
        out.append((s, k))
        s += (adv + space) * k
    return out


def _direction(line: TextLine, page: PageBox, em_width: float, thickness: float) -> str:
    """How the line runs on the displayed page: ``ltr``, ``ttb`` (top to bottom, glyph tops to
    the right) or ``btt`` (bottom to top, tops to the left).  Two or more word boxes say it by
    their order; otherwise a box taller than wide holds vertical text when the text fits it
    with less stretch that way, running as the page's own x axis is shown (down on /Rotate 90,
    up on /Rotate 270; up on other pages, as rotated table headers and axis labels do)."""
    W, H = page.width, page.height
    if len(line.words) >= 2:
        a, b = line.words[0].box, line.words[-1].box
        dx = ((b[0] + b[2]) - (a[0] + a[2])) / 2 * W
        dy = ((b[1] + b[3]) - (a[1] + a[3])) / 2 * H
        if abs(dy) > abs(dx):
            return "ttb" if dy > 0 else "btt"
        return "ltr"
    w, h = (line.box[2] - line.box[0]) * W, (line.box[3] - line.box[1]) * H
    if h <= w or em_width <= 0:
        return "ltr"
    stretch_h = w / (em_width * h / thickness)  # horizontal: font size from the box's height
    stretch_v = h / (em_width * w / thickness)  # vertical: font size from the box's width
    if abs(math.log(stretch_v)) >= abs(math.log(stretch_h)):
        return "ltr"
    return "ttb" if page.rotation % 360 == 90 else "btt"


def _place_line(pdf: Any, raw_page: Any, fonts: _Fonts, line: TextLine, page: PageBox, to_user: Matrix) -> int:
    """Put one line on the page as invisible text; returns how many words went in.

    Every word of a line shares the line's font size (its box's thickness over the font's
    ascent-descent) and baseline (the font's descent above the box's lower edge), runs along
    the line's direction, is stretched to span its own box along the line (or, without word
    boxes, its share of the line by the font's widths), and is followed by an explicit space:
    text extractors then see one line of separate words whatever the gaps in the image."""
    import pypdfium2.raw as pdfium_c

    font, translit = fonts.pick(line.text)
    if not font:
        return 0
    boxed: list[tuple[str, Box | None]] = [(w.text, w.box) for w in line.words]
    words = [(_transliterate(t) if translit else t, b) for t, b in boxed or [(t, None) for t in line.text.split()]]
    words = [(t, b) for t, b in words if t.strip()]
    if not words:
        return 0
    asc, desc = fonts.ascent_descent(font)
    thick_em = asc - desc
    W, H = page.width, page.height
    x0, y0, x1, y1 = line.box[0] * W, line.box[1] * H, line.box[2] * W, line.box[3] * H
    em_width = _measure(pdf, font, 1.0, " ".join(t for t, _ in words))
    way = _direction(line, page, em_width, thick_em)
    # s: position along the line; origin(s): the baseline point at s (displayed page, y up)
    if way == "ltr":
        thick, start, end = y1 - y0, x0, x1
        u, n = (1.0, 0.0), (0.0, 1.0)
    elif way == "ttb":
        thick, start, end = x1 - x0, y0, y1
        u, n = (0.0, -1.0), (1.0, 0.0)
    else:
        thick, start, end = x1 - x0, H - y1, H - y0
        u, n = (0.0, 1.0), (-1.0, 0.0)
    if thick <= 0 or end <= start:
        return 0
    size = thick / thick_em

    def origin(s: float) -> tuple[float, float]:
        if way == "ltr":
            return s, H - y1 - desc * size
        if way == "ttb":
            return x0 - desc * size, H - s
        return x1 + desc * size, s

    def span(b: Box) -> tuple[float, float]:
        if way == "ltr":
            return b[0] * W, b[2] * W
        if way == "ttb":
            return b[1] * H, b[3] * H
        return H - b[3] * H, H - b[1] * H

    made = []
    for text, box in words:
        obj, ink = _new_text(pdf, font, size, text)
        if obj:
            made.append((obj, text, box, (ink, max(ink, fonts.advance(font, size, text)))))
    if not made:
        return 0
    widths = [w for *_, w in made]
    boxes = [box for _, _, box, _ in made if box is not None]
    fit = _fit_words([span(b) for b in boxes], widths, MIN_GAP_EM * size) if len(boxes) == len(made) else None
    if fit is None:  # no (usable) word boxes
        fit = _lay_out(widths, fonts.space_advance(font) * size, start, end)
    for i, ((obj, text, _, _), (s0, stretch)) in enumerate(zip(made, fit, strict=True)):
        if i < len(made) - 1:  # an explicit space after every word but the last
            ptr, _buf = _utf16(text + " ")
            pdfium_c.FPDFText_SetText(obj, ptr)
        pdfium_c.FPDFTextObj_SetTextRenderMode(obj, pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE)
        ox, oy = origin(s0)
        local: Matrix = (stretch * u[0], stretch * u[1], n[0], n[1], ox, oy)
        a, bb, c, d, e, f = _mul(local, to_user)
        pdfium_c.FPDFPageObj_Transform(obj, a, bb, c, d, e, f)
        pdfium_c.FPDFPage_InsertObject(raw_page, obj)
    return len(made)


def _lines_to_add(pg: Any, pb: PageBox, lines: list[TextLine]) -> list[TextLine]:
    """Of ``lines``, those the page does not already show as text of its own: none when the
    page carries a text layer (:func:`has_text_layer`: a born-digital page, an OCRed one), else
    all but those whose words the page's own text holds inside the line's box (a stamp, a page
    number on a scan)."""
    tp = pg.get_textpage()
    try:
        own = str(tp.get_text_range())
        if not _words(own):
            return lines
        if has_text_layer(own, lines):
            return []
        keep = []
        for ln in lines:
            x0, y0, x1, y1 = ln.box
            rect = to_pdf_user_space((x0 * pb.width, y0 * pb.height, x1 * pb.width, y1 * pb.height), pb)
            if not _words(ln.text) <= _words(str(tp.get_text_bounded(*rect))):
                keep.append(ln)
        return keep
    finally:
        tp.close()


def _page_box(pg: Any) -> PageBox:
    from ..pages.render import pdf_page_box

    return pdf_page_box(pg)


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


def render(
    doc: Document, *, source: str | Path | None = None, base: Path | None = None, force_ocr_text: bool = False
) -> bytes:
    """The searchable PDF as bytes.  Pages that already carry a text layer of their own (see
    :func:`has_text_layer`) are left as they are unless ``force_ocr_text``.  Raises
    :class:`InputError` (one line) when the source document cannot be found or opened: its
    pages are what the PDF is made of."""
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
                    lines = text_lines(page)
                    if not lines:
                        continue
                    pg = out[i]
                    try:
                        pb = _page_box(pg)
                        if not force_ocr_text:
                            todo = _lines_to_add(pg, pb, lines)
                            if len(todo) < len(lines):
                                log.info("%s page %d: %d of %d OCR lines are already the page's own text; "
                                         "not added again", doc.source, page.page, len(lines) - len(todo), len(lines))
                            lines = todo
                        to_user = _display_to_user(pb)
                        n = sum(_place_line(out, pg.raw, fonts, ln, pb, to_user) for ln in lines)
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


def write(doc: Document, path: Path, *, source: str | Path | None = None, force_ocr_text: bool = False) -> Path:
    """Write the searchable PDF of ``doc`` to ``path`` (see the module docstring)."""
    return atomic_write(path, render(doc, source=source, base=path.parent, force_ocr_text=force_ocr_text))
