"""The embedded CPU backend: RapidOCR (ONNX models shipped inside the ``rapidocr`` wheel), in-process.

Nothing is downloaded: the detection, orientation and recognition models that RapidOCR 3.x
ships in its wheel are loaded from the installed package, once per process (a lazy, lock-guarded
singleton shared by every :class:`LocalTransport` with the same settings).  Each page runs in a
worker thread (:func:`asyncio.to_thread`) so the event loop stays free; calls into the engine are
serialized with a lock, because ``RapidOCR.__call__`` mutates the engine's settings and because
on a small CPU one page at a time with all cores (onnxruntime intra-op threads = CPU count) is
faster than two pages fighting for the same cores.

The request body is ``{"image": <encoded image bytes>}`` (built by
:class:`ocrclient.dialects.rapidocr.RapidOCRDialect`).  The reply's ``text`` is the recognised
lines joined by newlines; ``data["lines"]`` holds every line as
``{"text", "score", "box": [x0, y0, x1, y1], "det_box": [...], "words": [{"text", "score",
"box"}, ...]}``.  Boxes are axis-aligned (RapidOCR's polygons reduced to their bounds), in pixels
of the image that was sent — RapidOCR maps its internal downscale of images longer than
``max_side_len`` back itself, and the tests check it.  ``det_box`` is the detector's box, padded
around the text by a fraction of its height; ``box`` is that box shrunk to the ink it holds
(``tight_boxes``), and word boxes share their line's vertical extent.

Example::

    >>> import asyncio
    >>> from ocrclient.transports.base import ModelRequest
    >>> t = LocalTransport()
    >>> png = open("examples/page.png", "rb").read()            # doctest: +SKIP
    >>> reply = asyncio.run(t.send(ModelRequest(body={"image": png})))  # doctest: +SKIP
    >>> reply.data["lines"][0]["text"], reply.data["lines"][0]["box"]    # doctest: +SKIP
    ('Quarterly Field Report', [152.0, 172.0, 676.0, 219.0])
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PermanentError
from ..transports.base import Health, ModelReply, ModelRequest

if TYPE_CHECKING:
    from ..config import BackendConfig

__all__ = [
    "EngineSettings",
    "LocalTransport",
    "Tile",
    "engine_constructions",
    "get_engine",
    "plan_tiles",
]


@dataclass(frozen=True)
class EngineSettings:
    """What the one RapidOCR engine of a process is built with.

    * ``threads`` – onnxruntime intra-op threads (default: the CPU count, capped at 8);
    * ``max_side_len`` – RapidOCR downscales images whose longest side is larger (boxes are still
      returned in pixels of the image sent);
    * ``use_cls`` – run the 0/180 degree text-line orientation classifier;
    * ``text_score`` – lines recognised with a lower confidence are dropped;
    * ``tight_boxes`` – shrink the detector's padded boxes to the ink they contain (the raw
      detector box is kept as ``det_box``).  Not an engine setting: engines are shared across it.
    """

    threads: int = 0
    max_side_len: int = 2000
    use_cls: bool = True
    text_score: float = 0.5
    tight_boxes: bool = True

    def resolved_threads(self) -> int:
        if self.threads > 0:
            return self.threads
        try:
            cpus = len(os.sched_getaffinity(0))  # the CPUs this process may use (containers)
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, 8))

    def params(self) -> dict[str, Any]:
        """RapidOCR ``params`` (dotted config keys)."""
        return {
            "Global.log_level": "error",
            "Global.max_side_len": int(self.max_side_len),
            "Global.use_cls": bool(self.use_cls),
            "Global.text_score": float(self.text_score),
            "EngineConfig.onnxruntime.intra_op_num_threads": self.resolved_threads(),
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }


@dataclass
class _Engine:
    ocr: Any
    models: dict[str, str]
    run_lock: threading.Lock
    load_s: float


_ENGINES: dict[tuple[tuple[str, Any], ...], _Engine] = {}
_ENGINES_LOCK = threading.Lock()
_CONSTRUCTIONS = 0


def engine_constructions() -> int:
    """How many RapidOCR engines this process has built (tests assert it stays at one)."""
    return _CONSTRUCTIONS


def _quiet_rapidocr_logging() -> None:
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (onnxruntime errors carry a whole traceback as message)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if lines and lines[0].startswith("Traceback"):
        lines = lines[-1:]
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _model_name(part: Any) -> str:
    session = getattr(getattr(part, "session", None), "session", None)
    path = getattr(session, "_model_path", None)
    return Path(str(path)).name if path else type(part).__name__


#: the modules the engine needs (the ``[local]`` extra)
ENGINE_MODULES = ("rapidocr", "onnxruntime")
INSTALL_HINT = "pip install 'ocrclient[local]'"


def engine_missing() -> str | None:
    """Why the engine cannot run here (one line, saying how to install it), or ``None``: the
    modules of the ``[local]`` extra are imported (cheap next to building the engine), so a
    missing or broken install is a configuration error before any page is rendered."""
    import importlib

    for name in ENGINE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            why = " ".join(str(exc).split())[:200] or f"{name} cannot be imported"
            return f"the local backend needs rapidocr and onnxruntime ({why}); install them with: {INSTALL_HINT}"
    return None


def get_engine(settings: EngineSettings | None = None) -> _Engine:
    """The process-wide engine for ``settings``, built (models loaded) on first use."""
    global _CONSTRUCTIONS
    settings = settings or EngineSettings()
    key = tuple(sorted(settings.params().items()))
    engine = _ENGINES.get(key)
    if engine is not None:
        return engine
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None:
            return engine
        _quiet_rapidocr_logging()
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise ConfigError(
                f"the local backend needs rapidocr and onnxruntime ({exc}); install them with: {INSTALL_HINT}"
            ) from exc
        start = time.perf_counter()
        try:
            ocr = RapidOCR(params=settings.params())
            # RapidOCR loads its models lazily on the first page; load them now so that a
            # broken install fails here (and health() says so) rather than on page one.
            parts: dict[str, Any] = {}
            for part, loader in (("det", "_load_det_model"), ("cls", "_load_cls_model"),
                                 ("rec", "_load_rec_model")):  # fmt: skip
                if part == "cls" and not settings.use_cls:
                    continue
                load = getattr(ocr, loader, None)
                if load is not None:
                    parts[part] = load()
        except Exception as exc:  # a broken install or a model that would need downloading
            raise ConfigError(f"cannot load the RapidOCR engine: {_one_line(exc)}") from exc
        _quiet_rapidocr_logging()
        _CONSTRUCTIONS += 1
        engine = _Engine(
            ocr=ocr,
            models={k: _model_name(v) for k, v in parts.items()},
            run_lock=threading.Lock(),
            load_s=time.perf_counter() - start,
        )
        _ENGINES[key] = engine
        return engine


def _axis_box(points: Any) -> list[float]:
    """A polygon (sequence of [x, y]) -> ``[x0, y0, x1, y1]``."""
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return [round(min(xs), 2), round(min(ys), 2), round(max(xs), 2), round(max(ys), 2)]


def _squash(text: str) -> str:
    return "".join(text.split())


def _align_words(txts: Sequence[str], groups: Sequence[Any]) -> list[list[Any]]:
    """RapidOCR drops the word list of a line whose word boxes could not be computed, so the word
    groups are not always index-aligned with the lines: align them by their text."""
    if len(groups) == len(txts):
        return [list(g) for g in groups]
    out: list[list[Any]] = []
    j = 0
    for txt in txts:
        if j < len(groups) and _squash("".join(str(w[0]) for w in groups[j])) == _squash(txt):
            out.append(list(groups[j]))
            j += 1
        else:
            out.append([])
    return out


def _lines_from_result(result: Any) -> list[dict[str, Any]]:
    txts = getattr(result, "txts", None)
    boxes = getattr(result, "boxes", None)
    if not txts or boxes is None:
        return []
    scores = list(getattr(result, "scores", None) or [0.0] * len(txts))
    groups = getattr(result, "word_results", None) or ()
    # an empty result carries the placeholder (("", 1.0, None),)
    groups = tuple(
        g for g in groups if g and isinstance(g, (list, tuple)) and isinstance(g[0], (list, tuple))
    )
    words_per_line = _align_words(list(txts), groups)
    lines: list[dict[str, Any]] = []
    for i, txt in enumerate(txts):
        text = str(txt).strip()
        if not text:
            continue
        words = []
        for w in words_per_line[i] if i < len(words_per_line) else []:
            wtext, wscore, wbox = w[0], w[1], w[2]
            if wbox is None or not str(wtext).strip():
                continue
            words.append(
                {"text": str(wtext), "score": round(float(wscore), 4), "box": _axis_box(wbox)}
            )
        lines.append(
            {
                "text": text,
                "score": round(float(scores[i]), 4),
                "box": _axis_box(boxes[i]),
                "words": words,
            }
        )
    return lines


def _decode(data: bytes) -> Any:
    """The sent image, decoded (a loaded PIL image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))  # in-memory: nothing to close
        img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PermanentError(
            f"the local engine cannot decode the page image ({exc})", cause="bad_image"
        ) from exc


def _tighten(gray: Any, box: Sequence[float], rules: bool = True) -> list[float]:
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


def _place_words(gray: Any, line: dict[str, Any], width: int, height: int, tight: bool) -> None:
    """Word boxes share their line's vertical extent.  RapidOCR places words from the recogniser's
    character columns, which can cut a glyph short, so with ``tight`` each word box is first
    widened by a fifth of the line height (never past the line or half-way to its neighbours)
    and then shrunk to its ink."""
    lx0, ly0, lx1, ly1 = line["box"]
    words = line["words"]
    spans = [_clip(w["box"], width, height) for w in words]
    pad = 0.2 * (ly1 - ly0) if tight else 0.0
    for i, word in enumerate(words):
        wx0, _, wx1, _ = spans[i]
        lo = max(lx0, (spans[i - 1][2] + wx0) / 2 if i > 0 else lx0)
        hi = min(lx1, (wx1 + spans[i + 1][0]) / 2 if i + 1 < len(spans) else lx1)
        x0, x1 = max(lo, wx0 - pad), min(hi, wx1 + pad)
        box = [x0, ly0, max(x1, x0 + 1), ly1]
        word["box"] = _tighten(gray, box, rules=False) if tight else box


def _clip(box: list[float], width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = box
    return [max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)]


#: pages whose long side is more than this many times their short side are read in tiles
TILE_ASPECT = 4.0


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

    >>> [(t.start, t.end) for t in plan_tiles(100, 1000)]
    [(0, 300), (100, 500), (300, 700), (500, 900), (700, 1000)]
    >>> len(plan_tiles(1275, 1650))
    1
    """
    long_side, short_side = max(width, height), max(1, min(width, height))
    if long_side <= aspect * short_side:
        return [Tile(0, long_side, 0, long_side)]
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


def _shift(line: dict[str, Any], dx: float, dy: float) -> None:
    for item in (line, *line["words"]):
        b = item["box"]
        item["box"] = [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy]


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


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over the smaller of the two boxes' areas."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / max(smaller, 1e-6)


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
        if not any(_overlap(k.box, s.box) > limit for k in kept):
            kept.append(s)
    return kept


def _merge_tall(per_tile: list[list[dict[str, Any]]], tiles: list[Tile], long_side: int) -> list[dict[str, Any]]:
    """Tall pages: lines run across the tiles, so each is whole in the tile that sees it best
    (the overlap, a quarter tile, is far taller than a line)."""
    seen = [_seen(line, tiles, i, 1, long_side) for i, lines in enumerate(per_tile) for line in lines]
    out = [s.item for s in _dedupe(seen)]
    out.sort(key=lambda ln: (ln["box"][1], ln["box"][0]))
    return out


def _merge_wide(per_tile: list[list[dict[str, Any]]], tiles: list[Tile], long_side: int) -> list[dict[str, Any]]:
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
                s.line, s.sep = j, sep
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
        row.sort(key=lambda s: s.box[0])
        height = max(r.box[3] for r in row) - min(r.box[1] for r in row)
        groups: list[list[_Seen]] = [[row[0]]]
        for prev, s in itertools.pairwise(row):
            if s.box[0] - prev.box[2] > 1.2 * height:
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
                }
            )
    out.sort(key=lambda ln: (ln["box"][1], ln["box"][0]))
    return out


class LocalTransport:
    """Runs RapidOCR in-process, on the CPU.

    ``from_config`` reads ``transport_options``: ``threads`` (onnxruntime intra-op threads,
    default the CPU count), ``max_side_len`` (default 2000), ``use_cls`` (default true),
    ``text_score`` (default 0.5), ``tight_boxes`` (default true).

    Example::

        t = LocalTransport()
        reply = await t.send(ModelRequest(body={"image": png_bytes}))
        reply.text                 # "Quarterly Field Report\\nPrepared by ..."
        reply.data["lines"][0]     # {"text": ..., "score": 0.99, "box": [...], "words": [...]}
    """

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> LocalTransport:
        """Raises :class:`ConfigError` for unknown options and when the engine is not installed
        (so a run without the ``[local]`` extra stops before any page, exit code 2)."""
        opts = dict(cfg.transport_options)
        known = {"threads", "max_side_len", "use_cls", "text_score", "tight_boxes"}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise ConfigError(
                f"backend {cfg.name!r}: unknown transport option(s) {', '.join(unknown)} "
                f"for the local engine (known: {', '.join(sorted(known))})"
            )
        try:
            settings = EngineSettings(
                threads=int(opts.get("threads", 0)),
                max_side_len=int(opts.get("max_side_len", 2000)),
                use_cls=bool(opts.get("use_cls", True)),
                text_score=float(opts.get("text_score", 0.5)),
                tight_boxes=bool(opts.get("tight_boxes", True)),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backend {cfg.name!r}: bad transport option ({exc})") from exc
        if why := engine_missing():
            raise ConfigError(why)
        return cls(settings)

    # -- the seam ----------------------------------------------------------------------------
    async def send(self, request: ModelRequest) -> ModelReply:
        image = request.body.get("image")
        if not isinstance(image, (bytes, bytearray)) or not image:
            raise PermanentError(
                "the local engine needs the page image bytes in body['image']", cause="bad_request"
            )
        return await asyncio.to_thread(self._run, bytes(image))

    async def health(self) -> Health:
        try:
            engine = await asyncio.to_thread(get_engine, self.settings)
        except ConfigError as exc:
            return Health(ok=False, detail=str(exc))
        models = ", ".join(f"{k}={v}" for k, v in engine.models.items())
        return Health(
            ok=True,
            detail=f"RapidOCR loaded in-process ({models})",
            info={
                "engine": "rapidocr",
                "version": _rapidocr_version(),
                "models": dict(engine.models),
                "threads": self.settings.resolved_threads(),
                "load_s": round(engine.load_s, 3),
            },
        )

    async def aclose(self) -> None:
        """Nothing to close: the engine is shared by the whole process and lives with it."""

    # -- work (in a worker thread) -------------------------------------------------------------
    def _run(self, data: bytes) -> ModelReply:
        import numpy as np

        image = _decode(data)
        gray = np.asarray(image.convert("L"))
        height, width = gray.shape
        engine = get_engine(self.settings)
        start = time.perf_counter()
        tiles = plan_tiles(width, height, max_side=self.settings.max_side_len)
        if len(tiles) == 1:
            lines = _lines_from_result(self._ocr(engine, image))
        else:
            lines = self._run_tiled(engine, image, tiles, vertical=height > width)
        for line in lines:
            line["det_box"] = _clip(line["box"], width, height)
            line["box"] = (
                _tighten(gray, line["det_box"]) if self.settings.tight_boxes else line["det_box"]
            )
            _place_words(gray, line, width, height, self.settings.tight_boxes)
        elapsed = time.perf_counter() - start
        data_out: dict[str, Any] = {
            "lines": lines,
            "image_size": [width, height],
            "engine": "rapidocr",
        }
        if len(tiles) > 1:
            data_out["tiles"] = len(tiles)
        return ModelReply(
            text="\n".join(line["text"] for line in lines),
            finish_reason="stop",
            latency_s=elapsed,
            data=data_out,
        )

    @staticmethod
    def _ocr(engine: _Engine, image: Any) -> Any:
        with engine.run_lock:
            try:
                return engine.ocr(image, return_word_box=True)
            except Exception as exc:
                raise PermanentError(
                    f"the local engine failed on this page: {_one_line(exc)}", cause="engine_error"
                ) from exc

    def _run_tiled(
        self, engine: _Engine, image: Any, tiles: list[Tile], vertical: bool
    ) -> list[dict[str, Any]]:
        """OCR an extreme-aspect page (the decoded image) tile by tile (see :func:`plan_tiles`)
        and merge what the tiles read."""
        rgb = image.convert("RGB")
        per_tile: list[list[dict[str, Any]]] = []
        for tile in tiles:
            x0, y0 = (0, tile.start) if vertical else (tile.start, 0)
            x1, y1 = (rgb.width, tile.end) if vertical else (tile.end, rgb.height)
            lines = _lines_from_result(self._ocr(engine, rgb.crop((x0, y0, x1, y1))))
            for line in lines:
                _shift(line, x0, y0)
            per_tile.append(lines)
        if vertical:
            return _merge_tall(per_tile, tiles, rgb.height)
        return _merge_wide(per_tile, tiles, rgb.width)


def _rapidocr_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("rapidocr")
    except Exception:
        return None
