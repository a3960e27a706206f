"""The RunPod simulator serves one model when given one, as the deploy/ workers and vLLM do: a
chat request naming another FAILs with their 404, which stops the client's run (it served any
model, so 'a wrong model stops the run' could not be tested against it), and the worker's
``/v1/models`` route names it.  Both flavours, both ways of sending."""

from __future__ import annotations

from pathlib import Path

import pytest

import ocrclient
from ocrclient.errors import EndpointError
from ocrclient.testing import DialectResponder, RunPodSimulator

from .pdfgen import text_pdf


@pytest.mark.parametrize("mode", ["runsync", "run", "local"])
def test_a_model_the_simulated_worker_does_not_serve_stops_the_run(mode: str, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "a.pdf", [["one"], ["two"]])
    flavour = "local" if mode == "local" else "api"
    with RunPodSimulator(model="allenai/olmOCR-2-7B-1025-FP8", flavour=flavour, responder=DialectResponder("olmocr")) as sim:
        kw = {"backend": "runpod-olmocr", "base_url": sim.base_url, "api_key": sim.api_key, "cache": False,
              "transport_options": {"mode": mode, "poll_interval_s": 0.05}}  # fmt: skip
        if mode != "local":
            kw["endpoint_id"] = sim.endpoint_id
        assert ocrclient.convert(pdf, **kw).ok  # the profile's own model: served
        with pytest.raises(EndpointError, match="does not exist"):
            ocrclient.convert(pdf, model="someone/else", **kw)


def test_the_simulated_worker_names_its_model_on_the_models_route() -> None:
    import httpx

    with RunPodSimulator(model="m/served") as sim:
        r = httpx.post(f"{sim.base_url}/{sim.endpoint_id}/runsync", json={"input": {"openai_route": "/v1/models"}},
                       headers={"Authorization": f"Bearer {sim.api_key}"}, timeout=10)  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
    assert [m["id"] for m in r.json()["output"][0]["data"]] == ["m/served"]
