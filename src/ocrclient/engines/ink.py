"""Ink tightening: shrink the detector's padded boxes to the ink they hold.

RapidOCR's detector pads each line box by a fraction of the text height on every side; the
engine's reply keeps that box as ``det_box`` (the layout measures it) and reports ``box`` shrunk to
the ink (:func:`tighten`).  Word boxes share their line's extent across it (:func:`place_words`).
Both work on the page image as a grayscale numpy array (numpy is imported when they run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["clip", "place_words", "runs_down", "tighten"]


def runs_down(box: Sequence[float]) -> bool:
    """Whether a line's ``box`` runs down the image (a page turned a quarter, read as it stands):
    at least 1.5 times as tall as it is wide, RapidOCR's own rule for reading its crop down it."""
    return (box[3] - box[1]) >= 1.5 * (box[2] - box[0])


def tighten(gray: Any, box: Sequence[float], rules: bool = True) -> list[float]:
    """Shrink ``box`` to the ink inside it.

    The detector pads its boxes by a fraction of the text height on every side (much more than the
    glyphs need on short words); trimming the blank margins gives boxes that hug the text.  Rows or
    columns that are almost entirely ink (table rules, frames) are ignored, polarity (dark on light
    or light on dark) is taken from the box itself, and a box without clear contrast is kept.
    ``rules=False`` for boxes already tight in one direction (words inside a tight line), where
    a glyph's stem ("l", "1") spans the whole height and would look like a rule.
    """
    import numpy as np

    h, w = gray.shape
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return list(box)
    crop = gray[y0:y1, x0:x1]
    lo, hi = np.percentile(crop, (2, 98))
    if hi - lo < 48:
        return list(box)
    thresh = (float(lo) + float(hi)) / 2
    ink = crop < thresh
    if ink.mean() > 0.5:  # light text on a dark background
        ink = ~ink
    limit = 0.9 if rules else 2.0  # 2.0: never
    rule_rows = ink.mean(axis=1) >= limit
    rule_cols = ink.mean(axis=0) >= limit
    core = ink[~rule_rows][:, ~rule_cols] if (rule_rows.any() or rule_cols.any()) else ink
    if core.size == 0 or not core.any():
        return list(box)
    rows = np.zeros(ink.shape[0], dtype=bool)
    rows[~rule_rows] = core.any(axis=1)
    cols = np.zeros(ink.shape[1], dtype=bool)
    cols[~rule_cols] = core.any(axis=0)
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    return [float(x0 + xs[0]), float(y0 + ys[0]), float(x0 + xs[-1] + 1), float(y0 + ys[-1] + 1)]


def place_words(gray: Any, line: dict[str, Any], width: int, height: int, tight: bool) -> None:
    """Word boxes share their line's extent across it: its height for a line that runs across
    the image, its width for one that runs down it (a page turned a quarter, read as it stands:
    RapidOCR reports such a line's words along y).  RapidOCR places words from the recogniser's
    character columns, which can cut a glyph short, so with ``tight`` each word box is first
    lengthened by a fifth of the line's thickness (never past the line or half-way to its
    neighbours) and then shrunk to its ink."""
    line.pop("_turned", None)  # (engines.rapidocr: its words are already put back)
    lx0, ly0, lx1, ly1 = line["box"]
    words = line["words"]
    spans = [clip(w["box"], width, height) for w in words]
    down = runs_down(line["box"])
    a = 1 if down else 0  # the axis the line runs along
    start, end = (ly0, ly1) if down else (lx0, lx1)
    pad = 0.2 * ((lx1 - lx0) if down else (ly1 - ly0)) if tight else 0.0
    order = sorted(range(len(words)), key=lambda k: spans[k][a])  # (up a page, words run back)
    for n, i in enumerate(order):
        s0, s1 = spans[i][a], spans[i][a + 2]
        lo = max(start, (spans[order[n - 1]][a + 2] + s0) / 2 if n > 0 else start)
        hi = min(end, (s1 + spans[order[n + 1]][a]) / 2 if n + 1 < len(order) else end)
        v0, v1 = max(lo, s0 - pad), min(hi, s1 + pad)
        v1 = max(v1, v0 + 1)
        box = [lx0, v0, lx1, v1] if down else [v0, ly0, v1, ly1]
        words[i]["box"] = tighten(gray, box, rules=False) if tight else box


def clip(box: list[float], width: int, height: int) -> list[float]:
    """``box`` clipped to an image of ``width`` x ``height`` pixels."""
    x0, y0, x1, y1 = box
    return [max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)]
