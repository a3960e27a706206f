"""--document-mode tells of pages, not of jobs.

A job carries several pages; the scheduler sees it as one page (the unit's first) and its result
as one page holding them all.  The run's events went out as the scheduler saw them: ``on_event``
heard one PageDone for "page 1" carrying the whole job, pages 2..N nothing, the progress bar
counted jobs (3/78 at the end of a run of 78 pages), and markdown to stdout, which lets go of a
finished page's blocks, took them from the job before it was split: every page's text landed on
page 1 and the others came out empty and degraded.  The whole kind: every consumer of the events
(``on_event``, the outputs, the progress bar, stdout) hears of each page once, with that page's
own result, however the document is cut into jobs, when a job fails, and from the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.events import DocumentDone, PageDone, PageFailed, PageStarted
from ocrclient.pages.ranges import parse_page_range
from ocrclient.testing import FaultPlan, RunPodSimulator
from ocrclient.testing.responders import DialectResponder, SentImage

from .pdfgen import blank_pdf

#: page i (0-based) is 300 + 12 i points wide: the simulated worker draws it at 96 dpi and says
#: its width, so each page's text names the page it came from
SIZES = [(300 + 12 * i, 500) for i in range(9)]


def _said(image: SentImage) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    return [("title", f"Width {image.width}", (0.1, 0.1, 0.6, 0.2)), ("text", "Body.", (0.1, 0.3, 0.9, 0.5))]


def _width_said(page: int) -> str:
    return f"Width {round(SIZES[page - 1][0] * 96 / 72)}"


def _run(pdf: Path, sim: RunPodSimulator, pages: str | None, **options: Any) -> tuple[ocrclient.Document, list[Any]]:
    heard: list[Any] = []
    doc = ocrclient.convert(pdf, backend="runpod-deepseek-ocr", pages=pages, cache=False, document_mode=True,
                            base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
                            on_event=heard.append, **options)  # fmt: skip
    return doc, heard


@pytest.mark.parametrize("document_pages", [1, 4, 9])
@pytest.mark.parametrize("pages", [None, "2-3,5,7-"])
def test_on_event_hears_each_page_once_with_its_own_result_whatever_the_cut(
    tmp_path: Path, document_pages: int, pages: str | None
) -> None:
    pdf = blank_pdf(tmp_path / "d.pdf", SIZES)
    with RunPodSimulator(responder=DialectResponder("deepseek", truth=_said)) as sim:
        doc, heard = _run(pdf, sim, pages, dialect_options={"document_pages": document_pages})
    wanted = [i + 1 for i in parse_page_range(pages, len(SIZES))] if pages else list(range(1, 10))
    assert sim.jobs_submitted == -(-len(wanted) // document_pages)  # (several pages a job)
    assert sorted(e.page for e in heard if isinstance(e, PageStarted)) == wanted
    done = [e for e in heard if isinstance(e, PageDone)]
    assert sorted(e.page for e in done) == wanted and not [e for e in heard if isinstance(e, PageFailed)]
    final = {p.page: p for p in doc.pages}
    for event in done:
        assert event.result is not None and event.result.page == event.page
        assert event.status == event.result.status == final[event.page].status == "ok"
        assert event.result.markdown == final[event.page].markdown
        assert _width_said(event.page) in event.result.markdown
        assert [b.bbox for b in event.result.blocks] == [b.bbox for b in final[event.page].blocks]
    (whole,) = [e for e in heard if isinstance(e, DocumentDone)]
    assert [(p.page, p.markdown) for p in whole.document.pages] == [(p.page, p.markdown) for p in doc.pages]


def test_a_job_that_fails_fails_each_of_its_pages_as_an_event(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "d.pdf", SIZES[:5])
    plan = FaultPlan(rates={"failed": 1.0})
    with RunPodSimulator(plan=plan, responder=DialectResponder("deepseek", truth=_said)) as sim:
        doc, heard = _run(pdf, sim, None, dialect_options={"document_pages": 2}, max_attempts=1)
    assert [p.status for p in doc.pages] == ["failed"] * 5
    failed = [e for e in heard if isinstance(e, PageFailed)]
    assert sorted(e.page for e in failed) == [1, 2, 3, 4, 5] and not [e for e in heard if isinstance(e, PageDone)]
    assert {e.error.message for e in failed} == {p.error.message for p in doc.pages if p.error is not None}


@pytest.mark.parametrize("to", ["stdout", "folder"])
def test_the_command_gives_each_page_its_own_text_to_stdout_and_to_files(tmp_path: Path, to: str) -> None:
    from typer.testing import CliRunner

    from ocrclient.cli import app

    pdf = blank_pdf(tmp_path / "d.pdf", SIZES)
    out = tmp_path / "out"
    with RunPodSimulator(responder=DialectResponder("deepseek", truth=_said)) as sim:
        argv = ["convert", str(pdf), "--backend", "runpod-deepseek-ocr", "--base-url", sim.base_url,
                "--endpoint-id", sim.endpoint_id, "--document-mode", "--no-cache", "--page-markers", "--quiet"]  # fmt: skip
        res = CliRunner().invoke(app, argv + (["-o", str(out), "--format", "md"] if to == "folder" else []),
                                 env={"RUNPOD_API_KEY": str(sim.api_key), "NO_COLOR": "1"}, catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    text = res.stdout if to == "stdout" else (out / "d.md").read_text(encoding="utf-8")
    parts = text.split("<!-- page ")[1:]
    assert [part.split(" ", 1)[0] for part in parts] == [str(n) for n in range(1, 10)]
    for n, part in enumerate(parts, 1):
        assert part.startswith(f"{n} -->"), part[:80]  # (no "degraded" in its marker)
        assert _width_said(n) in part and "Body." in part
