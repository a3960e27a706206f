"""Chandra (Datalab) — HTML layout blocks with boxes.

Facts, and where they were checked (the search index of public GitHub repositories):

* Prompt (``ocr_layout``): "OCR this image to HTML, arranged as layout blocks" — each block a
  ``<div>`` with ``data-bbox`` and ``data-label``, a fixed label list, a list of allowed tags and
  attributes and formatting guidelines.  ``datalab-to/chandra`` ``chandra/prompts.py`` (Chandra 1:
  boxes "in [x0, y0, x1, y1] format ... normalized 0-{bbox_scale}", scale 1024 per the Chandra 1
  prompt kept in ``sljeff/chandra_client`` ``chandra/prompts.py``); the Chandra 2 prompt (vendored
  copy in ``cloudy-sfu/PDF-to-markdown`` ``chandra/prompts.py``, model ``datalab-to/chandra-ocr-2``)
  says "in x0 y0 x1 y1 format. Bboxes are normalized 0-1000", adds the labels Chemical-Block,
  Diagram, Bibliography, Blank-Page, the ``chem`` tag and the ``data-bbox``/``data-label``
  attributes.  The prompt text is reproduced because the model was trained on it; the code is
  ours.
* Request: image part *before* the text part; ``temperature=0``, ``top_p=0.1``; retries on
  repetition use ``temperature=0.3``, ``top_p=0.95`` (``chandra/model/vllm.py``).
  ``max_tokens``: 8192 (Chandra 1 ``settings.py``), 12384 (Chandra 2 README / settings).
* Parsing: top-level ``<div>`` elements only; ``data-bbox`` read as JSON, else split on spaces
  (``chandra/output.py`` ``parse_layout``), boxes are fractions of each axis of the image sent;
  Page-Header / Page-Footer are left out of the markdown by default (kept in
  ``PageContent.furniture_markdown``: ``dialect_options.include_headers_footers``, an output
  option, picks it), tables stay HTML, ``<math>``
  becomes ``$...$`` / ``$$...$$`` (``chandra/output.py`` ``parse_markdown``).
* Render: PDFs at 192 dpi with the shortest side at least 1024 px (``IMAGE_DPI``,
  ``MIN_PDF_IMAGE_DIM``), and the client scales to fit 3072 x 2048 pixels (``scale_to_fit``).

The version is ``dialect_options.version`` (1 or 2); without it, a model name containing
``chandra-ocr-2`` means 2, ``datalab-to/chandra`` means 1, anything else 2.  A version that
contradicts the model's name is refused (a :class:`ConfigError`).

Example::

    >>> d = ChandraDialect(model="datalab-to/chandra-ocr-2")
    >>> d.version, d.space.label
    (2, 'grid:1000')
"""

from __future__ import annotations

import asyncio
import copy
import html
import importlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..geometry import CoordSpace
from ..imaging import EncodedImage, RenderSpec
from ..models import ModelReply, ModelRequest, PageContent, RawBlock, page_markdowns
from .base import ChatDialect
from .parsing import block_type, heading_text, parse_box
from .request_parts import image_part, text_part

if TYPE_CHECKING:
    from bs4 import Tag

__all__ = ["ChandraDialect", "build_prompt"]

_ALLOWED_TAGS_1 = [
    "math", "br", "i", "b", "u", "del", "sup", "sub", "table", "tr", "td", "p", "th", "div", "pre",
    "h1", "h2", "h3", "h4", "h5", "ul", "ol", "li", "input", "a", "span", "img", "hr", "tbody",
    "small", "caption", "strong", "thead", "big", "code",
]  # fmt: skip
_ALLOWED_ATTRS_1 = [
    "class", "colspan", "rowspan", "display", "checked", "type", "border", "value", "style",
    "href", "alt", "align",
]  # fmt: skip
_LABELS_1 = [
    "Caption", "Footnote", "Equation-Block", "List-Group", "Page-Header", "Page-Footer", "Image",
    "Section-Header", "Table", "Text", "Complex-Block", "Code-Block", "Form", "Table-Of-Contents",
    "Figure",
]  # fmt: skip
_LABELS_2 = [*_LABELS_1, "Chemical-Block", "Diagram", "Bibliography", "Blank-Page"]

_GUIDE_MATH = (
    "* Inline math: Surround math with <math>...</math> tags. Math expressions should be rendered "
    "in KaTeX-compatible LaTeX. Use display for block math."
)
_GUIDE_TABLES = "* Tables: Use colspan and rowspan attributes to match table structure."
_GUIDE_FORMAT = (
    "* Formatting: Maintain consistent formatting with the image, including spacing, indentation, "
    "subscripts/superscripts, and special characters."
)
_GUIDE_IMAGES_1 = (
    "* Images: Include a description of any images in the alt attribute of an <img> tag. "
    "Do not fill out the src property."
)
_GUIDE_IMAGES_2 = (
    _GUIDE_IMAGES_1 + " Describe in detail inside the div tag. Also convert charts to high "
    "fidelity data, and convert diagrams to mermaid."
)
_GUIDE_FORMS = "* Forms: Mark checkboxes and radio buttons properly."
_GUIDE_TEXT = (
    "* Text: join lines together properly into paragraphs using <p>...</p> tags.  Use <br> tags "
    "for line breaks within paragraphs, but only when absolutely necessary to maintain meaning."
)
_GUIDE_CHEM = "* Chemistry: Use <chem>...</chem> tags for chemical formulas with reactive SMILES."
_GUIDE_LISTS = "* Lists: Preserve indents and proper list markers."
_GUIDE_SIMPLE = "* Use the simplest possible HTML structure that accurately represents the content of the block."
_GUIDE_ACCURATE = (
    "* Make sure the text is accurate and easy for a human to read and interpret.  "
    "Reading order should be correct and natural."
)


def build_prompt(version: int) -> str:
    """The ``ocr_layout`` prompt of Chandra ``version`` (1: boxes on 0-1024, 2: on 0-1000)."""
    if version == 1:
        tags, attrs, labels = _ALLOWED_TAGS_1, _ALLOWED_ATTRS_1, _LABELS_1
        box = "in [x0, y0, x1, y1] format.  Bboxes are normalized 0-1024."
        guides = [_GUIDE_MATH, _GUIDE_TABLES, _GUIDE_FORMAT, _GUIDE_IMAGES_1, _GUIDE_FORMS,
                  _GUIDE_TEXT, _GUIDE_SIMPLE, _GUIDE_ACCURATE]  # fmt: skip
        head = "OCR this image to HTML, arranged as layout blocks.  "
    else:
        tags = [*_ALLOWED_TAGS_1, "chem"]
        attrs = [*_ALLOWED_ATTRS_1, "data-bbox", "data-label"]
        labels = _LABELS_2
        box = "in x0 y0 x1 y1 format.  Bboxes are normalized 0-1000."
        guides = [_GUIDE_MATH, _GUIDE_TABLES, _GUIDE_FORMAT, _GUIDE_IMAGES_2, _GUIDE_FORMS,
                  _GUIDE_TEXT, _GUIDE_CHEM, _GUIDE_LISTS, _GUIDE_SIMPLE, _GUIDE_ACCURATE]  # fmt: skip
        head = "OCR this image to HTML, arranged as layout blocks. "
    lines = [
        head + "Each layout block should be a div with the data-bbox attribute representing the "
        f"bounding box of the block {box} The data-label attribute is the label for the block.",
        "",
        "Use the following labels:",
        *[f"- {label}" for label in labels],
        "",
        f"Only use these tags {tags}, and these attributes {attrs}.",
        "",
        "Guidelines:",
        *guides,
    ]
    return "\n".join(lines)


#: Chandra labels -> document.BLOCK_TYPES
LABELS: Mapping[str, str] = {
    "Caption": "caption",
    "Footnote": "footnote",
    "Equation-Block": "equation",
    "List-Group": "list_item",
    "List-Item": "list_item",
    "Page-Header": "page_header",
    "Page-Footer": "page_footer",
    "Image": "figure",
    "Figure": "figure",
    "Diagram": "figure",
    "Section-Header": "section_header",
    "Table": "table",
    "Table-Of-Contents": "table",
    "Text": "text",
    "Complex-Block": "text",
    "Code-Block": "code",
    "Form": "form",
    "Chemical-Block": "equation",
    "Bibliography": "text",
    "Handwriting": "handwriting",
}
_SKIP_LABELS = {"blank-page"}
_HEADER_FOOTER = {"page-header", "page-footer"}


def _named_version(model: str | None) -> int | None:
    """The Chandra version a model name names (``chandra-ocr-2`` 2, ``datalab-to/chandra`` 1),
    ``None`` for a name that says neither."""
    m = (model or "").lower()
    if _CHANDRA_2.search(m):  # (not a date: "chandra-20251001", "chandra-2025-06-ft" say nothing)
        return 2
    if m.rstrip("/").endswith("datalab-to/chandra") or m == "chandra-1":
        return 1
    return None


_CHANDRA_2 = re.compile(r"chandra[-_]?(?:ocr[-_]?)?2(?![\d])")


def _infer_version(model: str | None) -> int:
    return _named_version(model) or 2


class ChandraDialect(ChatDialect):
    """Chandra 1 / 2 over an OpenAI-compatible server (vLLM), layout prompt, HTML reply.

    Example::

        >>> d = ChandraDialect(model="datalab-to/chandra", options={"version": 1})
        >>> d.space.label, d.render.dpi
        ('grid:1024', 192.0)
    """

    name = "chandra"
    OPTIONS: Mapping[str, Any] = {"version": None, "prompt": None}
    #: read by no request and no parse: the run picks the markdown with or without furniture
    #: (``PageContent.furniture_markdown``; see ``ModelDialect.OUTPUT_OPTIONS``)
    OUTPUT_OPTIONS: Mapping[str, Any] = {"include_headers_footers": False}
    DEFAULT_RENDER = RenderSpec(dpi=192.0, min_side=1024, max_pixels=3072 * 2048)
    DEFAULT_MODEL = "datalab-to/chandra-ocr-2"
    DEFAULT_LADDER = (0.0, 0.3, 0.4, 0.5)
    DEFAULT_TOP_P = (0.1, 0.95)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        raw = self.options.get("version")
        if raw is None:
            self.version = _infer_version(self.model)
        else:
            try:
                self.version = int(raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError("dialect_options.version must be 1 or 2") from exc
        if self.version not in (1, 2):
            raise ConfigError("dialect_options.version must be 1 or 2")
        named = _named_version(self.model)
        if named is not None and named != self.version:
            # the boxes would be read on the other version's grid, every one of them off, status ok
            raise ConfigError(
                f"model {self.model!r} is Chandra {named} but dialect_options.version is {self.version} "
                f"(its boxes would be read on the wrong grid): set dialect_options.version = {named} "
                "(a [backends.<name>.dialect_options] table in the user config; dialect_options= in Python)"
            )
        self.DEFAULT_MAX_TOKENS = 8192 if self.version == 1 else 12384
        self.grid = 1024 if self.version == 1 else 1000
        self.space = CoordSpace.grid(self.grid)
        self.prompt = str(self.options.get("prompt") or build_prompt(self.version))

    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        return [image_part(image), text_part(self.prompt)]

    async def warm_up(self) -> None:
        """Import the HTML parser (BeautifulSoup, markdownify: ~60 ms) in a thread while the
        first page renders (``Backend.warm_up``), rather than in front of the first request."""
        await asyncio.to_thread(importlib.import_module, "._html", __package__)

    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        return parse_chandra_html(text, self.grid)


def parse_chandra_html(text: str, grid: int) -> PageContent:
    """Parse a Chandra HTML reply into blocks (boxes on ``grid``) and page markdown (without the
    Page-Header / Page-Footer blocks; with them in ``furniture_markdown``)."""
    from bs4 import NavigableString, Tag  # the HTML parser loads with the first reply (warm_up)

    from ._html import parse_html, to_markdown

    root, notes = parse_html(text)
    warnings: list[str] = [f"html: {n}" for n in notes]
    blocks: list[RawBlock] = []
    parts: list[tuple[str, bool]] = []  # (markdown, is page furniture)
    loose: list[str] = []
    n_div = 0

    def flush_loose() -> None:
        md = to_markdown("".join(loose))
        loose.clear()
        if md.strip():
            blocks.append(RawBlock(type="text", text=md))
            parts.append((md, False))

    for child in list(root.children):
        if isinstance(child, Tag) and child.name == "div" and (child.has_attr("data-label") or child.has_attr("data-bbox")):
            flush_loose()
            n_div += 1
            label = str(child.get("data-label", "")).strip() or None
            key = (label or "").lower()
            if key in _SKIP_LABELS:
                continue
            box = None
            if child.has_attr("data-bbox"):
                box = parse_box(str(child["data-bbox"]), grid, warnings, what=f"block {n_div} ({label})")
            else:
                warnings.append(f"block {n_div} ({label}) has no data-bbox")
            kind = block_type(label, LABELS)
            md = _figure_markdown(child) if kind == "figure" else to_markdown(child)
            if kind == "section_header" and md and not md.startswith("#"):
                md = "## " + " ".join(md.split())
            if kind == "figure":
                block_text = _alt(child) or md
            elif kind in ("section_header", "title"):
                block_text = heading_text(md)
            else:
                block_text = md
            blocks.append(RawBlock(type=kind, text=block_text, box=box, label=label))
            if md:
                parts.append((md, key in _HEADER_FOOTER))
        elif not (isinstance(child, NavigableString) and not child.strip()):
            loose.append(str(child) if isinstance(child, Tag) else html.escape(str(child), quote=False))
    flush_loose()
    if n_div == 0:
        warnings.append("no layout blocks (data-label divs) in the reply")
    markdown, furniture_markdown = page_markdowns([part for part in parts if part[0].strip()])
    return PageContent(
        markdown=markdown,
        furniture_markdown=furniture_markdown,
        blocks=blocks,
        space=CoordSpace.grid(grid),
        warnings=warnings,
    )


def _alt(node: Tag) -> str:
    for img in node.find_all("img"):
        if img.get("alt"):
            return str(img["alt"]).strip()
    return ""


def _figure_markdown(node: Tag) -> str:
    from ._html import text_of, to_markdown

    alt = _alt(node)
    rest = copy.copy(node)
    for img in rest.find_all("img"):  # (one nested in a <p> too: a second reference for one figure
        img.decompose()  # took the next figure's crop)
    extra = to_markdown(rest)
    clean_alt = re.sub(r"[\[\]]", "", alt)
    out = f"![{clean_alt}]()"
    if extra.strip() and text_of(rest).strip() != alt:
        out += "\n\n" + extra
    return out
