"""Reading an OpenAI-compatible server's chat-completions replies into a :class:`ModelReply`.

* :func:`completion_reply`: a whole ``chat.completion`` (a non-streamed reply, or what a server
  that ignored ``stream`` sent back);
* :func:`read_stream`: a ``text/event-stream`` of ``chat.completion.chunk`` events ending with
  ``data: [DONE]``: the text of choice 0 is joined, the last chunk's ``usage`` is kept, and
  an error event (vLLM's ``{"error": {...}}`` or ``{"object": "error", ...}``) raises its
  status's class.  The stream is bounded: no more text, nor chunks, than ``max_tokens``
  allow (:mod:`.limits`), and ``idle`` seconds of silence at most between two events.

Every server misbehaviour is an :mod:`ocrclient.errors` class: a reply that is not a chat
completion is a :class:`TransientError` (``bad_reply``, worth another attempt), a stream that
ends before its ``finish_reason`` is ``stream_cut``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..errors import BadOutputError, OcrError, TransientError
from .base import ModelReply
from .http import error_message, status_error
from .limits import chunk_limit, loads, text_limit, token_count
from .sse import aiter_events, aiter_lines

__all__ = ["CHAT", "completion_reply", "read_stream", "stream_error"]

#: how requests to the chat route are named in messages
CHAT = "POST /chat/completions"


def _bad(what: str) -> TransientError:
    return TransientError(
        f"the server's reply is not a chat completion ({what})", cause="bad_reply"
    )


def completion_reply(data: Any) -> ModelReply:
    """A decoded ``chat.completion`` as a reply (its first choice's text)."""
    if not isinstance(data, dict):
        raise _bad("not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise TransientError("the server answered a completion without choices", cause="bad_reply")
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise TransientError("the server's completion has non-text content", cause="bad_reply")
    finish = choice.get("finish_reason")
    usage = data.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    return ModelReply(
        text=content or "",
        finish_reason=finish if isinstance(finish, str) else None,
        prompt_tokens=token_count(usage.get("prompt_tokens")),
        completion_tokens=token_count(usage.get("completion_tokens")),
        data={"id": data.get("id"), "model": data.get("model"), "streamed": False},
    )


def stream_error(body: Any) -> OcrError:
    """An error event inside the stream: the class of its ``code`` when that is an HTTP status,
    else a :class:`TransientError` (``stream_error``)."""
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, int) and 400 <= code < 600:
        return status_error(code, {"error": body}, None)
    message = error_message({"error": body}) if isinstance(body, dict) else str(body)
    return TransientError(f"error in stream: {message}", cause="stream_error")


class _Reading:
    """What a stream has said so far, and its bounds."""

    def __init__(self, max_tokens: int | None) -> None:
        self.parts: list[str] = []
        self.finish: str | None = None
        self.prompt_tokens = self.completion_tokens = 0
        self.chunk_id: Any = None
        self.model: Any = None
        self.chunks = self.size = 0
        self.max_text = text_limit(max_tokens)
        self.max_chunks = chunk_limit(max_tokens)

    def take(self, chunk: Any) -> None:
        """Add one decoded event."""
        if not isinstance(chunk, dict):
            raise _bad("a stream event is not a JSON object")
        if chunk.get("error") or chunk.get("object") == "error":
            raise stream_error(chunk.get("error") or chunk)
        self.chunks += 1
        if self.chunks > self.max_chunks:
            raise BadOutputError(
                f"the stream sent more than {self.max_chunks} chunks, more than max_tokens allow "
                f"({self.size} characters of text so far); stopped reading it",
                cause="reply_too_large",
            )
        self.chunk_id = chunk.get("id") or self.chunk_id
        self.model = chunk.get("model") or self.model
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = token_count(usage.get("prompt_tokens"))
            self.completion_tokens = token_count(usage.get("completion_tokens"))
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise _bad("its choices are not a list")
        for choice in choices:
            if not isinstance(choice, dict):
                raise _bad("a choice is not an object")
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if content:
                self._text(content)
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])

    def _text(self, content: Any) -> None:
        if not isinstance(content, str):
            raise TransientError("the server streamed non-text content", cause="bad_reply")
        self.parts.append(content)
        self.size += len(content)
        if self.size > self.max_text:
            raise BadOutputError(
                f"the stream's text is longer than {self.max_text} characters, more than "
                "max_tokens allow; stopped reading it (a runaway model or a broken server)",
                cause="reply_too_large",
            )

    def reply(self) -> ModelReply:
        if self.finish is None:
            raise TransientError(
                f"the stream ended before the reply was complete ({self.chunks} chunks, no finish_reason)",
                cause="stream_cut",
            )
        return ModelReply(
            text="".join(self.parts),
            finish_reason=self.finish,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            data={
                "id": self.chunk_id,
                "model": self.model,
                "streamed": True,
                "chunks": self.chunks,
            },
        )


#: how long the end of a stream is read after ``[DONE]`` (the chunked body's last bytes)
DRAIN_S = 1.0


async def _drain(events: AsyncIterator[Any]) -> None:
    """Read what follows ``[DONE]`` to the end of the body, so the connection goes back to the
    pool for the next page instead of being closed (a new TCP, and TLS, handshake per page).
    A server that keeps the stream open after it is left after :data:`DRAIN_S`."""
    with contextlib.suppress(TimeoutError, OcrError, httpx.HTTPError):
        async with asyncio.timeout(DRAIN_S):
            async for _ in events:
                pass


async def read_stream(response: httpx.Response, max_tokens: int | None, idle: float | None) -> ModelReply:
    """Read a streamed completion from ``response`` (capped already) to its ``[DONE]``, bounded
    by what ``max_tokens`` (the request's, :func:`.limits.request_max_tokens`) allows."""
    seen = _Reading(max_tokens)
    events = aiter_events(aiter_lines(response.aiter_bytes()))
    try:
        while True:
            try:
                event = await (asyncio.wait_for(anext(events), idle) if idle else anext(events))
            except StopAsyncIteration:
                break
            except (httpx.TransportError, TimeoutError) as exc:
                # the reply finished (its finish_reason came) and the connection dropped or went
                # silent before [DONE]: the reply is whole, and the page paid for (it was sent again)
                if seen.finish is not None:
                    break
                if not isinstance(exc, TimeoutError):
                    raise
                raise TransientError(
                    f"the stream was silent for more than {idle:g} s", cause="stream_idle"
                ) from exc
            if event.data.startswith("[DONE]"):
                await _drain(events)
                break
            try:
                chunk = loads(event.data)
            except ValueError as exc:
                # an event that does not decode after the reply finished (e.g. a usage number
                # of 5000 digits) does not undo the reply; before it, it is a bad reply
                if seen.finish is not None:
                    break
                raise _bad("a stream event is not JSON") from exc
            seen.take(chunk)
    finally:
        await events.aclose()
    return seen.reply()
