"""HTML writer (``--format html``): the self-contained viewer of :mod:`ocrclient.viewer` —
page images with block boxes, a legend, a side panel and a page navigator, in one file.

Example::

    >>> from ocrclient.exporters import html                       # doctest: +SKIP
    >>> html.write(doc, Path("out/report.html"))                    # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from ..document import Document
from ._io import atomic_write

__all__ = ["write"]


def write(doc: Document, path: Path, *, source: str | Path | None = None) -> Path:
    """Write the viewer for ``doc`` to ``path`` (pages rendered from ``source`` or
    ``doc.source``; blank pages with a note when it cannot be found)."""
    from ..viewer import render_html

    return atomic_write(path, render_html(doc, source=source, base=path.parent))
