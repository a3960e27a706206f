"""Lean outputs (``OutputWriter(lean=True)``, what ``ocr convert -o`` runs with) write the same
files as a writer that keeps every page's blocks, and let go of the blocks as pages finish.

The kind: the same inputs converted both ways, every file of the output folder compared byte for
byte (md with its figure crops and page markers, json, txt, html, pdf), over a multi-document run
of the ``local`` backend, a run through a simulated model with figures and a failed page, the
same run resumed from the page cache, and a run stopped part way.  Two runs of one build differ
only where the clock or chance writes: the run's timings (the scheduler's clock is frozen here),
the viewer's script nonce (fixed here), and the PDF's ``/CreationDate`` and ``/ID`` that PDFium
stamps on every save (masked).  And ``ocr convert`` itself: once a document's pages are written,
none of their blocks is alive in the command's process (it held every page's until the end)."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import ocrclient
import ocrclient.scheduler
from ocrclient.document import Block
from ocrclient.exporters import html
from ocrclient.exporters.sink import OutputWriter
from ocrclient.testing import DialectResponder, FaultPlan, OpenAISimulator, SimReply

from .pdfgen import text_pdf
from .test_long_runs_memory import probed
from .test_run_outputs import MODEL, aspects, by_aspect, make_pdf

ALL = ["md", "json", "txt", "html", "pdf"]
LEAN = ["md", "json", "txt", "pdf"]
OPTIONS = {"md": {"page_markers": True}}


@pytest.fixture(autouse=True)
def same_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs write the same bytes: the scheduler's clock stands still, the nonce is fixed."""
    clock = types.SimpleNamespace(**{k: getattr(time, k) for k in ("perf_counter", "time", "sleep")})
    clock.monotonic = lambda: 1000.0
    monkeypatch.setattr(ocrclient.scheduler, "time", clock)
    monkeypatch.setattr(html, "secrets", types.SimpleNamespace(token_urlsafe=lambda n=None: "nonce"))


_STAMPS = re.compile(rb"/CreationDate\(D:[^)]*\)|/ID\[<[0-9A-F]+><[0-9A-F]+>\]")


def _files(out: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            files[path.relative_to(out).as_posix()] = _STAMPS.sub(b"<stamp>", data) if path.suffix == ".pdf" else data
    return files


def _both(tmp_path: Path, fmts: list[str], run: Callable[[OutputWriter], Any]) -> dict[str, bytes]:
    """``run`` with a writer keeping the blocks and with a lean one: the same files."""
    written = []
    for lean in (False, True):
        out = tmp_path / f"out-{'lean' if lean else 'kept'}"
        # (one worker: the PDF's bytes follow the order its pages are put in, kept or lean)
        with OutputWriter(out, fmts, options=OPTIONS, lean=lean, workers=1) as writer:
            run(writer)
        written.append(_files(out))
    kept, lean_files = written
    assert sorted(kept) == sorted(lean_files)  # (no spill file left either)
    for name in kept:
        assert kept[name] == lean_files[name], name
    return kept


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("texts")
    return [text_pdf(root / f"t{d}.pdf", [[f"doc {d} page {p} line {j} words here" for j in range(6)] for p in range(4)])
            for d in range(2)]  # fmt: skip


@pytest.mark.parametrize("fmts", [LEAN, ALL], ids=["lean-formats", "with-html"])
def test_a_local_run_over_several_documents_writes_the_same_files(texts: list[Path], tmp_path: Path, fmts: list[str]) -> None:
    def run(writer: OutputWriter) -> None:
        results = list(ocrclient.convert_many(texts, backend="local", cache=False, outputs=writer))
        assert [r.output_errors for r in results] == [[], []]
        blocks = [len(p.blocks) for r in results for p in r.document.pages]
        assert all(blocks) == (not writer.lean or "html" in fmts), blocks  # (lean: let go of, but for html)

    files = _both(tmp_path, fmts, run)
    assert {f"t{d}{s}" for d in range(2) for s in (".md", ".json")} <= set(files)


def _answer(responder: DialectResponder, delays: dict[float, float], fail: float) -> Callable[[dict[str, Any]], SimReply]:
    """``responder``, each page answered after its delay (by its aspect: the pages finish in
    the order the delays say), the page of aspect ``fail`` with an error (the simulator's 500)."""

    def respond(body: dict[str, Any]) -> SimReply:
        sent = responder.sent_image(body)
        aspect = sent.width / sent.height
        time.sleep(next((d for a, d in delays.items() if abs(aspect / a - 1) < 0.02), 0.0))
        if abs(aspect / fail - 1) < 0.02:
            raise RuntimeError("this page fails")
        return responder(body)

    return respond


def _sim_kw(sim: OpenAISimulator, **kw: Any) -> dict[str, Any]:
    return {"backend": "openai", "base_url": sim.base_url, "api_key": sim.api_key, "model": MODEL, "dialect": "chandra",
            "render": {"dpi": 108.0}, "scheduler_options": {"max_attempts": 1, "backoff_initial_s": 0.01}, **kw}  # fmt: skip


def test_figures_a_failed_page_and_a_resumed_run_write_the_same_files(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    pdf, norms = make_pdf(tmp_path / "in" / "doc.pdf")
    responder = DialectResponder("chandra", truth=by_aspect(aspects(norms)))
    # the pages finish 4, 2, 1, then 3 fails (resumed: 1, 2, 4 from the cache, then 3 fails)
    answer = _answer(responder, {300 / 200: 0.3, 200 / 300: 0.2, 240 / 320: 0.4, 320 / 240: 0.1}, fail=240 / 320)
    with OpenAISimulator(responder=answer, model=MODEL) as sim:

        def run(cache: Any) -> Callable[[OutputWriter], Any]:
            def go(writer: OutputWriter) -> None:
                doc = ocrclient.convert(pdf, **_sim_kw(sim, cache=cache, concurrency=4), outputs=writer)
                assert [p.status for p in doc.pages] == ["ok", "ok", "failed", "ok"]

            return go

        files = _both(tmp_path / "fresh", LEAN, run(False))
        assert {f"doc_figures/page{n}_fig1.png" for n in (1, 2, 4)} <= set(files)
        cache = tmp_path / "cache"
        run(cache)(OutputWriter(tmp_path / "primed", LEAN))  # (the cache filled)
        resumed = _both(tmp_path / "resumed", LEAN, run(cache))
        assert b'"cached": true' in resumed["doc.json"]


def test_a_stopped_run_writes_the_same_files(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [[f"page {i + 1} of the document"] for i in range(5)])

    def run(writer: OutputWriter) -> None:
        async def main() -> None:
            task, loop = asyncio.current_task(), asyncio.get_running_loop()
            assert task is not None
            done: list[int] = []

            def on_event(event: Any) -> None:
                if isinstance(event, ocrclient.PageDone):
                    done.append(event.page)
                    if len(done) == 2:
                        loop.call_soon_threadsafe(task.cancel)

            with OpenAISimulator(model="m", plan=FaultPlan(latency_s=(0.05, 0.05))) as sim:
                kw = {"backend": "openai", "base_url": sim.base_url, "api_key": sim.api_key, "model": "m", "cache": False,
                      "concurrency": 1, "on_event": on_event}  # fmt: skip
                await ocrclient.aconvert(pdf, outputs=writer, **kw)

        with pytest.raises(asyncio.CancelledError):
            asyncio.run(main())

    files = _both(tmp_path, LEAN, run)
    statuses = [p["status"] for p in json.loads(files["doc.json"])["pages"]]
    assert statuses[:2] == ["ok", "ok"] and statuses[2:] == ["failed"] * 3, statuses


PROBE = """\
import gc, json, sys
from ocrclient.document import Block
from ocrclient.exporters.sink import OutputWriter
real = OutputWriter.finish
def finish(self, source, doc):
    for sink in [s for s in self._sinks if s.source is source]:
        sink.wait_for_pages()  # (every page of it written as it finished)
    gc.collect()
    blocks = sum(type(o) is Block for o in gc.get_objects())
    print("PROBE " + json.dumps({"blocks": blocks, "pages": len(doc.pages)}), file=sys.stderr)
    return real(self, source, doc)
OutputWriter.finish = finish
from ocrclient.console import main
sys.argv = ["ocr", *sys.argv[1:]]
main()
"""


def test_ocr_convert_holds_no_block_of_the_pages_it_has_written(tmp_path: Path) -> None:
    """When the document's last page is done, the command holds none of its pages' blocks (it
    held all 12 pages' until the files were written; they are the JSON's)."""
    pdf = text_pdf(tmp_path / "long.pdf", [[f"page {p} line {j} " + "word " * 8 for j in range(10)] for p in range(12)])
    probe, _ = probed(PROBE, tmp_path, "convert", str(pdf), "-o", str(tmp_path / "out"), "--no-progress")
    pages = json.loads((tmp_path / "out" / "long.json").read_text())["pages"]
    per_page = min(_count(p["blocks"]) for p in pages)
    assert probe["pages"] == 12 and per_page > 50
    assert probe["blocks"] < per_page, (probe["blocks"], per_page)


def _count(blocks: list[dict[str, Any]]) -> int:
    return sum(1 + _count(b["children"]) for b in blocks)


def test_a_lean_documents_blocks_go_as_its_pages_finish(texts: list[Path], tmp_path: Path) -> None:
    """In process: the document handed back holds no block, and nothing else does."""
    gc.collect()
    before = sum(type(o) is Block for o in gc.get_objects())  # (other tests' in this process: 34 in a full run)
    with OutputWriter(tmp_path / "out", ["md", "json"], lean=True) as writer:
        doc = ocrclient.convert(texts[0], backend="local", cache=False, outputs=writer)
        gc.collect()
        assert sum(type(o) is Block for o in gc.get_objects()) <= before
    assert [len(p.blocks) for p in doc.pages] == [0] * 4 and all(p.markdown for p in doc.pages)
    assert all(p["blocks"] for p in json.loads((tmp_path / "out" / "t0.json").read_text())["pages"])



STDOUT_PROBE = """\
import gc, json, sys
from ocrclient.cli import convert as cli_convert
from ocrclient.document import Block
real = cli_convert._Emitter._take
def take(self, result):
    gc.collect()
    blocks = sum(type(o) is Block for o in gc.get_objects())
    print("PROBE " + json.dumps({"blocks": blocks, "pages": len(result.document.pages)}), file=sys.stderr)
    return real(self, result)
cli_convert._Emitter._take = take
from ocrclient.console import main
sys.argv = ["ocr", *sys.argv[1:]]
main()
"""


def test_ocr_convert_to_stdout_holds_no_block_of_its_finished_pages_and_prints_the_same(tmp_path: Path) -> None:
    """Markdown to stdout (no ``-o``) held every page's blocks until the document ended (1.3 MB a
    page of a born-digital PDF with the default backend); it needs their text only.  The
    markdown printed is the one ``-o`` writes (no crop is linked on stdout: none here)."""
    pdf = text_pdf(tmp_path / "long.pdf", [[f"page {p} line {j} " + "word " * 8 for j in range(10)] for p in range(12)])
    probe, _ = probed(STDOUT_PROBE, tmp_path, "convert", str(pdf), "--no-progress", "--page-markers")
    assert probe["pages"] == 12 and probe["blocks"] < 50, probe
    import os
    import subprocess
    import sys

    env = {**os.environ, "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"), "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg")}
    printed = subprocess.run([sys.executable, "-m", "ocrclient", "convert", str(pdf), "--page-markers", "-q"],
                             env=env, capture_output=True, text=True, timeout=120, check=True).stdout  # fmt: skip
    subprocess.run([sys.executable, "-m", "ocrclient", "convert", str(pdf), "--page-markers", "-q", "-o", str(tmp_path / "out")],
                   env=env, capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    assert printed == (tmp_path / "out" / "long.md").read_text(encoding="utf-8")
    assert printed.count("<!-- page ") == 12 and "page 11 line 0" in printed
