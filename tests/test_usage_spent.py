"""A page's and a run's usage count every job that ran for it, not only the one whose reply gave
the page: a FAILED or TIMED_OUT job, a truncated reply retried, a reply that could not be read
were billed too (``ocr bench`` said 6.0 GPU-seconds for 11 one-second jobs).  And a pool prices
its pages at its members' price."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.testing import DialectResponder, FaultPlan
from ocrclient.testing.runpod_sim import RunPodSimulator

from .pdfgen import text_pdf

PRICE = 0.00034  # runpod-chandra's price per GPU-second
PAGES = 6


def _billed(sim: RunPodSimulator) -> float:
    """GPU-seconds of every job that ran, as RunPod reports them (executionTime, ms)."""
    jobs = list(sim._jobs.values())  # (the simulator's own record of its jobs)
    return sum(int(j.reply().get("executionTime", 0)) for j in jobs) / 1000


@pytest.mark.parametrize("fault", ["failed", "timed_out", "length", "garbage", "none"])
@pytest.mark.parametrize("mode", ["run", "runsync"])
def test_every_job_a_page_ran_is_in_its_usage(fault: str, mode: str, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [[f"page {i}"] for i in range(PAGES)])
    rates = {} if fault == "none" else {fault: 0.5}
    plan = FaultPlan(seed=4, rates=rates, latency_s=0.05, slots=4)
    with RunPodSimulator(plan=plan, responder=DialectResponder("chandra")) as sim:
        doc = ocrclient.convert(
            pdf, backend="runpod-chandra", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
            api_key=sim.api_key, cache=False, transport_options={"mode": mode},
            scheduler_options={"backoff_initial_s": 0.05, "backoff_max_s": 0.2},  # (the retries' waits: not what is counted)
        )  # fmt: skip
        billed = _billed(sim)
    assert len(doc.pages) == PAGES
    counted = sum(p.usage.gpu_seconds or 0.0 for p in doc.pages)
    assert billed > 0 and counted == pytest.approx(billed, abs=0.002 * len(sim._jobs)), (fault, counted, billed)
    assert doc.stats.usage.gpu_seconds == pytest.approx(counted, abs=1e-6)
    for p in doc.pages:  # priced, failed pages too
        if p.usage.gpu_seconds:
            assert p.usage.cost_usd == pytest.approx(p.usage.gpu_seconds * PRICE, abs=1e-6), p
    assert doc.stats.usage.cost_usd == pytest.approx(counted * PRICE, abs=1e-5)


def test_a_pool_prices_its_pages_at_its_members_price(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [[f"page {i}"] for i in range(3)])
    plan = FaultPlan(seed=1, latency_s=0.05, slots=4)
    with RunPodSimulator(plan=plan, responder=DialectResponder("chandra")) as a, \
         RunPodSimulator(plan=plan, responder=DialectResponder("chandra")) as b:  # fmt: skip
        members: list[dict[str, Any]] = [
            {"backend": "runpod-chandra", "base_url": s.base_url, "endpoint_id": s.endpoint_id, "api_key": s.api_key}
            for s in (a, b)
        ]
        doc = ocrclient.convert(pdf, backend="runpod", dialect="chandra", model="datalab-to/chandra", transport="pool",
                                cache=False,  # (the generic profile: its own price, 0.00019)
                                transport_options={"members": members})  # fmt: skip
    assert all(p.status == "ok" for p in doc.pages)
    for p in doc.pages:
        assert p.usage.gpu_seconds and p.usage.cost_usd == pytest.approx(p.usage.gpu_seconds * PRICE, abs=1e-6), p
