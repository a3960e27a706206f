"""dots.ocr (rednote-hilab) — a JSON list of layout cells with pixel boxes of the model's resize.

Facts, and where they were checked:

* Prompt ``prompt_layout_all_en``: "Please output the layout information from the PDF image,
  including each layout element's bbox, its category, and the corresponding text content within
  the bbox." with bbox format ``[x1, y1, x2, y2]``, the categories Caption, Footnote, Formula,
  List-item, Page-footer, Page-header, Picture, Section-header, Table, Text, Title, formulas as
  LaTeX, tables as HTML, the rest as markdown, reading order, one JSON output (``dots_ocr``'s
  ``dict_promptmode_to_prompt``, reproduced in many public clients found in the search index).
* Request: image part, then a text part ``"<|img|><|imgpad|><|endofimg|>" + prompt`` (without
  the image tokens vLLM v1 inserts a newline); ``temperature=0.1``, ``top_p=0.9``,
  ``max_completion_tokens=32768`` (``rednote-hilab/dots.ocr`` ``dots_ocr/model/inference.py``).
* Boxes are pixels of the image *as the model resized it*: Qwen2-VL ``smart_resize`` with
  ``factor=28``, ``min_pixels=3136``, ``max_pixels=11289600`` (``dots_ocr/utils/consts.py``,
  ``dots_ocr/utils/image_utils.py``); the upstream ``post_process_cells`` scales them back by
  ``smart_resize(sent) / original``.  So the space is ``CoordSpace.model_pixels(w, h)`` with
  ``(h, w) = smart_resize(sent_height, sent_width)``.
* Render: PDFs at 200 dpi (``get_image_by_fitz_doc(target_dpi=200)``), capped by ``max_pixels``.

Example::

    >>> smart_resize(1100, 850)
    (1092, 840)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..errors import BadOutputError
from ..geometry import CoordSpace
from ..imaging import EncodedImage, RenderSpec
from ..models import ModelReply, ModelRequest, PageContent, RawBlock, page_markdowns
from .base import ChatDialect
from .parsing import block_type, heading_text, parse_box
from .request_parts import image_part, text_part

__all__ = ["PROMPT_LAYOUT_ALL_EN", "DotsDialect", "smart_resize"]

FACTOR = 28
MIN_PIXELS = 3136
MAX_PIXELS = 11289600
IMAGE_TOKENS = "<|img|><|imgpad|><|endofimg|>"

PROMPT_LAYOUT_ALL_EN = """Please output the layout information from the PDF image, including each layout element's bbox, its category, and the corresponding text content within the bbox.

1. Bbox format: [x1, y1, x2, y2]

2. Layout Categories: The possible categories are ['Caption', 'Footnote', 'Formula', 'List-item', 'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', 'Title'].

3. Text Extraction & Formatting Rules:
    - Picture: For the 'Picture' category, the text field should be omitted.
    - Formula: Format its text as LaTeX.
    - Table: Format its text as HTML.
    - All Others (Text, Title, etc.): Format their text as Markdown.

4. Constraints:
    - The output text must be the original text from the image, with no translation.
    - All layout elements must be sorted according to human reading order.

5. Final Output: The entire output must be a single JSON object.
"""

LABELS: Mapping[str, str] = {
    "Caption": "caption",
    "Footnote": "footnote",
    "Formula": "equation",
    "List-item": "list_item",
    "Page-footer": "page_footer",
    "Page-header": "page_header",
    "Picture": "figure",
    "Section-header": "section_header",
    "Table": "table",
    "Text": "text",
    "Title": "title",
}
_HEADER_FOOTER = {"page_header", "page_footer"}


def smart_resize(height: int, width: int, factor: int = FACTOR, min_pixels: int = MIN_PIXELS,
                 max_pixels: int = MAX_PIXELS) -> tuple[int, int]:  # fmt: skip
    """Qwen2-VL / dots.ocr resize: both sides multiples of ``factor``, pixels within bounds,
    aspect kept.  Returns ``(height, width)`` like the upstream function."""
    height, width = max(1, int(height)), max(1, int(width))
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
        if h_bar * w_bar > max_pixels:
            beta = math.sqrt(h_bar * w_bar / max_pixels)
            h_bar = max(factor, math.floor(h_bar / beta / factor) * factor)
            w_bar = max(factor, math.floor(w_bar / beta / factor) * factor)
    return h_bar, w_bar


class DotsDialect(ChatDialect):
    """dots.ocr over vLLM's OpenAI server, layout-all prompt, JSON cells out.

    Example::

        >>> DotsDialect(model="rednote-hilab/dots.ocr").render.dpi
        200.0
    """

    name = "dots"
    OPTIONS: Mapping[str, Any] = {"prompt": None, "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}
    #: read by no request and no parse: the run picks the markdown with or without furniture
    #: (``PageContent.furniture_markdown``; see ``ModelDialect.OUTPUT_OPTIONS``)
    OUTPUT_OPTIONS: Mapping[str, Any] = {"include_headers_footers": False}
    DEFAULT_RENDER = RenderSpec(dpi=200.0, max_pixels=MAX_PIXELS)
    DEFAULT_MODEL = "rednote-hilab/dots.ocr"
    DEFAULT_MAX_TOKENS = 16384
    DEFAULT_LADDER = (0.1, 0.2, 0.4, 0.6)
    DEFAULT_TOP_P = 0.9

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt = str(self.options.get("prompt") or PROMPT_LAYOUT_ALL_EN)
        self.min_pixels = int(self.options.get("min_pixels", MIN_PIXELS))
        self.max_pixels = int(self.options.get("max_pixels", MAX_PIXELS))

    def space_for(self, width: int, height: int) -> CoordSpace:
        """The model's pixel space for a sent image of ``width x height``."""
        h, w = smart_resize(height, width, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
        return CoordSpace.model_pixels(w, h)

    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        return [image_part(image), text_part(IMAGE_TOKENS + self.prompt)]

    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        frame = request.frame  # the image the model saw
        space = self.space_for(frame.width_px, frame.height_px) if frame is not None else CoordSpace.sent_pixels()
        return parse_cells(text, space, truncated=reply.finish_reason == "length")


#: LaTeX a formula cell may hold (a command, an environment, \[ \] or \( \) math)
_LATEX = re.compile(r"\\begin\{|\\[a-zA-Z]+|\\\[|\\\(")
_PREAMBLE = re.compile(r"\\documentclass\{[^}]+\}|\\usepackage(?:\[[^\]]*\])?\{[^}]+\}|\\(?:begin|end)\{document\}", re.I)


def formula_markdown(text: str) -> str:
    """A Formula cell's text as dots.ocr's own markdown writes it (``layoutjson2md``): display
    math between ``$$`` lines -- ``$$x$$`` and ``\\[x\\]`` taken apart and put so, bare LaTeX put
    so, its document preamble dropped -- and text that already holds inline ``$...$`` or
    ``\\[...\\]`` math, or no LaTeX at all, as it is (bare, a formula's ``*`` read as emphasis)."""
    text = text.strip()
    if text.startswith("$$") and text.endswith("$$") and len(text) >= 4:
        inner = text[2:-2].strip()
        return text if "$" in inner else f"$$\n{inner}\n$$"
    if text.startswith("\\[") and text.endswith("\\]"):
        return f"$$\n{text[2:-2].strip()}\n$$"
    if re.search(r"\\\[.*\\\]", text) or re.search(r"\$[^$]+\$", text) or not _LATEX.search(text):
        return text
    return f"$$\n{_PREAMBLE.sub('', text).strip()}\n$$"


def _load_cells(text: str) -> tuple[Any, bool]:
    """The decoded reply, and whether the list's closing ``]`` had to be added.

    Real dots.ocr replies can stop right after the last cell's ``}`` (both docling-captured
    replies in ``tests/data/replies/dots`` do): every cell is complete, only the bracket is
    missing, so it is added rather than treating the page as broken JSON."""
    body = text.strip()
    fence = re.match(r"^```(?:json)?\s*\n(.*?)\n?```\s*$", body, re.S)
    if fence:
        body = fence.group(1).strip()
    try:
        return json.loads(body), False
    except ValueError:
        if body.startswith("[") and body.endswith("}"):
            return json.loads(body + "]"), True  # a ValueError here falls back to salvage
        raise


def _salvage(text: str) -> list[Any]:
    """Complete cells from a truncated JSON list: decode objects one by one until it breaks."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    cells: list[Any] = []
    while start != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            break
        cells.append(obj)
        nxt = text.find("{", end)
        start = nxt
    return cells


def parse_cells(text: str, space: CoordSpace, *, truncated: bool = False) -> PageContent:
    """JSON cells -> blocks on ``space`` (model pixels) and page markdown (without the
    Page-header / Page-footer cells; with them in ``furniture_markdown``)."""
    warnings: list[str] = []
    meta: dict[str, Any] = {}
    try:
        cells, closed = _load_cells(text)
        if closed:
            meta["repaired"] = "added the closing ] of the cell list"
            if truncated:
                warnings.append("reply ends after a complete cell, without the closing ]")
    except (ValueError, RecursionError):
        cells = _salvage(text)
        if not cells:
            if truncated:
                raise BadOutputError("dots.ocr reply was cut off before any layout cell", cause="length") from None
            raise BadOutputError("dots.ocr reply is not a JSON list of layout cells", cause="unparseable") from None
        warnings.append(f"reply is not valid JSON; {len(cells)} complete cells salvaged")
    if isinstance(cells, dict):
        cells = [cells]
    if not isinstance(cells, list):
        raise BadOutputError("dots.ocr reply is not a JSON list of layout cells", cause="unparseable")
    grid: float | tuple[float, float] = (space.width, space.height) if space.kind == "model_pixels" else 1e9
    blocks: list[RawBlock] = []
    parts: list[tuple[str, bool]] = []  # (markdown, is page furniture)
    for i, cell in enumerate(cells):
        if not isinstance(cell, dict):
            warnings.append(f"cell {i + 1} is not an object; skipped")
            continue
        label = str(cell.get("category", "")) or None
        kind = block_type(label, LABELS)
        raw_text = cell.get("text", "")
        body = raw_text if isinstance(raw_text, str) else "" if raw_text is None else json.dumps(raw_text, ensure_ascii=False)
        box = None
        if "bbox" in cell:
            box = parse_box(cell["bbox"] if isinstance(cell["bbox"], (list, tuple)) else str(cell["bbox"]),
                            grid, warnings, what=f"cell {i + 1} ({label})")  # fmt: skip
        else:
            warnings.append(f"cell {i + 1} ({label}) has no bbox")
        if kind in ("title", "section_header"):
            md = body if body.lstrip().startswith("#") else ("# " if kind == "title" else "## ") + body.strip()
            block_text = heading_text(md)
        elif kind == "figure":
            md = f"![{body.strip()}]()"
            block_text = body.strip()
        elif kind == "equation":
            md = formula_markdown(body)
            block_text = body.strip()
        else:
            md = body.strip()
            block_text = md
        blocks.append(RawBlock(type=kind, text=block_text, box=box, label=label))
        if md.strip():
            parts.append((md.strip(), kind in _HEADER_FOOTER))
    markdown, furniture = page_markdowns(parts)
    return PageContent(markdown=markdown, furniture_markdown=furniture,
                       blocks=blocks, space=space, warnings=warnings, meta=meta)  # fmt: skip
