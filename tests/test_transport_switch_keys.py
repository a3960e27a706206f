"""A profile switched to another transport does not take its API key along: the key of a RunPod
profile is the RunPod *account's* key, and ``--transport ocular`` / ``openai`` sent it to whatever
server ``--base-url`` named (docs/backends.md documents exactly that switch for TrOCR's plain
HTTP app, which checks its own key)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrclient.config import KEY_ENV_OF_TRANSPORT, BackendConfig, list_profiles, resolve_config
from ocrclient.testing import OcularSimulator

from .pdfgen import text_pdf

SENTINEL = "rpa_PROFILEKEY0123456789abcdef"
GENERIC = "generic-key-0123456789"


def _profiles() -> list[tuple[str, str]]:
    """(profile, a transport other than its own) for every shipped remote profile."""
    out = []
    for name in sorted(list_profiles()):
        cfg = resolve_config(name, base_url="http://127.0.0.1:9", endpoint_id="e", model="m")
        if cfg.transport not in KEY_ENV_OF_TRANSPORT:
            continue
        out += [(name, t) for t in KEY_ENV_OF_TRANSPORT if t != cfg.transport]
    return out


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user config; no key variable set (each test sets the ones it needs)."""
    monkeypatch.setenv("OCRCLIENT_CONFIG_DIR", str(tmp_path / "cfg"))
    for name in list_profiles():
        cfg = resolve_config(name, base_url="http://127.0.0.1:9", endpoint_id="e", model="m")
        for var in _key_vars(cfg):
            monkeypatch.delenv(var, raising=False)
    for var in set(KEY_ENV_OF_TRANSPORT.values()):
        monkeypatch.delenv(var, raising=False)


def _key_vars(cfg: BackendConfig) -> list[str]:
    return [v for v in [cfg.api_key_env, *cfg.transport_options.get("api_key_env_aliases", [])] if v]


@pytest.mark.parametrize(("profile", "transport"), _profiles())
@pytest.mark.parametrize("how", ["argument", "user config"])
def test_a_switched_transport_never_gets_the_profiles_key(keys: None, tmp_path: Path, profile: str, transport: str,
                                                          how: str, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The whole kind: every shipped remote profile switched to every other transport, by an
    argument (``--transport``) or in the user config, reads the new transport's own variable
    (``KEY_ENV_OF_TRANSPORT``), never the profile's key; a key named in the same layer as the
    switch is the one used."""
    over = {"base_url": "http://127.0.0.1:9", "endpoint_id": "e", "model": "m"}
    # the profile's key in every variable it reads one from (but the switched-to transport's own)
    for var in _key_vars(resolve_config(profile, **over)):
        if var != KEY_ENV_OF_TRANSPORT[transport]:
            monkeypatch.setenv(var, SENTINEL)
    if how == "argument":
        cfg = resolve_config(profile, transport=transport, **over)
    else:
        (tmp_path / "cfg").mkdir(exist_ok=True)
        (tmp_path / "cfg" / "config.toml").write_text(f'[backends.{profile}]\ntransport = "{transport}"\n')
        cfg = resolve_config(profile, **over)
    assert cfg.transport == transport
    assert cfg.secret() != SENTINEL
    assert cfg.api_key_env == KEY_ENV_OF_TRANSPORT[transport]
    monkeypatch.setenv(KEY_ENV_OF_TRANSPORT[transport], GENERIC)
    assert cfg.secret() == GENERIC
    monkeypatch.setenv("MY_APP_KEY", "my-app-key-0123456789")
    named = resolve_config(profile, transport=transport, api_key_env="MY_APP_KEY", **over)
    assert named.secret() == "my-app-key-0123456789"


def test_the_profiles_own_transport_keeps_its_key(keys: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", SENTINEL)
    cfg = resolve_config("runpod-trocr", transport="runpod", endpoint_id="e")
    assert cfg.secret() == SENTINEL


def test_trocr_over_plain_http_sends_the_apps_key_not_the_runpod_key(tmp_path: Path) -> None:
    """docs/backends.md's own command line: ``--backend runpod-trocr --transport ocular``.  The
    app checks its own key; with the RunPod account key in the environment too, the pages go
    with the app's key (``OCRCLIENT_API_KEY``), so the app answers them."""
    pdf = text_pdf(tmp_path / "a.pdf", [["one line"]])
    with OcularSimulator(api_key="trocr-app-key-0123") as sim:
        env = {**os.environ, "RUNPOD_API_KEY": SENTINEL, "OCRCLIENT_API_KEY": "trocr-app-key-0123",
               "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg")}  # fmt: skip
        run = subprocess.run([sys.executable, "-m", "ocrclient", "convert", str(pdf), "-o", str(tmp_path / "out"),
                              "--backend", "runpod-trocr", "--transport", "ocular", "--base-url", sim.url,
                              "--no-cache", "--quiet"], env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert SENTINEL not in run.stderr + run.stdout
