"""JSON writer: the :class:`~ocrclient.document.Document` model as pydantic dumps it (the
output contract; schema in ``schema/document.schema.json``), written page by page.

The file is byte for byte ``doc.model_dump_json(indent=2)`` and a newline, but that string is
never built whole: dumping a 250-page document with word boxes at once held ~110 MB beside the
document (twice its 57 MB of JSON) at the end of the run, the run's peak.  Each page is dumped
on its own and indented into the document's ``pages`` list as it is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from ..document import Document, Page
from ._io import atomic_write

#: where the pages go in the dump of the document without them (a JSON string holds no raw
#: newline, so this is the top-level key and nothing inside a value)
_EMPTY_PAGES = '\n  "pages": []'


def write(doc: Document, path: Path, *, pieces: Callable[[Page], str] | None = None) -> Path:
    """Write ``doc`` to ``path``; ``pieces`` gives each page's piece (:func:`page_piece`) when
    the caller made them already (a run's outputs spilled as its pages finished)."""
    return atomic_write(path, dump_pieces(doc, pieces or page_piece))


def page_piece(page: Page) -> str:
    """``page`` as it stands in the document's JSON: dumped with ``indent=2`` and indented into
    the ``pages`` list."""
    return page.model_dump_json(indent=2).replace("\n", "\n    ")


def dump_pieces(doc: Document, pieces: Callable[[Page], str] = page_piece) -> Iterator[str]:
    """``doc.model_dump_json(indent=2) + "\\n"`` in pieces: the document's own fields, then one
    page at a time (each page's piece from ``pieces``)."""
    if not doc.pages:
        yield doc.model_dump_json(indent=2) + "\n"
        return
    head, found, tail = doc.model_copy(update={"pages": []}).model_dump_json(indent=2).partition(_EMPTY_PAGES)
    if not found:  # (a pydantic that lays out JSON otherwise: one string, as before)
        yield doc.model_dump_json(indent=2) + "\n"
        return
    yield head + '\n  "pages": ['
    for i, page in enumerate(doc.pages):
        yield ("," if i else "") + "\n    " + pieces(page)
    yield "\n  ]" + tail + "\n"


#: how the file starts: the schema version, then the source (``Document``'s first fields)
_HEAD = re.compile(r'\{\s*"schema_version":\s*"[^"]*",\s*"source":\s*("(?:[^"\\]|\\.)*")')


def written_for(path: Path, name: str) -> bool:
    """Whether ``path`` is a document JSON this module wrote for the input named ``name`` (its
    head is read, not the whole file).  ``ocr convert`` takes the other
    outputs beside such a file for a run's too when its manifest could not record them (a full
    disk): they were written together."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    match = _HEAD.match(head)
    if match is None:
        return False
    try:
        source = json.loads(match.group(1))
    except ValueError:
        return False
    return isinstance(source, str) and source == name
