"""The repository stands alone: its docs point only inside it, at files that exist, and no source
or test file holds a path of one particular machine.

Kinds checked (every .md in the repository, every source/test/benchmark/example/deploy file):
- every relative link ``[text](target)`` resolves to a file or folder inside the repository;
- every path a doc names in backticks exists (a token whose first segment is a folder of the
  repository or of the package, or a bare file name with a source extension);
- no file holds an absolute path of a machine (``/work/...``, ``/home/<user>/...``,
  ``/Users/...``, ``C:\\Users\\...``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

_SKIP_PARTS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache",
               ".pytest_cache", ".hypothesis", "out", "build", "dist"}  # fmt: skip


def _tracked(pattern: str) -> list[Path]:
    return sorted(
        p for p in ROOT.rglob(pattern)
        if not (set(p.relative_to(ROOT).parts[:-1]) & _SKIP_PARTS) and p.is_file()
    )  # fmt: skip


#: provenance notes of fixtures copied from public repositories: they name paths *there*
_PROVENANCE = re.compile(r"tests/data/.*/SOURCE\.md$")
MARKDOWN = [p for p in _tracked("*.md") if not _PROVENANCE.search(p.relative_to(ROOT).as_posix())]

_LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_TICK = re.compile(r"`([^`\n]+)`")
_TOP = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"}
_PKG = ROOT / "src" / "ocrclient"
_PKG_DIRS = {p.name for p in _PKG.iterdir() if p.is_dir() and not p.name.startswith("__")}
_EXTS = (".py", ".toml", ".sh", ".md", ".json", ".jsonl", ".txt", ".env", ".html")
#: bare names of files that are the *user's*, not the repository's
_USER_FILES = {"config.toml", "manifest.jsonl"}
_ALL_NAMES = {p.name for p in _tracked("*")}


def _doc_id(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def _inside(path: Path) -> bool:
    try:
        path.resolve().relative_to(ROOT.resolve())
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("md", MARKDOWN, ids=_doc_id)
def test_relative_links_resolve_inside_the_repository(md: Path) -> None:
    bad = []
    for m in _LINK.finditer(md.read_text(encoding="utf-8")):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # URLs and in-page anchors
        path = (md.parent / target.split("#", 1)[0]).resolve()
        if not _inside(path) or not path.exists():
            bad.append(target)
    assert not bad, f"{_doc_id(md)}: links that leave the repository or do not resolve: {bad}"


def _named_path(token: str) -> str | None:
    """The repository path a backticked token names, or None when it names none."""
    token = token.strip().rstrip(".,;:")
    if " " in token or "://" in token or token.startswith(("/", "~", "$", "-", ".../")):
        return None
    if re.search(r"[<>{}|=*?\[\]]", token):
        return None  # placeholders and patterns
    first = token.split("/", 1)[0]
    if "/" in token and (first in _TOP or first in _PKG_DIRS or first == ".ci"):
        return token
    if "/" not in token and token.endswith(_EXTS) and re.fullmatch(r"[\w.\-]+", token):
        return token
    return None


def _exists(token: str, md: Path) -> bool:
    if "/" not in token:
        # a worked example's own files are written out in the doc (```python file=NAME)
        shown = set(re.findall(r"```\w+ file=(\S+)", md.read_text(encoding="utf-8")))
        return token in _ALL_NAMES or token in _USER_FILES or token in shown
    bases = [ROOT, md.parent, _PKG]
    candidates = [token, token.rstrip("/")]
    # `transports/base.json_bytes` names a symbol in transports/base.py
    if "." in token.rsplit("/", 1)[-1] and not token.endswith(_EXTS):
        candidates.append(token.rsplit(".", 1)[0] + ".py")
    return any((b / c).exists() for b in bases for c in candidates)


@pytest.mark.parametrize("md", MARKDOWN, ids=_doc_id)
def test_every_path_a_doc_names_exists(md: Path) -> None:
    text = md.read_text(encoding="utf-8")
    # fenced code is commands and output, not references
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    missing = sorted({t for m in _TICK.finditer(prose) if (t := _named_path(m.group(1))) and not _exists(t, md)})
    assert not missing, f"{_doc_id(md)} names paths that are not in the repository: {missing}"


def test_the_path_check_can_fail() -> None:
    """The two checks above flag what they are meant to flag."""
    md = ROOT / "README.md"
    assert _named_path("src/ocrclient/nope.py") == "src/ocrclient/nope.py"
    assert not _exists("src/ocrclient/nope.py", md)
    assert _exists("src/ocrclient/cache.py", md) and _exists("transports/base.json_bytes", md)
    assert _named_path("nothere.py") == "nothere.py" and not _exists("nothere.py", md)
    assert _named_path("lightonai/LightOnOCR-2-1B") is None  # a model id, not a path
    assert not _inside(ROOT / ".." / "shared" / "DESIGN.md")


_MACHINE_PATH = re.compile(r"""(?<![\w.])(/work/|/home/[a-z_][\w-]*/|/Users/\w|[A-Z]:\\Users\\)""")
SOURCES = [
    p for pattern in ("*.py", "*.md", "*.toml", "*.sh", "*.txt", "*.env", "Dockerfile", "run")
    for p in _tracked(pattern)
    if p.relative_to(ROOT).parts[0] in {"src", "tests", "benchmarks", "examples", "deploy", "docs", ".ci"}
    or p.parent == ROOT
]


@pytest.mark.parametrize("path", SOURCES, ids=_doc_id)
def test_no_absolute_path_of_a_machine(path: Path) -> None:
    if path == Path(__file__):
        return  # the pattern itself
    hits = [
        f"{_doc_id(path)}:{n}: {line.strip()[:120]}"
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if _MACHINE_PATH.search(line)
    ]
    assert not hits, "absolute paths of a machine:\n" + "\n".join(hits)


def test_the_machine_path_check_can_fail() -> None:
    assert _MACHINE_PATH.search('CORPUS = Path("/work/shared/corpus")')
    assert _MACHINE_PATH.search("see /home/alice/x.pdf")
    assert not _MACHINE_PATH.search('out_dir = "/tmp/runpod-output"')  # a server's own default
    assert not _MACHINE_PATH.search("https://example.org/work/x")


def test_a_missing_corpus_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from .conftest import require_corpus

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="shared corpus not available"):
        require_corpus([], "x")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_corpus([], "x")
    require_corpus(["a.pdf"])  # present: no exception


def test_the_architecture_map_names_every_package_folder_and_top_level_folder() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    packages = sorted(p.parent.relative_to(ROOT).as_posix() for p in _PKG.rglob("__init__.py"))
    missing = [f"{p}/" for p in packages if p != "src/ocrclient" and f"`{p}/`" not in text]
    tops = [p.name for p in ROOT.iterdir() if p.is_dir() and p.name in {"backends", "deploy", "tests", "benchmarks"}]
    missing += [f"{t}/" for t in tops if f"`{t}/`" not in text]
    assert not missing, f"docs/ARCHITECTURE.md does not name: {missing}"


@pytest.mark.parametrize("md", MARKDOWN, ids=_doc_id)
def test_every_python_block_a_doc_shows_as_a_script_compiles(md: Path) -> None:
    """README says its Python lines "work as they are in a script": each ```python block must
    at least compile as one (the README's had a top-level ``async for``, a SyntaxError).  A
    block meant for a notebook cell says so on its first line (``# in a notebook``)."""
    text = md.read_text(encoding="utf-8")
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
        if block.lstrip().startswith(("# in a notebook", ">>>")):
            continue
        try:
            compile(block, f"{_doc_id(md)} python block {i + 1}", "exec")
        except SyntaxError as exc:
            pytest.fail(f"{_doc_id(md)} python block {i + 1} does not compile as a script: {exc}")


_PY_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_every_python_block_of_the_docs_names_only_what_it_defines_or_imports(tmp_path: Path) -> None:
    """A reader pastes a ```python block of README.md or docs/ into a script as it is: a name it
    uses and neither defines nor imports fails there (README's ``OutputWriter`` lines used
    ``ocrclient`` and ``pdf_bytes`` that nothing gave them).  pyflakes' undefined-name check
    (ruff F821) over each block on its own."""
    blocks = []
    for md in MARKDOWN:
        for i, m in enumerate(_PY_BLOCK.finditer(md.read_text(encoding="utf-8"))):
            name = f"{md.relative_to(ROOT).as_posix().replace('/', '__')}__{i}.py"
            (tmp_path / name).write_text(m.group(1), encoding="utf-8")
            blocks.append(name)
    assert len(blocks) >= 10, blocks  # (README's and docs/' examples are found)
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F821",
                           "--output-format", "concise", "."], cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
