"""Writing a run's outputs as its pages finish, from what the run already has.

Each page's rendered image travels with the page: the run hands it to the document's
:class:`DocumentSink` as the page stream yields it (:meth:`DocumentSink.take_image`), and when
the scheduler reports the page done (``PageDone``, whose ``result`` is the finished page, or
``PageFailed``) the sink turns it, in a worker thread, into what the outputs need and drops it:

* ``md``: the page's figure crops, written at once to ``<stem>_figures/``;
* ``html``: the page's viewer image, spilled beside the outputs until the HTML is written;
* ``pdf``: the page put into the searchable PDF being built, copied from the input's own PDF
  (opened when the document started, from its bytes for a document given as bytes) or, for an
  image input, made from the page image.

Those pieces are made and kept by :class:`ocrclient.exporters.pieces.PagePieces`.  In lean mode
(``OutputWriter(..., lean=True)``, what ``ocr convert -o`` uses) each page's piece of the JSON
and of the markdown is spilled to a hidden file beside the outputs too, and the page's blocks
are let go of (:mod:`ocrclient.exporters.spill`): the document's memory no longer grows with
its pages' blocks, and the files are the same bytes.
So no writer opens the input once its pages are done, figure crops and page images exist for
documents given as bytes, memory holds crops' names, not pages, and when the document's last
page is done only the small files are left to write (:meth:`DocumentSink.finish`: markdown,
JSON, text, the HTML from its spilled images, the PDF saved).

Example::

    from ocrclient import aconvert
    from ocrclient.exporters.sink import OutputWriter

    with OutputWriter("out/", ["md", "json", "html", "pdf"]) as outputs:
        doc = await aconvert(pdf_bytes, backend="local", outputs=outputs)
        # out/bytes-<hash>.md, its _figures/, .json, .html, .pdf are written
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

from ..document import Document, Page
from ..errors import ConfigError, InputError, OcrError
from ..pages import PageImage, Source
from ..secrets import redact
from .pieces import PagePieces
from .spill import LEAN_FORMATS, PageSpill

__all__ = ["DocumentSink", "OutputWriter", "SinkSettings", "Written"]

log = logging.getLogger("ocrclient.exporters")

#: threads that turn finished pages into crops / page images / PDF pages (PIL and PDFium work
#: outside the GIL for the most part; the PDF itself is built under PDFIUM_LOCK)
DEFAULT_WORKERS = 2


@dataclass
class Written:
    """What :meth:`DocumentSink.finish` wrote (``paths``, in format order) and, one line each,
    why a format could not be written (``errors``; the other formats are written regardless)."""

    paths: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _failed_stub(number: int) -> Page:
    """What a page reported failed stands for until the document is done (no content)."""
    return Page(page=number, status="failed")


class SinkSettings(TypedDict, total=False):
    """:class:`DocumentSink`'s keyword arguments."""

    #: how many pages the document will have (the viewer's image size depends on it)
    pages: int
    #: runs the page work (``None``: in the calling thread)
    executor: cf.Executor | None
    #: spill each page's outputs as it finishes and drop its blocks (see OutputWriter)
    lean: bool
    #: called once, before the first of the document's files is written (see OutputWriter)
    before_write: Callable[[], None] | None
    #: every file named like a crop in the figure folder is an earlier run's (``ocr convert``,
    #: which refused a folder holding one that no run wrote): the markdown's write removes each
    #: one this run has not (a killed run's, which no markdown links), not only those linked
    own_figures: bool


class DocumentSink:
    """One document's outputs, fed page by page (see the module docstring).

    ``targets`` maps each format to its file; ``options`` each format to its writer's keyword
    arguments (``md``: ``page_markers``, ``page_separators``, ``figures``; ``pdf``:
    ``force_ocr_text``); ``pages`` and ``executor`` as :class:`SinkSettings` says.  Create it
    with :meth:`start` when the document's pages start.
    """

    def __init__(
        self,
        source: Source,
        targets: Mapping[str, Path],
        options: Mapping[str, Mapping[str, Any]] | None = None,
        **settings: Unpack[SinkSettings],
    ) -> None:
        self.source = source
        self.targets = dict(targets)
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        self.pages = settings.get("pages", 0)
        self.executor = settings.get("executor")
        self._before_write = settings.get("before_write")
        self.own_figures = settings.get("own_figures", False)
        self._before_lock = threading.Lock()
        self.pieces = PagePieces(source, self.targets, self.options, self.pages)
        #: lean mode, when every format can be written from spilled pages (:data:`LEAN_FORMATS`)
        self.spill = self._spill() if settings.get("lean", False) and set(self.targets) <= LEAN_FORMATS else None
        self.finished = False
        self._written: Written | None = None
        self._finish_lock = threading.Lock()
        self._pending: dict[int, PageImage | None] = {}
        self._seen: set[int] = set()
        #: the pages' work not yet done (each leaves as it ends: a long document keeps none)
        self._futures: set[cf.Future[None]] = set()
        self._lock = threading.Lock()

    @classmethod
    def start(
        cls,
        source: Source,
        targets: Mapping[str, Path],
        options: Mapping[str, Mapping[str, Any]] | None = None,
        **settings: Unpack[SinkSettings],
    ) -> DocumentSink:
        """A sink for a document whose pages are about to start.  For a searchable PDF it takes
        now what the PDF needs from the input beside the page images
        (:meth:`PagePieces.open_pdf`)."""
        sink = cls(source, targets, options, **settings)
        if "pdf" in sink.targets:
            sink.pieces.open_pdf()
        return sink

    def _spill(self) -> PageSpill:
        first = next(iter(self.targets.values()), None)
        folder, stem = (first.parent, first.stem) if first is not None else (Path("."), self.source.stem)
        return PageSpill(folder, stem, json="json" in self.targets, md="md" in self.targets)

    # what the pages have left so far (kept by the pieces)
    @property
    def links(self) -> dict[tuple[int, int], str]:
        return self.pieces.links

    @property
    def html_files(self) -> dict[int, Path]:
        return self.pieces.html_files

    @property
    def missing(self) -> dict[int, str]:
        return self.pieces.missing

    @property
    def notes(self) -> list[str]:
        return self.pieces.notes

    @property
    def figures(self) -> bool:
        return self.pieces.figures

    def wants_images(self) -> bool:
        """Whether any output of this document is made from page images."""
        return self.pieces.wants_images()

    def needs_image(self, page: Page | None) -> bool:
        """Whether an output of this document is made from the image of a page read as ``page``
        (its figure crops), or (``None``) of every page whatever it reads (the viewer, an
        image's PDF page): a page the cache holds is rendered for it (:mod:`ocrclient.recall`)."""
        from .figures import has_figure_boxes

        if not self.wants_images():
            return False
        return "html" in self.targets or self.source.kind == "image" or (page is not None and has_figure_boxes(page))

    # -- pages --------------------------------------------------------------------------------
    def take_image(self, image: PageImage) -> None:
        """The run rendered a page of this document (before it is sent): keep it until the page
        is done.  The scheduler holds it for as long anyway."""
        if self.wants_images() or "pdf" in self.targets or self.spill is not None:  # (else: only its number)
            with self._lock:
                self._pending[image.number] = image if self.wants_images() else None

    def expects(self, number: int) -> bool:
        """Whether page ``number`` was rendered for this sink and is not done yet."""
        with self._lock:
            return number in self._pending

    def page_done(self, number: int, page: Page | None) -> None:
        """Page ``number`` finished (``page``: the result; ``None`` when it failed): make its
        outputs' pieces (in the executor) and drop its image."""
        with self._lock:
            image = self._pending.pop(number, None)
            self._seen.add(number)
        if self.executor is None:
            self._process(number, page, image)
            return
        future = self.executor.submit(self._process, number, page, image)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)  # (outside the lock: a done future calls it here)

    def wait_for_pages(self) -> None:
        """Wait for the work of the pages finished so far (their crops, viewer images)."""
        with self._lock:
            futures = set(self._futures)
        cf.wait(futures)

    def _forget(self, future: cf.Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    def _writing(self) -> None:
        """The document's files are about to be written: its ``before_write``, once, and done
        before any thread writes one."""
        with self._before_lock:
            before, self._before_write = self._before_write, None
            if before is not None:
                before()

    def _process(self, number: int, page: Page | None, image: PageImage | None) -> None:
        from .figures import has_figure_boxes

        if page is not None and self.figures and has_figure_boxes(page):  # (its crops are written now)
            self._writing()
        made = self.pieces.make(page if page is not None else _failed_stub(number), image)
        if self.spill is None or page is None or not made:  # (a page whose pieces failed keeps its blocks)
            return
        try:
            self.spill.put(page, dict(self.links) if self.figures else {})
        except Exception as exc:  # (a full disk): the page keeps its blocks, written from them at the end
            self.pieces.note(f"{self.source.name} page {page.page}: not spilled ({type(exc).__name__}: {exc})")
            return
        page.blocks = []  # its outputs hold what they need of them: let go (the document keeps the rest)

    # -- the end ------------------------------------------------------------------------------
    def finish(self, doc: Document) -> Written:
        """The document is done: wait for its pages' work, write every format, clean up.  Called
        again (a run stopped while the first call was writing), it waits for the first call and
        returns what that wrote."""
        with self._finish_lock:
            if self._written is None:
                self._written = self._finish(doc)
            return self._written

    def _finish(self, doc: Document) -> Written:
        self._writing()
        with self._lock:
            futures, self._futures = self._futures, set()
        cf.wait(futures)
        by_number = {p.page: p for p in doc.pages}
        with self._lock:
            leftover = list(self._pending.items())
            self._pending.clear()
        for number, image in leftover:  # in flight when the run stopped: failed, but rendered
            self._process(number, by_number.get(number), image)
        reached = self._seen | {n for n, _ in leftover}
        for page in doc.pages:
            if page.page not in reached:
                self.missing.setdefault(page.page, "page image not available: the run stopped before this page was rendered")
        for note in self.notes:
            log.warning("%s", note)
        written = Written()
        lacking = self._lacking_images(doc, reached)
        if lacking:  # (an error: the manifest does not count the document done, a rerun completes it)
            written.errors.append(f"page(s) {', '.join(map(str, lacking))} written without their page image (the run "
                                  "stopped before it was drawn): their figure crops or viewer images are missing")  # fmt: skip
        from . import wrote

        try:
            for fmt, path in self.targets.items():
                try:
                    written.paths.append(wrote(fmt, path, self._write(fmt, path, doc)))
                except OcrError as exc:
                    written.errors.append(str(exc))
                except OSError as exc:  # (a full disk's error names no file: "[Errno 28] No space left")
                    reason = exc.strerror or str(exc)
                    if exc.filename and str(exc.filename) != str(path):
                        reason += f": {exc.filename}"
                    written.errors.append(f"cannot write {path}: {reason}")
                except Exception as exc:  # a writer's bug (a plugin's): that format, never the others
                    written.errors.append(f"{path}: the {fmt} writer failed: {type(exc).__name__}: {redact(str(exc))}")
        finally:
            self.close()
        return written

    def _lacking_images(self, doc: Document, reached: set[int]) -> list[int]:
        """The pages read (not failed) whose outputs needed their page image and did without:
        the viewer's page, or the markdown's figure crops."""
        from .figures import has_figure_boxes

        html = "html" in self.targets
        return [
            p.page
            for p in doc.pages
            if p.status != "failed"
            and ((html and p.page in self.missing) or (self.figures and p.page not in reached and has_figure_boxes(p)))
        ]

    def _write(self, fmt: str, path: Path, doc: Document) -> Path:
        from . import _writer, html, markdown

        opts = self.options.get(fmt, {})
        links = dict(self.links) if self.figures else None
        if fmt == "md":
            md = {k: v for k, v in opts.items() if k in ("page_markers", "page_separators", "figures")}
            spill, got = self.spill, links or {}
            bodies = None if spill is None else lambda page: spill.md_body(page, got)
            return markdown.write(doc, path, links=links, bodies=bodies, own_figures=self.own_figures, **md)
        if fmt == "json" and self.spill is not None:
            from . import jsonout

            return jsonout.write(doc, path, pieces=self.spill.json_piece)
        if fmt == "html":
            return html.write(doc, path, images=self.pieces.html_images(), missing=self.missing)
        if fmt == "pdf":
            return self.pieces.write_pdf(path, doc)
        return _writer(fmt)(doc, path, **opts)

    def close(self) -> None:
        """Free what the sink holds (the PDF, the input's handle, spilled images and pages)."""
        self.finished = True
        self.pieces.close()
        if self.spill is not None:
            self.spill.close()


class OutputWriter:
    """The outputs of a run: one :class:`DocumentSink` per document, fed by the run.

    ``out_dir`` and ``formats`` as :func:`~ocrclient.exporters.write_outputs` takes them;
    ``stems`` maps a source's :attr:`~ocrclient.pages.Source.key` to its output stem
    (``out/<stem>`` without suffix; default ``out_dir/<source stem>``).  Pass it to
    :class:`~ocrclient.api.Conversion` / ``aconvert(..., outputs=...)``; each
    :class:`~ocrclient.api.ConvertResult` then lists the files written.  Close it (or use it as
    a context manager) when the run is over.

    ``lean=True`` (``ocr convert -o`` runs with it): as each page finishes, its pieces of the
    JSON and the markdown are spilled to a hidden file beside the outputs and the page's
    ``blocks`` are emptied, so a long document's memory does not grow with its blocks (about
    1.3 MB a text-layer page).  The files written are the same bytes, but the
    :class:`~ocrclient.document.Document` the run hands back then has pages without blocks
    (their markdown, status, usage and the rest are kept; the blocks are in the JSON written).
    A document written in formats that need every page's blocks at the end (``html``, a
    plugin's) keeps them (:data:`ocrclient.exporters.spill.LEAN_FORMATS`).  Default: ``False``,
    every page keeps its blocks.

    ``on_write(source, stem)`` is called once for each document, before the first of its
    files is written (the first finished page's figure crops, or its files at its end):
    ``ocr convert`` marks the run manifest's entries for those files not done then, so a run
    killed while it replaces them is not taken for finished by the next.  ``sweep=True``: as
    each document opens, before its sink makes anything, what a killed run left beside its
    outputs is removed (:func:`~ocrclient.exporters._io.sweep_leftovers`); only for a writer
    that no other can be writing beside (``ocr convert`` holds the folder's lock).
    """

    def __init__(
        self,
        out_dir: str | Path,
        formats: Sequence[str] = ("md", "json"),
        *,
        options: Mapping[str, Mapping[str, Any]] | None = None,
        stems: Mapping[str, Path] | None = None,
        workers: int = DEFAULT_WORKERS,
        lean: bool = False,
        on_write: Callable[[Source, Path], None] | None = None,
        sweep: bool = False,
    ) -> None:
        from . import EXPORTERS

        bad = [f for f in formats if f not in EXPORTERS]
        if bad:
            raise ConfigError(f"unknown output format {', '.join(bad)}; known: {', '.join(EXPORTERS)}")
        self.out_dir = Path(out_dir)
        self.formats = list(dict.fromkeys(formats))
        self.options = options or {}
        self.stems = dict(stems or {})
        self.lean = lean
        self.on_write = on_write
        self.sweep = sweep
        self._executor = cf.ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ocrclient-outputs")
        self._sinks: list[DocumentSink] = []
        #: the documents whose files this writer has begun to write, by their source (held
        #: weakly, forgotten with it), with what was written once it is (see finish, began)
        self._done: dict[int, tuple[weakref.ref[Source], Written | None]] = {}
        self._lock = threading.Lock()

    def lay_out(self, sources: Sequence[Source], beside: Sequence[Source] = ()) -> None:
        """Give each of a run's ``sources`` that has no stem yet its own, as ``ocr convert``
        does (:func:`~ocrclient.outputs.output_stems`: mirrored under the folder from their
        common root, with ``beside``, the inputs the page range left out): two inputs named
        alike (``a/x.pdf``, ``b/x.pdf``) were both written as ``x.*``, the second over the
        first.  Raises :class:`InputError` for names that would still collide."""
        from ..outputs import output_stems
        from . import EXPORTERS

        todo = [src for src in sources if src.key not in self.stems]
        if todo:
            stems = output_stems(todo, self.out_dir, [EXPORTERS[f][1] for f in self.formats], beside=beside)
            # ... nor with a name this writer gave an input of an earlier call (one writer kept
            # across calls wrote b/x.pdf's outputs over a/x.pdf's, without a word)
            given = {str(stem).lower(): key for key, stem in self.stems.items()}
            for src, stem in zip(todo, stems, strict=True):
                other = given.get(str(stem).lower())
                if other is not None and other != src.key:
                    raise InputError(f"{src.name} would be written as {stem}.*, where this OutputWriter already wrote "
                                     f"the outputs of {other}; use another OutputWriter (or out_dir) for it")  # fmt: skip
            self.stems.update({src.key: stem for src, stem in zip(todo, stems, strict=True)})

    def targets(self, source: Source) -> dict[str, Path]:
        from . import EXPORTERS

        stem = self.stems.get(source.key, self.out_dir / source.stem)
        return {fmt: stem.with_name(stem.name + EXPORTERS[fmt][1]) for fmt in self.formats}

    def open(self, source: Source, pages: Sequence[int] = ()) -> DocumentSink:
        """The sink of a document whose pages are about to start (``pages``: their numbers)."""
        stem = self.stems.get(source.key, self.out_dir / source.stem)
        if self.sweep:
            from ._io import sweep_leftovers

            sweep_leftovers(stem)
        sink = DocumentSink.start(source, self.targets(source), self.options, pages=len(pages), executor=self._executor,
                                  lean=self.lean, before_write=self._before_write(source, stem), own_figures=self.sweep)  # fmt: skip
        with self._lock:
            self._sinks.append(sink)
            self._done.pop(id(source), None)  # a new run of it: written anew
        return sink

    def _before_write(self, source: Source, stem: Path | None = None) -> Callable[[], None] | None:
        """``on_write`` for ``source``'s sink (``None`` without one)."""
        on_write, where = self.on_write, stem or self.stems.get(source.key, self.out_dir / source.stem)
        return None if on_write is None else lambda: on_write(source, where)

    def on_event(self, event: object) -> None:
        """Route the scheduler's ``PageDone`` / ``PageFailed`` to the document's sink."""
        from ..scheduler import PageDone, PageFailed

        if not isinstance(event, PageDone | PageFailed):
            return
        with self._lock:
            sink = next((s for s in self._sinks if s.source.name == event.source and s.expects(event.page)), None)
        if sink is not None:
            sink.page_done(event.page, event.result if isinstance(event, PageDone) else None)

    def finish(self, source: Source, doc: Document) -> Written:
        """Write ``doc``'s outputs (its sink's, or, for a document whose pages never started, a
        sink without page images).  A document finished already (a run stopped after writing
        it, before handing it over, keeps it in :attr:`~ocrclient.api.Conversion.partial`) is
        not written again: this returns what was written, which a write without its page
        images would have replaced.  Opening the document again (:meth:`open`) forgets that."""
        key = id(source)
        with self._lock:
            ref, written = self._done.get(key, (None, None))
            if ref is None or ref() is not source:
                ref, written = weakref.ref(source, lambda _: self._done.pop(key, None)), None
                self._done[key] = (ref, None)
            sink = next((s for s in self._sinks if s.source is source), None)
            if sink is None:
                if written is not None:
                    return written
                sink = DocumentSink(source, self.targets(source), self.options, pages=len(doc.pages),
                                    before_write=self._before_write(source), own_figures=self.sweep)  # fmt: skip
                self._sinks.append(sink)
        written = sink.finish(doc)
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)
                self._done[key] = (ref, written)
        return written

    def drop(self, source: Source) -> None:
        """Let go of ``source``'s open sink (its page images, its input's handle): a stopped run
        writes nothing of a document none of whose pages finished.  A writer kept for many runs
        (a service's) held every one of them until it was closed."""
        with self._lock:
            sinks = [s for s in self._sinks if s.source is source]
            self._sinks = [s for s in self._sinks if s.source is not source]
        for sink in sinks:
            sink.wait_for_pages()
            sink.close()

    def began(self, source: Source) -> bool:
        """Whether this writer has begun to write ``source``'s files (:meth:`finish`), since it
        was last opened: a run stopped meanwhile has them written, or being written."""
        with self._lock:
            ref, _ = self._done.get(id(source), (None, None))
            return ref is not None and ref() is source

    def wrote_figures(self, source: Source) -> bool:
        """Whether figure crops of ``source``'s pages were written as its pages finished (they
        go straight into its figure folder), once the work of its finished pages is done."""
        with self._lock:
            sinks = [s for s in self._sinks if s.source is source]
        for sink in sinks:
            sink.wait_for_pages()
        return any(s.links for s in sinks)

    def close(self) -> None:
        """Stop the workers and free what unfinished documents hold."""
        self._executor.shutdown(wait=True)
        with self._lock:
            sinks, self._sinks = self._sinks, []
        for sink in sinks:
            sink.close()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
