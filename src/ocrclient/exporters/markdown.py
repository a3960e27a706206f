"""Markdown writer: the markdown the model read, page after page, and nothing else.

A page's status is not written here but in the JSON: a failed page (its error is in the JSON,
on stderr and in the exit code) and a page with no text (a blank ``degraded`` page, say)
contribute nothing, and a document without any text is an empty (0-byte) file, so whoever
indexes the ``.md`` finds only text that is on the page.  Opt in to markers with
``render(doc, page_markers=True)`` (``ocr convert --page-markers``): each page then starts with
``<!-- page N -->``, or ``<!-- page N degraded: <warnings> -->`` / ``<!-- page N failed:
<error> -->``.  ``page_separators=True`` puts only ``<!-- page N -->`` before each page so a
reader (or a diff) can find page boundaries.

Every figure block that has a box is cut out of its page image and saved next to the markdown as
``<stem>_figures/page<N>_fig<K>.png`` (``K`` counts the figure blocks of page ``N`` in block
order, from 1).  In a run the crops are cut from the run's own render of each page as the page
finishes (:mod:`ocrclient.exporters.sink`), so they exist for documents given as bytes too;
:func:`write` of a Document without its run renders the pages again from the input (PDFs at
:data:`~ocrclient.exporters.figures.FIGURE_DPI`, images at their own pixels).  The markdown
then links the crop:

* if the page markdown already has image references (``![alt](image_1.png)``, ``![alt]()``,
  ``<img ...>``), a figure block whose label names one reference's source (LightOnOCR's
  ``image_2.png``) takes that reference, and the K-th of the other references on the page is the
  K-th of the other figure blocks (models write them in the same order, and each dialect makes
  one figure block per reference it writes, in that order); the reference is rewritten to
  ``![caption or alt](<stem>_figures/pageN_figK.png)``;
* a figure with no reference of its own is inserted as its own paragraph right after the
  paragraph holding the text of the block before it in block order (before the next block's
  paragraph when there is no such block, at the end of the page when neither is found).

The alt text is the caption block next to the figure, else the figure's own text, else the
reference's alt, else ``Figure K``.  When a page has no image (it could not be rendered, or a
Document written without its run has no input to be found) nothing is cropped for it, the markdown of those pages is left as the model
wrote it, and a warning is logged; writing never fails for it.

A reference that links nothing (``![alt]()``: the placeholder the Chandra and dots.ocr dialects
write for a picture, and the plain prompt asks for) is shown as a broken image, so whatever has
no crop to link -- the markdown sent to stdout, :func:`render` without ``links``,
:attr:`Document.markdown <ocrclient.document.Document.markdown>`, a picture without a box, a
page that could not be rendered -- writes it as its alt text in italics: ``*[image: alt]*``, or
``*[image]*`` without alt (:func:`unlinked`).  A reference written in code is the text's, and is
left as it is.

Example::

    >>> from ocrclient.document import Document, Page
    >>> doc = Document(source="a.pdf", backend="x", pages=[Page(page=1, status="ok", markdown="Hi")])
    >>> render(doc, page_separators=True)
    '<!-- page 1 -->\\n\\nHi\\n'
    >>> render(Document(source="b.pdf", backend="x", pages=[Page(page=1, status="degraded")]))
    ''
"""

from __future__ import annotations

import html
import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from ..document import Block, Document, Page
from ..errors import InputError
from ..pages.inputs import CROP_LINK, CROP_NAME, figure_dir
from ._io import atomic_write
from .figures import FIGURE_DPI, FigureCrop, crop_figures, figure_blocks
from .mdrefs import CODE as _CODE
from .mdrefs import unlinked
from .source import resolve_source

__all__ = [
    "MarkdownResult",
    "crop_link",
    "crop_name",
    "figure_dir",
    "linked_crops",
    "page_marker",
    "prune_figures",
    "render",
    "render_with_figures",
    "save_crop",
    "unlinked",
    "write",
]

log = logging.getLogger("ocrclient.exporters.markdown")

#: markdown image references and HTML <img> tags, as models write them
_IMAGE_REF = re.compile(r"!\[(?P<alt>[^\]\n]*)\]\((?P<src>[^)\n]*)\)|<img\b(?P<attrs>[^>]*)>", re.I)
_ALT_ATTR = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)

#: (page number, figure index on the page) -> relative link to the crop
Links = dict[tuple[int, int], str]


@dataclass
class MarkdownResult:
    """What :func:`render_with_figures` produced: the markdown text, the crops to save
    (relative path -> PNG bytes) and notes about what could not be cropped."""

    text: str
    crops: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def comment_text(text: str) -> str:
    """Text safe inside an HTML comment (no ``--``, one line).

    >>> comment_text("a-->b\\nc.png")
    'a- ->b c.png'
    """
    return " ".join(text.replace("--", "- -").split())


def _alt_escape(text: str) -> str:
    text = " ".join(text.split())
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _snippet(text: str) -> str:
    """A piece of a block's text likely to appear verbatim in the page markdown."""
    from .pdf_text import plain_text

    line = _first_line(plain_text(text))
    words = line.split()
    return " ".join(words[:6])


def _top_index(page: Page, fig: Block) -> int | None:
    """Position of ``fig`` among the page's top-level blocks (by identity), if it is one."""
    return next((i for i, b in enumerate(page.blocks) if b is fig), None)


def _ref_alt(m: re.Match[str]) -> str:
    """The alt text of an image reference matched by :data:`_IMAGE_REF` (``![alt](...)`` or
    ``<img alt=...>``)."""
    if m.group("attrs") is not None:
        am = _ALT_ATTR.search(m.group("attrs"))
        return html.unescape(next((g for g in am.groups() if g), "")) if am else ""
    return m.group("alt") or ""


def _as_alt(text: str) -> str:
    """``text``'s first line with each image reference in it replaced by its own alt text: a
    figure block's text is often the model's own reference (Chandra's ``<img alt="">`` is
    ``![]()``), which is no alt text (it was put in the alt, escaped)."""
    return _first_line(_IMAGE_REF.sub(_ref_alt, text))


def _alt_for(page: Page, fig: Block, k: int, ref_alt: str) -> str:
    top = page.blocks
    i = _top_index(page, fig)
    candidates = []
    if i is not None:
        candidates += [top[j].text for j in (i + 1, i - 1) if 0 <= j < len(top) and top[j].type == "caption"]
    for cand in (*candidates, fig.text, ref_alt):
        alt = _as_alt(cand or "")
        if alt:
            return _alt_escape(alt)
    return f"Figure {k}"


def _paragraph_end(md: str, pos: int) -> int:
    nxt = md.find("\n\n", pos)
    return len(md) if nxt < 0 else nxt


def _paragraph_start(md: str, pos: int) -> int:
    prev = md.rfind("\n\n", 0, pos)
    return 0 if prev < 0 else prev


def _insert_at(md: str, page: Page, fig: Block) -> tuple[int, bool]:
    """Insertion offset for an unreferenced figure and whether it goes *before* the offset's
    paragraph (True) or after the paragraph ending there (False)."""
    top = page.blocks
    i = _top_index(page, fig)
    if i is not None:
        for j in range(i - 1, -1, -1):
            snip = _snippet(top[j].text) if top[j].type != "figure" else ""
            if snip and (pos := md.find(snip)) >= 0:
                return _paragraph_end(md, pos + len(snip)), False
        for j in range(i + 1, len(top)):
            snip = _snippet(top[j].text) if top[j].type != "figure" else ""
            if snip and (pos := md.find(snip)) >= 0:
                return _paragraph_start(md, pos), True
    return len(md), False


def _holds_figure(block: Block) -> bool:
    return any(c.type == "figure" or _holds_figure(c) for c in block.children)


def _text_block_spans(page: Page, md: str) -> list[tuple[int, int]]:
    """Where, in the page's markdown ``md``, the text of each block that holds an image
    reference of its own (beside words of its own; no figure inside it) is written (found in block order; a block whose text the
    markdown does not hold word for word is not located, and its references count as figures')."""
    spans: list[tuple[int, int]] = []
    cursor = 0

    def walk(blocks: list[Block]) -> None:
        nonlocal cursor
        for b in blocks:
            if b.type == "figure":
                continue
            text = b.text.strip()
            # (a block that is nothing but an image reference -- a caption or a "text" block
            # standing for the picture -- writes the figure's reference, not one of its own)
            own = _IMAGE_REF.search(text) and _IMAGE_REF.sub("", text).strip()
            if own and not _holds_figure(b):
                at = md.find(text, cursor)
                if at >= 0:
                    spans.append((at, at + len(text)))
                    cursor = at + len(text)
                    continue
            walk(b.children)

    walk(page.blocks)
    return spans


def _src(m: re.Match[str]) -> str:
    """The source an image reference names (``![alt](src)``; ``""`` for an ``<img>`` tag)."""
    return (m.group("src") or "").strip()


def _own_refs(figs: list[Block], refs: list[re.Match[str]], free: list[re.Match[str]]) -> dict[int, re.Match[str]]:
    """Each figure's own reference (figure index from 1 -> reference) among ``free``, the
    references a figure may take (``refs``: every one outside code).  A figure whose label is
    the source of exactly one reference on the page (LightOnOCR's ``image_2.png``) is that
    reference's, wherever either is written (or has none, when that reference is inside a text
    block); the other figures take the references left, the K-th the K-th, as models write
    them in the same order."""
    names: dict[str, list[re.Match[str]]] = {}
    for m in refs:
        if _src(m):
            names.setdefault(_src(m), []).append(m)
    labels = [f.label or "" for f in figs]
    named = {k for k, label in enumerate(labels, start=1) if len(names.get(label, ())) == 1 and labels.count(label) == 1}
    own: dict[int, re.Match[str]] = {}
    for k in named:
        if (m := names[labels[k - 1]][0]) in free:
            own[k] = m
    left = iter([m for m in free if not any(m is o for o in own.values())])
    for k in range(1, len(figs) + 1):
        if k not in named:
            nxt: re.Match[str] | None = next(left, None)
            if nxt is not None:
                own[k] = nxt
    return own


def page_markdown(page: Page, links: Links) -> str:
    """One page's markdown with its figure references pointing at the crops in ``links`` (and
    those that link nothing written as text: :func:`unlinked`)."""
    md = page.markdown.strip()
    figs = figure_blocks(page)
    if not figs or not any((page.page, k) in links for k in range(1, len(figs) + 1)):
        return unlinked(md)
    code = [m.span() for m in _CODE.finditer(md)]
    # the page's own image references, not the text's: one written in code (a README read
    # aloud: `![logo](logo.png)`) is the text's, and was linked to a crop in place of the figure's
    refs = [m for m in _IMAGE_REF.finditer(md) if not any(a <= m.start() < b for a, b in code)]
    # nor those written inside a text block (a logo inline in a heading): a figure's crop went to
    # the first such reference on the page, and the figure's own was left empty
    inline = _text_block_spans(page, md)
    own = _own_refs(figs, refs, [m for m in refs if not any(a <= m.start() < b for a, b in inline)])
    edits: list[tuple[int, int, str]] = []
    for k, fig in enumerate(figs, start=1):
        link = links.get((page.page, k))
        if link is None:
            continue
        if (m := own.get(k)) is not None:
            edits.append((m.start(), m.end(), f"![{_alt_for(page, fig, k, _ref_alt(m))}]({link})"))
        else:
            pos, before = _insert_at(md, page, fig)
            ref = f"![{_alt_for(page, fig, k, '')}]({link})"
            if before and pos == 0:
                edits.append((0, 0, ref + "\n\n"))
            else:
                edits.append((pos, pos, ("\n\n" if pos else "") + ref))
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        md = md[:start] + new + md[end:]
    return unlinked(md.strip())  # (the references left: of pictures without a crop)


def page_marker(page: Page) -> str:
    """``<!-- page N -->``, with the status for a degraded or failed page."""
    if page.status == "failed":
        why = comment_text(page.error.message if page.error else "")
        return f"<!-- page {page.page} failed: {why} -->" if why else f"<!-- page {page.page} failed -->"
    if page.status == "degraded":
        why = comment_text("; ".join(page.warnings))
        return f"<!-- page {page.page} degraded: {why} -->" if why else f"<!-- page {page.page} degraded -->"
    return f"<!-- page {page.page} -->"


def render(
    doc: Document,
    *,
    page_separators: bool = False,
    page_markers: bool = False,
    links: Links | None = None,
    bodies: Callable[[Page], str] | None = None,
) -> str:
    """The markdown of ``doc`` (figure references rewritten to ``links`` when given): only the
    pages' text unless ``page_markers`` / ``page_separators`` ask for comments; ``""`` when
    there is nothing to write, else the text ends with one newline.  ``bodies`` gives a page's
    text (:func:`page_markdown`) when the caller made it already (a run's outputs, spilled as
    its pages finished)."""
    parts: list[str] = []
    for page in doc.pages:
        if page_markers:
            parts.append(page_marker(page))
        elif page_separators:
            parts.append(f"<!-- page {page.page} -->")
        if page.status != "failed":
            body = bodies(page) if bodies is not None else page_markdown(page, links or {})
            if body:
                parts.append(body)
    text = "\n\n".join(parts).strip()
    return text + "\n" if text else ""


def crop_name(page: int, index: int) -> str:
    """The file name of a figure crop: ``page<N>_fig<K>.png``."""
    return f"page{page}_fig{index}.png"


def crop_png(crop: FigureCrop) -> bytes:
    """A crop as the PNG bytes that are saved (compress level 1, as page images are encoded:
    about half the time of level 6 for files a few percent larger, and a run's last pages'
    crops are on the way to its end)."""
    buf = io.BytesIO()
    crop.image.save(buf, "PNG", optimize=False, compress_level=1)
    return buf.getvalue()


def save_crop(md_path: Path, crop: FigureCrop) -> str:
    """Write ``crop`` into the figure folder of ``md_path``; returns the link the markdown uses."""
    name = crop_name(crop.page, crop.index)
    atomic_write(figure_dir(md_path) / name, crop_png(crop))
    return crop_link(md_path, crop.page, crop.index)


def crop_link(md_path: Path, page: int, index: int) -> str:
    """The relative link from ``md_path`` to a crop of its figure folder."""
    return quote(f"{figure_dir(md_path).name}/{crop_name(page, index)}", safe="/")


def linked_crops(md_path: Path) -> set[str]:
    """The names of the crops in its figure folder that the markdown file ``md_path`` links to
    (none when it cannot be read)."""
    try:
        text = md_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    prefix = figure_dir(md_path).name + "/"
    links = (unquote(link) for link in CROP_LINK.findall(text))
    names = (link[len(prefix) :] for link in links if link.startswith(prefix))
    return {name for name in names if CROP_NAME.match(name)}


def prune_figures(md_path: Path, keep: set[str], every: bool = False) -> None:
    """Remove the crops the markdown at ``md_path`` linked (an earlier run's, read before it is
    written over) that this one no longer has, and the folder when it is left empty.  Nothing
    else there is touched (every file named like a crop went, before: a user's image, an input
    of the same run), unless ``every``: the caller knows every crop-named file there to be an
    earlier run's (``ocr convert`` refused the folder otherwise), a killed run's among them."""
    folder = figure_dir(md_path)
    if folder.is_dir():
        earlier = {p.name for p in folder.iterdir() if CROP_NAME.match(p.name)} if every else linked_crops(md_path)
        for name in earlier - keep:
            (folder / name).unlink(missing_ok=True)
        if not any(folder.iterdir()):
            folder.rmdir()


def source_missing_note(doc: Document) -> str:
    """What is logged when figures cannot be cropped for want of page images."""
    return f"{doc.source}: source file not found; figures are not cropped and their references are left as written"


def render_with_figures(
    doc: Document,
    md_path: Path,
    *,
    page_separators: bool = False,
    page_markers: bool = False,
    source: str | Path | None = None,
    dpi: float = FIGURE_DPI,
) -> MarkdownResult:
    """Markdown for ``md_path`` plus the figure crops it links, for a Document written without
    its run: the pages with figures are rendered again from ``source`` (else ``doc.source``,
    as written or beside ``md_path``).  A run crops its own renders instead
    (:mod:`ocrclient.exporters.sink`)."""
    has_figures = any(p.status != "failed" and figure_blocks(p) for p in doc.pages)
    if not has_figures:
        return MarkdownResult(render(doc, page_separators=page_separators, page_markers=page_markers))
    try:
        path = resolve_source(doc, source, md_path.parent)
    except InputError as exc:  # there, but encrypted: the note says what it takes
        path, why = None, f"{exc}; figures are not cropped and their references are left as written"
    else:
        why = source_missing_note(doc)
    if path is None:
        return MarkdownResult(render(doc, page_separators=page_separators, page_markers=page_markers), notes=[why])
    crops, notes = crop_figures(doc, path, dpi)
    links: Links = {}
    files: dict[str, bytes] = {}
    for crop in crops:
        files[crop_name(crop.page, crop.index)] = crop_png(crop)
        links[(crop.page, crop.index)] = crop_link(md_path, crop.page, crop.index)
    text = render(doc, page_separators=page_separators, page_markers=page_markers, links=links)
    return MarkdownResult(text, files, notes)


def write(
    doc: Document,
    path: Path,
    *,
    page_separators: bool = False,
    page_markers: bool = False,
    figures: bool = True,
    source: str | Path | None = None,
    links: Links | None = None,
    bodies: Callable[[Page], str] | None = None,
    own_figures: bool = False,
) -> Path:
    """Write ``path``.  With ``links`` (a run's crops, already saved by
    :mod:`ocrclient.exporters.sink`) the markdown links them; otherwise, with ``figures``, the
    crops are cut from a new render of the input (:func:`render_with_figures`) and saved in
    ``<stem>_figures/``.  Crops of an earlier run that this one does not have are removed.
    ``bodies``: as :func:`render` takes it (with ``links``, or without ``figures``).
    ``own_figures``: see :func:`prune_figures`."""
    if links is not None or not figures:
        if figures:
            prune_figures(path, {crop_name(p, k) for p, k in links or {}}, every=own_figures)
        text = render(doc, page_separators=page_separators, page_markers=page_markers, links=links, bodies=bodies)
        return atomic_write(path, text)
    result = render_with_figures(doc, path, page_separators=page_separators, page_markers=page_markers, source=source)
    for note in result.notes:
        log.warning("%s", note)
    folder = figure_dir(path)
    for name, data in result.crops.items():
        atomic_write(folder / name, data)
    prune_figures(path, set(result.crops), every=own_figures)
    return atomic_write(path, result.text)
