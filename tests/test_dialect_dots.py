"""dots.ocr dialect: request, JSON cells in the model's own resize, truncation salvage, fuzz."""

from __future__ import annotations

import json
import random
import statistics

import pytest
from hypothesis import given, settings

from ocrclient.dialects.base import Attempt
from ocrclient.dialects.dots import (
    IMAGE_TOKENS,
    PROMPT_LAYOUT_ALL_EN,
    DotsDialect,
    parse_cells,
    smart_resize,
)
from ocrclient.errors import BadOutputError
from ocrclient.geometry import CoordSpace, to_page

from .test_dialect_common import (
    assert_chat_shape,
    fuzz_finish,
    fuzz_parse,
    fuzz_text,
    make_page,
    reply,
    request_for,
    text_parts,
)


@pytest.fixture
def dots() -> DotsDialect:
    return DotsDialect(model="rednote-hilab/dots.ocr")


def test_smart_resize_matches_upstream_rules() -> None:
    for h, w in [(1100, 850), (2200, 1700), (28, 5000), (10, 10), (6000, 4000)]:
        hh, ww = smart_resize(h, w)
        assert hh % 28 == 0 and ww % 28 == 0
        assert 3136 <= hh * ww <= 11289600
    assert smart_resize(1100, 850) == (1092, 840)


def test_build(dots: DotsDialect) -> None:
    page = make_page(dots.render)
    req = dots.build(page, Attempt(1))
    assert_chat_shape(req, page, "rednote-hilab/dots.ocr")
    assert [p["type"] for p in req.body["messages"][0]["content"]] == ["image_url", "text"]
    assert text_parts(req) == [IMAGE_TOKENS + PROMPT_LAYOUT_ALL_EN]
    assert req.body["temperature"] == 0.1 and req.body["top_p"] == 0.9 and req.body["max_tokens"] == 16384
    assert dots.build(page, Attempt(2)).body["temperature"] == 0.2


def test_parse_cells(dots: DotsDialect) -> None:
    page = make_page(dots.render)
    cells = [
        {"bbox": [10, 10, 600, 60], "category": "Page-header", "text": "ACME Ltd"},
        {"bbox": [100, 100, 700, 180], "category": "Title", "text": "# Invoice"},
        {"bbox": [100, 200, 700, 400], "category": "Table", "text": "<table><tr><td>Pen</td></tr></table>"},
        {"bbox": [100, 450, 400, 700], "category": "Picture"},
        {"bbox": [100, 720, 700, 760], "category": "Formula", "text": "$$x^2$$"},
    ]
    c = dots.parse(reply(json.dumps(cells)), request_for(page))
    assert [b.type for b in c.blocks] == ["page_header", "title", "table", "figure", "equation"]
    assert c.blocks[1].text == "Invoice" and c.blocks[3].box == (100, 450, 400, 700)
    assert c.markdown == "# Invoice\n\n<table><tr><td>Pen</td></tr></table>\n\n![]()\n\n$$\nx^2\n$$"
    assert page.encoded is not None
    h, w = smart_resize(page.encoded.height, page.encoded.width)
    assert (c.space.kind, c.space.width, c.space.height) == ("model_pixels", w, h)
    assert not c.warnings


def test_truncated_json_is_salvaged_into_partial(dots: DotsDialect) -> None:
    text = '[{"bbox": [1, 2, 300, 40], "category": "Text", "text": "kept"}, {"bbox": [1, 50, 3'
    with pytest.raises(BadOutputError) as info:
        dots.parse(reply(text, finish="length"), request_for(make_page()))
    assert info.value.cause == "length" and info.value.partial.markdown == "kept"
    assert any("salvaged" in w for w in info.value.partial.warnings)


def test_unparseable_and_degraded(dots: DotsDialect) -> None:
    with pytest.raises(BadOutputError) as info:
        dots.parse(reply("I cannot read this image."), request_for(make_page()))
    assert info.value.cause == "unparseable"
    bad = [{"bbox": [500, 10, 100, 50], "category": "Text", "text": "reversed"}, "junk",
           {"category": "Text", "text": "no box"}, {"bbox": [0, 0, 99999, 5], "category": "Odd", "text": "far"}]  # fmt: skip
    c = dots.parse(reply(json.dumps(bad)), request_for(make_page(dots.render)))
    joined = " | ".join(c.warnings)
    for needle in ("reversed", "not an object", "no bbox", "outside"):
        assert needle in joined
    assert [b.type for b in c.blocks] == ["text", "text", "text"]


def test_geometry_roundtrip(dots: DotsDialect) -> None:
    rng = random.Random(3)
    page = make_page(dots.render)
    req = dots.build(page, Attempt(1))
    assert page.encoded is not None and req.frame is not None
    mh, mw = smart_resize(page.encoded.height, page.encoded.width)
    truths, cells = [], []
    for _ in range(12):
        x0, x1 = sorted(rng.uniform(0, 1) for _ in range(2))
        y0, y1 = sorted(rng.uniform(0, 1) for _ in range(2))
        truths.append((x0, y0, x1, y1))
        cells.append({"bbox": [round(x0 * mw), round(y0 * mh), round(x1 * mw), round(y1 * mh)],
                      "category": "Text", "text": "t"})  # fmt: skip
    c = dots.parse(reply(json.dumps(cells)), request_for(page))
    errors = []
    for block, t in zip(c.blocks, truths, strict=True):
        m = to_page(block.box, c.space, req.frame, page.page_box)  # type: ignore[arg-type]
        for i, (got, want) in enumerate(zip(m.bbox, (t[0] * 612, t[1] * 792, t[2] * 612, t[3] * 792), strict=True)):
            step = 612 / mw if i % 2 == 0 else 792 / mh
            assert abs(got - want) <= step
            errors.append(abs(got - want) / step)
    assert statistics.median(errors) <= 0.5


@settings(max_examples=150, deadline=None)
@given(fuzz_text, fuzz_finish)
def test_fuzz_never_raises_other_errors(text: str, finish: str | None) -> None:
    fuzz_parse(DotsDialect(model="m").parse, text, finish)


@settings(max_examples=100, deadline=None)
@given(fuzz_text)
def test_fuzz_json_shaped(text: str) -> None:
    fuzz_parse(DotsDialect(model="m").parse, json.dumps([{"bbox": text, "category": text, "text": text}]), "stop")


@pytest.mark.parametrize(("text", "md"), [
    ("$$E = mc^2$$", "$$\nE = mc^2\n$$"),
    ("\\[x^2\\]", "$$\nx^2\n$$"),
    ("\\frac{a_1 * b_2}{c_3 * d_4} = \\sum_{i} x_i", "$$\n\\frac{a_1 * b_2}{c_3 * d_4} = \\sum_{i} x_i\n$$"),
    ("\\documentclass{article}\\begin{document}\\alpha\\end{document}", "$$\n\\alpha\n$$"),
    ("with inline $x$ math", "with inline $x$ math"),
    ("E = mc2", "E = mc2"),
    ("$$a$ and $b$$", "$$a$ and $b$$"),
])  # fmt: skip
def test_a_formula_cell_is_written_as_dots_own_markdown_writes_it(text: str, md: str) -> None:
    """Display math between $$ lines, bare LaTeX put there (written bare, a formula's * were
    read as emphasis); inline math and plain text as they are."""
    c = parse_cells(json.dumps([{"bbox": [10, 10, 200, 50], "category": "Formula", "text": text}]), CoordSpace.grid(1000))
    assert c.markdown == md and c.blocks[0].type == "equation"


def test_a_cell_without_text_is_empty_and_a_number_is_its_digits() -> None:
    """``"text": null`` became the word 'null' in the markdown and the block."""
    cells = [{"bbox": [10, 10, 200, 50], "category": "Text", "text": None},
             {"bbox": [10, 60, 200, 90], "category": "Text", "text": 12345}]  # fmt: skip
    c = parse_cells(json.dumps(cells), CoordSpace.grid(1000))
    assert c.markdown == "12345" and [b.text for b in c.blocks] == ["", "12345"]
