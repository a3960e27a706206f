"""One PDF page for the ``local`` backend: from its own text layer when that can be trusted, else OCR.

:func:`read_pdf_page` is what the in-process transport (:mod:`ocrclient.transports.local`) runs
for a page whose request names its PDF (``body["pdf"] = {"path", "index", "mode"}``, set by the
``rapidocr`` dialect from the rendered page).  ``mode`` is the ``text_layer`` option:

* ``"auto"`` (default) – the text layer when :func:`ocrclient.engines.trust.judge` trusts it;
* ``"always"`` – the text layer whenever the page has one (a page without any character is
  OCR'd: there is nothing else to read);
* ``"never"`` – OCR (the dialect then does not name the PDF at all).

A text-layer reply has the OCR reply's ``data`` format (:mod:`ocrclient.engines.read`) with
``"engine": "pdf-text-layer"`` and ``"source": "text-layer"``; its lines are in pixels of the
page *upright* (``"rotation"``: the page's ``/Rotate``, which the dialect applies to the boxes
it reports).  ``"text_layer"`` says why the layer was (not) used, and holds what the layout uses
from it: ``"rules"`` (ruling lines, for tables) and ``"repeated"`` (the lines of the top and
bottom bands of up to two neighbouring pages, digits folded, for page furniture).  An OCR reply
gets ``"source": "ocr"`` and the same ``"text_layer"`` note.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .orientation import to_upright
from .rapidocr import EngineSettings
from .text_layer import Layer, band_lines, layer_lines, read_layer
from .trust import Sampler, Verdict, inked, judge

__all__ = ["MODES", "PageReading", "read_pdf_page"]

MODES = ("auto", "always", "never")
log = logging.getLogger("ocrclient.engines.pdf_page")


@dataclass
class PageReading:
    """What one page gave: its text, the reply's ``data`` and the seconds the engine took."""

    text: str
    data: dict[str, Any]
    seconds: float


def _sampler(settings: EngineSettings) -> Sampler:
    """The recogniser on a few crops (one batched call, under the engine's lock)."""

    def sample(crops: list[Any]) -> list[str]:
        import numpy as np

        from .rapidocr import get_engine

        engine = get_engine(settings)
        try:
            from rapidocr.ch_ppocr_rec.typings import TextRecInput

            imgs = [np.ascontiguousarray(np.stack([c, c, c], axis=-1)) for c in crops]
            with engine.run_lock:
                out = engine.ocr.text_rec(TextRecInput(img=imgs))
            return [str(t) for t in out.txts]
        except Exception as exc:  # an engine without this entry point: no sample, no verdict
            log.debug("sample read failed: %s", exc)
            return []

    return sample


def _ocr(image: Any, settings: EngineSettings, why: str, start: float) -> PageReading:
    """OCR of the page image (its bytes, or the PIL image already decoded: not decoded twice)."""
    from .read import read_image

    reading = read_image(image, settings)
    data = reading.data()
    data["source"] = "ocr"
    data["text_layer"] = {"used": False, "why": why}
    return PageReading(reading.text, data, time.perf_counter() - start)


def _overlap(a: list[float], b: list[float]) -> float:
    """The intersection of two boxes as a share of the smaller one."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / max(small, 1e-6)


def _hybrid(
    image: Any, settings: EngineSettings, why: str, start: float, layer_lines: list[dict[str, Any]]
) -> PageReading:
    """A page that is mostly image (``image``, decoded; the layer's lines are in its pixels):
    OCR'd (the words in the images), with the text layer's own lines in place of the OCR lines
    they cover (exact text where the layer has it)."""
    page = _ocr(image, settings, why, start)
    if not layer_lines:
        return page
    rotation = int(page.data.get("rotation") or 0)
    if rotation:  # the OCR read the page turned upright (engines.orientation): the layer too
        layer_lines = to_upright(layer_lines, rotation, *image.size)
    ocr_lines = page.data.get("lines") or []
    kept = [o for o in ocr_lines if not any(_overlap(o["box"], t["box"]) >= 0.5 for t in layer_lines)]
    for o in kept:
        o["source"] = "ocr"
    for t in layer_lines:
        t["source"] = "text-layer"
    merged = sorted([*kept, *layer_lines], key=lambda ln: (ln["box"][1], ln["box"][0]))
    page.data["lines"] = merged
    page.data["text_layer"] = {"used": True, "why": why + "; OCR'd, with the layer's lines where it has them"}
    page.text = "\n".join(ln["text"] for ln in merged)
    return page


def _scaled(boxes: list[tuple[float, float, float, float]], scale: float) -> list[list[float]]:
    return [[round(v * scale, 3) for v in b] for b in boxes]


def read_pdf_page(image: bytes, pdf: Mapping[str, Any], settings: EngineSettings) -> PageReading:
    """Read one page (blocking: call it from a worker thread); see the module docstring."""
    from .read import decode

    start = time.perf_counter()
    mode = str(pdf.get("mode") or "auto")
    path, index = str(pdf["path"]), int(pdf["index"])
    try:
        layer: Layer = read_layer(path, index)
    except Exception as exc:  # a file gone or unreadable: the image is still there
        return _ocr(image, settings, f"cannot read the text layer ({type(exc).__name__})", start)
    if not layer.text_chars:
        return _ocr(image, settings, "no text layer", start)
    img = decode(image)  # an undecodable image fails the page either way
    try:
        return _from_layer(image, img, layer, mode, (path, index), settings, start)
    except Exception as exc:  # a defect in the layer's reading must not cost the page: OCR it
        log.warning("page %d of %s: the text layer could not be read: %r", index + 1, path, exc)
        return _ocr(image, settings, f"the text layer could not be read ({type(exc).__name__})", start)


def _from_layer(
    image: bytes, img: Any, layer: Layer, mode: str, where: tuple[str, int], settings: EngineSettings, start: float
) -> PageReading:
    """The page from its layer when it is trusted (or forced), else OCR (or the hybrid)."""
    import numpy as np

    path, index = where
    shown_w = layer.height if layer.rotation in (90, 270) else layer.width
    scale = img.size[0] / max(shown_w, 1e-6)
    upright = img.rotate(layer.rotation, expand=True) if layer.rotation else img
    gray = np.asarray(upright.convert("L"))
    lines = layer_lines(layer, scale)
    if mode == "always":
        verdict = Verdict(True, "forced (text_layer = always)")
    else:
        verdict = judge(layer, lines, gray, _sampler(settings))
    if verdict.image_page and not layer.rotation:
        return _hybrid(img, settings, verdict.why, start, [ln for ln in lines if inked(gray, ln["box"])])
    if not verdict.trusted or not lines:
        return _ocr(img, settings, verdict.why, start)
    data: dict[str, Any] = {
        "lines": lines,
        "image_size": [int(gray.shape[1]), int(gray.shape[0])],
        "engine": "pdf-text-layer",
        "source": "text-layer",
        "rotation": layer.rotation,
        "text_layer": {
            "used": True,
            "why": verdict.why,
            "rules": _scaled(layer.rules, scale),
            "repeated": band_lines(path, index),
        },
    }
    text = "\n".join(ln["text"] for ln in lines)
    return PageReading(text, data, time.perf_counter() - start)
