"""A PDF page's own text layer, read with pypdfium2: characters -> words -> lines, exact boxes.

:func:`read_layer` opens one page of a PDF and returns its :class:`Layer`: every character PDFium
finds (its Unicode, its tight glyph box and its loose box — the font's ascent to descent —, its
font size, whether it is invisible, render mode 3, and whether its font has no Unicode map) in
points of the page *as displayed* (after ``/Rotate`` and the CropBox, origin top-left, y down: the
output contract's space, see ``docs/ARCHITECTURE.md``), the bounds of the page's image objects,
and the page's straight ruling lines (thin filled or stroked path rectangles, for tables).

:func:`layer_lines` groups the characters in PDFium's text order into lines: a new line starts
at a line break PDFium reports (a generated CR/LF) or where the next character does not sit on
the current line; a line is cut into separate segments (cells, columns) at a horizontal gap wider
than :data:`SEGMENT_GAP` em, and into words at spaces.  The result has the engine's line-dict
format (:mod:`ocrclient.engines.read`): ``{"text", "score": 1.0, "box", "det_box", "words",
"size"}`` with ``box`` the union of the tight glyph boxes, ``det_box`` of the loose ones (what the
layout measures, as it measures the detector's padded box) and ``size`` the font size, all scaled
by ``scale`` (pixels of the image sent per point), so the layout and the box mapping
(:mod:`ocrclient.geometry`) treat both paths alike and the points come back exactly.

Ligatures (``ﬁ``) are spelled out and PDFium's hyphen marker at a line end becomes ``-``.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import unicodedata
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pages.pdfdocs import OpenPdfs

__all__ = ["SEGMENT_GAP", "Char", "Layer", "Upright", "layer_lines", "open_page", "open_pdf", "page_count", "read_layer", "text_lock"]

#: a gap wider than this many em inside a line cuts it into separate segments (table cells,
#: columns set on one baseline); justified prose stays well below it
SEGMENT_GAP = 0.9
#: the widest word gap (em) a justified line stretches to; wider ones are a table's (a compact
#: table's cells stand 1.5 em apart, and its row was kept whole at 2 em)
JUSTIFIED_GAP = 1.25
#: a gap that this many lines share (at one x) is a column gutter
GUTTER_LINES = 6
#: a word break where two glyphs are further apart than this many em without a space between
_WORD_GAP = 0.3

_LIGATURES = {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
              "\ufb05": "st", "\ufb06": "st"}  # fmt: skip

Box = tuple[float, float, float, float]


@dataclass
class Char:
    """One character of the layer, in points of the displayed page."""

    text: str
    box: Box  # tight glyph box
    loose: Box  # the font's ascent..descent box
    size: float  # font size, points
    generated: bool = False  # a space or line break PDFium inserted
    invisible: bool = False  # render mode 3 (an OCR layer over a scan)
    unmapped: bool = False  # its font has no (or a broken) Unicode map
    quarter: int = 0  # its angle on the page in quarter turns (PDFium's), 0-3


@dataclass
class Layer:
    """What the text layer of one page holds (see the module docstring)."""

    width: float  # the page turned so that its text runs left to right, points
    height: float
    rotation: int = 0  # clockwise degrees from this frame to the displayed page
    chars: list[Char] = field(default_factory=list)
    images: list[Box] = field(default_factory=list)
    rules: list[Box] = field(default_factory=list)

    @property
    def text_chars(self) -> list[Char]:
        """The characters actually on the page (not PDFium's spaces and breaks, not spaces)."""
        return [c for c in self.chars if not c.generated and not c.text.isspace()]

    def image_cover(self) -> float:
        """The share of the page that image objects cover (on a 50 x 50 grid, overlaps once)."""
        if self.width <= 0 or self.height <= 0 or not self.images:
            return 0.0
        n = 50
        cells: set[tuple[int, int]] = set()
        for x0, y0, x1, y1 in self.images:
            i0, i1 = int(x0 / self.width * n), int(min(x1 / self.width, 0.9999) * n)
            j0, j1 = int(y0 / self.height * n), int(min(y1 / self.height, 0.9999) * n)
            cells.update((i, j) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1))
        return len(cells) / (n * n)


# -- opening ---------------------------------------------------------------------------------

#: the documents kept open between the pages read (opened afresh every few dozen pages: what
#: PDFium keeps of a document's pages while it is open stays bounded, :mod:`ocrclient.pages.pdfdocs`)
_PDFS: OpenPdfs | None = None


def text_lock() -> Any:
    """PDFium is not thread-safe: every call holds the renderer's process-wide lock."""
    from ..pages.render import PDFIUM_LOCK

    return PDFIUM_LOCK


def _open() -> OpenPdfs:
    global _PDFS
    if _PDFS is None:
        from ..pages.pdfdocs import OpenPdfs

        _PDFS = OpenPdfs(lock=text_lock())  # (closed at exit too)
    return _PDFS


def open_pdf(path: str, password: str | None = None) -> Any:
    """The PDF at ``path``, kept open for the next pages read (a few at a time).  Hold :func:`text_lock`."""
    return _open().document(path, password)


def open_page(path: str, index: int, password: str | None = None) -> Any:
    """Page ``index`` of the PDF at ``path``; a handle that fails to load one is dropped
    (:func:`ocrclient.pages.pdfdocs.load_page`).  Hold :func:`text_lock`."""
    return _open().page(path, index, password)


def close_documents() -> None:
    """Close the PDFs kept open between pages (a transport's ``aclose``, and at exit: an open
    document holds its file and makes pypdfium2 warn when the interpreter ends)."""
    with text_lock():
        if _PDFS is not None:
            _PDFS.close()


def page_count(path: str) -> int:
    """How many pages the PDF at ``path`` has."""
    with text_lock():
        return len(open_pdf(path))


class Upright:
    """PDF user space -> points of the page upright (the CropBox's top-left corner as origin, y
    down, ``/Rotate`` *not* applied: text runs left to right there).  :attr:`rotation` is the
    page's ``/Rotate``, which turns this space into the displayed page."""

    def __init__(self, page: Any) -> None:
        from ..pages.render import pdf_page_box  # the one reader of a page's box

        box = pdf_page_box(page)
        self.rotation = box.rotation % 360
        self.w, self.h = (box.height, box.width) if self.rotation in (90, 270) else (box.width, box.height)
        self.left, self.bottom = box.crop_x, box.crop_y
        self.top = box.crop_y + self.h

    def shows(self, box: Box) -> bool:
        """Whether the middle of ``box`` (a glyph's) lies within the CropBox."""
        x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return 0.0 <= x <= self.w and 0.0 <= y <= self.h

    def box(self, left: float, bottom: float, right: float, top: float) -> Box:
        x0, x1 = sorted((left - self.left, right - self.left))
        y0, y1 = sorted((self.top - top, self.top - bottom))
        return (x0, y0, x1, y1)


def read_layer(path: str, index: int, password: str | None = None) -> Layer:
    """The text layer of page ``index`` (0-based) of the PDF at ``path`` (see the module
    docstring); raises what pypdfium2 raises for a file it cannot open."""
    with text_lock():
        page = open_page(path, index, password)
        try:
            return _read_page(page)
        finally:
            page.close()


def _read_page(page: Any) -> Layer:
    import pypdfium2.raw as pdfium_c

    disp = Upright(page)
    layer = Layer(disp.w, disp.h, rotation=disp.rotation)
    textpage = page.get_textpage()
    try:
        raw = textpage.raw
        left, right, bottom, top = (ctypes.c_double() for _ in range(4))
        rect = pdfium_c.FS_RECTF()
        for i in range(textpage.count_chars()):
            code = pdfium_c.FPDFText_GetUnicode(raw, i)
            if code == 0:
                continue
            pdfium_c.FPDFText_GetCharBox(raw, i, left, right, bottom, top)
            pdfium_c.FPDFText_GetLooseCharBox(raw, i, rect)
            obj = pdfium_c.FPDFText_GetTextObject(raw, i)
            ch = (
                Char(
                    text=chr(code) if code < 0x110000 else "\ufffd",
                    box=disp.box(left.value, bottom.value, right.value, top.value),
                    loose=disp.box(rect.left, rect.bottom, rect.right, rect.top),
                    size=0.0,
                    generated=bool(pdfium_c.FPDFText_IsGenerated(raw, i) == 1),
                    invisible=bool(obj) and pdfium_c.FPDFTextObj_GetTextRenderMode(obj) == 3,
                    unmapped=bool(pdfium_c.FPDFText_HasUnicodeMapError(raw, i) == 1),
                    quarter=max(0, round(math.degrees(pdfium_c.FPDFText_GetCharAngle(raw, i)) / 90.0)) % 4,
                )
            )
            if not ch.generated and not disp.shows(ch.box):
                continue  # outside the CropBox: no viewer shows it (nor does the page's render)
            # the loose box spans the font's ascent to descent: the size as the eye sees it
            # (the nominal font size is often 1 with the size in the text matrix)
            ch.size = max(ch.loose[3] - ch.loose[1], ch.box[3] - ch.box[1], 0.1)
            layer.chars.append(ch)
        turn = _text_turn(raw, textpage.count_chars())
    finally:
        textpage.close()
    _page_objects(page, disp, layer)
    if turn:
        _turn(layer, turn)
    if layer.rotation == 180:
        _read_as_drawn(layer)
    return layer


#: on a page read as drawn (:func:`_read_as_drawn`), a gap wider than this many em between two
#: glyphs of a line is a word space (measured on the corpus: 95% of word gaps are wider than
#: 0.2, 99% of letter gaps narrower than 0.17)
_DRAWN_WORD_GAP = 0.18


def _read_as_drawn(layer: Layer) -> None:
    """PDFium orders a page's characters as the page is displayed; on a page displayed upside
    down (``/Rotate 180`` over text drawn upright) a line's characters come backwards or its
    words in reverse order (right to left in the layer), and the spaces PDFium adds between words
    land anywhere (inside a word, beside the wrong letter).  So each of its lines (between the
    line breaks it adds) is put in the order of its glyphs from left to right, and its spaces
    back at the gaps between them.  Read as they came, "Edgar" was "r agdE", one word per
    paragraph."""
    out: list[Char] = []
    run: list[Char] = []
    for c in [*layer.chars, None]:
        if c is not None and c.text not in "\r\n":
            run.append(c)
            continue
        glyphs = [g for g in run if not g.text.isspace()]
        if sum(g.quarter % 2 == 0 for g in glyphs) > len(glyphs) / 2:  # (a line set level: left to right)
            glyphs.sort(key=lambda g: (g.box[0] + g.box[2]) / 2)
        for g in glyphs:
            last = out[-1] if out else None
            if last is not None and not last.text.isspace() and last.text not in "\r\n":
                gap, em = g.box[0] - last.box[2], max(last.size, g.size, 0.1)
                if _DRAWN_WORD_GAP * em < gap and abs(g.box[3] - last.box[3]) < 0.5 * em:
                    space = (last.box[2], last.box[1], g.box[0], last.box[3])
                    out.append(replace(last, text=" ", box=space, loose=space, generated=True))
            out.append(g)
        if c is not None:
            out.append(c)
        run = []
    layer.chars = out


def _text_turn(raw: Any, count: int) -> int:
    """The clockwise turn (0/90/180/270) that makes most of the page's text run left to right
    (PDFium's character angle, read on up to 400 characters)."""
    import pypdfium2.raw as pdfium_c

    votes: dict[int, int] = {}
    for i in range(0, count, max(1, count // 400)):
        angle = pdfium_c.FPDFText_GetCharAngle(raw, i)
        if angle >= 0:
            quarter = round(math.degrees(angle) / 90.0) % 4
            votes[quarter] = votes.get(quarter, 0) + 1
    if not votes:
        return 0
    return (-90 * max(votes, key=lambda q: votes[q])) % 360


def _turn(layer: Layer, turn: int) -> None:
    """Turn the layer clockwise by ``turn`` degrees (its text then runs left to right); its
    :attr:`Layer.rotation` becomes the turn left from there to the displayed page."""
    from ..geometry import rotate_norm_box

    w, h = layer.width, layer.height
    nw, nh = (h, w) if turn in (90, 270) else (w, h)

    def move(b: Box) -> Box:
        n = rotate_norm_box((b[0] / w, b[1] / h, b[2] / w, b[3] / h), turn)
        return (n[0] * nw, n[1] * nh, n[2] * nw, n[3] * nh)

    for ch in layer.chars:
        ch.box, ch.loose = move(ch.box), move(ch.loose)
        ch.size = max(ch.loose[3] - ch.loose[1], ch.box[3] - ch.box[1], 0.1)
    layer.images = [move(b) for b in layer.images]
    layer.rules = [move(b) for b in layer.rules]
    layer.width, layer.height = nw, nh
    layer.rotation = (layer.rotation - turn) % 360


def _page_objects(page: Any, disp: Upright, layer: Layer) -> None:
    """Image bounds and thin path rectangles (ruling lines) of the page, top-level and in forms."""
    import pypdfium2.raw as pdfium_c

    for obj in page.get_objects(max_depth=1):
        if obj.type not in (pdfium_c.FPDF_PAGEOBJ_IMAGE, pdfium_c.FPDF_PAGEOBJ_PATH):
            continue
        try:
            x0, y0, x1, y1 = disp.box(*obj.get_bounds())
        except Exception:  # an object PDFium cannot measure is no image and no rule
            continue
        box = (max(x0, 0.0), max(y0, 0.0), min(x1, disp.w), min(y1, disp.h))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            layer.images.append(box)
        elif min(box[2] - box[0], box[3] - box[1]) <= 2.0 and max(box[2] - box[0], box[3] - box[1]) >= 8.0:
            layer.rules.append(box)


# -- characters -> lines ---------------------------------------------------------------------


def _clean(text: str) -> str:
    return "".join(_LIGATURES.get(ch, ch) for ch in text)


class _LineState:
    """The line being built: its characters, its band (top, bottom) and its last glyph."""

    def __init__(self) -> None:
        self.chars: list[Char] = []
        self.y0 = self.y1 = 0.0
        self.last: Char | None = None

    def add(self, ch: Char) -> None:
        self.chars.append(ch)
        if ch.text.isspace():
            return  # PDFium's own spaces have odd boxes
        if self.last is None:
            self.y0, self.y1 = ch.loose[1], ch.loose[3]
        else:
            self.y0, self.y1 = min(self.y0, ch.loose[1]), max(self.y1, ch.loose[3])
        self.last = ch

    def takes(self, ch: Char) -> bool:
        """Whether ``ch`` continues the line: it overlaps the line's band by half its own height
        (accents and sub/superscripts included) and has not gone back left (right-to-left
        scripts run leftwards)."""
        last = self.last
        if last is None or unicodedata.category(ch.text) in ("Mn", "Sk"):
            return True  # a spacing accent placed over the previous glyph
        h = max(ch.loose[3] - ch.loose[1], 1e-6)
        if min(self.y1, ch.loose[3]) - max(self.y0, ch.loose[1]) < 0.5 * min(h, self.y1 - self.y0):
            return False
        if unicodedata.bidirectional(ch.text) in ("R", "AL") or unicodedata.bidirectional(last.text) in ("R", "AL"):
            return True
        return ch.box[0] >= last.box[0] - 0.5 * max(last.size, 1.0)


#: glyphs in a row set a quarter turn from most of the page's (a margin note, a "Downloaded
#: from ..." stamp): one line in PDFium's order, not a fragment per horizontal band
SIDEWAYS_RUN = 4


def _sideways(chars: list[Char]) -> tuple[list[list[Char]], list[Char]]:
    """The runs of :data:`SIDEWAYS_RUN` or more glyphs set sideways, each a line (PDFium's
    order is its reading order), and the other characters."""
    ink = [i for i, c in enumerate(chars) if not c.text.isspace()]
    upright = Counter(chars[i].quarter % 2 for i in ink).most_common(1)[0][0] if ink else 0
    lines: list[list[Char]] = []
    taken: set[int] = set()
    run: list[int] = []
    for i in [*ink, -1]:
        if i >= 0 and chars[i].quarter % 2 != upright:
            run.append(i)
            continue
        if len(run) >= SIDEWAYS_RUN:
            taken.update(span := range(run[0], run[-1] + 1))
            lines.append([chars[k] for k in span if chars[k].text not in "\r\n"])
        run = []
    return lines, [c for k, c in enumerate(chars) if k not in taken] if taken else chars


def _split_lines(chars: list[Char]) -> list[list[Char]]:
    lines: list[list[Char]] = []
    cur = _LineState()
    for ch in chars:
        if ch.text in "\r\n":
            if cur.chars:
                lines.append(cur.chars)
            cur = _LineState()
            continue
        if cur.chars and not ch.text.isspace() and not cur.takes(ch):
            lines.append(cur.chars)
            cur = _LineState()
        if cur.chars or not ch.text.isspace():
            cur.add(ch)
    if cur.chars:
        lines.append(cur.chars)
    return lines


#: spacing accents as fonts draw them (a separate glyph over the letter) -> combining marks
_ACCENTS = {"\u00b4": "\u0301", "`": "\u0300", "\u02c6": "\u0302", "^": "\u0302", "\u02dc": "\u0303",
            "~": "\u0303", "\u00a8": "\u0308", "\u02c7": "\u030c", "\u00b8": "\u0327", "\u02d8": "\u0306",
            "\u02d9": "\u0307", "\u02da": "\u030a", "\u00af": "\u0304", "\u02dd": "\u030b", "\u02db": "\u0328"}  # fmt: skip


def _place_accents(line: list[Char]) -> list[Char]:
    """Spacing accents drawn over (or under) a letter of the line -> combined with it (``a`` +
    ``´`` -> ``á``), wherever PDFium put them in its order; the spaces it inserted around them go."""
    marks = [c for c in line if c.text in _ACCENTS and not c.generated]
    if not marks:
        return line
    letters = [c for c in line if c.text.isalpha()]
    taken: set[int] = set()
    for mark in marks:
        cx = (mark.box[0] + mark.box[2]) / 2
        over = [c for c in letters if c.box[0] - 0.5 <= cx <= c.box[2] + 0.5]
        if not over or (mark.box[3] - mark.box[1]) > 0.6 * mark.size:
            continue  # a free-standing accent (or an apostrophe-like glyph): keep it
        base = min(over, key=lambda c: abs((c.box[0] + c.box[2]) / 2 - cx))
        combined = unicodedata.normalize("NFC", base.text + _ACCENTS[mark.text])
        if len(combined) == 1:  # a letter Unicode has with that accent
            base.text = combined
            taken.add(id(mark))
    if not taken:
        return line
    out: list[Char] = []
    for k, c in enumerate(line):
        if id(c) in taken:
            continue
        near = (k > 0 and id(line[k - 1]) in taken) or (k + 1 < len(line) and id(line[k + 1]) in taken)
        if c.generated and near:
            continue
        out.append(c)
    return out


def _gaps(line: list[Char], least: float) -> list[tuple[float, float]]:
    ink = [c for c in line if not c.text.isspace()]
    return [
        (a.box[2], b.box[0])
        for a, b in itertools.pairwise(ink)
        if b.box[0] - a.box[2] > least * max(a.size, 1.0)
    ]


def _gutters(lines: list[list[Char]]) -> list[float]:
    """x positions (whole points) that the word gaps of at least :data:`GUTTER_LINES` lines
    cover, and of at least 60 % of the lines that reach across them: the gutter between two
    columns whose lines PDFium reads as one (in prose, word gaps fall anywhere)."""
    counts: dict[int, int] = {}
    for line in lines:
        for a, b in _gaps(line, 0.6):
            for x in range(int(a) + 1, int(b)):
                counts[x] = counts.get(x, 0) + 1
    cand = {x for x, n in counts.items() if n >= GUTTER_LINES}
    if not cand:
        return []
    across: dict[int, int] = dict.fromkeys(cand, 0)
    for line in lines:
        ink = [c for c in line if not c.text.isspace()]
        if ink:
            lo, hi = ink[0].box[0], max(c.box[2] for c in ink)
            for x in cand:
                if lo < x < hi:
                    across[x] += 1
    return [float(x) for x in cand if counts[x] >= 0.6 * across[x]]


def _segments(line: list[Char], gutters: frozenset[int] = frozenset()) -> list[list[Char]]:
    """A line cut at gaps wider than :data:`SEGMENT_GAP` em (spaces do not count as ink), or
    wider than 0.6 em that cover one of the page's ``gutters``.  An invisible layer (a scan's
    OCR, whose word boxes are loose) is cut at gaps of 2.5 em only, and a loosely justified line
    only at gutters: three or more word gaps, the widest at most 1.6 times the narrowest (table
    rows mix narrow gaps inside cells with wide ones between them), or at most 1.6 times the
    middle one and no wider than :data:`JUSTIFIED_GAP` em (a justified line with a pair set
    close, a kerned run, was cut at every other gap into one-word paragraphs)."""
    ink = [c for c in line if not c.text.isspace()]
    factor = 2.5 if sum(c.invisible for c in ink) > len(ink) / 2 else SEGMENT_GAP
    widths = sorted(b - a for a, b in _gaps(line, 0.15))
    if len(widths) >= 3:
        em = max((c.size for c in ink), default=1.0)
        middle = widths[len(widths) // 2]
        if widths[-1] <= 1.6 * widths[0] or (widths[-1] <= 1.6 * middle and widths[-1] <= JUSTIFIED_GAP * em):
            factor = float("inf")
    segs: list[list[Char]] = [[]]
    last: Char | None = None
    for ch in line:
        if ch.text.isspace():
            if segs[-1]:
                segs[-1].append(ch)
            continue
        if last is not None:
            gap = ch.box[0] - last.box[2]
            wide = gap > factor * max(last.size, ch.size, 1.0)
            if wide or (gap > 0.6 * max(last.size, 1.0) and any(
                x in gutters for x in range(int(last.box[2]) + 1, int(ch.box[0]))
            )):
                segs.append([])
        segs[-1].append(ch)
        last = ch
    return [s for s in segs if any(not c.text.isspace() for c in s)]


def _words(seg: list[Char]) -> list[list[Char]]:
    words: list[list[Char]] = [[]]
    for ch in seg:
        if ch.text.isspace():
            words.append([])
            continue
        prev = words[-1][-1] if words[-1] else None
        if prev is not None and ch.box[0] - prev.box[2] > _WORD_GAP * max(prev.size, 1.0):
            words.append([])
        words[-1].append(ch)
    return [w for w in words if w]


def _union(boxes: list[Box], scale: float) -> list[float]:
    return [
        round(min(b[0] for b in boxes) * scale, 3),
        round(min(b[1] for b in boxes) * scale, 3),
        round(max(b[2] for b in boxes) * scale, 3),
        round(max(b[3] for b in boxes) * scale, 3),
    ]


def _word_text(word: list[Char], last_of_line: bool) -> str:
    text = _clean("".join(c.text for c in word))
    if last_of_line and text.endswith("\x02"):
        text = text[:-1] + "-"  # PDFium's marker of a hyphen at a line break
    return text.replace("\x02", "").replace("\u00ad", "")


def layer_lines(layer: Layer, scale: float = 1.0) -> list[dict[str, Any]]:
    """The layer's line dicts (see the module docstring), boxes in points times ``scale``;
    invisible characters are included (they are the text of a scan's OCR layer)."""
    out: list[dict[str, Any]] = []
    turned, rest = _sideways(layer.chars)
    lines = [_place_accents(line) for line in _split_lines(rest)] + turned
    gutters = frozenset(int(x) for x in _gutters(lines))
    for line in lines:
        for seg in _segments(line, gutters):
            words = _words(seg)
            wdicts: list[dict[str, Any]] = []
            for k, w in enumerate(words):
                text = _word_text(w, k == len(words) - 1)
                if text:
                    wdicts.append({"text": text, "score": 1.0, "box": _union([c.box for c in w], scale)})
            if not wdicts:
                continue
            glyphs = [c for w in words for c in w]
            sizes = sorted(c.size for c in glyphs)
            box, det, cap = _union([c.box for c in glyphs], scale), _union([c.loose for c in glyphs], scale), {}
            if len(glyphs) > 2 and glyphs[0].text.isalpha() and glyphs[0].size > 2 * sizes[len(sizes) // 2]:
                # a drop cap: the line as tall as its other letters (it reached down over the lines beside it)
                box[1::2], det[1::2] = _union([c.box for c in glyphs[1:]], scale)[1::2], _union([c.loose for c in glyphs[1:]], scale)[1::2]
                cap = {"cap": _union([glyphs[0].box], scale)}  # (the lines beside it go on its paragraph)
            out.append(
                {
                    "text": " ".join(w["text"] for w in wdicts),
                    "score": 1.0,
                    "box": box,
                    "det_box": det,
                    **cap,
                    "words": wdicts,
                    "size": round(sizes[len(sizes) // 2] * scale, 3),
                }
            )
    return out
