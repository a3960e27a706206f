"""The transport seam: one request in, one raw reply out.

A transport moves exactly one attempt for one page and knows HTTP, auth, polling and limits —
nothing about models.  It never retries on its own: it raises an :mod:`ocrclient.errors` class
and the scheduler decides.  If the awaiting task is cancelled, a transport that started remote
work (a RunPod job) cancels it remotely before re-raising.  :class:`ModelRequest` and
:class:`ModelReply` are defined in :mod:`ocrclient.models` (the data that crosses the seams) and
stay importable from here.

Example (a transport in four lines — the in-process fakes in tests look like this)::

    class Echo:
        async def send(self, request: ModelRequest) -> ModelReply:
            return ModelReply(text="hello", finish_reason="stop")
        async def health(self) -> Health: return Health(ok=True, detail="echo")
        async def aclose(self) -> None: pass
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx

from ..imaging import Base64Text
from ..models import ModelReply, ModelRequest, RequestKind  # the seam's data (re-exported here)

__all__ = [
    "CHOSEN_SETTINGS",
    "Health",
    "ModelReply",
    "ModelRequest",
    "RequestKind",
    "Transport",
    "json_bytes",
    "neutral_options",
    "release_request_body",
    "release_request_body_hook",
    "unread_settings",
]

#: the settings chosen for one backend (a flag, a keyword, a pool member's table) that only some
#: transports read (``transport_options.mode`` is ``mode``): what a transport's ``READS`` is drawn from
CHOSEN_SETTINGS = frozenset({"endpoint_id", "base_url", "api_key", "api_key_env", "mode"})


@dataclass
class Health:
    ok: bool
    detail: str
    info: dict[str, Any] = field(default_factory=dict)
    #: down because the server refused the settings (the key, the endpoint id, the model): a
    #: configuration to fix, not a server to wait for (``ocr health`` exits 2, as ``convert``)
    refused: bool = False


def is_refusal(exc: BaseException) -> bool:
    """Whether a health check's error is the server refusing the settings (a key, an endpoint,
    a route or model it does not serve): :attr:`Health.refused`."""
    from ..errors import RUN_STOPPING

    return isinstance(exc, RUN_STOPPING)


@runtime_checkable
class Transport(Protocol):
    """How a request reaches a GPU.  See the module docstring for a complete example.

    A transport class may declare ``neutral_options``: a class attribute, the frozenset of its
    ``transport_options`` that cannot change what a page reads (polling, timeouts, payload
    limits, credentials and the headers that carry them).  The page cache leaves those out of
    its key and keys on every other option; a class that declares none keys on all of them
    (see :func:`neutral_options`).

    It may also declare ``READS``: the frozenset of the settings among :data:`CHOSEN_SETTINGS`
    (``endpoint_id``, ``base_url``, ``api_key``, ``api_key_env``, ``mode``) that it reads.  Such
    a setting chosen for a backend whose transport would not read it (``--mode run`` for a vLLM
    pod did nothing) is then refused (:func:`~ocrclient.registry.check_read`); a class that
    declares none is taken to read them all (see :func:`unread_settings`).

    A transport that holds something of the event loop it is used on (an HTTP client's
    kept-alive connections) keeps one per loop and may define ``async def release()``: let go
    of the running loop's, which is about to end, and stay usable from the next
    (:meth:`~ocrclient.registry.Backend.release`).
    """

    async def send(self, request: ModelRequest) -> ModelReply: ...

    async def health(self) -> Health: ...

    async def aclose(self) -> None: ...


def neutral_options(transport: type | object) -> frozenset[str]:
    """The content-neutral ``transport_options`` a transport class (or instance) declares in
    its ``neutral_options`` attribute; none when it declares none.

    >>> class Polling:
    ...     neutral_options = frozenset({"poll_interval_s"})
    >>> sorted(neutral_options(Polling)), neutral_options(object)
    (['poll_interval_s'], frozenset())
    """
    return frozenset(getattr(transport, "neutral_options", ()))


def unread_settings(transport: type | object, settings: Iterable[str]) -> list[str]:
    """Those of ``settings`` (of :data:`CHOSEN_SETTINGS`) that a transport class (or instance)
    declares in its own ``READS`` that it does not read; none when it declares nothing itself (a
    plugin's subclass of a built-in may read more than its parent: it is not held to the parent's).

    >>> class Pod:
    ...     READS = frozenset({"base_url", "api_key_env"})
    >>> unread_settings(Pod, ["base_url", "mode"]), unread_settings(object, ["mode"])
    (['mode'], [])
    """
    reads = vars(transport if isinstance(transport, type) else type(transport)).get("READS")
    return [] if reads is None else [s for s in settings if s in CHOSEN_SETTINGS and s not in reads]


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


#: what stands in for a Base64Text while the rest is encoded: no real string can equal it (a NUL,
#: always escaped as \u0000, then a random tag); and the form json.dumps gives it, opening quote on
_SPLICE_TAG = f"\x00{secrets.token_hex(8)}:"
_SPLICE_JSON = '"' + json.dumps(_SPLICE_TAG)[1:-1]


def json_bytes(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON, the body of a request.

    Strings marked :class:`~ocrclient.imaging.Base64Text` (page images as base64 or data URLs,
    often hundreds of kB) are copied in as they are: they need no escaping, and having
    :func:`json.dumps` scan them for it costs most of a request's encoding (a 273 kB JPEG page:
    0.8 ms as one ``json.dumps``, 0.2 ms spliced).  Everything else goes through ``json.dumps``.

    >>> from ocrclient.imaging import Base64Text
    >>> json_bytes({"image": Base64Text("aGk="), "prompt": "read it", "n": [1, None]})
    b'{"image":"aGk=","prompt":"read it","n":[1,null]}'
    >>> body = {"prompt": 'say "hi"', "images": [Base64Text("aGk="), Base64Text("aGk=")]}
    >>> json.loads(json_bytes(body)) == body
    True
    """
    spliced: list[str] = []

    def light(value: Any) -> Any:
        if isinstance(value, Base64Text):
            spliced.append(value)
            return f"{_SPLICE_TAG}{len(spliced) - 1}"
        if isinstance(value, dict):
            return {k: light(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [light(v) for v in value]
        return value

    text = json.dumps(light(obj), separators=(",", ":"), ensure_ascii=False)
    if not spliced:
        return text.encode()
    # every stand-in is now `"<escaped tag><n>"`, in the order they were made: split there and
    # put the texts back; a real string that looks like a stand-in upsets the count or the order,
    # and then the body is encoded the plain way
    head, *rest = text.split(_SPLICE_JSON)
    if len(rest) == len(spliced):
        out = [head.encode()]
        for i, piece in enumerate(rest):
            number, quote, tail = piece.partition('"')
            if number != str(i) or not quote:
                break
            out += (b'"', spliced[i].encode("ascii"), b'"', tail.encode())
        else:
            return b"".join(out)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
