"""Atomic file writes shared by the exporters (a kill never leaves half a file), and the sweep
of what a killed run's writers left behind."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read without setting it where the system says it (Linux:
    ``/proc/self/status``): ``os.umask`` can only be read by setting it, and a file or folder
    another thread made in that moment (the cache's, an output) came out world-writable."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii", errors="replace") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # (the strictest in that moment, never a looser one)
        os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes | str | Iterable[str]) -> Path:
    """Write ``data`` to ``path`` via a temp file + rename; the file gets normal permissions
    (0666 less the umask), not mkstemp's 0600.  ``data`` may be text given in pieces, written as
    they come (a large document's JSON is never one string in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pieces = [data] if isinstance(data, bytes | str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for piece in pieces:
                fh.write(piece.encode("utf-8") if isinstance(piece, str) else piece)
        os.chmod(tmp, 0o666 & ~_umask())
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
