"""Settings a run cannot use are refused when the backend loads (one line, exit 2, nothing
sent), each value of each kind: the render spec's numbers and the embedded engine's options.
Accepted before: ``render.max_pixels = -1`` (every page failed, "math domain error"),
``max_side_len = 0`` (a ZeroDivisionError taken for a transient transport bug), ``text_score =
5`` (every page "no text found", exit 0), ``dpi`` 1e-9 (every page empty) or inf, and
``use_cls = "maybe"`` (true)."""

from __future__ import annotations

from typing import Any

import pytest

import ocrclient
from ocrclient.errors import ConfigError

#: (setting, bad values, a good value)
RENDER = {
    "dpi": ([0, -5, 1e-9, 0.5, float("inf"), float("nan")], 144),
    "longest_side": ([0, -1], 1024),
    "max_pixels": ([0, -1], 4_000_000),
    "min_side": ([0, -3], 32),
    "quality": ([0, 101], 80),
    "format": (["gif", "PNG8"], "jpeg"),
}
LOCAL = {
    "threads": ([-1, "many"], 2),
    "max_side_len": ([0, -5, 10], 1600),
    "text_score": ([5, -0.1, "high"], 0.6),
    "use_cls": (["maybe", 3], False),
    "tight_boxes": (["perhaps"], "no"),
}


@pytest.mark.parametrize("name", sorted(RENDER))
def test_every_render_setting_refuses_what_cannot_render(name: str) -> None:
    bad, good = RENDER[name]
    for value in bad:
        with pytest.raises(ConfigError, match=name if name != "format" else "image format"):
            ocrclient.load_backend("local", render={name: value})
    ocrclient.load_backend("local", render={name: good}).close()


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_every_engine_option_refuses_what_the_engine_cannot_take(name: str) -> None:
    bad, good = LOCAL[name]
    for value in bad:
        with pytest.raises(ConfigError, match=f"transport_options.{name}"):
            ocrclient.load_backend("local", transport_options={name: value})
    be = ocrclient.load_backend("local", transport_options={name: good})
    want: Any = {"no": False}.get(good, good) if isinstance(good, str) else good
    assert getattr(be.transport.settings, name) == want  # type: ignore[attr-defined]
    be.close()


def test_the_engine_options_table_covers_every_option() -> None:
    from ocrclient.transports.local import _OPTIONS

    assert set(LOCAL) == set(_OPTIONS)
