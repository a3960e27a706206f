"""The sampling keys of a chat request that every chat server behind ocrclient honours: vLLM's
OpenAI server and our own workers (:mod:`.chat` models both requests and re-exports
:data:`SAMPLING_KEYS`).  A module of its own, without the request models, because the client's
dialects need only these names (:mod:`ocrclient.dialects.sampling`), and building the models
costs every ``ocr`` command its start-up time.

Example::

    >>> from ocrclient.contracts.sampling import SAMPLING_KEYS
    >>> "top_p" in SAMPLING_KEYS
    True
"""

from __future__ import annotations

__all__ = ["SAMPLING_KEYS"]

#: sampling keys a chat request may carry that every chat server of ours honours (vLLM and our
#: workers); the dialects pass the others of a profile's ``[sampling]`` through unchanged
SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "stop",
    "skip_special_tokens",
    "include_stop_str_in_output",
    "vllm_xargs",
)
