"""Pages alike in flight together: one cache key (the same image sent with the same settings),
so one answer.  The first is read; the others wait for it (each was sent and paid for), then are
served from the cache its page went into -- or, when it failed, fail with its error without
being sent (each copy of a failing page went through every attempt again: 3 copies, 12 jobs).

Example::

    >>> import asyncio
    >>> async def demo():
    ...     twins = Twins()
    ...     first = twins.begin("k")                     # the first page of its kind is read
    ...     waiting = asyncio.ensure_future(twins.wait("k"))  # a page like it, meanwhile
    ...     await asyncio.sleep(0)
    ...     twins.end("k", first, "failed: HTTP 400")    # ... and failed
    ...     return await waiting
    >>> asyncio.run(demo())
    'failed: HTTP 400'
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

__all__ = ["Twins"]

T = TypeVar("T")


class Twins(Generic[T]):
    """Cache key -> the read of its first page, under way (one event loop's: a run's)."""

    def __init__(self) -> None:
        self._reading: dict[str, asyncio.Future[T | None]] = {}

    async def wait(self, key: str | None) -> T | None:
        """Once no page of ``key`` is being read: what the last one read left to share (its
        failure), ``None`` when it left nothing (it was cached) or none was read."""
        shared: T | None = None
        while key is not None and (reading := self._reading.get(key)) is not None:
            await asyncio.wait([reading])  # (a cancel of this page never cancels the other's read)
            shared = reading.result()
        return shared

    def begin(self, key: str | None) -> asyncio.Future[T | None] | None:
        """This page is the one of ``key`` being read (``None``: no key, nothing to share)."""
        if key is None:
            return None
        self._reading[key] = reading = asyncio.get_running_loop().create_future()
        return reading

    def end(self, key: str | None, reading: asyncio.Future[T | None] | None, shared: T | None) -> None:
        """The read of ``begin`` ended; the pages waiting take ``shared``."""
        if key is not None and reading is not None and self._reading.get(key) is reading:
            del self._reading[key]
        if reading is not None and not reading.done():
            reading.set_result(shared)
