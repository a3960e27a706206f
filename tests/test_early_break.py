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


@pytest.mark.parametrize("seed", range(4))
async def test_a_runpod_run_stream_left_early_leaves_no_job_running(seed: int) -> None:
    """``mode="run"``: the next page's ``POST /run`` is open when the consumer breaks (its page
    started as the consumed one finished): its reply, and the job id in it, were thrown away and
    the job ran to its end, billed, for nobody.  Every job but the consumed page's is cancelled
    now, or had finished before the break."""
    import asyncio
    import contextlib
    import io
    import time

    from PIL import Image

    import ocrclient
    from ocrclient.testing import FaultPlan, RunPodSimulator

    images = [Image.new("RGB", (300, 400), (255, (seed * 7 + i) % 255, 255)) for i in range(6)]
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:])
    with RunPodSimulator(plan=FaultPlan(seed=seed, latency_s=(0.3, 1.0))) as sim:
        client = ocrclient.AsyncClient("runpod-olmocr", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                                       api_key=sim.api_key, cache=False, concurrency=3,
                                       transport_options={"mode": "run", "poll_interval_s": 0.05})  # fmt: skip
        async with client, contextlib.aclosing(client.stream_pages(buf.getvalue())) as pages:
            async for _ in pages:
                broke = time.monotonic()
                break
        await asyncio.sleep(0.2)  # (the simulator takes the last cancels)
        jobs = list(sim._jobs.values())
    done_before = [j for j in jobs if j.status == "COMPLETED" and j.finished is not None and j.finished <= broke + 0.05]
    assert len(done_before) >= 1  # the consumed page's
    running_on = [j.status for j in jobs if j not in done_before and j.status != "CANCELLED"]
    assert not running_on, (running_on, [(j.status, j.finished, broke) for j in jobs])


@pytest.mark.parametrize("owner", ["client", "caller"])
def test_a_runpod_run_stream_left_early_from_a_blocking_client_leaves_no_job_running(
    owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through a blocking ``Client``, over a backend the client loads (closed with it)
    or one the caller loaded (it outlives the client's event loop: ``release``, not ``aclose``,
    ran there, and left the job of a ``/run`` still open running).  Every ``/run`` after the
    first answers 0.3 s after its job is made, so one is open when the consumer breaks."""
    import asyncio
    import io
    import time

    from PIL import Image

    import ocrclient
    from ocrclient.testing import FaultPlan, RunPodSimulator
    from ocrclient.transports.runpod import RunPodTransport

    real = RunPodTransport._request
    submits = [0]

    async def slow_submit(self: RunPodTransport, method: str, url: str, **kw: object) -> object:
        reply = await real(self, method, url, **kw)  # type: ignore[arg-type]
        if kw.get("what") == "submit":
            submits[0] += 1
            if submits[0] > 1:
                await asyncio.sleep(0.3)
        return reply

    monkeypatch.setattr(RunPodTransport, "_request", slow_submit)
    images = [Image.new("RGB", (300, 400), (255, i * 9, 255)) for i in range(4)]
    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:])
    with RunPodSimulator(plan=FaultPlan(latency_s=(1.0, 1.0), slots=1)) as sim:
        where = {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key,
                 "transport_options": {"mode": "run", "poll_interval_s": 0.05}}  # fmt: skip
        be = ocrclient.load_backend("runpod-olmocr", **where) if owner == "caller" else None
        with ocrclient.Client(be if be is not None else "runpod-olmocr", cache=False, concurrency=3,
                              **({} if be is not None else where)) as client:  # fmt: skip
            for _ in client.stream_pages(buf.getvalue()):
                broke = time.monotonic()
                break
        if be is not None:
            be.close()
        time.sleep(0.3)
        jobs = list(sim._jobs.values())
    done_before = [j for j in jobs if j.status == "COMPLETED" and j.finished is not None and j.finished <= broke + 0.05]
    left = [(j.status, j.finished, broke) for j in jobs if j not in done_before and j.status != "CANCELLED"]
    assert len(done_before) == 1 and not left, (left, [j.status for j in jobs])
