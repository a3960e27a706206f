"""Checks every reply goes through: empty replies, endless repetition, truncation.

* :func:`check_reply` – the reply text, or ``BadOutputError(cause="empty")``.
* :func:`detect_repetition` – the one repetition detector every dialect uses;
  :func:`trim_repetition` / :func:`bound_blocks` cut a runaway's markdown and blocks down.
* :func:`finish` – after parsing: repetition, ``finish_reason`` checks, raising
  :class:`~ocrclient.errors.BadOutputError` with what could be salvaged as ``partial``.

Example::

    >>> from ocrclient.dialects.reply_checks import detect_repetition
    >>> detect_repetition("Intro. " + "the same words " * 60) is not None
    True
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence

from ..errors import BadOutputError
from ..models import ModelReply, PageContent, RawBlock

__all__ = [
    "BLOCK_TEXT_SLACK",
    "NO_TEXT",
    "bound_blocks",
    "check_reply",
    "detect_repetition",
    "finish",
    "trim_repetition",
]


def detect_repetition(
    text: str,
    *,
    max_period: int = 400,
    min_span: int = 800,
    min_repeats: int = 6,
    window: int = 8000,
) -> str | None:
    """Describe an endless repetition at the end of ``text``, or ``None``.

    Looks for a unit of 1..``max_period`` characters that repeats back to back at the end of the
    text, at least ``min_repeats`` times and over at least ``min_span`` characters.  Units without
    a letter or digit (rules, table padding, whitespace) are ignored: models legitimately emit
    long runs of ``-`` or ``|``.  Whitespace differences between repeats are tolerated by
    comparing a whitespace-collapsed tail.
    """
    if not text:
        return None
    tail = re.sub(r"\s+", " ", text[-window:]).rstrip()
    n = len(tail)
    if n < min_span:
        return None
    for period in range(1, min(max_period, n // min_repeats) + 1):
        unit = tail[n - period :]
        if not any(ch.isalnum() for ch in unit):
            continue
        count = 1
        pos = n - period
        while pos - period >= 0 and tail[pos - period : pos] == unit:
            count += 1
            pos -= period
        needed = max(min_repeats, math.ceil(min_span / period))
        if count >= needed:
            shown = unit.strip()[:40]
            return f"{count} repeats of {shown!r}"
    return None


def _run_length(text: str, unit: str) -> int:
    """How many copies of ``unit`` ``text`` ends with, back to back.

    Copies are taken in blocks of 1, 2, 4, ... while they match, then in halving blocks: each
    test is one C-speed ``endswith`` on the text in place, so a 20 MB run costs two passes over
    it, not a Python loop over every copy.
    """
    p, end, count, k = len(unit), len(text), 0, 1
    while k * p <= end and text.endswith(unit * k, 0, end):
        end, count, k = end - k * p, count + k, k * 2
    while k > 1:
        k //= 2
        if k * p <= end and text.endswith(unit * k, 0, end):
            end, count = end - k * p, count + k
    return count


def _trim_tail(text: str, keep: int) -> str | None:
    """``text`` with a repeated tail cut to ``keep`` copies, or ``None`` if its tail does not
    repeat (the thresholds of :func:`detect_repetition`)."""
    n = len(text)
    for period in range(1, min(400, n // 6) + 1):
        unit = text[n - period :]
        if not any(ch.isalnum() for ch in unit):
            continue
        needed = max(6, math.ceil(800 / period))
        if needed * period > n or not text.endswith(unit * needed):
            continue
        count = _run_length(text, unit)
        return text[: n - (count - keep) * period]
    return None


def trim_repetition(text: str, keep: int = 2) -> str:
    r"""``text`` with a repeated tail cut down to ``keep`` copies (best effort).

    The repeat is looked for in the text as it is (its line breaks kept), then in a
    whitespace-collapsed copy (repeats that differ only in whitespace; the result is that
    copy).  Linear in the text at C speed: safe on a multi-megabyte runaway reply.

    >>> trim_repetition("Intro.\n" + "row 1 | x\n" * 500)
    'Intro.\nrow 1 | x\nrow 1 | x'
    """
    trimmed = _trim_tail(text.rstrip(), keep)
    if trimmed is None:
        trimmed = _trim_tail(" ".join(text.split()), keep)  # split/join: C speed, unlike re.sub
    return text if trimmed is None else trimmed


#: characters of block text allowed beyond the trimmed markdown's length (blocks the markdown
#: leaves out, such as Chandra's page headers and footers)
BLOCK_TEXT_SLACK = 2000


def _block_size(block: RawBlock) -> int:
    return max(1, len(block.text)) + sum(_block_size(c) for c in block.children)


def bound_blocks(blocks: Sequence[RawBlock], budget: int) -> list[RawBlock]:
    """The leading ``blocks`` whose text (children included, every block at least 1) fits in
    ``budget`` characters; the block that does not fit is kept with its text trimmed of
    repetition and cut to what is left, and nothing after it.  So the blocks of a runaway
    reply are bounded the way its markdown is.

    >>> [b.text for b in bound_blocks([RawBlock("text", "a" * 5), RawBlock("text", "b" * 50)], 8)]
    ['aaaaa', 'bbb']
    """
    out: list[RawBlock] = []
    for block in blocks:
        if budget <= 0:
            break
        size = _block_size(block)
        if size <= budget:
            out.append(block)
            budget -= size
            continue
        text = trim_repetition(block.text)[:budget] if block.text else ""
        budget -= max(1, len(text))
        out.append(dataclasses.replace(block, text=text, children=bound_blocks(block.children, budget)))
        break
    return out


#: the warning of a page in which the model read no text (as the local engine's of a blank page)
NO_TEXT = "no text found"


def check_reply(reply: ModelReply) -> str:
    """The reply text, or :class:`BadOutputError` (cause ``empty``) when there is none."""
    text = reply.text if isinstance(reply.text, str) else ""
    if not text.strip():
        if reply.finish_reason == "length":
            raise BadOutputError("the model produced no text before max_tokens", cause="length")
        raise BadOutputError("the model returned an empty reply", cause="empty")
    return text


def finish(content: PageContent, reply: ModelReply, *, strict_stop: bool = False) -> PageContent:
    """Final checks shared by every dialect, after a reply has been parsed into ``content``.

    * endless repetition (in the reply or in the markdown read from it) ->
      ``BadOutputError(cause="repetition")`` with the content as ``partial``: its markdown's
      repeated tail trimmed, its blocks bounded to the same text (:func:`bound_blocks`);
    * ``finish_reason == "length"`` -> ``BadOutputError(cause="length")`` (truncated page);
    * with ``strict_stop`` any finish reason other than ``stop`` (or unknown) is bad output.
    """
    if not content.markdown.strip() and not any((b.text or "").strip() for b in content.blocks) and not content.warnings:
        # a reply that says nothing once its wrapping is read (an empty fence, front matter with
        # no text, an empty list or block): the page is marked so, never ok and silently empty
        content.warnings.append(NO_TEXT)
    # the raw reply, or what was read from it (a runaway whose markup varies, e.g. its boxes,
    # while its text repeats)
    rep = detect_repetition(reply.text or "") or detect_repetition(content.markdown)
    if rep is not None:
        content.markdown = trim_repetition(content.markdown)
        if content.furniture_markdown is not None:
            content.furniture_markdown = trim_repetition(content.furniture_markdown)
        content.blocks = bound_blocks(content.blocks, len(content.markdown) + BLOCK_TEXT_SLACK)
        content.warnings.append(f"repetition: {rep}")
        raise BadOutputError(
            f"the model repeated itself endlessly ({rep})", cause="repetition", partial=content
        )
    reason = reply.finish_reason
    if reason == "length":
        content.warnings.append("truncated: the reply hit max_tokens")
        raise BadOutputError(
            "the reply was cut off at max_tokens (finish_reason=length)", cause="length", partial=content
        )
    if strict_stop and reason not in (None, "stop"):
        content.warnings.append(f"finish_reason={reason}")
        raise BadOutputError(
            f"the reply did not finish normally (finish_reason={reason})",
            cause=f"finish_{reason}",
            partial=content,
        )
    return content
