"""Markdown writer: every page's markdown in order; failed pages leave a visible comment.

``render(doc, page_separators=True)`` puts ``<!-- page N -->`` before each page so a reader (or
a diff) can find page boundaries.
"""

from __future__ import annotations

from pathlib import Path

from ..document import Document
from ._io import atomic_write


def render(doc: Document, *, page_separators: bool = False) -> str:
    parts: list[str] = []
    for page in doc.pages:
        if page_separators:
            parts.append(f"<!-- page {page.page} -->")
        if page.status == "failed":
            msg = page.error.message if page.error else "failed"
            parts.append(f"<!-- page {page.page} failed: {msg} -->")
        else:
            body = page.markdown.strip()
            if page.status == "degraded":
                parts.append(f"<!-- page {page.page} degraded: {'; '.join(page.warnings)} -->")
            if body:
                parts.append(body)
    return "\n\n".join(parts).strip() + "\n"


def write(doc: Document, path: Path, *, page_separators: bool = False) -> Path:
    return atomic_write(path, render(doc, page_separators=page_separators))
