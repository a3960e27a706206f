"""Page renders and figure crops shared by the exporters that need the source pages
(markdown figure crops, the HTML viewer, the searchable PDF).

A :class:`~ocrclient.document.Document` only remembers its input as ``Document.source`` (the
path as the user typed it).  :func:`resolve_source` finds that file again (as given, or
relative to a directory such as the one holding the JSON); :func:`render_pages` renders the
wanted pages *as displayed* through :mod:`ocrclient.pages` (PDFium for PDFs, the image itself
for image inputs), so a block's ``bbox_norm`` maps straight onto the render's pixels.

Example::

    >>> from ocrclient.exporters.figures import crop_box_px
    >>> crop_box_px([0.25, 0.5, 0.75, 1.0], 200, 100)
    (50, 50, 150, 100)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..document import Block, Document, Page
from ..errors import OcrError
from ..imaging import RenderSpec

__all__ = [
    "FIGURE_DPI",
    "FigureCrop",
    "crop_box_px",
    "crop_figures",
    "figure_blocks",
    "norm_box",
    "render_pages",
    "resolve_source",
    "source_spec",
]

log = logging.getLogger("ocrclient.exporters")

#: resolution of figure crops cut from PDF pages (image inputs are cropped at their own pixels)
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


def resolve_source(doc: Document, source: str | Path | None = None, base: Path | None = None) -> Path | None:
    """The input file of ``doc`` if it can be found: ``source`` when given, else
    ``doc.source`` as written (relative to the working directory), else relative to ``base``.
    ``None`` when nothing readable is there (e.g. the input was raw bytes or was moved)."""
    candidates: list[Path] = []
    if source is not None:
        candidates.append(Path(source).expanduser())
    elif doc.source and not doc.source.startswith("bytes:"):
        raw = Path(doc.source).expanduser()
        candidates.append(raw)
        if base is not None and not raw.is_absolute():
            candidates.append(base / raw)
            candidates.append(base / raw.name)
    for cand in candidates:
        try:
            if cand.is_file():
                return cand
        except OSError:
            continue
    return None


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


def render_pages(
    path: Path, numbers: Sequence[int], spec: RenderSpec
) -> Iterator[tuple[int, Image.Image | None, str | None]]:
    """Render the 1-based pages ``numbers`` of ``path`` as displayed: yields
    ``(number, image, error)``, pages in order (pages past the end of the file last); a page that cannot be rendered (or does not exist in
    the file) comes with ``image=None`` and a one-line ``error``.  Never raises for a bad file:
    every page then carries the error."""
    from ..pages import iter_pages, open_sources

    wanted = sorted({n for n in numbers if n >= 1})
    if not wanted:
        return
    try:
        src = open_sources([path])[0]
    except OcrError as exc:
        for n in wanted:
            yield n, None, str(exc)
        return
    valid = [n for n in wanted if n <= src.page_count]
    done: set[int] = set()
    if valid:
        try:
            for pimg in iter_pages(src, spec, pages=[n - 1 for n in valid]):
                done.add(pimg.number)
                if pimg.encoded is None:
                    yield pimg.number, None, pimg.error or "render failed"
                else:
                    yield pimg.number, pimg.image(), None
        except OcrError as exc:
            for n in valid:
                if n not in done:
                    yield n, None, str(exc)
    for n in wanted:
        if n > src.page_count:
            yield n, None, f"page {n} is not in {path.name} (it has {src.page_count})"


def source_spec(path: Path, dpi: float, fmt: str = "png", quality: int = 85, longest_side: int | None = None) -> RenderSpec:
    """Render spec for ``path``: PDFs at ``dpi``; images at their own pixels (dpi 72 = one pixel
    per point), both optionally capped at ``longest_side``."""
    try:
        with path.open("rb") as fh:
            is_pdf = b"%PDF-" in fh.read(1024)
    except OSError:
        is_pdf = False
    eff_dpi = dpi if is_pdf else 72.0
    return RenderSpec(dpi=eff_dpi, longest_side=longest_side, format=fmt, quality=quality)  # type: ignore[arg-type]


def crop_figures(
    doc: Document, source: Path, dpi: float = FIGURE_DPI
) -> tuple[list[FigureCrop], list[str]]:
    """Cut every figure block that has a box out of its page render.  Returns the crops and
    notes about pages that could not be rendered (failed pages are skipped: their blocks, if
    any, are not trusted)."""
    wanted: dict[int, list[Block]] = {}
    for page in doc.pages:
        if page.status == "failed":
            continue
        figs = figure_blocks(page)
        if any(norm_box(b, page) for b in figs):
            wanted[page.page] = figs
    pages_by_no = {p.page: p for p in doc.pages}
    crops: list[FigureCrop] = []
    notes: list[str] = []
    if not wanted:
        return crops, notes
    spec = source_spec(source, dpi)
    for number, img, err in render_pages(source, list(wanted), spec):
        if img is None:
            notes.append(f"page {number}: no figure crops ({err})")
            continue
        page = pages_by_no[number]
        for k, block in enumerate(wanted[number], start=1):
            box = norm_box(block, page)
            if box is None:
                continue
            px = crop_box_px(box, img.width, img.height)
            crops.append(FigureCrop(number, k, block, img.crop(px), px))
    return crops, notes
