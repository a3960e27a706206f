"""LightOnOCR dialect: image-only request, markdown reply, -bbox image boxes, geometry, fuzz."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt
from ocrclient.dialects.lighton import LightOnDialect
from ocrclient.errors import BadOutputError
from ocrclient.registry import load_dialect

from .test_dialect_common import (
    assert_chat_shape,
    fuzz_finish,
    fuzz_parse,
    fuzz_text,
    geometry_roundtrip,
    make_page,
    reply,
    request_for,
    text_parts,
)


@pytest.fixture
def lo() -> LightOnDialect:
    return LightOnDialect(model="lightonai/LightOnOCR-2-1B-bbox")


def test_build_image_only_with_card_sampling(lo: LightOnDialect) -> None:
    page = make_page(lo.render)
    req = lo.build(page, Attempt(1))
    assert_chat_shape(req, page, "lightonai/LightOnOCR-2-1B-bbox")
    assert text_parts(req) == []
    assert len(req.body["messages"][0]["content"]) == 1
    assert req.body["max_tokens"] == 4096 and req.body["temperature"] == 0.2 and req.body["top_p"] == 0.9
    assert lo.build(page, Attempt(2)).body["temperature"] == 0.3
    assert max(req.frame.width_px, req.frame.height_px) == 1540  # type: ignore[union-attr]


@pytest.mark.parametrize("name,model", [("runpod-pod-lightonocr2", "lightonai/LightOnOCR-2-1B"),
                                        ("modal-lightonocr", "lightonai/LightOnOCR-1B-1025")])  # fmt: skip
def test_profiles(name: str, model: str) -> None:
    d = load_dialect(resolve_config(name))
    req = d.build(make_page(d.render), Attempt(1))
    assert req.body["model"] == model and req.body["top_p"] == 0.9
    assert resolve_config(name).transport_options["stream"] is True


def test_bbox_variant_reply(lo: LightOnDialect) -> None:
    text = ("# Results\n\nSome text with $x^2$.\n\n![image](image_1.png)100,200,500,600\n\n"
            "FIG. 1 A caption.\n\n<table><tr><td>a</td></tr></table>\n\n![image](image_2.png) 0, 0, 1000, 1000")  # fmt: skip
    c = lo.parse(reply(text), request_for(make_page()))
    assert "100,200" not in c.markdown and "![image](image_1.png)\n\nFIG. 1" in c.markdown
    figs = [b for b in c.blocks if b.type == "figure"]
    assert [f.box for f in figs] == [(100, 200, 500, 600), (0, 0, 1000, 1000)]
    assert [f.label for f in figs] == ["image_1.png", "image_2.png"]
    assert [b.type for b in c.blocks] == ["title", "text", "figure", "text", "table", "figure"]
    assert c.space.label == "grid:1000" and not c.warnings


#: pictures in every arrangement: (reference line, its box or None) in page order, and whether
#: the line stands alone (a figure paragraph) or sits in a heading
_ARRANGEMENTS = {
    "all boxed": [("a", (100, 100, 300, 300), True), ("b", (100, 400, 900, 800), True)],
    "one without a box first": [("a", None, True), ("b", (100, 400, 900, 800), True), ("c", (10, 850, 90, 990), True)],
    "a logo in the heading": [("logo", (120, 30, 220, 80), False), ("chart", (100, 300, 900, 700), True)],
    "two in headings around one": [("l", (1, 1, 50, 50), False), ("m", (100, 300, 900, 700), True), ("r", (900, 1, 999, 50), False)],
}


@pytest.mark.parametrize("name", sorted(_ARRANGEMENTS))
def test_each_box_goes_to_its_own_pictures_figure(lo: LightOnDialect, name: str) -> None:
    """A figure block carries the box written after its own reference: a reference with no box,
    or one inside a line of text (a logo in a heading), took the next picture's box by order,
    and the chart's crop was the logo."""
    parts = []
    for src, box, alone in _ARRANGEMENTS[name]:
        ref = f"![image]({src}.png)" + (",".join(map(str, box)) if box else "")
        parts.append(ref if alone else f"# {ref} ACME Annual Report")
        parts.append(f"Text after {src}.")
    c = lo.parse(reply("\n\n".join(parts)), request_for(make_page()))
    figs = [b for b in c.blocks if b.type == "figure"]
    want = {f"{src}.png": box for src, box, _ in _ARRANGEMENTS[name]}
    for f in figs:
        if f.label in want:
            assert f.box == want[f.label], (f.label, f.box)
    standalone = [f"{src}.png" for src, _, alone in _ARRANGEMENTS[name] if alone]
    in_order = [f.label or "" for f in figs if (f.label or "") in standalone or f.box is None]
    assert [x for x in in_order if x] == [s for s in standalone if want[s] is not None]
    assert sorted(f.label for f in figs if f.box is not None) == sorted(s for s, b in want.items() if b)


@pytest.mark.parametrize("model", ["lightonai/LightOnOCR-2-1B", "lightonai/LightOnOCR-2-1B-bbox", "models/LightOnOCR"])
def test_numbers_after_a_picture_are_a_box_only_where_they_end_its_line(model: str) -> None:
    """Whatever the model's name (a -bbox-soup model served from a folder has none of "bbox"):
    the box right after the reference, or after a space ending the line, is the picture's; a
    line that goes on after the numbers ("![..](..) 1, 2, 3, 4 are the steps") keeps them as
    text (they were taken for a box, dropped from the text, and a figure invented)."""
    d = LightOnDialect(model=model)
    c = d.parse(reply("![image](image_1.png) 1, 2, 3, 4 are the step numbers.\n\nEnd."), request_for(make_page()))
    assert "1, 2, 3, 4 are the step numbers" in c.markdown and all(b.box is None for b in c.blocks)
    for written in ("100,200,300,400", " 100, 200, 300, 400", " [100, 200, 300, 400]"):
        c = d.parse(reply(f"![image](image_1.png){written}\n\nEnd."), request_for(make_page()))
        assert [b.box for b in c.blocks if b.type == "figure"] == [(100, 200, 300, 400)], written
        assert "100" not in c.markdown


def test_a_reference_the_split_reads_differently_does_not_shift_the_boxes(lo: LightOnDialect) -> None:
    """A box-less reference whose source has a space (or whose alt text a line break) before a
    boxed one: the boxed one keeps its box."""
    c = lo.parse(reply("![logo](my logo.png)\n\nSome text\n\n![image](image_1.png)100,210,620,750"),
                 request_for(make_page()))  # fmt: skip
    figs = [b for b in c.blocks if b.type == "figure"]
    assert [(f.label, f.box) for f in figs] == [(None, None), ("image_1.png", (100, 210, 620, 750))]


def test_plain_variant_reply_has_no_boxes(lo: LightOnDialect) -> None:
    c = lo.parse(reply("Plain page text.\n\n![image](image_1.png)"), request_for(make_page()))
    assert all(b.box is None for b in c.blocks) and c.markdown.endswith("![image](image_1.png)")


def test_bad_boxes_degrade(lo: LightOnDialect) -> None:
    c = lo.parse(reply("![image](image_1.png)600,200,100,100\n\n![image](image_2.png)0,0,4000,10"), request_for(make_page()))
    assert any("reversed" in w for w in c.warnings) and any("outside" in w for w in c.warnings)
    assert len([b for b in c.blocks if b.box]) == 2


def test_empty_truncated_repeated(lo: LightOnDialect) -> None:
    with pytest.raises(BadOutputError) as info:
        lo.parse(reply(" "), request_for(make_page()))
    assert info.value.cause == "empty"
    with pytest.raises(BadOutputError) as info:
        lo.parse(reply("Some text", finish="length"), request_for(make_page()))
    assert info.value.cause == "length" and info.value.partial.markdown == "Some text"
    with pytest.raises(BadOutputError) as info:
        lo.parse(reply("Start " + "\\frac{1}{2} + " * 100), request_for(make_page()))
    assert info.value.cause == "repetition"


def test_geometry_roundtrip(lo: LightOnDialect) -> None:
    def make(boxes: list[tuple[int, int, int, int]]) -> str:
        return "\n\n".join(f"Paragraph {i}.\n\n![image](image_{i}.png){b[0]},{b[1]},{b[2]},{b[3]}"
                           for i, b in enumerate(boxes))  # fmt: skip

    geometry_roundtrip(make, lo.parse, lo.build, 1000, lo.render)


@settings(max_examples=150, deadline=None)
@given(fuzz_text, fuzz_finish)
def test_fuzz_never_raises_other_errors(text: str, finish: str | None) -> None:
    fuzz_parse(LightOnDialect(model="m").parse, text, finish)


@pytest.mark.parametrize("name", ["runpod-pod-lightonocr2", "modal-lightonocr", None])
def test_pages_render_at_200_dpi_capped_at_1540_never_enlarged(name: str | None, tmp_path: Path) -> None:
    """The seeds' rule (scale 2.77, then ``min(1, 1540 / side)``): a letter page is shrunk to
    1540 px, a small page or image goes at its 200 dpi / own pixels.  Both profiles and the
    dialect's own spec sent a 3 x 2 in page and a 600 x 400 image at 1540 x 1027, 6.6x the
    pixels, each paid for in vision tokens.  Rendered through the page stream, as a run does."""
    from PIL import Image

    from ocrclient.pages import iter_pages, open_sources

    from .pdfgen import blank_pdf

    spec = load_dialect(resolve_config(name)).render if name else LightOnDialect().render
    pdf = blank_pdf(tmp_path / "pages.pdf", [(612, 792), (216, 144), (595, 842)])
    Image.new("RGB", (600, 400), "white").save(tmp_path / "small.png")
    sizes = [(p.encoded.width, p.encoded.height) for src in open_sources([pdf, tmp_path / "small.png"]) for p in iter_pages(src, spec) if p.encoded]
    assert sizes == [(1190, 1540), (600, 400), (1088, 1540), (600, 400)]


def test_pictures_sharing_a_paragraph_are_figures_in_reading_order(lo: LightOnDialect) -> None:
    """Two pictures in one paragraph before a single-picture one: each its own figure block, in
    reading order, and no text block repeats them (they were a box-less text block holding both
    references, their figures appended after the third: the markdown's K-th reference linked
    the K-th figure, another picture's crop)."""
    text = ("![image](image_1.png)600,200,900,300\n![image](image_2.png)400,400,500,500\n\nSome caption text.\n\n"
            "![image](image_3.png)100,650,350,850\n")  # fmt: skip
    c = lo.parse(reply(text), request_for(make_page()))
    assert [(b.type, b.label, b.box) for b in c.blocks] == [
        ("figure", "image_1.png", (600, 200, 900, 300)), ("figure", "image_2.png", (400, 400, 500, 500)),
        ("text", None, None), ("figure", "image_3.png", (100, 650, 350, 850))]  # fmt: skip
    assert c.blocks[2].text == "Some caption text."
    # words in the paragraph with its pictures: one block of them, where they start, pictures apart
    c = lo.parse(reply("Panels:\n![a](a.png)1,2,3,4\n![b](b.png)5,6,7,8\nleft and right.\n\n# ![logo](l.png)9,9,20,20 ACME"),
                 request_for(make_page()))  # fmt: skip
    assert [(b.type, b.text) for b in c.blocks] == [("text", "Panels:\nleft and right."), ("figure", "a"), ("figure", "b"),
                                                    ("title", "ACME"), ("figure", "logo")]  # fmt: skip
    assert all("![" not in b.text for b in c.blocks)
