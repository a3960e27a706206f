"""Pieces of a request body: OpenAI chat content parts, the chat body, and the page image to send
(rotated when a dialect asks).

Example::

    >>> from ocrclient.dialects.request_parts import chat_body, text_part
    >>> chat_body("m", [text_part("Read it.")], {"max_tokens": 5}, {"skip_special_tokens": False})
    {'model': 'm', 'messages': [{'role': 'user', 'content': [{'type': 'text', 'text': 'Read it.'}]}], 'skip_special_tokens': False, 'max_tokens': 5}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InputError
from ..geometry import Frame
from ..imaging import EncodedImage, RenderSpec, encode

__all__ = ["chat_body", "image_part", "require_image", "rotate_encoded", "text_part"]


def image_part(encoded: EncodedImage) -> dict[str, Any]:
    """An OpenAI ``image_url`` content part holding the image as a data URL."""
    return {"type": "image_url", "image_url": {"url": encoded.data_url()}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def chat_body(
    model: str,
    content: list[dict[str, Any]],
    sampling_fields: Mapping[str, Any],
    extras: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"model", "messages": [{"role": "user", "content": [...]}], sampling..., extras...}``.

    ``extras`` are vLLM fields placed at the top level of the body (``skip_special_tokens``,
    ``vllm_xargs``, ...); values already in ``sampling_fields`` (from the profile) win.
    """
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    for key, value in (extras or {}).items():
        body[key] = value
    for key, value in sampling_fields.items():
        if key == "vllm_xargs" and isinstance(body.get(key), dict) and isinstance(value, dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


def rotate_encoded(encoded: EncodedImage, clockwise: int, spec: RenderSpec) -> tuple[EncodedImage, Frame]:
    """Rotate an encoded page image clockwise by a multiple of 90 degrees and re-encode it.

    Returns the new image and the :class:`Frame` describing it (the rotation is the clockwise
    rotation applied to the displayed page, as geometry expects).
    """
    r = clockwise % 360
    if r % 90:
        raise ValueError("rotation must be a multiple of 90")
    if r == 0:
        return encoded, Frame(encoded.width, encoded.height, 0)
    from PIL import Image

    img = encoded.decode()
    # PIL's ROTATE_* transposes turn counter-clockwise
    transpose = {
        90: Image.Transpose.ROTATE_270,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }[r]
    out = encode(img.transpose(transpose), spec.with_(format=encoded.format))
    return out, Frame(out.width, out.height, r)


def require_image(page: Any) -> EncodedImage:
    """The page's encoded image, or :class:`~ocrclient.errors.InputError` when it has none."""
    enc = getattr(page, "encoded", None)
    if enc is None:
        raise InputError(f"page {getattr(page, 'number', '?')} has no image: {getattr(page, 'error', '')}")
    return enc
