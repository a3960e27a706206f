"""RapidOCR's dialect: send the page image, turn recognised text lines into a layout.

RapidOCR (the embedded ``local`` backend) returns text *lines* with boxes in pixels of the image
that was sent (``reply.data["lines"]``, see :mod:`ocrclient.engines.read`) — no paragraphs,
headings, columns or tables.  :meth:`RapidOCRDialect.parse` builds those from geometry alone with
:func:`ocrclient.engines.layout.layout_lines` (font sizes, tables, reading order, paragraphs,
headings: the rules are in that module).

Blocks: one :class:`RawBlock` per paragraph/table, with ``line`` children, each with ``word``
children; boxes in :meth:`CoordSpace.sent_pixels`; every block says where its text came from
(``source``: ``"text-layer"`` or ``"ocr"``).  The markdown is the paragraphs separated by blank
lines, without the page furniture (running headers, footers, page numbers: typed
``page_header`` / ``page_footer``, :mod:`ocrclient.engines.furniture`; the markdown with it is
``PageContent.furniture_markdown``).  A page without any text
gives ``markdown=""`` and the warning ``"no text found"``.

``dialect_options``:

* ``text_layer`` – ``"auto"`` (default: a PDF page is read from its own text layer when that can
  be trusted, :mod:`ocrclient.engines.trust`), ``"always"`` or ``"never"`` (always OCR);
  ``ocr convert --text-layer``.  ``build`` names the page's PDF in the request for the first two
  (``body["pdf"]``), and the ``local`` transport decides (:mod:`ocrclient.engines.pdf_page`).
* ``include_headers_footers`` – keep the page furniture in the markdown (default false; the
  name Chandra's and dots.ocr's dialects use); ``ocr convert --keep-furniture``.  An output
  option (``OUTPUT_OPTIONS``): neither ``build`` nor ``parse`` reads it, the run picks the page's
  markdown with it (so the resume cache serves either, and toggling it reads nothing again).

Example::

    >>> from ocrclient.dialects.rapidocr import RapidOCRDialect
    >>> d = RapidOCRDialect()
    >>> d.render.dpi, d.render.format
    (150, 'png')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..engines.layout import lay_out
from ..engines.lines import lines_from_dicts
from ..errors import ConfigError
from ..geometry import CoordSpace, rotate_norm_box
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
    #: the page image itself, for the embedded engine (the ``local`` transport)
    SENDS = "engine"
    #: the ``dialect_options`` read, with their defaults (see ``ModelDialect.OPTIONS``)
    OPTIONS: Mapping[str, Any] = {"text_layer": "auto"}
    #: read by neither ``build`` nor ``parse``: the run picks the markdown with or without the
    #: furniture (see ``ModelDialect.OUTPUT_OPTIONS``)
    OUTPUT_OPTIONS: Mapping[str, Any] = {"include_headers_footers": False}
    TEXT_LAYER_MODES = ("auto", "always", "never")

    def __init__(self, render: RenderSpec | None = None, *, text_layer: str = "auto") -> None:
        if text_layer not in self.TEXT_LAYER_MODES:
            raise ConfigError(
                f"text_layer must be one of {', '.join(self.TEXT_LAYER_MODES)} (got {text_layer!r})"
            )
        self.render = render or RenderSpec(dpi=150, format="png")
        self.text_layer = text_layer

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> RapidOCRDialect:
        from .base import check_options

        check_options(cls, cfg)
        opts = cfg.dialect_options
        return cls(
            cfg.render_spec(RenderSpec(dpi=150, format="png")),
            text_layer=str(opts.get("text_layer", "auto")),
        )

    def reads_source(self, page: PageImage) -> bool:
        """Whether the request for ``page`` reads its PDF as well as its image (then the
        file's digest is part of the page's cache key)."""
        return bool(page.pdf_path) and self.text_layer != "never"

    def build(self, page: PageImage, attempt: Attempt | int = 1) -> ModelRequest:
        del attempt  # the engine is deterministic: every attempt sends the same image
        if page.encoded is None:
            raise ValueError(f"page {page.number} of {page.source} has no image: {page.error}")
        body: dict[str, Any] = {"image": page.encoded.data}
        if self.reads_source(page):
            body["pdf"] = {"path": page.pdf_path, "index": page.index, "mode": self.text_layer}
            if page.pdf_password:
                body["pdf"]["password"] = page.pdf_password
        return ModelRequest(body=body, frame=page.frame, page_image=page)

    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent:
        space = CoordSpace.sent_pixels()
        raw = reply.data.get("lines") if isinstance(reply.data, dict) else None
        if raw is None:
            return _text_only(reply.text, space)
        lines = lines_from_dicts(raw)
        if not lines:
            return PageContent(markdown="", space=space, warnings=["no text found"])
        page = request.page_image
        data = reply.data
        size = data.get("image_size")
        page_size = (float(size[0]), float(size[1])) if isinstance(size, list) and len(size) == 2 else None
        found = data.get("text_layer")
        layer: dict[str, Any] = found if isinstance(found, dict) else {}
        laid = lay_out(
            lines,
            page.number if page is not None else request.page or 1,
            page_size=page_size,
            repeated=set(layer.get("repeated") or ()),
            source="text-layer" if data.get("source") == "text-layer" else "ocr",
            running=page is None or page.pdf_path is not None,  # (an image file stands alone)
        )
        rotation = int(data.get("rotation") or 0) % 360
        blocks, meta = laid.blocks, laid.meta
        if rotation and page_size is not None and request.frame is not None:
            _upright_to_sent(blocks, page_size, rotation, request.frame.width_px, request.frame.height_px)
        warnings = []
        if layer:
            meta["text_layer"] = {"used": bool(layer.get("used")), "why": str(layer.get("why", ""))}
            if layer.get("unreadable"):  # (not a page without one: a layer there that failed)
                warnings.append(f"{layer.get('why')}; the page was OCR'd instead")
        return PageContent(markdown=laid.markdown, furniture_markdown=laid.furniture_markdown, blocks=blocks,
                           space=space, meta=meta, warnings=warnings)  # fmt: skip


def _upright_to_sent(
    blocks: list[RawBlock], upright: tuple[float, float], rotation: int, width: int, height: int
) -> None:
    """Boxes laid out on the page upright (the text layer's space) -> pixels of the image sent
    (the page as displayed: upright turned clockwise by ``rotation``)."""
    uw, uh = upright
    for b in blocks:
        if b.box is not None:
            x0, y0, x1, y1 = b.box
            n = rotate_norm_box((x0 / uw, y0 / uh, x1 / uw, y1 / uh), rotation)
            b.box = (n[0] * width, n[1] * height, n[2] * width, n[3] * height)
        _upright_to_sent(b.children, upright, rotation, width, height)
