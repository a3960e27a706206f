"""Issue 13 defect 6 (the simulators' CLI): ``python -m ocrclient.testing KIND --dialect NAME``
answers as the named model family writes, so every named remote backend reads ok pages from it
with ``ocr convert`` -- as a user trying the tool would run them -- and ``--no-auth`` works for
the RunPod simulator too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ocrclient.cli import app
from ocrclient.config import BackendConfig, list_profiles, resolve_config

from .pdfgen import text_pdf

#: the model given to the simulator and to ``ocr convert`` for profiles that name none
ANY_MODEL = "sim/ocr-model"


def remote_profiles() -> list[str]:
    return sorted(name for name in list_profiles() if resolve_config(name).transport != "local")


def simulator_args(cfg: BackendConfig) -> list[str]:
    """How a user starts the simulator that stands in for ``cfg``'s server."""
    if cfg.transport == "runpod":
        kind = "runpod"
    elif cfg.transport == "openai":
        if cfg.transport_options.get("modal"):
            kind = "modal"
        elif cfg.base_url_env == "RUNPOD_POD_BASE_URL":
            kind = "proxy"
        else:
            kind = "openai"
    elif cfg.transport == "ocular":
        kind = "ocular"
    else:  # a new kind of profile: say how to simulate it here
        raise AssertionError(f"no simulator for backend {cfg.name!r} (transport {cfg.transport!r})")
    args = [kind, "--dialect", cfg.dialect]
    if kind in ("openai", "proxy", "modal"):
        args += ["--model", cfg.model or ANY_MODEL]
    return args


class Sim:
    """A simulator CLI subprocess and what it printed."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.proc = subprocess.Popen([sys.executable, "-m", "ocrclient.testing", *args, "--port", "0"],
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
        self.info: dict[str, str] = {}

    def read(self) -> Sim:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.strip()
            if line == "serving until Ctrl-C":
                return self
            if " listening on " in line:
                self.info["url"] = line.rsplit(" ", 1)[1]
            elif line.startswith("MODAL_KEY="):
                self.info.update(kv.split("=", 1) for kv in line.split())  # type: ignore[misc]
            elif ":" in line:
                key, value = line.split(":", 1)
                self.info[key.strip()] = value.strip()
        raise AssertionError(f"simulator {self.args} exited: {self.proc.wait()}")

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(timeout=10) == 0


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Sim]]:
    """One simulator per remote profile, all started at once (their start-ups overlap)."""
    started = {name: Sim(simulator_args(resolve_config(name))) for name in remote_profiles()}
    try:
        yield {name: sim.read() for name, sim in started.items()}
    finally:
        for sim in started.values():
            sim.stop()


def test_every_remote_profile_has_a_simulator() -> None:
    names = remote_profiles()
    assert {"runpod-chandra", "runpod-pod-lightonocr2", "modal-lightonocr", "openai", "runpod"} <= set(names)
    for name in names:
        assert simulator_args(resolve_config(name))[1:3] == ["--dialect", resolve_config(name).dialect]


@pytest.mark.parametrize("backend", remote_profiles())
def test_ocr_convert_against_the_simulator_cli_gives_ok_pages(
    backend: str, sims: dict[str, Sim], tmp_path: Path
) -> None:
    sim, cfg = sims[backend], resolve_config(backend)
    pdf = text_pdf(tmp_path / "doc.pdf", [["First page"], ["Second page"]], size=(0, 0, 200, 120))
    args = ["convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", backend, "--base-url", sim.info["url"]]
    env = {"NO_COLOR": "1"}
    if cfg.transport == "runpod":
        args += ["--endpoint-id", sim.info["endpoint_id"]]
        env[cfg.api_key_env or "RUNPOD_API_KEY"] = sim.info["api_key"]
    elif "MODAL_KEY" in sim.info:
        env.update(MODAL_KEY=sim.info["MODAL_KEY"], MODAL_SECRET=sim.info["MODAL_SECRET"])
    elif "api_key" in sim.info:
        env[cfg.api_key_env or "OCRCLIENT_API_KEY"] = sim.info["api_key"]
    if not cfg.model:
        args += ["--model", ANY_MODEL]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, (result.output, result.stderr)
    doc: dict[str, Any] = json.loads((tmp_path / "out" / "doc.json").read_text())
    assert [p["status"] for p in doc["pages"]] == ["ok", "ok"], doc["pages"]
    assert all(p["markdown"].strip() and p["blocks"] for p in doc["pages"])


def test_runpod_simulator_cli_honours_no_auth(tmp_path: Path) -> None:
    sim = Sim(["runpod", "--no-auth", "--dialect", "olmocr"]).read()
    try:
        assert "api_key" not in sim.info
        health = httpx.get(f"{sim.info['url']}/{sim.info['endpoint_id']}/health", timeout=10)
        assert health.status_code == 200, health.text
        pdf = text_pdf(tmp_path / "doc.pdf", [["Only page"]], size=(0, 0, 200, 120))
        result = CliRunner().invoke(app, [
            "convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", "runpod-olmocr",
            "--base-url", sim.info["url"], "--endpoint-id", sim.info["endpoint_id"]],
            env={"NO_COLOR": "1", "RUNPOD_API_KEY": "any-key-at-all"})  # fmt: skip
        assert result.exit_code == 0, (result.output, result.stderr)
    finally:
        sim.stop()
