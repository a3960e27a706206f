"""What every ``ocr`` command shares: the typer apps, exit codes, one-line errors on stderr, and
the backend overrides the flags make.

Example::

    >>> backend_overrides(None, None, None, "m", 72, None, None, None)["render"]
    {'dpi': 72}
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, cast

import typer

from ..errors import OcrError, redact

if TYPE_CHECKING:
    import asyncio

    from rich.console import Console

    from ..config import BackendConfig
    from ..registry import Backend

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILED_PAGES",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "Termination",
    "app",
    "backend_overrides",
    "cache_app",
    "check_flags_read",
    "checked_backend",
    "config_app",
    "fail",
    "failed_page",
    "file_errors",
    "flags_checked",
    "one_line_warnings",
    "print_traceback",
    "real_console",
    "stderr",
    "stdout",
]

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
#: a run stopped by SIGTERM (``timeout``, ``docker stop``, Kubernetes, systemd, a batch scheduler): 128 + 15
EXIT_TERMINATED = 143


class _LazyConsole:
    """Stands for the rich :class:`~rich.console.Console` on stderr and makes it at its first
    use: importing rich takes ~30 ms, which a run that prints nothing before its first request
    (``--quiet``, or no progress bar) spends after it, or never."""

    def __init__(self) -> None:
        self._console: Console | None = None

    def made(self) -> Console:
        if self._console is None:
            self._console = _rich_console(stderr=True, highlight=False)
        return self._console

    @property
    def is_terminal(self) -> bool:
        """Whether stderr is a terminal, as rich decides it; but a pipe or a file, with neither
        ``FORCE_COLOR`` nor ``TTY_COMPATIBLE`` set, is told apart without importing rich (rich
        answers no then): ``ocr convert`` asks before its first request whether to draw a
        progress bar, and in a script, a CI log or any redirected run it draws none."""
        if self._console is None and not {"FORCE_COLOR", "TTY_COMPATIBLE"} & os.environ.keys():
            try:
                if not sys.stderr.isatty():
                    return False
            except (AttributeError, ValueError):  # no stderr, or a closed one
                return False
        return self.made().is_terminal

    def __getattr__(self, name: str) -> Any:  # only names this object does not have itself
        return getattr(self.made(), name)


def stderr() -> Console:
    """A console on stderr (no colour under ``NO_COLOR``), made when it is first used."""
    return cast("Console", _LazyConsole())


def stdout() -> Console:
    """A rich console on stdout (no colour under ``NO_COLOR``): tables and reports."""
    return _rich_console()


def _rich_console(**options: Any) -> Console:
    """A rich console (rich imported now), without colour under ``NO_COLOR``."""
    from rich.console import Console

    return Console(no_color=bool(os.environ.get("NO_COLOR")), **options)


def real_console(console: Console) -> Console:
    """The rich console itself behind what :func:`stderr` returned (what rich's own widgets,
    a progress bar, must be given: they check its type)."""
    return console.made() if isinstance(console, _LazyConsole) else console


class _Warnings:
    """How the command shows Python warnings (a key file readable by others, ...): one
    ``warning:`` line each on stderr, each message once, none under ``--quiet``."""

    quiet: ClassVar[bool] = False
    shown: ClassVar[set[str]] = set()


def one_line_warnings(*, quiet: bool | None = None) -> None:
    """Show this process's Python warnings as ``warning: <message>`` lines on stderr (not
    Python's two lines with a file name and a source line), each message once; with ``quiet``
    (``--quiet``: only errors on stderr) none."""
    import warnings

    if quiet is not None:
        _Warnings.quiet = quiet

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:  # fmt: skip
        text = " ".join(redact(str(message)).split())
        if _Warnings.quiet or text in _Warnings.shown:
            return
        _Warnings.shown.add(text)
        from rich.markup import escape

        stderr().print(f"[yellow]warning:[/] {escape(text)}", markup=True, soft_wrap=True)

    warnings.showwarning = show


def fail(message: str, code: int = EXIT_BAD_INPUT, *, as_json: bool = False) -> typer.Exit:
    """Print ``error: <message>`` (one line, redacted) on stderr; the exit to raise.  With
    ``as_json`` (the command's ``--json``) stdout gets ``{"ok": false, "error": ..., "exit_code":
    ...}`` too: a script that parses it gets an object on every exit, not an empty output."""
    from rich.markup import escape

    if as_json:
        failed_json(message, code)

    # escaped: a message may hold brackets ("pip install 'ocrclient[local]'") that are not markup
    stderr().print(f"[bold red]error:[/] {escape(redact(message))}", markup=True, soft_wrap=True)
    return typer.Exit(code)


def failed_json(message: str, code: int) -> None:
    """``--json``'s object for a command that failed: ``{"ok": false, "error", "exit_code"}``."""
    typer.echo(json.dumps({"ok": False, "error": redact(message), "exit_code": code}, indent=2))


@contextmanager
def file_errors(what: object, *, as_json: bool = False) -> Iterator[None]:
    """A file the command cannot read or write (``OSError``) ends it with one line,
    ``error: <what>: <reason>``, exit 2, not a traceback."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename and not str(what).endswith(str(exc.filename)):  # the part of the path at fault
            reason += f": {exc.filename}"
        raise fail(f"{what}: {reason}", as_json=as_json) from None


def print_traceback() -> None:
    """The exception being handled, as a (redacted) traceback on stderr (``--debug``)."""
    import traceback

    sys.stderr.write(redact(traceback.format_exc()))


def failed_page(source: str, page: int, message: str) -> str:
    """``doc.pdf page 3: cannot render (...)`` (rich markup escaped): the page is named once,
    also when the message (a render error, say) starts with ``page 3`` or ``page 3 of doc.pdf``."""
    from rich.markup import escape

    said = re.match(rf"page {page}(?: of {re.escape(source)})?(?=[\s:]|$)", message)
    line = f"{source} page {page}{message[said.end():]}" if said else f"{source} page {page}: {message}"
    return escape(line)


def backend_overrides(
    endpoint_id: str | None,
    base_url: str | None,
    api_key_env: str | None,
    model: str | None,
    dpi: float | None,
    dialect: str | None,
    image_format: str | None,
    mode: str | None,
) -> dict[str, Any]:
    """The :func:`~ocrclient.registry.load_backend` overrides the command's flags make."""
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
    return over


#: the flags that set what only some backends read: (the overrides' table, the setting) -> flag
_FLAGS = {
    ("", "endpoint_id"): "--endpoint-id",
    ("", "base_url"): "--base-url",
    ("", "api_key_env"): "--api-key-env",
    ("transport_options", "mode"): "--mode",
    ("dialect_options", "text_layer"): "--text-layer",
    ("dialect_options", "include_headers_footers"): "--keep-furniture",
}


def _flag(table: str, name: str) -> str:
    return _FLAGS.get((table, name), name)


def check_flags_read(over: dict[str, Any], cfg: BackendConfig, transport: object = None, dialect: object = None) -> None:
    """Refuse, in one line, a flag among ``over`` (the overrides of :func:`backend_overrides`,
    with ``dialect_options``) that the backend's ``transport`` or ``dialect`` (by default the
    classes ``cfg`` names) would not read (``--mode run`` for a vLLM pod, ``--text-layer`` for
    Chandra were accepted and did nothing): :func:`~ocrclient.registry.check_read`, naming the flag."""
    from ..registry import check_read

    check_read(over, cfg, transport, dialect, label=_flag)


def checked_backend(backend: str | None, over: dict[str, Any], transport: str | None = None) -> Backend:
    """The backend ``backend`` with the overrides ``over`` (and ``--transport``), once every
    flag is found read (:func:`~ocrclient.registry.loaded`: checked before anything is built)."""
    from ..registry import loaded

    return loaded(backend, {**over, **({"transport": transport} if transport else {})}, label=_flag)


def flags_checked(backend: str | None, over: dict[str, Any]) -> None:
    """:func:`check_flags_read` on the settings ``backend`` and ``over`` resolve to, building
    nothing; settings that do not resolve are left for the command to say where it would."""
    from ..config import resolve_config
    from ..registry import dialect_class, transport_class

    try:
        cfg = resolve_config(backend, **over)
        classes = transport_class(cfg.transport), dialect_class(cfg.dialect)
    except OcrError:
        return
    check_flags_read(over, cfg, *classes)


class Termination:
    """While a run goes on, Ctrl-C and SIGTERM (``timeout``, ``docker stop``, Kubernetes, systemd,
    a batch scheduler's stop) end it alike: the run's task is cancelled, as asyncio does on a
    Ctrl-C, so the jobs in flight are cancelled at the endpoint (they would go on billing) and
    what finished is written; the exit code is 130 (Ctrl-C) or 143 (SIGTERM).  Python's own
    SIGTERM ends the process at once, losing both.  A second signal, while the first is acted on
    and what finished is written, is ignored (it killed the process before the files and
    ``--json`` were written, or, raised wherever it fell, hung the cancel).  Only the main thread
    can take a signal; a handler someone else installed, and an ignored SIGINT (a job a shell
    started in the background), are left alone."""

    #: stopped by SIGTERM (else by Ctrl-C, when :attr:`stopping`)
    signalled = False
    stopping = False
    #: the run's task (``asyncio.run``'s), once it runs
    task: asyncio.Task[Any] | None = None

    def __enter__(self) -> Termination:
        import signal
        import threading

        from ..console import early_signal  # (the ocr command's own, while it started)

        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
                if signal.getsignal(signum) in (default, early_signal):
                    self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        import signal

        if self.stopping:  # (a second one: the first is being acted on)
            return
        self.stopping = True
        self.signalled = signum == signal.SIGTERM
        if self.task is not None and not self.task.done():
            self.task.get_loop().call_soon_threadsafe(self.task.cancel)
        else:  # (not running yet, or done)
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        import signal

        from ..console import early_signal

        for signum, previous in self._previous.items():
            # the ocr command's run is over: what is left is its summary, a few ms, which a signal
            # now would lose (SIGTERM's default ended it without --json's summary)
            signal.signal(signum, signal.SIG_IGN if previous is early_signal else previous)
