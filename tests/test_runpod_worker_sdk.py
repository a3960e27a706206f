"""Integration: a real ``runpod`` SDK worker (``--rp_serve_api``) driven by RunPodTransport.

Proves that our job envelope is what a handler built on the real SDK receives, that its output
(a coroutine handler's dict, an aggregated generator's list) parses, and how handler exceptions
surface (FAILED + JSON-encoded error -> the right ocrclient error class, one readable line).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ocrclient.errors import PermanentError, TransientError
from ocrclient.transports.base import ModelRequest
from ocrclient.transports.runpod import RunPodTransport

pytest.importorskip("runpod")
pytestmark = pytest.mark.timeout(90)

HANDLER = Path(__file__).parent / "data" / "runpod" / "echo_handler.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    def __init__(self, kind: str, tmp: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"worker-{kind}.log"
        env = {**os.environ, "ECHO_HANDLER_KIND": kind, "UVICORN_LOG_LEVEL": "warning"}
        env.pop("RUNPOD_ENDPOINT_ID", None)
        env.pop("RUNPOD_WEBHOOK_GET_JOB", None)
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(HANDLER), "--rp_serve_api", "--rp_api_port", str(self.port),
             "--rp_api_host", "127.0.0.1"],
            cwd=str(tmp), env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s: {self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._fh.close()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Worker]]:
    tmp = tmp_path_factory.mktemp("rp_worker")
    started = {kind: Worker(kind, tmp) for kind in ("coroutine", "generator")}
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


def local_transport(worker: Worker) -> RunPodTransport:
    return RunPodTransport(endpoint_id=None, api_key=None, base_url=worker.url, mode="local")


@pytest.mark.parametrize("kind", ["coroutine", "generator"])
async def test_envelope_reaches_a_real_sdk_handler(workers: dict[str, Worker], kind: str) -> None:
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


async def test_handler_exception_is_failed_with_decoded_message(workers: dict[str, Worker]) -> None:
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


async def test_generator_exception_is_a_500_from_the_local_server(workers: dict[str, Worker]) -> None:
    # runpod 1.12's local /runsync reads stream_output["output"] even when the generator failed,
    # so the test server answers HTTP 500 (on the real platform the job would be FAILED).
    t = local_transport(workers["generator"])
    try:
        with pytest.raises(TransientError) as info:
            await t.send(chat("EXPLODE"))
    finally:
        await t.aclose()
    assert info.value.status == 500


async def test_local_run_and_status_routes(workers: dict[str, Worker]) -> None:
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
