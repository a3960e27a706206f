"""RunPod serverless worker for DeepSeek-OCR (and DeepSeek-OCR-2) on in-process vLLM.

Two contracts:

1. Per page (what ocrclient fans out): the envelope of RunPod's official vLLM worker, or a
   small ``pages`` batch -- see ``ocrworker/envelope.py``.  Output: a list of chat completions
   whose content is the raw model text with grounding tags (``<|ref|>..<|/ref|><|det|>..``).
2. Whole PDF (the original worker's contract, kept)::

       {"input": {"pdf_url" | "pdf_path" | "pdf_base64": ..., "prompt": "...", "output_dir": "..."}}

   Output: ``{"status": "succeeded", "markdown", "detection_markdown" (both base64 of UTF-8, as
   the original worker), "encoding": "base64", "markdown_path", "detection_markdown_path",
   "page_count", "pages": [...], "timing": {...}}``.  ``pdf_url`` is
   fetched under an SSRF guard, ``pdf_path`` / ``output_dir`` must stay under allowed roots.

vLLM runs with DeepSeek's n-gram repetition guard (``NGramPerReqLogitsProcessor``; per request
``ngram_size`` / ``window_size`` / ``whitelist_token_ids``, from ``vllm_xargs`` or defaults),
no prefix caching and no multimodal processor cache, as in vLLM's DeepSeek-OCR recipe.
``OCRWORKER_STANDIN=echo`` runs it without a GPU.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import math
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_HERE = Path(__file__).resolve().parent
if not (_HERE / "ocrworker").is_dir():  # source tree: deploy/ocrworker next to this folder
    sys.path.insert(0, str(_HERE.parent))

from ocrworker.envelope import ChatPage, Generation, JobError, Limits, decode_base64, error_output  # noqa: E402
from ocrworker.modelcache import configure_offline, resolve_model_path  # noqa: E402
from ocrworker.netguard import UrlPolicy, fetch_url, safe_path  # noqa: E402
from ocrworker.vllm_engine import sampling_kwargs, to_generation  # noqa: E402
from ocrworker.worker import ModelFn, PageWorker, env_float, env_int  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from ocrclient.contracts import first_error  # noqa: E402  (importable once ocrworker is)
from ocrclient.contracts.runpod import PDF_KEYS, DocumentJobInput  # noqa: E402

log = logging.getLogger("deepseek-ocr-worker")

DEFAULT_MODEL = "deepseek-ai/DeepSeek-OCR"
#: DeepSeek-OCR's context, vLLM's ``max_model_len`` (8192 in the model's config and in DeepSeek's
#: own vLLM scripts); ``MAX_MODEL_LEN`` sets it
DEFAULT_MAX_MODEL_LEN = 8192
#: the most tokens one page's image takes in vLLM's DeepSeek-OCR processor ("Gundam": a 1024 px
#: global view, 16 x (16 + 1) + 1 = 273, plus, for an image over 640 px, w x h tiles of 640 px,
#: 2 <= w*h <= 6, (10 w + 1) x 10 h <= 660 for 1 x 6)
MAX_IMAGE_TOKENS = 273 + 660
#: what a page's prompt may take besides its image: BOS, the prompt text, a chat template's tokens
PROMPT_TOKENS = 1024 - MAX_IMAGE_TOKENS
#: the reply's length when a request names none (and in document mode): the context less the
#: largest prompt (7168 at 8192; 8192 asked of an 8192 context was refused by vLLM's server,
#: 400 "maximum context length", for every page); the runpod-deepseek-ocr profile sends the same
DEFAULT_MAX_TOKENS = DEFAULT_MAX_MODEL_LEN - MAX_IMAGE_TOKENS - PROMPT_TOKENS
DEFAULT_PDF_PROMPT = "<image>\n<|grounding|>Convert the document to markdown."
#: what ends each page of the markdown, as DeepSeek's own PDF script writes it (after every
#: page, the last one too)
PAGE_END = "\n\n<--- Page Split --->\n"
#: n-gram guard defaults from vLLM's DeepSeek-OCR recipe (128821/128822 are <td> and </td>)
NGRAM_DEFAULTS: dict[str, Any] = {
    "ngram_size": 30,
    "window_size": 90,
    "whitelist_token_ids": [128821, 128822],
}

_GROUNDING = re.compile(r"<\|ref\|>(.*?)<\|/ref\|>\s*<\|det\|>.*?<\|/det\|>\s*", re.S)
_SPECIAL = re.compile(r"<\|grounding\|>|<｜end▁of▁sentence｜>|<\|end▁of▁sentence\|>")


def model_name() -> str:
    return (
        os.environ.get("MODEL_PATH", "").strip()
        or os.environ.get("MODEL_NAME", "").strip()
        or DEFAULT_MODEL
    )


def served_model_name() -> str:
    """The name clients ask for: the override, else the hub id (``MODEL_NAME``), never the
    ``MODEL_PATH`` directory the weights were loaded from (no client names it: every page the
    profile sent was refused, 404, and the run stopped)."""
    return (
        os.environ.get("OPENAI_SERVED_MODEL_NAME_OVERRIDE", "").strip()
        or os.environ.get("MODEL_NAME", "").strip()
        or DEFAULT_MODEL
    )


def max_model_len() -> int:
    return env_int("MAX_MODEL_LEN", DEFAULT_MAX_MODEL_LEN)


def worker_limits() -> Limits:
    """The ``OCR_*`` limits, held within the context (``MAX_MODEL_LEN``): ``max_tokens`` up to
    the context at most (``OCR_MAX_TOKENS_LIMIT``; a request asking more can never be served:
    the shared default, 16384, was twice DeepSeek-OCR's 8192), and by default the context less
    the largest prompt (``OCR_DEFAULT_MAX_TOKENS``)."""
    context = max_model_len()
    limits = Limits.from_env(
        max_tokens_limit=context,
        default_max_tokens=max(1, context - MAX_IMAGE_TOKENS - PROMPT_TOKENS),
    )
    if limits.max_tokens_limit > context:
        log.warning("OCR_MAX_TOKENS_LIMIT %d is over MAX_MODEL_LEN %d: using %d",
                    limits.max_tokens_limit, context, context)  # fmt: skip
        limits = dataclasses.replace(limits, max_tokens_limit=context)
    return dataclasses.replace(
        limits, default_max_tokens=min(limits.default_max_tokens, limits.max_tokens_limit)
    )


def deepseek_prompt(text: str) -> str:
    """DeepSeek-OCR wants the ``<image>`` placeholder in the prompt; add it when missing."""
    text = text.strip() or DEFAULT_PDF_PROMPT
    return text if "<image>" in text else "<image>\n" + text


def clean_markdown(raw: str) -> str:
    """Markdown without grounding tags: ``<|ref|>x<|/ref|><|det|>[[..]]<|/det|>`` blocks go."""
    return _SPECIAL.sub("", _GROUNDING.sub("", raw)).strip()


def load_model() -> ModelFn:
    configure_offline()
    path = resolve_model_path(model_name())
    from vllm import LLM, SamplingParams
    from vllm.model_executor.models.deepseek_ocr import NGramPerReqLogitsProcessor

    llm = LLM(
        model=path,
        served_model_name=served_model_name(),
        max_model_len=max_model_len(),
        gpu_memory_utilization=env_float("GPU_MEMORY_UTILIZATION", 0.9),
        max_num_seqs=env_int("MAX_NUM_SEQS", 32),
        limit_mm_per_prompt={"image": 1},
        enable_prefix_caching=False,
        mm_processor_cache_gb=0,
        logits_processors=[NGramPerReqLogitsProcessor],
        trust_remote_code=os.environ.get("TRUST_REMOTE_CODE", "0") in ("1", "true"),
    )

    def run(pages: list[ChatPage]) -> list[Generation]:
        params = []
        for p in pages:
            kw = sampling_kwargs(p, default_xargs=NGRAM_DEFAULTS, skip_special_tokens=False)
            xargs = kw.get("extra_args", {})
            if isinstance(xargs.get("whitelist_token_ids"), list):
                xargs["whitelist_token_ids"] = set(xargs["whitelist_token_ids"])
            params.append(SamplingParams(**kw))
        inputs = [
            {"prompt": deepseek_prompt(p.prompt), "multi_modal_data": {"image": p.image}}
            for p in pages
        ]
        outputs = llm.generate(inputs, params, use_tqdm=False)
        return [to_generation(o) for o in outputs]

    return run


WORKER = PageWorker(
    "deepseek-ocr", served_model=served_model_name(), loader=load_model, limits=worker_limits()
)


def set_model(fn: ModelFn | None) -> None:
    """Inject the model call (tests / custom engines)."""
    WORKER.set_model(fn)


# -- whole-PDF contract ---------------------------------------------------------------------
def _roots(var: str, default: str) -> list[str]:
    return [r.strip() for r in os.environ.get(var, default).split(",") if r.strip()]


def _stem(doc: DocumentJobInput) -> str:
    name = ""
    if doc.pdf_path:
        name = Path(doc.pdf_path).stem
    elif doc.pdf_url:
        name = Path(urlsplit(doc.pdf_url).path).stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80]
    return name or "document"


def document_input(inp: Any) -> DocumentJobInput:
    """The whole-PDF job input, validated by the client's own model (see ``ocrclient.contracts``)."""
    try:
        doc = DocumentJobInput.model_validate(inp)
    except ValidationError as exc:
        raise JobError(first_error(exc)) from exc
    ignored = ", ".join(doc.model_extra or {})
    if ignored:
        log.warning("ignoring document job fields this worker does not implement: %s", ignored)
    return doc


async def _pdf_bytes(doc: DocumentJobInput) -> bytes:
    max_bytes = env_int("MAX_PDF_BYTES", 100 * 1024 * 1024)
    key, value = doc.source
    if key == "pdf_base64":
        data = decode_base64(value, max_bytes=max_bytes, what="pdf_base64")
    elif key == "pdf_path":
        path = safe_path(value, roots=_roots("PDF_PATH_ROOTS", "/runpod-volume,/app/inputs"))
        if path.stat().st_size > max_bytes:
            raise JobError(f"pdf_path file is larger than {max_bytes} bytes", code=413)
        data = await asyncio.to_thread(path.read_bytes)
    else:
        data = await fetch_url(
            value, max_bytes=max_bytes, policy=UrlPolicy.from_env(dict(os.environ))
        )
    if not data.startswith(b"%PDF-"):
        raise JobError(f"{key} is not a PDF (no %PDF- header)")
    return data


#: PDFium is not thread-safe, and the worker serves several document jobs at once (each opens
#: and renders its PDF in a thread): every pypdfium2 call holds this lock.  Without it, concurrent
#: document jobs crashed the worker (``double free or corruption``, SIGABRT) with every job in it
PDFIUM_LOCK = threading.Lock()


def open_pdf(data: bytes, *, max_pages: int) -> Any:
    """Open PDF bytes with pypdfium2, enforcing the page limit."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except Exception as exc:
            raise JobError(f"PDF cannot be opened ({type(exc).__name__})") from exc
        # the form environment, before any page is loaded (a page loaded earlier has none): the
        # pages then draw their AcroForm fields' values, as the client's page mode does (a
        # filled form with /NeedAppearances and no appearance streams came out blank here)
        with contextlib.suppress(Exception):  # forms are a nicety: never fail a job for them
            pdf.init_forms()
        n = len(pdf)
        if n == 0 or n > max_pages:
            pdf.close()
            if n == 0:
                raise JobError("PDF has no pages")
            raise JobError(f"PDF has {n} pages, the limit is {max_pages}", code=413)
        return pdf


def close_pdf(pdf: Any) -> None:
    with PDFIUM_LOCK:
        pdf.close()


def _bitmap_pixels(width_pt: float, height_pt: float, scale: float) -> int:
    """The pixels of the bitmap PDFium makes for a page at ``scale`` (pypdfium2 rounds each
    side up: ``ceil(width * scale) x ceil(height * scale)``)."""
    return math.ceil(width_pt * scale) * math.ceil(height_pt * scale)


def render_scale(width_pt: float, height_pt: float, *, dpi: float, max_pixels: int) -> float:
    """The scale (pixels per point) a ``width_pt`` x ``height_pt`` page renders at: ``dpi / 72``,
    lowered (aspect ratio kept) so its bitmap holds at most ``max_pixels`` pixels -- the worker's
    own image limit (``OCR_MAX_IMAGE_PIXELS``, ``Limits.max_image_pixels``), which page mode's
    images are held to.  Computed from the page size before anything is rendered: a 14400 pt
    square page at 144 dpi would be a 28800 x 28800 bitmap (829 M pixels, ~2.5 GB).  A page
    within the limit renders at ``dpi`` exactly, as it always did.

    >>> render_scale(612, 792, dpi=144, max_pixels=40_000_000)   # US letter: 1224 x 1584
    2.0
    """
    scale = dpi / 72
    if width_pt <= 0 or height_pt <= 0 or _bitmap_pixels(width_pt, height_pt, scale) <= max_pixels:
        return scale
    # the largest s with (w*s + 1) * (h*s + 1) <= max_pixels: each side rounded up stays inside
    area, perimeter = width_pt * height_pt, width_pt + height_pt
    scale = (math.sqrt(perimeter**2 + 4 * area * (max_pixels - 1)) - perimeter) / (2 * area)
    while scale > 0 and _bitmap_pixels(width_pt, height_pt, scale) > max_pixels:
        scale *= 1 - 1e-9  # (float rounding at the very edge)
    return scale


def render_pages(pdf: Any, start: int, stop: int, *, dpi: int, max_pixels: int) -> list[Any]:
    """Pages ``start..stop-1`` as RGB PIL images (rendered a chunk at a time to bound memory),
    each at ``dpi`` or, for a page that would come out bigger than ``max_pixels``, scaled down
    to fit (:func:`render_scale`)."""
    images = []
    for i in range(start, stop):
        with PDFIUM_LOCK:  # a page at a time: other jobs' pages render in between
            page = pdf[i]
            try:
                width_pt, height_pt = page.get_size()
                scale = render_scale(width_pt, height_pt, dpi=dpi, max_pixels=max_pixels)
                bitmap = page.render(scale=scale, may_draw_forms=True)  # (FPDF_FFLDraw)
                try:
                    image = bitmap.to_pil().convert("RGB")  # (a copy: the bitmap's memory is PDFium's)
                finally:
                    bitmap.close()
            finally:
                page.close()
        images.append(image)
    return images


#: where ``output_dir`` may point unless ``OUTPUT_ROOTS`` says otherwise: the default folder, a
#: network volume, and ``/runpod/out`` (the DeepSeek worker contract's own example request)
DEFAULT_OUTPUT_ROOTS = "/tmp/runpod-output,/runpod-volume,/runpod/out"


async def handle_document(job: dict[str, Any]) -> dict[str, Any]:
    """The whole-PDF contract (see the module docstring)."""
    t0 = time.perf_counter()
    doc = document_input(job["input"])
    prompt = doc.prompt or DEFAULT_PDF_PROMPT
    default_root = os.environ.get("RUNPOD_OUTPUT_DIR") or "/tmp/runpod-output"
    out_root = doc.output_dir or default_root
    out_dir = safe_path(  # (the worker's own default folder is always allowed: OUTPUT_ROOTS set alone refused it)
        out_root,
        roots=_roots("OUTPUT_ROOTS", DEFAULT_OUTPUT_ROOTS) + _roots("RUNPOD_OUTPUT_DIR", default_root),
        must_exist=False,
    )
    # made before the model runs: a folder that cannot be is the request's fault (400), found
    # before the GPU reads the PDF (it was a retryable 500 after, and every retry read it again)
    job_dir = out_dir / re.sub(r"[^A-Za-z0-9._-]+", "_", str(job.get("id") or "job"))
    made = not job_dir.exists()  # (a retried job's folder from an earlier attempt stays as it is)
    try:
        await asyncio.to_thread(job_dir.mkdir, parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"output_dir {out_root!r}: cannot make {job_dir.name} in it ({exc.strerror or exc})") from None
    try:
        return await _run_document(doc, prompt, job_dir, t0)
    except BaseException:  # a failed job leaves no folder of its own behind (nothing in it is whole)
        if made:
            await asyncio.to_thread(shutil.rmtree, job_dir, True)
        raise


async def _run_document(doc: DocumentJobInput, prompt: str, job_dir: Path, t0: float) -> dict[str, Any]:
    """Read, render and run the PDF; write its two markdown files into ``job_dir``; the reply."""
    data = await _pdf_bytes(doc)
    pdf = await asyncio.to_thread(open_pdf, data, max_pages=env_int("MAX_PDF_PAGES", 200))
    with PDFIUM_LOCK:  # (counting pages is a PDFium call too)
        page_count = len(pdf)
    dpi = env_int("PDF_DPI", 144)
    max_pixels = WORKER.limits.max_image_pixels  # (OCR_MAX_IMAGE_PIXELS: page mode's image limit)
    max_tokens = WORKER.limits.default_max_tokens  # (OCR_DEFAULT_MAX_TOKENS, within the context)
    chunk = max(1, 2 * WORKER.max_batch)
    completions: list[dict[str, Any]] = []
    try:
        for start in range(0, page_count, chunk):
            stop = min(page_count, start + chunk)
            images = await asyncio.to_thread(render_pages, pdf, start, stop, dpi=dpi, max_pixels=max_pixels)
            pages = [
                ChatPage(image=img, prompt=prompt, max_tokens=max_tokens, index=start + i)
                for i, img in enumerate(images)
            ]
            completions.extend(await WORKER.run_pages(pages, t0))
    finally:
        await asyncio.to_thread(close_pdf, pdf)
    raw_pages = [c["choices"][0]["message"]["content"] for c in completions]
    detection = "".join(r + PAGE_END for r in raw_pages)
    markdown = "".join(clean_markdown(r) + PAGE_END for r in raw_pages)

    stem = _stem(doc)
    md_path = job_dir / f"{stem}.mmd"
    det_path = job_dir / f"{stem}_det.mmd"
    md_path.write_text(markdown, encoding="utf-8")
    det_path.write_text(detection, encoding="utf-8")

    inline_limit = env_int("MAX_INLINE_BYTES", 8 * 1024 * 1024)
    out: dict[str, Any] = {
        "status": "succeeded",
        "model": served_model_name(),
        "page_count": len(completions),
        "pages": [
            {
                "page": i + 1,
                "finish_reason": c["choices"][0]["finish_reason"],
                "usage": c["usage"],
            }
            for i, c in enumerate(completions)
        ],
        "markdown_path": str(md_path),
        "detection_markdown_path": str(det_path),
        "timing": {"total_s": round(time.perf_counter() - t0, 4)},
    }
    md_bytes, det_bytes = markdown.encode("utf-8"), detection.encode("utf-8")
    if (len(md_bytes) + len(det_bytes)) * 4 // 3 <= inline_limit:
        # base64 of UTF-8, as the original worker returned its artifacts
        out["markdown"] = base64.b64encode(md_bytes).decode("ascii")
        out["detection_markdown"] = base64.b64encode(det_bytes).decode("ascii")
        out["encoding"] = "base64"
    return out


def is_document_job(inp: Any) -> bool:
    return isinstance(inp, dict) and any(k in inp for k in PDF_KEYS)


async def handler(job: dict[str, Any]) -> list[dict[str, Any]] | dict[str, Any]:
    """RunPod handler: page envelope -> list of chat completions; whole-PDF input -> dict."""
    if isinstance(job, dict) and is_document_job(job.get("input")):
        try:
            return await handle_document(job)
        except JobError as exc:
            return error_output(exc)
        except Exception as exc:
            log.exception("document job failed")
            return error_output(JobError(f"document failed: {type(exc).__name__}: {exc}", code=500))
    return await WORKER.handle(job)


if __name__ == "__main__":
    WORKER.serve(handler)
