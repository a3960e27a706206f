"""A :class:`Source`: one validated input document, and the checks that make one.

:func:`make_source` sniffs the container from its magic bytes (never from a suffix) and opens
the document just long enough to count its pages, so that anything unusable (not a PDF or a
supported image, corrupt, encrypted without the right password, no pages, an image over PIL's
pixel limit) fails before a page is sent, with one :class:`~ocrclient.errors.InputError` line.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from ..errors import InputError
from .render import PDFIUM_LOCK

__all__ = ["SUPPORTED", "Source", "SourceKind", "make_source"]

SourceKind = Literal["pdf", "image"]
#: the formats :func:`make_source` accepts, as named in its errors
SUPPORTED = "PDF, PNG, JPEG, TIFF, WebP, BMP"


@dataclass
class Source:
    """One validated input document.

    ``name`` is the path as the user gave it (or ``bytes:<hash>``), ``stem`` the base name for
    output files, ``rel`` the path below the directory/glob root it was found in (``None`` for
    inputs named directly), ``root`` that directory (the directory named, a glob's fixed prefix,
    or a named file's own folder; ``None`` for bytes) — :func:`ocrclient.outputs.output_stems`
    mirrors inputs under OUT from their roots.  Exactly one of ``path`` and ``data`` is set.

    Example::

        >>> src = open_sources(["report.pdf"])[0]                  # doctest: +SKIP
        >>> src.kind, src.page_count, src.stem                     # doctest: +SKIP
        ('pdf', 12, 'report')
    """

    name: str
    stem: str
    path: Path | None
    data: bytes | None = field(repr=False)  # (a result's repr held the whole upload)
    kind: SourceKind
    page_count: int
    rel: Path | None = None
    password: str | None = field(default=None, repr=False)
    #: detected container format: "pdf", "png", "jpeg", "tiff", "webp", "bmp"
    format: str = ""
    root: Path | None = None
    #: the file's (size, mtime) when it was opened, before it was read (``None`` for bytes):
    #: what the run's manifest records, so that a file replaced while the run read it is
    #: converted again by the next run
    opened: tuple[int, float] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("a Source has exactly one of path and data")

    @cached_property
    def key(self) -> str:
        """A stable identity for caches: the resolved path, or a hash of the bytes; worked out
        once per source (the render pool asks it for every page: a resolve is a few ``lstat``
        calls), so a call reads the file its path named when it was opened, however the path
        is re-pointed meanwhile, and the next call's source resolves it again."""
        if self.path is not None:
            return str(self.path.resolve())
        assert self.data is not None
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


def _sniff(head: bytes) -> str | None:
    """Container format from magic bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM") and len(head) >= 26:
        return "bmp"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    return None


def _describe(head: bytes) -> str:
    if not head:
        return "it is empty"
    if head.startswith(b"GIF8"):
        return "it is a GIF image"
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP/Office file"
    sample = head[:512]
    if sample and all(b in b"\t\n\r" or 32 <= b < 127 or b >= 128 for b in sample):
        return "it looks like a text file"
    return "unknown file signature"


def _probe_pdf(data: bytes | Path, password: str | None, label: str) -> int:
    """Open a PDF in this process just long enough to count its pages; one-line InputError
    on anything that keeps it from opening."""
    import pypdfium2 as pdfium  # noqa: F401  (initialises the library)
    import pypdfium2.raw as pdfium_c

    pw = None if password is None else (password + "\x00").encode("utf-8")
    with PDFIUM_LOCK:
        if isinstance(data, Path):
            raw = pdfium_c.FPDF_LoadDocument(os.fsencode(data) + b"\x00", pw)
        else:
            buf = ctypes.create_string_buffer(data, len(data))
            raw = pdfium_c.FPDF_LoadMemDocument64(buf, len(data), pw)
        if not raw:
            code = pdfium_c.FPDF_GetLastError()
            if code == pdfium_c.FPDF_ERR_PASSWORD:
                if password:
                    raise InputError(f"{label}: wrong password for this encrypted PDF", cause="encrypted")
                raise InputError(f"{label}: PDF is encrypted; pass its password (--password; password= in Python)", cause="encrypted")
            if code == pdfium_c.FPDF_ERR_SECURITY:
                raise InputError(f"{label}: PDF uses an unsupported encryption scheme")
            if code == pdfium_c.FPDF_ERR_FILE:
                raise InputError(f"{label}: cannot read file")
            raise InputError(f"{label}: corrupt or truncated PDF (cannot be parsed)")
        try:
            count = int(pdfium_c.FPDF_GetPageCount(raw))
        finally:
            pdfium_c.FPDF_CloseDocument(raw)
    if count < 1:
        raise InputError(f"{label}: PDF has no pages")
    return count


#: image formats whose frames are pages: a multi-page TIFF, an animated WebP or PNG (every frame
#: as shown, none dropped).  A JPEG's further pictures (MPO: a phone's stereo view or preview)
#: are not pages: its first picture is the photo.
_PAGED_FORMATS = frozenset({"tiff", "webp", "png"})


def _probe_image(data: bytes | Path, fmt: str, label: str) -> int:
    """Frame count of an image (the frames of :data:`_PAGED_FORMATS` are pages); guards
    decompression bombs."""
    import io
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp: Any = io.BytesIO(data) if isinstance(data, bytes) else data
            with Image.open(fp) as img:
                frames = int(getattr(img, "n_frames", 1)) if fmt in _PAGED_FORMATS else 1
                limit = Image.MAX_IMAGE_PIXELS
                for i in range(frames):
                    if i:
                        img.seek(i)
                    w, h = img.size
                    if w < 1 or h < 1:
                        raise InputError(f"{label}: image has zero size")
                    if limit and w * h > limit:
                        raise InputError(
                            f"{label}: image is {w}x{h} pixels, over the {limit} pixel limit "
                            "(possible decompression bomb; raise PIL.Image.MAX_IMAGE_PIXELS to allow)"
                        )
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{label}: image too large, possible decompression bomb ({exc})") from exc
    except Exception as exc:  # PIL raises many types for broken files
        raise InputError(f"{label}: corrupt or unreadable {fmt.upper()} image ({exc})") from exc
    return frames


def _format_of(head: bytes, name: str) -> str:
    """The container format of a file that starts with ``head`` (one :class:`InputError` line
    when it is not a PDF or an image we take)."""
    fmt = _sniff(head)
    if fmt is None:
        raise InputError(f"{name}: not a PDF or supported image ({_describe(head)}); supported: {SUPPORTED}")
    return fmt


#: the most a named pipe or device is read for one input
MAX_STREAM_BYTES = 2 * 1024**3


def _stream(path: Path) -> bool:
    """Whether ``path`` names something other than a file or a folder (a pipe, a device): it
    can be read once only, where a file is opened again for every render."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False  # (the open below says why)
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _read_stream(path: Path, name: str) -> bytes:
    """All of the stream ``path`` (its first bytes first: what is not a PDF or an image is
    refused before the rest is read)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(2048)
            _format_of(head, name)
            data = head + fh.read(MAX_STREAM_BYTES + 1 - len(head))
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if len(data) > MAX_STREAM_BYTES:
        raise InputError(f"{name}: a stream of more than {MAX_STREAM_BYTES // 1024**3} GiB; save it to a file first")
    return data


def make_source(
    *,
    name: str,
    stem: str,
    path: Path | None,
    data: bytes | None,
    rel: Path | None,
    password: str | None,
    root: Path | None = None,
) -> Source:
    if path is not None and _stream(path):  # a pipe (`<(...)`), a device: read once, kept in memory
        data, path = _read_stream(path, name), None
    opened: tuple[int, float] | None = None
    if path is not None:
        try:
            with path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                opened = (st.st_size, st.st_mtime)
                head = fh.read(2048)
        except IsADirectoryError as exc:
            raise InputError(f"{name}: is a directory") from exc
        except OSError as exc:
            raise InputError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
    else:
        assert data is not None
        head = data[:2048]
    fmt = _format_of(head, name)
    target: bytes | Path = path if path is not None else data  # type: ignore[assignment]
    if fmt == "pdf":
        count = _probe_pdf(target, password, name)
        kind: SourceKind = "pdf"
    else:
        count = _probe_image(target, fmt, name)
        kind = "image"
    return Source(
        name=name,
        stem=stem,
        path=path,
        data=data,
        kind=kind,
        page_count=count,
        rel=rel,
        password=password if kind == "pdf" else None,
        format=fmt,
        root=root,
        opened=opened,
    )
