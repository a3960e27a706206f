"""``transports/`` imports no OCR engine.

The rule (docs/ARCHITECTURE.md, :mod:`ocrclient.transports.local`): no module under
``src/ocrclient/transports/`` imports ``rapidocr``, ``onnxruntime`` or ``cv2`` anywhere, and
``ocrclient.engines`` (the embedded engine's package) only inside a function or under
``if TYPE_CHECKING:`` — so importing a transport never loads the engine.  The ``local``
transport reaches the engine lazily, when it is built or sends a page.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT

SRC = ROOT / "src"
TRANSPORTS = SRC / "ocrclient" / "transports"
#: never imported by a transport, not even lazily: the engine and its heavy dependencies
ENGINE_DEPS = ("rapidocr", "onnxruntime", "cv2")
#: imported by a transport only inside a function (or for type checking)
ENGINE_PACKAGE = "ocrclient.engines"


def _under(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def _package_of(path: Path) -> list[str]:
    """The package a module's relative imports start from (a package's own for ``__init__``)."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    parts.pop()  # the module's name, or ``__init__``
    return parts


def _imported(node: ast.Import | ast.ImportFrom, package: list[str]) -> list[str]:
    """The absolute module names an import statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = package[: len(package) - node.level + 1]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    # ``from .. import engines`` loads the submodule ``ocrclient.engines``
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def _dynamic(node: ast.Call) -> list[str]:
    """``importlib.import_module("x")`` / ``__import__("x")`` with a literal name."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name in ("import_module", "__import__") and node.args:
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return [arg.value]
    return []


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def engine_imports(source: str, package: list[str], where: str = "<src>") -> list[str]:
    """Every import in ``source`` that breaks the rule, as ``where:line: why``."""
    found: list[str] = []

    def visit(node: ast.AST, eager: bool) -> None:
        names: list[str] = []
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = _imported(node, package)
        elif isinstance(node, ast.Call):
            names = _dynamic(node)
        for name in names:  # one finding per statement
            if any(_under(name, dep) for dep in ENGINE_DEPS):
                found.append(f"{where}:{node.lineno}: imports {name}")
                break
            if eager and _under(name, ENGINE_PACKAGE):
                found.append(f"{where}:{node.lineno}: imports {name} at module level")
                break
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)  # annotations only: never runs
            for child in node.orelse:
                visit(child, eager)
            return
        lazy = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, eager and not lazy)

    visit(ast.parse(source), True)
    return found


def test_no_transport_imports_an_ocr_engine() -> None:
    modules = sorted(TRANSPORTS.rglob("*.py"))
    assert len(modules) >= 5 and TRANSPORTS / "local.py" in modules
    found = [
        hit
        for path in modules
        for hit in engine_imports(path.read_text(), _package_of(path), str(path.relative_to(ROOT)))
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("import rapidocr", "imports rapidocr"),
        ("import onnxruntime as ort", "imports onnxruntime"),
        ("from rapidocr.main import RapidOCR", "imports rapidocr.main"),
        ("def f():\n    import onnxruntime", "imports onnxruntime"),  # not even lazily
        ("def f():\n    importlib.import_module('rapidocr')", "imports rapidocr"),
        ("from ..engines.rapidocr import get_engine", "ocrclient.engines.rapidocr at module level"),
        ("from .. import engines", "ocrclient.engines at module level"),
        ("import ocrclient.engines.tiling", "ocrclient.engines.tiling at module level"),
        ("try:\n    from ..engines import read\nexcept ImportError:\n    pass", "at module level"),
        ("class T:\n    from ..engines import ink", "at module level"),  # class bodies run on import
        ("x = importlib.import_module('ocrclient.engines')", "at module level"),
        ("if TYPE_CHECKING:\n    pass\nelse:\n    from ..engines import read", "at module level"),
    ],
)
def test_the_check_catches_an_engine_import(source: str, expect: str) -> None:
    found = engine_imports(source, ["ocrclient", "transports"])
    assert len(found) == 1 and expect in found[0], found


@pytest.mark.parametrize(
    "source",
    [
        "def f():\n    from ..engines.read import read_image",
        "async def f():\n    from ..engines import rapidocr",
        "if TYPE_CHECKING:\n    from ..engines.rapidocr import EngineSettings",
        "from .base import ModelReply\nfrom ..errors import ConfigError",
        "import ocrclient.enginesque",
    ],
)
def test_the_check_allows_lazy_engine_imports(source: str) -> None:
    assert engine_imports(source, ["ocrclient", "transports"]) == []


def test_importing_every_transport_loads_no_engine() -> None:
    """The same rule at run time, transitive imports included."""
    code = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        import ocrclient.transports as pkg
        for m in pkgutil.iter_modules(pkg.__path__, "ocrclient.transports."):
            importlib.import_module(m.name)
        roots = {(*ENGINE_DEPS, ENGINE_PACKAGE)!r}
        print(sorted(k for k in sys.modules if any(k == r or k.startswith(r + ".") for r in roots)))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]", run.stdout


def test_old_import_paths_of_the_local_engine_still_resolve() -> None:
    """What ``ocrclient.transports.local`` held before the engine moved still imports from it,
    lazily, as the very objects of :mod:`ocrclient.engines`."""
    from ocrclient import engines
    from ocrclient.engines import rapidocr, tiling
    from ocrclient.transports import local

    assert local.plan_tiles is tiling.plan_tiles and local.Tile is tiling.Tile
    assert local.get_engine is rapidocr.get_engine is engines.get_engine
    assert local.EngineSettings is rapidocr.EngineSettings
    assert local.engine_constructions is rapidocr.engine_constructions
    assert local.engine_missing is rapidocr.engine_missing and local.INSTALL_HINT == rapidocr.INSTALL_HINT
    with pytest.raises(AttributeError, match="no attribute 'read_image'"):
        _ = local.read_image
