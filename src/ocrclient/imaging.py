"""Render specs and image encoding.

A :class:`RenderSpec` says how big a page image a backend wants and in which format; the page
stream (:mod:`ocrclient.pages`) renders to it, and :func:`encode` turns a PIL image into the bytes
that are sent.  Sizes are decided here, in one place, so every backend gets the same arithmetic.

Example::

    >>> from ocrclient.imaging import RenderSpec
    >>> RenderSpec(longest_side=1288).pixel_size(612, 792)   # US letter, olmOCR's size
    (995, 1288)
    >>> RenderSpec(dpi=144).pixel_size(612, 792)
    (1224, 1584)
"""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib
from dataclasses import dataclass, replace
from typing import Literal

from PIL import Image, ImageChops

__all__ = ["Base64Text", "EncodedImage", "ImageFormat", "RenderSpec", "encode", "grey_of", "grey_of_bgr", "png_bytes"]

ImageFormat = Literal["png", "jpeg", "webp"]
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}

#: hard ceiling on rendered pixels whatever the spec says (a 20000 x 20000 pt page at 150 dpi
#: would otherwise be 1.7 gigapixels)
MAX_PIXELS = 40_000_000

#: the longest side an image format can hold (WebP's is 16383 px: a tall page sent as WebP failed
#: to encode; JPEG's 65535); PNG has none that a page reaches
MAX_SIDE = {"webp": 16383, "jpeg": 65535}


@dataclass(frozen=True)
class RenderSpec:
    """What page image a backend wants.

    * ``dpi`` – render resolution; ``None`` means "whatever ``longest_side`` asks for".
    * ``longest_side`` – with ``dpi`` unset, the longest side is exactly this many pixels (olmOCR,
      LightOnOCR); with ``dpi`` set, a cap the render is shrunk to fit.
    * ``max_pixels`` – a pixel budget (width x height) the image is shrunk to fit.
    * ``min_side`` – never smaller than this on the shortest side (tiny pages).
    * ``grayscale`` – send a single-channel image.
    * ``format`` / ``quality`` – encoding of the bytes that are sent.
    """

    dpi: float | None = 150.0
    longest_side: int | None = None
    max_pixels: int | None = None
    min_side: int = 16
    grayscale: bool = False
    format: ImageFormat = "png"
    quality: int = 90

    def __post_init__(self) -> None:
        from .errors import ConfigError  # (a setting a user gave: one line, exit 2)

        if self.dpi is None and self.longest_side is None:
            raise ConfigError("a render spec needs dpi or longest_side")
        for name in ("dpi", "longest_side", "min_side", "max_pixels"):
            value = getattr(self, name)
            if value is not None and not value > 0:  # (not NaN either)
                raise ConfigError(f"render {name} must be positive (got {value!r})")
        if self.dpi is not None and not 1 <= self.dpi < float("inf"):  # (1e-9 sent empty pages, inf was taken)
            raise ConfigError(f"render dpi must be a number from 1 up (got {self.dpi!r})")
        if self.format not in _MIME:
            raise ConfigError(f"unknown image format {self.format!r} (png, jpeg, webp)")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"image quality must be 1-100 (got {self.quality!r})")

    def with_(self, **changes: object) -> RenderSpec:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    def scale(self, width_pt: float, height_pt: float) -> float:
        """Pixels per point for a page of this size in points."""
        width_pt = max(width_pt, 1e-3)
        height_pt = max(height_pt, 1e-3)
        longest = max(width_pt, height_pt)
        if self.dpi is None:
            assert self.longest_side is not None
            scale = self.longest_side / longest
        else:
            scale = self.dpi / 72.0
            if self.longest_side is not None:
                scale = min(scale, self.longest_side / longest)
        budget = self.budget
        if width_pt * height_pt * scale * scale > budget:
            scale = math.sqrt(budget / (width_pt * height_pt))
        side = MAX_SIDE.get(self.format)
        if side is not None and longest * scale > side:
            scale = side / longest
        shortest = min(width_pt, height_pt)
        if shortest * scale < self.min_side:
            # tiny or skinny page: grow it, but never past the budget (nor the format's side)
            scale = min(self.min_side / shortest, math.sqrt(budget / (width_pt * height_pt)),
                        (side or math.inf) / longest)  # fmt: skip
        return scale

    @property
    def budget(self) -> int:
        """The most pixels (width x height) an image of this spec has."""
        return min(self.max_pixels or MAX_PIXELS, MAX_PIXELS)

    def pixel_size(self, width_pt: float, height_pt: float) -> tuple[int, int]:
        """The (width, height) in pixels that a page of this size renders to: never more pixels
        than the budget, nor a side longer than the format holds (each side rounded, or cut
        down where rounding up went past them: a page fitted to the 40 M budget was rounded to
        40,005,625 pixels, which the workers refuse)."""
        s = self.scale(width_pt, height_pt)
        w, h = max(1, round(width_pt * s)), max(1, round(height_pt * s))
        side = MAX_SIDE.get(self.format, w * h)
        if w * h > self.budget or max(w, h) > side:
            w, h = max(1, math.floor(width_pt * s)), max(1, math.floor(height_pt * s))
        w, h = min(w, side), min(h, side)
        if w * h > self.budget:  # (a side held at one pixel: the other gives way)
            w, h = (w, self.budget // w) if w <= h else (self.budget // h, h)
        return w, h

    @property
    def mime(self) -> str:
        return _MIME[self.format]


class Base64Text(str):
    """Text made only of the base64 alphabet, optionally after a ``data:<mime>;base64,`` prefix:
    what :meth:`EncodedImage.b64` and :meth:`EncodedImage.data_url` return.

    It is an ordinary ``str`` everywhere; the mark tells a JSON encoder
    (:func:`ocrclient.transports.base.json_bytes`) that it needs no escaping, so a page image of
    hundreds of kB is copied into a request body instead of being scanned character by character.
    Build one only from such text.
    """

    __slots__ = ()


@dataclass(frozen=True)
class EncodedImage:
    """Encoded bytes of one image plus what a request needs to know about them."""

    data: bytes
    format: ImageFormat
    width: int
    height: int

    @property
    def mime(self) -> str:
        return _MIME[self.format]

    def b64(self) -> Base64Text:
        return Base64Text(base64.b64encode(self.data).decode("ascii"))

    def data_url(self) -> Base64Text:
        """``data:image/png;base64,...`` as OpenAI-style image_url parts expect."""
        return Base64Text(f"data:{self.mime};base64,{self.b64()}")

    def decode(self) -> Image.Image:
        """The PIL image (decoded on demand; encoded bytes are what pages carry around)."""
        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img


def grey_of(image: Image.Image) -> Image.Image | None:
    """The one-channel image of an RGB ``image`` whose every pixel has R == G == B (which is
    any of its bands, and what ``convert("L")`` would give), else ``None``; 2-4 ms a page."""
    r, g, b = image.split()
    if ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(g, b).getbbox() is None:
        return g
    return None


#: rows :func:`grey_of_bgr` compares at a time.  Slicing bytes holds the interpreter lock for the
#: whole slice: the whole page at once (3 x 3.4 MB at chandra's size) kept the event loop from
#: sending a request for 8-15 ms each time a render thread checked a page; a band of this many
#: rows holds it ~0.5 ms, and the loop between bands lets the lock go
_GREY_BAND = 128


def grey_of_bgr(pixels: bytes | bytearray, width: int, height: int) -> Image.Image | None:
    """:func:`grey_of` on a page as a renderer leaves it, packed 8-bit BGR rows (no padding),
    before any image is made of it: the one-channel image of its blue bytes when every pixel
    has B == G == R, else ``None``.  It spares a grey page the BGR -> RGB conversion and the
    three-band split (12 -> 6 ms on a 1632 x 2112 page); a colour page is told from a few rows
    before the whole buffer is compared.

    >>> grey_of_bgr(bytes([9, 9, 9, 200, 200, 200]), 2, 1).tobytes()
    b'\\t\\xc8'
    >>> grey_of_bgr(bytes([9, 9, 9, 0, 0, 255]), 2, 1) is None
    True
    """
    stride = width * 3
    if len(pixels) != stride * height:
        raise ValueError(f"{len(pixels)} bytes are not {width} x {height} packed BGR pixels")
    for row in range(0, height, max(1, height // 16)):  # a colour page is usually told here
        line = pixels[row * stride : (row + 1) * stride]
        if not line[0::3] == line[1::3] == line[2::3]:
            return None
    grey = bytearray(len(pixels) // 3)  # (filled band by band: no list of bands joined at the end)
    step = _GREY_BAND * stride
    for top in range(0, len(pixels), step):  # in bands: see _GREY_BAND
        end = min(top + step, len(pixels))
        blue = pixels[top:end:3]
        if blue != pixels[top + 1 : end : 3] or blue != pixels[top + 2 : end : 3]:
            return None
        grey[top // 3 : top // 3 + len(blue)] = blue
    return Image.frombuffer("L", (width, height), grey, "raw", "L", 0, 1)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: rows filtered and compressed together: bounds the writer's working memory to a few hundred KB
_PNG_BAND = 128
_FILTER_NONE, _FILTER_UP = 0, 2


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _samples(image: Image.Image, top: int, bottom: int) -> Image.Image:
    """Rows ``top`` .. ``bottom - 1`` of an L or RGB ``image`` as one byte per sample (an L
    image ``width x bands`` wide): the bytes a PNG filter works on."""
    width = image.width * len(image.getbands())
    band = image.crop((0, top, image.width, bottom))
    return band if image.mode == "L" else Image.frombytes("L", (width, bottom - top), band.tobytes())


def _up_rows(image: Image.Image, top: int, bottom: int) -> bytes:
    """Rows ``top`` .. ``bottom - 1`` (``top`` >= 1) Up-filtered: each byte minus the one above it."""
    below, above = _samples(image, top, bottom), _samples(image, top - 1, bottom - 1)
    return ImageChops.subtract_modulo(below, above).tobytes()


def _prefers_up(image: Image.Image) -> bool:
    """Whether the Up filter compresses ``image`` better than none, judged on eight bands of
    eight rows spread over the page (~1 ms): text on a flat background compresses best as is,
    photographs, gradients and scans' noise after Up."""
    if image.height < 64:
        return False
    tops = [1 + (image.height - 9) * k // 7 for k in range(8)]
    plain = b"".join(_samples(image, t, t + 8).tobytes() for t in tops)
    up = b"".join(_up_rows(image, t, t + 8) for t in tops)
    return len(zlib.compress(up, 1)) < len(zlib.compress(plain, 1))


def png_bytes(image: Image.Image) -> bytes:
    """An 8-bit L or RGB ``image`` as a PNG (zlib level 1), lossless.

    Pillow's PNG writer tries all five PNG filters on every row and keeps the best, which is
    most of its time on a page render; this writer picks one filter for the whole image (none
    or Up, from a sample, :func:`_prefers_up`) and leaves the rest to zlib: on page renders
    2x faster on text pages and 1.6x on scans, with as many bytes (benchmarks/README.md).
    Filtered rows are compressed a band at a time, so it needs no second copy of the image.

    >>> from PIL import Image
    >>> im = Image.linear_gradient("L").resize((300, 200))
    >>> Image.open(io.BytesIO(png_bytes(im))).tobytes() == im.tobytes()
    True
    """
    if image.mode not in ("L", "RGB"):
        raise ValueError(f"png_bytes writes L or RGB images, not {image.mode}")
    width, height = image.size
    stride = width * len(image.getbands())
    up = _prefers_up(image)
    deflate = zlib.compressobj(1)
    parts = []
    for top in range(0, height, _PNG_BAND):
        bottom = min(height, top + _PNG_BAND)
        pieces: list[tuple[int, bytes]]
        if not up:
            pieces = [(_FILTER_NONE, _samples(image, top, bottom).tobytes())]
        elif top == 0:  # the first row has nothing above it: it goes unfiltered
            pieces = [(_FILTER_NONE, _samples(image, 0, 1).tobytes())]
            if bottom > 1:
                pieces.append((_FILTER_UP, _up_rows(image, 1, bottom)))
        else:
            pieces = [(_FILTER_UP, _up_rows(image, top, bottom))]
        for kind, data in pieces:  # each row behind its filter byte
            tag, view = bytes((kind,)), memoryview(data)
            parts.append(deflate.compress(tag + tag.join(view[i : i + stride] for i in range(0, len(data), stride))))
    parts.append(deflate.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if image.mode == "L" else 2, 0, 0, 0)
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")


def encode(image: Image.Image, spec: RenderSpec) -> EncodedImage:
    """Encode ``image`` as ``spec`` says (mode conversion included).

    PNG is written by :func:`png_bytes` (zlib level 1: on page renders 3-5x faster than the
    default level and only a few percent larger; page bytes are sent once).  An RGB image whose every pixel is grey (black
    text on white, a greyscale scan) is written as a one-channel PNG: the same pixels once a
    model converts it to RGB, as every server does, in half the encode time and about half the
    bytes.
    """
    if spec.grayscale and image.mode != "L":
        image = image.convert("L")
    elif not spec.grayscale and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    # the image is L or RGB from here on
    if spec.format == "png":
        if image.mode == "RGB":
            image = grey_of(image) or image
        return EncodedImage(png_bytes(image), spec.format, image.width, image.height)
    buf = io.BytesIO()
    fmt = _PIL_FORMAT[spec.format]
    if spec.format == "jpeg":
        image.save(buf, fmt, quality=spec.quality, optimize=False)
    else:
        image.save(buf, fmt, quality=spec.quality, method=2)
    return EncodedImage(buf.getvalue(), spec.format, image.width, image.height)
