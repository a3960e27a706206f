"""Parser tests on real model replies (issue #5).

Every fixture under ``tests/data/replies/{chandra,lighton,dots}`` is a reply a model actually
returned, copied byte for byte from a public source named in that folder's ``SOURCE.md`` and in
each test's docstring.  The replies go through the whole page path -- the dialect's ``parse``,
the geometry and the scheduler that decides the page status -- via an in-process transport that
replays the stored text (no network).  What is asserted is read off the fixture itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ocrclient.dialects.chandra import ChandraDialect
from ocrclient.dialects.dots import DotsDialect, smart_resize
from ocrclient.dialects.lighton import LightOnDialect
from ocrclient.document import Page
from ocrclient.imaging import RenderSpec
from ocrclient.pages import PageImage
from ocrclient.scheduler import Scheduler
from ocrclient.transports.base import Health, ModelReply, ModelRequest

from .fakes import make_backend
from .test_dialect_common import make_page, reply, request_for

REPLIES = Path(__file__).parent / "data" / "replies"


def fixture(name: str) -> str:
    return (REPLIES / name).read_text(encoding="utf-8")


class Replay:
    """A transport that answers every request with one stored model reply."""

    def __init__(self, text: str, finish: str | None) -> None:
        self.text, self.finish = text, finish
        self.requests: list[ModelRequest] = []

    async def send(self, request: ModelRequest) -> ModelReply:
        self.requests.append(request)
        return ModelReply(text=self.text, finish_reason=self.finish)

    async def health(self) -> Health:
        return Health(True, "replay")

    async def aclose(self) -> None:
        return None


async def run_page(dialect: Any, text: str, *, finish: str | None = "stop", spec: RenderSpec | None = None,
                   size: tuple[float, float] = (612, 792)) -> Page:  # fmt: skip
    """One page (US letter unless ``size``) through the scheduler; the model 'returns' ``text``."""
    page = make_page(spec or dialect.render, *size)

    async def pages() -> AsyncIterator[PageImage]:
        yield page

    backend = make_backend(Replay(text, finish), dialect, max_attempts=1)
    doc = await Scheduler(backend, backoff_initial_s=0.01, backoff_max_s=0.05).run_document("real.pdf", pages())
    assert len(doc.pages) == 1
    return doc.pages[0]


def assert_boxes_sane(page: Page) -> None:
    """Every box normalized within [0, 1], corners in order, no geometry flags."""
    for b in page.blocks:
        assert b.bbox_norm is not None, b
        x0, y0, x1, y1 = b.bbox_norm
        assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0, b
        assert b.flags == [], b


def norm(box: tuple[float, float, float, float], w: float, h: float) -> list[float]:
    return [box[0] / w, box[1] / h, box[2] / w, box[3] / h]


# ------------------------------------------------------------------------------------------------
# Chandra 2 (datalab-to/chandra-ocr-2): HTML layout blocks, boxes on a 0-1000 grid
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def chandra2() -> ChandraDialect:
    return ChandraDialect(model="datalab-to/chandra-ocr-2")


async def test_chandra2_otsl_paper_page(chandra2: ChandraDialect) -> None:
    """docling-project/docling ``tests/data/html_chandra/sources/chandra_simple.html`` (mirror
    yzkee/docling @ 011469074fe53bdde54315ee1120c40710c3c00a); its ``.source.txt``: "Source:
    tests/data/pdf/2305.03393v1-pg9.pdf, page 1. Model: datalab-to/chandra-ocr-2." -- page 9 of
    the OTSL paper: a running header, two sections, a caption and a rowspan/colspan table."""
    page = await run_page(chandra2, fixture("chandra/chandra2_docling_otsl_pg9.html"))
    assert page.status == "ok" and page.warnings == []
    assert [b.label for b in page.blocks] == [
        "Page-Header", "Text", "Section-Header", "Text", "Caption", "Table", "Section-Header", "Text", "Text",
    ]  # fmt: skip
    assert [b.type for b in page.blocks][:6] == ["page_header", "text", "section_header", "text", "caption", "table"]
    # boxes: the reply's 0-1000 grid is the fraction of the page (the image is the whole page)
    assert page.blocks[5].bbox_norm == pytest.approx([0.225, 0.422, 0.770, 0.590], abs=1e-6)
    assert_boxes_sane(page)
    tops = [b.bbox_norm[1] for b in page.blocks if b.bbox_norm]
    assert tops == sorted(tops)  # a single-column page, read top to bottom
    # the running header is a block but not part of the page text
    assert page.blocks[0].text == "Optimized Table Tokenization for Table Structure Recognition 9"
    assert "Optimized Table Tokenization" not in page.markdown
    # headings keep the model's level (<h3>), the table stays HTML with its spans
    assert "### 5.1 Hyper Parameter Optimization" in page.markdown
    assert [b.text for b in page.blocks if b.type == "section_header"] == [
        "5.1 Hyper Parameter Optimization", "5.2 Quantitative Results",
    ]  # fmt: skip
    table = page.blocks[5].text
    assert table.startswith("<table") and 'rowspan="2"' in table and 'colspan="3"' in table
    assert table.count("<tr>") == 10 and "<b>0.88</b>" in table
    assert page.blocks[4].text.startswith("**Table 1.** HPO performed in OTSL and HTML")
    # <a href="#">1</a> is a reference number, not a link
    assert "Results are presented in Table. 1 It is evident" in page.markdown
    assert "](#)" not in page.markdown


async def test_chandra2_figure_with_chart_data(chandra2: ChandraDialect) -> None:
    """docling-project/docling ``tests/data/html_chandra/sources/chandra_multiblock.html`` (mirror
    yzkee/docling @ 011469074fe53bdde54315ee1120c40710c3c00a); ``.source.txt``: "Source:
    tests/data/pdf/picture_classification.pdf, page 1. Model: datalab-to/chandra-ocr-2." -- a
    Figure block holding the chart's alt text *and* a table of the chart's data, then a caption
    and a page number."""
    page = await run_page(chandra2, fixture("chandra/chandra2_docling_figures_example.html"))
    assert page.status == "ok" and page.warnings == []
    assert [b.type for b in page.blocks] == ["section_header", "text", "figure", "caption", "text", "page_footer"]
    fig = page.blocks[2]
    assert fig.label == "Figure" and fig.text.startswith("Stacked bar chart showing Plot number proportions")
    assert fig.bbox_norm == pytest.approx([0.216, 0.381, 0.773, 0.644], abs=1e-6)
    assert_boxes_sane(page)
    # the chart description becomes the image alt, the chart data table is kept after it
    assert "![Stacked bar chart showing Plot number proportions (%)" in page.markdown
    assert "<th>Land Use Type</th>" in page.markdown and "<td>riverside</td>" in page.markdown
    assert page.blocks[3].text == "Figure 1: This is an example image."
    assert page.blocks[5].text == "1" and not page.markdown.endswith("1")  # page number left out
    assert page.markdown.startswith("## Figures Example")


async def test_chandra2_lists_with_printed_bullets(chandra2: ChandraDialect) -> None:
    """docling-project/docling ``tests/data/html_chandra/sources/chandra_list_group.html`` (mirror
    yzkee/docling @ 011469074fe53bdde54315ee1120c40710c3c00a); ``.source.txt`` (yzkee/docling @
    2c875ca0be3520f73e84acee1c5d7175206eb9a8): "Source: tests/data/pdf/multi_page.pdf, page 1.
    Model: datalab-to/chandra-ocr-2." -- the model copies the printed "•" into each <li>."""
    page = await run_page(chandra2, fixture("chandra/chandra2_docling_word_processor.html"))
    assert page.status == "ok" and page.warnings == []
    assert len(page.blocks) == 12
    lists = [b for b in page.blocks if b.type == "list_item"]
    assert [b.label for b in lists] == ["List-Group", "List-Group"]
    assert lists[0].text.startswith("- **IBM MT/ST (Magnetic Tape/Selectric Typewriter):**")
    assert "\n- **Wang Laboratories:**" in lists[0].text
    assert "•" not in page.markdown  # "- • text" would be a bullet inside a bullet
    # the lists are indented on the page: their left edge is right of the paragraphs'
    texts = [b for b in page.blocks if b.type == "text"]
    assert all(lst.bbox_norm[0] > t.bbox_norm[0] for lst in lists for t in texts)  # type: ignore[index]
    assert_boxes_sane(page)
    assert page.markdown.startswith("## The Evolution of the Word Processor\n\n")
    assert "### The Birth of Word Processing (1960s - 1970s)" in page.markdown
    assert page.markdown.count("\n---\n") == 2  # the two <hr/> inside Text blocks


async def test_chandra2_form_blocks_holding_tables(chandra2: ChandraDialect) -> None:
    """docling-project/docling ``tests/data/html_chandra/sources/chandra_form_table.html`` (mirror
    yzkee/docling @ d6a6de490fa2139568a8ba4c75c8a4a7c195fbd3), used by docling's
    ``test_chandra_form_table_parsing``: "Test a saved Chandra prediction containing tables
    labeled as Form." -- four Form blocks, each one an HTML table."""
    page = await run_page(chandra2, fixture("chandra/chandra2_docling_form_table.html"))
    assert page.status == "ok" and page.warnings == []
    assert [b.type for b in page.blocks] == ["form", "text", "form", "form", "form"]
    forms = [b for b in page.blocks if b.type == "form"]
    assert all(f.text.startswith('<table border="1">') for f in forms)
    assert page.markdown.count("<table") == 4 and '<td colspan="3">Name of Applicant(s)</td>' in page.markdown
    assert page.blocks[1].text == "We, being the applicant(s) of _____ items related to the above request. Hereby appoint"
    assert_boxes_sane(page)
    assert page.blocks[0].bbox_norm == pytest.approx([0.031, 0.026, 0.961, 0.166], abs=1e-6)


async def test_chandra2_reply_read_as_chandra1_grid_moves_boxes() -> None:
    """Same reply as ``test_chandra2_otsl_paper_page`` (docling ``chandra_simple.html``, Chandra 2):
    the grid is what turns its numbers into page positions, so reading it as Chandra 1 (0-1024)
    must give other boxes -- a wrong ``version`` cannot go unnoticed."""
    v1 = ChandraDialect(model="datalab-to/chandra")
    page = await run_page(v1, fixture("chandra/chandra2_docling_otsl_pg9.html"))
    assert page.blocks[5].bbox_norm == pytest.approx([225 / 1024, 422 / 1024, 770 / 1024, 590 / 1024], abs=1e-6)


# ------------------------------------------------------------------------------------------------
# dots.ocr (rednote-hilab/dots.ocr): JSON cells, boxes in pixels of the model's smart-resized image
# ------------------------------------------------------------------------------------------------

#: docling's VLM pipeline renders pages at ``scale=2.0`` (144 dpi) by default; the sources do not
#: say which scale these replies were made at, but only at this one do the boxes match the PDFs'
#: own text positions (below).  A US letter page is then 1224 x 1584 px, which dots.ocr
#: smart-resizes to 1232 x 1596; an A4 page 1190 x 1684 -> 1176 x 1680.
DOCLING_SCALE2 = RenderSpec(dpi=144.0)
A4 = (595.2, 841.92)  # multi_page.pdf, per docling's tests/data/groundtruth/docling_v2/multi_page.json


def text_layer_box(left: float, t: float, r: float, b: float, w: float, h: float) -> list[float]:
    """A docling ground-truth box (PDF points, bottom-left origin) -> top-left fractions."""
    return [left / w, (h - t) / h, r / w, (h - b) / h]


async def test_dots_doclaynet_first_page() -> None:
    """docling-project/docling ``tests/data/json_dots/sources/dots_simple.json`` (mirror
    yzkee/docling @ 011469074fe53bdde54315ee1120c40710c3c00a); ``.source.txt``: "Source:
    tests/data/pdf/2206.01062.pdf, page 1. Model: rednote-hilab/dots.ocr. Runtime: transformers
    4.51.3." -- the DocLayNet paper's first page: title, two columns, a figure, a footnote.  The
    reply stops after the last cell's ``}`` without the list's closing ``]``."""
    text = fixture("dots/dots_docling_doclaynet_p1.json")
    assert text.rstrip().endswith("}")  # as stored: no closing bracket
    dots = DotsDialect(model="rednote-hilab/dots.ocr")
    page = await run_page(dots, text, spec=DOCLING_SCALE2)
    assert page.status == "ok" and page.warnings == []  # every cell is complete: nothing lost
    assert len(page.blocks) == 17
    assert [b.type for b in page.blocks].count("section_header") == 4
    title = page.blocks[1]
    assert title.type == "title" and title.text == "DocLayNet: A Large Human-Annotated Dataset for Document-Layout Analysis"
    pic = next(b for b in page.blocks if b.label == "Picture")
    assert pic.type == "figure" and pic.text == ""
    assert page.blocks[-1].type == "footnote" and page.blocks[-1].label == "Footnote"
    assert "## ABSTRACT" in page.markdown and "# DocLayNet: A Large" in page.markdown
    assert "![]()" in page.markdown and "80863 manually annotated pages" in page.markdown
    # boxes: pixels of the 1232 x 1596 image dots.ocr saw; all inside it, none clamped
    assert smart_resize(1584, 1224) == (1596, 1232)
    assert title.bbox_norm == pytest.approx(norm((211, 161, 1021, 243), 1232, 1596), abs=1e-6)
    assert_boxes_sane(page)
    # ... and where the PDF's text layer puts the same things (docling ground truth
    # tests/data/groundtruth/docling_v2/2206.01062.json @ 059bf48c: page 612 x 792 pt)
    abstract = page.blocks[7]
    assert abstract.text.startswith("Accurate document layout analysis")
    truth = {
        1: (107.3, 707.77, 505.06, 672.59),  # texts/1 "DocLayNet: A Large Human-Annotated ..."
        6: (53.8, 543.36, 111.94, 534.29),  # texts/7 "ABSTRACT"
        7: (53.47, 528.66, 295.56, 257.85),  # texts/8 the abstract
    }
    for i, box in truth.items():
        assert page.blocks[i].bbox_norm == pytest.approx(text_layer_box(*box, 612, 792), abs=0.01), i
    # two columns: the abstract column ends left of where the figure column starts
    assert abstract.bbox_norm[2] < pic.bbox_norm[0]  # type: ignore[index]


async def test_dots_word_processor_page() -> None:
    """docling-project/docling ``tests/data/json_dots/sources/dots_list.json`` (mirror
    yzkee/docling @ 011469074fe53bdde54315ee1120c40710c3c00a); ``.source.txt`` (yzkee/docling @
    2c875ca0be3520f73e84acee1c5d7175206eb9a8): "Source: tests/data/pdf/multi_page.pdf, page 1.
    Model: rednote-hilab/dots.ocr. Runtime: transformers 4.51.3." -- two list cells, each holding
    two markdown bullets."""
    dots = DotsDialect(model="rednote-hilab/dots.ocr")
    page = await run_page(dots, fixture("dots/dots_docling_word_processor.json"), spec=DOCLING_SCALE2)
    assert page.status == "ok" and page.warnings == []
    assert len(page.blocks) == 12
    assert [b.type for b in page.blocks].count("list_item") == 2
    items = [b.text for b in page.blocks if b.type == "list_item"]
    assert items[0].startswith("* **IBM MT/ST") and "\n* **Wang Laboratories:**" in items[0]
    assert items[1].startswith("* **WordStar (1978):**") and "Microsoft Word (1983)" in items[1]
    assert "through\nseveral technological milestones." in page.markdown  # the model's line break kept
    assert_boxes_sane(page)
    tops = [b.bbox_norm[1] for b in page.blocks if b.bbox_norm]
    assert tops == sorted(tops)


async def test_chandra2_and_dots_agree_with_the_pdf_on_the_same_page(chandra2: ChandraDialect) -> None:
    """Both docling fixtures of ``tests/data/pdf/multi_page.pdf`` page 1 -- Chandra 2
    (``chandra_list_group.html``, 0-1000 grid) and dots.ocr (``dots_list.json``, pixels of its
    resized image): two models, two coordinate systems, one A4 page.  After geometry the four
    headings carry the same text and sit where the PDF's text layer puts them, within 1.5% of the
    page (docling ground truth ``tests/data/groundtruth/docling_v2/multi_page.json`` @
    55908d6bb44abc18dce26e60591230b4826d86f7: 595.2 x 841.92 pt)."""
    c = await run_page(chandra2, fixture("chandra/chandra2_docling_word_processor.html"))
    dots = DotsDialect(model="rednote-hilab/dots.ocr")
    a4 = make_page(DOCLING_SCALE2, *A4)
    assert a4.encoded is not None and smart_resize(a4.encoded.height, a4.encoded.width) == (1680, 1176)
    d = await run_page(dots, fixture("dots/dots_docling_word_processor.json"), spec=DOCLING_SCALE2, size=A4)
    assert c.status == d.status == "ok"
    ch = [b for b in c.blocks if b.type == "section_header"]
    dh = [b for b in d.blocks if b.type == "section_header"]
    truth = {  # texts/0, /2, /5, /10 of the ground truth
        "The Evolution of the Word Processor": (72.0, 766.58, 262.99, 756.71),
        "Pre-Digital Era (19th - Early 20th Century)": (72.0, 696.74, 325.81, 685.68),
        "The Birth of Word Processing (1960s - 1970s)": (72.0, 501.14, 336.72, 490.08),
        "The Rise of Personal Computers (1980s)": (72.0, 236.18, 306.71, 225.12),
    }
    assert [b.text for b in ch] == [b.text for b in dh] == list(truth)
    for blocks in (ch, dh):
        for b in blocks:
            assert b.bbox_norm == pytest.approx(text_layer_box(*truth[b.text], *A4), abs=0.015), b


def test_dots_real_reply_cut_at_max_tokens_keeps_every_cell() -> None:
    """``dots_docling_word_processor.json`` (docling ``dots_list.json``, rednote-hilab/dots.ocr) as
    if the server had said ``finish_reason=length``: the page is a truncation, not a success, and
    the partial content keeps all 12 cells."""
    from ocrclient.errors import BadOutputError

    dots = DotsDialect(model="rednote-hilab/dots.ocr")
    with pytest.raises(BadOutputError) as info:
        dots.parse(reply(fixture("dots/dots_docling_word_processor.json"), finish="length"), request_for(make_page(dots.render)))
    assert info.value.cause == "length"
    assert info.value.partial is not None and len(info.value.partial.blocks) == 12
    assert any("without the closing ]" in w for w in info.value.partial.warnings)


# ------------------------------------------------------------------------------------------------
# LightOnOCR: plain markdown; the -bbox variants add ``![image](image_N.png)x1,y1,x2,y2`` (0-1000)
# ------------------------------------------------------------------------------------------------


async def test_lighton1_receipt_cut_at_50_tokens() -> None:
    """huggingface/transformers ``tests/models/lighton_ocr/test_modeling_lighton_ocr.py`` @
    033aa1477c0f742ccf72f5c927db5a4acb15607f, ``test_lightonocr_ocr_integration``: the output
    ``lightonai/LightOnOCR-1B-1025`` gives for the SROIE receipt with ``max_new_tokens=50``,
    greedy: ``expected_output = "Document No : TD01167104\\n\\nDate : ...\\n\\n| CODE"``.  It stops
    at the token limit, mid-table."""
    lo = LightOnDialect(model="lightonai/LightOnOCR-1B-1025")
    text = fixture("lighton/lighton1_transformers_sroie_50tok.md")
    assert text.endswith("| CODE")
    page = await run_page(lo, text, finish="length")
    assert page.status == "degraded"
    assert page.error is not None and page.error.cause == "length"
    assert page.markdown.startswith("Document No : TD01167104\n\nDate : 25/12/2018 8:13:39 PM")
    assert any("max_tokens" in w for w in page.warnings)
    # had it finished, it would be six box-less text blocks and an ok page
    done = await run_page(lo, text, finish="stop")
    assert done.status == "ok"
    assert [b.text for b in done.blocks] == [
        "Document No : TD01167104", "Date : 25/12/2018 8:13:39 PM", "Cashier : MANIS", "Member :", "CASH BILL", "| CODE",
    ]  # fmt: skip
    assert all(b.bbox is None and b.type == "text" for b in done.blocks)


async def test_lighton2_bbox_soup_newspaper_page() -> None:
    """Abhinav5132/softwerk-ocr-hackathon ``src/main.rs`` @ 0d485267541353c913e9915e7ca1238270c4a044,
    the ``context`` string: a Swedish newspaper page (IDAG, 24 April 1993) with one
    ``![image](image_1.png)100,210,620,750`` figure.  The project runs
    ``lightonai/LightOnOCR-2-1B-bbox-soup`` (its ``Dockerfile``), but the file does not say the
    string is that model's reply: the attribution is inferred (see ``lighton/SOURCE.md``)."""
    lo = LightOnDialect(model="lightonai/LightOnOCR-2-1B-bbox-soup")
    page = await run_page(lo, fixture("lighton/lighton2_bbox_soup_softwerk_newspaper.md"))
    assert page.status == "ok" and page.warnings == []
    figs = [b for b in page.blocks if b.type == "figure"]
    assert len(figs) == 1 and figs[0].label == "image_1.png"
    assert figs[0].bbox_norm == pytest.approx([0.100, 0.210, 0.620, 0.750], abs=1e-6)
    assert "![image](image_1.png)\n" in page.markdown and "100,210,620,750" not in page.markdown
    assert [b.type for b in page.blocks][:3] == ["text", "title", "figure"]
    assert page.blocks[1].text == "Mystikern bakom den hemliga sekten"
    # the four article separators stay in the markdown but are not blocks
    assert page.markdown.count("\n---\n") == 4
    assert all(b.text != "---" for b in page.blocks)
    assert len(page.blocks) == 25


async def test_lighton2_bbox_recorded_page_with_figure_list_and_headings() -> None:
    """manuquadros/pdfparser ``tests/data/dumps/30592559_raw_markdown.md`` @
    21be5750fcb922d46e754a3600ad8b5b3bff9346, the text of ``===== PAGE 1 =====`` (what the
    project's own ``_load_dump`` yields for that page).  Its ``tests/test_dump_replay.py``: "The
    dumps under ``tests/data/dumps/`` are captured LightOnOCR page markdown for the six
    fixtures"; its ``docs/design.rst``: each page goes to "**LightOnOCR-2-1B-bbox**", and the
    tests "replay *recorded* model markdown"; ``deploy/vllm/README.md`` serves
    ``lightonai/LightOnOCR-2-1B-bbox``.  Page 2 of Clark 2019 (BAMBED 47:124): a figure box at the
    top, its bold label and italic caption, a numbered list, two heading levels, running footer."""
    text = fixture("lighton/lighton2_bbox_pdfparser_30592559_p1.md")
    assert text.startswith("![image](image_1.png)100,89,495,487\n") and text.endswith("\n\nClark\n\n125")
    lo = LightOnDialect(model="lightonai/LightOnOCR-2-1B-bbox")
    page = await run_page(lo, text)
    assert page.status == "ok" and page.warnings == [] and page.error is None
    assert [b.type for b in page.blocks] == [
        "figure", "text", "text", "text", "list_item", "section_header", "text",
        "section_header", "text", "section_header", "text", "text", "text",
    ]  # fmt: skip
    fig = page.blocks[0]
    assert fig.label == "image_1.png" and fig.flags == []
    # 0-1000 of the page image -> fractions of the page; on US letter 0.1 * 612 pt = 61.2 pt
    assert fig.bbox_norm == pytest.approx([0.100, 0.089, 0.495, 0.487], abs=1e-6)
    assert fig.bbox == pytest.approx([61.2, 0.089 * 792, 0.495 * 612, 0.487 * 792], abs=1e-6)
    assert all(b.bbox_norm is None for b in page.blocks[1:])  # only images carry boxes
    # the coordinates leave the markdown; the placeholder stays where the figure was
    assert page.markdown.startswith("![image](image_1.png)\n\n**FIG 1**\n\n*Pathway of short-chain")
    assert "100,89,495,487" not in page.markdown
    # the five numbered goals are one list block, the model's "1.  " spacing kept
    items = page.blocks[4].text.split("\n")
    assert len(items) == 5 and items[0] == "1.  Students improve their appreciation for the utility of enzyme kinetic data."
    assert all(item.startswith(f"{i}.  ") for i, item in enumerate(items, 1))
    assert [b.text for b in page.blocks if b.type == "section_header"] == [
        "Case Study Description",
        "Part 1—Pathway of Short-Chain Alkene and Epoxide Metabolism in *Xanthobacter autotrophicus* Py2",
        "Part 2—Proposed Active Site Models (Pre-X-Ray Crystallography)",
    ]
    assert "\n## Case Study Description\n" in page.markdown and "\n### Part 2—Proposed" in page.markdown
    assert "CO₂⁻" in page.markdown and "NAD⁺ cofactor." in page.markdown  # unicode super/subscripts kept
    # the running footer (author, page number) comes back as plain text: nothing marks it
    assert [b.text for b in page.blocks[-2:]] == ["Clark", "125"]
