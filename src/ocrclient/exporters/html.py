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
import logging
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from PIL import Image
from pydantic import ValidationError

from ..document import BLOCK_TYPES, Block, Document, Page
from ..errors import InputError
from ._io import atomic_write
from .figures import norm_box

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

log = logging.getLogger("ocrclient.viewer")

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
    return _CSS + "\n".join(rules)


_CSS = """
*{box-sizing:border-box}
html,body{margin:0;height:100%}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#e9eaee}
header{height:48px;display:flex;align-items:center;gap:16px;padding:0 16px;background:#1f2430;color:#fff;overflow:hidden;white-space:nowrap}
header h1{font-size:16px;margin:0;overflow:hidden;text-overflow:ellipsis}
header .meta{color:#b8bfcc;font-size:12px;overflow:hidden;text-overflow:ellipsis}
#layout{display:flex;height:calc(100% - 48px)}
nav{width:190px;flex:none;overflow-y:auto;background:#f7f7f9;border-right:1px solid #d0d3da;padding:8px}
nav a{display:flex;justify-content:space-between;padding:4px 8px;border-radius:4px;color:#1d1d1f;text-decoration:none}
nav a:hover{background:#e3e6ec}
nav a.current{background:#1f2430;color:#fff}
nav .st{font-size:11px;padding:0 6px;border-radius:8px}
.st-failed{background:#c62828;color:#fff}
.st-degraded{background:#f0a000;color:#000}
.st-ok{background:#d5ecd9;color:#225c2c}
main{flex:1;overflow:auto;padding:16px 24px}
aside{width:340px;flex:none;overflow-y:auto;background:#fff;border-left:1px solid #d0d3da;padding:12px 14px}
aside h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#666;margin:14px 0 6px}
.toolbar{display:flex;gap:8px;align-items:center;margin-bottom:8px}
.toolbar button{font:inherit;padding:3px 10px}
.page{margin:0 auto 28px;max-width:1000px}
.pagehead{min-height:30px;margin-bottom:6px}
.pagehead h2{font-size:15px;margin:0 0 4px}
.banner{padding:6px 10px;border-radius:4px;margin:4px 0;white-space:pre-wrap;word-break:break-word}
.banner.failed{background:#fdecea;border:1px solid #c62828;color:#8e1b1b}
.banner.degraded{background:#fff6e0;border:1px solid #f0a000;color:#6b4a00}
.sheet{position:relative;width:100%;background:#fff;box-shadow:0 1px 4px rgba(0,0,0,.25);overflow:hidden}
.sheet img.scan{position:absolute;left:0;top:0;width:100%;height:100%;display:block;user-select:none}
.blank{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;color:#888;text-align:center;padding:20px;background:repeating-linear-gradient(45deg,#fff,#fff 12px,#f6f6f6 12px,#f6f6f6 24px)}
.box{position:absolute;border:2px solid var(--c);background:var(--f);cursor:pointer}
.box:hover{background:rgba(255,255,0,.18)}
.box.sel{outline:3px solid #000;outline-offset:1px}
.box.child{display:none;border-width:1px}
body.lines .box.child{display:block}
body.js .page{display:none}
body.js .page.current{display:block}
.legend{display:flex;flex-wrap:wrap;gap:4px 10px}
.legend span{display:inline-flex;align-items:center;gap:4px;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;border:2px solid var(--c);background:var(--f)}
pre{white-space:pre-wrap;word-break:break-word;background:#f5f6f8;padding:8px;border-radius:4px;margin:4px 0;font-size:12px}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:0;font-size:12px}
dt{color:#666}
dd{margin:0;word-break:break-word}
.muted{color:#888}
body.fixed main{overflow:hidden;padding:0}
body.fixed .page.current{position:fixed;left:__LEFT__px;top:__TOP__px;width:__WIDTH__px;max-width:none;margin:0}
body.fixed .pagehead{position:fixed;left:__LEFT__px;top:__HEADTOP__px;width:__WIDTH__px;height:__HEADH__px;overflow:hidden;min-height:0;margin:0}
body.fixed .toolbar{position:fixed;left:__LEFT__px;top:56px;margin:0}
"""

_JS = r"""
(function(){
  var body=document.body, pages=[].slice.call(document.querySelectorAll('.page')),
      links=[].slice.call(document.querySelectorAll('nav a[data-page]')), cur=0;
  body.classList.add('js');
  var q=new URLSearchParams(location.search);
  if(q.get('fixed')==='1') body.classList.add('fixed');
  var lines=document.getElementById('lines');
  if(q.get('lines')==='1'){ body.classList.add('lines'); lines.checked=true; }
  lines.addEventListener('change',function(){ body.classList.toggle('lines',lines.checked); });
  function show(i){
    if(!pages.length) return;
    cur=Math.max(0,Math.min(pages.length-1,i));
    pages.forEach(function(p,j){ p.classList.toggle('current',j===cur); });
    links.forEach(function(a,j){ a.classList.toggle('current',j===cur); });
    document.getElementById('pos').textContent=(cur+1)+' / '+pages.length;
    var info=document.getElementById('pageinfo'), src=pages[cur].querySelector('.info');
    info.textContent=''; if(src) info.appendChild(src.content.cloneNode(true));
    select(null);
    if(links[cur] && links[cur].scrollIntoView && !body.classList.contains('fixed')) links[cur].scrollIntoView({block:'nearest'});
    try{ q.set('page',String(cur+1)); history.replaceState(null,'','?'+q.toString()); }catch(e){}
  }
  function field(dl,name,value){
    if(value===undefined||value===null||value==='') return;
    var dt=document.createElement('dt'), dd=document.createElement('dd');
    dt.textContent=name; dd.textContent=value; dl.appendChild(dt); dl.appendChild(dd);
  }
  var selected=null;
  function select(el){
    if(selected) selected.classList.remove('sel');
    selected=el;
    var panel=document.getElementById('block');
    panel.textContent='';
    if(!el){ var p=document.createElement('p'); p.className='muted'; p.textContent='Click a box to see its block.'; panel.appendChild(p); return; }
    el.classList.add('sel');
    var d=el.dataset, dl=document.createElement('dl');
    field(dl,'type',d.type); field(dl,'label',d.label); field(dl,'confidence',d.conf);
    field(dl,'bbox (pt)',d.bbox); field(dl,'bbox_norm',d.norm); field(dl,'flags',d.flags);
    field(dl,'path',d.path);
    panel.appendChild(dl);
    var pre=document.createElement('pre'); pre.textContent=d.text||''; panel.appendChild(pre);
  }
  document.addEventListener('click',function(ev){
    var t=ev.target;
    if(t.closest){
      var box=t.closest('.box'); if(box){ select(box); ev.preventDefault(); return; }
      var a=t.closest('nav a[data-page]');
      if(a){ show(links.indexOf(a)); ev.preventDefault(); return; }
    }
  });
  document.getElementById('prev').addEventListener('click',function(){ show(cur-1); });
  document.getElementById('next').addEventListener('click',function(){ show(cur+1); });
  document.addEventListener('keydown',function(ev){
    var tag=(ev.target&&ev.target.tagName)||'';
    if(tag==='INPUT'||tag==='TEXTAREA'||ev.altKey||ev.ctrlKey||ev.metaKey) return;
    var k=ev.key;
    if(k==='ArrowRight'||k==='PageDown'){ show(cur+1); ev.preventDefault(); }
    else if(k==='ArrowLeft'||k==='PageUp'){ show(cur-1); ev.preventDefault(); }
    else if(k==='Home'){ show(0); ev.preventDefault(); }
    else if(k==='End'){ show(pages.length-1); ev.preventDefault(); }
    else if(k==='Escape'){ select(null); }
  });
  var start=parseInt(q.get('page')||'1',10);
  show(isNaN(start)?0:start-1);
  var want=q.get('block');
  if(want!==null && pages.length){
    var boxes=pages[cur].querySelectorAll('.box');
    for(var i=0;i<boxes.length;i++){ if(boxes[i].dataset.path===want){ select(boxes[i]); break; } }
  }
})();
"""


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
    """A page image as the viewer embeds it: ``size`` pixels, JPEG at :data:`VIEWER_JPEG_QUALITY`."""
    img = image if image.mode in ("RGB", "L") else image.convert("RGB")
    if img.size != size:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
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
        f'<script nonce="{nonce}">{_JS}</script></body></html>\n'
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
