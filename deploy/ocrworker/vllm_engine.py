"""In-process vLLM helpers (vLLM is imported only inside the functions that need it).

:func:`sampling_kwargs` maps a validated :class:`~ocrworker.envelope.ChatPage` to keyword
arguments of ``vllm.SamplingParams`` (``vllm_xargs`` becomes ``extra_args``, which is where
vLLM's OpenAI server puts it too); :func:`to_generation` reads a ``RequestOutput``.

Example::

    params = [SamplingParams(**sampling_kwargs(p)) for p in pages]
    outs = llm.chat([p.messages for p in pages], params, use_tqdm=False)
    gens = [to_generation(o) for o in outs]
"""

from __future__ import annotations

from typing import Any

from .envelope import PLAIN_SAMPLING_KEYS, ChatPage, Generation

__all__ = ["sampling_kwargs", "to_generation"]


def sampling_kwargs(
    page: ChatPage,
    *,
    default_temperature: float = 0.0,
    default_xargs: dict[str, Any] | None = None,
    skip_special_tokens: bool | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams`` for one page."""
    s = page.sampling
    kw: dict[str, Any] = {
        "max_tokens": page.max_tokens,
        "temperature": float(s.get("temperature", default_temperature)),
    }
    for key in PLAIN_SAMPLING_KEYS:
        if key in s:
            kw[key] = s[key]
    if "skip_special_tokens" in s:
        kw["skip_special_tokens"] = bool(s["skip_special_tokens"])
    elif skip_special_tokens is not None:
        kw["skip_special_tokens"] = skip_special_tokens
    xargs = dict(default_xargs or {})
    if isinstance(s.get("vllm_xargs"), dict):
        xargs.update(s["vllm_xargs"])
    if xargs:
        kw["extra_args"] = xargs
    return kw


def to_generation(output: Any) -> Generation:
    """A :class:`Generation` from a vLLM ``RequestOutput``."""
    first = output.outputs[0]
    return Generation(
        text=first.text,
        finish_reason=first.finish_reason or "stop",
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=len(first.token_ids or []),
    )
