"""The ``ocr`` command.

Exit codes: 0 every page ok (or degraded), 1 some pages failed, 2 unusable input or
configuration (nothing was sent), 130 interrupted (what finished is written).  Errors are one
line on stderr; tracebacks only with ``--debug``, which never changes the exit code.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .. import __version__
from ..errors import ConfigError, InputError, OcrError, redact, redact_data

app = typer.Typer(
    name="ocr",
    help="PDFs and images -> markdown + layout blocks, on remote GPUs or the embedded CPU engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show or initialise settings.", invoke_without_command=True)
app.add_typer(config_app, name="config")
cache_app = typer.Typer(help="Inspect or empty the page cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

EXIT_OK, EXIT_FAILED_PAGES, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _stderr() -> Console:
    return Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")), highlight=False)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    from rich.markup import escape

    # escaped: a message may hold brackets ("pip install 'ocrclient[local]'") that are not markup
    _stderr().print(f"[bold red]error:[/] {escape(redact(message))}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def _print_traceback() -> None:
    """The exception being handled, as a (redacted) traceback on stderr (``--debug``)."""
    import traceback

    sys.stderr.write(redact(traceback.format_exc()))


def _failed_page(source: str, page: int, message: str) -> str:
    """``doc.pdf page 3: cannot render (...)`` (rich markup escaped): the page is named once,
    also when the message (a render error, say) starts with ``page 3`` or ``page 3 of doc.pdf``."""
    from rich.markup import escape

    said = re.match(rf"page {page}(?: of {re.escape(source)})?(?=[\s:]|$)", message)
    line = f"{source} page {page}{message[said.end():]}" if said else f"{source} page {page}: {message}"
    return escape(line)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ocrclient {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """ocrclient command line."""


# ---------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------


def _parse_shard(shard: str | None) -> tuple[int, int] | None:
    if not shard:
        return None
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise InputError(f"--shard takes i/n (e.g. 0/4), got {shard!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {shard}: need 0 <= i < n")
    return i, n


def _in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    if shard is None:
        return True
    digest = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
    return digest % shard[1] == shard[0]


def _overrides(
    endpoint_id: str | None,
    base_url: str | None,
    api_key_env: str | None,
    model: str | None,
    dpi: float | None,
    dialect: str | None,
    image_format: str | None,
    mode: str | None,
    document_mode: bool,
) -> dict[str, Any]:
    over: dict[str, Any] = {
        "endpoint_id": endpoint_id,
        "base_url": base_url,
        "api_key_env": api_key_env,
        "model": model,
        "dialect": dialect,
    }
    render = {k: v for k, v in {"dpi": dpi, "format": image_format}.items() if v is not None}
    if render:
        over["render"] = render
    topts: dict[str, Any] = {}
    if mode:
        topts["mode"] = mode
    if topts:
        over["transport_options"] = topts
    if document_mode:
        over["dialect_options"] = {"document_mode": True}
    return over


class _Progress:
    """Rich progress bar on stderr fed by scheduler events."""

    def __init__(self, total: int, enabled: bool, verbose: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.enabled = enabled
        self.verbose = verbose
        self.console = _stderr()
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.retries: Counter[str] = Counter()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]} p/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task("pages", total=total, failed=0, rate="0.00")

    def __enter__(self) -> _Progress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, event: object) -> None:
        from ..scheduler import PageDone, PageFailed, PageRetried

        if isinstance(event, PageDone | PageFailed):
            self.done += 1
            if isinstance(event, PageFailed):
                self.failed += 1
                if self.verbose:
                    line = _failed_page(event.source, event.page, event.error.message)
                    self.console.print(f"failed {line}", soft_wrap=True)
            rate = self.done / max(time.monotonic() - self.started, 1e-6)
            self.progress.update(self.task, advance=1, failed=self.failed, rate=f"{rate:.2f}")
        elif isinstance(event, PageRetried):
            self.retries[event.cause] += 1
            if self.verbose:
                self.console.print(
                    f"retry page {event.page} of {event.source} (attempt {event.attempt}, {event.cause}): "
                    f"{event.message}; next in {event.delay_s:.1f}s"
                )


def _summary(results: list[Any], wall: float, console: Console) -> None:
    table = Table(title="ocr convert", show_lines=False)
    for col in ("file", "pages", "ok", "degraded", "failed", "cached", "retries", "pages/s"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for r in results:
        s = r.document.stats
        table.add_row(
            r.source.name,
            str(s.pages),
            str(s.ok),
            str(s.degraded),
            f"[red]{s.failed}[/]" if s.failed else "0",
            str(s.cached),
            str(sum(s.retries_by_cause.values())),
            f"{s.pages_per_s:.2f}",
        )
    console.print(table)
    pages = sum(r.document.stats.pages for r in results)
    console.print(f"{pages} pages in {wall:.1f}s")


@app.command()
def convert(
    inputs: Annotated[list[str], typer.Argument(help="PDF/image files, directories or glob patterns.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output directory (default: markdown to stdout).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", "-b", help="Backend name or TOML profile path.")] = None,
    pages: Annotated[str | None, typer.Option("--pages", "-p", help="Page range, e.g. 1-3,7,10-")] = None,
    formats: Annotated[str, typer.Option("--format", "-f", help="Comma-separated: md,json,txt,html,pdf")] = "md,json",
    force_ocr_text: Annotated[bool, typer.Option("--force-ocr-text", help="pdf: add the OCR text also on pages that carry their own text.")] = False,
    password: Annotated[str | None, typer.Option("--password", help="Password for encrypted PDFs.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1, help="Pages in flight (ceiling).")] = None,
    endpoint_id: Annotated[str | None, typer.Option("--endpoint-id", help="RunPod endpoint id.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="Override the backend's base URL.")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env", help="Env var holding the API key.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Override the model name.")] = None,
    dialect: Annotated[str | None, typer.Option("--dialect", help="Override the model dialect (generic backends).")] = None,
    transport: Annotated[str | None, typer.Option("--transport", help="Override the transport: runpod, openai, ocular.")] = None,
    dpi: Annotated[float | None, typer.Option("--dpi", help="Render resolution.")] = None,
    image_format: Annotated[str | None, typer.Option("--image-format", help="png, jpeg or webp.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="RunPod: run, runsync or local.")] = None,
    document_mode: Annotated[bool, typer.Option("--document-mode", help="Send whole PDFs (DeepSeek seed contract).")] = False,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Resume cache directory.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the resume cache.")] = False,
    shard: Annotated[str | None, typer.Option("--shard", help="i/n: process only this machine's share of the inputs.")] = None,
    redo: Annotated[bool, typer.Option("--redo", help="Convert inputs the manifest says are done again.")] = False,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: on a TTY).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log retries and failures.")] = False,
    page_markers: Annotated[
        bool, typer.Option("--page-markers", help="Start each page's markdown with <!-- page N [status] -->.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    """Convert documents to markdown + JSON.  Outputs mirror the inputs under OUT from their
    common root (OUT/<stem>.md, OUT/<stem>.json for one file)."""
    from ..api import Conversion, prepare
    from ..cache import PageCache
    from ..exporters import EXPORTERS, write_outputs
    from ..outputs import output_stems

    if verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        from ..errors import install_log_redaction

        install_log_redaction()
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    console = _stderr()
    try:
        bad = [f for f in fmts if f not in EXPORTERS]
        if bad:
            raise ConfigError(f"unknown --format {', '.join(bad)}; known: {', '.join(EXPORTERS)}")
        shard_spec = _parse_shard(shard)
        plan = prepare(inputs, pages=pages, password=password)
        # laid out over every input, before sharding, so that all machines agree on the names
        suffixes = [EXPORTERS[f][1] for f in fmts]
        stem_of: dict[str, Path] = {}
        if out is not None:
            stems = output_stems([src for src, _ in plan], out, suffixes)
            stem_of = {src.key: stem for (src, _), stem in zip(plan, stems, strict=True)}
        plan = [(src, idx) for src, idx in plan if _in_shard(str(src.rel or src.name), shard_spec)]
        from ..registry import load_backend

        be = load_backend(
            backend,
            **_overrides(endpoint_id, base_url, api_key_env, model, dpi, dialect, image_format, mode, document_mode),
            transport=transport,
        )
        cache: PageCache | None = None if no_cache else PageCache(cache_dir) if cache_dir else True  # type: ignore[assignment]
    except OcrError as exc:
        if debug:  # the traceback too, but the exit code stays the one without --debug
            _print_traceback()
        raise _fail(str(exc)) from None

    manifest = None
    if out is not None:
        from ..manifest import Manifest

        manifest = Manifest(out)
        if not redo:
            before = len(plan)
            model_name = be.config.model
            plan = [
                (src, idx)
                for src, idx in plan
                if not manifest.done(src, backend=be.name, model=model_name, pages=pages, stem=stem_of[src.key])
            ]
            if before != len(plan) and not quiet:
                console.print(f"skipping {before - len(plan)} input(s) already done (see {manifest.path}; --redo to force)")
    total = sum(len(idx) for _, idx in plan)
    show = progress if progress is not None else (console.is_terminal and not quiet)
    results: list[Any] = []
    t0 = time.monotonic()
    reporter = _Progress(total, bool(show), verbose and not quiet)
    conv = Conversion(backend=be, cache=cache, concurrency=concurrency, on_event=reporter, prepared=plan)

    writer_options = {"md": {"page_markers": page_markers}, "pdf": {"force_ocr_text": force_ocr_text}}

    def emit(result: Any) -> None:
        results.append(result)
        if out is None:
            from ..exporters.markdown import render

            sys.stdout.write(render(result.document, page_markers=page_markers))
            sys.stdout.flush()
        else:
            stem = stem_of[result.source.key]
            try:
                written = write_outputs(result.document, stem.parent, stem.name, fmts, options=writer_options)
            except OcrError as exc:  # one format failing must not lose the others or the run
                console.print(f"[red]error:[/] {result.source.name}: {redact(str(exc))}")
                kept = [f for f in fmts if f in ("md", "json")]
                written = write_outputs(result.document, stem.parent, stem.name, kept, options=writer_options)
            if manifest is not None:
                manifest.record(result.source, result.document, written, pages=pages)

    async def run() -> None:
        try:
            async for result in conv:
                emit(result)
        finally:
            await be.aclose()

    code = EXIT_OK
    try:
        with reporter:
            asyncio.run(run())
    except KeyboardInterrupt:
        for result in conv.partial:
            emit(result)
        console.print(f"interrupted: wrote {len(results)} document(s) with what had finished")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OcrError as exc:
        from ..scheduler import RunAborted

        if isinstance(exc, RunAborted):
            for result in conv.partial:
                emit(result)
        if debug:  # the traceback too, but the exit code stays the one without --debug
            _print_traceback()
        raise _fail(str(exc), EXIT_BAD_INPUT if isinstance(exc, ConfigError | InputError | RunAborted) else EXIT_FAILED_PAGES) from None
    wall = time.monotonic() - t0
    failed = sum(r.document.stats.failed for r in results)
    if failed:
        code = EXIT_FAILED_PAGES
    if as_json:
        summary = {
            "documents": [
                {
                    "source": r.source.name,
                    "pages": r.document.stats.pages,
                    "ok": r.document.stats.ok,
                    "degraded": r.document.stats.degraded,
                    "failed": r.document.stats.failed,
                    "failed_pages": r.document.failed_pages,
                }
                for r in results
            ],
            "wall_s": round(wall, 3),
            "exit_code": code,
        }
        typer.echo(json.dumps(summary, indent=2))
    if not quiet:
        _summary(results, wall, console)
        for r in results:
            for p in r.document.pages:
                if p.status == "failed" and p.error is not None:
                    line = _failed_page(r.source.name, p.page, p.error.message)
                    console.print(f"[red]failed[/] {line}", soft_wrap=True)
    raise typer.Exit(code)


# ---------------------------------------------------------------------------------------------
# backends, health, config, schema
# ---------------------------------------------------------------------------------------------


def _configured(cfg: Any) -> tuple[bool, str]:
    from ..registry import configured

    return configured(cfg)


def _env_names(cfg: Any) -> list[str]:
    """The environment variables a profile reads (endpoint, URL, model, key), in that order."""
    names = [cfg.endpoint_id_env, cfg.base_url_env, cfg.model_env, cfg.api_key_env]
    return list(dict.fromkeys(n for n in names if n))


@app.command()
def backends(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the known backends, whether each is configured here, and the environment
    variables each one reads."""
    from rich.text import Text

    from ..config import list_profiles, resolve_config

    rows: list[dict[str, Any]] = []
    env: dict[str, list[str]] = {}
    for name in sorted(list_profiles()):
        try:
            cfg = resolve_config(name)
        except OcrError as exc:
            rows.append({"name": name, "transport": "?", "dialect": "?", "model": "?", "configured": False, "detail": str(exc)})
            continue
        ok, detail = _configured(cfg)
        env[name] = _env_names(cfg)
        rows.append(
            {
                "name": name,
                "transport": cfg.transport,
                "dialect": cfg.dialect,
                "model": cfg.model or "",
                "configured": ok,
                "detail": detail,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console(no_color=bool(os.environ.get("NO_COLOR")))
    # names are never cut (they are what --backend takes) and the model folds; the variables
    # each backend reads, and what is missing, follow in a grid whose text wraps between words,
    # so no variable name is cut at any width where the longest one fits (80 columns and more)
    width = max((len(r["name"]) for r in rows), default=4)
    table = Table(title="ocrclient backends")
    table.add_column("name", no_wrap=True, min_width=width)
    table.add_column("transport")
    table.add_column("dialect")
    table.add_column("model", overflow="fold")
    table.add_column("configured", no_wrap=True)
    for r in rows:
        mark = "[green]yes[/]" if r["configured"] else "[yellow]no[/]"
        table.add_row(str(r["name"]), str(r["transport"]), str(r["dialect"]), str(r["model"]), mark)
    console.print(table)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, min_width=width)
    grid.add_column(overflow="fold")
    for r in rows:
        names = env.get(r["name"], [])
        text = Text(", ".join(names) if names else "nothing")
        if not r["configured"]:
            text.append("\nnot configured: ")
            text.append(str(r["detail"]), style="yellow")
        grid.add_row(Text(str(r["name"]), style="bold"), text)
    console.print("environment variables each backend reads:")
    console.print(grid)


@app.command()
def health(
    backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
    endpoint_id: Annotated[str | None, typer.Option("--endpoint-id")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="RunPod: run, runsync or local.")] = None,
    transport: Annotated[str | None, typer.Option("--transport", help="Override the transport.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check that a backend is reachable and authorised (workers/queue, models)."""
    from ..registry import load_backend

    try:
        over = _overrides(endpoint_id, base_url, api_key_env, None, None, None, None, mode, False)
        be = load_backend(backend, **over, transport=transport)
    except OcrError as exc:
        raise _fail(str(exc)) from None

    async def check() -> Any:
        try:
            return await be.transport.health()
        finally:
            await be.aclose()

    try:
        h = asyncio.run(check())
    except OcrError as exc:
        raise _fail(str(exc), EXIT_FAILED_PAGES) from None
    if as_json:
        typer.echo(json.dumps({"backend": be.name, "ok": h.ok, "detail": h.detail, "info": h.info}, indent=2, default=str))
    else:
        colour = "green" if h.ok else "red"
        Console(no_color=bool(os.environ.get("NO_COLOR"))).print(f"[{colour}]{'ok' if h.ok else 'down'}[/] {be.name}: {redact(h.detail)}")
        for k, v in h.info.items():
            typer.echo(f"  {k}: {redact(str(v))}")
    raise typer.Exit(0 if h.ok else EXIT_FAILED_PAGES)


@config_app.callback()
def config_show(
    ctx: typer.Context,
    backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
    endpoint_id: Annotated[str | None, typer.Option("--endpoint-id")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
    dialect: Annotated[str | None, typer.Option("--dialect")] = None,
    transport: Annotated[str | None, typer.Option("--transport")] = None,
) -> None:
    """Show the resolved settings of a backend (with the flags `ocr convert` would get), secrets
    masked."""
    if ctx.invoked_subcommand is not None:
        return
    from ..config import config_dir, resolve_config

    try:
        over = _overrides(endpoint_id, base_url, api_key_env, model, None, dialect, None, None, False)
        cfg = resolve_config(backend, **over, transport=transport)
    except OcrError as exc:
        raise _fail(str(exc)) from None
    data = cfg.public_dict()
    data["config_dir"] = str(config_dir())
    # mask value by value: redacting the serialised text could turn a value into bare ***
    typer.echo(json.dumps(redact_data(data), indent=2, default=str))


_CONFIG_TEMPLATE = """\
# ocrclient user configuration.  Keep secrets in environment variables (RUNPOD_API_KEY,
# OCRCLIENT_API_KEY, MODAL_KEY / MODAL_SECRET); if you put an api_key here, chmod 600 this file.

# default_backend = "local"

# The page cache's size cap (default 2G; 0 = none); OCRCLIENT_CACHE_MAX_BYTES outranks it.
# cache_max_bytes = "2G"

# Per-backend overrides: any field of a backend profile (see `ocr config --backend NAME`).
# [backends.runpod-chandra]
# endpoint_id = "abc123xyz"
# concurrency = 16
#
# [backends.runpod-pod-lightonocr2]
# base_url = "https://POD_ID-8000.proxy.runpod.net/v1"
"""


@config_app.command("init")
def config_init(force: Annotated[bool, typer.Option("--force")] = False) -> None:
    """Write a commented config file to the user config directory."""
    from ..config import config_dir

    path = config_dir() / "config.toml"
    if path.exists() and not force:
        raise _fail(f"{path} exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_CONFIG_TEMPLATE, encoding="utf-8")
    path.chmod(0o600)
    (config_dir() / "backends").mkdir(exist_ok=True)
    typer.echo(str(path))


# ---------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------

CacheDirOption = Annotated[
    Path | None, typer.Option("--cache-dir", help="Cache directory (default: $OCRCLIENT_CACHE_DIR or ~/.cache/ocrclient).")
]


def _page_cache(directory: Path | None) -> Any:
    from ..cache import PageCache
    from ..config import cache_dir

    try:
        return PageCache(directory or cache_dir())
    except OcrError as exc:
        raise _fail(str(exc)) from None


@cache_app.command("info")
def cache_info(
    cache_dir: CacheDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Where the page cache is, how many pages it holds, its size and its cap."""
    info = _page_cache(cache_dir).info()
    if as_json:
        typer.echo(json.dumps({"dir": info.directory, "entries": info.entries, "bytes": info.bytes, "max_bytes": info.max_bytes}, indent=2))
        return
    cap = f"{info.max_bytes} bytes ({info.max_bytes / 1024**3:.2f} GiB)" if info.max_bytes else "none"
    typer.echo(f"dir: {info.directory}")
    typer.echo(f"entries: {info.entries}")
    typer.echo(f"bytes: {info.bytes} ({info.bytes / 1024**2:.1f} MiB)")
    typer.echo(f"cap: {cap}")


@cache_app.command("clear")
def cache_clear(cache_dir: CacheDirOption = None) -> None:
    """Delete every cached page (the next run sends every page again)."""
    cache = _page_cache(cache_dir)
    removed = cache.clear()
    typer.echo(f"removed {removed} cached page(s) from {cache.directory}")


@app.command()
def bench(
    inputs: Annotated[list[str], typer.Argument(help="Documents to run (the cache is bypassed).")],
    backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
    pages: Annotated[str | None, typer.Option("--pages", "-p")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1)] = None,
    endpoint_id: Annotated[str | None, typer.Option("--endpoint-id")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
    metrics: Annotated[bool, typer.Option("--metrics", help="Sample the vLLM server's /metrics during the run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Measure a backend: pages/s, latency p50/p95, retries, tokens, cost estimate."""
    from ..bench import run_bench

    try:
        report = asyncio.run(
            run_bench(
                inputs,
                backend=backend,
                pages=pages,
                concurrency=concurrency,
                metrics=metrics,
                **_overrides(endpoint_id, base_url, api_key_env, model, None, None, None, None, False),
            )
        )
    except OcrError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        table = Table(title=f"ocr bench: {report['backend']}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in report.items():
            if k in ("backend",):
                continue
            table.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
        Console(no_color=bool(os.environ.get("NO_COLOR"))).print(table)
    raise typer.Exit(EXIT_FAILED_PAGES if report["failed"] else EXIT_OK)


@app.command()
def view(
    result: Annotated[Path, typer.Argument(help="A JSON result written by `ocr convert`.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="HTML file to write (default: next to the JSON).")] = None,
) -> None:
    """Write a static HTML viewer: page images with block boxes drawn over them."""
    from ..exporters.html import write_viewer

    if not result.is_file():
        raise _fail(f"{result}: no such file")
    try:
        path = write_viewer(result, out)
    except OcrError as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(f"{result}: not an ocrclient result ({str(exc).splitlines()[0]})") from None
    typer.echo(str(path))


@app.command()
def schema(path: Annotated[Path | None, typer.Argument(help="Write here instead of stdout.")] = None) -> None:
    """Print (or write) the JSON schema of the output document."""
    from ..document import json_schema, write_schema

    if path is None:
        typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))
    else:
        typer.echo(str(write_schema(path)))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    finally:
        # the run is over: spare the interpreter's exit a garbage collection over every object
        # the imported libraries made (about 1 s with the openai SDK loaded, measured; it made
        # Ctrl-C slow to take effect).  Files are closed by then; stdout/stderr are flushed.
        gc.freeze()


if __name__ == "__main__":
    main()
