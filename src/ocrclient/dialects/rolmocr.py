"""RolmOCR (Reducto) — a Qwen2.5-VL-7B fine-tune on olmOCR-mix-0225, plain text prompt.

Facts, and where they were checked:

* Request: image part, then the text ``"Return the plain text representation of this document
  as if you were reading it naturally.\\n"``; ``temperature=0.2``, ``max_tokens=4096``
  (``reducto/RolmOCR`` model card "Usage"; the same call is reproduced in public client code in
  the search index).  No front matter, no metadata inputs (card: "No Metadata inputs").
* Render: longest side 1024 px.  The card does not state a size; 1024 is what the olmOCR-0225
  data RolmOCR was trained on used ("rendered such that the longest dimension is 1024 pixels",
  olmOCR-7B-0225-preview card).
* Reply: plain markdown/text; about 15 % of training pages were rotated (card), so no rotation
  round trip is needed.

Example::

    >>> RolmOCRDialect(model="reducto/RolmOCR").render.longest_side
    1024
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..geometry import CoordSpace
from ..imaging import EncodedImage, RenderSpec
from ..models import ModelReply, ModelRequest, PageContent
from .base import ChatDialect
from .parsing import markdown_blocks
from .request_parts import image_part, text_part

__all__ = ["PROMPT", "RolmOCRDialect"]

PROMPT = "Return the plain text representation of this document as if you were reading it naturally.\n"


class RolmOCRDialect(ChatDialect):
    """RolmOCR over vLLM's OpenAI server.

    Example::

        >>> RolmOCRDialect(model="reducto/RolmOCR").DEFAULT_MAX_TOKENS
        4096
    """

    name = "rolmocr"
    OPTIONS: Mapping[str, Any] = {"prompt": None}
    DEFAULT_RENDER = RenderSpec(dpi=None, longest_side=1024)
    DEFAULT_MODEL = "reducto/RolmOCR"
    DEFAULT_MAX_TOKENS = 4096
    DEFAULT_LADDER = (0.2, 0.3, 0.4, 0.6)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt = str(self.options.get("prompt") or PROMPT)
        self.space = CoordSpace.unit()

    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        return [image_part(image), text_part(self.prompt)]

    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        md = text.strip()
        return PageContent(markdown=md, blocks=markdown_blocks(md), space=CoordSpace.unit())
