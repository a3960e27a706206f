"""The run manifest: ``OUT/manifest.jsonl``, a line per finished document, and before it a line
that names the document's files, not done (``"status": "writing"``, :meth:`Manifest.reopen`),
written before the first of them is: an input's last line is its state.

Each line records the input (as given, and its resolved path ``key``, by which entries are
keyed), its size and mtime, the backend and model, the digest of the settings that can change
what a page reads (:func:`~ocrclient.cache.settings_digest`, the page cache's own), the pages
asked for, their status counts and the output files written — so a corpus run is auditable after
the fact and resumable at the document level: a rerun skips an input whose last entry has no
failed page, no page kept degraded by an outage at its last attempt (``unsettled_pages``) and no output that could not be written fully, every format this run writes written with
the same options (``--page-markers``...), the same backend, model, settings and page selection, unchanged size/mtime, and
outputs still present where this run would write them (the figure crops a markdown output links to included) and not written over since by another input's run (two inputs of one
name, converted to one folder in two runs; page-level resume is the cache's job; this saves even the rendering).  Lines without
a ``key`` (older manifests) are not trusted: those inputs are converted again.  Appends are one
``write`` of one line each, so a kill leaves at most one partial last line, which is ignored.

Example::

    m = Manifest(Path("out"), settings=settings_digest(backend.config))
    if not m.done(src, backend="local", model=None, pages=None, stem=Path("out/report")):
        ...
        m.record(src, doc, outputs, pages=None)
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .document import Document, RunStats
from .pages import Source
from .pages.inputs import CROP_LINK

__all__ = ["Manifest"]


def _options(formats: Any) -> dict[str, dict[str, Any]]:
    """The output options of ``formats`` as compared: the ones set (an option left at its
    default, off, is as good as absent, as in entries written before options were recorded)."""
    if not isinstance(formats, dict):
        return {}
    return {fmt: {k: v for k, v in opts.items() if v} for fmt, opts in formats.items() if isinstance(opts, dict) and any(opts.values())}


def _stat(src: Source) -> tuple[int | None, float | None]:
    """``src``'s (size, mtime) as it was when this run opened it (a run records what it read, not
    what a file replaced meanwhile is: that one is converted again by the next run)."""
    if src.path is None:
        return (len(src.data) if src.data is not None else None), None
    if src.opened is not None:
        return src.opened
    try:
        st = src.path.stat()
    except OSError:
        return None, None
    return st.st_size, st.st_mtime


def _crops_present(path: Path) -> bool:
    """Whether every figure crop the markdown file ``path`` links to is there (``True`` for any
    other file)."""
    if path.suffix != ".md":
        return True
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return all((path.parent / unquote(link)).is_file() for link in CROP_LINK.findall(text))


class Manifest:
    def __init__(self, out_dir: Path, name: str = "manifest.jsonl", *, settings: str | None = None) -> None:
        #: this run's :func:`~ocrclient.cache.settings_digest`: an entry made with other settings
        #: is not done (``None``: not compared)
        self.settings = settings
        #: the formats this run writes, each with its options (``{"md": {"page_markers": True},
        #: "json": {}}``): an entry that did not write one of them, or with other options, is not
        #: done (``None``: not compared); recorded with each entry
        self.formats: dict[str, dict[str, Any]] | None = None
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / name
        self._entries: dict[str, dict[str, Any]] | None = None
        #: each output file, and each output stem (the file without its suffix) -> the key of the
        #: input whose entry named it last
        self._owners: dict[str, str] = {}
        self._stems: dict[str, str] = {}
        self._lock = threading.Lock()
        #: pages kept degraded are to be sent again (``--retry-degraded``): a document with any
        #: is not done
        self.retry_degraded = False

    def entries(self) -> dict[str, dict[str, Any]]:
        """Last entry per input (later lines win; a torn last line is ignored)."""
        if self._entries is None:
            self._entries = {}
            try:
                text = self.path.read_text(encoding="utf-8", errors="replace") if self.path.is_file() else ""
            except OSError:  # (unreadable: nothing is known done; writing it will say why)
                text = ""
            if text:
                for line in text.splitlines():
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict) and "key" in entry:
                        self._entries[str(entry["key"])] = entry
                        self._own(entry)
        return self._entries

    def key_of(self, name: str) -> str | None:
        """The resolved path (``key``) the latest entry for the input given as ``name`` records
        (``None``: no entry names it)."""
        found = [e for e in self.entries().values() if e.get("input") == name and e.get("key")]
        return str(max(found, key=lambda e: str(e.get("finished") or ""))["key"]) if found else None

    def _own(self, entry: dict[str, Any]) -> None:
        for p in entry.get("outputs") or []:
            self._owners[str(p)] = self._stems[os.path.splitext(str(p))[0]] = str(entry["key"])

    def wrote(self, path: Path) -> bool:
        """Whether ``path`` (a file under OUT) is named as an output by an entry."""
        self.entries()
        return os.path.relpath(path, self.out_dir) in self._owners

    def other_owner(self, src: Source, stem: Path) -> str | None:
        """The input (as given) whose outputs, at ``stem`` (where this run writes ``src``'s),
        are there from an earlier run, when that input is not ``src``: this run replaces them."""
        want = os.path.relpath(stem, self.out_dir)
        key = self._stems.get(want) if self.entries() else None
        if key is None or key == src.key:
            return None
        entry = self.entries()[key]
        theirs = [p for p in entry.get("outputs") or [] if os.path.splitext(str(p))[0] == want]
        if not any(self._owners.get(str(p)) == key and (self.out_dir / p).is_file() for p in theirs):
            return None
        return str(entry.get("input") or key)

    def done(
        self, src: Source, *, backend: str, model: str | None, pages: str | None, stem: Path | None = None
    ) -> bool:
        """Whether ``src`` is finished: see the module docstring.  With ``stem`` (where this run
        writes ``src``'s outputs, see :func:`~ocrclient.outputs.output_stems`), outputs written
        anywhere else do not count."""
        entry = self.entries().get(src.key)
        if not entry or entry.get("failed", 1) != 0 or entry.get("output_errors") or entry.get("unsettled_pages"):
            return False
        if self.retry_degraded and entry.get("degraded", 1) != 0:
            return False
        size, mtime = _stat(src)
        same = (
            entry.get("backend") == backend
            and entry.get("model") == model
            and entry.get("pages_spec") == pages
            and (self.settings is None or entry.get("settings") == self.settings)
            and entry.get("size") == size
            and entry.get("mtime") == mtime
        )
        outputs = [str(p) for p in entry.get("outputs", [])]
        if any(self._owners.get(p) != src.key for p in outputs):
            return False  # another input's run wrote over them since
        if stem is not None:
            want = os.path.relpath(stem, self.out_dir)
            if not outputs or any(os.path.splitext(p)[0] != want for p in outputs):
                return False
            if not self._has_formats(entry, outputs, want):
                return False
        return same and self._present(outputs)

    def _present(self, outputs: list[str]) -> bool:
        """Every output file there, and every figure crop a markdown output links to (a crop
        deleted since was not made again: the rerun skipped the document, its links dangling)."""
        return all((self.out_dir / p).is_file() and _crops_present(self.out_dir / p) for p in outputs)

    def holds_more(self, src: Source, targets: Iterable[Path], stats: RunStats) -> bool:
        """Whether ``src``'s last entry has its files, all there, some where this run writes
        (``targets``), with more pages ok or degraded than ``stats`` counts: a stopped run keeps
        them rather than replace them with its few or none."""
        entry = self.entries().get(src.key)
        outputs = [str(p) for p in entry.get("outputs", [])] if entry else []
        ours = {os.path.relpath(p, self.out_dir) for p in targets}
        if entry is None or not ours & set(outputs) or not self._present(outputs):
            return False
        return int(entry.get("ok", 0)) + int(entry.get("degraded", 0)) > stats.ok + stats.degraded

    def _has_formats(self, entry: dict[str, Any], outputs: list[str], stem: str) -> bool:
        """Whether ``entry`` wrote every format this run writes (:attr:`formats`), with the
        same options."""
        if self.formats is None:
            return True
        from .exporters import EXPORTERS

        theirs = _options(entry.get("output_options"))
        ours = _options(self.formats)
        return all(
            fmt in EXPORTERS and stem + EXPORTERS[fmt][1] in outputs and theirs.get(fmt) == ours.get(fmt)
            for fmt in self.formats
        )

    def unfinish(self, src: Source, why: str) -> None:
        """Append ``src``'s last entry again, not done (an output error, ``why``): its outputs
        were partly replaced, so a rerun converts it again."""
        entry = self.entries().get(src.key)
        if entry is None:
            return
        self._append({**entry, "output_errors": int(entry.get("output_errors") or 0) + 1, "note": why,
                      "finished": datetime.now(UTC).isoformat(timespec="seconds")})  # fmt: skip

    def reopen(self, src: Source, stem: Path, targets: Iterable[Path] = ()) -> None:
        """``src`` starts to be written at ``stem`` (its files ``targets``): every entry whose
        outputs are there (``src``'s own, or another input's of that name) is appended again, not
        done, before a file is replaced; and the files are named by an entry of ``src``'s, not
        done, before one is written.  A run killed meanwhile (SIGKILL, the OOM killer: nothing of
        it runs) had written new figure crops, or a new markdown beside the old JSON, under an
        entry that still said done, and the next run skipped the document with its outputs
        mixed; a new document's markdown, written before its JSON when the kill came, was
        refused by every rerun as a file no run wrote."""
        want = os.path.relpath(stem, self.out_dir)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for key in dict.fromkeys([src.key, self._stems.get(want) if self.entries() else None]):
            entry = self.entries().get(key) if key is not None else None
            if entry is None or entry.get("output_errors"):
                continue  # (not done already)
            if any(os.path.splitext(str(p))[0] == want for p in entry.get("outputs") or []):
                self._append({**entry, "output_errors": 1, "note": "being converted again: its outputs are being replaced",
                              "finished": now})  # fmt: skip
        names = [os.path.relpath(p, self.out_dir) for p in targets]
        if any(self._owners.get(n) != src.key for n in names):
            entry = self.entries().get(src.key) or {"input": src.name, "key": src.key, "status": "writing"}
            listed = [str(p) for p in entry.get("outputs") or []]
            self._append({**entry, "outputs": [*listed, *(n for n in names if n not in listed)], "output_errors": 1,
                          "note": "being written", "finished": now})  # fmt: skip

    def _append(self, entry: dict[str, Any]) -> None:
        """One line, in one write; after a torn last line (a run killed mid-append) on a line of
        its own (glued to it, it was unreadable too).  Raises :class:`OSError` when the file
        cannot be written (a full disk, a read-only folder): the caller says so and goes on."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        with self._lock, self.path.open("ab+") as fh:  # (documents start and end on other threads)
            if fh.seek(0, os.SEEK_END) > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
            fh.write(line)
        self.entries()[str(entry["key"])] = entry
        self._own(entry)

    def record(
        self, src: Source, doc: Document, outputs: list[Path], *, pages: str | None, output_errors: int = 0
    ) -> dict[str, Any]:
        """Append ``src``'s entry: ``doc`` with its ``outputs`` written, and how many formats
        could not be written fully (``output_errors``: then it is not done)."""
        size, mtime = _stat(src)
        s = doc.stats
        entry = {
            "input": src.name,
            "key": src.key,
            "rel": str(src.rel) if src.rel is not None else None,
            "size": size,
            "mtime": mtime,
            "backend": doc.backend,
            "model": doc.model,
            "settings": self.settings,
            "pages_spec": pages,
            "pages": s.pages,
            "ok": s.ok,
            "degraded": s.degraded,
            "failed": s.failed,
            "failed_pages": doc.failed_pages,
            # kept degraded because their last attempt met an outage: a rerun tries them again
            "unsettled_pages": [
                p.page for p in doc.pages if p.status != "failed" and p.error is not None and p.error.kind == "transient"
            ],
            "status": "ok" if s.failed == 0 else ("failed" if s.failed == s.pages else "partial"),
            "outputs": [os.path.relpath(p, self.out_dir) for p in outputs],
            "output_errors": output_errors,
            "output_options": _options(self.formats),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._append(entry)
        return entry
