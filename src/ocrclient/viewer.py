"""The HTML viewer's old home: it lives in :mod:`ocrclient.exporters.html` now."""

from __future__ import annotations

from .exporters.html import *  # noqa: F403
