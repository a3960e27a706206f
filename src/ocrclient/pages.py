"""Inputs -> a lazy stream of page images.

(First cut: serial rendering of PDF files.  Being replaced by the full implementation: process
pool, images, TIFF, directories, globs, bytes, page ranges, passwords.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .errors import InputError
from .geometry import Frame, PageBox
from .imaging import EncodedImage, RenderSpec, encode

__all__ = ["PageImage", "iter_pages"]


@dataclass
class PageImage:
    """One page, rendered as displayed and encoded as its backend's RenderSpec asks.

    ``page_box`` carries the page's geometry (displayed size in points, ``/Rotate``, CropBox
    offset); ``encoded`` the image bytes that will be sent; ``error`` is set instead of
    ``encoded`` when this one page could not be rendered (the page is then reported as failed,
    never dropped).
    """

    source: str
    index: int
    page_box: PageBox
    encoded: EncodedImage | None
    render_scale: float = 1.0
    error: str | None = None

    @property
    def number(self) -> int:
        """1-based page number."""
        return self.index + 1

    @property
    def frame(self) -> Frame:
        if self.encoded is None:
            raise ValueError(f"page {self.number} of {self.source} has no image: {self.error}")
        return Frame(self.encoded.width, self.encoded.height)

    def image(self) -> Image.Image:
        """The decoded PIL image of the page (as displayed)."""
        if self.encoded is None:
            raise ValueError(f"page {self.number} of {self.source} has no image: {self.error}")
        return self.encoded.decode()


def iter_pages(path: str | Path, spec: RenderSpec) -> Iterator[PageImage]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except (pdfium.PdfiumError, OSError) as exc:
        raise InputError(f"{path}: cannot open PDF ({exc})") from exc
    try:
        for i in range(len(pdf)):
            page = pdf[i]
            w, h = page.get_size()
            scale = spec.scale(w, h)
            img = page.render(scale=scale).to_pil()
            x0, y0, _, _ = page.get_cropbox()
            yield PageImage(
                source=str(path),
                index=i,
                page_box=PageBox(w, h, page.get_rotation(), x0, y0),
                encoded=encode(img, spec),
                render_scale=scale,
            )
    finally:
        pdf.close()
