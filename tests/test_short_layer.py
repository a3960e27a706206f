"""A PDF page whose text layer is short (fewer than ``trust.MIN_CHARS`` characters) is OCR'd --
a scan with only its page number in the layer must be -- but the layer's own lines on ink stand
where the OCR found none: a memo's one line ("Meeting cancelled.") that RapidOCR missed on a
letter page of white came out degraded with no text, and a page whose only other mark was a
black box said "ok" with that box misread as "1" and its line gone, while ``--text-layer
always`` read each one.  The whole kind, in one document: short lines at the sizes and places a
page holds them, alone or beside a filled box, and text no one sees (white, invisible), which
stays out, as does a scan's short invisible OCR layer that says other words than the scan (too
short to be checked by a sample read: the page is OCR'd alone)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ocrclient

from .pdfgen import PdfPage, write_pdf

LETTER = (0.0, 0.0, 612.0, 792.0)


def _scan(text: str) -> tuple[bytes, int, int]:
    """A 600 x 400 px JPEG saying ``text`` (a 300 x 200 pt page scanned at 144 dpi)."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (600, 400), "white")
    ImageDraw.Draw(img).text((40, 62), text, font=ImageFont.load_default(size=40), fill="black")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue(), 600, 400
BOX = (36.0, 36.0, 116.0, 76.0)

#: (what the page holds, its PdfPage, the text its markdown must have, text it must not have)
PAGES: list[tuple[str, PdfPage, str, str | None]] = [
    ("12 pt line at the top", PdfPage(media=LETTER, texts=[(36, 732, 12, "Meeting cancelled.")]), "Meeting cancelled.", None),
    ("18 pt line at the top", PdfPage(media=LETTER, texts=[(36, 732, 18, "alpha one")]), "alpha one", None),
    ("10 pt line mid-page", PdfPage(media=LETTER, texts=[(200, 400, 10, "See you Monday")]), "See you Monday", None),
    ("18 pt line and a black box", PdfPage(media=LETTER, rects=[BOX], texts=[(36, 732, 18, "bravo two")]), "bravo two", None),
    ("white words beside a line", PdfPage(media=LETTER, texts=[(36, 732, 18, "charlie")], hidden=[(36, 600, 14, "secret", "white")]),
     "charlie", "secret"),
    ("invisible words on a blank page", PdfPage(media=LETTER, hidden=[(36, 600, 14, "ghost text", "invisible")]), "", "ghost"),
    ("a scan whose short OCR layer is wrong", PdfPage(media=(0.0, 0.0, 300.0, 200.0), scan=_scan("Invoice 2024"), invisible=True,
                                                       texts=[(20, 150, 20, "Lnvoice 2O25")]), "Invoice 2024", "Lnvoice"),
]  # fmt: skip


def test_a_short_layer_stands_where_the_ocr_found_nothing(tmp_path: Path) -> None:
    pytest.importorskip("rapidocr", reason="the local engine is in the local extra")
    pdf = write_pdf(tmp_path / "short.pdf", [page for _, page, _, _ in PAGES])
    doc = ocrclient.convert(pdf, backend="local", cache=False)
    assert len(doc.pages) == len(PAGES)
    for (what, _, want, never), page in zip(PAGES, doc.pages, strict=True):
        if want:
            assert page.status == "ok", (what, page.status, page.warnings)
            assert want in page.markdown, (what, page.markdown)
            assert any(want in b.text for b in page.blocks), what
        if never:
            assert never not in page.markdown and not any(never in b.text for b in page.blocks), (what, page.markdown)
