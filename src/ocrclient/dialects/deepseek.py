"""DeepSeek-OCR / DeepSeek-OCR-2 — grounding tags with boxes on a 0-999 grid.

Facts, and where they were checked:

* Prompt: ``<image>\\n<|grounding|>Convert the document to markdown.`` for documents
  (``deepseek-ai/DeepSeek-OCR`` ``DeepSeek-OCR-master/DeepSeek-OCR-vllm/config.py``, with the other
  modes: ``<|grounding|>OCR this image.``, ``Free OCR.`` without layout).  Over the OpenAI chat API
  the ``<image>`` placeholder is *not* written in the text: vLLM's DeepSeek-OCR recipe
  (``docs.vllm.ai/projects/recipes`` DeepSeek-OCR, "Online OCR serving") sends an ``image_url``
  part followed by a text part with only the instruction.
* vLLM extras: ``skip_special_tokens: false`` and ``vllm_xargs`` read by vLLM's
  ``NGramPerReqLogitsProcessor``: ``ngram_size=30``, ``window_size=90``,
  ``whitelist_token_ids=[128821, 128822]`` (``<td>``, ``</td>``) — same recipe; the server must be
  started with ``--logits_processors vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor``.
  ``temperature=0``; ``max_tokens=7168``: the model's 8192-token context (the recipe's and
  ``run_dpsk_ocr_pdf.py``'s ``max_model_len``) less the prompt, whose image alone takes up to
  933 tokens (the recipe's ``max_tokens=8192`` is refused by vLLM's server at that context).
* Reply: ``<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>`` followed by the block's
  markdown; one tag may hold several boxes (read as one block, its text once, its box their
  union and each box a child; an ``image`` tag as a figure per box, as the script crops each box
  apart); coordinates are ``v / 999`` of the image's width /
  height (``run_dpsk_ocr_pdf.py`` ``draw_bounding_boxes``); ``image`` refs become pictures
  (``![](images/...)``) and every other tag is removed from the markdown (same file).  Replies that
  did not end in the end-of-sentence token were treated as repetition and skipped there.
* Render: PDF pages at 144 dpi (``pdf_to_images_high_quality(dpi=144)``); the model's "Gundam"
  mode tiles that image itself (``BASE_SIZE=1024``, ``IMAGE_SIZE=640``, ``CROP_MODE=True``).

Labels seen in real replies: title, sub_title, text, table, table_caption, table_footnote,
image, image_caption, equation, header, footer, page_number... (mapped below; unknown -> text).

Whole-PDF jobs (the DeepSeek-OCR seed's worker, ``--document-mode``): some deployed workers only
speak ``{"input": {"pdf_base64", "prompt"}}`` (:class:`~ocrclient.contracts.runpod.DocumentJobInput`,
the model ``deploy/runpod-deepseek-ocr`` validates with) and answer with the whole document's
markdown, pages joined by ``<--- Page Split --->``, plus the grounded ``detection_markdown``.
:class:`DeepSeekDocumentDialect` builds that request and reads that reply; the run mode that cuts
the PDF and splits the result back into pages is :mod:`ocrclient.docmode`.

Example::

    >>> d = DeepSeekDialect(model="deepseek-ai/DeepSeek-OCR")
    >>> d.space.label
    'grid:999'
"""

from __future__ import annotations

import ast
import base64
import re
from collections.abc import Mapping
from typing import Any

from ..contracts.runpod import DocumentJobInput
from ..errors import BadOutputError
from ..geometry import CoordSpace, Frame
from ..imaging import EncodedImage, RenderSpec
from ..models import ModelReply, ModelRequest, PageContent, RawBlock
from .base import ChatDialect
from .parsing import block_type, heading_text, parse_box
from .reply_checks import BLOCK_TEXT_SLACK, bound_blocks, detect_repetition, trim_repetition
from .request_parts import image_part, text_part

__all__ = ["DEFAULT_DOCUMENT_PROMPT", "DEFAULT_PROMPT", "DeepSeekDialect", "DeepSeekDocumentDialect", "parse_grounded"]

DEFAULT_PROMPT = "<|grounding|>Convert the document to markdown."
#: the whole-PDF worker runs the model offline, so its prompt keeps the ``<image>`` placeholder
DEFAULT_DOCUMENT_PROMPT = "<image>\n<|grounding|>Convert the document to markdown."
#: how the whole-PDF worker separates the pages of its markdown: DeepSeek's own PDF script ends
#: every page with it, the last one too (``page\n\n<--- Page Split --->\n``); a worker that
#: only joins pages with it is read alike
PAGE_SPLIT = re.compile(r"\n*<---\s*Page Split\s*--->\n*")
#: how DeepSeek's own PDF script ends each page of its markdown (what our worker and simulator write)
PAGE_END = "\n\n<--- Page Split --->\n"
_ENDS_WITH_SPLIT = re.compile(r"<---\s*Page Split\s*--->\s*$")
#: a whole-PDF reply's note about one of its pages: ``docmode.split_unit_page`` gives it to
#: that page alone (the others stay as they are)
PAGE_NOTE = re.compile(r"^document page (\d+): (.*)$", re.DOTALL)
GRID = 999
#: a box on the grid, as the model wrote it
Box = tuple[float, float, float, float]

#: vllm_xargs of the DeepSeek-OCR vLLM recipe (the n-gram no-repeat logits processor)
NGRAM_XARGS: Mapping[str, Any] = {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]}

LABELS: Mapping[str, str] = {
    "title": "title",
    "sub_title": "section_header",
    "subtitle": "section_header",
    "text": "text",
    "table": "table",
    "table_caption": "caption",
    "table_footnote": "footnote",
    "image": "figure",
    "figure": "figure",
    "image_caption": "caption",
    "figure_title": "caption",
    "table_title": "caption",
    "equation": "equation",
    "formula": "equation",
    "header": "page_header",
    "page_header": "page_header",
    "footer": "page_footer",
    "page_footer": "page_footer",
    "page_number": "page_footer",
    "footnote": "footnote",
    "list": "list_item",
    "code": "code",
}

#: a grounding tag: its label and its box list, closed by ``<|/det|>`` before the next tag; a
#: ``<|det|>`` never closed ends with its box list (``[[...]]``), so the text after it is the
#: block's (it ran to the next tag's close, swallowing a paragraph and giving its box to another)
_TAG = re.compile(
    r"<\|ref\|>(.*?)<\|/ref\|>\s*<\|det\|>(?:((?:(?!<\|ref\|>).)*?)<\|/det\|>|\s*(\[\[[^<\n]*?\]\]))", re.S
)
#: special tokens that survive with skip_special_tokens=false
_SPECIALS = re.compile(r"<｜end▁of▁sentence｜>|<\|end▁of▁sentence\|>|<｜begin▁of▁sentence｜>|<\|grounding\|>")
_LEFTOVER = re.compile(r"<\|/?(?:ref|det)\|>")


class DeepSeekDialect(ChatDialect):
    """DeepSeek-OCR(-2) grounding mode over vLLM's OpenAI server.

    Example::

        >>> d = DeepSeekDialect(model="deepseek-ai/DeepSeek-OCR")
        >>> d.render.dpi
        144.0
    """

    name = "deepseek"
    OPTIONS: Mapping[str, Any] = {"prompt": None, "ngram_logits_processor": True}
    DEFAULT_RENDER = RenderSpec(dpi=144.0)
    DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"
    DEFAULT_MAX_TOKENS = 7168
    DEFAULT_LADDER = (0.0, 0.2, 0.4, 0.6)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        prompt = str(self.options.get("prompt") or DEFAULT_PROMPT)
        # "<image>\n" belongs to the offline prompt; the chat template adds the image itself
        self.prompt = re.sub(r"^\s*<image>\s*", "", prompt)
        self.ngram = bool(self.options.get("ngram_logits_processor", True))
        self.space = CoordSpace.grid(GRID)

    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        return [image_part(image), text_part(self.prompt)]

    def extras(self, attempt: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"skip_special_tokens": False}
        if self.ngram:
            out["vllm_xargs"] = dict(NGRAM_XARGS)
        return out

    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        return parse_grounded(text)


def _boxes(det: str, warnings: list[str], what: str) -> list[Box]:
    det = det.strip()
    try:
        value = ast.literal_eval(det)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    out: list[tuple[float, float, float, float]] = []
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) for v in value):
        for i, item in enumerate(value):
            box = parse_box(item, GRID, warnings, what=f"{what} box {i + 1}")
            if box is not None:
                out.append(box)
        return out
    if isinstance(value, (list, tuple)) and len(value) == 4:
        box = parse_box(value, GRID, warnings, what=what)
        return [box] if box is not None else []
    # broken brackets: take the numbers four at a time
    nums = re.findall(r"[-+]?\d+(?:\.\d+)?", det)
    if not nums or len(nums) % 4:
        warnings.append(f"{what}: unreadable boxes {det[:60]!r}")
        return []
    warnings.append(f"{what}: malformed box list {det[:60]!r}")
    for i in range(0, len(nums), 4):
        box = parse_box(nums[i : i + 4], GRID, warnings, what=what)
        if box is not None:
            out.append(box)
    return out


def _clean(md: str) -> str:
    md = _SPECIALS.sub("", md)
    md = _LEFTOVER.sub("", md)
    md = md.replace("\\coloneqq", ":=").replace("\\eqqcolon", "=:")
    return re.sub(r"\n{3,}", "\n\n", md).strip()


def parse_grounded(text: str) -> PageContent:
    """Parse a grounding-mode reply: one block per tag (an ``image`` tag: one figure per box),
    markdown without the tags."""
    warnings: list[str] = []
    blocks: list[RawBlock] = []
    parts: list[str] = []
    matches = list(_TAG.finditer(text))
    lead = _clean(text[: matches[0].start()] if matches else text)
    if lead:
        parts.append(lead)
        blocks.append(RawBlock(type="text", text=lead))
    if not matches:
        warnings.append("no grounding tags (<|ref|>...<|det|>) in the reply")
    figure_n = 0
    for i, m in enumerate(matches):
        label = m.group(1).strip()
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = _clean(text[m.end() : end])
        kind = block_type(label, LABELS)
        what = f"<|ref|>{label[:30]}"
        boxes = _boxes(m.group(2) if m.group(2) is not None else m.group(3), warnings, what)
        if kind == "figure":
            figures = _figures(boxes, body, label)
            refs = [f"![](images/{figure_n + k}.jpg)" for k in range(1, len(figures) + 1)]
            figure_n += len(figures)
            parts.append("\n\n".join(refs + ([body] if body else [])))
            blocks.extend(figures)
            continue
        if body:
            parts.append(body)
        text_for_block = heading_text(body) if kind in ("title", "section_header") else body
        blocks.append(_grounded_block(kind, text_for_block, label, boxes))
    return PageContent(
        markdown="\n\n".join(p for p in parts if p.strip()),
        blocks=blocks,
        space=CoordSpace.grid(GRID),
        warnings=warnings,
    )


def _figures(boxes: list[Box], body: str, label: str) -> list[RawBlock]:
    """An ``image`` tag's figures: one per box, each cropped and referenced in place (DeepSeek's
    own script crops every box of an image tag as a picture of its own; their union would crop
    the text between two pictures too), the tag's text (if any) on the first one only."""
    if not boxes:
        return [RawBlock(type="figure", text=body, label=label)]
    return [RawBlock(type="figure", text=body if k == 0 else "", box=box, label=label) for k, box in enumerate(boxes)]


def _grounded_block(kind: str, text: str, label: str, boxes: list[Box]) -> RawBlock:
    """One tag's block, its text once: a tag with several boxes (a paragraph that goes on in the
    next column) is one block whose box holds them all, each box a child without text of its
    own (a block per box, each with the whole text, wrote it once per box in the JSON, the
    viewer and the searchable PDF's text layer)."""
    if len(boxes) <= 1:
        return RawBlock(type=kind, text=text, box=boxes[0] if boxes else None, label=label)
    ordered = [(min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])) for b in boxes]
    union = (min(b[0] for b in ordered), min(b[1] for b in ordered), max(b[2] for b in ordered), max(b[3] for b in ordered))
    children = [RawBlock(type=kind, box=box, label=label) for box in boxes]
    return RawBlock(type=kind, text=text, box=union, label=label, children=children)


class DeepSeekDocumentDialect:
    """The DeepSeek seed's whole-PDF contract: the request is the PDF (a unit made by
    :func:`ocrclient.docmode.document_unit`, whose "image" bytes are the PDF), the reply the
    whole document's markdown.  ``inner`` is the run's page dialect (its name and render spec
    are kept); ``prompt`` is ``dialect_options.document_prompt``.

    ``parse`` gives one top-level block per page (label ``document-page:N``), its children the
    page's grounded blocks (0-999 grid), so the split survives the scheduler and the cache.

    Example::

        >>> d = DeepSeekDocumentDialect(DeepSeekDialect())
        >>> d.name, d.prompt.startswith("<image>")
        ('deepseek-document', True)
    """

    SENDS = "document"

    def __init__(self, inner: Any, prompt: str | None = None) -> None:
        self.inner = inner
        self.name = f"{getattr(inner, 'name', 'dialect')}-document"
        self.render: RenderSpec = getattr(inner, "render", RenderSpec())
        self.prompt = prompt or DEFAULT_DOCUMENT_PROMPT

    def build(self, page: Any, attempt: Any) -> ModelRequest:
        assert page.encoded is not None
        job = DocumentJobInput(pdf_base64=base64.b64encode(page.encoded.data).decode("ascii"), prompt=self.prompt)
        return ModelRequest(
            body=job.model_dump(exclude_none=True), kind="document", frame=Frame(1000, 1000), page_image=page
        )

    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent:
        """One holder block per page; a page's own troubles (its reply cut at ``max_tokens``,
        as the worker's ``pages[].finish_reason`` says; its grounding unreadable; its text
        running away in an endless repetition, cut down to two copies) are notes on that page
        (:func:`page_note`), the unit's on every page.  A runaway is not retried, unlike a
        page's: the job has no sampling to vary (the worker's own decoding), and the same PDF
        would cost the whole unit again for the same text."""
        text = reply.text or ""
        if not text.strip():
            raise BadOutputError("the worker returned empty markdown", cause="empty")
        detection = reply.data.get("detection_markdown")
        pages_md = split_pages(text)
        pages_det = split_pages(detection) if isinstance(detection, str) and detection.strip() else []
        grounded = len(pages_det) == len(pages_md)
        runaway: dict[int, str] = {}  # page index -> the note on it
        for k, md in enumerate(pages_md):  # its markdown, or its grounded text, running away
            if (rep := detect_repetition(md) or (detect_repetition(pages_det[k]) if grounded else None)) is not None:
                pages_md[k] = trim_repetition(md)
                runaway[k] = page_note(k + 1, f"repetition: {rep}")
        if runaway:
            text = "".join(md.strip() + PAGE_END for md in pages_md)  # (as DeepSeek's own script writes them)
        blocks: list[RawBlock] = []
        warnings: list[str] = []
        for k, md in enumerate(pages_md):
            children: list[RawBlock] = []
            if grounded:
                read = parse_grounded(pages_det[k])
                children = read.blocks if k not in runaway else bound_blocks(read.blocks, len(md) + BLOCK_TEXT_SLACK)
                warnings.extend(page_note(k + 1, w) for w in read.warnings)
            blocks.append(RawBlock("text", md.strip(), label=f"document-page:{k + 1}", children=children))
        if pages_det and len(pages_det) != len(pages_md):
            warnings.append("detection markdown does not match the pages: no boxes")
        listed = reply.data.get("pages")
        for k, entry in enumerate(listed if isinstance(listed, list) else []):
            if isinstance(entry, dict) and entry.get("finish_reason") == "length":
                number = entry.get("page")
                warnings.append(page_note(number if isinstance(number, int) else k + 1, "truncated: the reply hit max_tokens"))
        return PageContent(markdown=text, blocks=blocks, space=CoordSpace.grid(GRID), warnings=[*warnings, *runaway.values()])


def split_pages(text: str) -> list[str]:
    """A whole-PDF worker's markdown, one string per page: pages separated by ``<--- Page Split
    --->``, a separator at the very end closing the last page (DeepSeek's own script writes one
    after every page), not opening an empty one."""
    body = text.strip()
    pages = PAGE_SPLIT.split(body)
    if len(pages) > 1 and _ENDS_WITH_SPLIT.search(body):
        pages.pop()
    return pages


def page_note(number: int, warning: str) -> str:
    """A whole-PDF reply's ``warning`` about its ``number``-th page (1-based in the unit)."""
    return f"document page {number}: {warning}"
