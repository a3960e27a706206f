"""OpenAI ``/v1/chat/completions`` requests, as the chat servers behind ocrclient accept them.

Every vLLM-served backend gets the same request from its dialect; three kinds of server read it:

* vLLM's OpenAI server -- ``vllm serve`` on the LightOnOCR pod and in the Modal app (vLLM 0.15.0,
  ``deploy/runpod-pod-lightonocr2/setup.sh``, ``deploy/modal-lightonocr/app.py``), and inside RunPod's
  official vLLM worker, which hands ``openai_input`` to that server: :class:`VllmChatRequest`;
* our own RunPod workers (``deploy/ocrworker``: Chandra, DeepSeek-OCR): :class:`WorkerChatRequest`,
  the subset of the same fields that they implement (``ocrworker.envelope`` validates with it).

:class:`VllmChatRequest` mirrors vLLM's ``ChatCompletionRequest`` (module
``vllm.entrypoints.openai...protocol``): the same names, types and defaults, for the fields of the
OpenAI block and the vLLM sampling / extra-params blocks that existed from vLLM 0.11 through 0.23
(the releases ``deploy/`` pins: 0.15.0 for ``vllm serve``, 0.23.0 for our worker images).  It is
a subset on purpose: a field not listed here fails the contract test until someone checked it
against the pinned releases.  ``vllm_xargs`` takes lists as values since the DeepSeek-OCR support
(vLLM 0.11), which the n-gram guard's ``whitelist_token_ids`` needs.  Message content is modelled
for the two part types the client sends (``text``, ``image_url``).

vLLM's request model is ``extra="allow"``: an unknown key is accepted and silently ignored (only
logged), and so is one our workers do not implement.  Both models here are therefore lenient, and
:func:`~ocrclient.contracts.unknown_fields` lists what a server would ignore -- the contract test
requires that list to be empty for every request the client builds.

Example::

    >>> from ocrclient.contracts import unknown_fields
    >>> body = {"model": "m", "max_tokens": 10, "temperature": 0.2, "colour": "red",
    ...         "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    >>> unknown_fields(VllmChatRequest.model_validate(body))
    ['colour']
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ._base import Lenient
from .sampling import SAMPLING_KEYS

__all__ = [
    "SAMPLING_KEYS",
    "ChatMessage",
    "ImagePart",
    "TextPart",
    "VllmChatRequest",
    "WorkerChatRequest",
]


class TextPart(Lenient):
    type: Literal["text"]
    text: str


class ImageURL(Lenient):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(Lenient):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class _ChatCore(Lenient):
    """The fields both kinds of chat server implement (names, types and defaults as vLLM's)."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = 1
    stream: bool | None = False
    #: accepted and ignored by vLLM too
    user: str | None = None
    # -- sampling (SAMPLING_KEYS) ------------------------------------------------------------
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    vllm_xargs: dict[str, str | int | float | list[str | int | float]] | None = None


class StreamOptions(Lenient):
    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class VllmChatRequest(_ChatCore):
    """vLLM's ``ChatCompletionRequest`` (see the module docstring for the releases mirrored)."""

    logprobs: bool | None = False
    top_logprobs: int | None = 0
    logit_bias: dict[str, float] | None = None
    response_format: dict[str, Any] | None = None
    stream_options: StreamOptions | None = None
    use_beam_search: bool = False
    length_penalty: float = 1.0
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: int | None = None
    add_generation_prompt: bool = True
    chat_template_kwargs: dict[str, Any] | None = None
    mm_processor_kwargs: dict[str, Any] | None = None
    priority: int = 0
    request_id: str | None = None

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> VllmChatRequest:
        # vLLM refuses the request the same way (HTTP 400)
        if self.stream_options is not None and not self.stream:
            raise ValueError("Stream options can only be defined when `stream=True`.")
        return self


class WorkerChatRequest(_ChatCore):
    """``openai_input`` of our own RunPod workers (``deploy/ocrworker``).

    The worker also checks what a type cannot say: one ``image_url`` part holding a base64 data
    URL, ``1 <= max_tokens <= OCR_MAX_TOKENS_LIMIT``, ``stream`` false, ``n`` 1.  Undeclared keys are
    ignored (and logged), as vLLM ignores them.
    """
