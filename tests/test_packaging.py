"""Issue 15: the backend profiles have one source, the top-level ``backends/`` folder, and are
found the same way from a checkout, an editable install and a wheel.

The wheel is built with ``python -m build`` (sdist, then the wheel from it; no isolation, so no download: ``build`` and
``hatchling`` are in the ``dev`` extra), installed with ``--no-deps`` into a fresh venv that sees
the running interpreter's dependencies through a ``.pth`` file, and its ``ocr`` runs from a temporary
folder with no ``PYTHONPATH``, so nothing of the checkout can be picked up: it must list every
backend and convert ``examples/sample.pdf`` with the default (``local``) backend.  An editable
install into a second fresh venv must find the same profiles in the checkout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

from ocrclient.config import list_profiles, shipped_profiles_dir

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(p.stem for p in (ROOT / "backends").glob("*.toml"))
FILES = sorted(f"{name}.toml" for name in PROFILES)
BIN = "Scripts" if os.name == "nt" else "bin"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
    }
    env["PYTHONNOUSERSITE"] = "1"
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def _fresh_venv(path: Path) -> Path:
    """A new venv without pip whose own site-packages comes first and which reaches the running
    interpreter's installed dependencies through a ``.pth`` file (plain path lines: the ``.pth``
    files in those folders, such as an editable ``ocrclient``'s, are not processed)."""
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / BIN / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], path
        ).stdout.strip()
    )
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "_running_deps.pth").write_text("\n".join(deps) + "\n")
    return python


def _where(python: Path, cwd: Path) -> dict[str, str | None]:
    code = (
        "import json, ocrclient; from importlib import resources; from ocrclient.config import shipped_profiles_dir;"
        "d = shipped_profiles_dir();"
        "print(json.dumps({'package': ocrclient.__file__, 'profiles': d and str(d),"
        " 'in_package': sorted(p.name for p in (resources.files('ocrclient') / 'backends').iterdir())"
        " if (resources.files('ocrclient') / 'backends').is_dir() else []}))"
    )
    return json.loads(_run([str(python), "-c", code], cwd).stdout)


def _listed(ocr: Path, cwd: Path) -> dict[str, dict[str, object]]:
    rows = json.loads(_run([str(ocr), "backends", "--json"], cwd).stdout)
    return {r["name"]: r for r in rows}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("build", "hatchling"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(
                f"`{module}` is not installed (it is in the dev extra): pip install -e '.[dev]'"
            )
    out = tmp_path_factory.mktemp("dist")
    # the sdist, then the wheel built from the sdist (the path an install from the sdist takes)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)], ROOT)
    (sdist,) = out.glob("ocrclient-*.tar.gz")
    with tarfile.open(sdist) as tar:
        in_sdist = sorted(Path(n).name for n in tar.getnames() if Path(n).parent.name == "backends")
    assert in_sdist == FILES, in_sdist
    (built,) = out.glob("ocrclient-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's bin folder, the wheel installed into it."""
    python = _fresh_venv(tmp_path_factory.mktemp("wheel-venv") / "venv")
    _run(
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        wheel.parent,
    )
    return python.parent


def test_the_top_level_folder_is_the_single_source() -> None:
    assert PROFILES, "no backends/*.toml at the top of the repository"
    assert not (ROOT / "src" / "ocrclient" / "backends").exists()
    # a checkout (PYTHONPATH=src or an editable install) reads the top-level folder
    assert shipped_profiles_dir() == ROOT / "backends"
    shipped = {
        name: path for name, path in list_profiles().items() if path.parent == ROOT / "backends"
    }
    assert sorted(shipped) == PROFILES


def test_wheel_holds_every_profile(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n for n in names if n.startswith("ocrclient/backends/")) == [
        f"ocrclient/backends/{f}" for f in FILES
    ]
    for name in PROFILES:  # byte for byte the top-level files
        assert (
            zipfile.ZipFile(wheel).read(f"ocrclient/backends/{name}.toml")
            == (ROOT / "backends" / f"{name}.toml").read_bytes()
        )


def test_installed_wheel_lists_every_backend(installed: Path, tmp_path: Path) -> None:
    where = _where(installed / "python", tmp_path)
    venv_root = installed.parent
    # the wheel's own copy, not the checkout's
    assert Path(str(where["package"])).is_relative_to(venv_root), where
    assert Path(str(where["profiles"])).is_relative_to(venv_root), where
    assert where["in_package"] == FILES
    listed = _listed(installed / "ocr", tmp_path)
    assert sorted(listed) == PROFILES
    for name, row in listed.items():  # each one resolves (a broken profile shows "?")
        assert row["transport"] != "?" and row["dialect"] != "?", (name, row)


def test_installed_wheel_converts_the_sample(installed: Path, tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "sample.pdf", tmp_path / "sample.pdf")
    _run(
        [str(installed / "ocr"), "convert", "sample.pdf", "-o", "out/", "--quiet"],
        tmp_path,
        timeout=240,
    )
    doc = json.loads((tmp_path / "out" / "sample.json").read_text(encoding="utf-8"))
    assert doc["backend"] == "local"
    assert doc["stats"]["ok"] == doc["stats"]["pages"] == 4, doc["stats"]
    assert all(page["blocks"] and page["markdown"].strip() for page in doc["pages"])
    assert "Quarterly Field Report" in (tmp_path / "out" / "sample.md").read_text(encoding="utf-8")


def test_editable_install_finds_the_profiles_in_the_checkout(tmp_path: Path) -> None:
    python = _fresh_venv(tmp_path / "venv")
    _run(
        [
            *PIP,
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "-e",
            str(ROOT),
        ],
        tmp_path,
    )
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _where(python, work)
    assert Path(str(where["package"])).resolve() == ROOT / "src" / "ocrclient" / "__init__.py", (
        where
    )
    # the package folder holds no profiles here: they are found at the top of the checkout
    assert where["in_package"] == [] and Path(str(where["profiles"])) == ROOT / "backends", where
    assert sorted(_listed(python.parent / "ocr", work)) == PROFILES
