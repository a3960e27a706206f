"""Old home of the dialect helpers, kept so existing imports keep working.

The pieces now live in modules named for them: :mod:`.base` (``ModelDialect``, ``ChatDialect``),
:mod:`.sampling` (ladders), :mod:`.request_parts` (chat bodies, images), :mod:`.reply_checks`
(empty, repetition, truncation) and :mod:`.parsing` (labels, boxes, markdown blocks).
"""

from __future__ import annotations

from .base import ChatDialect, ModelDialect
from .parsing import block_type, heading_text, markdown_blocks, parse_box
from .reply_checks import (
    BLOCK_TEXT_SLACK,
    bound_blocks,
    check_reply,
    detect_repetition,
    finish,
    trim_repetition,
)
from .request_parts import chat_body, image_part, require_image, rotate_encoded, text_part
from .sampling import _PASS_THROUGH as _PASS_THROUGH  # read by tests/deploy
from .sampling import DEFAULT_LADDER, ladder_value, sampling

__all__ = [
    "BLOCK_TEXT_SLACK",
    "DEFAULT_LADDER",
    "ChatDialect",
    "ModelDialect",
    "block_type",
    "bound_blocks",
    "chat_body",
    "check_reply",
    "detect_repetition",
    "finish",
    "heading_text",
    "image_part",
    "ladder_value",
    "markdown_blocks",
    "parse_box",
    "require_image",
    "rotate_encoded",
    "sampling",
    "text_part",
    "trim_repetition",
]
