"""Layout: recognised text lines -> paragraphs, headings, captions and tables in reading order.

RapidOCR (the embedded ``local`` backend) returns text *lines* with boxes in pixels of the image
that was sent — no paragraphs, headings, columns or tables.  :func:`layout_lines` builds those from
geometry alone, in stages:

1. **Font size** (:mod:`.lines`).  Each line's font size is estimated from its box width and its
   text (a generic proportional-font width table), which separates a 14 pt heading from 11 pt body
   text even where the detector gives both boxes the same height.  The body size is the median
   over all text, weighted by characters.
2. **Tables** (:mod:`.tables`).  Lines are grouped into rows (vertical overlap).  Two or more
   consecutive rows of three or more separate segments, none wider than 45 % of the row, form a
   table (neighbouring rows of two or more cells that each sit in one of its columns join it:
   empty cells); cells are assigned to columns by x-overlap and the table becomes one ``table``
   block rendered as a markdown table (first row as header, ``|`` in cells escaped).  Two text
   columns have two segments per row and are *not* a table; a two-column table is read as label /
   value rows (see 3), and a table whose cells wrap over several lines is read as text (known
   limits).
3. **Reading order** (:mod:`.reading_order`).  A recursive XY-cut on the line boxes: a vertical
   whitespace corridor at least 0.6 body em wide splits a region into columns (left to right),
   except that two neighbouring groups of label / value pairs (an infobox, a form: lines paired
   row by row, one group ragged) are read row by row.  When items that span the corridor (a
   full-width heading over two columns) block it, the corridor is found among the narrow lines
   alone and the region is cut into horizontal sections at the spanning items.  Without a
   corridor the region is read in rows, top to bottom, left to right.
4. **Paragraphs** (here).  Consecutive lines in reading order form a paragraph while they stay in
   the same column, below each other, with a vertical gap under 0.6 em, a similar font size and a
   common left edge; a short line ending a sentence also ends its paragraph.  Hyphenated line ends
   (``tran-`` + ``scription``) are joined.
5. **Headings** (here).  A paragraph of short lines (at most 14 words, no final period) set
   clearly larger than the body (>= 1.18x) is a ``section_header`` (``## text``); on page 1 the
   largest of them, when >= 1.5x the body, is the ``title`` (``# text``).  ``Figure N``/``Table N``
   paragraphs are ``caption`` blocks.

Blocks: one :class:`RawBlock` per paragraph/table, with ``line`` children, each with ``word``
children; boxes in the lines' space (pixels of the image sent).  The markdown is the paragraphs
separated by blank lines, without the page furniture (:func:`lay_out` gives it with and without).

>>> from ocrclient.engines.lines import Line
>>> md, blocks, meta = layout_lines([Line("Hello world", (10.0, 10.0, 120.0, 30.0), 0.9)])
>>> md, blocks[0].type, meta["lines"]
('Hello world', 'text', 1)
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..dialects.base import RawBlock
from ..models import page_markdowns
from .furniture import mark_furniture
from .lines import Line, estimate_size, union, weighted_median
from .reading_order import Item, reading_order
from .tables import Table, find_tables, table_markdown

__all__ = ["HEADING_RATIO", "TITLE_RATIO", "PageLayout", "lay_out", "layout_lines"]

HEADING_RATIO = 1.18
TITLE_RATIO = 1.5
_CAPTION = re.compile(
    r"^(figure|fig\.|table|chart|plate)\s*[0-9ivxlc]+\s*[.:\u2013\u2014-]\s", re.IGNORECASE
)
_SENTENCE_END = (".", "!", "?", ":", ";")
_FURNITURE = ("page_header", "page_footer")


def _join_lines(texts: Sequence[str]) -> str:
    out = ""
    for t in texts:
        t = t.strip()
        if not out:
            out = t
        elif len(out) > 1 and out.endswith("-") and out[-2].isalpha() and t[:1].islower():
            out = out[:-1] + t
        else:
            out = f"{out} {t}"
    return out


def _same_size(a: Line, b: Line) -> bool:
    lo, hi = sorted((a.size, b.size))
    return hi <= lo * 1.15


def _starts_new_paragraph(prev: Line, cur: Line, para: Sequence[Line], em: float) -> bool:
    if not _same_size(prev, cur):
        return True
    if cur.y0 < prev.cy:  # went up: a new column or section
        return True
    if cur.y0 - prev.y1 > 0.6 * max(em, min(prev.size, cur.size)):  # leading grows with size
        return True
    if min(prev.x1, cur.x1) - max(prev.x0, cur.x0) <= 0:
        return True
    if abs(cur.x0 - prev.x0) > 1.5 * em and not _beside_cap(para[0], cur, em):
        first_line_indent = len(para) == 1 and prev.x0 > cur.x0
        if not first_line_indent:
            return True
    width = max(ln.x1 for ln in para) - min(ln.x0 for ln in para)
    short = len(para) > 1 and prev.x1 < min(ln.x0 for ln in para) + 0.8 * width
    return short and prev.text.rstrip().endswith(_SENTENCE_END)


def _beside_cap(first: Line, cur: Line, em: float) -> bool:
    """Whether ``cur`` goes on the paragraph that ``first`` opens with a drop cap: a line beside
    the cap starts at its right edge, the first line below it back at the paragraph's left."""
    if first.cap is None:
        return False
    if abs(cur.x0 - first.x0) <= 1.5 * em:  # below the cap: back at the left
        return True
    return cur.y0 < first.cap[3] and abs(cur.x0 - first.cap[2]) <= 1.5 * em


def _is_heading_text(text: str) -> bool:
    t = text.strip()
    return 0 < len(t) <= 120 and len(t.split()) <= 14 and not t.endswith(".")


def _word_blocks(line: Line) -> list[RawBlock]:
    out = []
    for w in line.words:
        box = w.get("box")
        wbox = (float(box[0]), float(box[1]), float(box[2]), float(box[3])) if box else None
        out.append(
            RawBlock(
                type="word",
                text=str(w.get("text", "")),
                box=wbox,
                confidence=float(w["score"]) if w.get("score") is not None else None,
            )
        )
    return out


def _line_block(line: Line) -> RawBlock:
    return RawBlock(
        type="line",
        text=line.text,
        box=line.box,
        confidence=line.score,
        children=_word_blocks(line),
        source=line.source,
    )


def _confidence(lines: Sequence[Line]) -> float | None:
    weight = sum(max(len(ln.text), 1) for ln in lines)
    if not weight:
        return None
    return round(sum(ln.score * max(len(ln.text), 1) for ln in lines) / weight, 4)


def layout_lines(
    lines: Sequence[Line],
    page_number: int = 1,
    *,
    page_size: tuple[float, float] | None = None,
    repeated: Collection[str] = (),
    keep_furniture: bool = False,
    source: str | None = None,
    running: bool = True,
) -> tuple[str, list[RawBlock], dict[str, Any]]:
    """Lines -> (markdown, blocks, meta): :func:`lay_out`'s, the markdown with the page
    furniture when ``keep_furniture``."""
    laid = lay_out(lines, page_number, page_size=page_size, repeated=repeated, source=source, running=running)
    markdown = laid.furniture_markdown if keep_furniture and laid.furniture_markdown is not None else laid.markdown
    return markdown, laid.blocks, laid.meta


@dataclass
class PageLayout:
    """A page laid out: its markdown without the page furniture, and with it when that differs
    (``None``: the same), its blocks (furniture typed ``page_header`` / ``page_footer``), meta."""

    markdown: str
    furniture_markdown: str | None
    blocks: list[RawBlock]
    meta: dict[str, Any]


def lay_out(
    lines: Sequence[Line],
    page_number: int = 1,
    *,
    page_size: tuple[float, float] | None = None,
    repeated: Collection[str] = (),
    source: str | None = None,
    running: bool = True,
) -> PageLayout:
    """Lines -> their layout.  See the module docstring for the rules.

    ``page_size`` (in the lines' space) lets page furniture be found (:mod:`.furniture`, with
    ``repeated``: the neighbouring pages' folded band lines, and ``running``: ``False`` for a
    standalone image, whose only furniture is its page number); furniture blocks are typed
    ``page_header`` / ``page_footer`` and left out of the markdown (``furniture_markdown`` has
    them).  ``source`` (``"text-layer"`` or ``"ocr"``) is set on every block.  A line whose
    font size is known (``Line.size`` set: the text layer's) keeps it."""
    if not lines:
        return PageLayout("", None, [], {})
    for ln in lines:
        if ln.size <= 0:
            ln.size = estimate_size(ln.text, ln.lbox)
    body = weighted_median([(ln.size, float(max(len(ln.text), 1))) for ln in lines])
    em = max(body, 4.0)
    tables, rest = find_tables(lines, em)
    items: list[Item] = [*rest, *tables]
    groups = _paragraphs(reading_order(items, em), em)
    kinds = _classify(groups, body, page_number)
    if page_size is not None:
        paras = [g if isinstance(g, list) else None for g in groups]
        kinds = mark_furniture(paras, kinds, page_size, em, repeated, running=running)
    markdown, furniture_markdown, blocks = _blocks(groups, kinds)
    if source is not None:
        _tag(blocks, source)
    meta = {"body_size_px": round(body, 2), "lines": len(lines), "tables": len(tables)}
    furniture = sum(k in _FURNITURE for k in kinds)
    if furniture:
        meta["furniture"] = furniture
    return PageLayout(markdown, furniture_markdown, blocks, meta)


def _tag(blocks: Sequence[RawBlock], source: str) -> None:
    """Set ``source`` on blocks that have none: a block's own lines decide (all from the text
    layer: ``text-layer``; any OCR'd: ``ocr``), else the page's ``source``."""
    for b in blocks:
        _tag(b.children, b.source or source)
        if b.source is None:
            own = {c.source for c in b.children if c.type == "line"}
            b.source = own.pop() if len(own) == 1 else ("ocr" if own else source)


def _paragraphs(ordered: Sequence[Item], em: float) -> list[list[Line] | Table]:
    """Items in reading order -> paragraphs (lists of lines) and tables."""
    groups: list[list[Line] | Table] = []
    for it in ordered:
        if isinstance(it, Table):
            groups.append(it)
            continue
        last = groups[-1] if groups else None
        if isinstance(last, list) and not _starts_new_paragraph(last[-1], it, last, em):
            last.append(it)
        else:
            groups.append([it])
    return groups


def _classify(groups: Sequence[list[Line] | Table], body: float, page_number: int) -> list[str]:
    """Each group's block type: table, section_header, caption or text; on page 1 the largest
    heading, set large enough, is the title."""
    kinds: list[str] = []
    for g in groups:
        if isinstance(g, Table):
            kinds.append("table")
            continue
        size = statistics.median(ln.size for ln in g)
        text = _join_lines([ln.text for ln in g])
        if size >= HEADING_RATIO * body and len(g) <= 3 and _is_heading_text(text):
            kinds.append("section_header")
        elif _CAPTION.match(text) and len(g) <= 4:
            kinds.append("caption")
        else:
            kinds.append("text")
    if page_number == 1:
        heads = [
            (statistics.median(ln.size for ln in g), k)
            for k, g in enumerate(groups)
            if kinds[k] == "section_header" and isinstance(g, list)
        ]
        if heads:
            size, k = max(heads)
            if size >= TITLE_RATIO * body:
                kinds[k] = "title"
    return kinds


def _blocks(groups: Sequence[list[Line] | Table], kinds: Sequence[str]) -> tuple[str, str | None, list[RawBlock]]:
    """The page's markdown without its furniture, with it (``None``: no furniture in it) and
    its blocks, one per group."""
    blocks: list[RawBlock] = []
    parts: list[tuple[str, bool]] = []  # (markdown, is page furniture)
    for g, kind in zip(groups, kinds, strict=True):
        if isinstance(g, Table):
            md = table_markdown(g)
            children = [_line_block(ln) for ln in g.lines]
            blocks.append(
                RawBlock(
                    type="table",
                    text=md,
                    box=g.out_box,
                    confidence=_confidence(g.lines),
                    children=children,
                )
            )
            parts.append((md, False))
            continue
        text = _join_lines([ln.text for ln in g])
        blocks.append(
            RawBlock(
                type=kind,
                text=text,
                box=union(ln.box for ln in g),
                confidence=_confidence(g),
                children=[_line_block(ln) for ln in g],
            )
        )
        prefix = {"title": "# ", "section_header": "## "}.get(kind, "")
        parts.append((prefix + text, kind in _FURNITURE))
    return *page_markdowns(parts), blocks
