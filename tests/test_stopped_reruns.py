"""A rerun that stops keeps the outputs an earlier run wrote.

``ocr convert`` writes what finished of a stopped run's documents (Ctrl-C, a key refused, an
endpoint not found): partial results are kept.  But a rerun into the same folder (``--redo``, a
changed setting) that stops early had replaced every document it had not finished, complete
outputs from the earlier run included, with its few or no pages: an endpoint id mistyped on a
rerun emptied every markdown file and removed every figure folder, a Ctrl-C a second into a
``--redo`` of 21 documents left 9 pages of 112.  The kind: a rerun stopped before it reached a
document, while it was part-way through one, and after it finished one; and the same stop in a
folder without earlier outputs, where the partial documents are written as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ocrclient.testing import OpenAISimulator, SimReply

from .pdfgen import text_pdf

DOCS = ("a", "b", "c")


def _ocr(sim: OpenAISimulator, inputs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrclient", "convert", str(inputs), "-o", str(out), "--backend", "openai",
         "--base-url", sim.base_url, "--model", "m", "--no-cache", "--concurrency", "1", "--no-progress", *extra],
        env={**os.environ, "OCRCLIENT_API_KEY": str(sim.api_key)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _refusing_after(n: int) -> tuple[Any, list[OpenAISimulator]]:
    """A responder that answers ``n`` pages, then has the server refuse the key for the rest
    (a 401 stops the run); the simulator goes in the list once made."""
    sims: list[OpenAISimulator] = []
    seen = [0]

    def respond(body: dict[str, Any]) -> SimReply:
        seen[0] += 1
        if seen[0] >= n:
            sims[0].force_status = 401
        return SimReply(f"# Page read at request {seen[0]}\n\nSome text.")

    return respond, sims


def _last_entries(out: Path) -> dict[str, dict[str, Any]]:
    entries = {}
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        entries[Path(entry["input"]).stem] = entry
    return entries


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in DOCS:
        text_pdf(folder / f"{name}.pdf", [[f"{name} page 1"], [f"{name} page 2"]])
    return folder


@pytest.mark.parametrize("stop_at", [0, 1, 3])  # requests answered: none, one, a whole document and one
def test_a_stopped_rerun_keeps_the_earlier_outputs_it_had_not_bettered(inputs: Path, tmp_path: Path, stop_at: int) -> None:
    out = tmp_path / "out"
    with OpenAISimulator(model="m") as sim:
        first = _ocr(sim, inputs, out)
    assert first.returncode == 0, first.stderr
    before = {name: (out / f"{name}.md").read_bytes() for name in DOCS}
    respond, sims = _refusing_after(stop_at)
    with OpenAISimulator(model="m", responder=respond) as sim:
        sims.append(sim)
        if stop_at == 0:
            sim.force_status = 401
        rerun = _ocr(sim, inputs, out, "--redo", "--page-markers")
    assert rerun.returncode == 2, rerun.stderr
    assert "Traceback" not in rerun.stderr
    entries = _last_entries(out)
    finished = stop_at // 2  # documents the rerun finished before it stopped
    for i, name in enumerate(DOCS):
        md = (out / f"{name}.md").read_bytes()
        if i < finished:  # done by the rerun: its outputs replace the earlier ones
            assert md != before[name] and md.startswith(b"<!-- page 1 -->"), name
        else:  # not bettered: the earlier outputs and their manifest entry stay
            assert md == before[name], (name, md[:80])
            assert entries[name]["status"] == "ok" and entries[name]["ok"] == 2, entries[name]
    kept = len(DOCS) - finished
    assert f"kept the earlier outputs of {kept} document(s)" in rerun.stderr, rerun.stderr


def test_a_stopped_first_run_still_writes_what_finished(inputs: Path, tmp_path: Path) -> None:
    """Nothing earlier to keep: the stopped run writes its partial documents, as before; one it
    never reached (no page of it finished) has nothing to write, and a rerun converts it."""
    out = tmp_path / "out"
    respond, sims = _refusing_after(3)
    with OpenAISimulator(model="m", responder=respond) as sim:
        sims.append(sim)
        run = _ocr(sim, inputs, out)
    assert run.returncode == 2, run.stderr
    entries = _last_entries(out)
    assert [(entries[n]["ok"], entries[n]["failed"]) for n in DOCS[:2]] == [(2, 0), (1, 1)], entries
    assert all((out / f"{n}.md").is_file() and (out / f"{n}.json").is_file() for n in DOCS[:2])
    assert "c" not in entries and not (out / "c.md").exists() and not (out / "c.json").exists()
    assert "kept the earlier" not in run.stderr


def test_a_kept_document_whose_crops_the_stopped_run_replaced_is_converted_again(inputs: Path, tmp_path: Path) -> None:
    """Crops are written as pages finish, into the document's figure folder: a stopped rerun
    that keeps a document's earlier markdown has replaced the crops of the pages it finished
    (with another model's boxes, say).  The kept document is then not done: the next rerun
    converts it again and its crops match its markdown (before, it was skipped for good)."""
    from ocrclient.testing.responders import DialectResponder

    def figure_at(box: tuple[float, float, float, float]) -> Any:
        return lambda image: [("text", "Body.", (0.1, 0.05, 0.9, 0.15)), ("figure", "a chart", box)]

    state: dict[str, Any] = {"inner": DialectResponder("chandra", truth=figure_at((0.1, 0.2, 0.5, 0.7))), "stop": None, "n": 0}
    sims: list[OpenAISimulator] = []

    def respond(body: dict[str, Any]) -> SimReply:
        state["n"] += 1
        if state["stop"] is not None and state["n"] >= state["stop"]:
            sims[0].force_status = 401
        reply: SimReply = state["inner"](body)
        return reply

    out = tmp_path / "out"
    with OpenAISimulator(model="datalab-to/chandra", responder=respond) as sim:
        sims.append(sim)

        def ocr(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "ocrclient", "convert", str(inputs), "-o", str(out), "--backend", "openai",
                 "--base-url", sim.base_url, "--model", "datalab-to/chandra", "--dialect", "chandra", "--no-cache",
                 "--concurrency", "1", "--no-progress", *extra],
                env={**os.environ, "OCRCLIENT_API_KEY": str(sim.api_key)}, capture_output=True, text=True, timeout=120,
            )  # fmt: skip

        assert ocr().returncode == 0
        crops = {p.name: p.read_bytes() for p in (out / "a_figures").iterdir()}
        state.update(inner=DialectResponder("chandra", truth=figure_at((0.5, 0.2, 0.95, 0.4))), stop=1, n=0)
        stopped = ocr("--redo")  # a's page 1 answered with another box, then the key is refused
        assert stopped.returncode == 2 and "kept the earlier outputs of 3 document(s)" in stopped.stderr, stopped.stderr
        assert (out / "a_figures" / "page1_fig1.png").read_bytes() != crops["page1_fig1.png"]
        sim.force_status = None
        state.update(inner=DialectResponder("chandra", truth=figure_at((0.1, 0.2, 0.5, 0.7))), stop=None)
        again = ocr()
    assert again.returncode == 0 and "skipping 2 input(s) already done" in again.stderr, again.stderr  # b, c
    assert {p.name: p.read_bytes() for p in (out / "a_figures").iterdir()} == crops


def test_a_document_this_run_began_to_write_is_its_own(inputs: Path, tmp_path: Path) -> None:
    """Ctrl-C while a finished document's files are being written (the writing thread goes on):
    the stopped run keeps that document in its partial list, and its write stands, recorded in
    the manifest as written, even with fewer pages ok than the earlier run's (before, the
    earlier entry was 'kept' over files already replaced, and a rerun skipped it)."""
    from types import SimpleNamespace

    from rich.console import Console

    from ocrclient.cli.convert import _Emitter
    from ocrclient.document import Document, Page, RunStats
    from ocrclient.manifest import Manifest
    from ocrclient.pages import open_sources
    from ocrclient.run import ConvertResult

    out = tmp_path / "out"
    (src,) = open_sources([inputs / "a.pdf"])

    def doc(ok: set[int]) -> Document:
        pages = [Page(page=n, status="ok", markdown=f"page {n} read") if n in ok else Page(page=n, status="failed") for n in (1, 2)]
        return Document(source=src.name, backend="openai", pages=pages, stats=RunStats(pages=2, ok=len(ok), failed=2 - len(ok)))

    def emitter() -> _Emitter:
        manifest = Manifest(out, settings="s")
        manifest.formats = {"md": {}, "json": {}}
        return _Emitter(out, ["md", "json"], {"md": {}, "pdf": {}}, {src.key: out / "a"}, manifest, None, Console(stderr=True))

    first = emitter()
    assert first.writer is not None
    written = first.writer.finish(src, doc({1, 2}))
    first(ConvertResult(src, doc({1, 2}), written.paths, written.errors))
    first.close()
    rerun, stopped = emitter(), doc({1})
    assert rerun.writer is not None and rerun.manifest is not None
    rerun.writer.finish(src, stopped)  # the run's writing thread, which a Ctrl-C does not stop
    rerun.partial(SimpleNamespace(partial=[ConvertResult(src, stopped)]), "interrupted")  # type: ignore[arg-type]
    rerun.close()
    assert (out / "a.md").read_text(encoding="utf-8").strip() == "page 1 read"
    entry = _last_entries(out)["a"]
    assert (entry["ok"], entry["failed"]) == (1, 1)
    assert not Manifest(out, settings="s").done(src, backend="openai", model=None, pages=None, stem=out / "a")


def test_a_document_a_killed_run_began_to_replace_is_converted_again(inputs: Path, tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a power cut: nothing of the run runs after it) while a rerun
    replaces a finished document's files: its first page's figure crops were written over the
    earlier ones, the manifest's entry still said done, and the next run skipped the document
    with a markdown linking crops of other boxes.  The entry is now marked not done before the
    first file is replaced, so the next run converts it again; the documents the killed run
    never wrote stay done; and what the killed run left beside the outputs (the spilled pages)
    is removed."""
    import threading
    import time

    from ocrclient.testing.responders import DialectResponder

    def figure_at(box: tuple[float, float, float, float]) -> Any:
        return DialectResponder("chandra", truth=lambda image: [("text", "Body.", (0.1, 0.05, 0.9, 0.15)), ("figure", "a chart", box)])

    gate = threading.Event()
    state: dict[str, Any] = {"inner": figure_at((0.1, 0.2, 0.5, 0.7)), "answers": None}

    def respond(body: dict[str, Any]) -> SimReply:
        if state["answers"] is not None:
            state["answers"] -= 1
            if state["answers"] < 0:  # the killed run's later pages: held until it is gone
                gate.wait(60)
        reply: SimReply = state["inner"](body)
        return reply

    out = tmp_path / "out"
    with OpenAISimulator(model="datalab-to/chandra", responder=respond) as sim:
        argv = [sys.executable, "-m", "ocrclient", "convert", str(inputs), "-o", str(out), "--backend", "openai",
                "--base-url", sim.base_url, "--model", "datalab-to/chandra", "--dialect", "chandra", "--no-cache",
                "--concurrency", "1", "--no-progress"]  # fmt: skip
        env = {**os.environ, "OCRCLIENT_API_KEY": str(sim.api_key)}
        assert subprocess.run(argv, env=env, capture_output=True, timeout=120).returncode == 0
        crop = out / "a_figures" / "page1_fig1.png"
        first = crop.read_bytes()
        state.update(inner=figure_at((0.5, 0.2, 0.95, 0.4)), answers=1)
        killed = subprocess.Popen([*argv, "--redo"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not (crop.read_bytes() != first and list(out.glob(".a.*.spill"))) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            killed.kill()
            killed.wait()
            gate.set()
        assert crop.read_bytes() != first, "the killed run wrote no crop"
        left = list(out.glob(".a.*"))
        state.update(inner=figure_at((0.1, 0.2, 0.5, 0.7)), answers=None)
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "skipping 2 input(s) already done" in again.stderr, again.stderr  # b, c
    assert crop.read_bytes() == first
    assert left and not list(out.glob(".a.*")), left


KILLED_WHILE_WRITING = """\
import os, sys
from ocrclient.exporters import jsonout
def killed(*args, **kwargs):  # the markdown is written; the process dies before the JSON
    os._exit(9)
jsonout.write = killed
from ocrclient.console import main
sys.argv = ["ocr", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("formats", ["md,json", "md,json,txt,html,pdf"])
def test_a_new_document_killed_while_its_files_are_written_is_converted_by_the_rerun(
    formats: str, inputs: Path, tmp_path: Path
) -> None:
    """A run killed (the OOM killer, at a document's end when its big JSON is written) after a
    new document's markdown was written and before its manifest line: every rerun of the folder
    was refused, the markdown being "a file that no earlier run wrote".  The manifest now names
    a document's files, not done, before the first is written: the rerun converts it (from the
    cache), and the documents the killed run never reached go as usual.  Every format's writer
    runs in the rerun, the viewer's spilled page images included (the sweep of a killed run's
    leftovers once removed the run's own)."""
    out = tmp_path / "out"
    env = {**os.environ, "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"), "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg")}
    argv = ["convert", str(inputs / "a.pdf"), "-o", str(out), "--backend", "local", "-f", formats, "--no-progress"]
    script = tmp_path / "killed.py"
    script.write_text(KILLED_WHILE_WRITING)
    killed = subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 9 and (out / "a.md").is_file() and not (out / "a.json").exists(), killed.stderr
    again = subprocess.run([sys.executable, "-m", "ocrclient", *argv], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    for suffix in formats.split(","):
        assert (out / f"a.{suffix}").is_file(), suffix
    assert not [p for p in out.iterdir() if p.name.startswith(".")], list(out.iterdir())
    last = _last_entries(out)["a"]
    assert last["status"] == "ok" and not last["output_errors"]
    rerun = subprocess.run([sys.executable, "-m", "ocrclient", *argv], env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0 and "skipping 1 input(s) already done" in rerun.stderr, rerun.stderr
