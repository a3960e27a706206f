"""Reading order: a recursive XY-cut on the line (and table) boxes.

A vertical whitespace corridor at least 0.6 body em wide splits a region into columns (left to
right), except that two neighbouring groups of label / value pairs (an infobox, a form: lines
paired row by row, one group ragged) are read row by row.  When items that span the corridor (a
full-width heading over two columns) block it, the corridor is found among the narrow lines alone
and the region is cut into horizontal sections at the spanning items.  Without a corridor the
region is read in rows, top to bottom, left to right.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

from .lines import Line
from .tables import Table

__all__ = ["Item", "reading_order"]

Item = Line | Table


def _x_groups(items: Sequence[Item], min_gap: float) -> list[list[Item]]:
    """Split items at vertical whitespace corridors at least ``min_gap`` wide."""
    ordered = sorted(items, key=lambda it: it.x0)
    groups: list[list[Item]] = [[ordered[0]]]
    right = ordered[0].x1
    for it in ordered[1:]:
        if it.x0 - right >= min_gap:
            groups.append([it])
        else:
            groups[-1].append(it)
        right = max(right, it.x1)
    return groups


def _row_order(items: Sequence[Item]) -> list[Item]:
    ordered = sorted(items, key=lambda it: (it.cy, it.x0))
    rows: list[list[Item]] = []
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


def reading_order(items: Sequence[Item], em: float, depth: int = 0) -> list[Item]:
    """``items`` in reading order (see the module docstring); ``em`` is the body font size."""
    if len(items) <= 1 or depth > 50:
        return _row_order(items)
    min_gap = max(0.6 * em, 4.0)
    out: list[Item] = []
    cols = _x_groups(items, min_gap)
    if len(cols) > 1:
        i = 0
        while i < len(cols):
            if i + 1 < len(cols) and _key_value_pairs(cols[i], cols[i + 1]):
                out += _row_order([*cols[i], *cols[i + 1]])
                i += 2
            else:
                out += reading_order(cols[i], em, depth + 1)
                i += 1
        return out
    bands = _sections(items, em, min_gap)
    if len(bands) > 1:
        return [it for band in bands for it in reading_order(band, em, depth + 1)]
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
            out += reading_order(section, em, depth + 1) if section else []
            out.append(sp)
        out += reading_order(pending, em, depth + 1) if pending else []
        return out
    return _row_order(items)


def _y_bands(items: Sequence[Item], min_gap: float) -> list[list[Item]]:
    """Split items at horizontal whitespace (a gap across the whole region) ``min_gap`` tall."""
    ordered = sorted(items, key=lambda it: it.y0)
    bands: list[list[Item]] = [[ordered[0]]]
    bottom = ordered[0].y1
    for it in ordered[1:]:
        if it.y0 - bottom >= min_gap:
            bands.append([it])
        else:
            bands[-1].append(it)
        bottom = max(bottom, it.y1)
    return bands


def _corridors(items: Sequence[Item], min_gap: float) -> list[tuple[float, float]]:
    """The vertical whitespace corridors between the column groups of ``items``."""
    groups = _x_groups(items, min_gap)
    return [(max(it.x1 for it in a), min(it.x0 for it in b)) for a, b in itertools.pairwise(groups)]


def _sections(items: Sequence[Item], em: float, min_gap: float) -> list[list[Item]]:
    """Horizontal sections of a region that has no clean column corridor (a full-width title or
    rule over two columns, a two-column article below a page-wide one): the region is cut at
    full-width whitespace, and neighbouring bands whose column corridors line up (one column
    layout that merely had a paragraph break on both sides at once), or that hold one of the
    columns alone, are joined again."""
    bands = _y_bands(items, 0.25 * em)
    if len(bands) <= 1:
        return bands
    merged: list[list[Item]] = [bands[0]]
    last = _corridors(bands[0], min_gap)
    for band in bands[1:]:
        cur = _corridors(band, min_gap)
        if last and cur and any(min(a[1], b[1]) > max(a[0], b[0]) for a in last for b in cur):
            merged[-1] = [*merged[-1], *band]
            last = _corridors(merged[-1], min_gap) or cur
        elif last and not cur and any(
            all(it.x1 <= c[1] for it in band) or all(it.x0 >= c[0] for it in band) for c in last
        ):
            merged[-1] = [*merged[-1], *band]  # a band of one of the columns alone
        else:
            merged.append(band)
            last = cur
    return merged


def _key_value_pairs(left: Sequence[Item], right: Sequence[Item]) -> bool:
    """Two groups side by side that are a list of label / value pairs (an infobox, a form), to be
    read row by row: most lines of each group have a partner on the same row in the other, at
    least one group is ragged (lines of a text column mostly fill its width) and the left one
    holds short lines (labels: at most 5 words a line, as a median)."""
    if len(left) < 2 or len(right) < 2:
        return False

    def paired(a: Item, group: Sequence[Item]) -> bool:
        return any(
            min(a.y1, b.y1) - max(a.y0, b.y0) > 0.5 * min(a.y1 - a.y0, b.y1 - b.y0) for b in group
        )

    def full(group: Sequence[Item]) -> float:
        widest = max(it.w for it in group)
        return sum(it.w >= 0.85 * widest for it in group) / len(group)

    def words(group: Sequence[Item]) -> float:
        return statistics.median(len(getattr(it, "text", "x").split()) for it in group)

    if words(left) > 5:
        return False  # two columns of prose whose baselines happen to line up: no labels
    share = min(
        sum(paired(a, right) for a in left) / len(left),
        sum(paired(b, left) for b in right) / len(right),
    )
    return share >= 0.6 and min(full(left), full(right)) < 0.5


def _blocked_corridor(items: Sequence[Item], min_gap: float) -> tuple[float, set[int]] | None:
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
