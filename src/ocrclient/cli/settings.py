"""``ocr backends``, ``ocr health``, ``ocr config`` and ``ocr cache``: what is configured here,
whether a backend answers, the resolved settings, and the page cache."""

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import OcrError, redact, redact_data

if TYPE_CHECKING:
    from ..config import BackendConfig
from .common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_PAGES,
    app,
    backend_overrides,
    cache_app,
    check_flags_read,
    checked_backend,
    config_app,
    fail,
    file_errors,
    stdout,
)


def _configured(cfg: Any) -> tuple[bool, str]:
    from ..registry import configured

    ok, detail = configured(cfg)
    refused = _refused(cfg, {}) if ok else None
    return (False, refused) if refused else (ok, detail)


def _refused(cfg: Any, over: dict[str, Any]) -> str | None:
    """The line ``ocr convert`` would stop on with ``cfg``'s settings before sending anything
    (a missing key, endpoint, URL or model; its dialect's settings, its transport's options,
    the pairing: what loading the backend checks; a flag of ``over`` it would not read), or
    ``None``.  (Missing settings were once filled in here, and ``ocr config`` said nothing of
    what convert then refused.)"""
    from ..registry import Backend, load_dialect, load_transport

    try:
        check_flags_read(over, cfg)
        Backend(cfg, load_dialect(cfg), load_transport(cfg)).close()
    except OcrError as exc:
        return str(exc)
    return None


def _env_names(cfg: Any, refused: list[str] | None = None) -> list[str]:
    """The environment variables a profile reads (endpoint, URL, model, key), in that order, then
    those its transport reads from its options (a key's aliases, Modal's proxy auth); a setting
    among those the backend refuses goes to ``refused``."""
    from ..envnames import fallback_env
    from ..registry import transport_class

    names = []
    for field in ("endpoint_id", "base_url", "model", "api_key"):  # each one's variable, then its fallback
        own = getattr(cfg, f"{field}_env")
        names += [own, fallback_env(cfg.transport, field, own)]
    try:
        more = getattr(transport_class(cfg.transport), "env_names", None)
    except OcrError:  # (a transport that cannot be imported says so in the table above)
        more = None
    try:
        names += more(cfg) if more is not None else []
    except OcrError as exc:  # (loading the backend would refuse it: its row says so)
        if refused is not None:
            refused.append(exc.message)
    return list(dict.fromkeys(n for n in names if n))


@app.command()
def backends(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the known backends, whether each is configured here, and the environment
    variables each one reads."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from ..config import list_profiles, load_user_config, resolve_config

    rows: list[dict[str, Any]] = []
    env: dict[str, list[str]] = {}
    try:
        load_user_config()  # (a user config that cannot be meant is every backend's: one line)
        profiles = list_profiles()  # a plugin clashing with a shipped backend is refused here
    except OcrError as exc:
        raise fail(str(exc), as_json=as_json) from None
    for name in sorted(profiles):
        try:
            cfg = resolve_config(name)
        except OcrError as exc:
            rows.append({"name": name, "transport": "?", "dialect": "?", "model": "?", "configured": False, "detail": str(exc)})
            continue
        ok, detail = _configured(cfg)
        refused: list[str] = []
        env[name] = _env_names(cfg, refused)
        if refused:
            ok, detail = False, refused[0]
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
    console = stdout()
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
        table.add_row(*(escape(str(r[k])) for k in ("name", "transport", "dialect", "model")), mark)
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
    model: Annotated[str | None, typer.Option("--model", help="The model (a generic backend's dialect needs one).")] = None,
    dialect: Annotated[str | None, typer.Option("--dialect", help="Override the reply dialect.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="RunPod: run, runsync or local.")] = None,
    transport: Annotated[str | None, typer.Option("--transport", help="Override the transport.")] = None,
    document_mode: Annotated[bool, typer.Option("--document-mode", help="Also check that the backend takes whole PDFs.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check that a backend is reachable and authorised (workers/queue, models).  It takes the
    flags ``ocr convert`` takes to name the backend, so a command line that converts checks."""
    try:
        over = backend_overrides(endpoint_id, base_url, api_key_env, model, None, dialect, None, mode)
        be = checked_backend(backend, over, transport)
        from ..docmode import check as takes_documents
        from ..docmode import requested

        if requested(be.config, document_mode):  # (the flag, or the profile's older option)
            takes_documents(be.config)
    except OcrError as exc:
        raise fail(str(exc), as_json=as_json) from None

    async def check() -> Any:
        try:
            return await be.transport.health()
        finally:
            await be.aclose()

    try:
        h = asyncio.run(check())
    except OcrError as exc:
        raise fail(str(exc), EXIT_FAILED_PAGES, as_json=as_json) from None
    except Exception as exc:  # a transport's bug (a plugin's): one line, not a traceback
        raise fail(f"{be.name}: the health check failed: {type(exc).__name__}: {exc}", EXIT_FAILED_PAGES,
                   as_json=as_json) from None  # fmt: skip
    # down: 1 (a server to wait for), or 2 when it refused the settings (key, endpoint, model), as convert
    code = 0 if h.ok else (EXIT_BAD_INPUT if h.refused else EXIT_FAILED_PAGES)
    if as_json:
        failed = {} if h.ok else {"error": h.detail, "exit_code": code}  # (what every --json says of a failure)
        typer.echo(json.dumps({"backend": be.name, "ok": h.ok, "detail": h.detail, "info": h.info, **failed},
                              indent=2, default=str))  # fmt: skip
    else:
        colour = "green" if h.ok else "red"
        from rich.markup import escape

        # one line however long (a pipe is 80 columns to rich), the server's words as they are
        stdout().print(f"[{colour}]{'ok' if h.ok else 'down'}[/] {escape(be.name)}: {escape(redact(h.detail))}", soft_wrap=True)
        for k, v in h.info.items():
            typer.echo(f"  {k}: {redact(str(v))}")
    raise typer.Exit(code)


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
    mode: Annotated[str | None, typer.Option("--mode", help="RunPod: run, runsync or local.")] = None,
    dpi: Annotated[float | None, typer.Option("--dpi", help="Render resolution (the profile's longest_side still caps the image: see ocr config).")] = None,
    image_format: Annotated[str | None, typer.Option("--image-format", help="png, jpeg or webp.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1, help="Pages in flight (ceiling).")] = None,
    text_layer: Annotated[str | None, typer.Option("--text-layer", help="local backend: auto, always or never.")] = None,
    keep_furniture: Annotated[bool, typer.Option("--keep-furniture", help="Keep running headers and footers.")] = False,
) -> None:
    """Show the resolved settings of a backend (with the flags `ocr convert` would get), secrets
    masked, and whether `ocr convert` would take them ("refused": its one line; exit 2)."""
    if ctx.invoked_subcommand is not None:
        return
    from ..config import config_dir, resolve_config
    from .convert import _layer_options

    try:
        over = backend_overrides(endpoint_id, base_url, api_key_env, model, dpi, dialect, image_format, mode)
        over["dialect_options"] = _layer_options(text_layer, keep_furniture)
        cfg = resolve_config(backend, **over, transport=transport, concurrency=concurrency)
    except OcrError as exc:
        raise fail(str(exc)) from None
    data = cfg.public_dict()
    data["render_used"] = _render_used(cfg)
    data["config_dir"] = str(config_dir())
    refused = _refused(cfg, over)
    data["refused"] = refused
    # mask value by value: redacting the serialised text could turn a value into bare ***
    typer.echo(json.dumps(redact_data(data), indent=2, default=str))
    if refused:
        raise fail(refused)


def _render_used(cfg: "BackendConfig") -> dict[str, Any] | None:
    """The render spec pages are sent at: the dialect's own with the settings' ``render`` laid
    over it (``render`` alone showed a dpi while the dialect's longest side capped the image);
    ``None`` when the dialect does not load (``refused`` says why)."""
    import dataclasses

    from ..registry import load_dialect

    try:
        return dataclasses.asdict(load_dialect(cfg).render)
    except OcrError:
        return None


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
        raise fail(f"{path} exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_CONFIG_TEMPLATE, encoding="utf-8")
    path.chmod(0o600)
    (config_dir() / "backends").mkdir(exist_ok=True)
    typer.echo(str(path))


CacheDirOption = Annotated[
    Path | None, typer.Option("--cache-dir", help="Cache directory (default: $OCRCLIENT_CACHE_DIR or ~/.cache/ocrclient).")
]


def _page_cache(directory: Path | None, as_json: bool = False) -> Any:
    from ..cache import PageCache
    from ..config import cache_dir

    folder = directory or cache_dir()
    if folder.exists() and not folder.is_dir():
        raise fail(f"{folder}: not a directory (--cache-dir names the page cache's folder)", as_json=as_json)
    try:
        return PageCache(folder)
    except OcrError as exc:
        raise fail(str(exc), as_json=as_json) from None


@cache_app.command("info")
def cache_info(
    cache_dir: CacheDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Where the page cache is, how many pages it holds, its size and its cap."""
    cache = _page_cache(cache_dir, as_json)
    with file_errors(f"cannot read the page cache in {cache.directory}", as_json=as_json):
        info = cache.info()
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
    """Delete every cached page (the next run sends again every page it converts; documents an output folder's manifest says are done are still skipped: --redo converts them)."""
    cache = _page_cache(cache_dir)
    with file_errors(f"cannot clear the page cache in {cache.directory}"):
        removed = cache.clear()
    typer.echo(f"removed {removed} cached page(s) from {cache.directory}")
