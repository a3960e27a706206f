"""One PDF page for the ``local`` backend: from its own text layer when that can be trusted, else OCR.

:func:`read_pdf_page` is what the in-process transport (:mod:`ocrclient.transports.local`) runs
for a page whose request names its PDF (``body["pdf"] = {"path", "index", "mode"}``, set by the
``rapidocr`` dialect from the rendered page).  ``mode`` is the ``text_layer`` option:

* ``"auto"`` (default) – the text layer when :func:`ocrclient.engines.trust.judge` trusts it,
  with the words of the page's pictures OCR'd beside it (a screenshot or a scanned table pasted
  into a born-digital page: the layer does not hold them): each image of at least
  :data:`IMAGE_MIN_SHARE` of the page that the layer's lines do not cover (not a scan under its
  OCR layer, not a picture behind text) is read, up to :data:`MAX_IMAGES`, and its lines scored
  :data:`IMAGE_MIN_SCORE` or more that no layer line holds join the page (``"source": "ocr"``);
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

from .furniture import band_lines
from .lines import area, overlap, shared_area
from .orientation import to_upright
from .rapidocr import EngineSettings
from .text_layer import Layer, layer_lines, read_layer
from .trust import Sampler, Verdict, inked, judge

__all__ = ["MODES", "PageReading", "read_pdf_page"]

MODES = ("auto", "always", "never")
#: an image on a page read from its layer is OCR'd for the words in it (a screenshot, a scanned
#: table pasted in) when it is at least this share of the page ...
IMAGE_MIN_SHARE = 0.01
#: ... and at most this share of it lies under the layer's own lines (a scan under its OCR layer,
#: a picture behind text: the layer holds their words)
IMAGE_MAX_COVERED = 0.1
#: the largest images OCR'd on one page
MAX_IMAGES = 8
#: the least score of a line read in an image (a photograph's texture reads as "mmmm" at 0.6,
#: a screenshot's words at 0.95 and more)
IMAGE_MIN_SCORE = 0.8
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


def _ocr(image: Any, settings: EngineSettings, why: str, start: float, *, unreadable: bool = False) -> PageReading:
    """OCR of the page image (its bytes, or the PIL image already decoded: not decoded twice);
    ``unreadable``: the page has a layer that could not be read (the page says so)."""
    from .read import read_image

    reading = read_image(image, settings)
    data = reading.data()
    data["source"] = "ocr"
    data["text_layer"] = {"used": False, "why": why, "unreadable": unreadable}
    return PageReading(reading.text, data, time.perf_counter() - start)


def _with_layer(layer_lines: list[dict[str, Any]], ocr_lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layer's lines and the OCR lines none of them holds (overlapping one by half the
    smaller), each marked with its ``source``, in reading position."""
    kept = [o for o in ocr_lines if not any(overlap(o["box"], t["box"]) >= 0.5 for t in layer_lines)]
    for o in kept:
        o["source"] = "ocr"
    for t in layer_lines:
        t["source"] = "text-layer"
    return sorted([*kept, *layer_lines], key=lambda ln: (ln["box"][1], ln["box"][0]))


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
    merged = _with_layer(layer_lines, page.data.get("lines") or [])
    page.data["lines"] = merged
    page.data["text_layer"] = {"used": True, "why": why + "; OCR'd, with the layer's lines where it has them"}
    page.text = "\n".join(ln["text"] for ln in merged)
    return page


def _image_regions(layer: Layer, scale: float, lines: list[dict[str, Any]], size: tuple[int, int]) -> list[list[int]]:
    """The pixel boxes of the page's images worth OCR'ing for their words (see
    :data:`IMAGE_MIN_SHARE`, :data:`IMAGE_MAX_COVERED`), overlapping images as one, largest first."""
    width, height = size
    boxes = [[max(0.0, b[0] * scale), max(0.0, b[1] * scale), min(width, b[2] * scale), min(height, b[3] * scale)]
             for b in layer.images]  # fmt: skip
    merged: list[list[float]] = []
    for b in sorted(boxes, key=area, reverse=True):
        for m in merged:
            if overlap(m, b) > 0:
                m[:] = [min(m[0], b[0]), min(m[1], b[1]), max(m[2], b[2]), max(m[3], b[3])]
                break
        else:
            merged.append(list(b))
    out = []
    for m in sorted(merged, key=area, reverse=True):
        whole = area(m)
        if whole < IMAGE_MIN_SHARE * width * height or m[2] - m[0] < 32 or m[3] - m[1] < 16:
            continue
        if sum(shared_area(m, ln["box"]) for ln in lines) <= IMAGE_MAX_COVERED * whole:
            out.append([int(m[0]), int(m[1]), int(m[2] + 0.999), int(m[3] + 0.999)])
    return out[:MAX_IMAGES]


def _words_in_images(upright: Any, regions: list[list[int]], settings: EngineSettings) -> list[dict[str, Any]]:
    """The OCR lines of each image region (in pixels of the page) scored
    :data:`IMAGE_MIN_SCORE` or more."""
    from .read import read_image
    from .tiling import shift_line

    found: list[dict[str, Any]] = []
    for x0, y0, x1, y1 in regions:
        reading = read_image(upright.crop((x0, y0, x1, y1)), settings)
        if reading.rotation:  # read turned: its boxes are not in the crop's frame (a figure's
            continue  # sideways lettering is left to the figure)
        for ln in reading.lines:
            if float(ln.get("score") or 0.0) >= IMAGE_MIN_SCORE:
                shift_line(ln, x0, y0)
                found.append(ln)
    return found


def _scaled(boxes: list[tuple[float, float, float, float]], scale: float) -> list[list[float]]:
    return [[round(v * scale, 3) for v in b] for b in boxes]


def read_pdf_page(image: bytes, pdf: Mapping[str, Any], settings: EngineSettings) -> PageReading:
    """Read one page (blocking: call it from a worker thread); see the module docstring."""
    from .read import decode

    start = time.perf_counter()
    mode = str(pdf.get("mode") or "auto")
    path, index = str(pdf["path"]), int(pdf["index"])
    password = str(pdf["password"]) if pdf.get("password") else None
    try:
        layer: Layer = read_layer(path, index, password)
    except Exception as exc:  # a file gone or unreadable: the image is still there
        return _ocr(image, settings, f"cannot read the text layer ({type(exc).__name__})", start, unreadable=True)
    if not layer.text_chars:
        return _ocr(image, settings, "no text layer", start)
    img = decode(image)  # an undecodable image fails the page either way
    try:
        return _from_layer(image, img, layer, mode, (path, index, password), settings, start)
    except Exception as exc:  # a defect in the layer's reading must not cost the page: OCR it
        log.warning("page %d of %s: the text layer could not be read: %r", index + 1, path, exc)
        return _ocr(image, settings, f"the text layer could not be read ({type(exc).__name__})", start, unreadable=True)


def _from_layer(
    image: bytes, img: Any, layer: Layer, mode: str, where: tuple[str, int, str | None], settings: EngineSettings,
    start: float,
) -> PageReading:
    """The page from its layer when it is trusted (or forced), else OCR (or the hybrid)."""
    import numpy as np

    path, index, password = where
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
    why = verdict.why
    if mode == "auto":  # a trusted page's hidden lines (invisible or white, on no ink) are not its text
        shown = [ln for ln in lines if inked(gray, ln["box"])]
        if len(shown) < len(lines):
            why += f"; {len(lines) - len(shown)} line(s) on no ink left out (hidden text)"
            lines = shown
    if mode == "auto":  # the words in the page's pictures, which the layer does not hold
        regions = _image_regions(layer, scale, lines, upright.size)
        merged = _with_layer(lines, _words_in_images(upright, regions, settings)) if regions else lines
        if len(merged) > len(lines):
            lines = merged
            why += f"; the words in {len(regions)} image(s) OCR'd"
    data: dict[str, Any] = {
        "lines": lines,
        "image_size": [int(gray.shape[1]), int(gray.shape[0])],
        "engine": "pdf-text-layer",
        "source": "text-layer",
        "rotation": layer.rotation,
        "text_layer": {
            "used": True,
            "why": why,
            "rules": _scaled(layer.rules, scale),
            "repeated": band_lines(path, index, password=password),
        },
    }
    text = "\n".join(ln["text"] for ln in lines)
    return PageReading(text, data, time.perf_counter() - start)
