"""``ocr convert --retry-degraded``: the pages a run kept degraded are sent again, and no other.

A page kept degraded (a reply cut at ``max_tokens`` on every attempt, garbled output, a blank
page) was cached and its document counted done: a rerun skipped it, ``--redo`` served it from
the cache again, and the only way to retry it was to clear the cache -- every page of every
document, paid again.  The whole kind, through the command: the first run keeps one page
degraded; a plain rerun sends nothing; ``--retry-degraded`` sends that page only, with and
without ``--redo``, and once it reads well, nothing more; ``PageCache(retry_degraded=True)`` is
the same for the Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ocrclient.testing import OpenAISimulator, SimReply

from .pdfgen import text_pdf


def _image_of(body: dict[str, Any]) -> str:
    return next(p["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
                for p in m["content"] if p.get("type") == "image_url")  # fmt: skip


@pytest.mark.parametrize("redo", [False, True], ids=["rerun", "redo"])
def test_only_the_degraded_page_is_sent_again(redo: bool, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    pdf = text_pdf(tmp_path / "in" / "doc.pdf", [["page one"], ["page two"], ["page three"]])
    order: dict[str, int] = {}
    sent: list[int] = []
    state = {"cut": True}

    def respond(body: dict[str, Any]) -> SimReply:
        n = order.setdefault(_image_of(body), len(order) + 1)
        sent.append(n)
        if state["cut"] and n == 2:
            return SimReply("the page, cut", finish_reason="length")
        return SimReply(f"# Page {n}\n\nAll of it.")

    out = tmp_path / "out"
    with OpenAISimulator(model="m", responder=respond) as sim:

        def ocr(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "ocrclient", "convert", str(pdf), "-o", str(out), "--backend", "openai",
                 "--dialect", "plain", "--base-url", sim.base_url, "--model", "m", "--cache-dir", str(tmp_path / "cache"),
                 "--concurrency", "1", "--no-progress", "--json", *extra],
                env={**os.environ, "OCRCLIENT_API_KEY": str(sim.api_key)}, capture_output=True, text=True, timeout=120,
            )  # fmt: skip

        def statuses() -> list[str]:
            return [p["status"] for p in json.loads((out / "doc.json").read_text())["pages"]]

        assert ocr().returncode == 0 and statuses() == ["ok", "degraded", "ok"]
        state["cut"] = False
        before = len(sent)
        assert ocr(*(["--redo"] if redo else [])).returncode == 0 and len(sent) == before  # (served, or skipped)
        retried = ocr("--retry-degraded", *(["--redo"] if redo else []))
        assert retried.returncode == 0, retried.stderr
        assert sent[before:] == [2] and statuses() == ["ok", "ok", "ok"]
        again = ocr("--retry-degraded")
        assert again.returncode == 0 and json.loads(again.stdout)["skipped"] and sent[before:] == [2]


def test_the_python_apis_cache_retries_degraded_pages_when_asked(tmp_path: Path) -> None:
    import ocrclient
    from ocrclient.cache import PageCache

    pdf = text_pdf(tmp_path / "doc.pdf", [["page one"], ["page two"]])
    sent: list[str] = []
    state = {"cut": True}

    def respond(body: dict[str, Any]) -> SimReply:
        sent.append(_image_of(body))
        return SimReply("cut", finish_reason="length") if state["cut"] else SimReply("# All of it")

    with OpenAISimulator(model="m", responder=respond) as sim:
        settings: dict[str, Any] = {"backend": "openai", "dialect": "plain", "base_url": sim.base_url, "model": "m",
                                    "api_key": sim.api_key, "concurrency": 1}  # fmt: skip
        first = ocrclient.convert(pdf, cache=PageCache(tmp_path / "c"), **settings)
        assert [p.status for p in first.pages] == ["degraded", "degraded"]
        state["cut"] = False
        n = len(sent)
        assert [p.status for p in ocrclient.convert(pdf, cache=PageCache(tmp_path / "c"), **settings).pages] == ["degraded"] * 2
        assert len(sent) == n
        doc = ocrclient.convert(pdf, cache=PageCache(tmp_path / "c", retry_degraded=True), **settings)
        assert [p.status for p in doc.pages] == ["ok", "ok"] and len(sent) == n + 2


@pytest.mark.parametrize("status", [400, 503, 401], ids=["refused", "unavailable", "key-refused-run-stops"])
def test_a_retry_that_fails_keeps_the_earlier_degraded_reading(status: int, tmp_path: Path) -> None:
    """``--retry-degraded`` sends a kept page again; when that fails (a refusal, attempts run
    out, a refused key that stops the run; its twin in the run alike) the page keeps its earlier
    degraded reading, said in a warning: it became ``failed`` with no markdown, the document's
    outputs went backwards (a plain rerun then served the old reading back from the cache)."""
    import ocrclient
    from ocrclient.cache import PageCache
    from ocrclient.errors import RunAborted

    pdf = text_pdf(tmp_path / "doc.pdf", [["page one"], ["page two"], ["page one"]])  # (page 3: page 1's twin)

    def respond(body: dict[str, Any]) -> SimReply:
        return SimReply("the page, cut", finish_reason="length")

    with OpenAISimulator(model="m", responder=respond) as sim:
        settings: dict[str, Any] = {"backend": "openai", "dialect": "plain", "base_url": sim.base_url, "model": "m",
                                    "api_key": sim.api_key, "concurrency": 1, "max_attempts": 1}  # fmt: skip
        first = ocrclient.convert(pdf, cache=PageCache(tmp_path / "c"), **settings)
        assert [p.status for p in first.pages] == ["degraded"] * 3
        sim.force_status = status
        try:
            doc = ocrclient.convert(pdf, cache=PageCache(tmp_path / "c", retry_degraded=True), **settings)
        except RunAborted as stopped:
            assert status == 401
            doc = stopped.documents[0]
    retried = [p for p in doc.pages if p.attempts]
    assert retried and all(p.status == "degraded" and p.markdown == "the page, cut" for p in retried), doc.pages
    for page in retried:
        assert page.cached and any("sent again (--retry-degraded) and failed" in w for w in page.warnings), page.warnings
    if status != 401:  # (the run went on: every page kept, the twin of the failed one too)
        assert [p.status for p in doc.pages] == ["degraded"] * 3 and [p.markdown for p in doc.pages] == ["the page, cut"] * 3


def test_pages_in_flight_when_a_refused_key_stops_the_retry_keep_their_earlier_reading(tmp_path: Path) -> None:
    """Several degraded pages sent again at once, the first reply a refused key (the run stops):
    the others in flight were failed with no markdown, their earlier reading lost from the
    outputs as the one page's was; each keeps it now."""
    import ocrclient
    from ocrclient.cache import PageCache
    from ocrclient.errors import RunAborted
    from ocrclient.testing.vllm_checks import Refusal

    pdf = text_pdf(tmp_path / "doc.pdf", [[f"page {n}"] for n in range(1, 5)])
    with OpenAISimulator(model="m", responder=lambda body: SimReply("the page, cut", finish_reason="length")) as sim:
        settings: dict[str, Any] = {"backend": "openai", "dialect": "plain", "base_url": sim.base_url, "model": "m",
                                    "api_key": sim.api_key, "concurrency": 4, "max_attempts": 1}  # fmt: skip
        first = ocrclient.convert(pdf, cache=PageCache(tmp_path / "c"), **settings)
        assert [p.status for p in first.pages] == ["degraded"] * 4
        # the refusal once every page is in flight (a 401 drawn by the plan is answered at once: a
        # page rendered late on a loaded machine was not sent yet, so failed unfinished, not kept)
        arrived = threading.Barrier(4, timeout=30)

        def refused(body: dict[str, Any]) -> SimReply:
            arrived.wait()
            raise Refusal(401, "Unauthorized")

        sim.responder = refused
        with pytest.raises(RunAborted) as stopped:
            ocrclient.convert(pdf, cache=PageCache(tmp_path / "c", retry_degraded=True), **settings)
    (doc,) = stopped.value.documents
    assert [(p.status, p.markdown) for p in doc.pages] == [("degraded", "the page, cut")] * 4, doc.pages
    assert sum(any("the earlier reading is kept" in w for w in p.warnings) for p in doc.pages) == 4
