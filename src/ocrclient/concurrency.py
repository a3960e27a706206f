"""Adaptive concurrency: how many pages of a backend are in flight at once.

One :class:`AdaptiveLimiter` is shared by every document of a run: the user's limit is its
ceiling, congestion (HTTP 429: too many requests) halves it, successes climb back by one slot
per window (AIMD).
:class:`FirstWindow` tells when the first window of requests is out; :class:`WritesFirst` has
a reply wait, before it is parsed, for the request that takes its slot to be written;
:class:`Collections` paces the run's full garbage collections by the pages it finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator

from .errors import TransientError
from .transports.written import REQUEST_WRITTEN

__all__ = ["AdaptiveLimiter", "Collections", "FirstWindow", "WritesFirst"]

#: a full garbage collection every this many finished pages: each page leaves reference cycles
#: (tenacity's retry state, httpx's response <-> stream, tracebacks) that CPython collects only
#: when the heap has grown by a quarter (the request body is released by the transports too)
GC_EVERY_PAGES = 64
#: ... but at most this share of the wall time goes to those collections
GC_MAX_SHARE = 0.02

#: how long a reply waits, before it is parsed, for the requests of freed slots to be written
#: (:meth:`WritesFirst.after_reply`): a page's upload over a slow link is not waited out
SEND_FIRST_MAX_S = 0.05

#: how long what waits for the first window of requests to be written waits at most
#: (:meth:`WritesFirst.drained`): the first pages' uploads over a slow link are not waited out
WINDOW_WRITTEN_MAX_S = 1.0


class AdaptiveLimiter:
    """An AIMD concurrency limit shared by every document of one backend.

    ``ceiling`` is the user's limit; congestion (a 429) halves the current limit (at most once
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
        #: tasks waiting for a slot
        self.waiting = 0
        self._admission: asyncio.Semaphore | None = None

    def admission(self, per_slot: int) -> asyncio.Semaphore:
        """The pages the runs sharing this limit may hold at once between them: ``per_slot``
        per slot of the ceiling, made at the first call (later calls get the same one).  The
        many calls at once of one :class:`~ocrclient.AsyncClient` share it, so they hold
        the pages one run would (each rendered and its request built), not that many each."""
        if self._admission is None:
            self._admission = asyncio.Semaphore(per_slot * self.ceiling)
        return self._admission

    async def acquire(self) -> None:
        async with self._cond:
            self.waiting += 1
            try:
                await self._cond.wait_for(lambda: self.in_use < int(self.limit))
            finally:
                self.waiting -= 1
            self.in_use += 1

    def handing_over(self) -> bool:
        """Whether a slot is free and a task waits for it: it takes the slot at its next turn
        on the event loop."""
        return self.waiting > 0 and self.in_use < int(self.limit)

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


class WritesFirst:
    """A freed slot's next request is written before the reply that freed it is parsed.

    When a reply frees a slot, the page waiting for it should go out at once.  Parsing the reply,
    writing the page's outputs (a figure crop, in a thread) and rendering the next page (another
    thread) all want the interpreter; queued behind them, the waiting page's request left the
    slot idle 8-15 ms a round (8 slots x 1.5 s; ``benchmarks/bench_peers.py``'s refill gap).

    The scheduler sends each request inside :meth:`writing`, which numbers it and counts it
    unwritten until the transport reports it written (through
    :data:`~ocrclient.transports.written.REQUEST_WRITTEN`: the HTTP transports' clients do) or
    its send ends.  Before it parses a reply it awaits :meth:`after_reply`, called as the reply
    frees its slot: when a task waits for that slot, it returns once the slot is taken and the
    requests sent since are written, or after :data:`SEND_FIRST_MAX_S`; when none waits, at
    once.  It waits for those requests only, not for every request being written (at 64 slots
    against an instant server some request always is).  Until a transport has reported a write,
    it returns at once: a transport that never reports (the local engine, a test's fake) is
    never waited for.
    """

    def __init__(self) -> None:
        #: requests sent so far (each :meth:`writing` numbers its request)
        self.sent = 0
        #: the numbers of the requests in a slot and not yet written
        self.unwritten: set[int] = set()
        #: whether the transport has reported a write
        self.reported = False
        self._changed = asyncio.Event()  # a request was sent or written

    @contextlib.contextmanager
    def writing(self, on_written: Callable[[], None] | None = None) -> Iterator[None]:
        """Around one send: the request counts as unwritten until it is reported (then
        ``on_written`` is called) or ends."""
        self.sent += 1
        number = self.sent

        def written(reported: bool = True) -> None:
            if number in self.unwritten:
                self.unwritten.discard(number)
                self.reported = self.reported or reported
                self._changed.set()
                if reported and on_written is not None:
                    on_written()

        self.unwritten.add(number)
        self._changed.set()
        token = REQUEST_WRITTEN.set(written)
        try:
            yield
        except TransientError as exc:
            # none of it written: no connection, or (a transport known to report its writes)
            # its time ran out before the request was whole -- connecting to a busy server, or
            # a try begun a moment before the page's deadline -- or its connection was found
            # closed as it was written (a kept-alive one the server had just closed: httpcore
            # reads the hang-up as a reset): no server had a request to serve
            if number in self.unwritten and (exc.cause == "connection" or (exc.cause in ("timeout", "reset") and self.reported)):
                exc.unsent = True  # type: ignore[attr-defined]
            raise
        finally:
            REQUEST_WRITTEN.reset(token)
            written(reported=False)

    async def drained(self, max_s: float = WINDOW_WRITTEN_MAX_S) -> None:
        """Return once every request sent so far is written (at most ``max_s``; at once while
        the transport has reported no write: one that never does is not waited for)."""
        if not self.reported:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max_s):
                while self.unwritten:
                    self._changed.clear()
                    await self._changed.wait()

    async def after_reply(self, limiter: AdaptiveLimiter) -> None:
        """Called as a reply frees its slot of ``limiter``: when a task waits for the slot,
        return once it is taken and the requests sent since are written (at most
        :data:`SEND_FIRST_MAX_S`)."""
        if not self.reported or not limiter.handing_over():
            return
        since = self.sent
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SEND_FIRST_MAX_S):
                while limiter.handing_over() or any(n > since for n in self.unwritten):
                    self._changed.clear()
                    await self._changed.wait()


class Collections:
    """A run's full garbage collections: one every :data:`GC_EVERY_PAGES` finished pages
    (:meth:`page_done`), never more than :data:`GC_MAX_SHARE` of the time (one of a big heap
    takes tens of ms), none once the run's last page is sent (:attr:`fed_all`): memory grows
    no more, and it would only hold up the last replies and the run's end."""

    def __init__(self) -> None:
        self.since, self.last_end, self.last_s = 0, 0.0, 0.0
        self.fed_all = False

    def page_done(self) -> None:
        self.since += 1
        now = time.perf_counter()
        if self.fed_all or self.since < GC_EVERY_PAGES or now - self.last_end < self.last_s / GC_MAX_SHARE:
            return
        gc.collect()
        self.last_end = time.perf_counter()
        self.last_s = self.last_end - now
        self.since = 0
