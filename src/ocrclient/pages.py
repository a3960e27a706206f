"""Inputs -> a lazy, bounded stream of page images.

:func:`open_sources` turns what a user typed (files, directories, glob patterns, PDF or image
bytes) into validated :class:`Source` objects, failing early with one clear :class:`InputError`
line for anything unusable.  :func:`iter_pages` / :func:`aiter_pages` then render the selected
pages of one source *as displayed* (``/Rotate`` and CropBox applied, EXIF orientation applied
for images) to the backend's :class:`~ocrclient.imaging.RenderSpec`, in a small process pool
(:class:`RenderPool`; PDFium is not thread-safe), encoding each image in the worker.

The stream is pull-based and bounded: a page is submitted for rendering only when the consumer
asks for the next one, and at most ``prefetch`` pages are ever rendered-but-not-consumed.  A page
that cannot be rendered is yielded with ``encoded=None`` and ``error`` set, never dropped.

Example::

    >>> from ocrclient.imaging import RenderSpec
    >>> from ocrclient.pages import RenderPool, iter_pages, open_sources
    >>> with RenderPool() as pool:                                  # doctest: +SKIP
    ...     for src in open_sources(["scans/", "report.pdf"]):
    ...         for page in iter_pages(src, RenderSpec(dpi=150), pages="1-3", pool=pool):
    ...             print(src.name, page.number, page.frame, page.error)
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import ctypes
import glob
import hashlib
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from .errors import InputError, OcrError
from .geometry import PageBox
from .imaging import RenderSpec, encode
from .models import PageImage  # the page that crosses the seams (defined with the others)

__all__ = [
    "IMAGE_SUFFIXES",
    "PDFIUM_LOCK",
    "PDF_SUFFIXES",
    "PREFETCH_PER_WORKER",
    "PageImage",
    "RenderPool",
    "RenderPoolError",
    "Source",
    "aiter_pages",
    "iter_pages",
    "open_sources",
    "parse_page_range",
]

SourceKind = Literal["pdf", "image"]

#: file name suffixes picked up when walking a directory or expanding a glob (the type itself
#: is always decided by the file's magic bytes, never by its suffix)
PDF_SUFFIXES = frozenset({".pdf"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"})
_SUPPORTED = "PDF, PNG, JPEG, TIFF, WebP, BMP"
_GLOB_CHARS = re.compile(r"[*?\[]")
#: pages smaller than this (points) on either side are refused (PDFium turns a 0x0 MediaBox
#: into US letter itself; anything below one point is a broken page, not a document)
_MIN_PAGE_PT = 1.0

#: every use of PDFium in *this* process must hold this lock (PDFium is not thread-safe, and
#: ``aiter_pages`` validates inputs in a worker thread); other modules that call pypdfium2 in
#: the main process (exporters) should take it too
PDFIUM_LOCK = threading.RLock()


class RenderPoolError(OcrError):
    """The render pool broke (a worker process died, e.g. PDFium crashed on a page)."""

    kind = "render_pool"


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


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
    data: bytes | None
    kind: SourceKind
    page_count: int
    rel: Path | None = None
    password: str | None = field(default=None, repr=False)
    #: detected container format: "pdf", "png", "jpeg", "tiff", "webp", "bmp"
    format: str = ""
    root: Path | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("a Source has exactly one of path and data")

    @property
    def key(self) -> str:
        """A stable identity for caches: the resolved path, or a hash of the bytes."""
        if self.path is not None:
            return str(self.path.resolve())
        assert self.data is not None
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


# --------------------------------------------------------------------------------------------
# input discovery and validation
# --------------------------------------------------------------------------------------------


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
                    raise InputError(f"{label}: wrong password for this encrypted PDF")
                raise InputError(f"{label}: PDF is encrypted; pass its password (--password)")
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


def _probe_image(data: bytes | Path, fmt: str, label: str) -> int:
    """Frame count of an image (TIFF frames are pages); guards decompression bombs."""
    import io
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp: Any = io.BytesIO(data) if isinstance(data, bytes) else data
            with Image.open(fp) as img:
                frames = int(getattr(img, "n_frames", 1)) if fmt == "tiff" else 1
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


def _make_source(
    *,
    name: str,
    stem: str,
    path: Path | None,
    data: bytes | None,
    rel: Path | None,
    password: str | None,
    root: Path | None = None,
) -> Source:
    if path is not None:
        try:
            with path.open("rb") as fh:
                head = fh.read(2048)
        except IsADirectoryError as exc:
            raise InputError(f"{name}: is a directory") from exc
        except OSError as exc:
            raise InputError(f"{name}: cannot read file ({exc.strerror or exc})") from exc
    else:
        assert data is not None
        head = data[:2048]
    fmt = _sniff(head)
    if fmt is None:
        raise InputError(
            f"{name}: not a PDF or supported image ({_describe(head)}); supported: {_SUPPORTED}"
        )
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
    )


def _wanted(p: Path) -> bool:
    return p.suffix.lower() in PDF_SUFFIXES | IMAGE_SUFFIXES and not p.name.startswith(".")


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            p = Path(dirpath) / fn
            if _wanted(p) and p.is_file():
                found.append(p)
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
    inputs: Sequence[str | Path | bytes] | str | Path | bytes, *, password: str | None = None
) -> list[Source]:
    """Resolve and validate inputs into documents, in a deterministic order.

    Accepts file paths, directories (walked recursively for PDFs and PNG/JPEG/TIFF/WebP/BMP
    images, sorted by relative path), glob patterns (``**`` allowed) and raw PDF/image bytes.
    Types are detected from magic bytes, never from the suffix.  The same file reached twice
    is kept once.  Raises :class:`InputError` (one line) for a missing file, a file that is not
    a PDF/supported image, a corrupt/truncated PDF, an encrypted PDF without the right
    ``password``, a PDF with no pages, an image over PIL's ``MAX_IMAGE_PIXELS``, and a
    directory or pattern that matches nothing.
    """
    if isinstance(inputs, (str, Path, bytes)):
        inputs = [inputs]
    sources: list[Source] = []
    seen: set[str] = set()

    def add(path: Path, name: str, rel: Path | None, root: Path) -> None:
        key = str(path.resolve())
        if key in seen:
            return
        seen.add(key)
        sources.append(
            _make_source(
                name=name, stem=path.stem, path=path, data=None, rel=rel, password=password, root=root
            )
        )

    for item in inputs:
        if isinstance(item, (bytes, bytearray, memoryview)):
            data = bytes(item)
            digest = hashlib.sha256(data).hexdigest()
            if ("sha256:" + digest) in seen:
                continue
            seen.add("sha256:" + digest)
            sources.append(
                _make_source(
                    name=f"bytes:{digest[:12]}",
                    stem=f"document-{digest[:8]}",
                    path=None,
                    data=data,
                    rel=None,
                    password=password,
                )
            )
            continue
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            files = _walk(path)
            if not files:
                raise InputError(f"{text}: directory has no PDF or image files ({_SUPPORTED})")
            for f in files:
                add(f, str(f), f.relative_to(path), path)
        elif path.exists():
            add(path, text, None, path.parent)
        elif isinstance(item, str) and _GLOB_CHARS.search(text):
            pattern = os.path.expanduser(text)
            root = _glob_root(pattern)
            matches = sorted(glob.glob(pattern, recursive=True))
            files = []
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    files.extend(_walk(mp))
                elif _wanted(mp):
                    files.append(mp)
            if not files:
                raise InputError(f"{text}: pattern matches no PDF or image files")
            for f in files:
                try:
                    rel: Path | None = f.relative_to(root)
                    found_in = root
                except ValueError:
                    rel, found_in = Path(f.name), f.parent
                add(f, str(f), rel, found_in)
        else:
            raise InputError(f"{text}: no such file or directory")
    return sources


# --------------------------------------------------------------------------------------------
# page ranges
# --------------------------------------------------------------------------------------------


def parse_page_range(spec: str | None, page_count: int) -> list[int]:
    """``"1-3,7,10-"`` (1-based, inclusive) -> sorted unique 0-based indices.

    ``None``/empty means every page; ``"-3"`` means 1-3; ``"10-"`` means 10 to the end.
    Raises :class:`InputError` for syntax errors and pages past the end.

    >>> parse_page_range("1-3,7,10-", 11)
    [0, 1, 2, 6, 9, 10]
    >>> parse_page_range("-2", 5)
    [0, 1]
    """
    if spec is None or not spec.strip():
        return list(range(page_count))
    picked: set[int] = set()
    for raw in spec.split(","):
        part = raw.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d*)\s*-\s*(\d*)", part)
        if m:
            a_txt, b_txt = m.groups()
            if not a_txt and not b_txt:
                raise InputError(f"page range {spec!r}: '-' needs a number on at least one side")
            first = int(a_txt) if a_txt else 1
            last = int(b_txt) if b_txt else page_count
        elif part.isdigit():
            first = last = int(part)
        else:
            raise InputError(f"page range {spec!r}: cannot read {part!r} (use e.g. 1-3,7,10-)")
        if first < 1 or last < 1:
            raise InputError(f"page range {spec!r}: pages start at 1")
        if first > last:
            raise InputError(f"page range {spec!r}: {part!r} runs backwards")
        if last > page_count or first > page_count:
            bad = last if last > page_count else first
            noun = "page" if page_count == 1 else "pages"
            raise InputError(
                f"page range {spec!r}: page {bad} is past the end (the document has {page_count} {noun})"
            )
        picked.update(range(first - 1, last))
    if not picked:
        raise InputError(f"page range {spec!r} selects no pages")
    return sorted(picked)


def _select(pages: str | Sequence[int] | None, page_count: int) -> list[int]:
    if pages is None or isinstance(pages, str):
        return parse_page_range(pages, page_count)
    out = sorted({int(i) for i in pages})
    for i in out:
        if i < 0 or i >= page_count:
            noun = "page" if page_count == 1 else "pages"
            raise InputError(
                f"page index {i} is out of range (the document has {page_count} {noun}; indices are 0-based)"
            )
    return out


# --------------------------------------------------------------------------------------------
# worker side: open once per process, render as displayed, encode
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    kind: SourceKind
    path: str
    password: str | None
    index: int
    spec: RenderSpec
    name: str
    #: the parent's PIL limit (validated there), so a raised limit holds in workers too
    max_image_pixels: int | None = None


#: per-process cache of open documents: (path, size, mtime_ns, password) -> PdfDocument
_DOCS: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_MAX_DOCS = 4
#: pdfium keeps every object it has parsed for as long as the document is open (about 10 kB per
#: rendered page of dense text): a worker reopens a document after this many pages, so a
#: 10,000-page PDF does not grow it by 100 MB
_REOPEN_AFTER = 256
_USES: dict[tuple[Any, ...], int] = {}


def _worker_init() -> None:
    # Ctrl-C is handled by the consumer, which shuts the pool down; workers stay quiet
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _open_pdf(path: str, password: str | None) -> Any:
    import pypdfium2 as pdfium

    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, password)
    pdf = _DOCS.get(key)
    if pdf is not None:
        _USES[key] = _USES.get(key, 0) + 1
        if _USES[key] < _REOPEN_AFTER:
            _DOCS.move_to_end(key)
            return pdf
        del _DOCS[key]
        with contextlib.suppress(Exception):
            pdf.close()
    _USES[key] = 0
    pdf = pdfium.PdfDocument(path, password=password)
    with contextlib.suppress(Exception):  # forms are a nicety; never fail a render for them
        pdf.init_forms()
    _DOCS[key] = pdf
    while len(_DOCS) > _MAX_DOCS:
        old_key, old = _DOCS.popitem(last=False)
        _USES.pop(old_key, None)
        with contextlib.suppress(Exception):
            old.close()
    return pdf


def _encoded_page(job: _Job, page_box: PageBox, img: Image.Image, render_scale: float) -> PageImage:
    """The rendered page, encoded as the job's spec asks."""
    encoded = encode(img, job.spec)
    return PageImage(job.name, job.index, page_box, encoded, render_scale=render_scale)


def _failed_page(job: _Job, page_box: PageBox, error: str) -> PageImage:
    """A page that could not be rendered: reported with its error, never dropped."""
    return PageImage(job.name, job.index, page_box, None, error=error)


def _why(exc: BaseException) -> str:
    """An exception as one line (its type name when it has no message)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _render_pdf_page(job: _Job) -> PageImage:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    spec = job.spec
    page_box = PageBox(0.0, 0.0)
    try:
        pdf = _open_pdf(job.path, job.password)
        page = pdf[job.index]
        try:
            width, height = page.get_size()  # displayed size: after /Rotate, CropBox ∩ MediaBox
            rotation = int(page.get_rotation())
            left, bottom, _, _ = page.get_bbox()  # effective CropBox, inherited attrs included
            page_box = PageBox(float(width), float(height), rotation, float(left), float(bottom))
            if width < _MIN_PAGE_PT or height < _MIN_PAGE_PT:
                return _failed_page(
                    job,
                    page_box,
                    f"page {job.index + 1} has an unusable size of {width:g} x {height:g} pt",
                )
            px_w, px_h = spec.pixel_size(width, height)
            if spec.grayscale:
                fmt, flags = pdfium_c.FPDFBitmap_Gray, pdfium_c.FPDF_ANNOT | pdfium_c.FPDF_GRAYSCALE
            else:
                fmt, flags = pdfium_c.FPDFBitmap_BGR, pdfium_c.FPDF_ANNOT
            bitmap = pdfium.PdfBitmap.new_native(px_w, px_h, fmt)
            bitmap.fill_rect((255, 255, 255, 255), 0, 0, px_w, px_h)
            # the page is mapped onto exactly px_w x px_h pixels, with its /Rotate applied
            pdfium_c.FPDF_RenderPageBitmap(bitmap, page, 0, 0, px_w, px_h, 0, flags)
            if page.formenv:
                pdfium_c.FPDF_FFLDraw(page.formenv, bitmap, page, 0, 0, px_w, px_h, 0, flags)
            img = bitmap.to_pil()
        finally:
            page.close()
        return _encoded_page(job, page_box, img, px_w / width)
    except Exception as exc:
        return _failed_page(job, page_box, f"page {job.index + 1}: cannot render ({_why(exc)})")


def _flatten(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB or L, transparency composited onto white."""
    if img.mode in ("RGB", "L"):
        return img
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = img.convert("F") if img.mode == "F" else img.convert("I")
        ext: Any = img.getextrema()
        lo, hi = float(ext[0]), float(ext[1])
        if hi <= 255 and lo >= 0:
            return img.convert("L")
        span = (hi - lo) or 1.0
        return img.point(lambda v: (v - lo) * (255.0 / span)).convert("L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return img.convert("RGB")


def _image_size_for(spec: RenderSpec, w: int, h: int) -> tuple[int, int]:
    """Target pixels for an image of w x h pixels (= points).  A dpi-driven spec never enlarges a
    raster beyond its own pixels (it has no more detail to give); exact ``longest_side`` specs
    and ``min_side`` still resize as asked; budgets always shrink."""
    tw, th = spec.pixel_size(w, h)
    if spec.dpi is not None and tw * th > w * h:
        shortest = min(w, h)
        if shortest >= spec.min_side:
            return w, h
    return tw, th


def _render_image_page(job: _Job) -> PageImage:
    from PIL import ImageOps

    spec = job.spec
    page_box = PageBox(0.0, 0.0)
    Image.MAX_IMAGE_PIXELS = job.max_image_pixels
    try:
        with Image.open(job.path) as raw:
            if job.index:
                raw.seek(job.index)
            # the page is the image as displayed, at its ORIGINAL pixel size (1 px = 1 pt)
            sw, sh = raw.size
            swapped = raw.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            w, h = (sh, sw) if swapped else (sw, sh)
            tw, th = _image_size_for(spec, w, h)
            if raw.format == "JPEG" and tw * 2 <= w and th * 2 <= h:
                # let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below the target size)
                raw.draft(raw.mode, (th, tw) if swapped else (tw, th))
            img = ImageOps.exif_transpose(raw)  # a transposed copy of the current frame
            if img is None:  # pragma: no cover - only with in_place=True
                img = raw
            img.load()
        if (img.width > img.height) != (w > h) and img.width != img.height:
            w, h = h, w  # orientation read differently by exif_transpose: trust the pixels
            tw, th = _image_size_for(spec, w, h)
        page_box = PageBox(float(w), float(h))
        img = _flatten(img)
        if img.size != (tw, th):
            img = img.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return _encoded_page(job, page_box, img, tw / w)
    except Exception as exc:
        return _failed_page(
            job, page_box, f"page {job.index + 1}: cannot render image ({_why(exc)})"
        )


def _render_job(job: _Job) -> PageImage:
    """Runs in a worker process (or inline): never raises for a bad page."""
    t0 = time.perf_counter()
    page = _render_pdf_page(job) if job.kind == "pdf" else _render_image_page(job)
    page.render_s = time.perf_counter() - t0
    return page


# --------------------------------------------------------------------------------------------
# the pool
# --------------------------------------------------------------------------------------------


#: pages rendered ahead of the consumer, per render worker.  At 2 a worker starved whenever the
#: event loop was busy for a few pages' time (a full GC, a burst of replies): 72-dpi JPEG pages
#: against an instant server ran at 0.72-0.83 of the serial render loop with 2 and 0.82-0.91
#: with 4 (500 pages, two runs each, the setup of benchmarks/bench_scheduler.py (b)).  The memory
#: cost is that many encoded pages (a few MB).
PREFETCH_PER_WORKER = 4


def _default_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(2, n))


def _start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class RenderPool:
    """A small process pool that renders pages; share one across documents.

    ``workers`` defaults to ``min(2, usable CPUs)``; ``workers=0`` renders inline in the calling
    thread (no processes; useful for one-page inputs and debugging).  Workers are started with
    ``forkserver`` (``spawn`` where unavailable), which is safe in a threaded parent; the fork
    server preloads pypdfium2 and Pillow so each worker starts in milliseconds.  Each worker keeps
    the last few documents open, so a document is parsed once per worker, not once per page.
    PDF/image bytes are spilled once to a private temporary directory that :meth:`close` removes.

    Example::

        >>> with RenderPool(workers=2) as pool:                     # doctest: +SKIP
        ...     for src in open_sources(["a.pdf", "b.pdf"]):
        ...         pages = list(iter_pages(src, RenderSpec(dpi=100), pool=pool))
    """

    def __init__(self, workers: int | None = None, *, start_method: str | None = None) -> None:
        self.workers = _default_workers() if workers is None else max(0, int(workers))
        self._start_method = start_method or _start_method()
        self._executor: cf.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._tmpdir: str | None = None
        self._spilled: dict[str, str] = {}
        #: each source path resolved once (a resolve is a few lstat calls: per page, it showed)
        self._resolved: dict[Path, str] = {}
        self._closed = False
        self._broken: str | None = None
        #: number of pages submitted for rendering so far (all streams on this pool)
        self.submitted = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RenderPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)

    def start(self) -> RenderPool:
        """Start the worker processes now (otherwise they start on first use)."""
        self._ensure_executor()
        return self

    def _ensure_executor(self) -> cf.ProcessPoolExecutor | None:
        if self._closed:
            raise RuntimeError("RenderPool is closed")
        if self._broken:
            raise RenderPoolError(self._broken)
        if self.workers == 0:
            return None
        with self._lock:
            if self._executor is None:
                ctx = multiprocessing.get_context(self._start_method)
                if self._start_method == "forkserver":
                    # effective only before the fork server starts (process-wide); harmless after
                    ctx.set_forkserver_preload(
                        ["pypdfium2", "PIL.Image", "PIL.PngImagePlugin", __name__]
                    )
                self._executor = cf.ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=ctx, initializer=_worker_init
                )
            return self._executor

    def close(self) -> None:
        """Stop the workers (pending renders are cancelled) and remove spilled bytes."""
        if self._closed:
            return
        self._closed = True
        ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)
        if self.workers == 0:  # inline renders cached documents in this process: let them go
            with PDFIUM_LOCK:
                while _DOCS:
                    _, pdf = _DOCS.popitem()
                    with contextlib.suppress(Exception):
                        pdf.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- work --------------------------------------------------------------------------------

    def _path_of(self, source: Source) -> str:
        if source.path is not None:
            resolved = self._resolved.get(source.path)
            if resolved is None:
                if len(self._resolved) >= 1024:  # a long-lived pool sees many documents
                    self._resolved.clear()
                resolved = self._resolved[source.path] = str(source.path.resolve())
            return resolved
        assert source.data is not None
        key = source.key
        with self._lock:
            spilled = self._spilled.get(key)
            if spilled is None:
                if self._tmpdir is None:
                    self._tmpdir = tempfile.mkdtemp(prefix="ocrclient-pages-")
                spilled = os.path.join(
                    self._tmpdir, key.split(":", 1)[1][:32] + "." + (source.format or "bin")
                )
                with open(spilled, "wb") as fh:
                    fh.write(source.data)
                self._spilled[key] = spilled
            return spilled

    def _job(self, source: Source, index: int, spec: RenderSpec) -> _Job:
        return _Job(
            source.kind,
            self._path_of(source),
            source.password,
            index,
            spec,
            source.name,
            Image.MAX_IMAGE_PIXELS,
        )

    def submit(self, source: Source, index: int, spec: RenderSpec) -> cf.Future[PageImage]:
        """Render one page (0-based ``index``) of ``source``; the future never fails for a bad
        page (it carries ``error``), only for a broken pool."""
        job = self._job(source, index, spec)
        ex = self._ensure_executor()
        self.submitted += 1
        if ex is None:
            fut: cf.Future[PageImage] = cf.Future()
            with PDFIUM_LOCK:
                fut.set_result(_render_job(job))
            return fut
        try:
            return ex.submit(_render_job, job)
        except BrokenProcessPool as exc:
            raise self._mark_broken() from exc

    def _mark_broken(self) -> RenderPoolError:
        self._broken = (
            "a render worker process died (PDFium crashed, the process was killed, or the main "
            "script lacks an `if __name__ == '__main__':` guard); the render pool is unusable"
        )
        return RenderPoolError(self._broken)

    def result(self, fut: cf.Future[PageImage]) -> PageImage:
        try:
            return fut.result()
        except BrokenProcessPool as exc:
            raise self._mark_broken() from exc

    async def aresult(self, fut: cf.Future[PageImage]) -> PageImage:
        try:
            return await asyncio.wrap_future(fut)
        except BrokenProcessPool as exc:
            raise self._mark_broken() from exc


# --------------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------------


def _resolve(source: Source | str | Path | bytes, password: str | None) -> Source:
    if isinstance(source, Source):
        if password is not None and source.kind == "pdf" and source.password != password:
            return _make_source(
                name=source.name,
                stem=source.stem,
                path=source.path,
                data=source.data,
                rel=source.rel,
                password=password,
                root=source.root,
            )
        return source
    found = open_sources([source], password=password)
    if len(found) != 1:
        raise InputError(
            f"{found[0].name if found else source!r}: matches {len(found)} documents; iterate open_sources() instead"
        )
    return found[0]


def _plan(
    source: Source | str | Path | bytes,
    pages: str | Sequence[int] | None,
    password: str | None,
    pool: RenderPool | None,
    prefetch: int | None,
) -> tuple[Source, list[int], RenderPool, bool, int]:
    src = _resolve(source, password)
    indices = _select(pages, src.page_count)
    own = pool is None
    if pool is None:
        pool = RenderPool(workers=0 if len(indices) <= 1 else min(_default_workers(), len(indices)))
    depth = prefetch if prefetch is not None else max(1, PREFETCH_PER_WORKER * pool.workers)
    if depth < 1:
        raise ValueError("prefetch must be at least 1")
    return src, indices, pool, own, depth


def iter_pages(
    source: Source | str | Path | bytes,
    spec: RenderSpec,
    *,
    pages: str | Sequence[int] | None = None,
    password: str | None = None,
    pool: RenderPool | None = None,
    prefetch: int | None = None,
) -> Iterator[PageImage]:
    """Yield the selected pages of one document, in page order, rendered to ``spec``.

    ``pages`` is a 1-based range string (``"1-3,7,10-"``) or a sequence of 0-based indices.
    Without ``pool`` a private pool is started and closed with the stream (share a
    :class:`RenderPool` across documents to pay worker start-up once).  At most ``prefetch``
    (default :data:`PREFETCH_PER_WORKER` x workers) pages are rendered ahead of the consumer,
    and nothing is rendered before the first ``next()``.  Input problems raise
    :class:`InputError` when called; a broken pool raises :class:`RenderPoolError` from
    ``next()``.
    """
    src, indices, rpool, own, depth = _plan(source, pages, password, pool, prefetch)
    return _iter(src, indices, spec, rpool, own, depth)


def _iter(
    src: Source, indices: list[int], spec: RenderSpec, pool: RenderPool, own: bool, depth: int
) -> Iterator[PageImage]:
    pending: deque[cf.Future[PageImage]] = deque()
    todo = iter(indices)
    try:
        while True:
            # top up to `depth` outstanding pages, only now that the consumer asked for one
            while len(pending) < depth:
                nxt = next(todo, None)
                if nxt is None:
                    break
                pending.append(pool.submit(src, nxt, spec))
            if not pending:
                return
            yield pool.result(pending.popleft())
    finally:
        for fut in pending:
            fut.cancel()
        if own:
            pool.close()


async def aiter_pages(
    source: Source | str | Path | bytes,
    spec: RenderSpec,
    *,
    pages: str | Sequence[int] | None = None,
    password: str | None = None,
    pool: RenderPool | None = None,
    prefetch: int | None = None,
) -> AsyncIterator[PageImage]:
    """Async twin of :func:`iter_pages` (same arguments, same bounds).  Validation, pool start
    and waiting on renders run off the event loop; being an async generator, it raises
    :class:`InputError` on the first ``__anext__`` rather than on the call.

    Example::

        >>> async for page in aiter_pages("a.pdf", RenderSpec(dpi=150), pages="1-3"):  # doctest: +SKIP
        ...     print(page.number, page.frame)
    """
    src, indices, rpool, own, depth = await asyncio.to_thread(
        _plan, source, pages, password, pool, prefetch
    )
    pending: deque[cf.Future[PageImage]] = deque()
    todo = iter(indices)
    first = True
    try:
        while True:
            while len(pending) < depth:
                nxt = next(todo, None)
                if nxt is None:
                    break
                if first or rpool.workers == 0:
                    # the first submit may start processes / spill bytes; inline renders block:
                    # keep both off the loop
                    pending.append(await asyncio.to_thread(rpool.submit, src, nxt, spec))
                    first = False
                else:
                    pending.append(rpool.submit(src, nxt, spec))
            if not pending:
                return
            yield await rpool.aresult(pending.popleft())
    finally:
        for fut in pending:
            fut.cancel()
        if own:
            await asyncio.to_thread(rpool.close)
