"""What every HTTP transport shares: one client recipe, one error map, readable error messages.

* :func:`map_errors` is the one place where what the HTTP libraries raise becomes the
  :mod:`ocrclient.errors` taxonomy (in the manner of httpx's own ``map_exceptions``).  Wrap the
  request and the reading of its reply in it::

      with map_errors("POST /extract_text", timeout_s=300, hint="check the API key"):
          async with asyncio.timeout(300):
              response = await read_capped(client, request, limit, what="POST /extract_text")
          raise_for_status(response)

  What is raised inside the block becomes:

  - an :class:`~ocrclient.errors.OcrError` (a reply over its cap, a transport's own): itself;
  - ``httpx.HTTPStatusError`` (from :func:`raise_for_status`): the transport's own ``rule``
    for that status if it has one, else :func:`status_error` --
    401/403 ``AuthError`` (ending with ``hint``), 408/425/429/5xx ``TransientError`` with
    ``Retry-After``, 524 the pod proxy's idle cut, a 4xx about the endpoint ``EndpointError``,
    any other 4xx ``PermanentError``;
  - ``TimeoutError`` / ``httpx.TimeoutException``: ``TransientError`` cause ``timeout``;
    ``httpx.RemoteProtocolError`` (dropped mid-reply or before any reply): ``reset``; ``httpx.TooManyRedirects``:
    ``redirects``; ``httpx.DecodingError``: ``bad_reply``; any other ``httpx.HTTPError``:
    ``connection``;
  - ``RecursionError`` (JSON deeper than a decoder goes): ``BadOutputError`` ``reply_too_deep``.

* :func:`make_client` builds a transport's ``httpx.AsyncClient`` (one shared TLS context whose
  CA certificates load at the first TLS connection, sent request bodies released as soon as the
  reply arrives, one pool of connections per event loop, which :func:`release_loop` closes
  before its loop ends); :func:`preload` (in this thread) and :func:`warm_up_imports` (in a worker
  thread) load beforehand what its first connection imports;
  :func:`json_object` decodes a reply that must be a JSON object; :func:`error_message` reads
  any error body as one line.

The reply caps (what a server may send back at most) are in :mod:`.limits`.

Example::

    >>> error_message('{"error": {"message": "bad image", "type": "BadRequestError", "code": 400}}')
    'bad image (BadRequestError)'
    >>> type(status_error(404, {"detail": "Not Found"})).__name__
    'EndpointError'
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import ssl
import sys
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, cast

import httpx

from ..errors import (
    AuthError,
    BadOutputError,
    CancelledRunError,
    ConfigError,
    EndpointError,
    OcrError,
    TransientError,
    classify_status,
    parse_retry_after,
)
from ..loops import PerLoop, at_loop_shutdown, running_loop
from ..secrets import clip
from . import written
from .base import release_request_body_hook
from .limits import ERROR_BODY_BYTES, aloads, error_body
from .resend import ResendingTransport, no_response

__all__ = [
    "HttpImports",
    "StatusRule",
    "error_message",
    "json_object",
    "make_client",
    "map_errors",
    "preload",
    "raise_for_status",
    "shared_ssl_context",
    "status_error",
    "transport_error",
    "warm_up_imports",
]

#: a transport's own reading of an error status: ``(status, message) -> error`` or ``None`` for
#: the common rules (e.g. RunPod: a 404 on ``/run`` names the endpoint id to check)
StatusRule = Callable[[int, str], OcrError | None]

_TITLE = re.compile(r"(?is)<title>(.*?)</title>")
_TAGS = re.compile(r"(?s)<[^>]+>")
_MAX_MESSAGE = 300


# ---------------------------------------------------------------------------------------------
# error messages
# ---------------------------------------------------------------------------------------------


def _short(text: str) -> str:
    return clip(text, _MAX_MESSAGE)


def _with_type(message: Any, err_type: Any) -> str:
    text = str(message) if message not in (None, "") else ""
    if err_type and str(err_type) not in text:
        text = f"{text} ({err_type})" if text else str(err_type)
    return _short(text)


def _detail(detail: list[Any]) -> str:
    """FastAPI's validation errors: ``[{"loc": ["body", "image"], "msg": "Field required"}]``."""
    parts = []
    for item in detail[:3]:
        if isinstance(item, dict):
            loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
            parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        else:
            parts.append(str(item))
    return _short("; ".join(parts))


def error_message(body: Any) -> str:
    """A readable one-line message from an error body, whatever its shape.

    Understands vLLM's ``{"error": {"message", "type", "code"}}`` and older flat
    ``{"object": "error", "message", ...}``, ``{"error": "Unauthorized"}``, FastAPI's
    ``{"detail": "..."}`` / ``{"detail": [{"loc", "msg"}]}``, HTML pages (their ``<title>``) and
    plain text.  ``body`` may be bytes, text or already-parsed JSON.

    >>> error_message({"object": "error", "message": "no such model", "type": "NotFoundError"})
    'no such model (NotFoundError)'
    >>> error_message("<html><title>502 Bad Gateway</title><body>nginx</body></html>")
    '502 Bad Gateway'
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        stripped = body.strip()
        if not stripped:
            return ""
        try:
            body = json.loads(stripped)
        except ValueError:
            if "<" in stripped and ">" in stripped:
                match = _TITLE.search(stripped)
                text = match.group(1) if match else _TAGS.sub(" ", stripped)
                import html  # (only an HTML error page needs it: html.entities is a large table)

                return _short(html.unescape(text))
            return _short(stripped)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return _with_type(err.get("message"), err.get("type"))
        if isinstance(err, str) and err:
            return _short(err)
        if "message" in body:
            return _with_type(body.get("message"), body.get("type"))
        detail = body.get("detail")
        if isinstance(detail, str):
            return _short(detail)
        if isinstance(detail, list) and detail:
            return _detail(detail)
    return _short(json.dumps(body, default=str)) if body is not None else ""


def status_error(
    status: int, body: Any, headers: httpx.Headers | dict[str, str] | None = None, *,
    hint: str | None = None, where: str | None = None,
) -> OcrError:
    """Classify an HTTP error reply: 524 is the pod proxy's idle cut,
    401/403 are :class:`AuthError` (with ``hint``), ``Retry-After`` is surfaced; ``where``
    (e.g. ``"RunPod submit"``) goes before the server's message."""
    message = error_message(body)
    if where:
        message = f"{where}: {message}" if message else where
    retry_after = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    if status == 524:
        return TransientError(
            "HTTP 524: the proxy closed the request after its idle limit without a byte from the "
            "server (stream the reply or use a shorter page)",
            cause="proxy_idle_524", retry_after=retry_after, status=524,
        )
    err = classify_status(status, message, retry_after=retry_after)
    if isinstance(err, AuthError) and hint:
        return AuthError(f"{err.message}; {hint}", cause=err.cause, status=status)
    return err


def transport_error(
    exc: BaseException, *, what: str = "request", timeout_s: float | None = None
) -> TransientError:
    """A timeout or a failed connection as a :class:`TransientError` with a short cause.

    >>> transport_error(httpx.ConnectError("refused"), what="GET /health").cause
    'connection'
    """
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) and timeout_s:  # the attempt's whole budget ran out
        return TransientError(f"{what}: no reply within {timeout_s:.1f} s (the attempt's time: timeout, or what was "
                              "left of page_deadline_s)", cause="timeout")  # fmt: skip
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return TransientError(f"{what}: timed out ({name})", cause="timeout")
    if isinstance(exc, httpx.RemoteProtocolError):  # (a server that took it and hung up: an attempt, not no server)
        return TransientError(f"{what}: connection dropped {'before any ' if no_response(exc) else 'mid-'}reply ({exc})", cause="reset")
    if isinstance(exc, httpx.TooManyRedirects):
        return TransientError(f"{what}: too many redirects", cause="redirects")
    if isinstance(exc, httpx.DecodingError):  # a body that does not decode as its encoding says
        return TransientError(f"{what}: unreadable reply ({name})", cause="bad_reply")
    detail = f"{name}: {exc}" if str(exc) else name
    return TransientError(f"{what}: connection failed ({detail})", cause="connection")


# ---------------------------------------------------------------------------------------------
# the error map
# ---------------------------------------------------------------------------------------------


def shown_url(url: httpx.URL | str) -> str:
    """A URL as a message shows it: scheme, host, port and path (no credentials, no query).

    >>> shown_url("https://user:pw@api.example.com:8443/v2/x/run?key=abc")
    'https://api.example.com:8443/v2/x/run'
    >>> shown_url("http://[::1]:8000/v1")
    'http://[::1]:8000/v1'
    """
    u = httpx.URL(str(url))
    return f"{u.scheme}://{u.netloc.decode('ascii', 'replace')}{u.path}"  # (netloc: host[:port], [v6])


def raise_for_status(response: httpx.Response) -> None:
    """Raise ``httpx.HTTPStatusError`` for a reply of 400 or more, for :func:`map_errors` to
    classify; a redirect the client did not follow (RunPod's API never redirects: its base URL
    is wrong, say ``http://`` for ``https://``) is an :class:`EndpointError` naming where it
    points, which stops the run: every page would meet it (a page each failed with "a non-JSON
    body").  A 1xx reply is left to the caller."""
    status = response.status_code
    if 300 <= status < 400 and status != 304:
        location = response.headers.get("location")
        try:
            target = shown_url(response.url.join(location)) if location else "nowhere (no Location header)"
        except httpx.InvalidURL:
            target = "an address that is not a URL"
        raise EndpointError(f"HTTP {status}: the server redirects {shown_url(response.url)} to {target}; "
                            "set the base URL to where it points", cause="redirect", status=status)  # fmt: skip
    if status >= 400:
        raise httpx.HTTPStatusError(f"HTTP {status}", request=response.request, response=response)


def _response_error(
    response: httpx.Response, *, hint: str | None, where: str | None, rule: StatusRule | None
) -> OcrError:
    try:
        body: Any = error_body(response.content)  # read under the cap: 64 kB at most
    except httpx.ResponseNotRead:
        body = ""
    status = response.status_code
    if rule is not None:
        own = rule(status, error_message(body))
        if own is not None:
            return own
    moved = _moved_to(response)
    if moved and status in (401, 403):  # the key stayed behind: it is not sent to another host
        hint = (f"the server redirected to {moved}, where the API key is not sent (another host): "
                "set the base URL to it")  # fmt: skip
    err = status_error(status, body, response.headers, hint=hint, where=where)
    if moved and not isinstance(err, AuthError):
        err.message = f"{err.message} (after a redirect to {moved})"
        err.args = (err.message,)
    return err


def _moved_to(response: httpx.Response) -> str | None:
    """Where a followed redirect took the request when it left its host (host and port as
    written: where the transports stop sending the key, an ``https`` upgrade keeping it), as
    :func:`shown_url` shows it; ``None`` when it stayed."""
    if not response.history:
        return None
    first, last = response.history[0].request.url, response.url
    return None if first.netloc == last.netloc else shown_url(last)


@contextmanager
def map_errors(
    what: str,
    *,
    timeout_s: float | None = None,
    hint: str | None = None,
    label_status: bool = False,
    rule: StatusRule | None = None,
) -> Iterator[None]:
    """Turn what httpx and :func:`raise_for_status` raise inside the block into
    :mod:`ocrclient.errors` classes (the table in the module docstring).

    ``what`` names the request in messages (``"POST /extract_text"``); ``timeout_s`` is the
    attempt's budget, named when it runs out; ``hint`` ends an authentication error's message
    (which key to check); ``label_status`` puts ``what`` in status messages too; ``rule`` reads
    the statuses the transport knows better (see :data:`StatusRule`).
    """
    try:
        yield
    except OcrError:
        raise
    except httpx.HTTPStatusError as exc:  # from raise_for_status: the status says it all
        where = what if label_status else None
        raise _response_error(exc.response, hint=hint, where=where, rule=rule) from None
    except (httpx.HTTPError, TimeoutError) as exc:
        raise transport_error(exc, what=what, timeout_s=timeout_s) from exc
    except RecursionError:  # a decoder met JSON nested deeper than it goes
        raise BadOutputError(
            f"{what}: the reply is nested too deeply to read (JSON deeper than the decoder allows)",
            cause="reply_too_deep",
        ) from None


# ---------------------------------------------------------------------------------------------
# clients and replies
# ---------------------------------------------------------------------------------------------


class _DeferredTrustContext(ssl.SSLContext):
    """httpx's default verified client context whose CA certificates are loaded at the first TLS
    connection instead of when it is made: a run against an ``http://`` URL never loads them
    (~20 ms of the first request's way).  The certificates are the ones
    :func:`httpx.create_ssl_context` picks: ``$SSL_CERT_FILE``, else ``$SSL_CERT_DIR``, else
    certifi's bundle; the settings are :func:`ssl.create_default_context`'s (certificate and host
    name required).  Every TLS connection (``wrap_bio`` for the async client, ``wrap_socket``)
    loads them first, once."""

    _lock = threading.Lock()
    _loaded = False

    def _load_trust(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
            if not cafile and not capath:
                import certifi

                cafile = certifi.where()
            try:
                self.load_verify_locations(cafile=cafile or None, capath=None if cafile else capath)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load the CA certificates from {cafile or capath}: {exc}") from None
            self._loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> Any:
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> Any:
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)


@lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    """One verified TLS context per process (building one costs ~40 ms per httpx client), its
    CA certificates loaded at its first TLS connection (see :class:`_DeferredTrustContext`)."""
    ctx = _DeferredTrustContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    ctx.verify_mode, ctx.check_hostname = ssl.CERT_REQUIRED, True
    if sys.version_info >= (3, 13):  # what ssl.create_default_context adds from 3.13 on
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:  # as ssl.create_default_context does
        ctx.keylog_filename = keylog
    return ctx


#: what an httpx async client imports when it is built (httpcore, ~40 ms) and at its first
#: connection (anyio's asyncio backend and TLS stream, ~30 ms), for :func:`warm_up_imports`
FIRST_CONNECTION_IMPORTS = ("httpcore", "sniffio", "anyio._backends._asyncio", "anyio.streams.tls", "anyio.to_thread")


def preload() -> None:
    """Import now, in this thread, what an httpx async client imports when it is built and at
    its first connection, so that a transport's first request does not (a transport's
    ``preload``: see :meth:`~ocrclient.registry.Backend.preload`).  A module that cannot be
    imported is left for the first request to meet."""
    for name in FIRST_CONNECTION_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def load_trust() -> None:
    """The shared TLS context's CA certificates loaded now, in this thread (OpenSSL reads them
    without holding the interpreter, ~20 ms): else the first TLS connection does it on the event
    loop, in the first request's way.  A failure is left for that connection to raise."""
    with contextlib.suppress(OcrError):
        ctx = shared_ssl_context()
        if isinstance(ctx, _DeferredTrustContext):
            ctx._load_trust()


async def warm_up_imports() -> None:
    """:func:`preload` in a worker thread (a transport's ``warm_up``, run while the first page
    renders: see ``Backend.warm_up``)."""
    await asyncio.to_thread(preload)


class HttpImports:
    """A transport whose requests go through an httpx client imports what that client's first
    connection imports before its first request, and loads the CA certificates when its server
    is an ``https`` one (:func:`load_trust`): in a worker thread beside the first page's render
    (``warm_up``, :meth:`~ocrclient.registry.Backend.warm_up`), or the imports at once in the
    caller's thread and the certificates in a thread of their own (``preload``,
    :meth:`~ocrclient.registry.Backend.preload`, for a caller with set-up work left to do)."""

    #: its :func:`make_client` client says when each request is written (:mod:`.written`)
    reports_writes = True

    def _server_url(self) -> str:
        """Where the transport's requests go (its ``base_url``)."""
        return str(getattr(self, "base_url", ""))

    def _tls(self) -> bool:
        return self._server_url().lower().startswith("https:")

    def preload(self) -> None:
        preload()
        if self._tls():
            threading.Thread(target=load_trust, name="ocrclient-tls-trust", daemon=True).start()

    async def warm_up(self) -> None:
        await warm_up_imports()
        if self._tls():
            await asyncio.to_thread(load_trust)


class _DeferredClient:
    """A transport's ``httpx.AsyncClient``, one per event loop, each built at its first use there.

    Built at first use rather than with its transport: building the first one imports httpcore
    (~40 ms), which a run does beside its first page's render (``Backend.warm_up``) instead of
    in front of it.  One per loop: a client's kept-alive connections belong to the loop that
    opened them, and a loaded backend outlives loops (each blocking ``Client`` and each
    ``ocrclient.convert`` runs on a loop of its own, a script may ``asyncio.run`` twice, two
    threads may each run one).  A connection of a loop that has ended is never used again: each
    client is closed as its loop shuts down (:func:`~ocrclient.loops.at_loop_shutdown`:
    ``asyncio.run`` and the blocking clients' loops do as they end) and dropped when the next is
    built; :meth:`release` closes the running loop's client while its loop still runs (a
    blocking client does it as it closes).  Outside any loop (a request built in a worker
    thread) any client built so far serves: they differ only in their connections.  Everything
    but :attr:`is_closed`, :meth:`release` and :meth:`aclose` is the running loop's client's own."""

    def __init__(self, build: Callable[[], httpx.AsyncClient]) -> None:
        self._build = build
        self._clients = PerLoop(self._new)
        self._closed = False
        #: one per client built on a running loop: closes it as that loop shuts down
        self._keepers: list[AsyncGenerator[None, None]] = []

    def _new(self) -> httpx.AsyncClient:
        if self._closed:  # (the run's pages still to send are cancelled, not retried as a bug)
            raise CancelledRunError("the transport was closed", cause="closed")
        client = self._build()
        if running_loop() is not None:  # (its connections closed as that loop ends)
            self._keepers = [k for k in self._keepers if getattr(k, "ag_frame", None) is not None]
            self._keepers.append(at_loop_shutdown(client.aclose))
        return client

    def _built(self) -> httpx.AsyncClient:
        return self._clients.get(any_outside=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._built(), name)

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def release(self) -> None:
        """Close the running loop's client (its connections); the next use here builds another."""
        client = self._clients.pop()
        if client is not None:
            await client.aclose()

    async def aclose(self) -> None:
        """Close for good: the running loop's client here, one of a loop running in another
        thread on that loop (not waited for); one of a loop that is not running is dropped."""
        self._closed = True
        here = running_loop()
        for loop, client in self._clients.drain():
            if loop is here or loop is None:  # (a client built outside any loop opened nothing)
                await client.aclose()
            elif loop.is_running():
                closing = client.aclose()
                try:
                    asyncio.run_coroutine_threadsafe(closing, loop)
                except RuntimeError:  # that loop closed meanwhile
                    closing.close()


def secrets_kept_home(home_url: str, headers: Sequence[str]) -> Callable[[httpx.Request], Awaitable[None]]:
    """A request hook that takes ``headers`` (the ones carrying a secret) off any request to
    another host than ``home_url``'s: httpx drops only ``Authorization`` on a redirect away,
    not a custom key header nor Modal's pair."""
    home = httpx.URL(home_url).netloc

    async def hook(request: httpx.Request) -> None:
        if request.url.netloc != home:
            for name in headers:
                request.headers.pop(name, None)

    return hook


async def release_loop(client: httpx.AsyncClient) -> None:
    """Let go of the connections ``client`` (one :func:`make_client` built) holds on the running
    event loop, before that loop ends; ``client`` stays usable (a transport's ``release``)."""
    if isinstance(client, _DeferredClient):
        await client.release()


async def _trace_writes(request: httpx.Request) -> None:
    """A request sent for a page (:data:`.written.REQUEST_WRITTEN` set) reports when its body is
    written, through httpcore's ``trace`` extension (chained to one already there)."""
    if written.REQUEST_WRITTEN.get() is None:
        return
    theirs = request.extensions.get("trace")
    if theirs is None or theirs is written.trace:
        request.extensions["trace"] = written.trace
        return

    async def both(event: str, info: dict[str, Any]) -> None:
        await written.trace(event, info)
        await theirs(event, info)

    request.extensions["trace"] = both


def make_client(
    *,
    timeout: httpx.Timeout,
    max_connections: int,
    max_keepalive: int | None = None,
    follow_redirects: bool = False,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    request_hooks: list[Callable[[httpx.Request], Awaitable[None]]] | None = None,
) -> httpx.AsyncClient:
    """A transport's own ``httpx.AsyncClient``: the shared TLS context, connection limits,
    ``params`` sent with every request, ``request_hooks`` run before each, a page's request
    reporting when it is written (:mod:`.written`), an idempotent request met by a connection
    the server had closed sent again once (:mod:`.resend`), and each sent request body released as
    soon as its reply arrives (see
    :func:`~ocrclient.transports.base.release_request_body`).  It is built at its first use (see
    :class:`_DeferredClient`)."""

    def build() -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections if max_keepalive is None else max_keepalive,
        )
        return httpx.AsyncClient(
            headers=headers,
            params=params,
            timeout=timeout,
            transport=ResendingTransport(verify=shared_ssl_context(), limits=limits),
            follow_redirects=follow_redirects,
            max_redirects=20,
            event_hooks={
                "request": [*(request_hooks or []), _trace_writes],
                "response": [release_request_body_hook],
            },
        )

    return cast(httpx.AsyncClient, _DeferredClient(build))


async def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """A 2xx reply's JSON object (decoded safely, off the event loop when big: see
    :func:`~.limits.aloads`); anything else is a :class:`TransientError` ``bad_reply``, and JSON
    nested too deeply a :class:`BadOutputError` ``reply_too_deep``."""
    try:
        data = await aloads(response.content)
    except BadOutputError as exc:  # nested too deeply
        raise BadOutputError(f"{what}: {exc.message}", cause=exc.cause) from None
    except ValueError:
        said = error_message(response.content[:ERROR_BODY_BYTES])
        raise TransientError(
            f"{what}: HTTP {response.status_code} with a non-JSON body" + (f": {said}" if said else ""),
            cause="bad_reply",
        ) from None
    if not isinstance(data, dict):
        raise TransientError(f"{what}: the reply is {type(data).__name__}, not a JSON object", cause="bad_reply")
    return data
