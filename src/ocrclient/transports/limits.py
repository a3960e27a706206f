"""Bounds on what a server may send back: reply size caps, safe JSON, sane numbers.

A healthy model server cannot answer more than its request's ``max_tokens`` allow, so every
reply is read with a cap derived from them, and a reply over its cap is not read further: the
stream is closed and :class:`~ocrclient.errors.BadOutputError` (cause ``reply_too_large``) is
raised — a runaway model or a broken server, never a page.  The cap applies while the body
arrives (bytes are counted as they are read, after decompression), so a 500 MB reply costs the
client at most its cap in memory.

* **Cap** (:func:`reply_limit`): ``max_tokens x BYTES_PER_TOKEN + ENVELOPE_BYTES`` for a JSON
  reply, ``max_tokens x STREAM_BYTES_PER_TOKEN + ENVELOPE_BYTES`` for an SSE stream (one
  ``chat.completion.chunk`` event per token), :data:`DEFAULT_REPLY_BYTES` when the request names
  no ``max_tokens`` (the whole-PDF contract, ``/health``, ``/v1/models``).  ``max_tokens`` is read
  from a chat body (``max_tokens`` / ``max_completion_tokens``) or an ocular body's
  ``decoding_options`` (``max_new_tokens`` / ``max_length``).  A streamed reply is also held to
  ``max_tokens x BYTES_PER_TOKEN`` characters of text and :func:`chunk_limit` chunks, so an
  endless stream of empty deltas ends too.
* **Error replies** (HTTP >= 400) are read up to :data:`ERROR_BODY_BYTES` and the rest dropped:
  the status decides what happens, the body only gives the message.
* **JSON** (:func:`loads`): ``NaN`` / ``Infinity`` become ``None`` and integers too long for
  Python to convert become ``None`` (instead of failing the whole reply); a reply nested too
  deeply for the decoder is its own :class:`~ocrclient.errors.BadOutputError` (cause
  ``reply_too_deep``), not "non-JSON".  :func:`aloads` decodes bodies above
  :data:`OFF_LOOP_BYTES` in a worker thread, off the event loop.
* **Numbers** (:func:`token_count`, :func:`seconds`, :func:`finite`): whatever a server says,
  token counts are ints in ``[0, MAX_TOKEN_COUNT]`` and durations finite seconds in
  ``[0, MAX_SECONDS]``; anything else counts as absent.

Example::

    >>> reply_limit(ModelRequest(body={"max_tokens": 4096}))
    524288
    >>> token_count(float("nan")), token_count(-5), token_count(1e308), token_count(12.0)
    (0, 0, 10000000, 12)
    >>> loads(b'{"usage": {"prompt_tokens": NaN}}')
    {'usage': {'prompt_tokens': None}}
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..errors import BadOutputError
from .base import ModelRequest

__all__ = [
    "BYTES_PER_TOKEN",
    "DEFAULT_REPLY_BYTES",
    "ENVELOPE_BYTES",
    "ERROR_BODY_BYTES",
    "MAX_SECONDS",
    "MAX_TOKEN_COUNT",
    "OFF_LOOP_BYTES",
    "STREAM_BYTES_PER_TOKEN",
    "CappedStream",
    "aloads",
    "cap_reply",
    "chunk_limit",
    "error_body",
    "finite",
    "loads",
    "read_capped",
    "reply_limit",
    "request_max_tokens",
    "seconds",
    "text_limit",
    "token_count",
    "too_large",
]

#: bytes of reply one token may account for in a JSON reply.  Generous on purpose: the longest
#: tokens of common vocabularies decode to a few dozen bytes, JSON escaping (``\\uXXXX``) makes
#: a character up to 6 bytes, and real replies average 3-5 bytes a token.
BYTES_PER_TOKEN = 64
#: bytes of SSE one streamed token may account for: vLLM sends one ``data: {chunk}`` event of
#: ~250-400 bytes per decoding step (id, model, ``logprobs: null``...), each step >= 1 token.
STREAM_BYTES_PER_TOKEN = 2048
#: what a reply carries besides its text: ids, usage, RunPod's job envelope, ocular metadata
ENVELOPE_BYTES = 256 * 1024
#: the cap of a reply to a request without ``max_tokens`` (the whole-PDF contract, health
#: checks, model lists): four times the 8 MiB the deploy/ whole-PDF worker returns inline
DEFAULT_REPLY_BYTES = 32 * 1024 * 1024
#: error replies (HTTP >= 400) are read this far; the message is in the first bytes
ERROR_BODY_BYTES = 64 * 1024
#: chunks a stream may send beyond 2 per token (role, finish and usage chunks, keep-alives)
STREAM_CHUNK_SLACK = 64
#: JSON bodies larger than this are decoded in a worker thread (off the event loop)
OFF_LOOP_BYTES = 256 * 1024
#: the largest token count a server may report (above any context window in use)
MAX_TOKEN_COUNT = 10_000_000
#: the longest duration a server may report (RunPod's longest execution timeout is 7 days)
MAX_SECONDS = 7 * 24 * 3600.0

_TOKEN_KEYS = ("max_tokens", "max_completion_tokens", "max_new_tokens", "max_length")


# ---------------------------------------------------------------------------------------------
# caps
# ---------------------------------------------------------------------------------------------


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return min(value, MAX_TOKEN_COUNT)


def request_max_tokens(request: ModelRequest) -> int | None:
    """The ``max_tokens`` a request asks for, or ``None`` when it names none.

    >>> request_max_tokens(ModelRequest(kind="ocular", body={"decoding_options": {"max_length": 512}}))
    512
    """
    body = request.body if isinstance(request.body, dict) else {}
    places: list[Any] = [body]
    if request.kind == "ocular" and isinstance(body.get("decoding_options"), dict):
        places.insert(0, body["decoding_options"])
    if request.kind == "document":
        return None
    for place in places:
        for key in _TOKEN_KEYS:
            found = _positive_int(place.get(key))
            if found is not None:
                return found
    return None


def reply_limit(request: ModelRequest | int | None, *, streamed: bool = False) -> int:
    """The most bytes a reply to ``request`` (or to ``max_tokens``, given as an int) may have.

    >>> reply_limit(4096, streamed=True) // 1024, reply_limit(None) // 2**20
    (8448, 32)
    """
    tokens = request_max_tokens(request) if isinstance(request, ModelRequest) else _positive_int(request)
    if tokens is None:
        return DEFAULT_REPLY_BYTES
    per = STREAM_BYTES_PER_TOKEN if streamed else BYTES_PER_TOKEN
    return tokens * per + ENVELOPE_BYTES


def text_limit(max_tokens: int | None) -> int:
    """The most characters of text a streamed reply may add up to."""
    tokens = _positive_int(max_tokens)
    return DEFAULT_REPLY_BYTES if tokens is None else tokens * BYTES_PER_TOKEN + ENVELOPE_BYTES


def chunk_limit(max_tokens: int | None) -> int:
    """The most chunks a streamed reply may have (two per token, plus slack)."""
    tokens = _positive_int(max_tokens)
    return DEFAULT_REPLY_BYTES // 256 if tokens is None else 2 * tokens + STREAM_CHUNK_SLACK


def too_large(what: str, limit: int) -> BadOutputError:
    """The error for a reply over its cap."""
    return BadOutputError(
        f"{what}: the reply is larger than {_mb(limit)}, more than max_tokens allow; stopped "
        "reading it (a runaway model or a broken server)",
        cause="reply_too_large",
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


class CappedStream(httpx.AsyncByteStream):
    """A response body stream that stops at ``limit`` bytes (after decompression).

    Over the limit it raises :func:`too_large`, or, with ``truncate``, simply ends (error
    replies: what was read is enough for the message).  Closing it closes the wrapped stream,
    which closes the connection when the body was not read to its end.
    """

    def __init__(
        self, inner: httpx.AsyncByteStream, limit: int, *, what: str, truncate: bool = False,
        encoding: str = "",
    ) -> None:
        self.inner = inner
        self.limit = int(limit)
        self.what = what
        self.truncate = truncate
        self.raw = 0
        self.decoded = 0
        encoding = encoding.strip().lower()
        self._inflate: Any = None
        if encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflate = zlib.decompressobj()

    def _count(self, chunk: bytes) -> int:
        """Bytes the body has grown to with ``chunk``: decoded size when it is compressed."""
        self.raw += len(chunk)
        if self._inflate is None:
            return self.raw
        data = chunk
        try:
            while data and self.decoded <= self.limit:
                # bounded steps: a compression bomb is counted, never held
                self.decoded += len(self._inflate.decompress(data, 1 << 20))
                data = self._inflate.unconsumed_tail
        except zlib.error:  # httpx reports the broken encoding itself; count raw bytes
            self._inflate = None
            return self.raw
        return max(self.raw, self.decoded)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            before = self.raw
            if self._count(chunk) > self.limit:
                if not self.truncate:
                    raise too_large(self.what, self.limit)
                if self._inflate is None and before < self.limit:
                    yield chunk[: self.limit - before]
                return
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def cap_reply(response: httpx.Response, limit: int, *, what: str) -> None:
    """Make ``response`` (not read yet) stop at ``limit`` bytes: error replies (>= 400) at
    :data:`ERROR_BODY_BYTES`, silently; others raise :func:`too_large` — at once when their
    ``Content-Length`` already says so."""
    error = response.status_code >= 400
    cap = min(limit, ERROR_BODY_BYTES) if error else limit
    declared = response.headers.get("content-length", "")
    if not error and declared.isdigit() and int(declared) > cap:
        raise too_large(what, cap)
    if isinstance(response.stream, CappedStream) or not isinstance(response.stream, httpx.AsyncByteStream):
        return
    response.stream = CappedStream(
        response.stream, cap, what=what, truncate=error,
        encoding=response.headers.get("content-encoding", ""),
    )


async def read_capped(client: httpx.AsyncClient, request: httpx.Request, limit: int, *, what: str) -> httpx.Response:
    """Send ``request`` and read its reply with :func:`cap_reply`; the connection is closed when
    the reply is over its cap (or anything else goes wrong while reading)."""
    response = await client.send(request, stream=True)
    try:
        cap_reply(response, limit, what=what)
        await response.aread()
    finally:
        await response.aclose()
    return response


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def _constant(_name: str) -> None:
    return None  # NaN, Infinity, -Infinity: not numbers a reply can mean


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return None


_TOO_LONG_INT = re.compile(r"integer string conversion|int_max_str_digits", re.IGNORECASE)


def loads(data: bytes | str) -> Any:
    """``json.loads`` for server replies: ``NaN`` / ``Infinity`` and unconvertible integers
    become ``None``; too deep a nesting raises :class:`BadOutputError` (``reply_too_deep``);
    anything that is not JSON raises ``ValueError`` as ``json.loads`` does."""
    try:
        try:
            return json.loads(data, parse_constant=_constant)
        except ValueError as exc:
            if not _TOO_LONG_INT.search(str(exc)):
                raise
            return json.loads(data, parse_constant=_constant, parse_int=_int_or_none)
    except RecursionError:
        raise BadOutputError(
            "the reply is nested too deeply to read (JSON deeper than the decoder allows)",
            cause="reply_too_deep",
        ) from None


def error_body(content: bytes) -> bytes:
    """An error reply's body, ready for message parsing: the body itself, or a one-line note
    when it is JSON nested too deeply to decode (parsing it would fail)."""
    try:
        loads(content)
    except BadOutputError as exc:
        return exc.message.encode()
    except ValueError:
        pass
    return content


async def aloads(data: bytes | str) -> Any:
    """:func:`loads`, in a worker thread when ``data`` is over :data:`OFF_LOOP_BYTES`."""
    if len(data) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(loads, data)
    return loads(data)


# ---------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (NaN, infinities, strings, bools, None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        out = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return out if math.isfinite(out) else None


def token_count(value: Any) -> int:
    """A token count a server reported, as an int in ``[0, MAX_TOKEN_COUNT]`` (absent or
    nonsense -> 0; too large -> the maximum)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return max(0, min(value, MAX_TOKEN_COUNT))
    number = finite(value)
    if number is None or number <= 0:
        return 0
    return int(min(number, MAX_TOKEN_COUNT))


def seconds(value: Any, scale: float = 1.0) -> float | None:
    """A duration a server reported (``value x scale`` seconds, e.g. ``scale=0.001`` for
    milliseconds) as finite seconds in ``[0, MAX_SECONDS]``, or ``None``."""
    number = finite(value)
    if number is None or number < 0:
        return None
    return min(number * scale, MAX_SECONDS)
