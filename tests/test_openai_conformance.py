"""Our chat-completions reader reads what the official ``openai`` SDK reads.

The OpenAI transport sends with httpx and reads the reply itself (the SDK's import alone costs
about as much as a first request may take).  These tests hold it to the SDK's reading: the same
bytes -- served through ``httpx.MockTransport`` in pieces cut anywhere, even inside a UTF-8
character, with CRLF or LF line ends, comments, keep-alive pings, a usage chunk, error events --
give the same text, finish reason and token counts through ``AsyncOpenAI`` (``max_retries=0``)
as through :class:`~ocrclient.transports.openai.OpenAITransport`, or both refuse the reply.
The ``openai`` package is a test dependency only (the ``dev`` extra).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocrclient.errors import OcrError
from ocrclient.transports.base import ModelRequest
from ocrclient.transports.openai import OpenAITransport

MODEL = "m"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "read this"}], "max_tokens": 512}


class _Pieces(httpx.AsyncByteStream):
    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self.data, self.cuts = data, sorted({c for c in cuts if 0 < c < len(data)})

    async def __aiter__(self) -> AsyncIterator[bytes]:
        start = 0
        for cut in [*self.cuts, len(self.data)]:
            yield self.data[start:cut]
            start = cut
            await asyncio.sleep(0)


def _server(data: bytes, cuts: list[int], ctype: str) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": MODEL, "max_model_len": None}]})
        return httpx.Response(200, headers={"content-type": ctype}, stream=_Pieces(data, cuts))

    return handle


async def _sdk_read(data: bytes, cuts: list[int], ctype: str) -> tuple[Any, ...]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_server(data, cuts, ctype)))
    client = openai.AsyncOpenAI(base_url="http://sim.test/v1", api_key="k", max_retries=0, http_client=http)
    parts: list[str] = []
    finish = None
    usage = (0, 0)
    try:
        stream = await client.chat.completions.create(
            model=MODEL, messages=BODY["messages"], max_tokens=512, stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.usage is not None:
                usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                if choice.index == 0 and choice.delta is not None and choice.delta.content:
                    parts.append(choice.delta.content)
                if choice.index == 0 and choice.finish_reason:
                    finish = choice.finish_reason
    except openai.APIError:
        return ("refused",)
    finally:
        await http.aclose()
    return ("".join(parts), finish, usage)


async def _our_read(data: bytes, cuts: list[int], ctype: str) -> tuple[Any, ...]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_server(data, cuts, ctype)))
    t = OpenAITransport("http://sim.test/v1", api_key="k", model=MODEL, http_client=http)
    try:
        reply = await t.send(ModelRequest(body=dict(BODY), timeout_s=30, options={"stream": True}))
    except OcrError:
        return ("refused",)
    finally:
        await http.aclose()
    return (reply.text, reply.finish_reason, (reply.prompt_tokens, reply.completion_tokens))


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}


def _events(pieces: list[str], finish: str = "stop", *, usage: bool = True) -> list[dict[str, Any]]:
    out = [_chunk({"role": "assistant", "content": ""})]
    out += [_chunk({"content": p}, finish if i == len(pieces) - 1 else None) for i, p in enumerate(pieces)]
    if usage:
        out.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                    "choices": [], "usage": {"prompt_tokens": 1200, "completion_tokens": 37, "total_tokens": 1237}})
    return out


def _sse(events: list[dict[str, Any] | str], nl: str = "\n", ping: bool = False) -> bytes:
    lines: list[str] = []
    for ev in events:
        if ping:
            lines += [": ping", ""]
        lines += ["data: " + (ev if isinstance(ev, str) else json.dumps(ev, ensure_ascii=False)), ""]
    return (nl.join(lines) + nl).encode()


TEXTS = ["# Title\n\nSome text with émojis 🙂 and 中文.", "| a | b |\n|---|---|\n| 1 | 2 |", "x" * 300]

CASES: dict[str, bytes] = {
    "plain": _sse([*_events(TEXTS[0].split(" ")), "[DONE]"]),
    "crlf": _sse([*_events(TEXTS[1].split("|")), "[DONE]"], nl="\r\n"),
    "cr": _sse([*_events(TEXTS[1].split("|")), "[DONE]"], nl="\r"),
    "line breaks a model writes": _sse([*_events(["a\u2028b", "c\x85d", "e\u2029f\x0bg\x1ch"]), "[DONE]"]),
    "pings": _sse([*_events(list(TEXTS[2])[:40]), "[DONE]"], ping=True),
    "no usage": _sse([*_events(["a", "b"], usage=False), "[DONE]"]),
    "length": _sse([*_events(["truncated", " here"], finish="length"), "[DONE]"]),
    "no space after colon": _sse([*_events(["a", "b"]), "[DONE]"]).replace(b"data: ", b"data:"),
    "error event with a status": _sse([_chunk({"content": "a"}), {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}]),
    "error event without a code": _sse([_chunk({"content": "a"}), {"error": {"message": "broke"}}]),
    "two choices": _sse([{**_chunk({"content": "mine"}, "stop"), "choices": [
        {"index": 1, "delta": {"content": "other"}, "finish_reason": "stop"},
        {"index": 0, "delta": {"content": "mine"}, "finish_reason": "stop"}]}, "[DONE]"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("cut", ["whole", "every byte"])
def test_the_same_stream_reads_the_same(name: str, cut: str) -> None:
    data = CASES[name]
    cuts = list(range(1, len(data))) if cut == "every byte" else []
    sdk = asyncio.run(_sdk_read(data, cuts, "text/event-stream"))
    ours = asyncio.run(_our_read(data, cuts, "text/event-stream"))
    assert ours == sdk
    if "error" not in name:
        assert ours != ("refused",) and ours[1] is not None  # a real reading, not two refusals


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(min_size=1, max_size=60),
    words=st.integers(1, 8),
    cuts=st.lists(st.integers(1, 4000), max_size=12),
    nl=st.sampled_from(["\n", "\r\n"]),
    ping=st.booleans(),
)
def test_any_text_cut_anywhere_reads_the_same(text: str, words: int, cuts: list[int], nl: str, ping: bool) -> None:
    step = max(1, len(text) // words)
    pieces = [text[i:i + step] for i in range(0, len(text), step)]
    data = _sse([*_events(pieces), "[DONE]"], nl=nl, ping=ping)
    sdk = asyncio.run(_sdk_read(data, cuts, "text/event-stream"))
    ours = asyncio.run(_our_read(data, cuts, "text/event-stream"))
    assert ours == sdk == (text, "stop", (1200, 37))
