"""A server that takes a page's request and hangs up before any reply is a server answering,
not an endpoint with no server behind it: each such request is an attempt of the page's
``max_attempts``, retried with the ordinary backoff, and no "no server answers" warning is said.

It was counted as a connection that found no server (``httpx`` says "Server disconnected without
sending a response" for it as for a kept-alive connection the server had just closed): its tries
were free, backed off up to a minute each past ``max_attempts``, under the outage warning -- one
page of ``runpod-chandra`` against a simulator dropping 85% of its jobs took 188 s.  The whole
kind: every transport that can meet it, on every request of a page (RunPod's submits in both
modes, its status polls; the OpenAI path when its server drops the request)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.testing import FaultPlan, RunPodSimulator
from ocrclient.testing.hostile import HostileServer

from .pdfgen import text_pdf

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.1}


def _convert(pdf: Path, **kw: Any) -> tuple[Any, list[str], float]:
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        doc = ocrclient.convert(pdf, cache=False, max_attempts=3, scheduler_options=FAST, **kw)
    return doc, [str(w.message) for w in said], time.monotonic() - started


@pytest.mark.parametrize("mode", ["run", "runsync"])
def test_a_runpod_endpoint_dropping_every_job_spends_the_pages_attempts(mode: str, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    with RunPodSimulator(plan=FaultPlan(rates={"reset": 1.0})) as rp:
        doc, said, took = _convert(pdf, backend="runpod", dialect="plain", model="m", base_url=rp.base_url,
                                   endpoint_id=rp.endpoint_id, api_key=rp.api_key,
                                   transport_options={"mode": mode, "poll_interval_s": 0.05})  # fmt: skip
        submits = rp.requests["run"] + rp.requests["runsync"]
    [page] = doc.pages
    assert page.status == "failed" and page.error is not None and page.error.cause == "reset", page.error
    assert page.attempts == 3 == submits, (page.attempts, submits)
    assert not any("no server answers" in s for s in said), said
    assert took < 20, took


@pytest.mark.parametrize("contract", ["openai", "runpod", "ocular"])
def test_a_server_dropping_every_request_spends_the_pages_attempts(contract: str, tmp_path: Path) -> None:
    """The hostile server's ``no_reply``: each model request read whole, then the connection
    closed without a byte of reply, on every contract a transport speaks."""
    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    with HostileServer("no_reply", contract=contract) as srv:
        where: dict[str, Any] = {"openai": {"backend": "openai", "api_key": srv.api_key},
                                 "runpod": {"backend": "runpod", "api_key": srv.api_key, "endpoint_id": srv.endpoint_id},
                                 "ocular": {"backend": "runpod-trocr", "transport": "ocular", "api_key": "k"}}[contract]  # fmt: skip
        if contract != "ocular":
            where |= {"dialect": "plain", "model": srv.model}
        doc, said, took = _convert(pdf, base_url=srv.base_url, **where)
    [page] = doc.pages
    assert page.status == "failed" and page.error is not None and page.error.cause == "reset", page.error
    assert page.attempts == 3 == srv.hostile_replies, (page.attempts, srv.hostile_replies)
    assert not any("no server answers" in s for s in said), said
    assert took < 20, took
