"""Placing the text layer on a PDF page: each OCR line as invisible text along its box.

All words of a line share one font size (the line box's thickness over the font's
ascent-descent) and one baseline, run along the line's direction (:func:`direction`), and are
invisible (text render mode 3).  Each word is stretched to span its own box along the line
(without word boxes: its share of the line by the font's widths) and is followed by an explicit
space; touching or overlapping word boxes are pulled apart by :data:`MIN_GAP_EM`, so text
extractors read the OCR's lines with their spaces.  Boxes go from displayed-page space to PDF
user space with :func:`ocrclient.geometry.to_pdf_user_space` (undoing ``/Rotate`` and the
CropBox offset), and the text matrix is turned with the page.

Example::

    >>> _mul((1, 0, 0, 1, 5, 0), (2, 0, 0, 2, 0, 0))
    (2, 0, 0, 2, 10, 0)
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..geometry import PageBox, to_pdf_user_space
from .pdf_fonts import Fonts, measure, new_text, transliterate, utf16
from .pdf_text import Box, TextLine, has_text_layer, word_counts

__all__ = ["MIN_GAP_EM", "direction", "display_to_user", "lines_to_add", "page_box_of", "place_line"]

Matrix = tuple[float, float, float, float, float, float]


def _mul(m: Matrix, n: Matrix) -> Matrix:
    """``m`` then ``n`` (PDF row-vector convention: p' = p @ m @ n)."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + b * C, a * B + b * D, c * A + d * C, c * B + d * D, e * A + f * C + E, e * B + f * D + F)


def display_to_user(pb: PageBox) -> Matrix:
    """Affine map from displayed-page points with a bottom-left origin to PDF user space."""

    def pt(x: float, y: float) -> tuple[float, float]:
        yt = pb.height - y  # to top-left origin, as to_pdf_user_space expects
        u0, v0, _, _ = to_pdf_user_space((x, yt, x, yt), pb)
        return u0, v0

    ox, oy = pt(0.0, 0.0)
    ax, ay = pt(1.0, 0.0)
    bx, by = pt(0.0, 1.0)
    return (ax - ox, ay - oy, bx - ox, by - oy, ox, oy)


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


def direction(line: TextLine, page: PageBox, em_width: float, thickness: float) -> str:
    """How the line runs on the displayed page: ``ltr``, ``inv`` (upside down: right to left,
    glyph tops down, a scan fed upside down), ``ttb`` (top to bottom, glyph tops to the right)
    or ``btt`` (bottom to top, tops to the left).  Two or more word boxes say it by their order
    (a right-to-left script's words run leftwards on an upright line); otherwise a box taller than wide holds vertical text when the text fits it
    with less stretch that way, running as the page's own x axis is shown (down on /Rotate 90,
    up on /Rotate 270; up on other pages, as rotated table headers and axis labels do)."""
    W, H = page.width, page.height
    if len(line.words) >= 2:
        a, b = line.words[0].box, line.words[-1].box
        dx = ((b[0] + b[2]) - (a[0] + a[2])) / 2 * W
        dy = ((b[1] + b[3]) - (a[1] + a[3])) / 2 * H
        if abs(dy) > abs(dx):
            return "ttb" if dy > 0 else "btt"
        strong = next((c for c in line.text if unicodedata.bidirectional(c) in ("L", "R", "AL")), "")
        leftwards = bool(strong) and _rtl(strong)  # how the script's words follow on an upright line
        return "inv" if (dx < 0) != leftwards and dx != 0 else "ltr"
    w, h = (line.box[2] - line.box[0]) * W, (line.box[3] - line.box[1]) * H
    if h <= w or em_width <= 0:
        return "ltr"
    stretch_h = w / (em_width * h / thickness)  # horizontal: font size from the box's height
    stretch_v = h / (em_width * w / thickness)  # vertical: font size from the box's width
    if abs(math.log(stretch_v)) >= abs(math.log(stretch_h)):
        return "ltr"
    return "ttb" if page.rotation % 360 == 90 else "btt"


@dataclass(frozen=True)
class _Axis:
    """How one line runs on the displayed page (``way``: ``ltr``, ``inv``, ``ttb`` or ``btt``),
    in points with a bottom-left origin: ``s`` is a position along the line."""

    way: str
    page: PageBox
    box: tuple[float, float, float, float]  # the line box in points, top-left origin

    def extent(self) -> tuple[float, float, float]:
        """(thickness across the line, start, end along it)."""
        x0, y0, x1, y1 = self.box
        H = self.page.height
        if self.way == "ltr":
            return y1 - y0, x0, x1
        if self.way == "inv":
            W = self.page.width
            return y1 - y0, W - x1, W - x0
        if self.way == "ttb":
            return x1 - x0, y0, y1
        return x1 - x0, H - y1, H - y0

    def along(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Unit vectors along the line and toward the glyph tops."""
        if self.way == "ltr":
            return (1.0, 0.0), (0.0, 1.0)
        if self.way == "inv":
            return (-1.0, 0.0), (0.0, -1.0)
        if self.way == "ttb":
            return (0.0, -1.0), (1.0, 0.0)
        return (0.0, 1.0), (-1.0, 0.0)

    def origin(self, s: float, descent: float) -> tuple[float, float]:
        """The baseline point at ``s`` (``descent``: the font's descent in points, negative)."""
        x0, y0, x1, y1 = self.box
        H = self.page.height
        if self.way == "ltr":
            return s, H - y1 - descent
        if self.way == "inv":  # the baseline under the box's upper edge, the glyphs hanging down
            return self.page.width - s, H - y0 + descent
        if self.way == "ttb":
            return x0 - descent, H - s
        return x1 + descent, s

    def span(self, b: Box) -> tuple[float, float]:
        """Where a word box (in [0, 1] of the page) starts and ends along the line."""
        W, H = self.page.width, self.page.height
        if self.way == "ltr":
            return b[0] * W, b[2] * W
        if self.way == "inv":
            return W - b[2] * W, W - b[0] * W
        if self.way == "ttb":
            return b[1] * H, b[3] * H
        return H - b[3] * H, H - b[1] * H


def _rtl(ch: str) -> bool:
    return unicodedata.bidirectional(ch) in ("R", "AL")


def _visual(word: str) -> str:
    """A word as it is drawn, left to right: the runs of a right-to-left script (Hebrew,
    Arabic) reversed, the word's runs in reverse order when it has such a run (digits and Latin
    inside keep their own order).  Text extractors (PDFium, pdftotext) read right-to-left glyphs
    back into logical order: written in logical order, ``שלום`` extracted as ``םולש``."""
    if not any(_rtl(c) for c in word):
        return word
    runs = [m.group(0) for m in re.finditer(r"(?:[^\W\d_]|[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff])+|\d+|.", word)]
    return "".join(r[::-1] if any(_rtl(c) for c in r) else r for r in reversed(runs))


def _line_words(line: TextLine, translit: bool) -> list[tuple[str, Box | None]]:
    """The words of ``line`` with their boxes (``None`` without word boxes), non-empty, each as
    drawn (:func:`_visual`), in the order they are written: a right-to-left line's from its
    left end (its last word first)."""
    boxed: list[tuple[str, Box | None]] = [(w.text, w.box) for w in line.words]
    words = [(transliterate(t) if translit else t, b) for t, b in boxed or [(t, None) for t in line.text.split()]]
    shown = [(_visual(t), b) for t, b in words if t.strip()]
    strong = next((c for c in line.text if unicodedata.bidirectional(c) in ("L", "R", "AL")), "")
    if strong and _rtl(strong):  # written left to right, as extractors read a line back: its
        shown.reverse()  # first word (at the line's right end) last
    return shown


def place_line(pdf: Any, raw_page: Any, fonts: Fonts, line: TextLine, page: PageBox, to_user: Matrix) -> int:
    """Put one line on the page as invisible text; returns how many words went in.

    Every word of a line shares the line's font size (its box's thickness over the font's
    ascent-descent) and baseline (the font's descent above the box's lower edge), runs along
    the line's direction, is stretched to span its own box along the line (or, without word
    boxes, its share of the line by the font's widths), and is followed by an explicit space:
    text extractors then see one line of separate words whatever the gaps in the image."""
    import pypdfium2.raw as pdfium_c

    font, translit = fonts.pick(line.text)
    words = _line_words(line, translit) if font else []
    if not words:
        return 0
    asc, desc = fonts.ascent_descent(font)
    W, H = page.width, page.height
    box = (line.box[0] * W, line.box[1] * H, line.box[2] * W, line.box[3] * H)
    em_width = measure(pdf, font, 1.0, " ".join(t for t, _ in words))
    axis = _Axis(direction(line, page, em_width, asc - desc), page, box)
    thick, start, end = axis.extent()
    if thick <= 0 or end <= start:
        return 0
    size = thick / (asc - desc)
    made = []
    for text, wbox in words:
        obj, ink = new_text(pdf, font, size, text)
        if obj:
            made.append((obj, text, wbox, (ink, max(ink, fonts.advance(font, size, text)))))
    if not made:
        return 0
    widths = [w for *_, w in made]
    boxes = [b for _, _, b, _ in made if b is not None]
    fit = _fit_words([axis.span(b) for b in boxes], widths, MIN_GAP_EM * size) if len(boxes) == len(made) else None
    if fit is None:  # no (usable) word boxes
        fit = _lay_out(widths, fonts.space_advance(font) * size, start, end)
    u, n = axis.along()
    for i, ((obj, text, _, _), (s0, stretch)) in enumerate(zip(made, fit, strict=True)):
        if i < len(made) - 1:  # an explicit space after every word but the last
            ptr, _buf = utf16(text + " ")
            pdfium_c.FPDFText_SetText(obj, ptr)
        pdfium_c.FPDFTextObj_SetTextRenderMode(obj, pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE)
        ox, oy = axis.origin(s0, desc * size)
        local: Matrix = (stretch * u[0], stretch * u[1], n[0], n[1], ox, oy)
        a, bb, c, d, e, f = _mul(local, to_user)
        pdfium_c.FPDFPageObj_Transform(obj, a, bb, c, d, e, f)
        pdfium_c.FPDFPage_InsertObject(raw_page, obj)
    return len(made)


def lines_to_add(pg: Any, pb: PageBox, lines: list[TextLine]) -> list[TextLine]:
    """Of ``lines``, those the page does not already show as text of its own: none when the
    page carries a text layer (:func:`has_text_layer`: a born-digital page, an OCRed one), else
    all but those whose words the page's own text holds inside the line's box (a stamp, a page
    number on a scan)."""
    tp = pg.get_textpage()
    try:
        own = str(tp.get_text_range())
        if not word_counts(own):
            return lines
        if has_text_layer(own, lines):
            return []
        keep = []
        for ln in lines:
            x0, y0, x1, y1 = ln.box
            rect = to_pdf_user_space((x0 * pb.width, y0 * pb.height, x1 * pb.width, y1 * pb.height), pb)
            if not word_counts(ln.text) <= word_counts(str(tp.get_text_bounded(*rect))):
                keep.append(ln)
        return keep
    finally:
        tp.close()


def page_box_of(pg: Any) -> PageBox:
    """The displayed geometry of a PDFium page (size after /Rotate, rotation, CropBox origin),
    as rendering measures it (:func:`ocrclient.pages.render.pdf_page_box`, the one owner)."""
    from ..pages.render import pdf_page_box

    return pdf_page_box(pg)

