"""vLLM's checks of a chat request, shared by the simulators that serve one: the OpenAI server
(:class:`~ocrclient.testing.OpenAISimulator` answers a refusal with its HTTP status and error
body) and RunPod's vLLM worker (:class:`~ocrclient.testing.RunPodSimulator` ends the job as the
worker ends it when its vLLM server refuses the request).

In vLLM's order: the request's fields are validated as its pydantic model does in lax mode
(``messages`` required, a list of objects; ``max_tokens`` / ``max_completion_tokens`` integers,
``"5"``, ``1.0`` and ``true`` taken as 5, 1 and 1, ``"abc"`` and ``1.5`` refused; ``temperature``
/ ``top_p`` numbers): 400; the model named: 404 when not the one served (none named: served);
then, once the prompt is counted (:func:`check_generation`), the context length (prompt +
``max_tokens`` over ``max_model_len``: 400) and the sampling parameters' ranges
(``SamplingParams``: ``max_tokens`` at least 1, ``temperature`` non-negative, ``top_p`` in
(0, 1]: 400).

    >>> check_chat({"messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}, model="m")
    5
    >>> check_chat({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}, model="m")
    Traceback (most recent call last):
    ...
    ocrclient.testing.vllm_checks.Refusal: 400 max_tokens: Input should be a valid integer, got a number with a fractional part
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["Refusal", "check_chat", "check_generation"]


class Refusal(Exception):
    """vLLM refuses the request: its HTTP ``status``, ``message`` and the ``param`` at fault."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.param = param


def check_chat(body: Mapping[str, Any], *, model: str | None) -> int | None:
    """The checks vLLM makes before the prompt is counted; the ``max_tokens`` asked (as vLLM
    reads it: ``max_completion_tokens`` or else ``max_tokens``; ``None``: not given).  ``model``:
    the one served (``None``: any)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise Refusal(400, "messages: Field required" if messages is None
                      else "messages: Input should be a non-empty list of message objects")  # fmt: skip
    asked = {name: _as_int(name, body.get(name)) for name in ("max_completion_tokens", "max_tokens")}
    for name in ("temperature", "top_p"):
        _as_float(name, body.get(name))
    named = body.get("model")
    if model is not None and named not in (None, "", model):
        raise Refusal(404, f"The model `{named}` does not exist.", param="model")
    return asked["max_completion_tokens"] or asked["max_tokens"]


def check_generation(
    body: Mapping[str, Any], max_tokens: int | None, prompt_tokens: int, max_model_len: int | None
) -> None:
    """The checks vLLM makes once the prompt is counted: the context length, then the sampling
    parameters' ranges (``body`` passed :func:`check_chat`, which gave ``max_tokens``)."""
    if max_model_len is not None and max_tokens is not None and prompt_tokens + max_tokens > max_model_len:
        raise Refusal(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{max_tokens} output tokens and your prompt contains at least {prompt_tokens} input tokens, "
            f"for a total of at least {prompt_tokens + max_tokens} tokens. Please reduce the length of "
            "the input prompt or the number of requested output tokens.",
        )
    temperature = _as_float("temperature", body.get("temperature"))
    top_p = _as_float("top_p", body.get("top_p"))
    if temperature is not None and temperature < 0.0:
        raise Refusal(400, f"temperature must be non-negative, got {temperature}.", param="temperature")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise Refusal(400, f"top_p must be in (0, 1], got {top_p}.", param="top_p")
    if max_tokens is not None and max_tokens < 1:
        raise Refusal(400, f"max_tokens must be at least 1, got {max_tokens}.", param="max_tokens")


def _as_int(name: str, value: Any) -> int | None:
    """``value`` as pydantic reads an optional ``int`` field in lax mode, or its 400."""
    if value is None:
        return None
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                raise Refusal(400, f"{name}: Input should be a valid integer, unable to parse string as an "
                                   "integer", param=name) from None  # fmt: skip
            value = number
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Refusal(400, f"{name}: Input should be a finite number", param=name)
        if not value.is_integer():
            raise Refusal(400, f"{name}: Input should be a valid integer, got a number with a fractional part",
                          param=name)  # fmt: skip
        return int(value)
    raise Refusal(400, f"{name}: Input should be a valid integer", param=name)


def _as_float(name: str, value: Any) -> float | None:
    """``value`` as pydantic reads an optional ``float`` field in lax mode, or its 400."""
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise Refusal(400, f"{name}: Input should be a valid number, unable to parse string as a number",
                          param=name) from None  # fmt: skip
    raise Refusal(400, f"{name}: Input should be a valid number", param=name)
