"""Figure crops: which blocks of a page are figures, where they are on a page image, and the
crops themselves (used by the markdown writer; the HTML viewer and the PDF share the box
helpers).

Crops are cut from a page image *as displayed* — the run's own render of the page (see
:mod:`ocrclient.exporters.sink`), or, for a Document written without its run, a fresh render at
:data:`FIGURE_DPI` (see :mod:`ocrclient.exporters.source`) — so a block's ``bbox_norm`` maps
straight onto the image's pixels.

Example::

    >>> from ocrclient.exporters.figures import crop_box_px
    >>> crop_box_px([0.25, 0.5, 0.75, 1.0], 200, 100)
    (50, 50, 150, 100)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..document import Block, Document, Page
from .source import resolve_source, source_spec  # noqa: F401 - their old home; kept importable

__all__ = [
    "FIGURE_DPI",
    "FigureCrop",
    "crop_box_px",
    "crop_figures",
    "cut_figures",
    "figure_blocks",
    "has_figure_boxes",
    "norm_box",
]

#: resolution of figure crops cut from PDF pages when a Document is written without its run
#: (image inputs are cropped at their own pixels; a run crops its own renders)
FIGURE_DPI = 150.0


@dataclass
class FigureCrop:
    """One figure cut out of a page render: ``page`` 1-based, ``index`` 1-based among the
    figure blocks of that page (in block order), ``image`` the cropped pixels."""

    page: int
    index: int
    block: Block
    image: Image.Image
    box_px: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))


def norm_box(block: Block, page: Page) -> tuple[float, float, float, float] | None:
    """A block's box in [0, 1] of the displayed page (``bbox_norm``, else ``bbox`` divided by
    the page size), clamped and ordered; ``None`` without a usable box."""
    box: Sequence[float] | None = block.bbox_norm
    if box is None and block.bbox is not None and page.width > 0 and page.height > 0:
        x0, y0, x1, y1 = block.bbox
        box = (x0 / page.width, y0 / page.height, x1 / page.width, y1 / page.height)
    if box is None:
        return None
    x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in box)
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return x0, y0, x1, y1


def crop_box_px(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """A normalized box -> integer pixel box on a ``width x height`` render (edges rounded)."""
    x0, y0, x1, y1 = box
    return (
        round(x0 * width),
        round(y0 * height),
        max(round(x1 * width), round(x0 * width) + 1),
        max(round(y1 * height), round(y0 * height) + 1),
    )


def figure_blocks(page: Page) -> list[Block]:
    """Figure blocks of a page in block order (depth first, children after their parent)."""
    out: list[Block] = []

    def walk(blocks: list[Block]) -> None:
        for b in blocks:
            if b.type == "figure":
                out.append(b)
            walk(b.children)

    walk(page.blocks)
    return out


def has_figure_boxes(page: Page) -> bool:
    """Whether ``page`` (not failed) has a figure block with a usable box: something to crop."""
    return page.status != "failed" and any(norm_box(b, page) for b in figure_blocks(page))


def cut_figures(page: Page, image: Image.Image) -> list[FigureCrop]:
    """Cut every figure block of ``page`` that has a box out of ``image`` (the page as
    displayed, any resolution); nothing for a failed page (its blocks are not trusted)."""
    if page.status == "failed":
        return []
    crops: list[FigureCrop] = []
    for k, block in enumerate(figure_blocks(page), start=1):
        box = norm_box(block, page)
        if box is None:
            continue
        px = crop_box_px(box, image.width, image.height)
        crops.append(FigureCrop(page.page, k, block, image.crop(px), px))
    return crops


def crop_figures(doc: Document, source: Path, dpi: float = FIGURE_DPI) -> tuple[list[FigureCrop], list[str]]:
    """The figure crops of a Document written without its run: its pages with figures are
    rendered again from ``source`` (PDFs at ``dpi``, images at their own pixels).  Returns the
    crops and notes about pages that could not be rendered."""
    from .source import render_pages

    wanted = {p.page: p for p in doc.pages if has_figure_boxes(p)}
    crops: list[FigureCrop] = []
    notes: list[str] = []
    if not wanted:
        return crops, notes
    for number, pimg, err in render_pages(source, list(wanted), source_spec(source, dpi)):
        if pimg is None:
            notes.append(f"page {number}: no figure crops ({err})")
            continue
        crops.extend(cut_figures(wanted[number], pimg.image()))
    return crops, notes
