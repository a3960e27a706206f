"""Retries by cause for one page: which errors are tried again, how long to wait, when to stop.

The scheduler owns every retry (transports and SDKs never retry on their own); this is its policy,
as a tenacity :class:`~tenacity.AsyncRetrying`:

* :class:`~ocrclient.errors.TransientError` – again after jittered exponential backoff, at least
  the server's ``Retry-After``;
* :class:`~ocrclient.errors.BadOutputError` – again at once (the model answered; the dialect
  changes the next request from the error it is handed);
* anything else – not retried;
* at most ``max_attempts`` attempts, and never past the page's ``deadline`` (waits are cut to it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from .errors import BadOutputError, OcrError, TransientError

__all__ = ["page_retrying"]


def page_retrying(
    *,
    max_attempts: int,
    deadline: float,
    backoff_initial_s: float,
    backoff_max_s: float,
    on_retry: Callable[[OcrError, int, float], None],
) -> AsyncRetrying:
    """The retry loop of one page (``deadline`` on the :func:`time.monotonic` clock).
    ``on_retry(error, attempt_number, delay_s)`` is called before each wait.

    Its closures hold numbers only: tenacity's state is a reference cycle, and whatever it holds
    lives until the cyclic garbage collector runs (a page's image must not be among it).
    """
    # exponential from backoff_initial_s, capped, plus up to one initial step of jitter
    backoff = wait_exponential(multiplier=backoff_initial_s, max=backoff_max_s) + wait_random(0, backoff_initial_s)

    def wait(state: RetryCallState) -> float:
        base = backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if isinstance(exc, BadOutputError) or getattr(exc, "elsewhere", False):
            base = 0.0  # the model answered (ask again with new sampling), or another server will
        if hint is not None:
            base = max(base, float(hint))
        return max(0.0, min(base, deadline - time.monotonic()))

    def stop(state: RetryCallState) -> bool:
        if stop_after_attempt(max_attempts)(state):
            return True
        return time.monotonic() >= deadline

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert isinstance(exc, OcrError)
        on_retry(exc, state.attempt_number, state.next_action.sleep if state.next_action else 0.0)

    return AsyncRetrying(
        retry=retry_if_exception_type((TransientError, BadOutputError)),
        stop=stop,
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )
