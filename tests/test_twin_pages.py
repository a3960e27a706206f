"""A page like one being read (the same image under the same settings: one cache key) waits for
it and is served from the cache: it was sent again, and paid, whenever the two were in flight
together (8 jobs for a PDF of 8 identical pages at ``-c 8``; 20 for one 10-page PDF under two
names).  The kind: identical pages in one document, one document under two names in one run,
a twin whose read failed (the one waiting sends its own), and no cache (every page sent: nothing
to serve them from)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import ocrclient
from ocrclient.testing import FaultPlan, OpenAISimulator

from .pdfgen import text_pdf


def _settings(sim: OpenAISimulator, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"backend": "openai", "base_url": sim.base_url, "api_key": sim.api_key, "model": "m",
            "cache": tmp_path / "cache", "concurrency": 8, **extra}  # fmt: skip


def _posts(sim: OpenAISimulator) -> int:
    return sim.requests["POST /v1/chat/completions"]


def test_identical_pages_of_one_document_are_sent_once(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "same.pdf", [["the same page"]] * 8)
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.2)) as sim:
        doc = ocrclient.convert(pdf, **_settings(sim, tmp_path))
        assert _posts(sim) == 1
    assert [p.status for p in doc.pages] == ["ok"] * 8
    assert sum(p.cached for p in doc.pages) == 7
    assert len({p.markdown for p in doc.pages}) == 1 and [p.page for p in doc.pages] == list(range(1, 9))


def test_one_document_under_two_names_in_one_run_is_sent_once(tmp_path: Path) -> None:
    a = text_pdf(tmp_path / "a.pdf", [[f"page {i}"] for i in range(5)])
    b = shutil.copy(a, tmp_path / "b.pdf")
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.2)) as sim:
        results = list(ocrclient.convert_many([a, b], **_settings(sim, tmp_path)))
        assert _posts(sim) == 5
    assert [r.document.stats.ok for r in results] == [5, 5]


def test_a_page_whose_twin_failed_is_sent_itself(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "same.pdf", [["the same page"]] * 3)
    plan = FaultPlan(rates={"http_400": 1.0}, max_faults_per_key=1, latency_s=0.2)
    with OpenAISimulator(model="m", plan=plan) as sim:
        doc = ocrclient.convert(pdf, **_settings(sim, tmp_path))
        assert _posts(sim) == 2  # the first failed (a 400 is not retried); the next was sent, then served
    assert [p.status for p in doc.pages].count("failed") == 1 and [p.status for p in doc.pages].count("ok") == 2


def test_without_a_cache_every_page_is_sent(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "same.pdf", [["the same page"]] * 4)
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.05)) as sim:
        doc = ocrclient.convert(pdf, **_settings(sim, tmp_path, cache=False))
        assert _posts(sim) == 4
    assert doc.stats.ok == 4
