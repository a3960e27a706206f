"""Model HTML -> markdown with BeautifulSoup + markdownify, on the conventions of Chandra's own
output code (``datalab-to/chandra`` ``chandra/output.py`` ``parse_markdown``).

Carried over from Chandra: Python's ``html.parser`` through BeautifulSoup; markdownify with ATX
headings, ``-`` bullets, ``<sub>`` / ``<sup>`` kept as HTML; tables kept as their HTML; ``<math>``
-> ``$...$`` (``display="block"`` -> ``$$...$$``), never escaped inside; brackets escaped in link
text.  Ours on top, each for a reason: no markdown escaping of ``_ * $`` (block text is also the
JSON's and the text layer's, where ``\\_`` would be noise), block math on its own lines, a link to
``#`` (Chandra's in-page references) is its text, a printed bullet copied into an ``<li>`` is
dropped, checkboxes -> ``[x]`` / ``[ ]``, ``<img>`` -> ``![alt]()`` (no crop file at parse time),
trailing spaces of ``<br>`` line ends dropped.

Model HTML is often broken (truncated at ``max_tokens``, stray closing tags): BeautifulSoup
repairs it; :func:`parse_html` never raises and also says what was repaired.

Example::

    >>> root, notes = parse_html("<h2>Title</h2><p>a <b>b</b> <math>x^2</math></p>")
    >>> to_markdown(root)
    '## Title\\n\\na **b** $x^2$'
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PageElement
from markdownify import MarkdownConverter

__all__ = ["parse_html", "text_of", "to_markdown"]

VOID = {"br", "img", "hr", "input", "meta", "link", "col", "area", "base", "wbr", "source"}
#: tags whose start implicitly closes an open <p> (HTML's optional end tag)
_CLOSES_P = {"p", "div", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "li", "tr"}
#: bullet glyphs (• ◦ ▪ ▫ ● ○ ■ □ ‣ ⁃ ∙ ·) that models copy from the page into an <li>
_BULLET = re.compile(r"^([ \t]*- )[\u2022\u25e6\u25aa\u25ab\u25cf\u25cb\u25a0\u25a1\u2023\u2043\u2219\u00b7]\s*")


class _Repairs(HTMLParser):
    """What the tree builder will have to repair: stray end tags, elements never closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.notes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _CLOSES_P and self.open[-1:] == ["p"]:
            self.open.pop()
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]
        else:
            self.notes.append(f"stray </{tag}>")


def parse_html(text: str) -> tuple[BeautifulSoup, list[str]]:
    """Parse ``text`` (forgiving); returns ``(soup, notes about what was repaired)``."""
    check = _Repairs()
    try:
        check.feed(text)
        check.close()
        if check.open:
            check.notes.append("unclosed <" + ">, <".join(check.open) + "> (truncated HTML?)")
        return BeautifulSoup(text, "html.parser"), check.notes
    except Exception as exc:  # html.parser is lenient, but never let it take a page down
        check.notes.append(f"HTML parser gave up ({type(exc).__name__}); tags stripped")
        return BeautifulSoup(re.sub(r"<[^>]*>?", " ", text), "html.parser"), check.notes


def text_of(node: PageElement | str) -> str:
    """All text under a node, whitespace collapsed."""
    text = node if isinstance(node, str) else node.get_text(" ") if isinstance(node, Tag) else str(node)
    return " ".join(text.split())


class _Markdown(MarkdownConverter):
    def convert_math(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        tex = text.strip()
        if el.get("display") == "block":
            return f"\n\n$$\n{tex}\n$$\n\n"
        return f"${tex}$" if tex else ""

    def convert_table(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return f"\n\n{el}\n\n"

    def convert_a(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        href = str(el.get("href") or "").strip()
        if not href or href == "#":  # Chandra's in-page reference <a href="#">1</a>: its text
            return text
        return str(super().convert_a(el, re.sub(r"([\[\]()])", r"\\\1", text), parent_tags))  # type: ignore[misc]

    def convert_img(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return f"![{str(el.get('alt') or '').strip()}]()"

    def convert_input(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if str(el.get("type", "")).lower() in ("checkbox", "radio"):
            after = el.next_sibling
            space = "" if isinstance(after, NavigableString) and after[:1].isspace() else " "
            return ("[x]" if el.has_attr("checked") else "[ ]") + space
        return str(el.get("value") or "")

    def convert_li(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        item = str(super().convert_li(el, text, parent_tags))  # type: ignore[misc]
        if el.parent is not None and el.parent.name == "ol":
            return item
        return _BULLET.sub(r"\1", item)  # "- • text" would be a bullet inside a bullet

    def escape(self, text: str, parent_tags: set[str]) -> str:
        return text


_CONVERTER = _Markdown(heading_style="ATX", bullets="-", escape_misc=False, escape_asterisks=False,
                       escape_underscores=False, sub_symbol="<sub>", sup_symbol="<sup>")  # fmt: skip


def to_markdown(node: Tag | str) -> str:
    """Markdown for a parsed tree, one layout block (a ``Tag``) or an HTML string."""
    soup: Any = BeautifulSoup(node, "html.parser") if isinstance(node, str) else node
    try:
        md = str(_CONVERTER.convert_soup(soup))
    except RecursionError:  # absurdly deep nesting: the text is what can be kept
        md = text_of(soup)
    lines = [ln.rstrip() for ln in md.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
