"""``--pages`` over several inputs takes from each document the pages of the range it has.  "The
first three pages of every PDF in a folder" (``--pages 1-3``) and "everything after the cover"
(``--pages 2-``) were refused whole, exit 2, when one document was shorter.  The kind: each
range against a folder of a 10-, a 2- and a 1-page document, through the CLI (exit code,
warnings, what was converted, what ``--json`` lists) and ``convert_many``; one input still refuses
a range it lacks.  ``--json``'s summary names every input given, each once: a document, or why
there is none (refused, skipped as done, left out by the range, unfinished by a stopped run)."""

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
    summary = json.loads(run.stdout)
    got = {Path(d["source"]).stem: d["pages"] for d in summary["documents"]}
    assert got == want
    # (an input left out is named in the summary, with why: the documents alone did not say it was given)
    assert {Path(d["source"]).stem: d["reason"] for d in summary["left_out"]} == {
        n: f"the page range {pages!r} holds none of its 1 page" for n in ("ten", "two", "one") if n not in want}
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


#: the lists of ``--json``'s summary that name an input without a document
UNCONVERTED = ("refused", "skipped", "left_out", "unfinished")


def _fates(summary: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    """Each input the summary names -> the list naming it (each is named once)."""
    named = [(Path(e["source"]).name, kind) for kind in ("documents", *UNCONVERTED) for e in summary[kind]]
    assert len({name for name, _ in named}) == len(named), named
    return dict(named)


def test_json_names_every_input_given_and_why_it_has_no_document(folder: Path, tmp_path: Path) -> None:
    """Every way an input of several ends without a document in a run (refused as unusable,
    left out by ``--pages``, skipped as done by a rerun), and its shards: ``--json`` names it.
    ``multi.pdf photo.jpg --pages 2`` warned that photo.jpg was left out while the summary had
    multi.pdf alone, and ``refused`` and ``skipped`` empty."""
    from PIL import Image

    Image.new("RGB", (200, 100), "white").save(folder / "photo.jpg")
    (folder / "bad.pdf").write_bytes(b"%PDF-1.7\n")
    out = str(tmp_path / "out")
    first = {"ten.pdf": "documents", "two.pdf": "documents", "one.pdf": "left_out", "photo.jpg": "left_out",
             "bad.pdf": "refused"}  # fmt: skip
    again = {**first, "ten.pdf": "skipped", "two.pdf": "skipped"}
    for want in (first, again):  # (the rerun finds the converted done)
        run = CliRunner().invoke(app, ["convert", str(folder), "--pages", "2", "-o", out, "--json", "--no-cache"])
        assert run.exit_code == 1, run.output  # (for bad.pdf)
        summary = json.loads(run.stdout)
        assert _fates(summary) == want, summary
        assert {e["reason"] for e in summary["left_out"]} == {"the page range '2' holds none of its 1 page"}
    shards = [json.loads(CliRunner().invoke(app, ["convert", str(folder), "--pages", "2", "-o", str(tmp_path / "o2"),
                                                  "--json", "--no-cache", "--shard", f"{i}/3"]).stdout)
              for i in range(3)]  # fmt: skip
    named = [(name, kind) for summary in shards for name, kind in _fates(summary).items()]
    assert sorted(named) == sorted(first.items())  # (each in its shard's summary, none in two)
