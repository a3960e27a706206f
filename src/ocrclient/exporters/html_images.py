"""The HTML viewer's page images: their size, their JPEG, and, for a Document written without
its run, rendering them again from the input.

In a run each page's viewer image is made from the run's own render of the page as it finishes
(:mod:`ocrclient.exporters.pieces`); ``ocr view`` on a JSON result renders the pages again from
the input (:func:`page_images`).  PDF pages are embedded at :data:`VIEWER_DPI` (72 dpi past 100
pages, so the one file stays openable), images at their own pixels, all capped at
:data:`VIEWER_MAX_SIDE`.

Example::

    >>> viewer_size(612, 792, pdf=True, pages=3)   # a US-letter page at 100 dpi
    (850, 1100)
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from ..document import Document
from ..pages.render import flatten

__all__ = ["VIEWER_DPI", "VIEWER_JPEG_QUALITY", "VIEWER_MAX_SIDE", "page_images", "page_jpeg", "viewer_size"]

#: resolution of the embedded page images (PDF inputs; 72 dpi past 100 pages; images are
#: embedded at their own pixels, all capped at VIEWER_MAX_SIDE)
VIEWER_DPI = 100.0
VIEWER_MAX_SIDE = 1800
VIEWER_JPEG_QUALITY = 80


def viewer_size(width_pt: float, height_pt: float, *, pdf: bool, pages: int, have: tuple[int, int] | None = None) -> tuple[int, int]:
    """Pixel size of a page's embedded image: PDF pages at :data:`VIEWER_DPI` (72 dpi past 100
    pages, so the one file stays openable), images at their own pixels, capped at
    :data:`VIEWER_MAX_SIDE` and never larger than the image there is (``have``)."""
    scale = ((VIEWER_DPI if pages <= 100 else 72.0) / 72.0) if pdf else 1.0
    w, h = max(1.0, width_pt * scale), max(1.0, height_pt * scale)
    shrink = min(1.0, VIEWER_MAX_SIDE / max(w, h))
    if have is not None:
        shrink = min(shrink, have[0] / w, have[1] / h)
    return max(1, round(w * shrink)), max(1, round(h * shrink))


def page_jpeg(image: Image.Image, size: tuple[int, int]) -> bytes:
    """A page image as the viewer embeds it, about ``size`` pixels (within 10 %: the boxes are
    placed in percent), JPEG at :data:`VIEWER_JPEG_QUALITY`.  A render two or more times as
    large is first shrunk by a whole factor (a box filter: a few ms, where resampling a
    192-dpi page costs 50 ms)."""
    img = flatten(image)
    factor = int(min(img.width / size[0], img.height / size[1]) * 1.1)
    if factor >= 2:
        img = img.reduce(factor)
    if not (size[0] / 1.1 <= img.width <= size[0] * 1.1 and size[1] / 1.1 <= img.height <= size[1] * 1.1):
        img = img.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=VIEWER_JPEG_QUALITY)
    return buf.getvalue()


def page_images(doc: Document, source: Path | None) -> tuple[dict[int, bytes], dict[int, str]]:
    """For a Document without its run: page number -> JPEG rendered again from ``source``, and
    page number -> why there is no image."""
    from .source import render_pages, source_spec

    images: dict[int, bytes] = {}
    missing: dict[int, str] = {}
    numbers = [p.page for p in doc.pages]
    if source is None:
        why = f"source not available: {doc.source}"
        return images, dict.fromkeys(numbers, why)
    dpi = VIEWER_DPI if len(numbers) <= 100 else 72.0
    spec = source_spec(source, dpi, fmt="jpeg", quality=VIEWER_JPEG_QUALITY, longest_side=VIEWER_MAX_SIDE)
    for number, pimg, err in render_pages(source, numbers, spec):
        if pimg is None or pimg.encoded is None:
            missing[number] = f"page image not available: {err}"
            continue
        images[number] = pimg.encoded.data
    return images, missing
