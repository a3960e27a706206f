"""The "ocular" contract of the TrOCR service (``deploy/runpod-trocr``; OLM / RoLM seed).

``POST /extract_text`` (or ``/extract_text_robust``, ``/extract_structured``,
``/extract_structured_robust``) takes an :class:`OcularRequest`; over RunPod the job input is
``{"route": <route>, **body}``.  The TrOCR dialect builds its body from these models and the
service validates with them, so a key one side adds is a key the other side knows.

``decoding_options`` (:class:`DecodingOptions`) is strict: its keys become keyword arguments of
transformers' ``generate()``, so anything not declared here is refused rather than passed on.
The body itself is lenient (undeclared keys are ignored, as the seed's FastAPI app did).

Example::

    >>> body = OcularRequest(image="aGk=", decoding_options=DecodingOptions(num_beams=4))
    >>> body.model_dump(exclude_unset=True)
    {'image': 'aGk=', 'decoding_options': {'num_beams': 4}}
    >>> DecodingOptions(do_sample=True, temperature=0.3).generate_kwargs()
    {'do_sample': True, 'temperature': 0.3}
    >>> DecodingOptions(num_beams=4, do_sample=False, temperature=0.0).generate_kwargs()  # the seed's defaults
    {'num_beams': 4, 'do_sample': False}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ._base import Lenient, Strict

__all__ = [
    "HEALTH_ROUTE",
    "ROUTES",
    "DecodingOptions",
    "OcularRequest",
    "StructuredRequest",
]

HEALTH_ROUTE = "/health"
#: the routes that take an image
ROUTES = (
    "/extract_text",
    "/extract_text_robust",
    "/extract_structured",
    "/extract_structured_robust",
)


class DecodingOptions(Strict):
    """``generate()`` arguments a caller may set (beam search, or sampling on retries)."""

    num_beams: int | None = Field(default=None, ge=1, le=16, strict=True)
    #: the seed's name for the length cap; the service maps it to ``max_new_tokens``
    max_length: int | None = Field(default=None, ge=1, le=1024, strict=True)
    max_new_tokens: int | None = Field(default=None, ge=1, le=1024, strict=True)
    repetition_penalty: float | None = Field(default=None, gt=0, le=10)
    length_penalty: float | None = Field(default=None, ge=-10, le=10)
    no_repeat_ngram_size: int | None = Field(default=None, ge=0, le=64, strict=True)
    early_stopping: bool | Literal["never"] | None = None
    do_sample: bool | None = Field(default=None, strict=True)
    #: 0 only without sampling: the seed's greedy defaults send ``"temperature": 0.0`` beside
    #: ``"do_sample": false`` (a sampled reply needs one above 0)
    temperature: float | None = Field(default=None, ge=0, le=5)
    top_k: int | None = Field(default=None, ge=0, le=1000, strict=True)
    top_p: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _sampling_is_warm(self) -> DecodingOptions:
        if self.do_sample and self.temperature == 0:
            raise ValueError("temperature must be above 0 when do_sample is true")
        return self

    def generate_kwargs(self) -> dict[str, Any]:
        """The options that were given, as ``generate()`` keyword arguments; without
        ``do_sample`` the sampling ones (``temperature``, ``top_k``, ``top_p``) are left out:
        beam search or greedy decoding reads none of them."""
        kwargs = self.model_dump(exclude_none=True)
        if not self.do_sample:
            for name in ("temperature", "top_k", "top_p"):
                kwargs.pop(name, None)
        return kwargs


class OcularRequest(Lenient):
    """Body of ``/extract_text`` and ``/extract_text_robust``."""

    image: str = Field(description="base64 image (PNG/JPEG/...), optionally a data URL")
    model_name: str | None = None
    prompt: str | None = Field(
        default=None, description="accepted for compatibility; TrOCR has no prompt"
    )
    use_preprocessing: bool = False
    ensemble_size: int = Field(default=1, ge=1, le=5)
    robust_processing: bool = False
    segment_lines: bool = True
    decoding_options: DecodingOptions = Field(default_factory=DecodingOptions)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _null_is_the_default(cls, data: Any) -> Any:
        """A field sent as ``null`` takes its default: the contract declares every one of them
        ``Optional`` (``"decoding_options": null`` was a 400)."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in ("image", "schema")}
        return data


class StructuredRequest(OcularRequest):
    """Body of ``/extract_structured``: ``schema`` names the fields wanted."""

    schema_: dict[str, Any] = Field(alias="schema")
    extraction_type: str = "structured"
