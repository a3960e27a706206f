"""olmOCR-2 (Allen AI) — YAML front matter + markdown, with a rotation check.

Facts, and where they were checked:

* Prompt: ``build_no_anchoring_v4_yaml_prompt()`` — "Attached is one page of a document that you
  must process. ..." asking for markdown with a front matter section giving
  ``primary_language``, ``is_rotation_valid``, ``rotation_correction``, ``is_table`` and
  ``is_diagram`` (``olmocr/prompts/prompts.py``, seen in a fork of ``allenai/olmocr``:
  ``Backdrop9019/olmocr``; ``allenai/olmocr`` ``olmocr/pipeline.py`` imports and sends it).
  The text part comes *before* the image part (``pipeline.py`` ``build_page_query``).
* Sampling: ``max_tokens=8000``, temperature by attempt ``[0.1, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9,
  1.0]`` (``pipeline.py`` ``TEMPERATURE_BY_ATTEMPT``).  A reply whose ``finish_reason`` is not
  ``stop`` is rejected (same function); an unknown finish reason (``None``, a transport that
  cannot tell) is accepted.
* Rotation: when ``is_rotation_valid`` is false the pipeline adds ``rotation_correction`` to a
  cumulative rotation and re-renders the page rotated with PIL's ``Image.Transpose.ROTATE_90`` /
  ``ROTATE_180`` / ``ROTATE_270`` for 90 / 180 / 270 — PIL's transposes turn
  *counter-clockwise*, although the JSON schema describes the value as "degree of clockwise
  rotation needed".  We follow the pipeline (what the model was trained and evaluated with): a
  cumulative olmOCR rotation ``r`` is a clockwise rotation of ``(360 - r) % 360`` in
  :class:`~ocrclient.geometry.Frame` terms.  The pipeline accepts the reply on its last attempt
  whatever it says; so do we (with a warning).
* Render: longest side 1288 px (``--target_longest_image_dim`` default 1288).
* Real replies in ``olmocr-bench-sample/olmocr_pipeline/`` are the pipeline's markdown output:
  front matter already stripped.  Both shapes parse; a reply without front matter is taken as
  the page text.

Figures are written as ``![alt](page_startx_starty_width_height.png)``; the numbers in the name are
not documented as a coordinate space, so figure blocks carry no box.

Example::

    >>> d = OlmOCRDialect(model="allenai/olmOCR-2-7B-1025-FP8")
    >>> d.render.longest_side
    1288
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from ..config import BackendConfig
from ..errors import BadOutputError
from ..geometry import CoordSpace, Frame
from ..imaging import EncodedImage, RenderSpec
from ..models import ModelReply, ModelRequest, PageContent
from .base import ChatDialect
from .parsing import markdown_blocks
from .request_parts import image_part, require_image, rotate_encoded, text_part

__all__ = ["PROMPT_V4", "OlmOCRDialect", "parse_front_matter"]

PROMPT_V4 = (
    "Attached is one page of a document that you must process. "
    "Just return the plain text representation of this document as if you were reading it naturally. "
    "Convert equations to LateX and tables to HTML.\n"
    "If there are any figures or charts, label them with the following markdown syntax "
    "![Alt text describing the contents of the figure](page_startx_starty_width_height.png)\n"
    "Return your output as markdown, with a front matter section on top specifying values for the "
    "primary_language, is_rotation_valid, rotation_correction, is_table, and is_diagram parameters."
)

_FM_KEYS = ("primary_language", "is_rotation_valid", "rotation_correction", "is_table", "is_diagram")
#: a ``key: value`` line: where front matter that is never closed by ``---`` ends
_KV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*:")


def _load_yaml(block: str, warnings: list[str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(block) if block.strip() else {}
    except yaml.YAMLError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        warnings.append(f"front matter is not valid YAML ({first}); read line by line")
        return {k: v for line in block.splitlines() for k, v in _load_line(line).items()}
    if not isinstance(data, dict):
        warnings.append("front matter is not a mapping of keys to values")
        return {}
    return {str(k): v for k, v in data.items()}


def _load_line(line: str) -> dict[str, Any]:
    """One ``key: value`` line of broken front matter: its YAML value, else the text as said."""
    key, _, raw = line.partition(":")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw.strip()
    return {key.strip(): value} if key.strip() else {}


def parse_front_matter(text: str) -> tuple[dict[str, Any] | None, str, list[str]]:
    """Split ``---`` front matter (YAML, read with ``yaml.safe_load``) from the body:
    ``(front_matter or None, body, warnings)``.  The front matter ends at its closing ``---``, or
    (never closed) where the text starts: the first line that is not ``key: value``."""
    warnings: list[str] = []
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped.startswith("---"):
        return None, text.strip(), warnings
    lines = stripped.split("\n")
    end = next((i for i, ln in enumerate(lines[1:], start=1) if ln.strip() == "---" or (ln.strip() and not _KV.match(ln.strip()))), None)
    meta = _load_yaml("\n".join(lines[1:end]), warnings)
    if end is None:
        warnings.append("front matter is not closed by '---'")
        return meta, "", warnings
    closed = lines[end].strip() == "---"
    if not closed:
        warnings.append("front matter is not closed by '---'")
    body = "\n".join(lines[end + 1 if closed else end :]).strip()
    if body.lower() == "null":
        body = ""
    missing = [k for k in _FM_KEYS if k not in meta]
    if missing:
        warnings.append("front matter lacks " + ", ".join(missing))
    return meta, body, warnings


class OlmOCRDialect(ChatDialect):
    """olmOCR-2 over an OpenAI-compatible server, v4 YAML prompt, rotation retries.

    Example::

        >>> d = OlmOCRDialect(model="allenai/olmOCR-2-7B-1025-FP8")
        >>> d.DEFAULT_MAX_TOKENS
        8000
    """

    name = "olmocr"
    OPTIONS: Mapping[str, Any] = {"prompt": None}
    DEFAULT_RENDER = RenderSpec(dpi=None, longest_side=1288)
    DEFAULT_MODEL = "allenai/olmOCR-2-7B-1025-FP8"
    DEFAULT_MAX_TOKENS = 8000
    DEFAULT_LADDER = (0.1, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9, 1.0)
    STRICT_STOP = True

    def __init__(self, *, max_attempts: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt = str(self.options.get("prompt") or PROMPT_V4)
        self.max_attempts = max_attempts
        self.space = CoordSpace.unit()

    @classmethod
    def config_kwargs(cls, cfg: BackendConfig) -> dict[str, Any]:
        return {"max_attempts": cfg.max_attempts}

    # olmOCR rotation (counter-clockwise, pipeline convention) -> our clockwise Frame rotation
    # (and back: the conversion is its own inverse)
    @staticmethod
    def clockwise(olm_rotation: int) -> int:
        return (360 - olm_rotation % 360) % 360

    @staticmethod
    def rotation_for(attempt: Any) -> int:
        """The cumulative olmOCR rotation to send at ``attempt``: the previous error's
        ``olmocr_rotation`` hint; else its ``rotate`` hint on top of what the previous attempt
        sent; else what the previous attempt sent (so a page turned upright stays turned when a
        timeout or a truncation comes between).  The first attempt sends the page as it is."""
        hint = getattr(attempt, "hint", {}) or {}
        number = int(getattr(attempt, "number", 1) or 1)
        previous_context = getattr(attempt, "previous_context", None) or {}
        previous = _int(previous_context.get("olmocr_rotation", 0)) if number > 1 else 0
        if "olmocr_rotation" in hint:
            cumulative = hint["olmocr_rotation"]
        elif "rotate" in hint:
            cumulative = _int(hint["rotate"]) + previous
        else:
            cumulative = previous
        cumulative = _int(cumulative) % 360
        return 0 if cumulative % 90 else cumulative

    def prepare(self, page: Any, attempt: Any) -> tuple[EncodedImage, Frame]:
        return rotate_encoded(require_image(page), self.clockwise(self.rotation_for(attempt)), self.render)

    def build(self, page: Any, attempt: Any) -> ModelRequest:
        request = super().build(page, attempt)
        assert request.frame is not None
        # what parse needs to judge the reply: the rotation it was read at, and how many tries
        # are left
        request.context.update(
            olmocr_rotation=self.clockwise(request.frame.rotation),
            attempt=int(getattr(attempt, "number", 1) or 1),
        )
        return request

    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        return [text_part(self.prompt), image_part(image)]

    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        number = _int(request.context.get("attempt", 1)) or 1
        sent_rotation = _int(request.context.get("olmocr_rotation", 0))
        meta, body, warnings = parse_front_matter(text)
        content = PageContent(
            markdown=body,
            blocks=markdown_blocks(body),
            space=CoordSpace.unit(),
            warnings=warnings,
            meta={"front_matter": meta is not None, **(meta or {}), "rotation_sent": sent_rotation},
        )
        if meta is not None and meta.get("is_rotation_valid") is False:
            corr = meta.get("rotation_correction")
            if not isinstance(corr, int) or isinstance(corr, bool) or corr % 90 or corr % 360 == 0:
                content.warnings.append(f"model says rotation is wrong but gives no usable correction ({corr!r})")
            elif number >= self.max_attempts:
                content.warnings.append(f"model asks for a {corr} degree rotation; last attempt, kept as is")
            elif reply.finish_reason in (None, "stop"):
                cumulative = (sent_rotation + corr) % 360
                raise BadOutputError(
                    f"page is not upright; retrying rotated (olmOCR rotation_correction={corr})",
                    cause="rotation",
                    partial=content,
                    hint={"rotate": corr, "olmocr_rotation": cumulative},
                )
        return content


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
