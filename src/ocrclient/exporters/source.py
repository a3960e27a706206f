"""The input a Document was made from, for the writers that need its pages.

Two moments read it, and no writer reads it afterwards:

* **A run, when a document starts** (:class:`~ocrclient.exporters.sink.OutputWriter`, before
  its first page is rendered): for a searchable PDF of a PDF input, :func:`open_pdf` opens the
  input's own document from the run's :class:`~ocrclient.pages.Source` (its bytes when it was
  given as bytes), and the PDF writer copies pages from that handle as they finish; for an
  image input, :func:`image_dpis` reads the resolution each frame records (the PDF page size).
  Page images and figure crops come from the run's own renders, never from here.
* **A Document written without its run** (``ocr view`` on a JSON result, or
  :func:`~ocrclient.exporters.write_outputs` / a writer's ``write`` called with a bare
  Document): :func:`resolve_source` finds the file again (as recorded, or relative to a folder
  such as the one holding the JSON) and :func:`render_pages` renders the wanted pages *as
  displayed* through :mod:`ocrclient.pages` (PDFium for PDFs, the image itself for images), so a
  block's ``bbox_norm`` maps straight onto the render's pixels.

Example::

    >>> from ocrclient.document import Document
    >>> resolve_source(Document(source="bytes:1f2e", backend="x")) is None
    True
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ..document import Document
from ..errors import InputError, OcrError
from ..imaging import RenderSpec
from ..pages import PDFIUM_LOCK, PageImage, Source, open_sources

__all__ = [
    "could_be_input",
    "image_dpis",
    "open_pdf",
    "open_source",
    "render_pages",
    "resolve_source",
    "source_password",
    "source_spec",
]

#: resolutions an image may record that are taken as its print size (others mean 72 dpi)
_SANE_DPI = (30.0, 1200.0)


#: the password of an encrypted input while a Document is written without its run
#: (:func:`source_password`): its writers open the input again through this module
_PASSWORD: ContextVar[str | None] = ContextVar("ocrclient_source_password", default=None)


@contextlib.contextmanager
def source_password(password: str | None) -> Iterator[None]:
    """Within it, the input of a Document written without its run is opened with ``password``
    (:func:`~ocrclient.exporters.write_outputs`'s ``password``, ``ocr view --password``)."""
    token = _PASSWORD.set(password)
    try:
        yield
    finally:
        _PASSWORD.reset(token)


def open_source(path: Path) -> Source:
    """The input at ``path``, opened again with the password :func:`source_password` gives."""
    return open_sources([path], password=_PASSWORD.get())[0]


def resolve_source(doc: Document, source: str | Path | None = None, base: Path | None = None) -> Path | None:
    """The input file of ``doc`` if it can be found: ``source`` when given, else
    ``doc.source`` as written (relative to the working directory), else relative to ``base``,
    a file found so being taken only if it can be the input (:func:`could_be_input`).
    ``None`` when nothing readable is there (e.g. the input was raw bytes or was moved); an
    :class:`InputError` when it is there but encrypted and no right password was given."""
    if source is not None:
        given = Path(source).expanduser()
        return given if _is_file(given) else None
    if not doc.source or doc.source.startswith("bytes:"):
        return None
    raw = Path(doc.source).expanduser()
    candidates = [raw]
    if base is not None and not raw.is_absolute():
        # where the run's manifest says the input was (a relative name read from elsewhere
        # found another file of that name, or none)
        candidates = [*_recorded(doc.source, base), raw, base / raw, base / raw.name]
    return next((c for c in candidates if _is_file(c) and could_be_input(doc, c)), None)


def _recorded(source: str, base: Path) -> list[Path]:
    """The resolved path the nearest ``manifest.jsonl`` at or above ``base`` records for the
    input given as ``source`` (empty when none does)."""
    from ..manifest import Manifest

    for folder in [base, *base.resolve().parents][:12]:
        if _is_file(folder / "manifest.jsonl"):
            key = Manifest(folder).key_of(source)
            return [Path(key)] if key else []
    return []


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def could_be_input(doc: Document, path: Path) -> bool:
    """Whether the file at ``path`` can be the input ``doc`` was read from: it holds every page
    ``doc`` holds and, a PDF, each of the displayed size ``doc`` records.  A file beside the
    JSON with the input's name need not be the input: the run's own searchable PDF is one, and
    of a page selection its page 2 is another page of the input."""
    import pypdfium2 as pdfium

    from ..pages.render import pdf_page_box

    try:
        src = open_source(path)
    except OcrError as exc:
        if exc.cause == "encrypted":  # it may well be the input: say what it takes
            raise
        return False
    if any(p.page > src.page_count for p in doc.pages):
        return False
    if src.kind != "pdf":
        return _image_sizes_match(doc, src)
    try:
        pdf = open_pdf(src)
    except OcrError:
        return False
    with PDFIUM_LOCK:
        try:
            for p in doc.pages:
                if p.width > 0 and p.height > 0:
                    try:
                        page = pdf[p.page - 1]
                    except pdfium.PdfiumError:  # one that will not load: the pages checked decide
                        break  # (this handle may now hand back the wrong page: render.load_page)
                    try:
                        box = pdf_page_box(page)
                    finally:
                        page.close()
                    if abs(box.width - p.width) > 0.5 or abs(box.height - p.height) > 0.5:
                        return False
        finally:
            pdf.close()
    return True


def _image_sizes_match(doc: Document, src: Source) -> bool:
    """Whether each page of ``doc`` has the size (a point a pixel, upright) of its frame of the
    image ``src``: any image was taken for the input, and another file of the same name drew
    its pixels under the boxes of this one."""
    from PIL import Image

    from ..pages.render import quarter_turned

    try:
        with Image.open(src.path if src.path is not None else io.BytesIO(src.data or b"")) as img:
            for p in sorted(doc.pages, key=lambda p: p.page):
                if p.width > 0 and p.height > 0:
                    img.seek(p.page - 1)
                    w, h = img.size[::-1] if quarter_turned(img) else img.size
                    if abs(w - p.width) > 0.5 or abs(h - p.height) > 0.5:
                        return False
    except (OSError, ValueError, EOFError, Image.DecompressionBombError):
        return False
    return True


def source_spec(path: Path, dpi: float, fmt: str = "png", quality: int = 85, longest_side: int | None = None) -> RenderSpec:
    """Render spec for ``path``: PDFs at ``dpi``; images at their own pixels (dpi 72 = one pixel
    per point), both optionally capped at ``longest_side``."""
    try:
        with path.open("rb") as fh:
            is_pdf = b"%PDF-" in fh.read(1024)
    except OSError:
        is_pdf = False
    eff_dpi = dpi if is_pdf else 72.0
    return RenderSpec(dpi=eff_dpi, longest_side=longest_side, format=fmt, quality=quality)  # type: ignore[arg-type]


def render_pages(path: Path, numbers: Sequence[int], spec: RenderSpec) -> Iterator[tuple[int, PageImage | None, str | None]]:
    """Render the 1-based pages ``numbers`` of ``path`` as displayed: yields
    ``(number, page image, error)``, pages in order (pages past the end of the file last); a
    page that cannot be rendered (or is not in the file) comes with ``None`` and a one-line
    ``error``.  Never raises for a bad file: every page then carries the error."""
    from ..pages import iter_pages

    wanted = sorted({n for n in numbers if n >= 1})
    if not wanted:
        return
    try:
        src = open_source(path)
    except OcrError as exc:
        for n in wanted:
            yield n, None, str(exc)
        return
    valid = [n for n in wanted if n <= src.page_count]
    done: set[int] = set()
    if valid:
        try:
            for pimg in iter_pages(src, spec, pages=[n - 1 for n in valid]):
                done.add(pimg.number)
                if pimg.encoded is None:
                    yield pimg.number, None, pimg.error or "render failed"
                else:
                    yield pimg.number, pimg, None
        except OcrError as exc:
            for n in valid:
                if n not in done:
                    yield n, None, str(exc)
    for n in wanted:
        if n > src.page_count:
            yield n, None, f"page {n} is not in {path.name} (it has {src.page_count})"


def open_pdf(src: Source) -> Any:
    """The input's own ``pypdfium2.PdfDocument`` (from its bytes when it was given as bytes);
    one-line :class:`InputError` when it cannot be opened.  Close it under ``PDFIUM_LOCK``."""
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:
        try:
            return pdfium.PdfDocument(src.path if src.path is not None else src.data, password=src.password)
        except (pdfium.PdfiumError, OSError) as exc:
            raise InputError(f"{src.name}: cannot open PDF ({exc})") from exc


#: a frame's resolution across and down the page as displayed, in dpi
Dpi = tuple[float, float]


def image_dpis(src: Source) -> dict[int, Dpi]:
    """page number (1-based frame) -> the resolution the image records across and down the
    page as displayed (a fax's 204 x 98 dpi: its pixels are twice as tall as wide; an EXIF or
    TIFF orientation that turns the frame a quarter swaps the two), when sane (30-1200 dpi);
    frames without one are left out (72 dpi: one pixel per point).  Reads only headers."""
    from PIL import Image

    from ..pages.render import quarter_turned

    out: dict[int, Dpi] = {}
    try:
        with Image.open(src.path if src.path is not None else io.BytesIO(src.data or b"")) as img:
            for i in range(int(getattr(img, "n_frames", 1))):
                if i:
                    img.seek(i)
                dpi = img.info.get("dpi")
                try:
                    x, y = (float(dpi[0]), float(dpi[1] if len(dpi) > 1 else dpi[0])) if dpi else (0.0, 0.0)
                except (TypeError, ValueError, IndexError):
                    x = y = 0.0
                if all(_SANE_DPI[0] <= r <= _SANE_DPI[1] for r in (x, y)):
                    out[i + 1] = (y, x) if quarter_turned(img) else (x, y)
    except (OSError, ValueError, Image.DecompressionBombError):
        pass
    return out
