"""Inputs -> a lazy, bounded stream of page images, one module per stage.

* :mod:`~ocrclient.pages.inputs` — :func:`open_sources` turns what a user typed (files,
  directories, glob patterns, PDF or image bytes) into :class:`Source` documents, validated by
  :mod:`~ocrclient.pages.sources` (magic bytes, page count; one :class:`InputError` line for
  anything unusable);
* :mod:`~ocrclient.pages.ranges` — :func:`parse_page_range`: which pages a run takes;
* :mod:`~ocrclient.pages.render` — one page rendered *as displayed* (``/Rotate`` and CropBox
  applied, EXIF orientation applied for images) to the backend's
  :class:`~ocrclient.imaging.RenderSpec` and encoded: a :class:`PageImage`.  It is the one owner
  of a PDF page's box (:func:`~ocrclient.pages.render.pdf_page_box`) and of flattening;
* :mod:`~ocrclient.pages.pdfdocs` — the PDFs a process keeps open between pages (the
  renderer's, the text layer's), each opened afresh every few dozen pages: PDFium keeps what a
  page loads until its document is closed;
* :mod:`~ocrclient.pages.pool` — :class:`RenderPool`, the worker processes that render (PDFium
  is not thread-safe), from a fork server that never runs the caller's ``__main__``;
* :mod:`~ocrclient.pages.stream` — :func:`iter_pages` / :func:`aiter_pages`, the pull-based
  streams: a page is submitted for rendering only when the consumer asks for the next one, and
  at most ``prefetch`` pages are ever rendered-but-not-consumed.  A page that cannot be rendered
  is yielded with ``encoded=None`` and ``error`` set, never dropped.

Every public name is importable from ``ocrclient.pages``.

Example::

    >>> from ocrclient.imaging import RenderSpec
    >>> from ocrclient.pages import RenderPool, iter_pages, open_sources
    >>> with RenderPool() as pool:                                  # doctest: +SKIP
    ...     for src in open_sources(["scans/", "report.pdf"]):
    ...         for page in iter_pages(src, RenderSpec(dpi=150), pages="1-3", pool=pool):
    ...             print(src.name, page.number, page.frame, page.error)
"""

from __future__ import annotations

from .inputs import IMAGE_SUFFIXES, PDF_SUFFIXES, open_sources, prepare
from .pool import PREFETCH_PER_WORKER, RenderPool, RenderPoolError
from .ranges import parse_page_range
from .render import PDFIUM_LOCK, PageImage
from .sources import Source
from .stream import aiter_pages, iter_pages

__all__ = [
    "IMAGE_SUFFIXES",
    "PDFIUM_LOCK",
    "PDF_SUFFIXES",
    "PREFETCH_PER_WORKER",
    "PageImage",
    "RenderPool",
    "RenderPoolError",
    "Source",
    "aiter_pages",
    "iter_pages",
    "open_sources",
    "parse_page_range",
    "prepare",
]
