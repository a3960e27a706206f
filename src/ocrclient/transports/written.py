"""The moment a request is on the wire: the signal the scheduler orders its work by.

When a reply frees a slot, the page waiting for that slot should be sent before the reply is
parsed and its outputs are written: the parse, the page's outputs (a figure crop, in a thread)
and the next render (another thread) all want the interpreter, and the request of the waiting
page, queued behind them, left the GPU slot idle for 8-15 ms (at 8 slots x 1.5 s:
``benchmarks/bench_peers.py``'s refill gap).  So the scheduler waits, before it parses a reply,
until the requests in slots are written (:class:`~ocrclient.concurrency.WritesFirst`).

How it learns that: around each send it sets :data:`REQUEST_WRITTEN` (a context variable, so
it reaches the transport's code without changing the transport seam) to a callback; the HTTP
transports' clients (:func:`~ocrclient.transports.http.make_client`) attach :func:`trace` to
every request as httpcore's ``trace`` extension, which calls it once the request's body is
written.  A transport that never calls it is never waited for (the scheduler only waits once
a callback has come from a transport).

Nothing here imports httpx: the scheduler imports this module.

>>> seen = []
>>> token = REQUEST_WRITTEN.set(lambda: seen.append("written"))
>>> import asyncio
>>> asyncio.run(trace("http11.send_request_headers.complete", {}))
>>> asyncio.run(trace("http11.send_request_body.complete", {}))
>>> REQUEST_WRITTEN.reset(token); seen
['written']
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

__all__ = ["BODY_WRITTEN", "REQUEST_WRITTEN", "request_written", "trace"]

#: what to call once the current task's request is all written (set by the scheduler around a
#: send; ``None`` elsewhere, e.g. in a health check or a warm-up)
REQUEST_WRITTEN: ContextVar[Callable[[], None] | None] = ContextVar("ocrclient_request_written", default=None)

#: httpcore's trace events that end the writing of a request, over HTTP/1.1 and HTTP/2 (a
#: failed write ends it too: the server may still answer, or the attempt fails)
_WRITE_ENDS = ("send_request_body.complete", "send_request_body.failed")


#: what to call with the size of each request body written whole, by the current task (``ocr
#: bench``'s upload count: every body that went up -- a job that then FAILED, a 429 sent again
#: -- and none that did not; a poll writes no body)
BODY_WRITTEN: ContextVar[Callable[[int], None] | None] = ContextVar("ocrclient_body_written", default=None)


#: the size of the body the current task is writing
_WRITING: ContextVar[int] = ContextVar("ocrclient_body_writing", default=0)


def request_written() -> None:
    """Tell whoever sent the current task's request that it is all written (for transports
    that write requests by other means than :func:`~ocrclient.transports.http.make_client`'s
    clients)."""
    callback = REQUEST_WRITTEN.get()
    if callback is not None:
        callback()


async def trace(event: str, info: dict[str, Any]) -> None:
    """httpcore's ``trace`` extension: calls :func:`request_written` when the body is written
    (and :data:`BODY_WRITTEN` with its size, when it was written whole)."""
    if BODY_WRITTEN.get() is not None and event.endswith("send_request_body.started"):
        _WRITING.set(_content_length(info.get("request")))  # (the end's info has no request)
    if event.endswith(_WRITE_ENDS):
        request_written()
        count = BODY_WRITTEN.get()
        if count is not None and event.endswith("send_request_body.complete") and _WRITING.get():
            count(_WRITING.get())


def _content_length(request: Any) -> int:
    """The body size an httpcore request declares (0: none, or unknown)."""
    for name, value in getattr(request, "headers", None) or ():
        if bytes(name).lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
