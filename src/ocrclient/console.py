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
Importing :mod:`ocrclient` or :mod:`ocrclient.cli` from Python changes nothing.
"""

from __future__ import annotations

import gc

__all__ = ["main", "start_collecting"]


def start_collecting() -> None:
    """Collection on again, the objects made so far frozen first (``gc.freeze``): start-up's
    modules, classes and settings live as long as the process, and with collection off they all
    sat in the youngest generation, where the first collection would walk every one of them (it
    cost more than collecting all along).  A no-op but for the freeze when collection is on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main() -> None:
    """The ``ocr`` command."""
    gc.disable()
    try:
        from .cli import main as run

        run()
    finally:
        start_collecting()
