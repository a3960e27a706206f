"""A document's pages as its text outputs write them, made as each page finishes and kept on
disk until the files are written: what lets a run let go of its pages' blocks.

The lean mode of :class:`ocrclient.exporters.sink.OutputWriter` (``lean=True``; ``ocr convert
-o`` runs with it).  A text-layer page holds ~1200 words, each a block with its box (~1.3 MB of
memory a page); a document's pages were all held, blocks and all, until its files were written
at its end (a 2000-page book: ~2.5 GB).  In lean mode, as each page finishes (once its figure
crops are cut and it is in the searchable PDF), :class:`PageSpill` appends what the end needs of
its blocks to one hidden file beside the outputs (``.<stem>.<random>.spill``):

* ``json``: the page's piece of the document's JSON (:func:`ocrclient.exporters.jsonout.page_piece`);
* ``md``: the page's markdown with its figure references linked to their crops
  (:func:`ocrclient.exporters.markdown.page_markdown`);

and the sink drops the page's blocks (``page.blocks = []``: the page the run keeps, and the
:class:`~ocrclient.document.Document` it hands back, keep everything else, their markdown too).
At the end the files are written as they always are, each page's piece read back, in page order
whatever order the pages finished in: the same bytes.  The text (``txt``) needs no block, the
searchable PDF (``pdf``) has its pages placed as they finish.  The viewer (``html``) and plugins'
formats are written from the whole document (the viewer's legend counts every page's blocks,
each page draws its boxes, and it holds every page image at once anyway): a document written as
one of those keeps its blocks (:data:`LEAN_FORMATS`).

A page the document holds is read back only if it is the very page that was spilled; any other
(a page failed when the run stopped, a page never reported) is written from itself.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..document import Page

__all__ = ["LEAN_FORMATS", "PageSpill"]

#: the formats written from spilled pages (or none of their blocks): a document written in
#: others only keeps its pages' blocks
LEAN_FORMATS = frozenset({"md", "json", "txt", "pdf"})


@dataclass(frozen=True)
class _Entry:
    page: Page  # (held: its blocks are gone, and the run holds it anyway)
    offset: int
    json_bytes: int
    md_bytes: int


class PageSpill:
    """The spilled pieces of one document's pages (see the module docstring); ``folder`` and
    ``stem`` name the file, ``json`` / ``md`` say which pieces to keep.  Thread-safe."""

    def __init__(self, folder: Path, stem: str, *, json: bool, md: bool) -> None:
        self.folder = folder
        self.stem = stem
        self.json = json
        self.md = md
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._end = 0
        self._entries: dict[int, _Entry] = {}

    @property
    def wanted(self) -> bool:
        """Whether any piece is kept (else pages are only let go of)."""
        return self.json or self.md

    def put(self, page: Page, links: dict[tuple[int, int], str]) -> None:
        """Keep ``page``'s pieces (``links``: the figure crops cut so far, its own among them)."""
        if not self.wanted:
            return
        from .jsonout import page_piece
        from .markdown import page_markdown

        data = page_piece(page).encode("utf-8") if self.json else b""
        body = page_markdown(page, links).encode("utf-8") if self.md and page.status != "failed" else b""
        with self._lock:
            fh = self._open()
            fh.seek(self._end)
            fh.write(data)
            fh.write(body)
            self._entries[page.page] = _Entry(page, self._end, len(data), len(body))
            self._end += len(data) + len(body)

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.folder, prefix=f".{self.stem}.", suffix=".spill")
            self._path = Path(name)
            self._file = os.fdopen(fd, "w+b")
        return self._file

    def _read(self, page: Page, md: bool) -> str | None:
        """``page``'s spilled piece (its markdown with ``md``, else its JSON), ``None`` when
        ``page`` is not the page spilled under its number."""
        with self._lock:
            entry = self._entries.get(page.page)
            if entry is None or entry.page is not page or self._file is None:
                return None
            self._file.flush()
            self._file.seek(entry.offset + (entry.json_bytes if md else 0))
            return self._file.read(entry.md_bytes if md else entry.json_bytes).decode("utf-8")

    def json_piece(self, page: Page) -> str:
        """``page``'s piece of the document's JSON: spilled, or made now."""
        from .jsonout import page_piece

        piece = self._read(page, md=False) if self.json else None
        return piece if piece is not None else page_piece(page)

    def md_body(self, page: Page, links: dict[tuple[int, int], str]) -> str:
        """``page``'s markdown as the document's markdown writes it: spilled, or made now."""
        from .markdown import page_markdown

        body = self._read(page, md=True) if self.md else None
        return body if body is not None else page_markdown(page, links)

    def close(self) -> None:
        """Remove the file (and forget the pages)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._path is not None:
                self._path.unlink(missing_ok=True)
                self._path = None
            self._entries.clear()
            self._end = 0
