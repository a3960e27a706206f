"""Coordinate spaces and bbox normalization — the one place boxes change space.

Every dialect returns boxes in the model's own space, tagged with a :class:`CoordSpace`; every
request carries the :class:`Frame` of the image that was actually sent (its pixel size and the
clockwise rotation the client applied to the displayed page before sending).  :func:`to_page`
maps a box to the output contract (README, "Output"): ``[x0, y0, x1, y1]`` in PDF points
of the page *as displayed* (after ``/Rotate`` and CropBox), origin top-left, y down, plus
``bbox_norm`` in [0, 1] of the same page.

The arithmetic runs in normalized coordinates: model space -> [0,1] of the sent image -> undo the
client's rotation -> [0,1] of the displayed page -> points.  The client's resize therefore drops
out exactly, and the only error left is the model's own quantization (``CoordSpace.step``).

:func:`to_pdf_user_space` goes one step further, undoing ``/Rotate`` and the CropBox offset, for
writers that place things in the PDF's own coordinates (the searchable-PDF exporter).

Example::

    >>> from ocrclient.geometry import CoordSpace, Frame, PageBox, to_page
    >>> page = PageBox(width=612, height=792)
    >>> m = to_page((0, 0, 500, 500), CoordSpace.grid(1000), Frame(995, 1288), page)
    >>> m.bbox, m.bbox_norm
    ([0.0, 0.0, 306.0, 396.0], [0.0, 0.0, 0.5, 0.5])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .document import Block
    from .models import ModelRequest, PageContent, PageImage, RawBlock

__all__ = [
    "CoordSpace",
    "Frame",
    "MappedBox",
    "PageBox",
    "content_to_blocks",
    "norm_to_points",
    "rescale_blocks",
    "rotate_norm_box",
    "to_page",
    "to_pdf_user_space",
]

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class CoordSpace:
    """The space a model's boxes are in.

    * ``CoordSpace.grid(n)`` – normalized to the image sent, a coordinate ``v`` means ``v / n``
      of the width/height (DeepSeek 999, LightOnOCR/Chandra-2 1000, Chandra-1 1024).
    * ``CoordSpace.sent_pixels()`` – pixels of the image that was sent (RapidOCR, most OCR).
    * ``CoordSpace.model_pixels(w, h)`` – pixels of the model's own resize of the image
      (dots.ocr's smart resize, Qwen-VL family): the model saw a ``w x h`` image.
    * ``CoordSpace.unit()`` – already [0, 1] of the image sent.
    """

    kind: Literal["grid", "sent_pixels", "model_pixels"]
    grid_size: float = 1.0
    width: float = 0.0
    height: float = 0.0

    @classmethod
    def grid(cls, n: float) -> CoordSpace:
        return cls("grid", grid_size=float(n))

    @classmethod
    def unit(cls) -> CoordSpace:
        return cls("grid", grid_size=1.0)

    @classmethod
    def sent_pixels(cls) -> CoordSpace:
        return cls("sent_pixels")

    @classmethod
    def model_pixels(cls, width: float, height: float) -> CoordSpace:
        return cls("model_pixels", width=float(width), height=float(height))

    def extent(self, frame: Frame) -> tuple[float, float]:
        """Width and height of this space for a given sent image."""
        if self.kind == "grid":
            return self.grid_size, self.grid_size
        if self.kind == "sent_pixels":
            return float(frame.width_px), float(frame.height_px)
        return self.width, self.height

    def step(self, frame: Frame) -> tuple[float, float]:
        """One unit of this space as a fraction of the sent image (the quantization budget)."""
        w, h = self.extent(frame)
        return 1.0 / max(w, 1e-9), 1.0 / max(h, 1e-9)

    @property
    def label(self) -> str:
        if self.kind == "grid":
            return f"grid:{self.grid_size:g}"
        if self.kind == "model_pixels":
            return f"model_pixels:{self.width:g}x{self.height:g}"
        return "sent_pixels"


@dataclass(frozen=True)
class Frame:
    """The image that was sent: pixel size and the clockwise rotation (0/90/180/270) the client
    applied to the displayed page to make it."""

    width_px: int
    height_px: int
    rotation: int = 0

    def __post_init__(self) -> None:
        if self.rotation % 90:
            raise ValueError("Frame.rotation must be a multiple of 90")


@dataclass(frozen=True)
class PageBox:
    """A page as displayed, in points, with what is needed to go back to PDF user space.

    ``rotation`` is the page's ``/Rotate`` (clockwise degrees); ``crop_x``/``crop_y`` are the
    lower-left corner of the CropBox in PDF user space.  For images ``width``/``height`` are the
    image's pixels at 72 dpi and the rest is zero.
    """

    width: float
    height: float
    rotation: int = 0
    crop_x: float = 0.0
    crop_y: float = 0.0

    def page_fields(self) -> dict[str, Any]:
        """The displayed size and rotation, as a :class:`~ocrclient.document.Page` records them."""
        return {"width": self.width, "height": self.height, "rotation": self.rotation}


@dataclass
class MappedBox:
    bbox: list[float]
    bbox_norm: list[float]
    flags: list[str] = field(default_factory=list)


def rotate_norm_box(box: Box, rotation: int) -> Box:
    """Rotate a normalized box (in [0,1] of an image) clockwise by ``rotation`` degrees: returns
    the same region in [0,1] of the rotated image."""
    x0, y0, x1, y1 = box
    r = rotation % 360
    if r == 0:
        return x0, y0, x1, y1
    if r == 90:  # (x, y) -> (1 - y, x)
        return 1 - y1, x0, 1 - y0, x1
    if r == 180:
        return 1 - x1, 1 - y1, 1 - x0, 1 - y0
    if r == 270:  # (x, y) -> (y, 1 - x)
        return y0, 1 - x1, y1, 1 - x0
    raise ValueError("rotation must be a multiple of 90")


def _ordered(box: Sequence[float], flags: list[str]) -> Box:
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 < x0 or y1 < y0:
        flags.append("reversed")
        x0, x1 = min(x0, x1), max(x0, x1)
        y0, y1 = min(y0, y1), max(y0, y1)
    return x0, y0, x1, y1


def _clamp01(box: Box, flags: list[str], tol: float) -> Box:
    out = tuple(min(1.0, max(0.0, v)) for v in box)
    if any(abs(a - b) > tol for a, b in zip(out, box, strict=True)):
        flags.append("clamped")
    return out  # type: ignore[return-value]


def to_page(box: Sequence[float], space: CoordSpace, frame: Frame, page: PageBox) -> MappedBox:
    """Map one box from ``space`` (on the sent image ``frame``) to the displayed page.

    Corners are reordered (flag ``reversed``), clamped to the page (flag ``clamped`` when a box
    went past it by more than one grid step) and zero-area results are flagged ``degenerate``.
    """
    if len(box) != 4:
        raise ValueError(f"a box has 4 numbers, got {len(box)}")
    flags: list[str] = []
    x0, y0, x1, y1 = _ordered(box, flags)
    ew, eh = space.extent(frame)
    norm_sent: Box = (x0 / ew, y0 / eh, x1 / ew, y1 / eh)
    sx, sy = space.step(frame)
    norm_sent = _clamp01(norm_sent, flags, tol=max(sx, sy))
    # undo the client's rotation: the sent image is the displayed page rotated clockwise by r,
    # so rotating back by (360 - r) gives [0,1] of the displayed page
    nx0, ny0, nx1, ny1 = rotate_norm_box(norm_sent, (360 - frame.rotation) % 360)
    if nx1 - nx0 <= 0 or ny1 - ny0 <= 0:
        flags.append("degenerate")
    return MappedBox(
        bbox=norm_to_points((nx0, ny0, nx1, ny1), page),
        bbox_norm=[round(v, 6) for v in (nx0, ny0, nx1, ny1)],
        flags=flags,
    )


def norm_to_points(norm: Sequence[float], page: PageBox) -> list[float]:
    """``[x0, y0, x1, y1]`` in [0, 1] of the displayed page -> points of that page (to 0.001 pt).

    >>> norm_to_points((0.0, 0.25, 0.5, 1.0), PageBox(612, 792))
    [0.0, 198.0, 306.0, 792.0]
    """
    x0, y0, x1, y1 = norm
    return [round(v, 3) for v in (x0 * page.width, y0 * page.height, x1 * page.width, y1 * page.height)]


def rescale_blocks(blocks: Sequence[Block], page: PageBox) -> list[Block]:
    """``blocks`` (children included) moved onto ``page``: each ``bbox`` rebuilt for its size
    from the size-free ``bbox_norm`` (a block without one keeps no ``bbox``).  Whole-document
    mode maps a document's boxes on its first page, then moves each page's onto its own."""
    out = []
    for block in blocks:
        bbox = None if block.bbox_norm is None else norm_to_points(block.bbox_norm, page)
        out.append(block.model_copy(update={"bbox": bbox, "children": rescale_blocks(block.children, page)}))
    return out


def to_pdf_user_space(bbox: Sequence[float], page: PageBox) -> Box:
    """Displayed-page points (top-left origin) -> PDF user space (bottom-left origin), undoing
    ``/Rotate`` and the CropBox offset.  Returns ``(x0, y0, x1, y1)`` with ``y0 < y1``."""
    x0, y0, x1, y1 = bbox
    r = page.rotation % 360
    # unrotated (cropped) page size
    w, h = (page.height, page.width) if r in (90, 270) else (page.width, page.height)

    def unrotate(x: float, y: float) -> tuple[float, float]:
        # displayed (x, y) -> unrotated top-left-origin (u, v)
        if r == 0:
            return x, y
        if r == 90:
            return y, h - x
        if r == 180:
            return w - x, h - y
        return w - y, x  # 270

    us, vs = zip(unrotate(x0, y0), unrotate(x1, y1), strict=True)
    u0, u1 = min(us), max(us)
    v0, v1 = min(vs), max(vs)
    return (page.crop_x + u0, page.crop_y + (h - v1), page.crop_x + u1, page.crop_y + (h - v0))


def content_to_blocks(content: PageContent, request: ModelRequest, page: PageImage) -> list[Block]:
    """A dialect's raw blocks (model space, children included) -> output blocks on the page
    (points and [0, 1] of the displayed page), each box through :func:`to_page` with the frame
    of the image that was sent."""
    from .document import Block  # the output contract (pydantic), loaded when first needed

    frame = request.frame or page.frame
    return [_to_block(Block, raw, content.space, frame, page.page_box) for raw in content.blocks]


def _to_block(block: type[Block], raw: RawBlock, space: CoordSpace, frame: Frame, page: PageBox) -> Block:
    bbox = bbox_norm = None
    flags: list[str] = []
    if raw.box is not None:
        mapped = to_page(raw.box, space, frame, page)
        bbox, bbox_norm, flags = mapped.bbox, mapped.bbox_norm, mapped.flags
    return block.built(
        type=raw.type,
        text=raw.text,
        bbox=bbox,
        bbox_norm=bbox_norm,
        confidence=raw.confidence,
        label=raw.label,
        flags=list(flags),
        children=[_to_block(block, c, space, frame, page) for c in raw.children],
        source=raw.source if raw.source in ("text-layer", "ocr") else None,
    )
