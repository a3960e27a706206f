"""TrOCR behind the OLM/RoLM "Ocular" service contract — one text line in, text + confidence out.

TrOCR (``microsoft/trocr-base-printed``, ``-large-printed``, ...) reads a *single line of text*.
It is not a page OCR model: given a whole page it returns one short guess.  The server in
``deploy/runpod-trocr`` first cuts a page into lines (``segment_lines``, on by default there) and
reads them one by one, which works for clean printed text only; use a page model (olmOCR, Chandra,
LightOnOCR, ...) for real documents.  Output is one text block without a box.

Contract (seed ``olm-rolm-runpod-ocular.md``, its FastAPI ``app.py``): ``POST /extract_text`` (or
``/extract_text_robust``) with JSON ``{"image": <base64>, "model_name", "prompt",
"use_preprocessing", "ensemble_size", "robust_processing", "decoding_options", "options"}`` returns
``{"text", "confidence", "language", "processing_time", "metadata"}``.  Decoding defaults there are
``num_beams=4``, ``max_length=512``, greedy.  The route defaults to
``/extract_text``; the ocular transport puts ``text`` in
``ModelReply.text`` and the other fields in ``ModelReply.data``.  The route is read from
``dialect_options.route`` (the RunPod transport accepts no ``route`` option), else
``transport_options.route``.

The body is built with the service's own request models (:mod:`ocrclient.contracts.ocular`, which
``deploy/runpod-trocr`` validates with), so every key sent is one the service accepts.

Retries: attempt 1 decodes with beam search; later attempts sample (``do_sample``, one beam) at
the temperature ladder's rung, when that rung is above 0.

Example::

    >>> d = TrOCRDialect(model="microsoft/trocr-base-printed")
    >>> d.route
    '/extract_text'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from ..config import BackendConfig
from ..contracts import first_error
from ..contracts.ocular import DecodingOptions, OcularRequest
from ..errors import ConfigError
from ..geometry import CoordSpace, Frame
from ..imaging import RenderSpec
from ..models import ModelReply, ModelRequest, PageContent, RawBlock
from .base import ModelDialect
from .reply_checks import check_reply, finish
from .request_parts import require_image
from .sampling import DEFAULT_LADDER, check_sampling, ladder_value

__all__ = ["TrOCRDialect"]


#: the routes whose reply this dialect reads (text; the structured ones answer fields it does not)
TEXT_ROUTES = ("/extract_text", "/extract_text_robust")


class TrOCRDialect(ModelDialect):
    """The Ocular ``/extract_text`` contract (TrOCR and friends).

    Example::

        >>> TrOCRDialect(model="microsoft/trocr-base-printed").space.label
        'grid:1'
    """

    name = "trocr"
    SENDS = "ocular"
    OPTIONS: Mapping[str, Any] = {"route": "/extract_text", "use_preprocessing": False, "ensemble_size": 1,
                                  "segment_lines": None, "prompt": None}  # fmt: skip
    DEFAULT_RENDER = RenderSpec(dpi=150.0, longest_side=2048)
    DEFAULT_MODEL = "microsoft/trocr-base-printed"

    def __init__(self, *, route: str = "/extract_text", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.route = route
        self.space = CoordSpace.unit()
        check_sampling(self.sampling_cfg, self.name, known=("max_tokens", "num_beams", "temperature_ladder"))
        ladder = self.sampling_cfg.get("temperature_ladder", list(DEFAULT_LADDER))
        try:
            self.ladder = [float(v) for v in ladder]
            for number in range(1, len(self.ladder) + 2):  # every rung, and past the last one
                DecodingOptions.model_validate(self.decoding(number))
        except (TypeError, ValueError) as exc:  # ValidationError is a ValueError
            detail = first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ConfigError(f"trocr: [sampling] asks for decoding the service refuses ({detail})") from exc
        # the options, judged now as the service will judge every request (an ensemble_size of 6
        # failed every page with pydantic's text; "maybe" was taken for true)
        if route not in TEXT_ROUTES:
            raise ConfigError(f"trocr: route {route!r} is not one this dialect reads; use one of {', '.join(TEXT_ROUTES)}")
        try:
            self._fields(b"", 1)
        except ValidationError as exc:
            raise ConfigError(f"trocr: [dialect_options] the service refuses ({first_error(exc)})") from exc

    @classmethod
    def config_kwargs(cls, cfg: BackendConfig) -> dict[str, Any]:
        route = cfg.dialect_options.get("route") or cfg.transport_options.get("route") or "/extract_text"
        return {"route": str(route)}

    def decoding(self, attempt: int) -> dict[str, Any]:
        """``decoding_options`` for a 1-based attempt: beam search first, then sampling at the
        temperature ladder's rung (when that rung is above 0)."""
        out: dict[str, Any] = {
            "max_length": int(self.sampling_cfg.get("max_tokens", 512)),
            "num_beams": int(self.sampling_cfg.get("num_beams", 4)),
        }
        temperature = ladder_value(self.ladder, attempt)
        if attempt > 1 and temperature > 0:
            out.update({"do_sample": True, "temperature": temperature, "num_beams": 1})
        return out

    def _fields(self, image: Any, number: int) -> dict[str, Any]:
        """The request body for ``image`` at attempt ``number``, validated (raises
        ValidationError for options the service refuses)."""
        fields: dict[str, Any] = {
            "image": image if isinstance(image, str) else "",
            "model_name": self.model,
            "use_preprocessing": self.options.get("use_preprocessing", False),
            "ensemble_size": self.options.get("ensemble_size", 1),
            "decoding_options": self.decoding(number),
        }
        if self.options.get("segment_lines") is not None:
            fields["segment_lines"] = self.options["segment_lines"]
        if self.options.get("prompt"):
            fields["prompt"] = str(self.options["prompt"])
        return OcularRequest.model_validate(fields, strict=False).model_dump(exclude_unset=True)

    def build(self, page: Any, attempt: Any) -> ModelRequest:
        number = int(getattr(attempt, "number", 1) or 1)
        enc = require_image(page)
        body = self._fields(enc.b64(), number)
        return ModelRequest(
            body=body,
            kind="ocular",
            route=self.route,
            frame=Frame(enc.width, enc.height, 0),
            page_image=page,
        )

    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent:
        text = check_reply(reply).strip()
        warnings: list[str] = []
        raw = (reply.data or {}).get("confidence") if isinstance(reply.data, dict) else None
        confidence: float | None = None
        if raw is not None:
            try:
                confidence = float(raw)
            except (TypeError, ValueError):
                warnings.append(f"confidence is not a number: {str(raw)[:30]!r}")
            else:
                if not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
                    warnings.append(f"confidence {confidence!r} outside 0..1; dropped")
                    confidence = None
        content = PageContent(
            markdown=text,
            blocks=[RawBlock(type="text", text=text, confidence=confidence, label="trocr")],
            space=CoordSpace.unit(),
            warnings=warnings,
            meta={k: v for k, v in (reply.data or {}).items() if k in ("language", "processing_time")},
        )
        return finish(content, reply)
