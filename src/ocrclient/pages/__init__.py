"""Inputs -> a lazy, bounded stream of page images (see :mod:`ocrclient.pages.render`)."""

from __future__ import annotations

from .render import (
    IMAGE_SUFFIXES,
    PDF_SUFFIXES,
    PDFIUM_LOCK,
    PREFETCH_PER_WORKER,
    PageImage,
    RenderPool,
    RenderPoolError,
    Source,
    aiter_pages,
    iter_pages,
    open_sources,
    parse_page_range,
)

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
]
