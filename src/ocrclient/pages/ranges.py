"""Page ranges: which pages of a document a run takes.

:func:`parse_page_range` reads what a user types (``"1-3,7,10-"``, 1-based, inclusive);
:func:`select_pages` also takes a sequence of 0-based indices (the Python API) and checks both
against the document's page count, failing with one :class:`~ocrclient.errors.InputError` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from ..errors import InputError

__all__ = ["check_page_range", "format_pages", "parse_page_range", "select_pages"]


def parse_page_range(spec: str | None, page_count: int, *, clip: bool = False) -> list[int]:
    """``"1-3,7,10-"`` (1-based, inclusive) -> sorted unique 0-based indices.

    ``None`` means every page; ``"-3"`` means 1-3; ``"10-"`` means 10 to the end.
    Raises :class:`InputError` for syntax errors, a blank range (``--pages "$RANGE"`` with the
    variable unset converted every page, paid for) and pages past the end; with ``clip`` the
    pages past the end are left out instead (possibly all of them: ``[]``).

    >>> parse_page_range("1-3,7,10-", 11)
    [0, 1, 2, 6, 9, 10]
    >>> parse_page_range("-2", 5)
    [0, 1]
    """
    if spec is None:
        return list(range(page_count))
    check_page_range(spec)
    picked: set[int] = set()
    for part, first, last in _parts(spec):
        last = page_count if last is None else last
        if clip:
            picked.update(range(first - 1, min(last, page_count)))
            continue
        if last > page_count or first > page_count:  # (before "backwards": '9-' of 4 pages is past the end)
            bad = first if first > page_count else last
            noun = "page" if page_count == 1 else "pages"
            raise InputError(
                f"page range {spec!r}: page {bad} is past the end (the document has {page_count} {noun})"
            )
        if first > last:
            raise InputError(f"page range {spec!r}: {part!r} runs backwards")
        picked.update(range(first - 1, last))
    if not picked and not clip:
        raise InputError(f"page range {spec!r} selects no pages")
    return sorted(picked)


def check_page_range(spec: str | None) -> None:
    """Raise :class:`InputError` when ``spec`` cannot be read, whatever the document (what is
    left to check is whether it fits one: :func:`parse_page_range`).  A blank one is refused:
    no range is written ``None`` (``--pages`` left out)."""
    if spec is not None and not spec.strip():
        raise InputError(f"page range {spec!r} is empty; leave the page range out to take every page")
    if spec is not None:
        parts = list(_parts(spec))
        if not parts:
            raise InputError(f"page range {spec!r} selects no pages")
        for part, first, last in parts:
            if last is not None and first > last:
                raise InputError(f"page range {spec!r}: {part!r} runs backwards")


def _parts(spec: str) -> Iterator[tuple[str, int, int | None]]:
    """Each part of ``spec`` as (its text, first page, last page or ``None`` for the end)."""
    for raw in spec.split(","):
        part = raw.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d*)\s*-\s*(\d*)", part)
        if m:
            a_txt, b_txt = m.groups()
            if not a_txt and not b_txt:
                raise InputError(f"page range {spec!r}: '-' needs a number on at least one side")
            first, last = (int(a_txt) if a_txt else 1), (int(b_txt) if b_txt else None)
        elif part.isdigit():
            first = last = int(part)
        else:
            raise InputError(f"page range {spec!r}: cannot read {part!r} (use e.g. 1-3,7,10-)")
        if first < 1 or (last is not None and last < 1):
            raise InputError(f"page range {spec!r}: pages start at 1")
        yield part, first, last


def select_pages(pages: str | Sequence[int] | None, page_count: int) -> list[int]:
    """A range string (see :func:`parse_page_range`) or 0-based indices -> sorted unique
    0-based indices, each checked against ``page_count``."""
    if pages is None or isinstance(pages, str):
        return parse_page_range(pages, page_count)
    out = sorted({int(i) for i in pages})
    for i in out:
        if i < 0 or i >= page_count:
            noun = "page" if page_count == 1 else "pages"
            raise InputError(
                f"page index {i} is out of range (the document has {page_count} {noun}; indices are 0-based)"
            )
    return out



def format_pages(indices: Sequence[int]) -> str:
    """0-based indices as the 1-based range that says them.

    >>> format_pages([0, 1, 2, 6])
    '1-3,7'
    """
    runs: list[list[int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{a + 1}" if a == b else f"{a + 1}-{b + 1}" for a, b in runs)
