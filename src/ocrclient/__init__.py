"""ocrclient: PDFs and images -> markdown + layout blocks, via OCR models on remote GPUs
(RunPod serverless, RunPod pods running vLLM, Modal) or the embedded CPU engine.

Example::

    import ocrclient

    doc = ocrclient.convert("report.pdf")                          # embedded CPU engine
    doc = ocrclient.convert("report.pdf", backend="runpod-chandra", concurrency=16)
    print(doc.markdown)
    for page in doc.pages:
        print(page.page, page.status, [b.bbox for b in page.blocks])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "Block",
    "Document",
    "Page",
    "PageError",
    "Usage",
    "__version__",
    "aconvert",
    "aconvert_many",
    "astream_pages",
    "convert",
    "load_backend",
]

if TYPE_CHECKING:
    from .api import aconvert, aconvert_many, astream_pages, convert
    from .document import Block, Document, Page, PageError, Usage
    from .registry import Backend, load_backend

_LAZY = {
    "aconvert": "api",
    "aconvert_many": "api",
    "astream_pages": "api",
    "convert": "api",
    "Block": "document",
    "Document": "document",
    "Page": "document",
    "PageError": "document",
    "Usage": "document",
    "Backend": "registry",
    "load_backend": "registry",
}


def __getattr__(name: str) -> Any:  # lazy: `import ocrclient` stays cheap (no PDFium, no SDK)
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'ocrclient' has no attribute {name!r}")
