"""Whole-document mode: a mode of the run that sends each document as one job.

Some endpoints take a whole PDF per job (the DeepSeek-OCR seed's worker).  In this mode a run
(``document_mode=True`` on :func:`~ocrclient.aconvert` / :class:`~ocrclient.api.Conversion`,
``ocr convert --document-mode``) cuts each document's selected pages into one new PDF
(:func:`pdf_subset`), sends it as ONE unit through the same scheduler — so retries, deadlines,
cancel and the resume cache all apply — with the page dialect wrapped for the whole-PDF contract
(:class:`~ocrclient.dialects.deepseek.DeepSeekDocumentDialect`: the request and the reply), and
splits the result back into pages (:func:`split_unit_page`): markdown per page, boxes from the
per-page grounding tags, moved onto each page by :func:`ocrclient.geometry.rescale_blocks`.

A long document goes as several jobs, each a PDF of at most ``dialect_options.document_pages``
pages (:data:`DOCUMENT_PAGES` by default) and small enough for RunPod's request-body limit
(:func:`document_units`): the worker refuses a PDF over its own page limit (``MAX_PDF_PAGES``,
200 in deploy/runpod-deepseek-ocr) and RunPod one over 10 MB, and each refusal failed every page
of the document.  The jobs of a document run side by side under ``--concurrency``, and a failed
one fails its own pages only.

If the worker returns a different number of pages than were sent, nothing is guessed: the whole
markdown of that job goes to its first page and each of its pages is marked degraded with the
reason.

The PDF is cut here rather than where pages are rendered: this mode renders nothing, it sends
the document's own bytes.  A unit's resume-cache key is its source's content and the pages cut
(:func:`document_unit`), not the cut's bytes, which differ at every cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .dialects.reply_checks import NO_TEXT
from .document import Document, Page, PageError, Usage
from .errors import ConfigError, InputError
from .geometry import PageBox, rescale_blocks
from .imaging import EncodedImage
from .models import PageImage
from .pages import PDFIUM_LOCK, Source
from .pages.render import pdf_page_box

if TYPE_CHECKING:
    from .config import BackendConfig
    from .dialects.deepseek import DeepSeekDocumentDialect as DocumentDialect
    from .events import Event
    from .registry import Backend
    from .scheduler import Scheduler

__all__ = [
    "DOCUMENT_PAGES",
    "DocumentDialect",
    "DocumentUnit",
    "check",
    "convert",
    "document_unit",
    "document_units",
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
        raise ConfigError("document mode (whole PDFs) needs a RunPod endpoint running the whole-PDF worker")
    from .dialects.deepseek import DeepSeekDialect
    from .registry import dialect_class

    cls = dialect_class(cfg.dialect)
    if not (isinstance(cls, type) and issubclass(cls, DeepSeekDialect)):
        # (a Chandra or TrOCR endpoint was sent the whole PDF, and every page failed on its refusal)
        raise ConfigError(
            f"document mode (whole PDFs) needs a DeepSeek-OCR endpoint running the whole-PDF worker; backend "
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
        raise InputError(f"{src.name}: document mode (whole PDFs) needs a PDF, not an image")
    data, boxes = pdf_subset(src, indices)
    unit = PageImage(
        source=src.name,
        index=indices[0],
        page_box=boxes[0],
        encoded=EncodedImage(data, "png", 0, 0),  # format is irrelevant: the bytes are sent as PDF
        content_key=f"pdf {_content_digest(src)} pages {','.join(map(str, indices))}".encode(),
    )
    return DocumentUnit(unit, [i + 1 for i in indices], boxes)


#: pages a whole-PDF job carries at most, unless ``dialect_options.document_pages`` says: a
#: quarter of the worker's own limit (``MAX_PDF_PAGES``, 200), so that a long document spreads
#: over ``--concurrency`` jobs (and workers) and a job lost costs its pages, not the book
DOCUMENT_PAGES = 50

#: what a job's JSON adds to the PDF's base64 (the prompt, the field names), with room to spare
_ENVELOPE_BYTES = 64 * 1024


def body_budget(transport: Any) -> int | None:
    """The largest PDF (raw bytes) a job of ``transport`` may carry: RunPod's request-body limit
    for the routes it may use, less the base64 growth and the envelope; ``None`` without one."""
    limits = [getattr(transport, name, None) for name in ("max_run_bytes", "max_runsync_bytes")]
    known = [int(v) for v in limits if isinstance(v, int) and v > 0]
    return max(1, (min(known) - _ENVELOPE_BYTES) * 3 // 4) if known else None


def document_units(
    src: Source, indices: list[int], *, max_pages: int = DOCUMENT_PAGES, max_bytes: int | None = None
) -> list[DocumentUnit]:
    """The selected pages of a PDF cut into units of at most ``max_pages`` pages each, a unit whose
    PDF is over ``max_bytes`` cut in halves again until it fits (one page over it stays one unit:
    the transport refuses it with its reason, failing that page only)."""
    size = max(1, int(max_pages))
    pending = [indices[i : i + size] for i in range(0, len(indices), size)]
    units: list[DocumentUnit] = []
    while pending:
        chunk = pending.pop(0)
        unit = document_unit(src, chunk)
        size_of = len(unit.page.encoded.data) if unit.page.encoded is not None else 0
        if max_bytes is not None and len(chunk) > 1 and size_of > max_bytes:
            half = (len(chunk) + 1) // 2
            pending[:0] = [chunk[:half], chunk[half:]]
            continue
        units.append(unit)
    return units


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
) -> AsyncGenerator[tuple[Source, list[DocumentUnit], Document], None]:
    """Run ``plan`` in whole-document mode through ``be``'s transport: each document as one or
    more jobs (:func:`document_units`), each :class:`Document` (split back into pages) yielded in
    input order with its source and the units that were sent (their PDF bytes, for outputs that
    need page images).  ``scheduler`` makes the run's scheduler for the wrapped backend."""
    from .dialects.deepseek import DeepSeekDocumentDialect
    from .registry import Backend
    from .scheduler import DocumentJob

    check(be.config)
    opts = be.config.dialect_options
    cut = functools.partial(document_units, max_pages=int(opts.get("document_pages") or DOCUMENT_PAGES),
                            max_bytes=body_budget(be.transport))  # fmt: skip
    units = [await asyncio.to_thread(cut, src, idx) for src, idx in plan]
    dialect = DeepSeekDocumentDialect(be.dialect, prompt=opts.get("document_prompt"))
    sched = scheduler(Backend(be.config, dialect, be.transport))

    async def each(cuts: list[DocumentUnit]) -> AsyncIterator[PageImage]:
        for unit in cuts:
            yield unit.page

    jobs = [DocumentJob(src.name, each(us), expected_pages=[u.page.number for u in us]) for (src, _), us in zip(plan, units, strict=True)]

    def split(i: int, doc: Document) -> Document:
        by_number = {p.page: p for p in doc.pages}
        pages = [page for u in units[i] for page in split_unit_page(u, _unit_result(u, by_number))]
        # each page keeps the attempts its job took; the run made them once, not once a page
        stats = sched.stats(pages, doc.stats.wall_s, doc.source).model_copy(update={"attempts": doc.stats.attempts})
        return doc.model_copy(update={"pages": pages, "stats": stats})

    sched.report_partial = split  # a run stopped part-way reports each document's own pages too
    sched.events_of = _page_events(plan, units, split)  # on_event hears of pages, not jobs
    done = 0
    async with contextlib.aclosing(sched.run_documents(jobs)) as docs:  # closed with this one
        async for doc in docs:
            yield plan[done][0], units[done], split(done, doc)
            done += 1


def _page_events(
    plan: list[tuple[Source, list[int]]], units: list[list[DocumentUnit]], split: Callable[[int, Document], Document]
) -> Callable[[Event], Iterable[Event]]:
    """The events ``on_event`` is told for one of the scheduler's: a job's started, retried,
    done or failed as that of each page it carries (done: each page as the job's result splits
    into), and a document done as its pages, as :func:`convert` yields it."""
    from .events import DocumentDone, PageDone

    unit_of = {(src.name, unit.page.number): unit for (src, _), cuts in zip(plan, units, strict=True) for unit in cuts}
    index_of = {src.name: i for i, (src, _) in enumerate(plan)}

    def events_of(event: Event) -> Iterable[Event]:
        if isinstance(event, DocumentDone):
            i = index_of.get(event.source)
            return [event if i is None else replace(event, document=split(i, event.document))]
        unit = unit_of.get((event.source, event.page))
        if unit is None:
            return [event]
        if isinstance(event, PageDone) and event.result is not None:
            return [replace(event, page=p.page, status=p.status, result=p) for p in split_unit_page(unit, event.result)]
        return [replace(event, page=number) for number in unit.numbers]

    return events_of


def _unit_result(unit: DocumentUnit, by_number: dict[int, Page]) -> Page:
    """The scheduler's page for ``unit`` (a failed one if it has none: never a page dropped)."""
    found = by_number.get(unit.page.number)
    if found is not None:
        return found
    error = PageError(kind="permanent", cause="missing", message="the run returned nothing for this job")
    return Page(page=unit.page.number, status="failed", error=error)
