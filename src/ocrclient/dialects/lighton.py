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
from .parsing import markdown_blocks, parse_box
from .request_parts import image_part, text_part

__all__ = ["LightOnDialect", "parse_lighton"]

GRID = 1000
_N = r"([-+]?\d+(?:\.\d+)?)"
_NUMS = r"(?:\[[ \t]*)?" + r"[ \t]*,[ \t]*".join([_N] * 4) + r"(?:[ \t]*\])?"
_REF = r"!\[([^\]\n]*)\]\(([^)\s]*)\)"
#: a picture's box right after its reference (the -bbox models' own format) ...
_IMG_BOX = re.compile(_REF + _NUMS)
#: ... or after a space (the -bbox-soup card writes it so), ending its line: numbers that text
#: goes on after ("![..](..) 1, 2, 3, 4 are the steps") are the page's words, not a box
_IMG_BOX_SPACED = re.compile(_REF + r"[ \t]+" + _NUMS + r"(?=[ \t]*(?:\n|$))")
#: a paragraph that is one picture reference, and its source (as ``markdown_blocks`` takes it)
_FIG_CHUNK = re.compile(r"\s*!\[[^\]]*\]\(([^)]*)\)\s*")
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
    space before numbers that end the line).  Each box goes to the figure of its own reference:
    a reference with no box, or one inside a line of text (a logo in a heading), took the next
    picture's box by order, and its crop with it."""
    warnings: list[str] = []
    boxed: dict[str, list[RawBlock]] = {}

    def repl(m: re.Match[str]) -> str:
        alt, src = m.group(1), m.group(2)
        box = parse_box(m.groups()[2:6], GRID, warnings, what=f"image {src or alt}")
        boxed.setdefault(src, []).append(RawBlock(type="figure", text=alt, box=box, label=src or "image"))
        return f"![{alt}]({src})"

    markdown = _IMG_BOX.sub(repl, _IMG_BOX_SPACED.sub(repl, text)).strip()
    # the source of each figure paragraph, in order (what markdown_blocks makes a figure block)
    sources = iter([m.group(1) for chunk in re.split(r"\n[ \t]*\n", markdown) if (m := _FIG_CHUNK.fullmatch(chunk.strip("\n")))])
    blocks: list[RawBlock] = []
    for block in markdown_blocks(markdown):
        if block.type == "text" and _RULE.fullmatch(block.text.strip()):
            continue  # a separator, not content: it stays in the markdown, it is no block
        own = boxed.get(next(sources, None) or "") if block.type == "figure" else None
        blocks.append(own.pop(0) if own else block)
    blocks.extend(b for left in boxed.values() for b in left)  # (written inside text: boxes still)
    return PageContent(markdown=markdown, blocks=blocks, space=CoordSpace.grid(GRID), warnings=warnings)
