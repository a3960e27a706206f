"""``ocr convert``: inputs -> one run through a backend -> outputs written as pages finish.

The command plans the run up front (inputs opened and validated, output names laid out over
every input before sharding, the manifest's finished inputs skipped), then runs one
:class:`~ocrclient.api.Conversion` whose :class:`~ocrclient.exporters.sink.OutputWriter`
writes each document's files from the run's own page images as its pages finish
(:class:`_Emitter` records each finished document in the manifest).  Without ``-o`` the
markdown goes to stdout.
"""

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..console import start_collecting
from ..errors import ConfigError, EndpointDownError, InputError, OcrError, redact
from .common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_PAGES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    Termination,
    app,
    backend_overrides,
    check_flags_read,
    fail,
    one_line_warnings,
    print_traceback,
    stderr,
)
from .lock import hold, let_go, output_folder
from .plan import Plan, plan_inputs, whole_pdfs
from .progress import Progress, Unconverted, print_failed_pages, summary

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from ..cache import PageCache
    from ..config import BackendConfig
    from ..dialects.base import Dialect
    from ..manifest import Manifest
    from ..pages import RenderPool, Source
    from ..registry import Backend
    from ..run import Conversion, ConvertResult

#: what ``ocr convert -o DIR`` writes unless ``--format`` says otherwise
DEFAULT_FORMATS = "md,json"
#: pages rendered while the command imports and builds its transport (:func:`_head_start`). Three:
#: the first window's start stagger fell from ~0.27 to ~0.19 s and ``runpod-chandra``'s efficiency
#: from 0.967 to 0.973 (medians of 9 interleaved runs, 8 slots x 1.5 s), eight no better than
#: three.  On two CPUs they render one after another (:meth:`RenderPool.prime`): three at once sent
#: ``runpod-chandra``'s first request 60-80 ms later than one lane (benchmarks/README.md, session 38)
HEAD_START_PAGES = 3


def _check_outputs(out: Path | None, formats: str, fmts: list[str], as_json: bool, unused_cache: Path | None = None) -> None:
    """Refuse outputs that cannot be had as asked: no format at all, formats that are files
    without ``-o`` (the markdown goes to stdout: they were dropped without a word), ``--json``
    without ``-o`` (its summary goes to stdout too: the two mixed were neither), a cache folder
    with ``--no-cache`` (``unused_cache``: it was ignored without a word)."""
    if unused_cache is not None:
        raise ConfigError(f"--cache-dir {unused_cache} and --no-cache contradict each other: give one")
    if not fmts:
        raise ConfigError(f"--format {formats!r} names no format (e.g. md,json)")
    if out is None and formats != DEFAULT_FORMATS and set(fmts) - {"md"}:
        raise ConfigError(f"--format {formats}: files need -o DIR (without -o the markdown goes to stdout)")
    if out is None and as_json:
        raise ConfigError("--json prints the run's summary on stdout, where the markdown goes without -o: give -o DIR")


def _not_done(plan: "Plan", manifest: "Manifest", cfg: "BackendConfig", pages: str | None, stem_of: dict[str, Path], console: "Console | None") -> "Plan":
    """``plan`` without the inputs the manifest says are done with these settings."""
    todo = [
        (src, idx)
        for src, idx in plan
        if not manifest.done(src, backend=cfg.name, model=cfg.model, pages=pages, stem=stem_of[src.key])
    ]
    if len(todo) != len(plan) and console is not None:
        from rich.markup import escape

        console.print(escape(f"skipping {len(plan) - len(todo)} input(s) already done (see {manifest.path}; --redo to force)"), soft_wrap=True)
    return todo


def _each(*handlers: "Callable[[object], None]") -> "Callable[[object], None]":
    """One event handler calling ``handlers`` in turn."""

    def each(event: object) -> None:
        for handler in handlers:
            handler(event)

    return each


class _Emitter:
    """Takes each finished document: its files are written by the run's outputs (or its
    markdown goes to stdout); errors of single formats are reported, the manifest records it."""

    def __init__(self, out: Path | None, fmts: list[str], options: dict[str, dict[str, Any]], stem_of: dict[str, Path],
                 manifest: "Manifest | None", pages: str | None, console: "Console", several: bool = False,
                 as_json: bool = False, t0: float | None = None, gone: Unconverted | None = None) -> None:  # fmt: skip
        from ..exporters.sink import OutputWriter

        #: the inputs not converted and those planned, for the ``--json`` summary
        self.gone = gone or Unconverted()
        self.console = console
        self.as_json = as_json
        #: when the command started (the summary's wall time)
        self.t0 = time.monotonic() if t0 is None else t0
        self.pages = pages
        self.page_markers = bool(options["md"].get("page_markers"))
        #: several documents go to stdout: each is named as it starts
        self.several = several
        self.results: list[ConvertResult] = []
        # (lean: each page's outputs spilled as it finishes and its blocks let go, the files the same)
        self.manifest = manifest
        self.writer = OutputWriter(out, fmts, options=options, stems=stem_of, lean=True, on_write=self._writing,
                                   sweep=True) if out is not None else None  # fmt: skip

    def events(self, reporter: "Callable[[object], None]") -> "Callable[[object], None]":
        """The run's event handler: ``reporter``'s, and to stdout :meth:`on_event`'s first."""
        return reporter if self.writer is not None else _each(self.on_event, reporter)

    def on_event(self, event: object) -> None:
        """Markdown to stdout needs a page's text, not its blocks (no crop is linked there): each
        finished page lets go of them, as ``-o`` does, so a long document's memory does not grow
        with its words' boxes (the cache has stored the page by then)."""
        from ..scheduler import PageDone

        if self.writer is None and isinstance(event, PageDone) and event.result is not None:
            event.result.blocks = []

    def _writing(self, source: "Source", stem: Path) -> None:
        """A document's files start to be written: the manifest names them, not done, from now
        on (:meth:`~ocrclient.manifest.Manifest.reopen`)."""
        if self.manifest is not None and self.writer is not None:
            with contextlib.suppress(OSError):  # (recording it at its end fails too, and says so)
                self.manifest.reopen(source, stem, self.writer.targets(source).values())

    def __call__(self, result: "ConvertResult") -> None:
        self._take(result)
        # (kept for the summary: its counts and failed pages, not its text and boxes)
        self.results[-1] = _for_summary(self.results[-1])

    def _take(self, result: "ConvertResult") -> None:
        self.results.append(result)
        if self.writer is None:
            from ..exporters.markdown import comment_text, render

            # documents apart: a blank line (one newline ran the last paragraph of one into the
            # first of the next) and, when there are several, a comment naming each
            head = "\n\n" if len(self.results) > 1 else ""
            if self.several:
                head += f"<!-- document: {comment_text(result.source.name)} -->\n\n"  # ("a-->b.png" ended it)
            sys.stdout.write(head + render(result.document, page_markers=self.page_markers))
            sys.stdout.flush()
            return
        if self.manifest is not None:
            try:
                self.manifest.record(result.source, result.document, result.outputs, pages=self.pages,
                                     output_errors=len(result.output_errors))  # fmt: skip
            except OSError as exc:  # (a full disk, a read-only folder): a file not written, as the others
                result = replace(result, output_errors=[*result.output_errors, self._manifest_error(exc)])
                self.results[-1] = result
        for error in result.output_errors:  # one format failing loses neither the others nor the run
            self._error(result.source.name, error)

    def _manifest_error(self, exc: OSError) -> str:
        assert self.manifest is not None
        return f"{self.manifest.path.name}: cannot record it ({exc.strerror or exc}); a rerun converts it again"

    def _error(self, name: str, error: str) -> None:
        from rich.markup import escape

        self.console.print(f"[red]error:[/] {escape(redact(f'{name}: {error}'))}", soft_wrap=True)

    def partial(self, conv: "Conversion", why: str) -> None:
        """The run stopped (``why``: "interrupted", "terminated", ...): write what finished of
        the documents not yet written, but for a document whose outputs from an earlier run hold
        more finished pages (a rerun stopped by Ctrl-C or a refused key): those are kept, not
        replaced by this run's few or none; and for one no page of which finished (and whose
        files this run had not begun): nothing to write, a rerun converts it (3000 inputs
        stopped early had an empty md and an all-"cancelled" json each).  Then say so."""
        from ..run import worth_writing

        kept = idle = 0
        for result in conv.partial:
            if self._earlier_is_better(result):
                kept += 1
                if self.writer is not None and self.manifest is not None and self.writer.wrote_figures(result.source):
                    try:
                        self.manifest.unfinish(result.source, "figure crops replaced by a stopped run")
                    except OSError as exc:
                        self._error(result.source.name, self._manifest_error(exc))
                continue
            if not worth_writing(result, self.writer):
                idle += 1
                continue
            if self.writer is not None:
                written = self.writer.finish(result.source, result.document)
                result = replace(result, outputs=written.paths, output_errors=written.errors)
            self(result)
        if kept:
            self.console.print(f"kept the earlier outputs of {kept} document(s) that this run stopped before finishing")
        if why != "stopped":  # (a stop by an error says so in its one line)
            self.console.print(f"{why}: wrote {len(self.results)} document(s) with what had finished"
                               + (f"; {idle} had no page finished (a rerun converts them)" if idle else ""), soft_wrap=True)  # fmt: skip

    def stopped(self, code: int, why: str) -> None:
        """The ``--json`` summary of a stopped run (its files are written by then)."""
        if self.as_json:
            typer.echo(self.gone.summary(self.results, time.monotonic() - self.t0, code, error=why))

    def _earlier_is_better(self, result: "ConvertResult") -> bool:
        """Whether the manifest's entry for ``result``'s input has its files where this run
        writes them, all there, with more pages ok or degraded than ``result`` has."""
        if self.manifest is None or self.writer is None or self.writer.began(result.source):
            return False  # (a document this run began to write is this run's: its write stands)
        return self.manifest.holds_more(result.source, self.writer.targets(result.source).values(), result.document.stats)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _for_summary(result: "ConvertResult") -> "ConvertResult":
    """A written document as the summary needs it: its counts and each page's fate and error,
    without its pages' text and blocks.  A run over many documents held every one whole to its
    end (30 documents of 10 text-layer pages: 528 MB at the end against 270 MB for 10)."""
    doc = result.document
    pages = [p.model_copy(update={"markdown": "", "blocks": []}) for p in doc.pages]
    return replace(result, document=doc.model_copy(update={"pages": pages}))


def _run(conv: "Conversion", be: "Backend", reporter: "Progress", emit: "_Emitter", debug: bool) -> None:
    """Run the conversion; on Ctrl-C or a stopped run, write what finished and exit."""

    async def run() -> None:
        term.task = asyncio.current_task()
        try:
            async for result in conv:
                emit(result)
        finally:
            await be.aclose()

    start_collecting()  # off while the `ocr` script started (ocrclient.console): the run makes garbage
    term = Termination()
    with term:  # (held while what finished is written: a second Ctrl-C or SIGTERM lost it)
        try:
            with reporter:
                asyncio.run(run())
        except (KeyboardInterrupt, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not term.stopping:
                raise
            term.stopping = True  # (what finished is written: another signal is ignored)
            why = "terminated" if term.signalled else "interrupted"
            emit.partial(conv, why)
            code = EXIT_TERMINATED if term.signalled else EXIT_INTERRUPTED
            emit.stopped(code, why)
            raise typer.Exit(code) from None
        except OcrError as exc:
            from ..scheduler import RunAborted

            # (a run stopped by an endpoint gone too long failed pages a rerun may pass: 1, not 2)
            stopped = isinstance(exc, ConfigError | InputError | RunAborted) and not isinstance(exc, EndpointDownError)
            code = EXIT_BAD_INPUT if stopped else EXIT_FAILED_PAGES
            if isinstance(exc, RunAborted):
                term.stopping = True
                emit.partial(conv, "stopped")
            emit.stopped(code, str(exc))
            if debug:  # the traceback too, but the exit code stays the one without --debug
                print_traceback()
            raise fail(str(exc), code) from None


def _refused(exc: OcrError, as_json: bool, started: float, debug: bool, gone: Unconverted) -> typer.Exit:
    """A run refused before it started: its one line (and ``--json``'s summary either way, with
    the inputs refused or left out: a script reading stdout gets one); the exit to raise."""
    if as_json:
        typer.echo(gone.summary([], time.monotonic() - started, EXIT_BAD_INPUT, error=str(exc)))
    if debug:  # the traceback too, but the exit code stays the one without --debug
        print_traceback()
    return fail(str(exc))


def _report(results: "list[ConvertResult]", wall: float, as_json: bool, quiet: bool, console: "Console",
            gone: Unconverted) -> int:  # fmt: skip
    """The summary (``--json``: as JSON on stdout; the table on stderr unless ``--quiet``) and
    the exit code: 1 for a failed page, an output not written or an input refused."""
    failed = gone.refused or any(r.document.stats.failed or r.output_errors for r in results)
    code = EXIT_FAILED_PAGES if failed else EXIT_OK
    if as_json:
        typer.echo(gone.summary(results, wall, code))
    if not quiet:
        summary(results, wall, console)
    print_failed_pages(results, console)  # (errors: said under --quiet too, which keeps only them)
    return code


def _messages(quiet: bool, verbose: bool) -> None:
    """``--quiet``: no warnings on stderr; ``--verbose``: the run's log there (redacted); both
    are refused (``--quiet`` won without a word)."""
    if quiet and verbose:
        raise ConfigError("--quiet and --verbose contradict each other: give one")
    if quiet:
        one_line_warnings(quiet=True)
    if verbose:
        from ..errors import install_log_redaction

        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        install_log_redaction()


def _wanted(options: dict[str, dict[str, Any]], fmts: list[str]) -> dict[str, dict[str, Any]]:
    """The options of the formats written; one set for a format not written is refused
    (``--force-ocr-text`` without pdf, ``--page-markers`` without md did nothing, without a word)."""
    for fmt, opts in options.items():
        if fmt not in fmts and (given := ["--" + name.replace("_", "-") for name, value in opts.items() if value]):
            raise ConfigError(f"{given[0]} changes the {fmt} output, which --format {','.join(fmts)} does not write: add {fmt} or leave it out")
    return {f: options.get(f, {}) for f in fmts}


def _layer_options(text_layer: str | None, keep_furniture: bool) -> dict[str, Any] | None:
    """The dialect options ``--text-layer`` and ``--keep-furniture`` set (``None``: neither)."""
    opts: dict[str, Any] = {}
    if text_layer is not None:
        if text_layer not in ("auto", "always", "never"):
            raise ConfigError(f"--text-layer must be auto, always or never (got {text_layer!r})")
        opts["text_layer"] = text_layer
    if keep_furniture:
        opts["include_headers_footers"] = True
    return opts or None


def _profile(backend: str | None, over: dict[str, Any], transport: str | None) -> "tuple[BackendConfig, Dialect]":
    """The run's settings and its dialect, which knows the render spec (imports no transport)."""
    from ..config import resolve_config
    from ..registry import load_dialect

    cfg = resolve_config(backend, **over, transport=transport)
    return cfg, load_dialect(cfg)


def _digest(cfg: "BackendConfig", document_mode: bool) -> str:
    """The manifest's settings digest: the page cache's (:func:`~ocrclient.cache.settings_digest`)
    and whether the run sends whole documents (another worker contract, another result)."""
    from .. import docmode
    from ..cache import settings_digest

    return settings_digest(cfg) + ("+document" if docmode.requested(cfg, document_mode) else "")


def _no_foreign_outputs(plan: "Plan", manifest: "Manifest", stem_of: dict[str, Path], formats: dict[str, Any]) -> None:
    """Refuse (before anything is sent) to write any output over a file in OUT that no earlier
    run here wrote: a document of the user's (``scans/invoice.pdf`` beside the
    ``scans/invoice.png`` converted with ``-o scans -f pdf``), or their own notes
    (``report.md`` beside ``report.pdf`` converted with ``-o`` its folder), was replaced without
    a word.  Every format's file, built-in or a plugin's."""
    from ..exporters import EXPORTERS
    from ..exporters.jsonout import written_for
    from ..pages.inputs import CROP_NAME, figure_dir

    for src, _ in plan:
        stem = stem_of[src.key]
        doc_json = stem.with_name(stem.name + ".json")
        if not manifest.wrote(doc_json) and written_for(doc_json, src.name):
            continue  # a run's, that its manifest could not record (a full disk): its files were written together
        for fmt in formats:
            target = stem.with_name(stem.name + EXPORTERS[fmt][1])
            if target.is_file() and not manifest.wrote(target):
                kind = "PDF" if fmt == "pdf" else "file"
                raise InputError(
                    f"writing {target} for {src.name} would replace a {kind} that no earlier run wrote "
                    f"(it is not in {manifest.path.name}); choose another -o or move that file"
                )
        # the markdown's figure crops: written into <stem>_figures/, and the crops of an earlier
        # run there that this one has not are removed; they are a run's when its <stem>.md is
        md = stem.with_name(stem.name + ".md")
        if "md" in formats and (crops := figure_dir(md)).is_dir() and not manifest.wrote(md):
            theirs = sorted(p.name for p in crops.iterdir() if CROP_NAME.match(p.name))
            if theirs:
                raise InputError(
                    f"writing the figure crops of {src.name} into {crops} would replace or remove {len(theirs)} file(s) "
                    f"named as crops that no earlier run wrote ({theirs[0]}{', ...' if len(theirs) > 1 else ''}); choose another -o or move them"
                )


def _resumed(
    plan: "Plan", out: Path | None, cfg: "BackendConfig", redo: bool, pages: str | None, stem_of: dict[str, Path],
    formats: dict[str, dict[str, Any]], console: "Console | None", document_mode: bool = False, retry_degraded: bool = False,
) -> "tuple[Plan, Manifest | None, list[str]]":  # fmt: skip
    """The run manifest of ``out`` (``None`` without one), ``plan`` without the inputs it
    says are done (with ``formats``, the formats written and their options), and those inputs'
    names (``--json`` lists them as ``skipped``).  Its settings
    digest names the transport's options, so computing it imports the transport: it is
    computed here only when there are entries to compare it with (a rerun), else by
    :func:`_backend`, after the head start."""
    from ..manifest import Manifest

    if out is None:
        return plan, None, []
    manifest = Manifest(out)
    manifest.formats, manifest.retry_degraded = formats, retry_degraded
    _no_foreign_outputs(plan, manifest, stem_of, formats)
    for src, _ in plan:
        owner = manifest.other_owner(src, stem_of[src.key])
        if owner is not None and console is not None:  # (inputs of one name in one run are refused before this)
            from rich.markup import escape

            console.print(f"warning: {escape(f'{src.name} replaces the outputs of {owner} at {stem_of[src.key]}.*')}", soft_wrap=True)
    todo = plan
    if not redo and manifest.entries():
        manifest.settings = _digest(cfg, document_mode)
        todo = _not_done(plan, manifest, cfg, pages, stem_of, console)
    left = {src.key for src, _ in todo}
    return todo, manifest, [src.name for src, _ in plan if src.key not in left]


def _head_start(plan: "Plan", cfg: "BackendConfig", dia: "Dialect", document_mode: bool, isolate_render: bool) -> "RenderPool | None":
    """The run's render pool, its first :data:`HEAD_START_PAGES` pages already rendering
    (:meth:`~ocrclient.pages.RenderPool.prime`) while this thread goes on to import and build
    the transport; ``None`` in document mode (no page is rendered to be sent: the run makes
    what it needs itself), once the backend is found to take whole documents (a refusal then
    comes before the output folder is made)."""
    from .. import docmode
    from ..pages.pool import pool_for

    if docmode.requested(cfg, document_mode):
        docmode.check(cfg)
        return None
    pool = pool_for(plan, isolated=isolate_render)
    pool.start_soon()
    pool.prime(plan, dia.render, HEAD_START_PAGES)
    return pool


def _backend(
    cfg: "BackendConfig", dia: "Dialect", no_cache: bool, cache_dir: Path | None, manifest: "Manifest | None",
    document_mode: bool = False, retry_degraded: bool = False, over: dict[str, Any] | None = None,
) -> "tuple[Backend, PageCache | None]":
    """The backend (its transport imported, built and preloaded here, while the first page
    renders; a flag ``over`` gave that it would not read refused first) and the run's page
    cache; the manifest gets its settings digest."""
    from ..registry import Backend, load_transport

    check_flags_read(over or {}, cfg, dialect=dia)
    be = Backend(cfg, dia, load_transport(cfg))
    be.preload()
    if manifest is not None and manifest.settings is None:  # (_resumed set it on a rerun)
        manifest.settings = _digest(cfg, document_mode)
    from ..run import open_cache

    cache = open_cache(None if no_cache else cache_dir or True)  # (its cap is read here: a bad one is one line)
    if cache is not None:
        cache.retry_degraded = retry_degraded
    return be, cache


@app.command()
def convert(
    inputs: Annotated[list[str], typer.Argument(help="PDF/image files, directories or glob patterns.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output directory (default: markdown to stdout).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", "-b", help="Backend name or TOML profile path.")] = None,
    pages: Annotated[str | None, typer.Option("--pages", "-p", help="Page range, e.g. 1-3,7,10-")] = None,
    formats: Annotated[str, typer.Option("--format", "-f", help="Comma-separated: md,json,txt,html,pdf")] = DEFAULT_FORMATS,
    force_ocr_text: Annotated[bool, typer.Option("--force-ocr-text", help="pdf: add the OCR text also on pages that carry their own text.")] = False,
    text_layer: Annotated[str | None, typer.Option("--text-layer", help="local backend: read PDF pages from their own text layer: auto (when it can be trusted), always, never (OCR).")] = None,
    keep_furniture: Annotated[bool, typer.Option("--keep-furniture", help="Keep running headers, footers and page numbers in the markdown (local, chandra, dots).")] = False,
    password: Annotated[str | None, typer.Option("--password", help="Password for encrypted PDFs.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1, help="Pages in flight (ceiling).")] = None,
    endpoint_id: Annotated[str | None, typer.Option("--endpoint-id", help="RunPod endpoint id.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="Override the backend's base URL.")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env", help="Env var holding the API key.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Override the model name.")] = None,
    dialect: Annotated[str | None, typer.Option("--dialect", help="Override the model dialect (generic backends).")] = None,
    transport: Annotated[str | None, typer.Option("--transport", help="Override the transport: runpod, openai, ocular.")] = None,
    dpi: Annotated[float | None, typer.Option("--dpi", help="Render resolution (the profile's longest_side still caps the image: see ocr config).")] = None,
    image_format: Annotated[str | None, typer.Option("--image-format", help="png, jpeg or webp.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="RunPod: run, runsync or local.")] = None,
    document_mode: Annotated[bool, typer.Option("--document-mode", help="Send whole PDFs (DeepSeek seed contract).")] = False,
    isolate_render: Annotated[bool, typer.Option("--isolate-render", help="Render in worker processes: a PDFium crash on a hostile PDF stops the run with an error instead of killing it.")] = False,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Resume cache directory.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the resume cache.")] = False,
    shard: Annotated[str | None, typer.Option("--shard", help="i/n: process only this machine's share of the inputs (i from 0 to n-1: 0/3, 1/3, 2/3).")] = None,
    redo: Annotated[bool, typer.Option("--redo", help="Convert inputs the manifest says are done again.")] = False,
    retry_degraded: Annotated[bool, typer.Option("--retry-degraded", help="Send again the pages kept degraded (a garbled or cut reply, a blank page): not from the cache; their documents are not done; a page whose retry fails keeps its earlier reading.")] = False,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: on a TTY).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log retries and failures.")] = False,
    page_markers: Annotated[
        bool, typer.Option("--page-markers", help="Start each page's markdown with <!-- page N \\[status] -->.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Convert documents to markdown + JSON.  Outputs mirror the inputs under OUT from their
    common root (OUT/<stem>.md, OUT/<stem>.json for one file)."""
    # the first pages render once the inputs and the render spec are known, while the transport is imported (_head_start)
    started = time.monotonic()
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    console = stderr()
    pool: RenderPool | None = None
    held: Any = None  # (the output folder's lock, this run's)
    gone = Unconverted()  # (inputs not converted, each listed by --json: refused ones are said, exit 1)
    try:
        try:
            _messages(quiet, verbose)
            _check_outputs(out, formats, fmts, as_json, cache_dir if no_cache else None)
            options = {"md": {"page_markers": page_markers}, "pdf": {"force_ocr_text": force_ocr_text}}
            wanted = _wanted(options, fmts)  # (refused before any input is opened, as the outputs are)
            plan, stem_of = plan_inputs(inputs, pages, password, shard, fmts, out, gone.refused, gone.left_out)
            over = backend_overrides(endpoint_id, base_url, api_key_env, model, dpi, dialect, image_format, mode)
            over["dialect_options"] = _layer_options(text_layer, keep_furniture)
            cfg, dia = _profile(backend, over, transport)
            plan = whole_pdfs(plan, cfg, document_mode, gone.refused, shard)
            held = hold(out, shard) if out is not None and out.is_dir() else None  # (before its manifest is read)
            plan, manifest, gone.skipped = _resumed(plan, out, cfg, redo, pages, stem_of, wanted, None if quiet else console, document_mode, retry_degraded)
            pool = _head_start(plan, cfg, dia, document_mode, isolate_render)
            be, cache = _backend(cfg, dia, no_cache, cache_dir, manifest, document_mode, retry_degraded, over)
            held = held or output_folder(out, shard)
        except OcrError as exc:
            raise _refused(exc, as_json, started, debug, gone) from None
        from ..run import Conversion

        show = progress if progress is not None else (not quiet and console.is_terminal)
        reporter = Progress(sum(len(idx) for _, idx in plan), bool(show), verbose and not quiet)
        emit = _Emitter(out, fmts, options, stem_of, manifest, pages, console, several=len(plan) > 1, as_json=as_json,
                     t0=started, gone=replace(gone, planned=[src for src, _ in plan]))  # fmt: skip
        try:
            conv = Conversion(backend=be, cache=cache, concurrency=concurrency, on_event=emit.events(reporter), prepared=plan, outputs=emit.writer,
                              document_mode=document_mode, isolate_render=isolate_render, render_pool=pool)  # fmt: skip
            _run(conv, be, reporter, emit, debug)
        finally:
            emit.close()
    finally:
        if pool is not None:
            pool.close()  # the run closed it, unless it never started
        let_go(held)
    raise typer.Exit(_report(emit.results, time.monotonic() - emit.t0, as_json, quiet, console, emit.gone))
