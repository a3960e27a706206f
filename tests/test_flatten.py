"""Flattening has one owner (issue 15): :func:`ocrclient.pages.render.flatten`.

The render stage flattens an image input's pixels before it sends them; the exporters flatten the
page image they are given (the searchable PDF's image pages, the HTML viewer's page JPEGs).  Both
paths must give the same pixels for every kind of raster that needs flattening: alpha (RGBA, LA),
a palette with a transparent colour, CMYK, and 16-bit grey that does not fit in 0..255.
"""

from __future__ import annotations

import io

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from ocrclient.document import Page
from ocrclient.exporters import html_images
from ocrclient.exporters import pdf as pdf_exporter
from ocrclient.exporters.pdf import SearchablePdf
from ocrclient.imaging import RenderSpec
from ocrclient.pages import RenderPool, iter_pages
from ocrclient.pages.render import flatten

W, H = 64, 48


def _rgba() -> Image.Image:
    img = Image.new("RGBA", (W, H), (200, 30, 30, 0))  # fully transparent: white on the page
    for x in range(W):
        for y in range(H // 2, H):
            img.putpixel((x, y), (20, 40, 200, x * 4))  # alpha ramps 0..252
    return img


def _la() -> Image.Image:
    img = Image.new("LA", (W, H), (0, 0))
    for x in range(W):
        for y in range(H):
            img.putpixel((x, y), (60, 255 if y < H // 3 else x * 4))
    return img


def _palette() -> Image.Image:
    img = Image.new("P", (W, H), 0)
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 128, 0] + [0] * (253 * 3))
    for x in range(W // 2, W):
        for y in range(H):
            img.putpixel((x, y), 1 + (y // 16) % 2)  # bands: JPEG keeps them
    img.info["transparency"] = 0  # index 0 (black) is transparent: white on the page
    return img


def _cmyk() -> Image.Image:
    img = Image.new("CMYK", (W, H), (0, 0, 0, 0))
    for x in range(W):
        img.paste((x * 4, 255 - x * 4, 40, 20), (x, 0, x + 1, H))
    return img


def _grey16() -> Image.Image:
    arr = np.tile(np.linspace(0, 4000, W, dtype=np.uint16), (H, 1))
    return Image.fromarray(arr)


INPUTS = {"RGBA": _rgba, "LA": _la, "P+transparency": _palette, "CMYK": _cmyk, "I;16": _grey16}


def _file_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "TIFF" if img.mode == "CMYK" else "PNG")
    return buf.getvalue()


def _rendered(img: Image.Image) -> np.ndarray:
    """The render stage's pixels for ``img`` given as an image input (lossless PNG)."""
    with RenderPool(workers=0) as pool:
        [page] = list(iter_pages(_file_bytes(img), RenderSpec(dpi=72, format="png"), pool=pool))
    assert page.error is None
    out = page.image()
    assert out.size == (W, H)
    return np.asarray(out.convert("RGB"), dtype=np.int16)


def test_the_exporters_flatten_with_the_render_stage_s_function() -> None:
    assert pdf_exporter.flatten is flatten
    assert html_images.flatten is flatten
    assert not hasattr(pdf_exporter, "_flatten")


@pytest.mark.parametrize("mode", sorted(INPUTS))
def test_render_and_exporter_paths_give_the_same_pixels(mode: str) -> None:
    img = INPUTS[mode]()
    assert img.mode == mode.split("+")[0]
    # reopened from the file, as both paths see it (a palette's transparency rides in .info)
    reopened = Image.open(io.BytesIO(_file_bytes(img)))
    exported = np.asarray(flatten(reopened).convert("RGB"), dtype=np.int16)
    rendered = _rendered(img)
    assert np.array_equal(exported, rendered)
    # the flattening did something visible: no input is uniform
    assert rendered.std() > 10


@pytest.mark.parametrize("mode", sorted(INPUTS))
def test_searchable_pdf_image_page_shows_the_rendered_pixels(mode: str) -> None:
    """End to end: the PDF exporter's page made from the raw image looks like the render stage's
    image of it (within JPEG's loss)."""
    img = INPUTS[mode]()
    rendered = _rendered(img)
    out = SearchablePdf(None, label="t")
    try:
        assert out.add(Page(page=1, status="ok", width=W, height=H), img, (72.0, 72.0))
        data = out.save()
    finally:
        out.close()
    doc = pdfium.PdfDocument(data)
    try:
        shown = doc[0].render(scale=1.0).to_pil().convert("RGB")
    finally:
        doc.close()
    assert shown.size == (W, H)
    diff = np.abs(np.asarray(shown, dtype=np.int16) - rendered)
    assert diff.mean() < 6, f"{mode}: mean difference {diff.mean():.1f}"
