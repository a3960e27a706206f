"""The dialect seam: what one model family expects and says.

A dialect builds the request for a page (prompt, image, sampling — chosen per attempt, so a retry
after bad output can change temperature or rotate the page) and parses the raw reply into markdown
and blocks whose boxes are in the model's own coordinate space, tagged with that space.  It knows
nothing about HTTP; :mod:`ocrclient.geometry` maps its boxes to the page.

``parse`` raises :class:`~ocrclient.errors.BadOutputError` when the reply is unusable; it may
attach what it salvaged as ``partial`` (kept as a degraded page if every attempt fails) and a
``hint`` for the next ``build`` (e.g. ``{"rotate": 90}``).

Example::

    class Shout:
        name = "shout"
        render = RenderSpec(dpi=100)
        def build(self, page, attempt):
            img = page.encoded
            return ModelRequest(body={"model": "m", "messages": [...], "max_tokens": 100},
                                frame=Frame(img.width, img.height))
        def parse(self, reply, page):
            return PageContent(markdown=reply.text.upper(), space=CoordSpace.unit())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..geometry import CoordSpace
from ..imaging import RenderSpec

if TYPE_CHECKING:
    from ..errors import OcrError
    from ..pages import PageImage
    from ..transports.base import ModelReply, ModelRequest

__all__ = ["Attempt", "Dialect", "PageContent", "RawBlock"]


@dataclass(frozen=True)
class Attempt:
    """Which attempt this is (1-based) and what went wrong with the previous one."""

    number: int = 1
    last_error: OcrError | None = None

    @property
    def hint(self) -> dict[str, Any]:
        """The previous BadOutputError's hint, or ``{}``."""
        return dict(getattr(self.last_error, "hint", None) or {})


@dataclass
class RawBlock:
    """A block in the model's own space (``box`` in ``PageContent.space`` units, or ``None``)."""

    type: str
    text: str = ""
    box: tuple[float, float, float, float] | None = None
    confidence: float | None = None
    label: str | None = None
    children: list[RawBlock] = field(default_factory=list)


@dataclass
class PageContent:
    """What a dialect read from one reply.  Non-empty ``warnings`` make the page *degraded*."""

    markdown: str
    blocks: list[RawBlock] = field(default_factory=list)
    space: CoordSpace = field(default_factory=CoordSpace.unit)
    warnings: list[str] = field(default_factory=list)
    #: free-form facts the model reported (olmOCR's front matter, language, ...)
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Dialect(Protocol):
    name: str
    render: RenderSpec

    def build(self, page: PageImage, attempt: Attempt) -> ModelRequest: ...

    def parse(self, reply: ModelReply, page: PageImage) -> PageContent: ...
