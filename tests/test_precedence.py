"""One precedence rule for every setting, CLI and Python API alike (issue 13, defect 4):
explicit argument > environment > user config > profile.

Tested as a table: each setting an environment variable can set (``ENV_SETTINGS``: base_url,
endpoint_id, model, api_key) x every combination of the layers that set it -> the highest layer
wins, through ``resolve_config``, ``load_backend`` (what the transport was built with),
``ocrclient.convert`` (which simulated server was asked, with which key) and ``ocr config``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ocrclient
from ocrclient.cli import app
from ocrclient.config import ENV_SETTINGS, resolve_backend_name, resolve_config
from ocrclient.errors import AuthError, ConfigError
from ocrclient.registry import load_backend
from ocrclient.testing import RunPodSimulator

from .pdfgen import text_pdf

LAYERS = ("profile", "user", "env", "explicit")  # lowest first
PROFILE = "tbl"
#: the variables the table's profile names for each setting
ENV_VARS = {"base_url": "TBL_BASE_URL", "endpoint_id": "TBL_ENDPOINT_ID", "model": "TBL_MODEL", "api_key": "TBL_API_KEY"}
#: what the layers not under test set (so a transport can always be built)
BASELINE = {"base_url": "http://baseline.invalid/v2", "endpoint_id": "baseline-ep", "model": "baseline/model", "api_key": "baseline-secret-key"}

COMBOS = [c for n in range(len(LAYERS) + 1) for c in itertools.combinations(LAYERS, n)]


def value(field: str, layer: str) -> str:
    return {
        "base_url": f"http://{layer}.invalid/v2",
        "endpoint_id": f"{layer}-ep",
        "model": f"{layer}/model",
        "api_key": f"{layer}-secret-key",
    }[field]


def expected(field: str, layers: tuple[str, ...]) -> str | None:
    return value(field, max(layers, key=LAYERS.index)) if layers else None


def _toml(table: dict[str, Any]) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())


def arrange(
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    layers: tuple[str, ...],
    values: dict[str, str] | None = None,
    baseline: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write the profile and the user config, set the environment; returns the explicit
    overrides.  ``values`` replaces :func:`value` per layer (e.g. simulator URLs)."""
    values = values or {layer: value(field, layer) for layer in LAYERS}
    cfg_dir = Path(os.environ["OCRCLIENT_CONFIG_DIR"])
    (cfg_dir / "backends").mkdir(parents=True, exist_ok=True)
    profile: dict[str, Any] = {"transport": "runpod", "dialect": "plain"}
    profile |= {f"{f}_env": var for f, var in ENV_VARS.items()}
    profile |= {f: v for f, v in (baseline or BASELINE).items() if f != field}
    if "profile" in layers:
        profile[field] = values["profile"]
    path = cfg_dir / "backends" / f"{PROFILE}.toml"
    path.write_text(_toml(profile) + "[transport_options]\npoll_interval_s = 0.05\n")
    path.chmod(0o600)
    user = cfg_dir / "config.toml"
    user.write_text(f"[backends.{PROFILE}]\n" + (_toml({field: values["user"]}) if "user" in layers else ""))
    user.chmod(0o600)
    for var in ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    if "env" in layers:
        monkeypatch.setenv(ENV_VARS[field], values["env"])
    return {field: values["explicit"]} if "explicit" in layers else {}


def test_the_table_covers_every_setting_an_environment_variable_can_set() -> None:
    assert set(ENV_VARS) == set(ENV_SETTINGS)
    assert len(COMBOS) == 16


# -- resolve_config / load_backend -------------------------------------------------------------


@pytest.mark.parametrize("layers", COMBOS, ids=lambda c: "+".join(c) or "none")
@pytest.mark.parametrize("field", sorted(ENV_SETTINGS))
def test_resolve_config_and_load_backend(monkeypatch: pytest.MonkeyPatch, field: str, layers: tuple[str, ...]) -> None:
    explicit = arrange(monkeypatch, field, layers)
    want = expected(field, layers)

    cfg = resolve_config(PROFILE, **explicit)
    if field == "api_key":
        assert cfg.secret() == want
    else:
        assert getattr(cfg, field) == want
        assert getattr(cfg, f"resolved_{field}")() == want

    if want is None and field in ("endpoint_id", "api_key", "model"):
        # RunPod needs an endpoint and a key, the plain dialect a model name
        with pytest.raises(ConfigError, match=r"missing|needs a model"):
            load_backend(PROFILE, **explicit)
        return
    be = load_backend(PROFILE, **explicit)
    t: Any = be.transport
    got = {
        "base_url": t.base_url,
        "endpoint_id": t.endpoint_id,
        "model": be.config.model,
        "api_key": t._headers.get("Authorization", "").removeprefix("Bearer "),
    }[field]
    assert got == (want if want is not None or field != "base_url" else "https://api.runpod.ai/v2")


def test_generic_runpod_endpoint_variable_is_only_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    arrange(monkeypatch, "endpoint_id", ())
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "generic-ep")
    assert resolve_config(PROFILE).endpoint_id == "generic-ep"  # nothing else names one
    arrange(monkeypatch, "endpoint_id", ("user",))
    assert resolve_config(PROFILE).endpoint_id == "user-ep"  # this backend's own setting wins


@pytest.mark.parametrize("layers", COMBOS, ids=lambda c: "+".join(c) or "none")
def test_backend_name(monkeypatch: pytest.MonkeyPatch, layers: tuple[str, ...]) -> None:
    names = {"profile": "local", "user": "runpod-olmocr", "env": "runpod-chandra", "explicit": "openai"}
    cfg_dir = Path(os.environ["OCRCLIENT_CONFIG_DIR"])
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "config.toml").write_text(f'default_backend = "{names["user"]}"\n' if "user" in layers else "")
    if "env" in layers:
        monkeypatch.setenv("OCRCLIENT_BACKEND", names["env"])
    explicit = names["explicit"] if "explicit" in layers else None
    # the "profile" layer of the backend name is the built-in default, always present
    top = max((*layers, "profile"), key=LAYERS.index)
    assert resolve_backend_name(explicit) == names[top]


# -- ocrclient.convert: the server that is asked, the key that is sent ---------------------------


@pytest.fixture(scope="module")
def sims() -> Any:
    """One simulated RunPod endpoint per layer (same endpoint id, same key)."""
    started = {layer: RunPodSimulator(endpoint_id="tbl-ep", api_key="tbl-shared-key").start() for layer in LAYERS}
    yield started
    for sim in started.values():
        sim.stop()


@pytest.fixture(scope="module")
def one_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_pdf(tmp_path_factory.mktemp("prec") / "one.pdf", [["precedence"]], size=(0, 0, 200, 100))


@pytest.mark.parametrize("layers", [c for c in COMBOS if c], ids=lambda c: "+".join(c))
def test_convert_sends_to_the_winning_base_url(
    monkeypatch: pytest.MonkeyPatch, sims: dict[str, RunPodSimulator], one_page: Path, layers: tuple[str, ...]
) -> None:
    urls = {layer: sim.base_url for layer, sim in sims.items()}
    base = {**BASELINE, "endpoint_id": "tbl-ep", "api_key": "tbl-shared-key"}
    explicit = arrange(monkeypatch, "base_url", layers, values=urls, baseline=base)
    before = {layer: sim.jobs_submitted for layer, sim in sims.items()}
    doc = ocrclient.convert(one_page, backend=PROFILE, cache=False, render={"dpi": 36}, **explicit)
    assert doc.pages[0].status == "ok", doc.pages[0].error
    sent = {layer for layer, sim in sims.items() if sim.jobs_submitted > before[layer]}
    assert sent == {max(layers, key=LAYERS.index)}


@pytest.mark.parametrize("layers", [c for c in COMBOS if c], ids=lambda c: "+".join(c))
def test_convert_sends_the_winning_api_key(monkeypatch: pytest.MonkeyPatch, one_page: Path, layers: tuple[str, ...]) -> None:
    winner = max(layers, key=LAYERS.index)
    with RunPodSimulator(endpoint_id="tbl-ep", api_key=value("api_key", winner)) as sim:
        base = {**BASELINE, "base_url": sim.base_url, "endpoint_id": "tbl-ep"}
        explicit = arrange(monkeypatch, "api_key", layers, baseline=base)
        doc = ocrclient.convert(one_page, backend=PROFILE, cache=False, render={"dpi": 36}, **explicit)
        assert doc.pages[0].status == "ok", doc.pages[0].error
        assert sim.jobs_submitted == 1
        if len(layers) > 1:  # a loser's key is refused: proves the table can fail
            loser = min(layers, key=LAYERS.index)
            explicit = arrange(monkeypatch, "api_key", (loser,), baseline=base)
            with pytest.raises(AuthError):
                ocrclient.convert(one_page, backend=PROFILE, cache=False, render={"dpi": 36}, **explicit)


# -- the CLI: `ocr config --backend X --base-url ...` --------------------------------------------

CLI_FLAGS = {"base_url": "--base-url", "endpoint_id": "--endpoint-id", "model": "--model"}


@pytest.mark.parametrize("layers", COMBOS, ids=lambda c: "+".join(c) or "none")
@pytest.mark.parametrize("field", sorted(CLI_FLAGS))
def test_cli_config(monkeypatch: pytest.MonkeyPatch, field: str, layers: tuple[str, ...]) -> None:
    explicit = arrange(monkeypatch, field, layers)
    args = ["config", "--backend", PROFILE]
    if explicit:
        args += [CLI_FLAGS[field], explicit[field]]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    shown = json.loads(res.stdout)
    assert res.exit_code == (2 if shown["refused"] else 0), res.output  # ("refused": what convert stops on)
    assert shown[field] == expected(field, layers)
    assert "baseline-secret-key" not in res.output


def test_every_cli_flag_of_an_env_setting_is_in_the_table() -> None:
    """Settings an env var can set that `ocr config` also takes as a flag are all in the table
    (the API key has no flag: --api-key-env names a variable)."""
    res = CliRunner().invoke(app, ["config", "--help"], env={"COLUMNS": "200"})
    for field in ENV_SETTINGS:
        flag = "--" + field.replace("_", "-")
        assert bool(re.search(rf"{flag}(?![\w-])", res.stdout)) == (field in CLI_FLAGS), flag


def _string_settings() -> list[str]:
    """Every top-level BackendConfig field a string can set (its annotation names ``str``)."""
    from ocrclient.config import BackendConfig

    own = {"name", "description", "origin"}  # the profile's own, never settings of a run
    return sorted(n for n, f in BackendConfig.model_fields.items()
                  if n not in own and "str" in repr(f.annotation).lower() and "dict" not in repr(f.annotation))  # fmt: skip


@pytest.mark.parametrize("blank", ["", "  "], ids=["empty", "blank"])
@pytest.mark.parametrize("backend", sorted(ocrclient.config.list_profiles()))
def test_an_empty_string_setting_is_not_set_in_every_layer(monkeypatch: pytest.MonkeyPatch, backend: str, blank: str) -> None:
    """The whole kind: each string setting of each shipped profile, given as an empty or blank
    string as an argument or in the user config, resolves as if not given, as an empty
    environment variable does.  ``model=""`` was shown by ``ocr config`` (and recorded in each
    Document) as ``''`` while the requests used the profile's model."""
    fields = _string_settings()
    assert {"model", "base_url", "endpoint_id", "api_key", "dialect", "transport"} <= set(fields)
    cfg_dir = Path(os.environ["OCRCLIENT_CONFIG_DIR"])
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "config.toml").unlink(missing_ok=True)
    plain = resolve_config(backend).model_dump()
    for field in fields:
        assert resolve_config(backend, **{field: blank}).model_dump() == plain, field
        user = cfg_dir / "config.toml"
        user.write_text(f"[backends.{backend}]\n{field} = {json.dumps(blank)}\n")
        user.chmod(0o600)
        assert resolve_config(backend).model_dump() == plain, f"{field} in the user config"
        user.unlink()
    out = CliRunner().invoke(app, ["config", "--backend", backend, "--model", blank])
    assert json.loads(out.stdout)["model"] == plain["model"], out.stdout
