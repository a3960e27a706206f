"""Every package set deploy/ installs resolves on PyPI, together with what its base image holds.

The sets are discovered from the files, so a new deploy folder is covered without editing this test:

* each ``deploy/*/Dockerfile``: the packages of every ``pip install`` in a ``RUN`` (``-r`` files
  found through the ``COPY`` that put them in the image), plus what the ``FROM`` image already
  holds (``vllm==X`` for ``vllm/vllm-openai:vX``, ``torch==X`` for ``pytorch/pytorch:X-…``);
* each Modal app (``deploy/*/*.py`` calling ``pip_install`` / ``uv_pip_install``): the image's
  package list, for the Python named by ``add_python`` / ``python_version``;
* each shell script (``deploy/*/*.sh``): every ``pip install`` command on its own (a later
  command may deliberately override an earlier pin, as the pod's transformers 5 step does), for
  the Python of the pod image the script names.

Each set goes through pip's own resolver in dry-run (``pip install --dry-run --ignore-installed
--only-binary=:all: --report``), for the image's Python and manylinux x86_64 glibc, all sets in
parallel threads; a known conflict goes through too, and must fail. The machine's pip
configuration (local ``file://`` indexes, ``find-links``, constraint files) is switched off so
every machine asks PyPI the same way CI does. ``pip_for_image.py`` runs pip with environment
markers evaluated for the image's Python (``--python-version`` alone only changes wheel tags and
``Requires-Python``) and reads a wheel's metadata from a stream where the index offers no
``.metadata`` file. The resolver runs in subprocesses: the one network a test may use is PyPI.
Without PyPI the resolving tests fail in CI (``CI=true``) and skip elsewhere; discovery is
checked offline.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY, ROOT, dockerfile_instructions
from packaging.requirements import Requirement
from packaging.version import Version

PYPI = "https://pypi.org/simple/"
#: pip, with markers evaluated for the image's Python (see its docstring)
PIP_FOR_IMAGE = Path(__file__).with_name("pip_for_image.py")
#: the dev extra pins a pip at least this new: older resolvers backtrack for 10+ minutes on vLLM
MIN_PIP = Version("26.3")
#: one resolve, wall clock; they run in parallel (measured: 5–80 s each on a quiet machine, the
#: vLLM sets ~210 s with the 2 cores shared by ~10 busy processes)
RESOLVE_TIMEOUT = 420
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

#: glibc of the Ubuntu releases the base images are built on
UBUNTU_GLIBC = {"20.04": (2, 31), "22.04": (2, 35), "24.04": (2, 39)}


class DiscoveryError(Exception):
    """A file installs packages in a way this test cannot reproduce."""


@dataclass(frozen=True)
class Base:
    """What a base image brings: its Python (None: the installer names it), glibc, packages."""

    image: str
    python: str | None
    glibc: tuple[int, int]
    holds: tuple[str, ...] = ()


def _ubuntu_glibc(ref: str) -> tuple[int, int]:
    m = re.search(r"ubuntu(\d\d\.\d\d)", ref)
    if not m or m[1] not in UBUNTU_GLIBC:
        raise DiscoveryError(f"{ref}: no known ubuntuXX.YY in the tag (glibc unknown)")
    return UBUNTU_GLIBC[m[1]]


def base_image(ref: str) -> Base:
    """The packages, Python and glibc of the base image ``ref`` (a ``FROM`` or a registry image)."""
    repo, _, tag = ref.partition(":")
    if repo == "vllm/vllm-openai":
        # vLLM's docker/Dockerfile: Python 3.12 on nvidia/cuda …-ubuntu22.04; the image is vllm==<tag>
        m = re.fullmatch(r"v(\d+(?:\.\d+)+(?:\.post\d+)?)", tag)
        if not m:
            raise DiscoveryError(f"{ref}: expected a vX.Y.Z tag")
        return Base(ref, "3.12", (2, 35), (f"vllm=={m[1]}",))
    if repo == "pytorch/pytorch":
        # the official image: conda Python 3.11 on Ubuntu 22.04; the tag starts with its torch
        m = re.fullmatch(r"(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-(?:runtime|devel)", tag)
        if not m:
            raise DiscoveryError(f"{ref}: expected a <torch>-cudaX-cudnnY-runtime|devel tag")
        return Base(ref, "3.11", (2, 35), (f"torch=={m[1]}",))
    if repo == "runpod/pytorch":
        # RunPod's pod template; its torch is not kept: the scripts install vLLM, which pins its own
        m = re.search(r"-py(3\.\d+)-", tag)
        if not m:
            raise DiscoveryError(f"{ref}: expected -pyX.Y- in the tag")
        return Base(ref, m[1], _ubuntu_glibc(tag))
    if repo == "nvidia/cuda":
        # CUDA only, no Python packages (Modal adds the Python named by add_python)
        return Base(ref, None, _ubuntu_glibc(tag))
    raise DiscoveryError(f"unknown base image {ref}: teach base_image() what it holds")


#: Modal's ``Image.debian_slim`` (Debian bookworm, glibc 2.36): Python from ``python_version``
DEBIAN_SLIM = Base("modal.Image.debian_slim", None, (2, 36))


@dataclass(frozen=True)
class PinSet:
    """One resolve: ``pip install`` of ``specs`` (+ ``-r`` ``files``) on top of ``base``."""

    name: str
    source: Path
    base: Base
    python: str
    specs: tuple[str, ...]
    files: tuple[Path, ...] = ()

    def all_specs(self) -> tuple[str, ...]:
        return (*self.base.holds, *self.specs)


@dataclass
class Discovery:
    sets: list[PinSet] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def sources(self) -> set[Path]:
        return {s.source for s in self.sets} | {f for s in self.sets for f in s.files}


# -- pip command lines ---------------------------------------------------------------------------

_PIP_FLAGS = {"--no-cache-dir", "--upgrade", "-U", "-q", "--quiet", "--no-input", "--progress-bar=off",
              "--disable-pip-version-check", "--root-user-action=ignore", "--break-system-packages"}  # fmt: skip


def pip_install_args(command: str) -> list[list[str]]:
    """The arguments after ``install`` of each ``pip install`` in a shell command line."""
    if not re.search(r"\bpip3?\s+install\b", command):
        return []
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError as exc:
        raise DiscoveryError(f"cannot split {command.strip()!r}: {exc}") from None
    found: list[list[str]] = []
    simple: list[str] = []
    for word in [*words, ";"]:
        if word and set(word) <= set("&|;()<>"):  # a command ends (&&, ||, ;, |, &, redirections)
            for i, w in enumerate(simple[:-1]):
                if re.fullmatch(r"(?:.*/)?pip3?", w) and simple[i + 1] == "install":
                    found.append(simple[i + 2 :])
                    break
            simple = []
        else:
            simple.append(word)
    if not found:
        raise DiscoveryError(f"cannot read the pip install in: {command.strip()}")
    return found


def split_pip_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(requirement specifiers, ``-r`` paths); an option this test cannot mirror is an error."""
    specs: list[str] = []
    files: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in ("-r", "--requirement"):
            files.append(next(it))
        elif arg.startswith("--requirement="):
            files.append(arg.partition("=")[2])
        elif arg.startswith("-"):
            if arg not in _PIP_FLAGS:
                raise DiscoveryError(f"pip option {arg!r} is not mirrored by test_deploy_pins")
        else:
            specs.append(arg)
    return specs, files


# -- Dockerfiles ---------------------------------------------------------------------------------


def _copied_from(dockerfile: Path, copies: list[str], target: str) -> Path:
    """The repo file a ``COPY src dest`` put at ``target`` (build context: the folder, deploy/ or
    the repository root, which the images that copy ``src/ocrclient/contracts`` are built from)."""
    for args in copies:
        words = [w for w in args.split() if not w.startswith("--")]
        *srcs, dest = words
        for src in srcs:
            in_image = dest if not dest.endswith("/") else dest + Path(src).name
            if in_image != target:
                continue
            for context in (dockerfile.parent, dockerfile.parent.parent, dockerfile.parent.parent.parent):
                if (context / src).is_file():
                    return context / src
    raise DiscoveryError(f"{dockerfile}: no COPY puts a repo file at {target}")


def dockerfile_sets(path: Path) -> list[PinSet]:
    ins = dockerfile_instructions(path)
    froms = [a.split()[0] for k, a in ins if k == "FROM"]
    if not froms:
        raise DiscoveryError(f"{path}: no FROM")
    base = base_image(froms[-1])
    assert base.python is not None
    copies = [a for k, a in ins if k == "COPY"]
    specs: list[str] = []
    files: list[Path] = []
    for kind, args in ins:
        if kind != "RUN":
            continue
        for pip_args in pip_install_args(args):
            s, f = split_pip_args(pip_args)
            specs += s
            files += [_copied_from(path, copies, target) for target in f]
    if not specs and not files:
        return []
    name = f"{path.parent.name}/{path.name}"
    return [PinSet(name, path, base, base.python, tuple(specs), tuple(files))]


# -- Modal apps ----------------------------------------------------------------------------------


def _const(node: ast.expr, names: dict[str, str], where: str) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in names:
        return names[node.id]
    if isinstance(node, ast.JoinedStr):
        parts: list[str] = []
        for v in node.values:
            if isinstance(v, ast.FormattedValue):
                parts.append(_const(v.value, names, where))
            else:
                parts.append(_const(v, names, where))
        return "".join(parts)
    raise DiscoveryError(f"{where}: cannot evaluate {ast.unparse(node)} (use string constants)")


def modal_sets(path: Path) -> list[PinSet]:
    tree = ast.parse(path.read_text())
    names = {
        t.id: stmt.value.value
        for stmt in tree.body
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
        for t in stmt.targets
        if isinstance(t, ast.Name)
    }
    inner = {id(c.func.value) for c in ast.walk(tree) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)}
    sets: list[PinSet] = []
    for node in ast.walk(tree):
        # an image is a method chain: read each outermost call down to its base
        if not isinstance(node, ast.Call) or id(node) in inner:
            continue
        chain: list[ast.Call] = []
        cur: ast.expr = node
        while isinstance(cur, ast.Call) and isinstance(cur.func, ast.Attribute):
            chain.append(cur)
            cur = cur.func.value
        methods = [(c.func.attr, c) for c in chain if isinstance(c.func, ast.Attribute)]
        roots = [c for name, c in methods if name in ("from_registry", "debian_slim")]
        installs = [c for name, c in methods if name in ("pip_install", "uv_pip_install")]
        if not installs:
            continue
        if len(roots) != 1:
            raise DiscoveryError(f"{path}:{node.lineno}: pip_install on an image with no from_registry/debian_slim base")
        root = roots[0]
        where = f"{path}:{root.lineno}"
        kwargs = {k.arg: k.value for k in root.keywords if k.arg}
        assert isinstance(root.func, ast.Attribute)
        if root.func.attr == "from_registry":
            base = base_image(_const(root.args[0], names, where))
            py_node = kwargs.get("add_python")
        else:
            base = DEBIAN_SLIM
            py_node = kwargs.get("python_version")
        python = base.python or (_const(py_node, names, where) if py_node is not None else None)
        if not python:
            raise DiscoveryError(f"{where}: the image's Python is not named (add_python= / python_version=)")
        specs: list[str] = []
        for call in reversed(installs):
            for arg in call.args:
                if isinstance(arg, ast.Starred):
                    raise DiscoveryError(f"{where}: *args in {ast.unparse(call)}")
                specs.append(_const(arg, names, where))
            if call.keywords:
                raise DiscoveryError(f"{where}: keyword options in {ast.unparse(call.func)}() are not mirrored")
        sets.append(PinSet(f"{path.parent.name}/{path.name}:{root.lineno}", path, base, python, tuple(specs)))
    return sets


# -- shell scripts -------------------------------------------------------------------------------


def shell_sets(path: Path) -> list[PinSet]:
    text = path.read_text()
    variables: dict[str, str] = {}  # NAME="${NAME:-default}" or NAME=value: what a plain run uses
    for m in re.finditer(r'^(?:export\s+)?([A-Z_][A-Z0-9_]*)="?\$\{\1:-([^}]*)\}"?\s*(?:#.*)?$', text, re.M):
        variables[m[1]] = m[2]
    for m in re.finditer(r'^(?:export\s+)?([A-Z_][A-Z0-9_]*)="?([^"$\s]*)"?\s*(?:#.*)?$', text, re.M):
        variables.setdefault(m[1], m[2])

    def expand(word: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m[1] or m[2]
            if name not in variables:
                raise DiscoveryError(f"{path}: ${name} has no default in the script")
            return variables[name]

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, word)

    installs: list[tuple[str, list[str]]] = []
    start, buf = 0, ""
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.endswith("\\"):
            buf += raw[:-1] + " "
            continue
        line, buf = buf + raw, ""
        if line.lstrip().startswith("#"):
            continue
        for k, args in enumerate(pip_install_args(line), 1):
            installs.append((f"{start}" if k == 1 else f"{start}#{k}", args))
    if not installs:
        return []
    images = set(re.findall(r"\b(runpod/pytorch:[\w.\-]+)", text))
    if len(images) != 1:
        raise DiscoveryError(f"{path}: name the one pod image it runs on (runpod/pytorch:<tag>), found {sorted(images)}")
    base = base_image(images.pop())
    assert base.python is not None
    sets = []
    for n, args in installs:
        specs, files = split_pip_args([expand(a) for a in args])
        if files:
            raise DiscoveryError(f"{path}:{n}: -r in a script is not mirrored by test_deploy_pins")
        sets.append(PinSet(f"{path.parent.name}/{path.name}:{n}", path, base, base.python, tuple(specs)))
    return sets


# -- discovery -----------------------------------------------------------------------------------

INSTALLS = re.compile(r"\bpip3?\s+install\b|\bpip_install\(|\buv\s+pip\b|requirements\.txt")


def discover(deploy: Path) -> Discovery:
    """Every package set ``deploy`` installs, and whatever installs packages but was not read."""
    found = Discovery()
    readers = [("*/Dockerfile*", dockerfile_sets), ("*/*.py", modal_sets), ("*/*.sh", shell_sets)]
    for pattern, reader in readers:
        for path in sorted(deploy.glob(pattern)):
            if reader is modal_sets and "pip_install(" not in path.read_text():
                continue
            try:
                found.sets.extend(reader(path))
            except DiscoveryError as exc:
                found.problems.append(str(exc))
    covered = found.sources
    for path in sorted(p for p in deploy.rglob("*") if p.is_file() and p.suffix not in (".md", ".pyc")):
        if path in covered:
            continue
        if path.name.endswith(".txt") and "requirements" in path.name:
            found.problems.append(f"{path.relative_to(deploy)}: no Dockerfile installs it")
        elif INSTALLS.search(path.read_text(errors="replace")):
            found.problems.append(f"{path.relative_to(deploy)}: installs packages but no reader found a set in it")
    return found


DISCOVERY = discover(DEPLOY)


# -- offline checks ------------------------------------------------------------------------------


def test_discovery_reads_every_install_in_deploy() -> None:
    assert DISCOVERY.problems == []
    by_kind = {
        "Dockerfile": [s for s in DISCOVERY.sets if s.source.name.startswith("Dockerfile")],
        "Modal app": [s for s in DISCOVERY.sets if s.source.suffix == ".py"],
        "shell script": [s for s in DISCOVERY.sets if s.source.suffix == ".sh"],
    }
    assert all(by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    assert set(DEPLOY.glob("*/requirements*.txt")) <= DISCOVERY.sources
    names = [s.name for s in DISCOVERY.sets]
    assert len(names) == len(set(names))


def test_discovery_covers_a_new_deploy_folder(tmp_path: Path) -> None:
    new = tmp_path / "runpod-newmodel"
    new.mkdir()
    (new / "requirements.txt").write_text("runpod==1.10.0\n")
    (new / "Dockerfile").write_text(
        "FROM vllm/vllm-openai:v0.23.0\nCOPY runpod-newmodel/requirements.txt /app/requirements.txt\n"
        "RUN python3 -m pip install --no-cache-dir -r /app/requirements.txt \\\n && pip install --no-cache-dir httpx==0.28.1\n"
    )
    (new / "app.py").write_text(
        'import modal\nV = "0.15.0"\nimage = modal.Image.from_registry("nvidia/cuda:12.8.1-devel-ubuntu22.04", '
        'add_python="3.12").uv_pip_install(f"vllm=={V}").pip_install("x==1")\n'
    )
    (new / "setup.sh").write_text(
        '#!/usr/bin/env bash\n# on runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04\nV="${V:-0.15.0}"\n'
        'python3 -m pip install --no-cache-dir "vllm==${V}"\npip install a==1 && pip install b==2\n'
    )
    found = discover(tmp_path)
    assert found.problems == []
    got = {s.name: (s.python, s.all_specs(), s.files, s.base.glibc) for s in found.sets}
    assert got == {
        "runpod-newmodel/Dockerfile": ("3.12", ("vllm==0.23.0", "httpx==0.28.1"), (new / "requirements.txt",), (2, 35)),
        "runpod-newmodel/app.py:3": ("3.12", ("vllm==0.15.0", "x==1"), (), (2, 35)),
        "runpod-newmodel/setup.sh:4": ("3.11", ("vllm==0.15.0",), (), (2, 35)),
        "runpod-newmodel/setup.sh:5": ("3.11", ("a==1",), (), (2, 35)),
        "runpod-newmodel/setup.sh:5#2": ("3.11", ("b==2",), (), (2, 35)),
    }


def test_discovery_reports_what_it_cannot_read(tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "requirements.txt").write_text("a==1\n")  # no Dockerfile installs it
    (odd / "Dockerfile").write_text("FROM python:3.12-slim\nRUN pip install --no-cache-dir b==1\n")
    (odd / "setup.sh").write_text("#!/usr/bin/env bash\npip install c==1\n")  # no pod image named
    (odd / "build.sh").write_text("#!/usr/bin/env bash\nuv pip install d==1\n")  # no reader for uv
    (odd / "app.py").write_text('import modal, os\nimage = modal.Image.debian_slim(python_version="3.12").pip_install(os.environ["P"])\n')
    problems = "\n".join(discover(tmp_path).problems)
    assert "unknown base image python:3.12-slim" in problems
    assert "requirements.txt: no Dockerfile installs it" in problems
    assert "setup.sh: name the one pod image" in problems
    assert "build.sh: installs packages but no reader found a set" in problems
    assert "cannot evaluate os.environ" in problems


def test_tests_run_the_runpod_sdk_the_images_install() -> None:
    """The dev extra's runpod (the real worker SDK the tests drive) is the release deploy/ pins."""
    pins: dict[str, set[str]] = {}
    for s in DISCOVERY.sets:
        lines = [*s.specs, *(ln for f in s.files for ln in f.read_text().splitlines())]
        for line in lines:
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                req = Requirement(line)
                if req.name == "runpod":
                    pins.setdefault(str(req.specifier), set()).add(s.name)
    assert len(pins) == 1, pins
    (deploy_pin,) = pins
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    dev_pins = {str(r.specifier) for r in map(Requirement, dev) if r.name == "runpod"}
    assert dev_pins == {deploy_pin}


# -- resolving on PyPI ---------------------------------------------------------------------------


def manylinux_platforms(glibc: tuple[int, int]) -> list[str]:
    """``--platform`` values for a glibc (pip does not expand ``manylinux_2_35`` to older tags)."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def pip_env() -> dict[str, str]:
    """This environment without pip's settings, and no pip config file (no local indexes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def resolve_command(python: str, glibc: tuple[int, int], specs: list[str], report: Path) -> list[str]:
    plats = [a for p in manylinux_platforms(glibc) for a in ("--platform", p)]
    # --no-cache-dir: the registry mirror these machines reach sends no caching headers, so pip's
    # HTTP cache stores nothing; without it pip also stops spooling every response to a temp file
    return [sys.executable, str(PIP_FOR_IMAGE), python, "--isolated", "--disable-pip-version-check",
            "install", "--dry-run", "--ignore-installed", "--progress-bar=off", "--report", str(report),
            "--only-binary=:all:", "--no-cache-dir", "--index-url", PYPI, "--python-version", python,
            *plats, *specs]  # fmt: skip


@dataclass
class Outcome:
    returncode: int
    seconds: float
    output: str  # pip's stdout + stderr (not --quiet: the cause of a conflict is logged as info)
    report: dict[str, Any] | None


def run_resolve(python: str, glibc: tuple[int, int], specs: list[str], report: Path) -> Outcome:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(resolve_command(python, glibc, specs, report), env=pip_env(),
                              capture_output=True, text=True, timeout=RESOLVE_TIMEOUT, cwd=report.parent)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Outcome(-1, time.monotonic() - t0, f"pip did not finish in {RESOLVE_TIMEOUT} s", None)
    data = json.loads(report.read_text()) if proc.returncode == 0 and report.exists() else None
    return Outcome(proc.returncode, time.monotonic() - t0, proc.stdout + proc.stderr, data)


def _set_specs(s: PinSet) -> list[str]:
    return [*s.all_specs(), *(a for f in s.files for a in ("-r", str(f)))]


#: a set that cannot resolve (the TrOCR pins of issue 14): proves a conflict fails this check
CONFLICT = ["runpod==1.12.0", "fastapi==0.115.5"]


def _unreachable(reason: str) -> None:
    msg = f"PyPI is unreachable, so deploy/ pins cannot be checked: {reason}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    pip_version = Version(version("pip"))
    if pip_version < MIN_PIP:
        msg = f"pip {pip_version} is older than {MIN_PIP} (pip install -e '.[dev]' brings it)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    tmp = tmp_path_factory.mktemp("pins")
    probe = run_resolve("3.11", (2, 35), ["--no-deps", "pip"], tmp / "probe.json")
    if probe.returncode != 0:
        lines = probe.output.strip().splitlines() or [f"pip exited {probe.returncode}"]
        why = [ln for ln in lines if re.search(r"Retrying|Could not fetch|[Cc]onnection|[Pp]roxy|SSL", ln)]
        _unreachable((why or lines)[-1].strip())
    jobs = {s.name: (s.python, s.base.glibc, _set_specs(s)) for s in DISCOVERY.sets}
    jobs["conflict"] = ("3.11", (2, 35), CONFLICT)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(run_resolve, py, gl, specs, tmp / f"{i}.json")
                   for i, (name, (py, gl, specs)) in enumerate(jobs.items())}  # fmt: skip
        return {name: f.result() for name, f in futures.items()}


def _errors(output: str) -> str:
    """pip's account of a failure: the conflict's causes if it names them, else its last lines."""
    lines = [ln for ln in output.splitlines() if ln.strip() and "[notice]" not in ln]
    for i, ln in enumerate(lines):
        if ln.startswith(("ERROR: Cannot install", "ERROR: Could not find", "The conflict is caused by")):
            return "\n".join(lines[i : i + 30])
    return "\n".join(lines[-25:])


@pytest.mark.timeout(RESOLVE_TIMEOUT + 180)
@pytest.mark.parametrize("pin_set", DISCOVERY.sets, ids=lambda s: s.name)
def test_pin_set_resolves_with_its_base_image(pin_set: PinSet, resolved: dict[str, Outcome]) -> None:
    out = resolved[pin_set.name]
    assert out.returncode == 0 and out.report is not None, (
        f"{pin_set.name} (on {pin_set.base.image}, Python {pin_set.python}) does not resolve on PyPI:\n"
        f"  pip install {' '.join(_set_specs(pin_set))}\n{_errors(out.output)}"
    )
    env = out.report["environment"]
    assert isinstance(env, dict) and env["python_version"] == pin_set.python  # markers were the image's
    installs = out.report["install"]
    assert isinstance(installs, list)
    chosen = {i["metadata"]["name"].lower().replace("_", "-"): i["metadata"]["version"] for i in installs}
    for held in pin_set.base.holds:  # the base image's own packages stay as the image has them
        req = Requirement(held)
        got = chosen.get(req.name)
        assert got is not None and req.specifier.contains(got), (held, got)


@pytest.mark.timeout(RESOLVE_TIMEOUT + 180)
def test_a_conflicting_set_fails_the_check(resolved: dict[str, Outcome]) -> None:
    out = resolved["conflict"]
    assert out.returncode != 0 and out.report is None
    assert "ResolutionImpossible" in out.output and "The conflict is caused by" in out.output, _errors(out.output)
