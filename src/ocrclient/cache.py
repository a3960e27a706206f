"""Content-addressed page-result cache: the resume mechanism.

A finished page is stored under a key derived from what determines its result — the encoded page
image that is sent, the dialect, which server answered (transport, base URL, endpoint id — never
the API key), the model, the render spec, the sampling, transport and dialect options, and for the
embedded engine the versions of its packages, and the page's displayed size and rotation (its
boxes are laid on them) — never from the file name, nor from the page number unless the request
reads the page's file as well as its image, so a rerun after a crash (or the same page in another
file) is served from disk and nothing is sent again, while a changed setting or another endpoint
sends the page again.

Every field of :class:`~ocrclient.config.BackendConfig` is either part of the key
(:data:`KEY_FIELDS`) or named in :data:`NEUTRAL_FIELDS` (settings that cannot change what a page
reads: credentials, concurrency, timeouts, retries, prices, descriptions); likewise the
``transport_options`` that the backend's transport class declares content-neutral in its
``neutral_options`` (poll intervals, timeouts, payload limits, auth header names: see
:func:`neutral_transport_options`) are left out and every other one is in the key.  Of the
``dialect_options``, the key has those the dialect reads (its ``OPTIONS``, with the run's own,
:data:`RUN_DIALECT_OPTIONS`), each unless at its default: ``--keep-furniture`` on a dialect
without furniture, or ``--text-layer auto`` on the local engine, sends nothing again.  The
dialect's output options (its ``OUTPUT_OPTIONS``: ``include_headers_footers``, the CLI's
``--keep-furniture``) are read by no request and no parse but as the run makes the page, from
what the parse gave: an entry holds the page's markdown without its furniture and, beside it, with
it (:meth:`PageCache.put`), so they stay out of the key and toggling one sends nothing again;
they are in :func:`settings_digest` (the run manifest's: the outputs differ, so a rerun that
toggles one writes a done document's outputs again, from the cache).  A pool's
members enter it as the endpoints they reach (:func:`pool_members_key`): each member's profile
resolved with its overrides, the environment and the user config, as the pool builds it, so a
member pointed at another endpoint sends its pages again, while a member's weight or label (who
serves a page, not what it reads) and the members' order change nothing.

An entry is ``{"page": <the page's JSON>, "furniture_markdown": <str or null>}``.  An earlier
version's, the page's JSON alone, does not say the markdown with furniture: a run that keeps it
takes that for a miss (sent once again, rewritten), one that leaves it out is served it (its key
had no ``include_headers_footers``: its markdown has none), so no key version is bumped.

Writes are atomic (temp file + rename), so a kill at any moment leaves the old entry or the new.
The cache holds at most ``max_bytes`` (default :data:`~ocrclient.config.DEFAULT_CACHE_MAX_BYTES`,
2 GiB; ``OCRCLIENT_CACHE_MAX_BYTES`` or ``cache_max_bytes`` in the user config change it, 0 lifts
it): when a write takes it over, the least recently used entries (oldest modification time; a hit
refreshes it), the recall entries (:mod:`.recall`: a recall refreshes one) with the pages, are
deleted until it is under :data:`PRUNE_TO` of the cap.  Several processes may share one cache:
each counts its own writes and measures the directory again once it has written :data:`REMEASURE`
of the cap since it last did, so together they overshoot the cap by at most that share each.

Example::

    >>> import tempfile
    >>> from ocrclient.document import Page
    >>> cache = PageCache(tempfile.mkdtemp())
    >>> cache.put("ab" * 32, Page(page=3, status="ok", markdown="hi"))
    >>> cache.get("ab" * 32).markdown
    'hi'
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .document import SCHEMA_VERSION, Page

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .config import BackendConfig
    from .dialects.base import Dialect
    from .models import PageImage

__all__ = [
    "ENGINE_PACKAGES",
    "KEY_FIELDS",
    "NEUTRAL_FIELDS",
    "CacheInfo",
    "PageCache",
    "engine_versions",
    "entry_page",
    "keeps_furniture",
    "key_settings",
    "neutral_transport_options",
    "output_options",
    "page_key",
]

#: bump when what a cached page means changes (invalidates every entry)
CACHE_FORMAT = "3"

#: after a prune the cache holds at most this share of its cap (so a full cache is not rescanned
#: at every write)
PRUNE_TO = 0.9
#: the share of the cap a process writes before it measures the cache's directory again (other
#: processes write to it too); a measure stats every entry (0.35 s for 100,000 entries here)
REMEASURE = 0.05


def _url(cfg: BackendConfig) -> str | None:
    """The endpoint's URL, one spelling per endpoint its transport reaches (``/v1`` or not)."""
    from .transports.urls import endpoint_url

    return endpoint_url(cfg.transport, cfg.resolved_base_url())


#: the BackendConfig fields a page's content depends on, and how each enters the key (the
#: endpoint's identity as it is reached: field or environment, in its transport's one spelling)
_KEY_FIELDS: dict[str, Callable[[BackendConfig], Any]] = {
    "transport": lambda c: c.transport,
    "dialect": lambda c: c.dialect,
    "model": lambda c: c.resolved_model(),
    "base_url": _url,
    "endpoint_id": lambda c: c.resolved_endpoint_id(),
    "render": lambda c: c.render.model_dump(exclude_none=True),
    "sampling": lambda c: c.sampling,
    "transport_options": lambda c: _content_options(c.transport, c.transport_options),
    "dialect_options": lambda c: _content_dialect_options(c.dialect, c.dialect_options),
}
KEY_FIELDS: frozenset[str] = frozenset(_KEY_FIELDS)

#: the BackendConfig fields that cannot change what a page reads, so they stay out of the key:
#: names and provenance, the variables that *hold* settings (their values are in the key via the
#: resolved field, the key's never), credentials, concurrency, retries, timeouts, prices
NEUTRAL_FIELDS: frozenset[str] = frozenset({
    "name", "description", "origin", "api_key", "api_key_env", "base_url_env", "endpoint_id_env", "model_env",
    "concurrency", "max_attempts", "attempt_timeout_s", "page_deadline_s", "cold_start_s", "unreachable_s",
    "price_per_gpu_second", "price_per_hour",
})  # fmt: skip

#: keys that hold credentials: dropped at any depth (a pool member may carry an ``api_key``)
_SECRET_OPTIONS = frozenset({"api_key", "modal_key", "modal_secret"})

#: transport -> the packages whose versions decide what its engine reads (ocrclient's own: its
#: layout, text-layer and furniture code are part of what the embedded engine hands back)
ENGINE_PACKAGES: dict[str, tuple[str, ...]] = {"local": ("ocrclient", "rapidocr", "onnxruntime")}


def _without_secrets(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_secrets(v) for k, v in value.items() if k not in _SECRET_OPTIONS}
    if isinstance(value, list | tuple):
        return [_without_secrets(v) for v in value]
    return value


@functools.cache
def neutral_transport_options(transport: str) -> frozenset[str]:
    """The ``transport_options`` of ``transport`` (a registered name or ``module:Class``) that
    cannot change what a page reads: what its class declares in ``neutral_options``.

    The class is looked up in the registry when the first key is computed, not when this module
    is imported (by then the run has loaded it); a transport that cannot be imported declares
    nothing, so all its options are in the key.

    >>> sorted(neutral_transport_options("pool"))
    ['cooldown_s', 'max_cooldown_s']
    """
    from .errors import ConfigError
    from .registry import transport_class
    from .transports.base import neutral_options

    try:
        return neutral_options(transport_class(transport))
    except ConfigError:
        return frozenset()


#: ``dialect_options`` the run reads whatever the dialect (:mod:`ocrclient.docmode`), with defaults
RUN_DIALECT_OPTIONS: Mapping[str, Any] = {"document_mode": False, "document_prompt": None, "document_pages": None}


@functools.lru_cache(maxsize=64)
def dialect_options_read(dialect: str) -> Mapping[str, Any] | None:
    """The ``dialect_options`` the dialect named ``dialect`` reads, with their defaults (its
    ``OPTIONS``); ``None`` when it does not say (or cannot be imported): then all are keyed.

    >>> dict(dialect_options_read("olmocr"))
    {'document_mode': False, 'document_prompt': None, 'document_pages': None, 'prompt': None}
    """
    from .errors import ConfigError
    from .registry import dialect_class

    try:
        cls = dialect_class(dialect)
    except ConfigError:
        return None
    # the class's own declaration: a subclass (a plugin's over a built-in) may read options its
    # parent does not, so an inherited OPTIONS says nothing of it
    declared = vars(cls).get("OPTIONS") if isinstance(cls, type) else getattr(cls, "OPTIONS", None)
    return None if declared is None else {**RUN_DIALECT_OPTIONS, **declared}


@functools.lru_cache(maxsize=64)
def output_options_read(dialect: str) -> Mapping[str, Any]:
    """The output options of the dialect named ``dialect`` (its ``OUTPUT_OPTIONS``, with their
    defaults: read as the run makes a page, by no request and no parse); none when it cannot be
    imported.

    >>> dict(output_options_read("chandra"))
    {'include_headers_footers': False}
    """
    from .errors import ConfigError
    from .registry import dialect_class

    try:
        cls = dialect_class(dialect)
    except ConfigError:
        return {}
    return dict(getattr(cls, "OUTPUT_OPTIONS", None) or {})


def output_options(cfg: BackendConfig) -> dict[str, Any]:
    """The output options ``cfg`` sets for its dialect, those not at their default (out of the
    page key, in :func:`settings_digest`)."""
    read = output_options_read(cfg.dialect)
    return {k: v for k, v in cfg.dialect_options.items() if k in read and v is not None and v != read[k]}


def keeps_furniture(cfg: BackendConfig) -> bool:
    """Whether a run with ``cfg`` keeps the page furniture in its pages' markdown
    (``include_headers_footers`` on a dialect that has furniture: ``--keep-furniture``)."""
    return bool(output_options(cfg).get("include_headers_footers"))


def _content_dialect_options(dialect: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that can change what a page reads: those the dialect reads, not at their
    default (``--keep-furniture`` on a dialect without furniture, ``--text-layer auto`` on the
    local one, sent every page again)."""
    read = dialect_options_read(dialect)
    if read is None:
        return dict(options)
    return {k: v for k, v in options.items() if k in read and v is not None and v != read[k]}


def _content_options(transport: str, options: Mapping[str, Any]) -> dict[str, Any]:
    neutral = neutral_transport_options(transport)
    kept = {k: v for k, v in options.items() if k not in neutral}
    if transport == "pool" and "members" in kept:
        kept["members"] = pool_members_key(kept["members"])
    return dict(_without_secrets(kept))


#: what a pool member's entry says of how it is picked, never of what it reads
POOL_MEMBER_NEUTRAL = frozenset({"weight", "label"})


def pool_members_key(specs: Any) -> list[Any]:
    """A pool's ``members`` as the page key holds them: for each, the endpoint it reaches (its
    transport, resolved model, base URL and endpoint id, and its content options), resolved as
    :meth:`~ocrclient.transports.pool.PoolTransport.from_config` resolves it (the member's
    profile, its overrides, the environment, the user config), in a fixed order.  A member
    whose profile cannot be resolved is kept as written (the pool itself refuses it)."""
    from .config import resolve_config
    from .errors import OcrError

    out: list[Any] = []
    for spec in specs if isinstance(specs, list) else [specs]:
        if not isinstance(spec, Mapping) or "backend" not in spec:
            out.append(spec)
            continue
        over = {k: v for k, v in spec.items() if k != "backend" and k not in POOL_MEMBER_NEUTRAL}
        try:
            member = resolve_config(spec["backend"], **over)
        except (OcrError, TypeError, ValueError):
            out.append(_without_secrets({k: v for k, v in spec.items() if k not in POOL_MEMBER_NEUTRAL}))
            continue
        out.append(
            {
                "transport": member.transport,
                "model": member.resolved_model(),
                "base_url": _url(member),
                "endpoint_id": member.resolved_endpoint_id(),
                "transport_options": _content_options(member.transport, member.transport_options),
            }
        )
    return sorted(out, key=lambda m: json.dumps(m, sort_keys=True, default=str))


@functools.cache
def engine_versions(transport: str) -> dict[str, str | None]:
    """The installed versions of the packages an in-process engine runs on (``{}`` for remote
    transports: the endpoint's identity stands for its model)."""
    out: dict[str, str | None] = {}
    for package in ENGINE_PACKAGES.get(transport, ()):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


def key_settings(cfg: BackendConfig) -> dict[str, Any]:
    """What of ``cfg`` goes into a page's key (no secret, no neutral field)."""
    settings = {field: read(cfg) for field, read in _KEY_FIELDS.items()}
    settings["engine"] = engine_versions(cfg.transport)
    return settings


def settings_digest(cfg: BackendConfig) -> str:
    """A short digest of :func:`key_settings` and the :func:`output_options`: equal exactly when
    every setting that can change what a page reads, or how its page is made of it, is equal (the
    run manifest's test of "converted with these settings").  Without an output option set it is
    the digest of the key settings alone (as manifests of earlier versions hold it)."""
    settings = key_settings(cfg)
    if chosen := output_options(cfg):
        settings["output_options"] = chosen
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # part of the memo's key: a changed file is read again
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def source_digest(path: str) -> str:
    """sha256 of a source file, read once per (path, size, mtime) in a process.

    Part of a page's key when the request reads more of the source than the page image (the
    embedded engine reading the PDF's own text layer): two PDFs that render to the same pixels
    but carry different text must not share a cache entry.
    """
    st = os.stat(path)
    return _file_digest(path, st.st_size, st.st_mtime_ns)


def page_key(
    image: bytes, cfg: BackendConfig, dialect: str, source: str | None = None, place: Mapping[str, Any] | None = None
) -> str:
    """The cache key of one page for one backend configuration (sha256 hex); ``source`` is
    :func:`source_digest` of the page's file when the request reads that file too; ``place`` is
    where the page sits (see :func:`page_key_for`)."""
    settings: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "schema": SCHEMA_VERSION,
        "dialect_used": dialect,
        **key_settings(cfg),
    }
    if source is not None:
        settings["source"] = source
    if place:
        settings["place"] = dict(place)
    h = hashlib.sha256()
    h.update(hashlib.sha256(image).digest())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


def page_key_for(page: PageImage, cfg: BackendConfig, dialect: Dialect) -> str | None:
    """The key of ``page`` as ``dialect`` will send it: its image and its displayed size and
    rotation (what its boxes are laid on: two pages can render to the same pixels and differ
    there, a page turned by ``/Rotate`` and one drawn turned), plus its source file's digest and
    its number in that file when the dialect's request reads the file too (a dialect says so with
    ``reads_source(page) -> bool``); ``None`` (no caching) for a page without an image or whose
    file is gone."""
    if page.encoded is None:
        return None
    box = page.page_box
    place: dict[str, Any] = {"box": [box.width, box.height, box.rotation]} if box is not None else {}
    reads_source = getattr(dialect, "reads_source", None)
    source = None
    if page.pdf_path and reads_source is not None and reads_source(page):
        try:
            source = source_digest(page.pdf_path)
        except OSError:
            return None
        place["number"] = page.number
    return page_key(page.content_key or page.encoded.data, cfg, dialect.name, source, place)


def _entry(raw: str | bytes) -> tuple[Page, bool]:
    """The page an entry holds, and whether the entry says its markdown with the furniture (an
    entry of an earlier version is the page's JSON alone: it does not)."""
    data = json.loads(raw)
    if type(data) is dict and "page" in data and "status" not in data:
        furniture = data.get("furniture_markdown")
        if furniture is not None and type(furniture) is not str:
            raise ValueError("furniture_markdown is not a string")
        page = Page.from_data(data["page"])
        page._furniture_markdown = furniture
        return page, True
    return Page.from_data(data), False


def entry_page(raw: str | bytes) -> Page:
    """The page a cache entry's text holds (as :meth:`PageCache.get` reads it); ``ValueError``
    (or pydantic's ``ValidationError``, one) for text that is no entry."""
    return _entry(raw)[0]


@dataclass(frozen=True)
class CacheInfo:
    """What ``ocr cache info`` prints."""

    directory: str
    entries: int
    bytes: int
    max_bytes: int


class PageCache:
    """Finished pages on disk, one JSON file per key (``<dir>/pages/ab/abcd....json``).

    ``max_bytes`` caps its size (``None``: :func:`~ocrclient.config.cache_max_bytes`, 0: no cap).
    ``retry_degraded``: a page kept degraded (a garbled or cut reply, a blank page) is not taken
    from it but sent again (``ocr convert --retry-degraded``); a cache that serves it always had
    no way to retry such a page but to clear every page of every document.
    """

    def __init__(self, directory: str | Path, *, max_bytes: int | None = None, retry_degraded: bool = False) -> None:
        from .config import cache_max_bytes

        self.directory = Path(directory)
        self.max_bytes = cache_max_bytes() if max_bytes is None else max(0, int(max_bytes))
        self.retry_degraded = retry_degraded
        self.hits = self.misses = self.writes = self.write_errors = self.pruned = 0
        #: bytes on disk as this process sees them (measured at the first write, then kept up
        #: and measured again every REMEASURE of the cap written: see the module's text)
        self._size: int | None = None
        self._unmeasured = 0
        #: a run stores its pages from worker threads (the fsync stays off its event loop): one
        #: write at a time keeps the size this process counts, and its prunes, whole
        self._writing = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.directory / "pages" / key[:2] / f"{key}.json"

    def holds(self, key: str) -> bool:
        """Whether page ``key`` has an entry on disk, served or not (``get`` may refuse it)."""
        return self._path(key).exists()

    def recall_path(self, key: str) -> Path:
        """Where the recall entry ``key`` (:mod:`.recall`) lives, beside the pages."""
        return self.directory / "recall" / key[:2] / key

    def _files(self, *, temp: bool = False, recall: bool = False) -> Iterator[os.DirEntry[str]]:
        """The page entries; ``recall``: the recall entries too; ``temp``: and the temp files left."""
        for sub in ("pages", "recall") if recall else ("pages",):
            try:
                shards = list(os.scandir(self.directory / sub))
            except FileNotFoundError:
                continue
            for shard in shards:
                if not shard.is_dir(follow_symlinks=False):
                    continue
                try:
                    files = list(os.scandir(shard.path))
                except FileNotFoundError:
                    continue
                for f in files:  # (a temp file's name starts with a dot)
                    if (sub == "recall" or f.name.endswith(".json")) and (temp or not f.name.startswith(".")):
                        yield f

    def get(self, key: str, *, furniture: bool = False, kept: bool = False) -> Page | None:
        """The page stored under ``key`` (``None``: a miss), as it was read: its markdown without
        the page furniture, with it beside (``Page._furniture_markdown``).  ``furniture``: the run
        keeps the furniture, so an entry of an earlier version, which does not say the markdown
        with it, is a miss (sent again, its entry rewritten).  ``kept``: a degraded page too under
        :attr:`retry_degraded` (what a retry that fails keeps), neither a hit nor a miss."""
        path = self._path(key)
        try:
            raw = path.read_text(encoding="utf-8")
            page, says_furniture = _entry(raw)
        except (OSError, ValidationError, ValueError):  # (none, or damaged: a miss, rewritten)
            self.misses += not kept
            return None
        if (self.retry_degraded and page.status == "degraded" and not kept) or (furniture and not says_furniture):
            self.misses += not kept
            return None
        if not kept:
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: the last to be pruned
            self.hits += 1
        return page

    def put(self, key: str, page: Page) -> None:
        """Store a finished page as read (its markdown with the furniture beside it) atomically,
        never a failed page nor one whose error may pass (kept degraded by an outage).  A cache
        that cannot be written (read-only, full, removed or cleared under a run) costs the page its
        entry, never the page: a warning, once per cache.  Safe to call from several threads."""
        if page.status == "failed" or (page.error is not None and page.error.kind == "transient"):
            return
        page_json = page.model_copy(update={"cached": False}).model_dump_json()
        data = f'{{"page":{page_json},"furniture_markdown":{json.dumps(page._furniture_markdown)}}}'.encode()
        with self._writing:
            try:
                self._write(self._path(key), data, sync=True)
                self.writes += 1
            except OSError as exc:
                self.write_errors += 1
                if self.write_errors == 1:
                    log.warning("the page cache in %s cannot be written (%s): a page it does not store is sent "
                                "again by a rerun (said once)", self.directory, exc)  # fmt: skip

    def put_recall(self, key: str, data: bytes) -> None:
        """The recall entry ``key``: written whole, counted in the cap, pruned with the pages (one
        that cannot be written is only missing)."""
        with self._writing, contextlib.suppress(OSError):
            self._write(self.recall_path(key), data, sync=False)

    def _write(self, path: Path, data: bytes, *, sync: bool) -> None:
        """``data`` into ``path`` by a temp file's rename (``sync``: on disk first), counted."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.max_bytes and (self._size is None or self._unmeasured > self.max_bytes * REMEASURE):
            self._size, self._unmeasured = self.info().bytes, 0
        replaced = 0
        with contextlib.suppress(OSError):  # (none yet, or pruned meanwhile by another process)
            replaced = path.stat().st_size
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if sync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self._size is not None:
            self._size += len(data) - replaced
            self._unmeasured += len(data)
            if self.max_bytes and self._size > self.max_bytes:
                self.prune()

    def prune(self, target: int | None = None) -> int:
        """Delete the least recently used entries until the cache holds at most ``target`` bytes
        (default: :data:`PRUNE_TO` of the cap; none without one); returns how many went."""
        if target is None:
            if not self.max_bytes:
                return 0
            target = int(self.max_bytes * PRUNE_TO)
        entries: list[tuple[float, int, str]] = []
        for f in self._files(recall=True):
            try:
                st = f.stat(follow_symlinks=False)
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, f.path))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries):
            if total <= target:
                break
            total -= size
            try:
                os.unlink(path)
            except FileNotFoundError:  # another process pruned it: not counted here
                continue
            removed += 1
        self._size, self._unmeasured = total, 0
        self.pruned += removed
        return removed

    def info(self) -> CacheInfo:
        """Directory, page entries, bytes on disk (recall entries' too) and the cap."""
        entries = size = 0
        for f in self._files(recall=True):
            try:
                size += f.stat(follow_symlinks=False).st_size
            except OSError:
                continue
            entries += f.name.endswith(".json")
        return CacheInfo(str(self.directory), entries, size, self.max_bytes)

    def clear(self) -> int:
        """Delete every entry, leftover temp file and recall entry; returns how many pages went."""
        shutil.rmtree(self.directory / "recall", ignore_errors=True)
        removed = 0
        for f in self._files(temp=True):
            try:
                os.unlink(f.path)
            except FileNotFoundError:
                continue
            removed += not f.name.startswith(".tmp-")
        self._size, self._unmeasured = 0, 0
        return removed

    def __len__(self) -> int:
        return sum(1 for _ in self._files())
