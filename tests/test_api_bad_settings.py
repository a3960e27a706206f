"""A setting the Python API cannot use is one of ``ocrclient.errors`` (``ConfigError``), raised
before anything runs, as the CLI's one line: they were built-in errors from deep inside
(``ValueError`` for a render DPI of 0, ``AttributeError: 'list' object has no attribute
'strip'`` for ``pages=[1, 3]``, ``UnicodeDecodeError`` for a PDF given as a profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.errors import ConfigError

from .pdfgen import text_pdf

CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    "render dpi 0": ("convert", {"render": {"dpi": 0}}, "dpi must be positive"),
    "render dpi NaN": ("convert", {"render": {"dpi": float("nan")}}, "dpi must be positive"),
    "render longest side 0": ("convert", {"render": {"dpi": None, "longest_side": 0}}, "longest_side must be positive"),
    "render format gif": ("convert", {"render": {"format": "gif"}}, "unknown image format"),
    "render quality 0": ("convert", {"render": {"format": "jpeg", "quality": 0}}, "quality must be 1-100"),
    "pages as a list": ("convert", {"pages": [1, 3]}, "pages takes a range"),
    "pages as a number": ("convert", {"pages": 2}, "pages takes a range"),
    "a PDF as a profile": ("load_backend", {}, "not a TOML profile"),
    # every transport with a base URL: one that is not http(s) is refused, not retried per page
    "OpenAI API, no URL": ("convert", {"backend": "openai", "base_url": "notaurl", "model": "m", "api_key": "k"}, "not an http"),
    "RunPod, ftp URL": ("convert", {"backend": "runpod-chandra", "base_url": "ftp://x/y", "endpoint_id": "e", "api_key": "k"},
                        "not an http"),
    "ocular, no host": ("convert", {"backend": "runpod-olmocr", "transport": "ocular", "base_url": "http://", "api_key": "k"},
                        "not an http"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_setting_the_api_cannot_use_is_a_config_error(case: str, tmp_path: Path) -> None:
    call, kwargs, needle = CASES[case]
    pdf = text_pdf(tmp_path / "a.pdf", [["Hello"]])
    with pytest.raises(ConfigError, match=needle):
        if call == "load_backend":
            ocrclient.load_backend(str(pdf))
        else:
            ocrclient.convert(pdf, **{"backend": "local", "cache": False, **kwargs})
