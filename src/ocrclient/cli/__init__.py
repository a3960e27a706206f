"""The ``ocr`` command (typer): ``ocr convert`` (:mod:`.convert`), ``backends`` / ``health`` /
``config`` / ``cache`` (:mod:`.settings`), ``bench`` / ``view`` / ``schema`` (:mod:`.tools`); the
apps, exit codes and error lines they share are in :mod:`.common`, the progress bar and summary
in :mod:`.progress`.  Entry points: :func:`main` (the ``ocr`` script) and :data:`app`.

Exit codes: 0 every page ok (or degraded), 1 some pages failed or an output file could not be
written, 2 unusable input or
configuration (nothing was sent), 130 interrupted (what finished is written).  Errors are one
line on stderr; tracebacks only with ``--debug``, which never changes the exit code.
"""

import gc
import os
import sys
from typing import Annotated

import typer

from .. import __version__
from ..console import start_collecting
from .common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED_PAGES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    app,
    one_line_warnings,
)
from .common import failed_page as _failed_page  # noqa: F401 - the name tests and callers import

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED_PAGES", "EXIT_INTERRUPTED", "EXIT_OK", "app", "main"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ocrclient {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """ocrclient command line."""
    one_line_warnings(quiet=False)  # (ocr convert --quiet turns them off)
    if ctx.invoked_subcommand != "convert":  # convert collects again once its run begins
        start_collecting()


# the commands register themselves on `app` as their modules load, in this order (ocr --help)
from . import convert, settings, tools  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    try:
        sys.exit(_run(sys.argv[1:]))
    except KeyboardInterrupt:  # (while typer started: outside the command)
        from ..console import stopped_before_run

        sys.exit(stopped_before_run(sys.argv[1:]))
    except SystemExit as exc:
        if exc.code in (EXIT_INTERRUPTED, EXIT_TERMINATED):  # stopped by a signal, all written: the process
            from ..console import ignore_signals

            ignore_signals()  # ends now, and one more Ctrl-C or SIGTERM must not break in
        raise
    finally:
        # the run is over: spare the interpreter's exit a garbage collection over every object
        # the imported libraries made (up to 1 s with large libraries loaded, measured; it made
        # Ctrl-C slow to take effect).  Files are closed by then; stdout/stderr are flushed.
        gc.freeze()


def _run(argv: list[str]) -> int:
    """The command's exit code.  A command line the parser refuses (an unknown option, ``-c 0``,
    ``--dpi abc``) is one ``error:`` line naming the help to read, exit 2 (typer printed its usage
    and a box of five lines), and with ``--json`` the object every failing ``--json`` prints
    (README), with the parser's message."""
    from ..console import early_signal_seen, stopped_before_run, take_signals_early

    take_signals_early()  # (python -m ocrclient.cli: ocrclient.console took them for the ocr script)
    try:
        code = app(standalone_mode=False)
    except Exception as exc:  # the parser's refusal (typer's click exceptions: a message and a code)
        message, status = getattr(exc, "format_message", None), getattr(exc, "exit_code", None)
        if not callable(message) or not isinstance(status, int):
            raise
        said = " ".join(str(message()).split())
        if not said:  # (``ocr`` alone: the help is its answer, printed already)
            return status
        command = next((a for a in argv if not a.startswith("-")), "")
        ctx = getattr(exc, "ctx", None)
        where = str(getattr(ctx, "command_path", "") or "ocr")
        if "--json" in argv and status == EXIT_BAD_INPUT:
            from .common import failed_json
            from .progress import summary_json

            if command == "convert":
                typer.echo(summary_json([], 0.0, status, error=said))
            else:
                failed_json(said, status)
        from .common import fail

        dashed = next((a for a in argv if a.startswith("-") and a != "-" and os.path.exists(a)), None)
        if dashed is not None:  # (a file named "-scan.png" read as options: "No such option: -s")
            said += f"; a file whose name starts with '-' goes after --: {where} -- {dashed}"
        fail(f"{said} ({where} --help tells more)", status)
        return status
    if code == EXIT_INTERRUPTED and early_signal_seen():  # (typer's silent 130 for a Ctrl-C in a command)
        return stopped_before_run(argv)
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    main()
