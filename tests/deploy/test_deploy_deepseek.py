"""deploy/runpod-deepseek-ocr: per-page envelope, the n-gram guard wiring, and the whole-PDF
contract with its SSRF / traversal / size guards."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY, chat_request, data_url, envelope, load_module, page_png
from ocrworker.envelope import ChatPage, Generation
from PIL import Image

from ocrclient.dialects.deepseek import split_pages
from ocrclient.transports.runpod_jobs import _document_reply

HANDLER = DEPLOY / "runpod-deepseek-ocr" / "handler.py"

GROUNDED = (
    "<|ref|>title<|/ref|><|det|>[[10, 20, 500, 60]]<|/det|>\n# Report {n}\n\n"
    "<|ref|>image<|/ref|><|det|>[[10, 80, 300, 400]]<|/det|>\n\n"
    "<|ref|>text<|/ref|><|det|>[[10, 420, 900, 480]]<|/det|>\nBody of page {n}."
)


@pytest.fixture
def deepseek(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.delenv("OCRWORKER_STANDIN", raising=False)
    monkeypatch.setenv("OUTPUT_ROOTS", str(tmp_path / "out"))
    monkeypatch.setenv("PDF_PATH_ROOTS", str(tmp_path / "vol"))
    (tmp_path / "vol").mkdir()
    mod = load_module("deepseek_handler", HANDLER)
    yield mod
    mod.set_model(None)


def grounded_model(calls: list[ChatPage]) -> Any:
    def run(pages: list[ChatPage]) -> list[Generation]:
        calls.extend(pages)
        return [
            Generation(text=GROUNDED.format(n=len(calls) - len(pages) + i + 1), completion_tokens=9)
            for i, _ in enumerate(pages)
        ]

    return run


def make_pdf(pages: int = 2) -> bytes:
    imgs = [Image.new("RGB", (200, 260), "white") for _ in range(pages)]
    buf = io.BytesIO()
    imgs[0].save(buf, format="PDF", save_all=True, append_images=imgs[1:], resolution=72)
    return buf.getvalue()


async def test_page_envelope_returns_raw_grounded_text(deepseek: Any) -> None:
    calls: list[ChatPage] = []
    deepseek.set_model(grounded_model(calls))
    out = await deepseek.handler(
        envelope(
            chat_request(
                data_url(page_png()), prompt="<|grounding|>Convert the document to markdown."
            )
        )
    )
    content = out[0]["choices"][0]["message"]["content"]
    assert (
        "<|ref|>title<|/ref|><|det|>[[10, 20, 500, 60]]<|/det|>" in content
    )  # untouched for the client's dialect
    assert out[0]["model"] == "deepseek-ai/DeepSeek-OCR"


def test_markdown_cleaning_and_prompt() -> None:
    mod = load_module("deepseek_handler_plain", HANDLER)
    md = mod.clean_markdown(GROUNDED.format(n=1) + "<｜end▁of▁sentence｜>")
    assert md == "# Report 1\n\nBody of page 1."
    assert mod.deepseek_prompt("Free OCR.") == "<image>\nFree OCR."
    assert mod.deepseek_prompt("<image>\nFree OCR.") == "<image>\nFree OCR."
    assert mod.deepseek_prompt("") == mod.DEFAULT_PDF_PROMPT


async def test_ngram_guard_and_prompt_reach_vllm(
    deepseek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    class FakeLLM:
        def __init__(self, **kwargs: Any) -> None:
            seen["llm"] = kwargs

        def generate(
            self, inputs: list[dict], params: list[Any], use_tqdm: bool = True
        ) -> list[Any]:
            seen["inputs"], seen["params"] = inputs, params
            return [
                types.SimpleNamespace(
                    prompt_token_ids=[0] * 5,
                    outputs=[types.SimpleNamespace(text="ok", finish_reason="stop", token_ids=[1])],
                )
                for _ in inputs
            ]

    class NGram:
        pass

    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM  # type: ignore[attr-defined]
    vllm.SamplingParams = lambda **kw: kw  # type: ignore[attr-defined]
    dso = types.ModuleType("vllm.model_executor.models.deepseek_ocr")
    dso.NGramPerReqLogitsProcessor = NGram  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.model_executor.models.deepseek_ocr", dso)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    deepseek.set_model(None)

    out = await deepseek.handler(
        envelope(
            chat_request(data_url(page_png()), prompt="Free OCR.", vllm_xargs={"ngram_size": 20})
        )
    )
    assert out[0]["choices"][0]["message"]["content"] == "ok"
    assert seen["llm"]["logits_processors"] == [NGram]
    assert (
        seen["llm"]["enable_prefix_caching"] is False and seen["llm"]["mm_processor_cache_gb"] == 0
    )
    assert seen["inputs"][0]["prompt"] == "<image>\nFree OCR."
    assert isinstance(seen["inputs"][0]["multi_modal_data"]["image"], Image.Image)
    params = seen["params"][0]
    assert params["skip_special_tokens"] is False
    assert params["extra_args"] == {
        "ngram_size": 20,
        "window_size": 90,
        "whitelist_token_ids": {128821, 128822},
    }


async def test_whole_pdf_base64(deepseek: Any, tmp_path: Path) -> None:
    calls: list[ChatPage] = []
    deepseek.set_model(grounded_model(calls))
    pdf = make_pdf(3)
    out = await deepseek.handler(
        {
            "id": "job-7",
            "input": {
                "pdf_base64": base64.b64encode(pdf).decode(),
                "output_dir": str(tmp_path / "out"),
            },
        }
    )
    assert out["status"] == "succeeded", out
    assert out["page_count"] == 3 and len(calls) == 3
    assert calls[0].image.size == (400, 520)  # 144 dpi render of a 200x260 pt page
    assert calls[0].prompt == "<image>\n<|grounding|>Convert the document to markdown."
    assert out["encoding"] == "base64"
    markdown = base64.b64decode(out["markdown"]).decode()
    detection = base64.b64decode(out["detection_markdown"]).decode()
    # every page ended by the separator, as DeepSeek's own PDF script writes it; read back by the
    # client's own splitter (the seam: the worker's shape and the client's reading of it)
    assert markdown == "".join(f"# Report {n}\n\nBody of page {n}.\n\n<--- Page Split --->\n" for n in (1, 2, 3))
    assert split_pages(markdown) == [f"# Report {n}\n\nBody of page {n}." for n in (1, 2, 3)]
    assert len(split_pages(detection)) == 3
    assert "<|det|>" in detection
    md_path = Path(out["markdown_path"])
    assert md_path.parent == (tmp_path / "out" / "job-7").resolve()
    assert md_path.read_text() == markdown
    assert Path(out["detection_markdown_path"]).read_text() == detection
    # the tokens each page spent reach the client's reply (they were dropped: a document's pages
    # counted no tokens, in its stats nor its cost)
    reply = _document_reply(out, "job-7")
    assert reply.completion_tokens == 27 == sum(p["usage"]["completion_tokens"] for p in out["pages"])
    assert reply.prompt_tokens == sum(p["usage"]["prompt_tokens"] for p in out["pages"])


def form_pdf(value: str) -> bytes:
    """Three 300x200 pt pages, a filled AcroForm text field on the second and third (``/V``
    ``value``, ``/NeedAppearances true``, no appearance stream: only a form-aware render draws it)."""
    esc = value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [7 0 R 8 0 R] /NeedAppearances true"
        b" /DA (/Helv 0 Tf 0 g) /DR << /Font << /Helv 3 0 R >> >> >> >>",
        b"<< /Type /Pages /Kids [4 0 R 5 0 R 6 0 R] /Count 3 /MediaBox [0 0 300 200] >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Page /Parent 2 0 R >>",
        b"<< /Type /Page /Parent 2 0 R /Annots [7 0 R] >>",
        b"<< /Type /Page /Parent 2 0 R /Annots [8 0 R] >>",
    ]
    for name, page in (("name", 5), ("again", 6)):
        objects.append(
            f"<< /Type /Annot /Subtype /Widget /FT /Tx /T ({name}) /V ({esc}) /F 4 /P {page} 0 R"
            f" /Rect [30 80 270 120] /DA (/Helv 16 Tf 0 g) >>".encode()
        )
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


async def test_document_mode_draws_form_fields_as_page_mode_does(deepseek: Any, tmp_path: Path) -> None:
    """A filled form's values reach the model in document mode: the worker renders each page
    pixel for pixel as the client's page mode does at the same dpi (it drew no form fields: a
    filled form came out blank in document mode only)."""
    from ocrclient.imaging import RenderSpec
    from ocrclient.pages.render import RenderJob, close_open_documents, render_job

    calls: list[ChatPage] = []
    deepseek.set_model(grounded_model(calls))
    path = tmp_path / "vol" / "form.pdf"
    path.write_bytes(form_pdf("JOHN SMITHERSON"))
    out = await deepseek.handler(
        {"id": "f", "input": {"pdf_path": str(path), "output_dir": str(tmp_path / "out")}}
    )
    assert out["status"] == "succeeded" and len(calls) == 3, out
    spec = RenderSpec(dpi=144)  # the worker's PDF_DPI
    try:
        for i, call in enumerate(calls):
            job = RenderJob(kind="pdf", path=str(path), password=None, index=i, spec=spec, name=path.name)
            page = render_job(job)
            assert page.error is None and page.encoded is not None
            client = Image.open(io.BytesIO(page.encoded.data)).convert("RGB")
            assert call.image.size == client.size == (600, 400)
            assert call.image.tobytes() == client.tobytes(), f"page {i + 1} differs from page mode"
    finally:
        close_open_documents()
    # and the value is drawn (dark pixels inside the field's box), on the form pages only
    field = (60, 160, 540, 240)  # the /Rect at 2x, top-down
    inked = [c.image.convert("L").crop(field).getextrema()[0] < 128 for c in calls]
    assert inked == [False, True, True]


async def test_whole_pdf_is_rendered_in_chunks_in_order(
    deepseek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[ChatPage] = []
    deepseek.set_model(grounded_model(calls))
    monkeypatch.setattr(deepseek.WORKER, "max_batch", 1)  # chunks of 2 pages
    rendered: list[tuple[int, int]] = []
    real = deepseek.render_pages

    def spy(pdf: Any, start: int, stop: int, **kwargs: Any) -> list[Any]:
        rendered.append((start, stop))
        return real(pdf, start, stop, **kwargs)

    monkeypatch.setattr(deepseek, "render_pages", spy)
    pdf = base64.b64encode(make_pdf(5)).decode()
    out = await deepseek.handler(
        {"id": "c", "input": {"pdf_base64": pdf, "output_dir": str(tmp_path / "out")}}
    )
    assert rendered == [(0, 2), (2, 4), (4, 5)]
    assert out["page_count"] == 5 and [p["page"] for p in out["pages"]] == [1, 2, 3, 4, 5]
    assert [c.index for c in calls] == [0, 1, 2, 3, 4]
    assert base64.b64decode(out["markdown"]).decode().count("<--- Page Split --->") == 5


async def test_large_results_are_returned_by_path_only(
    deepseek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deepseek.set_model(grounded_model([]))
    monkeypatch.setenv("MAX_INLINE_BYTES", "100")
    pdf = base64.b64encode(make_pdf(1)).decode()
    out = await deepseek.handler(
        {"id": "big", "input": {"pdf_base64": pdf, "output_dir": str(tmp_path / "out")}}
    )
    assert out["status"] == "succeeded" and "markdown" not in out and "encoding" not in out
    assert split_pages(Path(out["markdown_path"]).read_text()) == ["# Report 1\n\nBody of page 1."]


async def test_whole_pdf_path_inside_root(deepseek: Any, tmp_path: Path) -> None:
    deepseek.set_model(grounded_model([]))
    pdf_file = tmp_path / "vol" / "in" / "My Report.pdf"
    pdf_file.parent.mkdir()
    pdf_file.write_bytes(make_pdf(1))
    out = await deepseek.handler(
        {"id": "j", "input": {"pdf_path": str(pdf_file), "output_dir": str(tmp_path / "out")}}
    )
    assert out["status"] == "succeeded"
    assert Path(out["markdown_path"]).name == "My_Report.mmd"


@pytest.mark.parametrize(
    ("make_input", "code", "needle"),
    [
        (lambda t: {"pdf_path": "/etc/passwd"}, 400, "outside the allowed roots"),
        (
            lambda t: {"pdf_path": str(t / "vol" / ".." / "secret.pdf")},
            400,
            "outside the allowed roots",
        ),
        (lambda t: {"pdf_url": "https://127.0.0.1/x.pdf"}, 400, "non-public"),
        (lambda t: {"pdf_url": "https://169.254.169.254/latest/meta-data/"}, 400, "non-public"),
        (lambda t: {"pdf_url": "https://10.0.0.8/a.pdf"}, 400, "non-public"),
        (lambda t: {"pdf_url": "http://example.com/a.pdf"}, 400, "scheme must be https"),
        (lambda t: {"pdf_base64": "JVBERi0=", "pdf_path": "/x.pdf"}, 400, "exactly one"),
        (lambda t: {"pdf_base64": base64.b64encode(b"hello").decode()}, 400, "not a PDF"),
        (lambda t: {"pdf_base64": "***"}, 400, "not valid base64"),
        (
            lambda t: {"pdf_base64": base64.b64encode(make_pdf(1)).decode(), "output_dir": "/etc"},
            400,
            "outside the allowed roots",
        ),
        (
            lambda t: {
                "pdf_base64": base64.b64encode(b"%PDF-1.4 garbage").decode(),
                "output_dir": str(t / "out"),
            },
            400,
            "cannot be opened",
        ),
        (  # a file where the folder goes: refused before the model reads a page, not retried
            lambda t: (
                (t / "out").mkdir(exist_ok=True),
                (t / "out" / "afile").write_text("x"),
                {"pdf_base64": base64.b64encode(make_pdf(1)).decode(), "output_dir": str(t / "out" / "afile")},
            )[-1],
            400,
            "cannot make",
        ),
    ],
)
async def test_whole_pdf_guards(
    deepseek: Any, tmp_path: Path, make_input: Any, code: int, needle: str
) -> None:
    calls: list[ChatPage] = []
    deepseek.set_model(grounded_model(calls))
    (tmp_path / "secret.pdf").write_bytes(make_pdf(1))
    inp = make_input(tmp_path)
    inp.setdefault("output_dir", str(tmp_path / "out"))
    out = await deepseek.handler({"id": "j", "input": inp})
    payload = json.loads(out["error"])
    assert payload["code"] == code, payload
    assert needle in payload["error_message"]
    assert calls == []
    assert not (tmp_path / "out" / "j").exists()  # a refused job leaves no folder behind


@pytest.mark.parametrize("how", ["model raises", "not a pdf", "too many pages", "output unwritable"])
async def test_a_failed_whole_pdf_job_leaves_no_job_folder(
    deepseek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Each way a whole-PDF job can fail after its folder was made: the worker removes the
    folder it made (an empty or half-written folder per failed job piled up on the volume); a
    folder an earlier attempt of the same job made is left as it was."""
    calls: list[ChatPage] = []
    deepseek.set_model(grounded_model(calls))
    pdf = make_pdf(2)
    if how == "model raises":
        def broken(pages: list[ChatPage]) -> list[Generation]:
            raise RuntimeError("CUDA out of memory")

        deepseek.set_model(broken)
    elif how == "not a pdf":
        pdf = b"%PDF-1.4 garbage"
    elif how == "too many pages":
        monkeypatch.setenv("MAX_PDF_PAGES", "1")
    else:
        monkeypatch.setattr(deepseek.Path, "write_text", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    job = {"id": "j", "input": {"pdf_base64": base64.b64encode(pdf).decode(), "output_dir": str(tmp_path / "out")}}
    out = await deepseek.handler(job)
    assert "error" in out, out
    assert not (tmp_path / "out" / "j").exists(), list((tmp_path / "out").rglob("*"))
    earlier = tmp_path / "out" / "j"
    earlier.mkdir(parents=True)
    (earlier / "kept.mmd").write_bytes(b"from an earlier attempt")
    assert "error" in await deepseek.handler(job)
    assert (earlier / "kept.mmd").read_bytes() == b"from an earlier attempt"


async def test_whole_pdf_size_and_page_limits(
    deepseek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deepseek.set_model(grounded_model([]))
    pdf = base64.b64encode(make_pdf(3)).decode()
    monkeypatch.setenv("MAX_PDF_PAGES", "2")
    payload = json.loads(
        (
            await deepseek.handler(
                {"id": "j", "input": {"pdf_base64": pdf, "output_dir": str(tmp_path / "out")}}
            )
        )["error"]
    )
    assert payload["code"] == 413 and "3 pages" in payload["error_message"]
    monkeypatch.setenv("MAX_PDF_BYTES", "100")
    payload = json.loads(
        (
            await deepseek.handler(
                {"id": "j", "input": {"pdf_base64": pdf, "output_dir": str(tmp_path / "out")}}
            )
        )["error"]
    )
    assert payload["code"] == 413 and "larger than 100 bytes" in payload["error_message"]


async def test_concurrent_whole_pdf_jobs_never_overlap_in_pdfium(
    deepseek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker serves several document jobs at once, each opening and rendering its PDF in a
    thread; PDFium is not thread-safe, and concurrent jobs crashed the worker (SIGABRT, ``double
    free or corruption``).  Eight jobs at once: no two threads are ever inside PDFium together,
    and each job's pages are its own (every job's PDF has pages of its own size)."""
    import asyncio
    import threading
    import time

    import pypdfium2 as pdfium

    state = {"inside": 0, "most": 0}
    guard = threading.Lock()

    def watched(fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            with guard:
                state["inside"] += 1
                state["most"] = max(state["most"], state["inside"])
            try:
                time.sleep(0.002)  # widen the window another thread could enter in
                return fn(*args, **kwargs)
            finally:
                with guard:
                    state["inside"] -= 1

        return call

    for cls, name in [(pdfium.PdfDocument, "__init__"), (pdfium.PdfDocument, "__getitem__"), (pdfium.PdfDocument, "__len__"),
                      (pdfium.PdfDocument, "close"), (pdfium.PdfPage, "render"), (pdfium.PdfPage, "close"),
                      (pdfium.PdfBitmap, "to_pil")]:  # fmt: skip
        monkeypatch.setattr(cls, name, watched(getattr(cls, name)))

    def sized(pages: list[ChatPage]) -> list[Generation]:
        return [Generation(text=f"{p.image.size[0]}x{p.image.size[1]}", completion_tokens=1) for p in pages]

    deepseek.set_model(sized)
    monkeypatch.setattr(deepseek.WORKER, "max_batch", 1)  # chunks of 2 pages: renders interleave

    def pdf_of(width: int, pages: int) -> str:
        imgs = [Image.new("RGB", (width, 100), "white") for _ in range(pages)]
        buf = io.BytesIO()
        imgs[0].save(buf, format="PDF", save_all=True, append_images=imgs[1:], resolution=72)
        return base64.b64encode(buf.getvalue()).decode()

    jobs = [{"id": f"j{n}", "input": {"pdf_base64": pdf_of(100 + 10 * n, 5), "output_dir": str(tmp_path / "out")}}
            for n in range(8)]  # fmt: skip
    outs = await asyncio.gather(*(deepseek.handler(job) for job in jobs))
    assert state["most"] == 1, state
    for n, out in enumerate(outs):
        assert out["status"] == "succeeded", out
        width = 2 * (100 + 10 * n)  # rendered at 144 dpi
        assert split_pages(base64.b64decode(out["markdown"]).decode()) == [f"{width}x200"] * 5


def test_default_output_roots_take_the_contracts_example(deepseek: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DeepSeek worker contract's example request writes to ``/runpod/out``: refused as
    outside the allowed roots unless OUTPUT_ROOTS was set."""
    monkeypatch.delenv("OUTPUT_ROOTS")
    roots = deepseek._roots("OUTPUT_ROOTS", deepseek.DEFAULT_OUTPUT_ROOTS)
    for path in ("/runpod/out", "/runpod/out/job1", "/runpod-volume/out", "/tmp/runpod-output"):
        deepseek.safe_path(path, roots=roots, must_exist=False)
    with pytest.raises(deepseek.JobError):
        deepseek.safe_path("/runpod/other", roots=roots, must_exist=False)


@pytest.mark.parametrize("where", ["RUNPOD_OUTPUT_DIR unset", "RUNPOD_OUTPUT_DIR set"])
async def test_a_job_naming_no_folder_writes_to_the_workers_own_whatever_output_roots(
    where: str, deepseek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``OUTPUT_ROOTS`` set (here to a folder of its own) a job that names no
    ``output_dir`` writes to the worker's default folder (``RUNPOD_OUTPUT_DIR``, else
    /tmp/runpod-output): with the variable unset every document-mode job was refused, 'outside
    the allowed roots'."""
    default = tmp_path / "default-out"
    if where == "RUNPOD_OUTPUT_DIR set":
        monkeypatch.setenv("RUNPOD_OUTPUT_DIR", str(default))
    else:
        monkeypatch.delenv("RUNPOD_OUTPUT_DIR", raising=False)
    deepseek.set_model(grounded_model([]))
    job = f"job-{tmp_path.name}"
    out = await deepseek.handler({"id": job, "input": {"pdf_base64": base64.b64encode(make_pdf(1)).decode()}})
    assert out.get("status") == "succeeded", out
    want = default if where == "RUNPOD_OUTPUT_DIR set" else Path("/tmp/runpod-output")
    assert Path(out["markdown_path"]).parent == (want / job).resolve()
    shutil.rmtree(want / job, ignore_errors=True)


@pytest.mark.parametrize(("env", "served"), [
    ({}, "deepseek-ai/DeepSeek-OCR"),
    ({"MODEL_PATH": "/app/models/deepseek-ai/DeepSeek-OCR"}, "deepseek-ai/DeepSeek-OCR"),
    ({"MODEL_NAME": "org/my-deepseek", "MODEL_PATH": "/app/models/x"}, "org/my-deepseek"),
    ({"MODEL_PATH": "/app/models/x", "OPENAI_SERVED_MODEL_NAME_OVERRIDE": "served/as"}, "served/as"),
])  # fmt: skip
def test_the_worker_serves_the_name_clients_ask_for_wherever_its_weights_are(
    env: dict[str, str], served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed puts the weights at /app/models/deepseek-ai/DeepSeek-OCR and says to set
    ``MODEL_PATH``: the worker then served the directory's path, and refused (404) every page
    the runpod-deepseek-ocr profile sent; it serves the hub id, and the profile's model is it."""
    from ocrclient.config import resolve_config

    for var in ("MODEL_PATH", "MODEL_NAME", "OPENAI_SERVED_MODEL_NAME_OVERRIDE"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    mod = load_module("deepseek_identity", HANDLER)
    assert mod.WORKER.served_model == served
    assert mod.model_name() == (env.get("MODEL_PATH") or env.get("MODEL_NAME") or "deepseek-ai/DeepSeek-OCR")
    if not env.get("MODEL_NAME") and not env.get("OPENAI_SERVED_MODEL_NAME_OVERRIDE"):
        assert resolve_config("runpod-deepseek-ocr").model == served
