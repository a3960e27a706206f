"""Recognised lines as the layout sees them: :class:`Line`, its box and its font size.

The layout stages (:mod:`.tables`, :mod:`.reading_order`, :mod:`.layout`) measure lines by the
detector's box (``det_box`` in the engine's reply), and read each line's font size from its width
and its text (:func:`estimate_size`): a generic proportional-font width table separates a 14 pt
heading from 11 pt body text even where the detector gives both boxes the same height.
:func:`lines_from_dicts` reads the line dicts of the engine's reply
(:mod:`ocrclient.engines.read`).

>>> round(em_width("Table 1"), 3)
3.335
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Box",
    "Line",
    "Measured",
    "area",
    "em_width",
    "estimate_size",
    "lines_from_dicts",
    "overlap",
    "shared_area",
    "union",
    "weighted_median",
]

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


def em_width(text: str) -> float:
    """The width of ``text`` in em of a generic proportional font."""
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


class Measured(abc.ABC):
    """The coordinates of the box the layout rules measure (:attr:`mbox`), for lines and tables."""

    @property
    @abc.abstractmethod
    def mbox(self) -> Box: ...

    @property
    def x0(self) -> float:
        return self.mbox[0]

    @property
    def y0(self) -> float:
        return self.mbox[1]

    @property
    def x1(self) -> float:
        return self.mbox[2]

    @property
    def y1(self) -> float:
        return self.mbox[3]

    @property
    def w(self) -> float:
        return self.mbox[2] - self.mbox[0]

    @property
    def h(self) -> float:
        return self.mbox[3] - self.mbox[1]

    @property
    def cy(self) -> float:
        return (self.mbox[1] + self.mbox[3]) / 2


@dataclass
class Line(Measured):
    """A recognised line: ``box`` is what is reported, ``lbox`` what the layout rules measure (the
    detector's box, padded to the line height, when the transport sends it as ``det_box``: ink-tight
    boxes vary with ascenders and descenders, which would upset gap and size rules)."""

    text: str
    box: Box
    score: float
    words: list[dict[str, Any]] = field(default_factory=list)
    lbox: Box = (0.0, 0.0, 0.0, 0.0)
    size: float = 0.0  # estimated font size (em) in pixels
    source: str | None = None  # "text-layer" or "ocr", when the reply says per line
    cap: Box | None = None  # the line starts with a drop cap: its box (the lines beside it are indented by it)

    def __post_init__(self) -> None:
        if self.lbox == (0.0, 0.0, 0.0, 0.0):
            self.lbox = self.box

    @property
    def mbox(self) -> Box:
        return self.lbox


def union(boxes: Iterable[Box]) -> Box:
    """The smallest box holding ``boxes``."""
    bs = list(boxes)
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def area(box: Sequence[float]) -> float:
    """The area of a box (0 for an empty one)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def shared_area(a: Sequence[float], b: Sequence[float]) -> float:
    """The area two boxes have in common."""
    return area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """What two boxes have in common, as a share of the smaller one."""
    shared = shared_area(a, b)
    if shared <= 0:
        return 0.0
    return shared / max(min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])), 1e-6)


def estimate_size(text: str, box: Box) -> float:
    """The font size (em) in pixels of a line of ``text`` whose detector box is ``box``."""
    w, h = box[2] - box[0], box[3] - box[1]
    em = em_width(text.strip())
    if len(text.strip()) < 4 or em < 1.5:
        return h / 1.3  # too little text to trust the width
    # the detector pads a box by a fraction of its height on each side
    return max(w - 0.25 * h, 1.0) / em


def weighted_median(values: Sequence[tuple[float, float]]) -> float:
    """Median of ``(value, weight)`` pairs."""
    pairs = sorted(values)
    total = sum(w for _, w in pairs)
    acc = 0.0
    for v, w in pairs:
        acc += w
        if acc >= total / 2:
            return v
    return pairs[-1][0]


def lines_from_dicts(raw: Iterable[dict[str, Any]]) -> list[Line]:
    """The engine's line dicts -> :class:`Line` objects; lines without text or with an empty box,
    and short runs of punctuation (read off rules and drawings), are left out."""
    out: list[Line] = []
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
        line = Line(text, (x0, y0, x1, y1), float(item.get("score") or 0.0), words, lbox)
        if item.get("source") in ("text-layer", "ocr"):
            line.source = str(item["source"])
        size = item.get("size")
        if isinstance(size, (int, float)) and size > 0:
            line.size = float(size)  # the text layer knows it
        cap = item.get("cap")
        if isinstance(cap, (list, tuple)) and len(cap) == 4:
            line.cap = (float(cap[0]), float(cap[1]), float(cap[2]), float(cap[3]))
        out.append(line)
    return join_drop_caps(out)


def join_drop_caps(lines: list[Line]) -> list[Line]:
    """A drop cap read as a line of its own (one large letter, at least two lines tall, its top
    level with the line just right of it) put back at the start of that line, as its first
    word's first letter (it was a title of one letter, and the paragraph beside it read out of
    order); the line keeps its own height and records the cap (:attr:`Line.cap`)."""
    out = list(lines)
    for cap in lines:
        if not (len(cap.text) == 1 and cap.text.isalpha()):
            continue
        size = cap.size or cap.h
        beside = [ln for ln in out if ln is not cap and ln.cap is None and ln.text[:1].islower()
                  and -0.5 * (ln.size or ln.h) <= ln.x0 - cap.x1 <= 2.0 * (ln.size or ln.h) and cap.h >= 2.0 * ln.h
                  and abs(ln.y0 - cap.y0) <= 0.75 * ln.h and size > 1.5 * (ln.size or ln.h)]  # fmt: skip
        if not beside:
            continue
        first = min(beside, key=lambda ln: ln.y0)
        first.text = cap.text + first.text
        first.box = (cap.x0, first.box[1], first.box[2], first.box[3])
        first.lbox = (cap.x0, first.lbox[1], first.lbox[2], first.lbox[3])
        if first.words:
            w = dict(first.words[0])
            w["text"] = cap.text + str(w.get("text", ""))
            if w.get("box"):
                w["box"] = [cap.x0, *list(w["box"])[1:]]
            first.words = [w, *first.words[1:]]
        first.cap = cap.box
        out.remove(cap)
    return out
