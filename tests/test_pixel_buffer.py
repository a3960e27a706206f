"""One pixel buffer per process for PDF renders (:data:`ocrclient.pages.render._PIXELS`).

PDFium draws each page into one buffer, reused page after page, and the image to encode is
read out of it before the render lock is let go; only the encode runs beside other renders.
Checked for every kind of page image a render makes (grey PNG, colour PNG, JPEG, WebP, a
grayscale spec): pages rendered by two threads at once, in any order, are byte for byte the
pages rendered one at a time in a fresh process state; a page drawn where a black page of the
same size was drawn has nothing of it; the buffer is kept while a page stream renders on the
pool and let go when its streams have all ended; two threads never hold two buffers.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import ocrclient.pages.render as render
from ocrclient.imaging import RenderSpec
from ocrclient.pages import RenderPool, iter_pages

from .pdfgen import text_pdf

SPECS = {
    "grey png": (RenderSpec(dpi=100), False),
    "colour png": (RenderSpec(dpi=100), True),
    "jpeg": (RenderSpec(dpi=100, format="jpeg"), True),
    "webp": (RenderSpec(dpi=100, format="webp"), True),
    "grayscale spec": (RenderSpec(dpi=100, grayscale=True), True),
}


def _pdf(path: Path, pages: int, colour: bool, dark_first: bool = False) -> Path:
    """``pages`` pages of one size, each with its own marks; with ``dark_first`` the first
    page is black all over (what a buffer not made white again would show on the next)."""
    images = []
    for n in range(pages):
        fill = (0, 0, 0) if dark_first and n == 0 else (255, 255, 255)
        img = Image.new("RGB", (400, 520), fill)
        draw = ImageDraw.Draw(img)
        for k in range(n + 1):
            draw.rectangle((20 + 30 * k, 40 + 20 * n, 40 + 30 * k, 60 + 20 * n), fill=(200, 30, 30) if colour else (60, 60, 60))
        draw.text((20, 480), f"page {n + 1}", fill=(0, 0, 0))
        images.append(img)
    images[0].save(path, "PDF", resolution=72, save_all=True, append_images=images[1:])
    return path


def _bytes(pdf: Path, spec: RenderSpec, workers: int) -> list[bytes]:
    with RenderPool(workers=workers) as pool:
        pages = list(iter_pages(pdf, spec, pool=pool))
    assert all(p.encoded is not None for p in pages), [p.error for p in pages]
    return [p.encoded.data for p in pages if p.encoded is not None]


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_pages_rendered_side_by_side_are_the_pages_rendered_alone(tmp_path: Path, kind: str) -> None:
    spec, colour = SPECS[kind]
    pdf = _pdf(tmp_path / "doc.pdf", 8, colour)
    alone = []
    for n in range(8):
        render.close_open_documents()  # (a fresh buffer for each page)
        one = tmp_path / f"p{n}.pdf"
        import pypdfium2 as pdfium

        src = pdfium.PdfDocument(str(pdf))
        out = pdfium.PdfDocument.new()
        out.import_pages(src, [n])
        out.save(str(one))
        src.close()
        out.close()
        (data,) = _bytes(one, spec, workers=0)
        alone.append(data)
    for _ in range(3):
        assert _bytes(pdf, spec, workers=2) == alone


def _black_then_text(path: Path) -> Path:
    """Page 1 black all over (an opaque image), page 2 of the same size only vector text and a
    rectangle, drawn on whatever the buffer holds: a buffer not made white again shows through."""
    import pypdfium2 as pdfium

    black = path.with_suffix(".black.pdf")
    Image.new("RGB", (300, 200), (0, 0, 0)).save(black, "PDF", resolution=72)
    texts = text_pdf(path.with_suffix(".text.pdf"), [["nothing but text", "and white around it"]], size=(0, 0, 300, 200))
    out = pdfium.PdfDocument.new()
    for part in (black, texts):
        src = pdfium.PdfDocument(str(part))
        out.import_pages(src)
        src.close()
    out.save(str(path))
    out.close()
    black.unlink()
    return path


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_a_page_drawn_after_a_black_page_has_nothing_of_it(tmp_path: Path, kind: str) -> None:
    spec, _ = SPECS[kind]
    pdf = _black_then_text(tmp_path / "doc.pdf")
    with RenderPool(workers=0) as pool:  # (one stream: the buffer is kept from page 1 to page 2)
        pages = list(iter_pages(pdf, spec, pool=pool))
    (alone,) = list(iter_pages(text_pdf(tmp_path / "alone.pdf", [["nothing but text", "and white around it"]],
                                        size=(0, 0, 300, 200)), spec))  # fmt: skip
    assert pages[1].encoded is not None and alone.encoded is not None
    assert pages[1].encoded.data == alone.encoded.data, kind


def test_the_buffer_is_reused_while_a_stream_renders_and_let_go_when_the_pools_streams_end(tmp_path: Path) -> None:
    """While a page stream renders on the pool every page draws into the same buffer; once the
    pool's streams have all ended the buffer is gone, the pool still open (an idle long-lived
    client held the last page's buffer, up to 120 MB)."""
    pdf = _pdf(tmp_path / "doc.pdf", 3, colour=False)
    seen: list[bytearray] = []
    held: list[bool] = []
    white = render._PIXELS.white

    def spy(size: int) -> bytearray:
        buf = white(size)
        seen.append(buf)
        return buf

    render._PIXELS.white = spy  # type: ignore[method-assign]
    try:
        with RenderPool(workers=2) as pool:
            for _ in iter_pages(pdf, RenderSpec(dpi=100), pool=pool):
                held.append(render._PIXELS._buf is not None)
            assert len(seen) == 3 and seen[0] is seen[1] is seen[2] and all(held)
            assert render._PIXELS._buf is None  # the stream ended: nothing held, the pool open
            with pool.streaming():  # (two streams at once: the first to end keeps it for the other)
                assert len(list(iter_pages(pdf, RenderSpec(dpi=100), pool=pool))) == 3
                assert render._PIXELS._buf is seen[-1]
            assert render._PIXELS._buf is None
    finally:
        del render._PIXELS.white


def test_two_render_threads_never_hold_two_buffers(tmp_path: Path) -> None:
    """Python's memory over 12 colour pages on two threads stays under two page buffers: the
    image is read out of the one buffer under the render lock (each thread drawing into a buffer
    of its own held two at once while one was read out and the other drawn: 2.2-2.4 buffers).
    Colour pages: their decoded image is Pillow's memory, which is not counted, so what is
    counted is the buffers."""
    spec = RenderSpec(dpi=200)  # 1111 x 1444: a 4.8 MB BGR buffer
    pdf = _pdf(tmp_path / "doc.pdf", 12, colour=True)
    buffer = 1111 * 1444 * 3
    peaks = []
    for _ in range(2):  # (the first run also counts what is made once: the measure is the second)
        render.close_open_documents()
        tracemalloc.start()
        try:
            with RenderPool(workers=2) as pool:
                pages = list(iter_pages(pdf, spec, pool=pool))
                peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert len(pages) == 12 and pages[0].encoded is not None and pages[0].encoded.width == 1111
    assert peaks[1] < 2 * buffer, (peaks, buffer)
