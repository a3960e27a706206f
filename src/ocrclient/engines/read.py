"""One page image through the engine: decode -> tiles -> RapidOCR (upright) -> ink-tight boxes.

:func:`read_image` is what the in-process transport (:mod:`ocrclient.transports.local`) runs in a
worker thread for each page.  Its :class:`Reading` becomes the reply's ``data``:
``{"lines": [...], "image_size": [w, h], "engine": "rapidocr"}`` (plus ``"tiles": n`` for a page
read in tiles), where every line is ``{"text", "score", "box": [x0, y0, x1, y1], "det_box":
[...], "words": [{"text", "score", "box"}, ...]}`` in pixels of the image that was sent, or,
for a page that stands sideways or upside down in it (:mod:`.orientation`), of that image turned
upright: ``"rotation"`` then says how the page stands in the image sent (clockwise degrees from
upright, as a PDF page's ``/Rotate``) and ``"image_size"`` is the upright size.
``det_box`` is the detector's box (clipped to the image), padded around the text by a fraction
of its height; ``box`` is that box shrunk to the ink it holds (when ``tight_boxes``), and word
boxes share their line's vertical extent.

The page's script is decided from what the engine read with confidence (or from the page's
trusted text layer, when the caller passes it as ``layer_text``), and low-confidence characters
of any other script are removed (:mod:`.script`): a line that lost some says which in
``"dropped"``, a line of nothing else is left out (its text listed in ``data["removed_lines"]``),
and ``data["scripts"]`` lists the scripts found.  The one recognition model the
installed RapidOCR wheel ships is multilingual (Chinese, Japanese, English, Latin-script
languages), so there is no other model to select offline.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import PermanentError
from .ink import clip, place_words, tighten
from .orientation import read_upright
from .rapidocr import EngineSettings, get_engine, lines_from_result, run_engine
from .script import drop_foreign, page_scripts
from .tiling import plan_tiles, read_tiles, wide_padded

__all__ = ["Reading", "read_image"]


@dataclass
class Reading:
    """What the engine read on one page image."""

    lines: list[dict[str, Any]]
    width: int
    height: int
    tiles: int  # 1: read as one image
    seconds: float  # engine and box work, after decoding and loading
    scripts: list[str] = field(default_factory=list)  # the page's scripts (engines.script)
    removed: list[str] = field(default_factory=list)  # lines dropped whole as stray characters
    #: how the page stands in the image sent: clockwise degrees from upright (:mod:`.orientation`)
    rotation: int = 0

    @property
    def text(self) -> str:
        """The lines' text, one per line."""
        return "\n".join(line["text"] for line in self.lines)

    def data(self) -> dict[str, Any]:
        """The reply's ``data`` (see the module docstring)."""
        out: dict[str, Any] = {
            "lines": self.lines,
            "image_size": [self.width, self.height],
            "engine": "rapidocr",
        }
        if self.tiles > 1:
            out["tiles"] = self.tiles
        if self.scripts:
            out["scripts"] = self.scripts
        if self.removed:
            out["removed_lines"] = self.removed
        if self.rotation:
            out["rotation"] = self.rotation
        return out


def decode(data: bytes) -> Any:
    """The sent image, decoded (a loaded PIL image); undecodable bytes are a
    :class:`PermanentError` (``cause="bad_image"``)."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))  # in-memory: nothing to close
        img.load()
        return img
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PermanentError(
            f"the local engine cannot decode the page image ({exc})", cause="bad_image"
        ) from exc


def read_image(data: bytes | Any, settings: EngineSettings, layer_text: str | None = None) -> Reading:
    """Read one page image (its encoded bytes, or the PIL image a caller already decoded) with
    the process's engine for ``settings`` (blocking: call it from a worker thread), upright
    (:mod:`.orientation`: a page fed sideways or upside down is read turned back, its lines in
    pixels of the upright image, :attr:`Reading.rotation` saying how it stands in the image
    sent).  ``layer_text``: the page's trusted text layer, when there is one (it decides the
    page's scripts)."""
    import numpy as np

    image = decode(bytes(data)) if isinstance(data, bytes | bytearray | memoryview) else data
    engine = get_engine(settings)
    start = time.perf_counter()

    def read(img: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
        tiles = plan_tiles(img.width, img.height, max_side=settings.max_side_len)
        if len(tiles) == 1:
            lines = lines_from_result(run_engine(engine, wide_padded(img, settings.max_side_len)))
            return lines, lines, 1
        judged: list[dict[str, Any]] = []
        lines = read_tiles(engine, img, tiles, vertical=img.height > img.width, read=judged)
        return judged, lines, len(tiles)

    lines, rotation, image, tiles = read_upright(image, read)
    gray = np.asarray(image.convert("L"))
    height, width = gray.shape
    scripts = page_scripts(lines, layer_text)
    removed: list[str] = []
    lines = drop_foreign(lines, scripts, removed)
    for line in lines:
        line["det_box"] = clip(line["box"], width, height)
        line["box"] = tighten(gray, line["det_box"]) if settings.tight_boxes else line["det_box"]
        place_words(gray, line, width, height, settings.tight_boxes)
    seconds = time.perf_counter() - start
    return Reading(lines, width, height, tiles, seconds, sorted(scripts), removed, rotation)
