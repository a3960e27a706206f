"""Sampling ladders: the sampling fields of a chat body, chosen per attempt.

A retry after bad output asks again with other sampling (a higher temperature, another
``top_p``); the ladder is the list of values by attempt, the last rung repeating.  The profile's
``[sampling]`` wins over a dialect's defaults.

Example::

    >>> from ocrclient.dialects.sampling import ladder_value, sampling
    >>> ladder_value([0.0, 0.2, 0.4], 2), ladder_value([0.0, 0.2, 0.4], 9)
    (0.2, 0.4)
    >>> sampling({"top_p": 0.9}, 2, max_tokens=100)
    {'max_tokens': 100, 'temperature': 0.2, 'top_p': 0.9}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..contracts.sampling import SAMPLING_KEYS
from ..errors import ConfigError

__all__ = ["DEFAULT_LADDER", "ladder_value", "sampling"]

#: temperature per attempt when neither the profile nor the dialect says otherwise
DEFAULT_LADDER: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6)

#: vLLM / OpenAI body keys a profile may pass through from [sampling]: the sampling keys every
#: chat server honours (the shared contract, :data:`ocrclient.contracts.sampling.SAMPLING_KEYS`),
#: except the two this module sets per attempt
_PASS_THROUGH = set(SAMPLING_KEYS) - {"temperature", "top_p"}


def ladder_value(ladder: Sequence[float], attempt: int) -> float:
    """The ladder rung for a 1-based attempt: ``ladder[min(attempt - 1, len - 1)]``."""
    if not ladder:
        raise ValueError("empty ladder")
    return float(ladder[min(max(attempt, 1) - 1, len(ladder) - 1)])


def _float_list(value: Any, name: str) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return [float(v) for v in value]
    raise ConfigError(f"sampling.{name} must be a number or a non-empty list of numbers")


def sampling(
    cfg_sampling: Mapping[str, Any],
    attempt: int,
    *,
    max_tokens: int,
    ladder: Sequence[float] = DEFAULT_LADDER,
    top_p: float | Sequence[float] | None = None,
) -> dict[str, Any]:
    """Sampling fields of a chat body for one attempt.

    ``cfg_sampling`` (the profile's ``[sampling]``) wins over the dialect's defaults:
    ``max_tokens``; ``temperature_ladder`` (or a fixed ``temperature``, which becomes the first
    rung of the default ladder); ``top_p`` or ``top_p_ladder``; other known vLLM/OpenAI keys pass
    through unchanged.
    """
    out: dict[str, Any] = {}
    mt = cfg_sampling.get("max_tokens", max_tokens)
    if not isinstance(mt, int) or isinstance(mt, bool) or mt <= 0:
        raise ConfigError("sampling.max_tokens must be a positive integer")
    out["max_tokens"] = mt
    if "temperature_ladder" in cfg_sampling:
        rungs = _float_list(cfg_sampling["temperature_ladder"], "temperature_ladder")
    elif "temperature" in cfg_sampling:
        first = _float_list(cfg_sampling["temperature"], "temperature")[0]
        rungs = [first, *[max(first, r) for r in list(ladder)[1:]]]
    else:
        rungs = list(ladder)
    out["temperature"] = ladder_value(rungs, attempt)
    tp: Any = cfg_sampling.get("top_p_ladder", cfg_sampling.get("top_p", top_p))
    if tp is not None:
        out["top_p"] = ladder_value(_float_list(tp, "top_p"), attempt)
    for key, value in cfg_sampling.items():
        if key in _PASS_THROUGH:
            out[key] = value
    return out
