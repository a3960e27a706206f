"""Every example in examples/ runs in CI against the simulators: each script is run as a
subprocess with no cloud credentials in its environment, must exit 0 and print what it promises.
Other options and the env-var branches of four examples run in-process (cheaper), with the
"cloud" being a simulator started here (so the scripts' real-cloud path is proven to pick up
the variables)."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocrclient.testing import OcularSimulator, OpenAISimulator, RunPodSimulator

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CLOUD_VARS = re.compile(r"^(RUNPOD_|OCRCLIENT_|MODAL_)")
TIMEOUT_S = 150


@dataclass
class Run:
    name: str
    proc: subprocess.Popen[str]
    out: str = ""
    err: str = ""
    code: int | None = None

    def wait(self) -> Run:
        if self.code is None:
            try:
                self.out, self.err = self.proc.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.out, self.err = self.proc.communicate()
            self.code = self.proc.returncode
        return self


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not CLOUD_VARS.match(k)}
    env["OCRCLIENT_CACHE_DIR"] = str(tmp / "cache")
    env["OCRCLIENT_CONFIG_DIR"] = str(tmp / "config")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Start every example at once (they are mostly waiting on sockets), collect lazily."""
    tmp = tmp_path_factory.mktemp("examples")
    names = ["local_cpu", "runpod_serverless", "runpod_pod_vllm", "modal_endpoint", "ocular_trocr",
             "streaming_progress", "batch_resume"]
    started: dict[str, Run] = {}
    try:
        for name in names:
            proc = subprocess.Popen(
                [sys.executable, str(EXAMPLES / f"{name}.py")], cwd=tmp, env=_env(tmp / name),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            started[name] = Run(name, proc)
        yield started
    finally:
        for run in started.values():
            if run.proc.poll() is None:
                run.proc.kill()


def ok(runs: dict[str, Run], name: str) -> str:
    run = runs[name].wait()
    assert run.code == 0, f"{name} exited {run.code}\nstdout:\n{run.out[-3000:]}\nstderr:\n{run.err[-3000:]}"
    assert "Traceback" not in run.err
    return run.out


def test_every_example_is_covered() -> None:
    # the Python API's typed examples (api_*.py) are run and type-checked by test_api_examples.py
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - {"make_sample.py"} - {p.name for p in EXAMPLES.glob("api_*.py")}
    assert scripts == {"local_cpu.py", "runpod_serverless.py", "runpod_pod_vllm.py", "modal_endpoint.py",
                       "ocular_trocr.py", "streaming_progress.py", "batch_resume.py"}


def test_local_cpu(runs: dict[str, Run]) -> None:
    out = ok(runs, "local_cpu")
    truth = json.loads((EXAMPLES / "sample.truth.json").read_text())
    title = truth["pages"][0]["lines"][0]
    assert out.splitlines()[0].startswith("target: local")
    assert re.search(r"^page 1: ok, \d+ blocks, 612 x 792 pt", out, re.M)
    # the title line is read, and its box lands within a few points of the truth
    m = re.search(r"\[([\d, ]+)\]\s+" + re.escape(title["text"]), out)
    assert m, out
    box = [float(v) for v in m.group(1).split(",")]
    assert all(abs(a - b) <= 6 for a, b in zip(box, title["box"], strict=True)), (box, title["box"])
    assert "done: 1 pages, 1 ok, 0 failed" in out


def test_runpod_serverless(runs: dict[str, Run]) -> None:
    out = ok(runs, "runpod_serverless")
    assert out.startswith("target: simulator (RunPodSimulator at http://127.0.0.1:")
    for n in range(1, 5):
        assert re.search(rf"^page {n}: ok, 3 blocks, \d attempt\(s\), first block 'section_header'", out, re.M)
    jobs = int(re.search(r"simulator: (\d+) jobs submitted", out).group(1))  # type: ignore[union-attr]
    assert jobs >= 4
    assert "done: 4 pages, 4 ok, 0 failed" in out


def test_runpod_pod_vllm(runs: dict[str, Run]) -> None:
    out = ok(runs, "runpod_pod_vllm")
    assert out.startswith("target: simulator (OpenAISimulator mode=proxy")
    assert "simulator: 4 streamed replies, 0 proxy 524s, 0 cut streams" in out
    assert "done: 4 pages, 4 ok, 0 failed" in out


def test_modal_endpoint(runs: dict[str, Run]) -> None:
    out = ok(runs, "modal_endpoint")
    assert out.startswith("target: simulator (OpenAISimulator mode=modal")
    m = re.search(r"simulator: (\d+) replies fetched through a 303 redirect, 0 unauthorized", out)
    assert m and int(m.group(1)) >= 1, out
    assert "done: 4 pages, 4 ok, 0 failed" in out


def test_ocular_trocr(runs: dict[str, Run]) -> None:
    out = ok(runs, "ocular_trocr")
    assert out.startswith("target: simulator (OcularSimulator at http://127.0.0.1:")
    assert len(re.findall(r"^page \d: ok, 1 blocks, confidence 0\.91", out, re.M)) == 2
    assert "simulator: 2 POST /extract_text requests" in out
    assert "done: 2 pages, 2 ok, 0 failed" in out


def test_streaming_progress(runs: dict[str, Run]) -> None:
    out = ok(runs, "streaming_progress")
    assert out.startswith("target: simulator (RunPodSimulator")
    for n in range(1, 5):
        started = out.index(f"event: page {n} started (attempt 1)")
        done = out.index(f"event: page {n} done: ok")
        arrived = out.index(f"page {n} arrived: ok")
        assert started < done < arrived
    order = re.search(r"arrival order: \[([\d, ]+)\]", out)
    assert order and sorted(int(v) for v in order.group(1).split(",")) == [1, 2, 3, 4]
    assert "done: 4 pages, 4 ok, 0 failed" in out


def test_batch_resume_second_run_sends_nothing(runs: dict[str, Run]) -> None:
    out = ok(runs, "batch_resume")
    assert ("run 1: 2 documents, 5 pages (0 failed), 5 requests sent, 0 pages from cache "
            "(simulator received 5 jobs)") in out
    assert ("run 2: 2 documents, 5 pages (0 failed), 0 requests sent, 5 pages from cache "
            "(simulator received 0 jobs)") in out


# -- in-process runs (cheaper than a subprocess each): other options and the env branches ----------


def run_main(script: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``examples/<script>``'s ``main(argv)`` in this process; its stdout."""
    module = runpy.run_path(str(EXAMPLES / script), run_name="example")
    capsys.readouterr()
    code = module["main"](argv)
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return out


@pytest.fixture
def no_cloud_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if CLOUD_VARS.match(key):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OCRCLIENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OCRCLIENT_CONFIG_DIR", str(tmp_path / "config"))


@pytest.mark.usefixtures("no_cloud_env")
def test_runpod_serverless_chandra_boxes(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_main("runpod_serverless.py", ["--backend", "runpod-chandra", "--pages", "1,4"], capsys)
    assert "backend runpod-chandra" in out
    # Chandra answers boxes on a 0-1024 grid; they come back in points of each page as displayed
    portrait = re.search(r"^page 1: ok, .* at \[(\d+), (\d+), (\d+), (\d+)\]", out, re.M)
    landscape = re.search(r"^page 4: ok, .* at \[(\d+), (\d+), (\d+), (\d+)\]", out, re.M)
    assert portrait and landscape, out
    assert 0 < int(portrait.group(3)) <= 612 and 612 < int(landscape.group(3)) <= 792
    assert "done: 2 pages, 2 ok, 0 failed" in out


@pytest.mark.usefixtures("no_cloud_env")
def test_cloud_branches_use_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With the variables set, each example takes its real-cloud branch: a simulator plays the cloud."""
    with OpenAISimulator(mode="proxy", model="lightonai/LightOnOCR-2-1B") as pod:
        monkeypatch.setenv("RUNPOD_POD_BASE_URL", pod.base_url)
        monkeypatch.setenv("OCRCLIENT_API_KEY", str(pod.api_key))
        out = run_main("runpod_pod_vllm.py", ["--pages", "1"], capsys)
        assert out.startswith(f"target: RunPod pod ({pod.base_url})") and "simulator:" not in out
        assert "done: 1 pages, 1 ok" in out and pod.requests["POST /v1/chat/completions"] == 1
    with OpenAISimulator(mode="modal", model="lightonai/LightOnOCR-1B-1025") as modal:
        monkeypatch.setenv("MODAL_LIGHTONOCR_URL", modal.base_url)
        monkeypatch.setenv("MODAL_KEY", modal.modal_headers["Modal-Key"])
        monkeypatch.setenv("MODAL_SECRET", modal.modal_headers["Modal-Secret"])
        out = run_main("modal_endpoint.py", ["--pages", "2"], capsys)
        assert out.startswith(f"target: Modal ({modal.base_url}, with proxy auth)")
        assert "done: 1 pages, 1 ok" in out and modal.statuses[401] == 0
    with RunPodSimulator() as rp:
        # RunPod's base URL has no variable: a user config table moves it (the example passes nothing)
        config = tmp_path / "rp-config"
        config.mkdir()
        (config / "config.toml").write_text(
            f'[backends.runpod-chandra]\nbase_url = "{rp.base_url}"\n'
            '[backends.runpod-chandra.transport_options]\npoll_interval_s = 0.05\n')
        monkeypatch.setenv("OCRCLIENT_CONFIG_DIR", str(config))
        monkeypatch.setenv("RUNPOD_API_KEY", rp.api_key)
        monkeypatch.setenv("RUNPOD_CHANDRA_ENDPOINT_ID", rp.endpoint_id)
        out = run_main("runpod_serverless.py", ["--backend", "runpod-chandra", "--pages", "1"], capsys)
        assert out.startswith(f"target: RunPod cloud (endpoint {rp.endpoint_id}, backend runpod-chandra)")
        assert "simulator:" not in out and rp.jobs_submitted == 1
        monkeypatch.delenv("RUNPOD_API_KEY")
    with OcularSimulator() as ocular:
        monkeypatch.setenv("OCRCLIENT_BASE_URL", ocular.url)
        out = run_main("ocular_trocr.py", ["--pages", "3"], capsys)
        assert out.startswith(f"target: ocular HTTP server ({ocular.url}")
        assert "done: 1 pages, 1 ok" in out and ocular.requests["POST /extract_text"] == 1


def test_examples_take_an_input_path(tmp_path: Path) -> None:
    """A bad path is a one-line error and exit 2, not a traceback."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "ocular_trocr.py"), str(tmp_path / "missing.pdf")],
        capture_output=True, text=True, timeout=TIMEOUT_S, env=_env(tmp_path),
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert time.monotonic() - t0 < TIMEOUT_S
