"""A client (or a backend) closed while a call of it runs -- a web app's shutdown with a request in
flight: the call returns at once, its unfinished pages cancelled (``CancelledRunError``,
``cause="closed"``), not retried with back-off against the closed connection (four attempts, ~9 s,
each page "failed" as a transient "transport_bug").  The whole kind: every transport, streaming
or not, closed through the client or through its backend."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import pytest
from PIL import Image

import ocrclient
from ocrclient.testing import FaultPlan, OcularSimulator, OpenAISimulator, RunPodSimulator


def _pdf(n: int = 3) -> bytes:
    pages = [Image.new("RGB", (300, 400), (255, 255 - i, 255)) for i in range(n)]
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


CASES = {
    "openai stream": ("openai", {"model": "m", "transport_options": {"stream": True}}),
    "openai": ("openai", {"model": "m", "transport_options": {"stream": False}}),
    "ocular": ("runpod-trocr", {"transport": "ocular"}),
    "runpod runsync": ("runpod-chandra", {"transport_options": {"mode": "runsync", "poll_interval_s": 0.05}}),
    "runpod run": ("runpod-chandra", {"transport_options": {"mode": "run", "poll_interval_s": 0.05}}),
}


def _sim(case: str) -> Any:
    plan = FaultPlan(latency_s=(2.0, 2.0))  # (the close comes at 0.3 s: no page done by then, even on a loaded machine)
    if case.startswith("openai"):
        return OpenAISimulator(plan=plan, model="m")
    if case == "ocular":
        return OcularSimulator(plan=plan)
    return RunPodSimulator(plan=plan)


@pytest.mark.parametrize("through", ["client", "backend"])
@pytest.mark.parametrize("case", list(CASES))
async def test_closing_mid_call_cancels_its_pages_at_once(case: str, through: str) -> None:
    backend, extra = CASES[case]
    with _sim(case) as sim:
        where = {"base_url": sim.url if case == "ocular" else sim.base_url, "api_key": sim.api_key}
        if case.startswith("runpod"):
            where["endpoint_id"] = sim.endpoint_id
        be = ocrclient.load_backend(backend, **where, **extra) if through == "backend" else None
        client = ocrclient.AsyncClient(be if be is not None else backend, cache=False,
                                       **({} if be is not None else {**where, **extra}))  # fmt: skip
        task = asyncio.create_task(client.convert(_pdf()))
        await asyncio.sleep(0.3)  # every page in flight, none done
        t0 = time.monotonic()
        if be is not None:
            await be.aclose()
        else:
            await client.aclose()
        doc = await asyncio.wait_for(task, 10)
        took = time.monotonic() - t0
        if be is not None:
            await client.aclose()
    assert took < 1.5, took
    assert [p.status for p in doc.pages] == ["failed"] * 3
    for p in doc.pages:
        assert p.error is not None and (p.error.kind, p.error.cause) == ("cancelled", "closed"), p.error
        assert p.attempts == 1, p


@pytest.mark.parametrize("spins", [0, 1, 2, 3])
async def test_two_closes_at_once_are_one(spins: int) -> None:
    """A second ``aclose`` while the first has cut the requests open (their timers expiring):
    "Cannot change state of expiring Timeout", and the second close stopped there."""
    backend, extra = CASES["runpod runsync"]
    with _sim("runpod runsync") as sim:
        be = ocrclient.load_backend(backend, base_url=sim.base_url, api_key=sim.api_key, endpoint_id=sim.endpoint_id,
                                    **extra)  # fmt: skip
        client = ocrclient.AsyncClient(be, cache=False)
        task = asyncio.create_task(client.convert(_pdf(1)))
        await asyncio.sleep(0.3)  # its /runsync held open

        async def later() -> None:
            for _ in range(spins):
                await asyncio.sleep(0)
            await be.aclose()

        got = await asyncio.gather(be.aclose(), later(), return_exceptions=True)
        assert not [g for g in got if isinstance(g, BaseException)], got
        doc = await asyncio.wait_for(task, 10)
        assert doc.pages[0].error is not None and doc.pages[0].error.cause == "closed"
        await client.aclose()
