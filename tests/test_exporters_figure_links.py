"""Each figure reference in the markdown links the crop of its own box, for every dialect whose
replies carry picture references and figure boxes (Chandra, DeepSeek, dots.ocr, LightOnOCR
``-bbox``), in every arrangement: pictures sharing a paragraph (a DeepSeek tag with several
boxes), in paragraphs of their own, before and after text, more references than boxes (a
picture without a box, one inline in a line of text), more boxes than references.

The page is drawn with a solid colour in each figure's box, so a crop says whose it is.  The
reply goes through the dialect's ``parse``, the mapping onto the page
(:func:`~ocrclient.geometry.content_to_blocks`), the crops
(:func:`~ocrclient.exporters.figures.cut_figures`) and the markdown writer
(:func:`~ocrclient.exporters.markdown.page_markdown`), as a run does.  olmOCR, RolmOCR and the
plain dialect write references without boxes (nothing is cropped for them); TrOCR and RapidOCR
write none.

A LightOnOCR paragraph holding two pictures before a single-picture paragraph linked each of
its references to another picture's crop (its figures were appended at the page's end); a
DeepSeek ``image`` tag with two boxes gave a second figure with no reference of its own, which
took the next picture's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from ocrclient.dialects.base import Attempt
from ocrclient.document import Document, Page
from ocrclient.exporters.figures import cut_figures
from ocrclient.exporters.markdown import page_markdown, render, write
from ocrclient.geometry import PageBox, content_to_blocks
from ocrclient.imaging import encode
from ocrclient.pages import PageImage
from ocrclient.registry import dialect_class

from .test_dialect_common import reply

W_PT, H_PT = 612.0, 792.0
Box = tuple[float, float, float, float]
#: each figure's box in [0, 1] of the page, and the colour it is drawn in
FIGURES: list[tuple[Box, tuple[int, int, int]]] = [
    ((0.10, 0.08, 0.40, 0.22), (220, 20, 20)),
    ((0.55, 0.08, 0.90, 0.22), (20, 180, 20)),
    ((0.10, 0.62, 0.40, 0.80), (20, 20, 220)),
    ((0.55, 0.62, 0.90, 0.80), (200, 20, 200)),
]
TEXT_BOX: Box = (0.10, 0.40, 0.90, 0.45)

#: a paragraph's items: ("fig", i) a picture drawn in FIGURES[i] (None: the reply gives it no
#: box), ("text", words), ("inline", words): a picture written inside a line of text, no box
Item = tuple[str, int | str | None]
LAYOUTS: dict[str, list[list[Item]]] = {
    "two in a paragraph, then one alone": [[("fig", 0), ("fig", 1)], [("text", "Some caption text.")], [("fig", 2)]],
    "separate paragraphs between text": [[("text", "Intro.")], [("fig", 0)], [("text", "Middle.")], [("fig", 1)], [("text", "End.")]],
    "figure first and last": [[("fig", 2)], [("text", "Body text.")], [("fig", 0)]],
    "more references than boxes": [[("fig", None)], [("text", "Body.")], [("fig", 1)], [("fig", None)], [("fig", 3)]],
    "text and pictures in one paragraph": [[("text", "Panels below."), ("fig", 3), ("fig", 0)], [("fig", 1)]],
    "a picture inside a line of text": [[("inline", "The ACME logo")], [("fig", 0)], [("text", "More.")], [("fig", 2)]],
    "three in a paragraph": [[("fig", 1), ("fig", 0), ("fig", 3)], [("text", "After.")], [("fig", 2)]],
}


def _grid(box: Box, gx: float, gy: float) -> list[int]:
    return [round(box[0] * gx), round(box[1] * gy), round(box[2] * gx), round(box[3] * gy)]


def _lighton(layout: list[list[Item]], gx: float, gy: float) -> str:
    paras, n = [], 0
    for para in layout:
        lines = []
        for kind, what in para:
            n += kind != "text"
            if kind == "fig":
                box = "" if what is None else ",".join(map(str, _grid(FIGURES[what][0], gx, gy)))  # type: ignore[index]
                lines.append(f"![image](image_{n}.png){box}")
            else:
                lines.append(f"{what} ![image](image_{n}.png) here." if kind == "inline" else str(what))
        paras.append("\n".join(lines))
    return "\n\n".join(paras)


def _deepseek(layout: list[list[Item]], gx: float, gy: float) -> str:
    out = []
    for para in layout:
        boxes = [_grid(FIGURES[w][0], gx, gy) for k, w in para if k == "fig" and w is not None]  # type: ignore[index]
        for kind, what in para:
            if kind == "fig" and what is None:
                out.append("<|ref|>image<|/ref|><|det|>unreadable<|/det|>\n")
            elif kind != "fig":
                words = f"{what} ![logo](images/logo.png) here." if kind == "inline" else what
                out.append(f"<|ref|>text<|/ref|><|det|>[{_grid(TEXT_BOX, gx, gy)}]<|/det|>\n{words}\n")
        if boxes:  # the paragraph's pictures: one tag with all their boxes
            out.append(f"<|ref|>image<|/ref|><|det|>{boxes}<|/det|>\n")
    return "".join(out)


def _chandra(layout: list[list[Item]], gx: float, gy: float) -> str:
    out = []
    for kind, what in (item for para in layout for item in para):
        if kind == "fig":
            bbox = "" if what is None else ' data-bbox="{} {} {} {}"'.format(*_grid(FIGURES[what][0], gx, gy))  # type: ignore[index]
            out.append(f'<div{bbox} data-label="Image"><img alt="picture"/></div>')
        else:
            words = f'{what} <img alt="logo"/> here.' if kind == "inline" else what
            out.append('<div data-bbox="{} {} {} {}" data-label="Text"><p>{}</p></div>'.format(*_grid(TEXT_BOX, gx, gy), words))
    return "".join(out)


def _dots(layout: list[list[Item]], gx: float, gy: float) -> str:
    import json

    cells: list[dict[str, object]] = []
    for kind, what in (item for para in layout for item in para):
        if kind == "fig":
            cells.append({"category": "Picture"} if what is None else {"bbox": _grid(FIGURES[what][0], gx, gy), "category": "Picture"})  # type: ignore[index]
        else:
            words = f"{what} ![logo](logo.png) here." if kind == "inline" else what
            cells.append({"bbox": _grid(TEXT_BOX, gx, gy), "category": "Text", "text": words})
    return json.dumps(cells)


DIALECTS: dict[str, tuple[str, Callable[[list[list[Item]], float, float], str]]] = {
    "chandra": ("datalab-to/chandra-ocr-2", _chandra),
    "deepseek": ("deepseek-ai/DeepSeek-OCR", _deepseek),
    "dots": ("rednote-hilab/dots.ocr", _dots),
    "lighton": ("lightonai/LightOnOCR-2-1B-bbox", _lighton),
}


def _colour(rgb: tuple[int, ...]) -> int | None:
    return next((i for i, (_, c) in enumerate(FIGURES) if all(abs(a - b) < 40 for a, b in zip(rgb, c, strict=False))), None)


def _page(dialect: str, layout: str) -> tuple[Page, Image.Image]:
    """The page a reply of ``dialect`` writing ``layout`` becomes, as a run makes it, and its image."""
    model, written_as = DIALECTS[dialect]
    d = dialect_class(dialect)(model=model)
    w, h = d.render.pixel_size(W_PT, H_PT)
    img = Image.new("RGB", (w, h), "white")
    for (x0, y0, x1, y1), rgb in FIGURES:
        img.paste(rgb, (round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))
    page = PageImage(source="t", index=0, page_box=PageBox(W_PT, H_PT), encoded=encode(img, d.render))
    request = d.build(page, Attempt(1))
    assert request.frame is not None
    space = d.space_for(request.frame.width_px, request.frame.height_px) if dialect == "dots" else d.space
    content = d.parse(reply(written_as(LAYOUTS[layout], *space.extent(request.frame))), request)
    out = Page(page=1, status="ok", width=W_PT, height=H_PT, markdown=content.markdown,
               blocks=content_to_blocks(content, request, page))  # fmt: skip
    return out, img


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_each_reference_links_the_crop_of_its_own_box(dialect: str, layout: str) -> None:
    out, img = _page(dialect, layout)
    crops = {c.index: c for c in cut_figures(out, img)}
    links = {(1, k): f"t_figures/page1_fig{k}.png" for k in crops}
    md = page_markdown(out, links)
    linked = [int(k) for k in re.findall(r"\]\(t_figures/page1_fig(\d+)\.png\)", md)]
    got = [_colour(crops[k].image.getpixel((crops[k].image.width // 2, crops[k].image.height // 2))) for k in linked]
    want = [w for para in LAYOUTS[layout] for k, w in para if k == "fig" and w is not None]
    assert got == want, (md, [(b.type, b.text, b.bbox_norm) for b in out.blocks])
    # a picture without a box keeps the model's reference, where it was written (one that links
    # nothing, ``![alt]()``, as its alt text: no broken image)
    unboxed = sum(1 for para in LAYOUTS[layout] for k, w in para if (k != "text" and w is None) or k == "inline")
    assert len(re.findall(r"!\[[^\]\n]*\]\((?!t_figures/)[^)\n]*\)|<img\b|\*\[image[^\]\n]*\]\*", md)) == unboxed, md
    assert "]()" not in md, md
    # and no block but a figure holds a picture that is a figure block of its own
    for b in out.blocks:
        if b.type != "figure" and "![" in b.text:
            assert "logo" in b.text, (b.type, b.text)


def test_a_figure_named_by_its_reference_takes_that_reference_in_any_block_order() -> None:
    """A figure whose label is its reference's source (LightOnOCR's ``image_2.png``) links from
    that reference even when the blocks are not in the markdown's order (a JSON written before
    the blocks were put in reading order, a plugin's dialect): the K-th reference took the K-th
    figure, another picture's crop.  Figures without such a name take the references left, in
    order."""
    from ocrclient.document import Block

    md = "![image](image_1.png)\n![image](image_2.png)\n\nCaption.\n\n![](x.png)\n\n![image](image_3.png)"
    blocks = [Block(type="figure", label="image_3.png", bbox_norm=[0.1, 0.7, 0.3, 0.9]),
              Block(type="figure", label="image_1.png", bbox_norm=[0.1, 0.1, 0.3, 0.2]),
              Block(type="text", text="Caption."),
              Block(type="figure", label="Picture", bbox_norm=[0.5, 0.5, 0.6, 0.6]),
              Block(type="figure", label="image_2.png", bbox_norm=[0.5, 0.1, 0.7, 0.2])]  # fmt: skip
    page = Page(page=1, status="ok", width=100, height=100, markdown=md, blocks=blocks)
    out = page_markdown(page, {(1, k): f"f/{k}.png" for k in range(1, 5)})
    assert re.findall(r"\]\(f/(\d)\.png\)", out) == ["2", "4", "3", "1"], out


@pytest.mark.parametrize(("dialect", "layout"), [*((d, lay) for d in sorted(DIALECTS) for lay in sorted(LAYOUTS)),
                                                ("plain", "")])  # fmt: skip
def test_a_picture_without_a_crop_is_never_an_empty_link(dialect: str, layout: str, tmp_path: Path) -> None:
    """The whole kind: every markdown written with no crop for a picture -- ``ocr convert``
    without ``-o`` (:func:`~ocrclient.exporters.markdown.render`, as the Python API's), the
    Python API's :attr:`Document.markdown`, a run's ``.md`` with no crop cut (its page image
    lost), a Document written again without its input -- for each dialect's pictures (the plain
    dialect's prompt asks for ``![description]()``, without blocks).  Chandra's and dots.ocr's
    ``![alt]()`` was printed as it was, a broken image; its alt text stands in its place."""
    if dialect == "plain":
        page = Page(page=1, status="ok", width=W_PT, height=H_PT, markdown="Intro.\n\n![a chart]()\n\n![ ]() End.")
    else:
        page, _ = _page(dialect, layout)
    doc = Document(source=str(tmp_path / "gone.pdf"), backend="t", pages=[page])
    written = {
        "stdout / render": render(doc),
        "Document.markdown": doc.markdown,
        "a run's .md, no crop": write(doc, tmp_path / "run.md", links={}).read_text(),
        "a Document written again, no input": write(doc, tmp_path / "again.md").read_text(),
    }
    pictures = [e for para in LAYOUTS[layout] for e in para if e[0] != "text"] if dialect != "plain" else [1, 2]
    for where, md in written.items():
        assert not re.search(r"\]\(\s*\)", md), (where, md)
        shown = len(re.findall(r"!\[[^\]\n]*\]\([^)\n]+\)|<img\b|\*\[image[^\]\n]*\]\*", md))
        assert shown == len(pictures), (where, md)  # (each in its place)
