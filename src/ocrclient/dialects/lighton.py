"""LightOnOCR (1B-1025, 2-1B and the 2-1B ``-bbox`` variants) — image only, markdown out.

Facts, and where they were checked:

* Request: the user message holds only the image (no text prompt); ``max_tokens=4096``,
  ``temperature=0.2``, ``top_p=0.9`` (LightOnOCR-2-1B model card "Usage with vLLM", mirrored in
  ``xiechengmude/xFun-Audio-Chat`` ``docs/pdf/pdf_lightonocr.md``; the seeds
  ``lightonocr-modal.md`` / ``lightonocr2-runpod-pod.md`` send the same body).
* Render: longest side 1540 px, aspect kept (card: "Render PDFs ... at a target longest dimension
  of 1540px"; the processor config has ``size.longest_edge = 1540``; seed: 200 dpi capped at
  1540 px).
* Reply: plain markdown, tables as HTML, math as LaTeX.
* ``-bbox`` variants write each embedded image as ``![image](image_N.png)x1,y1,x2,y2`` with
  coordinates normalized to 0-1000 of the image (seed ``lightonocr2-runpod-pod.md``, "Bbox Output
  Format"; the LightOnOCR-2-1B-bbox-soup card writes ``![image](image_N.png) x1,y1,x2,y2`` with a
  space, so the parser also accepts spaces and brackets around the numbers).  The coordinates are
  removed from the markdown and become figure blocks on ``CoordSpace.grid(1000)``.  A ``---``
  thematic break (e.g. between the articles of a newspaper page) stays in the markdown but is
  not a block.
* Not handled: LightOnOCR-3's ``grounding`` mode (``![label](x1,y1,x2,y2) text`` per block,
  lightonai/LightOnOCR ``lightonocr/grounding.py``); its plain mode is plain markdown like 1 and 2.

Example::

    >>> d = LightOnDialect(model="lightonai/LightOnOCR-2-1B-bbox")
    >>> d.render.longest_side, d.space.label
    (1540, 'grid:1000')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..geometry import CoordSpace
from ..imaging import EncodedImage, RenderSpec
from ..models import ModelReply, ModelRequest, PageContent, RawBlock
from .base import ChatDialect
from .parsing import chunk_block, markdown_chunks, parse_box
from .request_parts import image_part, text_part

__all__ = ["LightOnDialect", "parse_lighton"]

GRID = 1000
_N = r"([-+]?\d+(?:\.\d+)?)"
_NUMS = r"(?:\[[ \t]*)?" + r"[ \t]*,[ \t]*".join([_N] * 4) + r"(?:[ \t]*\])?"
_REF = r"!\[([^\]\n]*)\]\(([^)\s]*)\)"
#: a picture's box right after its reference (the -bbox models' own format), or after a space
#: (the -bbox-soup card writes it so) ending its line: numbers that text goes on after ("![..](..)
#: 1, 2, 3, 4 are the steps") are the page's words, not a box
_IMG_BOX = re.compile(_REF + r"(?:" + _NUMS + r"|[ \t]+" + _NUMS + r"(?=[ \t]*(?:\n|$)))")
#: any picture reference, as the markdown writer finds them (a source with spaces included)
_ANY_REF = re.compile(r"!\[([^\]\n]*)\]\(([^)\n]*)\)")
#: paragraphs whose pictures stay in their text (a table's cell, code, math): not split apart
_KEEP_WHOLE = ("table", "code", "equation")
#: a markdown thematic break (``---``): a separator in the markdown, not a block
_RULE = re.compile(r"(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}")


class LightOnDialect(ChatDialect):
    """LightOnOCR over vLLM's OpenAI server (pods, Modal).

    Example::

        >>> LightOnDialect(model="lightonai/LightOnOCR-1B-1025").DEFAULT_MAX_TOKENS
        4096
    """

    name = "lighton"
    OPTIONS: Mapping[str, Any] = {"prompt": None}
    # the card's and both seed guides': 200 dpi, the longest side capped at 1540 px (never
    # enlarged to it: a receipt's page went out at 6.6x its pixels)
    DEFAULT_RENDER = RenderSpec(dpi=200.0, longest_side=1540)
    DEFAULT_MODEL = "lightonai/LightOnOCR-2-1B"
    DEFAULT_MAX_TOKENS = 4096
    DEFAULT_LADDER = (0.2, 0.3, 0.4, 0.5)
    DEFAULT_TOP_P = 0.9

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt = self.options.get("prompt")  # out of distribution; off unless asked
        self.space = CoordSpace.grid(GRID)

    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        parts = [image_part(image)]
        if self.prompt:
            parts.append(text_part(str(self.prompt)))
        return parts

    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        return parse_lighton(text)


def parse_lighton(text: str) -> PageContent:
    """Markdown blocks, plus figure blocks with boxes for ``![image](..)x1,y1,x2,y2`` (or with a
    space before numbers that end the line), in reading order.  Each picture reference is a
    figure block of its own, carrying the box written after it: a paragraph holding several
    pictures (one per line, as the -bbox models write them) gives one figure per picture and
    its other text, if any, one block without the pictures (the pictures were one box-less text
    block, their boxed figures appended at the page's end: the K-th reference linked another
    picture's crop)."""
    warnings: list[str] = []
    markdown, boxed = _strip_boxes(text, warnings)
    blocks: list[RawBlock] = []
    for start, chunk in markdown_chunks(markdown):
        block = chunk_block(chunk)
        if block.type == "text" and _RULE.fullmatch(block.text.strip()):
            continue  # a separator, not content: it stays in the markdown, it is no block
        refs = list(_ANY_REF.finditer(chunk))
        if block.type in _KEEP_WHOLE or not refs:
            blocks.append(block)  # (a boxed picture inside a table: its figure follows the table)
            blocks.extend(boxed[start + m.start()] for m in refs if start + m.start() in boxed)
            continue
        blocks.extend(_split_pictures(chunk, start, refs, boxed))
    return PageContent(markdown=markdown, blocks=blocks, space=CoordSpace.grid(GRID), warnings=warnings)


def _strip_boxes(text: str, warnings: list[str]) -> tuple[str, dict[int, RawBlock]]:
    """``text`` without the boxes written after its pictures, and the figure block of each boxed
    picture by the offset of its reference in that markdown."""
    out: list[str] = []
    at: dict[int, RawBlock] = {}
    pos = size = 0
    for m in _IMG_BOX.finditer(text):
        alt, src = m.group(1), m.group(2)
        nums = [g for g in m.groups()[2:] if g is not None]
        box = parse_box(nums, GRID, warnings, what=f"image {src or alt}")
        ref = f"![{alt}]({src})"
        out += [text[pos : m.start()], ref]
        size += m.start() - pos
        at[size] = RawBlock(type="figure", text=alt, box=box, label=src or "image")
        size += len(ref)
        pos = m.end()
    out.append(text[pos:])
    joined = "".join(out)
    lead = len(joined) - len(joined.lstrip())
    return joined.strip(), {k - lead: b for k, b in at.items()}


def _split_pictures(chunk: str, start: int, refs: list[re.Match[str]], boxed: dict[int, RawBlock]) -> list[RawBlock]:
    """A paragraph holding pictures: a figure block per picture (its boxed one, else a box-less
    one with its alt text) and the paragraph's other text, if any, one block where it starts."""
    rest = _without_pictures(chunk)
    out: list[RawBlock] = []
    pos = 0
    for m in refs:
        if rest and chunk[pos : m.start()].strip():
            out.append(chunk_block(rest))
            rest = ""
        out.append(boxed.get(start + m.start()) or RawBlock(type="figure", text=m.group(1)))
        pos = m.end()
    if rest:
        out.append(chunk_block(rest))
    return out


def _without_pictures(chunk: str) -> str:
    """A paragraph's text with its picture references taken out (a line left empty dropped)."""
    lines = []
    for line in chunk.split("\n"):
        if _ANY_REF.search(line):
            line = " ".join(_ANY_REF.sub(" ", line).split())
            if not line or line in ("#", "##", "###", "####", "#####", "######", "-", "*", "+"):
                continue
        lines.append(line)
    return "\n".join(lines).strip("\n")
