"""Atomic file writes shared by the exporters (a kill never leaves half a file), and the sweep
of what a killed run's writers left behind."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path


def _temp_beside(path: Path) -> tuple[int, str]:
    """A new temp file beside ``path`` (``.<name>.<8 random>.tmp``), open for writing, made with
    0666 for the umask to narrow as it does for any file the process makes (the umask can only be
    read by setting it, and a file or folder another thread made in that moment came out
    world-writable: mkstemp's 0600 widened by hand needed it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {path}")


def atomic_write(path: Path, data: bytes | str | Iterable[str]) -> Path:
    """Write ``data`` to ``path`` via a temp file + rename; the file gets normal permissions
    (0666 less the umask).  ``data`` may be text given in pieces, written as
    they come (a large document's JSON is never one string in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pieces = [data] if isinstance(data, bytes | str) else data
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            for piece in pieces:
                fh.write(piece.encode("utf-8") if isinstance(piece, str) else piece)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: what a run's writers keep beside a document's outputs while it runs, named from its stem and
#: removed when they are done: a file being written (``atomic_write``: ``.<stem>.md.<rand>.tmp``),
#: the spilled pages (``.<stem>.<rand>.spill``) and the viewer's spilled page images
#: (``.<stem>.<rand>.pages/``); a killed run (SIGKILL, the OOM killer, a power cut) leaves them
_LEFTOVER = r"\.{stem}\.(?:[^./]+\.[a-z0-9_]{{8}}\.tmp|[a-z0-9_]{{8}}\.(?:spill|pages))"


def sweep_leftovers(stem: Path) -> list[Path]:
    """Remove what a killed run left beside the outputs at ``stem`` (``out/report`` for
    ``out/report.md`` ...); returns what was removed.  Call it where no other writer can be
    writing that stem (``ocr convert`` holds the output folder's lock, and sweeps a document's
    stem as it opens, before its sink makes anything).  At thousands of pages a kill left gigabytes of
    spilled page images, never removed, as many times as the run was killed."""
    pattern = re.compile(_LEFTOVER.format(stem=re.escape(stem.name)))
    removed = []
    try:
        names = [e for e in os.scandir(stem.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return []
    for entry in names:
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed
