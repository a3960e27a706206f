"""Atomic file writes shared by the exporters (a kill never leaves half a file)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
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
