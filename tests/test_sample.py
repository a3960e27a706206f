"""The bundled sample document: generated deterministically, and its ground truth is right."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pypdfium2 as pdfium
import pytest

from ocrclient.geometry import PageBox, to_pdf_user_space

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_make_sample() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample", EXAMPLES / "make_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_sample"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_sample() -> ModuleType:
    return _load_make_sample()


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((EXAMPLES / "sample.truth.json").read_text(encoding="utf-8"))


def test_regenerating_gives_the_committed_bytes(make_sample: ModuleType, tmp_path: Path) -> None:
    pdf, truth_path = make_sample.write(tmp_path)
    assert pdf.read_bytes() == (EXAMPLES / "sample.pdf").read_bytes()
    assert truth_path.read_bytes() == (EXAMPLES / "sample.truth.json").read_bytes()
    # and a second run in the same process is identical too (no hidden state, no timestamps)
    again, _ = make_sample.write(tmp_path / "again")
    assert again.read_bytes() == pdf.read_bytes()


def test_sample_structure(truth: dict) -> None:
    pdf = pdfium.PdfDocument(str(EXAMPLES / "sample.pdf"))
    try:
        assert len(pdf) == len(truth["pages"]) == 4
        for tp in truth["pages"]:
            page = pdf[tp["page"] - 1]
            assert page.get_rotation() == tp["rotation"]
            assert page.get_size() == pytest.approx((tp["width"], tp["height"]))
            assert all(line["font_size"] >= 10 for line in tp["lines"])
        assert [tp["rotation"] for tp in truth["pages"]] == [0, 0, 0, 90]
        assert (truth["pages"][3]["width"], truth["pages"][3]["height"]) == (792.0, 612.0)
        kinds = {line["kind"] for tp in truth["pages"] for line in tp["lines"]}
        assert {"title", "heading", "body", "cell", "caption"} <= kinds
        assert {line.get("column") for line in truth["pages"][1]["lines"]} == {None, 1, 2}
    finally:
        pdf.close()


def _displayed_charboxes(textpage: pdfium.PdfTextPage, box: PageBox) -> list[tuple[float, ...]]:
    """Every character's glyph box, in displayed-page points (the inverse of to_pdf_user_space
    for the two rotations the sample uses)."""
    out = []
    for i in range(textpage.count_chars()):
        left, bottom, right, top = textpage.get_charbox(i)
        if right - left <= 0:
            continue
        if box.rotation == 0:
            out.append((left, box.height - top, right, box.height - bottom))
        else:  # /Rotate 90: displayed (X, Y) == user (y, x)
            assert box.rotation == 90
            out.append((bottom, left, top, right))
    return out


def test_truth_boxes_hold_exactly_their_text(truth: dict) -> None:
    """Each truth box, mapped back to PDF user space (undoing /Rotate), encloses exactly the
    characters PDFium reads there, and the glyphs PDFium places inside it span it from end to end
    (within the glyphs' side bearings): the boxes are where the text is, on the rotated page too."""
    pdf = pdfium.PdfDocument(str(EXAMPLES / "sample.pdf"))
    try:
        for tp in truth["pages"]:
            textpage = pdf[tp["page"] - 1].get_textpage()
            box = PageBox(tp["width"], tp["height"], tp["rotation"])
            chars = _displayed_charboxes(textpage, box)
            for line in tp["lines"]:
                x0, y0, x1, y1 = to_pdf_user_space(line["box"], box)
                got = textpage.get_text_bounded(x0, y0, x1, y1).replace("\x02", "-").strip()
                assert got == line["text"], (tp["page"], line["box"])
                bx0, by0, bx1, by1 = line["box"]
                inside = [
                    c
                    for c in chars
                    if bx0 <= (c[0] + c[2]) / 2 <= bx1 and by0 <= (c[1] + c[3]) / 2 <= by1
                ]
                assert inside, line["text"]
                gx0, gy0 = min(c[0] for c in inside), min(c[1] for c in inside)
                gx1, gy1 = max(c[2] for c in inside), max(c[3] for c in inside)
                size = line["font_size"]
                assert bx0 - 0.5 <= gx0 <= bx0 + 0.15 * size, line["text"]
                assert bx1 - 0.15 * size <= gx1 <= bx1 + 0.5, line["text"]
                assert by0 - 0.5 <= gy0 and gy1 <= by1 + 0.5, line["text"]
    finally:
        pdf.close()


def test_truth_has_a_hyphenated_line_end(truth: dict) -> None:
    lines = [line["text"] for line in truth["pages"][0]["lines"]]
    assert any(t.endswith("-") and t[-2].isalpha() for t in lines)
