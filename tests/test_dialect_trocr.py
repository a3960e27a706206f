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


@pytest.mark.parametrize("options", [
    {"ensemble_size": 6}, {"ensemble_size": 0}, {"ensemble_size": "three"}, {"use_preprocessing": "maybe"},
    {"segment_lines": "sometimes"}, {"route": "/extract_structured"}, {"route": "/nowhere"},
])  # fmt: skip
def test_options_the_service_refuses_are_refused_when_the_backend_loads(options: dict) -> None:
    """Each way a [dialect_options] value is one the Ocular service refuses (or one whose reply
    this dialect cannot read): a one-line ConfigError when the backend loads, before anything is
    sent.  They failed every page with pydantic's text (``ensemble_size = 6``), were taken for
    true (``use_preprocessing = "maybe"``), or every page failed on the server (a structured
    route)."""
    from ocrclient.config import resolve_config
    from ocrclient.errors import ConfigError
    from ocrclient.registry import load_dialect

    cfg = resolve_config("runpod-trocr", endpoint_id="ep", dialect_options=options)
    with pytest.raises(ConfigError) as err:
        load_dialect(cfg)
    assert "\n" not in str(err.value) and "pydantic.dev" not in str(err.value), str(err.value)


@pytest.mark.parametrize("options", [{}, {"ensemble_size": 5, "use_preprocessing": "true"}, {"segment_lines": False},
                                     {"route": "/extract_text_robust"}])  # fmt: skip
def test_options_the_service_takes_load(options: dict) -> None:
    from ocrclient.config import resolve_config
    from ocrclient.registry import load_dialect

    load_dialect(resolve_config("runpod-trocr", endpoint_id="ep", dialect_options=options))
