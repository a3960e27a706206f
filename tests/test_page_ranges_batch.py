"""``--pages`` over several inputs takes from each document the pages of the range it has.  "The
first three pages of every PDF in a folder" (``--pages 1-3``) and "everything after the cover"
(``--pages 2-``) were refused whole, exit 2, when one document was shorter.  The kind: each
range against a folder of a 10-, a 2- and a 1-page document, through the CLI (exit code,
warnings, what was converted) and ``convert_many``; one input still refuses a range it lacks."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ocrclient
from ocrclient.cli import app

from .pdfgen import text_pdf

#: range -> pages converted of (ten, two, one), and the documents a warning names
CASES = {
    "1-3": ({"ten": 3, "two": 2, "one": 1}, {"two", "one"}),
    "2-": ({"ten": 9, "two": 1}, {"one"}),
    "1,5": ({"ten": 2, "two": 1, "one": 1}, {"two", "one"}),
    "1": ({"ten": 1, "two": 1, "one": 1}, set()),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, n in (("ten", 10), ("two", 2), ("one", 1)):
        text_pdf(docs / f"{name}.pdf", [[f"{name} page {i + 1}"] for i in range(n)])
    return docs


@pytest.mark.parametrize("pages", sorted(CASES))
def test_a_range_takes_from_each_document_the_pages_it_has(pages: str, folder: Path, tmp_path: Path) -> None:
    want, warned = CASES[pages]
    run = CliRunner().invoke(app, ["convert", str(folder), "--pages", pages, "-o", str(tmp_path / "out"), "--json",
                                   "--no-cache"])  # fmt: skip
    assert run.exit_code == 0, run.output
    got = {Path(d["source"]).stem: d["pages"] for d in json.loads(run.stdout)["documents"]}
    assert got == want
    said = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert {n for n in ("ten", "two", "one") if any(f"{n}.pdf" in line for line in said)} == warned, said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(ocrclient.convert_many([folder], pages=pages, cache=False))
    assert {Path(r.source.name).stem: len(r.document.pages) for r in results} == want
    assert {n for n in ("ten", "two", "one") if any(f"{n}.pdf" in str(w.message) for w in caught)} == warned
    for line in said:  # said as English: "its page 1 is", "its pages 1-2 are" (it said "its pages 1 are")
        assert re.search(r"its (page \d+ is|pages [\d,-]+ are) converted|left out", line), line


def test_a_range_no_document_has_is_refused(folder: Path, tmp_path: Path) -> None:
    run = CliRunner().invoke(app, ["convert", str(folder), "--pages", "11-", "-o", str(tmp_path / "out")])
    assert run.exit_code == 2 and "no input has a page in it" in run.stderr, run.output


def test_one_input_still_refuses_a_range_it_lacks(folder: Path, tmp_path: Path) -> None:
    run = CliRunner().invoke(app, ["convert", str(folder / "two.pdf"), "--pages", "1-3", "-o", str(tmp_path / "out")])
    assert run.exit_code == 2 and "past the end" in run.stderr, run.output
