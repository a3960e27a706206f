"""vLLM's request checks, one table, both ways a simulated vLLM is reached: the OpenAI server
(vLLM's 400/404 and error body) and RunPod's vLLM worker (the job FAILED as today's official
worker ends it: ``str()`` of its ``worker_error`` quoting ``vLLM returned HTTP <status>: <body>``).

Found wrong from outside: the OpenAI simulator answered 200 to ``max_tokens`` -5, 0, "abc", 1.5
(vLLM: 400), and the RunPod simulator's chat jobs skipped every check but the model name, so a
job without messages or over the model's context came back COMPLETED (it took no
``max_model_len``)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import ocrclient
from ocrclient.testing import OpenAISimulator, RunPodSimulator

from .pdfgen import text_pdf

MSG = [{"role": "user", "content": "hi"}]

#: (the request's fields, vLLM's status, what its message says) -- max_model_len 16384, a
#: prompt of 100 tokens (the echo responder's)
REFUSED: list[tuple[dict[str, Any], int, str]] = [
    ({"max_tokens": -5}, 400, "max_tokens must be at least 1, got -5."),
    ({"max_tokens": 0}, 400, "max_tokens must be at least 1, got 0."),
    ({"max_tokens": False}, 400, "max_tokens must be at least 1, got 0."),
    ({"max_tokens": "abc"}, 400, "max_tokens: Input should be a valid integer, unable to parse string"),
    ({"max_tokens": 1.5}, 400, "max_tokens: Input should be a valid integer, got a number with a fractional part"),
    ({"max_tokens": [5]}, 400, "max_tokens: Input should be a valid integer"),
    ({"max_completion_tokens": -1}, 400, "max_tokens must be at least 1, got -1."),
    ({"max_tokens": 16285}, 400, "maximum context length is 16384 tokens. However, you requested 16285 output"),
    ({"max_tokens": "20000"}, 400, "maximum context length is 16384 tokens"),
    ({"temperature": -0.1}, 400, "temperature must be non-negative, got -0.1."),
    ({"temperature": "hot"}, 400, "temperature: Input should be a valid number"),
    ({"top_p": 0}, 400, "top_p must be in (0, 1], got 0.0."),
    ({"top_p": 1.5}, 400, "top_p must be in (0, 1], got 1.5."),
    ({"messages": None}, 400, "messages: Field required"),
    ({"messages": []}, 400, "messages: Input should be a non-empty list"),
    ({"model": "other"}, 404, "The model `other` does not exist."),
]
#: what vLLM takes (its pydantic model reads the fields in lax mode): (fields, finish, tokens)
SERVED: list[tuple[dict[str, Any], str, int]] = [
    ({"max_tokens": True}, "length", 1),  # (true is 1)
    ({"max_tokens": "3"}, "length", 3),
    ({"max_tokens": 2.0}, "length", 2),
    ({"max_tokens": 16284}, "stop", 0),  # (prompt + max_tokens = the context, exactly)
    ({"max_tokens": None, "temperature": 0, "top_p": 1}, "stop", 0),
    ({"max_tokens": 100, "temperature": "0.5", "top_p": 0.01}, "stop", 0),
]


def _body(fields: dict[str, Any]) -> dict[str, Any]:
    body = {"model": "m", "messages": MSG, **fields}
    return {k: v for k, v in body.items() if not (k == "messages" and v is None)}


@pytest.fixture(scope="module")
def openai_sim() -> Iterator[OpenAISimulator]:
    with OpenAISimulator(model="m") as sim:
        yield sim


@pytest.fixture(scope="module")
def runpod_sim() -> Iterator[RunPodSimulator]:
    with RunPodSimulator(model="m") as sim:
        yield sim


def _openai(sim: OpenAISimulator, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(sim.base_url + "/chat/completions", json=body, headers={"Authorization": f"Bearer {sim.api_key}"},
                      timeout=10)  # fmt: skip


def _runpod(sim: RunPodSimulator, body: dict[str, Any]) -> dict[str, Any]:
    job = {"input": {"openai_route": "/v1/chat/completions", "openai_input": body}}
    r = httpx.post(f"{sim.base_url}/{sim.endpoint_id}/runsync", json=job, headers={"Authorization": f"Bearer {sim.api_key}"},
                   timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    reply: dict[str, Any] = r.json()
    return reply


@pytest.mark.parametrize("fields, status, says", REFUSED, ids=[repr(r[0]) for r in REFUSED])
def test_vllm_refuses_the_request_on_both_simulators(
    fields: dict[str, Any], status: int, says: str, openai_sim: OpenAISimulator, runpod_sim: RunPodSimulator
) -> None:
    body = _body(fields)
    r = _openai(openai_sim, body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert says in error["message"] and error["code"] == status, error
    assert error["type"] == ("NotFoundError" if status == 404 else "BadRequestError")

    job = _runpod(runpod_sim, body)
    assert job["status"] == "FAILED" and "output" not in job, job
    worker_error = ast.literal_eval(job["error"])  # (the str() of a dict, as RunPod reports it)
    assert worker_error["type"] == "worker_error" and worker_error["code"] is None, worker_error
    prefix = f"vLLM returned HTTP {status}: "
    assert worker_error["message"].startswith(prefix), worker_error
    assert json.loads(worker_error["message"][len(prefix):]) == {"error": error}  # vLLM's own reply


@pytest.mark.parametrize("fields, finish, tokens", SERVED, ids=[repr(s[0]) for s in SERVED])
def test_what_vllm_takes_is_served_on_both_simulators(
    fields: dict[str, Any], finish: str, tokens: int, openai_sim: OpenAISimulator, runpod_sim: RunPodSimulator
) -> None:
    r = _openai(openai_sim, _body(fields))
    assert r.status_code == 200, r.text
    job = _runpod(runpod_sim, _body(fields))
    assert job["status"] == "COMPLETED", job
    for completion in (r.json(), job["output"][0]):
        assert completion["choices"][0]["finish_reason"] == finish, completion
        if tokens:
            assert completion["usage"]["completion_tokens"] == tokens, completion


def test_the_runpod_simulator_takes_the_openai_simulators_max_model_len() -> None:
    body = _body({"max_tokens": 950})  # + 100 prompt tokens
    with RunPodSimulator(max_model_len=1000) as small, RunPodSimulator(max_model_len=None) as unbounded:
        assert "maximum context length is 1000 tokens" in _runpod(small, body)["error"]
        assert _runpod(small, _body({"max_tokens": 900}))["status"] == "COMPLETED"
        assert _runpod(unbounded, _body({"max_tokens": 10**9}))["status"] == "COMPLETED"


@pytest.mark.parametrize("cloud", ["openai", "runpod"])
def test_a_request_vllm_refuses_fails_the_page_as_permanent(cloud: str, tmp_path: Path) -> None:
    """The client reads either refusal as the page's permanent failure (no retry, the run goes on)."""
    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    sampling = {"max_tokens": 200_000}
    if cloud == "runpod":
        with RunPodSimulator(model="allenai/olmOCR-2-7B-1025-FP8") as sim:
            doc = ocrclient.convert(pdf, backend="runpod-olmocr", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                                    api_key=sim.api_key, sampling=sampling, cache=False)  # fmt: skip
            jobs = sim.jobs_submitted
    else:
        with OpenAISimulator(model="m") as sim:
            doc = ocrclient.convert(pdf, backend="openai", model="m", dialect="olmocr", base_url=sim.base_url,
                                    api_key=sim.api_key, sampling=sampling, cache=False,
                                    transport_options={"cap_max_tokens": False})  # fmt: skip
            jobs = sim.requests["POST /v1/chat/completions"]
    page = doc.pages[0]
    assert page.status == "failed" and page.error is not None, page
    assert page.error.kind == "permanent" and "maximum context length" in page.error.message, page.error
    assert jobs == 1  # not retried
