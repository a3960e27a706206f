"""Fuzzed replies for every transport: whatever bytes, JSON or SSE a server sends back, a transport
either returns a ModelReply or raises an ocrclient error — never anything else (issue 8.4).

Replies are served through httpx.MockTransport, so the real request/parse code runs without a
network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocrclient.errors import OcrError
from ocrclient.transports.base import ModelReply, ModelRequest
from ocrclient.transports.ocular import OcularTransport
from ocrclient.transports.openai import OpenAITransport
from ocrclient.transports.runpod import RunPodTransport

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
# shapes close to the real ones, with the wrong types and truncations hypothesis loves
chat_like = st.fixed_dictionaries(
    {"choices": st.lists(st.fixed_dictionaries({"message": st.dictionaries(st.sampled_from(["content", "role"]), json_values), "finish_reason": json_values}), max_size=2)},
    optional={"usage": json_values, "id": json_values, "object": json_values},
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    chat_like.map(lambda v: json.dumps(v).encode()),
    chat_like.map(lambda v: json.dumps(v).encode()[: max(1, len(json.dumps(v)) // 2)]),  # truncated
    st.text(max_size=200).map(lambda t: f"data: {t}\n\n".encode()),  # SSE-ish garbage
    st.lists(chat_like, max_size=3).map(lambda xs: b"".join(f"data: {json.dumps(x)}\n\n".encode() for x in xs) + b"data: [DONE]\n\n"),
)
statuses = st.sampled_from([200, 200, 200, 201, 400, 401, 404, 429, 500, 503, 524])
content_types = st.sampled_from(["application/json", "text/event-stream", "text/plain", "text/html"])


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _check(result: Any) -> None:
    assert isinstance(result, ModelReply), type(result)
    assert isinstance(result.text, str)


async def _drive(transport: Any, request: ModelRequest) -> None:
    try:
        with contextlib.suppress(OcrError):  # an ocrclient error is an allowed outcome
            _check(await asyncio.wait_for(transport.send(request), 10))
    finally:
        await transport.aclose()


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


@SETTINGS
@given(body=bodies, status=statuses, ctype=content_types, stream=st.booleans())
def test_openai_transport_never_raises_foreign_exceptions(body: bytes, status: int, ctype: str, stream: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": ctype})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    t = OpenAITransport("http://fuzz.invalid/v1", api_key="k", stream=stream, cap_max_tokens=False, http_client=client)
    _run(_drive(t, ModelRequest(body=dict(CHAT), timeout_s=10)))


@SETTINGS
@given(output=json_values | chat_like | st.lists(chat_like, max_size=2), status=st.sampled_from(["COMPLETED", "FAILED", "IN_PROGRESS", "TIMED_OUT", "CANCELLED", "WEIRD"]), kind=st.sampled_from(["chat", "ocular", "document"]), extra=json_values)
def test_runpod_transport_never_raises_foreign_exceptions(output: Any, status: str, kind: str, extra: Any) -> None:
    polls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if "/cancel/" in request.url.path:
            return httpx.Response(200, json={"id": "j", "status": "CANCELLED"})
        polls["n"] += 1
        if polls["n"] > 3:  # never loop forever on a non-final status
            return httpx.Response(200, json={"id": "j", "status": "FAILED", "error": json.dumps(extra)})
        return httpx.Response(200, json={"id": "j", "status": status, "output": output, "error": extra if isinstance(extra, str) else json.dumps(extra)})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    t = RunPodTransport(endpoint_id="e", api_key="k", base_url="http://fuzz.invalid/v2", mode="runsync", poll_interval_s=0.001, max_poll_interval_s=0.001, client=client)
    body = dict(CHAT) if kind == "chat" else {"image": "aGk="} if kind == "ocular" else {"pdf_base64": "aGk="}
    _run(_drive(t, ModelRequest(body=body, kind=kind, route="/extract_text" if kind == "ocular" else None, timeout_s=10)))


@SETTINGS
@given(body=bodies, status=statuses, ctype=content_types)
def test_ocular_transport_never_raises_foreign_exceptions(body: bytes, status: int, ctype: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": ctype})

    t = OcularTransport("http://fuzz.invalid", http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    _run(_drive(t, ModelRequest(body={"image": "aGk="}, kind="ocular", route="/extract_text", timeout_s=10)))


# --- request bodies: page images spliced into the JSON as they are ---------------------------

import base64  # noqa: E402

from ocrclient.imaging import Base64Text  # noqa: E402
from ocrclient.testing.faults import body_key  # noqa: E402
from ocrclient.transports.base import _SPLICE_TAG, json_bytes  # noqa: E402

images = st.tuples(st.sampled_from(["", "data:image/png;base64,", "data:image/jpeg;base64,"]), st.binary(max_size=64)).map(
    lambda t: Base64Text(t[0] + base64.b64encode(t[1]).decode())
)
# strings that look like the encoder's stand-in for an image, at the start, alone or after a quote
look_alikes = st.sampled_from([_SPLICE_TAG, _SPLICE_TAG + "0", _SPLICE_TAG + "1", 'x"' + _SPLICE_TAG + "0", "\x00"])
body_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | images | look_alikes,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | look_alikes, inner, max_size=4),
    max_leaves=16,
)


@SETTINGS
@given(body_values)
def test_json_bytes_is_the_json_of_the_body(body: Any) -> None:
    """Whatever the body (images anywhere, strings that mimic the stand-ins), json_bytes gives
    exactly what json.dumps gives, parsed back."""
    out = json_bytes(body)
    assert json.loads(out) == json.loads(json.dumps(body))
    assert out == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_runpod_sends_the_image_bytes_unchanged() -> None:
    """The RunPod transport's spliced body carries the page image byte for byte."""
    image = bytes(range(256)) * 40
    url = Base64Text("data:image/png;base64," + base64.b64encode(image).decode())
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"id": "j1", "status": "COMPLETED", "output": "ok"})

    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": 'read "this"'}]}]}
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    t = RunPodTransport(endpoint_id="ep", api_key="k", mode="runsync", client=client)
    reply = _run(t.send(ModelRequest(body=body)))
    assert reply.text == "ok"
    sent = json.loads(seen[0])["input"]["openai_input"]
    assert base64.b64decode(sent["messages"][0]["content"][0]["image_url"]["url"].split(",", 1)[1]) == image
    assert sent["messages"][0]["content"][1]["text"] == 'read "this"'


@SETTINGS
@given(st.dictionaries(st.text(max_size=6), body_values, max_size=5), st.randoms())
def test_body_key_ignores_mapping_order(body: dict[str, Any], rnd: Any) -> None:
    items = list(body.items())
    rnd.shuffle(items)
    assert body_key(dict(items)) == body_key(body)


def test_body_key_tells_structures_apart() -> None:
    keys = [body_key(v) for v in (["ab"], ["a", "b"], {"a": "b"}, ["a", ["b"]], "ab", 1, "1", True, None, [])]
    assert len(set(keys)) == len(keys)
