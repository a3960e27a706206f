"""A healthy request holds its simulator slot for the plan's latency, counted from when it got the
slot: sleeps go to deadlines (an overshoot is not carried into the next one) and the work done
inside the slot (the responder, encoding the reply) is part of the latency, not added to it.

No wall clock: each simulator's clock and sleep are replaced by a fake one that records what it
waits for, overshoots every sleep by :data:`OVERSHOOT` and lets the responder take
:data:`WORK` of simulated time.  Every simulator that applies ``plan.latency`` is covered:
OpenAI (JSON and streamed; direct, proxy and Modal modes), ocular (text and structured routes),
RunPod (``/run``, ``/runsync``, and the SDK's local test server).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import httpx
import pytest

from ocrclient.testing import FaultPlan, OcularSimulator, OpenAISimulator
from ocrclient.testing.faults import SimReply, echo_responder
from ocrclient.testing.runpod_sim import RunPodSimulator, SimJob

LATENCY = 1.0
OVERSHOOT = 0.05  # what every sleep oversleeps (a loaded machine)
WORK = 0.3  # simulated time the responder takes inside the slot
T0 = 5000.0


class FakeTime:
    """A clock that moves only when a simulator sleeps (by what it asked plus ``overshoot``) or
    its responder works; ``waits`` records each sleep as (clock when asked, seconds asked)."""

    def __init__(self, overshoot: float = OVERSHOOT) -> None:
        self.now = T0
        self.overshoot = overshoot
        self.waits: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append((self.now, seconds))
            if seconds > 0:
                self.now += seconds + self.overshoot

    def hold(self, job: SimJob, seconds: float) -> bool:  # RunPodSimulator._hold
        self.sleep(seconds)
        return False

    def responder(self, work: float) -> Any:
        def answer(body: dict[str, Any]) -> SimReply:
            with self._lock:
                self.now += work
            return echo_responder(body)

        return answer

    def deadlines(self) -> list[float]:
        """When each real (positive) sleep was to end, relative to the start."""
        return [round(at + s - T0, 9) for at, s in self.waits if s > 0]


def _fake(sim: Any, fake: FakeTime) -> None:
    sim.clock = fake.clock
    if isinstance(sim, RunPodSimulator):
        sim._hold = fake.hold
    else:
        sim.sleep = fake.sleep


IMAGE = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake page").decode()


def _chat(model: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model, "max_tokens": 100,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": IMAGE}}]}],
    }
    if stream:
        body["stream"] = True
    return body


def _openai(mode: str, stream: bool, work: float, fake: FakeTime, chunks: int = 4,
            plan: FaultPlan | None = None) -> str:  # fmt: skip
    """One chat completion against an OpenAISimulator on ``fake`` time: the reply's text."""
    plan = plan or FaultPlan(latency_s=(LATENCY, LATENCY))
    with OpenAISimulator(plan=plan, mode=mode, api_key=None, stream_chunks=chunks,  # type: ignore[arg-type]
                         responder=fake.responder(work)) as sim:  # fmt: skip
        _fake(sim, fake)
        headers = {"Modal-Key": sim.modal_key, "Modal-Secret": sim.modal_secret} if mode == "modal" else {}
        r = httpx.post(sim.base_url + "/chat/completions", json=_chat(sim.model, stream), headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        if not stream:
            return str(r.json()["choices"][0]["message"]["content"])
        text = ""
        for line in r.text.splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:])["choices"]:
                    text += choice["delta"].get("content") or ""
        assert r.text.rstrip().endswith("data: [DONE]")
        return text


@pytest.mark.parametrize("mode", ["direct", "proxy", "modal"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("work", [0.0, WORK], ids=["no-work", "responder-work"])
def test_openai_request_holds_its_slot_for_the_latency(mode: str, stream: bool, work: float) -> None:
    fake = FakeTime()
    text = _openai(mode, stream, work, fake)
    assert text.startswith("# Page ")  # the whole reply came through
    deadlines = fake.deadlines()
    assert all(s >= 0 for _, s in fake.waits)  # never a negative sleep
    assert deadlines[-1] == pytest.approx(LATENCY)  # the reply's end: start + latency, exactly
    if stream:  # chunk i of 4 at latency * i / 4 (those not already past when the responder returned)
        assert deadlines == pytest.approx([LATENCY * i / 4 for i in range(1, 5) if LATENCY * i / 4 > work])


def test_a_stream_takes_the_latency_however_much_each_sleep_overshoots() -> None:
    for overshoot in (0.0, 0.01, 0.1):
        fake = FakeTime(overshoot)
        _openai("direct", True, 0.0, fake, chunks=8)
        assert fake.deadlines() == pytest.approx([LATENCY * i / 8 for i in range(1, 9)])
        assert fake.now - T0 == pytest.approx(LATENCY + overshoot)  # only the last overshoot shows


def test_responder_slower_than_the_latency_answers_at_once() -> None:
    fake = FakeTime()
    _openai("direct", True, 2 * LATENCY, fake)
    assert fake.deadlines() == [] and all(s == 0 for _, s in fake.waits)
    assert fake.now - T0 == pytest.approx(2 * LATENCY)


def test_slow_first_byte_then_the_latency() -> None:
    fake = FakeTime(overshoot=0.0)
    plan = FaultPlan(latency_s=(LATENCY, LATENCY), rates={"slow_first_byte": 1.0}, first_byte_delay_s=2.0)
    _openai("direct", True, WORK, fake, plan=plan)
    # nothing for 2 s, then the latency counted from there (the responder's time inside it)
    assert fake.deadlines() == pytest.approx([2.0, 2.5, 2.75, 3.0])


def test_hang_holds_the_slot_for_hang_s_then_hangs_up() -> None:
    fake = FakeTime()
    plan = FaultPlan(latency_s=(LATENCY, LATENCY), rates={"hang": 1.0}, hang_s=30.0)
    with OpenAISimulator(plan=plan, api_key=None) as sim:
        _fake(sim, fake)
        with pytest.raises(httpx.TransportError):
            httpx.post(sim.base_url + "/chat/completions", json=_chat(sim.model, False), timeout=10)
    assert fake.deadlines() == pytest.approx([30.0])


@pytest.mark.parametrize("route", ["/extract_text", "/extract_structured_robust"])
@pytest.mark.parametrize("work", [0.0, WORK], ids=["no-work", "responder-work"])
def test_ocular_request_holds_its_slot_for_the_latency(route: str, work: float) -> None:
    fake = FakeTime()
    with OcularSimulator(plan=FaultPlan(latency_s=(LATENCY, LATENCY)), responder=fake.responder(work)) as sim:
        _fake(sim, fake)
        body = {"image": base64.b64encode(b"page").decode(), "schema": {"title": "str"}}
        r = httpx.post(sim.url + route, json=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["processing_time"] == pytest.approx(LATENCY)
    assert fake.deadlines() == pytest.approx([LATENCY])


def _runpod_job(op: str, flavour: str, work: float, fake: FakeTime) -> SimJob:
    plan = FaultPlan(latency_s=(LATENCY, LATENCY), slots=1)
    sim = RunPodSimulator(plan=plan, flavour=flavour, api_key=None, responder=fake.responder(work))
    _fake(sim, fake)
    job_input = {"openai_route": "/v1/chat/completions", "openai_input": _chat("m", False)}
    with sim:
        url = f"{sim.base_url}/{op}" if flavour == "local" else f"{sim.base_url}/{sim.endpoint_id}/{op}"
        r = httpx.post(url, json={"input": job_input}, timeout=10)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        while True:
            with sim._lock:
                jobs = list(sim._jobs.values())
            if jobs and jobs[0].finished is not None:
                break
            assert time.monotonic() < deadline, "the job never ended"
            time.sleep(0.01)
    job = jobs[0]
    assert job.status == "COMPLETED" and job.has_output
    return job


@pytest.mark.parametrize(("op", "flavour"), [("run", "api"), ("runsync", "api"), ("runsync", "local")])
@pytest.mark.parametrize("work", [0.0, WORK], ids=["no-work", "responder-work"])
def test_runpod_job_holds_its_slot_for_the_latency(op: str, flavour: str, work: float) -> None:
    fake = FakeTime(overshoot=0.0)
    job = _runpod_job(op, flavour, work, fake)
    assert job.started == T0
    assert job.finished == pytest.approx(T0 + LATENCY)  # executionTime = latency, work included
    assert job.reply()["executionTime"] == int(LATENCY * 1000)
    assert fake.deadlines() == pytest.approx([LATENCY])


def test_runpod_job_that_times_out_ends_at_its_execution_timeout() -> None:
    fake = FakeTime(overshoot=0.0)
    sim = RunPodSimulator(plan=FaultPlan(latency_s=(LATENCY, LATENCY), slots=1), api_key=None,
                          execution_timeout_s=0.4)  # fmt: skip
    _fake(sim, fake)
    with sim:
        job = sim.submit({"route": "/extract_text", "image": "x"}, sync=False)
        assert job.done_event.wait(10)
    assert job.status == "TIMED_OUT" and job.finished == pytest.approx(T0 + 0.4)
    assert fake.deadlines() == pytest.approx([0.4])
