"""Page furniture: running headers, footers, page numbers and margin stamps, found by position.

:func:`mark_furniture` retypes paragraphs of a laid-out page as ``page_header`` / ``page_footer``
(the layout then keeps them out of the markdown unless asked, as olmOCR and Chandra do).  A
paragraph is furniture when it is short (at most :data:`MAX_LINES` lines and :data:`MAX_WORDS`
words, not a heading, caption or table) and lies in the top or bottom :data:`BAND` of the page,
and one of these holds:

* **page number or stamp**: its text is a page number (``12``, ``- 12 -``, ``Page 3 of 9``,
  ``xiv``) or a stamp (``Downloaded from ...``, ``Download date``, ``Published by``, ``arXiv:``,
  ``doi:``, ``Vol. 8 | Issue 3``, ``©``, ``www.``/``http``, ``All rights reserved``);
* **repeated**: one of its lines, digits folded (:func:`ocrclient.engines.text_layer.fold`),
  appears in the same bands of the neighbouring pages (the text-layer path reads them);
* **apart**: it is the outermost content of its band — nothing else lies above it (top) or
  below it (bottom) — and at least :data:`GAP` body em away from the rest of the page (at the
  top in a font at most 1.3 times the body's, not a title), in a font of another size than the
  body's (more than :data:`SAME_SIZE` apart): where running heads and footers sit on a single
  page.  A line set in the body's own font is the page's text, however far it stands: a
  letter's salutation at the top, the amount due at the bottom, a form's last answer were
  taken for a running head and footer and left out of the markdown.  Only a page of a
  document counts (``running``): a standalone image (a receipt, a screenshot, a photographed
  page) has no running heads to tell apart by position, and its store name and TOTAL line
  are its text; there only page numbers are furniture.  On a page whose paragraphs stand that far apart anyway (its ordinary
  gap, :func:`ordinary_gap`, is :data:`GAP` em or more: a page set double-spaced, each line a
  paragraph of its own), a paragraph wider than half the page's widest must stand
  :data:`SPACED` times that gap apart, and a bottom line that carries on the sentence of the
  line above it (which ends without a full stop; it starts in lower case) is body text: the
  first line and the last of such a page were taken for a running head and footer and left out
  of the markdown.  Furniture already found does not count as the rest of the page, so a
  footer of two lines is found from the bottom up.

A page number that is the outermost content of the page (``apart``) is furniture anywhere in
the outer :data:`NUMBER_BAND` (a page whose text ends early).  A short paragraph in the left or right :data:`SIDE` of the page that is a stamp, or a vertical
run (taller than wide: the arXiv identifier, a "Downloaded from" note set sideways), is a
``page_footer`` too.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Collection, Sequence

from .lines import Box, Line, union
from .text_layer import Upright, open_page, open_pdf, text_lock

__all__ = [
    "BAND",
    "GAP",
    "MAX_LINES",
    "MAX_WORDS",
    "NUMBER_BAND",
    "SAME_SIZE",
    "SIDE",
    "SPACED",
    "band_lines",
    "fold",
    "is_stamp",
    "mark_furniture",
    "ordinary_gap",
]

#: the share of the page height at the top and at the bottom where running heads live
BAND = 0.12
#: a page number counts as furniture this far from the edge when nothing lies beyond it
NUMBER_BAND = 0.4
SIDE = 0.08
GAP = 0.6
#: how many times the ordinary gap between paragraphs of a double-spaced page (:func:`ordinary_gap`)
#: sets a line as wide as its body apart
SPACED = 1.5
#: a paragraph whose font is within this share of the body's is set in the body's font
SAME_SIZE = 0.1
MAX_LINES = 3
MAX_WORDS = 25

_PAGE_NUMBER = re.compile(
    r"^[\s\-\u2013\u2014\[\(|]*(page|p\.|seite|pág\.?)?\s*([0-9]{1,4}|[ivxlcdm]{1,7})"
    r"(\s*(of|/|de|von)\s*[0-9]{1,4})?[\s\-\u2013\u2014\]\)|]*$",
    re.IGNORECASE,
)
_STAMP = re.compile(
    r"download(ed)?\s+(from|date|by)|published\s+(by|online)|arxiv:|\bdoi\b|\bvol(\.|ume)\s*\d|"
    r"\bissue\s*\d|©|\(c\)\s*\d{4}|copyright|all rights reserved|www\.|https?://|"
    r"retrieved\s+(from|on)|accessed\s+on|licen[sc]ed\s+(to|under)|for personal use|"
    r"\bpp?\.\s*\d+\s*[-\u2013]\s*\d+|\bjournal\b|proceedings\b",
    re.IGNORECASE,
)


def is_stamp(text: str) -> bool:
    """Whether ``text`` is a page number or a stamp (see the module docstring)."""
    t = " ".join(text.split())
    return bool(_PAGE_NUMBER.match(t) or _STAMP.search(t))


def _short(lines: Sequence[Line]) -> bool:
    words = sum(len(ln.text.split()) for ln in lines)
    return len(lines) <= MAX_LINES and words <= MAX_WORDS


def ordinary_gap(boxes: Sequence[Box | None]) -> float:
    """The page's ordinary gap between a paragraph and the next one below it: the median, over
    the paragraphs with one below them (overlapping them across), of the gap to the nearest;
    0 on a page with fewer than three such gaps."""
    gaps: list[float] = []
    placed = sorted((b for b in boxes if b is not None), key=lambda b: b[1])
    tops = [b[1] for b in placed]
    for a in placed:
        # by their tops, the first box below ``a`` that overlaps it across is the nearest
        for b in placed[bisect.bisect_left(tops, a[3]) :]:
            if b is not a and min(a[2], b[2]) > max(a[0], b[0]):
                gaps.append(b[1] - a[3])
                break
    if len(gaps) < 3:
        return 0.0
    gaps.sort()
    return gaps[len(gaps) // 2]


def _carries_on(groups: Sequence[Sequence[Line] | None], boxes: Sequence[Box | None], i: int) -> bool:
    """Paragraph ``i`` carries on the sentence of the nearest paragraph above it (overlapping it
    across): that one ends without a full stop, ``i`` starts in lower case."""
    box, group = boxes[i], groups[i]
    assert box is not None and group
    above = [
        (b[3], j)
        for j, b in enumerate(boxes)
        if b is not None and j != i and b[3] <= box[1] and min(b[2], box[2]) > max(b[0], box[0])
    ]
    if not above:
        return False
    before = groups[max(above)[1]]
    if not before:
        return False
    end, start = before[-1].text.rstrip(), group[0].text.lstrip()
    return bool(end and start) and end[-1] not in ".!?:;" and start[0].islower()


def mark_furniture(
    groups: Sequence[Sequence[Line] | None],
    kinds: list[str],
    page: tuple[float, float],
    em: float,
    repeated: Collection[str] = (),
    *,
    running: bool = True,
) -> list[str]:
    """``kinds`` with the furniture among ``groups`` retyped (see the module docstring).
    ``groups`` are the page's paragraphs (``None`` for a table), ``page`` its size and ``em`` the
    body font size, both in the lines' space; ``repeated`` the neighbours' folded band lines;
    ``running`` whether the page is one of a document's (``False``: a standalone image, whose
    only furniture is its page number)."""
    width, height = page
    out = list(kinds)
    if width <= 0 or height <= 0:
        return out
    boxes: list[Box | None] = [union(ln.lbox for ln in g) if g else None for g in groups]
    spacing: float | None = None  # (ordinary_gap, measured once a paragraph needs it)
    widest = max((b[2] - b[0] for b in boxes if b is not None), default=0.0)
    cands = [
        i
        for i, g in enumerate(groups)
        if g and kinds[i] in ("text", "section_header", "title") and _short(g)
    ]
    for i in cands * 2:  # twice: a footer of two lines is found from its lower line up
        if out[i] != kinds[i]:
            continue
        g, box = groups[i], boxes[i]
        assert g is not None and box is not None
        x0, y0, x1, y1 = box
        text = " ".join(ln.text for ln in g)
        top, bottom = y1 <= BAND * height, y0 >= (1 - BAND) * height
        number = bool(_PAGE_NUMBER.match(" ".join(text.split())))
        if not running and not number:
            continue
        side = x1 <= SIDE * width or x0 >= (1 - SIDE) * width
        if side and (is_stamp(text) or (y1 - y0) > 3 * (x1 - x0)) and not (top or bottom):
            out[i] = "page_footer"
            continue
        outermost = False  # (a number out of the band: nothing may stand beyond it)
        if not (top or bottom):
            # a page number below (above) everything else, on a page whose text ends early
            top, bottom = number and y1 <= NUMBER_BAND * height, number and y0 >= (1 - NUMBER_BAND) * height
            if not (top or bottom):
                continue
            outermost = True
        elif is_stamp(text) or any(fold(ln.text) in repeated for ln in g):
            out[i] = "page_header" if top else "page_footer"
            continue
        # a big title at the top of a page is no running head; at the bottom, a logo line may be
        size = max(ln.size for ln in g)
        if top and (kinds[i] not in ("text", "section_header") or size > 1.3 * em):
            continue
        if not number and abs(size - em) <= SAME_SIZE * em:
            continue  # set in the body's font: the page's own text
        others = [b for j, b in enumerate(boxes) if b is not None and j != i and out[j] == kinds[j]]
        if len(others) < 2:
            continue  # a page of a line or two has no furniture to tell apart
        if bottom and _carries_on(groups, boxes, i):
            continue
        if spacing is None:
            spacing = ordinary_gap(boxes)
        gap = GAP * em
        if spacing >= gap and (x1 - x0) > 0.5 * widest:
            gap = SPACED * spacing  # a line of the page's body, double-spaced
        if top:
            apart = all(b[1] >= y1 + gap or (not outermost and b[3] <= y1 + 0.5 * em) for b in others)
        else:
            apart = all(b[3] <= y0 - gap or (not outermost and b[1] >= y0 - 0.5 * em) for b in others)
        if apart:
            out[i] = "page_header" if top else "page_footer"
    return out


# -- the neighbours' bands (a PDF's pages next to one, read for their furniture) ---------------


def fold(text: str) -> str:
    """A line of text as furniture is compared: lower case, digits as ``#``, spaces collapsed."""
    return " ".join("".join("#" if c.isdigit() else c for c in text.lower()).split())


def band_lines(path: str, index: int, neighbours: int = 2, *, password: str | None = None) -> list[str]:
    """The folded lines (:func:`fold`) in the top and bottom :data:`BAND` of up to
    ``neighbours`` pages next to page ``index`` (the previous and next first), sorted, unique.
    A page PDFium cannot load is passed over for the next nearest: it says nothing of the
    others' furniture (and page ``index``'s own layer stays readable without it)."""
    import pypdfium2 as pdfium

    out: set[str] = set()
    with text_lock():
        n = len(open_pdf(path, password))
        order = sorted((i for i in range(n) if i != index), key=lambda i: (abs(i - index), i))
        read = 0
        for i in order:
            if read == neighbours:
                break
            try:
                page = open_page(path, i, password)
            except pdfium.PdfiumError:
                continue
            read += 1
            try:
                up = Upright(page)
                left, bottom, right, top = up.left, up.bottom, up.left + up.w, up.top
                band = BAND * (top - bottom)
                textpage = page.get_textpage()
                try:
                    for lo, hi in ((top - band, top), (bottom, bottom + band)):
                        text = textpage.get_text_bounded(left=left, bottom=lo, right=right, top=hi)
                        out.update(f for ln in text.splitlines() if (f := fold(ln)))
                finally:
                    textpage.close()
            finally:
                page.close()
    return sorted(out)
