"""Names -> implementations, imported lazily.

Transports and dialects are registered by import path (``"module:Class"``) and only imported
when a backend that uses them is loaded; a failed import becomes a :class:`ConfigError` naming the
pip extra to install (the way fsspec's ``known_implementations`` does).  Third-party packages add
their own through the entry-point groups ``ocrclient.transports`` and ``ocrclient.dialects``
(:mod:`ocrclient.plugins`: read once, a clash with a built-in name is an error), and a profile
may name any class by its import path (``dialect = "my_dialect:ShoutDialect"``).

Every implementation class exposes ``from_config(cfg: BackendConfig)``.

Example::

    >>> b = load_backend("local")
    >>> b.config.dialect, type(b.dialect).__name__
    ('rapidocr', 'RapidOCRDialect')
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import BackendConfig, resolve_config
from .dialects.base import Dialect
from .errors import ConfigError, OcrError, UsageError
from .imaging import RenderSpec
from .plugins import table

if TYPE_CHECKING:  # the transports import httpx: only load_transport imports one
    from .concurrency import WritesFirst
    from .transports.base import Transport

__all__ = ["DIALECTS", "TRANSPORTS", "Backend", "check_read", "configured", "load_backend", "load_dialect",
           "load_transport", "loaded"]  # fmt: skip

log = logging.getLogger(__name__)

#: name -> (import path, pip extra that provides its dependencies or None)
TRANSPORTS: dict[str, tuple[str, str | None]] = {
    "local": ("ocrclient.transports.local:LocalTransport", "local"),
    "runpod": ("ocrclient.transports.runpod:RunPodTransport", None),
    "openai": ("ocrclient.transports.openai:OpenAITransport", None),
    "ocular": ("ocrclient.transports.ocular:OcularTransport", None),
    "pool": ("ocrclient.transports.pool:PoolTransport", None),
}

DIALECTS: dict[str, tuple[str, str | None]] = {
    "rapidocr": ("ocrclient.dialects.rapidocr:RapidOCRDialect", "local"),
    "chandra": ("ocrclient.dialects.chandra:ChandraDialect", None),
    "deepseek": ("ocrclient.dialects.deepseek:DeepSeekDialect", None),
    "lighton": ("ocrclient.dialects.lighton:LightOnDialect", None),
    "olmocr": ("ocrclient.dialects.olmocr:OlmOCRDialect", None),
    "rolmocr": ("ocrclient.dialects.rolmocr:RolmOCRDialect", None),
    "trocr": ("ocrclient.dialects.trocr:TrOCRDialect", None),
    "dots": ("ocrclient.dialects.dots:DotsDialect", None),
    "plain": ("ocrclient.dialects.plain:PlainDialect", None),
}


def _import(kind: str, name: str, builtin: dict[str, tuple[str, str | None]]) -> Any:
    known = table(kind, builtin, lambda plugin: (plugin.value, None))
    if name in known:
        target, extra = known[name]
    elif ":" in name:  # your own class, named by import path in a profile ("my_dialect:Shout")
        target, extra = name, None
    else:
        raise ConfigError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))} (or an import path 'module:Class')")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; install it with: pip install 'ocrclient[{extra}]'" if extra else ""
        raise ConfigError(f"{kind} {name!r} cannot be imported ({exc}){hint}") from exc
    except Exception as exc:  # a plugin module that fails as it is imported (a SyntaxError...)
        raise ConfigError(f"{kind} {name!r}: importing {module_name} failed ({type(exc).__name__}: {exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"{kind} {name!r}: {target} has no {attr}") from exc


def _built(kind: str, name: str, cls: Any, cfg: BackendConfig) -> Any:
    """``cls.from_config(cfg)``: an error other than ocrclient's (a plugin's bug) is one
    ConfigError line naming the class, never a traceback."""
    if not callable(getattr(cls, "from_config", None)):
        raise ConfigError(f"{kind} {name!r} is not a {kind} class (it has no from_config)")
    try:
        return cls.from_config(cfg)
    except OcrError:
        raise
    except Exception as exc:
        raise ConfigError(f"{kind} {name!r} cannot be set up from backend {cfg.name!r}: {type(exc).__name__}: {exc}") from exc


def transport_class(name: str) -> Any:
    """The transport class named ``name`` (built-in, plugin, or ``module:Class``), imported;
    :class:`ConfigError` when unknown or not importable."""
    return _import("transport", name, TRANSPORTS)


def load_transport(cfg: BackendConfig) -> Transport:
    from .errors import install_logger_redaction

    install_logger_redaction()  # httpx / openai log URLs: mask secrets before any handler
    transport: Transport = _built("transport", cfg.transport, transport_class(cfg.transport), cfg)
    return transport


def dialect_class(name: str) -> Any:
    """The dialect class named ``name`` (built-in, plugin, or ``module:Class``), imported;
    :class:`ConfigError` when unknown or not importable."""
    return _import("dialect", name, DIALECTS)


def load_dialect(cfg: BackendConfig) -> Dialect:
    dialect: Dialect = _built("dialect", cfg.dialect, dialect_class(cfg.dialect), cfg)
    return dialect


async def _warm(part: object) -> None:
    """``part.warm_up()`` if it has one; a failure is logged at debug level, never raised."""
    warm = getattr(part, "warm_up", None)
    if warm is not None:
        try:
            await warm()
        except Exception as exc:  # best effort: the first request does it then
            log.debug("%s.warm_up failed: %s", type(part).__name__, exc)


@dataclass
class Backend:
    """A loaded backend: its resolved config, its dialect and its transport."""

    config: BackendConfig
    dialect: Dialect
    transport: Transport
    #: set by :meth:`aclose` / :meth:`close`: a run refuses a closed backend (:meth:`check_open`)
    closed: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the dialect's requests must be ones the transport carries (a dialect's ``SENDS``, a
        # transport's ``TAKES``, when both say): --dialect rapidocr over openai failed every page
        # as a "transport bug" after its retries, exit 1, in place of one line before anything
        sends, takes = getattr(self.dialect, "SENDS", None), getattr(self.transport, "TAKES", None)
        if sends is not None and takes is not None and sends not in takes:
            raise ConfigError(
                f"backend {self.config.name!r}: the {self.config.transport} transport cannot carry the "
                f"{getattr(self.dialect, 'name', '?')} dialect's requests ({sends}); it carries {', '.join(sorted(takes))}"
            )

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def render(self) -> RenderSpec:
        return self.dialect.render

    def preload(self) -> None:
        """Import now, in this thread, what the first request imports: the transport's optional
        ``preload()`` (the HTTP transports: httpcore and anyio's backend, which an httpx client
        imports when built and at its first connection, ~70 ms).  For a caller with the time to
        spare while its first pages render (``ocr convert``'s head start); a run without it
        does the same in :meth:`warm_up`, in a worker thread beside the first render.  Best
        effort, as the warm-up: it never raises (the first request imports what it needs)."""
        load = getattr(self.transport, "preload", None)
        if load is not None:
            try:
                load()
            except Exception as exc:
                log.debug("%s.preload failed: %s", type(self.transport).__name__, exc)

    async def warm_up(self, requests_out: asyncio.Event | None = None, writes: WritesFirst | None = None) -> None:
        """Prepare what the first request and the first reply need, each before it is needed:
        each part's own optional ``async warm_up()``.  The transport's (the OpenAI transport reads
        ``/v1/models``, the RunPod transport imports the async HTTP stack) starts at once, beside
        the first page's render; the dialect's (Chandra imports its HTML parser, ~60 ms of Python
        holding the interpreter) waits for ``requests_out``, which the scheduler sets once the
        first window of requests has gone, and then for those requests to be written (``writes``,
        :meth:`~ocrclient.concurrency.WritesFirst.drained`: the last one's upload went on beside
        the import), so it runs while they are served, not while the first pages are encoded and
        sent.  It never raises (a part that cannot warm up works as it did: the first request, or
        the first reply's parse, does it then)."""

        async def dialect() -> None:
            if requests_out is not None:
                await requests_out.wait()
                await asyncio.sleep(0)  # the request that filled the window starts first
                if writes is not None:
                    await writes.drained()
            await _warm(self.dialect)

        await asyncio.gather(_warm(self.transport), dialect())

    async def release(self) -> None:
        """Let go of what the backend holds on the running event loop, which is about to end
        (its transport's kept-alive connections there): the transport's optional ``release()``.
        The backend stays usable from another loop.  A blocking :class:`~ocrclient.Client` lent
        this backend does it as it closes; a script that ran its own loop need not (the
        connections of a loop that has ended are never used again)."""
        release = getattr(self.transport, "release", None)
        if release is not None:
            await release()

    def check_open(self) -> None:
        """Raise :class:`~ocrclient.errors.UsageError` when the backend was closed (its
        transport's connections are gone: a run through it failed every page, or the local
        engine's went on as if open)."""
        if self.closed:
            raise UsageError(f"the {self.name!r} Backend is closed: load another (ocrclient.load_backend)")

    async def aclose(self) -> None:
        self.closed = True
        await self.transport.aclose()

    def close(self) -> None:
        """:meth:`aclose` from synchronous code (raises :class:`~ocrclient.errors.UsageError`
        where an event loop is running: ``await backend.aclose()`` there)."""
        from .loops import run_sync

        run_sync(self.aclose(), "Backend.close()", "await backend.aclose()")

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_backend(name: str | None = None, /, **overrides: Any) -> Backend:
    """Load a named backend (or a TOML profile path) with optional overrides.

    ``overrides`` are :class:`~ocrclient.config.BackendConfig` fields, e.g.
    ``load_backend("runpod-chandra", endpoint_id="abc123", concurrency=16)``; one the backend
    would not read is refused (:func:`check_read`).
    """
    return loaded(name, overrides)


def loaded(name: str | None, overrides: Mapping[str, Any], label: Callable[[str, str], str] | None = None) -> Backend:
    """:func:`load_backend`'s work, a refused setting named by ``label`` (:func:`check_read`)."""
    cfg = resolve_config(name, **overrides)
    check_read(overrides, cfg, label=label or _keyword)
    dialect = load_dialect(cfg)
    transport = load_transport(cfg)
    return Backend(cfg, dialect, transport)


def configured(cfg: BackendConfig) -> tuple[bool, str]:
    """Whether a backend has what it needs to run here (no network call), and what is missing."""
    if cfg.transport == "local":
        from .engines.rapidocr import INSTALL_HINT, engine_missing

        if engine_missing():
            return False, INSTALL_HINT
        return True, "in-process"
    if cfg.transport == "runpod":
        if not cfg.resolved_endpoint_id():
            return False, f"set {cfg.endpoint_id_env or 'RUNPOD_ENDPOINT_ID'} or --endpoint-id"
        if cfg.transport_options.get("mode") != "local" and not cfg.secret():
            return False, f"set {cfg.api_key_env or 'RUNPOD_API_KEY'}"
        return True, "endpoint and key set"
    if cfg.transport in ("openai", "ocular"):
        if not cfg.resolved_base_url():
            return False, f"set {cfg.base_url_env or 'the base URL'} or --base-url"
        return True, "base URL set"
    if cfg.transport == "pool":
        members = cfg.transport_options.get("members") or []
        return (bool(members), f"{len(members)} members")
    return True, "third-party transport"


#: the settings, given explicitly, that only some backends read: (the overrides' table, the name)
READ_BY_SOME = (("", "endpoint_id"), ("", "base_url"), ("", "api_key"), ("", "api_key_env"), ("transport_options", "mode"),
                ("dialect_options", "text_layer"), ("dialect_options", "include_headers_footers"))  # fmt: skip


def _keyword(table: str, name: str) -> str:
    return f"{table}[{name!r}]" if table else name


def check_read(over: Mapping[str, Any], cfg: BackendConfig, transport: object = None, dialect: object = None,
               label: Callable[[str, str], str] = _keyword) -> None:  # fmt: skip
    """Refuse, in one line (:class:`ConfigError`), a setting given in ``over`` (overrides, or a
    pool member's table: what someone chose for this backend, not what the environment or a
    profile holds for any) that the backend's ``transport`` or ``dialect`` (each a class or an
    instance; by default the classes ``cfg`` names) would not read: ``endpoint_id`` for the local engine, RunPod's ``mode`` for a vLLM
    pod, ``text_layer`` for Chandra were taken and did nothing.  What each reads is what it
    declares (``READS``: :func:`~ocrclient.transports.base.unread_settings`; ``OPTIONS``:
    :func:`~ocrclient.dialects.base.unread_options`); one that declares nothing (a plugin's) is
    taken to read them all.  ``label(table, name)`` is the setting as the caller named it (the
    CLI: its flag; else the keyword, ``transport_options['mode']``)."""
    from .dialects.base import unread_options
    from .transports.base import unread_settings

    transport = transport_class(cfg.transport) if transport is None else transport
    dialect = dialect_class(cfg.dialect) if dialect is None else dialect
    for where, name in READ_BY_SOME:
        given = over.get(where) or {} if where else over
        if not isinstance(given, Mapping) or given.get(name) in (None, "", False):
            continue
        if where == "dialect_options":
            if unread_options(dialect, [name]):
                raise ConfigError(f"{label(where, name)} does nothing with backend {cfg.name!r}: its dialect "
                                  f"{cfg.dialect!r} reads no {name} option{_read_by('dialect', name)}")  # fmt: skip
        elif unread_settings(transport, [name]):
            raise ConfigError(f"{label(where, name)} does nothing with backend {cfg.name!r}: its transport "
                              f"{cfg.transport!r} does not read {name}{_read_by('transport', name)}")  # fmt: skip


def _read_by(kind: str, name: str) -> str:
    """`` (read by the runpod transport)``: the built-in transports (dialects) that read ``name``."""
    from .dialects.base import unread_options
    from .transports.base import unread_settings

    readers = []
    for each in TRANSPORTS if kind == "transport" else DIALECTS:
        try:
            cls = transport_class(each) if kind == "transport" else dialect_class(each)
        except OcrError:  # (an extra not installed)
            continue
        if not (unread_settings(cls, [name]) if kind == "transport" else unread_options(cls, [name])):
            readers.append(each)
    if not readers:
        return ""
    names = readers[0] if len(readers) == 1 else f"{', '.join(readers[:-1])} and {readers[-1]}"
    return f" (read by the {names} {kind}{'s' if len(readers) > 1 else ''})"
