"""The embedded OCR engine (RapidOCR, on the CPU) and the layout built from the lines it reads.

One page through the modules, in pipeline order:

* :mod:`.rapidocr` – the engine: its settings, loading it once per process, running it on an
  image, its result as line dicts, the ``[local]`` extra check (:func:`engine_missing`);
* :mod:`.tiling` – extreme-aspect pages cut into overlapping tiles, and the readings merged;
* :mod:`.ink` – the detector's padded boxes shrunk to the ink they hold;
* :mod:`.script` – the page's script, and low-confidence characters of other scripts kept out;
* :mod:`.orientation` – a page standing sideways or upside down in its image, read turned upright;
* :mod:`.read` – one encoded page image through the five above (what the ``local`` transport,
  :mod:`ocrclient.transports.local`, runs in a worker thread);
* :mod:`.text_layer`, :mod:`.trust`, :mod:`.pdf_page` – a PDF page read from its own text layer
  (pypdfium2, exact boxes) when that can be trusted, else through :mod:`.read` (what the
  transport runs for a page whose request names its PDF);
* :mod:`.lines` – recognised lines as the layout sees them (boxes, font sizes);
* :mod:`.tables`, :mod:`.reading_order`, :mod:`.furniture`, :mod:`.layout` – lines -> tables,
  reading order, page furniture, paragraphs and headings (what the ``rapidocr`` dialect,
  :mod:`ocrclient.dialects.rapidocr`, runs on each reply).

``rapidocr``, ``onnxruntime`` and ``numpy`` are imported only when an engine is built or a page is
read, so importing this package is cheap.  Transports reach it only lazily (inside a function):
``transports/`` imports no OCR engine.
"""

from .layout import layout_lines
from .rapidocr import (
    INSTALL_HINT,
    EngineSettings,
    engine_constructions,
    engine_missing,
    get_engine,
)
from .read import Reading, read_image
from .tiling import Tile, plan_tiles

__all__ = [
    "INSTALL_HINT",
    "EngineSettings",
    "Reading",
    "Tile",
    "engine_constructions",
    "engine_missing",
    "get_engine",
    "layout_lines",
    "plan_tiles",
    "read_image",
]
