"""Bases and helpers shared by the contract models (pydantic only).

* :class:`Lenient` -- a request model that accepts keys it does not declare and ignores them, as
  vLLM's OpenAI server does (its ``OpenAIBaseModel`` is ``extra="allow"`` and only logs them);
  the ignored keys stay visible to :func:`unknown_fields`.
* :class:`Strict` -- a request model that refuses undeclared keys.
* :func:`unknown_fields` -- the dotted paths of every key a lenient model would ignore.
* :func:`first_error` -- one readable line for a :class:`pydantic.ValidationError`.

Example::

    >>> class Body(Lenient):
    ...     text: str
    >>> unknown_fields(Body.model_validate({"text": "hi", "colour": "red"}))
    ['colour']
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Lenient", "Strict", "first_error", "unknown_fields"]


class Lenient(BaseModel):
    """Undeclared keys are accepted and ignored by the server (see :func:`unknown_fields`)."""

    model_config = ConfigDict(extra="allow", defer_build=True)


class Strict(BaseModel):
    """Undeclared keys are refused."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


def unknown_fields(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of the keys ``model`` (and the models inside it) did not declare."""
    out = [f"{prefix}{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        out.extend(_walk(getattr(model, name), f"{prefix}{name}."))
    return sorted(out)


def _walk(value: Any, prefix: str) -> list[str]:
    if isinstance(value, BaseModel):
        return unknown_fields(value, prefix)
    if isinstance(value, list | tuple):
        return [p for i, item in enumerate(value) for p in _walk(item, f"{prefix}{i}.")]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _walk(item, f"{prefix}{key}.")]
    return []


def first_error(exc: ValidationError, root: str = "") -> str:
    """``"<where>: <what>"`` for the first error of ``exc`` (``root`` prefixes the location)."""
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always reports at least one
        return str(exc).splitlines()[0]
    err = errors[0]
    where = ".".join(str(p) for p in (root, *err.get("loc", ())) if str(p)) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")  # (pydantic's prefix for a validator's ValueError)
    return " ".join(f"{where}: {msg}{more}".split())
