"""The client objects: :class:`AsyncClient` and its blocking twin :class:`Client`.

A client holds one backend (its transport's connections), one page cache and one concurrency
limit across calls, the way ``httpx.AsyncClient`` / ``openai.AsyncOpenAI`` hold theirs: make one
per application (per event loop for :class:`AsyncClient`), call it many times, close it at the end
(``with`` / ``async with``, or ``close()`` / ``aclose()``).  Every call on one client shares its
concurrency limit: fifty coroutines converting at once through one :class:`AsyncClient` with
``concurrency=8`` keep at most eight pages in flight between them.

Settings (all keyword-only, besides the backend's name) are laid over the backend's profile by the
one precedence rule of :mod:`ocrclient.config` (argument > environment > user config > profile):
``timeout`` is the time one attempt at a page may take (the profile's ``attempt_timeout_s``: one
request and its reply, a RunPod job's polling included); ``page_deadline_s`` caps a page's
attempts together, and until the backend has answered once, attempts get ``cold_start_s`` on top.

Example::

    import ocrclient

    with ocrclient.Client("local") as client:
        first = client.convert("a.pdf")
        second = client.convert("b.png", pages="1")

    async with ocrclient.AsyncClient("runpod-chandra", concurrency=16) as client:
        doc = await client.convert("a.pdf")
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Mapping
from contextlib import aclosing, asynccontextmanager
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .concurrency import AdaptiveLimiter
from .config import SchedulerOptions
from .document import Document, Page
from .errors import ConfigError, OutputError, UsageError
from .events import Event
from .loops import LoopThread, refuse_in_loop
from .pages import RenderPool
from .registry import Backend, load_backend
from .run import CacheOption, Conversion, ConvertResult, Inputs, open_cache, worth_writing

if TYPE_CHECKING:
    import asyncio

    from .exporters.sink import OutputWriter

__all__ = ["AsyncClient", "Client"]

#: the client settings that are not :class:`~ocrclient.config.BackendConfig` fields
_CLIENT_ONLY = ("backend", "timeout", "concurrency", "cache", "scheduler_options", "isolate_render")
#: the settings a loaded :class:`Backend` can still take: they are the scheduler's
_SCHEDULER_SETTINGS = ("max_attempts", "attempt_timeout_s", "page_deadline_s", "cold_start_s", "unreachable_s")


@asynccontextmanager
async def _partial_written(conversion: Conversion, outputs: OutputWriter | None) -> AsyncIterator[None]:
    """When the run stops early (a :class:`~ocrclient.RunAborted`, a cancel, Ctrl-C, any error),
    write what finished of the documents not yet written, as ``ocr convert`` does: partial
    results are kept (a document none of whose pages finished has none to write).  A caller
    that stops iterating on purpose is not a stopped run."""
    import asyncio

    try:
        yield
    except (Exception, asyncio.CancelledError, KeyboardInterrupt):
        if outputs is not None:
            for result in conversion.partial:
                if worth_writing(result, outputs):
                    outputs.finish(result.source, result.document)
                else:  # (nothing to write: what its sink holds is let go)
                    outputs.drop(result.source)
        raise


def _load(
    backend: str | Path | Backend | None, overrides: dict[str, Any], timeout: float | None
) -> tuple[Backend, bool, dict[str, Any]]:
    """The client's backend, whether the client owns it (and closes it), and the scheduler
    options the settings add (for a loaded backend, whose config is fixed)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if timeout is not None:
        if not isinstance(timeout, Real) or isinstance(timeout, bool) or not timeout > 0:
            raise ConfigError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if given.setdefault("attempt_timeout_s", timeout) != timeout:
            raise ConfigError("timeout= and attempt_timeout_s= are the same setting: give one")
    if not isinstance(backend, Backend):
        return load_backend(None if backend is None else str(backend), **given), True, {}
    backend.check_open()
    fixed = sorted(set(given) - set(_SCHEDULER_SETTINGS))
    if fixed:
        raise UsageError(
            f"a loaded Backend's settings are fixed: pass {', '.join(fixed)} to load_backend() "
            "or give the client the backend's name"
        )
    return backend, False, given


class AsyncClient:
    """Converts documents through one backend, from async code; reusable across calls and safe
    to share between coroutines of one event loop (all its calls share one concurrency limit).

    ``backend`` is a backend's name (``"local"``, ``"runpod-chandra"``), a TOML profile path, or
    a :class:`~ocrclient.Backend` from :func:`~ocrclient.load_backend` (yours to close; of the
    backend's settings only ``timeout``, ``max_attempts``, ``page_deadline_s``, ``cold_start_s``
    and ``unreachable_s`` apply to it; the client's own, below, apply to any backend).
    ``None`` picks ``$OCRCLIENT_BACKEND``, the user config's ``default_backend``, else ``local``.
    ``concurrency`` is the most pages in flight at once across every call (default: the
    profile's); ``timeout`` the seconds one attempt at a page may take (the profile's
    ``attempt_timeout_s``); ``cache`` the resume cache (``True``: the default folder; ``False``:
    none; a folder; a :class:`~ocrclient.cache.PageCache`).  The other keywords are the
    :class:`~ocrclient.config.BackendConfig` fields of the same names.  ``scheduler_options``
    tunes the :class:`~ocrclient.scheduler.Scheduler` (e.g. ``backoff_initial_s``).
    ``isolate_render=True`` renders pages in worker processes instead of threads: for untrusted
    PDFs in a long-lived process, where a PDFium crash must raise
    :class:`~ocrclient.pages.RenderPoolError` rather than end the process.
    """

    def __init__(
        self,
        backend: str | Path | Backend | None = None,
        *,
        endpoint_id: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        cache: CacheOption = True,
        transport: str | None = None,
        dialect: str | None = None,
        render: Mapping[str, Any] | None = None,
        sampling: Mapping[str, Any] | None = None,
        transport_options: Mapping[str, Any] | None = None,
        dialect_options: Mapping[str, Any] | None = None,
        max_attempts: int | None = None,
        attempt_timeout_s: float | None = None,
        page_deadline_s: float | None = None,
        cold_start_s: float | None = None,
        unreachable_s: float | None = None,
        api_key_env: str | None = None,
        endpoint_id_env: str | None = None,
        base_url_env: str | None = None,
        model_env: str | None = None,
        price_per_gpu_second: float | None = None,
        price_per_hour: float | None = None,
        scheduler_options: Mapping[str, Any] | None = None,
        isolate_render: bool = False,
    ) -> None:
        if concurrency is not None and (not isinstance(concurrency, Integral) or isinstance(concurrency, bool) or concurrency < 1):
            raise ConfigError(f"concurrency must be a whole number of pages, at least 1, not {concurrency!r}")
        if timeout is not None and (scheduler_options or {}).get("attempt_timeout_s", timeout) is not timeout and (
            (scheduler_options or {})["attempt_timeout_s"] != timeout
        ):  # (a NaN timeout alone is not two settings: it is refused as a bad value)
            raise ConfigError("timeout= and scheduler_options['attempt_timeout_s'] are the same setting: give one")
        overrides = {k: v for k, v in locals().items() if k in BACKEND_SETTINGS and k not in _CLIENT_ONLY}
        be, self._owns_backend, extra = _load(backend, overrides, timeout)
        self._backend = be
        self._cache = open_cache(cache)
        # (a loaded backend's max_attempts, page_deadline_s, ... come as scheduler options: checked alike)
        self._scheduler_options = {**SchedulerOptions.checked(extra, root=""), **SchedulerOptions.checked(scheduler_options or {})}
        self._isolate_render = isolate_render
        self._concurrency = int(concurrency) if concurrency is not None else be.config.concurrency
        self._limiter: AdaptiveLimiter | None = None
        #: the render pool every call renders on (made at the first call, closed with the client):
        #: calls at once each with a pool of their own held as many render threads, and as many
        #: of the C library's per-thread memory arenas (20 calls at once: 555 MB peak against
        #: 145 MB for one call over the same pages; benchmarks/README.md)
        self._render_pool: RenderPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} backend={self._backend.name!r} concurrency={self._concurrency}{state}>"

    @property
    def backend(self) -> Backend:
        """The loaded backend (its resolved settings are ``backend.config``)."""
        return self._backend

    @property
    def concurrency(self) -> int:
        """The most pages in flight at once, across every call on this client."""
        return self._concurrency

    def _conversion(
        self,
        inputs: Inputs,
        *,
        pages: str | None,
        password: str | None,
        on_event: Callable[[Event], None] | None,
        outputs: OutputWriter | None = None,
        document_mode: bool = False,
        one_document: bool = False,
    ) -> Conversion:
        import asyncio

        if self._closed:
            raise UsageError(f"this {type(self).__name__} is closed")
        if on_event is not None and not callable(on_event):
            raise ConfigError(f"on_event takes a function of one event, not {on_event!r}")
        if inspect.iscoroutinefunction(on_event) or inspect.iscoroutinefunction(type(on_event).__call__):
            # (it was never awaited: no event reached it, and no word but a RuntimeWarning)
            raise ConfigError("on_event is called on the run's event loop and not awaited: give a plain function, "
                              "not an async def (it may put each event on an asyncio.Queue)")  # fmt: skip
        loop = asyncio.get_running_loop()
        if self._limiter is None:
            self._loop, self._limiter = loop, AdaptiveLimiter(self._concurrency)
        elif loop is not self._loop:
            raise UsageError(
                "an AsyncClient belongs to the event loop it was first used in: make one per loop "
                "(or use ocrclient.Client, which runs a loop of its own)"
            )
        pool = self._render_pool
        if pool is None or pool.closed or pool.broken:  # (an isolated pool whose worker died is replaced)
            if pool is not None and not pool.closed:
                pool.close_when_idle()  # (when its calls, which have failed, have ended)
            pool = self._render_pool = RenderPool(isolated=self._isolate_render)
        return Conversion(
            inputs, backend=self._backend, pages=pages, password=password, cache=self._cache,
            on_event=on_event, scheduler_options=dict(self._scheduler_options),
            document_mode=document_mode, outputs=outputs, limiter=self._limiter,
            isolate_render=self._isolate_render, shared_pool=pool, one_document=one_document,
        )  # fmt: skip

    async def convert(
        self,
        source: str | Path | bytes,
        *,
        pages: str | None = None,
        password: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        outputs: OutputWriter | None = None,
        document_mode: bool = False,
    ) -> Document:
        """Convert one document: every page present, in order (a page that could not be read is
        ``failed`` with its error).  ``pages`` is a range such as ``"1-3,7"``; ``on_event``
        receives each :data:`~ocrclient.events.Event`; ``outputs`` (an
        :class:`~ocrclient.exporters.sink.OutputWriter`) writes the files as pages finish;
        ``document_mode`` sends the PDF whole (see :mod:`ocrclient.docmode`).  With ``outputs``, a
        file that could not be written raises :class:`~ocrclient.OutputError` once the rest are
        (it holds the document); a run that stops still writes what finished."""
        conversion = self._conversion(
            source, pages=pages, password=password, on_event=on_event, outputs=outputs,
            document_mode=document_mode, one_document=True,
        )  # fmt: skip
        async with _partial_written(conversion, outputs), aclosing(conversion.__aiter__()) as results:
            async for result in results:
                if result.output_errors:
                    raise OutputError(result.document, result.output_errors, result.outputs)
                return result.document
        raise RuntimeError("no document produced")  # pragma: no cover - inputs raise first

    async def convert_many(
        self,
        inputs: Inputs,
        *,
        pages: str | None = None,
        password: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        outputs: OutputWriter | None = None,
        document_mode: bool = False,
    ) -> AsyncGenerator[ConvertResult, None]:
        """Convert many documents (paths, folders, globs, bytes), yielding each
        :class:`~ocrclient.ConvertResult` as its last page is done, in input order.  Every input
        is opened and checked first (:class:`~ocrclient.InputError` before any page is sent).
        With ``outputs``, each result lists the files written and ``output_errors`` those that
        could not be; a run that stops still writes what finished."""
        conversion = self._conversion(
            inputs, pages=pages, password=password, on_event=on_event, outputs=outputs,
            document_mode=document_mode,
        )  # fmt: skip
        async with _partial_written(conversion, outputs), aclosing(conversion.__aiter__()) as results:
            async for result in results:
                yield result

    async def stream_pages(
        self,
        source: str | Path | bytes,
        *,
        pages: str | None = None,
        password: str | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> AsyncGenerator[Page, None]:
        """The pages of one document as they finish (not in order), for streaming consumers."""
        conversion = self._conversion(source, pages=pages, password=password, on_event=on_event, one_document=True)
        async with aclosing(conversion.iter_pages()) as results:
            async for page in results:
                yield page

    async def aclose(self) -> None:
        """Close the backend (unless it was passed in loaded); later calls raise UsageError."""
        if self._closed:
            return
        import asyncio

        try:
            await self._close_backend()
        finally:
            await asyncio.to_thread(self._close_pool)

    async def _close_backend(self) -> None:
        self._closed = True
        if self._owns_backend:
            await self._backend.aclose()

    def _close_pool(self) -> None:
        """Close the render pool: now, or when the calls still running end (they finish on it
        rather than meet it closed); its workers end once a render under way is done."""
        pool, self._render_pool = self._render_pool, None
        if pool is not None:
            pool.close_when_idle()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


#: the settings of a client (the parameters of :class:`AsyncClient` and :class:`Client`)
BACKEND_SETTINGS: tuple[str, ...] = tuple(inspect.signature(AsyncClient.__init__).parameters)[1:]


class Client:
    """The blocking twin of :class:`AsyncClient` (same settings): ``with Client("local") as c:
    c.convert("a.pdf")``.  Its calls run on an event loop in a thread of its own, so the backend's
    connections, the cache and one concurrency limit live across calls and across the threads
    that call it.  Calling it where an event loop runs raises :class:`~ocrclient.UsageError`
    naming the async twin, except in a Jupyter/IPython kernel (see :mod:`ocrclient.loops`)."""

    def __init__(
        self,
        backend: str | Path | Backend | None = None,
        *,
        endpoint_id: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        cache: CacheOption = True,
        transport: str | None = None,
        dialect: str | None = None,
        render: Mapping[str, Any] | None = None,
        sampling: Mapping[str, Any] | None = None,
        transport_options: Mapping[str, Any] | None = None,
        dialect_options: Mapping[str, Any] | None = None,
        max_attempts: int | None = None,
        attempt_timeout_s: float | None = None,
        page_deadline_s: float | None = None,
        cold_start_s: float | None = None,
        unreachable_s: float | None = None,
        api_key_env: str | None = None,
        endpoint_id_env: str | None = None,
        base_url_env: str | None = None,
        model_env: str | None = None,
        price_per_gpu_second: float | None = None,
        price_per_hour: float | None = None,
        scheduler_options: Mapping[str, Any] | None = None,
        isolate_render: bool = False,
    ) -> None:
        self._async = AsyncClient(**settings_of(locals()))
        self._thread = LoopThread()
        self._finalizer = weakref.finalize(self, self._thread.stop_soon)

    def __repr__(self) -> str:
        return repr(self._async).replace("<AsyncClient", "<Client", 1)

    @property
    def backend(self) -> Backend:
        """The loaded backend (its resolved settings are ``backend.config``)."""
        return self._async.backend

    @property
    def concurrency(self) -> int:
        """The most pages in flight at once, across every call on this client."""
        return self._async.concurrency

    def convert(
        self,
        source: str | Path | bytes,
        *,
        pages: str | None = None,
        password: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        outputs: OutputWriter | None = None,
        document_mode: bool = False,
    ) -> Document:
        """Convert one document (see :meth:`AsyncClient.convert`)."""
        refuse_in_loop("Client.convert()", "`await AsyncClient.convert(...)` (or ocrclient.aconvert)")
        return self._thread.call(
            self._async.convert(
                source, pages=pages, password=password, on_event=on_event, outputs=outputs,
                document_mode=document_mode,
            )
        )

    def convert_many(
        self,
        inputs: Inputs,
        *,
        pages: str | None = None,
        password: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        outputs: OutputWriter | None = None,
        document_mode: bool = False,
    ) -> Generator[ConvertResult, None, None]:
        """Convert many documents, yielding each result in input order as it is done (see
        :meth:`AsyncClient.convert_many`).  Closing the iterator early stops the run."""
        refuse_in_loop(
            "Client.convert_many()", "`async for ... in AsyncClient.convert_many(...)` (or ocrclient.aconvert_many)"
        )
        return self._thread.iterate(
            self._async.convert_many(
                inputs, pages=pages, password=password, on_event=on_event, outputs=outputs,
                document_mode=document_mode,
            )
        )

    def stream_pages(
        self,
        source: str | Path | bytes,
        *,
        pages: str | None = None,
        password: str | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> Generator[Page, None, None]:
        """The pages of one document as they finish, not in order (see
        :meth:`AsyncClient.stream_pages`)."""
        refuse_in_loop(
            "Client.stream_pages()", "`async for ... in AsyncClient.stream_pages(...)` (or ocrclient.astream_pages)"
        )
        return self._thread.iterate(
            self._async.stream_pages(source, pages=pages, password=password, on_event=on_event)
        )

    def close(self) -> None:
        """Close the backend and end the client's thread; later calls raise UsageError (and so
        does this one from inside one of the client's runs, an ``on_event`` callback)."""
        if self._thread.in_thread():  # (it froze the process: the run waited on its own close)
            raise UsageError("a client cannot be closed from inside one of its own runs (an on_event callback); "
                             "close it after the run returns")
        if self._finalizer.detach() is None:
            return  # closed already
        try:
            self._thread.call(self._end())
        finally:
            self._thread.stop()
            self._async._close_pool()  # after: the runs' page streams are closed by then

    async def _end(self) -> None:
        """The client closed on its loop, which ends next: a call still running ends with
        :class:`~ocrclient.errors.CancelledRunError` (cancelled first: with the backend closed
        under it, it could end as a document of failed pages instead, as a race decided), and a
        backend lent to it lets go of the connections it made there (it stays the caller's,
        usable from another loop)."""
        self._thread.close_to_new_calls()
        await self._thread.cancel_calls()
        await self._async._close_backend()
        await self._async.backend.release()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def settings_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The client settings among ``values`` (a shortcut's ``locals()``), to build a client."""
    return {k: values[k] for k in BACKEND_SETTINGS if k in values}
