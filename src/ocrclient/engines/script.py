"""The page's script (writing system), and stray characters of other scripts kept out.

The one recognition model RapidOCR 3.x ships in its wheel (``PP-OCRv6_rec_small``, one
multilingual model for Chinese, Japanese, English and Latin-script languages) is the only one
the embedded engine can load offline, so there is no model to pick per page: when it misreads a
bullet, a rule or a smudge it may emit a CJK character with low confidence in an English page.
This module keeps those out:

* :func:`page_scripts` — the scripts the page contains: those of the characters the engine read
  with confidence (each character's own probability >= :data:`CONFIDENT`), when a script holds at
  least :data:`MIN_CHARS` of them and :data:`MIN_SHARE` of all confident letters (on a page with
  fewer than :data:`MIN_EVIDENCE` confident letters, a poor scan, every letter read counts, so a
  page read with low confidence throughout keeps its own script); or, when the
  caller has the page's trusted text layer, the scripts of its characters (a hook for the
  text-layer path: the layer is exact, one letter is enough).
* :func:`drop_foreign` — removes from every line the characters of a script the page does not
  contain that were read with low confidence (under :data:`CONFIDENT`); a character read with
  confidence is never removed.  Full-width forms (``：``, ``（``, ``Ａ``) on a page without CJK
  become the ASCII characters they stand for.  A line that lost or changed characters says which
  in ``"dropped"``; a line left empty is removed.

Scripts are Unicode blocks grouped the way a page mixes them: ``cjk`` (Han ideographs, kana,
bopomofo, CJK punctuation, full-width forms), ``hangul``, ``latin``, ``greek``, ``cyrillic``,
``arabic``, ``hebrew``, ``thai``, ``indic``; digits, punctuation, symbols and spaces belong to
none and are never removed.  Greek letters count as part of any Latin page (math and science use
them), so they are never removed from one.
"""

from __future__ import annotations

import bisect
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["CONFIDENT", "MIN_CHARS", "MIN_EVIDENCE", "MIN_SHARE", "drop_foreign", "page_scripts", "script_of"]

#: a character read with at least this probability is a confident read
CONFIDENT = 0.9
#: a script is on the page when it holds this many confident characters ...
MIN_CHARS = 3
#: ... and this share of all confident letters (a stray confident character or two is not a script)
MIN_SHARE = 0.02
#: fewer confident letters than this on a page (a poor scan): its scripts are judged from every
#: character read, whatever its confidence
MIN_EVIDENCE = 20
#: scripts that come with another on a page (Greek letters in Latin-script math)
COMPANIONS = {"latin": {"greek"}}

_RANGES: list[tuple[int, int, str]] = sorted(
    [
        (0x0041, 0x005A, "latin"),
        (0x0061, 0x007A, "latin"),
        (0x00C0, 0x024F, "latin"),
        (0x1E00, 0x1EFF, "latin"),
        (0x0370, 0x03FF, "greek"),
        (0x1F00, 0x1FFF, "greek"),
        (0x0400, 0x052F, "cyrillic"),
        (0x0590, 0x05FF, "hebrew"),
        (0x0600, 0x06FF, "arabic"),
        (0x0750, 0x077F, "arabic"),
        (0xFB50, 0xFDFF, "arabic"),
        (0xFE70, 0xFEFF, "arabic"),
        (0x0900, 0x0DFF, "indic"),
        (0x0E00, 0x0E7F, "thai"),
        (0x1100, 0x11FF, "hangul"),
        (0x3130, 0x318F, "hangul"),
        (0xAC00, 0xD7AF, "hangul"),
        (0x2E80, 0x2FDF, "cjk"),  # radicals
        (0x3000, 0x303F, "cjk"),  # CJK punctuation
        (0x3040, 0x30FF, "cjk"),  # hiragana, katakana
        (0x3100, 0x312F, "cjk"),  # bopomofo
        (0x31F0, 0x31FF, "cjk"),
        (0x3200, 0x33FF, "cjk"),  # enclosed CJK, compatibility
        (0x3400, 0x4DBF, "cjk"),
        (0x4E00, 0x9FFF, "cjk"),
        (0xF900, 0xFAFF, "cjk"),
        (0xFF00, 0xFFEF, "cjk"),  # full-width forms
        (0x20000, 0x3FFFF, "cjk"),
    ]
)
_STARTS = [r[0] for r in _RANGES]


def script_of(ch: str) -> str | None:
    """The script group of one character, ``None`` for digits, punctuation, symbols, spaces."""
    cp = ord(ch)
    i = bisect.bisect_right(_STARTS, cp) - 1
    if i >= 0 and cp <= _RANGES[i][1]:
        return _RANGES[i][2]
    return None


def char_scores(line: dict[str, Any]) -> Sequence[float]:
    """Each character's probability in ``line["text"]``: the engine's own when it gave them
    (``"_chars"``, aligned with the text), else the line's score for every character."""
    text = str(line["text"])
    chars = line.get("_chars")
    if chars is not None and len(chars) == len(text):
        return [float(c) for c in chars]
    return [float(line.get("score", 0.0))] * len(text)


def page_scripts(lines: Iterable[dict[str, Any]], layer_text: str | None = None) -> set[str]:
    """The scripts the page contains (see the module docstring); ``layer_text`` is the page's
    trusted text layer, when the caller has one."""
    if layer_text is not None and layer_text.strip():
        found = {s for ch in layer_text if (s := script_of(ch)) is not None}
    else:
        confident: Counter[str] = Counter()
        every: Counter[str] = Counter()
        for line in lines:
            for ch, p in zip(str(line["text"]), char_scores(line), strict=True):
                s = script_of(ch)
                if s is not None:
                    every[s] += 1
                    confident[s] += p >= CONFIDENT
        counts = confident if sum(confident.values()) >= MIN_EVIDENCE else every
        total = sum(counts.values())
        found = {s for s, n in counts.items() if n >= MIN_CHARS and n >= MIN_SHARE * total}
    for s in list(found):
        found |= COMPANIONS.get(s, set())
    return found


def _ascii_form(ch: str) -> str | None:
    """The ASCII character a full-width form (U+FF01-FF5E) or the ideographic space stands for."""
    if ch == "\u3000":
        return " "
    if "\uff01" <= ch <= "\uff5e":
        return unicodedata.normalize("NFKC", ch)
    return None


def _clean(text: str, scores: Sequence[float], keep: set[str]) -> tuple[str, str]:
    """``text`` without its low-confidence characters of scripts not in ``keep`` (full-width
    punctuation and letters become their ASCII selves when ``cjk`` is not kept), and what went."""
    out: list[str] = []
    dropped: list[str] = []
    for ch, p in zip(text, scores, strict=True):
        s = script_of(ch)
        if s is None or s in keep:
            out.append(ch)
        elif s == "cjk" and (plain := _ascii_form(ch)) is not None:
            out.append(plain)
            dropped.append(ch)
        elif p < CONFIDENT:
            dropped.append(ch)
        else:
            out.append(ch)
    return " ".join("".join(out).split()), "".join(dropped)


def drop_foreign(
    lines: list[dict[str, Any]], scripts: set[str], removed: list[str] | None = None
) -> list[dict[str, Any]]:
    """``lines`` with the low-confidence characters of scripts not in ``scripts`` removed
    (see the module docstring); the ``"_chars"`` scores are consumed.  The text of each line
    removed whole is appended to ``removed``."""
    out: list[dict[str, Any]] = []
    for line in lines:
        scores = char_scores(line)
        line.pop("_chars", None)
        text, dropped = _clean(str(line["text"]), scores, scripts)
        if not dropped:
            out.append(line)
            continue
        if not text:
            if removed is not None:
                removed.append(dropped)
            continue
        line["text"], line["dropped"] = text, dropped
        line["words"] = _drop_from_words(line.get("words", []), dropped)
        out.append(line)
    return out


def _drop_from_words(words: list[dict[str, Any]], dropped: str) -> list[dict[str, Any]]:
    """The line's words without the characters the line lost (in reading order: the engine's
    word scores are not aligned with their words, so the line's decisions are followed)."""
    queue = list(dropped)
    out = []
    for w in words:
        kept = []
        for ch in str(w["text"]):
            if queue and ch == queue[0]:
                queue.pop(0)
                if (plain := _ascii_form(ch)) is not None:
                    kept.append(plain)
            else:
                kept.append(ch)
        if "".join(kept).strip():
            out.append({**w, "text": "".join(kept)})
    return out
