"""The simulators answer as vLLM does under ``max_tokens``: a reply longer than the request
allows is cut there with ``finish_reason`` "length", so the client's truncation handling (and
its own cap of ``max_tokens`` to the server's context) can be tested against them (both
answered every word, "stop", whatever the limit: a cut page came back ok)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ocrclient
from ocrclient.testing import FixedResponder, OpenAISimulator, RunPodSimulator

from .pdfgen import text_pdf

WORDS = " ".join(f"word{i}" for i in range(60))


@pytest.mark.parametrize("cloud", ["openai stream", "openai json", "runpod runsync", "runpod run"])
@pytest.mark.parametrize("max_tokens", [20, 500])
def test_a_reply_past_max_tokens_is_cut_there(cloud: str, max_tokens: int, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    kw = {"cache": False, "max_attempts": 1, "sampling": {"max_tokens": max_tokens}}
    if cloud.startswith("openai"):
        with OpenAISimulator(model="m", responder=FixedResponder(WORDS)) as sim:
            doc = ocrclient.convert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key, model="m",
                                    transport_options={"stream": cloud.endswith("stream")}, **kw)  # fmt: skip
    else:
        with RunPodSimulator(responder=FixedResponder(WORDS)) as rp:
            doc = ocrclient.convert(pdf, backend="runpod", dialect="plain", model="m", base_url=rp.base_url,
                                    endpoint_id=rp.endpoint_id, api_key=rp.api_key,
                                    transport_options={"mode": cloud.split()[1], "poll_interval_s": 0.05}, **kw)  # fmt: skip
    [page] = doc.pages
    if max_tokens >= 60:
        assert page.status == "ok" and page.markdown == WORDS, (page.status, page.warnings)
        return
    assert page.status == "degraded" and page.error is not None and page.error.cause == "length", page
    assert page.markdown == " ".join(WORDS.split()[:max_tokens])
    assert page.usage.completion_tokens == max_tokens
