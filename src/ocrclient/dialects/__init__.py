"""Dialects: what each model family expects and says (see :mod:`ocrclient.dialects.base`)."""

from .base import Attempt, ChatDialect, Dialect, ModelDialect, PageContent, RawBlock

__all__ = ["Attempt", "ChatDialect", "Dialect", "ModelDialect", "PageContent", "RawBlock"]
