"""The embedded engine's intra-op threads: a profile's ``threads``, else
``$OCRCLIENT_LOCAL_THREADS`` (several ``ocr`` processes side by side on one machine), else the
CPU count capped at 8; a bad variable is one line and exit 2 before any page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrclient.engines.rapidocr import THREADS_ENV, EngineSettings
from ocrclient.errors import ConfigError

from .pdfgen import text_pdf


def _cpus() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 8))


@pytest.mark.parametrize(("option", "env", "want"), [
    (0, None, "cpus"), (0, "3", 3), (0, " 2 ", 2), (5, "3", 5), (5, None, 5),
])  # fmt: skip
def test_threads_come_from_the_profile_then_the_variable_then_the_cpus(
    option: int, env: str | None, want: int | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env is None:
        monkeypatch.delenv(THREADS_ENV, raising=False)
    else:
        monkeypatch.setenv(THREADS_ENV, env)
    assert EngineSettings(threads=option).resolved_threads() == (_cpus() if want == "cpus" else want)
    assert EngineSettings(threads=option).params()["EngineConfig.onnxruntime.intra_op_num_threads"] == (
        _cpus() if want == "cpus" else want
    )


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", "1e3", "\u00b2", "\u0663"])
def test_a_bad_variable_is_a_config_error(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, bad)
    with pytest.raises(ConfigError, match=THREADS_ENV):
        EngineSettings().resolved_threads()
    assert EngineSettings(threads=2).resolved_threads() == 2  # (the profile's own wins: not read)


def test_ocr_convert_with_a_bad_variable_exits_2_with_one_line_before_any_page(tmp_path: Path) -> None:
    pytest.importorskip("rapidocr", reason="the local engine is in the local extra")
    pdf = text_pdf(tmp_path / "d.pdf", [["one line"]])
    env = {**os.environ, THREADS_ENV: "many"}
    run = subprocess.run([sys.executable, "-m", "ocrclient", "convert", str(pdf), "-o", str(tmp_path / "out"),
                          "--text-layer", "never"], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and THREADS_ENV in lines[0] and "'many'" in lines[0], run.stderr
    assert not (tmp_path / "out" / "d.md").exists()


def test_the_engine_runs_with_the_threads_the_variable_asks(tmp_path: Path) -> None:
    """What onnxruntime was given (each model's session), what ``ocr health`` says, and a page
    read, in a process of its own (the engine is built once per process and its settings)."""
    pytest.importorskip("rapidocr", reason="the local engine is in the local extra")
    pdf = text_pdf(tmp_path / "d.pdf", [["Quarterly field report"]])
    script = f"""
import json, ocrclient
from ocrclient.engines.rapidocr import EngineSettings, get_engine
doc = ocrclient.convert({str(pdf)!r}, backend="local", cache=False, dialect_options={{"text_layer": "never"}})
ocr = get_engine(EngineSettings()).ocr
sessions = [m.session.get_session_options().intra_op_num_threads for m in (ocr.text_det.session, ocr.text_rec.session)]
print(json.dumps({{"status": doc.pages[0].status, "md": doc.markdown, "sessions": sessions}}))
"""
    for threads in ("1", "2"):
        env = {**os.environ, THREADS_ENV: threads}
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        assert run.returncode == 0, run.stderr
        got = json.loads(run.stdout.strip().splitlines()[-1])
        assert got["status"] == "ok" and "Quarterly" in got["md"] and got["sessions"] == [int(threads)] * 2, got
        health = subprocess.run([sys.executable, "-m", "ocrclient", "health", "--backend", "local", "--json"],
                                capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
        assert health.returncode == 0 and json.loads(health.stdout)["info"]["threads"] == int(threads), health.stdout
