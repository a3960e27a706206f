"""The ``ocr`` console script (:mod:`ocrclient.console`): the garbage collector is off while the
command starts and on again for the run (start-up's objects frozen first), on every way out.

Each case runs the script's ``main`` in a fresh interpreter, as the installed ``ocr`` does, with
a probe that records the collector's state when typer is imported (start-up), when each page
request is sent (the run) and after ``main`` returns or exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ocrclient.testing import OpenAISimulator

from .pdfgen import text_pdf

ROOT = Path(__file__).resolve().parents[1]

PROBE = """\
import gc, json, sys
seen = {"typer": None, "sends": [], "frozen": [], "after": None, "code": None}
def hook(event, args):
    if event == "import" and args[0] == "typer" and seen["typer"] is None:
        seen["typer"] = gc.isenabled()
sys.addaudithook(hook)
import httpx
real_send = httpx.AsyncClient.send
async def send(self, request, **kw):
    seen["sends"].append(gc.isenabled())
    seen["frozen"].append(gc.get_freeze_count())
    return await real_send(self, request, **kw)
httpx.AsyncClient.send = send
from ocrclient.console import main
sys.argv = ["ocr", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    seen["code"] = exc.code
seen["after"] = gc.isenabled()
print("PROBE " + json.dumps(seen))
"""


def _probe(tmp_path: Path, *args: str, **extra_env: str) -> dict[str, object]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OCRCLIENT_", "VLLM_", "OPENAI_"))}
    env.update(NO_COLOR="1", OCRCLIENT_CACHE_DIR=str(tmp_path / "cache"), OCRCLIENT_CONFIG_DIR=str(tmp_path / "cfg"), **extra_env)
    run = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=120)
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("PROBE ")), None)
    assert line is not None, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    return dict(json.loads(line[len("PROBE ") :]))


def test_the_installed_ocr_script_is_the_console_entry() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"ocr": "ocrclient.console:main"}


def test_convert_starts_without_collection_and_runs_with_it(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [["one"], ["two"], ["three"]], size=(0, 0, 200, 120))
    with OpenAISimulator() as sim:
        seen = _probe(tmp_path, "convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", "openai",
                      "--base-url", sim.base_url, "--model", sim.model, "--api-key-env", "SIM_KEY",
                      "--no-cache", "-q", SIM_KEY=str(sim.api_key))  # fmt: skip
    assert seen["typer"] is False  # the command line was imported with the collector off
    sends = seen["sends"]
    assert isinstance(sends, list) and len(sends) >= 3 and all(sends)  # every request: on
    # start-up's objects were frozen before collection came back (else the first collection
    # walks all of them, on the way to the first request)
    frozen = seen["frozen"]
    assert isinstance(frozen, list) and min(frozen) > 10_000, frozen
    assert seen["code"] in (None, 0) and seen["after"] is True
    assert (tmp_path / "out" / "doc.md").exists()


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["backends"], ["convert", "/no/such/file.pdf", "-o", "out"], ["convert"], ["nonsense"]],
    ids=["version", "help", "backends", "missing-input", "no-input", "unknown-command"],
)
def test_every_way_out_leaves_collection_on(tmp_path: Path, args: list[str]) -> None:
    seen = _probe(tmp_path, *args)
    assert seen["typer"] is False and seen["after"] is True, seen
    if args[0] == "convert":
        assert seen["code"] == 2 and seen["sends"] == [], seen


def test_python_dash_m_ocrclient_is_the_same_command(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "ocrclient", "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("ocrclient "), (run.stdout, run.stderr)


def test_importing_the_package_or_the_cli_leaves_collection_alone() -> None:
    code = "import gc, ocrclient, ocrclient.cli, ocrclient.console; print(gc.isenabled())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "True", run.stderr
