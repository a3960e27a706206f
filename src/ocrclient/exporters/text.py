"""Plain-text writer: the text of every block (or the markdown stripped of markup), pages
separated by form feeds as ``pdftotext`` does."""

from __future__ import annotations

import html
import re
from pathlib import Path

from ..document import Document, Page
from ._io import atomic_write

_MD = re.compile(r"(^#{1,6}\s+)|(\*\*|__|`)|(^\s*[-*+]\s+)", re.M)
#: the HTML elements the models write in markdown; ``<`` followed by any other word is text
#: ("if n<m then m>0", "press <Enter>")
_ELEMENTS = ("a|abbr|b|big|blockquote|body|br|caption|center|cite|code|col|colgroup|dd|del|div|dl|dt|em|"
             "figcaption|figure|font|h[1-6]|head|hr|html|i|img|ins|kbd|li|mark|math|ol|p|pre|q|s|section|"
             "small|span|strike|strong|sub|sup|table|tbody|td|tfoot|th|thead|tr|tt|u|ul|var")  # fmt: skip
#: an HTML tag: one of those names right after ``<`` or ``</``, attributes of the HTML grammar,
#: on one line.  Anything else between a ``<`` and a ``>`` is text ("depth < 5 m ... value >
#: 30"), and it stays (the txt output and the searchable PDF's text layer, :mod:`.pdf_text`,
#: both strip by it)
HTML_TAG = re.compile(
    rf"</?(?:{_ELEMENTS})(?![\w-])"
    r"(?:\s+[A-Za-z_:][-\w:.]*(?:\s*=\s*(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'=<>`]+))?)*\s*/?>",
    re.I,
)
#: the tags that stand inside a word (H<sub>2</sub>O) or only hold others (a table's): gone
#: without a trace; any other tag parts what is on either side of it
INLINE_TAG = re.compile(r"</?(?:a|abbr|b|big|cite|code|del|em|font|i|ins|kbd|mark|q|s|small|span|strike|strong|"
                        r"sub|sup|tt|u|var|table|thead|tbody|tfoot|tr|colgroup|col|html|body|head)(?![\w-])[^<>\n]*>",
                        re.I)  # fmt: skip
#: a table cell's tags: its start (after the last cell's end, if written) parts it from the cell
#: before; a cell's end with no start after it is the row's last
_CELL_CLOSE_OPEN = re.compile(r"</t[dh]\s*>\s*(?=<t[dh](?![\w-]))", re.I)
_CELL_OPEN = re.compile(r"<t[dh](?![\w-])[^<>\n]*>", re.I)
_CELL_CLOSE = re.compile(r"</t[dh]\s*>", re.I)
#: where a tag ends a line: a row's end, a break, a rule, a block's start or end
LINE_END = re.compile(r"<(?:br|hr)\s*/?>|</(?:tr|p|div|li|h[1-6]|caption|table|blockquote|pre)\s*>|"
                      r"<(?:p|div|li|h[1-6]|blockquote|pre)(?![\w-])[^<>\n]*>", re.I)  # fmt: skip


def strip_tags(text: str, cell: str = "\t") -> str:
    """``text`` without its HTML tags: table cells parted by ``cell``, rows, breaks and blocks by
    line ends, inline tags (H<sub>2</sub>O) gone without a trace, any other tag a space, and
    every character that is no tag's kept.  Entities are left as they are."""
    text = _CELL_CLOSE.sub("", _CELL_OPEN.sub(cell, _CELL_CLOSE_OPEN.sub("", text)))
    return HTML_TAG.sub(" ", INLINE_TAG.sub("", LINE_END.sub("\n", text)))


#: an image, ``![alt](where)``: its alt text is what the text keeps (a figure's description)
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")


def page_text(page: Page) -> str:
    """The page's markdown as plain text: markdown marks and HTML tags gone (a table's cells
    apart by tabs, its rows by lines), entities read (``&amp;`` is ``&``), every other
    character kept."""
    if page.status == "failed":
        return ""
    text = html.unescape(strip_tags(_MD.sub("", _IMAGE.sub(r"\1", page.markdown))))
    return "\n".join(line.rstrip(" \t").lstrip("\t") for line in text.split("\n")).strip()


def render(doc: Document) -> str:
    return "\f".join(page_text(p) + "\n" for p in doc.pages)


def write(doc: Document, path: Path) -> Path:
    return atomic_write(path, render(doc))
