"""The pytest plugin ``ocrclient.testing.pytest_plugin``: its fixtures, used from a user's test
file (through ``pytester``) and directly, and ``ocr_env`` pointing backends — and the ``ocr`` CLI
in a subprocess — at the simulators through the environment alone."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocrclient.testing import FaultPlan, OcularSimulator, OpenAISimulator, RunPodSimulator

pytest_plugins = ["pytester", "ocrclient.testing.pytest_plugin"]

ROOT = Path(__file__).resolve().parents[1]

USER_CONFTEST = """
pytest_plugins = ["ocrclient.testing.pytest_plugin"]
"""

# what a user writes: their code calls ocrclient.convert() with no backend; the fixtures decide
USER_TESTS = r'''
import io, socket
import httpx
import pytest
from PIL import Image, ImageDraw

import ocrclient
from ocrclient.testing import FaultPlan

PORTS = []


@pytest.fixture
def page_png(tmp_path):
    img = Image.new("RGB", (400, 200), "white")
    ImageDraw.Draw(img).text((20, 80), "Invoice 42", fill="black")
    path = tmp_path / "page.png"
    img.save(path)
    return path


def my_code(path):
    """The user's code under test: no backend named, the environment decides."""
    return ocrclient.convert(path)


def test_runpod(runpod_sim, ocr_env, page_png):
    env = ocr_env(runpod_sim)
    assert env["OCRCLIENT_BACKEND"] == "runpod-olmocr"
    doc = my_code(page_png)
    assert doc.backend == "runpod-olmocr"
    assert [p.status for p in doc.pages] == ["ok"]
    assert "Simulated text" in doc.pages[0].markdown
    assert runpod_sim.jobs_submitted == 1
    PORTS.append(runpod_sim.port)


def test_runpod_factory_plan(runpod_sim_factory, ocr_env, page_png):
    # a truncated reply is retried at once; one fault per page at most
    sim = runpod_sim_factory(plan=FaultPlan(seed=3, rates={"length": 1.0}, max_faults_per_key=1))
    ocr_env(sim, "runpod-olmocr")
    doc = my_code(page_png)
    assert doc.pages[0].status == "ok" and doc.pages[0].attempts == 2
    assert sim.plan.injected["length"] == 1 and sim.jobs_submitted == 2
    PORTS.append(sim.port)


def test_pod_proxy(pod_proxy_sim, ocr_env, page_png):
    ocr_env(pod_proxy_sim)
    doc = my_code(page_png)
    assert doc.backend == "runpod-pod-lightonocr2" and doc.pages[0].status == "ok"
    assert pod_proxy_sim.streamed == 1 and pod_proxy_sim.proxy_524s == 0
    PORTS.append(pod_proxy_sim.port)


def test_modal(modal_sim, ocr_env, page_png):
    ocr_env(modal_sim)
    doc = my_code(page_png)
    assert doc.backend == "modal-lightonocr" and doc.pages[0].status == "ok"
    # the simulator enforces Modal's proxy auth: the client passed it from MODAL_KEY / MODAL_SECRET
    assert httpx.get(modal_sim.base_url + "/models").status_code == 401
    PORTS.append(modal_sim.port)


def test_openai_direct(openai_sim, ocr_env, page_png):
    ocr_env(openai_sim)
    doc = my_code(page_png)
    assert doc.backend == "openai" and doc.model == openai_sim.model
    assert doc.pages[0].status == "ok"
    assert openai_sim.requests["POST /v1/chat/completions"] == 1
    PORTS.append(openai_sim.port)


def test_ocular(ocular_sim, ocr_env, page_png):
    ocr_env(ocular_sim)
    doc = my_code(page_png)
    assert doc.backend == "runpod-trocr" and doc.pages[0].status == "ok"
    assert ocular_sim.requests["POST /extract_text"] == 1
    PORTS.append(ocular_sim.port)


def test_zz_all_stopped():
    assert len(PORTS) == 6
    for port in PORTS:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
'''


def _doc_block(after: str) -> str:
    """The code block that follows the line ``after`` in docs/testing.md's worked example."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    worked = text.split("## A worked example", 1)[1]
    return worked.split(after + "\n", 1)[1].split("```", 1)[0]


def test_fixtures_work_in_a_user_test_file(pytester: pytest.Pytester) -> None:
    from PIL import Image, ImageDraw

    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_user=USER_TESTS)
    # the worked example of docs/testing.md, verbatim: the docs stay true
    pytester.makepyfile(invoices=_doc_block("# invoices.py"), test_invoices=_doc_block("# test_invoices.py"))
    img = Image.new("RGB", (850, 1100), "white")
    ImageDraw.Draw(img).text((100, 80), "INVOICE 42", fill="black")
    img.save(pytester.path / "invoice.pdf")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=180)
    result.assert_outcomes(passed=11)


def test_docs_cover_every_fault_class_and_backend() -> None:
    from ocrclient.config import list_profiles
    from ocrclient.testing import FAULTS

    testing = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    table = testing.split("## Fault classes, simulator by simulator", 1)[1].split("\n## ", 1)[0]
    for fault in FAULTS:
        assert f"`{fault}`" in table, fault
    backends = (ROOT / "docs" / "backends.md").read_text(encoding="utf-8")
    for name in list_profiles():
        assert f"[`{name}`]" in backends, name


def test_plugin_is_opt_in_and_core_does_not_import_pytest() -> None:
    groups = entry_points(group="pytest11")
    assert not [ep for ep in groups if ep.value.startswith("ocrclient")]
    code = (
        "import sys, ocrclient, ocrclient.testing\n"
        "from ocrclient.testing import RunPodSimulator, OpenAISimulator, OcularSimulator\n"
        "import ocrclient.testing.__main__, ocrclient.api, ocrclient.cli\n"
        "assert 'pytest' not in sys.modules, 'core imported pytest'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_factory_builds_with_kwargs_and_stops(runpod_sim_factory: Any, ocular_sim_factory: Any) -> None:
    plan = FaultPlan(seed=5, slots=2)
    sim = runpod_sim_factory(plan=plan, endpoint_id="my-endpoint", api_key="rp_k")
    ocular = ocular_sim_factory(api_key="k")
    assert sim.plan is plan and sim.endpoint_id == "my-endpoint"
    r = httpx.get(f"{sim.base_url}/my-endpoint/health", headers={"Authorization": "Bearer rp_k"})
    assert r.status_code == 200 and r.json()["workers"]["ready"] == 2
    assert httpx.post(ocular.url + "/extract_text", json={"image": "aGk="}).status_code == 401


def test_default_fixtures_have_a_default_plan(
    runpod_sim: RunPodSimulator, openai_sim: OpenAISimulator, pod_proxy_sim: OpenAISimulator,
    modal_sim: OpenAISimulator, ocular_sim: OcularSimulator,
) -> None:
    from ocrclient.testing.pytest_plugin import default_backend_for

    for sim in (runpod_sim, openai_sim, pod_proxy_sim, modal_sim, ocular_sim):
        assert sim.plan.rates == {} and sim.plan.latency_s == (0.0, 0.0)
    assert (openai_sim.mode, pod_proxy_sim.mode, modal_sim.mode) == ("direct", "proxy", "modal")
    assert pod_proxy_sim.model == "lightonai/LightOnOCR-2-1B"
    assert modal_sim.model == "lightonai/LightOnOCR-1B-1025"
    assert httpx.get(openai_sim.url + "/health").status_code == 200
    assert [default_backend_for(s) for s in (runpod_sim, openai_sim, pod_proxy_sim, modal_sim, ocular_sim)] == [
        "runpod-olmocr", "openai", "runpod-pod-lightonocr2", "modal-lightonocr", "runpod-trocr"]


def test_ocr_env_sets_profile_variables(runpod_sim_factory: Any, ocr_env: Any) -> None:
    from ocrclient.config import resolve_config
    from ocrclient.registry import configured

    sim = runpod_sim_factory(endpoint_id="ep-chandra")
    env = ocr_env(sim, "runpod-chandra")
    assert os.environ["RUNPOD_CHANDRA_ENDPOINT_ID"] == "ep-chandra" == env["RUNPOD_ENDPOINT_ID"]
    assert os.environ["RUNPOD_API_KEY"] == sim.api_key
    assert os.environ["OCRCLIENT_BACKEND"] == "runpod-chandra"
    cfg = resolve_config()
    assert cfg.name == "runpod-chandra" and cfg.resolved_base_url() == sim.base_url
    assert cfg.transport_options["poll_interval_s"] == 0.05
    assert cfg.transport_options["mode"] == "runsync"  # the profile's other options stay
    assert configured(cfg)[0]
    config = Path(env["OCRCLIENT_CONFIG_DIR"]) / "config.toml"
    assert config.stat().st_mode & 0o077 == 0
    assert tomllib.loads(config.read_text())["backends"]["runpod-chandra"]["base_url"] == sim.base_url
    assert list(Path(env["OCRCLIENT_CACHE_DIR"]).iterdir()) == []


def test_ocr_env_ocular_turns_runpod_trocr_into_plain_http(ocular_sim_factory: Any, ocr_env: Any) -> None:
    from ocrclient.config import resolve_config

    sim = ocular_sim_factory(api_key="oc-key")
    ocr_env(sim)
    cfg = resolve_config()
    assert (cfg.name, cfg.transport, cfg.resolved_base_url()) == ("runpod-trocr", "ocular", sim.url)
    assert cfg.secret() == "oc-key"


def test_ocr_env_rejects_a_backend_the_simulator_cannot_serve(
    runpod_sim: RunPodSimulator, modal_sim: OpenAISimulator, ocr_env: Any
) -> None:
    with pytest.raises(ValueError, match="transport"):
        ocr_env(runpod_sim, "modal-lightonocr")
    with pytest.raises(ValueError, match="transport"):
        ocr_env(modal_sim, "runpod-olmocr")
    with pytest.raises(TypeError):
        ocr_env(object())


def test_cli_in_a_subprocess_reaches_the_simulator(
    pod_proxy_sim: OpenAISimulator, ocr_env: Any, tmp_path: Path
) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (300, 120), "white")
    ImageDraw.Draw(img).text((10, 50), "hello", fill="black")
    img.save(tmp_path / "scan.png")
    ocr_env(pod_proxy_sim)
    proc = subprocess.run(
        [sys.executable, "-m", "ocrclient.cli", "convert", str(tmp_path / "scan.png"), "-o", str(tmp_path / "out"),
         "--no-progress"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Simulated text" in (tmp_path / "out" / "scan.md").read_text()
    assert pod_proxy_sim.requests["POST /v1/chat/completions"] == 1


def test_ocr_env_local_flavour(runpod_sim_factory: Any, ocr_env: Any, tmp_path: Path) -> None:
    """The runpod SDK's --rp_serve_api server: no /v2, no auth, transport mode "local"."""
    from PIL import Image

    import ocrclient

    Image.new("RGB", (200, 100), "white").save(tmp_path / "blank.png")
    sim = runpod_sim_factory(flavour="local")
    ocr_env(sim, "runpod-rolmocr")
    doc = ocrclient.convert(tmp_path / "blank.png")
    assert doc.backend == "runpod-rolmocr" and doc.pages[0].status == "ok"
    assert sim.requests["run"] + sim.requests["runsync"] == 1 and sim.jobs_submitted == 1


def test_ocr_env_serves_every_shipped_remote_profile_from_every_simulator_that_speaks_it(
    runpod_sim: RunPodSimulator, openai_sim: OpenAISimulator, pod_proxy_sim: OpenAISimulator,
    modal_sim: OpenAISimulator, ocular_sim: OcularSimulator, ocr_env: Any, tmp_path: Path,
) -> None:
    """The whole kind: each shipped remote profile, pointed by ``ocr_env`` at each simulator
    that can serve its transport, converts a page with no other setting (the generic ``runpod``
    profile has no model of its own: ``ocr_env`` gives it one, as it does for ``openai``)."""
    from PIL import Image

    import ocrclient
    from ocrclient.config import list_profiles

    Image.new("RGB", (200, 100), "white").save(tmp_path / "blank.png")
    sims = {"runpod": runpod_sim, "openai": openai_sim, "proxy": pod_proxy_sim, "modal": modal_sim,
            "ocular": ocular_sim}  # fmt: skip
    served: dict[str, list[str]] = {}
    for name in sorted(list_profiles()):
        if name == "local":
            continue
        for kind, sim in sims.items():
            try:
                ocr_env(sim, name)
            except ValueError:  # a transport this simulator does not speak
                continue
            doc = ocrclient.convert(tmp_path / "blank.png", cache=False)
            page = doc.pages[0]
            assert doc.backend == name and page.status != "failed" and page.markdown.strip(), (name, kind, page.error)
            served.setdefault(name, []).append(kind)
    assert set(served) == set(list_profiles()) - {"local"}, served
    assert served["runpod"] == ["runpod"] and "ocular" in served["runpod-trocr"]


def test_ocr_env_called_again_drops_the_variables_of_the_first_call(
    openai_sim: OpenAISimulator, runpod_sim: RunPodSimulator, ocr_env: Any
) -> None:
    first = ocr_env(openai_sim, "openai")
    assert os.environ["OCRCLIENT_BASE_URL"] == openai_sim.base_url and "OCRCLIENT_MODEL" in first
    second = ocr_env(runpod_sim, "runpod-chandra")
    for name in set(first) - set(second):
        assert name not in os.environ, name
    assert os.environ["OCRCLIENT_BACKEND"] == "runpod-chandra"


def test_ocr_env_reaches_a_runpod_simulator_that_checks_no_key(runpod_sim_factory: Any, ocr_env: Any, tmp_path: Path) -> None:
    """``runpod_sim_factory(api_key=None)`` then ``ocr_env(sim)``: the client refused to send
    without a key ("RunPod API key missing"); ocr_env gives it one nobody checks."""
    import ocrclient

    from .pdfgen import text_pdf

    sim = runpod_sim_factory(api_key=None)
    ocr_env(sim)
    doc = ocrclient.convert(text_pdf(tmp_path / "a.pdf", [["one"]]), cache=False)
    assert doc.pages[0].status == "ok"


def test_ocr_env_refuses_an_ocular_simulator_in_modal_mode(ocular_sim_factory: Any, ocr_env: Any) -> None:
    """The ocular transport sends no Modal proxy auth: ``ocr_env`` pointed the backend at such
    a simulator and every page got a 401; it says why instead."""
    sim = ocular_sim_factory(mode="modal")
    with pytest.raises(ValueError, match="sends no Modal proxy auth"):
        ocr_env(sim)
