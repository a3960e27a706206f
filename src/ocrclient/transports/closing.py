"""A transport closed while a run goes on (``aclose`` of a client or a backend with a call in
flight: a web app's shutdown, a notebook's cell stopped): its pages still to answer are cancelled
at once (:class:`~ocrclient.errors.CancelledRunError`, ``cause="closed"``), not retried with
back-off against the closed connection (four attempts, ~9 s, each page "failed" as a transient
"transport_bug").

* :func:`cancelled_if_closed` -- a request that failed because its client was closed under it
  (httpx aborts what it had open) is the cancellation it is;
* :class:`OpenRequests` -- for a request httpx does not abort when its client closes (a RunPod
  ``/runsync`` held by the server until its job ends): each open request runs under a timeout
  that closing ends at once;
* :func:`finish_if_dropped` -- a request that makes something on the server (a RunPod ``/run``
  makes a job) is left to finish when the page that sent it is dropped (a stream left early, a
  task cancelled): what it made is handed over (the job cancelled once its id comes back; it
  ran on the GPU to its end, billed, for nobody).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from ..errors import CancelledRunError, TransientError

__all__ = ["OpenRequests", "cancelled_if_closed", "finish_if_dropped"]

T = TypeVar("T")


@contextmanager
def cancelled_if_closed(client: Any) -> Iterator[None]:
    """A :class:`TransientError` raised while ``client`` is closed becomes the cancellation."""
    try:
        yield
    except TransientError as exc:
        if getattr(client, "is_closed", False):
            raise CancelledRunError("the transport was closed", cause="closed") from exc
        raise


class OpenRequests:
    """The requests a transport has open, each cut when the transport closes (:meth:`close`)."""

    def __init__(self) -> None:
        self.closed = False
        self._cuts: set[tuple[asyncio.AbstractEventLoop, asyncio.Timeout]] = set()

    @asynccontextmanager
    async def open(self, what: str, *, cut: bool = True) -> AsyncIterator[None]:
        """One request (``what`` names it): :class:`CancelledRunError` when the transport is
        closed before it or (``cut``) while it is open; one that makes something on the server
        (``cut=False``: a RunPod ``/run``) is left to answer, for what it made to be undone."""
        if self.closed:
            raise CancelledRunError(f"{what}: the transport was closed", cause="closed")
        if not cut:
            yield
            return
        try:
            async with asyncio.timeout(None) as timer:
                entry = (asyncio.get_running_loop(), timer)
                self._cuts.add(entry)
                try:
                    yield
                finally:
                    self._cuts.discard(entry)
        except TimeoutError:
            if self.closed and timer.expired():
                raise CancelledRunError(f"{what}: the transport was closed", cause="closed") from None
            raise

    def close(self) -> None:
        """Cut every request open on the running event loop (one on another loop ends with its
        client's connections)."""
        self.closed = True
        loop = asyncio.get_running_loop()
        for entry in list(self._cuts):
            if entry[0] is loop and not entry[1].expired():  # (one cut already: a second close)
                entry[1].reschedule(loop.time())


async def finish_if_dropped(call: Awaitable[T], dropped: Callable[[T], None], pending: set[asyncio.Future[Any]]) -> T:
    """``call``'s result; when the awaiting task is cancelled meanwhile, ``call`` goes on (in
    ``pending`` while it does: a closing transport waits for it) and its result, if it has one,
    goes to ``dropped``."""
    task = asyncio.ensure_future(call)
    pending.add(task)
    task.add_done_callback(pending.discard)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda t: None if t.cancelled() or t.exception() is not None else dropped(t.result()))
        raise
