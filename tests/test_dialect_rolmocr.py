"""RolmOCR dialect: card prompt after the image, 1024 px, markdown reply, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt
from ocrclient.dialects.rolmocr import PROMPT, RolmOCRDialect
from ocrclient.errors import BadOutputError
from ocrclient.registry import load_dialect

from .test_dialect_common import (
    REPLIES,
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
def rolm() -> RolmOCRDialect:
    return RolmOCRDialect(model="reducto/RolmOCR")


def test_build(rolm: RolmOCRDialect) -> None:
    page = make_page(rolm.render)
    req = rolm.build(page, Attempt(1))
    assert_chat_shape(req, page, "reducto/RolmOCR")
    assert [p["type"] for p in req.body["messages"][0]["content"]] == ["image_url", "text"]
    assert text_parts(req) == [PROMPT]
    assert PROMPT == "Return the plain text representation of this document as if you were reading it naturally.\n"
    assert req.body["max_tokens"] == 4096 and req.body["temperature"] == 0.2
    assert rolm.build(page, Attempt(2)).body["temperature"] == 0.3
    assert max(req.frame.width_px, req.frame.height_px) == 1024  # type: ignore[union-attr]


def test_profile() -> None:
    d = load_dialect(resolve_config("runpod-rolmocr"))
    assert d.build(make_page(d.render), Attempt(4)).body["temperature"] == 0.6


def test_parse_markdown(rolm: RolmOCRDialect) -> None:
    # RolmOCR was trained on olmOCR's data: plain markdown such as the olmOCR corpus replies
    text = (REPLIES / "olmocr" / "lincoln_letter_pg1_repeat1.md").read_text(encoding="utf-8")
    c = rolm.parse(reply(text), request_for(make_page()))
    assert c.markdown == text.strip() and "Abraham Lincoln" in c.blocks[-1].text
    assert all(b.box is None for b in c.blocks) and not c.warnings


def test_bad_replies(rolm: RolmOCRDialect) -> None:
    for text, finish, cause in [("", "stop", "empty"), ("cut", "length", "length"),
                                ("a " + "same line again\n" * 60, "stop", "repetition")]:  # fmt: skip
        with pytest.raises(BadOutputError) as info:
            rolm.parse(reply(text, finish=finish), request_for(make_page()))
        assert info.value.cause == cause


@settings(max_examples=100, deadline=None)
@given(fuzz_text, fuzz_finish)
def test_fuzz_never_raises_other_errors(text: str, finish: str | None) -> None:
    fuzz_parse(RolmOCRDialect(model="m").parse, text, finish)
