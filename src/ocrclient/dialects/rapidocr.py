"""RapidOCR's dialect: send the page image, turn recognised text lines into a layout.

RapidOCR (the embedded ``local`` backend) returns text *lines* with boxes in pixels of the image
that was sent (``reply.data["lines"]``, see :mod:`ocrclient.engines.read`) — no paragraphs,
headings, columns or tables.  :meth:`RapidOCRDialect.parse` builds those from geometry alone with
:func:`ocrclient.engines.layout.layout_lines` (font sizes, tables, reading order, paragraphs,
headings: the rules are in that module).

Blocks: one :class:`RawBlock` per paragraph/table, with ``line`` children, each with ``word``
children; boxes in :meth:`CoordSpace.sent_pixels`.  The markdown is the paragraphs separated by
blank lines.  A page without any text gives ``markdown=""`` and the warning ``"no text found"``.

Example::

    >>> from ocrclient.dialects.rapidocr import RapidOCRDialect
    >>> d = RapidOCRDialect()
    >>> d.render.dpi, d.render.format
    (150, 'png')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..engines.layout import layout_lines
from ..engines.lines import lines_from_dicts
from ..geometry import CoordSpace
from ..imaging import RenderSpec
from ..models import Attempt, ModelReply, ModelRequest, PageContent, RawBlock

if TYPE_CHECKING:
    from ..config import BackendConfig
    from ..pages import PageImage

__all__ = ["RapidOCRDialect"]


def _text_only(text: str, space: CoordSpace) -> PageContent:
    """A reply without line data (e.g. from a cache of text only): paragraphs without boxes."""
    text = text.strip()
    if not text:
        return PageContent(markdown="", space=space, warnings=["no text found"])
    blocks = [RawBlock(type="text", text=p) for p in re.split(r"\n\s*\n", text) if p.strip()]
    return PageContent(
        markdown=text, blocks=blocks, space=space, warnings=["no line boxes in the reply"]
    )


class RapidOCRDialect:
    """The dialect of the embedded RapidOCR engine (``local`` backend).

    ``build`` sends the page image bytes as they are (PNG at 150 dpi by default);
    ``parse`` lays the recognised lines out as paragraphs, headings and tables in reading order.

    Example::

        dialect = RapidOCRDialect()
        request = dialect.build(page, Attempt())          # body == {"image": <png bytes>}
        content = dialect.parse(await transport.send(request), request)
        content.markdown                                   # "# Quarterly Field Report\\n\\n..."
    """

    name = "rapidocr"

    def __init__(self, render: RenderSpec | None = None) -> None:
        self.render = render or RenderSpec(dpi=150, format="png")

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> RapidOCRDialect:
        return cls(cfg.render_spec(RenderSpec(dpi=150, format="png")))

    def build(self, page: PageImage, attempt: Attempt | int = 1) -> ModelRequest:
        del attempt  # the engine is deterministic: every attempt sends the same image
        if page.encoded is None:
            raise ValueError(f"page {page.number} of {page.source} has no image: {page.error}")
        return ModelRequest(
            body={"image": page.encoded.data},
            frame=page.frame,
            page_image=page,
        )

    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent:
        space = CoordSpace.sent_pixels()
        raw = reply.data.get("lines") if isinstance(reply.data, dict) else None
        if raw is None:
            return _text_only(reply.text, space)
        lines = lines_from_dicts(raw)
        if not lines:
            return PageContent(markdown="", space=space, warnings=["no text found"])
        page = request.page_image
        markdown, blocks, meta = layout_lines(lines, page.number if page is not None else request.page or 1)
        return PageContent(markdown=markdown, blocks=blocks, space=space, meta=meta)
