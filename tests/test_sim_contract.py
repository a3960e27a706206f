"""The simulators, as users' own test suites use them (docs/testing.md), answer as the clouds
do.  Each was found wrong from outside: ``RunPodSimulator`` took no ``key_fn`` (the docs tell
Chandra's users to pass one: a deterministic "fail once, then succeed" test could not be
written); the vLLM simulator answered a wrong method with 404 (vLLM: 405), a request without
messages with 200 (vLLM: 400), a request naming no model with 404 "The model `None` does not
exist." (vLLM serves it), kept the bodies without their stream options, and a plan with
``retry_after_s=None`` (a 429 without the header, as RunPod's own) broke the request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import ocrclient
from ocrclient.testing import (
    DialectResponder,
    FaultPlan,
    OcularSimulator,
    OpenAISimulator,
    page_key,
)
from ocrclient.testing.runpod_sim import RunPodSimulator

from .pdfgen import text_pdf


@pytest.mark.parametrize("cls", [RunPodSimulator, OpenAISimulator, OcularSimulator])
def test_every_simulator_takes_a_key_function(cls: type) -> None:
    sim = cls(key_fn=page_key)
    assert sim.key_fn is page_key


def test_fail_once_then_succeed_per_page_on_runpod_chandra(tmp_path: Path) -> None:
    """The docs' recipe, on the backend they name: every page's first job FAILED, the retry
    (at another temperature: another body) served."""
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(3)])
    plan = FaultPlan(rates={"failed": 1.0}, max_faults_per_key=1)
    with RunPodSimulator(plan=plan, responder=DialectResponder("chandra"), key_fn=page_key) as sim:
        doc = ocrclient.convert(pdf, backend="runpod-chandra", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                                api_key=sim.api_key, cache=False,
                                scheduler_options={"backoff_initial_s": 0.01, "backoff_max_s": 0.02})  # fmt: skip
    assert [(p.status, p.attempts) for p in doc.pages] == [("ok", 2)] * 3
    assert plan.injected["failed"] == 3


#: each route vLLM's server answers, and a method it does not take there
WRONG_METHODS = [("GET", "/v1/chat/completions"), ("PUT", "/v1/chat/completions"), ("POST", "/v1/models"),
                 ("DELETE", "/v1/models"), ("POST", "/health")]  # fmt: skip


def test_a_known_route_asked_with_another_method_is_405_and_an_unknown_one_404() -> None:
    with OpenAISimulator(model="m") as sim, httpx.Client(headers={"Authorization": f"Bearer {sim.api_key}"}) as http:
        root = sim.base_url.removesuffix("/v1")
        for method, path in WRONG_METHODS:
            r = http.request(method, root + path, json={} if method != "GET" else None)
            assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}, (method, path, r.text)
            assert r.headers.get("allow"), (method, path)
        assert http.get(root + "/v1/nothing").status_code == 404


@pytest.mark.parametrize("body, status", [
    ({"model": "m"}, 400),
    ({"model": "m", "messages": "not-a-list"}, 400),
    ({"model": "m", "messages": []}, 400),
    ({"model": "m", "messages": ["text"]}, 400),
    ({"messages": [{"role": "user", "content": "hi"}]}, 200),
    ({"model": "other", "messages": [{"role": "user", "content": "hi"}]}, 404),
    ({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, 200),
])  # fmt: skip
def test_chat_requests_are_validated_as_vllm_validates_them(body: dict[str, Any], status: int) -> None:
    with OpenAISimulator(model="m") as sim:
        r = httpx.post(sim.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {sim.api_key}"})
    assert r.status_code == status, r.text
    if status == 200:
        assert r.json()["model"] == "m"
    elif status == 404:
        assert r.json()["error"]["param"] == "model"
    else:
        assert r.json()["error"]["type"] == "BadRequestError"


def test_bodies_are_kept_as_received() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": 5}  # fmt: skip
    with OpenAISimulator(model="m") as sim:
        httpx.post(sim.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {sim.api_key}"})
        assert sim.bodies[-1] == body


@pytest.mark.parametrize("kind", ["runpod", "openai", "ocular"])
@pytest.mark.parametrize("retry_after", [None, 0.5, 2.0])
def test_a_429_carries_the_retry_after_the_plan_asks_for(kind: str, retry_after: float | None) -> None:
    plan = FaultPlan(rates={"http_429": 1.0}, retry_after_s=retry_after)
    sim: Any = {"runpod": RunPodSimulator, "openai": OpenAISimulator, "ocular": OcularSimulator}[kind](plan=plan)
    with sim:
        headers = {"Authorization": f"Bearer {sim.api_key}"} if sim.api_key else {}
        if kind == "runpod":
            r = httpx.post(f"{sim.base_url}/{sim.endpoint_id}/run", json={"input": {"x": 1}}, headers=headers)
        elif kind == "openai":
            r = httpx.post(sim.base_url + "/chat/completions", headers=headers,
                           json={"model": sim.model, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        else:
            r = httpx.post(sim.url + "/extract_text", headers=headers, json={"image": "aGk="})
    assert r.status_code == 429, r.text
    assert r.headers.get("retry-after") == (None if retry_after is None else f"{retry_after:g}")
