"""A tiny PDF writer for the end-to-end tests: pages with filled rectangles and Helvetica text at
known user-space positions, any MediaBox / CropBox / /Rotate.  Written by hand (no dependency)
so each test knows exactly where every element sits in PDF user space."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

Box = tuple[float, float, float, float]


@dataclass
class PdfPage:
    """One page: ``media`` (x0, y0, x1, y1) in user space (``None``: inherited from the page
    tree, see :func:`write_pdf`), optional ``crop``, ``rotate``; ``rects`` are filled boxes
    (x0, y0, x1, y1) in user space; ``texts`` are (x, y, size, text) baselines."""

    media: Box | None = (0.0, 0.0, 300.0, 200.0)
    crop: Box | None = None
    rotate: int = 0
    rects: list[Box] = field(default_factory=list)
    texts: list[tuple[float, float, float, str]] = field(default_factory=list)
    #: a JPEG (its bytes, width, height in pixels) drawn over the whole MediaBox under the rest: a scan
    scan: tuple[bytes, int, int] | None = None
    #: where the JPEG is drawn instead (x0, y0, x1, y1 in user space): a picture on the page
    scan_box: Box | None = None
    #: the texts drawn invisible (render mode 3), as an OCR layer over a scan is
    invisible: bool = False
    #: (x, y, size, text, how) baselines of hidden text: ``how`` "invisible" (render mode 3) or
    #: "white" (white on the white page)
    hidden: list[tuple[float, float, float, str, str]] = field(default_factory=list)
    #: (x, y, size, text, degrees) baselines turned counter-clockwise by ``degrees`` about (x, y)
    turned: list[tuple[float, float, float, str, float]] = field(default_factory=list)

    def content(self) -> bytes:
        ops = ["0 g"]
        if self.scan is not None:
            x0, y0, x1, y1 = self.scan_box or self.media or (0.0, 0.0, 300.0, 200.0)
            ops.append(f"q {x1 - x0:.3f} 0 0 {y1 - y0:.3f} {x0:.3f} {y0:.3f} cm /Im1 Do Q")
        if self.invisible:
            ops.append("3 Tr")
        for x0, y0, x1, y1 in self.rects:
            ops.append(f"{x0:.3f} {y0:.3f} {x1 - x0:.3f} {y1 - y0:.3f} re f")
        for x, y, size, text in self.texts:
            esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT /F1 {size:g} Tf {x:.3f} {y:.3f} Td ({esc}) Tj ET")
        for x, y, size, text, how in self.hidden:
            esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            style = "3 Tr" if how == "invisible" else "1 g"
            ops.append(f"q BT {style} /F1 {size:g} Tf {x:.3f} {y:.3f} Td ({esc}) Tj ET Q")
        for x, y, size, text, degrees in self.turned:
            esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
            ops.append(f"BT /F1 1 Tf {cos * size:.4f} {sin * size:.4f} {-sin * size:.4f} {cos * size:.4f} {x:.3f} {y:.3f} Tm "
                       f"({esc}) Tj ET")  # fmt: skip
        return ("\n".join(ops) + "\n").encode("latin-1")


def write_pdf(path: Path, pages: list[PdfPage], *, tree: str = "") -> Path:
    """Write ``pages`` as a PDF file at ``path``; ``tree`` is extra entries of the page tree's
    root (``/Pages``) that its pages inherit, e.g. ``"/MediaBox [0 0 300 200] /Rotate 90"``."""
    objects: list[bytes] = []
    n = len(pages)
    # 1 catalog, 2 pages, 3 font, then (page, contents) pairs
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n}{' ' + tree if tree else ''} >>".encode())
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    scans = [i for i, page in enumerate(pages) if page.scan is not None]
    for i, page in enumerate(pages):
        extra = ""
        if page.media is not None:
            extra += " /MediaBox [" + " ".join(f"{v:g}" for v in page.media) + "]"
        if page.crop is not None:
            extra += " /CropBox [" + " ".join(f"{v:g}" for v in page.crop) + "]"
        if page.rotate:
            extra += f" /Rotate {page.rotate}"
        xobject = f" /XObject << /Im1 {4 + 2 * n + scans.index(i)} 0 R >>" if page.scan is not None else ""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R{extra} "
            f"/Resources << /Font << /F1 3 0 R >>{xobject} >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        stream = page.content()
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
    for i in scans:
        jpeg, w, h = pages[i].scan  # type: ignore[misc]
        objects.append(
            f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB "
            f"/BitsPerComponent 8 /Filter /DCTDecode /Length {len(jpeg)} >>\nstream\n".encode() + jpeg + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{num} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    path.write_bytes(bytes(out))
    return path


def text_pdf(path: Path, lines_per_page: list[list[str]], size: Box = (0, 0, 300, 200)) -> Path:
    """A PDF whose page ``i`` shows ``lines_per_page[i]`` in 16 pt Helvetica, top to bottom."""
    pages = []
    for lines in lines_per_page:
        top = size[3] - 40
        pages.append(
            PdfPage(media=size, texts=[(30, top - 28 * j, 16, t) for j, t in enumerate(lines)])
        )
    return write_pdf(path, pages)


def blank_pdf(path: Path, sizes: list[tuple[float, float]]) -> Path:
    """A PDF of blank pages of ``sizes`` (width, height in points), written by PDFium."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for width, height in sizes:
        pdf.new_page(width, height)
    pdf.save(str(path))
    return path
