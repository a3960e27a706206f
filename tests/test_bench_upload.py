"""`ocr bench` reports bytes on the wire: the mean request body, the upload rate achieved and the
rate needed to keep the endpoint busy (the requests the run can have in flight -- ``concurrency``,
at most its pages -- at the median latency); the in-process local engine uploads nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrclient.bench import body_bytes, run_bench
from ocrclient.errors import EndpointDownError
from ocrclient.testing import FaultPlan, OpenAISimulator, RunPodSimulator

from .pdfgen import text_pdf


def test_body_bytes_is_the_json_text_near_enough() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 50_000}}]}], "max_tokens": 4096}
    exact = len(json.dumps(body, separators=(",", ":")))
    assert 0.99 * exact <= body_bytes(body) <= exact


async def test_bench_reports_upload_needed_beside_achieved(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i} text"] for i in range(6)])
    with OpenAISimulator(plan=FaultPlan(latency_s=(0.05, 0.05), slots=2)) as sim:
        report = await run_bench([str(pdf)], backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                 model=sim.model, concurrency=2)  # fmt: skip
        sent = [len(json.dumps(b, separators=(",", ":"))) for b in sim.bodies]
    assert report["pages"] == 6 and len(sent) == 6
    mean = sum(sent) / len(sent)
    assert 0.97 * mean <= report["upload_bytes_per_request"] <= mean  # the bodies the server got
    achieved = sum(sent) * 8 / report["wall_s"] / 1e6
    assert abs(report["upload_mbit_s"] - achieved) <= 0.05 * achieved + 0.001
    need = report["upload_bytes_per_request"] * 8 * 2 / report["latency_p50_s"] / 1e6
    assert abs(report["upload_mbit_s_to_keep_busy"] - need) <= 0.01 * need + 0.001
    assert report["upload_in_flight"] == 2 and 1 <= report["upload_peak_in_flight"] <= 2


async def test_a_run_of_fewer_pages_than_the_concurrency_needs_only_what_its_pages_need(tmp_path: Path) -> None:
    """3 pages at concurrency 16 never have more than 3 requests in flight: the rate needed to
    keep the endpoint busy is 3 bodies per median latency, not 16 (6 pages at concurrency 16
    claimed 27 Mbit/s needed against 5 achieved)."""
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i} text"] for i in range(3)])
    with OpenAISimulator(plan=FaultPlan(latency_s=(0.2, 0.2), slots=16)) as sim:
        report = await run_bench([str(pdf)], backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                 model=sim.model, concurrency=16)  # fmt: skip
    assert report["pages"] == 3 and report["upload_requests"] == 3
    three = report["upload_bytes_per_request"] * 8 * 3 / report["latency_p50_s"] / 1e6
    assert report["upload_mbit_s_to_keep_busy"] <= three * 1.01 + 0.001, (report, three)
    # (what was achieved, the bytes over the run's wall, is left alone here: on a loaded machine
    # the three pages render one after another and the wall is several latencies, by chance)
    assert report["upload_in_flight"] == 3 and report["upload_peak_in_flight"] <= 3


@pytest.mark.parametrize("cloud", ["openai", "runpod runsync", "runpod run"])
async def test_a_pages_latency_is_its_service_not_its_wait_for_a_slot(cloud: str, tmp_path: Path) -> None:
    """12 pages through 3 slots of 0.3 s: a page's latency (its JSON, ``PageDone``, the run's
    p50) is from its first request to its result, 0.3 s, not from when it began to wait behind
    the others for a slot (0.6 s and more: ``ocr bench`` then said half the upload rate needed
    to keep the endpoint busy), on every transport the bench runs."""
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i} text"] for i in range(12)])
    plan = FaultPlan(latency_s=(0.3, 0.3), slots=3)
    if cloud == "openai":
        with OpenAISimulator(plan=plan) as sim:
            report = await run_bench([str(pdf)], backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                     model=sim.model, concurrency=3)  # fmt: skip
    else:
        with RunPodSimulator(plan=plan) as rp:
            report = await run_bench([str(pdf)], backend="runpod", base_url=rp.base_url, endpoint_id=rp.endpoint_id,
                                     api_key=rp.api_key, model="m", concurrency=3,
                                     transport_options={"mode": cloud.split()[1], "poll_interval_s": 0.02, "max_poll_interval_s": 0.02})  # fmt: skip
    assert report["pages"] == 12 and report["upload_in_flight"] == 3
    assert 0.3 <= report["latency_p50_s"] < 0.45, report  # (run + poll: up to a poll late)
    need = report["upload_bytes_per_request"] * 8 * 3 / 0.3 / 1e6  # 3 bodies per service time
    assert 0.65 * need <= report["upload_mbit_s_to_keep_busy"] <= need * 1.01, (report, need)


def _local_pdf(tmp_path: Path) -> Path:
    pytest.importorskip("rapidocr", reason="the local engine is in the local extra")
    return text_pdf(tmp_path / "d.pdf", [["one line of text"], ["another line"]])


async def test_the_local_engine_reports_no_upload(tmp_path: Path) -> None:
    """The local engine runs in-process: nothing goes up, so no upload figure (it reported
    requests, bytes and Mbit/s, needed and achieved, for bytes that never left the process)."""
    report = await run_bench([str(_local_pdf(tmp_path))], backend="local", render={"dpi": 72})
    assert report["pages"] == 2 and report["failed"] == 0, report
    for key in ("upload_requests", "upload_bytes_per_request", "upload_mbit_s", "upload_mbit_s_to_keep_busy",
                "upload_in_flight", "upload_peak_in_flight"):  # fmt: skip
        assert report.get(key) is None, (key, report.get(key))
    assert "nothing uploaded" in report["upload_detail"]


def test_cli_bench_says_the_local_engine_uploads_nothing(tmp_path: Path) -> None:
    pdf = _local_pdf(tmp_path)
    env = {**os.environ, "COLUMNS": "200"}
    for extra in (["--json"], []):
        run = subprocess.run([sys.executable, "-m", "ocrclient.cli", "bench", str(pdf), "--backend", "local", "--dpi", "72",
                              *extra], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr
        if extra:
            report = json.loads(run.stdout)
            assert report["upload_mbit_s"] is None and report["upload_mbit_s_to_keep_busy"] is None
        else:
            assert "nothing uploaded" in run.stdout and "upload_mbit_s" not in run.stdout, run.stdout


def test_cli_bench_prints_the_upload_rates(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]])
    with OpenAISimulator() as sim:
        env = {**os.environ, "OCRCLIENT_API_KEY": sim.api_key or "", "COLUMNS": "200"}
        run = subprocess.run([sys.executable, "-m", "ocrclient.cli", "bench", str(pdf), "--backend", "openai",
                              "--base-url", sim.base_url, "--model", sim.model, "--json"],
                             capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["upload_bytes_per_request"] > 0
    assert report["upload_mbit_s"] > 0 and report["upload_mbit_s_to_keep_busy"] > 0


async def test_bench_counts_neither_pages_nor_bytes_that_went_nowhere(tmp_path: Path) -> None:
    """Against an endpoint that is not there the bench stops once ``unreachable_s`` is over, as
    a conversion does (it reported 0.63 pages/s and 13 Mbit/s of upload for six refused
    connections); against one that answers some pages with an error, the bodies it got are
    counted and the pages that failed are not."""
    import socket

    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i} text"] for i in range(6)])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with pytest.warns(UserWarning, match="no server answers"), pytest.raises(EndpointDownError):
        await run_bench([str(pdf)], backend="openai", base_url=nowhere, api_key="k", model="m", max_attempts=1,
                        unreachable_s=0.5)  # fmt: skip
    with OpenAISimulator(plan=FaultPlan(seed=2, rates={"http_400": 0.5}, latency_s=(0.02, 0.02))) as sim:
        report = await run_bench([str(pdf)], backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                 model=sim.model, max_attempts=1)  # fmt: skip
        answered = sim.requests["POST /v1/chat/completions"]
    done = report["ok"] + report["degraded"]
    assert 0 < done < 6 and report["pages_per_s"] == pytest.approx(done / report["wall_s"], rel=0.05)
    assert report["upload_bytes_per_request"] > 0 and answered == 6  # every body went up, answered or refused


#: every way a backend is priced, and the cost ``ocr bench`` estimates from it
PRICINGS = {
    "per GPU-second, no GPU time reported (Modal)": ({"price_per_gpu_second": 0.000583}, "price_per_gpu_second"),
    "per hour (a pod)": ({"price_per_hour": 0.69}, "price_per_hour"),
    "unpriced": ({}, None),
}


@pytest.mark.parametrize("pricing", sorted(PRICINGS))
async def test_bench_estimates_the_cost_of_every_priced_backend(pricing: str, tmp_path: Path) -> None:
    """The whole kind, on the OpenAI API (whose server reports no GPU time): a backend priced per
    GPU-second (the shipped Modal profile) is costed as one GPU held for the run; per hour (the
    pod profile) as the hours of the run; an unpriced one is not costed.  Modal's price was never
    used: its estimate was always null.  (RunPod's reported GPU-seconds: test_usage_spent.py.)"""
    over, basis = PRICINGS[pricing]
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]])
    with OpenAISimulator(plan=FaultPlan(latency_s=0.05)) as sim:
        report = await run_bench([str(pdf)], backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                 model=sim.model, **over)  # fmt: skip
    assert report["gpu_seconds"] is None  # (none reported: none invented)
    if basis is None:
        assert report["estimated_cost_usd"] is None and report["cost_basis"] is None
        return
    price = next(iter(over.values()))
    want = price * report["wall_s"] / (3600.0 if basis == "price_per_hour" else 1.0)
    assert report["estimated_cost_usd"] == pytest.approx(want, rel=0.02, abs=1e-6)
    assert basis in report["cost_basis"]


async def test_a_runpod_endpoint_that_ran_no_job_costs_nothing_known(tmp_path: Path) -> None:
    """RunPod serverless bills the jobs that ran (their GPU-seconds): an endpoint that ran no
    job (every submit refused with a 503, no job made) has no cost estimate, not the run's
    wall time at the GPU price ("one GPU held for the run", the Modal reckoning)."""
    pdf = text_pdf(tmp_path / "d.pdf", [["one"]])
    with RunPodSimulator(plan=FaultPlan(rates={"http_503": 1.0})) as sim:
        report = await run_bench([str(pdf)], backend="runpod-olmocr", base_url=sim.base_url,
                                 endpoint_id=sim.endpoint_id, api_key=sim.api_key, max_attempts=1)  # fmt: skip
        assert sim.jobs_submitted == 0
    assert report["failed"] == 1
    assert report["estimated_cost_usd"] is None and report["cost_basis"] is None, report


#: faults after which a body has gone up: each must be counted once (RunPod's FAILED jobs and the
#: 429s sent again, and OpenAI replies cut after the body was read, were left out)
UPLOAD_FAULTS = {
    "runpod FAILED job": ("runpod", {"failed": 0.5}),
    "runpod 429": ("runpod", {"http_429": 0.4}),
    "runpod 503": ("runpod", {"http_503": 0.4}),
    "openai reset": ("openai", {"reset": 0.4}),
    "openai 503": ("openai", {"http_503": 0.4}),
    "openai 400": ("openai", {"http_400": 0.4}),
}


@pytest.mark.parametrize("fault", sorted(UPLOAD_FAULTS))
async def test_bench_counts_every_body_the_server_got(fault: str, tmp_path: Path) -> None:
    from ocrclient.testing import RunPodSimulator

    cloud, rates = UPLOAD_FAULTS[fault]
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i} text"] for i in range(6)])
    plan = FaultPlan(seed=5, rates=rates, retry_after_s=0.2, latency_s=(0.02, 0.02))
    if cloud == "runpod":
        with RunPodSimulator(plan=plan) as rp:
            report = await run_bench([str(pdf)], backend="runpod-olmocr", base_url=rp.base_url, endpoint_id=rp.endpoint_id,
                                     api_key=rp.api_key, max_attempts=3)  # fmt: skip
            got = rp.requests.get("runsync", 0) + rp.requests.get("run", 0)
    else:
        with OpenAISimulator(plan=plan) as sim:
            report = await run_bench([str(pdf)], backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                     model=sim.model, max_attempts=3)  # fmt: skip
            got = sim.requests["POST /v1/chat/completions"]
    assert got >= 6, got
    assert report["upload_requests"] == got, (report["upload_requests"], got)
