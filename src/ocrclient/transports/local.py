"""The embedded CPU backend (moved to :mod:`ocrclient.engines.rapidocr`; split next)."""

from ..engines.rapidocr import *  # noqa: F403
from ..engines.rapidocr import (  # noqa: F401
    INSTALL_HINT,
    _merge_wide,
    _tighten,
    engine_missing,
)

