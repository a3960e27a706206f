"""What a killed run's writers leave beside the outputs is removed by the next run that writes
them (``exporters._io.sweep_leftovers``), and nothing else is.

A SIGKILL during ``-f html`` left ``.<stem>.<rand>.pages/`` (the viewer's page images, ~100 kB a
page) in OUT for good, as many times as runs were killed: gigabytes at thousands of pages.  The
whole kind: every name the writers use while they run (the spilled pages, the viewer's page
images, a file half written by ``atomic_write``), for the stem being written only (another
input's of a longer name, a user's own hidden file, are kept).  ``ocr convert`` sweeps a stem as
it opens, before its sink makes anything, holding the folder's lock; the killed run's leftovers
are checked from the command in tests/test_stopped_reruns.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from ocrclient.exporters._io import sweep_leftovers


def _made_by_the_writers(folder: Path, stem: str) -> list[Path]:
    """Each kind of leftover, named by the same calls the writers make."""
    spill = Path(tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".spill")[1])
    pages = Path(tempfile.mkdtemp(dir=folder, prefix=f".{stem}.", suffix=".pages"))
    (pages / "1.jpg").write_bytes(b"jpeg")
    half = Path(tempfile.mkstemp(dir=folder, prefix=f".{stem}.md.", suffix=".tmp")[1])
    return [spill, pages, half]


def test_a_killed_runs_leftovers_go_and_nothing_else(tmp_path: Path) -> None:
    old = _made_by_the_writers(tmp_path, "report")
    others = [*_made_by_the_writers(tmp_path, "report.v2"), *_made_by_the_writers(tmp_path, "memo")]
    mine = [tmp_path / ".report.notes", tmp_path / "report.md", tmp_path / ".report.spill"]
    for path in mine:
        path.write_text("the user's")
    removed = sweep_leftovers(tmp_path / "report")
    assert sorted(removed) == sorted(old)
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in [*others, *mine])


def test_a_folder_that_is_not_there_sweeps_nothing(tmp_path: Path) -> None:
    assert sweep_leftovers(tmp_path / "no" / "report") == []


def test_atomic_write_follows_the_umask_without_ever_setting_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A written file has 0666 less the umask, which the system applies as it makes the temp file:
    ``os.umask`` can only be read by setting it, and with the cache's recall entries written for
    every page from worker threads, a shard folder or output another thread made in that moment
    came out 0777."""
    import os

    from ocrclient.exporters._io import atomic_write

    if os.name != "posix":
        pytest.skip("file modes are POSIX's")
    real = os.umask
    for mask in (0o022, 0o027, 0o077):
        real(mask)
        try:
            monkeypatch.setattr(os, "umask", lambda _: pytest.fail("the umask was set"))
            path = atomic_write(tmp_path / f"out-{mask:o}.md", "text")
        finally:
            monkeypatch.setattr(os, "umask", real)
            real(0o022)
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, oct(path.stat().st_mode)
