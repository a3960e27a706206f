"""A page like one being read (the same image under the same settings: one cache key) waits for
it and is served from the cache: it was sent again, and paid, whenever the two were in flight
together (8 jobs for a PDF of 8 identical pages at ``-c 8``; 20 for one 10-page PDF under two
names).  The kind: identical pages in one document, one document under two names in one run,
a twin whose read failed (the ones waiting fail with it, unsent), and no cache (every page sent: nothing
to serve them from)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.parametrize("fault", ["http_400", "http_503"])
def test_a_page_whose_twin_failed_fails_with_it_unsent(fault: str, tmp_path: Path) -> None:
    """The same request has the same fate: copies waiting for a page that failed -- refused
    (400) or out of attempts (503 each time) -- fail with its error, naming it, and are not sent
    (each copy went through every attempt again: 3 copies of a failing page, 12 jobs); the
    manifest lists them all failed, so a rerun tries again."""
    pdf = text_pdf(tmp_path / "same.pdf", [["the same page"]] * 3 + [["another page"]])
    plan = FaultPlan(rates={fault: 1.0}, latency_s=0.2)
    with OpenAISimulator(model="m", plan=plan) as sim:
        doc = ocrclient.convert(pdf, **_settings(sim, tmp_path, max_attempts=3, scheduler_options={"backoff_initial_s": 0.2, "backoff_max_s": 0.2}))
        posts = _posts(sim)
    assert [p.status for p in doc.pages] == ["failed"] * 4
    assert posts == sum(p.attempts for p in doc.pages)  # (every request some page's attempt)
    sent = {p.page: p for p in doc.pages[:3] if p.attempts}
    unsent = [p for p in doc.pages[:3] if p.attempts == 0]
    # a 400 comes back at once: a copy begun after it is no longer "in flight together" and is
    # sent (and refused) itself -- so an unsent copy may name page 2 --; three tries with backoff
    # keep the first in flight for the others
    assert len(unsent) == 2 or fault == "http_400", [(p.page, p.attempts) for p in doc.pages]
    for p in unsent:
        assert p.error is not None
        named = [t for n, t in sent.items() if f"as page {n}, the same page: not sent again" in p.error.message]
        assert len(named) == 1, (p.error.message, sorted(sent))
        assert named[0].error is not None and p.error.kind == named[0].error.kind


def test_without_a_cache_every_page_is_sent(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "same.pdf", [["the same page"]] * 4)
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.05)) as sim:
        doc = ocrclient.convert(pdf, **_settings(sim, tmp_path, cache=False))
        assert _posts(sim) == 4
    assert doc.stats.ok == 4


def test_a_copy_in_another_document_names_the_document_of_the_page_that_failed(tmp_path: Path) -> None:
    """Across documents the failed copy names the page's document too ("as page 1" named b.pdf's
    own page 1, another page)."""
    a = text_pdf(tmp_path / "a.pdf", [["the same page"]])
    b = text_pdf(tmp_path / "b.pdf", [["another page"], ["the same page"]])
    plan = FaultPlan(rates={"http_503": 1.0})  # (tried three times: the copy is in flight meanwhile)
    with OpenAISimulator(model="m", plan=plan) as sim:
        results = list(ocrclient.convert_many([a, b], **_settings(sim, tmp_path, concurrency=4, max_attempts=3,
                       scheduler_options={"backoff_initial_s": 0.3, "backoff_max_s": 0.3})))  # fmt: skip
    failed = [p for r in results for p in r.document.pages if p.attempts == 0 and p.error is not None]
    assert failed, [(r.source.name, [(p.page, p.attempts) for p in r.document.pages]) for r in results]
    for p in failed:
        assert "the same page: not sent again" in p.error.message  # type: ignore[union-attr]
        assert " of " in p.error.message.split("(as ")[-1], p.error.message  # type: ignore[union-attr]
