"""The embedded ``local`` backend (RapidOCR) end to end on the bundled sample, plus the layout rules.

The whole sample is read ONCE per session (module fixture ``run``) through the real pipeline —
``pages.iter_pages`` -> ``RapidOCRDialect.build`` -> ``LocalTransport.send`` ->
``RapidOCRDialect.parse`` -> ``geometry.to_page`` — and every end-to-end test asserts on that result.

Metrics (against ``examples/sample.truth.json``):

* **word match** — the page's truth lines joined in order (a line ending in ``letter-`` joined to a
  next line starting in lower case, as the dialect does), and the page's markdown, are both
  lower-cased, every character that is not a letter or digit becomes a space, and the text is split
  on whitespace.  Recall = |truth ∩ ocr| / |truth| and precision = |truth ∩ ocr| / |ocr| over the
  word *multisets*; both must be >= 0.95 over the document and >= 0.90 on every page.
* **line boxes** — each truth line's best IoU against the OCR ``line`` blocks (mapped to page points
  by ``geometry.to_page``); at least 95 % of truth lines must reach IoU >= 0.5, on the whole document
  and on the rotated page 4 alone.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt, PageContent, RawBlock
from ocrclient.dialects.rapidocr import RapidOCRDialect
from ocrclient.engines import rapidocr as engine_mod
from ocrclient.engines import tiling
from ocrclient.engines.rapidocr import get_engine
from ocrclient.errors import ConfigError, PermanentError
from ocrclient.geometry import PageBox, to_page
from ocrclient.imaging import RenderSpec, encode
from ocrclient.pages import PageImage, iter_pages
from ocrclient.registry import load_backend
from ocrclient.transports.base import ModelReply, ModelRequest
from ocrclient.transports.local import LocalTransport

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SAMPLE = EXAMPLES / "sample.pdf"


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


def _dehyphenate(lines: list[str]) -> str:
    out = ""
    for t in lines:
        if out and len(out) > 1 and out.endswith("-") and out[-2].isalpha() and t[:1].islower():
            out = out[:-1] + t
        else:
            out = f"{out}\n{t}" if out else t
    return out


def norm_words(text: str) -> list[str]:
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).split()


def word_match(truth_text: str, ocr_text: str) -> tuple[float, float]:
    t, o = Counter(norm_words(truth_text)), Counter(norm_words(ocr_text))
    hit = sum((t & o).values())
    return hit / max(sum(t.values()), 1), hit / max(sum(o.values()), 1)


def iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def walk(blocks: list[RawBlock], kind: str) -> Iterator[RawBlock]:
    for b in blocks:
        if b.type == kind:
            yield b
        yield from walk(b.children, kind)


# ---------------------------------------------------------------------------------------------
# the one run of the sample
# ---------------------------------------------------------------------------------------------


@dataclass
class PageResult:
    page: PageImage
    reply: ModelReply
    content: PageContent
    #: (text, bbox in displayed points) of every OCR line
    lines: list[tuple[str, list[float]]] = field(default_factory=list)


@dataclass
class Run:
    pages: list[PageResult]
    constructions: int
    ticks: int
    wall_s: float
    truth: dict[str, Any]


class _CountingRapidOCR:
    """Wraps rapidocr.RapidOCR to count constructions."""

    made = 0
    real: Any = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        cls.made += 1
        return cls.real(*args, **kwargs)


@pytest.fixture(scope="module")
def run() -> Run:
    import rapidocr

    truth = json.loads((EXAMPLES / "sample.truth.json").read_text(encoding="utf-8"))
    # the OCR engine is what this module measures: the sample is a PDF with a text layer, which
    # the default (text_layer = auto) would read instead (tests/test_text_layer.py covers that)
    dialect = RapidOCRDialect.from_config(resolve_config("local", dialect_options={"text_layer": "never"}))
    transport = LocalTransport.from_config(resolve_config("local"))
    pages = list(iter_pages(SAMPLE, dialect.render))

    async def go() -> tuple[list[ModelReply], int]:
        ticks = 0
        done = False

        async def heartbeat() -> None:
            nonlocal ticks
            while not done:
                await asyncio.sleep(0.05)
                ticks += 1

        beat = asyncio.create_task(heartbeat())
        # all pages at once: the engine must still be built once and calls serialized
        replies = await asyncio.gather(
            *(transport.send(dialect.build(p, Attempt())) for p in pages)
        )
        done = True
        await beat
        return list(replies), ticks

    before = engine_mod.engine_constructions()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine_mod, "_ENGINES", {})  # start from no engine, whatever ran before
        _CountingRapidOCR.made = 0
        _CountingRapidOCR.real = rapidocr.RapidOCR
        mp.setattr(rapidocr, "RapidOCR", _CountingRapidOCR)
        start = time.perf_counter()
        replies, ticks = asyncio.run(go())
        wall = time.perf_counter() - start
        made = _CountingRapidOCR.made
        assert engine_mod.engine_constructions() == before + made
    results = []
    for page, reply in zip(pages, replies, strict=True):
        content = dialect.parse(reply, dialect.build(page, Attempt()))
        res = PageResult(page, reply, content)
        for line in walk(content.blocks, "line"):
            assert line.box is not None
            mapped = to_page(line.box, content.space, page.frame, page.page_box)
            res.lines.append((line.text, mapped.bbox))
        results.append(res)
    return Run(results, made, ticks, wall, truth)


# ---------------------------------------------------------------------------------------------
# end to end on the sample
# ---------------------------------------------------------------------------------------------


def test_engine_built_once_and_loop_stays_free(run: Run) -> None:
    assert run.constructions == 1
    # the event loop kept ticking while the pages were read in worker threads
    # (a blocked loop would tick a handful of times at most; allow for a heavily loaded machine)
    assert run.ticks >= max(10, 0.1 * run.wall_s / 0.05), (run.ticks, run.wall_s)


def test_word_match_against_truth(run: Run) -> None:
    all_truth, all_ocr = [], []
    for res, tp in zip(run.pages, run.truth["pages"], strict=True):
        truth_text = _dehyphenate([ln["text"] for ln in tp["lines"]])
        recall, precision = word_match(truth_text, res.content.markdown)
        assert recall >= 0.90 and precision >= 0.90, (tp["page"], recall, precision)
        all_truth.append(truth_text)
        all_ocr.append(res.content.markdown)
    recall, precision = word_match("\n".join(all_truth), "\n".join(all_ocr))
    assert recall >= 0.95 and precision >= 0.95, (recall, precision)


def test_line_boxes_against_truth(run: Run) -> None:
    hits = total = 0
    for res, tp in zip(run.pages, run.truth["pages"], strict=True):
        assert (res.page.page_box.width, res.page.page_box.height) == (tp["width"], tp["height"])
        ious = [max((iou(t["box"], box) for _, box in res.lines), default=0.0) for t in tp["lines"]]
        good = sum(v >= 0.5 for v in ious)
        assert good / len(ious) >= 0.95, (tp["page"], sorted(ious)[:5])
        hits += good
        total += len(ious)
    assert hits / total >= 0.95


def test_rotated_page_is_read_upright_in_displayed_coordinates(run: Run) -> None:
    res, tp = run.pages[3], run.truth["pages"][3]
    assert res.page.page_box.rotation == 90 and res.page.page_box.width > res.page.page_box.height
    assert res.content.markdown.startswith("## Appendix A: Equipment Log")
    for t in tp["lines"]:
        best = max(res.lines, key=lambda item: iou(t["box"], item[1]))
        assert iou(t["box"], best[1]) >= 0.5, t["text"]
        assert norm_words(best[0]) == norm_words(t["text"])


def test_two_column_reading_order(run: Run) -> None:
    res, tp = run.pages[1], run.truth["pages"][1]
    middle = tp["width"] / 2
    sequence = []
    for block in res.content.blocks:
        if block.type != "text":
            continue
        assert block.box is not None
        mapped = to_page(block.box, res.content.space, res.page.frame, res.page.page_box).bbox
        sequence.append(1 if (mapped[0] + mapped[2]) / 2 < middle else 2)
    assert sequence == sorted(sequence) and set(sequence) == {1, 2}, sequence
    md = res.content.markdown
    col1 = [ln["text"] for ln in tp["lines"] if ln.get("column") == 1]
    col2 = [ln["text"] for ln in tp["lines"] if ln.get("column") == 2]
    # the last line of column 1 comes before the first line of column 2 in the markdown
    assert md.index(col1[-1]) < md.index(col2[0])
    assert md.index(col1[0]) < md.index(col1[-1]) and md.index(col2[0]) < md.index(col2[-1])


def test_headings_title_paragraphs_and_hyphenation(run: Run) -> None:
    p1 = run.pages[0].content
    truth1 = run.truth["pages"][0]["lines"]
    title = next(t["text"] for t in truth1 if t["kind"] == "title")
    headings = [t["text"] for t in truth1 if t["kind"] == "heading"]
    assert p1.blocks[0].type == "title" and p1.blocks[0].text == title
    assert p1.markdown.startswith(f"# {title}\n\n")
    for h in headings:
        assert f"\n\n## {h}\n\n" in p1.markdown
    assert [b.text for b in p1.blocks if b.type == "section_header"] == headings
    # paragraphs: blank-line separated, one per truth paragraph (body runs split by headings/gaps)
    body_blocks = [b for b in p1.blocks if b.type == "text"]
    assert len(body_blocks) == 5  # subtitle + 4 paragraphs
    assert all(
        len(b.children) >= 1 and all(c.type == "line" for c in b.children) for b in p1.blocks
    )
    # the hyphenated line end is joined
    hyph = next(t["text"] for t in truth1 if t["text"].endswith("-"))
    nxt = truth1[[t["text"] for t in truth1].index(hyph) + 1]["text"]
    joined = hyph.split()[-1][:-1] + nxt.split()[0]
    assert f" {joined} " in p1.markdown and f"{hyph.split()[-1]}" not in p1.markdown
    # words carry their own boxes inside their line
    line = next(walk(p1.blocks, "line"))
    assert line.children and all(w.type == "word" and w.box is not None for w in line.children)
    assert line.box is not None
    for w in line.children:
        assert w.box is not None
        assert line.box[0] - 1 <= w.box[0] <= w.box[2] <= line.box[2] + 1


def test_table_and_captions(run: Run) -> None:
    res, tp = run.pages[2], run.truth["pages"][2]
    tables = [b for b in res.content.blocks if b.type == "table"]
    assert len(tables) == 1
    cells: dict[int, dict[int, str]] = {}
    for ln in tp["lines"]:
        if ln["kind"] == "cell":
            cells.setdefault(ln["row"], {})[ln["col"]] = ln["text"]
    rows = ["| " + " | ".join(r[c] for c in sorted(r)) + " |" for _, r in sorted(cells.items())]
    md_rows = tables[0].text.splitlines()
    assert md_rows[0] == rows[0] and set(md_rows[1].replace(" ", "")) <= set("|-")
    assert md_rows[2:] == rows[1:]
    assert tables[0].text in res.content.markdown
    captions = [b.text for b in res.content.blocks if b.type == "caption"]
    assert captions == [ln["text"] for ln in tp["lines"] if ln["kind"] == "caption"]
    # the drawn bar chart produced no stray text blocks
    assert [b.type for b in res.content.blocks] == [
        "section_header",
        "text",
        "table",
        "caption",
        "caption",
    ]


def test_reply_shape(run: Run) -> None:
    reply = run.pages[0].reply
    lines = reply.data["lines"]
    assert reply.text == "\n".join(ln["text"] for ln in lines)
    w, h = reply.data["image_size"]
    assert (w, h) == (run.pages[0].page.frame.width_px, run.pages[0].page.frame.height_px)
    for ln in lines:
        assert set(ln) >= {"text", "score", "box", "words", "det_box"}
        x0, y0, x1, y1 = ln["box"]
        dx0, dy0, dx1, dy1 = ln["det_box"]
        assert 0 <= dx0 <= x0 < x1 <= dx1 <= w and 0 <= dy0 <= y0 < y1 <= dy1 <= h
        assert 0.5 <= ln["score"] <= 1.0
        assert all(isinstance(v, float) for v in ln["box"])
    json.dumps(reply.data)  # plain data: cacheable as JSON


# ---------------------------------------------------------------------------------------------
# more engine behaviour (cheap: small images)
# ---------------------------------------------------------------------------------------------


def _page_from_image(img: Image.Image, number: int = 1) -> PageImage:
    enc = encode(img, RenderSpec(dpi=150, format="png"))
    return PageImage(
        source="mem",
        index=number - 1,
        page_box=PageBox(img.width * 72 / 150, img.height * 72 / 150),
        encoded=enc,
    )


async def test_blank_page_yields_a_warning_not_silence() -> None:
    dialect, transport = RapidOCRDialect(), LocalTransport()
    page = _page_from_image(Image.new("RGB", (600, 400), "white"))
    reply = await transport.send(dialect.build(page, Attempt()))
    assert reply.data["lines"] == [] and reply.text == ""
    content = dialect.parse(reply, dialect.build(page, Attempt()))
    assert content.markdown == "" and content.blocks == []
    assert content.warnings == ["no text found"]


async def test_boxes_are_in_sent_pixels_when_the_engine_downscales(run: Run) -> None:
    """RapidOCR shrinks images longer than max_side_len (2000) before reading them; the boxes
    must still come back in pixels of the image that was sent."""
    res = run.pages[3]
    top = res.page.image().crop((0, 100, res.page.frame.width_px, 560))  # heading + first lines
    big = top.resize((top.width * 3 // 2, top.height * 3 // 2), Image.Resampling.LANCZOS)
    assert max(big.size) > 2000
    assert len(tiling.plan_tiles(*big.size)) == 1  # one image: this is about the downscale
    buf = io.BytesIO()
    big.save(buf, "PNG")
    reply = await LocalTransport().send(ModelRequest(body={"image": buf.getvalue()}))
    small = {ln["text"]: ln["box"] for ln in res.reply.data["lines"]}
    matched = 0
    for ln in reply.data["lines"]:
        if ln["text"] in small and small[ln["text"]][3] < 560:
            x0, y0, x1, y1 = small[ln["text"]]
            expect = [x0 * 1.5, (y0 - 100) * 1.5, x1 * 1.5, (y1 - 100) * 1.5]
            assert ln["box"] == pytest.approx(expect, abs=6), ln["text"]
            matched += 1
    assert matched >= 2


async def test_health_reports_the_loaded_models() -> None:
    health = await LocalTransport().health()
    assert health.ok, health.detail
    assert set(health.info["models"]) == {"det", "cls", "rec"}
    assert all(name.endswith(".onnx") for name in health.info["models"].values())
    assert get_engine() is get_engine()


async def test_bad_requests_fail_permanently() -> None:
    t = LocalTransport()
    with pytest.raises(PermanentError):
        await t.send(ModelRequest(body={}))
    with pytest.raises(PermanentError, match="cannot decode"):
        await t.send(ModelRequest(body={"image": b"not an image"}))


def test_profile_loads_through_the_registry() -> None:
    backend = load_backend("local")
    assert isinstance(backend.transport, LocalTransport)
    assert isinstance(backend.dialect, RapidOCRDialect)
    assert backend.dialect.render == RenderSpec(dpi=150, max_pixels=16_000_000, format="png")
    # tall pages render at full dpi (the engine tiles them); huge pages fit the pixel budget
    assert backend.dialect.render.pixel_size(234, 14295) == (488, 29781)
    w, h = backend.dialect.render.pixel_size(20000, 20000)
    assert w * h <= 16_000_000 and w == h
    with pytest.raises(ConfigError, match="unknown transport option"):
        load_backend("local", transport_options={"gpu": True})
    assert load_backend("local", render={"dpi": 200}).dialect.render.dpi == 200


def test_engine_works_offline() -> None:
    """In a fresh process where every network connection fails, the engine loads its models
    (they ship in the wheel) and reads text, without a word on stderr."""
    code = textwrap.dedent(
        """
        import asyncio, io, socket
        def refuse(*a, **k):
            raise OSError("network disabled by the test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import requests
        requests.get = refuse
        from PIL import Image, ImageDraw, ImageFont
        from ocrclient.transports.local import LocalTransport
        from ocrclient.transports.base import ModelRequest
        img = Image.new("RGB", (700, 120), "white")
        ImageDraw.Draw(img).text((20, 30), "Offline engine works", fill="black",
                                 font=ImageFont.load_default(size=48))
        buf = io.BytesIO(); img.save(buf, "PNG")
        reply = asyncio.run(LocalTransport().send(ModelRequest(body={"image": buf.getvalue()})))
        print(reply.text)
        """
    )
    env = {
        k: v for k, v in os.environ.items() if not k.endswith("_PROXY") and not k.endswith("_proxy")
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert norm_words(proc.stdout) == ["offline", "engine", "works"]
    assert proc.stderr.strip() == ""  # no download, and RapidOCR's own logging is silenced


# ---------------------------------------------------------------------------------------------
# layout rules on synthetic replies (no engine)
# ---------------------------------------------------------------------------------------------


def _reply(lines: list[tuple[str, tuple[float, float, float, float]]]) -> ModelReply:
    data = [{"text": t, "score": 0.99, "box": list(b), "words": []} for t, b in lines]
    return ModelReply(text="\n".join(t for t, _ in lines), data={"lines": data})


def _fake_request(number: int = 1) -> ModelRequest:
    page = PageImage(
        source="mem",
        index=number - 1,
        page_box=PageBox(612, 792),
        encoded=encode(Image.new("L", (8, 8), 255), RenderSpec()),
    )
    return RapidOCRDialect().build(page, Attempt())


def _body(x: float, y: float, text: str) -> tuple[str, tuple[float, float, float, float]]:
    # ~23 px per em at 150 dpi for 11 pt text; width from the text
    from ocrclient.engines.lines import em_width

    return text, (x, y, x + em_width(text) * 23 + 7, y + 29)


def test_spanning_heading_over_two_columns() -> None:
    heading = (
        "Results of the full width survey heading across both columns",
        (150.0, 100.0, 1120.0, 160.0),
    )
    left = [_body(150, 200 + 31 * i, f"left column line number {i} of text here") for i in range(6)]
    right = [_body(680, 200 + 31 * i, f"right column line number {i} of text") for i in range(6)]
    # interleave them in the reply, as a detector that reads by rows would
    mixed = [x for pair in zip(left, right, strict=True) for x in pair]
    content = RapidOCRDialect().parse(_reply([heading, *mixed]), _fake_request())
    order = [b.text for b in content.blocks]
    assert order[0].startswith("Results")
    assert order[1].startswith("left column line number 0") and "number 5" in order[1]
    assert order[2].startswith("right column line number 0") and "number 5" in order[2]


def test_hyphen_join_and_paragraph_gap() -> None:
    lines = [
        _body(150, 100, "The measure-"),
        _body(150, 131, "ments were taken twice, and well-"),
        _body(150, 162, "Known results were kept."),
        _body(150, 240, "A second paragraph after a gap."),
    ]
    content = RapidOCRDialect().parse(_reply(lines), _fake_request(2))
    assert content.markdown == (
        "The measurements were taken twice, and well- Known results were kept.\n\n"
        "A second paragraph after a gap."
    )
    assert [b.type for b in content.blocks] == ["text", "text"]
    assert [len(b.children) for b in content.blocks] == [3, 1]


def test_noise_only_reply_is_a_blank_page() -> None:
    content = RapidOCRDialect().parse(
        _reply([("_", (10.0, 10.0, 40.0, 200.0)), ("|", (50.0, 10.0, 60.0, 90.0))]), _fake_request()
    )
    assert content.markdown == "" and content.warnings == ["no text found"]


def test_table_rows_with_an_empty_cell_stay_in_the_table() -> None:
    def cell(x: float, y: float, text: str) -> tuple[str, tuple[float, float, float, float]]:
        return _body(x, y, text)

    rows = [
        ["Region", "Visits", "Mean depth"],
        ["North Ridge", "Twelve", "3.75 metres"],
        ["Eastern Valley", "", "4.10 metres"],
        ["Western Slope", "Nine", "2.95 metres"],
    ]
    lines = [_body(150, 60, "A paragraph above the table, long enough to span the page width.")]
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            if text:
                lines.append(cell(150 + 330 * c, 140 + 50 * r, text))
    content = RapidOCRDialect().parse(_reply(lines), _fake_request())
    assert [b.type for b in content.blocks] == ["text", "table"]
    assert content.blocks[1].text.splitlines() == [
        "| Region | Visits | Mean depth |",
        "| --- | --- | --- |",
        "| North Ridge | Twelve | 3.75 metres |",
        "| Eastern Valley |  | 4.10 metres |",
        "| Western Slope | Nine | 2.95 metres |",
    ]
    assert len(content.blocks[1].children) == 11


def test_sidebar_of_label_value_pairs_beside_the_text() -> None:
    """A text column with an infobox set close beside it (a corridor narrower than one em) and a
    full-width line below both: the text is read first, then the infobox row by row."""
    body = [
        _body(70, 300 + 33 * i, f"body text line {i} of the article column here") for i in range(10)
    ]
    edge = max(b[2] for _, b in body) + 18  # 18 px: under one em (~23 px), over half of one
    labels = ["Reign", "Predecessor", "Successor", "Born"]
    values = ["October 959 to July 975", "Eadwig", "Edward the Martyr", "943 or 944"]
    box_lines = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        box_lines.append(_body(edge, 320 + 60 * i, label))
        box_lines.append(_body(edge + 200, 320 + 60 * i, value))
    tail = _body(70, 700, "a final line that runs under both the text and the infobox, " * 2)
    content = RapidOCRDialect().parse(_reply([*box_lines, *body, tail]), _fake_request(2))
    md = content.markdown
    assert md.index("body text line 9") < md.index("Reign") < md.index("a final line")
    pairs = [md.index(x) for pair in zip(labels, values, strict=True) for x in pair]
    assert pairs == sorted(pairs)


def test_tight_boxes_hug_the_ink_and_ignore_rules() -> None:
    import numpy as np

    from ocrclient.engines.ink import tighten

    gray = np.full((100, 300), 255, dtype=np.uint8)
    gray[40:60, 50:200] = 0  # "text"
    gray[:, 20] = 0  # a vertical table rule crossing the detector's padded box
    gray[85, 20:280] = 0  # and a horizontal one
    assert tighten(gray, [15, 5, 290, 95]) == [50.0, 40.0, 200.0, 60.0]
    # a glyph stem spanning a word box that is already tight vertically is ink, not a rule
    stem = np.full((20, 30), 255, dtype=np.uint8)
    stem[:, 12:16] = 0
    assert tighten(stem, [0, 0, 30, 20], rules=False) == [12.0, 0.0, 16.0, 20.0]
    # no contrast: the box is kept
    assert tighten(np.full((50, 50), 200, dtype=np.uint8), [5, 5, 45, 45]) == [5, 5, 45, 45]


# ---------------------------------------------------------------------------------------------
# extreme aspect ratios: read in tiles
# ---------------------------------------------------------------------------------------------

_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo"]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_plan_tiles_partitions_the_long_axis() -> None:
    for width, height in [(488, 29781), (30000, 66), (100, 401), (10, 10_000), (1833, 8731)]:
        tiles = tiling.plan_tiles(width, height)
        long_side, short_side = max(width, height), min(width, height)
        assert len(tiles) > 1
        assert tiles[0].core_start == 0 and tiles[-1].core_end == long_side
        for a, b in itertools.pairwise(tiles):
            assert a.core_end == b.core_start  # cores partition the axis: nothing read twice
        for t in tiles:
            assert t.start <= t.core_start < t.core_end <= t.end
            if height > width:
                assert t.end - t.start <= max(4 * short_side, 64)  # at most 4:1 (64 px at least)
                assert t.end - t.start <= max(2000, short_side)  # and is not shrunk by the engine
            else:  # a wide page's tile is no longer than the engine reads unshrunk
                assert t.end - t.start <= 2000
    assert len(tiling.plan_tiles(1275, 1650)) == 1
    assert len(tiling.plan_tiles(400, 1600)) == 1  # exactly 4:1 is still one image
    assert len(tiling.plan_tiles(2474, 66)) == 1  # a line the engine reads whole, shrunk a little


async def test_tall_strip_is_read_in_tiles_every_line_once_in_place() -> None:
    """A 420 x 6400 px strip (like skinnypage.pdf page 2) holds one word every 160 px; RapidOCR
    would upscale it to 736 x 11200 px.  Tiled, each word comes back exactly once, in order,
    with its box where it was drawn."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=40)
    img = Image.new("RGB", (420, 6400), "white")
    draw = ImageDraw.Draw(img)
    truth = []
    for i in range(40):
        word = f"{_WORDS[i % len(_WORDS)]}{i}"
        y = 40 + i * 160
        draw.text((30, y), word, fill="black", font=font)
        truth.append((word, draw.textbbox((30, y), word, font=font)))
    reply = await LocalTransport().send(ModelRequest(body={"image": _png(img)}))
    assert reply.data["tiles"] == len(tiling.plan_tiles(420, 6400)) > 1
    got = [ln["text"].replace(" ", "").lower() for ln in reply.data["lines"]]
    assert got == [w for w, _ in truth]
    for line, (_, box) in zip(reply.data["lines"], truth, strict=True):
        assert line["box"] == pytest.approx(list(box), abs=8)
        assert reply.data["image_size"] == [420, 6400]


async def test_wide_banner_lines_cut_by_seams_are_stitched() -> None:
    """A 6000 x 140 px banner with two lines of text running across seams (the engine would
    shrink it to a third, read whole): every word comes back once, in order, on its own line,
    and word boxes stay where the words were drawn."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=36)
    img = Image.new("RGB", (6000, 140), "white")
    draw = ImageDraw.Draw(img)
    rows = [" ".join(_WORDS[:14]), " ".join(reversed(_WORDS[4:18]))]
    for r, text in enumerate(rows):
        draw.text((40, 20 + r * 60), text, fill="black", font=font)
    reply = await LocalTransport().send(ModelRequest(body={"image": _png(img)}))
    assert reply.data["tiles"] == len(tiling.plan_tiles(6000, 140)) > 1
    lines = reply.data["lines"]
    assert [ln["text"].lower().split() for ln in lines] == [r.split() for r in rows]
    for r, line in enumerate(lines):
        xs = [w["box"][0] for w in line["words"]]
        assert xs == sorted(xs)
        drawn = draw.textbbox((40, 20 + r * 60), rows[r], font=font)
        assert line["box"][0] == pytest.approx(drawn[0], abs=6)
        assert line["box"][2] == pytest.approx(drawn[2], abs=6)


async def test_words_centred_on_a_tall_strip_seam_are_read_once() -> None:
    """Each tile's detector box for a line near a seam differs by a few pixels, so a line must
    not be kept or dropped by which side of the seam its centre falls: it is read in both
    tiles and kept once (review found lines lost at offsets 0, +2, +4, +6 px)."""
    from PIL import ImageDraw, ImageFont

    width, height = 420, 3000  # four tiles: three seams
    seams = [t.core_end for t in tiling.plan_tiles(width, height)[:-1]][:3]
    font = ImageFont.load_default(size=24)
    transport = LocalTransport()
    for offset in (-2, 0, 2, 4, 6):
        img = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(img)
        bb = draw.textbbox((0, 0), "november", font=font)
        for seam in seams:
            draw.text((30, seam + offset - (bb[1] + bb[3]) / 2), "november", fill="black", font=font)
        reply = await transport.send(ModelRequest(body={"image": _png(img)}))
        assert [ln["text"].lower() for ln in reply.data["lines"]] == ["november"] * len(seams), offset


@pytest.mark.parametrize("x", [20, 56, 92, 98])
async def test_a_banner_line_across_seams_reads_once_at_any_shift(x: int) -> None:
    """One line over six seams of an 1800 x 140 px banner, at shifts where review saw words
    doubled ("charlie" read by two tiles), detector fragments ("t", "a k") and split lines:
    it comes back as the one line that was drawn."""
    from PIL import ImageDraw, ImageFont

    text = " ".join(_WORDS[:13])
    img = Image.new("RGB", (1800, 140), "white")
    ImageDraw.Draw(img).text((x, 50), text, fill="black", font=ImageFont.load_default(size=36))
    reply = await LocalTransport().send(ModelRequest(body={"image": _png(img)}))
    assert [ln["text"].lower().split() for ln in reply.data["lines"]] == [text.split()]


def test_wide_merge_keeps_each_lines_own_spacing() -> None:
    """RapidOCR gives one word per character on lines with CJK in them; a line read in two
    overlapping tiles is joined back with the spacing of its own text, not a space per word."""
    text = "Total 合计 123"
    words, x = [], 100.0
    for ch in text:
        if ch == " ":
            x += 20
            continue
        words.append({"text": ch, "score": 0.9, "box": [x, 10.0, x + 18, 40.0]})
        x += 20
    tiles = [tiling.Tile(0, 300, 0, 200), tiling.Tile(100, 500, 200, 400)]
    per_tile = []
    for tile in tiles:  # each tile reads the characters that lie inside it, as one line
        seen = [w for w in words if tile.start <= w["box"][0] and w["box"][2] <= tile.end]
        chars = "".join(w["text"] for w in seen)
        line_text = text[text.index(chars[0]) : text.rindex(chars[-1]) + 1]
        box = [seen[0]["box"][0], 10.0, seen[-1]["box"][2], 40.0]
        per_tile.append([{"text": line_text, "score": 0.9, "box": box, "words": [dict(w) for w in seen]}])
    lines = tiling.merge_wide(per_tile, tiles, 500)
    assert [ln["text"] for ln in lines] == [text]
    assert len(lines[0]["words"]) == len(words)


def _turned_words(angle: int) -> tuple[bytes, dict[str, tuple[float, float, float, float]]]:
    """A PNG of three lines of words turned ``angle`` degrees counter-clockwise (PIL's sense),
    and where each word's ink box is on it (drawn word by word at known places, then turned)."""
    from PIL import ImageDraw, ImageFont

    lines = ["Quick brown foxes jump", "over seven lazy dogs", "near the quiet river"]
    font = ImageFont.load_default(size=36)
    w, h = 900, 300
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    where: dict[str, tuple[float, float, float, float]] = {}
    for row, line in enumerate(lines):
        x = 20.0
        for word in line.split():
            draw.text((x, 20 + 90 * row), word, fill="black", font=font)
            where[word] = draw.textbbox((x, 20 + 90 * row), word, font=font)
            x += font.getlength(word + " ")
    turn = {0: lambda x, y: (x, y), 90: lambda x, y: (y, w - x), 180: lambda x, y: (w - x, h - y),
            270: lambda x, y: (h - y, x)}[angle]  # fmt: skip
    for word, (x0, y0, x1, y1) in where.items():
        (a, b), (c, d) = turn(x0, y0), turn(x1, y1)
        where[word] = (min(a, c), min(b, d), max(a, c), max(b, d))
    buf = io.BytesIO()
    img.rotate(angle, expand=True).save(buf, "PNG")
    return buf.getvalue(), where


@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_word_boxes_sit_on_their_words_whichever_way_the_lines_run(angle: int) -> None:
    """Lines running down the image (a page turned a quarter) had every word box span the whole
    line's length, as thin slices across it; lines RapidOCR read turned half a turn (upside down,
    or running up the image) had their words mirrored along the line (its first word's box on its
    last word).  Each word's box is now on the word's own ink."""
    import ocrclient

    data, truth = _turned_words(angle)
    doc = ocrclient.convert(data, backend="local", cache=False)
    words = [w for b in doc.pages[0].blocks for ln in b.children for w in ln.children]
    checked = 0
    for word in words:
        if word.text in truth and word.bbox is not None:
            x0, y0, x1, y1 = truth[word.text]
            cx, cy = (word.bbox[0] + word.bbox[2]) / 2, (word.bbox[1] + word.bbox[3]) / 2
            assert x0 <= cx <= x1 and y0 <= cy <= y1, (word.text, word.bbox, truth[word.text])
            checked += 1
    assert checked >= 10, [w.text for w in words]


def test_wide_tiles_join_an_upside_down_line_from_the_right() -> None:
    """An upside-down line's words sit right to left on the page (RapidOCR's text reads them in
    order): merged across the tiles of a wide page, they keep that order, and a line read the
    right way up keeps its own."""
    tiles = tiling.plan_tiles(30000, 66)

    def line(words: list[tuple[str, float]], turned: bool) -> dict[str, Any]:
        out = {"text": " ".join(t for t, _ in words), "score": 0.9, "box": [0.0, 10.0, 400.0, 50.0],
               "words": [{"text": t, "score": 0.9, "box": [x, 10.0, x + 80.0, 50.0]} for t, x in words]}  # fmt: skip
        return {**out, "_turned": True} if turned else out

    upside_down = tiling.merge_wide([[line([("first", 210.0), ("second", 110.0), ("third", 10.0)], True)]], tiles, 30000)
    assert [ln["text"] for ln in upside_down] == ["first second third"]
    upright = tiling.merge_wide([[line([("first", 10.0), ("second", 110.0), ("third", 210.0)], False)]], tiles, 30000)
    assert [ln["text"] for ln in upright] == ["first second third"]


_LINE = "The invoice total was paid on the fourth of March by bank transfer to account number 12345678"


@pytest.mark.parametrize(("font_px", "height", "repeat"), [(22, 32, 1), (20, 28, 2), (40, 66, 1), (14, 20, 1)])
async def test_a_wide_text_line_is_read_whole_every_word_in_order(font_px: int, height: int, repeat: int) -> None:
    """Single text lines (a scanned strip, a banner) of every height: they were cut in tiles of
    4 x their height (a 1271 x 32 px line in 20 tiles), and came back with words lost, glued or
    broken into paragraphs, after 15 s.  The engine reads such a line whole: every word, in
    order, one engine run."""
    from PIL import ImageDraw, ImageFont

    text = " ".join([_LINE] * repeat)
    font = ImageFont.load_default(size=font_px)
    img = Image.new("RGB", (int(font.getlength(text)) + 20, height), "white")
    ImageDraw.Draw(img).text((10, (height - font_px) // 2 - 1), text, fill="black", font=font)
    assert img.width > tiling.TILE_ASPECT * img.height  # (once, it was tiled)
    reply = await LocalTransport().send(ModelRequest(body={"image": _png(img)}))
    assert reply.data.get("tiles", 1) == 1
    read = " ".join(line["text"] for line in reply.data["lines"]).lower().split()
    assert read == text.lower().split(), read


@pytest.mark.parametrize("width", [5000, 20000])
def test_a_blank_strip_takes_a_few_engine_runs_not_hundreds(width: int) -> None:
    """A 20000 x 30 px blank strip took 334 engine runs (260 s); tiles are as long as the engine
    reads unshrunk now, each padded to a height it takes."""
    tiles = tiling.plan_tiles(width, 30)
    assert len(tiles) <= 2 * width // 2000 + 1
    assert all(t.end - t.start <= 2000 for t in tiles)


@pytest.mark.parametrize("how", ["invisible", "white"])
def test_hidden_text_on_a_trusted_page_is_not_its_text(how: str, tmp_path: Path) -> None:
    """A page whose text layer is trusted (80 % of it on ink) kept the rest too: invisible
    (render mode 3) or white words lying on no ink came out as the page's text, with a box over
    nothing.  Each line on no ink is left out, and the reading says so; the visible lines stay."""
    import ocrclient

    from .pdfgen import PdfPage, write_pdf

    visible = [(72, 720 - 20 * i, 12, f"Visible paragraph line {i} with ordinary words in it for the reader")
               for i in range(15)]  # fmt: skip
    pdf = write_pdf(tmp_path / "h.pdf", [PdfPage(media=(0, 0, 612, 792), texts=visible,
                                                  hidden=[(72, 200, 12, "HIDDEN WORDS NOT ON THE PAGE", how)])])  # fmt: skip
    doc = ocrclient.convert(pdf, backend="local", cache=False)
    page = doc.pages[0]
    assert "HIDDEN" not in page.markdown and all(f"line {i} " in page.markdown for i in range(15)), page.markdown
    assert all("HIDDEN" not in b.text for b in page.blocks)
