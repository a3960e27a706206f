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

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..contracts.sampling import SAMPLING_KEYS
from ..errors import ConfigError

__all__ = ["DEFAULT_LADDER", "check_sampling", "ladder_value", "sampling"]

#: temperature per attempt when neither the profile nor the dialect says otherwise
DEFAULT_LADDER: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6)

#: vLLM / OpenAI body keys a profile may pass through from [sampling]: the sampling keys every
#: chat server honours (the shared contract, :data:`ocrclient.contracts.sampling.SAMPLING_KEYS`),
#: except the two this module sets per attempt
_PASS_THROUGH = set(SAMPLING_KEYS) - {"temperature", "top_p"}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _strings(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v))


def _xargs(v: Any) -> bool:
    """vLLM's ``vllm_xargs``: names to strings, numbers or lists of them."""

    def one(x: Any) -> bool:
        return isinstance(x, str) or _number(x)

    return isinstance(v, Mapping) and all(
        isinstance(k, str) and (one(x) or (isinstance(x, (list, tuple)) and all(one(y) for y in x))) for k, x in v.items()
    )


def _numbers(ok: Callable[[float], bool]) -> Callable[[Any], bool]:
    """A number, or a non-empty list of numbers (a ladder), each ``ok``."""
    return lambda v: all(_number(x) and ok(x) for x in (v if isinstance(v, (list, tuple)) and v else [v]))


#: what a chat server accepts for each key of ``[sampling]`` (vLLM's checks of its sampling
#: parameters; its 400 would fail every page of a run): key -> (test, what it must be)
SAMPLING_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_tokens": (lambda v: _integer(v) and v >= 1, "a positive integer"),
    "temperature": (lambda v: _number(v) and v >= 0, "a number >= 0 (a ladder is temperature_ladder)"),
    "temperature_ladder": (_numbers(lambda x: x >= 0), "a number >= 0 or a non-empty list of them"),
    "top_p": (_numbers(lambda x: 0 < x <= 1), "a number in (0, 1] (or a list of them)"),
    "top_p_ladder": (_numbers(lambda x: 0 < x <= 1), "a number in (0, 1] or a non-empty list of them"),
    "top_k": (lambda v: _integer(v) and v >= -1, "an integer, -1 or 0 (off) or at least 1"),
    "min_p": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "repetition_penalty": (lambda v: _number(v) and v > 0, "a number > 0"),
    "presence_penalty": (lambda v: _number(v) and -2 <= v <= 2, "a number in [-2, 2]"),
    "frequency_penalty": (lambda v: _number(v) and -2 <= v <= 2, "a number in [-2, 2]"),
    "seed": (_integer, "an integer"),
    "stop": (_strings, "a string or a list of strings"),
    "skip_special_tokens": (lambda v: isinstance(v, bool), "true or false"),
    "include_stop_str_in_output": (lambda v: isinstance(v, bool), "true or false"),
    "vllm_xargs": (_xargs, "a table of strings, numbers or lists of them"),
}


def check_sampling(cfg_sampling: Mapping[str, Any], dialect: str, known: Sequence[str] = tuple(SAMPLING_RULES)) -> None:
    """Refuse a ``[sampling]`` a chat dialect would send wrong, before anything is sent: a key it
    does not know (a typo was dropped without a word) or a value no chat server accepts (every
    page would fail on the server's 400).  Raises :class:`ConfigError`."""
    for key, value in cfg_sampling.items():
        if key not in known:
            raise ConfigError(f"sampling.{key}: not a sampling setting of the {dialect} dialect; "
                              f"known: {', '.join(sorted(known))}")  # fmt: skip
        test, what = SAMPLING_RULES.get(key, (lambda v: True, ""))
        if not test(value):
            raise ConfigError(f"sampling.{key} must be {what} (got {value!r})")


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
    check_sampling({"max_tokens": mt}, "chat")  # (the one rule: SAMPLING_RULES)
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
