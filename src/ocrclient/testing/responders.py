"""Dialect-aware responders: simulated models that answer in a real model's exact output format.

The simulators (:class:`~ocrclient.testing.RunPodSimulator`, :class:`~ocrclient.testing.OpenAISimulator`,
:class:`~ocrclient.testing.OcularSimulator`) call a *responder* with each request body.  The
responders here find the page image in that body (an OpenAI chat request carrying a ``data:``
URL, or an ocular body with base64 ``image``), decide what is on it, and write the reply the way
the named model family writes it:

==============  ==========================================================================
dialect         reply
==============  ==========================================================================
``chandra``     top-level ``<div data-bbox=... data-label=...>`` HTML blocks; version 1 boxes
                ``[x0, y0, x1, y1]`` on 0-1024, version 2 ``x0 y0 x1 y1`` on 0-1000
``deepseek``    ``<|ref|>label<|/ref|><|det|>[[x0, y0, x1, y1]]<|/det|>`` + markdown, 0-999
``olmocr``      YAML front matter (``primary_language``, ``is_rotation_valid``,
                ``rotation_correction``, ``is_table``, ``is_diagram``) + markdown
``lighton``     markdown; the ``-bbox`` models add ``x0,y0,x1,y1`` (0-1000) after image refs
``rolmocr``     plain markdown (so does ``plain``)
``trocr``       ocular ``text`` + ``confidence``
``dots``        a JSON list of ``{"bbox", "category", "text"}`` cells in pixels of the
                model's own resize (Qwen2-VL ``smart_resize`` of the image sent)
==============  ==========================================================================

What is on a page comes from ``truth`` (:class:`DialectResponder`) or from the embedded RapidOCR
engine run on the image received (:class:`RapidOCRResponder`).  Boxes in ``truth`` are in [0, 1]
of the image *sent* (the displayed page, possibly rotated by the client); each responder
quantizes them to its model's grid, exactly as the model would.

Example (pytest)::

    from ocrclient.testing import DialectResponder, RunPodSimulator
    import ocrclient

    truth = [[("title", "Annual report", (0.1, 0.05, 0.9, 0.1)),
              ("text", "Revenue grew.", (0.1, 0.2, 0.9, 0.3))]]          # page 1
    with RunPodSimulator(responder=DialectResponder("deepseek", truth=truth)) as sim:
        doc = ocrclient.convert("one-page.pdf", backend="runpod-deepseek-ocr",
                                base_url=sim.base_url, endpoint_id=sim.endpoint_id,
                                api_key=sim.api_key)
    assert doc.pages[0].blocks[0].text == "Annual report"

    # a real (CPU) OCR engine formatted as Chandra 2 would answer
    responder = RapidOCRResponder("chandra", version=2)
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import concurrent.futures
import hashlib
import html
import io
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..loops import running_loop
from .faults import SimReply, _find_image

__all__ = [
    "DIALECT_NAMES",
    "DialectResponder",
    "RapidOCRResponder",
    "SentImage",
    "TruthBlock",
    "default_blocks",
    "format_reply",
    "image_digest",
]

Box = tuple[float, float, float, float]

#: dialects a responder can speak
DIALECT_NAMES = ("chandra", "deepseek", "olmocr", "lighton", "rolmocr", "plain", "trocr", "dots")

#: generic block types (ocrclient.document.BLOCK_TYPES) -> each model's own labels
_NATIVE_LABELS: dict[str, dict[str, str]] = {
    "chandra": {
        "title": "Section-Header", "section_header": "Section-Header", "text": "Text",
        "figure": "Image", "table": "Table", "caption": "Caption", "footnote": "Footnote",
        "page_header": "Page-Header", "page_footer": "Page-Footer", "list_item": "List-Group",
        "equation": "Equation-Block", "code": "Code-Block", "form": "Form",
    },
    "deepseek": {
        "title": "title", "section_header": "sub_title", "text": "text", "figure": "image",
        "table": "table", "caption": "image_caption", "footnote": "footnote",
        "page_header": "header", "page_footer": "footer", "list_item": "text",
        "equation": "equation", "code": "text",
    },
    "dots": {
        "title": "Title", "section_header": "Section-Header", "text": "Text", "figure": "Picture",
        "table": "Table", "caption": "Caption", "footnote": "Footnote", "page_header": "Page-header",
        "page_footer": "Page-footer", "list_item": "List-item", "equation": "Formula", "code": "Text",
    },
}  # fmt: skip


@dataclass(frozen=True)
class TruthBlock:
    """One element on a page: a generic type (``title``, ``section_header``, ``text``,
    ``figure``, ``table``, ``list_item``, ``equation``, ...) or a model's own label, its text,
    and its box in [0, 1] of the image sent (``None``: no box).

    Example::

        >>> TruthBlock.of(("text", "Hello", (0.1, 0.1, 0.5, 0.2))).box
        (0.1, 0.1, 0.5, 0.2)
    """

    label: str
    text: str
    box: Box | None = None

    @classmethod
    def of(cls, item: TruthBlock | Sequence[Any]) -> TruthBlock:
        """A :class:`TruthBlock` from itself or a ``(label, text[, box])`` tuple."""
        if isinstance(item, TruthBlock):
            return item
        label, text, *rest = item
        box = rest[0] if rest else None
        return cls(str(label), str(text), None if box is None else tuple(float(v) for v in box))  # type: ignore[arg-type]


@dataclass
class SentImage:
    """The page image a request carried, as the simulated model sees it.

    ``order`` is the 1-based rank of this image among the distinct images the responder has
    seen (the page order when pages arrive in order); ``digest`` identifies the image bytes.
    """

    data: bytes
    width: int
    height: int
    digest: str
    order: int
    mime: str = "image/png"

    def image(self) -> Any:
        """The decoded PIL image."""
        from PIL import Image

        img = Image.open(io.BytesIO(self.data))
        img.load()
        return img


Truth = Mapping[Any, Sequence[Any]] | Sequence[Sequence[Any]] | Callable[[SentImage], Sequence[Any]]


def image_digest(data: bytes) -> str:
    """The key :class:`DialectResponder` uses for an image: ``sha256(bytes)[:16]``.

    Example::

        >>> image_digest(b"abc")
        'ba7816bf8f01cfea'
    """
    return hashlib.sha256(data).hexdigest()[:16]


def _decode_image_field(value: Any) -> tuple[bytes, str] | None:
    if not isinstance(value, str) or not value:
        return None
    mime = "image/png"
    payload = value
    if value.startswith("data:"):
        head, _, payload = value.partition(",")
        mime = head[5:].split(";")[0] or mime
    try:
        return base64.b64decode(payload, validate=False), mime
    except (binascii.Error, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------------


#: a DeepSeek-OCR grounding tag, as the worker's plain markdown leaves it out
_GROUNDING = re.compile(r"<\|ref\|>.*?<\|/ref\|><\|det\|>.*?<\|/det\|>\n?")


def _q(value: float, grid: float) -> int:
    return round(min(1.0, max(0.0, value)) * grid)


def _qbox(box: Box, gx: float, gy: float | None = None) -> list[int]:
    gy = gx if gy is None else gy
    x0, y0, x1, y1 = box
    return [_q(x0, gx), _q(y0, gy), _q(x1, gx), _q(y1, gy)]


def _generic(label: str) -> str:
    """A model label back to the generic type (for markdown decisions)."""
    low = label.lower().replace("-", "_")
    aliases = {
        "section_header": "section_header", "sub_title": "section_header", "title": "title",
        "image": "figure", "picture": "figure", "figure": "figure", "list_group": "list_item",
        "list_item": "list_item", "equation_block": "equation", "formula": "equation",
        "equation": "equation", "code_block": "code", "code": "code", "table": "table",
    }  # fmt: skip
    return aliases.get(low, low)


def _markdown(kind: str, text: str, figure_name: str = "") -> str:
    if kind == "title":
        return f"# {text}"
    if kind == "section_header":
        return f"## {text}"
    if kind == "figure":
        return f"![{text}]({figure_name})"
    if kind == "list_item":
        return "\n".join(f"- {line}" for line in text.splitlines() or [text])
    if kind == "equation":
        return f"$$\n{text}\n$$"
    if kind == "code":
        return f"```\n{text}\n```"
    return text


def _native(dialect: str, label: str) -> str:
    return _NATIVE_LABELS.get(dialect, {}).get(label, label)


def _chandra(blocks: Sequence[TruthBlock], version: int) -> str:
    grid = 1024 if version == 1 else 1000
    out: list[str] = []
    for b in blocks:
        label = _native("chandra", b.label)
        kind = _generic(b.label) if b.label in _NATIVE_LABELS["chandra"] else _generic(label)
        text = html.escape(b.text, quote=False)
        if kind == "title":
            inner = f"<h1>{text}</h1>"
        elif kind == "section_header":
            inner = f"<h2>{text}</h2>"
        elif kind == "figure":
            inner = f'<img alt="{html.escape(b.text, quote=True)}"/>'
        elif kind == "list_item":
            inner = (
                "<ul>"
                + "".join(f"<li>{html.escape(t, quote=False)}</li>" for t in b.text.splitlines())
                + "</ul>"
            )
        elif kind == "table":
            inner = (
                b.text
                if b.text.lstrip().startswith("<table")
                else f"<table><tr><td>{text}</td></tr></table>"
            )
        elif kind == "equation":
            inner = f'<p><math display="block">{text}</math></p>'
        elif kind == "code":
            inner = f"<pre>{text}</pre>"
        else:
            inner = f"<p>{text}</p>"
        attrs = ""
        if b.box is not None:
            q = _qbox(b.box, grid)
            bbox = json.dumps(q) if version == 1 else " ".join(str(v) for v in q)
            attrs = f' data-bbox="{bbox}"'
        out.append(f'<div{attrs} data-label="{label}">{inner}</div>')
    return "\n".join(out)


def _deepseek(blocks: Sequence[TruthBlock]) -> str:
    out: list[str] = []
    for b in blocks:
        label = _native("deepseek", b.label)
        kind = _generic(b.label) if b.label in _NATIVE_LABELS["deepseek"] else _generic(label)
        det = json.dumps([_qbox(b.box, 999)]) if b.box is not None else "[]"
        body = "" if kind == "figure" else _markdown(kind, b.text)
        out.append(f"<|ref|>{label}<|/ref|><|det|>{det}<|/det|>\n{body}\n")
    return "\n".join(out)


def _plain_markdown(blocks: Sequence[TruthBlock], figure: Callable[[int, TruthBlock], str]) -> str:
    parts: list[str] = []
    n = 0
    for b in blocks:
        kind = _generic(b.label)
        if kind == "figure":
            n += 1
            parts.append(figure(n, b))
        else:
            parts.append(_markdown(kind, b.text))
    return "\n\n".join(parts)


def _olmocr(blocks: Sequence[TruthBlock], rotation_correction: int, language: str) -> str:
    def figure(n: int, b: TruthBlock) -> str:
        if b.box is None:
            return f"![{b.text}](page_0_0_0_0.png)"
        x0, y0, x1, y1 = b.box
        return f"![{b.text}](page_{x0:.3f}_{y0:.3f}_{x1 - x0:.3f}_{y1 - y0:.3f}.png)"

    kinds = {_generic(b.label) for b in blocks}
    valid = rotation_correction % 360 == 0
    front = (
        "---\n"
        f"primary_language: {language}\n"
        f"is_rotation_valid: {valid}\n"
        f"rotation_correction: {rotation_correction % 360}\n"
        f"is_table: {'table' in kinds}\n"
        f"is_diagram: {'figure' in kinds}\n"
        "---\n"
    )
    body = "" if not valid else _plain_markdown(blocks, figure)
    return front + body


def _lighton(blocks: Sequence[TruthBlock], bbox: bool) -> str:
    def figure(n: int, b: TruthBlock) -> str:
        ref = f"![image](image_{n}.png)"
        if bbox and b.box is not None:
            ref += ",".join(str(v) for v in _qbox(b.box, 1000))
        return ref

    return _plain_markdown(blocks, figure)


def _dots(blocks: Sequence[TruthBlock], width: int, height: int) -> str:
    from ..dialects.dots import smart_resize

    mh, mw = smart_resize(height, width)
    cells: list[dict[str, Any]] = []
    for b in blocks:
        label = _native("dots", b.label)
        kind = _generic(label)
        cell: dict[str, Any] = {}
        if b.box is not None:
            cell["bbox"] = _qbox(b.box, mw, mh)
        cell["category"] = label
        if kind != "figure":
            cell["text"] = b.text
        cells.append(cell)
    return json.dumps(cells, ensure_ascii=False)


def format_reply(
    dialect: str,
    blocks: Sequence[TruthBlock | Sequence[Any]],
    *,
    width: int = 1000,
    height: int = 1000,
    version: int = 2,
    bbox: bool = False,
    rotation_correction: int = 0,
    language: str = "en",
) -> str:
    """The raw text ``dialect``'s model would answer for ``blocks`` on a ``width x height`` image.

    Example::

        >>> format_reply("deepseek", [("text", "Hi", (0, 0, 0.5, 0.5))])
        '<|ref|>text<|/ref|><|det|>[[0, 0, 500, 500]]<|/det|>\\nHi\\n'
        >>> format_reply("chandra", [("text", "Hi", (0, 0, 0.5, 0.5))], version=1)
        '<div data-bbox="[0, 0, 512, 512]" data-label="Text"><p>Hi</p></div>'
    """
    items = [TruthBlock.of(b) for b in blocks]
    if dialect == "chandra":
        return _chandra(items, version)
    if dialect == "deepseek":
        return _deepseek(items)
    if dialect == "olmocr":
        return _olmocr(items, rotation_correction, language)
    if dialect == "lighton":
        return _lighton(items, bbox)
    if dialect in ("rolmocr", "plain"):
        return _plain_markdown(items, lambda n, b: f"![{b.text}]()")
    if dialect == "trocr":
        return "\n".join(b.text for b in items)
    if dialect == "dots":
        return _dots(items, width, height)
    raise ValueError(f"unknown dialect {dialect!r}; known: {', '.join(DIALECT_NAMES)}")


# ---------------------------------------------------------------------------------------------
# responders
# ---------------------------------------------------------------------------------------------


@dataclass
class _Base(abc.ABC):
    dialect: str
    version: int | None = None
    bbox: bool | None = None
    confidence: float = 0.93
    language: str = "en"
    rotation: Callable[[SentImage], int] | None = None
    _order: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: every image seen, in arrival order (for assertions: sizes, rotations, count)
    seen: list[SentImage] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.dialect not in DIALECT_NAMES:
            raise ValueError(f"unknown dialect {self.dialect!r}; known: {', '.join(DIALECT_NAMES)}")

    # -- the request ---------------------------------------------------------------------------
    def sent_image(self, body: Mapping[str, Any]) -> SentImage:
        """The image in a chat / ocular request body (raises ValueError when there is none)."""
        found = _decode_image_field(_find_image(body))
        if found is None:
            raise ValueError("the request carries no decodable image")
        data, mime = found
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return self._seen(data, img.size, mime)

    def _seen(self, data: bytes, size: tuple[int, int], mime: str) -> SentImage:
        digest = image_digest(data)
        with self._lock:
            order = self._order.setdefault(digest, len(self._order) + 1)
            sent = SentImage(data, size[0], size[1], digest, order, mime)
            self.seen.append(sent)
        return sent

    def whole_pdf(self, body: Mapping[str, Any]) -> SimReply:
        """The DeepSeek-OCR whole-PDF worker's reply to a job carrying ``pdf_base64``
        (``--document-mode``): each page, drawn at 96 dpi, is an image sent (``seen``; truth by
        arrival order, or by the digest of that drawing, not of any image the client made); the markdown and the grounded ``detection_markdown`` of every page,
        each page ended by ``<--- Page Split --->`` as DeepSeek's own PDF script writes them."""
        import pypdfium2 as pdfium

        if self.dialect != "deepseek":
            raise ValueError(f"a whole PDF is the DeepSeek-OCR worker's job, not {self.dialect}'s")
        from ..pages import PDFIUM_LOCK

        with PDFIUM_LOCK:  # (PDFium is not thread-safe; the simulator answers jobs on threads)
            pdf = pdfium.PdfDocument(base64.b64decode(str(body["pdf_base64"])))
            try:
                drawn = [pdf[i].render(scale=96 / 72).to_pil() for i in range(len(pdf))]
            finally:
                pdf.close()
        grounded: list[str] = []
        for img in drawn:
            buf = io.BytesIO()
            img.save(buf, "PNG")
            image = self._seen(buf.getvalue(), img.size, "image/png")
            grounded.append(format_reply("deepseek", self.blocks_for(image), width=image.width, height=image.height))
        from ..dialects.deepseek import PAGE_END

        markdown = "".join(_GROUNDING.sub("", page) + PAGE_END for page in grounded)
        det = "".join(page + PAGE_END for page in grounded)
        return SimReply(text=markdown, prompt_tokens=100 * len(grounded), completion_tokens=max(1, len(det.split())),
                        data={"detection_markdown": base64.b64encode(det.encode()).decode()})  # fmt: skip

    def _version(self, body: Mapping[str, Any]) -> int:
        if self.version is not None:
            return self.version
        model = str(body.get("model") or "").lower()
        if "chandra-ocr-2" in model or "chandra-2" in model or "chandra2" in model:
            return 2
        if model.rstrip("/").endswith("datalab-to/chandra") or model == "chandra-1":
            return 1
        return 2

    def _bbox(self, body: Mapping[str, Any]) -> bool:
        if self.bbox is not None:
            return self.bbox
        return "bbox" in str(body.get("model") or "").lower()

    @abc.abstractmethod
    def blocks_for(self, image: SentImage) -> list[TruthBlock]:
        """What is on ``image``: the blocks the reply will show."""

    def __call__(self, body: dict[str, Any]) -> SimReply:
        if "pdf_base64" in body:
            return self.whole_pdf(body)
        image = self.sent_image(body)
        correction = int(self.rotation(image)) % 360 if self.rotation is not None else 0
        blocks = self.blocks_for(image)
        text = format_reply(
            self.dialect,
            blocks,
            width=image.width,
            height=image.height,
            version=self._version(body),
            bbox=self._bbox(body),
            rotation_correction=correction,
            language=self.language,
        )
        data: dict[str, Any] = {}
        if self.dialect == "trocr":
            data = {"confidence": self.confidence, "language": self.language}
        return SimReply(
            text=text, prompt_tokens=100, completion_tokens=max(1, len(text.split())), data=data
        )


@dataclass
class DialectResponder(_Base):
    """Answers with known page content, in ``dialect``'s exact output format.

    ``truth`` says what is on each image sent, as :class:`TruthBlock` or ``(label, text, box)``
    tuples with boxes in [0, 1] of the *sent* image:

    * a mapping keyed by :func:`image_digest` of the image bytes, or by the 1-based order in
      which distinct images arrive (``int``);
    * a sequence: the n-th distinct image gets the n-th entry (page order when pages arrive in
      order, e.g. ``concurrency=1``);
    * a callable ``f(SentImage) -> blocks`` that decides from the image itself;
    * ``None`` (or no entry for an image): a heading and a paragraph naming the image's digest,
      so every page gets different, deterministic content.

    ``version`` (Chandra 1 / 2) and ``bbox`` (LightOnOCR ``-bbox``) default to what the request's
    model name implies.  ``rotation(image) -> degrees`` makes the olmOCR reply say
    ``is_rotation_valid: false`` with that ``rotation_correction`` (0 = upright).

    Example::

        >>> r = DialectResponder("chandra", version=1, truth={1: [("text", "Hi", (0, 0, 0.5, 0.5))]})
        >>> import base64, io; from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 20), "white").save(buf, "PNG")
        >>> url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        >>> body = {"model": "datalab-to/chandra", "messages": [{"role": "user", "content": [
        ...     {"type": "image_url", "image_url": {"url": url}}]}]}
        >>> r(body).text
        '<div data-bbox="[0, 0, 512, 512]" data-label="Text"><p>Hi</p></div>'
    """

    truth: Truth | None = None

    def blocks_for(self, image: SentImage) -> list[TruthBlock]:
        truth = self.truth
        items: Sequence[Any] | None = None
        if callable(truth):
            items = truth(image)
        elif isinstance(truth, Mapping):
            items = truth.get(image.digest, truth.get(image.order))
        elif truth is not None and 0 < image.order <= len(truth):
            items = truth[image.order - 1]
        if items is None:
            items = default_blocks(image)
        return [TruthBlock.of(i) for i in items]


def default_blocks(image: SentImage) -> list[TruthBlock]:
    """What a :class:`DialectResponder` without truth says: a heading and a paragraph naming
    the image (digest and size), with boxes."""
    return [
        TruthBlock("section_header", f"Page {image.digest}", (0.1, 0.05, 0.9, 0.1)),
        TruthBlock(
            "text",
            f"Simulated text of image {image.digest} ({image.width}x{image.height} px).",
            (0.1, 0.15, 0.9, 0.3),
        ),
        TruthBlock("text", "A second paragraph.", (0.1, 0.35, 0.6, 0.4)),
    ]


@dataclass
class RapidOCRResponder(_Base):
    """Runs the embedded RapidOCR engine (:mod:`ocrclient.transports.local`) on each image
    received and answers its text lines, with their real boxes, in ``dialect``'s format — a
    CPU stand-in for a GPU model whose answers depend on what the page really shows.

    The first line becomes a ``section_header`` when ``first_line_heading`` is true; results are
    cached by image digest (the same image is read once).  Needs ``pip install 'ocrclient[local]'``.

    Example::

        with OpenAISimulator(responder=RapidOCRResponder("lighton"), model=...) as sim:
            ...
    """

    first_line_heading: bool = False
    _cache: dict[str, list[TruthBlock]] = field(default_factory=dict, init=False, repr=False)

    def blocks_for(self, image: SentImage) -> list[TruthBlock]:
        with self._lock:
            hit = self._cache.get(image.digest)
        if hit is not None:
            return hit
        from ..transports.base import ModelRequest
        from ..transports.local import LocalTransport

        def run() -> Any:
            return asyncio.run(LocalTransport().send(ModelRequest(body={"image": image.data})))

        if running_loop() is None:  # the usual case: a simulator's worker thread
            reply = run()
        else:  # called from async code: keep its loop free
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                reply = pool.submit(run).result()
        from ..geometry import rotate_norm_box

        # the engine reads a turned page upright: its boxes are on the upright page (its
        # ``image_size``), turned back clockwise by ``rotation`` onto the image received (a page
        # sent upside down got the upright page's boxes)
        rotation = int(reply.data.get("rotation") or 0) % 360
        size = reply.data.get("image_size")
        w, h = (float(size[0]), float(size[1])) if rotation and isinstance(size, list) and len(size) == 2 else (image.width, image.height)
        blocks: list[TruthBlock] = []
        for i, line in enumerate(reply.data.get("lines", [])):
            x0, y0, x1, y1 = (float(v) for v in line["box"])
            label = "section_header" if (i == 0 and self.first_line_heading) else "text"
            box = rotate_norm_box((x0 / w, y0 / h, x1 / w, y1 / h), rotation) if rotation else (x0 / w, y0 / h, x1 / w, y1 / h)
            blocks.append(TruthBlock(label, str(line["text"]), box))
        with self._lock:
            self._cache[image.digest] = blocks
        return blocks
