"""JSON writer: the :class:`~ocrclient.document.Document` model as pydantic dumps it (the
output contract; schema in ``schema/document.schema.json``)."""

from __future__ import annotations

from pathlib import Path

from ..document import Document
from ._io import atomic_write


def write(doc: Document, path: Path) -> Path:
    return atomic_write(path, doc.model_dump_json(indent=2) + "\n")
