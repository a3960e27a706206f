"""Every seed backend end to end: the real `ocr` CLI (a subprocess) against its simulated cloud,
with a simulated model answering in that backend's exact output format (issue 4).

Each page of the generated PDF has its own size, so the simulated model can tell which page an
image shows (by its aspect ratio) and answer that page's text — the markdown of page N must
then hold page N's words.  The same simulator then serves ``ocrclient.aconvert`` in-process, and
both documents must be equal (markdown and blocks, page by page).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.document import Document
from ocrclient.testing import (
    DialectResponder,
    FaultPlan,
    OpenAISimulator,
    RapidOCRResponder,
    RunPodSimulator,
    SentImage,
)

from .pdfgen import PdfPage, write_pdf

#: page i: (width, height) in points and its lines of text
PAGES = [
    ((300.0, 200.0), ["Alpha page one", "first document line"]),
    ((240.0, 320.0), ["Bravo page two"]),
    ((360.0, 180.0), ["Charlie page three", "with two lines"]),
]


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pages = []
    for (w, h), lines in PAGES:
        pages.append(
            PdfPage(
                media=(0, 0, w, h),
                texts=[(20, h - 40 - 24 * j, 14, t) for j, t in enumerate(lines)],
            )
        )
    return write_pdf(tmp_path_factory.mktemp("e2e") / "three.pdf", pages)


def page_truth(image: SentImage) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    """What the simulated model reads on an image: the page with the closest aspect ratio."""
    aspect = image.width / image.height
    i = min(range(len(PAGES)), key=lambda k: abs(PAGES[k][0][0] / PAGES[k][0][1] - aspect))
    (w, h), lines = PAGES[i]
    out = [("section_header", lines[0], (20 / w, 26 / h, 0.8, 44 / h))]
    for j, line in enumerate(lines[1:], start=1):
        y = 26 + 24 * j
        out.append(("text", line, (20 / w, y / h, 0.8, (y + 18) / h)))
    return out


@dataclass
class Case:
    backend: str
    dialect: str
    cloud: str  # runpod | proxy | modal
    model: str
    boxes: bool
    dpi: float = 72.0


CASES = [
    Case("runpod-chandra", "chandra", "runpod", "datalab-to/chandra", True),
    Case("runpod-deepseek-ocr", "deepseek", "runpod", "deepseek-ai/DeepSeek-OCR", True),
    Case("runpod-olmocr", "olmocr", "runpod", "allenai/olmOCR-2-7B-1025-FP8", False),
    Case("runpod-rolmocr", "rolmocr", "runpod", "reducto/RolmOCR", False),
    Case("runpod-trocr", "trocr", "runpod", "microsoft/trocr-base-printed", False),
    Case("runpod-pod-lightonocr2", "lighton", "proxy", "lightonai/LightOnOCR-2-1B", False),
    Case("modal-lightonocr", "lighton", "modal", "lightonai/LightOnOCR-1B-1025", False),
]


@contextmanager
def cloud(
    case: Case, responder: Any, plan: FaultPlan | None = None
) -> Iterator[tuple[Any, dict[str, str], dict[str, Any]]]:
    """Start the simulator for ``case``: yields (sim, env for the CLI, overrides for aconvert)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RUNPOD_API_KEY", "OCRCLIENT_API_KEY", "MODAL_KEY", "MODAL_SECRET")
    }
    env["NO_COLOR"] = "1"
    if case.cloud == "runpod":
        with RunPodSimulator(responder=responder, plan=plan or FaultPlan(slots=4)) as sim:
            env["RUNPOD_API_KEY"] = sim.api_key
            over = {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key,
                    "transport_options": {"poll_interval_s": 0.05}}  # fmt: skip
            yield sim, env, over
        return
    extra: dict[str, Any] = {}
    if case.cloud == "modal":
        # a cold start: nothing answers for 0.4 s, so Modal sends 303s to result URLs after 0.1 s
        extra = {"modal_redirect_after_s": 0.1}
        plan = plan or FaultPlan(cold_start_s=0.4)
    with OpenAISimulator(
        responder=responder, plan=plan, mode=case.cloud, model=case.model, **extra
    ) as osim:  # type: ignore[arg-type]
        over = {"base_url": osim.base_url}
        if case.cloud == "modal":
            env["MODAL_KEY"], env["MODAL_SECRET"] = str(osim.modal_key), str(osim.modal_secret)
        else:
            env["OCRCLIENT_API_KEY"] = str(osim.api_key)
            over["api_key"] = osim.api_key
        yield osim, env, over


def cli_args(case: Case, sim: Any) -> list[str]:
    args = ["--backend", case.backend, "--base-url", sim.base_url]
    if case.cloud == "runpod":
        args += ["--endpoint-id", sim.endpoint_id]
    return args


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrclient.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def signature(doc: Document) -> list[tuple[Any, ...]]:
    return [
        (p.page, p.status, p.markdown, [(b.type, b.text, b.bbox, b.bbox_norm) for b in p.blocks])
        for p in doc.pages
    ]


@pytest.mark.parametrize("case", CASES, ids=[c.backend for c in CASES])
async def test_backend_end_to_end(
    case: Case, pdf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    responder = DialectResponder(case.dialect, truth=page_truth)
    with cloud(case, responder) as (sim, env, over):
        out = tmp_path / "out"
        dpi = ["--dpi", str(case.dpi)]
        res = run_cli("convert", str(pdf), "-o", str(out), *cli_args(case, sim), *dpi, env=env)
        assert res.returncode == 0, res.stderr
        doc = Document.model_validate_json((out / "three.json").read_text())
        md = (out / "three.md").read_text()
        if case.cloud == "modal":
            assert sim.redirects >= 1  # the 303s were followed
        assert doc.backend == case.backend and len(doc.pages) == len(PAGES)
        for page, ((w, h), lines) in zip(doc.pages, PAGES, strict=True):
            assert page.status == "ok", page.error
            assert (page.width, page.height) == pytest.approx((w, h))
            for line in lines:
                assert line in page.markdown
                assert line in md
            assert page.blocks, "every page has blocks"
            others = [t for _, ls in PAGES if ls != lines for t in ls]
            assert not any(t in page.markdown for t in others)
            if case.boxes:
                head = page.blocks[0]
                assert head.bbox is not None
                # the heading's box: x from 20 pt to 80 % of the width, one grid step of slack
                assert head.bbox[0] == pytest.approx(20, abs=w / 900)
                assert head.bbox[2] == pytest.approx(0.8 * w, abs=w / 900)
                assert head.bbox[1] == pytest.approx(26, abs=h / 900)
        # the in-process API with the same simulated replies gives the same document
        if case.cloud == "modal":
            monkeypatch.setenv("MODAL_KEY", env["MODAL_KEY"])
            monkeypatch.setenv("MODAL_SECRET", env["MODAL_SECRET"])
        inproc = await ocrclient.aconvert(
            pdf, backend=case.backend, cache=False, render={"dpi": case.dpi}, **over
        )
        assert signature(inproc) == signature(doc)

        # `ocr health` reaches the same simulator
        hargs = ["health", "--json", *cli_args(case, sim)]
        health = run_cli(*hargs, env=env)
        assert health.returncode == 0, health.stdout + health.stderr
        assert json.loads(health.stdout)["ok"] is True

        if case.backend != "runpod-chandra":
            return
        # resume: a second CLI run re-sends nothing
        before = sim.requests_total if case.cloud == "runpod" else len(responder.seen)
        again = run_cli(
            "convert",
            str(pdf),
            "-o",
            str(tmp_path / "again"),
            *cli_args(case, sim),
            *dpi,
            "--json",
            env=env,
        )
        assert again.returncode == 0, again.stderr
        after = sim.requests_total if case.cloud == "runpod" else len(responder.seen)
        assert after == before
        summary = json.loads(again.stdout)
        assert summary["documents"][0]["ok"] == len(PAGES)


def test_backends_json_configured_only_with_env(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNPOD_", "MODAL_")) and k != "OCRCLIENT_API_KEY"
    }
    bare = {r["name"]: r for r in json.loads(run_cli("backends", "--json", env=env).stdout)}
    names = {c.backend for c in CASES}
    assert names <= set(bare)
    assert not any(bare[n]["configured"] for n in names)
    env.update(
        RUNPOD_API_KEY="rp_k", RUNPOD_ENDPOINT_ID="ep1", RUNPOD_POD_BASE_URL="http://127.0.0.1:9/v1",
        MODAL_LIGHTONOCR_URL="http://127.0.0.1:9/v1",
    )  # fmt: skip
    full = {r["name"]: r for r in json.loads(run_cli("backends", "--json", env=env).stdout)}
    assert all(full[n]["configured"] for n in names), {n: full[n]["detail"] for n in names}
    assert {full[c.backend]["dialect"] for c in CASES} == {c.dialect for c in CASES}
    assert "rp_k" not in json.dumps(full)


class ScriptedFaults(FaultPlan):
    """The n-th request gets fault ``script[n]``; every later request is healthy (the pages are
    normally all submitted before any retry, so each page meets one fault — the assertions only
    rely on the total)."""

    def __init__(self, script: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = script
        self.calls = 0

    def draw(self, key: str) -> str | None:
        with self._lock:
            self._seen[key] += 1
            self.calls += 1
            if self.calls > len(self.script):
                return None
            fault = self.script[self.calls - 1]
            self.injected[fault] += 1
            return fault


def test_runsync_with_faults_retries_end_to_end(pdf: Path, tmp_path: Path) -> None:
    """503, 429 and a FAILED job (handler exception), one per page, all to success over
    ``--mode runsync``: the 503 and the FAILED job retried by the scheduler, the 429 waited out
    by the transport and the request sent again (a slow-down signal, not a failed attempt)."""
    case = CASES[1]
    plan = ScriptedFaults(["http_503", "http_429", "failed"], slots=4, retry_after_s=0.2)
    with cloud(case, DialectResponder("deepseek", truth=page_truth), plan) as (sim, env, _):
        res = run_cli("convert", str(pdf), "-o", str(tmp_path), *cli_args(case, sim), "--mode", "runsync",
                      "--dpi", "72", "--json", "--verbose", env=env)  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert dict(plan.injected) == {"http_503": 1, "http_429": 1, "failed": 1}
        assert sim.requests["runsync"] == 6 and sim.requests["run"] == 0
        assert sim.failed == 1
        doc = Document.model_validate_json((tmp_path / "three.json").read_text())
        assert [p.status for p in doc.pages] == ["ok"] * 3
        assert sum(p.attempts for p in doc.pages) == 5  # 3 first attempts + 2 retries
        assert sum(doc.stats.retries_by_cause.values()) == 2 and "http_429" not in doc.stats.retries_by_cause
        assert sim.jobs_submitted == 4  # 503 and 429 made no job; the FAILED page ran twice
        assert "retry page" in res.stderr
        for page, (_, lines) in zip(doc.pages, PAGES, strict=True):
            assert lines[0] in page.markdown


async def test_rapidocr_responder_reads_the_page(tmp_path: Path) -> None:
    """The embedded RapidOCR engine behind the simulator, answering as DeepSeek-OCR would: the
    text drawn on the page comes back, with its box on the page."""
    page = PdfPage(media=(0, 0, 260, 120), texts=[(20, 70, 20, "Quarterly Report")])
    path = write_pdf(tmp_path / "one.pdf", [page])
    responder = RapidOCRResponder("deepseek")
    with RunPodSimulator(responder=responder) as sim:
        doc = await ocrclient.aconvert(
            path, backend="runpod-deepseek-ocr", base_url=sim.base_url, endpoint_id=sim.endpoint_id,
            api_key=sim.api_key, cache=False, render={"dpi": 100}, transport_options={"poll_interval_s": 0.05},
        )  # fmt: skip
    (p,) = doc.pages
    assert p.status == "ok", p.error
    assert "Quarterly" in p.markdown and "Report" in p.markdown
    (block,) = [b for b in p.blocks if "Quarterly" in b.text]
    assert block.bbox is not None
    x0, y0, x1, y1 = block.bbox
    # baseline at y=70 pt from the bottom -> 50 pt from the top; 20 pt Helvetica cap height ~14 pt
    assert 12 <= x0 <= 28 and 28 <= y0 <= 40 and 45 <= y1 <= 58 and 150 <= x1 <= 200


@pytest.mark.parametrize(
    "dialect", ["chandra-1", "chandra-2", "deepseek", "lighton-bbox", "dots", "olmocr"]
)
def test_format_reply_is_what_each_parser_reads(dialect: str) -> None:
    """The responders' replies parse with the real dialect parsers into the quantized truth."""
    from ocrclient.dialects.chandra import parse_chandra_html
    from ocrclient.dialects.deepseek import parse_grounded
    from ocrclient.dialects.dots import parse_cells, smart_resize
    from ocrclient.dialects.lighton import parse_lighton
    from ocrclient.dialects.olmocr import parse_front_matter
    from ocrclient.geometry import CoordSpace
    from ocrclient.testing import format_reply

    label = "figure" if dialect == "lighton-bbox" else "text"
    truth = [
        ("section_header", "Heading", (0.1, 0.05, 0.9, 0.1)),
        (label, "Body 1", (0.123, 0.4567, 0.5, 0.9)),
    ]
    name, _, variant = dialect.partition("-")
    text = format_reply(name, truth, width=850, height=1100, version=int(variant) if variant.isdigit() else 2,
                        bbox=variant == "bbox")  # fmt: skip
    if name == "olmocr":
        meta, body, warnings = parse_front_matter(text)
        assert meta is not None and meta["is_rotation_valid"] is True and not warnings
        assert body == "## Heading\n\nBody 1"
        bad = parse_front_matter(format_reply("olmocr", truth, rotation_correction=90))[0]
        assert bad is not None and (bad["is_rotation_valid"], bad["rotation_correction"]) == (
            False,
            90,
        )
        return
    if name == "chandra":
        grid = 1024 if variant == "1" else 1000
        content = parse_chandra_html(text, grid)
        w = h = grid
    elif name == "deepseek":
        content, w, h = parse_grounded(text), 999, 999
    elif name == "lighton":
        content, w, h = parse_lighton(text), 1000, 1000
    else:
        mh, mw = smart_resize(1100, 850)
        content, w, h = parse_cells(text, CoordSpace.model_pixels(mw, mh)), mw, mh
    assert not content.warnings
    boxed = [b for b in content.blocks if b.box is not None]
    want = [t for t in truth if name != "lighton" or t[0] == "figure"]
    assert len(boxed) == len(want)
    for block, (_, words, (x0, y0, x1, y1)) in zip(boxed, want, strict=True):
        assert block.box == (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h))
        if name != "lighton":
            assert block.text == words
    if name != "lighton":
        assert "Heading" in content.markdown and "Body 1" in content.markdown


def test_trocr_over_plain_http_ocular(pdf: Path, tmp_path: Path) -> None:
    """runpod-trocr's documented plain-HTTP route: ``--transport ocular`` to the FastAPI contract
    (deploy/runpod-trocr/app.py), here its simulator, with the API key as a bearer token."""
    from ocrclient.testing import OcularSimulator

    responder = DialectResponder("trocr", truth=page_truth, confidence=0.81)
    with OcularSimulator(responder=responder, api_key="ocular-key-123") as sim:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
        env.update(OCRCLIENT_API_KEY="ocular-key-123", RUNPOD_API_KEY="rpa-the-runpod-account-key", NO_COLOR="1")
        args = ["--backend", "runpod-trocr", "--transport", "ocular", "--base-url", sim.url]
        res = run_cli("convert", str(pdf), "-o", str(tmp_path), *args, "--dpi", "72", env=env)
        assert res.returncode == 0, res.stderr
        health = run_cli("health", *args, "--json", env=env)
    assert health.returncode == 0, health.stdout + health.stderr
    assert json.loads(health.stdout)["ok"] is True
    doc = Document.model_validate_json((tmp_path / "three.json").read_text())
    assert doc.backend == "runpod-trocr"
    for page, (_, lines) in zip(doc.pages, PAGES, strict=True):
        assert page.status == "ok", page.error
        assert page.markdown == "\n".join(lines)
        (block,) = page.blocks
        assert block.confidence == pytest.approx(0.81)
    assert len(responder.seen) == len(PAGES)


def test_the_rapidocr_responder_answers_boxes_on_the_image_it_received_turned_any_way() -> None:
    """The engine reads a turned page upright; the responder answered the upright page's boxes
    for an image received turned (a page sent upside down got page one's boxes, and a quarter
    turn boxes divided by the wrong sides): every turn, each line's box is the upright one
    turned with the image."""
    from PIL import Image, ImageDraw, ImageFont

    from ocrclient.geometry import rotate_norm_box
    from ocrclient.testing.responders import RapidOCRResponder

    img = Image.new("RGB", (800, 600), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=40)
    draw.text((50, 40), "ALPHA BRAVO CHARLIE", fill="black", font=font)
    draw.text((50, 480), "delta echo foxtrot golf", fill="black", font=font)
    responder = RapidOCRResponder("deepseek")
    found: dict[int, dict[str, tuple[float, ...]]] = {}
    for ccw in (0, 90, 180, 270):
        turned = img.rotate(ccw, expand=True)
        buf = io.BytesIO()
        turned.save(buf, "PNG")
        body = {"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}}]}]}  # fmt: skip
        found[ccw] = {b.text: tuple(b.box or ()) for b in responder.blocks_for(responder.sent_image(body))}
    assert set(found[0]) == {"ALPHA BRAVO CHARLIE", "delta echo foxtrot golf"}, found[0]
    for ccw in (90, 180, 270):
        assert set(found[ccw]) == set(found[0]), (ccw, found[ccw])
        for text, box in found[ccw].items():
            want = rotate_norm_box(found[0][text], (360 - ccw) % 360)  # (turned clockwise)
            assert max(abs(a - b) for a, b in zip(box, want, strict=True)) < 0.03, (ccw, text, box, want)
