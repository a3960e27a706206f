"""Server-sent events, read from the bytes of an HTTP reply (the framing of the HTML standard's
``text/event-stream``), as the OpenAI-compatible servers stream chat completions.

Lines end with CRLF, LF or CR only (:func:`aiter_lines`; not at the other characters
``str.splitlines`` breaks at, such as U+0085 or U+2028, which a model may well write), a CRLF
split across two reads included.

An event is the ``data:`` lines up to a blank line, joined with newlines, with the last
``event:`` name; comment lines (``:``) and other fields (``id:``, ``retry:``) are skipped.  One
space after the colon is dropped.  An event the server did not end with a blank line before
the stream ended is still handed over (a reader then judges whether its JSON is whole).

Example::

    >>> import asyncio
    >>> async def lines():
    ...     for line in [": ping", "data: {\\"a\\": 1}", "", "event: error", "data: x", "data: y", ""]:
    ...         yield line
    >>> async def collect():
    ...     return [(e.event, e.data) async for e in aiter_events(lines())]
    >>> asyncio.run(collect())
    [('message', '{"a": 1}'), ('error', 'x\\ny')]
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

__all__ = ["Event", "aiter_events", "aiter_lines"]

_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    """One server-sent event: its type (``"message"`` unless named) and its data."""

    event: str
    data: str


async def aiter_events(lines: AsyncIterable[str]) -> AsyncGenerator[Event, None]:
    """The events of a ``text/event-stream`` whose lines (without their line ends) are ``lines``."""
    data: list[str] = []
    name = ""
    async for line in lines:
        if not line:
            if data:
                yield Event(name or "message", "\n".join(data))
            data, name = [], ""
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    if data:
        yield Event(name or "message", "\n".join(data))


async def aiter_lines(chunks: AsyncIterable[bytes]) -> AsyncGenerator[str, None]:
    """The lines of an event stream read as ``chunks`` of bytes, without their line ends
    (UTF-8; a byte that does not decode becomes U+FFFD).  A line split over many reads is
    joined once, when its end arrives."""
    tail: list[bytes] = []
    cr = False  # the last read ended with CR: an LF starting the next one belongs to it
    async for chunk in chunks:
        if not chunk:
            continue
        if cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        cr = chunk.endswith(b"\r")
        pieces = _EOL.split(chunk)
        if len(pieces) == 1:
            tail.append(chunk)
            continue
        tail.append(pieces[0])
        yield b"".join(tail).decode("utf-8", "replace")
        for piece in pieces[1:-1]:
            yield piece.decode("utf-8", "replace")
        tail = [pieces[-1]] if pieces[-1] else []
    if tail:
        yield b"".join(tail).decode("utf-8", "replace")
