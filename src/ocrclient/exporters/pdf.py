"""Searchable PDF writer: the original pages with an invisible text layer.

:class:`SearchablePdf` builds it a page at a time, as pages finish (in any order; the PDF keeps
page order).  For a PDF input each page is copied from the input's own document
(``import_pages``: content, ``/Rotate``, MediaBox and CropBox unchanged) — the handle a run
opened when the document started (:func:`ocrclient.exporters.source.open_pdf`, from the run's
bytes for a document given as bytes), so nothing re-reads the input once its pages are done.  A
PDF is kept as it is rather than rebuilt from page images: its vector content, its own text
(see below) and its page boxes are what a searchable PDF promises.  For an image input each
page is made from the page image the run rendered (embedded as JPEG, quality
:data:`IMAGE_QUALITY`), sized from the resolution the image records when it records a sane one,
else 72 dpi.

The text layer goes in line by line (:func:`text_lines`, in :mod:`.pdf_text`; placed by
:mod:`.pdf_layer`): every line the model boxed, with its
word boxes when it gave them, else each block's text spread line by line over its box.  All
words of a line share one font size (the line box's thickness over the font's ascent-descent)
and one baseline, run along the line's direction, and are invisible (text render mode 3).  Each
word is stretched to span its own box along the line (without word boxes: its share of the
line by the font's widths) and is followed by an explicit space, and touching or overlapping
word boxes are pulled apart by :data:`MIN_GAP_EM`, so text extractors (``pdftotext``, PDFium,
viewers' search and copy) read the OCR's lines with their spaces.  Words the line's text writes
without a space between them (CJK characters boxed one by one) stay one run.

Direction: boxes go from displayed-page space to PDF user space with
:func:`ocrclient.geometry.to_pdf_user_space` (undoing ``/Rotate`` and the CropBox offset), and
the text matrix is turned with the page, so on a page shown rotated a line reads horizontally as
displayed.  A line that runs vertically on the displayed page (word boxes stacked, or a box
taller than wide that its text fits that way) gets its text turned along it, top to bottom or
bottom to top, rather than squeezed across it letter by letter.

Pages that already carry text of their own are left as they are: a page whose own extractable
text holds at least half of the OCR's words (:func:`has_text_layer`: a born-digital or already
OCRed page) gets no OCR text, and on other pages a line whose words the page's own text already
holds inside its box (a stamp, a page number) is not added again.  ``force_ocr_text=True`` (CLI
``--force-ocr-text``) adds every OCR line regardless.

Figure blocks' own text is a description, not page text, and gets no text layer.  Markdown and
HTML markup in block text (tables, emphasis, headings, list bullets) is stripped to its words.

Fonts (:mod:`.pdf_fonts`): text that the standard Helvetica font can encode (WinAnsi) uses
Helvetica (nothing is embedded).  Other text uses a Unicode TrueType font found on the system
(:func:`system_font`: ``OCRCLIENT_PDF_FONT``, else DejaVu Sans / Noto Sans / Liberation Sans /
Arial at their usual places), embedded once as a CID font.  Without one, such text is
transliterated (accents dropped via NFKD) and characters that still do not fit are left out,
with one warning in the log; nothing ever fails for it.

Failed pages are copied without a text layer.  :func:`render` / :func:`write` build the PDF of a
Document given without its run: they find the input again (:mod:`.source`) and raise a one-line
:class:`~ocrclient.errors.InputError` when it is gone.

The layer is written with PDFium's page-object API through pypdfium2, which already reads the
pages: a text object per word, then ``FPDFPage_GenerateContent``.  pikepdf (what OCRmyPDF uses)
or reportlab would make a core dependency of what is here a few dozen lines of object placement.

Example::

    >>> from ocrclient.exporters import pdf                        # doctest: +SKIP
    >>> pdf.write(doc, Path("out/report.pdf"))                      # doctest: +SKIP
    >>> pdf.write(doc, Path("out/forced.pdf"), force_ocr_text=True)  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from ..document import Document, Page
from ..errors import InputError
from ..pages import PDFIUM_LOCK
from ..pages.render import flatten
from ._io import atomic_write
from .pdf_fonts import Fonts
from .pdf_layer import MIN_GAP_EM, display_to_user, lines_to_add, page_box_of, place_line
from .pdf_text import TextLine, TextUnit, has_text_layer, plain_text, text_lines, text_units

__all__ = [
    "IMAGE_QUALITY",
    "MIN_GAP_EM",
    "SearchablePdf",
    "TextLine",
    "TextUnit",
    "has_text_layer",
    "plain_text",
    "render",
    "system_font",
    "text_lines",
    "text_units",
    "write",
]

log = logging.getLogger("ocrclient.exporters.pdf")

#: JPEG quality of the page images an image input's pages are made of
IMAGE_QUALITY = 90

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "/System/Library/Fonts/Supplemental/Arial Unicode.ttf",
    "C:/Windows/Fonts/arial.ttf",
)


def system_font() -> Path | None:
    """The Unicode TrueType font for text Helvetica cannot show: ``OCRCLIENT_PDF_FONT``, else
    the first of the usual system fonts that exists; ``None`` when there is none."""
    env = os.environ.get("OCRCLIENT_PDF_FONT")
    for cand in ([env] if env else []) + list(_FONT_CANDIDATES):
        p = Path(cand)
        if p.suffix.lower() in (".ttf", ".otf") and p.is_file():
            return p
    return None


_system_font = system_font  # the name the tests and older callers use


class SearchablePdf:
    """The searchable PDF of one document, built a page at a time (see the module docstring).

    ``source_pdf`` is the input's own ``PdfDocument`` for a PDF input (its pages are copied;
    the caller closes it after :meth:`save`), ``None`` for an image input (each page is made
    from the image given to :meth:`add`).  Thread-safe: every call holds ``PDFIUM_LOCK``.

    Example::

        pdf = SearchablePdf(source_pdf)          # doctest: +SKIP
        pdf.add(page)                            # as each page finishes, in any order
        data = pdf.save(); pdf.close()
    """

    def __init__(
        self,
        source_pdf: Any | None = None,
        *,
        force_ocr_text: bool = False,
        label: str = "",
        reopen: Callable[[], Any] | None = None,
    ) -> None:
        import pypdfium2 as pdfium

        self.source_pdf = source_pdf
        #: opens the input afresh: after a page fails to be copied, the handle is not asked for
        #: another (:func:`ocrclient.pages.render.load_page`); the handles it opens are closed here
        self._reopen = reopen
        self._reopened: list[Any] = []
        self._uncopyable: set[int] = set()
        self.force_ocr_text = force_ocr_text
        self.label = label
        self.placed: list[int] = []
        with PDFIUM_LOCK:
            self._out = pdfium.PdfDocument.new()
            self._fonts = Fonts(self._out, system_font())

    def add(self, page: Page, image: Image.Image | None = None, dpi: tuple[float, float] = (72.0, 72.0)) -> bool:
        """Put ``page`` in the PDF, in page order, with its text layer (none for a failed page).
        ``image``/``dpi``: the page image of an image input and the resolution its input
        records (across, down).  ``False`` (with a warning) when the page cannot be placed: not in the source
        PDF, or no image for an image input.  A page already placed is kept as it is."""
        import pypdfium2 as pdfium

        with PDFIUM_LOCK:
            if page.page in self.placed:
                return True
            if page.page in self._uncopyable:
                return False
            pos = bisect.bisect(self.placed, page.page)
            if self.source_pdf is not None:
                if not 1 <= page.page <= len(self.source_pdf):
                    log.warning("page %d is not in %s; left out of the PDF", page.page, self.label)
                    return False
                before = len(self._out)
                try:
                    self._out.import_pages(self.source_pdf, pages=[page.page - 1], index=pos)
                except pdfium.PdfiumError as exc:
                    if len(self._out) > before:  # PDFium leaves a blank page where the copy failed
                        self._out.del_page(pos)
                    log.warning("page %d of %s cannot be copied (%s); left out of the PDF", page.page, self.label, exc)
                    self._uncopyable.add(page.page)
                    self._fresh_source()
                    return False
            elif image is None:
                log.warning("%s page %d has no page image; left out of the PDF", self.label, page.page)
                return False
            else:
                size = (page.width, page.height) if page.width > 0 and page.height > 0 else image.size
                self._image_page(image, size, dpi, pos)
            self.placed.insert(pos, page.page)
            self._text_layer(pos, page)
            return True

    def _image_page(self, image: Image.Image, size_px: tuple[float, float], dpi: tuple[float, float], index: int) -> None:
        """A new page at ``index`` showing ``image`` (the page as displayed: the input's own
        pixels or the run's render of them), as large as ``size_px`` input pixels at ``dpi``
        (across, down)."""
        import pypdfium2 as pdfium

        img = flatten(image)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=IMAGE_QUALITY)
        buf.seek(0)
        w_pt, h_pt = size_px[0] * 72.0 / dpi[0], size_px[1] * 72.0 / dpi[1]
        pg = self._out.new_page(w_pt, h_pt, index=index)
        try:
            obj = pdfium.PdfImage.new(self._out)
            obj.load_jpeg(buf, inline=True)
            obj.set_matrix(pdfium.PdfMatrix().scale(w_pt, h_pt))
            pg.insert_obj(obj)
            pg.gen_content()
        finally:
            pg.close()

    def _text_layer(self, index: int, page: Page) -> None:
        import pypdfium2.raw as pdfium_c

        lines = text_lines(page)
        if not lines:
            return
        pg = self._out[index]
        try:
            pb = page_box_of(pg)
            if not self.force_ocr_text:
                todo = lines_to_add(pg, pb, lines)
                if len(todo) < len(lines):
                    log.info("%s page %d: %d of %d OCR lines are already the page's own text; not added again",
                             self.label, page.page, len(lines) - len(todo), len(lines))
                lines = todo
            to_user = display_to_user(pb)
            if sum(place_line(self._out, pg.raw, self._fonts, ln, pb, to_user) for ln in lines):
                pdfium_c.FPDFPage_GenerateContent(pg.raw)
        finally:
            pg.close()

    def save(self) -> bytes:
        """The PDF as bytes (pages in page order)."""
        if self._fonts.dropped:
            log.warning(
                "%s: %d text run(s) have characters no available font covers; they were "
                "transliterated or left out of the text layer (set OCRCLIENT_PDF_FONT to a "
                "Unicode .ttf that has them, e.g. Noto Sans CJK, to keep them)", self.label, self._fonts.dropped,
            )
        buf = io.BytesIO()
        with PDFIUM_LOCK:
            self._out.save(buf)
        return buf.getvalue()

    def _fresh_source(self) -> None:
        """A new handle of the input in place of one that failed to copy a page (hold the lock)."""
        if self._reopen is not None:
            self.source_pdf = self._reopen()
            self._reopened.append(self.source_pdf)

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._fonts.close()
            self._out.close()
            for handle in self._reopened:
                handle.close()
            self._reopened.clear()


def render(
    doc: Document, *, source: str | Path | None = None, base: Path | None = None, force_ocr_text: bool = False
) -> bytes:
    """The searchable PDF of a Document given without its run, as bytes: the input is found
    again (``source``, else ``doc.source`` as written or under ``base``).  Pages that already
    carry a text layer of their own (see :func:`has_text_layer`) are left as they are unless
    ``force_ocr_text``.  Raises :class:`InputError` (one line) when the input cannot be found
    or opened: its pages are what the PDF is made of."""
    from .source import image_dpis, open_pdf, open_source, render_pages, resolve_source, source_spec

    path = resolve_source(doc, source, base)
    if path is None:
        raise InputError(f"{doc.source}: source file not found; a searchable PDF needs the original pages")
    src = open_source(path)
    source_pdf = open_pdf(src) if src.kind == "pdf" else None
    pdf = SearchablePdf(source_pdf, force_ocr_text=force_ocr_text, label=doc.source, reopen=lambda: open_pdf(src))
    try:
        if source_pdf is not None:
            for page in doc.pages:
                pdf.add(page)
        else:
            dpis = image_dpis(src)
            pages = {p.page: p for p in doc.pages}
            for number, pimg, err in render_pages(path, list(pages), source_spec(path, 72.0)):
                if pimg is None:
                    log.warning("page %d of %s: %s; left out of the PDF", number, path.name, err)
                    continue
                pdf.add(pages[number], pimg.image(), dpis.get(number, (72.0, 72.0)))
        return pdf.save()
    finally:
        pdf.close()
        if source_pdf is not None:
            with PDFIUM_LOCK:
                source_pdf.close()


def write(doc: Document, path: Path, *, source: str | Path | None = None, force_ocr_text: bool = False) -> Path:
    """Write the searchable PDF of ``doc`` to ``path`` (see :func:`render`)."""
    return atomic_write(path, render(doc, source=source, base=path.parent, force_ocr_text=force_ocr_text))
