"""Plain-text writer: the text of every block (or the markdown stripped of markup), pages
separated by form feeds as ``pdftotext`` does."""

from __future__ import annotations

import re
from pathlib import Path

from ..document import Document, Page
from ._io import atomic_write

_MD = re.compile(r"(^#{1,6}\s+)|(\*\*|__|`)|(^\s*[-*+]\s+)|(<[^>]+>)", re.M)
#: an image, ``![alt](where)``: its alt text is what the text keeps (a figure's description)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")


def page_text(page: Page) -> str:
    if page.status == "failed":
        return ""
    return _MD.sub("", _IMAGE.sub(r"\1", page.markdown)).strip()


def render(doc: Document) -> str:
    return "\f".join(page_text(p) + "\n" for p in doc.pages)


def write(doc: Document, path: Path) -> Path:
    return atomic_write(path, render(doc))
