"""A CPU stand-in for the model call, for tests and for trying a worker without a GPU.

Selected by ``OCRWORKER_STANDIN``:

* ``echo`` -- answers with a line describing what the model would have seen (image size,
  a hash of its pixels, the prompt, max_tokens), so a test can check the real decoding path;
* ``fail`` -- raises, to exercise the worker's error path;
* ``truncate`` -- like ``echo`` but reports ``finish_reason="length"``.

Example::

    os.environ["OCRWORKER_STANDIN"] = "echo"
    fn = standin_from_env()          # -> callable(list[ChatPage]) -> list[Generation]
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

from .envelope import ChatPage, Generation

__all__ = ["describe", "standin_from_env"]


def describe(page: ChatPage) -> str:
    """The deterministic text the stand-in answers for ``page``."""
    img = page.image
    digest = hashlib.sha256(img.tobytes()).hexdigest()[:12]
    return (
        f"[stand-in] image {img.width}x{img.height} {img.mode} sha={digest} "
        f"max_tokens={page.max_tokens} prompt={page.prompt!r}"
    )


def _echo(pages: list[ChatPage], reason: str = "stop") -> list[Generation]:
    out = []
    for p in pages:
        text = describe(p)
        out.append(
            Generation(
                text=text,
                finish_reason=reason,
                prompt_tokens=len(p.prompt.split()) + 1,
                completion_tokens=len(text.split()),
            )
        )
    return out


def _fail(pages: list[ChatPage]) -> list[Generation]:
    raise RuntimeError("stand-in model failure (OCRWORKER_STANDIN=fail)")


def standin_from_env() -> Callable[[list[ChatPage]], list[Generation]] | None:
    """The stand-in chosen by ``OCRWORKER_STANDIN``, or ``None`` when unset."""
    mode = os.environ.get("OCRWORKER_STANDIN", "").strip().lower()
    if not mode:
        return None
    if mode == "echo":
        return _echo
    if mode == "truncate":
        return lambda pages: _echo(pages, "length")
    if mode == "fail":
        return _fail
    raise ValueError(f"OCRWORKER_STANDIN={mode!r}: use echo, truncate or fail")
