"""ruff and mypy are part of the test suite, so the one test command checks them too."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.parametrize(
    "cmd",
    [
        [sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks", "examples", "deploy"],
        [sys.executable, "-m", "mypy"],
    ],
    ids=["ruff", "mypy"],
)
def test_static_checks(cmd: list[str]) -> None:
    if shutil.which(cmd[2]) is None and subprocess.run([*cmd[:3], "--version"], capture_output=True).returncode:
        pytest.fail(f"{cmd[2]} is not installed (pip install -e '.[dev]')")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
