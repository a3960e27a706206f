"""Resume without rendering: a PDF page the page cache already holds is recalled, not rendered.

The cache is keyed by the page image that is sent (:mod:`.cache`), so a rerun rendered every page
only to find it there: a run killed at page 900 of 1000 rendered 900 pages again (~35 ms of CPU
each at Chandra's 192 dpi) before its first request for page 901 left, the GPUs idle meanwhile
(184 cached pages: the first request 5.1 s after the start against 0.8 s, benchmarks/README.md).
So when a rendered PDF page's reading goes into the cache, or is served from it, a small
**recall entry** is written beside the cache's pages: under a key of what the rendered image is
made of -- the PDF file as the renderer opened it (device, inode, size, modification and change
time: :func:`~ocrclient.pages.pdfdocs.file_identity`, what the renderer's own open-document cache
goes by; hashing the bytes put a 400 MB PDF's read on the first request), the page's index, the render spec, the renderer and the encoder
(pypdfium2 and its PDFium, Pillow, zlib, the source of ocrclient's render and encode modules) --
and of the backend settings the page key holds (:func:`~ocrclient.cache.key_settings` and the
dialect), it names the page's cache key and its geometry.  A later run asks for it before
rendering the page (:meth:`Recall.page`): when it is there and the cache still serves that key
(not pruned, not degraded under ``retry_degraded``, with the furniture the run keeps), the page
comes back as a :class:`~ocrclient.models.PageImage` without an image that carries its cached
reading, and the scheduler serves it as any cache hit.  Anything else -- no entry, an entry
whose page is gone, a page whose outputs need its image (its figure crops, the HTML viewer:
``needs_image``) -- renders the page as before, so a recall gives what rendering would have.

An entry is written under the file a page was rendered from, and only while the file is still
that one (a PDF replaced after its pages were rendered, even by ``ocr convert``'s head start
before the run looked the file up, gets none: their readings are of the bytes before); images, and documents given as bytes, are neither recalled nor remembered.  The
entries live in ``<cache>/recall/ab/<key>`` (a few hundred bytes each): the cache's size cap
counts them and prunes them with its pages, least recently used first (a recall refreshes its
entry, as a hit its page); :meth:`~ocrclient.cache.PageCache.clear` removes them, and one whose
page is gone is removed when it is next asked for.

Example::

    >>> from ocrclient.imaging import RenderSpec
    >>> a = recall_key((1, 2, 3, 4), 0, RenderSpec(dpi=192), {"model": "m"}, "chandra")
    >>> a == recall_key((1, 2, 3, 4), 0, RenderSpec(dpi=200), {"model": "m"}, "chandra")
    False
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import CACHE_FORMAT, PageCache, key_settings
from .document import SCHEMA_VERSION
from .geometry import PageBox
from .models import PageImage
from .pages.pdfdocs import FileId, file_identity

if TYPE_CHECKING:
    from .config import BackendConfig
    from .document import Page
    from .imaging import RenderSpec
    from .pages.sources import Source

__all__ = ["NeedsImage", "Recall", "recall_key"]

#: ``needs_image(page)``: whether the outputs need the image of a page read so (``None``: of every page)
NeedsImage = Callable[["Page | None"], bool]

#: bumped when what a recall entry says changes
RECALL_FORMAT = 2


@functools.cache
def _renderer_versions() -> dict[str, str]:
    """What makes a page image from a PDF page -- pypdfium2 and its PDFium build, Pillow, zlib,
    the source of this package's render and encode modules (its version stays put while they
    change) -- read from the modules (the package metadata took ~30 ms at a run's first page):
    another of them may make other bytes."""
    import zlib

    import PIL
    import pypdfium2

    from . import imaging
    from .pages import render

    code = hashlib.sha256()
    for module in (render, imaging):
        try:
            code.update(Path(str(module.__file__)).read_bytes())
        except OSError:
            code.update(module.__name__.encode())
    return {"pypdfium2": str(getattr(pypdfium2, "PYPDFIUM_INFO", "")), "pdfium": str(getattr(pypdfium2, "PDFIUM_INFO", "")),
            "pillow": PIL.__version__, "zlib": zlib.ZLIB_RUNTIME_VERSION, "code": code.hexdigest()}  # fmt: skip


def recall_key(file_id: Sequence[int], index: int, spec: RenderSpec, settings: Mapping[str, Any], dialect: str) -> str:
    """The recall key of page ``index`` (0-based) of the PDF file ``file_id`` (:func:`file_identity`),
    rendered to ``spec`` for a backend of ``settings`` (:func:`~ocrclient.cache.key_settings`)
    and ``dialect``."""
    parts = {
        "format": RECALL_FORMAT,
        "cache": [CACHE_FORMAT, SCHEMA_VERSION],  # (what the page key it names is made with)
        "file": list(file_id),
        "index": index,
        "spec": dataclasses.asdict(spec),
        "renderer": _renderer_versions(),
        "settings": dict(settings),
        "dialect": dialect,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Recall:
    """The recall entries of one run's backend in ``cache``: :meth:`page` a page back without
    rendering it, :meth:`remember` a rendered page's key.  Thread-safe (each entry is written
    whole, by rename)."""

    def __init__(self, cache: PageCache, cfg: BackendConfig, dialect: str, spec: RenderSpec, *,
                 furniture: bool = False) -> None:  # fmt: skip
        self.cache, self.spec, self.dialect, self.furniture = cache, spec, dialect, furniture
        self.settings = key_settings(cfg)
        #: each PDF this run looked up (its path as the renderer opens it), as the run found it
        self._found: dict[str, FileId | None] = {}

    def _found_id(self, path: str) -> FileId | None:
        if path not in self._found:
            self._found[path] = file_identity(path)
        return self._found[path]

    def remember(self, page: PageImage, key: str) -> None:
        """``page`` (rendered from a PDF to this run's spec) has its reading in the cache under
        ``key``: write its recall entry, for a file this run looked up, under the file the renderer opened
        (:attr:`~ocrclient.models.PageImage.file_id`), while the file is still that one.  The
        cache counts it in its cap (:meth:`~ocrclient.cache.PageCache.put_recall`); one that
        cannot be written costs only the entry."""
        path, rendered = page.pdf_path, page.file_id
        if path not in self._found or rendered is None or page.encoded is None or page.content_key is not None:
            return  # (a file this run did not look up: a document given as bytes, the pool's copy)
        now = file_identity(path)
        if now is None or now != rendered:  # (changed since it was rendered: its reading is of the file before)
            return
        entry = {"key": key, "box": dataclasses.asdict(page.page_box), "render_scale": page.render_scale}
        self.cache.put_recall(recall_key(now, page.index, self.spec, self.settings, self.dialect), json.dumps(entry).encode())

    def page(self, source: Source, index: int, needs_image: NeedsImage | None = None) -> PageImage | None:
        """Page ``index`` of ``source`` from the cache, without rendering it (``None``: render
        it): a PDF page with a recall entry whose reading the cache serves, and whose image the
        run's outputs do not need (``needs_image(page)``: its figure crops; ``needs_image(None)``:
        every page's, the viewer)."""
        if source.kind != "pdf" or source.path is None or (needs_image is not None and needs_image(None)):
            return None
        found = self._found_id(source.key)  # (the path the renderer opens: RenderPool._path_of)
        if found is None:
            return None
        recall = self.cache.recall_path(recall_key(found, index, self.spec, self.settings, self.dialect))
        try:
            entry = json.loads(recall.read_bytes())
            key, box, scale = str(entry["key"]), PageBox(**entry["box"]), float(entry["render_scale"])
        except (OSError, ValueError, TypeError, KeyError):
            return None
        hit = self.cache.get(key, furniture=self.furniture)
        if hit is None:
            if not self.cache.holds(key):
                with contextlib.suppress(OSError):  # (its page is gone: so is its entry)
                    os.unlink(recall)
            return None
        if needs_image is not None and needs_image(hit):
            return None
        with contextlib.suppress(OSError):
            os.utime(recall)  # (recently used, as its page: the cache's cap prunes both by age)
        return PageImage(source.name, index, box, None, render_scale=scale, pdf_path=source.key,
                         pdf_password=source.password, recalled=(key, hit))  # fmt: skip
