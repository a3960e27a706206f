"""Tiling: extreme-aspect pages are read in overlapping tiles and what the tiles read is merged.

:func:`plan_tiles` cuts a page image along its long axis (see its docstring for why);
:func:`read_tiles` runs the engine on each tile and merges the readings: on tall pages whole lines
(:func:`merge_tall`), on wide pages words, grouped into lines again (:func:`merge_wide`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .lines import overlap
from .rapidocr import Engine, lines_from_result, run_engine

__all__ = ["TILE_ASPECT", "WIDE_MIN_SHORT", "WIDE_SHRINK", "Tile", "merge_tall", "merge_wide", "plan_tiles", "read_tiles", "shift_line", "wide_padded"]


#: pages whose long side is more than this many times their short side are read in tiles
TILE_ASPECT = 4.0
#: a wide page is read whole when the engine, bringing its long side down to its limit, shrinks
#: it to no less than this share of its size (its text stays readable); else in tiles
WIDE_SHRINK = 0.75
#: the height (px) a wide page or tile keeps once the engine has brought its long side down to
#: its limit: a shorter one is padded (the engine refuses a strip it would shrink below ~32 px)
WIDE_MIN_SHORT = 40


def wide_padded(image: Any, max_side: int) -> Any:
    """A wide page image read whole (:func:`plan_tiles`) with its height padded at the bottom, in
    its bottom row's most common colour, so that the engine, once it has brought the width
    down to ``max_side``, keeps :data:`WIDE_MIN_SHORT` px; other images as they are (the
    padding is below the page: a box read on it is a box on the page)."""
    width, height = image.size
    need = int(WIDE_MIN_SHORT * max(1.0, width / max_side)) + 1
    if width <= height or height >= need:
        return image
    from PIL import Image

    rgb = image.convert("RGB")
    colours = rgb.crop((0, height - 1, width, height)).getcolors(width) or [(1, (255, 255, 255))]
    out = Image.new("RGB", (width, need), max(colours)[1])
    out.paste(rgb, (0, 0))
    return out


@dataclass(frozen=True)
class Tile:
    """One tile along a page's long axis: pixels ``[start, end)`` are sent.  The cores
    ``[core_start, core_end)`` of all tiles partition the axis; around its core a tile overlaps
    its neighbours by a quarter of its length on each side."""

    start: int
    end: int
    core_start: int
    core_end: int


def plan_tiles(
    width: int, height: int, aspect: float = TILE_ASPECT, max_side: int = 2000
) -> list[Tile]:
    """How to cut a page image of ``width`` x ``height`` pixels for the engine.

    RapidOCR's detector scales every image so its *short* side is at least 736 px: a 66 x 4000
    px strip became 736 x 44600 px inside the engine and peaked at 4.6 GB (``skinnypage.pdf``
    page 2, 234 x 14295 pt).  A page whose aspect ratio is above ``aspect`` is therefore read in
    tiles along its long axis, each ``aspect`` x the short side long but no longer than
    ``max_side`` (the engine's own downscale limit) unless the short side is longer still, so
    the text is not shrunk (and never shorter than 64 px).  Neighbouring tiles overlap by a
    quarter of a tile on each side, so a line (tall pages) or a word (wide pages) cut by one
    tile's edge is whole in its neighbour; what two tiles both read is kept once
    (:func:`_dedupe`), and on wide pages words are grouped into lines again.  Other pages are
    one tile.

    A *wide* page (a text line, a banner) is another matter: read whole, it costs the engine
    no more than a page (a 2474 x 66 px line: 2 s, 0.6 GB), while tiles of 4 x its height cut
    every few words, and words and spaces were lost where they were stitched (a 20000 x 30 px
    strip took 334 engine runs).  It is read whole unless the engine would shrink it by more
    than :data:`WIDE_SHRINK` (its text too small then), else in tiles ``max_side`` long; each
    with its height padded so that the engine keeps :data:`WIDE_MIN_SHORT` px of it
    (:func:`wide_padded`: the engine refuses a strip it would shrink to nothing).

    >>> [(t.start, t.end) for t in plan_tiles(100, 1000)]
    [(0, 300), (100, 500), (300, 700), (500, 900), (700, 1000)]
    >>> len(plan_tiles(1275, 1650)), len(plan_tiles(2474, 66)), len(plan_tiles(20000, 30))
    (1, 1, 20)
    """
    long_side, short_side = max(width, height), max(1, min(width, height))
    if long_side <= aspect * short_side:
        return [Tile(0, long_side, 0, long_side)]
    if width > height:
        if long_side * WIDE_SHRINK <= max_side:  # (its height padded: wide_padded)
            return [Tile(0, long_side, 0, long_side)]
        length = max_side  # the longest the engine does not shrink
    else:
        length = max(64, int(min(aspect * short_side, max(max_side, short_side))))
    margin = length // 4
    core = length - 2 * margin
    tiles = []
    for core_start in range(0, long_side, core):
        core_end = min(long_side, core_start + core)
        tiles.append(
            Tile(max(0, core_start - margin), min(long_side, core_end + margin), core_start, core_end)
        )
    return tiles


def shift_line(line: dict[str, Any], dx: float, dy: float) -> None:
    """Move a line dict read from a crop (its box, detector box and words' boxes) by ``dx``,
    ``dy`` pixels: onto the image the crop was cut from."""
    for item in (line, *(line.get("words") or ())):
        b = item["box"]
        item["box"] = [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy]
    if "det_box" in line:
        b = line["det_box"]
        line["det_box"] = [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy]


def _centre(box: Sequence[float], axis: int) -> float:
    return (box[axis] + box[axis + 2]) / 2


@dataclass
class _Seen:
    """One line (tall pages) or word (wide pages) as one tile read it, in page pixels."""

    item: dict[str, Any]
    box: list[float]
    tile: int
    cut: bool  # touches an edge where its tile was cut from the page: maybe partial
    centrality: float  # distance of its centre from the nearer edge of its tile
    line: int = 0  # which line of its tile it came from (wide pages)
    sep: str = " "  # how that line separated its words
    before: str = " "  # what stood before this word in its own line's text ("" for CJK)
    turned: bool = False  # its line was read upside down: it reads right to left on the page


def _separators(text: str, words: Sequence[str]) -> list[str] | None:
    """What stands before each word in ``text`` (its first: ""), or None where the words do not
    spell the text.  RapidOCR gives one "word" per character on lines with CJK in them, so a
    line's separators are read from its text, not guessed."""
    out, pos = [], 0
    for word in words:
        start = text.find(word, pos)
        if start < 0 or text[pos:start].strip():
            return None
        out.append(" " if text[pos:start] else "")
        pos = start + len(word)
    return out


def _seen(item: dict[str, Any], tiles: list[Tile], i: int, axis: int, long_side: int) -> _Seen:
    box, tile = item["box"], tiles[i]
    lo, hi = box[axis], box[axis + 2]
    # near a cut edge: within 2 px across lines (tall pages); within half the text height along
    # a line (wide pages), where the recogniser's word boxes can stop short of the edge
    eps = 2.0 if axis == 1 else max(2.0, 0.5 * (box[3] - box[1]))
    cut = (tile.start > 0 and lo <= tile.start + eps) or (tile.end < long_side and hi >= tile.end - eps)
    c = _centre(box, axis)
    return _Seen(item, box, i, cut, min(c - tile.start, tile.end - c))


def _dedupe(seen: list[_Seen]) -> list[_Seen]:
    """What neighbouring tiles both read, once.  Readings are taken best first: not cut by a
    tile edge, then the longer text, then nearer the middle of its tile (seams are where the
    detector wavers).  A reading is dropped when it overlaps one already taken by more than half
    of the smaller box, or, if it looks like a fragment (it touches a cut edge, or it is one or
    two characters: the recogniser sometimes repeats a word's last letters as a word of their
    own), when it overlaps one at all noticeably (a tenth)."""
    rank = lambda s: (s.cut, -len(s.item["text"]), -s.centrality)  # noqa: E731
    kept: list[_Seen] = []
    for s in sorted(seen, key=rank):
        limit = 0.1 if s.cut or len(s.item["text"].strip()) <= 2 else 0.5
        if not any(overlap(k.box, s.box) > limit for k in kept):
            kept.append(s)
    return kept


def merge_tall(per_tile: list[list[dict[str, Any]]], tiles: list[Tile], long_side: int) -> list[dict[str, Any]]:
    """Tall pages: lines run across the tiles, so each is whole in the tile that sees it best
    (the overlap, a quarter tile, is far taller than a line)."""
    seen = [_seen(line, tiles, i, 1, long_side) for i, lines in enumerate(per_tile) for line in lines]
    out = [s.item for s in _dedupe(seen)]
    out.sort(key=lambda ln: (ln["box"][1], ln["box"][0]))
    return out


def merge_wide(per_tile: list[list[dict[str, Any]]], tiles: list[Tile], long_side: int) -> list[dict[str, Any]]:
    """Wide pages: lines run along the tiles and may be longer than any tile, so words are
    de-duplicated across tiles and grouped into lines again (same row, gaps under 1.2 line
    heights), joined the way their own line joined them."""
    seen: list[_Seen] = []
    for i, lines in enumerate(per_tile):
        for j, line in enumerate(lines):
            words = line["words"] or [{"text": line["text"], "score": line["score"], "box": line["box"]}]
            sep = " " if " " in line["text"] else ""
            befores = _separators(line["text"], [str(w["text"]) for w in words])
            for k, word in enumerate(words):
                s = _seen(word, tiles, i, 0, long_side)
                s.line, s.sep, s.turned = j, sep, bool(line.get("_turned"))
                s.before = befores[k] if befores is not None else sep
                seen.append(s)
    rows: list[list[_Seen]] = []
    for s in sorted(_dedupe(seen), key=lambda s: (s.box[1] + s.box[3]) / 2):
        for row in rows:
            top, bottom = min(r.box[1] for r in row), max(r.box[3] for r in row)
            overlap = min(bottom, s.box[3]) - max(top, s.box[1])
            if overlap >= 0.5 * min(bottom - top, s.box[3] - s.box[1]):
                row.append(s)
                break
        else:
            rows.append([s])
    out: list[dict[str, Any]] = []
    for row in rows:
        turned = all(r.turned for r in row)  # (an upside-down row reads from the right)
        row.sort(key=lambda s: s.box[0], reverse=turned)
        height = max(r.box[3] for r in row) - min(r.box[1] for r in row)
        groups: list[list[_Seen]] = [[row[0]]]
        for prev, s in itertools.pairwise(row):
            if max(s.box[0] - prev.box[2], prev.box[0] - s.box[2]) > 1.2 * height:
                groups.append([s])
            else:
                groups[-1].append(s)
        for group in groups:
            text = group[0].item["text"]
            for prev, s in itertools.pairwise(group):
                same_line = (prev.tile, prev.line) == (s.tile, s.line)
                sep = s.before if same_line else (" " if " " in (prev.sep, s.sep) else "")
                text += sep + s.item["text"]
            out.append(
                {
                    "text": text,
                    "score": min(float(s.item["score"]) for s in group),
                    "box": [
                        min(s.box[0] for s in group),
                        min(s.box[1] for s in group),
                        max(s.box[2] for s in group),
                        max(s.box[3] for s in group),
                    ],
                    "words": [dict(s.item) for s in group],
                    **({"_turned": True} if turned else {}),
                }
            )
    out.sort(key=lambda ln: (ln["box"][1], ln["box"][0]))
    return out

def read_tiles(
    engine: Engine, image: Any, tiles: list[Tile], vertical: bool, read: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """OCR an extreme-aspect page (the decoded image) tile by tile (see :func:`plan_tiles`)
    and merge what the tiles read: line dicts in pixels of the whole page.  ``read``, when
    given, gets every tile's own lines before they are merged (in pixels of the whole page:
    what :mod:`.orientation` judges the page by)."""
    rgb = image.convert("RGB")
    per_tile: list[list[dict[str, Any]]] = []
    for tile in tiles:
        x0, y0 = (0, tile.start) if vertical else (tile.start, 0)
        x1, y1 = (rgb.width, tile.end) if vertical else (tile.end, rgb.height)
        crop = rgb.crop((x0, y0, x1, y1))
        # (a wide page's tile is no longer than the engine takes unshrunk: padded to its height)
        lines = lines_from_result(run_engine(engine, crop if vertical else wide_padded(crop, crop.width)))
        for line in lines:
            shift_line(line, x0, y0)
        per_tile.append(lines)
    if read is not None:
        read.extend(dict(line) for lines in per_tile for line in lines)
    if vertical:
        return merge_tall(per_tile, tiles, rgb.height)
    return merge_wide(per_tile, tiles, rgb.width)
