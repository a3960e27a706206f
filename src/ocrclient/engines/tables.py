"""Tables: rows of three or more separate cells, from line geometry alone.

Lines are grouped into rows (vertical overlap).  Two or more consecutive rows of three or more
separate segments, none wider than 45 % of the row and at most one of five words or more (three
columns of prose are no table), form a table (up to two rows of one or two narrow lines may lie
between them: wrapped cells, a group heading; a short heading right above it that spans two or
more of its columns joins it); neighbouring rows of two
or more cells that each sit in one of its columns join it (empty cells).  Cells are assigned to
columns by x-overlap and the table becomes one markdown table (first row as header, ``|`` in
cells escaped, :func:`table_markdown`).  Two text columns have two segments per row and are *not*
a table; a two-column table is read as label / value rows (:mod:`.reading_order`), and a table
whose cells wrap over several lines is read as text (known limits).
"""

from __future__ import annotations

import html
import itertools
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .lines import Box, Line, Measured, union

__all__ = ["Table", "find_tables", "table_columns", "table_markdown"]


@dataclass
class Table(Measured):
    """Rows of cells (lines), top to bottom; ``box`` is what the layout measures, ``out_box`` what
    is reported."""

    rows: list[list[Line]]

    @property
    def lines(self) -> list[Line]:
        return [ln for row in self.rows for ln in row]

    @property
    def box(self) -> Box:
        return union(ln.lbox for ln in self.lines)

    @property
    def out_box(self) -> Box:
        return union(ln.box for ln in self.lines)

    @property
    def mbox(self) -> Box:
        return self.box


def _group_rows(lines: Sequence[Line]) -> list[list[Line]]:
    """Group lines whose vertical extents overlap by at least half the smaller height."""
    rows: list[list[Line]] = []
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


_CAPTION = re.compile(r"^\s*(table|figure|fig\.)\s*\d", re.IGNORECASE)


def _segments_apart(row: Sequence[Line], min_gap: float) -> bool:
    return all(b.x0 - a.x1 >= min_gap for a, b in itertools.pairwise(row))


def _x_overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return min(a[1], b[1]) - max(a[0], b[0]) > 0


def find_tables(lines: Sequence[Line], em: float) -> tuple[list[Table], list[Line]]:
    """The tables among ``lines`` (see the module docstring) and the lines outside them."""
    rows = _group_rows(lines)
    cand = [
        len(r) >= 3
        and _segments_apart(r, 0.5 * em)
        # a line of prose beside a sidebar is not a cell
        and max(ln.w for ln in r) <= 0.45 * (r[-1].x1 - r[0].x0)
        # nor are the lines of three columns of prose side by side
        and sum(len(ln.text.split()) >= 5 for ln in r) < 2
        for r in rows
    ]
    tables: list[Table] = []
    used: set[int] = set()
    i = 0
    while i < len(rows):
        if not cand[i]:
            i += 1
            continue
        j = i
        while True:
            if j + 1 < len(rows) and cand[j + 1] and rows[j + 1][0].y0 - rows[j][-1].y1 < 3 * em:
                j += 1
                continue
            k = _bridge(rows, cand, j, em, (rows[i][0].x0, max(ln.x1 for ln in rows[i])))
            if k is None:
                break
            j = k
        if j > i:
            members = list(range(i, j + 1))
            cols = table_columns(Table([rows[k] for k in members]))

            def in_one_column(ln: Line, cols: list[tuple[float, float]] = cols) -> bool:
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
            head = members[0] - 1
            if head >= 0 and head not in used and _column_heading(rows[head], rows[members[0]], cols, em):
                members.insert(0, head)
            tables.append(Table([rows[k] for k in sorted(members)]))
            used.update(members)
            i = max(members) + 1
        else:
            i += 1
    rest = [ln for k, r in enumerate(rows) if k not in used for ln in r]
    return tables, rest


def _column_heading(row: Sequence[Line], first: Sequence[Line], cols: list[tuple[float, float]], em: float) -> bool:
    """A heading over the table's columns ("Year Ended" over three years): one or two short lines
    (at most four words, no ``Table N`` caption) within a line of the table's top, over its
    columns and not beyond them."""
    if not row or len(row) > 2 or first[0].y0 - max(ln.y1 for ln in row) > 1.0 * em:
        return False
    lo, hi = cols[0][0], cols[-1][1]
    return all(
        ln.x0 >= lo - em and ln.x1 <= hi + em and len(ln.text.split()) <= 4
        and not _CAPTION.match(ln.text) and any(_x_overlaps((ln.x0, ln.x1), c) for c in cols)
        for ln in row
    )  # fmt: skip


def _bridge(
    rows: Sequence[Sequence[Line]], cand: Sequence[bool], j: int, em: float, span: tuple[float, float]
) -> int | None:
    """The next candidate row after row ``j`` when at most two rows of one or two narrow lines
    lie between them, close together and inside the table's span ``span`` (wrapped cells, a
    label set between two rows, a group heading): they belong to the table."""
    width = span[1] - span[0]
    for k in (j + 2, j + 3):
        if k >= len(rows) or not cand[k]:
            continue
        between = rows[j + 1 : k]
        if any(cand[m] for m in range(j + 1, k)):
            return None
        tight = all(b[0].y0 - a[-1].y1 < 1.5 * em for a, b in itertools.pairwise(rows[j : k + 1]))
        inside = all(
            len(r) <= 2 and all(ln.x0 >= span[0] - em and ln.x1 <= span[1] + em and ln.w <= 0.45 * width for ln in r)
            for r in between
        )
        return k if tight and inside else None
    return None


def table_columns(table: Table) -> list[tuple[float, float]]:
    """The table's columns: the x-spans of its cells merged where they overlap, measured on its
    rows of three or more cells when it has two such rows (a group heading or a wrapped cell
    between rows would join columns)."""
    full = [ln for row in table.rows if len(row) >= 3 for ln in row]
    lines = full if sum(len(row) >= 3 for row in table.rows) >= 2 else table.lines
    spans = sorted((ln.x0, ln.x1) for ln in lines)
    cols: list[list[float]] = []
    for x0, x1 in spans:
        if cols and x0 < cols[-1][1]:
            cols[-1][1] = max(cols[-1][1], x1)
        else:
            cols.append([x0, x1])
    return [(c[0], c[1]) for c in cols]


def _column_of(ln: Line, cols: list[tuple[float, float]]) -> int:
    cx = (ln.x0 + ln.x1) / 2
    return min(
        range(len(cols)),
        key=lambda c: 0 if cols[c][0] <= cx <= cols[c][1] else min(abs(cx - cols[c][0]), abs(cx - cols[c][1])),
    )


def _spanning_headings(table: Table, cols: list[tuple[float, float]]) -> set[int]:
    """Rows of the heading (above the first row with a label in the first column) that hold one
    cell centred over the value columns: a group heading ("Year Ended", "(In millions)") that
    spans them all, as a financial statement sets it."""
    if len(cols) < 3:
        return set()
    left, right = cols[1][0], cols[-1][1]
    middle, half = (left + right) / 2, (right - left) / 2
    out: set[int] = set()
    for i, row in enumerate(table.rows):
        if any(_column_of(ln, cols) == 0 for ln in row):
            break
        if len(row) == 1 and abs((row[0].x0 + row[0].x1) / 2 - middle) <= 0.25 * half:
            out.add(i)
    return out


def _html_table(grid: list[list[str]], spanning: set[int]) -> str:
    """The table as HTML (a markdown pipe table cannot say that a cell spans columns)."""
    esc = html.escape
    rows = []
    for i, cells in enumerate(grid):
        if i in spanning:
            text = next((c for c in cells if c), "")
            tds = f'<td></td><td colspan="{len(cells) - 1}">{esc(text)}</td>'
        else:
            tds = "".join(f"<td>{esc(c)}</td>" for c in cells)
        rows.append(f"<tr>{tds}</tr>")
    return "<table>\n" + "\n".join(rows) + "\n</table>"


def table_markdown(table: Table) -> str:
    """The table as a markdown pipe table, or as HTML when a heading spans the value columns."""
    cols = table_columns(table)
    grid: list[list[str]] = []
    for row in table.rows:
        cells = [""] * len(cols)
        for ln in row:
            k = _column_of(ln, cols)
            cells[k] = f"{cells[k]} {ln.text}".strip()
        grid.append(cells)
    spanning = _spanning_headings(table, cols)
    if spanning:
        return _html_table(grid, spanning)
    grid = [[c.replace("|", "\\|") for c in r] for r in grid]
    out = ["| " + " | ".join(grid[0]) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in grid[1:]]
    return "\n".join(out)
