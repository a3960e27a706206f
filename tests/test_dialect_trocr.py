"""TrOCR dialect: the Ocular /extract_text request and its text + confidence reply."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt
from ocrclient.dialects.trocr import TrOCRDialect
from ocrclient.errors import BadOutputError
from ocrclient.registry import load_dialect

from .test_dialect_common import fuzz_finish, fuzz_parse, fuzz_text, make_page, reply, request_for


def test_build_ocular_request() -> None:
    d = load_dialect(resolve_config("runpod-trocr"))
    assert isinstance(d, TrOCRDialect)
    page = make_page(d.render)
    req = d.build(page, Attempt(1))
    assert req.kind == "ocular" and req.route == "/extract_text"
    assert base64.b64decode(req.body["image"]) == page.encoded.data  # type: ignore[union-attr]
    assert req.body["model_name"] == "microsoft/trocr-base-printed"
    assert req.body["decoding_options"] == {"max_length": 512, "num_beams": 4}
    assert req.frame is not None and req.frame.width_px == page.encoded.width  # type: ignore[union-attr]
    retry = d.build(page, Attempt(2)).body["decoding_options"]
    assert retry["do_sample"] is True and retry["temperature"] == 0.3 and retry["num_beams"] == 1


def test_route_override() -> None:
    d = load_dialect(resolve_config("runpod-trocr", dialect_options={"route": "/extract_text_robust"}))
    assert d.build(make_page(), Attempt(1)).route == "/extract_text_robust"
    d = load_dialect(resolve_config("runpod-trocr", dialect_options={"route": None},
                                    transport_options={"route": "/x"}))  # fmt: skip
    assert d.build(make_page(), Attempt(1)).route in ("/x", "/extract_text")


def test_parse_text_and_confidence() -> None:
    d = TrOCRDialect(model="microsoft/trocr-base-printed")
    c = d.parse(reply("INVOICE 12345", confidence=0.91, language="en"), request_for(make_page()))
    assert c.markdown == "INVOICE 12345" and len(c.blocks) == 1
    assert c.blocks[0].type == "text" and c.blocks[0].box is None and c.blocks[0].confidence == 0.91
    assert c.meta == {"language": "en"} and not c.warnings


@pytest.mark.parametrize("conf,warn", [("high", "not a number"), (3.5, "outside"), (None, None)])
def test_bad_confidence_degrades(conf: object, warn: str | None) -> None:
    c = TrOCRDialect().parse(reply("text", confidence=conf), request_for(make_page()))
    assert c.blocks[0].confidence is None
    assert (warn is None and not c.warnings) or (warn is not None and warn in c.warnings[0])


def test_empty_reply_is_bad_output() -> None:
    with pytest.raises(BadOutputError) as info:
        TrOCRDialect().parse(reply("", confidence=0.05), request_for(make_page()))
    assert info.value.cause == "empty"


@settings(max_examples=100, deadline=None)
@given(fuzz_text, fuzz_finish)
def test_fuzz_never_raises_other_errors(text: str, finish: str | None) -> None:
    fuzz_parse(TrOCRDialect().parse, text, finish)
