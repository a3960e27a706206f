"""Contract tests: RunPodTransport against the RunPod simulator (loopback only)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocrclient.config import BackendConfig
from ocrclient.errors import (
    AuthError,
    CancelledRunError,
    ConfigError,
    OcrError,
    PermanentError,
    TransientError,
)
from ocrclient.testing import FaultPlan, FixedResponder, SimReply
from ocrclient.testing.runpod_sim import RunPodSimulator
from ocrclient.transports.base import ModelRequest
from ocrclient.transports.runpod import (
    RunPodTransport,
    classify_failure,
    decode_job_error,
    parse_chat_output,
)
from ocrclient.transports.runpod_jobs import job_reply

pytestmark = pytest.mark.timeout(30)


def chat_request(n: int = 0, *, stream: bool = False, timeout_s: float = 5.0, pad: int = 0) -> ModelRequest:
    image = "data:image/png;base64," + base64.b64encode(f"page-{n}".encode()).decode() + "A" * pad
    body: dict[str, Any] = {
        "model": "sim-model",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image}},
                    {"type": "text", "text": "Convert this page to markdown."},
                ],
            }
        ],
        "max_tokens": 512,
        "temperature": 0.0,
    }
    if stream:
        body["stream"] = True
    return ModelRequest(body=body, kind="chat", timeout_s=timeout_s, page=n + 1)


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., RunPodSimulator]]:
    sims: list[RunPodSimulator] = []

    def make(**kwargs: Any) -> RunPodSimulator:
        sim = RunPodSimulator(**kwargs).start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


def transport_for(sim: RunPodSimulator, **kwargs: Any) -> RunPodTransport:
    opts: dict[str, Any] = {"mode": "run", "poll_interval_s": 0.02, "max_poll_interval_s": 0.1}
    opts.update(kwargs)
    if sim.flavour == "local":
        return RunPodTransport(endpoint_id=None, api_key=None, base_url=sim.base_url, **{**opts, "mode": "local"})
    return RunPodTransport(endpoint_id=sim.endpoint_id, api_key=sim.api_key, base_url=sim.base_url, **opts)


async def wait_until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class Recorder:
    """A responder that records the bodies it was given."""

    def __init__(self, text: str = "# Title\n\nBody text.", **data: Any) -> None:
        self.text = text
        self.data = data
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, body: dict[str, Any]) -> SimReply:
        self.bodies.append(body)
        return SimReply(self.text, "stop", 42, 7, dict(self.data))


# ---------------------------------------------------------------------------------------------
# happy paths: run, runsync, runsync -> poll, streams, kinds
# ---------------------------------------------------------------------------------------------


async def test_run_mode_completes_with_timings_and_envelope(sim_factory: Callable[..., RunPodSimulator]) -> None:
    rec = Recorder()
    sim = sim_factory(plan=FaultPlan(latency_s=(0.06, 0.06)), responder=rec)
    t = transport_for(sim)
    req = chat_request()
    try:
        reply = await t.send(req)
    finally:
        await t.aclose()
    assert reply.text == rec.text
    assert reply.finish_reason == "stop"
    assert (reply.prompt_tokens, reply.completion_tokens) == (42, 7)
    assert reply.job_id and sim.job(reply.job_id) is not None
    assert reply.gpu_seconds is not None and reply.gpu_seconds >= 0.05
    assert reply.queue_seconds is not None and reply.queue_seconds >= 0.0
    assert reply.latency_s >= reply.gpu_seconds
    assert rec.bodies == [req.body]  # openai_input is the chat request, unchanged
    assert sim.requests["run"] == 1 and sim.requests["status"] >= 1
    assert t.in_flight == set()


async def test_runsync_finished_needs_no_polling(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(latency_s=(0.02, 0.02)))
    t = transport_for(sim, mode="runsync")
    try:
        reply = await t.send(chat_request(1))
    finally:
        await t.aclose()
    assert reply.text.startswith("# Page ")
    assert reply.job_id and reply.job_id.startswith("sync-")
    assert sim.requests["runsync"] == 1 and sim.requests["status"] == 0


async def test_runsync_unfinished_falls_back_to_polling(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(latency_s=(0.3, 0.3)), runsync_block_s=0.05)
    t = transport_for(sim, mode="runsync")
    try:
        reply = await t.send(chat_request(2))
    finally:
        await t.aclose()
    assert reply.text.startswith("# Page ")
    assert sim.requests["runsync"] == 1 and sim.requests["status"] >= 1
    assert reply.gpu_seconds is not None and reply.gpu_seconds >= 0.25


async def test_streamed_sse_output_is_concatenated(sim_factory: Callable[..., RunPodSimulator]) -> None:
    text = "# Heading\n\nA line with   spaces.\n- item"
    sim = sim_factory(responder=FixedResponder(text, finish_reason="length"), stream_batch=3)
    t = transport_for(sim)
    try:
        reply = await t.send(chat_request(stream=True))
    finally:
        await t.aclose()
    job = sim.job(reply.job_id or "")
    assert job is not None and isinstance(job.output, list) and all(isinstance(x, str) for x in job.output)
    assert len(job.output) > 1 and job.output[-1].rstrip().endswith("data: [DONE]")
    assert reply.text == text
    assert reply.finish_reason == "length"
    assert reply.completion_tokens == len(text.split())


def _chunk(content: str, finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}


async def test_unraw_stream_batches_and_native_batches(sim_factory: Callable[..., RunPodSimulator]) -> None:
    batches = [[_chunk("Hel"), _chunk("lo")], [_chunk(" world", "stop")]]  # RAW_OPENAI_OUTPUT=0
    sim = sim_factory(responder=FixedResponder("x", data={"raw_output": batches}))
    t = transport_for(sim)
    try:
        reply = await t.send(chat_request())
    finally:
        await t.aclose()
    assert (reply.text, reply.finish_reason) == ("Hello world", "stop")
    native = [{"choices": [{"tokens": ["a", "b"]}], "usage": {"input": 5, "output": 2}},
              {"choices": [{"tokens": ["c"]}], "usage": {"input": 5, "output": 3}}]
    chat = parse_chat_output(native)
    assert chat is not None and not isinstance(chat, dict)
    assert (chat.text, chat.prompt_tokens, chat.completion_tokens) == ("abc", 5, 3)


async def test_ocular_and_document_kinds(sim_factory: Callable[..., RunPodSimulator]) -> None:
    rec = Recorder("Total: 42 EUR", confidence=0.77)
    sim = sim_factory(responder=rec)
    t = transport_for(sim)
    try:
        ocular = await t.send(ModelRequest(body={"image": "aGVsbG8=", "model_name": "trocr"}, kind="ocular",
                                           route="/extract_text_robust", timeout_s=5))
        doc = await t.send(ModelRequest(body={"pdf_base64": "JVBERi0=", "prompt": "<image>\nConvert."},
                                        kind="document", timeout_s=5))
    finally:
        await t.aclose()
    assert ocular.text == "Total: 42 EUR" and ocular.data["confidence"] == 0.77
    assert ocular.data["metadata"]["route"] == "/extract_text_robust"
    assert rec.bodies[0] == {"image": "aGVsbG8=", "model_name": "trocr"}
    assert doc.text == "Total: 42 EUR"  # base64 "markdown" decoded
    assert doc.data["markdown_path"].endswith(".md") and doc.data["return_code"] == 0
    assert rec.bodies[1] == {"pdf_base64": "JVBERi0=", "prompt": "<image>\nConvert."}


async def test_slots_queue_and_cold_start(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(latency_s=(0.1, 0.1), slots=2, cold_start_s=0.2))
    t = transport_for(sim)
    try:
        replies = await asyncio.gather(*(t.send(chat_request(i)) for i in range(5)))
    finally:
        await t.aclose()
    assert sim.max_concurrent == 2 and sim.running_now == 0
    assert sim.jobs_submitted == 5 and len(sim.jobs_by_key) == 5
    assert min(r.queue_seconds or 0 for r in replies) >= 0.15  # everyone waited for the cold start
    assert max(r.queue_seconds or 0 for r in replies) >= 0.35  # the fifth also queued behind two rounds
    assert len({r.text for r in replies}) == 5


async def test_health_reports_workers_and_queue(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(slots=3))
    t = transport_for(sim)
    try:
        h = await t.health()
    finally:
        await t.aclose()
    assert h.ok is True
    assert h.info["workers"]["idle"] == 3 and h.info["jobs"]["inQueue"] == 0
    assert "3 idle" in h.detail


# ---------------------------------------------------------------------------------------------
# HTTP errors and limits
# ---------------------------------------------------------------------------------------------


async def test_bad_key_is_auth_error_and_never_leaks(sim_factory: Callable[..., RunPodSimulator],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = sim_factory()
    wrong = "rp_WRONG_key_ABCDEFGHIJKLMNOP"
    t = RunPodTransport(endpoint_id=sim.endpoint_id, api_key=wrong, base_url=sim.base_url)
    try:
        with pytest.raises(AuthError) as info:
            await t.send(chat_request())
        health = await t.health()
    finally:
        await t.aclose()
    assert info.value.status == 401 and "\n" not in str(info.value)
    assert health.ok is False and "bad API key" in health.detail
    assert wrong not in str(info.value) and wrong not in caplog.text and wrong not in health.detail
    assert sim.jobs_submitted == 0


async def test_secret_echoed_by_worker_is_redacted(sim_factory: Callable[..., RunPodSimulator],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = "rp_SECRET_0123456789abcdef"

    def leaky(body: dict[str, Any]) -> SimReply:
        raise ValueError(f"invalid request, auth was Bearer {key} and key {key}")

    sim = sim_factory(responder=leaky, api_key=key)
    t = transport_for(sim)
    try:
        with pytest.raises(PermanentError) as info:
            await t.send(chat_request())
    finally:
        await t.aclose()
    assert key not in str(info.value) and "***" in str(info.value)
    assert key not in caplog.text


async def test_429_surfaces_retry_after(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(seed=1, rates={"http_429": 1.0}, retry_after_s=7))
    t = transport_for(sim)
    try:
        with pytest.raises(TransientError) as info:
            await t.send(chat_request())
    finally:
        await t.aclose()
    assert info.value.cause == "http_429" and info.value.retry_after == 7.0
    assert sim.jobs_submitted == 0


async def test_queue_full_is_rate_limited(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"hang": 1.0}, hang_s=10.0, slots=1, retry_after_s=2), max_queue=1)
    t = transport_for(sim)
    try:
        first = asyncio.create_task(t.send(chat_request(1)))
        await wait_until(lambda: sim.running_now == 1)
        second = asyncio.create_task(t.send(chat_request(2)))
        await wait_until(lambda: len(t.in_flight) == 2)
        with pytest.raises(TransientError) as info:
            await t.send(chat_request(3))
        assert info.value.status == 429 and info.value.retry_after == 2.0
        assert (await t.health()).info["jobs"]["inQueue"] == 1
        first.cancel()
        second.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        assert sim.cancels_received == 2
    finally:
        await t.aclose()


@pytest.mark.parametrize(("fault", "status"), [("http_503", 503), ("http_500", 500), ("http_502", 502)])
async def test_5xx_is_transient(sim_factory: Callable[..., RunPodSimulator], fault: str, status: int) -> None:
    sim = sim_factory(plan=FaultPlan(rates={fault: 1.0}))
    t = transport_for(sim)
    try:
        with pytest.raises(TransientError) as info:
            await t.send(chat_request())
    finally:
        await t.aclose()
    assert info.value.status == status


async def test_400_is_permanent_and_reset_is_transient(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"http_400": 1.0}))
    t = transport_for(sim)
    try:
        with pytest.raises(PermanentError):
            await t.send(chat_request())
    finally:
        await t.aclose()
    sim2 = sim_factory(plan=FaultPlan(rates={"reset": 1.0}))
    t2 = transport_for(sim2)
    try:
        with pytest.raises(TransientError) as info:
            await t2.send(chat_request())
    finally:
        await t2.aclose()
    assert info.value.cause == "reset"  # (a server that took the job and hung up: an attempt, tests/test_dropped_requests.py)


async def test_payload_limit_checked_before_sending(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory()
    t = transport_for(sim)
    try:
        with pytest.raises(PermanentError) as info:
            await t.send(chat_request(pad=10_050_000))  # > 10 MB for /run
    finally:
        await t.aclose()
    err = info.value
    assert err.cause == "payload_too_large" and "\n" not in str(err)
    assert "dpi" in str(err) and "jpeg" in str(err) and "/run" in str(err)
    assert sim.requests_total == 0  # nothing reached the endpoint
    assert t.max_runsync_bytes == 20_000_000 and t.max_run_bytes == 10_000_000


@pytest.mark.parametrize("mode", ["run", "runsync"])
async def test_a_whole_pdf_over_the_limit_is_told_to_go_as_pages(mode: str, sim_factory: Callable[..., RunPodSimulator]) -> None:
    """A document-mode job (the whole PDF) over RunPod's limit: no render setting makes it
    smaller, so the line says to send its pages (it said to lower the dpi)."""
    sim = sim_factory()
    t = transport_for(sim, mode=mode, max_run_bytes=2_000, max_runsync_bytes=2_000)
    try:
        with pytest.raises(PermanentError) as info:
            await t.send(ModelRequest(body={"pdf_base64": "J" * 3_000}, kind="document", timeout_s=5))
    finally:
        await t.aclose()
    said = str(info.value)
    assert info.value.cause == "payload_too_large" and said.startswith("document payload"), said
    assert "without document mode" in said and "dpi" not in said and sim.requests_total == 0, said


async def test_runsync_limit_is_twice_run_limit(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory()
    small = {"max_run_bytes": 2_000, "max_runsync_bytes": 4_000}
    run_t, sync_t = transport_for(sim, **small), transport_for(sim, mode="runsync", **small)
    try:
        with pytest.raises(PermanentError, match="/run;"):
            await run_t.send(chat_request(pad=2_500))
        assert sim.requests_total == 0
        reply = await sync_t.send(chat_request(pad=2_500))  # fits the /runsync limit
        assert reply.text
        with pytest.raises(PermanentError, match="/runsync"):
            await sync_t.send(chat_request(pad=5_000))
    finally:
        await run_t.aclose()
        await sync_t.aclose()


async def test_server_side_413(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(run_limit_bytes=1_000)
    t = transport_for(sim)  # client limit is 10 MB, the (simulated) server's is smaller
    try:
        with pytest.raises(PermanentError) as info:
            await t.send(chat_request(pad=5_000))
    finally:
        await t.aclose()
    assert info.value.cause == "payload_too_large" and info.value.status == 413
    assert sim.jobs_submitted == 0


async def test_unknown_endpoint_is_permanent(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory()
    t = RunPodTransport(endpoint_id="nope", api_key=sim.api_key, base_url=sim.base_url)
    try:
        with pytest.raises(PermanentError, match="RUNPOD_ENDPOINT_ID"):
            await t.send(chat_request())
        assert (await t.health()).ok is False
    finally:
        await t.aclose()


async def test_status_poll_errors_are_retried_then_surface(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(latency_s=(0.1, 0.1)))
    t = transport_for(sim, max_poll_errors=3)
    try:
        sim.fail_next_status(2, 503)
        sim.fail_next_status(1, 429)
        reply = await t.send(chat_request(1))  # three flaky polls, then the result
        assert reply.text and sim.requests["status"] >= 4
        sim.fail_next_status(50, 502)
        with pytest.raises(TransientError) as info:
            await t.send(chat_request(2))
    finally:
        await t.aclose()
    assert info.value.status == 502
    assert sim.cancels_received == 1  # the abandoned job was cancelled, not left running


# ---------------------------------------------------------------------------------------------
# job states
# ---------------------------------------------------------------------------------------------


async def test_failed_job_decoded_and_classified(sim_factory: Callable[..., RunPodSimulator]) -> None:
    def picky(body: dict[str, Any]) -> SimReply:
        raise ValueError("image_url is not a PNG or JPEG")

    sim = sim_factory(responder=picky)
    t = transport_for(sim)
    try:
        with pytest.raises(PermanentError) as info:
            await t.send(chat_request())
    finally:
        await t.aclose()
    msg = str(info.value)
    assert "ValueError: image_url is not a PNG or JPEG" in msg
    assert "Traceback" not in msg and "\n" not in msg and info.value.cause == "runpod_failed"

    sim2 = sim_factory(plan=FaultPlan(rates={"failed": 1.0}))  # CUDA OOM from the worker
    t2 = transport_for(sim2)
    try:
        with pytest.raises(TransientError) as info2:
            await t2.send(chat_request())
    finally:
        await t2.aclose()
    assert info2.value.cause == "runpod_failed" and "RuntimeError: CUDA out of memory" in str(info2.value)


async def test_completed_without_output_is_transient(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"no_output": 1.0}))
    t = transport_for(sim)
    try:
        with pytest.raises(TransientError) as info:
            await t.send(chat_request())
    finally:
        await t.aclose()
    assert info.value.cause == "runpod_no_output"
    (job_id,) = list(sim._jobs)
    job = sim.job(job_id)
    assert job is not None and job.status == "COMPLETED" and not job.has_output


async def test_timed_out_fault_and_policy_execution_timeout(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"timed_out": 1.0}))
    t = transport_for(sim)
    try:
        with pytest.raises(TransientError) as info:
            await t.send(chat_request())
    finally:
        await t.aclose()
    assert info.value.cause == "runpod_timed_out"

    sim2 = sim_factory(plan=FaultPlan(latency_s=(2.0, 2.0)))
    t2 = transport_for(sim2, policy={"executionTimeout": 100, "ttl": 60_000})
    started = time.monotonic()
    try:
        with pytest.raises(TransientError) as info2:
            await t2.send(chat_request())
    finally:
        await t2.aclose()
    assert info2.value.cause == "runpod_timed_out"
    assert time.monotonic() - started < 1.5  # the policy reached the endpoint


async def test_cancelled_elsewhere_is_transient(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"hang": 1.0}, hang_s=5.0))
    t = transport_for(sim)
    try:
        task = asyncio.create_task(t.send(chat_request()))
        await wait_until(lambda: sim.running_now == 1 and len(t.in_flight) == 1)
        (job_id,) = list(t.in_flight)
        sim.cancel(job_id)  # someone cancels it in the console
        with pytest.raises(TransientError) as info:
            await task
    finally:
        await t.aclose()
    assert info.value.cause == "runpod_cancelled"


async def test_expired_job_404_is_transient(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(latency_s=(0.02, 0.02)), retention_s=0.01)
    t = transport_for(sim, poll_interval_s=0.3, max_poll_interval_s=0.3)
    try:
        with pytest.raises(TransientError) as info:
            await t.send(chat_request())
    finally:
        await t.aclose()
    assert info.value.cause == "job_expired" and info.value.status == 404
    assert sim.cancels_received == 0  # nothing left to cancel


async def test_restart_loses_in_flight_jobs(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"hang": 1.0}, hang_s=5.0))
    t = transport_for(sim)
    try:
        task = asyncio.create_task(t.send(chat_request()))
        await wait_until(lambda: sim.running_now == 1 and len(t.in_flight) == 1)
        sim.restart()
        with pytest.raises(TransientError) as info:
            await task
        await wait_until(lambda: sim.running_now == 0)
    finally:
        await t.aclose()
    assert info.value.cause == "job_expired"


async def test_a_local_server_restart_cuts_the_job_in_flight_then_serves(
    sim_factory: Callable[..., RunPodSimulator],
) -> None:
    """The SDK's local server restarting (``restart()`` in the local flavour): the ``/runsync``
    in flight ends at once with a connection error (a transient one, no reply read as a
    result), and the same client's next job is served on the server back on its port."""
    sim = sim_factory(flavour="local", plan=FaultPlan(rates={"hang": 1.0}, hang_s=30.0, max_faults_per_key=1))
    t = transport_for(sim)
    try:
        task = asyncio.create_task(t.send(chat_request(timeout_s=20)))
        await wait_until(lambda: sim.running_now == 1)
        started = time.monotonic()
        await asyncio.to_thread(sim.restart, 0.2)
        with pytest.raises(TransientError) as cut:
            await task
        assert time.monotonic() - started < 5
        assert cut.value.cause in ("reset", "connection"), cut.value
        reply = await t.send(chat_request(timeout_s=20))  # its key's hang was used up
    finally:
        await t.aclose()
    assert reply.text and reply.finish_reason == "stop"


# ---------------------------------------------------------------------------------------------
# cancellation and deadlines
# ---------------------------------------------------------------------------------------------


async def test_task_cancellation_cancels_remote_job(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"hang": 1.0}, hang_s=10.0))
    t = transport_for(sim)
    try:
        task = asyncio.create_task(t.send(chat_request()))
        await wait_until(lambda: sim.running_now == 1 and len(t.in_flight) == 1)
        (job_id,) = list(t.in_flight)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sim.cancels_received == 1
        await wait_until(lambda: sim.running_now == 0)
        job = sim.job(job_id)
        assert job is not None and job.status == "CANCELLED"
        assert t.in_flight == set()
    finally:
        await t.aclose()


async def test_attempt_timeout_cancels_job(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"hang": 1.0}, hang_s=10.0))
    t = transport_for(sim)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError) as info:
            await t.send(chat_request(timeout_s=0.3))
    finally:
        await t.aclose()
    assert info.value.cause == "timeout" and time.monotonic() - started < 2.0
    assert sim.cancels_received == 1
    await wait_until(lambda: sim.running_now == 0)
    (job,) = [sim.job(j) for j in list(sim._jobs)]
    assert job is not None and job.status == "CANCELLED"


async def test_runsync_timeout_cancels_after_fallback(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"hang": 1.0}, hang_s=10.0), runsync_block_s=0.05)
    t = transport_for(sim, mode="runsync")
    try:
        with pytest.raises(TransientError, match="did not finish"):
            await t.send(chat_request(timeout_s=0.4))
    finally:
        await t.aclose()
    assert sim.cancels_received == 1


async def test_aclose_cancels_jobs_in_flight(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(rates={"hang": 1.0}, hang_s=10.0))
    t = transport_for(sim)
    tasks = [asyncio.create_task(t.send(chat_request(i))) for i in range(3)]
    await wait_until(lambda: sim.running_now == 3 and len(t.in_flight) == 3)
    await t.aclose()
    assert sim.cancels_received == 3
    await wait_until(lambda: sim.running_now == 0)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    # the sends end on their own: their jobs were cancelled and the client is closed
    assert all(isinstance(r, (CancelledRunError, TransientError)) for r in results), results


# ---------------------------------------------------------------------------------------------
# local mode (the runpod SDK's --rp_serve_api routes)
# ---------------------------------------------------------------------------------------------


async def test_local_mode_routes(sim_factory: Callable[..., RunPodSimulator]) -> None:
    def handler(body: dict[str, Any]) -> SimReply:
        if "boom" in json.dumps(body):
            raise RuntimeError("worker crashed: segmentation fault")
        return SimReply("local ok", "stop", 1, 2)

    sim = sim_factory(flavour="local", responder=handler)
    assert not sim.base_url.endswith("/v2")
    t = transport_for(sim)
    try:
        reply = await t.send(chat_request())
        assert reply.text == "local ok" and reply.gpu_seconds is None
        bad = chat_request()
        bad.body["messages"][0]["content"][1]["text"] = "boom"
        # a chat job's worker (worker-vllm's generator handler) that raises: the SDK's local
        # server loses the error and answers HTTP 500 (tests/test_runpod_local_sdk.py)
        with pytest.raises(TransientError, match="Internal Server Error") as crash:
            await t.send(bad)
        assert crash.value.status == 500
        assert (await t.health()).ok is True
    finally:
        await t.aclose()
    assert sim.requests["runsync"] == 2 and sim.requests["run"] == 0
    # the local server answers an unknown /status with HTTP 200 + FAILED "Job ID not found"
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{sim.base_url}/status/test-missing")
        assert r.status_code == 200 and r.json()["error"] == "Job ID not found"
        r = await client.post(f"{sim.base_url}/run", json={"input": {"prompt": "x"}})
        assert r.json()["status"] == "IN_PROGRESS" and r.json()["id"].startswith("test-")
        done = await client.post(f"{sim.base_url}/status/{r.json()['id']}")
        assert done.json()["status"] == "COMPLETED"


# ---------------------------------------------------------------------------------------------
# simulator wire details and pure helpers
# ---------------------------------------------------------------------------------------------


async def test_simulator_wire_shapes(sim_factory: Callable[..., RunPodSimulator]) -> None:
    sim = sim_factory(plan=FaultPlan(latency_s=(0.1, 0.1), slots=1), retention_s=0.5)
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    root = f"{sim.base_url}/{sim.endpoint_id}"
    async with httpx.AsyncClient(headers=headers) as client:
        r = await client.post(f"{root}/run", json={"input": {"prompt": "a"}})
        assert r.status_code == 200 and r.json()["status"] == "IN_QUEUE"
        jid = r.json()["id"]
        await wait_until(lambda: sim.running_now == 1)
        queued = await client.post(f"{root}/run", json={"input": {"prompt": "b"}})
        assert queued.json()["status"] == "IN_QUEUE"
        purge = await client.post(f"{root}/purge-queue")
        assert purge.json() == {"removed": 1, "status": "completed"}
        assert (await client.get(f"{root}/status/{queued.json()['id']}")).status_code == 404
        await wait_until(lambda: getattr(sim.job(jid), "status", None) == "COMPLETED")
        st = (await client.get(f"{root}/status/{jid}")).json()
        assert st["status"] == "COMPLETED" and {"delayTime", "executionTime", "output", "workerId"} <= set(st)
        assert st["executionTime"] >= 90
        assert (await client.post(f"{root}/status/{jid}")).json()["status"] == "COMPLETED"  # POST too
        await asyncio.sleep(0.6)
        assert (await client.get(f"{root}/status/{jid}")).status_code == 404  # retention over
        unauth = await client.get(f"{root}/health", headers={"Authorization": "Bearer nope"})
        assert unauth.status_code == 401 and "error" in unauth.json()
        assert set((await client.get(f"{root}/health")).json()) == {"jobs", "workers"}


def test_decode_job_error_shapes() -> None:
    sdk = json.dumps({"error_type": "<class 'torch.OutOfMemoryError'>", "error_message": "CUDA out of memory",
                      "error_traceback": "Traceback...\n", "hostname": "h", "worker_id": "w", "runpod_version": "1.7"})
    assert decode_job_error(sdk) == ("torch.OutOfMemoryError", "CUDA out of memory")
    gen = "handler: list index out of range \ntraceback: Traceback (most recent call last):\n  File x"
    assert decode_job_error(gen) == ("", "list index out of range")
    repr_dict = str({"object": "error", "message": "max_tokens must be positive", "type": "BadRequestError", "code": 400})
    kind, msg = decode_job_error(repr_dict)
    assert msg == "max_tokens must be positive" and "400" in kind
    assert isinstance(classify_failure(kind, msg, cause="c", job_id="j"), PermanentError)
    nested = {"error": {"message": "engine overloaded", "type": "ServiceUnavailableError", "code": 503}}
    kind, msg = decode_job_error(nested)
    assert isinstance(classify_failure(kind, msg, cause="c", job_id=None), TransientError)
    assert isinstance(classify_failure("", "something odd happened", cause="c", job_id=None), TransientError)
    assert isinstance(classify_failure("RuntimeError", "CUDA error: invalid argument", cause="c", job_id=None),
                      TransientError)


_OUTPUT = [{"choices": [{"message": {"content": "# Title"}, "finish_reason": "stop"}]}]


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "TIMED_OUT"])
@pytest.mark.parametrize(("execution", "delay", "run_s"),
                         [(5e5, 5e5, 1.2), (1e308, 1e308, 1.2), (int("9" * 400), 0, None), (800, 900, 0.8), (0, 5e5, 0.0)],
                         ids=["both-long", "1e308", "400-digits", "queue-long", "queue-only"])  # fmt: skip
def test_a_jobs_reported_times_together_are_at_most_the_wait(state: str, execution: float, delay: float,
                                                             run_s: float | None) -> None:  # fmt: skip
    """Every terminal job, its reply or its failure's ``spent``: executionTime + delayTime, as
    charged, never more than the client waited for the job (a bogus or hostile server's numbers
    charged ~1 s of GPU a page more); the run first, then the queue in what is left."""
    status = {"id": "j1", "status": state, "executionTime": execution, "delayTime": delay, "output": _OUTPUT,
              "error": "CUDA error: out of memory"}  # fmt: skip
    waited = 1.2
    try:
        reply = job_reply(status, chat_request(), waited_s=waited)
        gpu, queue = reply.gpu_seconds, reply.queue_seconds
        assert reply.latency_s == waited
    except OcrError as exc:
        assert state != "COMPLETED"
        gpu, queue = (exc.spent.gpu_seconds, exc.spent.queue_seconds) if exc.spent is not None else (None, None)
    assert (gpu or 0) + (queue or 0) <= waited, (gpu, queue)
    if state == "COMPLETED" or (state == "FAILED" and run_s):  # (the run is reported first; a failure's when it ran)
        assert gpu == run_s, gpu
    if state == "COMPLETED" and (execution, delay) == (800, 900):
        assert (gpu, queue) == (0.8, pytest.approx(0.4)), (gpu, queue)  # (the queue in what the run left)


@pytest.mark.parametrize(
    ("output", "cls"),
    [
        ([{"object": "error", "message": "Invalid image", "type": "BadRequestError", "code": 400}], PermanentError),
        ([{"error": {"message": "engine overloaded", "type": "ServiceUnavailable", "code": 503}}], TransientError),
    ],
)
async def test_worker_error_dict_output(sim_factory: Callable[..., RunPodSimulator], output: Any, cls: type) -> None:
    sim = sim_factory(responder=FixedResponder("x", data={"raw_output": output}))
    t = transport_for(sim)
    try:
        with pytest.raises(cls) as info:
            await t.send(chat_request())
    finally:
        await t.aclose()
    assert info.value.cause == "worker_error"


def test_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOD_ENDPOINT_ID", raising=False)
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    cfg = BackendConfig(name="rp", transport="runpod", dialect="plain")
    with pytest.raises(ConfigError, match="RUNPOD_API_KEY"):
        RunPodTransport.from_config(cfg)
    monkeypatch.setenv("RUNPOD_API_KEY", "rp_env_key_123456")
    with pytest.raises(ConfigError, match=r"RUNPOD_ENDPOINT_ID.*--endpoint-id"):
        RunPodTransport.from_config(cfg)
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "ep123")
    t = RunPodTransport.from_config(cfg)
    assert t.url("status", "j1") == "https://api.runpod.ai/v2/ep123/status/j1"
    cfg2 = cfg.model_copy(update={"base_url": "http://127.0.0.1:9/v2", "transport_options": {
        "mode": "runsync", "runsync_wait_ms": 5000, "policy": {"executionTimeout": 900000, "ttl": 3600000}}})
    t2 = RunPodTransport.from_config(cfg2)
    assert t2.mode == "runsync" and t2.runsync_wait_ms == 5000
    assert t2.envelope(chat_request())["policy"] == {"executionTimeout": 900000, "ttl": 3600000}
    assert t2.envelope(chat_request())["input"]["openai_route"] == "/v1/chat/completions"
    with pytest.raises(ConfigError, match="unknown runpod transport_options"):
        RunPodTransport.from_config(cfg.model_copy(update={"transport_options": {"pol_interval": 1}}))
    with pytest.raises(ConfigError, match="policy"):
        RunPodTransport.from_config(cfg.model_copy(update={"transport_options": {"policy": {"timeout": 1}}}))
    local = RunPodTransport.from_config(cfg.model_copy(update={"transport_options": {"mode": "local"},
                                                               "endpoint_id": None}))
    assert local.url("runsync") == "http://localhost:8000/runsync"


@pytest.mark.parametrize(
    ("output", "cls", "cause", "text"),
    [
        ({"status": "failed", "return_code": 1, "stderr": "ValueError: PDF is encrypted\nmore"},
         PermanentError, "worker_error", "PDF is encrypted"),
        ({"status": "failed", "return_code": 137, "stderr": "Killed"}, TransientError, "worker_error", "exit 137"),
        ({"status": "succeeded", "return_code": 0, "markdown_path": "/tmp/out/big.md"},
         PermanentError, "runpod_output_missing", "/tmp/out/big.md"),
    ],
)
async def test_document_worker_failures(sim_factory: Callable[..., RunPodSimulator], output: Any,
                                        cls: type, cause: str, text: str) -> None:
    sim = sim_factory(responder=FixedResponder("x", data={"raw_output": output}))
    t = transport_for(sim)
    try:
        with pytest.raises(cls) as info:
            await t.send(ModelRequest(body={"pdf_base64": "JVBERi0="}, kind="document", timeout_s=5))
    finally:
        await t.aclose()
    assert info.value.cause == cause and text in str(info.value)


async def test_sent_request_bodies_are_released(sim_factory: Callable[..., RunPodSimulator]) -> None:
    """httpx responses sit in reference cycles that keep their request (and its body, a page
    image) alive until a full GC: the transport empties the body once the reply is in, so a
    long run's memory stays flat.  The worker still received the whole body."""
    rec = Recorder()
    sim = sim_factory(plan=FaultPlan(latency_s=(0.01, 0.01)), responder=rec)
    sent: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        sent.append(request)

    client = httpx.AsyncClient(event_hooks={"request": [capture]})
    t = RunPodTransport(endpoint_id=sim.endpoint_id, api_key=sim.api_key, base_url=sim.base_url,
                        mode="runsync", client=client)  # fmt: skip
    req = chat_request()
    try:
        reply = await t.send(req)
    finally:
        await t.aclose()
        await client.aclose()
    assert reply.text == rec.text and rec.bodies == [req.body]
    posts = [r for r in sent if r.method == "POST"]
    assert posts and all(r.content == b"" and b"".join(r.stream) == b"" for r in posts)  # type: ignore[arg-type]


def test_release_keeps_the_body_a_redirect_or_auth_flow_resends() -> None:
    from ocrclient.transports.base import release_request_body

    for status, kept in ((200, b""), (500, b""), (303, b""), (307, b"body"), (308, b"body"),
                         (401, b"body"), (407, b"body")):  # fmt: skip
        req = httpx.Request("POST", "http://sim/x", content=b"body")
        release_request_body(httpx.Response(status, request=req))
        assert req.content == kept and b"".join(req.stream) == kept, status  # type: ignore[arg-type]


@pytest.mark.parametrize("given", ["flag", "own variable", "fallback variable"])
@pytest.mark.parametrize("profile", ["runpod", "runpod-chandra", "runpod-olmocr", "runpod-rolmocr", "runpod-trocr",
                                     "runpod-deepseek-ocr"])  # fmt: skip
def test_an_unknown_endpoint_names_the_variable_it_was_read_from(
    profile: str, given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 404 for the endpoint said "check RUNPOD_ENDPOINT_ID" whatever the profile: the olmOCR
    profile reads RUNPOD_OLMOCR_ENDPOINT_ID first.  Then, with the id read from the generic
    RUNPOD_ENDPOINT_ID, it named the profile's own variable, which was not set.  The whole kind:
    every shipped RunPod profile, its id given as a flag, in its own variable, in the generic
    one: the message names where it came from (the profile's own variable for a flag)."""
    import ocrclient
    from ocrclient.config import resolve_config
    from ocrclient.errors import RunAborted

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    own = resolve_config(profile, endpoint_id="x", model="m").endpoint_id_env
    for var in {own, "RUNPOD_ENDPOINT_ID"} - {None}:
        monkeypatch.delenv(str(var), raising=False)
    want = {"flag": own, "own variable": own, "fallback variable": "RUNPOD_ENDPOINT_ID"}[given] or "RUNPOD_ENDPOINT_ID"
    flag = {"endpoint_id": "not-this-one"} if given == "flag" else {}
    if given != "flag":
        monkeypatch.setenv(want, "not-this-one")
    with RunPodSimulator() as sim, pytest.raises(RunAborted) as info:
        ocrclient.convert(pdf, backend=profile, base_url=sim.base_url, api_key=sim.api_key, model="m", cache=False,
                          **flag)  # fmt: skip
    assert f"check {want} / --endpoint-id" in str(info.value)


def test_an_attempt_cut_by_the_page_deadline_says_so_in_round_seconds(tmp_path: Path) -> None:
    """A page deadline shorter than the attempt timeout cut the attempt: the page said "did not
    finish within 0.0992292s (attempt timeout)", though the user had set timeout=1."""
    import ocrclient
    from ocrclient.testing import DialectResponder, FaultPlan

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "one.pdf", [["slow page"]])
    with RunPodSimulator(plan=FaultPlan(latency_s=3.0), responder=DialectResponder("chandra")) as sim:
        doc = ocrclient.convert(pdf, backend="runpod-chandra", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                                api_key=sim.api_key, cache=False, timeout=1, max_attempts=5, page_deadline_s=2.5,
                                cold_start_s=0, scheduler_options={"backoff_initial_s": 0.1})  # fmt: skip
    message = doc.pages[0].error.message if doc.pages[0].error else ""
    assert doc.pages[0].status == "failed" and "page_deadline_s" in message, message
    assert not re.search(r"\d\.\d{3,}", message), message  # (no 0.0992292s)
