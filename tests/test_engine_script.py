"""The page's script and stray characters of other scripts (``ocrclient.engines.script``).

The embedded engine's one offline recognition model is multilingual: on an English page it may
read a smudge or a math glyph as a CJK character, with low confidence.  The rule: never emit
characters of a script the page does not contain from a low-confidence read; keep every
character of the page's own scripts, and every confident read.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont

from ocrclient.engines import read as read_mod
from ocrclient.engines.rapidocr import EngineSettings, lines_from_result
from ocrclient.engines.script import CONFIDENT, drop_foreign, page_scripts, script_of

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
#: what olmOCR-bench's baseline test rejects in an English page (CJK, kana)
CJK = re.compile(r"[\u4e00-\u9fff\u3040-\u30ff\u3400-\u4dbf\uff00-\uffef\u3000-\u303f]")
#: one sample of every script group the filter knows, as the engine might emit it
FOREIGN = {
    "cjk": "米了二",
    "hangul": "한국",
    "cyrillic": "Жщ",
    "arabic": "نوي",
    "hebrew": "שלו",
    "thai": "ภาษ",
    "indic": "हिन",
}
ENGLISH = [
    "The committee reviewed the annual report on water quality in the region.",
    "Samples were collected at twelve sites between March and October.",
    "Results show a steady decline in nitrate levels since the new rules.",
]


def _line(text: str, chars: list[float] | None = None, score: float = 0.99) -> dict[str, Any]:
    line: dict[str, Any] = {"text": text, "score": score, "box": [0.0, 0.0, 10.0, 10.0], "words": []}
    if chars is not None:
        line["_chars"] = chars
    return line


def _english_page() -> list[dict[str, Any]]:
    return [_line(t, [0.99] * len(t)) for t in ENGLISH]


def test_script_of_groups_letters_and_leaves_the_rest_alone() -> None:
    assert [script_of(c) for c in "aÉßλЖ米カ한ن"] == [
        "latin", "latin", "latin", "greek", "cyrillic", "cjk", "cjk", "hangul", "arabic",
    ]  # fmt: skip
    assert {script_of(c) for c in "0123 .,;:()[]+-=∑∫√%$€@#"} == {None}


@pytest.mark.parametrize("script", sorted(FOREIGN))
def test_low_confidence_characters_of_an_absent_script_are_dropped(script: str) -> None:
    """The whole kind: for every script group, an English page whose low-confidence read holds
    that script's characters emits none of them (and keeps the line's Latin text)."""
    stray = FOREIGN[script]
    text = f"Table 4 {stray} shows the totals"
    scores = [0.98] * len(text)
    for i, ch in enumerate(text):
        if ch in stray:
            scores[i] = 0.6
    lines = [*_english_page(), _line(text, scores), _line(stray, [0.7] * len(stray), score=0.7)]
    scripts = page_scripts(lines)
    assert scripts == {"latin", "greek"}
    out = drop_foreign(lines, scripts)
    body = "\n".join(ln["text"] for ln in out)
    assert not any(script_of(c) == script for c in body), body
    assert "Table 4 shows the totals" in body
    assert len(out) == len(ENGLISH) + 1  # the line of stray characters alone is gone
    assert out[-1]["dropped"] == stray
    assert all("_chars" not in ln for ln in out)


def test_confident_reads_and_the_pages_own_scripts_are_kept() -> None:
    cjk_text = "水质监测报告显示硝酸盐含量下降"
    lines = [
        _line(cjk_text, [0.97] * len(cjk_text)),
        _line("二〇二三年度", [0.6] * 6, score=0.6),  # low confidence, but the page is CJK
        _line("Report 2023", [0.99] * 11),
    ]
    scripts = page_scripts(lines)
    assert "cjk" in scripts and "latin" in scripts
    out = drop_foreign(lines, scripts)
    assert [ln["text"] for ln in out] == [cjk_text, "二〇二三年度", "Report 2023"]
    # an English page: a CJK character read with confidence stays (only low-confidence reads go)
    confident = _line("Dr. 王 reported", [0.99] * 15)
    out = drop_foreign([*_english_page(), confident], page_scripts([*_english_page(), confident]))
    assert out[-1]["text"] == "Dr. 王 reported" and "dropped" not in out[-1]


def test_a_few_stray_characters_do_not_make_a_script() -> None:
    """Two confident CJK characters on a page of English are not a CJK page (MIN_CHARS, MIN_SHARE)."""
    lines = [*_english_page(), _line("米米", [0.95, 0.95])]
    assert "cjk" not in page_scripts(lines)
    many = [*_english_page(), _line("水质监测报告显示", [0.95] * 8)]
    assert "cjk" in page_scripts(many)


def test_a_page_read_with_low_confidence_throughout_keeps_its_own_script() -> None:
    """A poor CJK scan (every character under CONFIDENT) is not emptied: with too few confident
    letters to judge by, every letter read counts."""
    text = "水质监测报告显示硝酸盐含量下降了二三"
    lines = [_line(text, [0.7] * len(text), score=0.7), _line("米", [0.6], score=0.6)]
    assert "cjk" in page_scripts(lines)
    assert [ln["text"] for ln in drop_foreign(lines, page_scripts(lines))] == [text, "米"]
    english = [_line(t, [0.7] * len(t), score=0.7) for t in ENGLISH] + [_line("米", [0.6], score=0.6)]
    removed: list[str] = []
    out = drop_foreign(english, page_scripts(english), removed)
    assert len(out) == len(ENGLISH) and removed == ["米"]


def test_the_text_layer_decides_the_scripts_when_there_is_one() -> None:
    lines = [*_english_page(), _line("监测", [0.5, 0.5], score=0.5)]
    assert "cjk" not in page_scripts(lines)
    assert "cjk" in page_scripts(lines, layer_text="Water quality 监测 report")
    out = drop_foreign(lines, page_scripts(lines, layer_text="Water quality 监测 report"))
    assert out[-1]["text"] == "监测"


def test_full_width_punctuation_on_an_english_page_becomes_ascii() -> None:
    text = "Order by repo：（stars）"
    lines = [*_english_page(), _line(text, [0.99] * len(text))]
    out = drop_foreign(lines, page_scripts(lines))
    assert out[-1]["text"] == "Order by repo:(stars)"


def test_words_follow_their_line() -> None:
    scores = [0.99] * 10
    scores[4] = 0.5  # "米"
    line = _line("sum 米 of x", scores)
    line["words"] = [{"text": t, "score": 0.99, "box": [0, 0, 1, 1]} for t in ("sum", "米", "of", "x")]
    (out,) = drop_foreign([line], {"latin"})
    assert out["text"] == "sum of x"
    assert [w["text"] for w in out["words"]] == ["sum", "of", "x"]


def test_lines_without_character_scores_use_the_line_score() -> None:
    low, high = _line("米", score=0.7), _line("米", score=0.95)
    assert CONFIDENT > 0.7
    assert drop_foreign([*_english_page(), low], {"latin"})[-1]["text"] != "米"
    assert drop_foreign([*_english_page(), high], {"latin"})[-1]["text"] == "米"


# --------------------------------------------------------------------- through read_image


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _english_image(extra: str = "") -> Image.Image:
    img = Image.new("RGB", (1100, 700), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), 26)
    for i, t in enumerate(ENGLISH):
        draw.text((30, 30 + 60 * i), t[:60] + extra, font=font, fill="black")
    return img


def test_read_image_drops_a_low_confidence_cjk_read_from_an_english_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """read_image on a synthetic English page, the engine's result standing in for RapidOCR's
    (its per-character scores as ``run_engine`` attaches them): a low-confidence CJK read
    comes back as no CJK at all, and ``data()`` says which scripts the page has."""
    txts = [*ENGLISH, "米", "eiπ + 1 = 0 二"]
    chars = [[0.99] * len(t) for t in ENGLISH] + [[0.73], [0.99] * 12 + [0.52]]
    boxes = [[[30, 30 + 60 * i], [900, 30 + 60 * i], [900, 60 + 60 * i], [30, 60 + 60 * i]] for i in range(len(txts))]
    fake = SimpleNamespace(txts=tuple(txts), scores=tuple(min(c) for c in chars), boxes=boxes, word_results=(), char_scores=chars)
    monkeypatch.setattr(read_mod, "get_engine", lambda settings: object())
    monkeypatch.setattr(read_mod, "run_engine", lambda engine, image: fake)
    reading = read_mod.read_image(_png(_english_image()), EngineSettings())
    text = reading.text
    assert not CJK.search(text), text
    assert "eiπ + 1 = 0" in text  # Greek stays on a Latin page
    assert reading.data()["scripts"] == ["greek", "latin"]
    assert [ln.get("dropped") for ln in reading.lines][-1] == "二"
    assert reading.data()["removed_lines"] == ["米"]
    assert all("_chars" not in ln for ln in reading.lines)


def _glyph(draw: ImageDraw.ImageDraw, x: int, y: int, kind: str) -> None:
    """Han characters made of straight strokes (日 田 目 三), drawn without a CJK font."""
    w, h, s = 40, 50, 5
    if kind != "三":
        draw.rectangle((x, y, x + w, y + h), outline="black", width=s)
    rows = {"日": [0.5], "田": [0.5], "目": [1 / 3, 2 / 3], "三": [0.1, 0.5, 0.9]}[kind]
    for r in rows:
        draw.line((x, y + r * h, x + w, y + r * h), fill="black", width=s)
    if kind == "田":
        draw.line((x + w / 2, y, x + w / 2, y + h), fill="black", width=s)


def test_a_cjk_page_keeps_its_cjk_through_the_real_engine() -> None:
    """A page of Han characters (drawn with straight strokes: the machine has no CJK font) read
    by the real engine keeps every one of them; the English page beside it stays free of CJK."""
    img = Image.new("RGB", (900, 320), "white")
    draw = ImageDraw.Draw(img)
    for row in range(3):
        for i, kind in enumerate("日田目三日田目三"):
            _glyph(draw, 30 + 70 * i, 40 + 90 * row, kind)
    reading = read_mod.read_image(_png(img), EngineSettings())
    found = "".join(CJK.findall(reading.text))
    assert len(found) >= 16, reading.text
    assert "cjk" in reading.data()["scripts"]
    assert not any("dropped" in ln for ln in reading.lines)
    english = read_mod.read_image(_png(_english_image()), EngineSettings())
    assert not CJK.search(english.text) and english.data()["scripts"] == ["greek", "latin"]


def test_the_engine_gives_every_line_its_character_scores() -> None:
    """run_engine attaches each line's per-character probabilities (kept from RapidOCR's own
    decoding), aligned with the line's text: what the low-confidence rule reads."""
    from ocrclient.engines.rapidocr import get_engine, run_engine

    result = run_engine(get_engine(EngineSettings()), _english_image())
    lines = lines_from_result(result)
    assert len(lines) == len(ENGLISH)
    for line in lines:
        assert len(line["_chars"]) == len(line["text"])
        assert all(0.0 <= p <= 1.0 for p in line["_chars"])
