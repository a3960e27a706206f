"""Plain dialect: any OpenAI-compatible VLM with a user prompt."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt
from ocrclient.dialects.plain import DEFAULT_PROMPT, PlainDialect
from ocrclient.errors import BadOutputError, ConfigError
from ocrclient.registry import load_dialect

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


def test_build_default_and_custom_prompt() -> None:
    d = PlainDialect(model="Qwen/Qwen2.5-VL-7B-Instruct")
    page = make_page(d.render)
    req = d.build(page, Attempt(1))
    assert_chat_shape(req, page, "Qwen/Qwen2.5-VL-7B-Instruct")
    assert text_parts(req) == [DEFAULT_PROMPT]
    assert req.body["max_tokens"] == 4096 and req.body["temperature"] == 0.0
    assert d.build(page, Attempt(2)).body["temperature"] == 0.2
    d = PlainDialect(model="m", options={"prompt": "OCR it.", "prompt_position": "before", "system": "Be exact."})
    req = d.build(page, Attempt(1))
    assert req.body["messages"][0] == {"role": "system", "content": "Be exact."}
    assert [p["type"] for p in req.body["messages"][1]["content"]] == ["text", "image_url"]
    assert text_parts(req) == ["OCR it."]
    with pytest.raises(ConfigError):
        PlainDialect(model="m", options={"prompt_position": "middle"})


def test_generic_profiles_with_a_model() -> None:
    for name in ("openai", "runpod"):
        d = load_dialect(resolve_config(name, model="org/vlm", dialect_options={"prompt": "Read."}))
        req = d.build(make_page(d.render), Attempt(1))
        assert req.body["model"] == "org/vlm" and text_parts(req) == ["Read."]


def test_parse_strips_code_fence() -> None:
    d = PlainDialect(model="m")
    c = d.parse(reply("```markdown\n# Page\n\ntext\n```"), request_for(make_page()))
    assert c.markdown == "# Page\n\ntext" and [b.type for b in c.blocks] == ["title", "text"]
    with pytest.raises(BadOutputError):
        d.parse(reply("\n"), request_for(make_page()))


@settings(max_examples=100, deadline=None)
@given(fuzz_text, fuzz_finish)
def test_fuzz_never_raises_other_errors(text: str, finish: str | None) -> None:
    fuzz_parse(PlainDialect(model="m").parse, text, finish)
