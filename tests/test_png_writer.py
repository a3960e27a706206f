"""The PNG writer (:func:`ocrclient.imaging.png_bytes`): every page image it writes decodes to
the same pixels, whatever its size, mode and the filter it picks.

Its seams: the band loop (rows 0, 1, band edges at 128, a last band of one row), the first row
(no row above it for the Up filter), the sample that picks the filter (only from 64 rows on), and
the PNG container every decoder reads (chunk CRCs, IHDR).  Each is checked by decoding with
Pillow, and with zlib and the PNG rules by hand for the filter bytes, against the source pixels.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from ocrclient.imaging import RenderSpec, _prefers_up, encode, png_bytes

from .pdfgen import PdfPage, text_pdf, write_pdf


def _text(size: tuple[int, int], mode: str) -> Image.Image:
    """Black text on white: compresses best unfiltered."""
    img = Image.new(mode, size, "white")
    draw = ImageDraw.Draw(img)
    for y in range(2, size[1], 14):
        draw.text((3, y), "The quick brown fox 0123456789 " * 4, fill="black")
    return img


def _photo(size: tuple[int, int], mode: str) -> Image.Image:
    """A smooth two-way gradient with a little noise: compresses best after Up."""
    rng = random.Random(size[0] * 7919 + size[1])
    width, height = size
    grad = Image.linear_gradient("L").resize(size)
    across = Image.linear_gradient("L").rotate(90).resize(size)
    noise = Image.frombytes("L", size, bytes(rng.randrange(3) for _ in range(width * height)))
    rgb = Image.merge("RGB", (grad, across, noise))
    return rgb.convert("L") if mode == "L" else rgb


def _decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


SIZES = [(1, 1), (1, 300), (300, 1), (5, 63), (7, 64), (40, 127), (40, 128), (40, 129), (33, 257), (613, 401)]


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("kind", ["text", "photo"])
def test_every_size_and_mode_decodes_to_the_same_pixels(mode: str, size: tuple[int, int], kind: str) -> None:
    src = (_text if kind == "text" else _photo)(size, mode)
    out = _decoded(png_bytes(src))
    assert (out.mode, out.size) == (mode, size)
    assert out.tobytes() == src.tobytes()


def _filters(data: bytes) -> list[int]:
    """The filter byte of every row of a PNG this writer made (one IDAT), read by hand."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body), tag
        chunks[tag] = body
        pos += 12 + length
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    stride = 1 + width * (1 if colour == 0 else 3)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert depth == 8 and len(raw) == stride * height
    return [raw[y * stride] for y in range(height)]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_the_filter_is_picked_per_image_and_the_first_row_is_never_up(mode: str) -> None:
    text, photo = _text((600, 300), mode), _photo((600, 300), mode)
    assert not _prefers_up(text) and _prefers_up(photo)
    assert set(_filters(png_bytes(text))) == {0}
    rows = _filters(png_bytes(photo))
    assert rows[0] == 0 and set(rows[1:]) == {2}
    assert set(_filters(png_bytes(_photo((600, 63), mode)))) == {0}  # too few rows to sample


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("kind", ["text", "photo"])
def test_it_is_no_bigger_than_pillows_writer_by_much(mode: str, kind: str) -> None:
    """One filter per image against Pillow's best of five per row: on the corpus's 47 first
    pages at 1540 px, 0.98x Pillow's bytes on average, 0.71x to 1.13x page by page; dense
    synthetic text is the worst case here (1.12x)."""
    src = (_text if kind == "text" else _photo)((800, 1000), mode)
    buf = io.BytesIO()
    src.save(buf, "PNG", compress_level=1)
    assert len(png_bytes(src)) <= 1.15 * len(buf.getvalue())


@pytest.mark.parametrize("mode", ["1", "LA", "RGBA", "P", "I;16", "CMYK"])
def test_other_modes_are_refused_and_encode_flattens_them_first(mode: str) -> None:
    src = Image.new(mode, (20, 10))
    with pytest.raises(ValueError, match="L or RGB"):
        png_bytes(src)
    sent = encode(src, RenderSpec(format="png"))
    assert _decoded(sent.data).mode in ("L", "RGB")


def test_a_rendered_pdf_page_goes_out_through_it(tmp_path: Path) -> None:
    """What the page stream sends for a PNG spec is this writer's output, pixel-true."""
    from ocrclient.pages import iter_pages, open_sources

    path = text_pdf(tmp_path / "doc.pdf", [["A page of text"], ["and a second one"]])
    (src,) = open_sources([path])
    spec = RenderSpec(longest_side=900, format="png")
    for page in iter_pages(src, spec):
        assert page.encoded is not None
        img = _decoded(page.encoded.data)
        assert page.encoded.data == png_bytes(img)
        assert (img.width, img.height) == (page.encoded.width, page.encoded.height)


class _ColourPage(PdfPage):
    """Three filled squares, pure red, green and blue, on white."""

    def content(self) -> bytes:
        return b"1 0 0 rg 10 10 80 80 re f\n0 1 0 rg 110 10 80 80 re f\n0 0 1 rg 210 10 80 80 re f\n"


@pytest.mark.parametrize("pool", ["inline", "threads", "processes"])
def test_a_coloured_pdf_page_arrives_in_rgb_order(tmp_path: Path, pool: str) -> None:
    """PDFium draws BGR into the render's own buffer; what is sent is RGB, colour for colour,
    however the page was rendered; a grayscale spec gets PDFium's grey render."""
    from ocrclient.pages import RenderPool, iter_pages

    path = write_pdf(tmp_path / "colour.pdf", [_ColourPage(), _ColourPage()])
    workers = {"inline": 0, "threads": 2, "processes": 2}[pool]
    with RenderPool(workers=workers, isolated=pool == "processes") as rp:
        pages = list(iter_pages(path, RenderSpec(dpi=72, format="png"), pool=rp))
        greys = list(iter_pages(path, RenderSpec(dpi=72, format="png", grayscale=True), pool=rp))
    for page in pages:
        img = page.image()
        assert (img.mode, img.size) == ("RGB", (300, 200))
        assert img.getpixel((50, 150)) == (255, 0, 0)
        assert img.getpixel((150, 150)) == (0, 255, 0)
        assert img.getpixel((250, 150)) == (0, 0, 255)
        assert img.getpixel((5, 5)) == (255, 255, 255)
    for page in greys:
        img = page.image()
        assert img.mode == "L" and img.getpixel((5, 5)) == 255
        assert len({img.getpixel((50, 150)), img.getpixel((150, 150)), img.getpixel((250, 150))}) == 3


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("size", [(1, 1), (300, 1), (40, 129), (613, 401)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", ["text", "photo"])
def test_libpng_reads_it_too(mode: str, size: tuple[int, int], kind: str) -> None:
    """A second decoder, not Pillow's: libpng (through OpenCV, which the embedded engine
    installs), which checks every CRC and filter byte as model servers' image stacks do."""
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    src = (_text if kind == "text" else _photo)(size, mode)
    arr = cv2.imdecode(np.frombuffer(png_bytes(src), np.uint8), cv2.IMREAD_UNCHANGED)
    assert arr is not None
    want = np.asarray(src)
    got = arr[..., ::-1] if mode == "RGB" else arr  # OpenCV hands back BGR
    assert got.shape == want.shape and (got == want).all()
