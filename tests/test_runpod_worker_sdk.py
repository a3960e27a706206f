"""Integration: a real ``runpod`` SDK worker (``--rp_serve_api``) driven by RunPodTransport.

Proves that our job envelope is what a handler built on the real SDK receives, that its output
(a coroutine handler's dict, an aggregated generator's list) parses, and how handler exceptions
surface (FAILED + JSON-encoded error -> the right ocrclient error class, one readable line).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ocrclient.errors import PermanentError, TransientError
from ocrclient.transports.base import ModelRequest
from ocrclient.transports.runpod import RunPodTransport

from .sdk_worker import SdkWorker

pytest.importorskip("runpod")
pytestmark = pytest.mark.timeout(90)

HANDLER = Path(__file__).parent / "data" / "runpod" / "echo_handler.py"


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SdkWorker]]:
    tmp = tmp_path_factory.mktemp("rp_worker")
    started = {kind: SdkWorker(HANDLER, kind, tmp) for kind in ("coroutine", "generator")}
    try:
        for w in started.values():
            w.wait_ready()
        yield started
    finally:
        for w in started.values():
            w.stop()


def chat(text: str) -> ModelRequest:
    body = {
        "model": "echo-model",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "text", "text": text},
        ]}],
        "max_tokens": 64,
    }
    return ModelRequest(body=body, kind="chat", timeout_s=20)


def local_transport(worker: SdkWorker) -> RunPodTransport:
    return RunPodTransport(endpoint_id=None, api_key=None, base_url=worker.url, mode="local")


@pytest.mark.parametrize("kind", ["coroutine", "generator"])
async def test_envelope_reaches_a_real_sdk_handler(workers: dict[str, SdkWorker], kind: str) -> None:
    t = local_transport(workers[kind])
    try:
        assert (await t.health()).ok
        reply = await t.send(chat("Read page 3 please"))
    finally:
        await t.aclose()
    assert reply.text == "echo: Read page 3 please"
    assert reply.finish_reason == "stop"
    assert (reply.prompt_tokens, reply.completion_tokens) == (4, 5)
    assert reply.job_id and reply.job_id.startswith("test-")
    raw = reply.data["raw"]
    # the generator worker's output is the aggregated list of what it yielded (like worker-vllm)
    assert isinstance(raw, list) if kind == "generator" else isinstance(raw, dict)


async def test_handler_exception_is_failed_with_decoded_message(workers: dict[str, SdkWorker]) -> None:
    t = local_transport(workers["coroutine"])
    try:
        with pytest.raises(TransientError) as crash:
            await t.send(chat("EXPLODE now"))
        with pytest.raises(PermanentError) as invalid:
            await t.send(chat("INVALID input"))
    finally:
        await t.aclose()
    assert crash.value.cause == "runpod_failed"
    assert "RuntimeError: CUDA error: an illegal memory access was encountered" in str(crash.value)
    assert invalid.value.cause == "runpod_failed"
    assert "ValueError: invalid image payload" in str(invalid.value)
    for err in (crash.value, invalid.value):
        assert "\n" not in str(err) and "Traceback" not in str(err)


async def test_generator_exception_is_a_500_from_the_local_server(workers: dict[str, SdkWorker]) -> None:
    # runpod 1.12's local /runsync reads stream_output["output"] even when the generator failed,
    # so the test server answers HTTP 500 (on the real platform the job would be FAILED).
    t = local_transport(workers["generator"])
    try:
        with pytest.raises(TransientError) as info:
            await t.send(chat("EXPLODE"))
    finally:
        await t.aclose()
    assert info.value.status == 500


async def test_local_run_and_status_routes(workers: dict[str, SdkWorker]) -> None:
    url = workers["coroutine"].url
    payload = {"input": {"openai_route": "/v1/chat/completions", "openai_input": chat("hi").body}}
    async with httpx.AsyncClient(timeout=20) as client:
        submitted = (await client.post(f"{url}/run", json=payload)).json()
        assert submitted["status"] == "IN_PROGRESS" and submitted["id"].startswith("test-")
        assert (await client.get(f"{url}/status/{submitted['id']}")).status_code == 405  # POST only
        done = (await client.post(f"{url}/status/{submitted['id']}")).json()  # runs the job now
        assert done["status"] == "COMPLETED" and done["output"]["choices"][0]["message"]["content"] == "echo: hi"
        again = await client.post(f"{url}/status/{submitted['id']}")  # and forgets it
        assert again.status_code == 200 and again.json() == {
            "id": submitted["id"], "status": "FAILED", "error": "Job ID not found"}
        assert (await client.post(f"{url}/cancel/{submitted['id']}")).status_code == 404  # no /cancel
