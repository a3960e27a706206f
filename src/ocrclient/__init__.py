"""ocrclient: PDFs and images -> markdown + layout blocks, via OCR models on remote GPUs
(RunPod serverless, RunPod pods running vLLM, Modal) or the embedded CPU engine.

Example::

    import ocrclient

    doc = ocrclient.convert("report.pdf")                          # embedded CPU engine
    doc = ocrclient.convert("report.pdf", backend="runpod-chandra", concurrency=16)
    print(doc.markdown)
    for page in doc.pages:
        print(page.page, page.status, [b.bbox for b in page.blocks])

    with ocrclient.Client("runpod-chandra") as client:             # one backend, many calls
        docs = [client.convert(path) for path in ("a.pdf", "b.pdf")]

The public names (``__all__``, also what ``dir(ocrclient)`` lists) are documented in
docs/python-api.md; they are imported on first use, so ``import ocrclient`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AuthError",
    "Backend",
    "BadOutputError",
    "Block",
    "CancelledRunError",
    "Client",
    "ConfigError",
    "ConvertResult",
    "Document",
    "DocumentDone",
    "EndpointDownError",
    "EndpointError",
    "Event",
    "InputError",
    "OcrError",
    "OutputError",
    "OutputWriter",
    "Page",
    "PageCache",
    "PageDone",
    "PageError",
    "PageFailed",
    "PageRetried",
    "PageStarted",
    "PermanentError",
    "RenderPoolError",
    "RunAborted",
    "RunStats",
    "TransientError",
    "Usage",
    "UsageError",
    "__version__",
    "aconvert",
    "aconvert_many",
    "astream_pages",
    "convert",
    "convert_many",
    "load_backend",
    "stream_pages",
]

if TYPE_CHECKING:
    from .api import (
        aconvert,
        aconvert_many,
        astream_pages,
        convert,
        convert_many,
        load_backend,
        stream_pages,
    )
    from .cache import PageCache
    from .client import AsyncClient, Client
    from .document import Block, Document, Page, PageError, RunStats, Usage
    from .errors import (
        AuthError,
        BadOutputError,
        CancelledRunError,
        ConfigError,
        EndpointDownError,
        EndpointError,
        InputError,
        OcrError,
        OutputError,
        PermanentError,
        RunAborted,
        TransientError,
        UsageError,
    )
    from .events import DocumentDone, Event, PageDone, PageFailed, PageRetried, PageStarted
    from .exporters.sink import OutputWriter
    from .pages import RenderPoolError
    from .registry import Backend
    from .run import ConvertResult

#: public name -> the module (below ``ocrclient``) it lives in
_LAZY = {
    "aconvert": "api",
    "aconvert_many": "api",
    "astream_pages": "api",
    "convert": "api",
    "convert_many": "api",
    "load_backend": "api",
    "stream_pages": "api",
    "AsyncClient": "client",
    "Client": "client",
    "Backend": "registry",
    "ConvertResult": "run",
    "PageCache": "cache",
    "OutputWriter": "exporters.sink",
    "Block": "document",
    "Document": "document",
    "Page": "document",
    "PageError": "document",
    "RunStats": "document",
    "Usage": "document",
    "DocumentDone": "events",
    "Event": "events",
    "PageDone": "events",
    "PageFailed": "events",
    "PageRetried": "events",
    "PageStarted": "events",
    "AuthError": "errors",
    "BadOutputError": "errors",
    "CancelledRunError": "errors",
    "ConfigError": "errors",
    "EndpointDownError": "errors",
    "EndpointError": "errors",
    "InputError": "errors",
    "OcrError": "errors",
    "OutputError": "errors",
    "PermanentError": "errors",
    "TransientError": "errors",
    "UsageError": "errors",
    "RunAborted": "errors",
    "RenderPoolError": "pages",
}


def __getattr__(name: str) -> Any:  # lazy: `import ocrclient` stays cheap (no PDFium, no SDK)
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value  # once: later lookups skip this function
        return value
    raise AttributeError(f"module 'ocrclient' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names (``__all__``) and the module's own dunder attributes: not the names
    this file imports for itself (``Any``, ``annotations``, ...), which completion would offer."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__") and name.endswith("__"))})
