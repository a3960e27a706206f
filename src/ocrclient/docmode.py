"""Whole-document mode: endpoints that take a whole PDF per job (the DeepSeek-OCR seed's contract).

Some deployed workers only speak ``{"input": {"pdf_base64", "prompt"}}`` and answer with the
whole document's markdown (base64), pages joined by ``<--- Page Split --->``, plus the grounded
``detection_markdown``; the job input is :class:`~ocrclient.contracts.runpod.DocumentJobInput`,
the model ``deploy/runpod-deepseek-ocr`` validates with.  ``--document-mode`` sends each document (its selected pages cut into a
new PDF) as ONE unit through the same scheduler — so retries, deadlines, cancel and the resume
cache all apply — and splits the reply back into pages: markdown per page, boxes from the
per-page grounding tags (0-999 of each page image, mapped by :mod:`ocrclient.geometry`).

If the worker returns a different number of pages than were sent, nothing is guessed: the whole
markdown goes to the first page and every page is marked degraded with the reason.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from typing import Any

from .contracts.runpod import DocumentJobInput
from .dialects.base import Attempt, PageContent, RawBlock
from .document import Block, Page, Usage
from .errors import BadOutputError, InputError
from .geometry import Frame, PageBox
from .imaging import EncodedImage, RenderSpec
from .pages import PageImage, Source
from .transports.base import ModelReply, ModelRequest

__all__ = ["DocumentDialect", "document_unit", "split_unit_page"]

PAGE_SPLIT = re.compile(r"\n*<---\s*Page Split\s*--->\n*")
DEFAULT_PROMPT = "<image>\n<|grounding|>Convert the document to markdown."


def _pdf_subset(src: Source, indices: list[int]) -> tuple[bytes, list[PageBox]]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(src.path if src.path is not None else src.data, password=src.password)
    except pdfium.PdfiumError as exc:
        raise InputError(f"{src.name}: cannot open PDF ({exc})") from exc
    try:
        boxes = []
        for i in indices:
            page = pdf[i]
            w, h = page.get_size()
            x0, y0, _, _ = page.get_cropbox()
            boxes.append(PageBox(w, h, page.get_rotation(), x0, y0))
        if len(indices) == len(pdf):
            out = pdf
        else:
            out = pdfium.PdfDocument.new()
            out.import_pages(pdf, indices)
        buf = io.BytesIO()
        out.save(buf)
        return buf.getvalue(), boxes
    finally:
        pdf.close()


@dataclass
class DocumentUnit:
    """One whole document as a single scheduler unit."""

    page: PageImage
    numbers: list[int]
    boxes: list[PageBox] = field(default_factory=list)


def document_unit(src: Source, indices: list[int]) -> DocumentUnit:
    """Cut the selected pages of a PDF into one unit (a PageImage whose bytes are the PDF)."""
    if src.kind != "pdf":
        raise InputError(f"{src.name}: --document-mode needs a PDF, not an image")
    data, boxes = _pdf_subset(src, indices)
    unit = PageImage(
        source=src.name,
        index=indices[0],
        page_box=boxes[0],
        encoded=EncodedImage(data, "png", 0, 0),  # format is irrelevant: the bytes are sent as PDF
    )
    return DocumentUnit(unit, [i + 1 for i in indices], boxes)


class DocumentDialect:
    """Wraps a page dialect (DeepSeek) for the whole-PDF contract."""

    def __init__(self, inner: Any, prompt: str | None = None) -> None:
        self.inner = inner
        self.name = f"{getattr(inner, 'name', 'dialect')}-document"
        self.render: RenderSpec = getattr(inner, "render", RenderSpec())
        self.prompt = prompt or DEFAULT_PROMPT

    def build(self, page: PageImage, attempt: Attempt) -> ModelRequest:
        assert page.encoded is not None
        job = DocumentJobInput(pdf_base64=base64.b64encode(page.encoded.data).decode("ascii"), prompt=self.prompt)
        body = job.model_dump(exclude_none=True)
        return ModelRequest(body=body, kind="document", frame=Frame(1000, 1000))

    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent:
        """One top-level block per page (label ``document-page:N``), its children the page's
        grounded blocks (0-999 grid), so the split survives the scheduler and the cache."""
        from .dialects.deepseek import parse_grounded
        from .geometry import CoordSpace

        text = reply.text or ""
        if not text.strip():
            raise BadOutputError("the worker returned empty markdown", cause="empty")
        detection = reply.data.get("detection_markdown")
        pages_md = PAGE_SPLIT.split(text.strip())
        pages_det = PAGE_SPLIT.split(detection.strip()) if isinstance(detection, str) and detection.strip() else []
        blocks: list[RawBlock] = []
        warnings: list[str] = []
        for k, md in enumerate(pages_md):
            children = parse_grounded(pages_det[k]).blocks if len(pages_det) == len(pages_md) else []
            blocks.append(RawBlock("text", md.strip(), label=f"document-page:{k + 1}", children=children))
        if pages_det and len(pages_det) != len(pages_md):
            warnings.append("detection markdown does not match the pages: no boxes")
        return PageContent(markdown=text, blocks=blocks, space=CoordSpace.grid(999), warnings=warnings)


def split_unit_page(unit: DocumentUnit, result: Page) -> list[Page]:
    """Turn the unit's single result page into one Page per page sent."""
    n = len(unit.numbers)

    def base(i: int) -> dict[str, Any]:
        box = unit.boxes[i]
        return {"page": unit.numbers[i], "width": box.width, "height": box.height, "rotation": box.rotation}

    if result.status == "failed":
        return [Page(status="failed", error=result.error, attempts=result.attempts, **base(i)) for i in range(n)]
    share: dict[str, Any] = {"attempts": result.attempts, "latency_s": result.latency_s, "cached": result.cached}
    per_page = [b for b in result.blocks if (b.label or "").startswith("document-page:")]
    if len(per_page) != n:
        reason = f"the worker returned {len(per_page)} page(s) for {n} sent; markdown kept whole on page 1"
        return [
            Page(
                status="degraded",
                warnings=[*result.warnings, reason],
                error=result.error,
                markdown=result.markdown if i == 0 else "",
                usage=result.usage if i == 0 else Usage(),
                **base(i),
                **share,
            )
            for i in range(n)
        ]
    out = []
    for i, holder in enumerate(per_page):
        box = unit.boxes[i]
        blocks = [_rescale(b, box) for b in holder.children]
        warnings = list(result.warnings)
        if not blocks:
            warnings.append("no boxes for this page (no detection markdown)")
        out.append(
            Page(
                status="degraded" if (result.status == "degraded" or not blocks) else "ok",
                warnings=warnings,
                error=result.error,
                markdown=holder.text,
                blocks=blocks,
                usage=result.usage if i == 0 else Usage(),
                **base(i),
                **share,
            )
        )
    return out


def _rescale(block: Block, box: PageBox) -> Block:
    """Boxes were mapped on the unit's first page; bbox_norm is size-free, so rebuild bbox."""
    bbox = None
    if block.bbox_norm is not None:
        x0, y0, x1, y1 = block.bbox_norm
        bbox = [round(x0 * box.width, 3), round(y0 * box.height, 3), round(x1 * box.width, 3), round(y1 * box.height, 3)]
    return block.model_copy(update={"bbox": bbox, "children": [_rescale(c, box) for c in block.children]})
