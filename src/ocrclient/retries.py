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

The run's own rule, :class:`Reachability`: an attempt that found no server (:func:`unreachable`)
while no reply came from the endpoint since it started costs the page nothing (a restart, a
server still loading: the page waits for it), but the endpoint may stay silent only so long.
Once it has not answered for ``unreachable_s`` (a backend setting, 300 s: a pod's vLLM restarting
takes 30-90 s), the run stops with :class:`~ocrclient.errors.EndpointDownError`: what finished
is kept, the pages not done are failed with it, and a rerun sends only them.  An endpoint that died mid-run failed its
pages wave after wave, each page waiting out its whole deadline (1800 s) first.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential,
    wait_random,
)

from .document import Page, Usage
from .errors import BadOutputError, EndpointDownError, OcrError, TransientError

__all__ = ["PageTries", "Reachability", "page_retrying", "unreachable"]


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
        retry=retry_if_exception_type((TransientError, BadOutputError))
        & retry_if_not_exception_type(EndpointDownError),
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
    #: whether the current attempt's request went to the transport (one that did not, whatever
    #: ended it, is unsent: a stopped run, the deadline, a build error, a cancel before it left),
    #: and whether the transport said it was written (one cut by a cancel before that is unsent:
    #: the run stopped while it was still connecting)
    handed: bool = False
    written: bool = False
    #: attempts that found no server while none answered (:class:`Reachability`): not the
    #: dialect's attempts (its sampling ladder goes by the others)
    free: int = 0
    last_error: OcrError | None = None
    #: what the last request's dialect decided (its ``context``), handed to the next attempt
    context: dict[str, Any] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    #: when the page's first request went (monotonic): its latency runs from there, its wait
    #: for a free slot behind the run's other pages not counted
    first_sent_at: float | None = None
    #: the last unusable attempt that said something (truncated...), as a page, and its error: kept
    salvaged: tuple[Page, BadOutputError] | None = None

    @property
    def sent(self) -> int:
        return max(0, self.number - self.unsent)


def unreachable(exc: BaseException | None) -> bool:
    """Whether a failed attempt found no server behind the address: the connection was refused
    or failed (cause ``connection``), or a gateway had nothing listening behind it (502: a RunPod
    pod's proxy while vLLM is down or still loading).  A timeout, a reset mid-reply or a 503 are
    a server's answers about a page (one page may always time out), not its absence; a pool's
    member found down while another member is up (``elsewhere``) is not the endpoint's."""
    return isinstance(exc, TransientError) and (exc.cause == "connection" or exc.status == 502) and not exc.elsewhere


#: the longest silence of the endpoint that is not said (:class:`Reachability`)
WARN_AFTER_S = 5.0


class Reachability:
    """Whether the endpoint is there, over the whole run (see the module's text).

    ``after(exc, started)`` is told of each attempt as it ends (``exc`` ``None``: it succeeded;
    ``started`` on the :func:`time.monotonic` clock) and says whether it was free (it found no
    server, and nothing answered since it started: every page was waiting alike) and, when the
    endpoint has now been silent too long, the error that stops the run.  An outage is said once,
    as a Python warning (``ocr convert`` prints it as one line), when it has lasted
    :data:`WARN_AFTER_S` (or half of ``limit_s``, if less): a silence shorter than that is a
    retry like any other.
    """

    def __init__(self, limit_s: float, url: str | None = None) -> None:
        self.limit_s = limit_s
        #: the endpoint's address, named in the warning (a mistyped port shows there)
        self.url = url
        self.last_answer = -math.inf
        #: when the outage under way began (its first attempt that found no server)
        self.since: float | None = None
        #: whether the outage under way was said (once it lasted :attr:`warn_after_s`)
        self.said = False
        #: how long a silence lasts before it is said: one dropped connection, tried again a
        #: second later, is a retry, not an outage (every fault-injected run said one)
        self.warn_after_s = min(WARN_AFTER_S, limit_s / 2)

    def after(self, exc: BaseException | None, started: float) -> tuple[bool, EndpointDownError | None]:
        now = time.monotonic()
        if not unreachable(exc):
            if exc is None or _answer(exc):
                self.last_answer, self.since, self.said = now, None, False
            return False, None
        free = self.last_answer < started
        if not free:  # a server answered meanwhile (another page, a pool's other member): no outage
            return False, None
        if self.since is None:
            self.since = now
        silent = now - self.since
        if not self.said and silent >= self.warn_after_s:
            self.said = True
            # told from the run's event loop (a Client's own thread): no line of the caller's to
            # point at, so it names the package, not a line of this file (one line on stderr)
            warnings.warn_explicit(f"no server answers at the endpoint{self._at()} ({exc}): waiting up to {self.limit_s:g} s "
                                   "for it before the run stops", UserWarning, "ocrclient", 0, module=__name__)  # fmt: skip
        if silent < self.limit_s:
            return True, None
        return True, EndpointDownError(
            f"no server answered at the endpoint for {silent:.0f} s (the last attempt: {exc}); the pages not "
            "done were not sent again: a rerun sends them"
        )

    def _at(self) -> str:
        """`` <url>`` as a message shows a URL (no credentials, no query), or nothing."""
        if not self.url:
            return ""
        from .transports.http import shown_url

        return f" {shown_url(self.url)}"


def _answer(exc: BaseException) -> bool:
    """Whether a failed attempt's error came from a server (a status, a reply it could not use,
    a job's verdict), not from a request that never went out or a wait that ran out."""
    if getattr(exc, "unsent", False):
        return False
    return getattr(exc, "cause", None) not in ("timeout", "deadline", "closed", "build_error", "cancelled")
