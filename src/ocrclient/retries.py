"""Retries by cause for one page: which errors are tried again, how long to wait, when to stop.

The scheduler owns every retry (transports and SDKs never retry on their own); this is its policy,
as a tenacity :class:`~tenacity.AsyncRetrying`:

* :class:`~ocrclient.errors.TransientError` – again after jittered exponential backoff, at least
  the server's ``Retry-After``;
* :class:`~ocrclient.errors.BadOutputError` – again at once (the model answered; the dialect
  changes the next request from the error it is handed);
* anything else – not retried;
* at most ``max_attempts`` attempts, and never past the page's ``deadline`` (waits are cut to it);
  an attempt that could not connect to a server which has answered before (``free``: the pod or
  the container restarting, 30-90 s) does not count, only the deadline bounds those (a short
  outage failed every queued page in seconds, each burning its attempts against the closed port);
  a server's ``Retry-After`` that ends past the deadline stops the page at once, with that error
  (the server said no attempt is welcome before then: waiting to the deadline only to fail
  "deadline passed" would hold the slot and hide the cause).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from .document import Page, Usage
from .errors import BadOutputError, OcrError, TransientError

__all__ = ["PageTries", "page_retrying"]


def page_retrying(
    *,
    max_attempts: int,
    deadline: float,
    backoff_initial_s: float,
    backoff_max_s: float,
    on_retry: Callable[[OcrError, int, float], None],
    free: Callable[[BaseException | None], bool] = lambda exc: False,
) -> AsyncRetrying:
    """The retry loop of one page (``deadline`` on the :func:`time.monotonic` clock).
    ``on_retry(error, attempt_number, delay_s)`` is called before each wait.

    Its closures hold numbers only: tenacity's state is a reference cycle, and whatever it holds
    lives until the cyclic garbage collector runs (a page's image must not be among it).
    """
    # exponential from backoff_initial_s, capped, plus up to one initial step of jitter
    backoff = wait_exponential(multiplier=backoff_initial_s, max=backoff_max_s) + wait_random(0, backoff_initial_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        # the model answered (ask again with new sampling), or another server will: no backoff
        again = isinstance(exc, BadOutputError) or getattr(exc, "elsewhere", False)
        base = max(0.0 if again else backoff(state), _asked_wait(state))
        return max(0.0, min(base, deadline - time.monotonic()))

    counted = [0]  # the attempts that count (see ``free``)

    def stop(state: RetryCallState) -> bool:
        if not free(state.outcome.exception() if state.outcome else None):
            counted[0] += 1
        if counted[0] >= max_attempts:
            return True
        return time.monotonic() + _asked_wait(state) >= deadline

    def give_up(state: RetryCallState) -> None:
        """The page's last error, raised; when the server's ``Retry-After`` outlasted the
        deadline, it says so (else a 429 would read as a page the server never refused)."""
        exc = state.outcome.exception() if state.outcome else None
        assert exc is not None
        hint = _asked_wait(state)
        if isinstance(exc, TransientError) and hint and time.monotonic() + hint >= deadline:
            raise TransientError(
                f"{exc.message} (the server asked for {hint:g} s before another try: past the page's deadline)",
                cause=exc.cause, retry_after=exc.retry_after, status=exc.status,
            ) from exc  # fmt: skip
        raise exc

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert isinstance(exc, OcrError)
        on_retry(exc, state.attempt_number, state.next_action.sleep if state.next_action else 0.0)

    return AsyncRetrying(
        retry=retry_if_exception_type((TransientError, BadOutputError)),
        stop=stop,
        wait=wait,
        before_sleep=before_sleep,
        retry_error_callback=give_up,
    )


def _asked_wait(state: RetryCallState) -> float:
    """The server's ``Retry-After`` on the attempt's error, in seconds (0 without one, and when
    the next attempt goes to another server)."""
    exc = state.outcome.exception() if state.outcome else None
    hint = getattr(exc, "retry_after", None)
    if hint is None or isinstance(exc, BadOutputError) or getattr(exc, "elsewhere", False):
        return 0.0
    return max(0.0, float(hint))


@dataclass
class PageTries:
    """One page's attempts so far: what the next :class:`~ocrclient.dialects.base.Attempt` is
    made of (``number``: the retry's), the usage, and how many were requests sent (``sent``: an
    attempt cut before its request left, or one that found no server to take it, is not one)."""

    number: int = 0
    unsent: int = 0
    last_error: OcrError | None = None
    #: what the last request's dialect decided (its ``context``), handed to the next attempt
    context: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    #: the last unusable attempt that said something (truncated...), as a page, and its error: kept
    salvaged: tuple[Page, BadOutputError] | None = None

    @property
    def sent(self) -> int:
        return max(0, self.number - self.unsent)
