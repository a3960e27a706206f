"""--document-mode: the DeepSeek seed's whole-PDF contract, split back into pages."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

import ocrclient
from ocrclient.testing import FaultPlan, RunPodSimulator, SimReply

from .pdfgen import blank_pdf

SPLIT = "\n\n<--- Page Split --->\n\n"


def _responder(n_pages: int, seen: list[dict[str, Any]]) -> Any:
    def respond(body: dict[str, Any]) -> SimReply:
        seen.append(body)
        sent = pdfium.PdfDocument(base64.b64decode(body["pdf_base64"]))
        assert len(sent) == n_pages
        md = SPLIT.join(f"# Page {i + 1}\n\nBody of page {i + 1}." for i in range(n_pages))
        det = SPLIT.join(
            f"<|ref|>title<|/ref|><|det|>[[100, 100, 500, 200]]<|/det|>\n# Page {i + 1}\n\n"
            f"<|ref|>text<|/ref|><|det|>[[100, 300, 900, 400]]<|/det|>\nBody of page {i + 1}."
            for i in range(n_pages)
        )
        return SimReply(md, data={"detection_markdown": base64.b64encode(det.encode()).decode()})

    return respond


async def test_document_mode_splits_pages_with_boxes(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800), (800, 600), (600, 800)])
    seen: list[dict[str, Any]] = []
    with RunPodSimulator(responder=_responder(2, seen)) as sim:
        doc = await ocrclient.aconvert(
            pdf, backend="runpod-deepseek-ocr", pages="2-3", cache=False,
            base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
            dialect_options={"document_mode": True},
        )
    assert len(seen) == 1  # one job for the whole document
    assert [p.page for p in doc.pages] == [2, 3]
    assert [p.status for p in doc.pages] == ["ok", "ok"]
    assert doc.pages[0].markdown.startswith("# Page 1")
    title = doc.pages[0].blocks[0]
    # page 2 is 800 x 600 pt: 100/999 .. 500/999 of the width, 100/999 .. 200/999 of the height
    assert title.bbox == pytest.approx([100 / 999 * 800, 100 / 999 * 600, 500 / 999 * 800, 200 / 999 * 600], abs=0.01)
    assert doc.pages[1].blocks[1].bbox[2] == pytest.approx(900 / 999 * 600, abs=0.01)


async def test_document_mode_page_count_mismatch_is_degraded_not_guessed(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800)] * 3)

    def respond(body: dict[str, Any]) -> SimReply:
        return SimReply("only one page of markdown")

    with RunPodSimulator(responder=respond) as sim:
        doc = await ocrclient.aconvert(
            pdf, backend="runpod-deepseek-ocr", cache=False,
            base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
            dialect_options={"document_mode": True},
        )
    assert [p.status for p in doc.pages] == ["degraded"] * 3
    assert doc.pages[0].markdown == "only one page of markdown"
    assert "1 page(s) for 3 sent" in doc.pages[1].warnings[-1]


async def test_document_mode_retries_and_failure_marks_every_page(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800)] * 2)
    seen: list[dict[str, Any]] = []
    plan = FaultPlan(seed=1, rates={"http_503": 1.0}, max_faults_per_key=1)
    with RunPodSimulator(plan=plan, responder=_responder(2, seen)) as sim:
        doc = await ocrclient.aconvert(
            pdf, backend="runpod-deepseek-ocr", cache=False,
            base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
            dialect_options={"document_mode": True}, scheduler_options={"backoff_initial_s": 0.01},
        )
        assert doc.ok and doc.stats.retries_by_cause
    # one job, sent twice: the run made 2 attempts (not 2 for each page), each page took 2
    assert doc.stats.attempts == 2 and [p.attempts for p in doc.pages] == [2, 2]
    with RunPodSimulator(plan=FaultPlan(seed=1, rates={"http_400": 1.0}), responder=_responder(2, seen)) as sim:
        doc = await ocrclient.aconvert(
            pdf, backend="runpod-deepseek-ocr", cache=False,
            base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
            dialect_options={"document_mode": True},
        )
    assert [p.status for p in doc.pages] == ["failed", "failed"]
    assert all(p.error is not None for p in doc.pages)
    assert doc.stats.attempts == 1


# -- a mode of the run -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["run option", "profile option (older spelling)", "cli flag"])
def test_document_mode_is_a_mode_of_the_run_however_it_is_asked(tmp_path: Path, how: str) -> None:
    """``document_mode=True`` on the run, ``--document-mode`` (which now sets the run's mode, not
    a dialect option), and a profile's ``dialect_options.document_mode`` all send ONE whole-PDF
    job and give the pages back split, with their boxes."""
    import asyncio
    import json

    from typer.testing import CliRunner

    from ocrclient.cli import app

    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800), (800, 600)])
    seen: list[dict[str, Any]] = []
    with RunPodSimulator(responder=_responder(2, seen)) as sim:
        where = {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key}
        if how == "cli flag":
            out = tmp_path / "out"
            res = CliRunner().invoke(
                app,
                ["convert", str(pdf), "--backend", "runpod-deepseek-ocr", "--base-url", sim.base_url,
                 "--endpoint-id", sim.endpoint_id, "--document-mode", "--no-cache", "-o", str(out),
                 "--format", "json", "--quiet"],
                env={"RUNPOD_API_KEY": str(sim.api_key), "NO_COLOR": "1"},
                catch_exceptions=False,
            )  # fmt: skip
            assert res.exit_code == 0, res.output
            doc = ocrclient.Document.model_validate(json.loads((out / "d.json").read_text()))
        else:
            ask = {"document_mode": True} if how == "run option" else {"dialect_options": {"document_mode": True}}
            doc = asyncio.run(ocrclient.aconvert(pdf, backend="runpod-deepseek-ocr", cache=False, **where, **ask))
    assert len(seen) == 1 and "pdf_base64" in seen[0]
    assert [(p.page, p.status) for p in doc.pages] == [(1, "ok"), (2, "ok")]
    assert doc.pages[1].blocks[0].bbox == pytest.approx([100 / 999 * 800, 100 / 999 * 600, 500 / 999 * 800, 200 / 999 * 600], abs=0.01)


def test_without_document_mode_pages_are_sent_one_by_one(tmp_path: Path) -> None:
    """The mode is off unless asked: the same profile sends one chat job per page."""
    from ocrclient.testing.responders import DialectResponder

    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800), (800, 600)])
    responder = DialectResponder("deepseek")
    with RunPodSimulator(responder=responder) as sim:
        doc = ocrclient.convert(
            pdf, backend="runpod-deepseek-ocr", cache=False,
            base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
        )  # fmt: skip
    assert len(responder.seen) == 2 and [p.status for p in doc.pages] == ["ok", "ok"]


def _real_pdfs() -> list[Path]:
    from .conftest import CORPUS, require_corpus

    found = sorted((CORPUS / "gnarly").glob("*.pdf")) + sorted((CORPUS / "olmocr-bench-sample" / "pdfs").glob("*.pdf"))
    require_corpus(found)
    return found


def test_a_units_cache_key_is_its_content_and_its_pages_not_the_cuts_bytes(tmp_path: Path) -> None:
    """A unit's bytes differ at every cut (PDFium writes a random file identifier, and the time
    into a new file), so the resume cache keys a unit on what it holds.  The whole kind, over
    every real PDF of the corpus and made ones (an encrypted one too): one page, every page and
    two pages, each cut twice, give one key; another selection of the same file, another file,
    a file changed in place give another; the same bytes given as bytes give the same.  Every
    cut opens with its pages (an encrypted file with its password)."""
    from ocrclient.cache import page_key_for
    from ocrclient.config import resolve_config
    from ocrclient.dialects.deepseek import DeepSeekDocumentDialect
    from ocrclient.docmode import document_unit
    from ocrclient.pages.sources import make_source
    from ocrclient.registry import load_dialect

    from .test_pages import make_pdf

    cfg = resolve_config("runpod-deepseek-ocr", endpoint_id="e", api_key="k")
    dialect = DeepSeekDocumentDialect(load_dialect(cfg))
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(make_pdf(3, user_password="pw"))
    made = [blank_pdf(tmp_path / "one.pdf", [(600, 800)]), blank_pdf(tmp_path / "three.pdf", [(600, 800), (800, 600), (300, 300)]),
            locked]  # fmt: skip
    keys: dict[str | None, tuple[Path, list[int]]] = {}
    cuts = 0
    for path in [*made, *_real_pdfs()]:
        password = "pw" if path == locked else None
        src = make_source(name=path.name, stem=path.stem, path=path, data=None, rel=None, password=password)
        n = src.page_count
        for indices in dict.fromkeys(tuple(x) for x in ([0], list(range(n)), list(range(n))[1:3]) if x):
            first, second = document_unit(src, list(indices)), document_unit(src, list(indices))
            key = page_key_for(first.page, cfg, dialect)
            assert key is not None and key == page_key_for(second.page, cfg, dialect), (path.name, indices)
            if key in keys:  # only the same bytes, the same pages (the corpus has one file twice)
                assert keys[key][0].read_bytes() == path.read_bytes() and keys[key][1] == list(indices), (path, keys[key])
                continue
            keys[key] = (path, list(indices))
            cuts += 1
            assert first.page.encoded is not None
            with pdfium.PdfDocument(first.page.encoded.data, password=password) as cut:
                assert len(cut) == len(indices), path.name
    assert cuts > 40  # the corpus was there
    # the same content as bytes: the same key; a file changed in place: another
    three = made[1]
    as_bytes = make_source(name="b", stem="b", path=None, data=three.read_bytes(), rel=None, password=None)
    as_file = make_source(name="f", stem="f", path=three, data=None, rel=None, password=None)
    before = page_key_for(document_unit(as_file, [0, 1]).page, cfg, dialect)
    assert page_key_for(document_unit(as_bytes, [0, 1]).page, cfg, dialect) == before
    blank_pdf(three, [(600, 800), (800, 600), (300, 301)])
    assert page_key_for(document_unit(as_file, [0, 1]).page, cfg, dialect) != before


def test_a_document_mode_rerun_is_served_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A document-mode run, then the same run again on the same cache: the second sends no job
    and gives the same pages, marked cached (it sent the document again before).  The cut is
    made to differ every time, as PDFium's is a second later (its file identifier and time)."""
    import asyncio
    import itertools

    from ocrclient import docmode
    from ocrclient.cache import PageCache

    cut, count = docmode.pdf_subset, itertools.count()

    def differing(src: Any, indices: list[int]) -> Any:
        data, boxes = cut(src, indices)
        return data + b"%% cut %d\n" % next(count), boxes

    monkeypatch.setattr(docmode, "pdf_subset", differing)

    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800), (800, 600), (600, 800)])
    seen: list[dict[str, Any]] = []
    docs = []
    with RunPodSimulator(responder=_responder(2, seen)) as sim:
        for _ in range(2):
            docs.append(asyncio.run(ocrclient.aconvert(
                pdf, backend="runpod-deepseek-ocr", pages="1-2", cache=PageCache(tmp_path / "cache"),
                base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key, document_mode=True,
            )))  # fmt: skip
    assert len(seen) == 1 and next(count) == 2
    first, again = docs
    assert [(p.page, p.status, p.cached) for p in again.pages] == [(1, "ok", True), (2, "ok", True)]
    assert [p.markdown for p in again.pages] == [p.markdown for p in first.pages]
    assert [b.bbox for p in again.pages for b in p.blocks] == [b.bbox for p in first.pages for b in p.blocks]


def test_the_simulators_deepseek_responder_answers_whole_pdfs(tmp_path: Path) -> None:
    """``DialectResponder("deepseek")`` (and ``python -m ocrclient.testing runpod --dialect
    deepseek``) answers a whole-PDF job as the worker does: every page drawn and answered from
    its truth, the pages split, boxes on each page where the truth put them (it answered such a
    job with a 500: it looked for an image)."""
    from ocrclient.testing.responders import DialectResponder

    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800), (800, 600)])
    truth = [[("title", f"Page {i + 1}", (0.1, 0.1, 0.5, 0.2)), ("text", f"Body {i + 1}.", (0.1, 0.3, 0.9, 0.4))]
             for i in range(2)]  # fmt: skip
    responder = DialectResponder("deepseek", truth=truth)
    with RunPodSimulator(responder=responder) as sim:
        doc = ocrclient.convert(pdf, backend="runpod-deepseek-ocr", cache=False, document_mode=True,
                                base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key)  # fmt: skip
    assert [(p.page, p.status) for p in doc.pages] == [(1, "ok"), (2, "ok")] and len(responder.seen) == 2
    for page, (w, h) in zip(doc.pages, [(600, 800), (800, 600)], strict=True):
        assert f"Page {page.page}" in page.markdown and "<|ref|>" not in page.markdown
        title = page.blocks[0]
        assert title.bbox == pytest.approx([0.1 * w, 0.1 * h, 0.5 * w, 0.2 * h], abs=0.01 * max(w, h)), title


def test_the_simulators_whole_pdf_answers_jobs_on_many_threads_at_once(tmp_path: Path) -> None:
    """The simulator answers each job on a thread of its own, and PDFium is not thread-safe: the
    whole-PDF responder drew pages with no lock and crashed the simulator's process (3 runs in 4
    with two documents at once).  Twelve jobs on four threads."""
    import threading

    from ocrclient.testing.responders import DialectResponder

    from .pdfgen import text_pdf

    pdfs = [base64.b64encode(text_pdf(tmp_path / f"d{i}.pdf", [[f"doc {i} page {n} " * 4] * 12 for n in range(3)],
                                      size=(0, 0, 600, 800)).read_bytes()).decode() for i in range(2)]  # fmt: skip
    responder = DialectResponder("deepseek")
    replies: list[int] = []

    def answer(body: dict[str, Any]) -> None:
        for _ in range(3):
            replies.append(responder({"pdf_base64": body["pdf_base64"]}).text.count("Page Split"))

    threads = [threading.Thread(target=answer, args=({"pdf_base64": pdfs[i % 2]},)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert replies == [3] * 12  # (each page ended by a separator, as DeepSeek's own script does)


# -- every shape of a whole-PDF reply ------------------------------------------------------------

_GROUNDED = "<|ref|>text<|/ref|><|det|>[[100, 300, 900, 400]]<|/det|>\nBody {n}."


@pytest.mark.parametrize("ending", ["every page ended (DeepSeek's own script)", "pages joined"])
@pytest.mark.parametrize("detection", [True, False])
@pytest.mark.parametrize("trouble", [None, "page 2 truncated", "page 2 grounding unreadable"])
def test_every_whole_pdf_reply_shape_gives_each_page_its_own(tmp_path: Path, ending: str, detection: bool,
                                                             trouble: str | None) -> None:  # fmt: skip
    """The whole kind of a whole-PDF worker's reply: its pages ended by the separator (what
    DeepSeek's own PDF script writes: every page of such a worker's reply was one page too many,
    so all were degraded with the whole markdown on page 1) or only joined by it; with or without
    the detection markdown; with one page's own trouble (its reply cut at ``max_tokens``, as the
    worker's ``pages[].finish_reason`` says; its grounding unreadable), which degrades that page
    alone (it was ``ok``: a cut-off page passed as whole)."""
    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800)] * 3)
    det = [_GROUNDED.format(n=n) for n in (1, 2, 3)]
    if trouble == "page 2 grounding unreadable":
        det[1] = det[1].replace("[[100, 300, 900, 400]]", "[[100, 300, oops]]")
    md = [f"Body {n}." for n in (1, 2, 3)]
    end = "\n\n<--- Page Split --->\n"

    def shaped(pages: list[str]) -> str:
        return "".join(p + end for p in pages) if ending.startswith("every") else end.join(pages)

    data: dict[str, Any] = {"pages": [{"page": n, "finish_reason": "stop"} for n in (1, 2, 3)]}
    if trouble == "page 2 truncated":
        data["pages"][1]["finish_reason"] = "length"
    if detection:
        data["detection_markdown"] = base64.b64encode(shaped(det).encode()).decode()
    with RunPodSimulator(responder=lambda body: SimReply(shaped(md), data=data)) as sim:
        doc = ocrclient.convert(pdf, backend="runpod-deepseek-ocr", cache=False, document_mode=True,
                                base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key)  # fmt: skip
    assert [p.page for p in doc.pages] == [1, 2, 3]
    assert [p.markdown for p in doc.pages] == md  # each page its own text, no separator left
    for p in doc.pages:
        assert not any("page(s) for 3 sent" in w for w in p.warnings), p.warnings
        troubled = trouble is not None and p.page == 2 and (detection or trouble == "page 2 truncated")
        expected = {"page 2 truncated": "truncated: the reply hit max_tokens",
                    "page 2 grounding unreadable": "unreadable boxes"}.get(trouble or "", "")  # fmt: skip
        assert (troubled and any(expected in w for w in p.warnings)) or not troubled
        if detection:
            assert len(p.blocks) == 1 and p.blocks[0].text == f"Body {p.page}."
            if trouble == "page 2 grounding unreadable" and p.page == 2:
                assert p.blocks[0].bbox is None
            else:
                assert p.blocks[0].bbox is not None
            assert p.status == ("degraded" if troubled else "ok"), (p.page, p.warnings)
        else:
            assert p.status == "degraded" and not p.blocks  # (no boxes without the detection markdown)
            assert (p.page == 2 and trouble == "page 2 truncated") or not any("truncated" in w for w in p.warnings)


def test_a_blank_one_page_document_is_an_empty_reply_not_a_missing_one(tmp_path: Path) -> None:
    """A worker's ``markdown: ""`` (a blank page) was read as no markdown at all, and the page
    failed for good with "too large to return inline"; it is the empty reply it is (bad output,
    retried, as per-page mode says of an empty reply)."""
    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800)])
    with RunPodSimulator(responder=lambda body: SimReply("", data={"markdown_path": "/runpod/out/j/d.mmd"})) as sim:
        doc = ocrclient.convert(pdf, backend="runpod-deepseek-ocr", cache=False, document_mode=True,
                                base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key,
                                scheduler_options={"backoff_initial_s": 0.01})  # fmt: skip
        sent = sim.jobs_submitted
    page = doc.pages[0]
    assert page.status == "failed" and page.error is not None
    assert page.error.kind == "bad_output" and page.error.cause == "empty", page.error
    assert "too large" not in page.error.message and sent > 1


@pytest.mark.parametrize("detection", [True, False], ids=["with detection markdown", "without"])
def test_a_blank_page_among_read_ones_says_no_text_found(detection: bool, tmp_path: Path) -> None:
    """A document whose second page is blank, read whole: that page is degraded with "no text
    found", as in page mode, not "no boxes for this page (no detection markdown)" (its boxes were
    not lost: it has none), with and without the worker's detection markdown."""
    pdf = blank_pdf(tmp_path / "d.pdf", [(600, 800)] * 3)

    def respond(body: dict[str, Any]) -> SimReply:
        md = SPLIT.join(["# Page 1\n\nBody of page 1.", "", "# Page 3\n\nBody of page 3."])
        det = SPLIT.join(["<|ref|>title<|/ref|><|det|>[[100, 100, 500, 200]]<|/det|>\n# Page 1", "",
                          "<|ref|>title<|/ref|><|det|>[[100, 100, 500, 200]]<|/det|>\n# Page 3"])  # fmt: skip
        return SimReply(md, data={"detection_markdown": base64.b64encode(det.encode()).decode()} if detection else {})

    with RunPodSimulator(responder=respond) as sim:
        doc = ocrclient.convert(pdf, backend="runpod-deepseek-ocr", cache=False, document_mode=True,
                                base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key)  # fmt: skip
    blank = doc.pages[1]
    assert blank.status == "degraded" and "no text found" in blank.warnings, blank.warnings
    assert not any("no boxes for this page" in w for w in blank.warnings), blank.warnings
    assert doc.pages[0].markdown.startswith("# Page 1") and doc.pages[2].markdown.startswith("# Page 3")


def test_an_image_in_document_mode_is_refused_in_the_words_of_each_caller(tmp_path: Path) -> None:
    """An image cannot go as a whole PDF: from Python the refusal names document mode, not the
    command line's flag (it said "--document-mode needs a PDF" to a caller who passed
    ``document_mode=True``); from ``ocr convert`` it is one line and exit 2, nothing sent."""
    from PIL import Image

    from ocrclient.errors import InputError

    from .test_bad_inputs import ocr

    png = tmp_path / "scan.png"
    Image.new("RGB", (200, 300), "white").save(png)
    with RunPodSimulator() as sim:
        with pytest.raises(InputError) as got:
            ocrclient.convert(png, backend="runpod-deepseek-ocr", cache=False, document_mode=True,
                              base_url=sim.base_url, endpoint_id=sim.endpoint_id, api_key=sim.api_key)  # fmt: skip
        said = str(got.value)
        assert "scan.png: document mode (whole PDFs) needs a PDF, not an image" in said and "--" not in said
        run = ocr(["convert", str(png), "-o", str(tmp_path / "out"), "--backend", "runpod-deepseek-ocr", "--document-mode",
                   "--base-url", sim.base_url, "--endpoint-id", str(sim.endpoint_id)], env={"RUNPOD_API_KEY": sim.api_key})  # fmt: skip
    assert sim.requests["run"] + sim.requests["runsync"] == 0, sim.requests  # (nothing sent)
    assert run.code == 2 and "document mode (whole PDFs) needs a PDF, not an image" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_images_among_pdfs_in_document_mode_are_refused_each_and_the_pdfs_go_on(tmp_path: Path) -> None:
    """Of several inputs, an image in document mode is an input that cannot be converted: one
    line, listed as refused by ``--json``, the PDFs converted, exit 1 (the image stopped the whole
    run, exit 2, nothing converted); images alone: nothing to convert, exit 2."""
    import json

    from PIL import Image

    from ocrclient.testing.responders import DialectResponder

    from .test_bad_inputs import ocr

    png = tmp_path / "scan.png"
    Image.new("RGB", (200, 300), "white").save(png)
    pdf = blank_pdf(tmp_path / "doc.pdf", [(600, 800)])
    with RunPodSimulator(responder=DialectResponder("deepseek")) as sim:
        where = ["--backend", "runpod-deepseek-ocr", "--document-mode", "--base-url", sim.base_url,
                 "--endpoint-id", str(sim.endpoint_id), "--no-cache"]  # fmt: skip
        env = {"RUNPOD_API_KEY": sim.api_key}
        mixed = ocr(["convert", str(png), str(pdf), "-o", str(tmp_path / "out"), "--json", *where], env=env)
        alone = ocr(["convert", str(png), str(png.with_name("copy.png")), "-o", str(tmp_path / "none"), *where], env=env)
    said = json.loads(mixed.stdout)
    assert mixed.code == 1, mixed.stderr
    assert [r["source"] for r in said["refused"]] == [str(png)] and "needs a PDF" in said["refused"][0]["error"]
    assert [d["source"] for d in said["documents"]] == [str(pdf)], said
    assert (tmp_path / "out" / "doc.md").is_file()
    assert mixed.stderr.count("scan.png: document mode (whole PDFs) needs a PDF, not an image") == 1, mixed.stderr
    assert "Traceback" not in mixed.stderr
    assert alone.code == 2, alone.stderr


def test_a_backend_that_cannot_take_documents_is_refused_before_the_output_folder_is_made(tmp_path: Path) -> None:
    from .test_bad_inputs import ocr

    pdf = blank_pdf(tmp_path / "doc.pdf", [(600, 800)])
    for backend in ("local", "runpod-chandra"):
        out = tmp_path / f"out-{backend}"
        run = ocr(["convert", str(pdf), "-o", str(out), "--backend", backend, "--document-mode", "--endpoint-id", "e"],
                  env={"RUNPOD_API_KEY": "k"})  # fmt: skip
        assert run.code == 2 and "document mode (whole PDFs) needs" in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert not out.exists(), backend
