"""A run that stops tells ``on_event`` how every page ended: a page in flight when a refused key
stopped the run, or when the caller cancelled it, had its ``PageStarted`` and never a
``PageFailed`` (3 of 10 pages, in a review's run), while the document held it failed.

The kind: each way a run stops before its end -- the endpoint refusing the key mid-run
(``RunAborted``) and the caller cancelling (a timeout around ``aconvert``) -- and, for each,
every page that started ends in exactly one ``PageDone`` or ``PageFailed``; with a document in
hand, its pages and the events agree one for one."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.testing import DialectResponder, FaultPlan
from ocrclient.testing.runpod_sim import RunPodSimulator

from .pdfgen import text_pdf

PAGES = 10


def _ends(events: list[Any]) -> tuple[Counter[int], Counter[int], Counter[str]]:
    started = Counter(e.page for e in events if isinstance(e, ocrclient.PageStarted))
    ended = Counter(e.page for e in events if isinstance(e, ocrclient.PageDone | ocrclient.PageFailed))
    kinds = Counter(type(e).__name__ for e in events)
    return started, ended, kinds


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_run_stopped_by_a_refused_key_ends_every_page_in_its_events(seed: int, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(PAGES)])
    events: list[Any] = []
    plan = FaultPlan(seed=seed, latency_s=(0.05, 0.4), rates={"http_401": 0.2})
    with RunPodSimulator(plan=plan, responder=DialectResponder("chandra")) as sim, \
            pytest.raises(ocrclient.RunAborted) as stopped:  # fmt: skip
        ocrclient.convert(pdf, backend="runpod-chandra", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                          api_key=sim.api_key, cache=False, concurrency=4, on_event=events.append)  # fmt: skip
    started, ended, kinds = _ends(events)
    assert set(ended) >= set(started) and max(ended.values()) == 1, (started, ended)
    [doc] = stopped.value.documents
    assert len(doc.pages) == PAGES
    assert kinds["PageDone"] == sum(p.status != "failed" for p in doc.pages), kinds
    assert kinds["PageFailed"] == sum(p.status == "failed" for p in doc.pages), kinds


def test_a_run_the_caller_cancels_ends_every_started_page_in_its_events(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(PAGES)])
    events: list[Any] = []
    with RunPodSimulator(plan=FaultPlan(latency_s=0.3), responder=DialectResponder("chandra")) as sim:

        async def main() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(
                    ocrclient.aconvert(pdf, backend="runpod-chandra", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                                       api_key=sim.api_key, cache=False, concurrency=4, on_event=events.append),
                    timeout=0.5,
                )  # fmt: skip

        asyncio.run(main())
    started, ended, _ = _ends(events)
    assert started and set(ended) >= set(started) and max(ended.values()) == 1, (started, ended)
