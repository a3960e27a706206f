"""Reading replies: model labels to block types, box numbers to raw boxes, markdown to blocks.

Model-agnostic helpers a dialect's parser composes; the facts about one model (its labels, its
grid) live in that model's module.

Example::

    >>> from ocrclient.dialects.parsing import block_type, parse_box
    >>> block_type("Section-Header", {"section-header": "section_header"})
    'section_header'
    >>> warnings = []
    >>> parse_box("[1, 2, 3, 4]", 1000, warnings), warnings
    ((1.0, 2.0, 3.0, 4.0), [])
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..document import BLOCK_TYPES
from ..models import RawBlock

__all__ = ["block_type", "chunk_block", "heading_text", "markdown_blocks", "markdown_chunks", "parse_box"]


def block_type(label: str | None, mapping: Mapping[str, str], default: str = "text") -> str:
    """Map a model label to one of :data:`~ocrclient.document.BLOCK_TYPES` (case-insensitive)."""
    if label:
        key = label.strip().lower().replace("_", "-").replace(" ", "-")
        for k, v in mapping.items():
            if k.lower().replace("_", "-").replace(" ", "-") == key and v in BLOCK_TYPES:
                return v
    return default if default in BLOCK_TYPES else "text"


_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_box(
    values: str | Iterable[Any], grid: float | tuple[float, float], warnings: list[str], what: str = "box"
) -> tuple[float, float, float, float] | None:
    """Four numbers (a string such as ``"1 2 3 4"`` / ``"[1, 2, 3, 4]"`` or a sequence) -> a box
    in model units, kept as the model said it.

    Unusable boxes (not four finite numbers) give ``None`` and a warning.  Reversed corners and
    coordinates outside ``0..grid`` (by more than one unit; ``grid`` may be ``(width, height)``) are kept — geometry reorders, clamps
    and flags them — but add a warning, so the page is reported as degraded.
    """
    if isinstance(values, str):
        nums: list[Any] = _NUM.findall(values)
    else:
        try:
            nums = list(values)
        except TypeError:
            nums = []
    if len(nums) != 4:
        warnings.append(f"{what}: expected 4 coordinates, got {len(nums)}; box dropped")
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in nums)
    except (TypeError, ValueError, OverflowError):
        warnings.append(f"{what}: coordinates are not numbers; box dropped")
        return None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        warnings.append(f"{what}: non-finite coordinates; box dropped")
        return None
    if x1 < x0 or y1 < y0:
        warnings.append(f"{what}: reversed corners {[x0, y0, x1, y1]}")
    gx, gy = grid if isinstance(grid, tuple) else (grid, grid)
    if min(x0, y0, x1, y1) < -1 or max(x0, x1) > gx + 1 or max(y0, y1) > gy + 1:
        shown = f"{gx:g}" if gx == gy else f"{gx:g}x{gy:g}"
        warnings.append(f"{what}: coordinates outside 0..{shown}")
    return (x0, y0, x1, y1)


_HEADING = re.compile(r"^(#{1,6})\s+\S")
_LIST = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+\S")
_FIG = re.compile(r"^\s*!\[([^\]]*)\]\([^)]*\)\s*$")


def heading_text(markdown: str) -> str:
    """``"## Title "`` -> ``"Title"`` (markdown heading markers removed, whitespace collapsed)."""
    return " ".join(re.sub(r"^\s*#{1,6}\s+", "", markdown.strip()).split())


def _md_type(chunk: str) -> str:
    first = chunk.lstrip().split("\n", 1)[0]
    if _HEADING.match(first):
        return "title" if first.startswith("# ") else "section_header"
    low = chunk.lstrip().lower()
    if low.startswith("<table") or (first.strip().startswith("|") and first.strip().endswith("|")):
        return "table"
    if low.startswith(("$$", "\\[", "\\begin{")):
        return "equation"
    if low.startswith("```"):
        return "code"
    if _FIG.match(chunk.strip()):
        return "figure"
    if _LIST.match(first):
        return "list_item"
    return "text"


def chunk_block(chunk: str) -> RawBlock:
    """One paragraph of model markdown (a chunk of :func:`markdown_chunks`) as a box-less block
    with a type guessed from its markdown syntax."""
    kind = _md_type(chunk)
    text = chunk
    m = _FIG.match(chunk.strip())
    if kind == "figure" and m:
        text = m.group(1)
    elif kind in ("title", "section_header"):
        text = heading_text(chunk)
    return RawBlock(type=kind, text=text)


def markdown_chunks(markdown: str) -> list[tuple[int, str]]:
    """Model markdown split on blank lines (keeping fenced code, ``$$`` math and HTML tables
    whole): each paragraph with its offset in ``markdown``.

    >>> markdown_chunks("A\\n\\n\\nB c")
    [(0, 'A'), (4, 'B c')]
    """
    chunks: list[tuple[int, str]] = []
    buf: list[str] = []
    start = pos = 0
    fence: str | None = None

    def flush() -> None:
        joined = "\n".join(buf)
        chunk = joined.strip("\n")
        buf.clear()
        if chunk.strip():
            chunks.append((start + len(joined) - len(joined.lstrip("\n")), chunk))

    for line in markdown.split("\n"):
        stripped = line.strip()
        if not buf:
            start = pos
        pos += len(line) + 1
        if fence is None:
            if stripped.startswith("```"):
                fence = "```"
            elif stripped.startswith("$$") and not (len(stripped) > 2 and stripped.endswith("$$")):
                fence = "$$"
            elif stripped.lower().startswith("<table") and "</table>" not in stripped.lower():
                fence = "</table>"
            if fence is None and not stripped:
                flush()
                continue
            buf.append(line)
            continue
        buf.append(line)
        if (fence == "</table>" and "</table>" in stripped.lower()) or (
            fence in ("```", "$$") and stripped.endswith(fence) and len(buf) > 1
        ):
            fence = None
    flush()
    return chunks


def markdown_blocks(markdown: str) -> list[RawBlock]:
    """Split model markdown on blank lines (keeping fenced code, ``$$`` math and HTML tables whole)
    into box-less blocks with a type guessed from the markdown syntax."""
    return [chunk_block(chunk) for _, chunk in markdown_chunks(markdown)]
