"""Fonts for the searchable PDF's text layer, through PDFium's C API (pypdfium2.raw).

Text that the standard Helvetica font can encode (WinAnsi) uses Helvetica (nothing embedded);
other text uses a Unicode TrueType font the caller found (see
:func:`ocrclient.exporters.pdf.system_font`), embedded once as a CID font; without one such text
is transliterated (accents dropped via NFKD) and what still does not fit is left out.  PDFium
gives ink bounds only, so widths and advances are measured from text objects
(:func:`measure`).

Example::

    >>> transliterate("naïve café — ok")
    'naive cafe — ok'
    >>> winansi("Привет")
    False
"""

from __future__ import annotations

import ctypes
import logging
import unicodedata
from pathlib import Path
from typing import Any

__all__ = ["Fonts", "measure", "new_text", "transliterate", "utf16", "winansi"]

log = logging.getLogger("ocrclient.exporters.pdf")


def utf16(text: str) -> Any:
    """``text`` as the NUL-terminated UTF-16 buffer PDFium reads: (pointer, the buffer to keep alive)."""
    raw = text.encode("utf-16-le") + b"\x00\x00"
    buf = (ctypes.c_ushort * (len(raw) // 2)).from_buffer_copy(raw)
    return ctypes.cast(buf, ctypes.POINTER(ctypes.c_ushort)), buf


def winansi(text: str) -> bool:
    """Whether the standard fonts (WinAnsi encoding) can show ``text``."""
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def transliterate(text: str) -> str:
    """``text`` in WinAnsi characters only: accents dropped (NFKD), the rest left out."""
    out = []
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch):
            continue
        if winansi(ch):
            out.append(ch)
    return " ".join("".join(out).split())


class Fonts:
    """Helvetica for WinAnsi text, the TrueType font at ``unicode_font`` (embedded when first
    needed) for the rest."""

    def __init__(self, pdf: Any, unicode_font: Path | None = None) -> None:
        import pypdfium2.raw as pdfium_c

        self._c = pdfium_c
        self._pdf = pdf
        self.helvetica = pdfium_c.FPDFText_LoadStandardFont(pdf.raw, b"Helvetica")
        self._unicode_path = unicode_font
        self._unicode: Any = None
        self._unicode_tried = False
        self._keep: list[Any] = []
        self.dropped = 0
        #: the Unicode font through Pillow and its missing glyph's mask (``None``: not loaded yet)
        self._glyphs: tuple[Any, Any] | None = None
        self._covered: set[str] = set()
        self.metrics: dict[int, tuple[float, float]] = {}
        self.spaces: dict[int, float] = {}
        self.n_ink: dict[int, float] = {}

    def unicode_font(self) -> Any:
        if not self._unicode_tried:
            self._unicode_tried = True
            path = self._unicode_path
            if path is not None:
                try:
                    data = path.read_bytes()
                    buf = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
                    font = self._c.FPDFText_LoadFont(
                        self._pdf.raw, buf, len(data), self._c.FPDF_FONT_TRUETYPE, 1
                    )
                    if font:
                        self._unicode = font
                        self._keep.append(buf)
                except OSError as exc:
                    log.warning("cannot read font %s: %s", path, exc)
        return self._unicode

    def pick(self, text: str) -> tuple[Any, bool]:
        """The font for ``text`` and whether its words must be transliterated to fit it.  Text
        with characters the Unicode font has no glyph for (CJK, emoji in DejaVu Sans) is counted
        in :attr:`dropped`: they are not in the text layer (it dropped them without a word)."""
        if winansi(text):
            return self.helvetica, False
        font = self.unicode_font()
        if font:
            if self._uncovered(text):
                self.dropped += 1
            return font, False
        self.dropped += 1
        return self.helvetica, True

    def _uncovered(self, text: str) -> bool:
        """Whether the Unicode font lacks a glyph for a character of ``text`` (FreeType, through
        Pillow: a character drawn as the font's missing-glyph box)."""
        if self._glyphs is None:
            from PIL import ImageFont

            self._glyphs = (None, None)
            try:
                loaded = ImageFont.truetype(str(self._unicode_path), 24)
                nothing = loaded.getmask("\U0010fffd")  # (no font maps this: its missing-glyph box)
                self._glyphs = (loaded, (nothing.size, bytes(nothing)))
            except (OSError, ValueError):
                pass
        face, missing = self._glyphs
        if face is None:
            return False
        for ch in set(text) - self._covered:
            if ch.isspace() or unicodedata.category(ch) in ("Mn", "Cf", "Cc"):
                continue
            mask = face.getmask(ch)
            if (mask.size, bytes(mask)) == missing:
                return True
            self._covered.add(ch)
        return False

    def advance(self, font: Any, size: float, text: str) -> float:
        """Where a character after ``text`` would start: the ink width of ``text + "n"`` less
        that of ``"n"`` (PDFium gives ink bounds only; it does not kern)."""
        key = ctypes.cast(font, ctypes.c_void_p).value or 0
        if key not in self.n_ink:
            self.n_ink[key] = measure(self._pdf, font, 1.0, "n")
        return measure(self._pdf, font, size, text + "n") - self.n_ink[key] * size

    def space_advance(self, font: Any) -> float:
        """The advance of a space at size 1 ("n n" minus "nn", so the glyphs' ink cancels)."""
        key = ctypes.cast(font, ctypes.c_void_p).value or 0
        if key not in self.spaces:
            spaced, tight = measure(self._pdf, font, 1.0, "n n"), measure(self._pdf, font, 1.0, "nn")
            self.spaces[key] = spaced - tight if spaced > tight else 0.278
        return self.spaces[key]

    def ascent_descent(self, font: Any) -> tuple[float, float]:
        key = ctypes.cast(font, ctypes.c_void_p).value or 0
        if key not in self.metrics:
            asc, desc = ctypes.c_float(0.0), ctypes.c_float(0.0)
            ok = self._c.FPDFFont_GetAscent(font, 1.0, ctypes.byref(asc)) and self._c.FPDFFont_GetDescent(
                font, 1.0, ctypes.byref(desc)
            )
            a, d = (float(asc.value), float(desc.value)) if ok else (0.75, -0.25)
            if a - d <= 0.1:
                a, d = 0.75, -0.25
            self.metrics[key] = (a, d)
        return self.metrics[key]

    def close(self) -> None:
        for font in (self.helvetica, self._unicode):
            if font:
                self._c.FPDFFont_Close(font)
        self.helvetica = self._unicode = None


def new_text(pdf: Any, font: Any, size: float, text: str) -> tuple[Any, float]:
    """A text object of ``text`` and its natural width: from its origin to the right edge of its
    last glyph (text extractors start a word at its origin, so the origin goes on the box's
    start).  ``(None, 0)`` when PDFium refuses the text."""
    import pypdfium2.raw as pdfium_c

    obj = pdfium_c.FPDFPageObj_CreateTextObj(pdf.raw, font, size)
    if not obj:
        return None, 0.0
    ptr, _buf = utf16(text)
    if not pdfium_c.FPDFText_SetText(obj, ptr):
        pdfium_c.FPDFPageObj_Destroy(obj)
        return None, 0.0
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    natural = 0.0
    if pdfium_c.FPDFPageObj_GetBounds(obj, ctypes.byref(left), ctypes.byref(bottom), ctypes.byref(right), ctypes.byref(top)):
        natural = float(right.value)
    return obj, natural if natural > 1e-6 else 0.5 * size * len(text)


def measure(pdf: Any, font: Any, size: float, text: str) -> float:
    import pypdfium2.raw as pdfium_c

    obj, natural = new_text(pdf, font, size, text)
    if obj:
        pdfium_c.FPDFPageObj_Destroy(obj)
    return natural


#: the least gap left between two words of a line, in ems of the line's font size: text
#: extractors join words whose gap is about nothing (poppler's threshold is 0.03 em), and OCR
