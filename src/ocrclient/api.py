"""The Python entry points: one-call shortcuts over a client, and :func:`load_backend`.

Each shortcut makes a client with its settings, makes the one call, and closes the client
(its backend and connections) before it returns; to convert many times, keep a
:class:`~ocrclient.Client` / :class:`~ocrclient.AsyncClient` instead.  The keywords are the
client's settings (:class:`~ocrclient.AsyncClient`: ``backend``, ``endpoint_id``, ``base_url``,
``api_key``, ``model``, ``concurrency``, ``timeout``, ``cache``, the other
:class:`~ocrclient.config.BackendConfig` fields) plus the call's (``pages``, ``password``,
``on_event``, ``outputs``, ``document_mode``).

The blocking ones (:func:`convert`, :func:`convert_many`, :func:`stream_pages`) raise
:class:`~ocrclient.errors.UsageError` naming their ``a``-twin when called where an event loop
is running, except in a Jupyter/IPython kernel (:mod:`ocrclient.loops` has the rule).

Example::

    >>> import ocrclient
    >>> doc = ocrclient.convert("examples/sample.pdf", pages="1")      # doctest: +SKIP
    >>> doc.pages[0].status, doc.pages[0].blocks[0].bbox                 # doctest: +SKIP
    ('ok', [72.0, 70.1, 301.4, 96.5])
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import registry
from .client import AsyncClient, Client, settings_of
from .document import Document, Page
from .events import Event
from .loops import refuse_in_loop
from .registry import Backend
from .run import CacheOption, Conversion, ConvertResult, Inputs, prepare

if TYPE_CHECKING:
    from .exporters.sink import OutputWriter

__all__ = [
    "Conversion",
    "ConvertResult",
    "aconvert",
    "aconvert_many",
    "astream_pages",
    "convert",
    "convert_many",
    "load_backend",
    "prepare",
    "stream_pages",
]

_T = TypeVar("_T")


def _closing(client: Client, items: Iterator[_T]) -> Generator[_T, None, None]:
    """``items``, then ``client`` closed (also when the caller stops early)."""
    with client:
        yield from items


def convert(
    source: str | Path | bytes,
    *,
    backend: str | Path | Backend | None = None,
    pages: str | None = None,
    password: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    outputs: OutputWriter | None = None,
    document_mode: bool = False,
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
) -> Document:
    """Convert one document: ``ocrclient.convert("a.pdf", backend="runpod-chandra")``.  Blocking:
    in async code ``await ocrclient.aconvert(...)``, which does not block the loop."""
    refuse_in_loop("ocrclient.convert()", "`await ocrclient.aconvert(...)`")
    with Client(**settings_of(locals())) as client:
        return client.convert(source, pages=pages, password=password, on_event=on_event,
                              outputs=outputs, document_mode=document_mode)  # fmt: skip


def convert_many(
    inputs: Inputs,
    *,
    backend: str | Path | Backend | None = None,
    pages: str | None = None,
    password: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    outputs: OutputWriter | None = None,
    document_mode: bool = False,
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
) -> Generator[ConvertResult, None, None]:
    """Convert many documents, yielding each :class:`ConvertResult` in input order as it is
    done (blocking iterator; :func:`aconvert_many` is the async twin)."""
    refuse_in_loop("ocrclient.convert_many()", "`async for ... in ocrclient.aconvert_many(...)`")
    client = Client(**settings_of(locals()))
    return _closing(client, client.convert_many(inputs, pages=pages, password=password, on_event=on_event,
                                                outputs=outputs, document_mode=document_mode))  # fmt: skip


def stream_pages(
    source: str | Path | bytes,
    *,
    backend: str | Path | Backend | None = None,
    pages: str | None = None,
    password: str | None = None,
    on_event: Callable[[Event], None] | None = None,
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
) -> Generator[Page, None, None]:
    """The pages of one document as they finish, not in order (blocking iterator;
    :func:`astream_pages` is the async twin)."""
    refuse_in_loop("ocrclient.stream_pages()", "`async for ... in ocrclient.astream_pages(...)`")
    client = Client(**settings_of(locals()))
    return _closing(client, client.stream_pages(source, pages=pages, password=password, on_event=on_event))


async def aconvert(
    source: str | Path | bytes,
    *,
    backend: str | Path | Backend | None = None,
    pages: str | None = None,
    password: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    outputs: OutputWriter | None = None,
    document_mode: bool = False,
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
) -> Document:
    """Convert one document (async).  The backend and the render pool are closed before it
    returns."""
    async with AsyncClient(**settings_of(locals())) as client:
        return await client.convert(source, pages=pages, password=password, on_event=on_event,
                                    outputs=outputs, document_mode=document_mode)  # fmt: skip


async def aconvert_many(
    inputs: Inputs,
    *,
    backend: str | Path | Backend | None = None,
    pages: str | None = None,
    password: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    outputs: OutputWriter | None = None,
    document_mode: bool = False,
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
) -> AsyncGenerator[ConvertResult, None]:
    """Convert many documents through one backend and one concurrency limit, yielding each
    :class:`ConvertResult` in input order as soon as its last page is done."""
    async with AsyncClient(**settings_of(locals())) as client:
        results = client.convert_many(inputs, pages=pages, password=password, on_event=on_event,
                                      outputs=outputs, document_mode=document_mode)  # fmt: skip
        async with aclosing(results):
            async for result in results:
                yield result


async def astream_pages(
    source: str | Path | bytes,
    *,
    backend: str | Path | Backend | None = None,
    pages: str | None = None,
    password: str | None = None,
    on_event: Callable[[Event], None] | None = None,
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
) -> AsyncGenerator[Page, None]:
    """Pages of one document as they finish (out of order) — for streaming consumers."""
    async with AsyncClient(**settings_of(locals())) as client:
        pages_done = client.stream_pages(source, pages=pages, password=password, on_event=on_event)
        async with aclosing(pages_done):
            async for page in pages_done:
                yield page


def load_backend(
    name: str | Path | None = None,
    /,
    *,
    endpoint_id: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    concurrency: int | None = None,
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
) -> Backend:
    """Load a backend by name (or TOML profile path) with settings laid over its profile, e.g.
    ``load_backend("runpod-chandra", endpoint_id="abc123")``; close it with ``close()`` /
    ``aclose()`` or ``with`` / ``async with``.  The keywords are the
    :class:`~ocrclient.config.BackendConfig` fields of the same names."""
    given = {k: v for k, v in locals().items() if k != "name"}
    return registry.load_backend(None if name is None else str(name), **given)
