"""The ``local`` transport: the embedded RapidOCR engine (:mod:`ocrclient.engines`), in-process.

A thin adapter: it checks the request, runs :func:`ocrclient.engines.read.read_image` in a worker
thread (:func:`~ocrclient.loops.left_behind_on_stop`, so the event loop stays free and a stopped run
does not wait for a page it cannot interrupt) and wraps what the engine read
as a :class:`ModelReply`.  A request that also names the page's PDF (``body["pdf"] = {"path",
"index", "mode"}``: the ``rapidocr`` dialect sets it for PDF pages unless ``text_layer`` is
``"never"``) runs :func:`ocrclient.engines.pdf_page.read_pdf_page` instead, which reads the page
from its own text layer when that can be trusted and OCRs the image otherwise.  The engine itself (loading, tiling, ink-tight boxes) and the reply's
``data`` format are described in :mod:`ocrclient.engines`.

The rule for ``transports/``: no transport imports an OCR engine.  No module here imports
``rapidocr`` or ``onnxruntime`` at all, and ``ocrclient.engines`` only inside a function (or
for type checking), so importing a transport never loads the engine's code
(``tests/test_transport_imports.py`` parses every module under ``transports/`` to keep it so).

The names this module held before the engine moved (``EngineSettings``, ``Tile``,
``engine_constructions``, ``get_engine``, ``plan_tiles``, ``engine_missing``, ``INSTALL_HINT``)
still resolve here, lazily, from :mod:`ocrclient.engines`.

Example::

    >>> import asyncio
    >>> from ocrclient.transports.base import ModelRequest
    >>> t = LocalTransport()
    >>> png = open("examples/page.png", "rb").read()            # doctest: +SKIP
    >>> reply = asyncio.run(t.send(ModelRequest(body={"image": png})))  # doctest: +SKIP
    >>> reply.data["lines"][0]["text"], reply.data["lines"][0]["box"]    # doctest: +SKIP
    ('Quarterly Field Report', [152.0, 172.0, 676.0, 219.0])
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PermanentError
from ..loops import left_behind_on_stop
from .base import Health, ModelReply, ModelRequest

if TYPE_CHECKING:
    from ..config import BackendConfig
    from ..engines.rapidocr import EngineSettings

__all__ = ["LocalTransport"]

#: old names of this module -> the ``ocrclient.engines`` module that holds them now
_MOVED = {
    "EngineSettings": "rapidocr",
    "INSTALL_HINT": "rapidocr",
    "engine_constructions": "rapidocr",
    "engine_missing": "rapidocr",
    "get_engine": "rapidocr",
    "Tile": "tiling",
    "plan_tiles": "tiling",
}

_OPTIONS = ("threads", "max_side_len", "use_cls", "text_score", "tight_boxes")


def __getattr__(name: str) -> Any:
    """The engine's names under their old path, imported on first use."""
    if name in _MOVED:
        return getattr(importlib.import_module(f"ocrclient.engines.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LocalTransport:
    """Runs RapidOCR in-process, on the CPU.

    ``from_config`` reads ``transport_options``: ``threads`` (onnxruntime intra-op threads,
    default ``$OCRCLIENT_LOCAL_THREADS``, else the CPU count), ``max_side_len`` (default 2000), ``use_cls`` (default true),
    ``text_score`` (default 0.5), ``tight_boxes`` (default true).

    Example::

        t = LocalTransport()
        reply = await t.send(ModelRequest(body={"image": png_bytes}))
        reply.text                 # "Quarterly Field Report\\nPrepared by ..."
        reply.data["lines"][0]     # {"text": ..., "score": 0.99, "box": [...], "words": [...]}
    """

    #: the kinds of request it carries (``Backend`` checks its dialect's ``SENDS`` against them)
    TAKES: frozenset[str] = frozenset({"engine"})

    #: the settings chosen for a backend that it reads: none (no server, no key; see ``Transport``)
    READS: frozenset[str] = frozenset()

    #: options that cannot change what a page reads (the cache key leaves them out)
    neutral_options = frozenset({"threads"})

    def __init__(self, settings: EngineSettings | None = None) -> None:
        from ..engines.rapidocr import EngineSettings

        self.settings = settings or EngineSettings()

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> LocalTransport:
        """Raises :class:`ConfigError` for unknown options and when the engine is not installed
        (so a run without the ``[local]`` extra stops before any page, exit code 2)."""
        from ..engines.rapidocr import EngineSettings, engine_missing

        opts = dict(cfg.transport_options)
        unknown = sorted(set(opts) - set(_OPTIONS))
        if unknown:
            raise ConfigError(
                f"backend {cfg.name!r}: unknown transport option(s) {', '.join(unknown)} "
                f"for the local engine (known: {', '.join(sorted(_OPTIONS))})"
            )
        from .options import LocalOptions, checked_options

        o = checked_options(LocalOptions, cfg, "local")  # (values: "maybe" was taken for true)
        settings = EngineSettings(threads=o.threads, max_side_len=o.max_side_len, use_cls=o.use_cls,
                                  text_score=o.text_score, tight_boxes=o.tight_boxes)  # fmt: skip
        if why := engine_missing():
            raise ConfigError(why)
        settings.resolved_threads()  # (a bad $OCRCLIENT_LOCAL_THREADS: before any page)
        return cls(settings)

    # -- the seam ----------------------------------------------------------------------------
    async def send(self, request: ModelRequest) -> ModelReply:
        image = request.body.get("image")
        if not isinstance(image, (bytes, bytearray)) or not image:
            raise PermanentError(
                "the local engine needs the page image bytes in body['image']", cause="bad_request"
            )
        pdf = request.body.get("pdf")
        if pdf is not None and not (isinstance(pdf, dict) and pdf.get("path") and "index" in pdf):
            raise PermanentError(
                "the local engine needs body['pdf'] as {'path', 'index', 'mode'}", cause="bad_request"
            )
        return await left_behind_on_stop(self._read, bytes(image), pdf)  # (Ctrl-C does not wait for it)

    async def health(self) -> Health:
        from ..engines.rapidocr import get_engine, rapidocr_version

        try:
            engine = await asyncio.to_thread(get_engine, self.settings)
        except ConfigError as exc:
            return Health(ok=False, detail=str(exc))
        models = ", ".join(f"{k}={v}" for k, v in engine.models.items())
        return Health(
            ok=True,
            detail=f"RapidOCR loaded in-process ({models})",
            info={
                "engine": "rapidocr",
                "version": rapidocr_version(),
                "models": dict(engine.models),
                "threads": self.settings.resolved_threads(),
                "load_s": round(engine.load_s, 3),
            },
        )

    async def aclose(self) -> None:
        """Close the PDFs the text-layer reader kept open between pages; the engine itself is
        shared by the whole process and lives with it."""
        import sys

        text_layer = sys.modules.get("ocrclient.engines.text_layer")
        if text_layer is not None:  # only when a page was read from its PDF: imports no engine
            await asyncio.to_thread(text_layer.close_documents)

    def _read(self, data: bytes, pdf: dict[str, Any] | None = None) -> ModelReply:
        """One page, in a worker thread."""
        if pdf is not None:
            from ..engines.pdf_page import read_pdf_page

            page = read_pdf_page(data, pdf, self.settings)
            return ModelReply(text=page.text, finish_reason="stop", latency_s=page.seconds, data=page.data)
        from ..engines.read import read_image

        reading = read_image(data, self.settings)
        return ModelReply(
            text=reading.text, finish_reason="stop", latency_s=reading.seconds, data=reading.data()
        )
