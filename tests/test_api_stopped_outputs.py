"""Through the Python API, files asked for with ``outputs=`` behave as ``ocr convert``'s do.

Two seams a user found: a run stopped by a refused key (``RunAborted``) wrote no file at all
through the API (the CLI writes what finished), and ``convert(..., outputs=...)`` returned as if
all was well when a file could not be written (the CLI exits 1 naming it).  The kind: every entry
that takes ``outputs`` (the shortcuts, their async twins, ``Client`` and ``AsyncClient``; one
document and many) x every way a run stops early (the key refused mid-run; the caller's task
cancelled) and every way a file is not written (a folder in its way; a writer that fails)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.exporters.sink import OutputWriter
from ocrclient.testing import CannedReply, FaultPlan, OpenAISimulator

from .pdfgen import text_pdf

PAGES = 4
SCHED = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}


def _kw(sim: OpenAISimulator, on_event: Callable[[Any], None] | None = None) -> dict[str, Any]:
    return {"backend": "openai", "base_url": sim.base_url, "api_key": sim.api_key, "model": "m",
            "cache": False, "scheduler_options": SCHED, "concurrency": 1, "on_event": on_event}  # fmt: skip


def _client_kw(kw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the client's settings, the call's)"""
    call = {k: kw.pop(k) for k in ("on_event",) if k in kw}
    return kw, call


async def _run(entry: str, pdf: Path, outputs: OutputWriter, kw: dict[str, Any]) -> Any:
    """Call ``entry`` on ``pdf`` with ``outputs`` from a coroutine (the blocking entries in a
    thread, as a caller with a loop would not, but so one test body drives them all)."""
    many = entry.endswith("_many")
    if entry in ("convert", "convert_many"):
        fn = getattr(ocrclient, entry)
        return await asyncio.to_thread(lambda: list(fn([pdf], outputs=outputs, **kw)) if many else fn(pdf, outputs=outputs, **kw))
    if entry in ("aconvert", "aconvert_many"):
        if many:
            return [r async for r in ocrclient.aconvert_many([pdf], outputs=outputs, **kw)]
        return await ocrclient.aconvert(pdf, outputs=outputs, **kw)
    settings, call = _client_kw(dict(kw))
    if entry.startswith("Client."):

        def blocking() -> Any:
            with ocrclient.Client(**settings) as client:
                if many:
                    return list(client.convert_many([pdf], outputs=outputs, **call))
                return client.convert(pdf, outputs=outputs, **call)

        return await asyncio.to_thread(blocking)
    async with ocrclient.AsyncClient(**settings) as aclient:
        if many:
            return [r async for r in aclient.convert_many([pdf], outputs=outputs, **call)]
        return await aclient.convert(pdf, outputs=outputs, **call)


ENTRIES = ["convert", "aconvert", "Client.convert", "AsyncClient.convert",
           "convert_many", "aconvert_many", "Client.convert_many", "AsyncClient.convert_many"]  # fmt: skip
ASYNC = [e for e in ENTRIES if e.startswith(("a", "AsyncClient"))]


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_pdf(tmp_path_factory.mktemp("doc") / "doc.pdf", [[f"page {i + 1} of the document"] for i in range(PAGES)])


def _on_disk(out: Path) -> list[tuple[int, str]]:
    data = json.loads((out / "doc.json").read_text(encoding="utf-8"))
    assert (out / "doc.md").is_file()
    return [(p["page"], p["status"]) for p in data["pages"]]


def _stopping_after(sim: OpenAISimulator, done: int, stop: Callable[[], None]) -> Callable[[Any], None]:
    seen: list[int] = []

    def on_event(event: Any) -> None:
        if isinstance(event, ocrclient.PageDone):
            seen.append(event.page)
            if len(seen) == done:
                stop()

    return on_event


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_run_stopped_by_a_refused_key_writes_what_finished(entry: str, pdf: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=(0.02, 0.02))) as sim:

        def revoke() -> None:
            sim.force_reply = CannedReply(401, {"error": "Unauthorized"})

        with OutputWriter(out, ["md", "json"]) as writer, pytest.raises(ocrclient.RunAborted) as stopped:
            asyncio.run(_run(entry, pdf, writer, _kw(sim, _stopping_after(sim, 2, revoke))))
    (doc,) = stopped.value.documents
    statuses = [(p.page, p.status) for p in doc.pages]
    assert statuses[:2] == [(1, "ok"), (2, "ok")] and statuses[-1] == (PAGES, "failed"), statuses
    assert _on_disk(out) == statuses  # the files hold what finished, as the exception does


@pytest.mark.parametrize("entry", ASYNC)
def test_a_run_whose_task_is_cancelled_writes_what_finished(entry: str, pdf: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        with OpenAISimulator(model="m", plan=FaultPlan(latency_s=(0.05, 0.05))) as sim:
            kw = _kw(sim, _stopping_after(sim, 2, lambda: loop.call_soon_threadsafe(task.cancel)))
            with OutputWriter(out, ["md", "json"]) as writer:
                await _run(entry, pdf, writer, kw)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    statuses = _on_disk(out)
    assert len(statuses) == PAGES and statuses[:2] == [(1, "ok"), (2, "ok")], statuses
    assert statuses[-1] == (PAGES, "failed"), statuses  # never reached: failed, not dropped


def _folder_in_the_way(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (out / "doc.json").mkdir(parents=True)


def _failing_writer(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(doc: Any, path: Path, **_: Any) -> Path:
        raise OSError(28, f"No space left on device: {path}")

    import ocrclient.exporters.jsonout as jsonout

    monkeypatch.setattr(jsonout, "write", broken)


FAILURES = {"a folder where the file goes": _folder_in_the_way, "a writer that fails": _failing_writer}


@pytest.mark.parametrize("how", list(FAILURES))
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_file_not_written_is_never_silent(
    entry: str, how: str, pdf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    FAILURES[how](out, monkeypatch)
    with OpenAISimulator(model="m") as sim, OutputWriter(out, ["md", "json"]) as writer:
        kw = _kw(sim)
        if entry.endswith("_many"):
            (result,) = asyncio.run(_run(entry, pdf, writer, kw))
            assert result.output_errors and "doc.json" in result.output_errors[0], result.output_errors
            assert [p.name for p in result.outputs] == ["doc.md"]
            return
        with pytest.raises(ocrclient.OutputError) as failed:
            asyncio.run(_run(entry, pdf, writer, kw))
    err = failed.value
    assert isinstance(err, ocrclient.OcrError) and "doc.json" in str(err) and len(str(err).splitlines()) == 1
    assert err.document.ok and len(err.document.pages) == PAGES  # nothing of the conversion is lost
    assert [p.name for p in err.written] == ["doc.md"] and (out / "doc.md").is_file()


@pytest.mark.parametrize("stop", ["cancelled", "key refused"])
async def test_a_writer_kept_for_many_runs_lets_go_of_documents_a_stopped_run_leaves_unwritten(
    stop: str, tmp_path: Path
) -> None:
    """A service keeps one OutputWriter: each call stopped before any page of its document
    finished left that document's sink (its page images, its input's handle) in the writer
    until the writer closed -- 40 calls, 40 sinks and 160 page images."""
    docs = [text_pdf(tmp_path / f"d{i}.pdf", [[f"doc {i} page {n}"] for n in range(3)]) for i in range(4)]
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=(1.0, 1.0))) as sim, \
            OutputWriter(tmp_path / "out", ["md", "json", "pdf"]) as writer:  # fmt: skip
        async with ocrclient.AsyncClient("openai", base_url=sim.base_url, api_key=sim.api_key, model="m",
                                         cache=False) as client:  # fmt: skip
            for doc in docs:
                if stop == "key refused":  # (the run stops at its first reply)
                    sim.force_reply = CannedReply(401, {"error": {"message": "Unauthorized", "type": "AuthError"}})
                task = asyncio.create_task(client.convert(doc, outputs=writer))
                await asyncio.sleep(0.3)  # its pages sent, none answered
                if stop == "cancelled":
                    task.cancel()
                with pytest.raises((asyncio.CancelledError, ocrclient.OcrError)):
                    await task
                sim.force_reply = None
                assert writer._sinks == [], writer._sinks  # (nothing held for a document not written)
        assert not list((tmp_path / "out").glob("*.json"))  # and nothing was written of them
