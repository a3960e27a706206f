"""The typed examples of docs/python-api.md (``examples/api_*.py``) run against the simulators
and pass ``mypy --strict`` (issue 17: "typed examples that run as tests")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("api_*.py"))
CLOUD_VARS = re.compile(r"^(RUNPOD_|OCRCLIENT_|MODAL_)")

#: what each example must print (its promise, checked line by line)
PROMISES = {
    "api_client.py": [r"convert: .*sample\.pdf: 2 pages, ok=True", r"convert_many: bytes:\w+: ok",
                      r"stream_pages: \[1, 2, 3, 4\]", r"requests in flight at most: [1-4] \(limit 4\)"],
    "api_fastapi.py": [r"POST /ocr: 200, pages \[1, 2\]", r"POST /ocr \(not a document\): 422"],
    "api_errors.py": [r"InputError: no-such-file\.pdf", r"ConfigError: unknown backend",
                      r"failed page: status=failed kind=transient attempts=2",
                      r"AuthError: run stopped \(RunAborted: True\)",
                      r"EndpointDownError: run stopped, 4 pages not done \(endpoint_down\)", r"UsageError: ocrclient\.convert\(\) blocks"],
}  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not CLOUD_VARS.match(k)}
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p),
        OCRCLIENT_CACHE_DIR=str(tmp_path / "cache"),
        OCRCLIENT_CONFIG_DIR=str(tmp_path / "config"),
    )
    return env


def test_every_api_example_has_its_promise() -> None:
    assert {p.name for p in EXAMPLES} == set(PROMISES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_api_example_runs_against_the_simulators(example: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    for promise in PROMISES[example.name]:
        assert re.search(promise, proc.stdout), (promise, proc.stdout)


def _mypy_strict(*files: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", *map(str, files)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_api_examples_pass_mypy_strict(tmp_path: Path) -> None:
    untyped = tmp_path / "untyped_example.py"
    untyped.write_text("import ocrclient\n\ndef run(path):\n    return ocrclient.convert(path, pagez='1')\n")
    proc = _mypy_strict(*EXAMPLES, untyped)
    # the control file fails (an untyped function, a misspelt keyword) and nothing else does
    assert "untyped_example.py" in proc.stdout and 'Unexpected keyword argument "pagez"' in proc.stdout, proc.stdout
    # by file name: mypy's incremental cache (under the project) may report the control file at
    # the temporary path of an earlier run, whose module of the same name and content it cached
    flagged = {Path(line.split(":", 1)[0]).name for line in proc.stdout.splitlines() if ": error:" in line}
    assert flagged == {untyped.name}, proc.stdout
