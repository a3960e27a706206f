"""A profile switched to another transport does not take its API key along: the key of a RunPod
profile is the RunPod *account's* key, and ``--transport ocular`` / ``openai`` sent it to whatever
server ``--base-url`` named (docs/backends.md documents exactly that switch for TrOCR's plain
HTTP app, which checks its own key)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class _Capture(ThreadingHTTPServer):
    """A server that keeps every request's headers and answers the model list (404 to the rest)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                outer.seen.append(dict(self.headers))
                body = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
                self.send_response(200 if self.path.endswith("/models") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def _url_cases() -> list[tuple[str, str | None]]:
    """(profile, transport switched to or None) for every way a shipped profile reaches an
    OpenAI-compatible or plain HTTP server."""
    out: list[tuple[str, str | None]] = []
    for name in sorted(list_profiles()):
        own = resolve_config(name, base_url="http://127.0.0.1:9", endpoint_id="e", model="m").transport
        out += [(name, None)] if own in ("openai", "ocular") else []
        out += [(name, t) for t in ("openai", "ocular") if t != own and own in KEY_ENV_OF_TRANSPORT]
    return out


@pytest.mark.parametrize(("profile", "transport"), _url_cases())
def test_the_generic_url_gets_only_the_generic_key(keys: None, monkeypatch: pytest.MonkeyPatch, profile: str,
                                                    transport: str | None) -> None:  # fmt: skip
    """``OCRCLIENT_BASE_URL`` is the generic server's: a profile with a URL variable of its own
    (a pod's, a Modal app's) left unset is refused naming it, never sent to the generic server
    with its own key and Modal's workspace tokens (modal-lightonocr sent MODAL_KEY/MODAL_SECRET
    and the pod profile its vLLM key there); a profile without one, or switched to another
    transport, goes there with the generic key only."""
    import asyncio

    from ocrclient.errors import ConfigError
    from ocrclient.registry import load_transport

    over: dict[str, str] = {"model": "m"} if transport is None else {"model": "m", "transport": transport}
    for var in _key_vars(resolve_config(profile, base_url="http://127.0.0.1:9", endpoint_id="e", **over)):
        monkeypatch.setenv(var, SENTINEL)
    monkeypatch.setenv("MODAL_KEY", "wk-" + SENTINEL)
    monkeypatch.setenv("MODAL_SECRET", "ws-" + SENTINEL)
    own_var = resolve_config(profile, base_url="http://127.0.0.1:9", endpoint_id="e", **over).base_url_env
    if own_var:
        monkeypatch.delenv(own_var, raising=False)
    with _Capture() as server:
        monkeypatch.setenv("OCRCLIENT_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        monkeypatch.setenv("OCRCLIENT_API_KEY", GENERIC)
        try:
            cfg = resolve_config(profile, endpoint_id="e", **over)
            tr = load_transport(cfg)
        except ConfigError as exc:
            assert own_var not in (None, "OCRCLIENT_BASE_URL") and f"${own_var}" in str(exc), str(exc)
            return
        asyncio.run(tr.health())
        asyncio.run(tr.aclose())
        server.shutdown()
    assert own_var in (None, "OCRCLIENT_BASE_URL"), own_var
    assert server.seen, "nothing reached the generic server"
    for headers in server.seen:
        assert SENTINEL not in str(headers), headers
