"""Shared dialect machinery (_common, _html) and the helpers the per-dialect tests import."""

from __future__ import annotations

import base64
import contextlib
import io
import random
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ocrclient.config import list_profiles, resolve_config
from ocrclient.dialects._common import (
    block_type,
    bound_blocks,
    chat_body,
    detect_repetition,
    finish,
    ladder_value,
    markdown_blocks,
    parse_box,
    rotate_encoded,
    sampling,
    trim_repetition,
)
from ocrclient.dialects._html import parse_html, to_markdown
from ocrclient.dialects.base import Attempt, PageContent, RawBlock
from ocrclient.document import BLOCK_TYPES
from ocrclient.errors import BadOutputError, ConfigError
from ocrclient.geometry import PageBox, to_page
from ocrclient.imaging import RenderSpec, encode
from ocrclient.pages import PageImage
from ocrclient.registry import load_dialect
from ocrclient.transports.base import ModelReply, ModelRequest

REPLIES = Path(__file__).parent / "data" / "replies"

# ------------------------------------------------------------------------------------------------
# helpers imported by the other test_dialect_* modules
# ------------------------------------------------------------------------------------------------


def make_page(spec: RenderSpec | None = None, width_pt: float = 612, height_pt: float = 792,
              source: str = "t", index: int = 0) -> PageImage:  # fmt: skip
    """A page whose image is a white render of the page's size with a black top-left square."""
    spec = spec or RenderSpec(dpi=72)
    w, h = spec.pixel_size(width_pt, height_pt)
    img = Image.new("RGB", (w, h), "white")
    img.paste((0, 0, 0), (0, 0, max(1, w // 4), max(1, h // 8)))
    return PageImage(source=source, index=index, page_box=PageBox(width_pt, height_pt),
                     encoded=encode(img, spec))  # fmt: skip


def request_for(page: PageImage) -> ModelRequest:
    """A request for ``page`` as ``parse`` sees it, made by hand: the page and the frame of its
    image (the olmOCR tests build real requests, whose context matters)."""
    return ModelRequest(body={}, frame=page.frame, page_image=page)


def reply(text: str, finish: str | None = "stop", **data: object) -> ModelReply:
    return ModelReply(text=text, finish_reason=finish, data=dict(data))


def image_parts(request: ModelRequest) -> list[dict]:
    return [p for p in request.body["messages"][-1]["content"] if p["type"] == "image_url"]


def text_parts(request: ModelRequest) -> list[str]:
    return [p["text"] for p in request.body["messages"][-1]["content"] if p["type"] == "text"]


def decode_sent(request: ModelRequest) -> Image.Image:
    url = image_parts(request)[0]["image_url"]["url"]
    header, b64 = url.split(",", 1)
    assert header.startswith("data:image/") and header.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def assert_chat_shape(request: ModelRequest, page: PageImage, model: str) -> None:
    """The exact OpenAI chat body every chat dialect must produce."""
    body = request.body
    assert request.kind == "chat"
    assert body["model"] == model
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0
    assert isinstance(body["temperature"], float)
    msgs = body["messages"]
    assert msgs[-1]["role"] == "user"
    imgs = image_parts(request)
    assert len(imgs) == 1
    assert page.encoded is not None
    assert imgs[0]["image_url"]["url"] == page.encoded.data_url()
    assert request.frame is not None
    assert (request.frame.width_px, request.frame.height_px) == (page.encoded.width, page.encoded.height)


def geometry_roundtrip(
    make_reply: Callable[[list[tuple[int, int, int, int]]], str],
    parse: Callable[[ModelReply, ModelRequest], PageContent],
    build: Callable[[PageImage, Attempt], ModelRequest],
    grid: float,
    spec: RenderSpec,
    seed: int = 7,
) -> None:
    """True boxes (fractions of the page) -> model grid ints -> reply -> parse -> to_page; every
    coordinate within one grid step of the truth, the median within half a step."""
    rng = random.Random(seed)
    page = make_page(spec, 612, 792)
    request = build(page, Attempt(1))
    assert request.frame is not None
    truths: list[tuple[float, float, float, float]] = []
    grid_boxes: list[tuple[int, int, int, int]] = []
    for _ in range(12):
        x0, x1 = sorted(rng.uniform(0, 1) for _ in range(2))
        y0, y1 = sorted(rng.uniform(0, 1) for _ in range(2))
        truths.append((x0, y0, x1, y1))
        grid_boxes.append(tuple(round(v * grid) for v in (x0, y0, x1, y1)))  # type: ignore[misc]
    content = parse(reply(make_reply(grid_boxes)), request)
    boxed = [b for b in content.blocks if b.box is not None]
    assert len(boxed) == len(truths), content.warnings
    errors: list[float] = []
    step_x, step_y = page.page_box.width / grid, page.page_box.height / grid
    for block, truth in zip(boxed, truths, strict=True):
        assert block.box is not None
        mapped = to_page(block.box, content.space, request.frame, page.page_box)
        expect = [truth[0] * 612, truth[1] * 792, truth[2] * 612, truth[3] * 792]
        for i, (got, want) in enumerate(zip(mapped.bbox, expect, strict=True)):
            step = step_x if i % 2 == 0 else step_y
            assert abs(got - want) <= step + 1e-6, (got, want, step)
            errors.append(abs(got - want) / step)
    assert statistics.median(errors) <= 0.5


def fuzz_parse(parse: Callable[[ModelReply, ModelRequest], PageContent], text: str, finish: str | None) -> None:
    """Random replies never raise anything but BadOutputError and give valid block types."""
    page = make_page()
    try:
        content = parse(ModelReply(text=text, finish_reason=finish), request_for(page))
    except BadOutputError as exc:
        assert str(exc)
        assert "\n" not in str(exc)
        return
    assert isinstance(content.markdown, str)
    for block in content.blocks:
        assert block.type in BLOCK_TYPES
        if block.box is not None:
            assert len(block.box) == 4


fuzz_text = st.one_of(
    st.text(max_size=400),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
    st.lists(
        st.sampled_from([
            "<div", ' data-bbox="', '1 2 3 4', "[5, 6, 7]", '"', ">", "</div>", "<p>", "</p>",
            "<table>", "<td>", "<|ref|>", "text", "<|/ref|>", "<|det|>", "[[1, 2, 999, 998]]",
            "<|/det|>", "---\n", "is_rotation_valid: false\n", "rotation_correction: 90\n",
            "![image](image_1.png)", "100,200,300,400", "<math>", "x^2", "\n", "# ", "|a|b|",
            "nan", "1e999", "-5", "<!--", "<![CDATA[", "&#", "<br/>",
        ]),
        max_size=60,
    ).map("".join),
)
fuzz_finish = st.sampled_from(["stop", "length", None, "content_filter"])


# ------------------------------------------------------------------------------------------------
# _common
# ------------------------------------------------------------------------------------------------


def test_ladder_value_clamps_to_last_rung() -> None:
    assert ladder_value([0.0, 0.2, 0.4], 1) == 0.0
    assert ladder_value([0.0, 0.2, 0.4], 2) == 0.2
    assert ladder_value([0.0, 0.2, 0.4], 10) == 0.4


def test_sampling_profile_wins_and_always_has_max_tokens() -> None:
    s = sampling({}, 1, max_tokens=123)
    assert s == {"max_tokens": 123, "temperature": 0.0}
    s = sampling({"max_tokens": 50, "temperature_ladder": [0.1, 0.7], "top_p": 0.9,
                  "repetition_penalty": 1.05, "bogus": 1}, 2, max_tokens=123)  # fmt: skip
    assert s == {"max_tokens": 50, "temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.05}
    # a fixed temperature is the first rung; retries still climb
    s1 = sampling({"temperature": 0.1}, 1, max_tokens=9)
    s3 = sampling({"temperature": 0.1}, 3, max_tokens=9)
    assert s1["temperature"] == 0.1 and s3["temperature"] > 0.1
    assert sampling({"top_p_ladder": [0.1, 0.95]}, 2, max_tokens=9)["top_p"] == 0.95


@pytest.mark.parametrize("bad", [{"max_tokens": 0}, {"max_tokens": "x"}, {"temperature_ladder": []},
                                 {"temperature_ladder": ["hot"]}])  # fmt: skip
def test_sampling_rejects_bad_profile_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        sampling(bad, 1, max_tokens=10)


def test_chat_body_merges_vllm_xargs() -> None:
    body = chat_body("m", [], {"max_tokens": 5, "vllm_xargs": {"window_size": 10}},
                     {"vllm_xargs": {"ngram_size": 30, "window_size": 90}})  # fmt: skip
    assert body["vllm_xargs"] == {"ngram_size": 30, "window_size": 10}
    assert body["max_tokens"] == 5


def test_repetition_detector() -> None:
    assert detect_repetition("A normal page.\n\nWith two paragraphs and nothing odd.") is None
    assert detect_repetition("Intro\n" + "The cat sat on the mat. " * 40) is not None
    assert detect_repetition("x" + "ab" * 500) is not None
    # a table of 20 identical rows is not a loop
    assert detect_repetition("| 0.00 | 0.00 | 0.00 |\n" * 20) is None
    # table rules and padding are not repetition
    assert detect_repetition("| a | b |\n|" + "-" * 600 + "|") is None
    assert detect_repetition("text " + " " * 2000) is None
    # a legitimate short repeat stays below the threshold
    assert detect_repetition("Yes. " * 5) is None


def _trim_reference(text: str, keep: int = 2) -> str:
    """The trimming rule as it was written before (a Python loop over every repeat, whitespace
    collapsed): the new trim_repetition must cut where it did."""
    import math
    import re

    collapsed = re.sub(r"\s+", " ", text).rstrip()
    n = len(collapsed)
    for period in range(1, min(400, n // 6) + 1):
        unit = collapsed[n - period :]
        if not any(ch.isalnum() for ch in unit):
            continue
        pos, count = n - period, 1
        while pos - period >= 0 and collapsed[pos - period : pos] == unit:
            count, pos = count + 1, pos - period
        if count >= max(6, math.ceil(800 / period)):
            return collapsed[: pos + keep * period]
    return text


@pytest.mark.parametrize(
    "text",
    [
        "Intro. " + "the same words " * 300,
        "x" + "ab" * 700,
        "A normal page.\n\nNothing repeats here at all.",
        "| 0.00 | 0.00 |\n" * 30,
        "abc" * 5 + "xyz",
    ],
)
def test_trim_repetition_cuts_where_it_always_did(text: str) -> None:
    assert " ".join(trim_repetition(text).split()) == " ".join(_trim_reference(text).split())


def test_trim_repetition_with_varying_whitespace_stays_short() -> None:
    """Repeats whose whitespace varies in a cycle: the exact unit is that cycle (line breaks
    kept), at most two of it are kept."""
    text = "Intro.\n" + "".join(f"the same words{' ' if i % 3 else chr(10)}" for i in range(3000))
    trimmed = trim_repetition(text)
    assert trimmed.startswith("Intro.\nthe same words") and "\n" in trimmed[7:]
    unit = 3 * len("the same words ")  # the whitespace cycle
    assert len(trimmed) < len("Intro.\n") + 3 * unit  # a ragged start of the run, then two units


def test_trim_repetition_keeps_line_breaks_and_is_linear_on_a_runaway() -> None:
    """A 20 MB runaway (3.4 s with the old pure-Python loop) trims in well under a second, and
    repeats that are exact keep their line breaks."""
    import time

    text = "# Title\n\nIntro line.\n" + "| row | 1 |\n" * 1_700_000
    t0 = time.perf_counter()
    trimmed = trim_repetition(text)
    elapsed = time.perf_counter() - t0
    assert trimmed == "# Title\n\nIntro line.\n| row | 1 |\n| row | 1 |"
    assert len(text) > 20_000_000 and elapsed < 1.0, elapsed
    big = "Start. " + "The same line of text comes back again and again. " * 400_000
    t0 = time.perf_counter()
    assert trim_repetition(big).count("The same line") == 2
    assert time.perf_counter() - t0 < 1.0


def test_bound_blocks_cuts_blocks_to_the_text_budget() -> None:
    blocks = [RawBlock("title", "Title"), *[RawBlock("text", "the same words again") for _ in range(10_000)]]
    kept = bound_blocks(blocks, 100)
    assert sum(len(b.text) for b in kept) <= 100 and kept[0].text == "Title"
    one_huge = [RawBlock("text", "Intro. " + "loop " * 100_000, children=[RawBlock("text", "child")])]
    (only,) = bound_blocks(one_huge, 50)
    assert len(only.text) <= 50 and only.text.startswith("Intro. loop")
    assert bound_blocks([RawBlock("figure") for _ in range(1000)], 10) == [RawBlock("figure")] * 10


def test_repetition_trims_the_blocks_as_the_markdown() -> None:
    """Repetition trimming used to cut only the markdown while the blocks kept every repeat (a
    500 MB reply wrote a 105 MB JSON).  Now the blocks are bounded with it; the page is degraded."""
    line = "the same words again"
    content = PageContent(markdown="Intro.\n\n" + "\n\n".join([line] * 50_000),
                          blocks=[RawBlock("text", "Intro."), *[RawBlock("text", line) for _ in range(50_000)]])
    with pytest.raises(BadOutputError) as info:
        finish(content, ModelReply(text=content.markdown, finish_reason="stop"))
    partial = info.value.partial
    assert info.value.cause == "repetition"
    assert len(partial.markdown) < 200
    assert len(partial.blocks) < 200 and sum(len(b.text) for b in partial.blocks) <= len(partial.markdown) + 2000


def test_repetition_in_the_markdown_is_found_when_the_raw_reply_varies() -> None:
    """A Chandra runaway whose boxes change while its text repeats: the raw HTML has no period,
    the markdown does — it is repetition, not an ok page."""
    dialect = load_dialect(resolve_config("runpod-chandra"))
    html = "".join(
        f'<div data-bbox="100 {i % 900} 900 {i % 900 + 20}" data-label="Text"><p>The same words again.</p></div>'
        for i in range(3000)
    )
    with pytest.raises(BadOutputError) as info:
        dialect.parse(ModelReply(text=html, finish_reason="stop"), None)
    assert info.value.cause == "repetition"
    assert len(info.value.partial.blocks) < 150


def test_parse_box_warnings() -> None:
    w: list[str] = []
    assert parse_box("1 2 3 4", 1000, w) == (1, 2, 3, 4) and not w
    assert parse_box("[1, 2, 3, 4]", 1000, w) == (1, 2, 3, 4) and not w
    assert parse_box("3 4 1 2", 1000, w) == (3, 4, 1, 2) and "reversed" in w[-1]
    assert parse_box("0 0 2000 10", 1000, w) is not None and "outside" in w[-1]
    assert parse_box("1 2 3", 1000, w) is None and "expected 4" in w[-1]
    assert parse_box([1, 2, float("nan"), 4], 1000, w) is None and "non-finite" in w[-1]
    assert parse_box(["a", 2, 3, 4], 1000, w) is None


def test_block_type_is_case_insensitive_and_defaults_to_text() -> None:
    assert block_type("Section-Header", {"section-header": "section_header"}) == "section_header"
    assert block_type("SECTION_HEADER", {"Section-Header": "section_header"}) == "section_header"
    assert block_type("weird", {"a": "table"}) == "text"
    assert block_type(None, {}) == "text"


def test_markdown_blocks_types_and_whole_tables() -> None:
    md = ("# Title\n\n## Part\n\nSome text\nmore text\n\n- a\n- b\n\n"
          "<table>\n<tr><td>1</td></tr>\n\n<tr><td>2</td></tr>\n</table>\n\n"
          "$$\nx = 1\n\ny = 2\n$$\n\n![A chart](page_1_2_3_4.png)\n\n| a | b |\n|---|---|")  # fmt: skip
    blocks = markdown_blocks(md)
    assert [b.type for b in blocks] == ["title", "section_header", "text", "list_item", "table",
                                        "equation", "figure", "table"]  # fmt: skip
    assert "<tr><td>2</td></tr>" in blocks[4].text
    assert blocks[6].text == "A chart"


def test_rotate_encoded_is_clockwise() -> None:
    page = make_page(RenderSpec(dpi=72), 100, 200)  # black square at the top-left
    assert page.encoded is not None
    rotated, frame = rotate_encoded(page.encoded, 90, RenderSpec(dpi=72))
    assert (frame.width_px, frame.height_px, frame.rotation) == (200, 100, 90)
    img = rotated.decode().convert("L")
    # clockwise: the top-left corner goes to the top-right
    assert img.getpixel((199, 0)) < 50 and img.getpixel((0, 0)) > 200


# ------------------------------------------------------------------------------------------------
# _html
# ------------------------------------------------------------------------------------------------


def test_html_to_markdown_constructs() -> None:
    root, notes = parse_html(
        "<h1>T</h1><p>a<br>b <b>bold</b> <i>it</i> <math>x^2</math></p>"
        '<math display="block">\\int f</math><ol><li>one</li><li>two</li></ol>'
        '<p><input type="checkbox" checked> yes <input type="checkbox"> no</p>'
        '<table><tr><td colspan="2">c</td></tr></table><pre>code\n  here</pre>'
        '<p><a href="http://x">link</a> <img alt="pic"></p>'
    )
    md = to_markdown(root)
    assert not notes
    assert md.startswith("# T\n\na\nb **bold** *it* $x^2$")
    assert "$$\n\\int f\n$$" in md
    assert "1. one\n2. two" in md
    assert "[x] yes [ ] no" in md
    assert '<table><tr><td colspan="2">c</td></tr></table>' in md
    assert "```\ncode\n  here\n```" in md
    assert "[link](http://x) ![pic]()" in md


def test_html_repairs_are_reported() -> None:
    _, notes = parse_html("<div><p>cut off")
    assert any("unclosed" in n for n in notes)
    _, notes = parse_html("text</span>")
    assert any("stray" in n for n in notes)


@settings(max_examples=150, deadline=None)
@given(fuzz_text)
def test_html_parser_never_raises(text: str) -> None:
    root, _ = parse_html(text)
    assert isinstance(to_markdown(root), str)


# ------------------------------------------------------------------------------------------------
# profiles
# ------------------------------------------------------------------------------------------------

PROFILES = ["runpod-chandra", "runpod-deepseek-ocr", "runpod-olmocr", "runpod-rolmocr", "runpod-trocr",
            "runpod-pod-lightonocr2", "modal-lightonocr", "openai", "runpod"]  # fmt: skip


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_resolves_and_builds_its_dialect(name: str) -> None:
    assert name in list_profiles()
    cfg = resolve_config(name)
    assert cfg.name == name and cfg.description
    assert cfg.transport in ("runpod", "openai", "ocular")
    assert cfg.api_key_env
    if cfg.transport == "runpod":
        assert cfg.api_key_env == "RUNPOD_API_KEY"
        assert cfg.transport_options.get("mode") in ("run", "runsync")
    if cfg.transport == "openai":
        assert cfg.base_url_env
    assert cfg.price_per_gpu_second is not None or cfg.price_per_hour is not None or name == "openai"
    dialect = load_dialect(cfg if cfg.model else resolve_config(name, model="org/model"))
    request = dialect.build(make_page(dialect.render), Attempt(1))
    if request.kind == "chat":
        assert request.body["max_tokens"] == cfg.sampling.get("max_tokens", request.body["max_tokens"])
        assert request.body["model"] == (cfg.model or "org/model")


def test_generic_profiles_need_a_model() -> None:
    with pytest.raises(ConfigError, match="model"):
        load_dialect(resolve_config("openai"))


def test_endpoint_env_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_CHANDRA_ENDPOINT_ID", raising=False)
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "ep-fallback")
    assert resolve_config("runpod-chandra").resolved_endpoint_id() == "ep-fallback"
    monkeypatch.setenv("RUNPOD_CHANDRA_ENDPOINT_ID", "ep-chandra")
    assert resolve_config("runpod-chandra").resolved_endpoint_id() == "ep-chandra"


@pytest.mark.parametrize("name", PROFILES)
async def test_every_profile_loads_a_backend(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from ocrclient.registry import load_backend

    for var, value in {"RUNPOD_API_KEY": "rk-test-0123456789", "RUNPOD_ENDPOINT_ID": "ep123",
                       "RUNPOD_POD_BASE_URL": "http://127.0.0.1:9/v1",
                       "MODAL_LIGHTONOCR_URL": "http://127.0.0.1:9/v1",
                       "OCRCLIENT_BASE_URL": "http://127.0.0.1:9/v1"}.items():  # fmt: skip
        monkeypatch.setenv(var, value)
    backend = load_backend(name, **({} if resolve_config(name).model else {"model": "org/model"}))
    try:
        assert backend.render == backend.dialect.render
        assert type(backend.transport).__name__.lower().startswith(backend.config.transport)
    finally:
        await backend.aclose()


# ------------------------------------------------------------------------------------------------
# the seam: parse(reply, request), no per-page state in a dialect, page/source stamped elsewhere
# ------------------------------------------------------------------------------------------------


def _every_dialect() -> list[tuple[str, Any]]:
    from ocrclient.registry import DIALECTS, _import

    out = []
    for name in sorted(DIALECTS):
        cls = _import("dialect", name, DIALECTS)
        out.append((name, cls() if name == "rapidocr" else cls(model="org/model")))
    return out


def _reply_for(name: str, request: ModelRequest, *, rotation: int = 0) -> ModelReply:
    """What the dialect's model would answer for a page with a heading and a paragraph."""
    from ocrclient.testing.responders import format_reply

    if name == "rapidocr":
        lines = [{"text": "Quarterly report", "score": 0.99, "box": [2, 2, 40, 8], "words": []}]
        return ModelReply(text="Quarterly report", finish_reason="stop", data={"lines": lines})
    assert request.frame is not None
    blocks = [("section_header", "Quarterly report", (0.1, 0.1, 0.6, 0.2)), ("text", "Sales rose.", (0.1, 0.3, 0.9, 0.5))]
    text = format_reply(name, blocks, width=request.frame.width_px, height=request.frame.height_px,
                        rotation_correction=rotation)  # fmt: skip
    return ModelReply(text=text, finish_reason="stop", data={"confidence": 0.9})


@pytest.mark.parametrize(("name", "dialect"), _every_dialect(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_dialect_keeps_per_page_state(name: str, dialect: Any) -> None:
    """Every reply reads the same whether its page is alone or other requests were built in
    between — the same page for a second run included — and a dialect object is unchanged by
    any number of pages, failed ones included.  (olmOCR kept the rotation sent per (source,
    page) in dicts: a second run of the same page overwrote the first one's rotation, and every
    failed page stayed in them.)"""
    import copy

    before = copy.deepcopy(vars(dialect))
    turned = BadOutputError("not upright", cause="rotation", hint={"rotate": 90, "olmocr_rotation": 90})
    jobs = [  # a retry after a rotation hint, two other pages, the first page again for a second run
        (make_page(dialect.render, index=0), Attempt(2, last_error=turned)),
        (make_page(dialect.render, index=1), Attempt(1)),
        (make_page(dialect.render, index=2), Attempt(1)),
        (make_page(dialect.render, index=0), Attempt(1)),
    ]

    def read(request: ModelRequest) -> tuple[str, dict[str, Any]]:
        content = dialect.parse(_reply_for(name, request), request)
        return content.markdown, content.meta

    alone = [read(dialect.build(page, attempt)) for page, attempt in jobs]
    requests = [dialect.build(page, attempt) for page, attempt in jobs]
    # an empty reply (bad output for the models, "no text found" for RapidOCR) leaves nothing
    # behind either
    with contextlib.suppress(BadOutputError):
        dialect.parse(ModelReply(text="", finish_reason="stop"), dialect.build(*jobs[1]))
    assert [read(r) for r in reversed(requests)][::-1] == alone
    assert all("Quarterly report" in markdown for markdown, _ in alone), alone
    assert vars(dialect) == before


@pytest.mark.parametrize(("name", "dialect"), _every_dialect(), ids=lambda v: v if isinstance(v, str) else "")
def test_build_carries_the_page_and_leaves_page_and_source_to_the_scheduler(name: str, dialect: Any) -> None:
    """One owner of a request's ``page``/``source`` stamps (the scheduler); the dialect's
    request carries the page it was built from, for its own ``parse``."""
    page = make_page(dialect.render, source="doc.pdf", index=4)
    request = dialect.build(page, Attempt(1))
    assert request.page is None and request.source is None
    assert request.page_image is page


def test_attempt_stays_hashable_with_the_previous_context() -> None:
    a = Attempt(2, None, {"olmocr_rotation": 90})
    assert hash(a) == hash(Attempt(2)) and a != Attempt(2) and a == Attempt(2, None, {"olmocr_rotation": 90})


def test_a_parser_bug_leaves_the_dialect_unwrapped() -> None:
    """A chat dialect no longer turns a parser bug into bad output itself: the scheduler does,
    once, for every dialect (tests/test_scheduler.py)."""
    from ocrclient.dialects.plain import PlainDialect

    class Buggy(PlainDialect):
        def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
            raise KeyError("bug")

    d = Buggy(model="m")
    with pytest.raises(KeyError):
        d.parse(reply("some text"), d.build(make_page(), Attempt(1)))


# ---------------------------------------------------------------------------------------------
# a reply that says nothing once its wrapping is read is never an ok, empty page
# ---------------------------------------------------------------------------------------------

#: replies with no text in them once a dialect has read its markup: fences, front matter, empty
#: lists, empty HTML, a grounding tag with no text
SAYS_NOTHING = ["```markdown\n```", "```\n\n```", "``` \n  \n```", "<div></div>", "<p></p>", "<html><body></body></html>",
                "[]", "---\nprimary_language: en\nis_rotation_valid: true\nrotation_correction: 0\nis_table: false\n"
                "is_diagram: false\n---\n", "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\n", "   \n\n", ""]  # fmt: skip
CHAT_DIALECTS = ["chandra", "deepseek", "lighton", "olmocr", "rolmocr", "dots", "plain"]


@pytest.mark.parametrize("reply", SAYS_NOTHING)
@pytest.mark.parametrize("dialect", CHAT_DIALECTS)
def test_a_reply_that_says_nothing_is_never_an_ok_empty_page(dialect: str, reply: str) -> None:
    """The plain dialect read an empty code fence as an ok page with no markdown: a page silently
    empty.  Every chat dialect x every reply that holds no text once read: either the reply is
    refused (bad output, retried) or the page carries a warning (degraded), as the local engine's
    blank page does ("no text found")."""
    import importlib

    from ocrclient.geometry import Frame
    from ocrclient.registry import DIALECTS

    module, attr = DIALECTS[dialect][0].split(":")
    dia = getattr(importlib.import_module(module), attr)(model="m")
    try:
        content = dia.parse(ModelReply(text=reply, finish_reason="stop"), ModelRequest(body={}, frame=Frame(1000, 1000, 0)))
    except BadOutputError:
        return
    said = content.markdown.strip() or any(b.text.strip() for b in content.blocks)
    assert said or content.warnings, (content.markdown, content.blocks)


# ---------------------------------------------------------------------------------------------
# a runaway reply is never an ok page
# ---------------------------------------------------------------------------------------------

#: a model's text running away at the end of a page (what a greedy decode of a table can do)
RUNAWAY = " lorem ipsum" * 400


@pytest.mark.parametrize(("name", "dialect"), [d for d in _every_dialect() if d[0] != "rapidocr"],
                         ids=lambda v: v if isinstance(v, str) else "")  # fmt: skip
def test_every_dialect_calls_a_runaway_reply_what_it_is(name: str, dialect: Any) -> None:
    """The kind: every model dialect, and the whole-PDF one (``--document-mode``, each page of
    its reply), reading a reply whose text runs away at the end.  A page dialect raises it as
    bad output (``repetition``, retried with other sampling), its partial content trimmed; the
    whole-PDF dialect, whose job has no sampling to vary, keeps each page trimmed with a note on
    the runaway one.  The whole-PDF dialect read it as a clean page: a page of "lorem ipsum"
    kept as the document's text, no retry, no word of it."""
    from ocrclient.dialects.deepseek import PAGE_END, DeepSeekDocumentDialect

    request = dialect.build(make_page(dialect.render), Attempt(1))
    healthy = _reply_for(name, request)
    with pytest.raises(BadOutputError) as caught:
        dialect.parse(ModelReply(text=healthy.text + RUNAWAY, finish_reason="stop", data=healthy.data), request)
    assert caught.value.cause == "repetition"
    partial = caught.value.partial
    assert isinstance(partial, PageContent) and len(partial.markdown) < 1000, partial
    if name != "deepseek":
        return
    whole = DeepSeekDocumentDialect(dialect)
    unit = whole.build(make_page(dialect.render), Attempt(1))
    grounding = "<|ref|>text<|/ref|><|det|>[[10, 10, 500, 100]]<|/det|>\n"
    for pages, runaway in ((["Page one.", "Page two." + RUNAWAY, "Page three."], 2), (["One page." + RUNAWAY], 1)):
        # the worker's reply: the markdown, and the same pages with their grounding (the page's boxes)
        said = ModelReply(text="".join(p + PAGE_END for p in pages), finish_reason="stop",
                          data={"detection_markdown": "".join(grounding + p + PAGE_END for p in pages)})  # fmt: skip
        content = whole.parse(said, unit)
        assert len(content.markdown) < 1000 and [b.text[:9] for b in content.blocks] == [p[:9] for p in pages]
        assert all(len(b.text) < 100 and b.children for b in content.blocks)
        assert all(len(c.text) < 100 for b in content.blocks for c in b.children)  # (the boxes' text too)
        assert [w for w in content.warnings if "repetition" in w] == [w for w in content.warnings if w.startswith(f"document page {runaway}: repetition:")] != []
