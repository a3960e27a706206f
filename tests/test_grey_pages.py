"""Grey pages go out as one-channel PNG: the same pixels, half the bytes and half the encode.

For every render spec a shipped profile uses, an all-grey page (the usual black text on white)
is encoded as mode ``L`` whose RGB conversion -- what every model server does first -- is the
rendered page pixel for pixel; a page with one coloured pixel, JPEG/WebP specs, and pages that
are already one-channel are left as they were.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from ocrclient.config import resolve_config, shipped_profiles_dir
from ocrclient.imaging import RenderSpec, encode, grey_of
from ocrclient.pages import RenderPool, iter_pages

from .pdfgen import text_pdf


def _profile_specs() -> dict[str, RenderSpec]:
    from ocrclient.registry import load_dialect

    folder = shipped_profiles_dir()
    assert folder is not None
    return {p.stem: load_dialect(resolve_config(p.stem, model="m")).render for p in folder.glob("*.toml")}


SPECS = _profile_specs()


def _page(size: tuple[int, int] = (300, 400), colour: tuple[int, int, int] | None = None) -> Image.Image:
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for y in range(20, size[1] - 20, 24):
        draw.text((20, y), "grey text on a white page 0123456789", fill=(int(y) % 200, int(y) % 200, int(y) % 200))
    if colour is not None:
        img.putpixel((size[0] // 2, size[1] // 2), colour)
    return img


@pytest.mark.parametrize("value", [0, 1, 127, 128, 254, 255])
def test_the_grey_band_is_what_convert_l_gives(value: int) -> None:
    page = _page()
    page.putpixel((0, 0), (value, value, value))
    grey = grey_of(page)
    assert grey is not None and grey.mode == "L"
    assert grey.tobytes() == page.convert("L").tobytes()


def test_every_profile_has_a_render_spec_to_check() -> None:
    assert len(SPECS) >= 8, sorted(SPECS)


@pytest.mark.parametrize("profile", sorted(SPECS))
def test_a_grey_page_goes_out_as_l_with_the_same_pixels(profile: str) -> None:
    spec = SPECS[profile]
    page = _page()
    out = encode(page, spec)
    sent = Image.open(io.BytesIO(out.data))
    if spec.format == "png":
        assert sent.mode == "L"
        assert sent.convert("RGB").tobytes() == page.tobytes()
        rgb = io.BytesIO()
        page.save(rgb, "PNG", compress_level=1)
        assert len(out.data) < len(rgb.getvalue())
    else:
        assert sent.mode == ("L" if spec.grayscale else "RGB")


@pytest.mark.parametrize("profile", sorted(SPECS))
@pytest.mark.parametrize("colour", [(255, 0, 0), (10, 10, 11), (128, 129, 128)])
def test_one_coloured_pixel_keeps_a_page_rgb(profile: str, colour: tuple[int, int, int]) -> None:
    spec = SPECS[profile]
    page = _page(colour=colour)
    assert grey_of(page) is None
    sent = Image.open(io.BytesIO(encode(page, spec).data))
    if spec.grayscale:
        assert sent.mode == "L"
    elif spec.format == "png":
        assert sent.mode == "RGB" and sent.tobytes() == page.tobytes()
    else:
        assert sent.mode == "RGB"


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_formats_are_not_changed(fmt: str) -> None:
    sent = Image.open(io.BytesIO(encode(_page(), RenderSpec(dpi=72, format=fmt)).data))  # type: ignore[arg-type]
    assert sent.mode == "RGB"


def test_a_rendered_text_pdf_page_is_sent_grey_and_a_colour_one_rgb(tmp_path: Path) -> None:
    """From PDFium's own render: black text antialiases to grey, never to colour fringes."""
    pdf = text_pdf(tmp_path / "t.pdf", [["Grey text rendered by PDFium, 12 pt, many words"] * 20])
    spec = RenderSpec(longest_side=1540)
    with RenderPool(workers=0) as pool:
        (page,) = list(iter_pages(pdf, spec, pool=pool))
    assert page.encoded is not None and page.image().mode == "L"
    photo = tmp_path / "c.png"
    _page(colour=(0, 200, 0)).save(photo)
    with RenderPool(workers=0) as pool:
        (colour,) = list(iter_pages(photo, spec, pool=pool))
    assert colour.encoded is not None and colour.image().mode == "RGB"
