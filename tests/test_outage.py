"""A server that answered and then cannot be reached for a while (a pod's vLLM restarting, a
Modal container replaced: 30-90 s) costs time, not pages: its refused connections do not count
against ``max_attempts``, only the page's deadline bounds them.  A 12-second restart failed 16 of
20 pages in 11 s, each queued page burning its four attempts against the closed port.  A server
never reached (a wrong URL) still fails each page after its attempts, as before."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import ocrclient
from ocrclient.testing import FaultPlan, OpenAISimulator

from .pdfgen import text_pdf

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.4}


def test_a_restart_of_a_server_that_answered_loses_no_page(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(12)])
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.15)) as sim:

        answered = threading.Event()

        def on_event(event: ocrclient.Event) -> None:
            if isinstance(event, ocrclient.PageDone):
                answered.set()

        async def run() -> ocrclient.Document:
            async def restart() -> None:
                await asyncio.to_thread(answered.wait, 30)  # (mid-run: the server had answered)
                await asyncio.to_thread(sim.restart, 3.0)  # refused for 3 s: ~10 tries of each page

            down = asyncio.create_task(restart())
            doc = await ocrclient.aconvert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                           model="m", cache=False, concurrency=4, max_attempts=2,
                                           scheduler_options=FAST, on_event=on_event)  # fmt: skip
            await down
            return doc

        doc = asyncio.run(run())
    assert sim.restarts == 1
    assert [p.status for p in doc.pages] == ["ok"] * 12, [(p.page, p.error) for p in doc.pages if p.error]
    assert doc.stats.retries_by_cause.get("connection", 0) > 4  # (it was refused, and tried again)


def test_a_server_never_reached_fails_each_page_after_its_attempts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # (closed again: nothing listens there)
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]])
    t0 = time.monotonic()
    doc = ocrclient.convert(pdf, backend="openai", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", model="m",
                            cache=False, max_attempts=3, scheduler_options=FAST)  # fmt: skip
    # its three tries, none of them a request a server got (attempts are requests sent)
    assert [(p.status, p.attempts) for p in doc.pages] == [("failed", 0)] * 2
    assert doc.stats.retries_by_cause == {"connection": 4}  # (two per page, before the third)
    assert time.monotonic() - t0 < 30
