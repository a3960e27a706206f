"""Contract tests: OpenAITransport against the simulated vLLM server (direct, pod proxy, Modal)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from ocrclient.config import BackendConfig
from ocrclient.errors import AuthError, ConfigError, EndpointError, PermanentError, TransientError
from ocrclient.testing.__main__ import build_parser, make_simulator
from ocrclient.testing.faults import FaultPlan, FixedResponder, echo_responder
from ocrclient.testing.openai_sim import HTTPSimulator, OpenAISimulator, SimRequest
from ocrclient.transports.base import ModelRequest, Transport
from ocrclient.transports.openai import OpenAITransport, normalize_base_url

IMAGE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="


def chat_body(sim: OpenAISimulator, **extra: Any) -> dict[str, Any]:
    """A chat request as a dialect builds it: standard params plus vLLM extras at top level."""
    return {
        "model": sim.model,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": IMAGE}},
            {"type": "text", "text": "OCR this page."},
        ]}],
        "max_tokens": 2048,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "repetition_penalty": 1.05,
        "skip_special_tokens": False,
        "vllm_xargs": {"ngram_size": 30},
        **extra,
    }


def request(sim: OpenAISimulator, *, timeout: float = 5.0, stream: bool | None = None,
            **extra: Any) -> ModelRequest:
    options = {} if stream is None else {"stream": stream}
    return ModelRequest(body=chat_body(sim, **extra), timeout_s=timeout, options=options, page=1)


def transport_for(sim: OpenAISimulator, **kw: Any) -> OpenAITransport:
    if sim.mode == "modal":
        kw.setdefault("modal", True)
        kw.setdefault("modal_key", sim.modal_key)
        kw.setdefault("modal_secret", sim.modal_secret)
    return OpenAITransport(sim.base_url, api_key=sim.api_key, **kw)


# ---------------------------------------------------------------------------------------------
# replies
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_reply_text_usage_and_finish_reason_are_kept(stream: bool) -> None:
    with OpenAISimulator(plan=FaultPlan(latency_s=(0.05, 0.05))) as sim:
        t = transport_for(sim)
        assert isinstance(t, Transport)
        req = request(sim, stream=stream)
        reply = await t.send(req)
        await t.aclose()
        expected = echo_responder(req.body)
        assert reply.text == expected.text
        assert reply.finish_reason == "stop"
        assert reply.prompt_tokens == expected.prompt_tokens
        assert reply.completion_tokens == expected.completion_tokens
        assert reply.data["streamed"] is stream
        assert reply.latency_s >= 0.05
        assert (sim.streamed, sim.non_streamed) == ((1, 0) if stream else (0, 1))
        wire = sim.bodies[-1]
        # the vLLM extras travel at top level, unchanged (extra_body), with the standard params
        assert wire["top_k"] == 40 and wire["repetition_penalty"] == 1.05
        assert wire["skip_special_tokens"] is False and wire["vllm_xargs"] == {"ngram_size": 30}
        assert wire["messages"] == req.body["messages"] and wire["max_tokens"] == 2048
        assert wire["temperature"] == 0.2 and wire["top_p"] == 0.9


async def test_streaming_requests_usage_and_joins_chunks_exactly() -> None:
    text = "Line one.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nÜnïcödé ∑ end."
    with OpenAISimulator(responder=FixedResponder(text), stream_chunks=13) as sim:
        t = transport_for(sim)
        reply = await t.send(request(sim))  # streaming is the default
        await t.aclose()
    assert reply.text == text
    assert reply.data["chunks"] >= 13
    assert sim.streamed == 1
    # the SDK sent the body as a stream with include_usage (the usage chunk came back)
    assert reply.completion_tokens == len(text.split())


@pytest.mark.parametrize("stream", [True, False])
async def test_length_finish_is_reported_not_raised(stream: bool) -> None:
    with OpenAISimulator(plan=FaultPlan(rates={"length": 1.0})) as sim:
        t = transport_for(sim)
        reply = await t.send(request(sim, stream=stream, max_tokens=300))
        await t.aclose()
    assert reply.finish_reason == "length"
    assert reply.completion_tokens == 300
    assert reply.text and len(reply.text) < len(echo_responder(chat_body(sim)).text)


async def test_model_defaults_to_the_profile_or_the_only_served_model() -> None:
    with OpenAISimulator() as sim:
        t = transport_for(sim)
        req = request(sim)
        del req.body["model"]
        reply = await t.send(req)
        assert reply.text
        assert sim.bodies[-1]["model"] == sim.model
        await t.aclose()


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["new", "flat"])
@pytest.mark.parametrize("stream", [True, False])
async def test_both_vllm_error_shapes_give_a_readable_one_line_message(shape: str, stream: bool) -> None:
    with OpenAISimulator(plan=FaultPlan(rates={"http_400": 1.0}), error_shape=shape) as sim:
        t = transport_for(sim)
        with pytest.raises(PermanentError) as info:
            await t.send(request(sim, stream=stream))
        await t.aclose()
    msg = str(info.value)
    assert msg == "HTTP 400: simulated bad request (BadRequestError)"
    assert "\n" not in msg and "{" not in msg
    assert info.value.status == 400 and not isinstance(info.value, AuthError)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentError), (404, EndpointError), (501, PermanentError),
        (401, AuthError), (403, AuthError),
        (408, TransientError), (429, TransientError), (500, TransientError),
        (502, TransientError), (503, TransientError), (524, TransientError),
    ],
)
async def test_every_status_is_classified(status: int, kind: type[Exception]) -> None:
    with OpenAISimulator(force_status=status) as sim:
        t = transport_for(sim)
        with pytest.raises(kind) as info:
            await t.send(request(sim))
        await t.aclose()
    err = info.value
    assert type(err) is kind
    assert getattr(err, "status", None) == status
    if status == 524:
        assert err.cause == "proxy_idle_524"  # type: ignore[attr-defined]
    else:
        assert f"forced status {status}" in str(err)


async def test_unknown_model_is_an_endpoint_error_404() -> None:
    with OpenAISimulator() as sim:
        t = transport_for(sim)
        with pytest.raises(EndpointError) as info:
            await t.send(request(sim, model="no/such-model"))
        await t.aclose()
    assert info.value.status == 404
    assert "The model `no/such-model` does not exist." in str(info.value)


async def test_429_surfaces_retry_after() -> None:
    with OpenAISimulator(plan=FaultPlan(rates={"http_429": 1.0}, retry_after_s=7)) as sim:
        t = transport_for(sim)
        with pytest.raises(TransientError) as info:
            await t.send(request(sim))
        await t.aclose()
    assert info.value.retry_after == 7.0
    assert info.value.status == 429 and info.value.cause == "http_429"


async def test_wrong_api_key_is_an_auth_error_naming_the_env_var() -> None:
    with OpenAISimulator() as sim:
        t = OpenAITransport(sim.base_url, api_key="sk-wrong-key-123456")
        with pytest.raises(AuthError) as info:
            await t.send(request(sim))
        await t.aclose()
    assert "OCRCLIENT_API_KEY" in str(info.value)
    assert "sk-wrong-key-123456" not in str(info.value)
    assert "Unauthorized" in str(info.value)


@pytest.mark.parametrize("stream", [True, False])
async def test_connection_reset_mid_reply_is_transient(stream: bool) -> None:
    with OpenAISimulator(plan=FaultPlan(rates={"reset": 1.0}, latency_s=(0.1, 0.1))) as sim:
        t = transport_for(sim)
        with pytest.raises(TransientError) as info:
            await t.send(request(sim, stream=stream))
        await t.aclose()
        assert sim.resets == 1
    assert info.value.cause in ("reset", "connection", "stream_cut")


async def test_hang_hits_the_per_attempt_deadline() -> None:
    with OpenAISimulator(plan=FaultPlan(rates={"hang": 1.0}, hang_s=30)) as sim:
        t = transport_for(sim)
        t0 = time.monotonic()
        with pytest.raises(TransientError) as info:
            await t.send(request(sim, timeout=0.6))
        elapsed = time.monotonic() - t0
        await t.aclose()
    assert info.value.cause == "timeout"
    assert 0.5 <= elapsed < 4.0  # far below hang_s: the deadline cut it (loose for loaded CI)


async def test_idle_timeout_between_stream_chunks() -> None:
    with OpenAISimulator(plan=FaultPlan(latency_s=(2.0, 2.0)), stream_chunks=4) as sim:
        t = transport_for(sim, idle_timeout_s=0.2)
        t0 = time.monotonic()
        with pytest.raises(TransientError) as info:
            await t.send(request(sim, timeout=5))
        await t.aclose()
    assert info.value.cause == "stream_idle"
    assert time.monotonic() - t0 < 1.9  # before the 2 s stream could have finished


class _OddStream(HTTPSimulator):
    """Streams one content chunk, then either an in-stream vLLM error event or a clean end of
    the body without a finish_reason or ``[DONE]``."""

    def __init__(self, ending: str) -> None:
        super().__init__()
        self.ending = ending

    def dispatch(self, req: SimRequest) -> Any:
        def work(emit: Any) -> None:
            emit(("head", 200, [("Content-Type", "text/event-stream")], True))
            first = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "partial"}, "finish_reason": None}]}
            emit(("data", b"data: " + json.dumps(first).encode() + b"\n\n"))
            if self.ending == "error_event":
                err = {"error": {"message": "engine died", "type": "InternalServerError",
                                 "param": None, "code": 500}}
                emit(("data", b"data: " + json.dumps(err).encode() + b"\n\n"))
            emit(("end",))

        return work


@pytest.mark.parametrize(("ending", "cause"), [("error_event", "http_500"), ("clean_end", "stream_cut")])
async def test_stream_errors_and_early_ends_are_transient(ending: str, cause: str) -> None:
    with _OddStream(ending) as sim:
        t = OpenAITransport(sim.url, cap_max_tokens=False)
        with pytest.raises(TransientError) as info:
            await t.send(ModelRequest(body={"model": "m", "messages": [], "max_tokens": 5}, timeout_s=5))
        await t.aclose()
    assert info.value.cause == cause
    if ending == "error_event":
        assert "engine died" in str(info.value)


async def test_cancelling_a_send_propagates() -> None:
    with OpenAISimulator(plan=FaultPlan(rates={"hang": 1.0}, hang_s=30)) as sim:
        t = transport_for(sim)
        task = asyncio.create_task(t.send(request(sim, timeout=10)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await t.aclose()


# ---------------------------------------------------------------------------------------------
# max_model_len
# ---------------------------------------------------------------------------------------------


async def test_max_tokens_is_capped_to_max_model_len() -> None:
    with OpenAISimulator(max_model_len=1000) as sim:
        uncapped = transport_for(sim, cap_max_tokens=False)
        with pytest.raises(PermanentError) as info:
            await uncapped.send(request(sim, max_tokens=5000))
        assert "maximum context length is 1000 tokens" in str(info.value)
        await uncapped.aclose()

        t = transport_for(sim)
        assert await t.max_model_len(sim.model) == 1000
        reply = await t.send(request(sim, max_tokens=5000))
        reply2 = await t.send(request(sim, stream=False, max_tokens=5000))
        small = await t.send(request(sim, max_tokens=100))
        await t.aclose()
        assert reply.text and reply2.text and small.text
        assert reply.data["max_tokens_capped_to"] == 750  # 1000 minus a quarter for the prompt
        assert [b["max_tokens"] for b in sim.bodies[-3:]] == [750, 750, 100]
        assert "max_tokens_capped_to" not in small.data
        assert sim.requests["GET /v1/models"] == 1  # looked up once, lazily


@pytest.mark.parametrize("stream", [True, False])
async def test_a_request_refused_for_its_length_is_sent_again_capped(stream: bool) -> None:
    """Before the model cards are known, a request leaves with the dialect's ``max_tokens``;
    the server's 400 for prompt + max_tokens over the context names the length (and the
    prompt's tokens): the same request is sent once more, capped to fit, and the model's next
    requests are capped from the start.  No ``GET /v1/models`` stands in the way."""
    with OpenAISimulator(max_model_len=1000) as sim:
        t = transport_for(sim)
        first = await t.send(request(sim, stream=stream, max_tokens=5000))
        second = await t.send(request(sim, stream=stream, max_tokens=5000))
        small = await t.send(request(sim, stream=stream, max_tokens=100))
        await t.aclose()
    assert first.text and second.text and small.text
    assert [b["max_tokens"] for b in sim.bodies] == [5000, 750, 750, 100]  # refused once, then capped
    assert first.data["max_tokens_capped_to"] == second.data["max_tokens_capped_to"] == 750
    assert "max_tokens_capped_to" not in small.data
    assert sim.requests["GET /v1/models"] == 0


def _refusal(message: str, status: int = 400) -> PermanentError:
    return PermanentError(f"POST /v1/chat/completions: HTTP {status}: {message}", status=status)


@pytest.mark.parametrize(
    "message, cap",
    [
        # the simulator's (vLLM's serving engine): the length and "at least" the prompt's tokens
        ("This model's maximum context length is 8192 tokens. However, you requested 8192 output tokens and "
         "your prompt contains at least 3000 input tokens, for a total of at least 11192 tokens. Please reduce "
         "the length of the input prompt or the number of requested output tokens.", 8192 - 3000),
        # vLLM's check of max_tokens: the prompt's tokens
        ("'max_tokens' or 'max_completion_tokens' is too large: 8192. This model's maximum context length is "
         "8192 tokens and your request has 1500 input tokens (8192 > 8192 - 1500). None", 8192 - 2048),
        # older vLLM: the split of the total
        ("This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (900 in the "
         "messages, 8100 in the completion). Please reduce the length of the messages or completion.", 8192 - 2048),
        # the length alone: the reserve (a quarter)
        ("This model's maximum context length is 8192 tokens.", 8192 - 2048),
    ],
)
def test_every_wording_of_a_length_refusal_gives_its_cap(message: str, cap: int) -> None:
    """The cap from a refusal is its length minus the prompt's share: the tokens it names, or
    the reserve (a quarter of the length) if that is more."""
    t = OpenAITransport("http://127.0.0.1:9/v1", api_key="k")
    body = {"model": "m", "max_tokens": 8192}
    assert t._cap_to_refusal(body, _refusal(message)) == cap and body["max_tokens"] == cap
    body = {"model": "m", "max_completion_tokens": 8192}
    assert t._cap_to_refusal(body, _refusal(message)) == cap and body["max_completion_tokens"] == cap
    assert t._cap({"model": "m", "max_tokens": 8192}) == 8192 - 2048  # the next request: the reserve
    assert t._cap({"model": "other", "max_tokens": 8192}) is None  # another model's length is unknown


@pytest.mark.parametrize(
    "exc, body, cap_max_tokens",
    [
        (_refusal("The model `m` does not support images."), {"model": "m", "max_tokens": 8192}, True),
        (_refusal("This model's maximum context length is 8192 tokens.", status=413), {"model": "m", "max_tokens": 8192}, True),
        (_refusal("This model's maximum context length is 8192 tokens."), {"model": "m", "max_tokens": 6000}, True),
        (_refusal("This model's maximum context length is 8192 tokens."), {"model": "m"}, True),
        (_refusal("This model's maximum context length is 8192 tokens."), {"model": "m", "max_tokens": 8192}, False),
    ],
    ids=["another-400", "not-a-400", "already-fits", "no-max-tokens", "capping-off"],
)
def test_other_refusals_are_not_sent_again(exc: PermanentError, body: dict[str, Any], cap_max_tokens: bool) -> None:
    """Only a 400 for the length, whose cap changes the request, is sent again (so never twice
    the same): any other refusal stands, and so does every refusal when capping is off."""
    t = OpenAITransport("http://127.0.0.1:9/v1", api_key="k", cap_max_tokens=cap_max_tokens)
    before = dict(body)
    assert t._cap_to_refusal(body, exc) is None and body == before


async def test_a_length_refusal_that_capping_cannot_fix_fails_the_page_once() -> None:
    """A prompt alone over the context: the capped request is refused too, and that refusal is
    the page's error (sent twice, not more)."""
    with OpenAISimulator(max_model_len=8) as sim:  # the simulated prompt alone is over 8 tokens
        t = transport_for(sim)
        with pytest.raises(PermanentError, match="maximum context length is 8 tokens"):
            await t.send(request(sim, max_tokens=5000))
        await t.aclose()
    assert sim.requests["POST /v1/chat/completions"] == 2


async def test_models_lookup_failure_is_tolerated() -> None:
    with OpenAISimulator() as sim:
        t = transport_for(sim)
        t.api_url = sim.url + "/nowhere"  # /v1/models cannot be read from here
        assert await t.max_model_len("x") is None
        t.api_url = sim.base_url
        reply = await t.send(request(sim))
        await t.aclose()
    assert reply.text and reply.data.get("max_tokens_capped_to") is None


# ---------------------------------------------------------------------------------------------
# RunPod pod proxy
# ---------------------------------------------------------------------------------------------


async def test_streaming_survives_the_proxy_idle_cut_that_kills_a_json_reply() -> None:
    # first byte after 0.3 s (under the 0.5 s idle limit), then chunks every 0.125 s for 2 s
    plan = FaultPlan(rates={"slow_first_byte": 1.0}, first_byte_delay_s=0.3, latency_s=(2.0, 2.0))
    with OpenAISimulator(plan=plan, mode="proxy", proxy_idle_s=0.5, stream_chunks=16) as sim:
        t = transport_for(sim)
        t0 = time.monotonic()
        reply = await t.send(request(sim, stream=True))
        streamed_for = time.monotonic() - t0
        assert reply.finish_reason == "stop" and reply.text == echo_responder(chat_body(sim)).text
        assert streamed_for > 2.0 > sim.proxy_idle_s  # longer in total than the idle limit
        assert sim.proxy_524s == 0 and sim.proxy_cuts == 0

        with pytest.raises(TransientError) as info:
            await t.send(request(sim, stream=False))
        await t.aclose()
    assert info.value.cause == "proxy_idle_524" and info.value.status == 524
    assert "\n" not in str(info.value) and "<" not in str(info.value)
    assert sim.proxy_524s == 1


async def test_proxy_cuts_a_stream_that_goes_silent() -> None:
    # chunks 1.2 s apart behind a 0.5 s proxy: the proxy drops the connection mid-stream
    with OpenAISimulator(plan=FaultPlan(latency_s=(2.4, 2.4)), mode="proxy", proxy_idle_s=0.5,
                         stream_chunks=2) as sim:
        t = transport_for(sim)
        with pytest.raises(TransientError):
            await t.send(request(sim, timeout=5))
        await t.aclose()
        assert sim.proxy_cuts == 1


# ---------------------------------------------------------------------------------------------
# Modal
# ---------------------------------------------------------------------------------------------


async def test_modal_303_is_followed_to_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = FaultPlan(latency_s=(0.6, 0.6))
    with OpenAISimulator(plan=plan, mode="modal", modal_redirect_after_s=0.25) as sim:
        monkeypatch.setenv("MODAL_KEY", sim.modal_key or "")
        monkeypatch.setenv("MODAL_SECRET", sim.modal_secret or "")
        cfg = BackendConfig(name="modal-test", transport="openai", dialect="plain",
                            base_url=sim.base_url, model=sim.model,
                            transport_options={"modal": True, "stream": False})
        t = OpenAITransport.from_config(cfg)
        reply = await t.send(request(sim, timeout=5))
        await t.aclose()
    assert reply.text == echo_responder(chat_body(sim)).text and reply.finish_reason == "stop"
    assert sim.redirects >= 1 and sim.statuses[303] >= 1
    # the result URL was fetched with GET, carrying the proxy-auth headers (else 401)
    assert sim.requests["GET /v1/chat/completions"] >= 1
    assert sim.statuses[401] == 0
    assert sim.requests["POST /v1/chat/completions"] == 1


async def test_modal_303_on_a_stream_that_starts_late() -> None:
    plan = FaultPlan(rates={"slow_first_byte": 1.0}, first_byte_delay_s=0.5, latency_s=(0.1, 0.1))
    with OpenAISimulator(plan=plan, mode="modal", modal_redirect_after_s=0.2) as sim:
        t = transport_for(sim)
        reply = await t.send(request(sim, stream=True))
        await t.aclose()
    assert reply.data["streamed"] is True and reply.finish_reason == "stop"
    assert reply.text == echo_responder(chat_body(sim)).text
    assert sim.redirects >= 1 and sim.requests["GET /v1/chat/completions"] >= 1


class _RedirectAway(HTTPSimulator):
    """Answers the POST with a 303 to another host (localhost instead of 127.0.0.1), whose GET
    echoes the headers it received as the completion text."""

    def dispatch(self, req: SimRequest) -> Any:
        if req.method == "POST":
            where = f"http://localhost:{self.port}/elsewhere"
            return lambda emit: self.emit_bytes(emit, 303, b"", "text/plain", [("Location", where)])
        seen = {k.lower(): v for k, v in req.headers.items()}
        completion = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                      "choices": [{"index": 0, "finish_reason": "stop",
                                   "message": {"role": "assistant", "content": json.dumps(seen)}}]}
        return lambda emit: self.emit_json(emit, 200, completion)


async def test_credentials_are_not_sent_to_another_host_on_redirect() -> None:
    with _RedirectAway() as sim:
        t = OpenAITransport(sim.url, api_key="sk-home-only-24680", modal=True,
                            modal_key="wk-home-only", modal_secret="ws-home-only-13579",
                            stream=False, cap_max_tokens=False)
        reply = await t.send(ModelRequest(body={"model": "m", "messages": [], "max_tokens": 5},
                                          timeout_s=5))
        await t.aclose()
    seen = json.loads(reply.text)
    assert seen["host"].startswith("localhost")
    assert "authorization" not in seen and "modal-key" not in seen and "modal-secret" not in seen


async def test_modal_without_keys_is_an_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODAL_KEY", raising=False)
    monkeypatch.delenv("MODAL_SECRET", raising=False)
    with OpenAISimulator(mode="modal") as sim:
        cfg = BackendConfig(name="modal-test", transport="openai", dialect="plain",
                            base_url=sim.base_url, transport_options={"modal": True})
        t = OpenAITransport.from_config(cfg)
        with pytest.raises(AuthError) as info:
            await t.send(request(sim))
        health = await t.health()
        await t.aclose()
    assert "missing credentials for proxy authorization" in str(info.value)
    assert "MODAL_KEY" in str(info.value)
    assert health.ok is False


def test_modal_result_url_redirects_to_itself_until_the_result_is_ready() -> None:
    """The documented wire (docs/testing.md): a request not answering after
    ``modal_redirect_after_s`` gets a 303 to its result URL, whose GET answers once the result
    is ready, or, still not ready after another ``modal_redirect_after_s``, a 303 to itself."""
    with OpenAISimulator(mode="modal", model="m", modal_redirect_after_s=0.4, plan=FaultPlan(latency_s=1.0)) as sim:
        c = httpx.Client(timeout=30)
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
        first = c.post(sim.base_url + "/chat/completions", headers=sim.modal_headers, json=body)
        assert first.status_code == 303 and "__modal_function_call_id=fc-" in first.headers["location"]
        hops, resp = [], first
        while resp.status_code == 303:
            assert len(hops) < 10
            hops.append(resp.headers["location"])
            resp = c.get(hops[-1], headers=sim.modal_headers)
        c.close()
    assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"]
    assert len(hops) >= 2 and len(set(hops)) == 1, hops  # (another 303, to the same URL)


async def test_modal_cold_start_waits_then_answers() -> None:
    plan = FaultPlan(cold_start_s=1.0)
    with OpenAISimulator(plan=plan, mode="modal", modal_redirect_after_s=0.3) as sim:
        t = transport_for(sim, stream=False)
        t0 = time.monotonic()
        reply = await t.send(request(sim))
        assert time.monotonic() - t0 >= 1.0
        t1 = time.monotonic()
        await t.send(request(sim))
        assert time.monotonic() - t1 < 0.8  # warm now: no second cold start
        await t.aclose()
    assert reply.text and sim.redirects >= 1


# ---------------------------------------------------------------------------------------------
# secrets, config, health, concurrency
# ---------------------------------------------------------------------------------------------


async def test_secrets_never_in_messages_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plan = FaultPlan(seed=3, rates={"http_500": 0.5}, latency_s=(0.3, 0.3))
    errors: list[str] = []
    with OpenAISimulator(plan=plan, mode="modal", api_key="sk-sim-secret-api-key-998877",
                         modal_key="wk-modal-key-id-445566", modal_secret="ws-modal-secret-112233",
                         modal_redirect_after_s=0.15) as sim:
        t = transport_for(sim)
        ok = 0
        for i in range(4):
            for stream in (True, False):
                try:
                    await t.send(request(sim, stream=stream, temperature=0.1 * i))
                    ok += 1
                except TransientError as exc:
                    errors.append(str(exc))
        wrong = OpenAITransport(sim.base_url, api_key="sk-sim-secret-api-key-998877", modal=True,
                                modal_key="wk-modal-key-id-445566", modal_secret="ws-wrong-secret-000")
        with pytest.raises(AuthError) as info:
            await wrong.send(request(sim))
        errors.append(str(info.value))
        errors.append((await t.health()).detail)
        await t.aclose()
        await wrong.aclose()
    assert ok >= 1 and len(errors) >= 3 and sim.redirects >= 1  # keys were really sent
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "Sending HTTP Request" in logged or "POST" in logged  # DEBUG logging was on
    for secret in ("sk-sim-secret-api-key-998877", "wk-modal-key-id-445566",
                   "ws-modal-secret-112233", "ws-wrong-secret-000"):
        assert secret not in logged
        assert all(secret not in e for e in errors)


def test_from_config_requires_a_url_and_names_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCRCLIENT_BASE_URL", raising=False)
    monkeypatch.delenv("POD_URL", raising=False)
    cfg = BackendConfig(name="pod", transport="openai", dialect="plain", base_url_env="POD_URL")
    with pytest.raises(ConfigError) as info:
        OpenAITransport.from_config(cfg)
    assert "$POD_URL" in str(info.value) and "--base-url" in str(info.value)


async def test_from_config_reads_url_key_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAISimulator() as sim:
        monkeypatch.setenv("POD_URL", sim.url)  # no /v1: normalised
        monkeypatch.setenv("OCRCLIENT_API_KEY", sim.api_key or "")
        cfg = BackendConfig(name="pod", transport="openai", dialect="plain", base_url_env="POD_URL",
                            model=sim.model, transport_options={"stream": False})
        t = OpenAITransport.from_config(cfg)
        assert t.api_url == sim.base_url and t.stream is False and t.modal is False
        reply = await t.send(request(sim))
        await t.aclose()
    assert reply.data["streamed"] is False and sim.non_streamed == 1


def test_base_url_normalisation() -> None:
    assert normalize_base_url("https://x-8000.proxy.runpod.net/v1/") == (
        "https://x-8000.proxy.runpod.net", "https://x-8000.proxy.runpod.net/v1")
    assert normalize_base_url("https://x-8000.proxy.runpod.net")[1] == "https://x-8000.proxy.runpod.net/v1"
    assert normalize_base_url("http://h:1/v1/chat/completions")[1] == "http://h:1/v1"
    assert OpenAITransport("https://me--lighton-ocr-vllm-serve.modal.run").modal is True
    with pytest.raises(ConfigError):
        normalize_base_url("ftp://nope")


async def test_health_reports_models_and_max_model_len() -> None:
    with OpenAISimulator(max_model_len=8192) as sim:
        t = transport_for(sim, model=sim.model)
        health = await t.health()
        bad = await OpenAITransport(sim.base_url, api_key="nope-nope").health()
        other = await transport_for(sim, model="other/model").health()
        await t.aclose()
    assert health.ok and health.info["models"] == {sim.model: 8192}
    assert "max_model_len 8192" in health.detail
    assert not bad.ok and "401" in bad.detail
    assert not other.ok and "not served" in other.detail


async def test_health_when_the_server_is_down() -> None:
    with OpenAISimulator() as sim:
        url = sim.base_url
    t = OpenAITransport(url)
    health = await t.health()
    with pytest.raises(TransientError) as info:
        await t.send(ModelRequest(body={"model": "m", "messages": [], "max_tokens": 5}, timeout_s=2))
    await t.aclose()
    assert not health.ok
    assert info.value.cause == "connection"


async def test_slots_bound_concurrency_and_requests_are_counted_per_page() -> None:
    with OpenAISimulator(plan=FaultPlan(latency_s=(0.15, 0.15), slots=2)) as sim:
        t = transport_for(sim)
        reqs = [request(sim, stream=i % 2 == 0, temperature=0.01 * i) for i in range(6)]
        replies = await asyncio.gather(*(t.send(r) for r in reqs))
        await t.aclose()
    assert all(r.finish_reason == "stop" for r in replies)
    assert sim.max_active == 2 and sim.max_concurrency == 6
    assert sum(sim.requests_by_key.values()) == 6 and len(sim.requests_by_key) == 6
    assert sim.streamed == 3 and sim.non_streamed == 3


async def test_fault_plan_is_reproducible_per_page() -> None:
    outcomes = []
    for _ in range(2):
        plan = FaultPlan(seed=11, rates={"http_503": 0.5})
        with OpenAISimulator(plan=plan) as sim:
            t = transport_for(sim)
            run = []
            for i in range(6):
                try:
                    await t.send(request(sim, temperature=0.1 * i))
                    run.append("ok")
                except TransientError as exc:
                    run.append(exc.cause)
            await t.aclose()
        outcomes.append(run)
    assert outcomes[0] == outcomes[1]
    assert "http_503" in outcomes[0] and "ok" in outcomes[0]


# ---------------------------------------------------------------------------------------------
# launcher
# ---------------------------------------------------------------------------------------------


def test_launcher_builds_each_mode() -> None:
    args = build_parser().parse_args(
        ["proxy", "--proxy-idle", "0.5", "--rate", "http_503=0.2", "--latency", "0.1", "0.3",
         "--error-shape", "flat"])
    sim = make_simulator(args)
    assert isinstance(sim, OpenAISimulator)
    assert sim.mode == "proxy" and sim.proxy_idle_s == 0.5 and sim.error_shape == "flat"
    assert sim.plan.rates == {"http_503": 0.2} and sim.plan.latency_s == (0.1, 0.3)
    modal = make_simulator(build_parser().parse_args(["modal", "--modal-redirect-after", "2"]))
    assert modal.mode == "modal" and modal.modal_headers and modal.api_key is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["openai", "--rate", "nonsense=0.1"])
    ocular = make_simulator(build_parser().parse_args(["ocular", "--api-key", "k-123456"]))
    assert type(ocular).__name__ == "OcularSimulator" and ocular.api_key == "k-123456"
    pytest.importorskip("ocrclient.testing.runpod_sim")
    runpod = make_simulator(build_parser().parse_args(["runpod", "--slots", "3"]))
    assert type(runpod).__name__ == "RunPodSimulator" and runpod.plan.slots == 3


def test_launcher_serves_until_terminated() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocrclient.testing", "openai", "--port", "0", "--no-auth"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        base = line.rsplit(" ", 1)[1].strip()
        models = httpx.get(base + "/models", timeout=5).json()
        assert models["data"][0]["max_model_len"] == 16384
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0


@pytest.mark.parametrize("stream", [True, False])
async def test_sent_request_bodies_are_released(stream: bool) -> None:
    """The page image in a sent request is dropped once the reply is in (httpx keeps requests
    alive in reference cycles); the server still got all of it."""
    sent: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        sent.append(request)

    with OpenAISimulator() as sim:
        t = transport_for(sim)
        t._http.event_hooks["request"].append(capture)
        req = request(sim, stream=stream)
        reply = await t.send(req)
        await t.aclose()
        assert reply.text == echo_responder(req.body).text
        assert sim.bodies[-1]["messages"] == req.body["messages"]
    posts = [r for r in sent if r.method == "POST"]
    assert posts and all(r.content == b"" for r in posts)


@pytest.mark.parametrize("stream", [True, False])
async def test_restart_cuts_requests_in_flight_then_serves_again(stream: bool) -> None:
    """``sim.restart()`` (a vLLM server restart): the request in flight is cut (a transient
    error, well before its 30 s hang or 10 s deadline), the port refuses connections while the
    server is down, then it listens again at the same base URL, reloads its model (``/health``
    is 502 during the cold start) and the cut page, sent again, is answered."""
    plan = FaultPlan(rates={"hang": 1.0}, hang_s=30, max_faults_per_key=1, cold_start_s=0.6)
    with OpenAISimulator(plan=plan) as sim:
        base_url = sim.base_url
        t = transport_for(sim)
        req = request(sim, stream=stream, timeout=10)
        inflight = asyncio.create_task(t.send(req))
        deadline = time.monotonic() + 5
        while not (sim.max_active and sim.is_ready()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # the request holds a slot and hangs
        assert not inflight.done()
        t0 = time.monotonic()
        restarting = asyncio.create_task(asyncio.to_thread(sim.restart, 0.5))
        with pytest.raises(TransientError) as cut:
            await inflight
        assert time.monotonic() - t0 < 5
        assert cut.value.cause in ("reset", "connection", "stream_cut")
        # while down: refused (a request that reached a server would hang to its 2 s deadline)
        with pytest.raises(TransientError) as down:
            await t.send(request(sim, timeout=2, temperature=0.5))
        assert down.value.cause == "connection"
        await restarting
        assert sim.restarts == 1 and sim.base_url == base_url
        async with httpx.AsyncClient() as client:
            loading = await client.get(sim.url + "/health")
            reply = await t.send(req)  # the cut page again: its fault was used up
            healthy = await client.get(sim.url + "/health")
        await t.aclose()
    assert loading.status_code == 502 and healthy.status_code == 200
    assert reply.text == echo_responder(req.body).text and reply.finish_reason == "stop"
    assert plan.injected["hang"] == 1


class _CutStream(HTTPSimulator):
    """A streamed completion whose connection drops (``reset``) or goes silent after ``after``
    of its events: ``content``, ``finish`` (the finish_reason chunk), ``usage``."""

    EVENTS = ("content", "finish", "usage")

    def __init__(self, after: str, how: str) -> None:
        super().__init__()
        self.after, self.how = after, how
        self.posts = 0

    def dispatch(self, req: SimRequest) -> Any:
        self.posts += 1

        def work(emit: Any) -> None:
            base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            chunks = {
                "content": {**base, "choices": [{"index": 0, "delta": {"content": "the whole page"}, "finish_reason": None}]},
                "finish": {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                "usage": {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}},
            }
            emit(("head", 200, [("Content-Type", "text/event-stream")], True))
            for name in self.EVENTS[: self.EVENTS.index(self.after) + 1]:
                emit(("data", b"data: " + json.dumps(chunks[name]).encode() + b"\n\n"))
            if self.how == "silent":
                time.sleep(1.5)
            emit(("reset",))

        return work


@pytest.mark.parametrize("how", ["reset", "silent"])
@pytest.mark.parametrize("after", _CutStream.EVENTS)
async def test_a_stream_cut_after_its_finish_is_a_whole_reply(after: str, how: str) -> None:
    """The whole kind: a stream dropped (or silent past the idle limit) after each of its events.
    Once the finish_reason has come the reply is whole: it is kept, not sent again (it was:
    "connection dropped mid-reply", the page paid for twice).  Before it, the cut is transient."""
    with _CutStream(after, how) as sim:
        t = OpenAITransport(sim.url, cap_max_tokens=False, idle_timeout_s=0.5)
        body = {"model": "m", "messages": [], "max_tokens": 50}
        try:
            if after == "content":
                with pytest.raises(TransientError):
                    await t.send(ModelRequest(body=body, timeout_s=5))
            else:
                reply = await t.send(ModelRequest(body=body, timeout_s=5))
                assert reply.text == "the whole page" and reply.finish_reason == "stop"
                assert reply.completion_tokens == (3 if after == "usage" else 0)
        finally:
            await t.aclose()
    assert sim.posts == 1


@pytest.mark.parametrize("names", [None, ("TEAM_MODAL_KEY", "TEAM_MODAL_SECRET")], ids=["default", "own"])
@pytest.mark.parametrize("given", ["none", "wrong"])
async def test_a_modal_auth_error_names_the_variables_the_profile_reads(
    monkeypatch: pytest.MonkeyPatch, names: tuple[str, str] | None, given: str
) -> None:
    """The whole kind: with the default variables and with a profile's own
    (``transport_options.modal_key_env`` / ``modal_secret_env``), without keys and with wrong
    ones, the message names the variables this backend reads.  It always said "set MODAL_KEY
    and MODAL_SECRET", which this profile never reads."""
    key_env, secret_env = names or ("MODAL_KEY", "MODAL_SECRET")
    for var in ("MODAL_KEY", "MODAL_SECRET", "TEAM_MODAL_KEY", "TEAM_MODAL_SECRET"):
        monkeypatch.delenv(var, raising=False)
    if given == "wrong":
        monkeypatch.setenv(key_env, "wk-wrong-key-1234")
        monkeypatch.setenv(secret_env, "ws-wrong-secret-1234")
    options: dict[str, Any] = {"modal": True}
    if names:
        options |= {"modal_key_env": key_env, "modal_secret_env": secret_env}
    with OpenAISimulator(mode="modal", modal_key="wk-right", modal_secret="ws-right") as sim:
        cfg = BackendConfig(name="modal-test", transport="openai", dialect="plain", base_url=sim.base_url,
                            transport_options=options)  # fmt: skip
        t = OpenAITransport.from_config(cfg)
        with pytest.raises(AuthError) as info:
            await t.send(request(sim))
        await t.aclose()
    message = str(info.value)
    assert key_env in message and secret_env in message, message
    if names:
        assert not re.search(r"(?<![A-Z_])MODAL_(KEY|SECRET)\b", message), message


#: each FaultPlan setting, the launcher's option for it, and a value
PLAN_OPTIONS = {
    "seed": (["--seed", "7"], 7),
    "rates": (["--rate", "hang=0.5"], {"hang": 0.5}),
    "latency_s": (["--latency", "0.1", "0.2"], (0.1, 0.2)),
    "slots": (["--slots", "3"], 3),
    "cold_start_s": (["--cold-start", "1.5"], 1.5),
    "retry_after_s": (["--retry-after", "4"], 4.0),
    "hang_s": (["--hang", "2"], 2.0),
    "first_byte_delay_s": (["--first-byte-delay", "0.7"], 0.7),
    "max_faults_per_key": (["--max-faults-per-key", "2"], 2),
}


@pytest.mark.parametrize("kind", ["openai", "proxy", "runpod", "ocular"])
def test_the_launcher_sets_every_fault_plan_setting(kind: str) -> None:
    """The whole kind: every setting of a FaultPlan has its option in ``python -m
    ocrclient.testing``.  ``--rate slow_first_byte=1`` could not give the 524 the docs promise
    (no option for ``first_byte_delay_s``) and ``--rate hang=P`` held each request an hour."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(FaultPlan) if f.init}
    assert fields == set(PLAN_OPTIONS), fields ^ set(PLAN_OPTIONS)
    for name, (argv, want) in PLAN_OPTIONS.items():
        sim = make_simulator(build_parser().parse_args([kind, *argv]))
        assert getattr(sim.plan, name) == want, (kind, name, getattr(sim.plan, name))
