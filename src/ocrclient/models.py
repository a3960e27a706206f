"""The data that crosses the seams: pages, requests, replies, attempts and what a dialect read.

One page travels ``PageImage -> ModelRequest -> ModelReply -> PageContent``: rendering makes the
:class:`PageImage`, a dialect's ``build`` turns it into a :class:`ModelRequest` for one
:class:`Attempt`, a transport answers with a :class:`ModelReply`, and the dialect's
``parse(reply, request)`` reads it into :class:`PageContent` (boxes as :class:`RawBlock` in the
model's own space).  These are plain data, with no behaviour beyond a few properties; the
protocols that move them are :class:`ocrclient.transports.base.Transport` and
:class:`ocrclient.dialects.base.Dialect`.  The same classes stay importable from their old homes
(``ocrclient.transports.base``, ``ocrclient.dialects.base``, ``ocrclient.pages``).

Example::

    >>> from ocrclient.geometry import Frame, PageBox
    >>> page = PageImage(source="a.pdf", index=0, page_box=PageBox(612, 792), encoded=None,
    ...                  error="cannot render")
    >>> request = ModelRequest(body={"model": "m"}, frame=Frame(612, 792), page_image=page)
    >>> request.page_image.number, Attempt(2).hint
    (1, {})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .geometry import CoordSpace, Frame, PageBox
from .imaging import EncodedImage

if TYPE_CHECKING:
    from PIL import Image

    from .document import Page
    from .errors import OcrError

__all__ = [
    "Attempt",
    "ModelReply",
    "ModelRequest",
    "PageContent",
    "PageImage",
    "RawBlock",
    "RequestKind",
    "page_markdowns",
]


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------


@dataclass
class PageImage:
    """One page, rendered as displayed and encoded as its backend's RenderSpec asks.

    ``page_box`` carries the page's geometry (displayed size in points, ``/Rotate``, CropBox
    offset); ``encoded`` the image bytes that will be sent; ``error`` is set instead of
    ``encoded`` when this one page could not be rendered (the page is then reported as failed,
    never dropped).
    """

    source: str
    index: int
    page_box: PageBox
    encoded: EncodedImage | None
    render_scale: float = 1.0
    error: str | None = None
    #: seconds the worker spent rendering + encoding this page
    render_s: float = 0.0
    #: the PDF file this page was rendered from (the input, or the render pool's copy of a
    #: document given as bytes), so a backend can read the page's own text layer; ``None`` for
    #: images
    pdf_path: str | None = None
    #: the password ``pdf_path`` opens with (an encrypted input), so its text layer can be read
    pdf_password: str | None = field(default=None, repr=False)
    #: what the resume cache hashes for this page instead of ``encoded``'s bytes (``None``: those
    #: bytes): a document-mode unit's, whose cut PDF differs at every cut
    #: (:func:`ocrclient.docmode.document_unit`)
    content_key: bytes | None = None
    #: a page the resume cache already holds, not rendered (:mod:`ocrclient.recall`): its cache
    #: key and its reading (``encoded`` is ``None``, ``error`` too)
    recalled: tuple[str, Page] | None = None
    #: the PDF file as the renderer opened it (:func:`~ocrclient.pages.pdfdocs.file_identity`;
    #: ``None`` for images, or a file that changed as it was opened): a recall entry is written
    #: under it, so a page rendered before its file was replaced never names the new file's
    file_id: tuple[int, ...] | None = None

    @property
    def number(self) -> int:
        """1-based page number."""
        return self.index + 1

    @property
    def frame(self) -> Frame:
        if self.encoded is None:
            raise ValueError(f"page {self.number} of {self.source} has no image: {self.error}")
        return Frame(self.encoded.width, self.encoded.height)

    def image(self) -> Image.Image:
        """The decoded PIL image of the page (as displayed)."""
        if self.encoded is None:
            raise ValueError(f"page {self.number} of {self.source} has no image: {self.error}")
        return self.encoded.decode()


# --------------------------------------------------------------------------------------------
# one attempt: request and reply
# --------------------------------------------------------------------------------------------


#: chat: an OpenAI chat-completions body; ocular: the OLM/RoLM HTTP JSON contract;
#: document: the DeepSeek seed's whole-PDF job input
RequestKind = Literal["chat", "ocular", "document"]


@dataclass(frozen=True)
class Attempt:
    """Which attempt this is (1-based), what went wrong with the previous one, and what the
    previous attempt's request decided (its :attr:`ModelRequest.context`), so a dialect can carry
    a decision across attempts — olmOCR's cumulative rotation survives a timeout in between —
    without keeping per-page state of its own.  The scheduler builds these."""

    number: int = 1
    last_error: OcrError | None = None
    #: (left out of the hash, so an Attempt stays hashable)
    previous_context: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def hint(self) -> dict[str, Any]:
        """The previous BadOutputError's hint, or ``{}``."""
        return dict(getattr(self.last_error, "hint", None) or {})


@dataclass
class ModelRequest:
    """One attempt for one page, as plain data.

    ``body`` is, for ``kind="chat"``, exactly the JSON of an OpenAI ``/chat/completions`` request
    (``model``, ``messages`` with the image as a data URL, ``max_tokens``, sampling, and vLLM extras
    such as ``skip_special_tokens`` / ``vllm_xargs`` at top level).  For ``ocular`` it is
    ``{"image": <base64>, ...}`` and ``route`` names the path (``/extract_text``); for
    ``document`` it is the whole-PDF job input.

    Who fills what: the dialect's ``build`` sets the body, ``kind``, ``frame``, ``route``,
    ``page_image`` (the page it was built from) and ``context`` (what it decided and its
    ``parse`` reads back); the scheduler stamps ``timeout_s``, ``page`` and ``source``.
    """

    body: dict[str, Any]
    kind: RequestKind = "chat"
    frame: Frame | None = None
    route: str | None = None
    #: seconds this attempt may take end to end (set by the scheduler)
    timeout_s: float | None = None
    #: 1-based page number and source name, for logs and remote job metadata only (set by the
    #: scheduler)
    page: int | None = None
    source: str | None = None
    #: per-request knobs for the transport (e.g. {"stream": False})
    options: dict[str, Any] = field(default_factory=dict)
    #: the page this request was built from (set by the dialect's ``build``; ``None`` when a
    #: request is made by hand).  Transports never read it.
    page_image: PageImage | None = field(default=None, repr=False)
    #: what the dialect decided at build time that its ``parse`` needs (olmOCR: the rotation
    #: sent and the attempt number); handed to the next attempt as ``Attempt.previous_context``
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelReply:
    """The raw answer of one attempt."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    #: RunPod executionTime / delayTime in seconds, when the platform reports them
    gpu_seconds: float | None = None
    queue_seconds: float | None = None
    job_id: str | None = None
    #: anything else the contract returns (ocular ``confidence``, whole-PDF paths, raw JSON)
    data: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# what a dialect read
# --------------------------------------------------------------------------------------------


@dataclass
class RawBlock:
    """A block in the model's own space (``box`` in ``PageContent.space`` units, or ``None``)."""

    type: str
    text: str = ""
    box: tuple[float, float, float, float] | None = None
    confidence: float | None = None
    label: str | None = None
    children: list[RawBlock] = field(default_factory=list)
    #: where the text came from: "text-layer" (the PDF's own) or "ocr" (``None``: not said)
    source: str | None = None


@dataclass
class PageContent:
    """What a dialect read from one reply.  Non-empty ``warnings`` make the page *degraded*."""

    markdown: str
    blocks: list[RawBlock] = field(default_factory=list)
    space: CoordSpace = field(default_factory=CoordSpace.unit)
    warnings: list[str] = field(default_factory=list)
    #: free-form facts the model reported (olmOCR's front matter, language, ...)
    meta: dict[str, Any] = field(default_factory=dict)
    #: the markdown with the page furniture kept (running headers, footers, page numbers: blocks
    #: typed ``page_header`` / ``page_footer``), which ``markdown`` always leaves out; ``None``
    #: when the page has none in it (the same either way).  The page takes it when
    #: ``dialect_options.include_headers_footers`` asks (``ocr convert --keep-furniture``): an
    #: option of the output, never of the parse, so the resume cache keeps both and toggling it
    #: sends nothing again (``OUTPUT_OPTIONS`` of the dialect)
    furniture_markdown: str | None = None

    def markdown_for(self, keep_furniture: bool) -> str:
        """The page's markdown, its furniture kept or not."""
        if keep_furniture and self.furniture_markdown is not None:
            return self.furniture_markdown
        return self.markdown


def page_markdowns(parts: Sequence[tuple[str, bool]]) -> tuple[str, str | None]:
    """A page's :attr:`PageContent.markdown` and :attr:`PageContent.furniture_markdown` from its
    ``parts`` in reading order, each ``(text, is page furniture)``, joined by blank lines.

    >>> page_markdowns([("Head", True), ("Body", False)])
    ('Body', 'Head\\n\\nBody')
    >>> page_markdowns([("Body", False)])
    ('Body', None)
    """
    markdown = "\n\n".join(text for text, furniture in parts if not furniture)
    kept = "\n\n".join(text for text, _ in parts)
    return markdown, kept if kept != markdown else None
