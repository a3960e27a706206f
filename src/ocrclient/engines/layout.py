"""RapidOCR's dialect: send the page image, turn recognised text lines into a layout.

RapidOCR (the embedded ``local`` backend) returns text *lines* with boxes in pixels of the image
that was sent — no paragraphs, headings, columns or tables.  :meth:`RapidOCRDialect.parse` builds
those from geometry alone:

1. **Font size.**  Each line's font size is estimated from its box width and its text (a generic
   proportional-font width table), which separates a 14 pt heading from 11 pt body text even where
   the detector gives both boxes the same height.  The body size is the median over all text,
   weighted by characters.
2. **Tables.**  Lines are grouped into rows (vertical overlap).  Two or more consecutive rows of
   three or more separate segments, none wider than 45 % of the row, form a table (neighbouring
   rows of two or more cells that each sit in one of its columns join it: empty cells); cells are
   assigned to columns by x-overlap and the table becomes one ``table`` block rendered as a
   markdown table (first row as header, ``|`` in cells escaped).  Two text columns have two
   segments per row and are *not* a table; a two-column table is read as label / value rows (see
   3), and a table whose cells wrap over several lines is read as text (known limits).
3. **Reading order.**  A recursive XY-cut on the line boxes: a vertical whitespace corridor at least
   0.6 body em wide splits a region into columns (left to right), except that two neighbouring
   groups of label / value pairs (an infobox, a form: lines paired row by row, one group ragged)
   are read row by row.  When items that span the corridor
   (a full-width heading over two columns) block it, the corridor is found among the narrow lines
   alone and the region is cut into horizontal sections at the spanning items.  Without a corridor
   the region is read in rows, top to bottom, left to right.
4. **Paragraphs.**  Consecutive lines in reading order form a paragraph while they stay in the same
   column, below each other, with a vertical gap under 0.6 em, a similar font size and a common left
   edge; a short line ending a sentence also ends its paragraph.  Hyphenated line ends
   (``tran-`` + ``scription``) are joined.
5. **Headings.**  A paragraph of short lines (at most 14 words, no final period) set clearly larger
   than the body (>= 1.18x) is a ``section_header`` (``## text``); on page 1 the largest of them,
   when >= 1.5x the body, is the ``title`` (``# text``).  ``Figure N``/``Table N`` paragraphs are
   ``caption`` blocks.

Blocks: one :class:`RawBlock` per paragraph/table, with ``line`` children, each with ``word``
children; boxes in :meth:`CoordSpace.sent_pixels`.  The markdown is the paragraphs separated by blank
lines.  A page without any text gives ``markdown=""`` and the warning ``"no text found"``.

Example::

    >>> from ocrclient.dialects.rapidocr import RapidOCRDialect
    >>> d = RapidOCRDialect()
    >>> d.render.dpi, d.render.format
    (150, 'png')
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..geometry import CoordSpace
from ..imaging import RenderSpec
from ..transports.base import ModelReply, ModelRequest
from ..dialects.base import Attempt, PageContent, RawBlock

if TYPE_CHECKING:
    from ..config import BackendConfig
    from ..pages import PageImage

__all__ = ["RapidOCRDialect"]

Box = tuple[float, float, float, float]

# Generic advance widths (em) of a proportional sans font for ASCII 32..126 (Helvetica's, which
# is close to Arial, DejaVu Sans and most text faces); other characters count 0.55 em, and wide
# (CJK) characters 1 em.  Only ratios between lines of the same page matter.
_WIDTHS = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
]  # fmt: skip

HEADING_RATIO = 1.18
TITLE_RATIO = 1.5
_CAPTION = re.compile(
    r"^(figure|fig\.|table|chart|plate)\s*[0-9ivxlc]+\s*[.:\u2013\u2014-]\s", re.IGNORECASE
)
_SENTENCE_END = (".", "!", "?", ":", ";")


def _em_width(text: str) -> float:
    total = 0.0
    for ch in text:
        code = ord(ch)
        if 32 <= code <= 126:
            total += _WIDTHS[code - 32] / 1000.0
        elif code >= 0x1100 and (0x1100 <= code <= 0x115F or 0x2E80 <= code <= 0xFFDC):
            total += 1.0
        else:
            total += 0.55
    return total


@dataclass
class _Line:
    """A recognised line: ``box`` is what is reported, ``lbox`` what the layout rules measure (the
    detector's box, padded to the line height, when the transport sends it as ``det_box``: ink-tight
    boxes vary with ascenders and descenders, which would upset gap and size rules)."""

    text: str
    box: Box
    score: float
    words: list[dict[str, Any]] = field(default_factory=list)
    lbox: Box = (0.0, 0.0, 0.0, 0.0)
    size: float = 0.0  # estimated font size (em) in pixels

    def __post_init__(self) -> None:
        if self.lbox == (0.0, 0.0, 0.0, 0.0):
            self.lbox = self.box

    @property
    def x0(self) -> float:
        return self.lbox[0]

    @property
    def y0(self) -> float:
        return self.lbox[1]

    @property
    def x1(self) -> float:
        return self.lbox[2]

    @property
    def y1(self) -> float:
        return self.lbox[3]

    @property
    def w(self) -> float:
        return self.lbox[2] - self.lbox[0]

    @property
    def h(self) -> float:
        return self.lbox[3] - self.lbox[1]

    @property
    def cy(self) -> float:
        return (self.lbox[1] + self.lbox[3]) / 2


@dataclass
class _Table:
    rows: list[list[_Line]]

    @property
    def lines(self) -> list[_Line]:
        return [ln for row in self.rows for ln in row]

    @property
    def box(self) -> Box:
        return _union(ln.lbox for ln in self.lines)

    @property
    def out_box(self) -> Box:
        return _union(ln.box for ln in self.lines)

    @property
    def x0(self) -> float:
        return self.box[0]

    @property
    def y0(self) -> float:
        return self.box[1]

    @property
    def x1(self) -> float:
        return self.box[2]

    @property
    def y1(self) -> float:
        return self.box[3]

    @property
    def w(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2


_Item = _Line | _Table


def _union(boxes: Iterable[Box]) -> Box:
    bs = list(boxes)
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def _estimate_size(text: str, box: Box) -> float:
    w, h = box[2] - box[0], box[3] - box[1]
    em = _em_width(text.strip())
    if len(text.strip()) < 4 or em < 1.5:
        return h / 1.3  # too little text to trust the width
    # the detector pads a box by a fraction of its height on each side
    return max(w - 0.25 * h, 1.0) / em


def _weighted_median(values: Sequence[tuple[float, float]]) -> float:
    """Median of ``(value, weight)`` pairs."""
    pairs = sorted(values)
    total = sum(w for _, w in pairs)
    acc = 0.0
    for v, w in pairs:
        acc += w
        if acc >= total / 2:
            return v
    return pairs[-1][0]


# ---------------------------------------------------------------------------------------------
# rows and tables
# ---------------------------------------------------------------------------------------------


def _rows(lines: Sequence[_Line]) -> list[list[_Line]]:
    """Group lines whose vertical extents overlap by at least half the smaller height."""
    rows: list[list[_Line]] = []
    spans: list[tuple[float, float]] = []
    for ln in sorted(lines, key=lambda ln: (ln.cy, ln.x0)):
        if rows:
            top, bot = spans[-1]
            overlap = min(bot, ln.y1) - max(top, ln.y0)
            ref = min(ln.h, statistics.median(x.h for x in rows[-1]))
            if overlap >= 0.5 * ref:
                rows[-1].append(ln)
                spans[-1] = (min(top, ln.y0), max(bot, ln.y1))
                continue
        rows.append([ln])
        spans.append((ln.y0, ln.y1))
    return [sorted(r, key=lambda ln: ln.x0) for r in rows]


def _segments_apart(row: Sequence[_Line], min_gap: float) -> bool:
    return all(b.x0 - a.x1 >= min_gap for a, b in itertools.pairwise(row))


def _x_overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return min(a[1], b[1]) - max(a[0], b[0]) > 0


def _find_tables(lines: Sequence[_Line], em: float) -> tuple[list[_Table], list[_Line]]:
    rows = _rows(lines)
    cand = [
        len(r) >= 3
        and _segments_apart(r, 0.5 * em)
        # a line of prose beside a sidebar is not a cell
        and max(ln.w for ln in r) <= 0.45 * (r[-1].x1 - r[0].x0)
        for r in rows
    ]
    tables: list[_Table] = []
    used: set[int] = set()
    i = 0
    while i < len(rows):
        if not cand[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(rows) and cand[j + 1] and rows[j + 1][0].y0 - rows[j][-1].y1 < 3 * em:
            j += 1
        if j > i:
            members = list(range(i, j + 1))
            cols = _table_columns(_Table([rows[k] for k in members]))

            def in_one_column(ln: _Line, cols: list[tuple[float, float]] = cols) -> bool:
                return sum(_x_overlaps((ln.x0, ln.x1), c) for c in cols) == 1

            # absorb neighbouring rows of 2+ cells that each sit in one of the table's columns
            # (rows with empty cells); lines of a text column would straddle several
            for step, start in ((-1, i - 1), (1, j + 1)):
                k = start
                while (
                    0 <= k < len(rows)
                    and len(rows[k]) >= 2
                    and all(in_one_column(ln) for ln in rows[k])
                ):
                    near = rows[members[0]] if step < 0 else rows[members[-1]]
                    if abs(rows[k][0].cy - near[0].cy) > 4 * em:
                        break
                    if step < 0:
                        members.insert(0, k)
                    else:
                        members.append(k)
                    k += step
            tables.append(_Table([rows[k] for k in sorted(members)]))
            used.update(members)
            i = max(members) + 1
        else:
            i += 1
    rest = [ln for k, r in enumerate(rows) if k not in used for ln in r]
    return tables, rest


def _table_columns(table: _Table) -> list[tuple[float, float]]:
    spans = sorted((ln.x0, ln.x1) for ln in table.lines)
    cols: list[list[float]] = []
    for x0, x1 in spans:
        if cols and x0 < cols[-1][1]:
            cols[-1][1] = max(cols[-1][1], x1)
        else:
            cols.append([x0, x1])
    return [(c[0], c[1]) for c in cols]


def _table_markdown(table: _Table) -> str:
    cols = _table_columns(table)
    grid: list[list[str]] = []
    for row in table.rows:
        cells = [""] * len(cols)
        for ln in row:
            cx = (ln.x0 + ln.x1) / 2
            k = min(
                range(len(cols)),
                key=lambda c: (
                    0
                    if cols[c][0] <= cx <= cols[c][1]
                    else min(abs(cx - cols[c][0]), abs(cx - cols[c][1]))
                ),
            )
            text = ln.text.replace("|", "\\|")
            cells[k] = f"{cells[k]} {text}".strip()
        grid.append(cells)
    out = ["| " + " | ".join(grid[0]) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in grid[1:]]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# reading order
# ---------------------------------------------------------------------------------------------


def _x_groups(items: Sequence[_Item], min_gap: float) -> list[list[_Item]]:
    """Split items at vertical whitespace corridors at least ``min_gap`` wide."""
    ordered = sorted(items, key=lambda it: it.x0)
    groups: list[list[_Item]] = [[ordered[0]]]
    right = ordered[0].x1
    for it in ordered[1:]:
        if it.x0 - right >= min_gap:
            groups.append([it])
        else:
            groups[-1].append(it)
        right = max(right, it.x1)
    return groups


def _row_order(items: Sequence[_Item]) -> list[_Item]:
    ordered = sorted(items, key=lambda it: (it.cy, it.x0))
    rows: list[list[_Item]] = []
    for it in ordered:
        if rows:
            last = rows[-1]
            top = min(x.y0 for x in last)
            bot = max(x.y1 for x in last)
            h = min(it.y1 - it.y0, statistics.median(x.y1 - x.y0 for x in last))
            if min(bot, it.y1) - max(top, it.y0) >= 0.5 * h:
                last.append(it)
                continue
        rows.append([it])
    return [it for row in rows for it in sorted(row, key=lambda x: x.x0)]


def _reading_order(items: Sequence[_Item], em: float, depth: int = 0) -> list[_Item]:
    if len(items) <= 1 or depth > 50:
        return _row_order(items)
    min_gap = max(0.6 * em, 4.0)
    out: list[_Item] = []
    cols = _x_groups(items, min_gap)
    if len(cols) > 1:
        i = 0
        while i < len(cols):
            if i + 1 < len(cols) and _key_value_pairs(cols[i], cols[i + 1]):
                out += _row_order([*cols[i], *cols[i + 1]])
                i += 2
            else:
                out += _reading_order(cols[i], em, depth + 1)
                i += 1
        return out
    found = _blocked_corridor(items, min_gap)
    if found is not None and found[1]:
        crossing = found[1]
        # cut into horizontal sections at the items that block the corridor; each section
        # then has a clean corridor and is read column by column
        spanners = sorted((it for it in items if id(it) in crossing), key=lambda it: it.cy)
        pending = sorted((it for it in items if id(it) not in crossing), key=lambda it: it.cy)
        for sp in spanners:
            section = [it for it in pending if it.cy < sp.cy]
            pending = [it for it in pending if it.cy >= sp.cy]
            out += _reading_order(section, em, depth + 1) if section else []
            out.append(sp)
        out += _reading_order(pending, em, depth + 1) if pending else []
        return out
    return _row_order(items)


def _key_value_pairs(left: Sequence[_Item], right: Sequence[_Item]) -> bool:
    """Two groups side by side that are a list of label / value pairs (an infobox, a form), to be
    read row by row: most lines of each group have a partner on the same row in the other, and
    at least one group is ragged (lines of a text column mostly fill its width)."""
    if len(left) < 2 or len(right) < 2:
        return False

    def paired(a: _Item, group: Sequence[_Item]) -> bool:
        return any(
            min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5 * min(a.y1 - a.y0, b.y1 - b.y0) for b in group
        )

    def full(group: Sequence[_Item]) -> float:
        widest = max(it.w for it in group)
        return sum(it.w >= 0.85 * widest for it in group) / len(group)

    share = min(
        sum(paired(a, right) for a in left) / len(left),
        sum(paired(b, left) for b in right) / len(right),
    )
    return share >= 0.6 and min(full(left), full(right)) < 0.5


def _blocked_corridor(items: Sequence[_Item], min_gap: float) -> tuple[float, set[int]] | None:
    """A vertical corridor ``min_gap`` wide with at least 3 items wholly on each side and fewer
    items crossing it than on either side (a full-width title or paragraph over two columns, a
    text column beside a sidebar that ends before the text does).  Returns the corridor's left
    edge and the ids of the items crossing it (none for a clean corridor), or ``None``."""
    best: tuple[int, int] | None = None
    chosen: tuple[float, set[int]] | None = None
    n = len(items)
    for a in sorted({it.x1 for it in items}):
        b = a + min_gap
        left = sum(1 for it in items if it.x1 <= a)
        right = sum(1 for it in items if it.x0 >= b)
        cross = n - left - right
        if left < 3 or right < 3 or cross >= min(left, right):
            continue
        score = (cross, -min(left, right))
        if best is None or score < best:
            best = score
            chosen = (a, {id(it) for it in items if it.x1 > a and it.x0 < b})
    return chosen


# ---------------------------------------------------------------------------------------------
# paragraphs
# ---------------------------------------------------------------------------------------------


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


def _same_size(a: _Line, b: _Line) -> bool:
    lo, hi = sorted((a.size, b.size))
    return hi <= lo * 1.15


def _starts_new_paragraph(prev: _Line, cur: _Line, para: Sequence[_Line], em: float) -> bool:
    if not _same_size(prev, cur):
        return True
    if cur.y0 < prev.cy:  # went up: a new column or section
        return True
    if cur.y0 - prev.y1 > 0.6 * max(em, min(prev.size, cur.size)):  # leading grows with size
        return True
    if min(prev.x1, cur.x1) - max(prev.x0, cur.x0) <= 0:
        return True
    if abs(cur.x0 - prev.x0) > 1.5 * em:
        first_line_indent = len(para) == 1 and prev.x0 > cur.x0
        if not first_line_indent:
            return True
    width = max(ln.x1 for ln in para) - min(ln.x0 for ln in para)
    short = len(para) > 1 and prev.x1 < min(ln.x0 for ln in para) + 0.8 * width
    return short and prev.text.rstrip().endswith(_SENTENCE_END)


def _is_heading_text(text: str) -> bool:
    t = text.strip()
    return 0 < len(t) <= 120 and len(t.split()) <= 14 and not t.endswith(".")


def _word_blocks(line: _Line) -> list[RawBlock]:
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


def _line_block(line: _Line) -> RawBlock:
    return RawBlock(
        type="line",
        text=line.text,
        box=line.box,
        confidence=line.score,
        children=_word_blocks(line),
    )


def _confidence(lines: Sequence[_Line]) -> float | None:
    weight = sum(max(len(ln.text), 1) for ln in lines)
    if not weight:
        return None
    return round(sum(ln.score * max(len(ln.text), 1) for ln in lines) / weight, 4)


def _layout_lines(
    lines: Sequence[_Line], page_number: int = 1
) -> tuple[str, list[RawBlock], dict[str, Any]]:
    """Lines -> (markdown, blocks, meta).  See the module docstring for the rules."""
    if not lines:
        return "", [], {}
    for ln in lines:
        ln.size = _estimate_size(ln.text, ln.lbox)
    body = _weighted_median([(ln.size, float(max(len(ln.text), 1))) for ln in lines])
    em = max(body, 4.0)
    tables, rest = _find_tables(lines, em)
    items: list[_Item] = [*rest, *tables]
    ordered = _reading_order(items, em)

    # group into paragraphs
    groups: list[list[_Line] | _Table] = []
    for it in ordered:
        if isinstance(it, _Table):
            groups.append(it)
            continue
        last = groups[-1] if groups else None
        if isinstance(last, list) and not _starts_new_paragraph(last[-1], it, last, em):
            last.append(it)
        else:
            groups.append([it])

    # classify
    kinds: list[str] = []
    for g in groups:
        if isinstance(g, _Table):
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

    blocks: list[RawBlock] = []
    parts: list[str] = []
    for g, kind in zip(groups, kinds, strict=True):
        if isinstance(g, _Table):
            md = _table_markdown(g)
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
            parts.append(md)
            continue
        text = _join_lines([ln.text for ln in g])
        blocks.append(
            RawBlock(
                type=kind,
                text=text,
                box=_union(ln.box for ln in g),
                confidence=_confidence(g),
                children=[_line_block(ln) for ln in g],
            )
        )
        prefix = {"title": "# ", "section_header": "## "}.get(kind, "")
        parts.append(prefix + text)
    meta = {"body_size_px": round(body, 2), "lines": len(lines), "tables": len(tables)}
    return "\n\n".join(parts), blocks, meta


def _lines_from_reply(reply: ModelReply) -> list[_Line] | None:
    raw = reply.data.get("lines") if isinstance(reply.data, dict) else None
    if raw is None:
        return None
    out: list[_Line] = []
    for item in raw:
        text = str(item.get("text", "")).strip()
        box = item.get("box")
        if not text or not box or len(box) != 4:
            continue
        x0, y0, x1, y1 = (float(v) for v in box)
        if x1 <= x0 or y1 <= y0:
            continue
        det = item.get("det_box")
        lbox = (x0, y0, x1, y1)
        if det and len(det) == 4 and det[2] > det[0] and det[3] > det[1]:
            lbox = (float(det[0]), float(det[1]), float(det[2]), float(det[3]))
        if len(text) <= 3 and not any(ch.isalnum() for ch in text):
            continue  # "_", "|", "-" read off rules and drawings: noise, not text
        words = list(item.get("words") or [])
        out.append(_Line(text, (x0, y0, x1, y1), float(item.get("score") or 0.0), words, lbox))
    return out


class RapidOCRDialect:
    """The dialect of the embedded RapidOCR engine (``local`` backend).

    ``build`` sends the page image bytes as they are (PNG at 150 dpi by default);
    ``parse`` lays the recognised lines out as paragraphs, headings and tables in reading order.

    Example::

        dialect = RapidOCRDialect()
        request = dialect.build(page, Attempt())          # body == {"image": <png bytes>}
        content = dialect.parse(await transport.send(request), page)
        content.markdown                                   # "# Quarterly Field Report\\n\\n..."
    """

    name = "rapidocr"

    def __init__(self, render: RenderSpec | None = None) -> None:
        self.render = render or RenderSpec(dpi=150, format="png")

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> RapidOCRDialect:
        return cls(cfg.render_spec(RenderSpec(dpi=150, format="png")))

    def build(self, page: PageImage, attempt: Attempt | int = 1) -> ModelRequest:
        del attempt  # the engine is deterministic: every attempt sends the same image
        if page.encoded is None:
            raise ValueError(f"page {page.number} of {page.source} has no image: {page.error}")
        return ModelRequest(
            body={"image": page.encoded.data},
            frame=page.frame,
            page=page.number,
            source=page.source,
        )

    def parse(self, reply: ModelReply, page: PageImage) -> PageContent:
        space = CoordSpace.sent_pixels()
        lines = _lines_from_reply(reply)
        if lines is None:  # a reply without line data (e.g. from a cache of text only)
            text = reply.text.strip()
            if not text:
                return PageContent(markdown="", space=space, warnings=["no text found"])
            blocks = [
                RawBlock(type="text", text=p) for p in re.split(r"\n\s*\n", text) if p.strip()
            ]
            return PageContent(
                markdown=text, blocks=blocks, space=space, warnings=["no line boxes in the reply"]
            )
        if not lines:
            return PageContent(markdown="", space=space, warnings=["no text found"])
        markdown, blocks, meta = _layout_lines(lines, page.number)
        return PageContent(markdown=markdown, blocks=blocks, space=space, meta=meta)
