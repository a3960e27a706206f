"""Whole-document mode: a mode of the run that sends each document as one job.

Some endpoints take a whole PDF per job (the DeepSeek-OCR seed's worker).  In this mode a run
(``document_mode=True`` on :func:`~ocrclient.aconvert` / :class:`~ocrclient.api.Conversion`,
``ocr convert --document-mode``) cuts each document's selected pages into one new PDF
(:func:`pdf_subset`), sends it as ONE unit through the same scheduler — so retries, deadlines,
cancel and the resume cache all apply — with the page dialect wrapped for the whole-PDF contract
(:class:`~ocrclient.dialects.deepseek.DeepSeekDocumentDialect`: the request and the reply), and
splits the result back into pages (:func:`split_unit_page`): markdown per page, boxes from the
per-page grounding tags, moved onto each page by :func:`ocrclient.geometry.rescale_blocks`.

If the worker returns a different number of pages than were sent, nothing is guessed: the whole
markdown goes to the first page and every page is marked degraded with the reason.

The PDF is cut here rather than where pages are rendered: this mode renders nothing, it sends
the document's own bytes.  A unit's resume-cache key is its source's content and the pages cut
(:func:`document_unit`), not the cut's bytes, which differ at every cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .dialects.reply_checks import NO_TEXT
from .document import Document, Page, Usage
from .errors import ConfigError, InputError
from .geometry import PageBox, rescale_blocks
from .imaging import EncodedImage
from .models import PageImage
from .pages import PDFIUM_LOCK, Source
from .pages.render import pdf_page_box

if TYPE_CHECKING:
    from .config import BackendConfig
    from .dialects.deepseek import DeepSeekDocumentDialect as DocumentDialect
    from .registry import Backend
    from .scheduler import Scheduler

__all__ = [
    "DocumentDialect",
    "DocumentUnit",
    "check",
    "convert",
    "document_unit",
    "pdf_subset",
    "requested",
    "split_unit_page",
]


def __getattr__(name: str) -> Any:
    # ``DocumentDialect``: the old name of the whole-PDF request and reply, which are the DeepSeek
    # dialect's (imported on first use: the dialect is not loaded until a run needs it)
    if name == "DocumentDialect":
        from .dialects.deepseek import DeepSeekDocumentDialect

        return DeepSeekDocumentDialect
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def requested(cfg: BackendConfig, document_mode: bool = False) -> bool:
    """Whether a run sends whole documents: the run asked (``document_mode``), or the profile
    still sets the older ``dialect_options.document_mode`` (read here and nowhere else)."""
    return bool(document_mode or cfg.dialect_options.get("document_mode"))


def check(cfg: BackendConfig) -> None:
    """Raise :class:`ConfigError` when ``cfg``'s backend cannot take whole documents (a run in
    document mode and ``ocr health --document-mode`` ask the same)."""
    if cfg.transport != "runpod":
        raise ConfigError("--document-mode needs a RunPod endpoint running the whole-PDF worker")
    from .dialects.deepseek import DeepSeekDialect
    from .registry import dialect_class

    cls = dialect_class(cfg.dialect)
    if not (isinstance(cls, type) and issubclass(cls, DeepSeekDialect)):
        # (a Chandra or TrOCR endpoint was sent the whole PDF, and every page failed on its refusal)
        raise ConfigError(
            f"--document-mode needs a DeepSeek-OCR endpoint running the whole-PDF worker; backend "
            f"{cfg.name!r} speaks {cfg.dialect!r} (use --backend runpod-deepseek-ocr)"
        )


def pdf_subset(src: Source, indices: list[int]) -> tuple[bytes, list[PageBox]]:
    """The pages ``indices`` (0-based) of the PDF ``src`` as a new PDF (the original bytes when
    every page is selected, re-saved, unless it opened with a password: a worker cannot open
    it, so its pages are copied out unencrypted as for a selection), and each page's box.  Not
    the same bytes twice: PDFium writes a random file identifier (and, for a new file, the
    time) at each save."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(src.path if src.path is not None else src.data, password=src.password)
        except pdfium.PdfiumError as exc:
            raise InputError(f"{src.name}: cannot open PDF ({exc})") from exc
        try:
            boxes = [pdf_page_box(pdf[i]) for i in indices]
            if len(indices) == len(pdf) and not src.password:
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


def _content_digest(src: Source) -> str:
    """The sha256 of the PDF's bytes (a file's: :func:`~ocrclient.cache.source_digest`)."""
    if src.path is not None:
        from .cache import source_digest

        return source_digest(str(src.path))
    assert src.data is not None
    return hashlib.sha256(src.data).hexdigest()


def document_unit(src: Source, indices: list[int]) -> DocumentUnit:
    """Cut the selected pages of a PDF into one unit (a PageImage whose bytes are the PDF)."""
    if src.kind != "pdf":
        raise InputError(f"{src.name}: --document-mode needs a PDF, not an image")
    data, boxes = pdf_subset(src, indices)
    unit = PageImage(
        source=src.name,
        index=indices[0],
        page_box=boxes[0],
        encoded=EncodedImage(data, "png", 0, 0),  # format is irrelevant: the bytes are sent as PDF
        content_key=f"pdf {_content_digest(src)} pages {','.join(map(str, indices))}".encode(),
    )
    return DocumentUnit(unit, [i + 1 for i in indices], boxes)


def split_unit_page(unit: DocumentUnit, result: Page) -> list[Page]:
    """Turn the unit's single result page into one Page per page sent."""
    n = len(unit.numbers)

    def base(i: int) -> dict[str, Any]:
        return {"page": unit.numbers[i], **unit.boxes[i].page_fields()}

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
    shared, own = _notes(result.warnings)
    out = []
    for i, holder in enumerate(per_page):
        # boxes were mapped on the unit's first page; bbox_norm is size-free
        blocks = rescale_blocks(holder.children, unit.boxes[i])
        warnings = [*shared, *own.get(i + 1, [])]
        if not blocks:  # (a page that says nothing is said to be so: it has no boxes to give)
            warnings.append(NO_TEXT if not holder.text.strip() else "no boxes for this page (no detection markdown)")
        out.append(
            Page(
                # (a unit degraded by notes on some of its pages degrades those pages only)
                status="degraded" if warnings or result.error or (result.status == "degraded" and not own) else "ok",
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


def _notes(warnings: list[str]) -> tuple[list[str], dict[int, list[str]]]:
    """A unit's warnings: those about the whole unit (every page gets them), and those about one
    of its pages (:func:`~ocrclient.dialects.deepseek.page_note`) by page (1-based in the unit)."""
    from .dialects.deepseek import PAGE_NOTE

    shared: list[str] = []
    own: dict[int, list[str]] = {}
    for w in warnings:
        note = PAGE_NOTE.match(w)
        if note is None:
            shared.append(w)
        else:
            own.setdefault(int(note.group(1)), []).append(note.group(2))
    return shared, own


async def convert(
    be: Backend, plan: list[tuple[Source, list[int]]], scheduler: Callable[[Backend], Scheduler]
) -> AsyncGenerator[tuple[Source, DocumentUnit, Document], None]:
    """Run ``plan`` in whole-document mode through ``be``'s transport: one job per document,
    each :class:`Document` (split back into pages) yielded in input order with its source and
    the unit that was sent (its PDF bytes, for outputs that need page images).  ``scheduler`` makes
    the run's scheduler for the wrapped backend."""
    from .dialects.deepseek import DeepSeekDocumentDialect
    from .registry import Backend
    from .scheduler import DocumentJob

    check(be.config)
    units = [await asyncio.to_thread(document_unit, src, idx) for src, idx in plan]
    dialect = DeepSeekDocumentDialect(be.dialect, prompt=be.config.dialect_options.get("document_prompt"))
    sched = scheduler(Backend(be.config, dialect, be.transport))

    async def one(page: PageImage) -> AsyncIterator[PageImage]:
        yield page

    jobs = [DocumentJob(u.page.source, one(u.page), expected_pages=[u.page.number]) for u in units]
    def split(i: int, doc: Document) -> Document:
        pages = split_unit_page(units[i], doc.pages[0])
        # each page keeps the attempts its unit took; the run made them once, not once a page
        stats = sched.stats(pages, doc.stats.wall_s, doc.source).model_copy(update={"attempts": doc.stats.attempts})
        return doc.model_copy(update={"pages": pages, "stats": stats})

    sched.report_partial = split  # a run stopped part-way reports each document's own pages too
    done = 0
    async with contextlib.aclosing(sched.run_documents(jobs)) as docs:  # closed with this one
        async for doc in docs:
            yield plan[done][0], units[done], split(done, doc)
            done += 1
