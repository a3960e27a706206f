"""``ocr convert`` over many documents, stopped part-way from outside: what it writes and says.

A user's Ctrl-C on 3000 small PDFs wrote an empty ``.md`` and an all-"cancelled" ``.json`` (and a
"failed" manifest entry) for each of the ~2990 documents the run never reached, took 3.5-4 s to
do it, and ``--json`` printed nothing.  The kind: every way a run stops (SIGINT, SIGTERM, the key
refused mid-run) x ``--json`` or not: the documents a page of which finished are written and
recorded, the others are not (a rerun converts them, and says how many), the exit code is the
stop's, and ``--json`` still prints the summary with it, naming those others ``unfinished``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrclient.cli.progress import summary_json
from ocrclient.testing import CannedReply, FaultPlan, OpenAISimulator

from .pdfgen import text_pdf

DOCS = 30
#: how each stop is made, the exit code it gives and the word it is reported with
STOPS = {"SIGINT": (130, "interrupted"), "SIGTERM": (143, "terminated"), "key refused": (2, None),
         # a run a shell script started in the background (`ocr convert ... &`): SIGINT ignored
         # from its start, so SIGTERM has no Ctrl-C handling to borrow
         "SIGTERM, SIGINT ignored": (143, "terminated")}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("many")
    for i in range(DOCS):
        text_pdf(root / f"d{i:03d}.pdf", [[f"document {i} page 1"], [f"document {i} page 2"]])
    return root


def _manifest(out: Path) -> list[dict[str, object]]:
    """The documents recorded (not the lines naming a document's files before they are written)."""
    path = out / "manifest.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in lines if e.get("status") != "writing"]


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
@pytest.mark.parametrize("stop", list(STOPS))
def test_a_stopped_run_writes_the_documents_it_began_and_no_others(
    stop: str, as_json: bool, folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, said = STOPS[stop]
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=(0.15, 0.15))) as sim:
        argv = [sys.executable, "-m", "ocrclient.cli", "convert", str(folder), "-o", str(out), "--backend", "openai",
                "--base-url", sim.base_url, "--model", "m", "--no-cache", "--concurrency", "2", "--no-progress",
                *(["--json"] if as_json else [])]  # fmt: skip
        env = {**os.environ, "OCRCLIENT_API_KEY": str(sim.api_key), "NO_COLOR": "1", "COLUMNS": "200"}
        ignored = stop == "SIGTERM, SIGINT ignored"
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored else None)  # fmt: skip
        deadline = time.monotonic() + 60
        while len(_manifest(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)  # two documents done, the run going on
        if stop == "key refused":
            sim.force_reply = CannedReply(401, {"error": {"message": "Unauthorized", "type": "AuthError"}})
        else:
            proc.send_signal(getattr(signal, stop.split(",")[0]))
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    entries = _manifest(out)
    written = sorted(p.stem for p in out.glob("*.json"))
    assert 2 <= len(written) < DOCS, written
    assert sorted(Path(str(e["input"])).stem for e in entries) == written  # recorded = written
    for stem in written:  # each written document holds a finished page
        doc = json.loads((out / f"{stem}.json").read_text())
        assert any(p["status"] == "ok" for p in doc["pages"]), doc["pages"]
        assert (out / f"{stem}.md").read_text().strip()
    if said is not None:
        line = f"{said}: wrote {len(written)} document(s) with what had finished; {DOCS - len(written)} had no page finished"
        assert line in stderr, stderr
    if as_json:
        summary = json.loads(stdout)
        assert summary["exit_code"] == code
        why = {"key refused": "401"}.get(stop) or ("terminated" if code == 143 else "interrupted")
        assert why in summary["error"], summary["error"]  # (why it stopped)
        assert sorted(Path(d["source"]).stem for d in summary["documents"]) == written
        # the others are named too: a rerun converts them (the documents alone left them unsaid)
        unfinished = sorted(Path(d["source"]).stem for d in summary["unfinished"])
        assert sorted(written + unfinished) == [f"d{i:03d}" for i in range(DOCS)], summary
    else:
        assert stdout == ""


@pytest.mark.parametrize("gap_s", [0.0, 0.01, 0.05])
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_second_signal_right_after_the_first_loses_nothing(sig: str, gap_s: float, folder: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    """Ctrl-C or SIGTERM twice in a row (an impatient user, ``timeout`` then ``kill``): half such
    runs wrote nothing, no ``--json``, or died of the second SIGTERM (exit -15).  What finished is
    written, recorded and summed up, the exit code is the first signal's."""
    out = tmp_path / "out"
    code = {"SIGINT": 130, "SIGTERM": 143}[sig]
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=(0.15, 0.15))) as sim:
        argv = [sys.executable, "-m", "ocrclient.cli", "convert", str(folder), "-o", str(out), "--backend", "openai",
                "--base-url", sim.base_url, "--model", "m", "--no-cache", "--concurrency", "4", "--no-progress",
                "--json"]  # fmt: skip
        env = {**os.environ, "OCRCLIENT_API_KEY": str(sim.api_key), "NO_COLOR": "1"}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(_manifest(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(getattr(signal, sig))
        time.sleep(gap_s)
        proc.send_signal(getattr(signal, sig))
        stdout, stderr = proc.communicate(timeout=60)
    # (a second signal landing once all is written and the handlers are given back ends the
    # exiting process by that signal: nothing is lost then)
    assert proc.returncode in (code, -getattr(signal, sig)), stderr
    assert "Traceback" not in stderr, stderr
    written = sorted(p.stem for p in out.glob("*.json"))
    assert len(written) >= 2
    assert sorted(Path(str(e["input"])).stem for e in _manifest(out)) == written
    summary = json.loads(stdout)
    assert summary["exit_code"] == code
    assert sorted(Path(d["source"]).stem for d in summary["documents"]) == written
    said = {"SIGINT": "interrupted", "SIGTERM": "terminated"}[sig]
    assert f"{said}: wrote {len(written)} document(s)" in stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ocr_bench_stopped_by_a_signal_cancels_its_jobs_and_says_so(sig: str, folder: Path, tmp_path: Path) -> None:
    """``ocr bench`` stopped by Ctrl-C or SIGTERM: its RunPod jobs in flight are cancelled at
    the endpoint, the exit is 130 / 143 and ``--json`` says why (SIGTERM killed it: exit -15, no
    JSON, ten ``/run`` jobs left running and billing)."""
    from ocrclient.testing import RunPodSimulator

    code = {"SIGINT": 130, "SIGTERM": 143}[sig]
    with RunPodSimulator(plan=FaultPlan(latency_s=(3.0, 3.0), slots=4)) as sim:
        argv = [sys.executable, "-m", "ocrclient.cli", "bench", str(folder / "d000.pdf"), str(folder / "d001.pdf"),
                "--backend", "runpod-olmocr", "--base-url", sim.base_url, "--endpoint-id", sim.endpoint_id,
                "--mode", "run", "-c", "4", "--json"]  # fmt: skip
        env = {**os.environ, "RUNPOD_API_KEY": sim.api_key, "NO_COLOR": "1", "OCRCLIENT_CONFIG_DIR": str(tmp_path / "c")}
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while sim.jobs_submitted < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        time.sleep(0.3)  # (their ids known: each /run answered)
        proc.send_signal(getattr(signal, sig))
        stdout, stderr = proc.communicate(timeout=60)
        cancels = sim.cancels_received
    assert proc.returncode == code, (proc.returncode, stderr)
    assert json.loads(stdout)["exit_code"] == code and "Traceback" not in stderr
    assert cancels >= 4, cancels


@pytest.mark.parametrize(("command", "sig"), [("convert", "SIGINT"), ("convert", "SIGTERM"), ("health", "SIGTERM")])
def test_a_signal_while_the_command_starts_ends_it_cleanly(sig: str, command: str, tmp_path: Path) -> None:
    """Ctrl-C in the first ~0.4 s of ``ocr`` (while it imports, parses, opens the inputs and
    loads the engine) printed a traceback from inside some import, or -- inside NumPy's import
    under onnxruntime -- "the local backend needs rapidocr and onnxruntime (import numpy
    failed)", exit 2; elsewhere typer turned it into a silent exit 130 with no ``--json``; and
    SIGTERM ended the process with neither.  The whole kind: each signal at moments spread over
    the start and the run of ``ocr convert`` with the default backend, and SIGTERM (the one with
    no handling of Python's own) at the start of another command:
    whenever it lands, no traceback, the stop's exit code and ``--json``'s object saying so (or,
    when it came too late, the command's own end)."""
    pdf = text_pdf(tmp_path / "doc.pdf", [[f"page {i} line {j}" for j in range(30)] for i in range(30)])
    argv = {"convert": ["convert", str(pdf), "-o", str(tmp_path / "out"), "--no-progress", "--json"],
            "health": ["health", "--backend", "local", "--json"]}[command]  # fmt: skip
    env = {**os.environ, "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"), "OCRCLIENT_CONFIG_DIR": str(tmp_path / "config"),
           "NO_COLOR": "1"}  # fmt: skip
    code, word = {"SIGINT": (130, "interrupted"), "SIGTERM": (143, "terminated")}[sig]
    outcomes = []
    for delay in (0.0, 0.05, 0.15, 0.3, 0.5, 0.8, 1.2) if command == "convert" else (0.0, 0.1, 0.3):
        proc = subprocess.Popen([sys.executable, "-m", "ocrclient", *argv], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        # from the moment ocr takes SIGTERM (before it, the interpreter is still starting and
        # Python's own handling applies): its bit in the process's caught-signal mask
        started = time.monotonic()
        while not _catches(proc.pid, signal.SIGTERM) and proc.poll() is None and time.monotonic() - started < 30:
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=60)
        assert "Traceback" not in err and "import numpy failed" not in err, (delay, err[-1500:])
        said = json.loads(out)  # (one JSON object, whenever the signal came)
        if proc.returncode == code:
            assert said["error"] == word and said["exit_code"] == code, (delay, said)
            assert said.keys() == (SUMMARY_KEYS if command == "convert" else {"ok", "error", "exit_code"}), said
            assert word in err, (delay, err)
        else:  # (it had ended by then)
            assert proc.returncode == 0 and said.get("error") is None, (delay, proc.returncode, said, err[-800:])
        outcomes.append(proc.returncode)
    assert outcomes[0] == code, outcomes  # (the first moments are the start's)


#: the keys of ``ocr convert --json``'s summary (what a run stopped at its start prints too)
SUMMARY_KEYS = json.loads(summary_json([], 0.0, 0)).keys()


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (Linux: ``SigCgt`` in its status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return bool(mask >> (signum - 1) & 1)
