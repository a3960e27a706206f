"""Content-addressed page-result cache: the resume mechanism.

A finished page is stored under a key derived from what determines its result — the encoded page
image that is sent, the dialect, the model, the render spec, the sampling and dialect options —
never from the file name or page number, so a rerun after a crash (or the same page in another
file) is served from disk and nothing is sent again.  Writes are atomic (temp file + rename in
the same directory), so a kill at any moment leaves either the old entry or the new one.

Example::

    >>> import tempfile
    >>> from ocrclient.document import Page
    >>> cache = PageCache(tempfile.mkdtemp())
    >>> cache.put("ab" * 32, Page(page=3, status="ok", markdown="hi"))
    >>> cache.get("ab" * 32).markdown
    'hi'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from .document import SCHEMA_VERSION, Page

if TYPE_CHECKING:
    from .config import BackendConfig

__all__ = ["PageCache", "page_key"]

#: bump when what a cached page means changes (invalidates every entry)
CACHE_FORMAT = "1"


def page_key(image: bytes, cfg: BackendConfig, dialect: str) -> str:
    """The cache key of one page for one backend configuration (sha256 hex)."""
    settings = {
        "format": CACHE_FORMAT,
        "schema": SCHEMA_VERSION,
        "dialect": dialect,
        "model": cfg.model,
        "render": cfg.render.model_dump(exclude_none=True),
        "sampling": cfg.sampling,
        "dialect_options": cfg.dialect_options,
    }
    h = hashlib.sha256()
    h.update(hashlib.sha256(image).digest())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()


class PageCache:
    """Finished pages on disk, one JSON file per key (``<dir>/pages/ab/abcd....json``)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def _path(self, key: str) -> Path:
        return self.directory / "pages" / key[:2] / f"{key}.json"

    def get(self, key: str) -> Page | None:
        path = self._path(key)
        try:
            raw = path.read_text(encoding="utf-8")
            page = Page.model_validate_json(raw)
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValidationError, ValueError):
            # a damaged entry is a miss; it will be rewritten
            self.misses += 1
            return None
        self.hits += 1
        return page

    def put(self, key: str, page: Page) -> None:
        """Store a finished page atomically (failed pages are never stored)."""
        if page.status == "failed":
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = page.model_copy(update={"cached": False}).model_dump_json()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.writes += 1

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        removed = 0
        for f in (self.directory / "pages").glob("*/*.json"):
            f.unlink(missing_ok=True)
            removed += 1
        return removed

    def __len__(self) -> int:
        return sum(1 for _ in (self.directory / "pages").glob("*/*.json"))
