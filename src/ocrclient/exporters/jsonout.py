"""JSON writer: the :class:`~ocrclient.document.Document` model as pydantic dumps it (the
output contract; schema in ``schema/document.schema.json``), written page by page.

The file is byte for byte ``doc.model_dump_json(indent=2)`` and a newline, but that string is
never built whole: dumping a 250-page document with word boxes at once held ~110 MB beside the
document (twice its 57 MB of JSON) at the end of the run, the run's peak.  Each page is dumped
on its own and indented into the document's ``pages`` list as it is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..document import Document
from ._io import atomic_write

#: where the pages go in the dump of the document without them (a JSON string holds no raw
#: newline, so this is the top-level key and nothing inside a value)
_EMPTY_PAGES = '\n  "pages": []'


def write(doc: Document, path: Path) -> Path:
    return atomic_write(path, dump_pieces(doc))


def dump_pieces(doc: Document) -> Iterator[str]:
    """``doc.model_dump_json(indent=2) + "\\n"`` in pieces: the document's own fields, then one
    page at a time."""
    if not doc.pages:
        yield doc.model_dump_json(indent=2) + "\n"
        return
    head, found, tail = doc.model_copy(update={"pages": []}).model_dump_json(indent=2).partition(_EMPTY_PAGES)
    if not found:  # (a pydantic that lays out JSON otherwise: one string, as before)
        yield doc.model_dump_json(indent=2) + "\n"
        return
    yield head + '\n  "pages": ['
    for i, page in enumerate(doc.pages):
        yield ("," if i else "") + "\n    " + page.model_dump_json(indent=2).replace("\n", "\n    ")
    yield "\n  ]" + tail + "\n"
