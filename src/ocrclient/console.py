"""The ``ocr`` console script (and ``python -m ocrclient``): what runs before the command line
is imported.

Start-up imports typer, click, rich, pydantic, httpx and the run's own modules: about 100,000
long-lived objects that the collector tracks, and no garbage cycles worth collecting, yet the
cyclic garbage collector runs over them again and again as they are made (those imports took
0.27-0.37 s with it off, 0.34-0.49 s with it on, six runs each; the first request's gain, about
26 ms, is in docs/ARCHITECTURE.md).  So collection is off while the command starts and on again
once it runs: ``ocr convert`` turns it on as its run begins (:func:`ocrclient.cli.convert._run`),
every other command as it is dispatched (:func:`ocrclient.cli.main_callback`), and this function
on its way out, whatever happened; each through :func:`start_collecting`.
Importing :mod:`ocrclient` or :mod:`ocrclient.cli` from Python changes nothing.  The command
also keeps httpx from importing its own command line (``httpx._main``, when click is installed:
click, pygments, rich's syntax and tables, 60-100 ms before the first request).

**Memory.**  With glibc, the command lets its threads allocate from two heaps (arenas) at
most (:func:`_two_heaps`).  glibc gives each new thread a heap of its own, up to eight per core,
and a heap keeps what was freed in it for its own thread: the render threads, the event loop and
the threads that write outputs and the cache each held the freed buffers of the pages they had
handled (PNG bytes, base64 bodies, replies of hundreds of kB).  Peak RSS of ``ocr convert
--backend runpod-chandra`` over 16 pages at 8 in flight: 107-108 MB with glibc's rule, 101-105
MB with two heaps, at the same CPU time (five interleaved pairs, ``benchmarks/README.md``,
session 37).  The threads rarely meet in ``malloc``: Python's small objects never reach it, and
one thread runs Python at a time.  Only when this process *is* the ``ocr`` command (as for
the way out, below: :func:`_the_program_is_ocr`): importing :mod:`ocrclient`, or a program
calling :func:`main`, leaves its allocator as it is, and a heap count the user set
(``MALLOC_ARENA_MAX``, ``GLIBC_TUNABLES``) is theirs.

**The way out.**  Once the command has finished, the interpreter's own exit (tearing down every
module and freeing the objects of typer, pydantic, httpx, ...) took about 10 ms of the ~30 ms from
a run's last reply to the process's end (``ocr convert`` of 64 pages, four runs each way,
``benchmarks/README.md``), and nothing in it is the command's.  So when this process *is* the
``ocr`` command (``python -m ocrclient``, or the ``ocr`` script pip installs on POSIX, called
from the program's top level: see :func:`_the_program_is_ocr`), the last exit handler (:func:`_leave`) flushes stdout and stderr and
ends the process with the command's exit code.  Everything Python does before it still runs:
non-daemon threads are joined, then every other ``atexit`` handler (logging's, ``weakref.finalize``'s
temporary directories, multiprocessing's), because they were registered after this one; the
command's own files are all closed by then.  It is not armed when something registered an exit
handler before the command started (it would be skipped), when a caller runs :func:`main` from
its own script or under a debugger (it may catch the ``SystemExit`` and go on), or when the
command ended by an uncaught exception, even one raised on its way out (a Ctrl-C then); an exit
status beyond a C ``int`` or a failing flush hands the exit back to the interpreter.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

__all__ = ["early_signal", "early_signal_seen", "ignore_signals", "leaving_at_once", "main", "signals_held",
           "start_collecting", "stopped_before_run", "take_signals_early"]  # fmt: skip


class _Exit:
    """What :func:`_leave` needs: the command's exit code (``None``: not finished, or by an
    uncaught exception) and the program's ``__main__`` when it was armed; and the signal that
    stopped the command before its run took signals over (:func:`early_signal`)."""

    code: int | None = None
    program: ModuleType | None = None
    signal: int | None = None
    regiven = 0
    started = time.monotonic()


def _unraisable(hook: Any) -> None:
    """An interrupt from :func:`early_signal` that fell inside a weakref callback or a
    ``__del__`` (importlib's module locks have one) is not raised there but printed as
    "Exception ignored in ..." with a traceback, and the command went on as if no Ctrl-C had
    come: it is given again, to be raised at the next line of the command."""
    if isinstance(hook.exc_value, KeyboardInterrupt) and _Exit.signal is not None and _Exit.regiven < 5:
        _Exit.regiven += 1
        signal.raise_signal(_Exit.signal)
        return
    sys.__unraisablehook__(hook)


def early_signal(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C and SIGTERM while the command starts, before a run takes them over
    (:class:`ocrclient.cli.common.Termination`): a ``KeyboardInterrupt`` where it falls, the
    signal noted, and :func:`stopped_before_run` says so.  Before it, Ctrl-C in the first
    0.3 s printed a traceback from inside some import, with ``--json`` no summary, and SIGTERM
    ended the process with neither."""
    _Exit.signal = signum
    raise KeyboardInterrupt


def early_signal_seen() -> bool:
    """Whether :func:`early_signal` took a signal (typer answers the ``KeyboardInterrupt`` it
    raised inside a command with a silent exit 130)."""
    return _Exit.signal is not None


def take_signals_early() -> None:
    """:func:`early_signal` for SIGINT and SIGTERM, where their handlers are Python's own (a
    handler someone else installed, and a SIGINT ignored by a shell's background job, stay)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
        if signal.getsignal(signum) == default:
            signal.signal(signum, early_signal)
            if sys.unraisablehook is sys.__unraisablehook__:
                sys.unraisablehook = _unraisable


def ignore_signals() -> None:
    """SIGINT and SIGTERM ignored from now on: the ``ocr`` process is ending after a stop (a
    second signal landing then raised ``KeyboardInterrupt`` inside the interpreter's shutdown,
    or cut the ``--json`` line short).  Only the main thread can set them."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def stopped_before_run(argv: Sequence[str]) -> int:
    """The end of a command stopped by Ctrl-C or SIGTERM before its run began (or one without a
    run): 130 or 143, the one line ``interrupted`` / ``terminated`` on stderr and, with
    ``--json``, its object on stdout -- ``ocr convert``'s summary, with no document, or every
    other command's ``{"ok": false, "error", "exit_code"}``.  Another signal meanwhile is
    ignored (the process is ending)."""
    ignore_signals()
    code, why = (143, "terminated") if _Exit.signal == signal.SIGTERM else (130, "interrupted")
    if "--json" in argv:
        command = next((a for a in argv if not a.startswith("-")), "")
        said = ({"documents": [], "refused": [], "skipped": [], "left_out": [], "unfinished": [],
                 "wall_s": round(time.monotonic() - _Exit.started, 3), "exit_code": code, "error": why} if command == "convert"
                else {"ok": False, "error": why, "exit_code": code})  # fmt: skip
        sys.stdout.write(json.dumps(said, indent=2) + "\n")
    sys.stderr.write(f"{why}\n")
    return code


@contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM held while the block runs, then acted on as they would have been.
    For an import that goes through a C extension's import of NumPy (onnxruntime, OpenCV):
    an interrupt inside it is turned into an ``ImportError`` ("import numpy failed", its
    traceback printed), which read as a missing install.  Only the main thread takes signals;
    elsewhere this does nothing."""
    signums = (signal.SIGINT, signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or None in map(signal.getsignal, signums):
        yield  # (None: a handler set outside Python, which could not be put back)
        return
    held: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: held.append(signum)) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])


def start_collecting() -> None:
    """Collection on again, the objects made so far frozen first (``gc.freeze``): start-up's
    modules, classes and settings live as long as the process, and with collection off they all
    sat in the youngest generation, where the first collection would walk every one of them (it
    cost more than collecting all along).  A no-op but for the freeze when collection is on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _the_program_is_ocr(caller: FrameType | None) -> bool:
    """Whether this process runs the ``ocr`` command as its program: :func:`main` called by
    ``python -m ocrclient`` or by the ``ocr`` script pip writes on POSIX (``sys.exit(main())``
    in a file named ``ocr``), from the program's top level (``caller``: the frame that called
    :func:`main`), with nothing above it but runpy (a debugger or another harness that runs
    the module may catch the ``SystemExit`` and go on)."""
    program = sys.modules.get("__main__")
    spec = getattr(program, "__spec__", None)
    if spec is not None:
        if spec.name != "ocrclient.__main__":
            return False
    elif Path(str(getattr(program, "__file__", "") or "")).name.lower() != "ocr" or getattr(program, "main", None) is not main:
        return False
    if caller is None or caller.f_globals is not getattr(program, "__dict__", None):
        return False
    above = caller.f_back
    while above is not None:
        if above.f_globals.get("__name__") != "runpy":
            return False
        above = above.f_back
    return True


def _exit_code(code: object) -> int | None:
    """The process's exit status for ``SystemExit(code)``, as the interpreter makes it
    (``None``: an integer beyond a C ``int``, left to the interpreter)."""
    if code is None:
        return 0
    if not isinstance(code, int):
        return 1
    return code if -(2**31) <= code < 2**31 else None


def leaving_at_once() -> bool:
    """Whether this process ends by :func:`_leave` (``os._exit``, nothing torn down): the
    ``ocr`` command, finished by a ``SystemExit``.  Exit handlers that wait for threads so that
    a teardown does not pull objects from under them have nothing to wait for then."""
    return (
        _Exit.code is not None
        and _Exit.program is not None
        and sys.modules.get("__main__") is _Exit.program
        and getattr(sys, "last_value", None) is None
    )


def _leave() -> None:
    """The last exit handler: flush stdout and stderr and end the process with the command's
    exit code, without tearing the interpreter down (see the module's text)."""
    if _Exit.code is None or sys.modules.get("__main__") is not _Exit.program:
        return
    if getattr(sys, "last_value", None) is not None:  # an exception (Ctrl-C) ended it after all
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:  # (a closed pipe): the interpreter reports it and picks the status
        return
    os._exit(_Exit.code)


#: glibc's ``M_ARENA_MAX`` (``mallopt``): the most heaps threads allocate from
_M_ARENA_MAX = -8
#: the heaps the command's threads share (see the module's text)
HEAPS = 2


def _two_heaps() -> bool:
    """At most :data:`HEAPS` malloc heaps for the process's threads (see the module's text);
    whether the C library took it (glibc does; elsewhere, or with a heap count the user set,
    ``MALLOC_ARENA_MAX`` or ``GLIBC_TUNABLES``'s ``glibc.malloc.arena_max``, nothing changes)."""
    if (not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ
            or "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", "")):  # fmt: skip
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, HEAPS))


def main() -> None:
    """The ``ocr`` command."""
    gc.disable()
    _Exit.started = time.monotonic()
    caller = sys._getframe(1)
    try:
        try:  # (a signal from the moment its handler is in: a stop before the run, no traceback)
            take_signals_early()
            program = _the_program_is_ocr(caller)
            if program:  # (before any thread allocates: a thread's heap is given at its first malloc)
                _two_heaps()
            if atexit._ncallbacks() == 0 and program:  # nothing would run after _leave
                _Exit.program = sys.modules.get("__main__")
                atexit.register(_leave)
            # httpx imports its own command line when click is installed (click, pygments' lexers,
            # rich's syntax, progress and table: ~30 ms before the first request, measured with
            # click beside us); this process is ocr's, which never runs httpx's command line
            sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
            from .cli import main as run

            run()
        except KeyboardInterrupt:  # (while the command line was imported)
            raise SystemExit(stopped_before_run(sys.argv[1:])) from None
        _Exit.code = 0
    except SystemExit as exc:
        _Exit.code = _exit_code(exc.code)
        raise
    finally:
        start_collecting()
