"""One ``ocr convert`` at a time per output folder (or per shard of one): the folder made once every
setting is checked and held for the run (:func:`output_folder`), let go when it ends
(:func:`let_go`); a run into a folder another run is writing is refused (:func:`hold`)."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["hold", "let_go", "output_folder"]


def output_folder(out: Path | None, shard: str | None = None) -> Any:
    """Make ``-o``'s folder once every setting is checked, before anything is sent (one line
    when it cannot be; a refused run leaves none behind), and hold it for this run: the held
    lock (:func:`hold`) to :func:`let_go` when the run ends."""
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"-o {out}: cannot make the output folder ({exc.strerror or exc})") from None
        return hold(out, shard)
    return None


def let_go(held: Any) -> None:
    """The run's lock file removed and let go (a run killed leaves it, unlocked: harmless)."""
    if held is not None:
        with contextlib.suppress(OSError):
            os.unlink(held.name)
        held.close()


def hold(out: Path, shard: str | None) -> Any:
    """One ``ocr convert`` at a time per output folder, or per shard of one: machines converting
    their own shards (``i/n`` and ``j/n``, the same ``n``) into one shared folder go on side by
    side.  A second run into it while the first ran sent every page again (both paid, both
    wrote), and so did an unsharded run beside a shard, or shards of different counts (``0/2``
    beside ``0/3``): their documents overlap.  Each run holds an advisory lock on a file of its
    own in the folder (dropped by the system when the process ends however it ends), then looks
    at the lock of every run whose documents may overlap its own: one held is a run still
    writing, and this one is refused naming it.  Of two such runs started at once, one sees the
    other's lock (or both do, and both are refused); never neither.  Where the platform or the
    file system has no such locks the run goes on unheld."""
    try:
        import fcntl
    except ImportError:  # (Windows)
        return None
    mine = _lock_name(shard)
    try:
        fh = open(out / mine, "a+")  # noqa: SIM115 - held open for the run
    except OSError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        _refuse(out, out / mine)
    except OSError:  # (a file system without locks)
        fh.close()
        return None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    for other in sorted(out.glob(".ocrclient*.lock")):
        if other.name != mine and _overlap(_shard_of(other.name), _shard_of(mine)) and _held(other):
            let_go(fh)
            _refuse(out, other)
    return fh


#: a lock file's name: the folder's (an unsharded run) or one shard's
_LOCK = re.compile(r"^\.ocrclient(?:-shard-(\d+)-of-(\d+))?\.lock$")


def _lock_name(shard: str | None) -> str:
    if not shard:
        return ".ocrclient.lock"
    from ..outputs import parse_shard  # (the plan's reading of --shard, checked there already)

    i, n = parse_shard(shard) or (0, 1)
    return f".ocrclient-shard-{i}-of-{n}.lock"


def _shard_of(name: str) -> tuple[int, int] | None:
    """The shard ``(i, n)`` a lock file's run converts (an unsharded run's: ``(0, 1)``, every
    document); ``None`` for a file that is no run's lock."""
    m = _LOCK.match(name)
    if m is None:
        return None
    return (int(m[1]), int(m[2])) if m[1] is not None else (0, 1)


def _overlap(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    """Whether runs of shards ``a`` and ``b`` may convert a document in common: shards ``i/n``
    and ``j/n`` with ``i != j`` never do; shards of different counts may."""
    if a is None or b is None:
        return False
    return a[0] == b[0] if a[1] == b[1] else True


def _held(path: Path) -> bool:
    """Whether a run holds ``path``'s lock now (a file left by a run that was killed is not)."""
    import fcntl

    try:
        with open(path) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _refuse(out: Path, held: Path) -> None:
    """The run is refused: another writes ``out``, holding the lock ``held``."""
    try:
        pid = held.read_text().strip() or "?"
    except OSError:
        pid = "?"
    shard = _shard_of(held.name) or (0, 1)
    what = f" for shard {shard[0]}/{shard[1]}" if shard[1] > 1 else ""
    raise InputError(f"-o {out}: another ocr convert (pid {pid}) is writing there now{what}; "
                     "wait for it to end, or give another -o") from None  # fmt: skip
