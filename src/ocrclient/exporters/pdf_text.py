"""What the searchable PDF's text layer holds, page by page: the OCR's lines (with their word
boxes when the model gave them), the block text stripped of markup, and the rule that tells a
page that already carries its own text (see :mod:`ocrclient.exporters.pdf`).

Pure data: no PDFium here; :mod:`ocrclient.exporters.pdf_layer` places these lines on a page.

Example::

    >>> from ocrclient.document import Block, Page
    >>> page = Page(page=1, status="ok", width=100, height=100,
    ...             blocks=[Block(type="text", text="**Hello** world", bbox=[10, 10, 90, 20])])
    >>> [(ln.text, ln.box) for ln in text_lines(page)]
    [('Hello world', (0.1, 0.1, 0.9, 0.2))]
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..document import Block, Page
from .figures import norm_box
from .text import strip_tags

__all__ = ["Box", "TextLine", "TextUnit", "has_text_layer", "plain_text", "text_lines", "text_units", "word_counts"]

# markup stripped from block text before it becomes a text layer
_IMG = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_HEAD = re.compile(r"^\s{0,3}#{1,6}\s+", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(?:\[[ xX]\]\s+)?", re.M)
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$", re.M)
_EMPH = re.compile(r"(\*\*|__|~~|`+|\$\$?)")


def plain_text(text: str) -> str:
    """Block text without markdown/HTML markup, lines kept, spaces collapsed.

    >>> plain_text("# **Bold** title\\n| a | b |\\n|---|---|\\n| 1 | 2 |")
    'Bold title\\na b\\n1 2'
    """
    t = _IMG.sub("", text)
    t = _LINK.sub(r"\1", t)
    t = strip_tags(t, cell=" ")
    t = html.unescape(t)
    t = _TABLE_RULE.sub("", t)
    t = _HEAD.sub("", t)
    t = _BULLET.sub("", t)
    t = _EMPH.sub("", t)
    t = t.replace("|", " ")
    # control characters (NUL would end the UTF-16 string PDFium reads) become spaces
    t = "".join(ch if ch == "\n" or unicodedata.category(ch) != "Cc" else " " for ch in t)
    lines = [" ".join(line.split()) for line in t.splitlines()]
    return "\n".join(line for line in lines if line)


Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TextUnit:
    """One run of text to place: ``box`` in [0, 1] of the displayed page."""

    text: str
    box: Box


@dataclass(frozen=True)
class TextLine:
    """One line of the text layer: ``box`` in [0, 1] of the displayed page, and its ``words``
    with their own boxes when the model gave them (without them the line's words are laid out
    along the box by the font's widths)."""

    text: str
    box: Box
    words: tuple[TextUnit, ...] = ()


def _union(units: Sequence[TextUnit]) -> Box:
    return (
        min(u.box[0] for u in units),
        min(u.box[1] for u in units),
        max(u.box[2] for u in units),
        max(u.box[3] for u in units),
    )


def _runs(text: str, words: list[TextUnit]) -> list[TextUnit]:
    """The words of a line as its ``text`` separates them: words the text writes with nothing
    between them (CJK characters, which RapidOCR boxes one by one; "rain," + "and" read as
    "rain,and") become one run with their boxes' union.  Words that do not spell the text stay
    as they are.

    >>> [w.text for w in _runs("東京 タワー", [TextUnit(c, (0, 0, 1, 1)) for c in "東京タワー"])]
    ['東京', 'タワー']
    """
    out: list[TextUnit] = []
    pos = 0
    for w in words:
        start = text.find(w.text, pos)
        if start < 0 or text[pos:start].strip():
            return words
        if out and start == pos:
            out[-1] = TextUnit(out[-1].text + w.text, _union([out[-1], w]))
        else:
            out.append(w)
        pos = start + len(w.text)
    return out


def _lines_of(block: Block, page: Page, loose: list[str]) -> Iterator[TextLine]:
    """``block``'s boxed lines; the text of what has no box (itself or its children), nor a boxed
    parent to be spread over, goes to ``loose`` (laid down the page by :func:`text_lines`)."""
    kids = [c for c in block.children if c.text.strip() or c.children]
    if kids and all(norm_box(c, page) is not None for c in kids):
        if all(c.type == "word" for c in kids):
            words = []
            for c in kids:
                text, box = " ".join(plain_text(c.text).split()), norm_box(c, page)
                if text and box is not None:
                    words.append(TextUnit(text, box))
            if words:
                runs = _runs(" ".join(plain_text(block.text).split()), words)
                yield TextLine(" ".join(w.text for w in runs), norm_box(block, page) or _union(runs), tuple(runs))
            return
        for child in kids:
            yield from _lines_of(child, page, loose)
        return
    if block.type == "figure":
        return
    box = norm_box(block, page)
    if box is None and any(_has_box(c, page) for c in kids):
        for child in kids:  # (a list without a box of its own, some of its items boxed)
            yield from _lines_of(child, page, loose)
        return
    text = plain_text(block.text)
    if not text:
        return
    if box is None:
        loose.extend(ln.strip() for ln in text.split("\n") if ln.strip())
        return
    yield from _spread(text.split("\n"), box)


def _spread(lines: Sequence[str], box: Box) -> list[TextLine]:
    """``lines`` laid one under another over ``box``, each an equal band of its height."""
    x0, y0, x1, y1 = box
    step = (y1 - y0) / len(lines)
    return [TextLine(line, (x0, y0 + i * step, x1, y0 + (i + 1) * step)) for i, line in enumerate(lines)]


#: where the lines of a page whose model gave no boxes are laid, in [0, 1] of the page
UNBOXED_AREA: Box = (0.05, 0.05, 0.95, 0.95)


def _has_box(block: Block, page: Page) -> bool:
    return norm_box(block, page) is not None or any(_has_box(c, page) for c in block.children)


def text_lines(page: Page) -> list[TextLine]:
    """What the text layer of ``page`` holds, line by line: every line the model boxed (with its
    word boxes when it gave them), else each block's text spread line by line over its box;
    figures' own text excluded; nothing for a failed page.  A page whose model gave no box at
    all (olmOCR, RolmOCR, plain, LightOnOCR without ``-bbox``) still has its text: its markdown's
    lines laid down the page in order (:data:`UNBOXED_AREA`), so that the PDF is searchable
    and extracts the OCR's text, in places that are not the words' own; and so do the blocks
    without a box on a page with boxed ones (LightOnOCR ``-bbox`` boxes only its figures)."""
    if page.status == "failed":
        return []
    if any(_has_box(b, page) for b in page.blocks):
        # a block without a box beside boxed ones (LightOnOCR -bbox boxes its figures only; a
        # list item the model gave no box): its text laid down the page as a boxless page's is
        # (it was left out: no text at all)
        loose: list[str] = []
        boxed = [ln for b in page.blocks for ln in _lines_of(b, page, loose)]
        return boxed + (_spread(loose, UNBOXED_AREA) if loose else [])
    lines = [ln.strip() for ln in plain_text(page.markdown).split("\n") if ln.strip()]
    return _spread(lines, UNBOXED_AREA) if lines else []


def text_units(page: Page) -> list[TextUnit]:
    """The finest boxed runs of :func:`text_lines`: the words of a line when boxed, else the line."""
    return [u for ln in text_lines(page) for u in (ln.words or (TextUnit(ln.text, ln.box),))]


def word_counts(text: str) -> Counter[str]:
    """The words of ``text`` (case-folded), counted."""
    return Counter(re.findall(r"\w+", text.casefold()))


def has_text_layer(existing: str, lines: Sequence[TextLine]) -> bool:
    """Whether a page whose own extractable text is ``existing`` already carries the text the OCR
    read (``lines``): it holds at least half of the OCR's words.  A page number or a stamp on a
    scan is not a text layer, nor is text whose font maps to no Unicode (it extracts as junk).

    >>> has_text_layer("Quarterly report 2024", [TextLine("Quarterly report", (0, 0, 1, 1))])
    True
    >>> has_text_layer("Page 3", [TextLine("Twelve field sites were visited", (0, 0, 1, 1))])
    False
    """
    have = word_counts(existing)
    if not have:
        return False
    want = word_counts("\n".join(ln.text for ln in lines))
    if not want:
        return True
    return sum((want & have).values()) >= 0.5 * sum(want.values())

