"""Transports: how one request reaches a GPU (see :mod:`ocrclient.transports.base`).

The names below load :mod:`.base` (and httpx) at first use, so that importing a light module
of the package (:mod:`.written`, which the scheduler imports) loads no HTTP stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Health, ModelReply, ModelRequest, Transport

__all__ = ["Health", "ModelReply", "ModelRequest", "Transport"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
