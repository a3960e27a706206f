"""RunPod's per-endpoint rate limits, kept by the client: pacing, and a 429 read as "slow down".

RunPod limits every serverless endpoint per operation (its serverless docs, "Send API requests",
section "Rate limits and quotas"; the same figures in every version checked):

=============================  ======================  ==========
operation                      requests                concurrent
=============================  ======================  ==========
``/run``                       1000 per 10 s           200
``/runsync``                   2000 per 10 s           400
``/status``, ``/stream``       2000 per 10 s (shared)  400
``/cancel``                    100 per 10 s            20
=============================  ======================  ==========

Over a limit the request is answered ``429 Too Many Requests``; ``/run`` and ``/runsync`` are
also answered 429 while the endpoint's queue holds more than 50 jobs *and* more than
``max workers x 500``.  A 429 creates no job.  RunPod documents neither a ``Retry-After``
header nor the body of a 429; it asks clients to back off exponentially.

:class:`EndpointGate` (one per endpoint in a process: :meth:`EndpointGate.shared` hands every
transport of the same endpoint the same gate, so all their sends share its pace and its
backoff) keeps those rules on the client side:

* **pacing** -- before a request, :meth:`EndpointGate.acquire` takes a token of the operation's
  family from a token bucket filled at ``share`` of the documented rate (default one half: the
  rest is left to other clients of the same endpoint).  At 64 jobs polled every 0.5 s (128
  status requests/s wanted) the status bucket holds the endpoint at 100/s, under the 200/s limit;
* **429** -- :meth:`EndpointGate.throttled` blocks every request to the endpoint until
  ``max(Retry-After, backoff)`` has passed, the backoff starting at ``backoff_initial_s`` and
  doubling with each 429 in a row (capped at ``backoff_max_s``), reset by the next success;
  :meth:`EndpointGate.resend_on_429` (a tenacity loop) sends the refused request again after
  that wait, as long as the caller's deadline allows; past it the 429 is raised as the
  :class:`~ocrclient.errors.TransientError` it is.  Safe for ``/run`` and ``/runsync`` because a
  refused submission created no job, and for ``/status`` because it only reads.

The concurrent limits (200 / 400) are not enforced here: one request per page in flight is held
open at a time, and the scheduler's concurrency (the profiles ship 8-32) is far below them.

Example::

    gate = EndpointGate()
    reply = await gate.resend_on_429("status", lambda: client.get(url), deadline=time.monotonic() + 30)
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ..errors import TransientError

log = logging.getLogger("ocrclient.transports.runpod")

__all__ = ["DOCUMENTED_LIMITS", "EndpointGate", "RateLimit", "family", "is_throttle"]

T = TypeVar("T")


@dataclass(frozen=True)
class RateLimit:
    """One documented per-endpoint limit: ``requests`` per ``window_s`` seconds, ``concurrent``."""

    requests: int
    window_s: float
    concurrent: int | None

    @property
    def per_second(self) -> float:
        return self.requests / self.window_s


#: RunPod's documented per-endpoint limits, by operation family (see the module docstring)
DOCUMENTED_LIMITS: dict[str, RateLimit] = {
    "run": RateLimit(1000, 10.0, 200),
    "runsync": RateLimit(2000, 10.0, 400),
    "status": RateLimit(2000, 10.0, 400),  # /status, /status-sync and /stream share it
    "cancel": RateLimit(100, 10.0, 20),
}


def family(op: str) -> str:
    """The limit family of an operation (``stream`` and ``status-sync`` count as ``status``)."""
    if op in ("stream", "status-sync"):
        return "status"
    return op if op in DOCUMENTED_LIMITS else "status"


def is_throttle(exc: BaseException) -> bool:
    """A 429 answer (the request was refused, nothing was created)."""
    return isinstance(exc, TransientError) and exc.status == 429


class _Bucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def wait_s(self) -> float:
        """Take a token if there is one (0.0), else how long until there is."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class EndpointGate:
    """Pacing and 429 backoff for one endpoint (see the module docstring).

    ``share`` is the fraction of each documented rate this client allows itself (0 < share <= 1).
    """

    def __init__(
        self,
        *,
        share: float = 0.5,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        limits: dict[str, RateLimit] | None = None,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.limits = dict(limits or DOCUMENTED_LIMITS)
        self._buckets = {
            name: _Bucket(lim.per_second * share, max(1.0, lim.per_second * share / 5))
            for name, lim in self.limits.items()
        }
        self.blocked_until = 0.0
        self._strikes = 0
        #: 429s seen, by operation family (what ``ocr bench`` and the tests read)
        self.throttles: dict[str, int] = {}

    @classmethod
    def shared(cls, endpoint: str, *, share: float = 0.5) -> EndpointGate:
        """The gate of ``endpoint`` (its URL) in this process, made on first use; it lives as long
        as a transport holds it (it holds no event-loop object, so any loop may use it)."""
        gate = _GATES.get(endpoint)
        if gate is None or gate.share != share:
            gate = cls(share=share)
            _GATES[endpoint] = gate
        return gate

    async def acquire(self, op: str) -> None:
        """Wait until a request of ``op`` may go out (after any 429 backoff, within the pace)."""
        bucket = self._buckets[family(op)]
        while True:
            delay = self.blocked_until - time.monotonic()
            if delay <= 0:
                delay = bucket.wait_s()
                if delay <= 0:
                    return
            await asyncio.sleep(delay)

    def throttled(self, op: str, retry_after: float | None) -> float:
        """Record a 429 for ``op``: block the endpoint; returns the seconds blocked."""
        self.throttles[family(op)] = self.throttles.get(family(op), 0) + 1
        if time.monotonic() >= self.blocked_until:  # the refusals of one burst (requests sent
            self._strikes += 1  # before the block) are one strike: each doubled it, to 30 s
        backoff = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (self._strikes - 1))
        wait = max(backoff, retry_after or 0.0)
        self.blocked_until = max(self.blocked_until, time.monotonic() + wait)
        return wait

    def succeeded(self) -> None:
        """A request went through: the next 429 starts the backoff again from the bottom."""
        self._strikes = 0

    async def resend_on_429(
        self, op: str, call: Callable[[], Awaitable[T]], *, deadline: float, give_up: Callable[[], bool] | None = None
    ) -> T:
        """``call()`` paced by :meth:`acquire`; on a 429 wait as :meth:`throttled` says and send
        again, until the wait would end past ``deadline`` (then the 429 is raised).  While
        ``give_up()`` is true (a pool with another member to send to) a 429 is raised at once,
        and so is the endpoint's backoff from an earlier 429 instead of being waited out."""
        if give_up is not None and self.blocked_until > time.monotonic() and give_up():
            wait = self.blocked_until - time.monotonic()
            raise TransientError(f"{op}: the endpoint answered 429 (too many requests): held back {wait:.1f} s more",
                                 cause="http_429", status=429, retry_after=wait)  # fmt: skip

        def after(state: RetryCallState) -> None:  # runs before ``stop``: the block it sets counts
            exc = state.outcome.exception() if state.outcome else None
            wait = self.throttled(op, getattr(exc, "retry_after", None))
            log.info("RunPod %s: 429 (too many requests); the endpoint's requests wait %.1f s", op, wait)
            if isinstance(exc, TransientError):  # raised past ``stop``, it says how long the block is
                exc.retry_after = wait
            if exc is not None:  # tenacity's state is a cycle: its traceback would keep the body
                exc.__traceback__ = None

        def stop(state: RetryCallState) -> bool:
            return self.blocked_until >= deadline or (give_up is not None and give_up())

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_throttle), after=after, stop=stop, reraise=True, sleep=self._sleep
        ):
            with attempt:
                await self.acquire(op)
                result = await call()
                self.succeeded()
                return result
        raise AssertionError("unreachable")  # pragma: no cover - tenacity returns or raises

    async def _sleep(self, seconds: float) -> None:
        # the blocked time was set by ``wait``; ``acquire`` of the next try waits it out with
        # every other request to the endpoint, so nothing more to sleep here
        return None


_GATES: weakref.WeakValueDictionary[str, EndpointGate] = weakref.WeakValueDictionary()
