"""Rendering: one page of a document -> a :class:`PageImage`, as displayed, encoded.

This is the render stage, run by the render pool's worker threads (worker processes when the pool
is isolated, or inline): the one owner
of a PDF page's box (:func:`pdf_page_box`: CropBox, MediaBox and ``/Rotate``; every other place
that needs a page box calls it) and of flattening a raster to RGB or L (:func:`flatten`, which the exporters use too).  PDF
pages are drawn by PDFium at the size the backend's :class:`~ocrclient.imaging.RenderSpec`
asks, with ``/Rotate`` and the CropBox applied; images are taken as displayed (EXIF orientation
applied), at their own pixel size unless the spec shrinks them.  A page that cannot be rendered
comes back with ``encoded=None`` and ``error`` set, never as an exception.

Each process keeps the last few documents open (:data:`_PDFS`), so a document is parsed once per
process, not once per page, and opens each afresh every few dozen pages, so that what PDFium keeps
of a document's pages while it is open stays bounded (:mod:`ocrclient.pages.pdfdocs`).

A PDF page is drawn into one pixel buffer per process, kept from page to page
(:data:`_PIXELS`): the page's image is read out of it under the same lock as PDFium's drawing,
and only the encode runs beside other renders; a pool lets it go when its page streams have all
ended (:func:`release_pixels`), so an idle pool holds none.  Two threads each drawing into a fresh 10 MB
buffer (a Chandra page at 192 dpi) held two of them at once and left the freed ones in glibc's
per-thread heaps: peak RSS of ``ocr convert --backend runpod-chandra`` over 16 pages went from
122-123 MB to ~109 MB with the shared buffer (and the grey check writing into one bytearray), at the same wall and CPU time
(``benchmarks/README.md``, session 37).
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..geometry import PageBox
from ..imaging import RenderSpec, encode, grey_of_bgr
from ..models import PageImage
from .pdfdocs import FileId, OpenPdfs, load_page

if TYPE_CHECKING:
    from .sources import SourceKind

__all__ = [
    "PDFIUM_LOCK",
    "PageImage",
    "RenderJob",
    "close_open_documents",
    "flatten",
    "load_page",
    "pdf_page_box",
    "quarter_turned",
    "release_pixels",
    "render_job",
]

#: every use of PDFium in *this* process must hold this lock (PDFium is not thread-safe, and
#: ``aiter_pages`` validates inputs in a worker thread); other modules that call pypdfium2 in
#: the main process (exporters) should take it too
PDFIUM_LOCK = threading.RLock()
#: pages smaller than this (points) on either side are refused (PDFium turns a 0x0 MediaBox
#: into US letter itself; anything below one point is a broken page, not a document)
_MIN_PAGE_PT = 1.0


@dataclass(frozen=True)
class RenderJob:
    """One page to render, as the pool sends it to a worker (picklable)."""

    kind: SourceKind
    path: str
    password: str | None
    index: int
    spec: RenderSpec
    name: str
    #: the parent's PIL limit (validated there), so a raised limit holds in workers too
    max_image_pixels: int | None = None


#: the documents this process keeps open between its renders (form fields drawn too)
_PDFS = OpenPdfs(lock=PDFIUM_LOCK, forms=True)


class _PixelBuffer:
    """The buffer PDFium draws a page into, reused by the next page of the same byte size
    (used under :data:`PDFIUM_LOCK` only, and never handed out past it: the image made of it
    is a copy).  Let go when a pool's page streams have all ended (:func:`release_pixels`), so an
    idle pool (a long-lived client's) holds no page buffer (up to ``MAX_PIXELS`` x 3 bytes)."""

    def __init__(self) -> None:
        self._buf: bytearray | None = None

    def white(self, size: int) -> bytearray:
        """``size`` bytes of 0xFF (a white page, before PDFium draws on it)."""
        buf = self._buf
        if buf is None or len(buf) != size:
            self._buf = buf = None  # (the old one goes before the new one is made)
            self._buf = buf = bytearray(b"\xff") * size
        else:
            ctypes.memset((ctypes.c_ubyte * size).from_buffer(buf), 0xFF, size)
        return buf

    def release(self) -> None:
        self._buf = None


#: the pixel buffer of this process's PDF renders (see the module's text)
_PIXELS = _PixelBuffer()


def release_pixels() -> None:
    """Let this process's pixel buffer go (a pool whose page streams have all ended); a render
    under way keeps the one it draws in, and the next makes a new one."""
    with PDFIUM_LOCK:
        _PIXELS.release()


def close_open_documents() -> None:
    """Close the documents this process keeps open (an inline pool's, when it closes), and let
    the render's pixel buffer go."""
    _PDFS.close()
    _PIXELS.release()


def pdf_page_box(page: Any) -> PageBox:
    """The geometry of a PDF page as displayed: the one place the client reads a page's box.

    ``page`` is an open ``pypdfium2.PdfPage`` (hold :data:`PDFIUM_LOCK` in the main process).
    The page is its effective CropBox (inherited from the page tree when the page has none;
    the MediaBox when there is none) clipped to the MediaBox: ``width`` x ``height`` is that
    box's size in points with ``/Rotate`` applied, ``rotation`` the page's ``/Rotate``
    (inherited too), ``crop_x``/``crop_y`` the box's lower-left corner in PDF user space.
    The renderer, document mode and the searchable-PDF writer all take it from here, so a box
    drawn on a rendered page lands on the same spot of the PDF everywhere.
    """
    width, height = page.get_size()  # displayed size: after /Rotate, CropBox ∩ MediaBox
    left, bottom, _, _ = page.get_bbox()  # that box in user space, inherited attrs included
    return PageBox(float(width), float(height), int(page.get_rotation()), float(left), float(bottom))


def _encoded_page(job: RenderJob, page_box: PageBox, img: Image.Image, render_scale: float,
                  file_id: FileId | None = None) -> PageImage:  # fmt: skip
    """The rendered page, encoded as the job's spec asks."""
    encoded = encode(img, job.spec)
    pdf_path, password = (job.path, job.password) if job.kind == "pdf" else (None, None)
    return PageImage(job.name, job.index, page_box, encoded, render_scale=render_scale, pdf_path=pdf_path,
                     pdf_password=password, file_id=file_id)  # fmt: skip


def _failed_page(job: RenderJob, page_box: PageBox, error: str) -> PageImage:
    """A page that could not be rendered: reported with its error, never dropped."""
    return PageImage(job.name, job.index, page_box, None, error=error)


def _why(exc: BaseException) -> str:
    """An exception as one line (its type name when it has no message)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _render_pdf_page(job: RenderJob) -> PageImage:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    spec = job.spec
    page_box = PageBox(0.0, 0.0)
    try:
        with PDFIUM_LOCK:  # PDFium's part only: the encode below runs beside other renders
            page, file_id = _PDFS.page_of(job.path, job.index, job.password)
            try:
                page_box = pdf_page_box(page)
                width, height = page_box.width, page_box.height
                if width < _MIN_PAGE_PT or height < _MIN_PAGE_PT:
                    return _failed_page(
                        job,
                        page_box,
                        f"page {job.index + 1} has an unusable size of {width:g} x {height:g} pt",
                    )
                px_w, px_h = spec.pixel_size(width, height)
                flags = pdfium_c.FPDF_ANNOT | (pdfium_c.FPDF_GRAYSCALE if spec.grayscale else 0)
                grey = (pdfium_c.FPDFBitmap_Gray, "L", "L")
                fmt, mode, raw = grey if spec.grayscale else (pdfium_c.FPDFBitmap_BGR, "RGB", "BGR")
                # the pixels live in a buffer of ours (white before PDFium draws on it): BGR in
                # the process's buffer, read out below before the lock is let go; L (a grayscale
                # spec) in a buffer of its own, which the image maps
                stride = px_w * len(raw)
                pixels = _PIXELS.white(stride * px_h) if raw == "BGR" else bytearray(b"\xff") * (stride * px_h)
                buffer = (ctypes.c_ubyte * len(pixels)).from_buffer(pixels)  # PDFium draws into it
                bitmap = pdfium.PdfBitmap.new_native(px_w, px_h, fmt, buffer=buffer, stride=stride)
                try:
                    # the page is mapped onto exactly px_w x px_h pixels, with its /Rotate applied
                    pdfium_c.FPDF_RenderPageBitmap(bitmap, page, 0, 0, px_w, px_h, 0, flags)
                    if page.formenv:
                        pdfium_c.FPDF_FFLDraw(page.formenv, bitmap, page, 0, 0, px_w, px_h, 0, flags)
                finally:
                    bitmap.close()
                    del bitmap, buffer
            finally:
                page.close()
            if raw == "BGR":
                # BGR is decoded into an RGB image, or taken as a one-channel image when the page
                # goes out as PNG and every pixel is grey (encode would make it one): a copy
                # either way, so the buffer is free for the next page once the lock is let go
                one_channel = grey_of_bgr(pixels, px_w, px_h) if spec.format == "png" else None
                img = one_channel or Image.frombuffer(mode, (px_w, px_h), pixels, "raw", raw, stride, 1)
                del pixels
        if raw != "BGR":  # an L image maps its own buffer (Python's memory, kept alive by the image)
            img = Image.frombuffer(mode, (px_w, px_h), pixels, "raw", raw, stride, 1)
        return _encoded_page(job, page_box, img, px_w / width, file_id)
    except Exception as exc:
        return _failed_page(job, page_box, f"page {job.index + 1}: cannot render ({_why(exc)})")


def flatten(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB or L: transparency (alpha, a palette's transparent colour) composited
    onto white, CMYK and other colour modes converted to RGB, 1-bit to L, 16/32-bit grey scaled
    into 0..255 when it does not fit.  The one place a raster is flattened: the render stage and
    the exporters (searchable PDF, HTML page images) both call it.

    >>> flatten(Image.new("RGBA", (1, 1), (0, 0, 0, 0))).getpixel((0, 0))
    (255, 255, 255)
    """
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


def quarter_turned(img: Image.Image) -> bool:
    """Whether ``img``'s current frame is shown turned a quarter (EXIF / TIFF orientation 5-8:
    its width and height swap as displayed)."""
    return img.getexif().get(0x0112, 1) in (5, 6, 7, 8)


def _image_size_for(spec: RenderSpec, w: int, h: int) -> tuple[int, int]:
    """Target pixels for an image of w x h pixels (= points).  A dpi-driven spec never enlarges a
    raster beyond its own pixels (it has no more detail to give) but as far as ``min_side`` asks
    (a 900 x 600 image under a 1024 minimum goes up to 1536 x 1024, not to the dpi's 2400 x
    1600); exact ``longest_side`` specs resize as asked; budgets always shrink."""
    tw, th = spec.pixel_size(w, h)
    if spec.dpi is not None and tw * th > w * h:
        return replace(spec, dpi=72.0).pixel_size(w, h)  # (72 dpi: one pixel a point)
    return tw, th


def _render_image_page(job: RenderJob) -> PageImage:
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
            swapped = quarter_turned(raw)
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
        img = flatten(img)
        if img.size != (tw, th):
            img = img.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0)
        return _encoded_page(job, page_box, img, tw / w)
    except Exception as exc:
        return _failed_page(
            job, page_box, f"page {job.index + 1}: cannot render image ({_why(exc)})"
        )


def render_job(job: RenderJob) -> PageImage:
    """Render one page; never raises for a bad page.  Thread-safe: PDFium runs under
    :data:`PDFIUM_LOCK`, the encode outside it."""
    t0 = time.perf_counter()
    page = _render_pdf_page(job) if job.kind == "pdf" else _render_image_page(job)
    page.render_s = time.perf_counter() - t0
    return page
