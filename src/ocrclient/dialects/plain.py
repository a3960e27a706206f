"""Any OpenAI-compatible vision model with a prompt of your choosing — markdown, no boxes.

``dialect_options``: ``prompt`` (the instruction), ``prompt_position`` (``"after"`` the image, the
default, or ``"before"``), ``system`` (an optional system message).  ``model`` is required: an
OpenAI-compatible server (vLLM included) rejects requests for a model it does not serve.

Example::

    >>> d = PlainDialect(model="Qwen/Qwen2.5-VL-7B-Instruct", options={"prompt": "Read it."})
    >>> d.prompt
    'Read it.'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..geometry import CoordSpace
from ..imaging import EncodedImage, RenderSpec
from ..models import ModelReply, ModelRequest, PageContent
from .base import ChatDialect
from .parsing import markdown_blocks
from .request_parts import image_part, text_part

__all__ = ["DEFAULT_PROMPT", "PlainDialect"]

DEFAULT_PROMPT = (
    "Transcribe all the text on this page as markdown, in natural reading order. "
    "Use markdown headings and lists, HTML for tables and LaTeX for math. "
    "Describe figures briefly as ![description](). Output only the page content."
)

_FENCE = re.compile(r"^\s*```(?:markdown|md)?\s*\n(.*?)\n?```\s*$", re.S)


class PlainDialect(ChatDialect):
    """A generic chat VLM: image + prompt in, markdown out.

    Example::

        >>> PlainDialect(model="m").render.dpi
        150.0
    """

    name = "plain"
    OPTIONS: Mapping[str, Any] = {"prompt": None, "prompt_position": "after", "system": None}
    DEFAULT_RENDER = RenderSpec(dpi=150.0, longest_side=2048)
    DEFAULT_MODEL = None
    DEFAULT_MAX_TOKENS = 4096

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt = str(self.options.get("prompt") or DEFAULT_PROMPT)
        position = str(self.options.get("prompt_position", "after"))
        if position not in ("before", "after"):
            raise ConfigError("dialect_options.prompt_position must be 'before' or 'after'")
        self.position = position
        self.system = self.options.get("system")
        self.space = CoordSpace.unit()

    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        if self.position == "before":
            return [text_part(self.prompt), image_part(image)]
        return [image_part(image), text_part(self.prompt)]

    def build(self, page: Any, attempt: Any) -> ModelRequest:
        request: ModelRequest = super().build(page, attempt)
        if self.system:
            request.body["messages"].insert(0, {"role": "system", "content": str(self.system)})
        return request

    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        md = text.strip()
        m = _FENCE.match(md)
        if m:  # chat models like to wrap the page in ```markdown fences
            md = m.group(1).strip()
        return PageContent(markdown=md, blocks=markdown_blocks(md), space=CoordSpace.unit())
