"""The PDFs a process keeps open between pages, and how long it keeps each before opening it afresh.

A document is parsed once, not once per page: the renderer (:mod:`ocrclient.pages.render`) and
the text layer (:mod:`ocrclient.engines.text_layer`) each keep the last few documents they read
open, in an :class:`OpenPdfs`.  But PDFium keeps what a page loads for as long as its *document*
is open: every object parsed (the page's content stream, the bytes of its images and embedded
fonts) and every font loaded, with its glyphs.  Closing the page (and its text page, and the
bitmap drawn) gives back only the page's own objects; nothing short of closing the document lets
go of the rest (PDFium has no call for it).  A document whose pages each carry resources of their
own (a scan's images, pages imported one by one, papers put together) so grows by about what each
page weighs while it stays open: measured, 1.56 MB a page for a paper's page with its ten fonts
imported 300 times (0.93 MB of it by loading the page alone), 0.6-0.8 MB a page for the corpus's
pages put together; a page read a second time adds nothing, and everything comes back when the
document is closed.

So a document is opened afresh after :data:`REOPEN_AFTER` pages read from it, which bounds what it
holds to that many pages' worth.  Opening costs little: under 2 ms for an intact file, plus, on
the first page read from it, the walk of the page tree to that page and the shared fonts loaded
again (5 ms for a paper's ten fonts, 12 ms for page 2,000 of 2,000).  But a long document
opened afresh walks its page tree further, and a file whose cross-reference table is damaged is
read whole to rebuild it (90-150 ms for 60-75 MB), so the pages between two openings grow with
what the last one cost, :data:`PAGE_BUDGET_S` of it a page, up to :data:`REOPEN_MAX`.
Every caller holds :data:`ocrclient.pages.render.PDFIUM_LOCK`.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PAGE_BUDGET_S", "REOPEN_AFTER", "REOPEN_MAX", "FileId", "OpenPdfs", "file_identity", "load_page"]

#: a file as found (:func:`file_identity`)
FileId = tuple[int, int, int, int, int]

#: pages read from a document before it is opened afresh (when opening it was cheap)
REOPEN_AFTER = 32
#: what an opening may cost each page read before the next: a document that took longer to open
#: is kept open for more pages, so that opening it afresh never costs more than this a page (1%
#: of the cheapest page measured: 12 ms of CPU for a page of text rendered at 100 dpi and encoded)
PAGE_BUDGET_S = 0.0001
#: the most pages read from a document between two openings, however long opening it took
REOPEN_MAX = 256


def file_identity(path: str) -> FileId | None:
    """The file at ``path`` as found now: device, inode, size, modification and change time
    (``None``: it cannot be read).  The change time is in it because nothing sets it back: a file
    rewritten in place with its modification time restored (``cp -p``, ``touch -r``, an archive's
    fixed times) is another file; a chmod or a new hard link costs a document opened afresh."""
    try:
        return _identity(os.stat(path))
    except OSError:
        return None


def _identity(st: os.stat_result) -> FileId:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def load_page(pdf: Any, index: int, forget: Callable[[], None]) -> Any:
    """Page ``index`` of the open ``pdf``.  When PDFium cannot load it, ``forget`` drops the
    handle before the error goes on: in a damaged page tree (a ``/Kids`` entry pointing at no
    page), a handle that failed to load one page can hand back the wrong page for a later index
    (measured: 20 of 400 load orders of a 5-page PDF missing its first or second page gave
    another page's content; none on a handle opened afresh after each failure).  Every reader of
    a page by its index (the renderer, the text layer, the searchable PDF's copy) goes by this
    rule."""
    import pypdfium2 as pdfium

    try:
        return pdf[index]
    except pdfium.PdfiumError:
        forget()
        raise


@dataclass
class _Open:
    """One document kept open."""

    pdf: Any
    #: seconds it took to open
    open_s: float
    #: the file it was opened from (``None``: the file changed while it was opened)
    file_id: FileId | None = None
    #: pages read from it since, and the seconds PDFium took to load the first and the rest
    pages: int = 0
    first_s: float = 0.0
    rest_s: float = 0.0

    def loaded(self, seconds: float) -> None:
        """One more page read from it, loaded in ``seconds``."""
        if self.pages:
            self.rest_s += seconds
        else:
            self.first_s = seconds
        self.pages += 1

    def spent(self) -> bool:
        """Whether it has served its pages and is to be opened afresh: after :data:`REOPEN_AFTER`
        pages, or as many more as keep what opening it cost under :data:`PAGE_BUDGET_S` a page.
        That cost is the open and what its first page took beyond the others (the walk of the
        page tree to it, the shared fonts loaded again)."""
        if self.pages < REOPEN_AFTER:
            return False
        cost = self.open_s + max(0.0, self.first_s - self.rest_s / max(1, self.pages - 1))
        return self.pages >= min(REOPEN_MAX, max(REOPEN_AFTER, math.ceil(cost / PAGE_BUDGET_S)))


def _close(pdf: Any) -> None:
    with contextlib.suppress(Exception):
        pdf.close()


class OpenPdfs:
    """The last ``max_docs`` documents a process read, kept open and opened afresh every few
    pages (see the module's text); ``forms`` initialises each one's form fields (the renderer
    draws them).  Hold :data:`~ocrclient.pages.render.PDFIUM_LOCK` for every call; ``lock`` is
    that lock, which the interpreter's exit takes to close what is still open (an open
    document holds its file, and pypdfium2 warns of it at exit: a client never closed keeps
    its pool's)."""

    def __init__(self, *, lock: Any, forms: bool = False, max_docs: int = 4) -> None:
        self.forms = forms
        self.max_docs = max_docs
        self._lock = lock
        self._docs: OrderedDict[tuple[str, FileId, str | None], _Open] = OrderedDict()

    def _entry(self, path: str, password: str | None) -> _Open:
        import pypdfium2 as pdfium

        found = _identity(os.stat(path))
        key = (path, found, password)
        entry = self._docs.get(key)
        if entry is not None and entry.spent():
            del self._docs[key]
            _close(entry.pdf)
            entry = None
        if entry is None:
            if not self._docs:  # registered again after pypdfium2's own hook, so it runs first (last in, first out)
                atexit.unregister(self._close_at_exit)
                atexit.register(self._close_at_exit)
            t0 = time.perf_counter()
            pdf = pdfium.PdfDocument(path, password=password)
            if self.forms:
                with contextlib.suppress(Exception):  # forms are a nicety: never fail a page for them
                    pdf.init_forms()
            entry = self._docs[key] = _Open(pdf, time.perf_counter() - t0, found if file_identity(path) == found else None)
            while len(self._docs) > self.max_docs:
                _close(self._docs.popitem(last=False)[1].pdf)
        self._docs.move_to_end(key)
        return entry

    def document(self, path: str, password: str | None = None) -> Any:
        """The open ``pypdfium2.PdfDocument`` of ``path`` (opened now if it is not)."""
        return self._entry(path, password).pdf

    def page(self, path: str, index: int, password: str | None = None) -> Any:
        """Page ``index`` of ``path``, loaded by :func:`load_page` (a handle that fails to load a
        page is dropped).  The caller closes the page."""
        return self.page_of(path, index, password)[0]

    def page_of(self, path: str, index: int, password: str | None = None) -> tuple[Any, FileId | None]:
        """:meth:`page`, and the file it was read from (:func:`file_identity` as the document was
        opened; ``None``: the file changed as it was)."""
        entry = self._entry(path, password)
        t0 = time.perf_counter()
        page = load_page(entry.pdf, index, lambda: self.forget(path))
        entry.loaded(time.perf_counter() - t0)
        return page, entry.file_id

    def forget(self, path: str) -> None:
        """Close and forget the handles of ``path``."""
        for key in [k for k in self._docs if k[0] == path]:
            _close(self._docs.pop(key).pdf)

    def close(self) -> None:
        """Close every document kept open."""
        while self._docs:
            _close(self._docs.popitem()[1].pdf)

    def __len__(self) -> int:
        return len(self._docs)

    def _close_at_exit(self) -> None:
        with self._lock:
            self.close()
