"""The simulators' ``garbage`` fault is what docs/testing.md calls it, "the model answers
nonsense": for every shipped chat profile, on each simulator that serves it, the client takes it
for bad output (retried, then never ``ok``).  The OpenAI simulator's junk was 240 characters,
under the client's repetition check: its pages came back ``ok`` with the junk as their text, and
a user's test of "garbage is retried" passed only against the RunPod simulator's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.config import list_profiles, resolve_config
from ocrclient.testing import DialectResponder, FaultPlan, OpenAISimulator
from ocrclient.testing.runpod_sim import RunPodSimulator

from .pdfgen import text_pdf

#: every shipped profile whose pages are model replies, and its simulator
PROFILES = {
    "runpod-chandra": "runpod", "runpod-deepseek-ocr": "runpod", "runpod-olmocr": "runpod",
    "runpod-rolmocr": "runpod", "runpod-trocr": "runpod",
    "runpod-pod-lightonocr2": "proxy", "modal-lightonocr": "modal",
}  # fmt: skip


def test_the_table_holds_every_shipped_remote_profile() -> None:
    shipped = {n for n in list_profiles() if n not in ("local", "openai", "runpod")}
    assert shipped == set(PROFILES)


@pytest.mark.parametrize("backend", sorted(PROFILES))
def test_garbage_is_bad_output_for_every_profile(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [["page one"], ["page two"]])
    cfg = resolve_config(backend)
    plan = FaultPlan(rates={"garbage": 1.0})
    responder = DialectResponder(cfg.dialect)
    settings: dict[str, Any] = {"cache": False, "max_attempts": 2,
                                "scheduler_options": {"backoff_initial_s": 0.01, "backoff_max_s": 0.02}}  # fmt: skip
    kind = PROFILES[backend]
    if kind == "runpod":
        sim: Any = RunPodSimulator(plan=plan, responder=responder)
    else:
        monkeypatch.setenv("MODAL_KEY", "wk-sim")
        monkeypatch.setenv("MODAL_SECRET", "ws-sim")
        sim = OpenAISimulator(plan=plan, responder=responder, mode=kind, model=cfg.model or "m",
                              **({"modal_key": "wk-sim", "modal_secret": "ws-sim"} if kind == "modal" else {}))  # fmt: skip
    with sim:
        settings |= {"base_url": sim.base_url, "api_key": sim.api_key}
        if kind == "runpod":
            settings["endpoint_id"] = sim.endpoint_id
        doc = ocrclient.convert(pdf, backend=backend, **settings)
    assert len(doc.pages) == 2
    for page in doc.pages:
        assert page.status != "ok", (backend, page.markdown[:80])
        assert page.attempts == 2, (backend, page.attempts)
        assert page.error is not None and page.error.kind == "bad_output", (backend, page.error)
