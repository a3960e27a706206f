"""Issue 5's geometry proof, end to end: generated PDFs with filled rectangles at known PDF
user-space positions — random page sizes, /Rotate 0/90/180/270, CropBox and MediaBox offsets —
plus a PNG, sent through each boxed dialect's simulated cloud.

The simulated model answers each rectangle's true box in [0, 1] of the image it received,
quantized to its own grid (Chandra 1: 1024, Chandra 2: 1000, DeepSeek: 999, LightOnOCR-bbox:
1000, dots.ocr: pixels of its own resize).  The truth is computed here from the PDF numbers alone
(independently of ``ocrclient.geometry``).  Every block must land within one grid step of the
truth in points, the median within half a step.  An olmOCR case checks the rotation round trip:
the model first says the page is sideways, then answers on the image the client rotated.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

import ocrclient
from ocrclient.dialects.dots import smart_resize
from ocrclient.document import Document
from ocrclient.testing import (
    DialectResponder,
    FaultPlan,
    OpenAISimulator,
    RunPodSimulator,
    SentImage,
)

from .pdfgen import PdfPage, write_pdf

Box = tuple[float, float, float, float]


def displayed_box(rect: Box, crop: Box, rotate: int) -> Box:
    """A user-space rectangle -> points on the displayed page (top-left origin, y down)."""
    cx0, cy0, cx1, cy1 = crop
    w, h = cx1 - cx0, cy1 - cy0
    x0, y0, x1, y1 = rect
    # unrotated page, top-left origin
    u0, v0, u1, v1 = x0 - cx0, h - (y1 - cy0), x1 - cx0, h - (y0 - cy0)
    r = rotate % 360
    if r == 0:
        return u0, v0, u1, v1
    if r == 90:  # displayed (x, y) = (h - v, u)
        return h - v1, u0, h - v0, u1
    if r == 180:
        return w - u1, h - v1, w - u0, h - v0
    return v0, w - u1, v1, w - u0  # 270: (x, y) = (v, w - u)


def rotate_cw(box: Box, degrees: int) -> Box:
    """A box in [0,1] of an image -> the same region in [0,1] of the image turned clockwise."""
    x0, y0, x1, y1 = box
    for _ in range((degrees // 90) % 4):
        x0, y0, x1, y1 = 1 - y1, x0, 1 - y0, x1
    return x0, y0, x1, y1


@dataclass
class TruePage:
    width: float  # displayed, points
    height: float
    boxes: list[Box]  # displayed, points

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def norm(self) -> list[Box]:
        return [
            (x0 / self.width, y0 / self.height, x1 / self.width, y1 / self.height)
            for x0, y0, x1, y1 in self.boxes
        ]


def make_document(path: Path, seed: int = 11) -> tuple[Path, list[TruePage]]:
    rng = random.Random(seed)
    rotations = [0, 90, 180, 270, 90, 270, 0]
    pages: list[PdfPage] = []
    truth: list[TruePage] = []
    aspects: list[float] = [400 / 260]  # the PNG's
    for i, rot in enumerate(rotations):
        while True:
            w, h = rng.uniform(180, 420), rng.uniform(180, 420)
            aspect = (w / h) if rot in (0, 180) else (h / w)
            if all(abs(aspect / a - 1) > 0.08 for a in aspects):
                break
        aspects.append(aspect)
        if i % 3 == 1:  # CropBox inside a larger MediaBox
            ox, oy = rng.uniform(10, 60), rng.uniform(10, 60)
            media: Box = (0, 0, w + ox + 40, h + oy + 30)
            crop: Box | None = (ox, oy, ox + w, oy + h)
        elif i % 3 == 2:  # MediaBox not at the origin
            ox, oy = rng.uniform(-50, 50), rng.uniform(-50, 50)
            media, crop = (ox, oy, ox + w, oy + h), None
        else:
            media, crop = (0, 0, w, h), None
        area = crop or media
        rects: list[Box] = []
        for _ in range(3):
            rw, rh = rng.uniform(0.15, 0.4) * w, rng.uniform(0.06, 0.15) * h
            x0 = area[0] + rng.uniform(0.02, 0.95) * (w - rw)
            y0 = area[1] + rng.uniform(0.02, 0.95) * (h - rh)
            rects.append((x0, y0, x0 + rw, y0 + rh))
        pages.append(PdfPage(media=media, crop=crop, rotate=rot, rects=rects))
        boxes = [displayed_box(r, area, rot) for r in rects]
        dw, dh = (w, h) if rot in (0, 180) else (h, w)
        truth.append(TruePage(dw, dh, boxes))
    return write_pdf(path, pages), truth


def make_png(path: Path) -> tuple[Path, TruePage]:
    img = Image.new("RGB", (400, 260), "white")
    draw = ImageDraw.Draw(img)
    boxes: list[Box] = [(30, 20, 190, 60), (220, 120, 380, 150), (60, 190, 300, 240)]
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill="black")
    img.save(path)
    return path, TruePage(400, 260, boxes)  # an image point is a pixel at 72 dpi


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[TruePage], TruePage]:
    root = tmp_path_factory.mktemp("geometry")
    pdf, truth = make_document(root / "shapes.pdf")
    png, png_truth = make_png(root / "shapes.png")
    return pdf, png, truth, png_truth


def lookup(pages: list[TruePage], label: str) -> Any:
    """A truth callable: the page whose displayed aspect ratio matches the image's."""

    def truth(image: SentImage) -> list[tuple[str, str, Box]]:
        aspect = image.width / image.height
        page = min(pages, key=lambda p: abs(p.aspect / aspect - 1))
        assert abs(page.aspect / aspect - 1) < 0.02, "the sent image is not a displayed page"
        # the truth computed from the PDF numbers must be where the rendered image is black:
        # a wrong expectation (or a wrongly rendered page) fails here, not silently
        grey = image.image().convert("L")
        for box in page.norm():
            assert darkness(grey, box) > 0.9, (box, darkness(grey, box))
        return [(label, f"R{k}", box) for k, box in enumerate(page.norm())]

    return truth


@dataclass
class GeoCase:
    id: str
    backend: str
    dialect: str
    cloud: str
    model: str
    label: str = "text"
    extra: dict[str, Any] | None = None


GEO_CASES = [
    GeoCase("chandra-v1-1024", "runpod-chandra", "chandra", "runpod", "datalab-to/chandra"),
    GeoCase(
        "chandra-v2-1000",
        "runpod-chandra",
        "chandra",
        "runpod",
        "datalab-to/chandra-ocr-2",
        extra={"dialect_options": {"version": 2}},
    ),
    GeoCase(
        "deepseek-999", "runpod-deepseek-ocr", "deepseek", "runpod", "deepseek-ai/DeepSeek-OCR"
    ),
    GeoCase(
        "lighton-bbox-1000",
        "runpod-pod-lightonocr2",
        "lighton",
        "proxy",
        "lightonai/LightOnOCR-2-1B-bbox",
        label="figure",
    ),
    GeoCase("dots-model-pixels", "openai", "dots", "direct", "rednote-hilab/dots.ocr"),
]


@contextmanager
def serve(case: GeoCase, responder: Any) -> Iterator[dict[str, Any]]:
    if case.cloud == "runpod":
        with RunPodSimulator(responder=responder, plan=FaultPlan(slots=8)) as sim:
            yield {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key,
                   "transport_options": {"poll_interval_s": 0.05}}  # fmt: skip
        return
    with OpenAISimulator(responder=responder, mode=case.cloud, model=case.model) as osim:  # type: ignore[arg-type]
        yield {"base_url": osim.base_url, "api_key": osim.api_key}


def step_of(case: GeoCase, page: Any, sent: SentImage | None) -> tuple[float, float]:
    """One unit of the model's grid, in points of the displayed page."""
    grid = {
        "chandra-v1-1024": 1024,
        "chandra-v2-1000": 1000,
        "deepseek-999": 999,
        "lighton-bbox-1000": 1000,
    }
    if case.id in grid:
        return page.width / grid[case.id], page.height / grid[case.id]
    assert sent is not None
    mh, mw = smart_resize(sent.height, sent.width)
    return page.width / mw, page.height / mh


def check_page(case: GeoCase, page: Any, truth: TruePage, sent: SentImage | None) -> list[float]:
    assert page.status == "ok", page.error
    assert (page.width, page.height) == pytest.approx((truth.width, truth.height), abs=0.01)
    boxed = [b for b in page.blocks if b.bbox is not None]
    assert len(boxed) == len(truth.boxes), [b.type for b in page.blocks]
    sx, sy = step_of(case, page, sent)
    errors: list[float] = []
    for block, want in zip(boxed, truth.boxes, strict=True):
        assert block.bbox is not None
        for got, exp, step in zip(block.bbox, want, (sx, sy, sx, sy), strict=True):
            errors.append(abs(got - exp) / step)
    assert max(errors) <= 1.0 + 1e-6, (case.id, page.page, errors)
    return errors


@pytest.mark.parametrize("case", GEO_CASES, ids=[c.id for c in GEO_CASES])
async def test_boxes_land_within_one_grid_step(
    case: GeoCase, inputs: tuple[Path, Path, list[TruePage], TruePage]
) -> None:
    pdf, png, truth, png_truth = inputs
    responder = DialectResponder(case.dialect, truth=lookup([*truth, png_truth], case.label))
    with serve(case, responder) as over:
        kwargs: dict[str, Any] = {"backend": case.backend, "cache": False, "model": case.model, "render": {"dpi": 72},
                                  "concurrency": 8, **over, **(case.extra or {})}  # fmt: skip
        if case.dialect == "dots":
            kwargs["dialect"] = "dots"
        doc: Document = await ocrclient.aconvert(pdf, **kwargs)
        png_doc: Document = await ocrclient.aconvert(png, **kwargs)

    def sent_for(t: TruePage) -> SentImage:
        return min(responder.seen, key=lambda s: abs(s.width / s.height / t.aspect - 1))

    errors: list[float] = []
    assert len(doc.pages) == len(truth)
    for page, t in zip(doc.pages, truth, strict=True):
        errors += check_page(case, page, t, sent_for(t))
    errors += check_page(case, png_doc.pages[0], png_truth, sent_for(png_truth))
    assert statistics.median(errors) <= 0.5 + 1e-6, (case.id, statistics.median(errors))
    # the grid really was coarse enough to matter: not every coordinate is exact
    assert max(errors) > 0.01


def darkness(image: Image.Image, box: Box) -> float:
    """Mean darkness (0 white .. 1 black) of ``box`` (in [0,1]) of a greyscale image, inset a bit."""
    w, h = image.size
    x0, y0, x1, y1 = box
    ix, iy = (x1 - x0) * 0.2, (y1 - y0) * 0.2
    crop = image.crop((int((x0 + ix) * w), int((y0 + iy) * h), max(int((x1 - ix) * w), int((x0 + ix) * w) + 1),
                       max(int((y1 - iy) * h), int((y0 + iy) * h) + 1)))  # fmt: skip
    data = crop.tobytes()
    return 1 - sum(data) / (255 * max(1, len(data)))


async def test_olmocr_rotation_round_trip(tmp_path: Path) -> None:
    """olmOCR says the page is sideways (rotation_correction 90); the client re-sends it rotated
    the way olmOCR's pipeline does (PIL ROTATE_90: counter-clockwise) and keeps the second answer."""
    page = PdfPage(media=(0, 0, 320, 200), rects=[(20, 140, 150, 180), (200, 20, 300, 60)])
    pdf = write_pdf(tmp_path / "sideways.pdf", [page])
    truth = TruePage(320, 200, [displayed_box(r, page.media, 0) for r in page.rects])
    orientations: list[int] = []

    def orientation(image: SentImage) -> int:
        """Which clockwise turn of the displayed page this image is (found from its pixels)."""
        grey = image.image().convert("L")
        scores = {
            deg: min(darkness(grey, rotate_cw(b, deg)) for b in truth.norm())
            for deg in (0, 90, 180, 270)
        }
        best = max(scores, key=lambda d: scores[d])
        assert scores[best] > 0.8, scores
        return best

    def rotation(image: SentImage) -> int:
        turned = orientation(image)
        orientations.append(turned)
        # the content reads upright once the page is turned 90 degrees counter-clockwise
        return 0 if turned == 270 else 90

    def content(image: SentImage) -> list[tuple[str, str, Box]]:
        turned = orientation(image)
        return [("section_header", "Sideways report", rotate_cw(truth.norm()[0], turned)),
                ("text", f"Read at {turned} degrees.", rotate_cw(truth.norm()[1], turned))]  # fmt: skip

    responder = DialectResponder("olmocr", truth=content, rotation=rotation)
    with RunPodSimulator(responder=responder) as sim:
        doc = await ocrclient.aconvert(
            pdf, backend="runpod-olmocr", cache=False, base_url=sim.base_url, endpoint_id=sim.endpoint_id,
            api_key=sim.api_key, render={"longest_side": 400}, transport_options={"poll_interval_s": 0.05},
        )  # fmt: skip
    (p,) = doc.pages
    assert orientations == [0, 270]
    assert p.status == "ok", p.error
    assert p.attempts == 2
    assert "## Sideways report" in p.markdown and "Read at 270 degrees." in p.markdown
    assert (p.width, p.height) == (320, 200)
    sizes = [(s.width, s.height) for s in responder.seen]
    assert sizes[0][0] > sizes[0][1] and sizes[1] == (sizes[0][1], sizes[0][0])
