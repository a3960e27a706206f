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

The page is a Jinja2 template with autoescape (:mod:`.html_assets`, with the stylesheet and the
script): everything the model wrote, and every name and message, is escaped wherever it appears
(it is untrusted); the page has no inline event handlers, and a Content-Security-Policy allows
only the viewer's own nonce-tagged script and data: images.  The page images are
:mod:`.html_images`'.

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
import functools
import json
import logging
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ..document import BLOCK_TYPES, Block, Document, Page
from ..errors import InputError
from ._io import atomic_write
from .figures import norm_box
from .html_assets import FIXED_HEAD_TOP as FIXED_HEAD_TOP  # old names of this module, kept
from .html_assets import (
    FIXED_SHEET_LEFT,
    FIXED_SHEET_TOP,
    FIXED_SHEET_WIDTH,
    JS,
    TEMPLATE,
    TYPE_COLORS,
    stylesheet,
)
from .html_images import VIEWER_DPI, page_images, page_jpeg, viewer_size
from .html_images import VIEWER_JPEG_QUALITY as VIEWER_JPEG_QUALITY
from .html_images import VIEWER_MAX_SIDE as VIEWER_MAX_SIDE

if TYPE_CHECKING:
    import jinja2

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

assert set(BLOCK_TYPES) <= set(TYPE_COLORS)

_DEFAULT_SIZE = (612.0, 792.0)


log = logging.getLogger("ocrclient.exporters.html")


@functools.cache
def _template() -> jinja2.Template:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(TEMPLATE)


def _type_key(kind: str) -> str:
    return kind if kind in TYPE_COLORS else "other"


def _fmt_box(values: list[float] | None, digits: int) -> str:
    return "" if values is None else ", ".join(f"{v:.{digits}f}" for v in values)


def _boxes(page: Page) -> list[dict[str, str | None]]:
    """The attributes of each boxed block's overlay, nested blocks after their parent."""
    out: list[dict[str, str | None]] = []

    def walk(blocks: list[Block], depth: int, path: str) -> None:
        for i, b in enumerate(blocks):
            here = f"{path}{i}"
            box = norm_box(b, page)
            if box is not None:
                x0, y0, x1, y1 = box
                tip = f"{b.type}: {b.text}" if b.text else b.type
                out.append({
                    "class": f"box t-{_type_key(b.type)}" + (f" child depth-{depth}" if depth else ""),
                    "style": f"left:{x0 * 100:.4f}%;top:{y0 * 100:.4f}%;width:{(x1 - x0) * 100:.4f}%;height:{(y1 - y0) * 100:.4f}%",
                    "title": tip[:400] + "…" if len(tip) > 400 else tip,
                    "data-type": b.type,
                    "data-text": b.text,
                    "data-path": here,
                    "data-bbox": _fmt_box(b.bbox, 1),
                    "data-norm": _fmt_box(b.bbox_norm, 4),
                    "data-label": b.label or None,
                    "data-conf": f"{b.confidence:.3f}" if b.confidence is not None else None,
                    "data-flags": ", ".join(b.flags) or None,
                })
            walk(b.children, depth + 1, here + ".")

    walk(page.blocks, 0, "")
    return out


def _size(page: Page) -> tuple[str, str]:
    w, h = (page.width, page.height) if page.width > 0 and page.height > 0 else _DEFAULT_SIZE
    return f"{w:g}", f"{h:g}"


def _used_types(doc: Document) -> list[tuple[str, int]]:
    """Block types the document uses (with their counts), in :data:`TYPE_COLORS` order."""
    counts: dict[str, int] = {}

    def walk(blocks: list[Block]) -> None:
        for b in blocks:
            counts[_type_key(b.type)] = counts.get(_type_key(b.type), 0) + 1
            walk(b.children)

    for p in doc.pages:
        walk(p.blocks)
    return [(kind, counts[kind]) for kind in TYPE_COLORS if kind in counts]


def _meta(doc: Document) -> str:
    n_failed = sum(p.status == "failed" for p in doc.pages)
    n_degraded = sum(p.status == "degraded" for p in doc.pages)
    return (
        f"{len(doc.pages)} page(s) · {n_failed} failed · {n_degraded} degraded · backend {doc.backend}"
        + (f" · model {doc.model}" if doc.model else "")
        + (f" · {doc.stats.wall_s:.1f} s" if doc.stats.wall_s else "")
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
    from markupsafe import Markup

    if images is None:
        from .source import resolve_source

        try:
            found = resolve_source(doc, source, base)
        except InputError as exc:  # there, but encrypted: drawn blank, the reason logged
            log.warning("%s; the viewer's pages are drawn blank", exc)
            found = None
        images, missing = page_images(doc, found)
    nonce = secrets.token_urlsafe(16)
    return _template().render(
        doc=doc,
        name=title or Path(doc.source).name or doc.source,
        meta=_meta(doc),
        images={n: _data_url(img) for n, img in images.items()},
        missing=missing or {},
        legend=_used_types(doc),
        nonce=nonce,
        csp=f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'",
        css=Markup(stylesheet()),  # constants of html_assets, not data: inserted as they are
        js=Markup(JS),
        size=_size,
        boxes=_boxes,
    )


def _data_url(image: bytes | str) -> str:
    return image if isinstance(image, str) else "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")


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
    then relative to the JSON's folder; without it pages are drawn blank with a note, and the
    viewer already next to the JSON (a run's, with its page images) is not replaced."""
    json_path = Path(json_path)
    doc = load_document(json_path)
    out = Path(out_html) if out_html is not None else json_path.with_suffix(".html")
    from .source import resolve_source

    found = resolve_source(doc, None, json_path.parent)  # (once: checking it opens the file)
    if out_html is None and out.exists() and found is None:
        # (the run's own viewer is there, with the page images it drew: a blank one would replace it)
        raise InputError(f"{doc.source}: source not found, so a viewer would have no page images; "
                         f"{out} is kept (give -o to write one without them)")  # fmt: skip
    page = render_html(doc, source=found, base=json_path.parent)
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
