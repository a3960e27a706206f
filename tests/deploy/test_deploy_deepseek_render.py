"""deploy/runpod-deepseek-ocr, document mode: a page renders within the worker's own image limit.

The whole-PDF worker rendered every page at ``PDF_DPI`` (144) with no pixel cap: a 6000 x 6000 pt
page came out 12000 x 12000 (144 M pixels), a 14400 pt one (the PDF maximum) would be ~829 M
pixels (~2.5 GB), and a chunk of them ran the worker out of memory -- while page mode holds every
image to ``OCR_MAX_IMAGE_PIXELS`` (40 M, the client's ``imaging.MAX_PIXELS``).  Now the scale is
computed from the page size before rendering: never above that limit, the aspect ratio kept, and
a page within the limit renders exactly as before.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY, load_module
from ocrworker.envelope import ChatPage, Generation, Limits

HANDLER = DEPLOY / "runpod-deepseek-ocr" / "handler.py"
PDF_MAX_PT = 14400  # the largest page a PDF can have (200 inches)
#: page sizes (points) from tiny to the PDF maximum, very long thin pages included
SIZES = [
    (1, 1), (3, 5), (200, 260), (612, 792), (595, 842), (1224, 1584), (2000, 2000),
    (3000, 4000), (4472, 4472), (4473, 4473), (6000, 6000), (200, PDF_MAX_PT), (PDF_MAX_PT, 200),
    (1, PDF_MAX_PT), (PDF_MAX_PT, 1), (7200, PDF_MAX_PT), (PDF_MAX_PT, 9000), (PDF_MAX_PT, PDF_MAX_PT),
]  # fmt: skip


@pytest.fixture
def deepseek(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.delenv("OCRWORKER_STANDIN", raising=False)
    monkeypatch.delenv("OCR_MAX_IMAGE_PIXELS", raising=False)
    monkeypatch.delenv("PDF_DPI", raising=False)
    monkeypatch.setenv("OUTPUT_ROOTS", str(tmp_path / "out"))
    mod = load_module("deepseek_render_handler", HANDLER)
    yield mod
    mod.set_model(None)


def _size(w: float, h: float, scale: float) -> tuple[int, int]:
    """The bitmap pypdfium2 renders for a ``w`` x ``h`` pt page at ``scale`` (sides rounded up)."""
    return math.ceil(w * scale), math.ceil(h * scale)


@pytest.mark.parametrize("limit", [Limits().max_image_pixels, 1_000_000, 40_001])
@pytest.mark.parametrize("dpi", [72, 144, 300])
def test_every_page_size_renders_within_the_limit_with_its_aspect_ratio(deepseek: Any, dpi: int, limit: int) -> None:
    for w, h in SIZES:
        scale = deepseek.render_scale(w, h, dpi=dpi, max_pixels=limit)
        pw, ph = _size(w, h, scale)
        assert pw * ph <= limit, (w, h, dpi, pw, ph)
        if _size(w, h, dpi / 72)[0] * _size(w, h, dpi / 72)[1] <= limit:
            assert scale == dpi / 72, (w, h, dpi)  # within the limit: exactly as before
            continue
        assert scale < dpi / 72
        # the aspect ratio kept (each side within its rounding up), and the limit used, not wasted
        assert abs(pw - w * scale) < 1 and abs(ph - h * scale) < 1, (w, h, pw, ph)
        if min(pw, ph) >= 100:  # (a strip a few pixels wide loses more to rounding up)
            assert pw * ph >= 0.99 * limit, (w, h, pw, ph, limit)


def test_the_worker_uses_its_own_image_limit(deepseek: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The limit is ``OCR_MAX_IMAGE_PIXELS`` (Limits.max_image_pixels), the one page mode's
    images are held to: the client's 40 M ``imaging.MAX_PIXELS`` by default."""
    from ocrclient.imaging import MAX_PIXELS

    assert deepseek.WORKER.limits.max_image_pixels == MAX_PIXELS
    monkeypatch.setenv("OCR_MAX_IMAGE_PIXELS", "2000000")
    mod = load_module("deepseek_render_handler_2m", HANDLER)
    assert mod.WORKER.limits.max_image_pixels == 2_000_000


def _pdf(sizes: list[tuple[int, int]]) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    for w, h in sizes:
        pdf.new_page(w, h)
    buf = io.BytesIO()
    pdf.save(buf)
    pdf.close()
    return base64.b64encode(buf.getvalue()).decode()


async def test_a_document_job_renders_big_pages_at_the_cap(deepseek: Any, tmp_path: Path) -> None:
    """One real job: a letter page and a 200 x 14400 pt strip as before (at 144 dpi, within the
    limit), the PDF-maximum square page and a 1000 x 14400 pt strip scaled to the 40 M limit,
    aspect ratio kept."""
    seen: list[tuple[int, int]] = []

    def model(pages: list[ChatPage]) -> list[Generation]:
        seen.extend(p.image.size for p in pages)
        return [Generation(text="page") for _ in pages]

    deepseek.set_model(model)
    limit = deepseek.WORKER.limits.max_image_pixels
    sizes = [(612, 792), (200, PDF_MAX_PT), (PDF_MAX_PT, PDF_MAX_PT), (1000, PDF_MAX_PT)]
    out = await deepseek.handler({"id": "big", "input": {"pdf_base64": _pdf(sizes), "output_dir": str(tmp_path / "out")}})
    assert out["status"] == "succeeded", out
    assert seen[:2] == [(1224, 1584), (400, 28800)]
    for (w, h), (pw, ph) in zip(sizes[2:], seen[2:], strict=True):
        assert pw * ph <= limit and pw * ph >= 0.99 * limit, (w, h, pw, ph)
        assert abs(pw / ph - w / h) < 0.01 * w / h, (w, h, pw, ph)


async def test_each_page_is_sized_before_it_is_rendered(deepseek: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No page is rendered big and then shrunk: PDFium is asked for the capped bitmap itself."""
    import pypdfium2 as pdfium

    asked: list[tuple[int, int]] = []
    real = pdfium.PdfPage.render

    def render(page: Any, *, scale: float = 1, **kwargs: Any) -> Any:
        asked.append(_size(*page.get_size(), scale))
        return real(page, scale=scale, **kwargs)

    monkeypatch.setattr(pdfium.PdfPage, "render", render)
    deepseek.WORKER.limits = dataclasses.replace(deepseek.WORKER.limits, max_image_pixels=1_000_000)
    deepseek.set_model(lambda pages: [Generation(text="p") for _ in pages])
    sizes = [(200, 260), (6000, 6000), (PDF_MAX_PT, PDF_MAX_PT), (200, PDF_MAX_PT)]
    out = await deepseek.handler({"id": "s", "input": {"pdf_base64": _pdf(sizes), "output_dir": str(tmp_path / "out")}})
    assert out["status"] == "succeeded", out
    assert asked[0] == (400, 520)  # unchanged: within the limit
    assert len(asked) == len(sizes) and all(w * h <= 1_000_000 for w, h in asked), asked
