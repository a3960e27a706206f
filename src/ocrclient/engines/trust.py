"""Whether a PDF page's own text layer can be trusted, so the page is read from it and not OCR'd.

:func:`judge` runs the checks in order, cheapest first, and the first that fails sends the page
to OCR (its reason is kept in the reply's ``text_layer.why``):

1. **Valid Unicode**: at most :data:`MAX_BAD` of its characters (not spaces) are unusable — a
   font without a Unicode map (PDFium's map error), private-use code points, U+FFFD, control
   characters.  ``(cid:12)``-style garbage and symbol fonts end here.
2. **Enough text, not mostly image**: a page with fewer than :data:`MIN_CHARS` characters (a
   scan with a page number in its layer, or a memo's one short line), or whose image objects
   cover at least half of it with fewer than :data:`IMAGE_PAGE_CHARS` (a slide or a poster whose
   words are in the images), is OCR'd, and the layer's own lines (those on ink) replace the OCR
   lines they cover or stand where the OCR found none (a short line OCR missed on a page of
   white was read as nothing, the page degraded with no text)
   (:mod:`ocrclient.engines.pdf_page`; a page the PDF turns is OCR'd alone) — unless the layer is
   a scan's OCR layer (mostly invisible) or its letters are implausible and a sample read (check
   4) does not agree with it, or, under :data:`MIN_CHARS`, is too short to be sampled: then the
   page is OCR'd alone (a short scanned page whose invisible layer said other words than the
   scan got the layer's words).
3. **Glyphs on ink**: the page image is rendered anyway (it is what OCR would read); at least
   :data:`MIN_INKED` of the text (by characters) must sit on inked pixels (contrast inside the
   line's box).  White or hidden text, and an invisible layer that does not lie over the scan it
   claims to transcribe, fail here.
4. **Agrees with a sample read**: when the layer is the OCR layer of a scan, whose quality is
   unknown (mostly *invisible*, render mode 3, or on a page :data:`SCAN_COVER` covered by images,
   where visible text may lie under the scan) or its Latin letters are implausible (the letter frequencies of
   a shifted or scrambled font encoding: fewer than :data:`MIN_COMMON_LETTERS` of them among the
   ten letters most common in Latin-script languages), a few of its lines are read by the
   recogniser (``sample``, one batched call on short crops) and compared with the layer: the
   median similarity must reach :data:`MIN_AGREEMENT`.  Lines in scripts the recogniser does not
   read are not sampled; with too few Latin lines to sample, an implausible layer fails.

Born-digital pages pass 1–3 from the layer and a few numpy reductions over the rendered image, so
they never pay for OCR; only suspicious layers pay for a small sample.
"""

from __future__ import annotations

import difflib
import statistics
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .text_layer import Layer

__all__ = ["MIN_CHARS", "Verdict", "inked", "judge", "plausible_letters"]

MIN_CHARS = 20
MAX_BAD = 0.05
IMAGE_PAGE_CHARS = 500
MIN_INKED = 0.8
MIN_COMMON_LETTERS = 0.55
MIN_AGREEMENT = 0.6
#: a page this much covered by images is a scan: its text layer is someone's OCR
SCAN_COVER = 0.9
_COMMON = set("etaoinsrhl")
_SAMPLES = 3
_SAMPLE_CHARS = 16

#: recognise a list of crops (numpy arrays) -> their texts
Sampler = Callable[[list[Any]], list[str]]


@dataclass
class Verdict:
    trusted: bool
    why: str
    #: failed check 3 only (mostly image): the layer's lines are good where they are
    image_page: bool = False


def _bad(ch: str, unmapped: bool) -> bool:
    if unmapped or ch == "\ufffd":
        return True
    cat = unicodedata.category(ch)
    return cat in ("Co", "Cn") or (cat == "Cc" and ch not in "\t\r\n\x02")


def plausible_letters(text: str) -> float | None:
    """The share of the ASCII letters of ``text`` among the ten most common letters of
    Latin-script languages (``None`` with fewer than 100 letters to judge)."""
    letters = [c for c in text.lower() if "a" <= c <= "z"]
    if len(letters) < 100:
        return None
    return sum(c in _COMMON for c in letters) / len(letters)


def inked(gray: Any, box: Sequence[float]) -> bool:
    """Whether the box holds ink (contrast) in the page image ``gray``."""
    h, w = gray.shape
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(box[2]) + 1), min(h, int(box[3]) + 1)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return False
    crop = gray[y0:y1, x0:x1]
    return int(crop.max()) - int(crop.min()) >= 60


def _squash(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _latin(text: str) -> bool:
    return sum("a" <= c.lower() <= "z" for c in text) >= 0.7 * max(len(text.replace(" ", "")), 1)


def _agreement(lines: Sequence[dict[str, Any]], gray: Any, sample: Sampler) -> float | None:
    """Median similarity between the layer and the recogniser on a few short crops."""
    cands = [ln for ln in lines if len(ln["text"]) >= 12 and _latin(ln["text"]) and ln["words"]]
    if len(cands) < _SAMPLES:
        return None
    step = len(cands) / _SAMPLES
    picked = [cands[int(k * step + step / 2)] for k in range(_SAMPLES)]
    crops, truths = [], []
    h, w = gray.shape
    for ln in picked:
        words, text = [], ""
        for word in ln["words"]:
            words.append(word)
            text = " ".join(x["text"] for x in words)
            if len(text) >= _SAMPLE_CHARS:
                break
        y0, y1 = ln["det_box"][1], ln["det_box"][3]
        pad = 0.15 * (y1 - y0)
        x0, x1 = words[0]["box"][0] - pad, words[-1]["box"][2] + pad
        box = (max(0, int(x0)), max(0, int(y0 - pad)), min(w, int(x1) + 1), min(h, int(y1 + pad) + 1))
        if box[2] - box[0] < 4 or box[3] - box[1] < 4:
            continue
        crops.append(gray[box[1] : box[3], box[0] : box[2]])
        truths.append(text)
    if not crops:
        return None
    reads = sample(crops)
    scores = [
        difflib.SequenceMatcher(None, _squash(a), _squash(b)).ratio() for a, b in zip(truths, reads, strict=False)
    ]
    return statistics.median(scores) if scores else None


def judge(layer: Layer, lines: Sequence[dict[str, Any]], gray: Any, sample: Sampler | None) -> Verdict:
    """The verdict on ``layer`` (see the module docstring); ``lines`` are its line dicts in pixels
    of ``gray`` (the page image upright, a numpy array), ``sample`` the recogniser (``None``:
    a layer that would need a sample read fails)."""
    chars = layer.text_chars
    if not chars:
        return Verdict(False, "no text")
    bad = sum(_bad(c.text, c.unmapped) for c in chars) / len(chars)
    if bad > MAX_BAD:
        return Verdict(False, f"{bad:.0%} of the characters have no valid Unicode")
    cover = layer.image_cover()
    invisible = sum(c.invisible for c in chars) / len(chars)
    letters = plausible_letters("".join(c.text for c in chars))
    implausible = letters is not None and letters < MIN_COMMON_LETTERS
    if len(chars) < MIN_CHARS:  # (too short to sample: a scan's OCR layer or odd letters are OCR'd alone)
        return Verdict(False, f"too little text ({len(chars)} characters)", image_page=invisible < 0.5 and not implausible)
    if cover >= 0.5 and len(chars) < IMAGE_PAGE_CHARS:
        why = f"mostly image ({cover:.0%} of the page) with little text"
        if invisible >= 0.5 or implausible:  # a scan's OCR layer: its lines replace none unchecked
            checked = _sampled(lines, gray, sample, implausible)
            if not checked.trusted:
                return Verdict(False, f"{why}, and {checked.why}")
        return Verdict(False, why, image_page=True)
    weight = sum(len(ln["text"]) for ln in lines) or 1
    share = sum(len(ln["text"]) for ln in lines if inked(gray, ln["box"])) / weight
    if share < MIN_INKED:
        return Verdict(False, f"only {share:.0%} of the text lies on ink")
    scan = invisible >= 0.5 or cover >= SCAN_COVER
    if not scan and not implausible:
        return Verdict(True, "visible text on ink")
    return _sampled(lines, gray, sample, implausible)


def _sampled(lines: Sequence[dict[str, Any]], gray: Any, sample: Sampler | None, implausible: bool) -> Verdict:
    """Check 4 (see the module docstring): a scan's OCR layer, or one of implausible letters,
    against a sample read of a few of its lines."""
    what = "implausible letters" if implausible else "a scan's OCR layer"
    agree = _agreement(lines, gray, sample) if sample is not None else None
    if agree is None:
        if implausible:
            return Verdict(False, f"{what} that cannot be checked by a sample read")
        return Verdict(True, f"{what}, on ink (no Latin lines to sample)")
    if agree < MIN_AGREEMENT:
        return Verdict(False, f"{what} that a sample read disagrees with ({agree:.0%})")
    return Verdict(True, f"{what} that a sample read agrees with ({agree:.0%})")
