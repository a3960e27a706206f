"""One ``ocr convert`` at a time per output folder (and shard): the folder made once every
setting is checked and held for the run (:func:`output_folder`), let go when it ends
(:func:`let_go`); a run into a folder another run is writing is refused (:func:`hold`)."""

from __future__ import annotations

import contextlib
import os
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
    """One ``ocr convert`` at a time per output folder (and shard: machines converting their own
    shards into one shared folder go on side by side): a second run into it, started while the
    first ran, sent every page again (both paid, both wrote).  An advisory lock on a file in the
    folder, dropped by the system when the process ends however it ends; where the platform or
    the file system has no such locks the run goes on unheld."""
    try:
        import fcntl
    except ImportError:  # (Windows)
        return None
    name = ".ocrclient.lock" if not shard else f".ocrclient-shard-{shard.replace('/', '-of-')}.lock"
    try:
        fh = open(out / name, "a+")  # noqa: SIM115 - held open for the run
    except OSError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        pid = fh.read().strip() or "?"
        fh.close()
        raise InputError(f"-o {out}: another ocr convert (pid {pid}) is writing there now{' for shard ' + shard if shard else ''}; "
                         "wait for it to end, or give another -o") from None  # fmt: skip
    except OSError:  # (a file system without locks)
        fh.close()
        return None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh
