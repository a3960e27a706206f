"""The RapidOCR engine: its settings, loading it once per process, running it on one image.

Nothing is downloaded: the detection, orientation and recognition models that RapidOCR 3.x
ships in its wheel are loaded from the installed package, once per process (a lazy, lock-guarded
singleton per :class:`EngineSettings`, shared by every transport built with them).  Calls into
the engine are serialized with a lock (:func:`run_engine`), because ``RapidOCR.__call__`` mutates
the engine's settings and because on a small CPU one page at a time with all cores (onnxruntime
intra-op threads = CPU count) is faster than two pages fighting for the same cores.

``rapidocr`` and ``onnxruntime`` (the ``[local]`` extra) are imported only when an engine is built
or checked (:func:`engine_missing`), never when this module is imported.

:func:`lines_from_result` turns RapidOCR's result into line dicts ``{"text", "score", "box":
[x0, y0, x1, y1], "words": [{"text", "score", "box"}, ...]}``: RapidOCR's polygons reduced to
their axis-aligned bounds, in pixels of the image given (RapidOCR maps its internal downscale of
images longer than ``max_side_len`` back itself, and the tests check it).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, PermanentError

__all__ = [
    "ENGINE_MODULES",
    "INSTALL_HINT",
    "THREADS_ENV",
    "Engine",
    "EngineSettings",
    "engine_constructions",
    "engine_missing",
    "get_engine",
    "lines_from_result",
    "rapidocr_version",
    "run_engine",
]

#: the engine's intra-op threads where its settings leave them at 0 (see :class:`EngineSettings`)
THREADS_ENV = "OCRCLIENT_LOCAL_THREADS"


@dataclass(frozen=True)
class EngineSettings:
    """What the one RapidOCR engine of a process is built with.

    * ``threads`` – onnxruntime intra-op threads (``0``: ``$OCRCLIENT_LOCAL_THREADS`` when set, as
      for several ``ocr`` processes side by side on one machine, each spinning on every core
      otherwise; else the CPU count, capped at 8);
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
        """The intra-op threads; :class:`ConfigError` for an ``$OCRCLIENT_LOCAL_THREADS`` that is
        not a whole number from 1 on."""
        if self.threads > 0:
            return self.threads
        if env := os.environ.get(THREADS_ENV, "").strip():
            if not (env.isascii() and env.isdigit()) or int(env) < 1:
                raise ConfigError(f"{THREADS_ENV} must be a whole number of threads, 1 or more; got {env[:40]!r}")
            return int(env)
        from ..pages.pool import usable_cpus  # the CPUs this process may use (containers)

        return max(1, min(usable_cpus(), 8))

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


class _KeepCharScores:
    """Wraps RapidOCR's word-box step (``RapidOCR.cal_rec_boxes``), the last place where each
    line's per-character probabilities are whole: it replaces them with word tuples whose scores
    are not aligned with their words.  Keeps ``(text, probabilities)`` per recognised line of the
    last call (read under the engine's run lock)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last: list[tuple[str, list[float]]] = []
        #: per line of the last call, whether the orientation classifier turned its crop half a
        #: turn before it was read (see :class:`_KeepTurns`)
        self.turned: list[bool] = []
        self.turns: _KeepTurns | None = None

    def __call__(self, imgs: Any, dt_boxes: Any, rec_res: Any, *args: Any, **kwargs: Any) -> Any:
        txts = getattr(rec_res, "txts", None) or ()
        infos = getattr(rec_res, "word_results", None) or ()
        self.last = [(str(t), [float(c) for c in getattr(w, "confs", None) or []]) for t, w in zip(txts, infos, strict=False)]
        self.turned = self.turns.kept_lines() if self.turns is not None else []
        return self.inner(imgs, dt_boxes, rec_res, *args, **kwargs)


class _KeepTurns:
    """Wraps RapidOCR's orientation step (``cls_and_rotate``) and its recogniser
    (``recognize_txt``) to learn which lines were read turned half a turn ("180"): RapidOCR then
    places their words as if they were not (each word's box lands mirrored along its line), and
    :func:`lines_from_result` puts them back (:func:`_mirror_words`).  The lines RapidOCR keeps
    for its word step are those whose text is not blank, in order."""

    def __init__(self, ocr: Any) -> None:
        self.ocr = ocr
        self.cls, self.rec = ocr.cls_and_rotate, ocr.recognize_txt
        self.labels: list[bool] = []  # per crop: turned before it was read
        self.texts: list[str] = []

    def classify(self, imgs: Any) -> Any:
        images, res = self.cls(imgs)
        # the classifier turns a crop it calls "180" with a score over its threshold
        thresh = float(getattr(getattr(self.ocr, "text_cls", None), "cls_thresh", 0.9))
        self.labels = ["180" in str(label) and float(score) > thresh for label, score in (getattr(res, "cls_res", None) or [])]
        return images, res

    def recognize(self, imgs: Any) -> Any:
        res = self.rec(imgs)
        self._second_opinion(imgs, res)
        self.texts = [str(t) for t in (getattr(res, "txts", None) or [])]
        return res

    def _second_opinion(self, imgs: Any, res: Any) -> None:
        """Each crop the classifier turned half a turn is read once more as it was found, and
        the better scored of its two readings is kept: the classifier turns a few lines of an
        upright page too, and those read as nonsense (``"This  e   es  ss  sa."`` for ``"This
        report summarises ..."`` on the sample at 100 dpi).  A line kept as found is no longer
        counted turned (its words are placed as found)."""
        import numpy as np

        turned = [i for i, t in enumerate(self.labels) if t and i < len(imgs)]
        txts, scores, words = getattr(res, "txts", None), getattr(res, "scores", None), getattr(res, "word_results", None)
        if not turned or txts is None or scores is None or words is None or len(words) != len(txts):
            return
        found = self.rec([np.ascontiguousarray(np.rot90(imgs[i], 2)) for i in turned])
        txts, scores, words = list(txts), list(scores), list(words)
        for k, i in enumerate(turned):
            if k < len(found.txts) and str(found.txts[k]).strip() and float(found.scores[k]) > float(scores[i]):
                txts[i], scores[i], words[i] = found.txts[k], found.scores[k], found.word_results[k]
                self.labels[i] = False
        res.txts, res.scores, res.word_results = tuple(txts), scores, tuple(words)

    def kept_lines(self) -> list[bool]:
        kept = [i for i, t in enumerate(self.texts) if t.strip()]
        return [i < len(self.labels) and self.labels[i] for i in kept]


@dataclass
class Engine:
    """A loaded engine: the RapidOCR object, its model files, its lock and how long it took to load."""

    ocr: Any
    models: dict[str, str]
    run_lock: threading.Lock
    load_s: float

    @property
    def char_scores(self) -> _KeepCharScores | None:
        keep = getattr(self.ocr, "cal_rec_boxes", None)
        return keep if isinstance(keep, _KeepCharScores) else None


_ENGINES: dict[tuple[tuple[str, Any], ...], Engine] = {}
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

    from ..console import signals_held

    for name in ENGINE_MODULES:
        try:
            with signals_held():  # (a Ctrl-C inside NumPy's import read as a broken install)
                importlib.import_module(name)
        except ImportError as exc:
            why = " ".join(str(exc).split())[:200] or f"{name} cannot be imported"
            return f"the local backend needs rapidocr and onnxruntime ({why}); install them with: {INSTALL_HINT}"
    return None


def get_engine(settings: EngineSettings | None = None) -> Engine:
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
        from ..console import signals_held

        try:
            with signals_held():  # (a Ctrl-C inside NumPy's import read as a broken install)
                from rapidocr import RapidOCR
        except ImportError as exc:
            raise ConfigError(
                f"the local backend needs rapidocr and onnxruntime ({exc}); install them with: {INSTALL_HINT}"
            ) from exc
        start = time.perf_counter()
        try:
            ocr: Any = RapidOCR(params=settings.params())
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
        if callable(getattr(ocr, "cal_rec_boxes", None)):
            ocr.cal_rec_boxes = keep = _KeepCharScores(ocr.cal_rec_boxes)
            if callable(getattr(ocr, "cls_and_rotate", None)) and callable(getattr(ocr, "recognize_txt", None)):
                keep.turns = turns = _KeepTurns(ocr)
                ocr.cls_and_rotate, ocr.recognize_txt = turns.classify, turns.recognize
        _CONSTRUCTIONS += 1
        engine = Engine(
            ocr=ocr,
            models={k: _model_name(v) for k, v in parts.items()},
            run_lock=threading.Lock(),
            load_s=time.perf_counter() - start,
        )
        _ENGINES[key] = engine
        return engine


def run_engine(engine: Engine, image: Any) -> Any:
    """RapidOCR's result for ``image`` (a PIL image), one call at a time per engine; an engine
    failure is a :class:`PermanentError` for this page."""
    with engine.run_lock:
        keep = engine.char_scores
        if keep is not None:
            keep.last, keep.turned = [], []
            if keep.turns is not None:
                keep.turns.labels, keep.turns.texts = [], []
        try:
            result = engine.ocr(image, return_word_box=True)
        except Exception as exc:
            raise PermanentError(
                f"the local engine failed on this page: {_one_line(exc)}", cause="engine_error"
            ) from exc
        if keep is not None and getattr(result, "txts", None):
            result.char_scores = _aligned_scores(result.txts, keep.last)
            at = _aligned(result.txts, [t for t, _ in keep.last])
            result.turned = [j is not None and j < len(keep.turned) and keep.turned[j] for j in at]
        return result


def _aligned(txts: Sequence[str], kept: Sequence[str]) -> list[int | None]:
    """Per output line, its index in ``kept`` (every recognised line's text, in order; the output
    is the subset above the text score), found by walking both."""
    out: list[int | None] = []
    j = 0
    for txt in txts:
        while j < len(kept) and kept[j] != txt:
            j += 1
        out.append(j if j < len(kept) else None)
        j += 1
    return out


def _aligned_scores(txts: Sequence[str], kept: list[tuple[str, list[float]]]) -> list[list[float] | None]:
    """Per output line, its characters' probabilities (``kept``: every recognised line's text
    and probabilities, in order)."""
    at = _aligned(txts, [t for t, _ in kept])
    return [kept[j][1] if j is not None and len(kept[j][1]) == len(txt) else None for txt, j in zip(txts, at, strict=True)]


def _mirror_words(words: list[dict[str, Any]], line: list[float]) -> None:
    """Put back the words of a line the orientation classifier turned half a turn: RapidOCR places
    them as if it had not, mirrored along the line (down it, for a line that runs down the image:
    :func:`~ocrclient.engines.ink.runs_down`)."""
    from .ink import runs_down

    x0, y0, x1, y1 = line
    if runs_down(line):
        for w in words:
            b = w["box"]
            w["box"] = [b[0], y0 + y1 - b[3], b[2], y0 + y1 - b[1]]
    else:
        for w in words:
            b = w["box"]
            w["box"] = [x0 + x1 - b[2], b[1], x0 + x1 - b[0], b[3]]


def rapidocr_version() -> str | None:
    """The installed ``rapidocr`` version (``None`` when it is not installed)."""
    try:
        from importlib.metadata import version

        return version("rapidocr")
    except Exception:
        return None


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


def lines_from_result(result: Any) -> list[dict[str, Any]]:
    """RapidOCR's result -> line dicts (see the module docstring); lines without text are left out."""
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
    char_scores = list(getattr(result, "char_scores", None) or [])
    turned = list(getattr(result, "turned", None) or [])
    lines: list[dict[str, Any]] = []
    for i, txt in enumerate(txts):
        text = str(txt).strip()
        if not text:
            continue
        chars = char_scores[i] if i < len(char_scores) else None
        words = []
        for w in words_per_line[i] if i < len(words_per_line) else []:
            wtext, wscore, wbox = w[0], w[1], w[2]
            if wbox is None or not str(wtext).strip():
                continue
            words.append(
                {"text": str(wtext), "score": round(float(wscore), 4), "box": _axis_box(wbox)}
            )
        flip = i < len(turned) and turned[i]
        if flip:
            _mirror_words(words, _axis_box(boxes[i]))
        line: dict[str, Any] = {
            "text": text,
            "score": round(float(scores[i]), 4),
            "box": _axis_box(boxes[i]),
            "words": words,
        }
        if flip:  # read upside down (engines.tiling orders its words; ink.place_words drops it)
            line["_turned"] = True
        if chars is not None:  # consumed by engines.script.drop_foreign
            lead = len(str(txt)) - len(str(txt).lstrip())
            line["_chars"] = chars[lead : lead + len(text)]
        lines.append(line)
    return lines
