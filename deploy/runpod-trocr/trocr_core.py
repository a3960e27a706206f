"""The TrOCR service shared by the RunPod handler (``handler.py``) and the FastAPI app (``app.py``).

Contract (the OLM / RoLM "ocular" service):

* ``/extract_text`` -- ``{"image": <base64>, "model_name"?, "use_preprocessing"?, "ensemble_size"?,
  "decoding_options"?, "segment_lines"?}`` -> ``{"text", "confidence", "language",
  "processing_time", "metadata"}``
* ``/extract_text_robust`` -- same, with >= 3 image variants and wider beam search
* ``/extract_structured`` (+ ``_robust``) -- same plus ``"schema": {...}`` ->
  ``{"structured_data", "confidence", "processing_time", "metadata"}``
* ``/health`` -> ``{"status", "models_loaded", "models_allowed", "models_failed", "gpu_available",
  "memory_info"}``

The request bodies are the client's own models (``ocrclient.contracts.ocular``, copied into the
image), so the TrOCR dialect and this service validate against the same definition;
``decoding_options`` takes beam-search and sampling keys (``do_sample``, ``temperature``,
``top_k``, ``top_p``) and refuses anything else.

TrOCR reads one text *line* per image, so a page is first cut into lines with a
projection profile (``segment_lines``, default on); every line is recognised in one batch and
the confidence is the token-weighted mean of the per-token probabilities from the generation
scores.  The model call is a :data:`Recognizer`; ``TROCR_STANDIN=1`` swaps in a CPU stand-in.

Example::

    service = OcrService(recognizer=my_recognizer)
    reply = await service.route("/extract_text", {"image": b64})
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import math
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from pydantic import ValidationError

try:  # the image copies the client's contracts to /app/ocrclient/contracts
    from ocrclient.contracts import first_error
    from ocrclient.contracts.ocular import ROUTES, DecodingOptions, OcularRequest, StructuredRequest
except ImportError:  # a source checkout without the client installed: use <repo>/src
    sys.path.append(str(Path(__file__).resolve().parents[2] / "src"))
    from ocrclient.contracts import first_error
    from ocrclient.contracts.ocular import ROUTES, DecodingOptions, OcularRequest, StructuredRequest

__all__ = [
    "DecodingOptions",
    "OcrRequest",
    "OcrService",
    "Recognizer",
    "ServiceError",
    "StructuredRequest",
    "extract_fields",
    "segment_lines",
]

DEFAULT_MODEL = "microsoft/trocr-base-printed"
DEFAULT_ALLOWED = (
    "microsoft/trocr-base-printed,microsoft/trocr-large-printed,"
    "microsoft/trocr-base-handwritten,microsoft/trocr-large-handwritten,microsoft/trocr-small-printed,"
    "microsoft/trocr-small-handwritten"
)
#: (model_name, line images, decoding options) -> [(text, sum_logprob, n_tokens)] per line
Recognizer = Callable[[str, list[Image.Image], dict[str, Any]], list[tuple[str, float, int]]]


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


#: body of ``/extract_text`` (the shared contract's model; ``StructuredRequest`` adds ``schema``)
OcrRequest = OcularRequest


# -- image handling -------------------------------------------------------------------------
def decode_image(data: str) -> Image.Image:
    max_bytes = _env_int("TROCR_MAX_IMAGE_BYTES", 15 * 1024 * 1024)
    max_pixels = _env_int("TROCR_MAX_IMAGE_PIXELS", 40_000_000)
    if not isinstance(data, str) or not data.strip():
        raise ServiceError("image is empty")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    compact = "".join(data.split())
    if len(compact) * 3 // 4 > max_bytes:
        raise ServiceError(f"image is larger than {max_bytes} bytes", 413)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ServiceError("image is not valid base64") from exc
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            if probe.width * probe.height > max_pixels:
                raise ServiceError(f"image has more than {max_pixels} pixels", 413)
            probe.verify()
        img = Image.open(io.BytesIO(raw))
        img.load()
    except ServiceError:
        raise
    except Exception as exc:
        raise ServiceError(f"image cannot be decoded ({type(exc).__name__})") from exc
    return img.convert("RGB")


def segment_lines(
    image: Image.Image, *, min_height: int = 6, gap: int = 3, pad: int = 4
) -> list[Image.Image]:
    """Cut a page into text-line crops with a horizontal projection profile.

    Dark-on-light is assumed (the image is inverted first when its mean is dark).  Returns
    ``[image]`` when no line structure is found.
    """
    gray = ImageOps.grayscale(image)
    hist = gray.histogram()
    total = gray.width * gray.height
    mean = sum(i * c for i, c in enumerate(hist)) / max(1, total)
    if mean < 128:
        gray = ImageOps.invert(gray)
        mean = 255 - mean
    threshold = min(200.0, mean * 0.75)
    ink = gray.point(lambda v: 255 if v < threshold else 0)
    width, height = ink.size
    data = ink.tobytes()
    min_ink = max(1, width // 200)
    # ink pixels are 255, background 0: count the non-zero bytes of each row
    rows = [width - data.count(0, y * width, (y + 1) * width) >= min_ink for y in range(height)]
    runs: list[list[int]] = []
    for y, on in enumerate(rows):
        if on:
            if runs and y - runs[-1][1] <= gap:
                runs[-1][1] = y
            else:
                runs.append([y, y])
    runs = [r for r in runs if r[1] - r[0] + 1 >= min_height]
    if len(runs) <= 1:
        if not runs:
            return [image]
        top, bottom = runs[0]
        if bottom - top + 1 >= height - 2 * pad:
            return [image]
    crops = []
    for top, bottom in runs:
        band = ink.crop((0, top, width, bottom + 1))
        box = band.getbbox()
        left, right = (box[0], box[2]) if box else (0, width)
        crops.append(
            image.crop(
                (
                    max(0, left - pad),
                    max(0, top - pad),
                    min(width, right + pad),
                    min(height, bottom + 1 + pad),
                )
            )
        )
    return crops


def make_variants(image: Image.Image, count: int) -> list[Image.Image]:
    """The original plus up to four enhanced copies (contrast, sharpness, brightness, median)."""
    variants = [image]
    makers = [
        lambda im: ImageEnhance.Contrast(im).enhance(1.5),
        lambda im: ImageEnhance.Sharpness(im).enhance(1.3),
        lambda im: ImageEnhance.Brightness(im).enhance(1.1),
        lambda im: im.filter(ImageFilter.MedianFilter(size=3)),
    ]
    for make in makers[: max(0, count - 1)]:
        variants.append(make(image))
    return variants


def pick_result(results: list[tuple[str, float]]) -> tuple[str, float, str]:
    """Ensemble: the text most variants agree on (ties -> higher confidence), else the best."""
    counts = Counter(text for text, _ in results)
    best_text, votes = counts.most_common(1)[0]
    if votes > 1:
        conf = max(c for t, c in results if t == best_text)
        return best_text, conf, "consensus"
    text, conf = max(results, key=lambda r: r[1])
    return text, conf, "max_confidence"


# -- structured extraction ------------------------------------------------------------------
_INVOICE = [
    r"(?:invoice|inv)\s*(?:no\.?|number|#)?\s*[:#]?\s*([A-Z0-9][-A-Z0-9]{2,20})",
    r"#\s*([A-Z0-9][-A-Z0-9]{2,15})",
]
_AMOUNT = [
    r"(?:total|amount(?: due)?)\s*[:]?\s*[$€£]?\s*([0-9][0-9,]*\.?[0-9]*)",
    r"[$€£]\s*([0-9][0-9,]*\.?[0-9]*)",
]
_DATE = [
    r"\b([0-9]{4}-[0-9]{2}-[0-9]{2})\b",
    r"\b([0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2,4})\b",
    r"\b([A-Z][a-z]+ [0-9]{1,2}, [0-9]{4})\b",
]


def extract_fields(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Regex extraction of invoice number, total amount and date for the keys ``schema`` asks."""
    found: dict[str, Any] = {}
    keys = {k.lower() for k in schema}
    if keys & {"invoice_number", "invoice_id", "inv_no"}:
        for pat in _INVOICE:
            m = re.search(pat, text, re.IGNORECASE)
            if m and any(ch.isdigit() for ch in m.group(1)):
                found["invoice_number"] = m.group(1)
                break
    if keys & {"total_amount", "amount", "total"}:
        for pat in _AMOUNT:
            m = re.search(pat, text, re.IGNORECASE)
            if m:
                try:
                    value = float(m.group(1).replace(",", ""))
                except ValueError:
                    continue
                if 0 < value < 1e9:
                    found["total_amount"] = value
                    break
    if "date" in keys:
        for pat in _DATE:
            m = re.search(pat, text)
            if m:
                found["date"] = m.group(1)
                break
    return found


# -- the real model -------------------------------------------------------------------------
class TrOcrModels:
    """Lazily loads ``TrOCRProcessor`` + ``VisionEncoderDecoderModel`` per model name.  A model
    that fails to load is not tried again: its error is kept and every job for it is answered
    ``503 ... model failed to load`` (as the other workers of deploy/ answer), which the client
    reads as the endpoint's verdict and stops the run on (each job tried the load again and
    failed as a retryable 500, every page three times)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def loaded(self) -> list[str]:
        return list(self._cache)

    def failed(self) -> dict[str, str]:
        """Each model that failed to load, and why (its jobs are answered 503)."""
        return dict(self._errors)

    def get(self, name: str) -> tuple[Any, Any]:
        with self._lock:
            if name in self._errors:
                raise ServiceError(self._errors[name], status=503)
            if name not in self._cache:
                try:
                    self._cache[name] = self._load(name)
                except Exception as exc:
                    self._errors[name] = f"TrOCR model failed to load ({name}): {type(exc).__name__}: {exc}"
                    raise ServiceError(self._errors[name], status=503) from exc
            return self._cache[name]

    @staticmethod
    def _load(name: str) -> tuple[Any, Any]:
        import torch
        from transformers import TrOCRProcessor, VisionEncoderDecoderModel

        processor = TrOCRProcessor.from_pretrained(name)
        model = VisionEncoderDecoderModel.from_pretrained(name)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":
            model = model.half()
        return processor, model.to(device).eval()

    def __call__(
        self, name: str, images: list[Image.Image], decoding: dict[str, Any]
    ) -> list[tuple[str, float, int]]:
        processor, model = self.get(name)  # (first: a model that cannot load is its kept 503)
        import torch

        pixel_values = processor(images=images, return_tensors="pt").pixel_values
        pixel_values = pixel_values.to(model.device, dtype=next(model.parameters()).dtype)
        opts = {"max_new_tokens": 128, "num_beams": 1, **decoding}
        # sampling (a retry): the confidence comes from the raw logits, i.e. the model's own
        # probability of each token, not the temperature- / top-p-warped one it sampled from
        raw = bool(opts.get("do_sample")) and opts["num_beams"] == 1
        with torch.inference_mode():
            out = model.generate(
                pixel_values,
                output_scores=True,
                return_dict_in_generate=True,
                **({"output_logits": True} if raw else {}),
                **opts,
            )
            logits = getattr(out, "logits", None) if raw else None
            scores = model.compute_transition_scores(
                out.sequences,
                logits if logits is not None else out.scores,
                getattr(out, "beam_indices", None),
                normalize_logits=opts["num_beams"] == 1,
            )
        texts = processor.batch_decode(out.sequences, skip_special_tokens=True)
        pad = model.generation_config.pad_token_id
        results = []
        for i, text in enumerate(texts):
            row = scores[i]  # one log-probability per generated step
            gen_tokens = out.sequences[i, 1 : 1 + row.shape[0]]  # position 0 is the start token
            keep = torch.isfinite(row)
            if pad is not None:
                keep = keep & (gen_tokens != pad)
            n = int(keep.sum().item())
            total = float(row[keep].sum().item()) if n else 0.0
            results.append((text.strip(), total, n))
        return results


def standin_recognizer(
    name: str, images: list[Image.Image], decoding: dict[str, Any]
) -> list[tuple[str, float, int]]:
    """CPU stand-in: 'line <w>x<h>' per crop, probability 0.9 per token."""
    out = []
    for im in images:
        text = f"line {im.width}x{im.height}"
        n = len(text.split())
        out.append((text, n * math.log(0.9), n))
    return out


def _describe(exc: ValidationError) -> str:
    """One line for a refused body; unknown decoding options are named as such."""
    unknown = [
        str(err["loc"][-1])
        for err in exc.errors(include_url=False)
        if err.get("type") == "extra_forbidden" and err.get("loc", ())[:1] == ("decoding_options",)
    ]
    if unknown:
        return f"unsupported decoding_options: {', '.join(sorted(unknown))}"
    return f"invalid request: {first_error(exc)}"


# -- the service ----------------------------------------------------------------------------
class OcrService:
    """Routes requests of the ocular contract to a recognizer (see the module docstring).

    Example::

        svc = OcrService(recognizer=standin_recognizer)
        await svc.route("/health", {})
    """

    ROUTES = ("/health", *ROUTES)

    def __init__(self, recognizer: Recognizer | None = None) -> None:
        self._models: TrOcrModels | None = None
        if recognizer is None and os.environ.get("TROCR_STANDIN", "").strip() in (
            "1",
            "true",
            "echo",
        ):
            recognizer = standin_recognizer
        if recognizer is None:
            self._models = TrOcrModels()
            recognizer = self._models
        self.recognizer = recognizer
        self.allowed = {
            m.strip()
            for m in os.environ.get("TROCR_ALLOWED_MODELS", DEFAULT_ALLOWED).split(",")
            if m.strip()
        }
        self.default_model = os.environ.get("TROCR_MODEL", "").strip() or DEFAULT_MODEL
        self.allowed.add(self.default_model)
        self._run_lock = threading.Lock()  # one model call at a time on the GPU

    def preload(self) -> None:
        """Load ``PRELOAD_MODELS`` (comma list, default: the default model) now."""
        if self._models is None:
            return
        for name in os.environ.get("PRELOAD_MODELS", self.default_model).split(","):
            if name.strip():
                self._models.get(name.strip())

    def health(self) -> dict[str, Any]:
        gpu, memory = False, {}
        try:
            import torch

            gpu = bool(torch.cuda.is_available())
            if gpu:
                memory = {
                    "allocated": torch.cuda.memory_allocated(),
                    "reserved": torch.cuda.memory_reserved(),
                }
        except ImportError:
            pass
        loaded = self._models.loaded() if self._models else ["stand-in"]
        return {
            "status": "healthy",
            "models_loaded": loaded,
            # what a job may name (loaded on first use) and what failed to load (its jobs: 503)
            "models_allowed": sorted(self.allowed),
            "models_failed": self._models.failed() if self._models else {},
            "gpu_available": gpu,
            "memory_info": memory,
        }

    def _model_name(self, req: OcrRequest) -> str:
        name = (req.model_name or self.default_model).strip()
        if name not in self.allowed:
            raise ServiceError(
                f"model_name {name!r} is not allowed on this server (TROCR_ALLOWED_MODELS)"
            )
        return name

    @staticmethod
    def _decoding(opts: DecodingOptions, base: dict[str, Any]) -> dict[str, Any]:
        """``generate()`` arguments: ``base`` (the route's defaults) overlaid with ``opts``."""
        merged = {**base, **opts.generate_kwargs()}
        limit = merged.pop("max_length", None)
        if limit is not None and "max_new_tokens" not in merged:
            merged["max_new_tokens"] = limit
        return merged

    def _recognize_variant(
        self, name: str, image: Image.Image, segment: bool, decoding: dict[str, Any]
    ) -> tuple[str, float, int]:
        lines = segment_lines(image) if segment else [image]
        with self._run_lock:
            results = self.recognizer(name, lines, decoding)
        if len(results) != len(lines):
            raise RuntimeError(f"recognizer returned {len(results)} results for {len(lines)} lines")
        text = "\n".join(t for t, _, _ in results if t)
        total = sum(lp for _, lp, _ in results)
        tokens = sum(n for _, _, n in results)
        confidence = math.exp(total / tokens) if tokens else 0.0
        return text, confidence, len(lines)

    def _extract(self, req: OcrRequest, *, robust: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        name = self._model_name(req)
        image = decode_image(req.image)
        if robust:
            decoding = self._decoding(
                req.decoding_options, {"num_beams": 4, "repetition_penalty": 1.2}
            )
            count = max(req.ensemble_size, 3)
        else:
            decoding = self._decoding(req.decoding_options, {"num_beams": 1})
            count = req.ensemble_size if req.use_preprocessing else 1
        variants = make_variants(image, count)
        results, lines = [], 0
        for variant in variants:
            text, conf, lines = self._recognize_variant(name, variant, req.segment_lines, decoding)
            results.append((text, conf))
        text, conf, method = pick_result(results)
        return {
            "text": text,
            "confidence": round(conf, 6),
            "language": "en",
            "processing_time": round(time.perf_counter() - t0, 4),
            "metadata": {
                "model_name": name,
                "variants_processed": len(variants),
                "lines": lines,
                "ensemble_method": method,
                "preprocessing_enabled": bool(req.use_preprocessing or robust),
                "robust_processing": robust,
            },
        }

    def _structured(self, req: StructuredRequest, *, robust: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        ocr = self._extract(req, robust=robust)
        data = extract_fields(ocr["text"], req.schema_)
        return {
            "structured_data": data,
            "confidence": ocr["confidence"],
            "processing_time": round(time.perf_counter() - t0, 4),
            "metadata": {
                **ocr["metadata"],
                "source_text": ocr["text"],
                "extraction_method": "regex_patterns",
                "schema_keys": list(req.schema_),
            },
        }

    def route_sync(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """Serve one request synchronously (blocking: call it from a thread)."""
        if route == "/health":
            return self.health()
        if route not in self.ROUTES:
            raise ServiceError(f"unknown route {route!r}; use one of {', '.join(self.ROUTES)}", 404)
        if not isinstance(body, dict):
            raise ServiceError("request body must be a JSON object")
        try:
            if route.startswith("/extract_structured"):
                return self._structured(
                    StructuredRequest.model_validate(body), robust=route.endswith("_robust")
                )
            return self._extract(OcrRequest.model_validate(body), robust=route.endswith("_robust"))
        except ValidationError as exc:
            raise ServiceError(_describe(exc)) from exc

    async def route(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """Serve one request without blocking the event loop (model calls run in a thread)."""
        return await asyncio.to_thread(self.route_sync, route, body)
