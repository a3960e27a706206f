"""A page fed sideways or upside down is read upright by the local engine (engines/orientation.py).

Before, a scan turned a quarter or half a turn came out with its paragraphs in reverse order, and
the lines RapidOCR's classifier left upside down as nonsense ("This  u  r    n  rn  ssn u sa.").
Now each of the three turns of an image reads exactly as the image given upright, with every box
turned with the page; a scanned PDF page, at each turn, reads in order with its line boxes on the
truth's lines; an upright page is still read once.  And a line RapidOCR's classifier turned
half a turn is read both ways, the better kept (it turns a few lines of upright pages too).
"""

from __future__ import annotations

import difflib
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image

import ocrclient
from ocrclient.document import Block, Document
from ocrclient.engines import orientation, tiling
from ocrclient.engines import read as read_mod
from ocrclient.geometry import rotate_norm_box

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.pdf"
DPI = 100  # the lowest the test reads at: the classifier is least sure of itself there


def _upright_page() -> Image.Image:
    page = pdfium.PdfDocument(str(SAMPLE))[0]
    return page.render(scale=DPI / 72).to_pil().convert("RGB")


def _encoded(img: Image.Image, kind: str) -> bytes:
    buf = io.BytesIO()
    if kind == "pdf":  # an image-only PDF page, as a scanner writes it
        img.save(buf, "PDF", resolution=DPI)
    else:
        img.save(buf, "PNG")
    return buf.getvalue()


def _blocks(doc: Document) -> list[Block]:
    out: list[Block] = []

    def walk(blocks: list[Block]) -> None:
        for b in blocks:
            out.append(b)
            walk(b.children)

    walk(doc.pages[0].blocks)
    return out


@pytest.fixture(scope="module")
def upright() -> dict[str, Document]:
    img = _upright_page()
    return {"png": ocrclient.convert(_encoded(img, "png"), backend="local", cache=False)}


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_a_turned_image_reads_as_the_upright_image(turn: int, upright: dict[str, Document]) -> None:
    """The same pixels turned: the very same reading, every box (line and word) turned with the page."""
    want = upright["png"]
    sent = _upright_page().rotate(-turn, expand=True)  # PIL turns counter-clockwise
    doc = ocrclient.convert(_encoded(sent, "png"), backend="local", cache=False)
    assert doc.pages[0].status == "ok"
    assert doc.markdown == want.markdown
    page, up = doc.pages[0], want.pages[0]
    assert (page.width, page.height) == ((up.height, up.width) if turn in (90, 270) else (up.width, up.height))
    got, ref = _blocks(doc), _blocks(want)
    assert [(b.type, b.text) for b in got] == [(b.type, b.text) for b in ref]
    boxed = 0
    for b, r in zip(got, ref, strict=True):
        assert (b.bbox_norm is None) == (r.bbox_norm is None)
        if b.bbox_norm is not None and r.bbox_norm is not None:
            assert b.bbox_norm == pytest.approx(rotate_norm_box(tuple(r.bbox_norm), turn), abs=1e-6), b.text
            boxed += 1
    assert boxed > 100


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_a_turned_scanned_pdf_page_reads_in_order_with_its_boxes_on_its_lines(turn: int) -> None:
    """An image-only PDF page (what a scanner writes), turned: against the sample's truth, its
    text comes in reading order and each truth line, turned with the page, has its line box."""
    truth = json.loads(SAMPLE.with_name("sample.truth.json").read_text(encoding="utf-8"))["pages"][0]
    sent = _upright_page().rotate(-turn, expand=True)
    doc = ocrclient.convert(_encoded(sent, "pdf"), backend="local", cache=False)
    assert doc.pages[0].status == "ok"
    # order-sensitive: the same paragraphs in reverse order score well under 0.5
    want = _words(" ".join(line["text"] for line in truth["lines"]))
    assert difflib.SequenceMatcher(None, _words(doc.markdown), want, autojunk=False).ratio() > 0.9
    lines = [b.bbox_norm for b in _blocks(doc) if b.type == "line" and b.bbox_norm is not None]
    w, h = truth["width"], truth["height"]
    found = 0
    for line in truth["lines"]:
        x0, y0, x1, y1 = line["box"]
        where = rotate_norm_box((x0 / w, y0 / h, x1 / w, y1 / h), turn)
        found += max((_iou(where, tuple(b)) for b in lines), default=0.0) >= 0.5
    assert found >= 0.9 * len(truth["lines"]), (found, len(truth["lines"]))


@pytest.mark.parametrize("kind", ["page", "wide line", "tiles"])
def test_an_upright_page_is_read_once(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = read_mod.run_engine

    def counting(engine: Any, image: Any) -> Any:
        calls.append(image.size)
        return real(engine, image)

    monkeypatch.setattr(read_mod, "run_engine", counting)
    monkeypatch.setattr(tiling, "run_engine", counting)
    if kind == "page":
        doc = ocrclient.convert(_encoded(_upright_page(), "png"), backend="local", cache=False)
        assert doc.pages[0].status == "ok" and "Quarterly Field Report" in doc.markdown
        assert len(calls) == 1
    elif kind == "wide line":  # (read whole: see tiling.plan_tiles)
        strip = _drawn((1800, 150), ["the river during the spring months and recorded the results"], 22, 60, (15, 25))
        doc = ocrclient.convert(_encoded(strip, "png"), backend="local", cache=False)
        assert doc.pages[0].status == "ok" and "spring months" in doc.markdown
        assert len(calls) == len(tiling.plan_tiles(1800, 150)) == 1
    else:  # a strip too long for its height to be read whole
        strip = _drawn((4000, 48), ["the river during the spring months and recorded the results"], 28, 60, (25, 8))
        doc = ocrclient.convert(_encoded(strip, "png"), backend="local", cache=False)
        assert doc.pages[0].status == "ok" and "spring months" in doc.markdown
        assert len(calls) == len(tiling.plan_tiles(4000, 48)) > 1


def _line(text: str, box: tuple[float, float, float, float], score: float = 0.95, turned: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"text": text, "score": score, "box": list(box), "words": []}
    if turned:
        out["_turned"] = True
    return out


ACROSS = (10.0, 10.0, 400.0, 30.0)  # a line running across the image
DOWN = (10.0, 10.0, 30.0, 400.0)  # a line running down it
TEXT = "a line of some forty characters of text."


class _Reader:
    """``read`` for :func:`read_upright`: what each turn of the image reads (by its turn from the
    image given: 0 for it, then PIL's counter-clockwise degrees), judged by the same lines unless
    ``judged`` says otherwise (a page read in tiles), and the turns it was asked."""

    def __init__(self, by_turn: dict[int, list[dict[str, Any]]], judged: dict[int, list[dict[str, Any]]] | None = None) -> None:
        self.by_turn, self.judged = by_turn, judged or {}
        self.asked: list[int] = []

    def __call__(self, img: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        turn = int(img.info.get("turn", 0))
        self.asked.append(turn)
        return self.judged.get(turn, self.by_turn[turn]), self.by_turn[turn], turn


class _Img:
    """Stands in for a PIL image: ``rotate`` records the turn."""

    def __init__(self, turn: int = 0) -> None:
        self.info = {"turn": turn}

    def rotate(self, angle: int, expand: bool = False) -> _Img:
        return _Img((self.info["turn"] + angle) % 360)


GOOD, POOR = 0.99, 0.4
CASES = {
    "upright, the classifier calm: read once": ([_line(TEXT, ACROSS)], {}, None, 0, [0]),
    "sideways, turned back the better way": (
        [_line(TEXT, DOWN)], {90: [_line(TEXT, ACROSS, GOOD)], 270: [_line(TEXT, ACROSS, POOR)]}, None, 90, [0, 90, 270]),
    "sideways the other way": (
        [_line(TEXT, DOWN, POOR, True)], {90: [_line(TEXT, ACROSS, POOR)], 270: [_line(TEXT, ACROSS, GOOD)]}, None, 270, [0, 90, 270]),
    # short clean lines read as well upside down, the classifier turning them: its turn decides
    "sideways, both ways read alike: the one the classifier left alone": (
        [_line(TEXT, DOWN, GOOD)], {90: [_line(TEXT, ACROSS, GOOD, True)], 270: [_line(TEXT, ACROSS, GOOD)]}, None, 270, [0, 90, 270]),
    "sideways text that reads clearly worse turned (vertical writing) stays": (
        [_line(TEXT, DOWN, GOOD)], {90: [_line(TEXT, ACROSS, 0.5)], 270: [_line(TEXT, ACROSS, POOR)]}, None, 0, [0, 90, 270]),
    "a turn that still reads sideways is not upright": (
        [_line(TEXT, DOWN, 0.5)], {90: [_line(TEXT, DOWN, GOOD)], 270: [_line(TEXT, DOWN, GOOD)]}, None, 0, [0, 90, 270]),
    "upside down, its lines nonsense": ([_line(TEXT, ACROSS, 0.5, True)], {180: [_line(TEXT, ACROSS, GOOD)]}, None, 180, [0, 180]),
    "upside down, every line turned back and read well by the classifier": (
        [_line(TEXT, ACROSS, GOOD, True)], {180: [_line(TEXT, ACROSS, GOOD)]}, None, 180, [0, 180]),
    "the classifier turned some lines, but half a turn reads no better": (
        [_line(TEXT, ACROSS, 0.9), _line(TEXT, ACROSS, 0.9, True)],
        {180: [_line(TEXT, ACROSS, 0.5, True), _line(TEXT, ACROSS, 0.9)]}, None, 0, [0, 180]),
    # a wide page read in tiles: its merged rows run across, its tiles' own lines run down
    "tiles: judged by the tiles' own lines": (
        [_line(TEXT, ACROSS, 0.5)], {90: [_line(TEXT, ACROSS, GOOD)], 270: [_line(TEXT, ACROSS, POOR)]},
        {0: [_line(TEXT, DOWN, 0.5)]}, 90, [0, 90, 270]),
    "too little text to decide anything": ([_line("abc", DOWN, POOR, True)], {}, None, 0, [0]),
    # one or two glyphs stand tall whichever way the page stands (a table of single digits)
    "glyphs standing tall are no sideways page": (
        [_line("7", DOWN) for _ in range(60)] + [_line("Table 4. Counts per plot", ACROSS)], {}, None, 0, [0]),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_read_upright_decides(case: str) -> None:
    first, by_turn, judged, want_turn, asked = CASES[case]
    reader = _Reader({0: first, **by_turn}, judged)
    lines, rotation, img, extra = orientation.read_upright(_Img(), reader)
    assert rotation == want_turn and extra == want_turn
    assert lines is reader.by_turn[want_turn]
    assert img.info["turn"] == want_turn
    assert reader.asked == asked


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_to_upright_turns_every_box_back(rotation: int) -> None:
    """Lines in pixels of the image sent -> pixels of the upright image, exactly where
    :func:`rotate_norm_box` puts the upright box when it turns it into the image sent."""
    up_w, up_h = 300.0, 500.0
    w, h = (up_h, up_w) if rotation in (90, 270) else (up_w, up_h)
    upright_box = (30.0, 40.0, 120.0, 60.0)
    n = rotate_norm_box((30 / up_w, 40 / up_h, 120 / up_w, 60 / up_h), rotation)
    sent = [n[0] * w, n[1] * h, n[2] * w, n[3] * h]
    line = {"text": "x", "box": sent, "det_box": sent, "words": [{"text": "x", "box": sent}]}
    [moved] = orientation.to_upright([line], rotation, w, h)
    for box in (moved["box"], moved["det_box"], moved["words"][0]["box"]):
        assert box == pytest.approx(upright_box)
    assert line["box"] is sent  # the given dicts are left as they are


def test_a_line_the_classifier_turned_on_an_upright_page_is_read_as_found() -> None:
    """RapidOCR's classifier turned the first body line of the upright sample (a scanned PDF
    page at 100 dpi) half a turn, and it read as ``"This  e   es       ss  sa."``: each turned
    line is now read both ways, and here the way it was found wins."""
    img = _upright_page()
    doc = ocrclient.convert(_encoded(img, "pdf"), backend="local", cache=False)
    assert "This report summarises the work carried out by the survey team" in doc.markdown


class _Rec:
    """A recogniser that reads each crop by its first pixel: ``{pixel: (text, score)}``."""

    def __init__(self, table: dict[int, tuple[str, float]]) -> None:
        self.table = table

    def __call__(self, imgs: list[Any]) -> Any:
        read = [self.table[int(img[0, 0])] for img in imgs]
        return SimpleNamespace(
            txts=tuple(t for t, _ in read), scores=[s for _, s in read],
            word_results=tuple(((t, s, None),) for t, s in read),
        )  # fmt: skip


def test_second_opinion_keeps_the_better_reading_of_each_turned_crop() -> None:
    import numpy as np

    from ocrclient.engines.rapidocr import _KeepTurns

    def crop(first: int, last: int) -> Any:
        # a 2 x 3 crop whose top-left pixel is `first` and bottom-right `last`: turned half a
        # turn, they swap
        a = np.zeros((2, 3), dtype=np.uint8)
        a[0, 0], a[1, 2] = first, last
        return a

    # as the classifier hands them over: crop 0 and 2 turned (their found side is `last`)
    imgs = [crop(1, 2), crop(3, 4), crop(5, 6)]
    rec = _Rec({
        1: ("turned reading, poor", 0.4), 2: ("found reading, good", 0.95),
        3: ("never turned", 0.9),
        5: ("turned reading, good", 0.97), 6: ("found reading, poor", 0.3),
    })  # fmt: skip
    turns = _KeepTurns(SimpleNamespace(cls_and_rotate=None, recognize_txt=rec))
    turns.labels = [True, False, True]
    res = turns.recognize(imgs)
    assert res.txts == ("found reading, good", "never turned", "turned reading, good")
    assert res.scores == [0.95, 0.9, 0.97]
    assert [w[0][0] for w in res.word_results] == list(res.txts)
    assert turns.labels == [False, False, True]  # crop 0's words are placed as found
    assert turns.kept_lines() == [False, False, True]


SHORT_LINES = ["The survey team", "measured the water", "levels at each of the", "twelve stations along",
               "the northern bank of", "the river during the", "spring months and", "recorded the results"]  # fmt: skip


def _drawn(size: tuple[int, int], lines: list[str], font_px: int, step: int, at: tuple[int, int]) -> Image.Image:
    from PIL import ImageDraw, ImageFont

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_px)
    for i, text in enumerate(lines):
        draw.text((at[0], at[1] + i * step), text, fill="black", font=font)
    return img


def _texts(data: bytes) -> tuple[int, list[str]]:
    reading = read_mod.read_image(data, read_mod.EngineSettings())
    return reading.rotation, [line["text"] for line in reading.lines]


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_short_clean_lines_turned_are_read_upright(turn: int) -> None:
    """Short clean lines read about as well upside down as upright (the classifier turns them):
    the page turned a quarter either way, or half a turn, still comes back upright."""
    page = _drawn((1240, 1754), SHORT_LINES, 40, 64, (100, 300))
    want = _texts(_encoded(page, "png"))
    assert want[0] == 0 and want[1][:2] == SHORT_LINES[:2]
    assert _texts(_encoded(page.rotate(-turn, expand=True), "png")) == (turn, want[1])


def test_a_receipt_photographed_sideways_is_read_upright() -> None:
    """A tall receipt (read in tiles) sent turned a quarter: a wide strip, read in tiles along
    it.  Merging a wide page's tiles groups words into rows, so its item lines, running down the
    image, came out as one line of every item in reverse order ("Total 34.25 Salt 0.65 ... Bread
    2.40"); the page is judged by its tiles' own lines now, and turned back."""
    items = ["Bread 2.40", "Milk 1.15", "Apples 3.20", "Cheese 4.75", "Coffee 6.90", "Rice 2.10", "Eggs 3.05",
             "Butter 2.60", "Tea 3.40", "Pasta 1.80", "Soap 2.25", "Salt 0.65", "Total 34.25"]  # fmt: skip
    receipt = _drawn((240, 1400), items, 26, 100, (20, 30))
    assert len(tiling.plan_tiles(240, 1400)) > 1
    rotation, texts = _texts(_encoded(receipt, "png"))
    assert rotation == 0 and texts[:3] == items[:3]
    assert _texts(_encoded(receipt.rotate(-90, expand=True), "png")) == (90, texts)


def test_an_upright_table_of_single_digits_is_not_turned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each single digit's box is taller than wide, as a line running down the image is: a page
    of them was taken for a page turned a quarter, its title read as "Tabl", "e", "Counts" and
    its table transposed."""
    import random

    from PIL import ImageDraw, ImageFont

    rng = random.Random(12)
    img = Image.new("RGB", (1240, 1754), "white")
    draw = ImageDraw.Draw(img)
    draw.text((80, 60), "Table 4. Counts per plot", fill="black", font=ImageFont.load_default(size=30))
    digit = ImageFont.load_default(size=28)
    for row in range(30):
        for col in range(10):
            draw.text((100 + col * 110, 140 + row * 52), str(rng.randint(0, 9)), fill="black", font=digit)
    calls: list[Any] = []
    real = read_mod.run_engine
    monkeypatch.setattr(read_mod, "run_engine", lambda engine, image: calls.append(1) or real(engine, image))
    rotation, texts = _texts(_encoded(img, "png"))
    assert rotation == 0 and len(calls) == 1
    assert texts[0].startswith("Table 4. Counts")
