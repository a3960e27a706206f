"""Resume without rendering: a PDF page the page cache already holds is recalled, not rendered.

The cache is keyed by the page image that is sent (:mod:`.cache`), so a rerun rendered every page
only to find it there: a run killed at page 900 of 1000 rendered 900 pages again (~35 ms of CPU
each at Chandra's 192 dpi) before its first request for page 901 left, the GPUs idle meanwhile
(184 cached pages: the first request 7.2 s after the start, measured).  So when a rendered PDF
page's result goes into the cache, or is served from it, a small **recall entry** is written
beside the cache's pages: under a key of what the rendered image is made of -- the PDF's bytes
(their sha256), the page's index, the render spec, the versions of the renderer and the encoder
(pypdfium2, Pillow, ocrclient) -- and of the backend settings the page key holds
(:func:`~ocrclient.cache.key_settings` and the dialect), it names the page's cache key and its
geometry.  A later run asks for it before rendering the page (:meth:`Recall.page`): when it is
there and the cache still serves that key (not pruned, not degraded under ``retry_degraded``,
with the furniture the run keeps), the page comes back as a :class:`~ocrclient.models.PageImage`
without an image that carries its cached reading, and the scheduler serves it as any cache hit.
Anything else -- no entry, an entry whose page is gone, a page whose outputs need its image (its
figure crops, the HTML viewer: ``needs_image``) -- renders the page as before, so a recall gives
exactly what rendering would have.  Images are not recalled (one page each, cheap to decode).

The entries live in ``<cache>/recall/ab/<key>`` (a few hundred bytes each, outside the cache's
size cap; :meth:`~ocrclient.cache.PageCache.clear` removes them, and one whose page is gone is
removed when it is next asked for).

Example::

    >>> from ocrclient.imaging import RenderSpec
    >>> a = recall_key("ab" * 32, 0, RenderSpec(dpi=192), {"model": "m"}, "chandra")
    >>> a == recall_key("ab" * 32, 0, RenderSpec(dpi=200), {"model": "m"}, "chandra")
    False
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cache import CACHE_FORMAT, PageCache, key_settings, source_digest
from .document import SCHEMA_VERSION
from .geometry import PageBox
from .models import PageImage

if TYPE_CHECKING:
    from .config import BackendConfig
    from .document import Page
    from .imaging import RenderSpec
    from .pages.sources import Source

__all__ = ["Recall", "recall_key"]

#: bumped when what a recall entry says changes
RECALL_FORMAT = 1


@functools.cache
def _renderer_versions() -> dict[str, str]:
    """What makes a page image from a PDF page -- pypdfium2 and its PDFium build, Pillow, this
    package's encoder -- read from the modules (the package metadata took ~30 ms at the first
    page): another version may make other bytes."""
    import PIL
    import pypdfium2

    from . import __version__

    return {"pypdfium2": str(getattr(pypdfium2, "PYPDFIUM_INFO", "")), "pdfium": str(getattr(pypdfium2, "PDFIUM_INFO", "")),
            "pillow": PIL.__version__, "ocrclient": __version__}  # fmt: skip


def recall_key(pdf_digest: str, index: int, spec: RenderSpec, settings: Mapping[str, Any], dialect: str) -> str:
    """The recall key of page ``index`` (0-based) of the PDF whose bytes hash to ``pdf_digest``,
    rendered to ``spec`` for a backend of ``settings`` (:func:`~ocrclient.cache.key_settings`)
    and ``dialect``."""
    parts = {
        "format": RECALL_FORMAT,
        "cache": [CACHE_FORMAT, SCHEMA_VERSION],  # (what the page key it names is made with)
        "pdf": pdf_digest,
        "index": index,
        "spec": dataclasses.asdict(spec),
        "renderer": _renderer_versions(),
        "settings": dict(settings),
        "dialect": dialect,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Recall:
    """The recall entries of one run's backend in ``cache``: :meth:`remember` a rendered page's
    key, :meth:`page` a page back without rendering it.  Thread-safe (each entry is written
    whole, by rename)."""

    def __init__(self, cache: PageCache, cfg: BackendConfig, dialect: str, spec: RenderSpec, *,
                 furniture: bool = False) -> None:  # fmt: skip
        self.cache, self.spec, self.dialect, self.furniture = cache, spec, dialect, furniture
        self.settings = key_settings(cfg)
        self.recalled = 0

    def _path(self, key: str) -> Path:
        return self.cache.directory / "recall" / key[:2] / key

    def _key(self, pdf_path: str, index: int) -> str | None:
        try:
            digest = source_digest(pdf_path)
        except OSError:
            return None
        return recall_key(digest, index, self.spec, self.settings, self.dialect)

    def remember(self, page: PageImage, key: str) -> None:
        """``page`` (rendered from a PDF to this run's spec) has its reading in the cache under
        ``key``: write its recall entry.  A cache that cannot be written costs only the entry."""
        if page.pdf_path is None or page.encoded is None or page.content_key is not None:
            return
        recall = self._key(page.pdf_path, page.index)
        if recall is None:
            return
        path = self._path(recall)
        box = dataclasses.asdict(page.page_box)
        entry = json.dumps({"key": key, "box": box, "render_scale": page.render_scale}).encode()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(entry)
            os.replace(tmp, path)
        except OSError:
            return

    def page(self, source: Source, index: int, needs_image: Callable[[Page], bool] | None = None) -> PageImage | None:
        """Page ``index`` of ``source`` from the cache, without rendering it (``None``: render
        it): a PDF page with a recall entry whose reading the cache serves, and whose image the
        run's outputs do not need (``needs_image(page) -> bool``: its figure crops, its viewer
        page)."""
        if source.kind != "pdf" or source.path is None:
            return None
        recall = self._key(str(source.path), index)
        if recall is None:
            return None
        try:
            entry = json.loads(self._path(recall).read_bytes())
            key, box, scale = str(entry["key"]), PageBox(**entry["box"]), float(entry["render_scale"])
        except (OSError, ValueError, TypeError, KeyError):
            return None
        hit = self.cache.get(key, furniture=self.furniture)
        if hit is None:
            if not (self.cache.directory / "pages" / key[:2] / f"{key}.json").exists():
                with contextlib.suppress(OSError):  # (its page is gone: so is its entry)
                    os.unlink(self._path(recall))
            return None
        if needs_image is not None and needs_image(hit):
            return None
        self.recalled += 1
        return PageImage(source.name, index, box, None, render_scale=scale, pdf_path=str(source.path),
                         pdf_password=source.password, recalled=(key, hit))  # fmt: skip
