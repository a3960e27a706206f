"""A run over many documents holds one at a time: a document handed over is let go by the run.

Every finished document was kept to the end of the run three times over -- the scheduler's list
of finished documents, its per-document bookkeeping (each page), and ``ocr convert``'s summary
list (each whole document) -- so memory grew with the run: 30 documents of 10 text-layer pages
ended at 550 MB against 169 MB now, and a batch of thousands of PDFs grew without bound.  The
whole kind: the Python API (``convert_many``, sync and async, with outputs written or not) and
the command, each over 6 documents."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.document import Document
from ocrclient.exporters.sink import OutputWriter

from .pdfgen import text_pdf

DOCS = 6


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    for i in range(DOCS):
        text_pdf(root / f"d{i:02d}.pdf", [[f"document {i} page {p} word{j} " * 3 for j in range(8)] for p in range(3)])
    return root


def _settings(tmp_path: Path) -> dict[str, Any]:
    return {"backend": "local", "cache": tmp_path / "cache"}


def _alive(refs: list[weakref.ref[Document]]) -> list[int]:
    gc.collect()
    return [i for i, ref in enumerate(refs) if ref() is not None]


@pytest.mark.parametrize("outputs", [False, True], ids=["no-outputs", "outputs"])
def test_convert_many_lets_go_of_each_document_once_handed_over(folder: Path, tmp_path: Path, outputs: bool) -> None:
    refs: list[weakref.ref[Document]] = []
    seen: list[list[int]] = []
    with OutputWriter(tmp_path / "out", ["md", "json"]) as writer:
        extra = {"outputs": writer} if outputs else {}
        for result in ocrclient.convert_many(sorted(folder.glob("*.pdf")), **_settings(tmp_path), **extra):
            assert result.document.stats.ok == 3 and bool(result.outputs) == outputs
            refs.append(weakref.ref(result.document))
            del result
            seen.append(_alive(refs[:-1]))  # (the one just handed over may still be the run's)
    assert len(refs) == DOCS and seen == [[]] * DOCS, seen


async def test_aconvert_many_lets_go_of_each_document_once_handed_over(folder: Path, tmp_path: Path) -> None:
    refs: list[weakref.ref[Document]] = []
    seen: list[list[int]] = []
    async for result in ocrclient.aconvert_many(sorted(folder.glob("*.pdf")), **_settings(tmp_path)):
        refs.append(weakref.ref(result.document))
        del result
        seen.append(_alive(refs[:-1]))
    assert len(refs) == DOCS and seen == [[]] * DOCS, seen


PROBE = """\
import gc, json, sys
from ocrclient.cli import convert
from ocrclient.document import Block
real = convert._report
def report(results, *args, **kwargs):
    gc.collect()
    blocks = sum(type(o) is Block for o in gc.get_objects())
    print("PROBE " + json.dumps({"blocks": blocks, "results": len(results),
                                 "pages": [len(r.document.pages) for r in results]}), file=sys.stderr)
    return real(results, *args, **kwargs)
convert._report = report
from ocrclient.console import main
sys.argv = ["ocr", *sys.argv[1:]]
main()
"""


def probed(probe: str, tmp_path: Path, *argv: str) -> tuple[dict[str, Any], str]:
    """Run ``ocr`` through the script ``probe`` (which prints one ``PROBE <json>`` line on
    stderr) with ``argv`` and fresh cache and config folders under ``tmp_path``: that JSON, and
    the command's stderr."""
    script = tmp_path / "probe.py"
    script.write_text(probe)
    env = {**os.environ, "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"), "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg"),
           "NO_COLOR": "1"}  # fmt: skip
    run = subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    found: dict[str, Any] = json.loads(next(ln for ln in run.stderr.splitlines() if ln.startswith("PROBE "))[len("PROBE ") :])
    return found, run.stderr


def test_ocr_convert_holds_for_its_summary_only_what_the_summary_says(folder: Path, tmp_path: Path) -> None:
    """At the summary the command holds every document's counts and pages' fates, and the
    blocks of one document at most (the run's last, still its own), not of all six."""
    probe, stderr = probed(PROBE, tmp_path, "convert", str(folder), "-o", str(tmp_path / "out"), "--no-progress")
    per_doc = _blocks_of(tmp_path / "out" / "d00.json")
    assert probe["results"] == DOCS and probe["pages"] == [3] * DOCS
    assert probe["blocks"] <= per_doc, (probe["blocks"], per_doc)
    assert f"{3 * DOCS} pages in" in stderr  # (the summary's total, from the counts it kept)


def _blocks_of(path: Path) -> int:
    def count(blocks: list[dict[str, Any]]) -> int:
        return sum(1 + count(b["children"]) for b in blocks)

    return sum(count(p["blocks"]) for p in json.loads(path.read_text())["pages"])

