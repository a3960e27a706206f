"""What a run reports as it goes: one event per page started, retried, done or failed, and per
document done.  Pass a callable as ``on_event`` (:class:`~ocrclient.scheduler.Scheduler`,
:func:`~ocrclient.aconvert`) to receive them; the ``ocr`` progress bar is one such callable.

Example::

    >>> from ocrclient.events import PageDone
    >>> PageDone("a.pdf", 3, "ok", attempts=1, latency_s=2.5, cached=False).status
    'ok'
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from .document import Document, Page, PageError, PageStatus

__all__ = ["DocumentDone", "Event", "PageDone", "PageFailed", "PageRetried", "PageStarted"]  # (and EventDelivery, internal)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageStarted:
    """An attempt at a page is being sent."""

    source: str
    page: int
    attempt: int


@dataclass(frozen=True)
class PageRetried:
    """An attempt failed; the page is tried again after ``delay_s``."""

    source: str
    page: int
    attempt: int
    kind: str
    cause: str
    message: str
    delay_s: float


@dataclass(frozen=True)
class PageDone:
    """A page finished, ok or degraded (``cached``: read from the resume cache)."""

    source: str
    page: int
    status: PageStatus
    attempts: int
    latency_s: float
    cached: bool
    #: the finished page, for consumers that act on each page as it finishes (the output sink)
    result: Page | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PageFailed:
    """A page failed for good (its error is in the document too)."""

    source: str
    page: int
    error: PageError
    attempts: int


@dataclass(frozen=True)
class DocumentDone:
    """Every page of a document is done."""

    source: str
    document: Document


#: any of the events above
Event = PageStarted | PageRetried | PageDone | PageFailed | DocumentDone


class EventDelivery:
    """Hands a run's events to its ``on_event``: an exception the callback raises never loses a
    page, and the first is logged (a callback calling a blocking API raises ``UsageError``; it
    was swallowed without a word); the others are counted in :attr:`failures`.

    A callback that ends the program (``sys.exit()``, ``KeyboardInterrupt``) stops the run: it
    is kept in :attr:`stopped_by`, no later event is delivered, :attr:`wake` tells the run, and
    the run raises it (:meth:`check`) once it has cancelled its requests and kept what finished,
    so the caller meets the ``SystemExit`` (its code) or ``KeyboardInterrupt`` itself.  Raised
    where the event was, inside a page's task, it ended that task or the client's loop thread
    instead (the client then hung or was unusable)."""

    def __init__(self) -> None:
        self.failures = 0
        #: the ``SystemExit`` / ``KeyboardInterrupt`` a callback raised (the run stops on it)
        self.stopped_by: BaseException | None = None
        #: called once when a callback stops the run (the run's collector wakes to see it)
        self.wake: Callable[[], None] | None = None

    def __call__(self, callback: Callable[[Event], None], event: Event) -> None:
        if self.stopped_by is not None:
            return
        try:
            callback(event)
        except (SystemExit, KeyboardInterrupt) as exc:
            self.stopped_by = exc
            if self.wake is not None:
                self.wake()
        except Exception as exc:
            from .secrets import redact

            self.failures += 1
            if self.failures == 1:
                log.warning("the on_event callback raised %s: %s (the run goes on; its later errors are not shown)",
                            type(exc).__name__, redact(str(exc)))  # fmt: skip

    def check(self) -> None:
        """Raise what a callback stopped the run with, if one did."""
        if self.stopped_by is not None:
            raise self.stopped_by
