"""``ocr health`` of a RunPod endpoint says whether its worker serves the profile's model.

It read ``/health`` (workers and queue) or, in local mode, the SDK server's route list, and said
"ok" for an endpoint whose worker served another model or whose model had failed to load; the
next ``ocr convert`` stopped at its first page.  The whole kind, from the command line as users
run it, on the hosted API and on the SDK's local server: the model served, another model served,
the model failed to load (deploy/'s workers answer every job with their 503 ``model_not_ready``),
and no worker up (not asked: a job would start one, and bill it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from ocrclient.cli import app
from ocrclient.testing import FaultPlan, RunPodSimulator

#: runpod-chandra's model (backends/runpod-chandra.toml)
CHANDRA = "datalab-to/chandra"
#: the error deploy/'s workers end every job with when their model did not load
#: (``ocrworker.envelope.error_output`` of a 503 ``JobError``: a FAILED job with this error)
LOAD_FAILED = json.dumps({"error_type": "model_not_ready", "error_message": "chandra model failed to load: OSError: no weights",
                          "code": 503, "retryable": False})  # fmt: skip


def _health(sim: RunPodSimulator) -> tuple[int, dict[str, Any]]:
    argv = ["health", "--backend", "runpod-chandra", "--base-url", sim.base_url, "--json"]
    argv += ["--mode", "local"] if sim.flavour == "local" else ["--endpoint-id", sim.endpoint_id]
    res = CliRunner().invoke(app, argv, env={"RUNPOD_API_KEY": str(sim.api_key), "NO_COLOR": "1"}, catch_exceptions=False)
    return res.exit_code, json.loads(res.stdout)


@pytest.mark.parametrize("flavour", ["api", "local"])
@pytest.mark.parametrize(
    ("served", "settings", "code", "says"),
    [
        (CHANDRA, {}, 0, f"model {CHANDRA} served"),
        ("other/model", {}, 2, f"model '{CHANDRA}' is not served; the endpoint serves: other/model"),
        (CHANDRA, {"plan": FaultPlan(rates={"failed": 1.0}), "failed_error": LOAD_FAILED}, 1,
         "the worker's model is not ready: model_not_ready 503: chandra model failed to load"),
        (None, {}, 0, "model not confirmed (the worker names no model)"),
    ],
    ids=["served", "another model", "load failed", "none named"],
)  # fmt: skip
def test_health_says_whether_the_worker_serves_the_profiles_model(
    flavour: str, served: str | None, settings: dict[str, Any], code: int, says: str
) -> None:
    with RunPodSimulator(flavour=flavour, model=served, **settings) as sim:
        exit_code, report = _health(sim)
    assert exit_code == code, report
    assert report["ok"] is (code == 0) and says in report["detail"], report
    if code != 1 and served is not None:
        assert report["info"]["models"] == [served]


def test_no_worker_up_is_not_asked_a_job_would_start_one() -> None:
    with RunPodSimulator(model="other/model", plan=FaultPlan(cold_start_s=30.0)) as sim:
        exit_code, report = _health(sim)
        submitted = sim.jobs_submitted
    assert exit_code == 0 and report["ok"] is True
    assert "model not checked: no worker is up" in report["detail"] and submitted == 0


#: runpod-trocr's model (backends/runpod-trocr.toml)
TROCR = "microsoft/trocr-base-printed"


@pytest.mark.parametrize("flavour", ["api", "local"])
@pytest.mark.parametrize(
    ("health", "code", "says"),
    [
        (None, 0, f"model {TROCR} served"),
        ({"status": "healthy", "models_loaded": [], "models_allowed": [TROCR], "models_failed": {}}, 0, f"model {TROCR} served"),
        ({"status": "healthy", "models_loaded": [], "models_allowed": [TROCR],
          "models_failed": {TROCR: "TrOCR model failed to load: ModuleNotFoundError: No module named 'torch'"}}, 1,
         "the worker's model is not ready: model_not_ready 503: TrOCR model failed to load"),
        ({"status": "healthy", "models_loaded": ["other/trocr"], "models_allowed": ["other/trocr"], "models_failed": {}}, 2,
         f"model '{TROCR}' is not served; the endpoint serves: other/trocr"),
    ],
    ids=["loaded", "allowed", "load failed", "another model"],
)  # fmt: skip
def test_health_asks_an_ocular_worker_its_own_health_job(
    flavour: str, health: dict[str, Any] | None, code: int, says: str
) -> None:
    """runpod-trocr's worker knows no ``/v1/models`` job: it refused it as a bad request, and
    ``ocr health`` said "ok ... model not confirmed" (exit 0) for a worker whose model had
    failed to load, the next convert stopping at its first page (exit 2).  It now asks the
    worker's own ``/health`` job (the profile's ``health_route``): its models loaded or allowed
    are served, one that failed to load is down."""
    with RunPodSimulator(flavour=flavour, model=TROCR) as sim:
        sim.worker_health = health
        argv = ["health", "--backend", "runpod-trocr", "--base-url", sim.base_url, "--json"]
        argv += ["--mode", "local"] if sim.flavour == "local" else ["--endpoint-id", sim.endpoint_id]
        res = CliRunner().invoke(app, argv, env={"RUNPOD_API_KEY": str(sim.api_key), "NO_COLOR": "1"}, catch_exceptions=False)
    report = json.loads(res.stdout)
    assert res.exit_code == code, report
    assert report["ok"] is (code == 0) and says in report["detail"], report
