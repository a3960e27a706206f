"""A vision model that answers a page in markdown, in capitals."""

from __future__ import annotations

from typing import Any

from ocrclient.dialects.base import ChatDialect
from ocrclient.dialects.parsing import markdown_blocks
from ocrclient.dialects.request_parts import image_part, text_part
from ocrclient.geometry import CoordSpace
from ocrclient.imaging import EncodedImage, RenderSpec
from ocrclient.models import ModelReply, ModelRequest, PageContent


class ShoutDialect(ChatDialect):
    name = "shout"
    DEFAULT_RENDER = RenderSpec(dpi=100)
    DEFAULT_MODEL = "acme/shout-ocr"
    DEFAULT_MAX_TOKENS = 2048

    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        return [image_part(image), text_part("Transcribe this page as markdown.")]

    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        md = text.strip().upper()
        return PageContent(markdown=md, blocks=markdown_blocks(md), space=CoordSpace.unit())
