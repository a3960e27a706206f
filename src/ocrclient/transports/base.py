"""The transport seam: one request in, one raw reply out.

A transport moves exactly one attempt for one page and knows HTTP, auth, polling and limits —
nothing about models.  It never retries on its own: it raises an :mod:`ocrclient.errors` class
and the scheduler decides.  If the awaiting task is cancelled, a transport that started remote
work (a RunPod job) cancels it remotely before re-raising.

Example (a transport in four lines — the in-process fakes in tests look like this)::

    class Echo:
        async def send(self, request: ModelRequest) -> ModelReply:
            return ModelReply(text="hello", finish_reason="stop")
        async def health(self) -> Health: return Health(ok=True, detail="echo")
        async def aclose(self) -> None: pass
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import httpx

from ..geometry import Frame

__all__ = [
    "Health",
    "ModelReply",
    "ModelRequest",
    "RequestKind",
    "Transport",
    "release_request_body",
    "release_request_body_hook",
]

#: chat: an OpenAI chat-completions body; ocular: the OLM/RoLM HTTP JSON contract;
#: document: the DeepSeek seed's whole-PDF job input
RequestKind = Literal["chat", "ocular", "document"]


@dataclass
class ModelRequest:
    """One attempt for one page, as plain data.

    ``body`` is, for ``kind="chat"``, exactly the JSON of an OpenAI ``/chat/completions`` request
    (``model``, ``messages`` with the image as a data URL, ``max_tokens``, sampling, and vLLM extras
    such as ``skip_special_tokens`` / ``vllm_xargs`` at top level).  For ``ocular`` it is
    ``{"image": <base64>, ...}`` and ``route`` names the path (``/extract_text``); for
    ``document`` it is the whole-PDF job input.
    """

    body: dict[str, Any]
    kind: RequestKind = "chat"
    frame: Frame | None = None
    route: str | None = None
    #: seconds this attempt may take end to end (set by the scheduler)
    timeout_s: float | None = None
    #: 1-based page number and source name, for logs and remote job metadata only
    page: int | None = None
    source: str | None = None
    #: per-request knobs for the transport (e.g. {"stream": False})
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelReply:
    """The raw answer of one attempt."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    #: RunPod executionTime / delayTime in seconds, when the platform reports them
    gpu_seconds: float | None = None
    queue_seconds: float | None = None
    job_id: str | None = None
    #: anything else the contract returns (ocular ``confidence``, whole-PDF paths, raw JSON)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Health:
    ok: bool
    detail: str
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Transport(Protocol):
    """How a request reaches a GPU.  See the module docstring for a complete example."""

    async def send(self, request: ModelRequest) -> ModelReply: ...

    async def health(self) -> Health: ...

    async def aclose(self) -> None: ...


def release_request_body(response: httpx.Response) -> None:
    """Drop the (sent) request body that ``response`` keeps alive.

    An ``httpx.Response`` and its stream refer to each other, and the response holds its request,
    which holds the whole body (a page image, often hundreds of KB): the body lives until the
    cyclic garbage collector gets to that cycle, which on a growing heap can be hundreds of pages
    later.  Once the response has arrived the body has been sent, so it is released here.
    Not for 307/308 replies, whose redirect re-sends the same body, nor 401/407, which an
    httpx auth flow (e.g. ``DigestAuth``) answers by sending the same request again.

    >>> req = httpx.Request("POST", "http://h/x", content=b"page image")
    >>> release_request_body(httpx.Response(200, request=req))
    >>> req.content, b"".join(req.stream)
    (b'', b'')
    """
    if response.status_code in (307, 308, 401, 407):
        return
    request = response.request
    # httpx keeps the body twice, both private: the request's cached ``_content`` and the
    # ``ByteStream`` that httpcore's own request object shares; both are emptied in place
    # (guarded, so a change in httpx only turns this off)
    if isinstance(getattr(request, "_content", None), bytes):
        request._content = b""
    stream = request.stream
    if isinstance(stream, httpx.ByteStream) and isinstance(getattr(stream, "_stream", None), bytes):
        stream._stream = b""


async def release_request_body_hook(response: httpx.Response) -> None:
    """:func:`release_request_body` as an ``httpx.AsyncClient`` response event hook."""
    release_request_body(response)
