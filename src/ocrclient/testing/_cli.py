"""What the simulators' command lines share (``python -m ocrclient.testing``, ``python -m
ocrclient.testing.hostile``, ``python -m ocrclient.testing.runpod_sim``): a parser whose every
refusal is one line on stderr, exit 2, as docs/testing.md promises, not argparse's usage block
before it."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` refusing a command line in one line, exit 2:
    ``PROG: error: MESSAGE (PROG --help tells more)``.

    >>> p = OneLineParser(prog="sim")
    >>> _ = p.add_argument("--port", type=int)
    >>> p.parse_args(["--port", "x"])
    Traceback (most recent call last):
    SystemExit: 2
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} ({self.prog} --help tells more)\n")
