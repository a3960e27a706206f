"""The ``input`` of a RunPod job, for each kind of worker the client sends jobs to.

The RunPod transport wraps a request as ``{"input": <job input>, "policy": {...}}``:

* :class:`VllmWorkerInput` -- RunPod's official vLLM worker (``runpod/worker-v1-vllm``, the
  ``runpod-olmocr`` / ``runpod-rolmocr`` endpoints): ``{"openai_route", "openai_input"}``; the
  worker sends ``openai_input`` to the vLLM OpenAI server inside it, so it is a
  :class:`~ocrclient.contracts.chat.VllmChatRequest`.  The worker's native form (``messages`` /
  ``prompt`` / ``sampling_params``) is not modelled: the client never sends it.  Other keys are
  ignored by the worker.
* :class:`WorkerJobInput` -- our own workers (``deploy/ocrworker``): the same OpenAI form, or a
  small batch ``{"pages": [<openai_input>, ...]}``; each request is a
  :class:`~ocrclient.contracts.chat.WorkerChatRequest`.
* :class:`DocumentJobInput` -- the DeepSeek-OCR worker's whole-PDF contract (``--document-mode``).
* ``{"route": <route>, **body}`` -- the TrOCR worker (see :mod:`ocrclient.contracts.ocular`).

Example::

    >>> DocumentJobInput(pdf_base64="JVBERi0=", prompt="<image>\\nFree OCR.").model_dump(exclude_none=True)
    {'pdf_base64': 'JVBERi0=', 'prompt': '<image>\\nFree OCR.'}
    >>> DocumentJobInput(prompt="x")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DocumentJobInput
      Value error, give exactly one of pdf_url, pdf_path, pdf_base64 ...
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ._base import Lenient
from .chat import VllmChatRequest, WorkerChatRequest

__all__ = [
    "CHAT_ROUTE",
    "MODELS_ROUTE",
    "PDF_KEYS",
    "DocumentJobInput",
    "VllmWorkerInput",
    "WorkerJobInput",
]

CHAT_ROUTE = "/v1/chat/completions"
MODELS_ROUTE = "/v1/models"
#: the whole-PDF job's sources (exactly one is given)
PDF_KEYS = ("pdf_url", "pdf_path", "pdf_base64")


class VllmWorkerInput(Lenient):
    """Job input of RunPod's official vLLM worker, OpenAI form (the routes the client uses)."""

    openai_route: Literal["/v1/chat/completions", "/v1/models"]
    openai_input: VllmChatRequest | None = None

    @model_validator(mode="after")
    def _chat_needs_input(self) -> VllmWorkerInput:
        if self.openai_route == CHAT_ROUTE and self.openai_input is None:
            raise ValueError(f"openai_route {CHAT_ROUTE} needs openai_input")
        return self


class WorkerJobInput(Lenient):
    """Job input of our workers: ``openai_route`` + ``openai_input``, or ``pages``."""

    openai_route: Literal["/v1/chat/completions", "/v1/models"] | None = None
    openai_input: WorkerChatRequest | None = None
    pages: list[WorkerChatRequest] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> WorkerJobInput:
        if self.pages is not None:
            if self.openai_route is not None or self.openai_input is not None:
                raise ValueError("give pages, or openai_route + openai_input, not both")
        elif self.openai_route is None:
            raise ValueError("input needs openai_route + openai_input, or pages")
        elif self.openai_route == CHAT_ROUTE and self.openai_input is None:
            raise ValueError(f"openai_route {CHAT_ROUTE} needs openai_input")
        return self


class DocumentJobInput(Lenient):
    """The DeepSeek-OCR worker's whole-PDF job: exactly one PDF source, an optional prompt.

    ``pdf_path`` and ``output_dir`` are paths on the worker (under its allowed roots);
    ``pdf_url`` is fetched under the worker's SSRF guard.
    """

    pdf_base64: str | None = None
    pdf_url: str | None = None
    pdf_path: str | None = None
    prompt: str | None = None
    output_dir: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DocumentJobInput:
        given = [k for k in PDF_KEYS if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of pdf_url, pdf_path, pdf_base64")
        return self

    @property
    def source(self) -> tuple[str, Any]:
        """``(key, value)`` of the one PDF source given."""
        key = next(k for k in PDF_KEYS if getattr(self, k))
        return key, getattr(self, key)
