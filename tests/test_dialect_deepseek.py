"""DeepSeek-OCR dialect: request shape and vLLM extras, real replies, broken tags, geometry, fuzz."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt
from ocrclient.dialects.deepseek import DeepSeekDialect
from ocrclient.errors import BadOutputError
from ocrclient.registry import load_dialect

from .test_dialect_common import (
    REPLIES,
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
def ds() -> DeepSeekDialect:
    return DeepSeekDialect(model="deepseek-ai/DeepSeek-OCR")


def test_build_request_shape_and_vllm_extras(ds: DeepSeekDialect) -> None:
    page = make_page(ds.render)
    req = ds.build(page, Attempt(1))
    assert_chat_shape(req, page, "deepseek-ai/DeepSeek-OCR")
    content = req.body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url", "text"]
    # over the chat API the <image> placeholder comes from the chat template, not the text
    assert text_parts(req) == ["<|grounding|>Convert the document to markdown."]
    assert req.body["skip_special_tokens"] is False
    assert req.body["vllm_xargs"] == {"ngram_size": 30, "window_size": 90, "whitelist_token_ids": [128821, 128822]}
    assert req.body["max_tokens"] == 7168 and req.body["temperature"] == 0.0
    assert ds.build(page, Attempt(2)).body["temperature"] == 0.2


def test_profile_prompt_with_image_placeholder_is_cleaned() -> None:
    d = DeepSeekDialect(model="m", options={"prompt": "<image>\n<|grounding|>OCR this image."})
    assert text_parts(d.build(make_page(), Attempt(1))) == ["<|grounding|>OCR this image."]
    d = load_dialect(resolve_config("runpod-deepseek-ocr"))
    req = d.build(make_page(d.render), Attempt(3))
    assert req.body["temperature"] == 0.4 and "vllm_xargs" in req.body
    assert (req.frame.width_px, req.frame.height_px) == (1224, 1584)  # type: ignore[union-attr]  # 144 dpi


def test_real_reply_sto8(ds: DeepSeekDialect) -> None:
    text = (REPLIES / "deepseek" / "sto8_page1.mmd").read_text(encoding="utf-8")
    c = ds.parse(reply(text), request_for(make_page()))
    assert not c.warnings
    assert len(c.blocks) == 18
    assert c.blocks[0].type == "title" and c.blocks[0].label == "title"
    assert c.blocks[0].text == "Übungsblatt Sto 8"
    assert c.blocks[0].box == (115, 165, 465, 201)
    assert c.blocks[7].type == "section_header" and c.blocks[7].label == "sub_title"
    assert [b.type for b in c.blocks].count("table") == 3
    assert "<|" not in c.markdown and "[[" not in c.markdown
    assert c.markdown.startswith("# Übungsblatt Sto 8")
    assert "### 1. Baumbestand in D" in c.markdown
    assert c.space.label == "grid:999"


def test_real_reply_sto5_equations(ds: DeepSeekDialect) -> None:
    text = (REPLIES / "deepseek" / "sto5_page1.mmd").read_text(encoding="utf-8")
    c = ds.parse(reply(text), request_for(make_page()))
    assert not c.warnings
    eqs = [b for b in c.blocks if b.type == "equation"]
    assert len(eqs) == 10
    assert eqs[0].text.startswith("\\[a) P(U \\le a) = 0,321")
    assert all(b.box is not None for b in c.blocks)


def test_several_boxes_in_one_tag_and_images(ds: DeepSeekDialect) -> None:
    text = ("<|ref|>image<|/ref|><|det|>[[10, 20, 300, 400], [500, 20, 900, 400]]<|/det|>\n"
            "<|ref|>image_caption<|/ref|><|det|>[[10, 410, 900, 440]]<|/det|>\nFigure 1: two panels"
            "<｜end▁of▁sentence｜>")  # fmt: skip
    c = ds.parse(reply(text), request_for(make_page()))
    assert [b.type for b in c.blocks] == ["figure", "figure", "caption"]
    assert c.blocks[1].box == (500, 20, 900, 400)
    # each box of the image tag a figure of its own, referenced in place (one reference for two
    # figures: the second took the next picture's reference, or was put at the page's end)
    assert c.markdown == "![](images/1.jpg)\n\n![](images/2.jpg)\n\nFigure 1: two panels"


def test_malformed_tags_degrade(ds: DeepSeekDialect) -> None:
    text = ("Preamble without tags\n\n"
            "<|ref|>text<|/ref|><|det|>[[900, 10, 100, 50]]<|/det|>\nreversed\n"
            "<|ref|>text<|/ref|><|det|>[[0, 0, 1500, 50]]<|/det|>\nout of range\n"
            "<|ref|>text<|/ref|><|det|>[[1, 2, 3]]<|/det|>\nthree numbers\n"
            "<|ref|>text<|/ref|><|det|>[[10, 20, 30, 40]<|/det|>\nbroken brackets\n"
            "<|ref|>text<|/ref|><|det|>garbage<|/det|>\nno numbers\n"
            "<|ref|>weird_label<|/ref|><|det|>[[1, 1, 2, 2]]<|/det|>\nunknown label <|ref|>dangling")  # fmt: skip
    c = ds.parse(reply(text), request_for(make_page()))
    joined = " | ".join(c.warnings)
    for needle in ("reversed", "outside", "expected 4", "malformed", "unreadable"):
        assert needle in joined
    assert c.blocks[0].text == "Preamble without tags" and c.blocks[0].box is None
    assert c.blocks[4].box == (10, 20, 30, 40)
    assert c.blocks[-1].type == "text" and c.blocks[-1].label == "weird_label"
    assert "<|" not in c.markdown
    for t in ("reversed", "out of range", "three numbers", "broken brackets", "no numbers", "unknown label"):
        assert t in c.markdown


_UNCLOSED = {
    "first": (0,),
    "middle": (1,),
    "last": (2,),
    "two in a row": (0, 1),
    "every one": (0, 1, 2),
}


@pytest.mark.parametrize("where", sorted(_UNCLOSED))
@pytest.mark.parametrize("boxes", ["[[100, {y0}, 900, {y1}]]", "[[100, {y0}, 500, {y1}], [500, {y0}, 900, {y1}]]"])
def test_a_det_never_closed_loses_no_text(ds: DeepSeekDialect, where: str, boxes: str) -> None:
    """A ``<|det|>`` the model never closed (anywhere, one or several boxes): every paragraph is
    in the markdown once and its blocks carry its own boxes (the tag ran to the next one's close:
    the paragraph after it was lost, the next one's text given its box)."""
    paras = ["First paragraph here.", "Second paragraph whose tag is open.", "Third paragraph at the end."]
    text = ""
    for i, para in enumerate(paras):
        det = boxes.format(y0=100 + 200 * i, y1=200 + 200 * i)
        text += f"<|ref|>text<|/ref|><|det|>{det}{'' if i in _UNCLOSED[where] else '<|/det|>'}\n{para}\n\n"
    c = ds.parse(reply(text), request_for(make_page()))
    assert c.markdown == "\n\n".join(paras)
    per = 2 if "], [" in boxes else 1
    assert [b.text for b in c.blocks] == paras  # (each text once, whatever its boxes)
    for i, (para, b) in enumerate(zip(paras, c.blocks, strict=True)):
        assert b.box is not None and b.box[1] == 100 + 200 * i, (para, b.box)
        assert len(b.children) == (per if per > 1 else 0), b.children
        assert all(k.box is not None and k.box[1] == 100 + 200 * i and not k.text for k in b.children), (para, b)


def test_no_tags_at_all(ds: DeepSeekDialect) -> None:
    c = ds.parse(reply("# Free OCR output\n\nplain text"), request_for(make_page()))
    assert c.markdown == "# Free OCR output\n\nplain text"
    assert any("no grounding tags" in w for w in c.warnings)


def test_truncated_and_empty(ds: DeepSeekDialect) -> None:
    text = "<|ref|>text<|/ref|><|det|>[[1, 2, 30, 40]]<|/det|>\nkept\n<|ref|>table<|/ref|><|det|>[[1, 50"
    with pytest.raises(BadOutputError) as info:
        ds.parse(reply(text, finish="length"), request_for(make_page()))
    assert info.value.cause == "length" and "kept" in info.value.partial.markdown
    with pytest.raises(BadOutputError) as info:
        ds.parse(reply(""), request_for(make_page()))
    assert info.value.cause == "empty"


def test_repetition(ds: DeepSeekDialect) -> None:
    text = "<|ref|>text<|/ref|><|det|>[[1, 2, 30, 40]]<|/det|>\n" + "<td>1</td><td>2</td>" * 100
    with pytest.raises(BadOutputError) as info:
        ds.parse(reply(text, finish="length"), request_for(make_page()))
    assert info.value.cause == "repetition"


def test_geometry_roundtrip(ds: DeepSeekDialect) -> None:
    def make(boxes: list[tuple[int, int, int, int]]) -> str:
        return "\n".join(f"<|ref|>text<|/ref|><|det|>[[{b[0]}, {b[1]}, {b[2]}, {b[3]}]]<|/det|>\nblock {i}\n"
                         for i, b in enumerate(boxes))  # fmt: skip

    geometry_roundtrip(make, ds.parse, ds.build, 999, ds.render)


@settings(max_examples=150, deadline=None)
@given(fuzz_text, fuzz_finish)
def test_fuzz_never_raises_other_errors(text: str, finish: str | None) -> None:
    fuzz_parse(DeepSeekDialect(model="m").parse, text, finish)


async def test_over_the_wire_with_simulated_vllm(ds: DeepSeekDialect) -> None:
    """build -> OpenAI transport -> simulated vLLM -> parse: the extras reach the server."""
    from ocrclient.testing.faults import FaultPlan, SimReply
    from ocrclient.testing.openai_sim import OpenAISimulator
    from ocrclient.transports.openai import OpenAITransport

    seen: list[dict] = []
    real = (REPLIES / "deepseek" / "sto8_page1.mmd").read_text(encoding="utf-8")

    def responder(body: dict) -> SimReply:
        seen.append(body)
        return SimReply(text=real, completion_tokens=900)

    page = make_page(ds.render)
    with OpenAISimulator(plan=FaultPlan(latency_s=(0.0, 0.0)), responder=responder,
                         model="deepseek-ai/DeepSeek-OCR") as sim:  # fmt: skip
        transport = OpenAITransport(sim.base_url, api_key=sim.api_key, stream=False)
        try:
            got = await transport.send(ds.build(page, Attempt(1)))
        finally:
            await transport.aclose()
    assert seen[0]["skip_special_tokens"] is False
    assert seen[0]["vllm_xargs"]["ngram_size"] == 30
    assert seen[0]["max_tokens"] == 7168
    content = ds.parse(got, request_for(page))
    assert content.markdown.startswith("# Übungsblatt Sto 8") and len(content.blocks) == 18


@pytest.mark.parametrize("label", ["text", "title", "table_caption"])
def test_a_tag_with_several_boxes_writes_its_text_once_in_every_output(ds: DeepSeekDialect, label: str, tmp_path: Path) -> None:
    """The whole kind: a reference with several boxes is one block, its text once, its boxes
    its children and its own box their union; each output (md, json, txt, html, the searchable
    PDF's text layer) holds that text exactly as often as a one-box reference's.  It was a block
    per box, each with the whole text: twice in the JSON, the viewer and the PDF's text layer."""
    import json

    import pypdfium2 as pdfium
    from PIL import Image

    from ocrclient.document import Document, Page
    from ocrclient.exporters import write_outputs
    from ocrclient.geometry import content_to_blocks

    text = ("<|ref|>image<|/ref|><|det|>[[100, 100, 300, 300], [600, 100, 900, 300]]<|/det|>\n"
            "<|ref|>text<|/ref|><|det|>[[100, 320, 900, 350]]<|/det|>\nBetween the pictures and the rest.\n"
            f"<|ref|>{label}<|/ref|><|det|>[[100, 400, 900, 450], [100, 460, 900, 500]]<|/det|>\nQuokka zebra twice\n"
            f"<|ref|>{label}<|/ref|><|det|>[[100, 600, 900, 650]]<|/det|>\nWombat yak once\n")  # fmt: skip
    page = make_page(ds.render)
    request = request_for(page)
    c = ds.parse(reply(text), request)
    assert [b.type for b in c.blocks[:2]] == ["figure", "figure"]  # (one per box, each cropped)
    multi = c.blocks[3]
    assert multi.box == (100, 400, 900, 500) and [k.box for k in multi.children] == [(100, 400, 900, 450), (100, 460, 900, 500)]
    assert all(not k.text and k.type == multi.type for k in multi.children)
    src = tmp_path / "p.png"
    Image.open(__import__("io").BytesIO(page.encoded.data)).save(src)  # type: ignore[union-attr]
    w, h = page.frame.width_px, page.frame.height_px
    doc = Document(source=str(src), backend="t", pages=[Page(page=1, status="ok", width=w, height=h, markdown=c.markdown,
                                                             blocks=content_to_blocks(c, request, page))])  # fmt: skip
    paths = {p.suffix: p for p in write_outputs(doc, tmp_path / "out", "p", ["md", "json", "txt", "html", "pdf"])}
    pdf = pdfium.PdfDocument(paths[".pdf"])
    written = {
        ".json": json.dumps(json.loads(paths[".json"].read_text())),
        ".pdf": pdf[0].get_textpage().get_text_range(),
        **{k: paths[k].read_text() for k in (".md", ".txt", ".html")},
    }
    pdf.close()
    for suffix, body in written.items():
        once = body.count("Wombat yak once")
        assert once >= 1 and body.count("Quokka zebra twice") == once, (suffix, body)
    md = paths[".md"].read_text()
    assert md.startswith("![Figure 1](p_figures/page1_fig1.png)\n\n![Figure 2](p_figures/page1_fig2.png)\n\nBetween"), md
