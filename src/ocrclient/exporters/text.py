"""Plain-text writer: the text of every block (or the markdown stripped of markup), pages
separated by form feeds as ``pdftotext`` does."""

from __future__ import annotations

import html
import re
from pathlib import Path

from ..document import Document, Page
from ._io import atomic_write

_MD = re.compile(r"(^#{1,6}\s+)|(\*\*|__|`)|(^\s*[-*+]\s+)", re.M)
#: an HTML tag as the models write them in markdown (tables, ``<br>``, ``<sup>``...): a name
#: right after ``<`` or ``</``, attributes of the HTML grammar, on one line.  Anything else
#: between a ``<`` and a ``>`` is text ("depth < 5 m ... value > 30"), and it stays (the txt
#: output and the searchable PDF's text layer, :mod:`.pdf_text`, both strip by it)
HTML_TAG = re.compile(
    r"</?[A-Za-z][A-Za-z0-9]*"
    r"(?:\s+[A-Za-z_:][-\w:.]*(?:\s*=\s*(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'=<>`]+))?)*\s*/?>"
)
#: where a tag ends a cell (a tab between cells) or a line (a row, a break, a block)
CELL_END = re.compile(r"</t[dh]\s*>", re.I)
LINE_END = re.compile(r"<br\s*/?>|</(?:tr|p|div|li|h[1-6]|caption|table)\s*>", re.I)
#: what ends a line after the tags are gone: a row's last tab, trailing spaces
_LINE_TAIL = re.compile(r"[ \t]+\n")
#: an image, ``![alt](where)``: its alt text is what the text keeps (a figure's description)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")


def page_text(page: Page) -> str:
    """The page's markdown as plain text: markdown marks and HTML tags gone (a table's cells
    apart by tabs, its rows by lines), entities read (``&amp;`` is ``&``), every other
    character kept."""
    if page.status == "failed":
        return ""
    text = _MD.sub("", _IMAGE.sub(r"\1", page.markdown))
    text = HTML_TAG.sub("", LINE_END.sub("\n", CELL_END.sub("\t", text)))
    return _LINE_TAIL.sub("\n", html.unescape(text)).strip()


def render(doc: Document) -> str:
    return "\f".join(page_text(p) + "\n" for p in doc.pages)


def write(doc: Document, path: Path) -> Path:
    return atomic_write(path, render(doc))
