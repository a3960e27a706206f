"""Where each input's output files go under ``OUT``: one function, :func:`output_stems`.

Every input is mirrored under ``OUT`` by its path relative to the *common root* of all the
inputs' roots (the directory named, a glob's fixed prefix, or a named file's own folder), its
suffix replaced by each format's: ``ocr convert a b -o out`` writes ``out/a/x.md`` and
``out/b/x.md``, ``ocr convert a/x.pdf b/x.pdf -o out`` the same.  One file or one directory alone
keeps the short layout: ``ocr convert docs/report.pdf -o out`` writes ``out/report.md``,
``ocr convert scans -o out`` writes ``out/<path below scans>.md``.  Raw bytes go to
``OUT/document-<hash>.*``.  Paths are taken as given (made absolute, symlinks not resolved), so
a link is mirrored under its own name; the same file reached twice is one input (see
:func:`~ocrclient.pages.open_sources`).

Two inputs that would still share an output name — ``x.pdf`` and ``x.png`` in one folder, or
names that differ only in case (one file on a case-insensitive disk) — are refused with one
:class:`~ocrclient.errors.InputError` line naming both, before anything is sent; so is an
output that would overwrite an input (``-f pdf`` with ``OUT`` the input folder).  Refusing,
rather than adding the input's suffix where needed, keeps every input's output name the same
whatever else is in the run, so reruns, the manifest and links to the outputs stay stable.

Example::

    >>> from ocrclient.pages import open_sources
    >>> srcs = open_sources(["a", "b"])                              # doctest: +SKIP
    >>> [str(s) for s in output_stems(srcs, Path("out"))]            # doctest: +SKIP
    ['out/a/x', 'out/b/x']
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError
from .pages import Source
from .pages.inputs import Refused

__all__ = ["output_stems"]

Parts = tuple[str, ...]


def _parts(path: Path) -> Parts:
    return Path(os.path.abspath(path)).parts


def _common(paths: Sequence[Parts]) -> Parts:
    if not paths:
        return ()
    first = paths[0]
    n = len(first)
    for other in paths[1:]:
        n = min(n, len(other))
        n = next((i for i in range(n) if first[i] != other[i]), n)
    return first[:n]


def _safe(part: str) -> str:
    """A path anchor (``/``, ``C:\\``) as a plain folder name, so nothing escapes OUT."""
    if part != Path(part).anchor:
        return part
    return re.sub(r"[^\w.-]+", "", part) or "root"


def _relative(src: Source | Refused, common: Parts) -> Parts:
    if src.path is None:
        return (src.stem,)
    parts = _parts(src.path)
    folder = parts[len(common) : -1] if parts[: len(common)] == common else parts[:-1]
    return (*(_safe(p) for p in folder), src.stem)


def _root(src: Source | Refused) -> Path | None:
    if src.path is None:
        return None
    return src.root if src.root is not None else src.path.parent


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``--shard i/n`` as ``(i, n)`` (``None``: no shard); a bad one is one ``InputError`` line.

    >>> parse_shard("1/3")
    (1, 3)
    """
    if not shard:
        return None
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise InputError(f"--shard takes i/n (e.g. 0/4), got {shard!r}") from None
    if n < 1:
        raise InputError(f"--shard {shard}: n, the number of shards, is at least 1 (e.g. 0/4)")
    if not 0 <= i < n:
        shards = ", ".join(f"{k}/{n}" for k in range(n)) if n <= 4 else f"0/{n}, 1/{n}, ... {n - 1}/{n}"
        raise InputError(f"--shard {shard}: need 0 <= i < n (i counts from 0: the shards of {n} are {shards})")
    return i, n


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether the input of ``key`` (:func:`shard_keys`) is shard ``(i, n)``'s."""
    if shard is None:
        return True
    digest = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
    return digest % shard[1] == shard[0]


def shard_keys(sources: Sequence[Source | Refused]) -> list[str]:
    """What ``--shard`` divides by, for each source: its path below the common root of all the
    sources (as :func:`output_stems` lays them out), with its file name, ``/``-separated.  The
    same corpus gets the same keys wherever it is mounted and however its paths are spelled
    (``/mnt/a/x.pdf`` on one machine, ``/data/x.pdf`` or ``./x.pdf`` on another): keyed by the
    path as typed, two machines dropped some documents and converted others twice.  A file
    refused as unusable (:class:`~ocrclient.pages.inputs.Refused`) is laid out with the others:
    the shard it falls in reports it."""
    common = _common([_parts(root) for src in sources if (root := _root(src)) is not None])
    keys = []
    for src in sources:
        if src.path is None:
            keys.append(src.name)
            continue
        folder = _relative(src, common)[:-1]
        keys.append("/".join((*folder, src.path.name)))
    return keys


def output_stems(
    sources: Sequence[Source], out_dir: Path, suffixes: Sequence[str] = (), beside: Sequence[Source | Refused] = ()
) -> list[Path]:
    """``out_dir/<path relative to the common root>/<stem>`` for each source, in order (add a
    format's suffix for the file).  The common root is that of ``sources`` and ``beside``: the
    inputs of the same command that are not converted (refused as unusable, left out by the page
    range), so that where a file's outputs go does not hang on which others could be read (a
    rerun after a refused file was fixed wrote a second copy of every other document).  Raises :class:`InputError` (one line naming both inputs)
    when two sources would share a name (compared case-insensitively), or, for the given
    ``suffixes``, when an output file would be one of the inputs or the run's ``manifest.jsonl``
    (a plugin's ``jsonl`` format of ``manifest.pdf`` wrote its rows into it)."""
    roots = [_parts(root) for src in [*sources, *beside] if (root := _root(src)) is not None]
    common = _common(roots)
    stems: list[Path] = []
    claimed: dict[Parts, tuple[Source, Path]] = {}
    inputs = {src.key: src for src in sources if src.path is not None}
    for src in sources:
        rel = _relative(src, common)
        stem = out_dir.joinpath(*rel)
        other, taken = claimed.setdefault(tuple(p.lower() for p in rel), (src, stem))  # (as file systems fold: ß is not ss)
        if other is not src:
            raise InputError(
                f"{other.name} and {src.name} would both be written as {taken}.*; "
                "rename one or convert them in separate runs"
            )
        for suffix in suffixes:
            target = stem.with_name(stem.name + suffix)
            if target.parent == out_dir and target.name.lower() == "manifest.jsonl":  # (the run's own record)
                raise InputError(f"writing {target} for {src.name} would overwrite the run's manifest; "
                                 "rename the input or leave out that format")  # fmt: skip
            hit = inputs.get(str(target.resolve()))
            if hit is not None:
                raise InputError(
                    f"writing {stem}{suffix} for {src.name} would overwrite the input {hit.name}; "
                    "choose another -o"
                )
        stems.append(stem)
    return stems
