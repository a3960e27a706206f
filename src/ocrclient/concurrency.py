"""Adaptive concurrency: how many pages of a backend are in flight at once.

One :class:`AdaptiveLimiter` is shared by every document of a run: the user's limit is its
ceiling, congestion (HTTP 429/503) halves it, successes climb back by one slot per window (AIMD).
"""

from __future__ import annotations

import asyncio
import math
import time

__all__ = ["AdaptiveLimiter", "FirstWindow"]


class AdaptiveLimiter:
    """An AIMD concurrency limit shared by every document of one backend.

    ``ceiling`` is the user's limit; congestion (429/503) halves the current limit (at most once
    per ``cooldown_s``), and each window of ``limit`` successes adds one slot back.

    Example::

        lim = AdaptiveLimiter(8)
        async with lim:        # waits for a free slot
            ...
    """

    def __init__(self, ceiling: int, *, floor: int = 1, cooldown_s: float = 1.0) -> None:
        self.ceiling = max(1, ceiling)
        self.floor = max(1, min(floor, self.ceiling))
        self.limit: float = float(self.ceiling)
        self.in_use = 0
        self.cooldown_s = cooldown_s
        self._last_cut = -math.inf
        self._cond = asyncio.Condition()
        self.min_seen = self.ceiling

    async def acquire(self) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_use < int(self.limit))
            self.in_use += 1

    async def release(self) -> None:
        async with self._cond:
            self.in_use -= 1
            self._cond.notify_all()

    async def __aenter__(self) -> AdaptiveLimiter:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    def congestion(self) -> None:
        now = time.monotonic()
        if now - self._last_cut < self.cooldown_s:
            return
        self._last_cut = now
        self.limit = max(float(self.floor), math.floor(self.limit / 2))
        self.min_seen = min(self.min_seen, int(self.limit))

    async def success(self) -> None:
        if self.limit >= self.ceiling:
            return
        async with self._cond:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / max(self.limit, 1.0))
            self._cond.notify_all()


class FirstWindow:
    """Whether a run's first window of requests is out: :attr:`out` is set once every slot of
    the limiter is taken, or every page taken from the streams has been sent (or needed no
    request: a cache hit, a page that could not be rendered).  What only the replies need waits
    for it (the dialect's warm-up: :meth:`~ocrclient.registry.Backend.warm_up`), so it does not
    hold the interpreter while the first pages are encoded and sent."""

    def __init__(self) -> None:
        self.out = asyncio.Event()
        self.taken = 0
        self.started = 0
        self.fed_all = False

    def take(self) -> None:
        """A page was taken from a stream."""
        self.taken += 1

    def start(self, limiter: AdaptiveLimiter) -> None:
        """A taken page's first request took its slot in ``limiter`` (or it needs none)."""
        self.started += 1
        self._check(limiter)

    def all_taken(self, limiter: AdaptiveLimiter) -> None:
        """Every stream was taken to its end."""
        self.fed_all = True
        self._check(limiter)

    def _check(self, limiter: AdaptiveLimiter) -> None:
        if limiter.in_use >= int(limiter.limit) or (self.fed_all and self.started >= self.taken):
            self.out.set()
