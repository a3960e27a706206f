"""Which way up a page image stands: a scan fed sideways or upside down is read upright.

RapidOCR reads every line crop it finds, whichever way it runs: a line running down the image is
turned a quarter before it is read, and its classifier turns a crop it calls upside down.  So
the *words* of a turned page may come out right, but the page's *layout* (columns, paragraphs,
reading order, which the ``rapidocr`` dialect builds from the boxes) is built on the page as it
stands, in the wrong order; and the crops the classifier leaves upside down read as nonsense.
:func:`read_upright` therefore judges the first reading (of the image as sent):

* most of its characters on lines running down the image (:func:`~.ink.runs_down`, for lines of
  :data:`MIN_LINE_CHARS` characters or more: a glyph or two stand tall either way): the page
  stands a quarter turn off.  It is read again turned back either way;
* else, when the classifier turned more than :data:`TURNED_SHARE` of its characters' lines half
  a turn, the page may stand upside down: it is read again turned half a turn.

Readings are compared by their characters read upright (:func:`upright_chars`: each counted by
its line's score, on lines that run across the image and that the classifier did not turn).
Upside down, a page's lines either read as nonsense or are turned by the classifier, so either
way they count little; the classifier's turn, not the score, tells a page standing upright from
one standing upside down when both read well (short, clean lines read as well either way).  A
page turned back is kept when it reads more characters upright than the first reading
(:data:`CLEARLY_MORE` times as many when the first reading already stood across the image), and,
for a sideways page, at least :data:`SIDEWAYS_KEEP` of the characters the first reading read in
all (text that runs down the page, as Japanese may, reads worse turned).

A page read in tiles (:mod:`.tiling`) is judged by its tiles' own lines, before they are merged:
merging the tiles of a wide page groups words into rows, which hides lines running down the image.

An upright page (the usual case) is read once.  A page with little text (under
:data:`MIN_CHARS` characters) is taken as it stands.  The reading kept comes with its turn
(``rotation``: clockwise degrees from the upright page to the image sent, the convention of a
PDF page's ``/Rotate``) and the upright image; the dialect lays the lines out upright and turns
their boxes back into the image that was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .ink import runs_down

__all__ = [
    "MIN_CHARS", "TURNED_SHARE", "Read", "Upright", "confident_chars", "read_upright", "sideways", "to_upright",
    "turned_share", "upright_chars",
]  # fmt: skip

#: a reading with fewer characters than this decides no turn
MIN_CHARS = 20
#: a line with fewer characters than this runs neither across nor down (see :func:`_down`)
MIN_LINE_CHARS = 3
#: the share of characters on lines the classifier turned half a turn above which a page may
#: stand upside down (upright pages of the corpus: at most 0.06; upside-down ones: 0.29 to 0.92)
TURNED_SHARE = 0.15
#: how many times the characters read upright of a page turned half a turn must exceed the first
#: reading's for it to be kept
CLEARLY_MORE = 1.05
#: the share of the first reading's characters (:func:`confident_chars`) a sideways page turned
#: back must read upright (Latin text read upright: 0.93 and up of the sideways reading)
SIDEWAYS_KEEP = 0.8

Lines = list[dict[str, Any]]
#: ``read``: image -> (the lines to judge it by, the lines it gives, anything it wants back)
Read = Callable[[Any], tuple[Lines, Lines, Any]]
Upright = tuple[Lines, int, Any, Any]  # lines, rotation, the image they were read on, extra


def _chars(lines: Sequence[dict[str, Any]], pick: Callable[[dict[str, Any]], bool] | None = None) -> int:
    return sum(len(line["text"]) for line in lines if pick is None or pick(line))


def _share(lines: Sequence[dict[str, Any]], pick: Callable[[dict[str, Any]], bool]) -> float:
    return _chars(lines, pick) / max(1, _chars(lines))


def _down(line: dict[str, Any]) -> bool:
    """``line`` runs down the image: its box is tall and it holds :data:`MIN_LINE_CHARS` or more
    characters (one or two glyphs stand tall whichever way the page stands: a table of single
    digits is not a page turned a quarter)."""
    return len(str(line["text"]).strip()) >= MIN_LINE_CHARS and runs_down(line["box"])


def sideways(lines: Sequence[dict[str, Any]]) -> bool:
    """Most characters of ``lines`` are on lines running down the image."""
    return _share(lines, _down) > 0.5


def turned_share(lines: Sequence[dict[str, Any]]) -> float:
    """The share of characters on lines the classifier turned half a turn before reading."""
    return _share(lines, lambda line: bool(line.get("_turned")))


def confident_chars(lines: Sequence[dict[str, Any]]) -> float:
    """The characters read, each counted by its line's score."""
    return sum(len(line["text"]) * float(line.get("score") or 0.0) for line in lines)


def upright_chars(lines: Sequence[dict[str, Any]]) -> float:
    """The characters read as the page stands: :func:`confident_chars` of the lines that run
    across the image and that the classifier did not turn half a turn."""
    return confident_chars([ln for ln in lines if not ln.get("_turned") and not _down(ln)])


def read_upright(image: Any, read: Read) -> Upright:
    """Read ``image`` (a PIL image) with ``read``, upright: ``(lines, rotation, image read,
    extra)`` (see the module docstring)."""
    judged, lines, extra = read(image)
    best: Upright = (lines, 0, image, extra)
    if _chars(judged) < MIN_CHARS:
        return best
    turns: tuple[int, ...]
    if sideways(judged):
        turns, bar = (90, 270), max(upright_chars(judged), SIDEWAYS_KEEP * confident_chars(judged))
    elif turned_share(judged) > TURNED_SHARE:
        turns, bar = (180,), CLEARLY_MORE * upright_chars(judged)
    else:
        return best
    for turn in turns:
        # PIL's rotate turns counter-clockwise: the image sent is the upright page turned
        # clockwise by `turn`, so turning it counter-clockwise by `turn` stands it upright
        turned = image.rotate(turn, expand=True)
        got_judged, got, more = read(turned)
        read_across = upright_chars(got_judged)
        if not sideways(got_judged) and read_across > bar:
            best, bar = (got, turn, turned, more), read_across
    return best


def to_upright(lines: Sequence[dict[str, Any]], rotation: int, width: float, height: float) -> Lines:
    """``lines`` in pixels of the ``width`` x ``height`` image sent -> in pixels of that image
    turned upright (the page standing ``rotation`` degrees clockwise in it): their boxes, the
    detector's and their words' (copies; the dicts given are left as they are)."""
    from ..geometry import rotate_norm_box

    back = (360 - rotation) % 360
    up_w, up_h = (height, width) if rotation in (90, 270) else (width, height)

    def turn(box: Sequence[float]) -> list[float]:
        n = rotate_norm_box((box[0] / width, box[1] / height, box[2] / width, box[3] / height), back)
        return [n[0] * up_w, n[1] * up_h, n[2] * up_w, n[3] * up_h]

    out: Lines = []
    for line in lines:
        moved = {**line, "box": turn(line["box"])}
        if line.get("det_box") is not None:
            moved["det_box"] = turn(line["det_box"])
        moved["words"] = [{**w, "box": turn(w["box"])} for w in line.get("words") or ()]
        out.append(moved)
    return out
