"""Writers for a :class:`~ocrclient.document.Document`: ``md``, ``json``, ``txt``, ``html``,
``pdf`` (:data:`BUILTIN_EXPORTERS`), and the formats plugins add through the
``ocrclient.exporters`` entry-point group (:data:`EXPORTERS` holds both; docs/plugins.md).  Each writer is
``write(document, path, **options) -> Path``.

A run writes its outputs as its pages finish, from the page images it rendered
(:class:`ocrclient.exporters.sink.OutputWriter`, ``convert(..., outputs=...)``, ``ocr convert
-o``): nothing reads the input again.  :func:`write_outputs` writes a Document given without its
run (a loaded JSON): the writers that need page images (figure crops, the viewer, the searchable
PDF) find the input again and render it (:mod:`ocrclient.exporters.source`).

Example::

    paths = write_outputs(doc, "out/", "report", ["md", "json"])
    paths = write_outputs(doc, "out/", "report", ["md"], options={"md": {"page_markers": True}})
    paths = write_outputs(doc, "out/", "report", ["pdf"], options={"pdf": {"force_ocr_text": True}})
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..document import Document
from ..errors import ConfigError, InputError, OcrError, OutputError
from ..plugins import lazy_table
from ..secrets import redact

__all__ = ["BUILTIN_EXPORTERS", "EXPORTERS", "write_outputs"]

Writer = Callable[..., Path]

#: the built-in formats: format -> ("module:function", file suffix)
BUILTIN_EXPORTERS: dict[str, tuple[str, str]] = {
    "md": ("ocrclient.exporters.markdown:write", ".md"),
    "json": ("ocrclient.exporters.jsonout:write", ".json"),
    "txt": ("ocrclient.exporters.text:write", ".txt"),
    "html": ("ocrclient.exporters.html:write", ".html"),
    "pdf": ("ocrclient.exporters.pdf:write", ".pdf"),
}

#: every format: the built-in ones plus the plugins' (``ocrclient.exporters`` entry points, suffix
#: ``.<name>``), read when first used (:mod:`ocrclient.plugins`)
EXPORTERS: Mapping[str, tuple[str, str]] = lazy_table(
    "output format", BUILTIN_EXPORTERS, lambda plugin: (plugin.value, f".{plugin.name}")
)


def _writer(fmt: str) -> Writer:
    if fmt not in EXPORTERS:
        raise ConfigError(f"unknown output format {fmt!r}; known: {', '.join(EXPORTERS)}")
    target = EXPORTERS[fmt][0]
    module, _, attr = target.partition(":")
    try:
        fn: Writer = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"output format {fmt!r} is not available ({exc})") from exc
    return fn


def wrote(fmt: str, path: Path, result: object) -> Path:
    """The file a writer says it wrote: a writer (a plugin's) that returns no path is an error
    of its format, as one that raises is (the manifest recorded ``None`` and failed)."""
    if not isinstance(result, (str, os.PathLike)):
        raise ConfigError(f"{path}: the {fmt} writer returned {type(result).__name__}, not the file it wrote")
    return Path(result)


def write_outputs(
    doc: Document,
    out_dir: str | Path,
    stem: str,
    formats: Sequence[str],
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    password: str | None = None,
) -> list[Path]:
    """Write ``doc`` as ``out_dir/stem.<suffix>`` for each format; returns the paths written
    (a Document without its run: see the module docstring).
    ``options`` maps a format to keyword arguments of its writer (e.g. ``{"md": {"page_markers":
    True}}``, ``{"pdf": {"force_ocr_text": True}}``, see :func:`ocrclient.exporters.pdf.write`).
    ``password`` opens an encrypted input again (for figure crops, the viewer's pages, the
    searchable PDF)."""
    from .source import source_password

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    opts = options or {}
    writers = [(fmt, _writer(fmt)) for fmt in formats]  # fail on a bad format before writing
    paths: list[Path] = []
    errors: list[str] = []
    with source_password(password):
        for fmt, fn in writers:  # (one writer failing -- a plugin's bug -- writes the others, then says so)
            path = out / f"{stem}{EXPORTERS[fmt][1]}"
            try:
                paths.append(wrote(fmt, path, fn(doc, path, **opts.get(fmt, {}))))
            except (OSError, InputError):  # (the input itself: no format can be written)
                raise
            except Exception as exc:
                errors.append(str(exc) if isinstance(exc, OcrError) else
                              f"{path}: the {fmt} writer failed: {type(exc).__name__}: {redact(str(exc))}")  # fmt: skip
    if errors:
        raise OutputError(doc, errors, paths)
    return paths
