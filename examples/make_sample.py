"""Generate ``examples/sample.pdf`` and its ground truth ``examples/sample.truth.json``.

The sample is a four-page US Letter document written by hand (no PDF library): every glyph is
standard Helvetica / Helvetica-Bold in WinAnsiEncoding, placed with an explicit text matrix, so
the position of every line is known exactly from the Adobe Helvetica metrics (AFM advance widths,
no kerning: PDF viewers do not kern ``Tj`` strings).

Pages:

1. a title, a subtitle, section headings and body paragraphs (one word hyphenated at a line end);
2. a full-width heading over two columns of body text;
3. a heading, a ruled table (header row in bold) and a figure (drawn bars) with its caption;
4. a page with ``/Rotate 90``: its content is drawn turned, so it reads upright when displayed
   (landscape, 792 x 612 pt).

The ground truth lists, per page, the displayed page size and every text line with its text and
its box ``[x0, y0, x1, y1]`` in displayed-page points (top-left origin, y down — the output
contract of ``ocrclient``).  A line box spans the line's advance width horizontally and the
font's ascender to descender (0.718 em above the baseline, 0.207 em below) vertically.

The output is deterministic: no dates, no document ID, fixed object order, uncompressed
streams.  Run ``python examples/make_sample.py [OUTDIR]``; the default writes next to this file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Adobe Helvetica / Helvetica-Bold advance widths (1/1000 em) for character codes 32..126.
# Codes 39, 94, 96 and 126 differ between encodings; the sample text never uses them.
_HELVETICA = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
]  # fmt: skip
_HELVETICA_BOLD = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
]  # fmt: skip
FONTS = {"F1": ("Helvetica", _HELVETICA), "F2": ("Helvetica-Bold", _HELVETICA_BOLD)}
ASCENT, DESCENT = 0.718, 0.207  # Helvetica Ascender / -Descender, in em
_FORBIDDEN = set("'^`~")

LETTER = (612.0, 792.0)


def text_width(text: str, font: str, size: float) -> float:
    """Advance width of ``text`` in points."""
    widths = FONTS[font][1]
    total = 0
    for ch in text:
        code = ord(ch)
        if not 32 <= code <= 126 or ch in _FORBIDDEN:
            raise ValueError(f"character {ch!r} is not allowed in the sample text")
        total += widths[code - 32]
    return total * size / 1000.0


@dataclass
class Line:
    text: str
    x: float  # displayed points, left edge of the first glyph's advance
    baseline: float  # displayed points, from the top
    font: str
    size: float
    kind: str
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def box(self) -> list[float]:
        w = text_width(self.text, self.font, self.size)
        return [
            round(float(self.x), 3),
            round(self.baseline - ASCENT * self.size, 3),
            round(self.x + w, 3),
            round(self.baseline + DESCENT * self.size, 3),
        ]


@dataclass
class PageSpec:
    rotate: int = 0
    lines: list[Line] = field(default_factory=list)
    #: raw content-stream operators for graphics, in PDF user space
    graphics: list[str] = field(default_factory=list)

    @property
    def displayed(self) -> tuple[float, float]:
        w, h = LETTER
        return (h, w) if self.rotate in (90, 270) else (w, h)


def wrap(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy word wrap.  A ``|`` inside a word marks where it may be hyphenated at a line end."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        plain = word.replace("|", "")
        trial = f"{cur} {plain}" if cur else plain
        if text_width(trial, font, size) <= width:
            cur = trial
            continue
        # try the hyphenation points, longest prefix first
        parts = word.split("|")
        broke = False
        for k in range(len(parts) - 1, 0, -1):
            head = "".join(parts[:k]) + "-"
            cand = f"{cur} {head}" if cur else head
            if text_width(cand, font, size) <= width:
                lines.append(cand)
                cur = "".join(parts[k:])
                broke = True
                break
        if not broke:
            if cur:
                lines.append(cur)
            cur = plain
    if cur:
        lines.append(cur)
    return lines


class Flow:
    """Places lines top to bottom in a column."""

    def __init__(self, page: PageSpec, x: float, y: float, width: float, **extra: object) -> None:
        self.page, self.x, self.y, self.width, self.extra = page, x, y, width, extra

    def add(
        self, text: str, font: str, size: float, kind: str, leading: float, after: float
    ) -> None:
        for ln in wrap(text, font, size, self.width):
            self.y += leading
            self.page.lines.append(Line(ln, self.x, self.y, font, size, kind, dict(self.extra)))
        self.y += after

    def title(self, text: str) -> None:
        self.add(text, "F2", 24, "title", 28, 4)

    def subtitle(self, text: str) -> None:
        self.add(text, "F1", 12, "subtitle", 15, 14)

    def heading(self, text: str) -> None:
        self.add(text, "F2", 14, "heading", 18, 6)

    def para(self, text: str) -> None:
        self.add(text, "F1", 11, "body", 15, 9)


# -------------------------------------------------------------------------------------------
# content
# -------------------------------------------------------------------------------------------


def page1() -> PageSpec:
    p = PageSpec()
    f = Flow(p, 72, 72, 468)
    f.title("Quarterly Field Report")
    f.subtitle("Prepared by the Northern Survey Team for the spring season")
    f.heading("1 Introduction")
    f.para(
        "This report summarises the work carried out by the survey team between March and May. "
        "Twelve field sites were visited along the northern ridge, and each visit followed the "
        "same protocol for sampling, labelling and storage. The aim of the season was to extend "
        "the long running record of soil moisture and to test a new portable probe."
    )
    f.para(
        "Weather was mild for most of the period. Two visits were postponed because of heavy "
        "rain, and one site could not be reached after a landslide closed the access road."
    )
    f.heading("2 Methods")
    f.para(
        "At every site the team collected five cores at fixed distances from a marked reference "
        "post. Cores were sealed in the field and weighed on the same day. Moisture content was "
        "computed from the wet and dry weights, and all measurements were entered twice by "
        "two people, so tran|scrip|tion errors are caught before the analysis starts."
    )
    f.para(
        "The portable probe was calibrated each morning against a standard sample. Its readings "
        "were recorded next to the laboratory values so that the two methods can be compared "
        "directly in the results section."
    )
    return p


def page2() -> PageSpec:
    p = PageSpec()
    top = Flow(p, 72, 72, 468)
    top.heading("3 Observations by Region")
    gutter = 30.0
    col_w = (468 - gutter) / 2
    left = Flow(p, 72, top.y, col_w, column=1)
    left.para(
        "The western sites sit on thin soil over granite. Moisture dropped quickly after each "
        "rain event, and the cores were often dry within three days. Vegetation cover was "
        "sparse, mostly grasses and low shrubs."
    )
    left.para(
        "Readings from the portable probe tracked the laboratory values closely at these sites, "
        "with a mean difference below two percent."
    )
    left.para(
        "Access was easy along the forestry track, which made it possible to visit the western "
        "group every second week."
    )
    right = Flow(p, 72 + col_w + gutter, top.y, col_w, column=2)
    right.para(
        "The eastern valley holds deeper clay soils. Water stayed in the upper layer for weeks, "
        "and several cores had standing water at the bottom when they were lifted."
    )
    right.para(
        "Here the probe read consistently higher than the laboratory, by about six percent. "
        "The team suspects that the clay keeps the sensor surface wet."
    )
    right.para(
        "Two eastern sites were flooded in April. They were sampled again in May once the river "
        "had returned to its normal level."
    )
    return p


_TABLE = [
    ["Region", "Visits", "Cores taken", "Mean moisture"],
    ["North Ridge", "Twelve", "Sixty", "18.4 percent"],
    ["Eastern Valley", "Nine", "Forty five", "31.2 percent"],
    ["Western Slope", "Eleven", "Fifty five", "12.7 percent"],
    ["Southern Flats", "Eight", "Forty", "22.9 percent"],
]


def page3() -> PageSpec:
    p = PageSpec()
    f = Flow(p, 72, 72, 468)
    f.heading("4 Results")
    f.para(
        "Table 1 lists the number of visits and cores for each region together with the mean "
        "moisture content measured in the laboratory."
    )
    _, page_h = LETTER
    col_w = [126.0, 90.0, 120.0, 132.0]
    row_h = 24.0
    top = f.y + 8
    x0 = 72.0
    g: list[str] = ["0 0 0 RG 0.8 w"]
    # grid, in user space (y up)
    for r in range(len(_TABLE) + 1):
        y = page_h - (top + r * row_h)
        g.append(f"{x0:.2f} {y:.2f} m {x0 + sum(col_w):.2f} {y:.2f} l S")
    xs = [x0]
    for w in col_w:
        xs.append(xs[-1] + w)
    y_top, y_bot = page_h - top, page_h - (top + len(_TABLE) * row_h)
    for x in xs:
        g.append(f"{x:.2f} {y_top:.2f} m {x:.2f} {y_bot:.2f} l S")
    p.graphics.extend(g)
    for r, row in enumerate(_TABLE):
        baseline = top + r * row_h + 16.0
        for c, cell in enumerate(row):
            font = "F2" if r == 0 else "F1"
            p.lines.append(Line(cell, xs[c] + 6, baseline, font, 10, "cell", {"row": r, "col": c}))
    f.y = top + len(_TABLE) * row_h + 10
    f.add("Table 1: Visits, cores and mean moisture by region.", "F1", 10, "caption", 14, 0)
    # figure: a small bar chart drawn with filled rectangles
    fig_top = f.y + 14
    fig_h = 170.0
    base_y = page_h - (fig_top + fig_h)
    fig = ["0 0 0 RG 1 w", f"100 {base_y:.2f} m 100 {base_y + fig_h:.2f} l S",
           f"100 {base_y:.2f} m 500 {base_y:.2f} l S"]  # fmt: skip
    for i, value in enumerate([18.4, 31.2, 12.7, 22.9]):
        h = value * 5.0
        shade = ["0.20 0.40 0.70", "0.85 0.45 0.15", "0.30 0.60 0.30", "0.60 0.30 0.60"][i]
        fig.append(f"{shade} rg {130 + i * 90:.2f} {base_y:.2f} 55 {h:.2f} re f")
    p.graphics.extend(fig)
    f.y = fig_top + fig_h + 4
    f.add("Figure 1: Mean moisture content by region, in percent.", "F1", 10, "caption", 14, 0)
    return p


def page4() -> PageSpec:
    p = PageSpec(rotate=90)
    width, _ = p.displayed
    f = Flow(p, 72, 60, width - 144)
    f.heading("Appendix A: Equipment Log")
    f.para(
        "This page is stored in portrait orientation with a rotation of ninety degrees, so it is "
        "displayed as a landscape page. Its text runs along the long edge of the sheet and reads "
        "normally once the viewer applies the rotation."
    )
    f.para(
        "Probe unit one was used at all northern and western sites. Its battery was replaced on "
        "the fourth of April after a low voltage warning. Probe unit two was used in the eastern "
        "valley and needed no service during the season."
    )
    f.para(
        "The field scale was checked against a reference weight at the start of every week and "
        "never drifted by more than half a gram."
    )
    return p


# -------------------------------------------------------------------------------------------
# PDF writing
# -------------------------------------------------------------------------------------------


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _to_user(page: PageSpec, x: float, y: float) -> tuple[float, float]:
    """Displayed point (top-left origin) -> PDF user space (MediaBox at the origin)."""
    _, h = LETTER
    if page.rotate == 0:
        return x, h - y
    if page.rotate == 90:
        # /Rotate 90 turns the page clockwise: displayed (X, Y) is user (Y, X)
        return y, x
    raise ValueError("only /Rotate 0 and 90 are used by the sample")


def content_stream(page: PageSpec) -> bytes:
    ops: list[str] = []
    if page.graphics:
        ops.append("q")
        ops.extend(page.graphics)
        ops.append("Q")
    ops.append("0 g")
    for ln in page.lines:
        ux, uy = _to_user(page, ln.x, ln.baseline)
        matrix = "1 0 0 1" if page.rotate == 0 else "0 1 -1 0"
        ops.append(
            f"BT /{ln.font} {ln.size:g} Tf {matrix} {ux:.3f} {uy:.3f} Tm {_pdf_string(ln.text)} Tj ET"
        )
    return ("\n".join(ops) + "\n").encode("latin-1")


def build_pdf(pages: Sequence[PageSpec]) -> bytes:
    objects: list[bytes] = []  # object i+1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled below
    pages_id = add(b"")
    font_ids = {}
    for key, (base, widths) in FONTS.items():
        w = " ".join(str(v) for v in widths)
        font_ids[key] = add(
            f"<< /Type /Font /Subtype /Type1 /BaseFont /{base} /Encoding /WinAnsiEncoding "
            f"/FirstChar 32 /LastChar 126 /Widths [{w}] >>".encode("ascii")
        )
    fonts = " ".join(f"/{k} {v} 0 R" for k, v in font_ids.items())
    kids = []
    for page in pages:
        stream = content_stream(page)
        cid = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
        rotate = f" /Rotate {page.rotate}" if page.rotate else ""
        pid = add(
            f"<< /Type /Page /Parent {pages_id} 0 R /MediaBox [0 0 {LETTER[0]:g} {LETTER[1]:g}]"
            f"{rotate} /Resources << /Font << {fonts} >> >> /Contents {cid} 0 R >>".encode("ascii")
        )
        kids.append(pid)
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode("ascii")
    objects[pages_id - 1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
    ).encode("ascii")

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        xref,
    )
    return bytes(out)


def truth(pages: Sequence[PageSpec]) -> dict[str, object]:
    out_pages = []
    for n, page in enumerate(pages, start=1):
        w, h = page.displayed
        lines = []
        for ln in page.lines:
            item: dict[str, object] = {"text": ln.text, "box": ln.box, "kind": ln.kind,
                                       "font_size": ln.size}  # fmt: skip
            item.update(ln.extra)
            lines.append(item)
        out_pages.append(
            {"page": n, "width": w, "height": h, "rotation": page.rotate, "lines": lines}
        )
    return {
        "source": "sample.pdf",
        "units": "points of the displayed page, origin top-left, y down",
        "line_box": "advance width x (ascender 0.718 em above .. descender 0.207 em below the baseline)",
        "pages": out_pages,
    }


def all_pages() -> list[PageSpec]:
    pages = [page1(), page2(), page3(), page4()]
    for page in pages:
        w, h = page.displayed
        for ln in page.lines:
            x0, y0, x1, y1 = ln.box
            if not (0 <= x0 < x1 <= w - 36 and 0 <= y0 < y1 <= h - 36):
                raise AssertionError(f"line {ln.text!r} leaves the page: {ln.box}")
    if not any(ln.text.endswith("-") for ln in pages[0].lines):
        raise AssertionError("page 1 should have a hyphenated line end")
    return pages


def write(outdir: Path) -> tuple[Path, Path]:
    """Write ``sample.pdf`` and ``sample.truth.json`` into ``outdir``; returns both paths."""
    pages = all_pages()
    outdir.mkdir(parents=True, exist_ok=True)
    pdf_path = outdir / "sample.pdf"
    truth_path = outdir / "sample.truth.json"
    pdf_path.write_bytes(build_pdf(pages))
    truth_path.write_text(json.dumps(truth(pages), indent=1) + "\n", encoding="utf-8")
    return pdf_path, truth_path


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    for p in write(target):
        print(p)
