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
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from ocrclient.config import resolve_config, shipped_profiles_dir
from ocrclient.imaging import RenderSpec, encode, grey_of, grey_of_bgr
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


# -- the renderer's own check, on PDFium's BGR buffer (imaging.grey_of_bgr) -------------------


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(1, 40),
    height=st.integers(1, 300),  # more than two of grey_of_bgr's bands of rows
    grey_values=st.binary(min_size=1, max_size=64),
    odd=st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(0, 2), st.integers(1, 255))),
)
def test_the_bgr_check_agrees_with_grey_of(width: int, height: int, grey_values: bytes, odd: tuple[int, int, int] | None) -> None:
    """On any packed BGR buffer: one channel exactly when :func:`grey_of` finds the RGB image
    grey, with the same bytes; one channel of one pixel off by any amount, in any row (sampled
    by the quick look or not, in any band of rows it compares at a time), keeps it colour."""
    n = width * height
    greys = (grey_values * (n // len(grey_values) + 1))[:n]
    bgr = bytearray(b for v in greys for b in (v, v, v))
    if odd is not None:
        at, channel, delta = odd
        i = (at % n) * 3 + channel
        bgr[i] = (bgr[i] + delta) % 256
    rgb = Image.frombuffer("RGB", (width, height), bytes(bgr), "raw", "BGR", 0, 1)
    want = grey_of(rgb)
    got = grey_of_bgr(bgr, width, height)
    assert (got is None) == (want is None) == (odd is not None)
    if got is not None and want is not None:
        assert got.mode == "L" and got.tobytes() == want.tobytes()


def test_the_bgr_check_refuses_a_buffer_of_another_size() -> None:
    with pytest.raises(ValueError, match="not 2 x 2 packed BGR"):
        grey_of_bgr(bytes(11), 2, 2)


def test_a_pdf_page_is_sent_as_pdfium_draws_it_grey_or_colour(tmp_path: Path) -> None:
    """A PDF page goes out pixel for pixel as PDFium draws it: as one channel when it is grey
    (text), as RGB when one small coloured mark sits anywhere, also between the rows the quick
    look samples."""
    import pypdfium2 as pdfium

    grey_pdf = text_pdf(tmp_path / "g.pdf", [["Grey text rendered by PDFium"] * 6])
    picture = _page(size=(300, 400))
    ImageDraw.Draw(picture).rectangle((140, 203, 146, 205), fill=(200, 30, 30))  # rows 203-205
    colour_pdf = tmp_path / "c.pdf"
    picture.save(colour_pdf, "PDF", resolution=72)
    spec = RenderSpec(dpi=72)
    for pdf, mode in ((grey_pdf, "L"), (colour_pdf, "RGB")):
        with RenderPool(workers=0) as pool:
            (page,) = list(iter_pages(pdf, spec, pool=pool))
        assert page.encoded is not None
        sent = page.image()
        assert sent.mode == mode, pdf.name
        doc = pdfium.PdfDocument(str(pdf))
        try:
            drawn = doc[0].render(scale=1, may_draw_forms=True).to_pil().convert("RGB")
        finally:
            doc.close()
        assert sent.size == drawn.size
        assert sent.convert("RGB").tobytes() == drawn.tobytes(), pdf.name
