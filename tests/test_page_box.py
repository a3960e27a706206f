"""One owner of the page box: every place that needs a PDF page's geometry (displayed size,
``/Rotate``, the lower-left of the CropBox in user space) gets it from
:func:`ocrclient.pages.render.pdf_page_box`.

Two tests of that kind:

* the three places that need a page box — the renderer (``iter_pages``), document mode
  (``docmode.document_unit``) and the searchable-PDF writer — give the same box, and the right
  one, for every page of documents like the corpus: rotated, cropped, with a MediaBox away from
  the origin, a CropBox reaching past the MediaBox, corners given in the other order, and boxes
  and ``/Rotate`` inherited from the page tree;
* no module of the package but the render stage reads a page's box from PDFium
  (``get_bbox``/``get_cropbox``/``get_mediabox``/``get_size``/``get_rotation``... or the raw
  ``FPDF*`` calls behind them), so a new caller cannot grow a fourth way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ocrclient.geometry import PageBox
from ocrclient.imaging import RenderSpec
from ocrclient.pages import RenderPool, iter_pages, open_sources

from .pdfgen import Box, PdfPage, write_pdf

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ocrclient"

Case = tuple[Box | None, Box | None, int]  # a page's own (media, crop, rotate); None/0: not set

#: documents like the corpus: name -> (the page tree's inherited (media, crop, rotate), pages)
DOCUMENTS: dict[str, tuple[Case, list[Case]]] = {
    "own boxes": (
        (None, None, 0),
        [
            ((0, 0, 300, 200), None, 0),  # plain
            ((0, 0, 300, 200), None, 90),  # rotated
            ((0, 0, 300, 200), None, 180),
            ((0, 0, 300, 200), None, 270),
            ((0, 0, 420, 300), (35, 20, 335, 220), 0),  # cropped inside a larger MediaBox
            ((0, 0, 420, 300), (35, 20, 335, 220), 90),
            ((-40, 25, 260, 225), None, 0),  # MediaBox away from the origin
            ((30, -60, 330, 140), None, 270),
            ((10, 10, 310, 210), (-20, 40, 250, 260), 0),  # CropBox reaching past the MediaBox
            ((10, 10, 310, 210), (200, 180, 40, 30), 180),  # CropBox corners top-right first
        ],
    ),
    "inherited boxes": (
        ((15, -30, 335, 190), (40, 0, 300, 150), 90),
        [
            (None, None, 0),  # MediaBox, CropBox and /Rotate from the page tree
            (None, (60, 50, 260, 170), 0),  # its own CropBox
            (None, None, 180),  # its own /Rotate
            ((0, 0, 300, 200), None, 0),  # its own MediaBox, the tree's CropBox
        ],
    ),
}


def _tree_entries(tree: Case) -> str:
    media, crop, rotate = tree
    out = []
    for key, box in (("MediaBox", media), ("CropBox", crop)):
        if box is not None:
            out.append(f"/{key} [" + " ".join(f"{v:g}" for v in box) + "]")
    if rotate:
        out.append(f"/Rotate {rotate}")
    return " ".join(out)


def expected(tree: Case, case: Case) -> PageBox:
    """The box as the PDF spec defines it: the CropBox (default: the MediaBox) clipped to the
    MediaBox, normalised, each inherited from the page tree where the page has none; displayed
    size turned by ``/Rotate``; lower-left in user space."""
    media = case[0] or tree[0]
    crop = case[1] or tree[1]
    rotate = case[2] or tree[2]
    assert media is not None

    def norm(b: Box) -> Box:
        return min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])

    mx0, my0, mx1, my1 = norm(media)
    cx0, cy0, cx1, cy1 = norm(crop) if crop is not None else (mx0, my0, mx1, my1)
    x0, y0, x1, y1 = max(mx0, cx0), max(my0, cy0), min(mx1, cx1), min(my1, cy1)
    w, h = x1 - x0, y1 - y0
    if rotate % 180:
        w, h = h, w
    return PageBox(w, h, rotate % 360, x0, y0)


@pytest.fixture(scope="module", params=sorted(DOCUMENTS))
def document(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Case, list[Case]]:
    tree, cases = DOCUMENTS[request.param]
    pages = [PdfPage(media=m, crop=c, rotate=r, rects=[(50, 50, 120, 80)]) for m, c, r in cases]
    path = tmp_path_factory.mktemp("pagebox") / f"{request.param.replace(' ', '-')}.pdf"
    return write_pdf(path, pages, tree=_tree_entries(tree)), tree, cases


def _approx(box: PageBox) -> tuple[float, ...]:
    return tuple(round(v, 3) for v in (box.width, box.height, box.rotation, box.crop_x, box.crop_y))


def test_renderer_docmode_and_pdf_writer_agree_on_every_page_box(
    document: tuple[Path, Case, list[Case]],
) -> None:
    import pypdfium2 as pdfium

    from ocrclient.docmode import document_unit
    from ocrclient.exporters.pdf_layer import page_box_of as _page_box
    from ocrclient.pages import PDFIUM_LOCK

    path, tree, cases = document
    [src] = open_sources([path])
    assert src.page_count == len(cases)
    with RenderPool(workers=0) as pool:
        rendered = [p.page_box for p in iter_pages(src, RenderSpec(dpi=36), pool=pool)]
    docmode = document_unit(src, list(range(src.page_count))).boxes
    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(path)
        try:
            writer = []
            for i in range(len(pdf)):
                pg = pdf[i]
                writer.append(_page_box(pg))
                pg.close()
        finally:
            pdf.close()
    for i, case in enumerate(cases):
        want = _approx(expected(tree, case))
        got = {
            "renderer": _approx(rendered[i]),
            "document mode": _approx(docmode[i]),
            "searchable PDF": _approx(writer[i]),
        }
        wrong = {who: box for who, box in got.items() if box != want}
        assert not wrong, f"page {i + 1} {case}: expected {want}, got {wrong}"


#: what reads a page's box from PDFium: pypdfium2's PdfPage methods and the raw calls they wrap
BOX_READERS = frozenset(
    {
        "get_bbox", "get_cropbox", "get_mediabox", "get_trimbox", "get_bleedbox", "get_artbox",
        "get_size", "get_width", "get_height", "get_rotation",
        "FPDF_GetPageBoundingBox", "FPDFPage_GetCropBox", "FPDFPage_GetMediaBox",
        "FPDFPage_GetTrimBox", "FPDFPage_GetBleedBox", "FPDFPage_GetArtBox",
        "FPDF_GetPageSizeByIndex", "FPDF_GetPageSizeByIndexF",
        "FPDF_GetPageWidth", "FPDF_GetPageWidthF", "FPDF_GetPageHeight", "FPDF_GetPageHeightF",
        "FPDFPage_GetRotation",
    }
)  # fmt: skip
OWNER = ("pages/render.py", "pdf_page_box")


def _box_reads(path: Path) -> list[tuple[str, int, str]]:
    """(function, line, name) of every use of a box reader in one module."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f"{where}.{child.name}" if where else child.name
            name = (
                child.attr if isinstance(child, ast.Attribute)
                else child.id if isinstance(child, ast.Name)
                else None
            )  # fmt: skip
            if name in BOX_READERS:
                found.append((inner, child.lineno, name))
            visit(child, inner)

    visit(tree, "")
    return found


def test_only_the_render_stage_reads_a_page_box_from_pdfium() -> None:
    owner_reads = []
    elsewhere = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for func, line, name in _box_reads(path):
            if (rel, func) == OWNER:
                owner_reads.append(name)
            else:
                elsewhere.append(f"{rel}:{line} {func or '<module>'} uses {name}")
    assert not elsewhere, (
        "a page box is read outside ocrclient.pages.render.pdf_page_box; call it instead:\n"
        + "\n".join(elsewhere)
    )
    # the check sees the owner's own reads, so it is looking at the right names
    assert {"get_size", "get_bbox", "get_rotation"} <= set(owner_reads), owner_reads
