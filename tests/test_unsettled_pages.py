"""A page kept degraded because its last attempt met something that may pass (a worker lost, a
5xx, a timeout after a truncated reply) is not settled: neither cached nor counted done in the
manifest, so a rerun into the same OUT -- or another -- tries it again once the server is well
(it was cached and every later run served the half page, exit 0, even ``--redo``).  A page
whose every attempt was cut at ``max_tokens`` is settled: a rerun sends nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ocrclient.testing import DialectResponder, FaultPlan, RunPodSimulator, SimReply

from .pdfgen import text_pdf


class _Flaky:
    """Chandra answering: while ``ill``, the first request of a page is cut at max_tokens and
    the later ones fail as ``then`` says; once well, whole pages."""

    def __init__(self, then: str) -> None:
        blocks = [("Text", "Invoice forty two, total 1250, paid in full", (0.1, 0.1, 0.9, 0.2)),
                  ("Text", "A second paragraph that the cut leaves out", (0.1, 0.3, 0.9, 0.4))]  # fmt: skip
        self.base = DialectResponder("chandra", truth=lambda image: blocks)
        self.then, self.ill, self.seen = then, True, Counter[str]()
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> SimReply:
        key = json.dumps(body.get("messages"), sort_keys=True)  # (the page: its image)
        with self.lock:
            self.seen[key] += 1
            n = self.seen[key]
        whole = self.base(body)
        if not self.ill:
            return whole
        if n == 1 or self.then == "cut again":
            return SimReply(whole.text[: len(whole.text) // 2], "length", 10, 10)
        raise RuntimeError("worker lost: CUDA error")


@pytest.mark.parametrize("then", ["worker lost", "cut again"])
def test_a_page_an_outage_left_degraded_is_tried_again_by_a_rerun(then: str, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "two.pdf", [["Invoice 42", "Total 1250", "Paid in full"], ["Second page", "More words here", "And a last line"]])
    flaky = _Flaky(then)
    with RunPodSimulator(responder=flaky, plan=FaultPlan(slots=2)) as sim:
        env = {**os.environ, "RUNPOD_API_KEY": sim.api_key, "RUNPOD_BASE_URL": sim.base_url,
               "RUNPOD_CHANDRA_ENDPOINT_ID": sim.endpoint_id, "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"),
               "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg"), "NO_COLOR": "1"}  # fmt: skip

        def convert(out: str, *extra: str) -> dict[str, Any]:
            run = subprocess.run([sys.executable, "-m", "ocrclient", "convert", str(pdf), "-o", str(tmp_path / out),
                                  "--backend", "runpod-chandra", "--dpi", "36", "--json", *extra],
                                 env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
            doc = json.loads((tmp_path / out / "two.json").read_text())
            assert run.returncode == 0, (run.stderr, run.stdout, [(p["status"], p["error"]) for p in doc["pages"]])
            return doc

        first = convert("out")
        assert [p["status"] for p in first["pages"]] == ["degraded", "degraded"]
        flaky.ill = False
        sent = sim.jobs_submitted
        again = convert("out")
        resent = sim.jobs_submitted - sent
        other = convert("other")
    if then == "worker lost":
        assert resent == 2, resent
        assert [p["status"] for p in again["pages"]] == ["ok", "ok"]
        assert "second paragraph" in again["pages"][0]["markdown"]
    else:  # every attempt cut at max_tokens: that is the page, settled
        assert resent == 0, resent
        assert [p["status"] for p in again["pages"]] == ["degraded", "degraded"]
    assert [p["status"] for p in other["pages"]] == [p["status"] for p in again["pages"]]
    assert sim.jobs_submitted - sent == resent  # the other OUT was served from the cache
