"""Stopping an async iteration early, as the docs say to (docs/python-api.md): ``aclosing``, or
any await after the ``break``.  A fresh interpreter each time, its stderr read whole: no
traceback, no "Exception ignored", no "already running" from the chain of generators under
``astream_pages`` (the loop closed each of them beside its owner closing it), and the pages in
flight were cancelled at the endpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .pdfgen import text_pdf

SCRIPT = """
import asyncio, contextlib, sys
import ocrclient
from ocrclient.testing import FaultPlan
from ocrclient.testing.runpod_sim import RunPodSimulator

how, pdf = sys.argv[1], sys.argv[2]
with RunPodSimulator(api_key="rp-break", plan=FaultPlan(latency_s=(0.05, 1.5))) as sim:
    kw = dict(backend="runpod", model="m", dialect="plain", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
              api_key="rp-break", cache=False, transport_options={"mode": "run"})

    async def main():
        if how == "aclosing":
            async with contextlib.aclosing(ocrclient.astream_pages(pdf, **kw)) as pages:
                async for page in pages:
                    break
        else:
            async for page in ocrclient.astream_pages(pdf, **kw):
                break
            await asyncio.sleep(0.3)

    asyncio.run(main())
    print("cancels", sim.cancels_received)
"""


@pytest.mark.parametrize("how", ["aclosing", "await after"])
def test_breaking_out_of_astream_pages_is_quiet_and_cancels_the_rest(how: str, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [[f"page {i}"] for i in range(6)])
    run = subprocess.run([sys.executable, "-c", SCRIPT, how, str(pdf)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    for noise in ("Traceback", "Exception ignored", "already running", "no current event loop", "Task was destroyed"):
        assert noise not in run.stderr, run.stderr
    assert run.stdout.startswith("cancels") and int(run.stdout.split()[1]) >= 1, run.stdout
