"""A profile's default concurrency is the slots of one worker of the server it targets.

The product's rule: ``--concurrency`` = the endpoint's slots keeps every GPU slot busy and queues
no job beyond the workers (a deeper queue makes RunPod's autoscaler start, and bill, more
workers).  A user with N workers passes ``-c`` N x slots, so the default is ONE worker's slots.
They disagreed: olmOCR / RolmOCR sent 16 to workers taking 32 jobs each (half of every GPU
idle), DeepSeek-OCR 16 to workers taking 8 and TrOCR 8 to workers taking 4 (a queue that starts
a second worker), the LightOnOCR-2 pod 32 to a vLLM batching 64.

The whole kind: for every profile (``backends/NAME.toml``) whose server is in ``deploy/NAME/``,
its ``concurrency`` equals what that server's shipped files make one worker take at once, read
from those files (no table copied here): a RunPod worker-v1-vllm endpoint's ``endpoint.env``
``MAX_CONCURRENCY``; a pod's ``serve.sh`` ``--max-num-seqs`` (the sequences vLLM batches), from
the command it runs; our workers' ``concurrency_modifier`` under their Dockerfile's ``ENV``; a
Modal app's ``max_inputs``.  A new kind of server fails here until it is given a reader.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, load_module

ROOT = DEPLOY.parent
#: a deploy/ folder holding no server of its own
SHARED = {"ocrworker"}


def _servers() -> set[str]:
    return {p.name for p in DEPLOY.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))} - SHARED


PROFILES = sorted(p.stem for p in (ROOT / "backends").glob("*.toml") if p.stem in _servers())


def _default_concurrency(name: str) -> int:
    return int(tomllib.loads((ROOT / "backends" / f"{name}.toml").read_text())["concurrency"])


def _env_file(path: Path) -> dict[str, str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _dockerfile_env(path: Path) -> dict[str, str]:
    """The ``ENV k=v ...`` pairs of a Dockerfile (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text()) if path.exists() else ""
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().startswith("ENV "):
            env.update(pair.split("=", 1) for pair in shlex.split(line.strip()[4:]) if "=" in pair)
    return env


def _vllm_serve_max_num_seqs(script: Path, tmp_path: Path) -> int:
    """Run the pod's serve script with a stand-in ``vllm`` that prints its arguments."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vllm").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (bin_dir / "vllm").chmod(0o755)
    (tmp_path / "serve.sh").write_text(script.read_text().replace("/workspace/", f"{tmp_path}/"))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "VLLM_API_KEY": "k"}
    res = subprocess.run([bash, str(tmp_path / "serve.sh")], capture_output=True, text=True, env=env, timeout=30)
    assert res.returncode == 0, res.stderr
    args = res.stdout.splitlines()
    assert args[0] == "serve" and "--max-num-seqs" in args, args
    return int(args[args.index("--max-num-seqs") + 1])


def worker_slots(folder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """The jobs (requests) one worker of the server in ``folder`` takes at once, as shipped."""
    for var in ("MAX_CONCURRENCY", "MAX_NUM_SEQS", "MAX_INPUTS", "OCRWORKER_STANDIN"):
        monkeypatch.delenv(var, raising=False)
    if (folder / "endpoint.env").exists():  # RunPod's worker-v1-vllm, configured by its env
        env = _env_file(folder / "endpoint.env")
        assert "MAX_CONCURRENCY" in env, f"{folder.name}/endpoint.env leaves the jobs per worker to the image"
        return int(env["MAX_CONCURRENCY"])
    if (folder / "serve.sh").exists():  # `vllm serve` on a pod: what vLLM batches
        return _vllm_serve_max_num_seqs(folder / "serve.sh", tmp_path)
    if (folder / "handler.py").exists():  # our RunPod worker image
        for key, value in _dockerfile_env(folder / "Dockerfile").items():
            monkeypatch.setenv(key, value)
        mod = load_module(f"slots_{folder.name.replace('-', '_')}", folder / "handler.py")
        modifier = mod.WORKER.concurrency_modifier if hasattr(mod, "WORKER") else mod.concurrency_modifier
        return int(modifier(1))
    if (folder / "app.py").exists() and "@modal.concurrent(max_inputs=MAX_INPUTS)" in (folder / "app.py").read_text():
        pytest.importorskip("modal", reason="modal is not installed (it is in the dev extra)")
        return int(load_module(f"slots_{folder.name.replace('-', '_')}", folder / "app.py").MAX_INPUTS)
    pytest.fail(f"deploy/{folder.name}: no reader for how many jobs one worker takes; add one here")


def test_every_server_has_its_profile() -> None:
    assert set(PROFILES) == _servers(), _servers() - set(PROFILES)
    assert len(PROFILES) >= 7, PROFILES


@pytest.mark.parametrize("name", PROFILES)
def test_a_profiles_default_concurrency_is_one_workers_slots(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slots = worker_slots(DEPLOY / name, monkeypatch, tmp_path)
    assert slots >= 1
    assert _default_concurrency(name) == slots, (
        f"backends/{name}.toml concurrency = {_default_concurrency(name)}, but one worker of "
        f"deploy/{name} takes {slots} at once"
    )


def test_the_docs_state_each_profiles_default() -> None:
    """docs/backends.md's section of each profile states the concurrency the profile ships."""
    docs = (ROOT / "docs" / "backends.md").read_text()
    for name in PROFILES:
        match = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", docs, re.S | re.M)
        assert match, f"docs/backends.md has no section for {name}"
        stated = re.search(r"Settings: concurrency (\d+)", match.group(1).replace("\n", " "))
        assert stated and int(stated.group(1)) == _default_concurrency(name), (name, stated)


def test_the_reader_sees_a_changed_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The slots come from the files: a pod's serve.sh started with another default reads so."""
    folder = tmp_path / "pod"
    folder.mkdir()
    text = (DEPLOY / "runpod-pod-lightonocr2" / "serve.sh").read_text()
    assert 'MAX_NUM_SEQS="${MAX_NUM_SEQS:-' in text
    (folder / "serve.sh").write_text(re.sub(r"MAX_NUM_SEQS:-\d+", "MAX_NUM_SEQS:-7", text))
    work = tmp_path / "work"
    work.mkdir()
    assert worker_slots(folder, monkeypatch, work) == 7
    assert os.environ.get("MAX_CONCURRENCY") is None
