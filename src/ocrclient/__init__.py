"""ocrclient: PDFs and images -> markdown + layout blocks, via OCR models on remote GPUs or an
embedded CPU engine."""

from __future__ import annotations

__version__ = "0.1.0"
