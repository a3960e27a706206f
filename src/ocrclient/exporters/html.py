"""HTML writer (``--format html``, ``ocr view``): a static, self-contained viewer of an OCR result.

One file, no server and nothing fetched from the network: each page is embedded as a JPEG data
URL at :data:`VIEWER_DPI` (:func:`page_jpeg`: in a run, made from the run's own render of the
page as it finishes and kept in the output folder until the file is written; for a Document
written without its run — ``ocr view`` on a JSON result — rendered again from the input, and a
blank page of the right aspect with a note when it cannot be found), the blocks are drawn over it as absolutely positioned
boxes placed with ``bbox_norm`` (percentages, so any zoom works), colored by block type with a
legend.  Hovering a box shows its text; clicking it shows the block (type, label, confidence,
box, flags, text) in the side panel.  A page list, prev/next buttons and the keyboard
(←/→, PageUp/PageDown, Home/End) move between pages; lines and words (nested blocks) are drawn
on demand ("lines & words" toggle).  Failed and degraded pages carry a red / amber banner with
their error or warnings.

Everything the model wrote is escaped (it is untrusted), the page has no inline event handlers,
and a Content-Security-Policy allows only the viewer's own nonce-tagged script and data: images.

URL options (query string): ``?page=N`` opens page N; ``fixed=1`` switches to a fixed layout
used by screenshot tests: the current page is drawn :data:`FIXED_SHEET_WIDTH` CSS pixels wide
with its top-left corner at (:data:`FIXED_SHEET_LEFT`, :data:`FIXED_SHEET_TOP`) of the window;
``lines=1`` shows lines and words; ``block=P`` selects the block at path ``P`` of that page
(``2`` is its third top-level block, ``2.0.1`` a word of it), as a click does.  Without
JavaScript every page is shown one after another.

Example::

    >>> from ocrclient.exporters.html import write_viewer          # doctest: +SKIP
    >>> write_viewer(Path("out/report.json"))    # writes out/report.html  # doctest: +SKIP
    PosixPath('out/report.html')
    >>> viewer_size(612, 792, pdf=True, pages=3)   # a US-letter page at 100 dpi
    (850, 1100)

``ocrclient.viewer`` (its old home) re-exports this module.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from PIL import Image
from pydantic import ValidationError

from ..document import BLOCK_TYPES, Block, Document, Page
from ..errors import InputError
from ..pages.render import flatten
from ._io import atomic_write
from .figures import norm_box
from .html_assets import CSS, JS

__all__ = [
    "FIXED_SHEET_LEFT",
    "FIXED_SHEET_TOP",
    "FIXED_SHEET_WIDTH",
    "TYPE_COLORS",
    "VIEWER_DPI",
    "load_document",
    "page_jpeg",
    "render_html",
    "viewer_size",
    "write",
    "write_viewer",
]

#: resolution of the embedded page images (PDF inputs; 72 dpi past 100 pages; images are
#: embedded at their own pixels, all capped at VIEWER_MAX_SIDE)
VIEWER_DPI = 100.0
VIEWER_MAX_SIDE = 1800
VIEWER_JPEG_QUALITY = 80

#: fixed layout (``?fixed=1``): where the current page sits in the window, in CSS pixels
FIXED_SHEET_LEFT = 220
FIXED_SHEET_TOP = 170
FIXED_SHEET_WIDTH = 640
#: top of the page heading (status + error banner) in the fixed layout
FIXED_HEAD_TOP = 92

#: block type -> border color (the legend shows the types a document uses)
TYPE_COLORS: dict[str, str] = {
    "title": "#e6194b",
    "section_header": "#f58231",
    "text": "#4363d8",
    "list_item": "#3cb44b",
    "table": "#911eb4",
    "figure": "#f032e6",
    "caption": "#008080",
    "equation": "#9a6324",
    "code": "#808000",
    "footnote": "#800000",
    "page_header": "#469990",
    "page_footer": "#000075",
    "form": "#a0c000",
    "handwriting": "#00a5c8",
    "line": "#8c8c8c",
    "word": "#d4a000",
    "other": "#505050",
}
assert set(BLOCK_TYPES) <= set(TYPE_COLORS)

_DEFAULT_SIZE = (612.0, 792.0)


def _e(text: object) -> str:
    """Escape for HTML text and double- or single-quoted attributes."""
    return html.escape(str(text), quote=True)


def _type_key(kind: str) -> str:
    return kind if kind in TYPE_COLORS else "other"


def _rgb(hex_color: str) -> tuple[int, int, int]:
    h = hex_color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _css() -> str:
    rules = []
    for kind, color in TYPE_COLORS.items():
        r, g, b = _rgb(color)
        rules.append(f".t-{kind}{{--c:{color};--f:rgba({r},{g},{b},.07)}}")
    return CSS + "\n".join(rules)


def _fmt_box(values: list[float] | None, digits: int) -> str:
    return "" if values is None else ", ".join(f"{v:.{digits}f}" for v in values)


def _boxes(page: Page) -> list[str]:
    out: list[str] = []

    def walk(blocks: list[Block], depth: int, path: str) -> None:
        for i, b in enumerate(blocks):
            here = f"{path}{i}"
            box = norm_box(b, page)
            if box is not None:
                x0, y0, x1, y1 = box
                key = _type_key(b.type)
                text = b.text
                tip = f"{b.type}: {text}" if text else b.type
                if len(tip) > 400:
                    tip = tip[:400] + "…"
                cls = f"box t-{key}" + (f" child depth-{depth}" if depth else "")
                attrs = {
                    "class": cls,
                    "style": f"left:{x0 * 100:.4f}%;top:{y0 * 100:.4f}%;width:{(x1 - x0) * 100:.4f}%;height:{(y1 - y0) * 100:.4f}%",
                    "title": tip,
                    "data-type": b.type,
                    "data-text": text,
                    "data-path": here,
                    "data-bbox": _fmt_box(b.bbox, 1),
                    "data-norm": _fmt_box(b.bbox_norm, 4),
                }
                if b.label:
                    attrs["data-label"] = b.label
                if b.confidence is not None:
                    attrs["data-conf"] = f"{b.confidence:.3f}"
                if b.flags:
                    attrs["data-flags"] = ", ".join(b.flags)
                out.append("<div " + " ".join(f'{k}="{_e(v)}"' for k, v in attrs.items()) + "></div>")
            walk(b.children, depth + 1, here + ".")

    walk(page.blocks, 0, "")
    return out


def _page_info(page: Page) -> str:
    rows = [("status", page.status), ("size (pt)", f"{page.width:g} × {page.height:g}"), ("rotation", str(page.rotation)),
            ("blocks", str(len(page.blocks))), ("attempts", str(page.attempts)), ("latency", f"{page.latency_s:.2f} s")]
    if page.usage.prompt_tokens or page.usage.completion_tokens:
        rows.append(("tokens", f"{page.usage.prompt_tokens} in / {page.usage.completion_tokens} out"))
    if page.usage.cost_usd is not None:
        rows.append(("cost", f"${page.usage.cost_usd:.5f}"))
    if page.cached:
        rows.append(("cached", "yes"))
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    md = f"<details><summary>page markdown</summary><pre>{_e(page.markdown)}</pre></details>" if page.markdown else ""
    return f"<dl>{dl}</dl>{md}"


def _banner(page: Page) -> str:
    if page.status == "failed":
        err = page.error
        what = f"{err.kind}{'/' + err.cause if err.cause else ''}: {err.message}" if err else "no reason recorded"
        return f'<div class="banner failed" role="alert"><b>Page {page.page} failed</b> — {_e(what)}</div>'
    if page.status == "degraded":
        warns = "; ".join(page.warnings) or (page.error.message if page.error else "no details recorded")
        return f'<div class="banner degraded" role="status"><b>Page {page.page} degraded</b> — {_e(warns)}</div>'
    if page.warnings:
        return f'<div class="banner degraded" role="status">{_e("; ".join(page.warnings))}</div>'
    return ""


def viewer_size(width_pt: float, height_pt: float, *, pdf: bool, pages: int, have: tuple[int, int] | None = None) -> tuple[int, int]:
    """Pixel size of a page's embedded image: PDF pages at :data:`VIEWER_DPI` (72 dpi past 100
    pages, so the one file stays openable), images at their own pixels, capped at
    :data:`VIEWER_MAX_SIDE` and never larger than the image there is (``have``)."""
    scale = ((VIEWER_DPI if pages <= 100 else 72.0) / 72.0) if pdf else 1.0
    w, h = max(1.0, width_pt * scale), max(1.0, height_pt * scale)
    shrink = min(1.0, VIEWER_MAX_SIDE / max(w, h))
    if have is not None:
        shrink = min(shrink, have[0] / w, have[1] / h)
    return max(1, round(w * shrink)), max(1, round(h * shrink))


def page_jpeg(image: Image.Image, size: tuple[int, int]) -> bytes:
    """A page image as the viewer embeds it, about ``size`` pixels (within 10 %: the boxes are
    placed in percent), JPEG at :data:`VIEWER_JPEG_QUALITY`.  A render two or more times as
    large is first shrunk by a whole factor (a box filter: a few ms, where resampling a
    192-dpi page costs 50 ms)."""
    img = flatten(image)
    factor = int(min(img.width / size[0], img.height / size[1]) * 1.1)
    if factor >= 2:
        img = img.reduce(factor)
    if not (size[0] / 1.1 <= img.width <= size[0] * 1.1 and size[1] / 1.1 <= img.height <= size[1] * 1.1):
        img = img.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=VIEWER_JPEG_QUALITY)
    return buf.getvalue()


def _page_images(doc: Document, source: Path | None) -> tuple[dict[int, bytes], dict[int, str]]:
    """For a Document without its run: page number -> JPEG rendered again from ``source``, and
    page number -> why there is no image."""
    from .source import render_pages, source_spec

    images: dict[int, bytes] = {}
    missing: dict[int, str] = {}
    numbers = [p.page for p in doc.pages]
    if source is None:
        why = f"source not available: {doc.source}"
        return images, dict.fromkeys(numbers, why)
    dpi = VIEWER_DPI if len(numbers) <= 100 else 72.0
    spec = source_spec(source, dpi, fmt="jpeg", quality=VIEWER_JPEG_QUALITY, longest_side=VIEWER_MAX_SIDE)
    for number, pimg, err in render_pages(source, numbers, spec):
        if pimg is None or pimg.encoded is None:
            missing[number] = f"page image not available: {err}"
            continue
        images[number] = pimg.encoded.data
    return images, missing


def _used_types(doc: Document) -> dict[str, int]:
    counts: dict[str, int] = {}

    def walk(blocks: list[Block]) -> None:
        for b in blocks:
            counts[_type_key(b.type)] = counts.get(_type_key(b.type), 0) + 1
            walk(b.children)

    for p in doc.pages:
        walk(p.blocks)
    return counts


def _section(p: Page, image: bytes | str | None, note: str) -> tuple[str, str]:
    """One page's navigator entry and its section (image or blank note, boxes, banner, info)."""
    badge = {"failed": "failed", "degraded": "degraded"}.get(p.status, "ok")
    nav = (
        f'<a href="?page={p.page}" data-page="{p.page}" class="nav-{badge}">Page {p.page}'
        f'<span class="st st-{badge}">{_e(p.status)}</span></a>'
    )
    w, h = (p.width, p.height) if p.width > 0 and p.height > 0 else _DEFAULT_SIZE
    if image is not None:
        url = image if isinstance(image, str) else "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
        visual = f'<img class="scan" alt="page {p.page}" src="{url}">'
    else:
        visual = f'<div class="blank"><p>{_e(note)}</p></div>'
    section = (
        f'<section class="page status-{badge}" id="page-{p.page}" data-page="{p.page}" '
        f'data-width="{w:g}" data-height="{h:g}">'
        f'<div class="pagehead"><h2>Page {p.page} <span class="st st-{badge}">{_e(p.status)}</span></h2>{_banner(p)}</div>'
        f'<div class="sheet" style="aspect-ratio:{w:g} / {h:g}">{visual}{"".join(_boxes(p))}</div>'
        f'<template class="info">{_page_info(p)}</template>'
        "</section>"
    )
    return nav, section


def _meta(doc: Document) -> str:
    n_failed = sum(p.status == "failed" for p in doc.pages)
    n_degraded = sum(p.status == "degraded" for p in doc.pages)
    return (
        f"{len(doc.pages)} page(s) · {n_failed} failed · {n_degraded} degraded · backend {doc.backend}"
        + (f" · model {doc.model}" if doc.model else "")
        + (f" · {doc.stats.wall_s:.1f} s" if doc.stats.wall_s else "")
    )


def _styles() -> str:
    return (
        _css()
        .replace("__LEFT__", str(FIXED_SHEET_LEFT))
        .replace("__TOP__", str(FIXED_SHEET_TOP))
        .replace("__WIDTH__", str(FIXED_SHEET_WIDTH))
        .replace("__HEADTOP__", str(FIXED_HEAD_TOP))
        .replace("__HEADH__", str(FIXED_SHEET_TOP - FIXED_HEAD_TOP - 4))
    )


def render_html(
    doc: Document,
    *,
    source: str | Path | None = None,
    base: Path | None = None,
    title: str | None = None,
    images: Mapping[int, bytes | str] | None = None,
    missing: Mapping[int, str] | None = None,
) -> str:
    """The viewer page for ``doc`` as one HTML string.  ``images`` (page number -> JPEG bytes
    or a data URL) are a run's page images and ``missing`` the reasons for pages without one;
    without ``images`` the pages are rendered again from ``source``, or from ``doc.source``
    found as written or under ``base``."""
    if images is None:
        from .source import resolve_source

        images, missing = _page_images(doc, resolve_source(doc, source, base))
    missing = missing or {}
    nonce = secrets.token_urlsafe(16)
    name = title or Path(doc.source).name or doc.source
    parts = [_section(p, images.get(p.page), missing.get(p.page, "page image not available")) for p in doc.pages]
    nav, sections = [n for n, _ in parts], [s for _, s in parts]
    legend = "".join(
        f'<span class="t-{k}"><i></i>{_e(k)} <span class="muted">{n}</span></span>'
        for k, n in sorted(_used_types(doc).items(), key=lambda kv: list(TYPE_COLORS).index(kv[0]))
    )
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(name)} — ocrclient viewer</title><style>{_styles()}</style></head>\n<body>"
        f'<header><h1>{_e(name)}</h1><span class="meta">{_e(_meta(doc))}</span></header>'
        '<div id="layout">'
        f'<nav aria-label="pages">{"".join(nav)}</nav>'
        '<main><div class="toolbar"><button id="prev" type="button" title="previous page (←)">◀ Prev</button>'
        '<span id="pos"></span><button id="next" type="button" title="next page (→)">Next ▶</button>'
        '<label><input type="checkbox" id="lines"> lines &amp; words</label></div>'
        f'{"".join(sections) or "<p>This document has no pages.</p>"}</main>'
        f'<aside><h2>Legend</h2><div class="legend">{legend or "<span class=muted>no blocks</span>"}</div>'
        '<h2>Block</h2><div id="block"><p class="muted">Click a box to see its block.</p></div>'
        '<h2>Page</h2><div id="pageinfo"></div>'
        f'<h2>Document</h2><dl><dt>source</dt><dd>{_e(doc.source)}</dd><dt>backend</dt><dd>{_e(doc.backend)}</dd>'
        f'<dt>model</dt><dd>{_e(doc.model or "")}</dd><dt>schema</dt><dd>{_e(doc.schema_version)}</dd></dl>'
        "</aside></div>"
        f'<script nonce="{nonce}">{JS}</script></body></html>\n'
    )


def load_document(json_path: Path) -> Document:
    """Read a ``<stem>.json`` result; one-line :class:`InputError` when it is not one."""
    try:
        raw = json_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{json_path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return Document.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = re.sub(r"\s+", " ", str(first.get("msg", "")))
        raise InputError(f"{json_path}: not an ocrclient result ({where}: {msg})") from exc
    except json.JSONDecodeError as exc:  # pragma: no cover - pydantic wraps these
        raise InputError(f"{json_path}: not JSON ({exc.msg})") from exc


def write_viewer(json_path: Path, out_html: Path | None = None) -> Path:
    """Write the viewer for the result ``json_path`` to ``out_html`` (default: the same path
    with ``.html``) and return it.  The source document is looked up as recorded in the JSON,
    then relative to the JSON's folder; without it pages are drawn blank with a note."""
    json_path = Path(json_path)
    doc = load_document(json_path)
    out = Path(out_html) if out_html is not None else json_path.with_suffix(".html")
    page = render_html(doc, base=json_path.parent)
    return atomic_write(out, page)


def write(
    doc: Document,
    path: Path,
    *,
    source: str | Path | None = None,
    images: Mapping[int, bytes | str] | None = None,
    missing: Mapping[int, str] | None = None,
) -> Path:
    """Write the viewer for ``doc`` to ``path``: with a run's page ``images``, or pages rendered
    again from ``source`` / ``doc.source`` (blank pages with a note when it cannot be found)."""
    return atomic_write(path, render_html(doc, source=source, base=path.parent, images=images, missing=missing))


def main(argv: list[str]) -> int:
    """``python -m ocrclient.exporters.html RESULT.json [OUT.html]`` (also ``-m ocrclient.viewer``)."""
    if len(argv) not in (1, 2):
        print("usage: python -m ocrclient.viewer RESULT.json [OUT.html]", file=sys.stderr)
        return 2
    try:
        print(write_viewer(Path(argv[0]), Path(argv[1]) if len(argv) == 2 else None))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
