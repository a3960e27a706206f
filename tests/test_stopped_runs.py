"""A run over several documents, stopped: every document is either handed over or in
``Conversion.partial`` (what ``ocr convert`` writes on Ctrl-C), exactly once, with every page
that finished.

The whole kind of moments a run can stop at: while it waits for pages (Ctrl-C), while the
caller holds a document just handed over (the caller's own code fails), and a run that stops
itself (an API key refused mid-run).  Before, a run stopped while it waited lost, from its
partial documents, as many as it had handed over: after 8 documents handed over, the 8
documents in progress -- their finished pages in the cache, none of them written.  And a
caller stopping while it held a document closed the run's outer generator only: the
scheduler's, inside it, ran its stop (its documents kept, its requests cancelled) only when
collected, so its partial documents were there or not by chance.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ocrclient.errors import AuthError, OcrError
from ocrclient.run import Conversion, ConvertResult
from ocrclient.testing import FaultPlan

from .fakes import FakeTransport, make_backend
from .pdfgen import text_pdf

DOCS, PAGES = 5, 4


class _CallerFailed(Exception):
    pass


class _Refusing(FakeTransport):
    """A 401 for every page of the third document (the run stops)."""

    async def send(self, request: Any) -> Any:
        if "doc2" in request.body["source"]:
            await asyncio.sleep(0.02)
            raise AuthError("HTTP 401: key revoked")
        return await super().send(request)


async def _stopped(conv: Conversion, moment: str) -> list[ConvertResult]:
    """Iterate ``conv`` and stop it at ``moment``; the documents it handed over."""
    got: list[ConvertResult] = []

    async def consume() -> None:
        results = aiter(conv)
        try:
            async for result in results:
                got.append(result)
                if moment == "holding" and len(got) == 2:
                    raise _CallerFailed
        finally:  # (what asyncio.run does for `ocr convert` as its loop ends)
            await results.aclose()  # type: ignore[attr-defined]

    task = asyncio.create_task(consume())
    if moment == "waiting":
        while len(got) < 2:  # two handed over, the next ones in flight: Ctrl-C
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.03)
        task.cancel()
    with pytest.raises((asyncio.CancelledError, _CallerFailed, OcrError)):
        await task
    return got


@pytest.mark.parametrize("moment", ["waiting", "holding", "aborted"])
async def test_a_stopped_run_hands_over_or_keeps_every_document_once(moment: str, tmp_path: Path) -> None:
    inputs = [text_pdf(tmp_path / f"doc{d}.pdf", [[f"doc {d} page {i}"] for i in range(PAGES)]) for d in range(DOCS)]
    transport = (_Refusing if moment == "aborted" else FakeTransport)(plan=FaultPlan(), service_s=0.05)
    conv = Conversion(inputs=[str(p) for p in inputs], backend=make_backend(transport), cache=False, concurrency=3)
    got = await _stopped(conv, moment)
    partial = conv.partial
    names = [Path(r.source.name).name for r in [*got, *partial]]
    assert names == [p.name for p in inputs], (moment, [Path(r.source.name).name for r in got], names)
    assert len(got) >= 1 and partial, moment
    ok_pages = sum(p.status == "ok" for r in [*got, *partial] for p in r.document.pages)
    answered = sum(transport.calls.values()) - transport.cancelled
    if moment != "aborted":  # every page the server answered is in a document, none lost
        assert ok_pages == answered, (ok_pages, answered)
    assert all(len(r.document.pages) == PAGES for r in partial)


@pytest.mark.parametrize("moment", ["waiting", "holding"])
async def test_a_stopped_run_in_document_mode_keeps_each_documents_own_pages(moment: str, tmp_path: Path) -> None:
    """The same in document mode (one job per document): every document handed over or kept, each
    kept one with all of its own pages (the run's unit of one result page, split)."""
    import base64

    import pypdfium2 as pdfium

    from ocrclient.testing import RunPodSimulator, SimReply

    from .pdfgen import blank_pdf

    def respond(body: dict[str, Any]) -> SimReply:
        n = len(pdfium.PdfDocument(base64.b64decode(body["pdf_base64"])))
        return SimReply("\n\n<--- Page Split --->\n\n".join(f"# Page {i + 1}" for i in range(n)))

    inputs = [blank_pdf(tmp_path / f"doc{d}.pdf", [(600, 800)] * 3) for d in range(DOCS)]
    with RunPodSimulator(responder=respond, plan=FaultPlan(latency_s=(0.05, 0.15), slots=2)) as sim:
        conv = Conversion(inputs=[str(p) for p in inputs], backend="runpod-deepseek-ocr", cache=False, concurrency=2,
                          base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
                          dialect_options={"document_mode": True})  # fmt: skip
        got = await _stopped(conv, moment)
    partial = conv.partial
    assert [Path(r.source.name).name for r in [*got, *partial]] == [p.name for p in inputs]
    assert partial and all([p.page for p in r.document.pages] == [1, 2, 3] for r in [*got, *partial])
