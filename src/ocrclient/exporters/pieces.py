"""What a document's outputs keep of its finished pages, made from each page's rendered image.

:class:`PagePieces` turns one finished page (and the image the run rendered of it) into the
pieces the outputs are later written from, then lets the image go:

* ``md``: the page's figure crops, cut from the image and written at once to
  ``<stem>_figures/page<N>_fig<K>.png`` (only their links are kept: :attr:`PagePieces.links`);
* ``html``: the page's viewer image (:func:`ocrclient.exporters.html_images.page_jpeg`), spilled
  to a hidden folder beside the outputs until the one HTML file is written
  (:attr:`PagePieces.html_files`; pages without one in :attr:`PagePieces.missing`);
* ``pdf``: the page put into the searchable PDF being built
  (:class:`ocrclient.exporters.pdf.SearchablePdf`), copied from the input's own PDF or, for an
  image input, made from the page image.

One output's trouble never loses the others: it becomes a line in :attr:`PagePieces.notes`.
The document's lifecycle (pages in, files out) is :class:`ocrclient.exporters.sink.DocumentSink`.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from ..document import Document, Page
from ..errors import OcrError
from ..pages import PDFIUM_LOCK, PageImage, Source

__all__ = ["PagePieces"]

Pixels = Callable[[], Image.Image | None]


class PagePieces:
    """The pieces of one document's outputs, page by page (see the module docstring).

    ``targets`` and ``options`` as :class:`~ocrclient.exporters.sink.DocumentSink` takes them;
    ``pages`` is how many pages the document will have (the viewer's image size depends on it).
    Thread-safe: pages may be made in several threads at once.
    """

    def __init__(
        self, source: Source, targets: Mapping[str, Path], options: Mapping[str, Mapping[str, Any]], pages: int
    ) -> None:
        self.source = source
        self.targets = targets
        self.options = options
        self.pages = pages
        self.links: dict[tuple[int, int], str] = {}
        self.html_files: dict[int, Path] = {}
        self.missing: dict[int, str] = {}
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._spill: Path | None = None
        self._pdf: Any = None  # SearchablePdf
        self._source_pdf: Any = None
        self._dpis: dict[int, tuple[float, float]] = {}
        self._pdf_error: str | None = None

    @property
    def figures(self) -> bool:
        return "md" in self.targets and bool(self.options.get("md", {}).get("figures", True))

    def wants_images(self) -> bool:
        """Whether any output of this document is made from page images."""
        return self.figures or "html" in self.targets or ("pdf" in self.targets and self.source.kind == "image")

    def open_pdf(self) -> None:
        """Take what the searchable PDF needs from the input beside the page images: a PDF
        input's own document (its pages are copied), an image input's recorded resolution."""
        from .pdf import SearchablePdf
        from .source import image_dpis, open_pdf

        try:
            if self.source.kind == "pdf":
                self._source_pdf = open_pdf(self.source)
            else:
                self._dpis = image_dpis(self.source)
        except OcrError as exc:
            self._pdf_error = str(exc)
            return
        force = bool(self.options.get("pdf", {}).get("force_ocr_text", False))
        self._pdf = SearchablePdf(self._source_pdf, force_ocr_text=force, label=self.source.name,
                                  reopen=lambda: open_pdf(self.source))  # fmt: skip

    def make(self, page: Page, image: PageImage | None) -> bool:
        """Make ``page``'s pieces for every output from ``image`` (decoded once, if needed);
        ``False`` when one of them failed (said in :attr:`notes`)."""
        decoded: Image.Image | None = None
        made = True

        def pixels() -> Image.Image | None:
            nonlocal decoded
            if decoded is None and image is not None and image.encoded is not None:
                decoded = image.image()
            return decoded

        for what, step in (("figure crops", self._crops), ("page image", self._html_page), ("pdf page", self._pdf_page)):
            try:
                step(page, image, pixels)
            except Exception as exc:  # one output's trouble never loses the run or the others
                self.note(f"{self.source.name} page {page.page}: {what} not made ({type(exc).__name__}: {exc})")
                made = False
        return made

    def note(self, line: str) -> None:
        with self._lock:
            self.notes.append(line)

    def _crops(self, page: Page, image: PageImage | None, pixels: Pixels) -> None:
        from . import markdown
        from .figures import cut_figures, has_figure_boxes

        if not self.figures or not has_figure_boxes(page):
            return
        img = pixels()
        if img is None:
            self.note(f"{self.source.name} page {page.page}: no figure crops ({_why(image)})")
            return
        for crop in cut_figures(page, img):
            link = markdown.save_crop(self.targets["md"], crop)
            with self._lock:
                self.links[(crop.page, crop.index)] = link

    def _html_page(self, page: Page, image: PageImage | None, pixels: Pixels) -> None:
        from ._io import atomic_write
        from .html_images import page_jpeg, viewer_size

        if "html" not in self.targets:
            return
        img = pixels()
        if img is None or image is None:
            with self._lock:
                self.missing[page.page] = f"page image not available: {_why(image)}"
            return
        box = image.page_box
        size = viewer_size(box.width, box.height, pdf=self.source.kind == "pdf", pages=self.pages, have=img.size)
        path = atomic_write(self._spill_dir() / f"page{page.page}.jpg", page_jpeg(img, size))
        with self._lock:
            self.html_files[page.page] = path

    def _pdf_page(self, page: Page, image: PageImage | None, pixels: Pixels) -> None:
        if self._pdf is None:
            return
        img = pixels() if self.source.kind == "image" else None
        self._pdf.add(page, img, self._dpis.get(page.page, (72.0, 72.0)))

    def _spill_dir(self) -> Path:
        with self._lock:
            if self._spill is None:
                folder = self.targets["html"].parent
                folder.mkdir(parents=True, exist_ok=True)
                self._spill = Path(tempfile.mkdtemp(prefix=f".{self.targets['html'].stem}.", suffix=".pages", dir=folder))
            return self._spill

    def html_images(self) -> dict[int, bytes]:
        """The spilled viewer images, page number -> JPEG bytes."""
        return {n: f.read_bytes() for n, f in sorted(self.html_files.items())}

    def write_pdf(self, path: Path, doc: Document) -> Path:
        """Finish and write the searchable PDF (pages never reported go in as the document has
        them); a one-line :class:`InputError` when it could not be started."""
        from ..errors import InputError
        from ._io import atomic_write

        if self._pdf is None and self._pdf_error is None:  # a document whose pages never started
            self.open_pdf()
        if self._pdf is None:
            raise InputError(self._pdf_error or f"{doc.source}: no searchable PDF was started")
        for page in doc.pages:
            self._pdf.add(page)
        return atomic_write(path, self._pdf.save())

    def close(self) -> None:
        """Free the PDF, the input's handle and the spilled images."""
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None
        if self._source_pdf is not None:
            with PDFIUM_LOCK:
                self._source_pdf.close()
            self._source_pdf = None
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)
            self._spill = None


def _why(image: PageImage | None) -> str:
    return image.error if image is not None and image.error else "the page was not rendered"
