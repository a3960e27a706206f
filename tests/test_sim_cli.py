"""The simulators' command lines (``python -m ocrclient.testing ...``) and the simulators' own
lifecycle, as a user's test suite drives them."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest

from ocrclient.testing import OpenAISimulator, RunPodSimulator


def _busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


@pytest.mark.parametrize("argv", [
    ["-m", "ocrclient.testing", "openai", "--rate", "http_503=0.7", "--rate", "failed=0.6"],
    ["-m", "ocrclient.testing", "openai", "--port", "70000"],
    ["-m", "ocrclient.testing", "openai", "--replay-dir", "/nonexistent/replies"],
    ["-m", "ocrclient.testing", "runpod", "--port", "BUSY"],
    ["-m", "ocrclient.testing.hostile", "in_queue_forever", "--contract", "openai"],
    ["-m", "ocrclient.testing.runpod_sim", "--fault", "failed"],
    ["-m", "ocrclient.testing.runpod_sim", "--fault", "nosuch=0.1"],
    ["-m", "ocrclient.testing.runpod_sim", "--port", "BUSY"],
    ["-m", "ocrclient.testing", "nosuch"],
    ["-m", "ocrclient.testing", "openai", "--latency", "x", "1"],
    ["-m", "ocrclient.testing.hostile", "no_such_behaviour"],
    ["-m", "ocrclient.testing.runpod_sim", "--no-such-option"],
])  # fmt: skip
def test_every_bad_simulator_command_line_is_one_line_exit_2(argv: list[str]) -> None:
    """Each way to start a simulator wrongly (a plan whose rates add up past 1, a port out of
    range or in use, no replay files, a behaviour without that contract's form, a --fault
    without a rate or of no known class) printed a traceback, exit 1: now one line (argparse's
    error without its usage block), exit 2."""
    busy, port = _busy_port()
    try:
        argv = [str(port) if a == "BUSY" else a for a in argv]
        run = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.strip().split(": error: ")[1], run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr  # (not argparse's usage block first)


def test_a_simulator_stopped_and_started_again_restarts() -> None:
    """After ``stop()`` and ``start()``, ``restart()`` left the server down for good (its stop
    flag was still set)."""
    sim = OpenAISimulator()
    sim.start()
    sim.stop()
    sim.start()
    try:
        sim.restart(0.05)
        assert httpx.get(sim.url + "/health", timeout=10).status_code == 200
    finally:
        sim.stop()


def test_a_cold_endpoint_shows_no_worker_up_before_its_first_job() -> None:
    from ocrclient.testing import FaultPlan

    with RunPodSimulator(plan=FaultPlan(cold_start_s=30)) as sim:
        workers = httpx.get(f"{sim.base_url}/{sim.endpoint_id}/health",
                            headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=10).json()["workers"]  # fmt: skip
    assert workers["idle"] == workers["ready"] == workers["running"] == 0


def test_stream_in_the_local_flavour_leaves_the_job_for_its_status() -> None:
    """A job whose worker returns (not a generator): the SDK's /stream refuses it and leaves it."""
    with RunPodSimulator(flavour="local") as sim:
        jid = httpx.post(sim.base_url + "/run", json={"input": {"a": 1}}, timeout=10).json()["id"]
        refused = httpx.post(sim.base_url + f"/stream/{jid}", timeout=10)
        assert refused.status_code == 200 and refused.json() == {
            "id": jid, "status": "FAILED", "error": "Stream not supported, handler must be a generator."}
        status = httpx.post(sim.base_url + f"/status/{jid}", timeout=30).json()
    assert status["status"] == "COMPLETED", status


def test_page_key_makes_max_faults_per_key_count_per_page_whatever_the_ladder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """docs/testing.md's recipe (every page fails once, then succeeds) with a backend whose
    retries change the temperature: each retry was a new key with its own draws, and the page
    failed after 4 attempts.  With ``key_fn=page_key`` it fails once and then reads."""
    import ocrclient
    from ocrclient.testing import FaultPlan, page_key

    from .pdfgen import text_pdf

    plan = FaultPlan(rates={"http_503": 1.0}, max_faults_per_key=1, retry_after_s=0.05)
    with OpenAISimulator(mode="proxy", model="lightonai/LightOnOCR-2-1B", plan=plan, key_fn=page_key) as sim:
        doc = ocrclient.convert(text_pdf(tmp_path / "a.pdf", [["one"]]), backend="runpod-pod-lightonocr2",
                                base_url=sim.base_url, api_key=sim.api_key, cache=False, cold_start_s=0)  # fmt: skip
    assert doc.pages[0].status == "ok" and doc.pages[0].attempts == 2


@pytest.mark.parametrize("kind", ["openai", "runpod"])
def test_a_chunked_upload_is_read_as_its_body(kind: str) -> None:
    """A user's code that streams its upload (``Transfer-Encoding: chunked``: httpx given a
    generator) got a false 400 from every simulator, where vLLM and RunPod read it."""
    import json

    def chunks(data: bytes):  # type: ignore[no-untyped-def]
        yield data[:10]
        yield data[10:]

    if kind == "openai":
        with OpenAISimulator() as sim:
            body = json.dumps({"model": sim.model, "messages": [{"role": "user", "content": "hi"}]}).encode()
            reply = httpx.post(sim.base_url + "/chat/completions", content=chunks(body),
                               headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30)  # fmt: skip
    else:
        with RunPodSimulator() as sim:
            body = json.dumps({"input": {"prompt": "hi"}}).encode()
            reply = httpx.post(f"{sim.base_url}/{sim.endpoint_id}/run", content=chunks(body),
                               headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=30)  # fmt: skip
    assert reply.status_code == 200, reply.text
