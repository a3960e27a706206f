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


def _modules_with_examples() -> list[str]:
    import doctest
    import importlib
    import pkgutil

    import ocrclient

    finder = doctest.DocTestFinder()
    names = [m.name for m in pkgutil.walk_packages(ocrclient.__path__, "ocrclient.")
             if not m.name.endswith(("__main__", "pytest_plugin"))]  # fmt: skip  (pytest loads the plugin)
    def runnable(name: str) -> bool:
        tests = finder.find(importlib.import_module(name))
        return any(not ex.options.get(doctest.SKIP) for t in tests for ex in t.examples)

    return [n for n in names if runnable(n)]


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples(module: str) -> None:
    """Every ``>>>`` example in the package's docstrings runs and prints what it says
    (examples that need files or a server are marked ``# doctest: +SKIP``)."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
