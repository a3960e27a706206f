"""Chandra dialect: request shape, real replies, broken HTML, geometry round trip, fuzz."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt
from ocrclient.dialects.chandra import ChandraDialect, build_prompt
from ocrclient.errors import BadOutputError, ConfigError
from ocrclient.geometry import to_page
from ocrclient.registry import load_dialect

from .test_dialect_common import (
    REPLIES,
    assert_chat_shape,
    fuzz_finish,
    fuzz_parse,
    fuzz_text,
    geometry_roundtrip,
    image_parts,
    make_page,
    reply,
    request_for,
    text_parts,
)


@pytest.fixture
def v2() -> ChandraDialect:
    return ChandraDialect(model="datalab-to/chandra-ocr-2")


def test_build_request_shape(v2: ChandraDialect) -> None:
    page = make_page(v2.render)
    req = v2.build(page, Attempt(1))
    assert_chat_shape(req, page, "datalab-to/chandra-ocr-2")
    content = req.body["messages"][0]["content"]
    assert content[0]["type"] == "image_url" and content[1]["type"] == "text"  # image first
    assert req.body["max_tokens"] == 12384
    assert req.body["temperature"] == 0.0 and req.body["top_p"] == 0.1
    retry = v2.build(page, Attempt(2))
    assert retry.body["temperature"] == 0.3 and retry.body["top_p"] == 0.95
    assert "skip_special_tokens" not in req.body


def test_prompts_per_version() -> None:
    p1, p2 = build_prompt(1), build_prompt(2)
    assert "[x0, y0, x1, y1] format" in p1 and "normalized 0-1024" in p1
    assert "x0 y0 x1 y1 format" in p2 and "normalized 0-1000" in p2
    assert "- Blank-Page" in p2 and "- Blank-Page" not in p1
    assert "'data-bbox'" in p2


def test_version_from_model_and_options() -> None:
    assert ChandraDialect(model="datalab-to/chandra").version == 1
    assert ChandraDialect(model="datalab-to/chandra-ocr-2").version == 2
    assert ChandraDialect(model="my/served-name").version == 2
    assert ChandraDialect(model="my/served-name", options={"version": 1}).space.grid_size == 1024
    with pytest.raises(ConfigError):
        ChandraDialect(model="m", options={"version": 3})


_NAMES = {"datalab-to/chandra": 1, "datalab-to/chandra-ocr-2": 2, "my/served-name": None,
          # a date after the name says no version (they were taken for Chandra 2, and refused)
          "/models/chandra-20251001": None, "acme/chandra-2025-06-ft": None, "my/chandra2-ft": 2}


@pytest.mark.parametrize("profile", ["chandra", "runpod-chandra", "openai", "runpod"])
@pytest.mark.parametrize("model", sorted(_NAMES))
@pytest.mark.parametrize("version", [None, 1, 2])
def test_a_version_against_its_models_name_is_refused_in_every_profile(
    profile: str, model: str, version: int | None
) -> None:
    """Whatever profile carries the Chandra dialect and whatever it pins, a model whose name says
    one version read with the other's grid is refused (``--model datalab-to/chandra-ocr-2`` on
    runpod-chandra, which pins version 1, read Chandra 2's 0-1000 boxes on 0-1024, status ok);
    a name that says neither takes the version given, and no version takes the name's."""
    over: dict[str, object] = {"dialect": "chandra", "model": model}
    if version is not None:
        over["dialect_options"] = {"version": version}
    name = profile if profile != "chandra" else "runpod-chandra"
    cfg = resolve_config(name, **over)
    pinned = cfg.dialect_options.get("version")
    want = pinned if pinned is not None else (_NAMES[model] or 2)
    named = _NAMES[model]
    if named is not None and want != named:
        with pytest.raises(ConfigError, match=f"is Chandra {named} but dialect_options.version is {want}"):
            load_dialect(cfg)
        return
    d = load_dialect(cfg)
    assert isinstance(d, ChandraDialect)
    assert d.version == want and d.grid == (1024 if want == 1 else 1000)


def test_profile_builds_v1_with_its_sampling() -> None:
    d = load_dialect(resolve_config("runpod-chandra"))
    assert isinstance(d, ChandraDialect) and d.version == 1
    page = make_page(d.render)
    req = d.build(page, Attempt(1))
    assert req.body["max_tokens"] == 8192
    assert "normalized 0-1024" in text_parts(req)[0]
    assert image_parts(req)[0]["image_url"]["url"].startswith("data:image/png;base64,")
    # Chandra renders at 192 dpi: a US letter page is 1632 x 2112 px
    assert (req.frame.width_px, req.frame.height_px) == (1632, 2112)  # type: ignore[union-attr]


def test_real_reply_papermeister(v2: ChandraDialect) -> None:
    text = (REPLIES / "chandra" / "papermeister_structured.html").read_text(encoding="utf-8")
    page = make_page(v2.render)
    c = v2.parse(reply(text), request_for(page))
    assert not c.warnings
    assert [b.label for b in c.blocks] == ["Page-Header", "Section-Header", "Text", "Figure", "Caption"]
    assert [b.type for b in c.blocks] == ["page_header", "section_header", "text", "figure", "caption"]
    assert c.blocks[3].box == (240, 89, 760, 293) and c.blocks[3].text == "Map of the equatorial Pacific."
    assert "megálo" in c.blocks[2].text  # entity decoded
    assert c.blocks[1].text == "Etymology"
    # headers/footers are left out of the markdown by default, headings keep their level
    assert "Fossils 86" not in c.markdown
    assert c.markdown.startswith("#### Etymology")
    assert "![Map of the equatorial Pacific.]()" in c.markdown
    assert c.space.label == "grid:1000"
    box = to_page(c.blocks[3].box, c.space, v2.build(page, Attempt(1)).frame, page.page_box)  # type: ignore[arg-type]
    assert box.bbox_norm == [0.24, 0.089, 0.76, 0.293]


def test_real_reply_raglit(v2: ChandraDialect) -> None:
    text = (REPLIES / "chandra" / "raglit_memo.html").read_text(encoding="utf-8")
    c = v2.parse(reply(text), request_for(make_page()))
    assert len(c.blocks) == 3 and not c.warnings
    assert c.blocks[0].type == "section_header"
    assert c.markdown.splitlines()[0] == "## **TRANSACTION MEMO** (COMPLETED BY SELLING AGENT)"
    assert "DATE: 5/27/2021" in c.markdown


def test_headers_footers_option() -> None:
    """The parse reads no furniture option: its markdown leaves the Page-Header out and
    ``furniture_markdown`` keeps it in place, whatever the option (an output option: the run
    picks one, so a cached page serves either)."""
    text = (REPLIES / "chandra" / "papermeister_structured.html").read_text(encoding="utf-8")
    for options in ({}, {"include_headers_footers": True}):
        c = ChandraDialect(model="m", options=options).parse(reply(text), request_for(make_page()))
        assert c.furniture_markdown is not None and c.furniture_markdown.startswith("Fossils 86\n\n")
        assert c.furniture_markdown.removeprefix("Fossils 86\n\n") == c.markdown == c.markdown_for(False)
        assert c.markdown_for(True) == c.furniture_markdown
        assert c.blocks[0].type == "page_header"  # (the JSON types it either way)


def test_v1_json_boxes_and_math_tables() -> None:
    d = ChandraDialect(model="datalab-to/chandra")
    html = ('<div data-bbox="[10, 20, 500, 80]" data-label="Equation-Block"><p><math display="block">'
            'E=mc^2</math></p></div><div data-bbox="[10, 100, 1000, 400]" data-label="Table">'
            '<table><tr><th>a</th></tr><tr><td>1</td></tr></table></div>'
            '<div data-bbox="[0, 0, 1024, 1024]" data-label="Blank-Page"></div>'
            '<div data-bbox="[1, 2, 3, 4]" data-label="List-Group"><ul><li>x</li><li>y</li></ul></div>')  # fmt: skip
    c = d.parse(reply(html), request_for(make_page()))
    assert [b.type for b in c.blocks] == ["equation", "table", "list_item"]
    assert c.blocks[0].box == (10, 20, 500, 80) and c.space.grid_size == 1024
    assert "$$\nE=mc^2\n$$" in c.markdown
    assert "<table><tr><th>a</th></tr><tr><td>1</td></tr></table>" in c.markdown
    assert "- x\n- y" in c.markdown


def test_malformed_blocks_degrade_with_warnings(v2: ChandraDialect) -> None:
    html = ('<div data-bbox="900 10 100 50" data-label="Text"><p>reversed</p></div>'
            '<div data-bbox="0 0 5000 20" data-label="Text"><p>too big</p></div>'
            '<div data-bbox="1 2 3" data-label="Text"><p>three numbers</p></div>'
            '<div data-label="Text"><p>no box</p></div>'
            '<div data-bbox="1 1 9 9" data-label="Mystery-Label"><p>unknown label</p></div>'
            'loose words</span>')  # fmt: skip
    c = v2.parse(reply(html), request_for(make_page()))
    joined = " | ".join(c.warnings)
    for needle in ("reversed", "outside", "expected 4", "no data-bbox", "stray"):
        assert needle in joined
    assert c.blocks[0].box == (900, 10, 100, 50)  # kept as said; geometry reorders and flags it
    assert c.blocks[2].box is None and c.blocks[3].box is None
    assert c.blocks[4].type == "text" and c.blocks[4].label == "Mystery-Label"
    assert c.blocks[-1].text == "loose words"
    for text in ("reversed", "too big", "three numbers", "no box", "unknown label", "loose words"):
        assert text in c.markdown


def test_truncated_html_is_length_error_with_partial(v2: ChandraDialect) -> None:
    html = '<div data-bbox="1 2 300 40" data-label="Text"><p>First block.</p></div><div data-bbox="1 50 300 90" data-label="Table"><table><tr><td>cut'
    with pytest.raises(BadOutputError) as info:
        v2.parse(reply(html, finish="length"), request_for(make_page()))
    err = info.value
    assert err.cause == "length"
    assert err.partial is not None and "First block." in err.partial.markdown
    assert any("unclosed" in w for w in err.partial.warnings)


def test_plain_html_without_layout_is_degraded(v2: ChandraDialect) -> None:
    c = v2.parse(reply("<p>Just a paragraph.</p>"), request_for(make_page()))
    assert c.markdown == "Just a paragraph."
    assert any("no layout blocks" in w for w in c.warnings)


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_reply(v2: ChandraDialect, text: str) -> None:
    with pytest.raises(BadOutputError) as info:
        v2.parse(reply(text), request_for(make_page()))
    assert info.value.cause == "empty"


def test_endless_repetition(v2: ChandraDialect) -> None:
    html = '<div data-bbox="1 2 3 4" data-label="Text"><p>' + "Lorem ipsum dolor. " * 200
    with pytest.raises(BadOutputError) as info:
        v2.parse(reply(html, finish="length"), request_for(make_page()))
    assert info.value.cause == "repetition"
    assert info.value.partial is not None and len(info.value.partial.markdown) < 400


@pytest.mark.parametrize("version,grid", [(1, 1024), (2, 1000)])
def test_geometry_roundtrip(version: int, grid: int) -> None:
    d = ChandraDialect(model="m", options={"version": version})

    def make(boxes: list[tuple[int, int, int, int]]) -> str:
        out = []
        for i, b in enumerate(boxes):
            coords = f"[{b[0]}, {b[1]}, {b[2]}, {b[3]}]" if version == 1 else " ".join(map(str, b))
            out.append(f'<div data-bbox="{coords}" data-label="Text"><p>block {i}</p></div>')
        return "\n".join(out)

    geometry_roundtrip(make, d.parse, d.build, grid, d.render)


@settings(max_examples=150, deadline=None)
@given(fuzz_text, fuzz_finish)
def test_fuzz_never_raises_other_errors(text: str, finish: str | None) -> None:
    fuzz_parse(ChandraDialect(model="m").parse, text, finish)


# ------------------------------------------------------------------------------------------------
# the same markdown as Chandra's own output code
# ------------------------------------------------------------------------------------------------


def _chandra_reference_markdown(html: str) -> str:
    """The page markdown by the conventions of ``datalab-to/chandra`` ``chandra/output.py``
    ``parse_markdown``, written from its documented behaviour: top-level divs, Page-Header /
    Page-Footer left out, label-less Text wrapped in <p>, figures given an <img>, markdownify
    with ATX headings, "-" bullets, ``_ * $`` escaped, <sub>/<sup> kept, tables kept as HTML,
    <math> -> $...$ / $$...$$ unescaped, brackets escaped in link text."""
    import re

    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    class Reference(MarkdownConverter):  # type: ignore[misc]
        def convert_math(self, el, text, parent_tags):  # type: ignore[no-untyped-def]
            return f"\n$${text.strip()}$$\n" if el.get("display") == "block" else f" ${text.strip()}$ "

        def convert_table(self, el, text, parent_tags):  # type: ignore[no-untyped-def]
            return f"\n\n{el}\n\n"

        def convert_a(self, el, text, parent_tags):  # type: ignore[no-untyped-def]
            return super().convert_a(el, re.sub(r"([\[\]()])", r"\\\1", text), parent_tags)

        def escape(self, text, parent_tags):  # type: ignore[no-untyped-def]
            return text if "math" in parent_tags else super().escape(text, parent_tags).replace("$", r"\$")

    out = ""
    for div in BeautifulSoup(html, "html.parser").find_all("div", recursive=False):
        label = div.get("data-label")
        if label in ("Page-Header", "Page-Footer"):
            continue
        if label in ("Image", "Figure") and not div.find("img"):
            div.append(BeautifulSoup("<img src=''/>", "html.parser"))
        inner = div.decode_contents()
        out += f"<p>{inner.strip()}</p>" if label == "Text" and not re.search("<.+>", inner.strip()) else inner
    converter = Reference(heading_style="ATX", bullets="-", escape_misc=False, escape_underscores=True,
                          escape_asterisks=True, sub_symbol="<sub>", sup_symbol="<sup>")  # fmt: skip
    return str(converter.convert(out)).strip()


def _with_our_deviations(line: str) -> str:
    """What ``dialects/_html.py`` does differently, on purpose (its docstring says why)."""
    import re

    line = line.replace(r"\_", "_").replace(r"\*", "*").replace(r"\$", "$")  # no escaping
    line = re.sub(r"\[([^\]]*)\]\(#\)", r"\1", line)  # a link to "#" is its text
    line = re.sub(r"^(\s*- )[\u2022\u00b7]\s*", r"\1", line)  # a printed bullet is not text
    return " ".join(line.split())


@pytest.mark.parametrize("name", sorted(p.name for p in (REPLIES / "chandra").glob("*.html")))
def test_markdown_is_chandras_own_on_every_recorded_reply(v2: ChandraDialect, name: str) -> None:
    html = (REPLIES / "chandra" / name).read_text(encoding="utf-8")
    ours = [" ".join(ln.split()) for ln in v2.parse(reply(html), request_for(make_page())).markdown.splitlines() if ln.strip()]
    ref = [_with_our_deviations(ln) for ln in _chandra_reference_markdown(html).splitlines() if ln.strip()]
    assert len(ours) == len(ref)
    # a Section-Header block without an <h*> tag is a heading in ours ("## ..."), text in Chandra's
    assert [o.removeprefix("## ") if o.removeprefix("## ") == r else o for o, r in zip(ours, ref, strict=True)] == ref


def test_a_figure_writes_one_reference_whatever_holds_its_images() -> None:
    """A figure div whose pictures sit inside a paragraph writes one reference, its own (they were
    written again beside it: three references for one figure, and the next figure's crop linked
    from the second)."""
    from ocrclient.dialects.chandra import parse_chandra_html

    c = parse_chandra_html('<div data-bbox="1 1 100 100" data-label="Figure"><p><img alt="a"/> <img alt="b"/></p><p>desc</p>'
                           '</div><div data-bbox="1 200 100 300" data-label="Image"><img alt="c"/></div>', 1000)  # fmt: skip
    assert c.markdown == "![a]()\n\ndesc\n\n![c]()"
    assert [(b.type, b.text) for b in c.blocks] == [("figure", "a"), ("figure", "c")]


def test_the_documented_chandra_2_switch_sends_chandra_2s_own_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/backends.md's user-config table for Chandra 2, as written there: the requests carry
    Chandra 2's model, its 12384-token cap and the profile's other sampling; its boxes are read
    on 0-1000.  The doc said model and version only, and the profile's Chandra 1 cap (8192) cut
    dense Chandra 2 pages."""
    import re

    doc = (Path(__file__).parents[1] / "docs" / "backends.md").read_text(encoding="utf-8")
    table = next(b for b in re.findall(r"```toml\n(.*?)```", doc, re.S) if "[backends.runpod-chandra]" in b)
    (tmp_path / "config.toml").write_text(table)
    monkeypatch.setenv("OCRCLIENT_CONFIG_DIR", str(tmp_path))
    d = load_dialect(resolve_config("runpod-chandra"))
    assert isinstance(d, ChandraDialect) and d.version == 2 and d.grid == 1000
    page = make_page(d.render)
    bodies = [d.build(page, n).body for n in (1, 2)]
    assert {b["model"] for b in bodies} == {"datalab-to/chandra-ocr-2"}
    assert {b["max_tokens"] for b in bodies} == {12384} == {d.DEFAULT_MAX_TOKENS}
    assert bodies[0]["top_p"] == 0.1 and bodies[1]["top_p"] == 0.95  # (the profile's ladders kept)
