"""The shape docs/ARCHITECTURE.md promises, kept true: no module of the package over 600 lines
(the simulators in ``testing/`` aside) and no function over 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ocrclient"
MODULES = sorted(SRC.rglob("*.py"))
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def test_the_package_is_found() -> None:
    assert len(MODULES) > 50, MODULES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    rel = path.relative_to(SRC)
    if rel.parts[0] != "testing":
        assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{rel}: {len(text.splitlines())} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"  # type: ignore[operator]
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES  # type: ignore[operator]
    ]
    assert not long, f"{rel}: {', '.join(long)}"
