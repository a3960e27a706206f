"""The HTML viewer's old home: it lives in :mod:`ocrclient.exporters.html` now (the HTML writer
and ``ocr view``); this module re-exports it so ``from ocrclient.viewer import ...`` and
``python -m ocrclient.viewer RESULT.json [OUT.html]`` keep working."""

from __future__ import annotations

import sys

from .exporters.html import (
    FIXED_HEAD_TOP,
    FIXED_SHEET_LEFT,
    FIXED_SHEET_TOP,
    FIXED_SHEET_WIDTH,
    TYPE_COLORS,
    VIEWER_DPI,
    VIEWER_JPEG_QUALITY,
    VIEWER_MAX_SIDE,
    load_document,
    main,
    page_jpeg,
    render_html,
    viewer_size,
    write_viewer,
)

__all__ = [
    "FIXED_HEAD_TOP",
    "FIXED_SHEET_LEFT",
    "FIXED_SHEET_TOP",
    "FIXED_SHEET_WIDTH",
    "TYPE_COLORS",
    "VIEWER_DPI",
    "VIEWER_JPEG_QUALITY",
    "VIEWER_MAX_SIDE",
    "load_document",
    "page_jpeg",
    "render_html",
    "viewer_size",
    "write_viewer",
]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
