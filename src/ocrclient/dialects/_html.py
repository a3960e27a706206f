"""A small, forgiving HTML tree and HTML -> markdown renderer (standard library only).

Model HTML is often broken: truncated at ``max_tokens``, stray closing tags, unclosed ``<p>``.
:func:`parse_html` never raises; it returns a tree plus notes about what it had to repair.
:func:`to_markdown` renders a node: headings -> ``#``, paragraphs, lists, ``<math>`` -> ``$...$``
(``display="block"`` -> ``$$...$$``), tables stay HTML, images -> ``![alt]()``, checkboxes ->
``[x]`` / ``[ ]``, bold/italic/code/links -> markdown.

Example::

    >>> root, notes = parse_html("<h2>Title</h2><p>a <b>b</b> <math>x^2</math></p>")
    >>> to_markdown(root)
    '## Title\\n\\na **b** $x^2$'
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["Node", "inner_html", "parse_html", "text_of", "to_html", "to_markdown"]

VOID = {"br", "img", "hr", "input", "meta", "link", "col", "area", "base", "wbr", "source"}
#: tags whose start implicitly closes an open <p> / <li> (HTML's optional end tags, simplified)
_BLOCKS = {"p", "div", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "li", "tr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)
    closed: bool = True


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root")
        self.stack: list[Node] = [self.root]
        self.notes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        # an open <p> cannot contain block content: close it (keeps truncated/loose HTML sane)
        if tag in _BLOCKS and len(self.stack) > 1 and self.stack[-1].tag == "p":
            self.stack.pop()
        node = Node(tag, {k.lower(): (v or "") for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            node.closed = False
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag.lower(), {k.lower(): (v or "") for k, v in attrs})
        self.stack[-1].children.append(node)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag in VOID:
            return
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                for node in self.stack[i:]:
                    node.closed = node is self.stack[i]
                del self.stack[i:]
                return
        self.notes.append(f"stray </{tag}>")

    def handle_data(self, data: str) -> None:
        if data:
            self.stack[-1].children.append(data)


def parse_html(text: str) -> tuple[Node, list[str]]:
    """Parse ``text`` into a tree rooted at ``#root``; returns ``(root, notes)``."""
    builder = _TreeBuilder()
    try:
        builder.feed(text)
        builder.close()
    except Exception as exc:  # html.parser is lenient, but never let it take a page down
        builder.notes.append(f"HTML parser gave up ({type(exc).__name__}); tags stripped")
        root = Node("#root", children=[html.unescape(re.sub(r"<[^>]*>?", " ", text))])
        return root, builder.notes
    unclosed = [n.tag for n in builder.stack[1:]]
    if unclosed:
        builder.notes.append("unclosed <" + ">, <".join(unclosed) + "> (truncated HTML?)")
    return builder.root, builder.notes


def text_of(node: Node | str) -> str:
    """All text under a node, whitespace collapsed."""
    if isinstance(node, str):
        return node
    return " ".join("".join(_texts(node)).split())


def _texts(node: Node) -> list[str]:
    out: list[str] = []
    for child in node.children:
        if isinstance(child, str):
            out.append(child)
        else:
            if child.tag == "br":
                out.append(" ")
            out.extend(_texts(child))
            if child.tag in _BLOCKS:
                out.append(" ")
    return out


def to_html(node: Node | str) -> str:
    """Serialize a node back to HTML (text escaped, attributes quoted)."""
    if isinstance(node, str):
        return html.escape(node, quote=False)
    if node.tag == "#root":
        return "".join(to_html(c) for c in node.children)
    attrs = "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in node.attrs.items())
    if node.tag in VOID:
        return f"<{node.tag}{attrs}>"
    return f"<{node.tag}{attrs}>" + "".join(to_html(c) for c in node.children) + f"</{node.tag}>"


def inner_html(node: Node) -> str:
    return "".join(to_html(c) for c in node.children)


# ---------------------------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------------------------

_INLINE_WRAP = {"b": "**", "strong": "**", "i": "*", "em": "*", "del": "~~", "s": "~~"}
_KEEP_HTML_INLINE = {"sup", "sub", "u", "small", "big"}


def _inline(node: Node | str) -> str:
    if isinstance(node, str):
        return re.sub(r"\s+", " ", node)
    tag = node.tag
    if tag == "br":
        return "\n"
    if tag == "math":
        tex = text_of(node).strip()
        if node.attrs.get("display") == "block":
            return f"\n$$\n{tex}\n$$\n"
        return f"${tex}$" if tex else ""
    if tag == "img":
        return f"![{node.attrs.get('alt', '').strip()}]()"
    if tag == "input":
        kind = node.attrs.get("type", "").lower()
        if kind in ("checkbox", "radio"):
            return "[x] " if "checked" in node.attrs else "[ ] "
        return node.attrs.get("value", "")
    if tag == "table":
        return to_html(node)
    inner = "".join(_inline(c) for c in node.children)
    if tag in _INLINE_WRAP:
        mark = _INLINE_WRAP[tag]
        core = inner.strip()
        if not core:
            return inner
        lead = " " if inner[:1].isspace() else ""
        trail = " " if inner[-1:].isspace() else ""
        return f"{lead}{mark}{core}{mark}{trail}"
    if tag == "code":
        return f"`{inner.strip()}`" if inner.strip() else ""
    if tag == "a":
        # Chandra writes in-page references as <a href="#">1</a>: a link to nowhere, keep the text
        href = node.attrs.get("href", "").strip()
        return f"[{inner.strip()}]({href})" if href and href != "#" else inner
    if tag in _KEEP_HTML_INLINE:
        return f"<{tag}>{inner}</{tag}>"
    return inner


def _clean_lines(text: str) -> str:
    lines = [re.sub(r"[ \t]{2,}", " ", ln).strip() for ln in text.split("\n")]
    out = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", out).strip()


#: bullet glyphs (• ◦ ▪ ▫ ● ○ ■ □ ‣ ⁃ ∙ ·) that models copy from the page into an <li>
_BULLET = re.compile(r"^[\u2022\u25e6\u25aa\u25ab\u25cf\u25cb\u25a0\u25a1\u2023\u2043\u2219\u00b7]\s*")


def _list(node: Node, depth: int) -> str:
    ordered = node.tag == "ol"
    items: list[str] = []
    n = 0
    for child in node.children:
        if isinstance(child, str):
            if child.strip():
                items.append("  " * depth + "- " + child.strip())
            continue
        if child.tag != "li":
            sub = _block(child, depth + 1)
            if sub:
                items.append(sub)
            continue
        n += 1
        marker = f"{n}." if ordered else "-"
        inline_parts: list[str] = []
        nested: list[str] = []
        for part in child.children:
            if isinstance(part, Node) and part.tag in ("ul", "ol"):
                nested.append(_list(part, depth + 1))
            elif isinstance(part, Node) and part.tag in ("p", "div"):
                inline_parts.append(_inline(part) + " ")
            else:
                inline_parts.append(_inline(part))
        line = " ".join("".join(inline_parts).split())
        if not ordered:  # models copy the printed bullet into <li>: "- • text" -> "- text"
            line = _BULLET.sub("", line)
        items.append("  " * depth + f"{marker} {line}".rstrip())
        items.extend(x for x in nested if x)
    return "\n".join(items)


def _block(node: Node | str, depth: int = 0) -> str:
    if isinstance(node, str):
        return _clean_lines(_inline(node))
    tag = node.tag
    if re.fullmatch(r"h[1-6]", tag):
        return "#" * int(tag[1]) + " " + " ".join(_inline(node).split())
    if tag == "table":
        return to_html(node)
    if tag in ("ul", "ol"):
        return _list(node, depth)
    if tag == "pre":
        return "```\n" + text_of_pre(node).strip("\n") + "\n```"
    if tag == "hr":
        return "---"
    if tag == "math" and node.attrs.get("display") == "block":
        return f"$$\n{text_of(node).strip()}\n$$"
    if tag in ("div", "#root", "section", "thead", "tbody", "caption", "p", "li", "figure", "span"):
        return _blocks(node.children, depth, paragraph=tag in ("p", "li", "span", "caption"))
    return _clean_lines(_inline(node))


def text_of_pre(node: Node) -> str:
    parts: list[str] = []
    for child in node.children:
        parts.append(child if isinstance(child, str) else ("\n" if child.tag == "br" else text_of_pre(child)))
    return "".join(parts)


def _blocks(children: list[Node | str], depth: int, paragraph: bool = False) -> str:
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        text = _clean_lines("".join(run))
        run.clear()
        if text:
            out.append(text)

    for child in children:
        if isinstance(child, Node) and (child.tag in _BLOCKS or child.tag in ("hr", "pre", "section")
                                        or (child.tag == "math" and child.attrs.get("display") == "block")):
            flush()
            rendered = _block(child, depth)
            if rendered:
                out.append(rendered)
        else:
            run.append(_inline(child))
    flush()
    return "\n\n".join(out)


def to_markdown(node: Node | str) -> str:
    """Markdown for a node (a whole tree or one layout block)."""
    return _block(node).strip()
