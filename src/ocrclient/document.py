"""The result model: :class:`Document` -> :class:`Page` -> :class:`Block`.

This is the JSON output contract: ``Document.model_dump_json()`` is what
``ocr convert`` writes as ``<stem>.json``; ``python -m ocrclient.document schema.json`` (or
``ocr schema``) writes its JSON schema, kept in the repo as ``schema/document.schema.json``.

No page is ever silently empty or dropped: a page that could not be read is present with
``status="failed"`` and an ``error``; a page whose reply was only partly usable is ``degraded``
with its ``warnings``.

Example::

    >>> from ocrclient.document import Document, Page
    >>> doc = Document(source="a.pdf", backend="local", pages=[
    ...     Page(page=1, status="ok", width=612, height=792, markdown="# Hello")])
    >>> doc.markdown
    '# Hello'
    >>> doc.ok
    True
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

__all__ = [
    "BLOCK_TYPES",
    "SCHEMA_VERSION",
    "Block",
    "Document",
    "Page",
    "PageError",
    "PageStatus",
    "RunStats",
    "Usage",
    "json_schema",
]

SCHEMA_VERSION = "1.0"

PageStatus = Literal["ok", "degraded", "failed"]

#: the block types dialects map their labels to; unknown labels become "text"
BLOCK_TYPES = (
    "title",
    "section_header",
    "text",
    "list_item",
    "table",
    "figure",
    "caption",
    "equation",
    "code",
    "footnote",
    "page_header",
    "page_footer",
    "form",
    "handwriting",
    "line",
    "word",
)


class _BuiltSignature:
    """A deferred model's ``__signature__``: building the model (``defer_build``) is what gives
    it its fields' signature, so ``help(Page)`` or an editor asking before the first page was
    made builds it then, and sees ``Page(*, page, status, ...)`` rather than ``Page(**data)``."""

    def __get__(self, instance: object, owner: type[BaseModel]) -> Any:
        owner.model_rebuild()  # replaces this descriptor with pydantic's own signature
        return owner.__dict__["__signature__"].__get__(instance, owner)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not cls.__pydantic_complete__:
            cls.__signature__ = _BuiltSignature()  # type: ignore[assignment]


class Usage(_Model):
    """What a page (or run) cost, as far as the backend reports it."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    gpu_seconds: float | None = Field(None, description="RunPod executionTime, when reported")
    queue_seconds: float | None = Field(None, description="RunPod delayTime, when reported")
    cost_usd: float | None = Field(None, description="estimate from the profile's price per GPU-second")

    def add(self, other: Usage) -> Usage:
        def _sum(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            gpu_seconds=_sum(self.gpu_seconds, other.gpu_seconds),
            queue_seconds=_sum(self.queue_seconds, other.queue_seconds),
            cost_usd=_sum(self.cost_usd, other.cost_usd),
        )

    def priced(self, price_per_gpu_second: float | None) -> Usage:
        """This usage with its cost at ``price_per_gpu_second`` (unchanged without a price or
        GPU time)."""
        if price_per_gpu_second is None or self.gpu_seconds is None:
            return self
        return self.model_copy(update={"cost_usd": round(self.gpu_seconds * price_per_gpu_second, 6)})


#: what a page's error can be (``PageError.kind``)
PAGE_ERROR_KINDS = ("transient", "permanent", "auth", "endpoint", "bad_output", "input", "config", "cancelled")


class PageError(_Model):
    """Why a page failed (or why it is degraded)."""

    kind: str = Field(description=" | ".join(PAGE_ERROR_KINDS))
    cause: str = Field("", description="finer cause, e.g. http_503, timeout, repetition")
    message: str

    @classmethod
    def of(cls, err: BaseException) -> PageError:
        """The error a page failed with, said as a page records it (an exception that is not one
        of ocrclient's: a dialect's bug, bad output)."""
        from .errors import OcrError
        from .secrets import redact

        if isinstance(err, OcrError):  # (one a page cannot have, a plugin's plain OcrError: permanent)
            kind = err.kind if err.kind in PAGE_ERROR_KINDS else "permanent"
            return cls(kind=kind, cause=err.cause, message=err.message)
        if isinstance(err, TimeoutError):
            return cls(kind="transient", cause="timeout", message="attempt timed out")
        return cls(kind="bad_output", cause=type(err).__name__, message=redact(str(err)) or type(err).__name__)


class Block(_Model):
    """One layout element.  ``bbox`` is in PDF points of the displayed page (top-left origin),
    ``bbox_norm`` in [0, 1] of the same page; both are ``None`` when the model gives no box."""

    type: str = Field(description="one of BLOCK_TYPES")
    text: str = ""
    bbox: list[float] | None = Field(None, min_length=4, max_length=4)
    bbox_norm: list[float] | None = Field(None, min_length=4, max_length=4)
    confidence: float | None = None
    label: str | None = Field(None, description="the model's own label, before mapping to type")
    flags: list[str] = Field(default_factory=list, description="geometry notes: clamped, reversed, degenerate")
    children: list[Block] = Field(
        default_factory=list,
        description="lines of a paragraph, words of a line; or the parts of a block the model boxed in several "
        "places, without text (the block holds it once; its box is their union)",
    )
    source: Literal["text-layer", "ocr"] | None = Field(
        None, description="where the text came from: the PDF's own text layer or OCR (null: not said)"
    )

    @classmethod
    def built(cls, **values: Any) -> Block:
        """A block from every field's value, as the client maps a model's boxes: values already
        of the contract's exact types (``str``, ``float``, lists of four floats, ``Block``
        children) become the block as they are, sharing one set of set fields; anything else
        (an ``int`` confidence, a NumPy float, a wrong type) goes through validation as
        ``Block(**values)``, which coerces or refuses it.  The same block either way.

        Why: a text-layer page holds ~1200 words, each a block.  A validated block carries its
        own set of the 9 field names it was given (728 bytes, half the block): a 250-page
        document's blocks held 0.9 MB a page.  The shared set is safe: every field is in it, so
        an assignment's ``add`` leaves it as it is, and a copy gets its own."""
        if _exact(cls, values):
            return cls.model_construct(_BLOCK_FIELDS, **values)
        return cls(**values)


def _box(box: object) -> bool:
    return box is None or (type(box) is list and len(box) == 4 and all(type(v) is float for v in box))


def _exact(cls: type[Block], v: Mapping[str, Any]) -> bool:
    """``v`` names every field of :class:`Block` with a value validation would keep unchanged."""
    return (
        v.keys() == _BLOCK_FIELDS
        and type(v["type"]) is str
        and type(v["text"]) is str
        and _box(v["bbox"])
        and _box(v["bbox_norm"])
        and (v["confidence"] is None or type(v["confidence"]) is float)
        and (v["label"] is None or type(v["label"]) is str)
        and type(v["flags"]) is list
        and all(type(f) is str for f in v["flags"])
        and type(v["children"]) is list
        and all(type(c) is cls for c in v["children"])
        and (v["source"] is None or (type(v["source"]) is str and v["source"] in ("text-layer", "ocr")))
    )


#: the fields every block made by :meth:`Block.built` says were set (all of them)
_BLOCK_FIELDS = set(Block.model_fields)


class Page(_Model):
    page: int = Field(ge=1, description="1-based page number in the source")
    status: PageStatus
    error: PageError | None = None
    warnings: list[str] = Field(default_factory=list)
    width: float = Field(0.0, description="displayed page width in points")
    height: float = Field(0.0, description="displayed page height in points")
    rotation: int = Field(0, description="the page's /Rotate")
    markdown: str = ""
    blocks: list[Block] = Field(default_factory=list)
    attempts: int = 0
    latency_s: float = Field(0.0, description="seconds from the page's first request to its result (retries included, its wait for a free slot not)")
    usage: Usage = Field(default_factory=Usage)
    cached: bool = Field(False, description="served from the resume cache, nothing was sent")
    #: while a run makes the page (never in its JSON): its markdown with the page furniture kept,
    #: when that differs from ``markdown`` (then without it), as the dialect read both
    #: (:attr:`~ocrclient.models.PageContent.furniture_markdown`).  The resume cache stores it
    #: beside the page, and the run then picks one (``--keep-furniture``) and lets this go
    _furniture_markdown: str | None = PrivateAttr(default=None)

    @property
    def text(self) -> str:
        return self.markdown

    def as_made(self, keep_furniture: bool) -> Page:
        """This page, as read, as a run gives it: its markdown with the page furniture when
        ``keep_furniture`` (and it has any), the other markdown let go."""
        furniture, self._furniture_markdown = self._furniture_markdown, None
        if keep_furniture and furniture is not None:
            return self.model_copy(update={"markdown": furniture})
        return self

    @classmethod
    def from_json(cls, raw: str | bytes) -> Page:
        """The page ``Page.model_validate_json(raw)`` gives (or its refusal: ``ValueError`` for
        text that is not JSON, ``ValidationError`` for JSON that is no page), its blocks made by
        :meth:`Block.built` (what a rerun's pages served from the cache are made of)."""
        return cls.from_data(json.loads(raw))

    @classmethod
    def from_data(cls, data: Any) -> Page:
        """:meth:`from_json` of JSON already decoded (``data`` is consumed: its blocks replaced)."""
        if type(data) is dict and type(data.get("blocks")) is list:
            data["blocks"] = [_block_of(b) for b in data["blocks"]]
        return cls.model_validate(data)


def _block_of(value: Any) -> Any:
    """A block's JSON object as :meth:`Block.built` makes it (anything else left for the page's
    validation to refuse)."""
    if type(value) is not dict:
        return value
    if type(value.get("children")) is list:
        value["children"] = [_block_of(c) for c in value["children"]]
    return Block.built(**value)


class RunStats(_Model):
    pages: int = 0
    ok: int = 0
    degraded: int = 0
    failed: int = 0
    cached: int = 0
    attempts: int = 0
    retries_by_cause: dict[str, int] = Field(default_factory=dict)
    wall_s: float = 0.0
    pages_per_s: float = 0.0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    usage: Usage = Field(default_factory=Usage)

    @classmethod
    def of(cls, pages: Sequence[Page], wall_s: float, retries_by_cause: Mapping[str, int]) -> RunStats:
        """The stats of a run's ``pages`` that took ``wall_s``.  ``attempts``, ``usage`` (tokens,
        GPU time, cost) and the latencies are what this run spent: a page served from the cache
        counts for none of them (its own fields keep what producing it took)."""
        sent = [p for p in pages if not p.cached]
        latencies = [p.latency_s for p in sent if p.status != "failed"]
        usage = Usage()
        for p in sent:
            usage = usage.add(p.usage)
        done = [p for p in pages if p.status != "failed"]
        return cls(
            pages=len(pages),
            ok=sum(p.status == "ok" for p in pages),
            degraded=sum(p.status == "degraded" for p in pages),
            failed=sum(p.status == "failed" for p in pages),
            cached=sum(p.cached for p in pages),
            attempts=sum(p.attempts for p in sent),
            retries_by_cause=dict(retries_by_cause),
            wall_s=round(wall_s, 4),
            pages_per_s=round(len(done) / wall_s, 4) if wall_s > 0 else 0.0,
            latency_p50_s=percentile(latencies, 0.5),
            latency_p95_s=percentile(latencies, 0.95),
            usage=usage,
        )


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (nearest rank), rounded to 0.1 ms; ``None`` for none."""
    if not values:
        return None
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[idx], 4)


class Document(_Model):
    schema_version: str = SCHEMA_VERSION
    source: str
    backend: str
    model: str | None = None
    pages: list[Page] = Field(default_factory=list)
    stats: RunStats = Field(default_factory=RunStats)

    @property
    def markdown(self) -> str:
        """All pages' markdown joined by blank lines: only what the model read (a failed page,
        its error in :attr:`Page.error`, and a page without text contribute nothing); a picture
        reference that links nothing (``![alt]()``: no crop is written here) is its alt text,
        ``*[image: alt]*`` (:func:`~ocrclient.exporters.markdown.unlinked`)."""
        from .exporters.mdrefs import unlinked

        # (each page's own: a code span or fence is one page's)
        return "\n\n".join(unlinked(t) for p in self.pages if p.status != "failed" and (t := p.markdown.strip()))

    @property
    def ok(self) -> bool:
        return all(p.status != "failed" for p in self.pages)

    @property
    def failed_pages(self) -> list[int]:
        return [p.page for p in self.pages if p.status == "failed"]


def json_schema() -> dict[str, object]:
    """The JSON schema of :class:`Document` (what ``<stem>.json`` validates against)."""
    schema = Document.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://ocrclient.dev/schema/document-{SCHEMA_VERSION}.json"
    return schema


def write_schema(path: str | Path) -> Path:
    """Write the JSON schema to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":  # python -m ocrclient.document [PATH]
    target = sys.argv[1] if len(sys.argv) > 1 else "schema/document.schema.json"
    print(write_schema(target))
