"""Crash and resume (issues 3 + 8.2): SIGKILL ``ocr convert`` mid-run, rerun it, and check that
no finished page is sent again and the output has every page once, in order.

The simulated vLLM server runs in the test process, keyed by page image, so its per-page
request counters survive the client's death.  Helpers are shared with
``benchmarks/crash_resume.py``.
"""

from __future__ import annotations

import importlib.util
import json
import random
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cr = _load("crash_resume")

pytestmark = pytest.mark.timeout(120)

PAGES = 24


@pytest.fixture(scope="module")
def sim() -> Iterator[Any]:
    s = cr.start_sim(latency=(0.1, 0.25), slots=4)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cr.make_pdf(tmp_path_factory.mktemp("resume") / "doc.pdf", PAGES)


@pytest.fixture(scope="module")
def expected(pdf: Path) -> list[str]:
    from ocrclient.imaging import RenderSpec

    return cr.expected_digests(pdf, RenderSpec(dpi=72, format="jpeg"))


def test_sigkill_then_rerun_sends_nothing_for_finished_pages(
    sim: Any, pdf: Path, expected: list[str], tmp_path: Path
) -> None:
    kill_at = random.randint(3, PAGES - 8)
    r = cr.trial(sim, pdf, PAGES, [kill_at], tmp_path, expected)
    assert r["kills"][0]["killed"], (
        f"the run finished before {kill_at} pages were cached; nothing was tested"
    )
    assert r["finished_at_crash"] >= kill_at
    assert r["corrupt_entries"] == 0
    # the rerun sent nothing for finished pages, and exactly one request for each other page
    assert r["resent_finished"] == 0, f"kill at {kill_at}: {r}"
    assert r["rerun_sent"] == PAGES - r["finished_at_crash"]
    assert r["rerun_cached"] == r["finished_at_crash"]
    assert r["final_code"] == 0, r["final_stderr"]
    assert r["total"] == PAGES and r["ok"] == PAGES
    assert r["duplicates"] == 0 and r["order_errors"] == 0
    assert r["wrong_content"] == 0 and r["missing"] == 0


def test_two_crashes_in_a_row(sim: Any, pdf: Path, expected: list[str], tmp_path: Path) -> None:
    first = random.randint(2, 8)
    second = random.randint(first + 3, PAGES - 4)
    r = cr.trial(sim, pdf, PAGES, [first, second], tmp_path, expected)
    assert all(k["killed"] for k in r["kills"]), r["kills"]
    assert r["resent_finished"] == 0, r
    assert r["corrupt_entries"] == 0
    assert r["final_code"] == 0 and r["ok"] == PAGES
    assert r["duplicates"] == 0 and r["order_errors"] == 0 and r["wrong_content"] == 0


def test_damaged_cache_entry_is_resent_not_fatal(
    sim: Any, pdf: Path, expected: list[str], tmp_path: Path
) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    cmd = cr.cli_command(pdf, out, cache, sim.base_url)
    env = cr.cli_env(sim.api_key)
    assert cr.run_until(cmd, env, cache, None)["code"] == 0
    entries = sorted((cache / "pages").glob("*/*.json"))
    assert len(entries) == PAGES
    # what a non-atomic writer would leave after a kill: a torn entry, plus a stray temp file
    victim = entries[0]
    raw = victim.read_text()
    victim.write_text(raw[: len(raw) // 2])
    (victim.parent / ".tmp-stray.json").write_text("{")
    shutil.rmtree(out)  # a finished document is skipped by the output manifest; start afresh
    before = dict(sim.requests_by_key)
    r = cr.run_until(cmd, env, cache, None)
    assert r["code"] == 0, r["stderr"]
    after = dict(sim.requests_by_key)
    sent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert sum(sent.values()) == 1  # only the damaged page went out again
    doc = json.loads((out / "doc.json").read_text())
    chk = cr.check_pages(doc["pages"], expected)
    assert (
        chk["ok"] == PAGES
        and chk["duplicates"] == 0
        and chk["order_errors"] == 0
        and chk["wrong_content"] == 0
    )
    finished, corrupt, _ = cr.read_cache(cache)
    assert corrupt == 0 and len(finished) == PAGES  # the torn entry was rewritten whole


# -- what a cached page is valid for (issue 13, defect 2) -----------------------------------------
# A cached page is served only for the settings and the server it came from: a changed engine
# setting or another endpoint sends the page again.  The key's kind tests are in test_cache.py.


def _one_page_pdf(path: Path) -> Path:
    from .pdfgen import text_pdf

    return text_pdf(path, [["Resume cache check", "second line of text"]], size=(0, 0, 300, 140))


def test_changed_local_text_score_is_not_served_from_the_cache(tmp_path: Path) -> None:
    pytest.importorskip("rapidocr")
    import ocrclient

    pdf = _one_page_pdf(tmp_path / "one.pdf")
    cache = tmp_path / "cache"
    kwargs: dict[str, Any] = {"backend": "local", "cache": cache, "render": {"dpi": 100}}
    first = ocrclient.convert(pdf, **kwargs)
    assert first.pages[0].status == "ok" and not first.pages[0].cached
    again = ocrclient.convert(pdf, **kwargs)
    assert again.pages[0].cached  # same settings: served from the cache
    for options in ({"text_score": 0.9}, {"tight_boxes": False}):
        changed = ocrclient.convert(pdf, **kwargs, transport_options=options)
        assert changed.pages[0].status == "ok"
        assert not changed.pages[0].cached, f"{options} was served the page read with other settings"
        assert changed.stats.cached == 0


def test_another_endpoint_is_not_served_from_the_cache(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ocrclient.cli import app
    from ocrclient.testing import RunPodSimulator

    pdf = _one_page_pdf(tmp_path / "doc.pdf")
    cache = tmp_path / "cache"

    def convert(sim: RunPodSimulator, endpoint_id: str, key: str, out: str) -> Any:
        args = ["convert", str(pdf), "-o", str(tmp_path / out), "--backend", "runpod", "--model", "sim/m",
                "--base-url", sim.base_url, "--endpoint-id", endpoint_id, "--cache-dir", str(cache),
                "--dpi", "36", "--quiet", "--no-progress"]  # fmt: skip
        return CliRunner().invoke(app, args, env={"RUNPOD_API_KEY": key, "NO_COLOR": "1"}, catch_exceptions=False)

    with (
        RunPodSimulator(endpoint_id="sim-endpoint") as sim,
        RunPodSimulator(endpoint_id="PRODUCTION", api_key="rp_production_key_98765") as prod,
    ):
        res = convert(sim, "sim-endpoint", sim.api_key, "o1")
        assert res.exit_code == 0, res.output
        assert sim.jobs_submitted == 1
        # the same endpoint again: from the cache, nothing sent (the control)
        assert convert(sim, "sim-endpoint", sim.api_key, "o2").exit_code == 0
        assert sim.jobs_submitted == 1
        # production, on another URL, refuses the simulator's key: it must be asked, and say no
        res = convert(prod, "PRODUCTION", sim.api_key, "o3")
        assert prod.requests_total > 0, "pages cached from the simulator were served for PRODUCTION"
        assert res.exit_code == 2 and "401" in res.stderr
        # with its own key, production reads the page itself
        res = convert(prod, "PRODUCTION", prod.api_key, "o4")
        assert res.exit_code == 0, res.output
        assert prod.jobs_submitted == 1
        doc = json.loads((tmp_path / "o4" / "doc.json").read_text())
        assert [p["cached"] for p in doc["pages"]] == [False]
        # the same URL with another endpoint id is another server too (this one does not exist)
        before = sim.requests_total
        res = convert(sim, "other-endpoint", sim.api_key, "o5")
        assert sim.requests_total > before
        # an endpoint id the server does not know stops the run (exit 2), it is not served
        assert res.exit_code == 2 and "not found" in res.stderr
