"""End-to-end check of the coordinate foundation on real renders.

Each case is a hand-written PDF with one black rectangle at a known place in PDF user space, a
random MediaBox, a CropBox offset and a ``/Rotate``.  The page is rendered by ``iter_pages``,
the rectangle is found in the pixels, mapped with ``geometry.to_page`` and compared with its
displayed position computed here independently; ``to_pdf_user_space`` must bring it back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from ocrclient.geometry import CoordSpace, to_page, to_pdf_user_space
from ocrclient.imaging import RenderSpec
from ocrclient.pages import RenderPool, iter_pages, open_sources


def _pdf(objects: list[bytes]) -> bytes:
    """A classic-xref PDF from numbered object bodies (object 1 is the catalog)."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _num(v: float) -> bytes:
    return (f"{v:.3f}").encode()


def _box(b: tuple[float, float, float, float]) -> bytes:
    return b"[" + b" ".join(_num(v) for v in b) + b"]"


@dataclass
class Case:
    media: tuple[float, float, float, float]
    crop: tuple[float, float, float, float]
    rotate: int
    rect: tuple[float, float, float, float]  # x0, y0, x1, y1 in PDF user space
    inherit: bool  # put MediaBox/CropBox/Rotate on the /Pages node instead of the page

    def pdf(self) -> bytes:
        x0, y0, x1, y1 = self.rect
        content = b"0 0 0 rg %s %s %s %s re f\n" % (
            _num(x0),
            _num(y0),
            _num(x1 - x0),
            _num(y1 - y0),
        )
        attrs = (
            b"/MediaBox "
            + _box(self.media)
            + b" /CropBox "
            + _box(self.crop)
            + b" /Rotate %d" % self.rotate
        )
        pages = (
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 " + (attrs if self.inherit else b"") + b" >>"
        )
        page = (
            b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R "
            + (b"" if self.inherit else attrs)
            + b" >>"
        )
        stream = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
        return _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", pages, page, stream])

    def expected_displayed(self) -> tuple[float, float, float, float]:
        """Rectangle on the displayed page (top-left origin, y down), computed directly."""
        cx0, cy0, cx1, cy1 = self.crop
        w, h = cx1 - cx0, cy1 - cy0
        x0, y0, x1, y1 = self.rect
        # unrotated, cropped, top-left origin
        corners = [(x - cx0, cy1 - y) for x in (x0, x1) for y in (y0, y1)]
        r = self.rotate % 360

        def rot(u: float, v: float) -> tuple[float, float]:
            # rotating the page clockwise by r: where the point (u, v) ends up
            if r == 0:
                return u, v
            if r == 90:
                return h - v, u
            if r == 180:
                return w - u, h - v
            return v, w - u

        pts = [rot(u, v) for u, v in corners]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)

    def displayed_size(self) -> tuple[float, float]:
        w, h = self.crop[2] - self.crop[0], self.crop[3] - self.crop[1]
        return (h, w) if self.rotate in (90, 270) else (w, h)


def _cases() -> list[Case]:
    rng = random.Random(20261123)
    cases = []
    for i in range(16):
        mx, my = (
            rng.choice([0.0, rng.uniform(-200, 200)]),
            rng.choice([0.0, rng.uniform(-200, 200)]),
        )
        mw, mh = rng.uniform(150, 900), rng.uniform(150, 900)
        media = (mx, my, mx + mw, my + mh)
        # a CropBox strictly inside the MediaBox (sometimes equal to it)
        if i % 4 == 0:
            crop = media
        else:
            left = mx + rng.uniform(0, mw * 0.25)
            bottom = my + rng.uniform(0, mh * 0.25)
            crop = (
                left,
                bottom,
                left + rng.uniform(0.5, 0.75) * mw,
                bottom + rng.uniform(0.5, 0.75) * mh,
            )
        cw, ch = crop[2] - crop[0], crop[3] - crop[1]
        rx0 = crop[0] + rng.uniform(0.05, 0.5) * cw
        ry0 = crop[1] + rng.uniform(0.05, 0.5) * ch
        rect = (rx0, ry0, rx0 + rng.uniform(0.1, 0.4) * cw, ry0 + rng.uniform(0.1, 0.4) * ch)
        cases.append(Case(media, crop, (0, 90, 180, 270)[i % 4], rect, inherit=(i % 3 == 2)))
    return cases


CASES = _cases()


@pytest.fixture(scope="module")
def pool():
    with RenderPool(workers=2) as p:
        yield p


def _dark_bbox(page) -> tuple[int, int, int, int]:
    arr = np.asarray(page.image().convert("L"))
    ys, xs = np.nonzero(arr < 128)
    assert xs.size, "rectangle not found in the render"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[f"rot{c.rotate}-{'inh' if c.inherit else 'own'}-{i}" for i, c in enumerate(CASES)],
)
def test_rendered_rectangle_maps_back_to_page_and_user_space(case: Case, pool: RenderPool) -> None:
    rng = random.Random(hash(case.rect))
    spec = RenderSpec(dpi=rng.choice([50.0, 72.0, 97.0, 144.0]))
    [src] = open_sources([case.pdf()])
    [page] = list(iter_pages(src, spec, pool=pool))
    assert page.error is None

    # the PageBox the stream reports: displayed size, /Rotate and effective CropBox origin
    dw, dh = case.displayed_size()
    assert page.page_box.width == pytest.approx(dw, abs=0.01)
    assert page.page_box.height == pytest.approx(dh, abs=0.01)
    assert page.page_box.rotation == case.rotate
    assert page.page_box.crop_x == pytest.approx(case.crop[0], abs=0.01)
    assert page.page_box.crop_y == pytest.approx(case.crop[1], abs=0.01)
    # and the sent image has the displayed page's aspect ratio
    assert page.frame.width_px / page.frame.height_px == pytest.approx(dw / dh, rel=0.02)

    mapped = to_page(_dark_bbox(page), CoordSpace.sent_pixels(), page.frame, page.page_box)
    pt_per_px = max(dw / page.frame.width_px, dh / page.frame.height_px)
    tol = pt_per_px + 0.02
    for got, want in zip(mapped.bbox, case.expected_displayed(), strict=True):
        assert got == pytest.approx(want, abs=tol)

    back = to_pdf_user_space(mapped.bbox, page.page_box)
    for got, want in zip(back, case.rect, strict=True):
        assert got == pytest.approx(want, abs=tol)


def test_expected_positions_are_not_trivially_equal() -> None:
    # guard on the test itself: rotation really moves the rectangle
    c = CASES[1]
    moved = [
        Case(c.media, c.crop, r, c.rect, False).expected_displayed() for r in (0, 90, 180, 270)
    ]
    assert len({tuple(round(v, 3) for v in m) for m in moved}) == 4
