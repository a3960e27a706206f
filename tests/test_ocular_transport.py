"""Contract tests: OcularTransport against the simulated OLM / RoLM (ocular) server."""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import pytest

from ocrclient.config import BackendConfig
from ocrclient.errors import AuthError, ConfigError, EndpointError, PermanentError, TransientError
from ocrclient.testing.faults import FaultPlan, FixedResponder, SimReply, echo_responder
from ocrclient.testing.ocular_sim import OcularSimulator
from ocrclient.transports.base import ModelRequest, Transport
from ocrclient.transports.ocular import OcularTransport, error_message

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-fake-page-bytes-").decode()


def ocular_body(**extra: Any) -> dict[str, Any]:
    """The seed's OCRRequest fields."""
    return {
        "image": PNG,
        "model_name": "microsoft/trocr-base-printed",
        "prompt": "Extract all text from this image",
        "use_preprocessing": False,
        "ensemble_size": 1,
        "robust_processing": False,
        "decoding_options": {"num_beams": 4},
        "options": {},
        **extra,
    }


def request(route: str = "/extract_text", timeout: float = 5.0, **extra: Any) -> ModelRequest:
    return ModelRequest(kind="ocular", body=ocular_body(**extra), route=route, timeout_s=timeout)


async def test_extract_text_returns_text_confidence_and_timing() -> None:
    responder = FixedResponder("INVOICE #A-123\nTotal: $42.00", data={"confidence": 0.87})
    with OcularSimulator(responder=responder, plan=FaultPlan(latency_s=(0.05, 0.05))) as sim:
        t = OcularTransport(sim.url)
        assert isinstance(t, Transport)
        reply = await t.send(request())
        await t.aclose()
    assert reply.text == "INVOICE #A-123\nTotal: $42.00"
    assert reply.data["confidence"] == 0.87
    assert reply.data["processing_time"] >= 0.05
    assert reply.data["language"] == "en"
    assert reply.finish_reason == "stop" and reply.latency_s >= 0.05
    assert sim.bodies[-1] == ocular_body()  # the body goes on the wire unchanged


async def test_robust_route_and_default_route() -> None:
    with OcularSimulator() as sim:
        t = OcularTransport(sim.url, route="/extract_text_robust")
        robust = await t.send(ModelRequest(kind="ocular", body=ocular_body(), timeout_s=5))
        plain = await t.send(request("/extract_text"))
        await t.aclose()
    assert sim.requests["POST /extract_text_robust"] == 1
    assert sim.requests["POST /extract_text"] == 1
    assert robust.data["metadata"]["robust_processing"] is True
    assert plain.text == echo_responder(ocular_body()).text
    assert plain.data["confidence"] == sim.default_confidence


async def test_structured_route_keeps_source_text_and_data() -> None:
    responder = FixedResponder("Invoice INV-77 total 12.50",
                               data={"structured_data": {"invoice_number": "INV-77", "total_amount": 12.5}})
    with OcularSimulator(responder=responder) as sim:
        t = OcularTransport(sim.url)
        reply = await t.send(request("/extract_structured", schema={"invoice_number": "string"}))
        await t.aclose()
    assert reply.text == "Invoice INV-77 total 12.50"
    assert reply.data["structured_data"] == {"invoice_number": "INV-77", "total_amount": 12.5}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model_name": "x"}, "HTTP 422: image: Field required"),
        ({"image": "%%% not base64 %%%"}, "HTTP 400: Invalid image data"),
    ],
)
async def test_bad_requests_are_permanent_with_fastapi_messages(body: dict[str, Any], message: str) -> None:
    with OcularSimulator() as sim:
        t = OcularTransport(sim.url)
        with pytest.raises(PermanentError) as info:
            await t.send(ModelRequest(kind="ocular", body=body, route="/extract_text", timeout_s=5))
        await t.aclose()
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value) and "{" not in str(info.value)
    assert not isinstance(info.value, AuthError)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, PermanentError), (404, EndpointError), (501, PermanentError), (401, AuthError),
     (403, AuthError), (408, TransientError), (500, TransientError), (503, TransientError),
     (524, TransientError)],
)
async def test_statuses_are_classified(status: int, kind: type[Exception]) -> None:
    with OcularSimulator(force_status=status) as sim:
        t = OcularTransport(sim.url)
        with pytest.raises(kind) as info:
            await t.send(request())
        await t.aclose()
    assert type(info.value) is kind
    assert getattr(info.value, "status", None) == status


async def test_429_retry_after_and_503_are_transient() -> None:
    with OcularSimulator(plan=FaultPlan(rates={"http_429": 1.0}, retry_after_s=3)) as sim:
        t = OcularTransport(sim.url)
        with pytest.raises(TransientError) as info:
            await t.send(request())
        await t.aclose()
    assert info.value.retry_after == 3.0 and info.value.status == 429
    with OcularSimulator(plan=FaultPlan(rates={"http_503": 1.0})) as sim:
        t = OcularTransport(sim.url)
        with pytest.raises(TransientError) as info:
            await t.send(request())
        await t.aclose()
    assert "OCR processing failed: simulated HTTP 503" in str(info.value)


async def test_api_key_is_sent_and_a_wrong_one_is_an_auth_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with OcularSimulator(api_key="ocular-secret-key-5150") as sim:
        good = OcularTransport(sim.url, api_key="ocular-secret-key-5150")
        assert (await good.send(request())).text
        bad = OcularTransport(sim.url, api_key="ocular-wrong-key-0000")
        with pytest.raises(AuthError) as info:
            await bad.send(request())
        none = OcularTransport(sim.url)
        with pytest.raises(AuthError):
            await none.send(request())
        for t in (good, bad, none):
            await t.aclose()
    assert "Invalid or missing API key" in str(info.value)
    for secret in ("ocular-secret-key-5150", "ocular-wrong-key-0000"):
        assert secret not in str(info.value) and secret not in caplog.text


async def test_reset_and_hang_are_transient() -> None:
    with OcularSimulator(plan=FaultPlan(rates={"reset": 1.0})) as sim:
        t = OcularTransport(sim.url)
        with pytest.raises(TransientError) as info:
            await t.send(request())
        await t.aclose()
    assert info.value.cause in ("reset", "connection")
    with OcularSimulator(plan=FaultPlan(rates={"hang": 1.0}, hang_s=30)) as sim:
        t = OcularTransport(sim.url)
        t0 = time.monotonic()
        with pytest.raises(TransientError) as info:
            await t.send(request(timeout=0.5))
        await t.aclose()
    assert info.value.cause == "timeout" and time.monotonic() - t0 < 4.0


async def test_behind_the_pod_proxy_a_slow_page_gets_524() -> None:
    plan = FaultPlan(latency_s=(1.0, 1.0))
    with OcularSimulator(plan=plan, mode="proxy", proxy_idle_s=0.3) as sim:
        t = OcularTransport(sim.url)
        with pytest.raises(TransientError) as info:
            await t.send(request())
        await t.aclose()
    assert info.value.cause == "proxy_idle_524"


async def test_health() -> None:
    with OcularSimulator(models_loaded=("microsoft/trocr-large-printed",)) as sim:
        t = OcularTransport(sim.url)
        health = await t.health()
        await t.aclose()
        url = sim.url
    assert health.ok and "trocr-large-printed" in health.detail
    down = OcularTransport(url)
    assert not (await down.health()).ok
    await down.aclose()


async def test_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCULAR_URL", raising=False)
    cfg = BackendConfig(name="olm", transport="ocular", dialect="trocr", base_url_env="OCULAR_URL")
    with pytest.raises(ConfigError) as err:
        OcularTransport.from_config(cfg)
    assert "OCULAR_URL" in str(err.value)
    responder = lambda body: SimReply("robust text", data={"confidence": 0.5})  # noqa: E731
    with OcularSimulator(api_key="olm-key-778899", responder=responder) as sim:
        monkeypatch.setenv("OCULAR_URL", sim.url + "/")
        monkeypatch.setenv("OLM_API_KEY", "olm-key-778899")
        cfg = BackendConfig(name="olm", transport="ocular", dialect="trocr", base_url_env="OCULAR_URL",
                            api_key_env="OLM_API_KEY",
                            transport_options={"route": "/extract_text_robust"})
        t = OcularTransport.from_config(cfg)
        reply = await t.send(ModelRequest(kind="ocular", body=ocular_body(), timeout_s=5))
        await t.aclose()
    assert reply.text == "robust text" and reply.data["confidence"] == 0.5
    assert sim.requests["POST /extract_text_robust"] == 1


def test_error_message_shapes() -> None:
    assert error_message(b'{"detail": "Model loading failed: OOM"}') == "Model loading failed: OOM"
    assert error_message({"error": "Unauthorized"}) == "Unauthorized"
    assert error_message('{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}') == (
        "bad (BadRequestError)")
    assert error_message("<html><title>502 Bad Gateway</title><body>nginx</body></html>") == "502 Bad Gateway"
    assert error_message("modal-http: missing credentials\n") == "modal-http: missing credentials"
    assert len(error_message("x" * 5000)) <= 300


# `ocr health` checks that the backend is reachable AND authorised, on every transport: the whole
# kind is each transport's simulator x the key right, wrong, missing (the ocular one said "ok" with
# a wrong key: its /health asks for none)
@pytest.mark.parametrize("key", ["right", "wrong", "missing"])
@pytest.mark.parametrize("kind", ["ocular", "runpod", "openai", "proxy"])
async def test_health_is_ok_only_when_the_key_is_taken(kind: str, key: str) -> None:
    from ocrclient.registry import load_backend
    from ocrclient.testing import OpenAISimulator, RunPodSimulator

    sim: Any
    if kind == "ocular":
        sim, backend, extra = OcularSimulator(api_key="good-key"), "runpod-trocr", {"transport": "ocular"}
    elif kind == "runpod":
        sim, backend, extra = RunPodSimulator(api_key="good-key"), "runpod-chandra", {}
    else:
        sim = OpenAISimulator(api_key="good-key", mode="direct" if kind == "openai" else "proxy", model="m")
        backend, extra = "openai", {"model": "m"}
    with sim:
        given = {"right": "good-key", "wrong": "bad-key", "missing": None}[key]
        base = sim.url if kind == "ocular" else sim.base_url
        ids = {"endpoint_id": sim.endpoint_id} if kind == "runpod" else {}
        try:
            be = load_backend(backend, base_url=base, api_key=given, api_key_env="NO_SUCH_KEY_VARIABLE", **ids,
                              **extra)  # fmt: skip
        except ConfigError as exc:  # a key the transport needs and was not given: said before any request
            assert key == "missing" and "key" in str(exc), exc
            return
        try:
            health = await be.transport.health()
        finally:
            await be.aclose()
    assert health.ok == (key == "right"), (kind, key, health)
    if key == "wrong":
        assert "key" in health.detail.lower(), health.detail

