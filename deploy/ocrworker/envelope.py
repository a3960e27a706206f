"""The job envelope shared by every RunPod worker in ``deploy/``.

Input (the one of RunPod's official vLLM worker ``runpod/worker-v1-vllm``)::

    {"input": {"openai_route": "/v1/chat/completions",
               "openai_input": {"model": "...", "max_tokens": 4096,
                                "messages": [{"role": "user", "content": [
                                    {"type": "image_url",
                                     "image_url": {"url": "data:image/png;base64,...."}},
                                    {"type": "text", "text": "OCR this page"}]}]}}}

or a small batch of pages (our workers only)::

    {"input": {"pages": [<openai_input>, <openai_input>, ...]}}

Output: a list with one OpenAI chat completion per page, in input order -- the same shape as
the official worker's aggregated stream for a non-streaming request::

    [{"id": "chatcmpl-..", "object": "chat.completion", "model": "..",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "..."},
                   "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
      "timing": {"queue_s": 0.0, "inference_s": 1.2, "total_s": 1.3}}]

Errors: the handler returns ``{"error": "<json string>"}``, which the RunPod SDK turns into a
FAILED job whose ``error`` is that string: ``{"error_type": "invalid_request",
"error_message": "...", "code": 400, "retryable": false}`` (``error_type`` /
``error_message`` are the keys RunPod itself uses for handler exceptions).

The request models are the client's own (``ocrclient.contracts.runpod.WorkerJobInput`` and
``ocrclient.contracts.chat.WorkerChatRequest``; the images copy them to
``/app/ocrclient/contracts``): names and types are checked there, the rest (one image, limits)
here.  Keys the worker does not implement are ignored and logged, as vLLM ignores them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import ValidationError

try:  # the images copy the client's contracts to /app/ocrclient/contracts
    from ocrclient.contracts import first_error, unknown_fields
    from ocrclient.contracts.chat import SAMPLING_KEYS, WorkerChatRequest
    from ocrclient.contracts.runpod import CHAT_ROUTE, MODELS_ROUTE, WorkerJobInput
except ImportError:  # a source checkout without the client installed: use <repo>/src
    sys.path.append(str(Path(__file__).resolve().parents[2] / "src"))
    from ocrclient.contracts import first_error, unknown_fields
    from ocrclient.contracts.chat import SAMPLING_KEYS, WorkerChatRequest
    from ocrclient.contracts.runpod import CHAT_ROUTE, MODELS_ROUTE, WorkerJobInput

__all__ = [
    "ChatPage",
    "Generation",
    "JobError",
    "Limits",
    "ParsedJob",
    "chat_completion",
    "decode_base64",
    "decode_image",
    "error_output",
    "models_list",
    "parse_pages",
]

log = logging.getLogger("ocrworker")

#: sampling keys an engine takes as they are (``vllm.SamplingParams`` keyword arguments)
PLAIN_SAMPLING_KEYS = tuple(
    k for k in SAMPLING_KEYS if k not in ("temperature", "skip_special_tokens", "vllm_xargs")
)


class JobError(Exception):
    """A job that cannot be served; ``code`` follows HTTP (400 bad input, 413 too big, 500 ours).

    Example::

        raise JobError("image is not valid base64", code=400)
    """

    def __init__(self, message: str, *, code: int = 400, error_type: str | None = None) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line
        self.code = code
        self.error_type = error_type or {
            400: "invalid_request",
            404: "not_found",
            413: "payload_too_large",
            503: "model_not_ready",
        }.get(code, "server_error")

    @property
    def retryable(self) -> bool:
        return self.code >= 500


def error_output(err: BaseException) -> dict[str, str]:
    """The handler return value for a failed job: ``{"error": <JSON string>}``."""
    if not isinstance(err, JobError):
        err = JobError(f"{type(err).__name__}: {err}", code=500)
    payload = {
        "error_type": err.error_type,
        "error_message": str(err),
        "code": err.code,
        "retryable": err.retryable,
    }
    return {"error": json.dumps(payload)}


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Limits:
    """Request limits; ``Limits.from_env()`` reads the ``OCR_*`` variables."""

    max_pages: int = 8
    max_image_bytes: int = 15 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    max_tokens_limit: int = 16384
    default_max_tokens: int = 8192

    @classmethod
    def from_env(cls, **defaults: int) -> Limits:
        """The ``OCR_*`` variables; one unset takes ``defaults`` (a worker's own), else the
        class default."""
        d = cls(**defaults)
        return cls(
            max_pages=_env_int("OCR_MAX_PAGES", d.max_pages),
            max_image_bytes=_env_int("OCR_MAX_IMAGE_BYTES", d.max_image_bytes),
            max_image_pixels=_env_int("OCR_MAX_IMAGE_PIXELS", d.max_image_pixels),
            max_tokens_limit=_env_int("OCR_MAX_TOKENS_LIMIT", d.max_tokens_limit),
            default_max_tokens=_env_int("OCR_DEFAULT_MAX_TOKENS", d.default_max_tokens),
        )


@dataclass
class ChatPage:
    """One page to run: the decoded image, the prompt text and the sampling settings."""

    image: Image.Image
    prompt: str
    max_tokens: int
    sampling: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    index: int = 0


@dataclass
class Generation:
    """What the model boundary returns for one page."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class ParsedJob:
    route: str
    pages: list[ChatPage]
    batch: bool = False


def decode_base64(data: str, *, max_bytes: int, what: str = "data") -> bytes:
    """Strict base64 (or base64url) decoding with a size check done before decoding."""
    if not isinstance(data, str) or not data.strip():
        raise JobError(f"{what} is empty or not a string")
    compact = "".join(data.split())
    if len(compact) * 3 // 4 > max_bytes:
        raise JobError(f"{what} is larger than {max_bytes} bytes", code=413)
    try:
        if "-" in compact or "_" in compact:
            raw = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        else:
            raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise JobError(f"{what} is not valid base64") from exc
    if not raw:
        raise JobError(f"{what} decodes to zero bytes")
    return raw


def decode_image(raw: bytes, *, max_pixels: int) -> Image.Image:
    """Open image bytes with pillow, refusing decompression bombs and broken files."""
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise JobError(
                    f"image is {width}x{height} pixels, more than the limit of {max_pixels}",
                    code=413,
                )
            probe.verify()
        img: Image.Image = Image.open(io.BytesIO(raw))
        img.load()
    except JobError:
        raise
    except Exception as exc:  # pillow raises many types for bad data
        raise JobError(f"image cannot be decoded ({type(exc).__name__})") from exc
    if img.mode != "RGB":  # the models take RGB: a grey page (the client sends grey as "L") too
        img = img.convert("RGB")
    return img


def _image_from_url(url: Any, limits: Limits) -> Image.Image:
    if not isinstance(url, str) or not url:
        raise JobError("image_url.url is missing")
    if not url.startswith("data:"):
        raise JobError("image_url must be a base64 data URL (remote URLs are not fetched)")
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise JobError("image_url data URL must be base64 encoded")
    raw = decode_base64(payload, max_bytes=limits.max_image_bytes, what="image")
    return decode_image(raw, max_pixels=limits.max_image_pixels)


def _parse_request(body: Any, limits: Limits, index: int | None) -> ChatPage:
    """One chat request; ``index``: its place in a ``pages`` batch (named in each error, the
    first page's too), ``None`` for a job of one request."""
    where = f"page {index + 1}: " if index is not None else ""
    if not isinstance(body, dict):
        raise JobError(f"{where}openai_input must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise JobError(f"{where}openai_input.messages must be a non-empty list")
    images: list[Image.Image] = []
    texts: list[str] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise JobError(f"{where}each message must be an object")
        content = msg.get("content")
        if isinstance(content, str):
            if msg.get("role", "user") == "user":
                texts.append(content)
            continue
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict):
                raise JobError(f"{where}message content parts must be objects")
            kind = part.get("type")
            if kind == "image_url":
                image_url = part.get("image_url")
                url = image_url.get("url") if isinstance(image_url, dict) else image_url
                try:
                    images.append(_image_from_url(url, limits))
                except JobError as exc:
                    raise JobError(f"{where}{exc}", code=exc.code) from exc
            elif kind == "text":
                if msg.get("role", "user") == "user":
                    texts.append(str(part.get("text", "")))
            else:  # audio/video/file parts could make the engine fetch remote media
                raise JobError(
                    f"{where}unsupported content part type {kind!r} (use text and image_url)"
                )
    if not images:
        raise JobError(f"{where}the request has no image (expected one image_url part)")
    if len(images) > 1:
        raise JobError(f"{where}one image per request, got {len(images)}")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:  # (absent or null: the newer name, as vLLM reads it)
        max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = limits.default_max_tokens
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise JobError(f"{where}max_tokens must be a positive integer")
    if max_tokens > limits.max_tokens_limit:
        raise JobError(
            f"{where}max_tokens {max_tokens} exceeds the limit {limits.max_tokens_limit}"
        )
    if body.get("stream"):
        raise JobError(f"{where}stream=true is not supported by this worker; send stream=false")
    n = body.get("n", 1)
    if n not in (1, None):
        raise JobError(f"{where}n must be 1")
    try:
        request = WorkerChatRequest.model_validate(body)
    except ValidationError as exc:
        raise JobError(f"{where}invalid openai_input: {first_error(exc)}") from exc
    ignored = unknown_fields(request)
    if ignored:
        log.warning(
            "%signoring fields this worker does not implement: %s", where, ", ".join(ignored)
        )
    sampling = {
        k: getattr(request, k)
        for k in SAMPLING_KEYS
        if k in request.model_fields_set and getattr(request, k) is not None
    }
    return ChatPage(
        image=images[0],
        prompt="\n".join(t for t in texts if t),
        max_tokens=max_tokens,
        sampling=sampling,
        messages=messages,
        model=request.model,
        index=index,
    )


def parse_pages(job_input: Any, limits: Limits | None = None) -> ParsedJob:
    """Validate a job's ``input`` and decode its page(s); raises :class:`JobError`."""
    limits = limits or Limits.from_env()
    if not isinstance(job_input, dict):
        raise JobError("job input must be a JSON object")
    if "pages" in job_input:
        pages = job_input["pages"]
        if not isinstance(pages, list) or not pages:
            raise JobError("input.pages must be a non-empty list of chat requests")
        if len(pages) > limits.max_pages:
            raise JobError(
                f"{len(pages)} pages in one job, the limit is {limits.max_pages}", code=413
            )
        parsed = ParsedJob(
            route=CHAT_ROUTE,
            pages=[_parse_request(p, limits, i) for i, p in enumerate(pages)],
            batch=True,
        )
    else:
        route = job_input.get("openai_route")
        if route is None:
            raise JobError("input needs openai_route + openai_input, or pages")
        if route not in (CHAT_ROUTE, MODELS_ROUTE):
            raise JobError(f"unsupported openai_route {route!r} (use {CHAT_ROUTE})", code=404)
        pages_in = [] if route == MODELS_ROUTE else [job_input.get("openai_input")]
        parsed = ParsedJob(route=route, pages=[_parse_request(p, limits, None) for p in pages_in])
    try:  # the job as a whole (each page passed above, so this is about the envelope)
        job = WorkerJobInput.model_validate(job_input)
    except ValidationError as exc:
        raise JobError(f"invalid job input: {first_error(exc)}") from exc
    ignored = [f for f in unknown_fields(job) if not f.startswith(("openai_input.", "pages."))]
    if ignored:
        log.warning(
            "ignoring job input fields this worker does not implement: %s", ", ".join(ignored)
        )
    return parsed


def chat_completion(
    gen: Generation,
    *,
    model: str,
    timing: dict[str, float] | None = None,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object for one page (plus our ``timing``)."""
    out: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": gen.text},
                "logprobs": None,
                "finish_reason": gen.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens,
        },
    }
    if timing is not None:
        out["timing"] = {k: round(v, 4) for k, v in timing.items()}
    return out


def models_list(model: str) -> dict[str, Any]:
    """The ``/v1/models`` answer, as vLLM's OpenAI server gives it."""
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": int(time.time()), "owned_by": "ocrclient"}
        ],
    }
