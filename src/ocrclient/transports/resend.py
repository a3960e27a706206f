"""A request that met a kept-alive connection its server had just closed is sent again, once,
when sending it twice is harmless.

A server may hang up after a reply without saying ``Connection: close`` (uvicorn after an
exception in the app has started its 500, as the runpod SDK's local test server does; a proxy
closing an idle connection).  A client that picks that connection for its next request before
the server's FIN has arrived writes the request into a closed socket and reads "Server
disconnected without sending a response": the server never saw it.  For ``GET`` / ``HEAD`` /
``OPTIONS`` (a health check, a RunPod ``/status`` poll) :class:`ResendingTransport` sends it
again on a fresh connection, as urllib3 does for idempotent methods.  A ``POST`` (a page's
job) is not sent again here: it fails as a :class:`~ocrclient.errors.TransientError` with cause
``reset``, an attempt the scheduler retries (a server that took a job and hung up is not an
endpoint with no server: counted as one, its tries were free, backed off up to a minute each,
past the page's ``max_attempts``, under a warning that no server answers)."""

from __future__ import annotations

import re

import httpx

__all__ = ["IDEMPOTENT", "ResendingTransport", "no_response"]

#: the methods sent again after a connection closed before any byte of a reply
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})

#: httpcore's words for a server that closed the connection before any byte of a reply
_NO_RESPONSE = re.compile(r"without sending a response", re.IGNORECASE)


def no_response(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection closed before any byte of its reply came.

    >>> no_response(httpx.RemoteProtocolError("Server disconnected without sending a response."))
    True
    >>> no_response(httpx.RemoteProtocolError("peer closed connection without sending complete message body"))
    False
    """
    return isinstance(exc, httpx.RemoteProtocolError) and bool(_NO_RESPONSE.search(str(exc)))


class ResendingTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, sending an idempotent request once more on a fresh connection
    when its connection turned out closed before any reply (see the module's text)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.RemoteProtocolError as exc:
            if request.method not in IDEMPOTENT or not no_response(exc):
                raise
        return await super().handle_async_request(request)  # (the closed one left the pool)
