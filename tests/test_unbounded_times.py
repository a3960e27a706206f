"""A time limit set to infinity (TOML's ``inf``, ``math.inf``) or to any huge number means no
limit, on every transport in every mode: each page is sent and read (the RunPod ``/runsync``
hold turned an infinite ``cold_start_s`` into ``int(inf)``: an OverflowError on every page,
not one job sent)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.testing import DialectResponder, OcularSimulator, OpenAISimulator, RunPodSimulator

from .pdfgen import text_pdf

#: every setting that bounds a page's time, each alone and all together
LIMITS: dict[str, dict[str, float]] = {
    "cold_start_s": {"cold_start_s": math.inf},
    "timeout": {"timeout": math.inf},
    "page_deadline_s": {"page_deadline_s": math.inf},
    "all": {"cold_start_s": math.inf, "timeout": math.inf, "page_deadline_s": math.inf},
    "huge": {"cold_start_s": 1e308, "timeout": 1e308, "page_deadline_s": 1e308},
}

#: every way a page reaches a server: transport and mode
ROUTES = ["runpod-runsync", "runpod-run", "runpod-local", "openai-stream", "openai-json", "ocular", "local"]


@contextmanager
def _server(route: str) -> Iterator[dict[str, Any]]:
    if route.startswith("runpod"):
        mode = route.split("-")[1]
        flavour = "local" if mode == "local" else "api"
        with RunPodSimulator(responder=DialectResponder("chandra"), flavour=flavour) as sim:
            over: dict[str, Any] = {"backend": "runpod-chandra", "base_url": sim.base_url, "api_key": sim.api_key,
                                    "transport_options": {"mode": mode, "poll_interval_s": 0.05}}  # fmt: skip
            if mode != "local":
                over["endpoint_id"] = sim.endpoint_id
            yield over
    elif route.startswith("openai"):
        with OpenAISimulator(model="sim", responder=DialectResponder("plain")) as osim:
            yield {"backend": "openai", "base_url": osim.base_url, "api_key": osim.api_key, "model": "sim",
                   "transport_options": {"stream": route.endswith("stream")}}  # fmt: skip
    elif route == "ocular":
        with OcularSimulator(responder=DialectResponder("trocr"), api_key="k") as usim:
            yield {"backend": "runpod-trocr", "transport": "ocular", "base_url": usim.url, "api_key": "k"}
    else:
        yield {"backend": "local"}


@pytest.mark.parametrize("limit", sorted(LIMITS))
@pytest.mark.parametrize("route", ROUTES)
def test_no_time_limit_sends_and_reads_every_page(route: str, limit: str, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "two.pdf", [["First page words"], ["Second page words"]])
    with _server(route) as over:
        doc = ocrclient.convert(pdf, cache=False, max_attempts=1, render={"dpi": 36}, **over, **LIMITS[limit])
    assert [p.status for p in doc.pages] == ["ok", "ok"], [p.error for p in doc.pages]
