"""Issue 14 defect 4: the pod's API key has one name end to end.

``deploy/runpod-pod-lightonocr2`` (serve.sh, setup.sh, healthcheck.py, README) names the key
``VLLM_API_KEY`` -- the variable ``vllm serve`` itself reads, which keeps the key out of the
process list -- and the ``runpod-pod-lightonocr2`` profile reads the same name, accepting
``OCRCLIENT_API_KEY`` (the other OpenAI-compatible profiles' name) as an alias when it is unset.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import ocrclient
from ocrclient.config import resolve_config
from ocrclient.errors import OcrError
from ocrclient.testing import DialectResponder, OpenAISimulator

from .pdfgen import text_pdf

ROOT = Path(__file__).resolve().parents[1]
POD = ROOT / "deploy" / "runpod-pod-lightonocr2"
PROFILE = ROOT / "backends" / "runpod-pod-lightonocr2.toml"
BACKEND = "runpod-pod-lightonocr2"
KEY_NAME = re.compile(r"\b([A-Z][A-Z0-9_]*API_KEY)\b")


def deploy_key_names() -> dict[str, set[str]]:
    """Every ``*API_KEY`` variable each file of the deploy folder names."""
    out = {}
    for name in ("serve.sh", "setup.sh", "healthcheck.py", "README.md"):
        out[name] = set(KEY_NAME.findall((POD / name).read_text(encoding="utf-8")))
    return out


def test_serve_sh_readme_and_profile_name_the_same_key() -> None:
    cfg = resolve_config(BACKEND)
    names = deploy_key_names()
    # the server reads the key from this variable (and nothing else)
    serve = (POD / "serve.sh").read_text(encoding="utf-8")
    exported = set(re.findall(r"^export ([A-Z_]*API_KEY)\b", serve, re.MULTILINE))
    assert exported == {cfg.api_key_env} == {"VLLM_API_KEY"}, (exported, cfg.api_key_env)
    for file, found in names.items():
        assert found == {cfg.api_key_env}, f"{file} names {sorted(found)}; the profile reads {cfg.api_key_env}"
    # the README's client step points at the profile and the key it reads
    readme = (POD / "README.md").read_text(encoding="utf-8")
    client_step = readme.split("4. From your machine:", 1)[1].split("\n## ", 1)[0]
    assert BACKEND in client_step and cfg.api_key_env in client_step


def test_the_profile_comment_is_true() -> None:
    """Every key variable the profile's comments mention is one it reads; the alias list holds
    the generic name."""
    cfg = resolve_config(BACKEND)
    aliases = cfg.transport_options.get("api_key_env_aliases")
    assert aliases == ["OCRCLIENT_API_KEY"]
    text = PROFILE.read_text(encoding="utf-8")
    comments = "\n".join(line.split("#", 1)[1] for line in text.splitlines() if "#" in line)
    mentioned = set(KEY_NAME.findall(comments))
    assert mentioned and mentioned <= {cfg.api_key_env, *aliases}, mentioned
    assert "serve.sh" in comments  # it says where the key comes from
    assert tomllib.loads(text)["api_key_env"] == "VLLM_API_KEY"


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return text_pdf(tmp_path / "doc.pdf", [["one"], ["two"]], size=(0, 0, 200, 120))


@pytest.mark.parametrize("variable", ["VLLM_API_KEY", "OCRCLIENT_API_KEY"])
def test_either_name_reaches_the_pod(variable: str, pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user who follows the deploy README (``VLLM_API_KEY``) gets ok pages -- so does one who
    set the generic name."""
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("OCRCLIENT_API_KEY", raising=False)
    with OpenAISimulator(mode="proxy", model="lightonai/LightOnOCR-2-1B", responder=DialectResponder("lighton")) as sim:
        monkeypatch.setenv(variable, str(sim.api_key))
        doc = ocrclient.convert(pdf, backend=BACKEND, base_url=sim.base_url, cache=False)
    assert [p.status for p in doc.pages] == ["ok", "ok"]


def test_the_primary_name_wins_and_a_missing_key_is_refused(pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAISimulator(mode="proxy", model="lightonai/LightOnOCR-2-1B", responder=DialectResponder("lighton")) as sim:
        monkeypatch.setenv("VLLM_API_KEY", str(sim.api_key))
        monkeypatch.setenv("OCRCLIENT_API_KEY", "k-some-other-server")
        doc = ocrclient.convert(pdf, backend=BACKEND, base_url=sim.base_url, cache=False)
        assert [p.status for p in doc.pages] == ["ok", "ok"]
        monkeypatch.delenv("VLLM_API_KEY")
        with pytest.raises(OcrError) as info:  # the run stops at the first 401
            ocrclient.convert(pdf, backend=BACKEND, base_url=sim.base_url, cache=False)
    message = str(info.value)
    assert "HTTP 401" in message and "$VLLM_API_KEY" in message and "k-some-other-server" not in message


def test_ocr_config_sees_a_key_set_under_the_alias(tmp_path: Path) -> None:
    """`ocr config` says the key is set when only the alias variable holds it."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("VLLM_API_KEY", "OCRCLIENT_API_KEY")}
    env["OCRCLIENT_CONFIG_DIR"] = str(tmp_path)
    for extra, expected in (({}, False), ({"OCRCLIENT_API_KEY": "alias-secret-1"}, True)):
        run = subprocess.run(
            [sys.executable, "-m", "ocrclient.cli", "config", "--backend", "runpod-pod-lightonocr2"],
            capture_output=True, text=True, env={**env, **extra}, timeout=60,
        )
        data = json.loads(run.stdout)
        assert run.returncode == (2 if data["refused"] else 0), run.stderr
        assert data["api_key_set"] is expected
        assert "alias-secret-1" not in run.stdout
