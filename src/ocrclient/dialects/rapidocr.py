"""RapidOCR's dialect (moved to :mod:`ocrclient.engines.layout`; split next)."""

from ..engines.layout import RapidOCRDialect, _em_width

__all__ = ["RapidOCRDialect", "_em_width"]
