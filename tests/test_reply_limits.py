"""transports/limits.py: the cap a reply is read under, safe JSON and sane numbers (issue 14,
defect 5).  The hostile-server suite (test_hostile.py) drives them through every transport."""

from __future__ import annotations

import asyncio
import gzip
import math
import tracemalloc

import httpx
import pytest

from ocrclient.errors import BadOutputError
from ocrclient.transports.base import ModelRequest
from ocrclient.transports.limits import (
    BYTES_PER_TOKEN,
    DEFAULT_REPLY_BYTES,
    ENVELOPE_BYTES,
    ERROR_BODY_BYTES,
    MAX_SECONDS,
    MAX_TOKEN_COUNT,
    STREAM_BYTES_PER_TOKEN,
    chunk_limit,
    error_body,
    finite,
    loads,
    read_capped,
    reply_limit,
    request_max_tokens,
    seconds,
    token_count,
)


def test_the_cap_follows_max_tokens() -> None:
    chat = ModelRequest(body={"max_tokens": 8192})
    assert reply_limit(chat) == 8192 * BYTES_PER_TOKEN + ENVELOPE_BYTES
    assert reply_limit(chat, streamed=True) == 8192 * STREAM_BYTES_PER_TOKEN + ENVELOPE_BYTES
    assert request_max_tokens(ModelRequest(body={"max_completion_tokens": 100})) == 100
    ocular = ModelRequest(kind="ocular", body={"decoding_options": {"max_length": 512}})
    assert reply_limit(ocular) == 512 * BYTES_PER_TOKEN + ENVELOPE_BYTES
    # no max_tokens (the whole-PDF contract, or a body without one): the fixed cap
    assert reply_limit(ModelRequest(kind="document", body={"pdf_base64": "x", "max_tokens": 5})) == DEFAULT_REPLY_BYTES
    assert reply_limit(ModelRequest(body={"max_tokens": "lots"})) == DEFAULT_REPLY_BYTES
    assert reply_limit(ModelRequest(body={"max_tokens": True})) == DEFAULT_REPLY_BYTES
    assert chunk_limit(4096) == 2 * 4096 + 64


@pytest.mark.parametrize(
    ("value", "count"),
    [(12, 12), (12.9, 12), (-5, 0), (float("nan"), 0), (float("inf"), 0), (float("-inf"), 0),
     (1e308, MAX_TOKEN_COUNT), (10**400, MAX_TOKEN_COUNT), (None, 0), ("12", 0), (True, 0)],
)
def test_token_counts_are_sane_ints(value: object, count: int) -> None:
    assert token_count(value) == count and type(token_count(value)) is int


def test_durations_and_floats_are_finite_or_absent() -> None:
    assert seconds(1500, 0.001) == 1.5
    assert seconds(-1) is None and seconds(float("nan")) is None and seconds("3") is None
    assert seconds(1e308) == MAX_SECONDS and seconds(10**400) is None
    assert finite(0.5) == 0.5 and finite(float("inf")) is None and finite(False) is None


def test_json_of_hostile_replies() -> None:
    assert loads(b'{"a": NaN, "b": [Infinity, -Infinity], "c": 1e999}') == {"a": None, "b": [None, None], "c": math.inf}
    assert loads('{"n": ' + "9" * 5000 + ', "ok": 1}') == {"n": None, "ok": 1}
    with pytest.raises(BadOutputError, match="nested too deeply") as info:
        loads(b"[" * 100_000 + b"]" * 100_000)
    assert info.value.cause == "reply_too_deep"
    with pytest.raises(ValueError):
        loads(b"<html>not json</html>")
    assert error_body(b"[" * 5000 + b"]" * 5000).startswith(b"the reply is nested too deeply")
    assert error_body(b'{"error": "x"}') == b'{"error": "x"}'


def _streamed(data: bytes, piece: int = 65536):  # type: ignore[no-untyped-def]
    """``data`` as a body that arrives piece by piece (a bytes body would be read at once)."""

    async def body():  # type: ignore[no-untyped-def]
        for i in range(0, len(data), piece):
            yield data[i : i + piece]

    return body()


def _client(response: httpx.Response) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response))


def _read(response: httpx.Response, limit: int) -> httpx.Response:
    async def go() -> httpx.Response:
        async with _client(response) as client:
            return await read_capped(client, client.build_request("GET", "http://h/x"), limit, what="GET /x")

    return asyncio.run(go())


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(BadOutputError, match=r"larger than 1\.0 MB") as info:
        _read(httpx.Response(200, content=b"x" * 2_000_000), 1_000_000)
    assert info.value.cause == "reply_too_large"


def test_an_undeclared_body_is_cut_while_it_arrives() -> None:
    with pytest.raises(BadOutputError, match="stopped reading"):
        _read(httpx.Response(200, content=_streamed(b"y" * 50_000_000)), 1_000_000)


def test_a_compression_bomb_is_counted_decompressed_and_never_held() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 kB on the wire, 50 MB inflated
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(BadOutputError, match=r"larger than 1\.0 MB"):
            _read(httpx.Response(200, content=_streamed(bomb, 4096), headers={"Content-Encoding": "gzip"}), 1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, peak
    small = gzip.compress(b'{"ok": true}')
    ok = httpx.Response(200, content=_streamed(small), headers={"Content-Encoding": "gzip"})
    assert _read(ok, 1000).json() == {"ok": True}


def test_error_replies_are_truncated_not_refused() -> None:
    """An error's status decides; its body only gives the message: the first 64 kB of it."""
    resp = _read(httpx.Response(503, content=_streamed(b"e" * 5_000_000)), 1_000_000)
    assert resp.status_code == 503 and len(resp.content) == ERROR_BODY_BYTES
