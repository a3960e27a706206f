"""Screenshot test of the HTML viewer in headless Chromium.

The viewer is written from a result JSON (``viewer.write_viewer``) and opened as
``file://...html?page=N&fixed=1``: the fixed layout puts the current page at a known place
(``FIXED_SHEET_LEFT/TOP/WIDTH``), so where a block's ``bbox_norm`` must land in the screenshot
can be computed.  Figure boxes are the only magenta (``TYPE_COLORS["figure"]``) on the page: the
test checks magenta border pixels along every edge of the figure's box (within 3 px) and none
anywhere else on the page.

Needs a ``chromium`` (or ``chromium-browser`` / ``google-chrome``) on PATH.  When none is
installed the test FAILS with a clear message if the environment variable ``CI`` is set (CI
installs it: ``apt-get install -y chromium``) and is skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from ocrclient.errors import InputError
from ocrclient.exporters.jsonout import write as write_json
from ocrclient.viewer import (
    FIXED_HEAD_TOP,
    FIXED_SHEET_LEFT,
    FIXED_SHEET_TOP,
    FIXED_SHEET_WIDTH,
    TYPE_COLORS,
    write_viewer,
)

from .test_exporters import FIGURE_RGB, build

WINDOW = (1280, 1000)
TOL = 3


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    msg = "chromium is not installed (apt-get install -y chromium); the viewer screenshot test needs it"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def _screenshot(html: Path, query: str, out: Path, profile: Path) -> Image.Image:
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={out}", f"{html.resolve().as_uri()}?{query}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.is_file(), f"chromium wrote no screenshot (rc={proc.returncode}): {proc.stderr[-1500:]}"
    img = Image.open(out).convert("RGB")
    assert img.size == WINDOW
    return img


def _is_color(px: tuple[int, int, int], rgb: tuple[int, int, int], tol: int = 45) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(px, rgb, strict=True))


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("viewer")
    _, doc, _ = build(tmp)
    json_path = write_json(doc, tmp / "out" / "scan.json")
    html = write_viewer(json_path)
    assert html == json_path.with_suffix(".html")
    return html, doc


@pytest.mark.parametrize("page_no", [1, 2])
def test_figure_boxes_are_drawn_where_the_json_says(viewer: tuple[Path, object], page_no: int, tmp_path: Path) -> None:
    html, doc = viewer
    page = doc.pages[page_no - 1]  # type: ignore[attr-defined]
    shot = _screenshot(html, f"page={page_no}&fixed=1", tmp_path / "shot.png", tmp_path / "profile")
    px = shot.load()
    magenta = tuple(int(TYPE_COLORS["figure"][i:i + 2], 16) for i in (1, 3, 5))

    sheet_w = FIXED_SHEET_WIDTH
    sheet_h = FIXED_SHEET_WIDTH * page.height / page.width
    left, top = FIXED_SHEET_LEFT, FIXED_SHEET_TOP
    figs = [b for b in page.blocks if b.type == "figure"]
    assert figs and all(b.bbox_norm for b in figs)
    rects = []
    for b in figs:
        x0, y0, x1, y1 = b.bbox_norm
        rects.append((left + x0 * sheet_w, top + y0 * sheet_h, left + x1 * sheet_w, top + y1 * sheet_h))

    def near(x: int, y: int, rx: float, ry: float, horizontal: bool) -> bool:
        """Magenta within TOL px across the edge (x fixed for vertical edges, y for horizontal)."""
        for d in range(-TOL - 2, TOL + 3):
            xx, yy = (x, round(ry) + d) if horizontal else (round(rx) + d, y)
            if 0 <= xx < WINDOW[0] and 0 <= yy < WINDOW[1] and _is_color(px[xx, yy], magenta):
                return True
        return False

    for X0, Y0, X1, Y1 in rects:
        for t in [i / 10 for i in range(1, 10)]:
            x = round(X0 + t * (X1 - X0))
            y = round(Y0 + t * (Y1 - Y0))
            assert near(x, 0, 0, Y0, True), ("top edge", x, Y0)
            assert near(x, 0, 0, Y1 - 1, True), ("bottom edge", x, Y1)
            assert near(0, y, X0, 0, False), ("left edge", X0, y)
            assert near(0, y, X1 - 1, 0, False), ("right edge", X1, y)
        # the page image is under the box: the figure's own fill shows through
        assert _is_color(px[round((X0 + X1) / 2 + 10), round((Y0 + Y1) / 2 - 20)], FIGURE_RGB, 40)

    def on_a_border(x: int, y: int) -> bool:
        for X0, Y0, X1, Y1 in rects:
            inside_outer = X0 - TOL - 1 <= x <= X1 + TOL and Y0 - TOL - 1 <= y <= Y1 + TOL
            inside_inner = X0 + TOL + 2 < x < X1 - TOL - 3 and Y0 + TOL + 2 < y < Y1 - TOL - 3
            if inside_outer and not inside_inner:
                return True
        return False

    stray = [
        (x, y)
        for y in range(top, min(WINDOW[1], round(top + sheet_h)))
        for x in range(left, left + sheet_w)
        if _is_color(px[x, y], magenta) and not on_a_border(x, y)
    ]
    assert not stray, f"{len(stray)} magenta pixels away from the figure boxes, e.g. {stray[:5]}"
    # and borders were really found in magenta (not an all-magenta or empty screenshot)
    count = sum(
        _is_color(px[x, y], magenta)
        for y in range(top, min(WINDOW[1], round(top + sheet_h)))
        for x in range(left, left + sheet_w)
    )
    perimeter = sum(2 * ((X1 - X0) + (Y1 - Y0)) for X0, Y0, X1, Y1 in rects)
    assert perimeter * 1.0 < count < perimeter * 4


def test_failed_page_is_labelled(viewer: tuple[Path, object], tmp_path: Path) -> None:
    html, _ = viewer
    shot = _screenshot(html, "page=4&fixed=1", tmp_path / "shot.png", tmp_path / "profile")
    px = shot.load()
    # the red banner above the page (border #c62828 on #fdecea)
    band = [px[x, y] for y in range(FIXED_HEAD_TOP, FIXED_SHEET_TOP - 4) for x in range(FIXED_SHEET_LEFT, FIXED_SHEET_LEFT + FIXED_SHEET_WIDTH)]
    assert sum(_is_color(p, (0xC6, 0x28, 0x28), 30) for p in band) > 100
    assert sum(_is_color(p, (0xFD, 0xEC, 0xEA), 6) for p in band) > 2000


def test_page_query_selects_the_page_in_the_navigator(viewer: tuple[Path, object], tmp_path: Path) -> None:
    """The navigator script runs (no CSP or script error): ``?page=3`` makes page 3 current."""
    html, _ = viewer
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"{html.resolve().as_uri()}?page=3",
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    assert '<span id="pos">3 / 5</span>' in dom
    assert 'class="page status-ok current" id="page-3"' in dom
    assert 'class="nav-ok current"' in dom and dom.count(" current") == 2
    assert "<dd>520 × 660</dd>" in dom  # the page panel shows page 3 (CropBox 520 x 660 pt)


def test_write_viewer_rejects_a_file_that_is_not_a_result(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"pages": "nope"}')
    with pytest.raises(InputError, match=r"x\.json: not an ocrclient result") as exc:
        write_viewer(bad)
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="cannot read"):
        write_viewer(tmp_path / "missing.json")
    assert not (tmp_path / "x.html").exists()


def test_side_panel_shows_model_text_as_text(tmp_path: Path) -> None:
    """Selecting a block (``?block=`` does what a click does) puts its text in the side panel
    through textContent: markup in model output stays inert."""
    from ocrclient.exporters.html import write as write_html

    _, doc, _ = build(tmp_path)
    evil = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
    doc.pages[0].blocks[1].text = evil
    html = write_html(doc, tmp_path / "evil.html")
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", f"{html.resolve().as_uri()}?page=1&block=1",
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    panel = dom[dom.index('<div id="block">'):dom.index('<h2>Page</h2>')]
    assert "<pre>&lt;script&gt;document.title='pwned'&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</pre>" in panel
    assert "<dd>title</dd>" in panel and "<dd>1</dd>" in panel
    assert "pwned</title>" not in dom and "<img src=\"x\"" not in dom and 'class="box t-title sel"' in dom


def test_ocr_view_never_replaces_a_viewer_with_one_without_page_images(tmp_path: Path) -> None:
    """The source moved away: ``ocr view result.json`` would write a viewer of blank pages over
    the run's own, which holds the page images the run drew (it did, exit 0, no word).  It now
    refuses with one line and keeps it; with ``-o`` it writes the blank one where it is told;
    with the source in place it writes as before."""
    import re

    from typer.testing import CliRunner

    from ocrclient.cli import app

    pdf, doc, _ = build(tmp_path)
    json_path = write_json(doc, tmp_path / "out" / "scan.json")
    html = write_viewer(json_path)
    full = html.read_bytes()
    assert re.search(rb'src="data:image/jpeg;base64,', full)
    moved = pdf.rename(tmp_path / "elsewhere.pdf")
    runner = CliRunner()
    refused = runner.invoke(app, ["view", str(json_path)])
    assert refused.exit_code == 2 and "is kept" in refused.output and "Traceback" not in refused.output, refused.output
    assert html.read_bytes() == full
    blank = runner.invoke(app, ["view", str(json_path), "-o", str(tmp_path / "blank.html")])
    assert blank.exit_code == 0 and (tmp_path / "blank.html").is_file(), blank.output
    moved.rename(pdf)
    again = runner.invoke(app, ["view", str(json_path)])
    assert again.exit_code == 0 and re.search(rb'src="data:image/jpeg;base64,', html.read_bytes())


def test_a_file_beside_the_json_is_taken_as_the_input_only_if_it_can_be(tmp_path: Path) -> None:
    """With the input not where the JSON says, a file beside the JSON with the input's name was
    taken for it: after ``-f pdf --pages 2,4-5`` that is the run's own searchable PDF, whose page
    2 is the input's page 4, and ``ocr view`` wrote page 4's image as page 2 over the run's good
    viewer.  A file is taken only when it holds every page, each of the size the JSON records."""
    from typer.testing import CliRunner

    from ocrclient.cli import app
    from ocrclient.document import Document, Page
    from ocrclient.exporters.source import resolve_source

    from .pdfgen import PdfPage, write_pdf

    sizes = [(300.0 + 10 * i, 400.0) for i in range(5)]
    out = tmp_path / "out"
    out.mkdir()
    doc = Document(source="in/doc.pdf", backend="b", pages=[
        Page(page=n, status="ok", width=sizes[n - 1][0], height=sizes[n - 1][1], markdown=f"page {n}") for n in (2, 4, 5)])  # fmt: skip
    json_path = write_json(doc, out / "doc.json")
    html = out / "doc.html"
    html.write_text("the run's own viewer")

    def beside(pages: list[tuple[float, float]]) -> Path:
        return write_pdf(out / "doc.pdf", [PdfPage(media=(0, 0, w, h), texts=[(20, 20, 12, "x")]) for w, h in pages])

    runner = CliRunner()
    for wrong in ([sizes[1], sizes[3], sizes[4]],  # the searchable PDF of pages 2, 4, 5
                  [(612.0, 792.0)] * 5,  # another PDF of as many pages
                  sizes[:4]):  # fmt: skip  # the input's first pages only
        beside(wrong)
        assert resolve_source(doc, base=out) is None
        refused = runner.invoke(app, ["view", str(json_path)])
        assert refused.exit_code == 2 and "is kept" in refused.output, refused.output
        assert html.read_text() == "the run's own viewer"
    beside(sizes)  # the input itself, moved beside its JSON: found
    assert resolve_source(doc, base=out) == out / "doc.pdf"


@pytest.mark.parametrize("kind", ["png", "pdf"])
def test_ocr_view_finds_the_input_the_json_was_made_from_wherever_it_runs(kind: str, tmp_path: Path) -> None:
    """The JSON names its input as typed (``scans/page.png``, relative): ``ocr view`` run from
    another folder drew a different ``scans/page.png`` there under the boxes (any image was taken
    for the input, and a PDF of the same page sizes), or said "source not available" from any
    other folder.  It now takes the path the run's manifest records, and checks the pixels."""
    import os
    import subprocess
    import sys

    from PIL import Image, ImageDraw

    from .pdfgen import text_pdf

    a, b, elsewhere = tmp_path / "a", tmp_path / "b", tmp_path / "elsewhere"
    for d in (a / "scans", b / "scans", elsewhere):
        d.mkdir(parents=True)
    if kind == "png":
        img = Image.new("RGB", (600, 300), "white")
        ImageDraw.Draw(img).text((40, 40), "INVOICE 42", fill="black", font_size=40)
        img.save(a / "scans" / "page.png")
        Image.new("RGB", (300, 900), "green").save(b / "scans" / "page.png")
        Image.new("RGB", (600, 300), "green").save(elsewhere / "page.png")  # (same size, other pixels: a name alone)
    else:
        text_pdf(a / "scans" / "page.pdf", [["INVOICE 42"]])
        text_pdf(b / "scans" / "page.pdf", [["another document"]])  # same page size
    env = {**os.environ, "NO_COLOR": "1"}

    def ocr(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ocrclient.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    out = tmp_path / "out"
    made = ocr(a, "convert", f"scans/page.{kind}", "-o", str(out), "-b", "local", "--no-cache", "-q")
    assert made.returncode == 0, made.stderr
    want = (ocr(a, "view", str(out / "page.json"), "-o", str(tmp_path / "right.html")), tmp_path / "right.html")
    assert want[0].returncode == 0, want[0].stderr
    import re

    def same(html: str) -> str:  # (each viewer has its own CSP nonce)
        return re.sub(r"nonce[-=]\"?[\w-]+", "nonce", html)

    right = same(want[1].read_text())
    assert "source not available" not in right
    for cwd in (b, elsewhere):
        page = tmp_path / f"from-{cwd.name}.html"
        run = ocr(cwd, "view", str(out / "page.json"), "-o", str(page))
        assert run.returncode == 0, run.stderr
        assert same(page.read_text()) == right, cwd.name  # the same viewer: the same input's pixels


def test_ocr_view_takes_a_folder_for_its_output_and_refuses_one_for_its_input(tmp_path: Path) -> None:
    """The whole kind of folder where a file was asked: ``-o FOLDER`` writes the viewer into it
    (it said "Is a directory: .../.FOLDER.k_l0c64z.tmp", naming a temp file); a folder given as
    the result says it is one (it said "no such file")."""
    from typer.testing import CliRunner

    from ocrclient.cli import app

    _, doc, _ = build(tmp_path)
    json_path = write_json(doc, tmp_path / "out" / "scan.json")
    folder = tmp_path / "viewers"
    folder.mkdir()
    runner = CliRunner()
    into = runner.invoke(app, ["view", str(json_path), "-o", str(folder)])
    assert into.exit_code == 0 and (folder / "scan.html").is_file(), into.output
    assert into.stdout.strip() == str(folder / "scan.html")
    given = runner.invoke(app, ["view", str(tmp_path / "out")])
    assert given.exit_code == 2 and "a folder" in given.output and ".json" in given.output, given.output
    # a folder not there yet (``-o new/``, ``-o new``): made, the viewer inside; a new .html is a file
    for name in ("new/", "deeper/new"):
        made = runner.invoke(app, ["view", str(json_path), "-o", str(tmp_path / name)])
        assert made.exit_code == 0 and (tmp_path / name / "scan.html").is_file(), made.output
    as_file = runner.invoke(app, ["view", str(json_path), "-o", str(tmp_path / "v.HTML")])
    assert as_file.exit_code == 0 and (tmp_path / "v.HTML").is_file(), as_file.output
