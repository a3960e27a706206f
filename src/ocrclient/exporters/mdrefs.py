"""Markdown's code and its image references that link nothing, with nothing heavier than
:mod:`re` imported (:attr:`Document.markdown <ocrclient.document.Document.markdown>` uses it on a
Document read from its JSON, with no run's modules loaded)."""

from __future__ import annotations

import re

__all__ = ["CODE", "EMPTY_REF", "unlinked"]

#: code in markdown: a fenced block (``` or ~~~ to a closing fence at least as long: one never
#: closed is OCR's noise, not code) or an inline code span (as many backticks to close as opened,
#: within its paragraph: a lone backtick, OCR's apostrophe, opens none)
CODE = re.compile(
    r"(?ms)^ {0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n.*?^ {0,3}(?P=fence)[`~]*[ \t]*$"
    r"|(?P<ticks>`+)(?!`)(?:(?!\n[ \t]*\n)[^`]|`(?!(?P=ticks)))+?(?P=ticks)(?!`)"
)
#: an image reference that links nothing, ``![alt]()`` (its alt may hold escaped brackets)
EMPTY_REF = re.compile(r"!\[(?P<alt>(?:\\.|[^\]\\\n])*)\]\(\s*\)")


def unlinked(md: str) -> str:
    """``md`` with each image reference that links nothing (``![alt]()``, shown as a broken
    image) written as its alt text in italics, ``*[image: alt]*`` (``*[image]*`` without alt);
    one in code is left as it is.

    >>> unlinked("![a chart]()\\n\\n`![x]()` and ![]( )")
    '*[image: a chart]*\\n\\n`![x]()` and *[image]*'
    """
    if "](" not in md:
        return md
    code = [m.span() for m in CODE.finditer(md)]

    def shown(m: re.Match[str]) -> str:
        if any(a <= m.start() < b for a, b in code):
            return m.group(0)
        alt = " ".join(m.group("alt").split()).replace("*", "\\*")
        return f"*[image: {alt}]*" if alt else "*[image]*"

    return EMPTY_REF.sub(shown, md)
