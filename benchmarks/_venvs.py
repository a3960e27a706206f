"""Throwaway venvs the benchmarks build once and keep under ``benchmarks/.cache`` (git-ignored;
delete a folder to rebuild it): :func:`cached_venv`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def cached_venv(name: str, installs: list[list[str]], cache: Path = CACHE) -> tuple[Path | None, str]:
    """The python of a venv into which each of ``installs`` (``pip install`` arguments) went, in
    order: ``(python, "cached")``, or ``(python, "built")`` the first time, or ``(None, why
    not)``.  The venv is keyed by this Python's version and ``installs``; a half-built one (an
    interrupted run) is never used."""
    key = hashlib.sha256(json.dumps([sys.version_info[:2], name, installs]).encode()).hexdigest()[:12]
    keyed = cache / f"{name}-{key}"  # its venv folder is called "venv": the repository's doc checks skip it
    venv = keyed / "venv"
    if (venv / "ready").exists():
        return venv_python(venv), "cached"
    cache.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="building-", dir=cache))
    tmp = building / "venv"
    steps = [[sys.executable, "-m", "venv", str(tmp)]]
    steps += [[str(venv_python(tmp)), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args] for args in installs]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            tail = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
            return None, f"`{' '.join(cmd[2:] if cmd[1] == '-m' else cmd)}` failed: {(tail or ['?'])[-1][:200]}"
    (tmp / "ready").write_text("ok\n")
    shutil.rmtree(keyed, ignore_errors=True)  # a half-built venv of an interrupted run
    try:
        building.rename(keyed)
    except OSError:  # another run finished first: use its venv
        shutil.rmtree(building, ignore_errors=True)
    return venv_python(venv), "built"
