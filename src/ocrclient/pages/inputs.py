"""Finding inputs: what a user typed (files, directories, glob patterns, PDF or image bytes) ->
validated :class:`~ocrclient.pages.sources.Source` documents, in a deterministic order.

Directories are walked and patterns expanded for files with a PDF or image suffix (neither goes
down a symbolic link to a directory: a link to a parent folder would never end); each file
found (and each bytes input) is then validated by :func:`~ocrclient.pages.sources.make_source`,
so anything unusable fails here, before a page is sent, with one
:class:`~ocrclient.errors.InputError` line.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError, InputError
from ..secrets import register_secret
from .ranges import check_page_range, format_pages, parse_page_range
from .sources import SUPPORTED, Source, make_source

__all__ = ["IMAGE_SUFFIXES", "PDF_SUFFIXES", "Refused", "left_out_reason", "open_sources", "prepare", "prepare_one"]


@dataclass(frozen=True)
class Refused:
    """A file of several inputs that cannot be converted (not a PDF or image we take, corrupt,
    encrypted without its password...): ``message`` says why, in one line.  Laid out with the
    others (:func:`~ocrclient.outputs.shard_keys` takes it), so that every shard agrees whose it is."""

    name: str
    stem: str
    path: Path
    root: Path
    rel: Path | None
    message: str

#: file name suffixes picked up when walking a directory or expanding a glob (the type itself
#: is always decided by the file's magic bytes, never by its suffix)
PDF_SUFFIXES = frozenset({".pdf"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"})
_GLOB_CHARS = re.compile(r"[*?\[]")


def _wanted(p: Path) -> bool:
    return p.suffix.lower() in PDF_SUFFIXES | IMAGE_SUFFIXES and not p.name.startswith(".")


#: image files of kinds not converted: a folder walk names those it passes over (a scan folder's
#: GIFs were left out without a word, while a GIF named outright is refused saying why)
_IMAGES_NOT_TAKEN = frozenset({".gif", ".heic", ".heif", ".avif", ".jp2", ".j2k", ".jpx", ".jxl", ".svg", ".djvu"})


def _some(root: Path, files: list[Path]) -> str:
    """The first three of ``files`` by their path below ``root``, and how many more."""
    return ", ".join(str(f.relative_to(root)) for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")


def _say_passed_over(root: Path, files: list[Path]) -> None:
    """One warning for the images of kinds not converted that a walk of ``root`` passed over."""
    if not files:
        return
    import warnings

    kinds = ", ".join(sorted({f.suffix.lower().lstrip(".").upper() for f in files}))
    warnings.warn(f"{root}: {len(files)} image file(s) of a kind not converted ({kinds}) left out: {_some(root, files)}; "
                  f"convert them to PNG or PDF to include them", stacklevel=3)  # fmt: skip


def _say_hidden(root: Path, files: list[Path]) -> None:
    """One warning for the hidden PDFs and images (names starting with ".") a walk of ``root``
    left out, as it leaves out hidden folders: they were left out without a word."""
    if not files:
        return
    import warnings

    warnings.warn(f"{root}: {len(files)} hidden file(s) left out (a name starting with '.', as hidden folders are): "
                  f"{_some(root, files)}; name them to include them", stacklevel=3)  # fmt: skip


#: folders a walk passes over (resolved): the run's own output folder, so a rerun with ``-o``
#: inside the folder it converts does not send back what the last run wrote
Exclude = frozenset[Path]


#: the name of a figure crop a markdown output saves (``<stem>_figures/page<N>_fig<K>.png``)
CROP_NAME = re.compile(r"^page\d+_fig\d+\.png$")


#: a markdown link to one of the figure crops written beside it (``](doc_figures/page1_fig1.png)``)
CROP_LINK = re.compile(r"\]\(([^)\s]*_figures/[^)\s]+)\)")


def figure_dir(md_path: Path) -> Path:
    """Where the crops of ``md_path`` go: ``<stem>_figures`` beside it."""
    return md_path.with_name(f"{md_path.stem}_figures")


def _ours(name: str, filenames: set[str]) -> bool:
    """Whether a folder ``name`` beside ``filenames`` is the figure crops folder of a markdown
    output (``<stem>_figures`` next to ``<stem>.md``): its crops are the run's own output, not
    inputs (other files there are the user's: a PDF kept in ``report_figures/`` was skipped)."""
    return name.endswith("_figures") and f"{name[: -len('_figures')]}.md" in filenames


def _written_here(folder: Path) -> set[Path]:
    """The files a run's manifest in ``folder`` (``manifest.jsonl``) lists as its outputs,
    resolved: a searchable PDF written beside its scan (``-o`` the input folder) is the run's
    output, not an input (a rerun met it as a second input named like the scan and refused)."""
    if not (folder / "manifest.jsonl").is_file():
        return set()
    from ..manifest import Manifest  # (only where a manifest is: none is read on most walks)

    base = folder.resolve()
    return {base / str(p) for e in Manifest(folder).entries().values() for p in e.get("outputs") or []}


def _walk(root: Path, exclude: Exclude = frozenset()) -> list[Path]:
    found: list[Path] = []
    passed: list[Path] = []  # images of a kind not taken
    hidden: list[Path] = []  # PDFs and images named ".x"
    written: set[Path] = set()  # what the manifests met so far list (they list files below them)
    crops: set[Path] = set()  # the figure crops folders met so far
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here, names = Path(dirpath), set(filenames)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not (exclude and (here / d).resolve() in exclude)
        )  # fmt: skip
        crops |= {here / d for d in dirnames if _ours(d, names)}
        if "manifest.jsonl" in names:
            written |= _written_here(here)
        for fn in filenames:
            p = Path(dirpath) / fn
            if here in crops and CROP_NAME.match(fn):
                continue
            if _wanted(p) and p.is_file() and not (written and p.resolve() in written):
                found.append(p)
            elif fn.startswith("."):
                if p.suffix.lower() in PDF_SUFFIXES | IMAGE_SUFFIXES:
                    hidden.append(p)
            elif p.suffix.lower() in _IMAGES_NOT_TAKEN:
                passed.append(p)
    _say_passed_over(root, sorted(passed, key=lambda p: p.relative_to(root).as_posix()))
    _say_hidden(root, sorted(hidden, key=lambda p: p.relative_to(root).as_posix()))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    root: list[str] = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def open_sources(
    inputs: Sequence[str | Path | bytes] | str | Path | bytes,
    *,
    password: str | None = None,
    exclude: Sequence[str | Path] = (),
    refused: list[Refused] | None = None,
) -> list[Source]:
    """Resolve and validate inputs into documents, in a deterministic order.

    Accepts file paths, directories (walked recursively for PDFs and PNG/JPEG/TIFF/WebP/BMP
    images, sorted by relative path), glob patterns (``**`` allowed) and raw PDF/image bytes.
    Types are detected from magic bytes, never from the suffix.  The same file reached twice
    is kept once.  Raises :class:`InputError` (one line) for a missing file, a file that is not
    a PDF/supported image, a corrupt/truncated PDF, an encrypted PDF without the right
    ``password``, a PDF with no pages, an image over PIL's ``MAX_IMAGE_PIXELS``, and a
    directory or pattern that matches nothing.  Folders are walked past the ``exclude`` ones (a
    run's output folder) and past a markdown output's ``<stem>_figures`` crops; a file named
    outright is always taken.  With ``refused`` (a list), a file of several that cannot be
    converted is put there instead of raising: one unreadable file of a corpus stopped it all.
    """
    items: Sequence[Any] = (
        [inputs] if isinstance(inputs, (str, os.PathLike, bytes, bytearray, memoryview)) else cast(Sequence[Any], inputs)
    )
    # every input found first (a missing file, a pattern matching nothing: refused, whatever
    # ``refused``), so that it is known whether a bad file is one of several
    found: list[bytes | list[_Found]] = [
        bytes(item) if isinstance(item, (bytes, bytearray, memoryview)) else _find_files(item, _resolved(exclude))
        for item in items
    ]
    several = sum(1 if isinstance(f, bytes) else len(f) for f in found) > 1
    sources: list[Source] = []
    seen: set[str] = set()
    for entry in found:
        if isinstance(entry, bytes):
            digest = hashlib.sha256(entry).hexdigest()
            if ("sha256:" + digest) in seen:
                continue
            seen.add("sha256:" + digest)
            sources.append(make_source(name=f"bytes:{digest[:12]}", stem=f"document-{digest[:8]}", path=None,
                                       data=entry, rel=None, password=password))  # fmt: skip
            continue
        for path, name, rel, root in entry:
            key = str(path.resolve())
            if key in seen:
                continue
            seen.add(key)
            try:
                src = make_source(name=name, stem=path.stem, path=path, data=None, rel=rel, password=password, root=root)
            except InputError as exc:
                if refused is None or not several:
                    raise
                refused.append(Refused(name, path.stem, path, root, rel, exc.message))
                continue
            if src.data is not None:  # a pipe, read: kept once by its content, as bytes are
                if src.key in seen:
                    continue
                seen.add(src.key)
            sources.append(src)
    return sources


def _resolved(folders: Sequence[str | Path]) -> Exclude:
    return frozenset(Path(f).expanduser().resolve() for f in folders)


def _pages_of(count: int) -> str:
    """``"1 page"``, ``"3 pages"``."""
    return f"{count} page{'s' if count != 1 else ''}"


def left_out_reason(pages: str | None, page_count: int) -> str:
    """Why :func:`prepare` leaves out an input of several: the range holds none of its pages."""
    return f"the page range {pages!r} holds none of its {_pages_of(page_count)}"


def prepare(
    inputs: Sequence[str | Path | bytes] | str | Path | bytes,
    *,
    pages: str | None = None,
    password: str | None = None,
    exclude: Sequence[str | Path] = (),
    refused: list[Refused] | None = None,
    left_out: list[Source] | None = None,
) -> list[tuple[Source, list[int]]]:
    """Open and validate every input and its page range up front; ``exclude`` and ``refused``
    as :func:`open_sources` takes them; ``left_out`` (a list) gets the inputs of several that
    the range leaves out.  One input whose pages the range does not fit raises
    InputError naming it.  Of several (a folder, a pattern, a list), each takes the pages of the
    range it has, with a warning for one it cuts short and one it leaves out (no page in range);
    a range no input has a page of raises InputError.  ("the first three pages of every PDF in
    a folder" was refused whole for one two-page PDF.)"""
    if pages is not None and not isinstance(pages, str):
        raise ConfigError(f"pages takes a range such as '1-3,7,10-' (got {type(pages).__name__} {pages!r})")
    if password is not None and not isinstance(password, str):
        raise ConfigError(f"password takes a string (got {type(password).__name__})")
    register_secret(password, word=True)  # (it reaches the local engine's request: never shown in a log line)
    check_page_range(pages)  # (a range that cannot be read is no one input's fault)
    plan = []
    sources = open_sources(inputs, password=password, exclude=exclude, refused=refused)
    for src in sources:
        try:
            plan.append((src, parse_page_range(pages, src.page_count)))
        except InputError as exc:
            if len(sources) == 1:
                raise InputError(f"{src.name}: {exc}") from None
            import warnings

            kept = parse_page_range(pages, src.page_count, clip=True)
            has = _pages_of(src.page_count)
            if not kept:
                warnings.warn(f"{src.name}: left out, {left_out_reason(pages, src.page_count)}", stacklevel=2)
                if left_out is not None:
                    left_out.append(src)
                continue
            which = f"page {kept[0] + 1} is" if len(kept) == 1 else f"pages {format_pages(kept)} are"
            warnings.warn(f"{src.name}: the page range {pages!r} runs past its {has}; its {which} converted",
                          stacklevel=2)  # fmt: skip
            plan.append((src, kept))
    if sources and not plan:
        raise InputError(f"page range {pages!r}: no input has a page in it")
    return plan


def prepare_one(
    source: str | Path | bytes,
    *,
    pages: str | None = None,
    password: str | None = None,
    exclude: Sequence[str | Path] = (),
) -> list[tuple[Source, list[int]]]:
    """:func:`prepare` for a call that takes one document (``convert``, ``stream_pages``): a
    folder or pattern naming more than one, or a list, is an :class:`InputError` before any is
    opened (``convert("scans/")`` returned the first document and dropped the others)."""
    if not isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        if isinstance(source, Sequence):
            raise InputError(f"takes one document, got a list of {len(source)}: use convert_many for several")
        raise InputError(f"{source!r}: an input is a path or the document's bytes (got {type(source).__name__})")
    if not isinstance(source, (bytes, bytearray, memoryview)):
        found = _find_files(source, _resolved(exclude))
        if len(found) > 1:
            raise InputError(f"{source}: names {len(found)} documents; this call takes one (use convert_many for a "
                             "folder or pattern)")  # fmt: skip
    return prepare(source, pages=pages, password=password, exclude=exclude)


#: a file found for one input: (path, name as shown, path below its root, the root)
_Found = tuple[Path, str, Path | None, Path]


def _find_files(item: str | Path, exclude: Exclude = frozenset()) -> list[_Found]:
    """The files one path, directory or glob pattern names, in order (not yet validated)."""
    if not isinstance(item, (str, os.PathLike)):
        raise InputError(f"{item!r}: an input is a path, a folder, a glob pattern or bytes (got {type(item).__name__})")
    text = str(os.fspath(item))
    if not text.strip():
        raise InputError("an empty path names no document")
    path = Path(text).expanduser()
    if path.is_dir():
        files = _walk(path, exclude)
        if not files:
            raise InputError(f"{text}: directory has no PDF or image files ({SUPPORTED})")
        return [(f, str(f), f.relative_to(path), path) for f in files]
    if path.exists():
        return [(path, text, None, path.parent)]
    if isinstance(item, str) and _GLOB_CHARS.search(text):
        return _expand_glob(text, exclude)
    raise InputError(f"{text}: no such file or directory")


def _passed_over(path: Path, top: Path, exclude: Exclude, listed: dict[Path, set[str]]) -> bool:
    """Whether a walk from ``top`` (resolved) would not reach ``path``: it lies in an ``exclude``
    folder or a markdown output's figure crops folder *below* ``top`` (an output folder that is
    the root, or above it, holds the inputs; ``listed``: the file names of the folders looked in)."""
    full = path.resolve()

    def written(folder: Path) -> set[Path]:  # (each folder's manifest read once per expansion)
        key = Path(f"{folder}/manifest.jsonl")
        if key not in listed:
            listed[key] = {str(p) for p in _written_here(folder)}
        return {Path(p) for p in listed[key]}

    if full in written(full.parent):  # (a run's output beside its input: see _walk)
        return True
    for folder in full.parents:
        if top not in folder.parents:  # the root itself, above it, or elsewhere: no more
            break
        if folder in exclude or full in written(folder):
            return True
        if folder == full.parent and folder.name.endswith("_figures") and CROP_NAME.match(full.name):
            names = listed.get(folder.parent)
            if names is None:
                names = listed[folder.parent] = {p.name for p in folder.parent.iterdir()}
            if _ours(folder.name, names):
                return True
    return False


def _glob(pattern: str) -> list[str]:
    """What ``glob.glob(pattern, recursive=True)`` matches, except that a ``**`` component
    never goes down a symbolic link to a directory, as directory walking does not: ``glob``
    follows them, and a link to a parent folder made it endless.  ``**`` is this folder and
    every folder below it but hidden ones, as with ``glob``; the rest of the pattern is
    ``glob``'s own (a ``**`` inside a name is a ``*``)."""
    parts = Path(pattern).parts
    if "**" not in parts:
        return glob.glob(pattern)
    at = parts.index("**")
    head, rest = parts[:at], parts[at + 1 :]
    found: list[str] = []
    for top in glob.glob(os.path.join(*head)) if head else [os.curdir]:
        for folder, subfolders, _ in os.walk(top, followlinks=False):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            if not head:  # (as glob names them: "a/x.pdf", not "./a/x.pdf")
                folder = "" if folder == os.curdir else folder.removeprefix(os.curdir + os.sep)
            found.extend(_glob(os.path.join(glob.escape(folder), *rest)) if rest else [folder or os.curdir])
    return found


def _expand_glob(text: str, exclude: Exclude = frozenset()) -> list[_Found]:
    """The PDF and image files a glob pattern matches (directories it matches are walked), but
    those under an ``exclude`` folder or a markdown output's figure crops."""
    pattern = os.path.expanduser(text)
    root = _glob_root(pattern)
    files: list[Path] = []
    listed: dict[Path, set[str]] = {}
    top = root.resolve()
    for m in sorted(_glob(pattern)):
        mp = Path(m)
        if _passed_over(mp, top, exclude, listed):
            continue
        if mp.is_dir():
            files.extend(_walk(mp, exclude))
        elif _wanted(mp) and mp.is_file():  # (as a folder's walk: not a pipe, a device, a broken link)
            files.append(mp)
    if not files:
        raise InputError(f"{text}: pattern matches no PDF or image files")
    found: list[_Found] = []
    for f in files:
        try:
            found.append((f, str(f), f.relative_to(root), root))
        except ValueError:
            found.append((f, str(f), Path(f.name), f.parent))
    return found
