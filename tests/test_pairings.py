"""A dialect and a transport that cannot work together are refused when the backend loads: the
dialect's requests (``SENDS``) must be of a kind the transport carries (``TAKES``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrclient.config import list_profiles, resolve_config
from ocrclient.errors import ConfigError
from ocrclient.registry import DIALECTS, TRANSPORTS, dialect_class, load_backend, transport_class

from .fakes import read_by
from .pdfgen import text_pdf

_OVER = {"base_url": "http://127.0.0.1:9/v1", "endpoint_id": "e", "model": "m", "api_key": "k-0123456789"}


@pytest.mark.parametrize("transport", sorted(t for t in TRANSPORTS if t != "pool"))
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_every_dialect_over_every_transport_loads_only_where_it_can_run(dialect: str, transport: str,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    """The whole kind: every built-in dialect over every built-in transport.  ``--dialect
    rapidocr`` over ``openai`` failed every page as a "transport bug" after 4 attempts (exit 1);
    ``--backend local --dialect plain`` every page "needs the page image bytes".  Each pairing
    loads exactly when the transport carries the dialect's kind of request, else is one
    ConfigError naming both."""
    sends, takes = dialect_class(dialect).SENDS, transport_class(transport).TAKES
    profile = tmp_path / "pair.toml"  # (nothing but the pair: no option of another transport's)
    profile.write_text(f'transport = "{transport}"\ndialect = "{dialect}"\n', encoding="utf-8")
    over = read_by(transport, _OVER)  # (what this transport reads of them: the others are refused)
    if sends in takes:
        load_backend(str(profile), **over).close()
    else:
        with pytest.raises(ConfigError, match=f"the {transport} transport cannot carry the {dialect} dialect"):
            load_backend(str(profile), **over)


@pytest.mark.parametrize("profile", sorted(list_profiles()))
def test_every_shipped_profile_pairs_its_dialect_with_its_transport(profile: str) -> None:
    cfg = resolve_config(profile, **_OVER)
    if cfg.transport != "pool":
        assert dialect_class(cfg.dialect).SENDS in transport_class(cfg.transport).TAKES


def test_a_refused_pairing_is_one_line_exit_2_before_anything_is_sent(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    run = subprocess.run([sys.executable, "-m", "ocrclient", "convert", str(pdf), "-o", str(tmp_path / "out"),
                          "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                          "--dialect", "rapidocr"],
                         env={**os.environ, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "cannot carry the rapidocr dialect" in run.stderr and "Traceback" not in run.stderr
