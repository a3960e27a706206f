"""One ``ocr convert`` at a time writes into an output folder (per shard).  Two runs started
together into one folder both sent every page (22 jobs for 11 pages, four manifest lines),
neither said a word.  The kind: a second run into the folder while one runs (refused before it
sends anything, exit 2, naming the first run's pid), another shard into the same folder (goes
on), and a run after the first ended (goes on: the lock ends with its process, a kill too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrclient.testing import FaultPlan, OpenAISimulator

from .pdfgen import text_pdf


def _start(args: list[str], sim: OpenAISimulator, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OCRCLIENT_API_KEY": sim.api_key or "", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "ocrclient", "convert", *args, "--backend", "openai", "--base-url",
                             sim.base_url, "--model", "m", "--no-cache", "-c", "2"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _posts(sim: OpenAISimulator) -> int:
    return sim.requests["POST /v1/chat/completions"]


def _wait_for_posts(sim: OpenAISimulator, n: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while _posts(sim) < n:
        assert time.monotonic() < end, "the first run sent nothing"
        time.sleep(0.02)


#: enough documents that the first run is still sending when the second (a new process) is refused
DOCS = 12


@pytest.mark.parametrize("end", ["finishes", "is killed"])
def test_a_second_run_into_a_folder_being_written_is_refused(end: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(DOCS):
        text_pdf(docs / f"d{i}.pdf", [[f"doc {i}"]])
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.5)) as sim:
        first = _start([str(docs), "-o", "out"], sim, tmp_path)
        _wait_for_posts(sim, 1)
        end_by = time.monotonic() + 60
        while not (tmp_path / "out" / "manifest.jsonl").exists():  # (a document done: the refusal comes first)
            assert time.monotonic() < end_by, "the first run finished no document"
            time.sleep(0.02)
        second = _start([str(docs), "-o", "out"], sim, tmp_path)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2, (out, err)
        assert "another ocr convert" in err and f"pid {first.pid}" in err, err
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err
        if end == "is killed":
            first.send_signal(signal.SIGKILL)
        first.communicate(timeout=120)
        sent = _posts(sim)
        assert sent <= DOCS if end == "finishes" else sent < DOCS, sent
        again = _start([str(docs), "-o", "out"], sim, tmp_path)  # (the lock ended with the first run)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
    if end == "finishes":
        assert _posts(sim) == DOCS, "a page was sent twice"


def test_machines_converting_their_own_shards_into_one_folder_go_side_by_side(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(8):
        text_pdf(docs / f"d{i}.pdf", [[f"doc {i}"]])
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.2)) as sim:
        runs = [_start([str(docs), "-o", "out", "--shard", f"{i}/2"], sim, tmp_path) for i in range(2)]
        codes = [(r.communicate(timeout=120), r.returncode)[1] for r in runs]
    assert codes == [0, 0]
    assert _posts(sim) == 8
    assert sorted(p.name for p in (tmp_path / "out").glob("*.md")) == [f"d{i}.md" for i in range(8)]


_SHARDS = [None, "0/2", "1/2", "0/3", "2/3"]


@pytest.mark.parametrize("second", _SHARDS, ids=str)
@pytest.mark.parametrize("first", _SHARDS, ids=str)
def test_two_runs_whose_documents_may_overlap_never_write_one_folder_together(
    first: str | None, second: str | None, tmp_path: Path
) -> None:
    """Every pair of runs into one folder, unsharded or any shard: the second is refused exactly
    when the two may convert a document in common (an unsharded run beside a shard, or shards
    of different counts, both sent and paid for the same pages).  The overlap is taken from how
    ``--shard`` divides documents, over 200 names."""
    from ocrclient.cli.lock import hold, let_go
    from ocrclient.errors import InputError
    from ocrclient.outputs import in_shard as _in_shard
    from ocrclient.outputs import parse_shard as _parse_shard

    def docs(spec: str | None) -> set[str]:
        return {k for k in (f"d{i}.pdf" for i in range(200)) if _in_shard(k, _parse_shard(spec))}

    overlap = bool(docs(first) & docs(second))
    held = hold(tmp_path, first)
    assert held is not None  # (this file system has locks)
    try:
        try:
            let_go(hold(tmp_path, second))
            refused = ""
        except InputError as exc:
            refused = str(exc)
        assert bool(refused) == overlap, (first, second, refused)
        if refused:
            assert f"pid {os.getpid()}" in refused and "another ocr convert" in refused, refused
    finally:
        let_go(held)
    let_go(hold(tmp_path, second))  # (the first has ended: the second goes on)
