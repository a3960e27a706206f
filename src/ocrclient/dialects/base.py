"""The dialect seam: what one model family expects and says, and the bases dialects build on.

A dialect builds the request for a page (prompt, image, sampling — chosen per attempt, so a retry
after bad output can change temperature or rotate the page) and parses the raw reply, *with that
request in hand*, into markdown and blocks whose boxes are in the model's own coordinate space,
tagged with that space.  It knows nothing about HTTP; :mod:`ocrclient.geometry` maps its boxes to
the page.  Whatever ``build`` decided that ``parse`` needs travels in the request
(``request.frame``, ``request.page_image``, ``request.context``), so a dialect keeps no per-page
state: one dialect object serves any number of pages and runs at once.

``parse`` raises :class:`~ocrclient.errors.BadOutputError` when the reply is unusable; it may
attach what it salvaged as ``partial`` (kept as a degraded page if every attempt fails) and a
``hint`` for the next ``build`` (e.g. ``{"rotate": 90}``).  Any other exception out of ``parse``
is a parser bug, which the scheduler turns into bad output for that page.

* :class:`Dialect` – the protocol (``name``, ``render``, ``build``, ``parse``).
* :class:`ModelDialect` – model, render spec, ``[sampling]`` and ``dialect_options``, and
  ``from_config`` for every configured dialect.
* :class:`ChatDialect` – the chat-completions ``build`` / ``parse`` around the ``content`` /
  ``parse_text`` hooks (sampling ladders from :mod:`.sampling`, request pieces from
  :mod:`.request_parts`, reply checks from :mod:`.reply_checks`, parsing helpers in
  :mod:`.parsing`).

The data (:class:`Attempt`, :class:`PageContent`, :class:`RawBlock`) is defined in
:mod:`ocrclient.models` and importable from here.

Example (a whole dialect: the protocol needs nothing more)::

    class Shout:
        name = "shout"
        render = RenderSpec(dpi=100)
        def build(self, page, attempt):
            img = page.encoded
            return ModelRequest(body={"model": "m", "messages": [...], "max_tokens": 100},
                                frame=Frame(img.width, img.height), page_image=page)
        def parse(self, reply, request):
            return PageContent(markdown=reply.text.upper(), space=CoordSpace.unit())
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from ..errors import ConfigError
from ..geometry import Frame
from ..imaging import EncodedImage, RenderSpec
from ..models import Attempt, ModelReply, ModelRequest, PageContent, PageImage, RawBlock
from .reply_checks import check_reply, finish
from .request_parts import chat_body, require_image
from .sampling import DEFAULT_LADDER, SAMPLING_RULES, check_sampling, sampling

if TYPE_CHECKING:
    from ..config import BackendConfig

__all__ = ["Attempt", "ChatDialect", "Dialect", "ModelDialect", "PageContent", "RawBlock"]


@runtime_checkable
class Dialect(Protocol):
    name: str
    render: RenderSpec

    def build(self, page: PageImage, attempt: Attempt) -> ModelRequest: ...

    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent: ...


def declared_options(dialect: type | object) -> set[str] | None:
    """The ``dialect_options`` a dialect class (or instance) declares it reads: its own
    ``OPTIONS`` (a plugin's subclass may read more than its parent) and its ``OUTPUT_OPTIONS``;
    ``None`` when it declares no ``OPTIONS`` of its own."""
    cls = dialect if isinstance(dialect, type) else type(dialect)
    own = vars(cls).get("OPTIONS")
    return None if own is None else {*own, *getattr(cls, "OUTPUT_OPTIONS", {})}


def check_options(cls: type, cfg: BackendConfig) -> None:
    """Refuse a ``dialect_options`` key of ``cfg`` that misspells one the dialect ``cls``
    declares it reads (:func:`declared_options`; nothing is checked without)."""
    declared = declared_options(cls)
    if declared is not None:
        from ..cache import RUN_DIALECT_OPTIONS

        # (the CLI's --text-layer and --keep-furniture go to every dialect; read where they apply)
        known = {*declared, *RUN_DIALECT_OPTIONS, "text_layer", "include_headers_footers"}
        # a misspelling of an option it reads: refused (one for another dialect -- a generic
        # profile's own, kept under --dialect -- is left alone, as every dialect leaves it)
        for key in sorted(set(cfg.dialect_options) - known):
            near = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
            if near:
                raise ConfigError(f"dialect {getattr(cls, 'name', cls.__name__)!r} has no option {key!r} (dialect_options): "
                                  f"did you mean {near[0]!r}? It reads: {', '.join(sorted(declared)) or 'none'}")


def unread_options(dialect: type | object, names: Iterable[str]) -> list[str]:
    """Those of the ``dialect_options`` ``names`` that a dialect class (or instance) does not
    read: neither in its own ``OPTIONS`` nor in its ``OUTPUT_OPTIONS`` (``ocr`` refuses
    ``--text-layer`` and ``--keep-furniture`` for such a dialect); none when it declares no
    ``OPTIONS`` of its own (a plugin's subclass may read more than its parent).

    >>> class Plain:
    ...     OPTIONS = {"prompt": None}
    >>> unread_options(Plain, ["prompt", "text_layer"]), unread_options(object, ["text_layer"])
    (['text_layer'], [])
    """
    reads = declared_options(dialect)
    return [] if reads is None else [n for n in names if n not in reads]


class ModelDialect(abc.ABC):
    """What every configured model dialect holds: the model name, the render spec, the profile's
    ``[sampling]`` and ``dialect_options``; built from a profile by :meth:`from_config`.

    Subclasses set the class attributes, implement ``build`` / ``parse`` and, when their
    constructor takes more keywords, return them from :meth:`config_kwargs`.
    """

    name: str = "model"
    #: the ``dialect_options`` this dialect reads, each with its default (``None``: none); the
    #: resume cache keys a page on these only, a default as good as absent
    #: (:func:`~ocrclient.cache.key_settings`).  ``None``: not declared, every option is keyed
    OPTIONS: Mapping[str, Any] | None = None
    #: the ``dialect_options`` that choose only among what ``parse`` gives, each with its default:
    #: read by no request and no parse, but as the run makes a page -- ``include_headers_footers``
    #: takes the markdown with the page furniture (``PageContent.furniture_markdown``).  Out of
    #: the resume cache's key (it stores both: toggling one sends nothing again), in the run
    #: manifest's settings digest (the outputs differ: :func:`~ocrclient.cache.settings_digest`)
    OUTPUT_OPTIONS: Mapping[str, Any] = {}
    #: the model's own render spec (before the profile's [render] is laid over it)
    DEFAULT_RENDER: RenderSpec = RenderSpec(dpi=150.0)
    DEFAULT_MODEL: str | None = None

    def __init__(
        self,
        *,
        model: str | None = None,
        render: RenderSpec | None = None,
        sampling: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model or self.DEFAULT_MODEL
        if not self.model:
            raise ConfigError(f"dialect {self.name!r} needs a model name: set `model` in the profile or pass --model")
        self.render: RenderSpec = render or self.DEFAULT_RENDER
        self.sampling_cfg: dict[str, Any] = dict(sampling or {})
        self.options: dict[str, Any] = dict(options or {})

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> Self:
        """Build from a :class:`~ocrclient.config.BackendConfig` (its ``dialect_options`` checked
        against those the dialect reads, when it says: a misspelt one was ignored without a word)."""
        check_options(cls, cfg)
        return cls(
            model=cfg.model,
            render=cfg.render_spec(cls.DEFAULT_RENDER),
            sampling=cfg.sampling,
            options=cfg.dialect_options,
            **cls.config_kwargs(cfg),
        )

    @classmethod
    def config_kwargs(cls, cfg: BackendConfig) -> dict[str, Any]:
        """Constructor keywords beyond model, render, sampling and options (none by default)."""
        return {}

    @abc.abstractmethod
    def build(self, page: Any, attempt: Any) -> ModelRequest: ...

    @abc.abstractmethod
    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent: ...


class ChatDialect(ModelDialect):
    """Shared machinery of the chat-completions dialects (subclasses set the class attributes
    and implement :meth:`content` / :meth:`parse_text`).

    Example::

        class Echo(ChatDialect):
            name = "echo"
            DEFAULT_RENDER = RenderSpec(dpi=100)
            def content(self, page, image, attempt):
                return [image_part(image), text_part("Read this.")]
            def parse_text(self, text, reply, request):
                return PageContent(markdown=text)
    """

    name: str = "chat"
    #: the kind of request it builds (a transport's ``TAKES`` must hold it: ``Backend``)
    SENDS: str = "chat"
    DEFAULT_MAX_TOKENS: int = 4096
    DEFAULT_LADDER: tuple[float, ...] = DEFAULT_LADDER
    DEFAULT_TOP_P: float | tuple[float, ...] | None = None
    #: finish_reason other than "stop" is bad output (olmOCR's pipeline rule)
    STRICT_STOP: bool = False

    #: ``[sampling]`` keys of a dialect's own, beyond the chat servers' (a plugin's: see
    #: :func:`~ocrclient.dialects.sampling.check_sampling`; they are not sent unless it sends them)
    EXTRA_SAMPLING_KEYS: tuple[str, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_sampling(self.sampling_cfg, self.name, known=(*SAMPLING_RULES, *self.EXTRA_SAMPLING_KEYS))

    # -- hooks ----------------------------------------------------------------------------
    @abc.abstractmethod
    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        """The user message's content parts (image and prompt, in the model's order)."""

    def extras(self, attempt: Any) -> dict[str, Any]:
        """vLLM fields at the top level of the body."""
        return {}

    def prepare(self, page: Any, attempt: Any) -> tuple[EncodedImage, Frame]:
        """The image to send and its frame (olmOCR rotates here)."""
        enc = require_image(page)
        return enc, Frame(enc.width, enc.height, 0)

    @abc.abstractmethod
    def parse_text(self, text: str, reply: ModelReply, request: ModelRequest) -> PageContent:
        """The reply text (already checked to be non-empty) -> page content in model space."""

    # -- the Dialect protocol ---------------------------------------------------------------
    def build(self, page: Any, attempt: Any) -> ModelRequest:
        number = getattr(attempt, "number", attempt if isinstance(attempt, int) else 1)
        image, frame = self.prepare(page, attempt)
        fields = sampling(
            self.sampling_cfg,
            int(number),
            max_tokens=self.DEFAULT_MAX_TOKENS,
            ladder=self.DEFAULT_LADDER,
            top_p=self.DEFAULT_TOP_P,
        )
        assert self.model is not None
        body = chat_body(self.model, self.content(page, image, attempt), fields, self.extras(attempt))
        return ModelRequest(body=body, kind="chat", frame=frame, page_image=page)

    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent:
        return finish(self.parse_text(check_reply(reply), reply, request), reply, strict_stop=self.STRICT_STOP)
