"""Dialects: what each model family expects and says (see :mod:`ocrclient.dialects.base`)."""

from .base import Attempt, Dialect, PageContent, RawBlock

__all__ = ["Attempt", "Dialect", "PageContent", "RawBlock"]
