"""olmOCR-2 dialect: v4 prompt order, front matter, rotation round trip, corpus replies, fuzz."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt
from ocrclient.dialects.olmocr import PROMPT_V4, OlmOCRDialect, parse_front_matter
from ocrclient.errors import BadOutputError
from ocrclient.geometry import to_page
from ocrclient.registry import load_dialect

from .test_dialect_common import (
    REPLIES,
    assert_chat_shape,
    decode_sent,
    fuzz_finish,
    fuzz_parse,
    fuzz_text,
    make_page,
    reply,
    request_for,
    text_parts,
)

CORPUS = sorted((REPLIES / "olmocr").rglob("*.md"))
CORPUS = [p for p in CORPUS if p.name != "SOURCE.md"]

FM = "---\nprimary_language: en\nis_rotation_valid: {valid}\nrotation_correction: {corr}\nis_table: False\nis_diagram: False\n---\n"


@pytest.fixture
def olm() -> OlmOCRDialect:
    return OlmOCRDialect(model="allenai/olmOCR-2-7B-1025-FP8", max_attempts=4)


def test_build_text_before_image_and_ladder(olm: OlmOCRDialect) -> None:
    page = make_page(olm.render)
    req = olm.build(page, Attempt(1))
    assert_chat_shape(req, page, "allenai/olmOCR-2-7B-1025-FP8")
    content = req.body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["text", "image_url"]
    assert text_parts(req) == [PROMPT_V4]
    assert "front matter" in PROMPT_V4 and "tables to HTML" in PROMPT_V4
    assert req.body["max_tokens"] == 8000
    assert [olm.build(page, Attempt(n)).body["temperature"] for n in (1, 2, 3, 4, 9)] == [0.1, 0.1, 0.2, 0.3, 1.0]
    assert max(req.frame.width_px, req.frame.height_px) == 1288  # type: ignore[union-attr]


def test_profile() -> None:
    d = load_dialect(resolve_config("runpod-olmocr"))
    assert isinstance(d, OlmOCRDialect) and d.max_attempts == 6
    assert d.build(make_page(d.render), Attempt(1)).body["max_tokens"] == 8000


def test_front_matter_parsing() -> None:
    meta, body, warnings = parse_front_matter(FM.format(valid="True", corr=0) + "# Hello\n\nWorld")
    assert meta == {"primary_language": "en", "is_rotation_valid": True, "rotation_correction": 0,
                    "is_table": False, "is_diagram": False}  # fmt: skip
    assert body == "# Hello\n\nWorld" and not warnings
    meta, body, warnings = parse_front_matter("no front matter here")
    assert meta is None and body == "no front matter here"
    meta, body, warnings = parse_front_matter("---\nprimary_language: null\nSome text right away")
    assert meta == {"primary_language": None} and body == "Some text right away"
    assert any("not closed" in w for w in warnings)


def test_parse_reply_with_front_matter(olm: OlmOCRDialect) -> None:
    text = FM.format(valid="True", corr=0) + "# Title\n\nA paragraph.\n\n<table><tr><td>1</td></tr></table>"
    c = olm.parse(reply(text), request_for(make_page()))
    assert c.markdown.startswith("# Title") and "primary_language" not in c.markdown
    assert c.meta["primary_language"] == "en" and c.meta["front_matter"] is True
    assert [b.type for b in c.blocks] == ["title", "text", "table"]
    assert not c.warnings


def test_blank_page_with_front_matter_says_no_text_was_found(olm: OlmOCRDialect) -> None:
    """The model's blank page (front matter, no text): not an error, and not an ok page silently
    empty either: marked as the local engine marks one (degraded, "no text found")."""
    c = olm.parse(reply(FM.format(valid="True", corr=0).replace("en", "null")), request_for(make_page()))
    assert c.markdown == "" and c.blocks == [] and c.warnings == ["no text found"]


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_replies(olm: OlmOCRDialect, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    page = make_page()
    if not text.strip():
        # the pipeline stored natural_text=None for a blank page: the bare reply is empty ...
        with pytest.raises(BadOutputError) as info:
            olm.parse(reply(text), request_for(page))
        assert info.value.cause == "empty"
        # ... while the model's actual reply (front matter, no text) is a blank page, said so
        c = olm.parse(reply(FM.format(valid="True", corr=0)), request_for(page))
        assert c.markdown == "" and c.warnings == ["no text found"]
        return
    # stripped form (as stored) and the model's own form (with front matter) parse the same
    bare = olm.parse(reply(text), request_for(page))
    full = olm.parse(reply(FM.format(valid="True", corr=0) + text), request_for(page))
    assert bare.markdown == full.markdown == text.strip()
    assert bare.meta["front_matter"] is False and full.meta["front_matter"] is True
    assert not full.warnings and not bare.warnings
    assert bare.blocks and "".join(b.text for b in bare.blocks).strip()


def test_corpus_table_reply_has_table_block(olm: OlmOCRDialect) -> None:
    text = (REPLIES / "olmocr" / "olmo2-pg4_pg1_repeat1.md").read_text(encoding="utf-8")
    c = olm.parse(reply(text), request_for(make_page()))
    assert any(b.type == "table" and "| Source" in b.text for b in c.blocks)


def test_rotation_round_trip(olm: OlmOCRDialect) -> None:
    page = make_page(olm.render, 612, 792)
    first = olm.build(page, Attempt(1))
    assert first.frame.rotation == 0  # type: ignore[union-attr]
    with pytest.raises(BadOutputError) as info:
        olm.parse(reply(FM.format(valid="False", corr=90) + "sdrawkcab txet"), first)
    err = info.value
    assert err.cause == "rotation" and err.hint["rotate"] == 90 and err.hint["olmocr_rotation"] == 90
    assert err.partial is not None and err.partial.meta["rotation_correction"] == 90
    second = olm.build(page, Attempt(2, last_error=err))
    # olmOCR's pipeline applies PIL's ROTATE_90 (counter-clockwise) for a correction of 90:
    # clockwise 270 in Frame terms, and the sent image is the page turned that way
    assert second.frame.rotation == 270  # type: ignore[union-attr]
    assert (second.frame.width_px, second.frame.height_px) == (first.frame.height_px, first.frame.width_px)  # type: ignore[union-attr]
    img = decode_sent(second).convert("L")
    # the black square at the page's top-left is at the bottom-left after a CCW quarter turn
    assert img.getpixel((2, img.height - 3)) < 50 and img.getpixel((2, 2)) > 200
    assert second.body["messages"][0]["content"][1]["image_url"]["url"] != page.encoded.data_url()  # type: ignore[union-attr]
    # a box on the rotated image maps back onto the displayed page
    m = to_page((0.0, 0.75, 0.25, 1.0), olm.space, second.frame, page.page_box)  # type: ignore[arg-type]
    assert m.bbox_norm == [0.0, 0.0, 0.25, 0.25]
    # the upright reply is accepted, the rotation it was read at is recorded
    c = olm.parse(reply(FM.format(valid="True", corr=0) + "text"), second)
    assert c.meta["rotation_sent"] == 90 and c.markdown == "text"


def test_rotation_accumulates_and_survives_other_errors(olm: OlmOCRDialect) -> None:
    page = make_page(olm.render)
    first = olm.build(page, Attempt(1))
    with pytest.raises(BadOutputError) as info:
        olm.parse(reply(FM.format(valid="False", corr=90) + "x"), first)
    second = olm.build(page, Attempt(2, last_error=info.value, previous_context=first.context))
    with pytest.raises(BadOutputError) as info2:  # truncated at the rotated attempt
        olm.parse(reply(FM.format(valid="True", corr=0) + "x", finish="length"), second)
    assert info2.value.cause == "length"
    third = olm.build(page, Attempt(3, last_error=info2.value, previous_context=second.context))
    assert third.frame.rotation == 270  # type: ignore[union-attr]  # still rotated
    with pytest.raises(BadOutputError) as info3:
        olm.parse(reply(FM.format(valid="False", corr=180) + "x"), third)
    assert info3.value.hint["olmocr_rotation"] == 270


def test_rotation_on_last_attempt_is_kept_with_warning(olm: OlmOCRDialect) -> None:
    page = make_page(olm.render)
    last = olm.build(page, Attempt(4))
    c = olm.parse(reply(FM.format(valid="False", corr=180) + "text"), last)
    assert c.markdown == "text" and any("last attempt" in w for w in c.warnings)


def test_invalid_rotation_without_correction_is_a_warning(olm: OlmOCRDialect) -> None:
    c = olm.parse(reply(FM.format(valid="False", corr=0) + "text"), request_for(make_page()))
    assert c.markdown == "text" and any("no usable correction" in w for w in c.warnings)


@pytest.mark.parametrize("finish,cause", [("length", "length"), ("content_filter", "finish_content_filter")])
def test_finish_reason_other_than_stop_is_bad(olm: OlmOCRDialect, finish: str, cause: str) -> None:
    with pytest.raises(BadOutputError) as info:
        olm.parse(reply(FM.format(valid="True", corr=0) + "partial text", finish=finish), request_for(make_page()))
    assert info.value.cause == cause and info.value.partial.markdown == "partial text"


def test_repetition(olm: OlmOCRDialect) -> None:
    with pytest.raises(BadOutputError) as info:
        olm.parse(reply(FM.format(valid="True", corr=0) + "| 1 | 2 |\n" * 150), request_for(make_page()))
    assert info.value.cause == "repetition"


@settings(max_examples=150, deadline=None)
@given(fuzz_text, fuzz_finish)
def test_fuzz_never_raises_other_errors(text: str, finish: str | None) -> None:
    fuzz_parse(OlmOCRDialect(model="m").parse, text, finish)


def test_front_matter_is_read_as_yaml() -> None:
    """Values follow YAML (quoted strings stay strings, ``~`` is null), read by PyYAML."""
    meta, body, warnings = parse_front_matter(
        "---\nprimary_language: 'no'\nis_rotation_valid: true\nrotation_correction: 180\n"
        "is_table: false\nis_diagram: ~\n---\n# Body"
    )
    assert meta == {"primary_language": "no", "is_rotation_valid": True, "rotation_correction": 180,
                    "is_table": False, "is_diagram": None}  # fmt: skip
    assert body == "# Body" and not warnings


def test_malformed_front_matter_keeps_the_body_and_the_readable_keys() -> None:
    meta, body, warnings = parse_front_matter("---\nprimary_language: en\nrotation_correction: [1\n---\nThe text")
    assert body == "The text"
    assert meta == {"primary_language": "en", "rotation_correction": "[1"}
    assert any("not valid YAML" in w for w in warnings) and any("lacks is_rotation_valid" in w for w in warnings)
