"""A backend flag the chosen backend would not read is refused, in one line, by every command
that takes it (``--mode run`` for a vLLM pod, ``--endpoint-id`` for the local engine,
``--text-layer`` for Chandra were accepted and did nothing).  What a transport reads is what it
declares (``READS``), and each declaration is checked against the transport itself: built from a
profile with the setting at a value found nowhere else, a transport that declares the setting
holds that value somewhere, and one that does not declare it holds it nowhere."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr
from typer.testing import CliRunner

import ocrclient
from ocrclient.cli import app
from ocrclient.cli.common import check_flags_read
from ocrclient.config import BackendConfig, resolve_config
from ocrclient.dialects.base import unread_options
from ocrclient.errors import ConfigError
from ocrclient.registry import (
    DIALECTS,
    READ_BY_SOME,
    TRANSPORTS,
    dialect_class,
    load_transport,
    transport_class,
)
from ocrclient.transports.base import CHOSEN_SETTINGS, unread_settings

from .pdfgen import blank_pdf

KEY = "rp_flag_sentinel_key_7f3a"
URL = "http://flag-sentinel-host.invalid:4321/v1"
ENDPOINT = "flagsentinelendpoint"

#: a profile of each built-in transport (the pool's one member has settings of its own)
PROFILES: dict[str, dict[str, Any]] = {
    "runpod": {"transport": "runpod", "dialect": "chandra", "model": "m", "endpoint_id": "own-endpoint",
               "api_key": "rp_own_key"},
    "openai": {"transport": "openai", "dialect": "lighton", "model": "m", "base_url": "http://own-host.invalid/v1",
               "api_key": "own-key"},
    "ocular": {"transport": "ocular", "dialect": "trocr", "model": "m", "base_url": "http://own-host.invalid"},
    "local": {"transport": "local", "dialect": "rapidocr"},
    "pool": {"transport": "pool", "dialect": "plain", "model": "m", "transport_options": {"members": [
        {"backend": "openai", "base_url": "http://member-host.invalid/v1", "api_key": "member-key"}]}},
}  # fmt: skip

#: each setting a flag names: the value given, and the env it needs (the key is named, not given)
GIVEN: dict[str, tuple[dict[str, Any], dict[str, str], str]] = {
    "endpoint_id": ({"endpoint_id": ENDPOINT}, {}, ENDPOINT),
    "base_url": ({"base_url": URL}, {}, "flag-sentinel-host"),
    "api_key_env": ({"api_key_env": "OCR_FLAG_SENTINEL_KEY", "api_key": None}, {"OCR_FLAG_SENTINEL_KEY": KEY}, KEY),
    "api_key": ({"api_key": KEY}, {}, KEY),
    "mode": ({"transport_options": {"mode": "run"}}, {}, ""),
}


def test_the_table_covers_every_built_in_transport_and_every_flag_setting() -> None:
    assert set(PROFILES) == set(TRANSPORTS)
    assert set(GIVEN) == set(CHOSEN_SETTINGS)
    for name in TRANSPORTS:  # (a built-in that declared nothing would be taken to read everything)
        assert getattr(transport_class(name), "READS", None) is not None, name


def _holds(obj: Any, found: Callable[[str, Any], bool], seen: set[int] | None = None, depth: int = 8,
           attr: str = "") -> bool:  # fmt: skip
    """Whether ``obj`` (its attributes, containers, headers, URLs, secrets) holds a value that
    ``found(attribute name, value)`` accepts; settings objects (the profile itself) are not looked in."""
    seen = set() if seen is None else seen
    if depth < 0 or id(obj) in seen or isinstance(obj, (BaseModel, type)):
        return False
    seen.add(id(obj))
    if isinstance(obj, SecretStr):
        obj = obj.get_secret_value()
    if isinstance(obj, (str, bytes, httpx.URL)):
        return found(attr, obj.decode("latin-1") if isinstance(obj, bytes) else str(obj))
    if isinstance(obj, (int, float, type(None))):
        return False
    if isinstance(obj, httpx.Headers):
        return any(found(k, v) for k, v in obj.items())
    if isinstance(obj, dict):
        return any(_holds(v, found, seen, depth - 1, str(k)) or _holds(k, found, seen, depth - 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(_holds(v, found, seen, depth - 1, attr) for v in obj)
    if inspect.ismethod(obj):
        obj = obj.__func__
    if inspect.isfunction(obj):  # (what a closure keeps: a client built at its first use)
        cells = [c.cell_contents for c in obj.__closure__ or () if c.cell_contents is not None]
        return any(_holds(v, found, seen, depth - 1, attr) for v in cells)
    fields = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if isinstance(slot, str) and hasattr(obj, slot):
                fields.setdefault(slot, getattr(obj, slot))
    return any(_holds(v, found, seen, depth - 1, k) for k, v in fields.items())


def _built(transport: str, setting: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    data = dict(PROFILES[transport])
    if setting is not None:
        over, env, _ = GIVEN[setting]
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        for k, v in over.items():
            if isinstance(v, dict):
                data[k] = {**data.get(k, {}), **v}
            elif v is None:
                data.pop(k, None)
            else:
                data[k] = v
    cfg = BackendConfig.model_validate({"name": f"flags-{transport}", **data})
    return load_transport(cfg)


@pytest.mark.parametrize("setting", sorted(CHOSEN_SETTINGS))
@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_a_transport_declares_a_setting_exactly_when_it_reads_it(transport: str, setting: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    declared = not unread_settings(transport_class(transport), [setting])
    needle = GIVEN[setting][2]
    if setting == "mode":  # (the value is one of RunPod's three: looked for as the attribute ``mode``)
        def found(attr: str, value: str) -> bool:
            return attr == "mode" and value == "run"
    else:
        def found(attr: str, value: str) -> bool:
            return needle in value
    for given in (None, setting):  # (the value is nowhere without the setting)
        try:
            t = _built(transport, given, monkeypatch)
        except ConfigError:  # (refused by the transport itself: not read either)
            assert given is not None and not declared
            continue
        try:
            assert _holds(t, found) is (declared and given is not None), (transport, given, declared)
        finally:
            asyncio.run(t.aclose())


#: the dialect options a flag sets: the flag, a value it gives
DIALECT_FLAGS = {"text_layer": ("--text-layer", "never"), "include_headers_footers": ("--keep-furniture", True)}


@pytest.mark.parametrize("option", sorted(DIALECT_FLAGS))
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_a_dialect_option_flag_is_refused_exactly_when_the_dialect_does_not_read_it(dialect: str, option: str) -> None:
    cls = dialect_class(dialect)
    reads = {*(vars(cls).get("OPTIONS") or {}), *getattr(cls, "OUTPUT_OPTIONS", {})}
    assert vars(cls).get("OPTIONS") is not None, dialect  # (every built-in declares what it reads)
    cfg = BackendConfig(name="x", transport="openai", dialect=dialect, model="m")
    flag, value = DIALECT_FLAGS[option]
    over = {"dialect_options": {option: value}}
    if option in reads:
        assert not unread_options(cls, [option])
        check_flags_read(over, cfg, transport_class("openai"), cls)
    else:
        with pytest.raises(ConfigError, match=f"^{flag} does nothing with backend 'x': its dialect '{dialect}'"):
            check_flags_read(over, cfg, transport_class("openai"), cls)


def test_a_dialect_or_transport_declaring_nothing_is_taken_to_read_every_flag() -> None:
    class Plugin:  # (a plugin's: it may read them)
        pass

    cfg = BackendConfig(name="p", transport="mine", dialect="mine", model="m")
    over = {"endpoint_id": "e", "base_url": URL, "api_key_env": "K", "transport_options": {"mode": "run"},
            "dialect_options": {"text_layer": "never", "include_headers_footers": True}}  # fmt: skip
    check_flags_read(over, cfg, Plugin, Plugin)


# -- every command that takes the flags ---------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg"), "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"),
            "RUNPOD_API_KEY": "rp_test_key", "RUNPOD_ENDPOINT_ID": "ep", "RUNPOD_POD_BASE_URL": "http://127.0.0.1:9/v1"}  # fmt: skip


def _commands(pdf: Path) -> dict[str, list[str]]:
    return {"convert": ["convert", str(pdf), "-o", str(pdf.parent / "out")], "bench": ["bench", str(pdf)],
            "health": ["health"], "config": ["config"]}  # fmt: skip


#: (a backend, a flag it does not read, the words of the refusal) -- one per kind of refusal
REFUSED = [
    ("local", ["--endpoint-id", "e1"], "--endpoint-id does nothing with backend 'local': its transport 'local' does not read endpoint_id (read by the runpod transport)"),
    ("runpod-pod-lightonocr2", ["--mode", "run"], "--mode does nothing with backend 'runpod-pod-lightonocr2': its transport 'openai' does not read mode (read by the runpod transport)"),
    ("local", ["--base-url", "http://127.0.0.1:9"], "--base-url does nothing with backend 'local': its transport 'local' does not read base_url (read by the runpod, openai and ocular transports)"),
    ("local", ["--api-key-env", "MY_KEY"], "--api-key-env does nothing with backend 'local': its transport 'local' does not read api_key_env"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["convert", "bench", "health", "config"])
@pytest.mark.parametrize(("backend", "flag", "said"), REFUSED, ids=[f"{b} {f[0]}" for b, f, _ in REFUSED])
def test_every_command_refuses_a_flag_its_backend_would_not_read(command: str, backend: str, flag: list[str], said: str,
                                                                 tmp_path: Path, env: dict[str, str]) -> None:  # fmt: skip
    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)])
    res = CliRunner().invoke(app, [*_commands(pdf)[command], "--backend", backend, *flag], env=env, catch_exceptions=False)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and said in lines[0], res.output
    if command == "convert":
        assert not (pdf.parent / "out").exists()  # (refused before the output folder is made)


def test_the_text_layer_flags_are_refused_for_chandra_by_convert_and_config(tmp_path: Path, env: dict[str, str]) -> None:
    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)])
    for command in ("convert", "config"):
        res = CliRunner().invoke(app, [*_commands(pdf)[command], "--backend", "runpod-chandra", "--text-layer", "never"],
                                 env=env, catch_exceptions=False)  # fmt: skip
        assert res.exit_code == 2, res.output
        assert "error: --text-layer does nothing with backend 'runpod-chandra': its dialect 'chandra' reads no text_layer option (read by the rapidocr dialect)" in res.output


def test_flags_the_backend_reads_are_taken(tmp_path: Path, env: dict[str, str]) -> None:
    """``ocr config`` shows them in the settings, and refuses nothing."""
    for backend, flags, shown in [
        ("runpod-chandra", ["--endpoint-id", "e9", "--mode", "run", "--keep-furniture"], {"endpoint_id": "e9"}),
        ("runpod-pod-lightonocr2", ["--base-url", "http://127.0.0.1:9/v1"], {"base_url": "http://127.0.0.1:9/v1"}),
        ("local", ["--text-layer", "never", "--keep-furniture"], {}),
    ]:
        res = CliRunner().invoke(app, ["config", "--backend", backend, *flags], env=env, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        data = json.loads(res.output)
        assert data["refused"] is None
        for k, v in shown.items():
            assert data[k] == v


def test_a_flag_read_by_the_runpod_transport_is_refused_when_the_profile_is_sent_over_another(env: dict[str, str]) -> None:
    """``--transport`` changes who reads: ``runpod-trocr`` over ``ocular`` reads no ``--mode``."""
    res = CliRunner().invoke(app, ["config", "--backend", "runpod-trocr", "--transport", "ocular", "--mode", "run"],
                             env={**env, "OCULAR_URL": "http://127.0.0.1:9"}, catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--mode does nothing with backend 'runpod-trocr': its transport 'ocular' does not read mode" in res.output


def test_resolved_settings_from_the_environment_are_not_flags(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint id in the environment (which may serve another backend) is no flag: nothing refused."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = resolve_config("local")
    check_flags_read({}, cfg, transport_class(cfg.transport), dialect_class(cfg.dialect))


# -- the same settings chosen in Python, and in a pool member's table ----------------------------


@pytest.mark.parametrize(("where", "name"), READ_BY_SOME)
@pytest.mark.parametrize("backend", ["local", "runpod-pod-lightonocr2", "runpod-chandra"])
def test_load_backend_refuses_a_keyword_its_backend_would_not_read(backend: str, where: str, name: str,
                                                                   env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for k, v in {**env, "OCR_FLAG_VALUE_KEY": "rp_flag_value_key"}.items():
        monkeypatch.setenv(k, v)
    value: Any = {"text_layer": "never", "include_headers_footers": True, "mode": "run", "endpoint_id": "e1",
                  "base_url": "http://127.0.0.1:9/v1", "api_key": "rp_flag_value_key", "api_key_env": "OCR_FLAG_VALUE_KEY"}[name]  # fmt: skip
    kwargs: dict[str, Any] = {where: {name: value}} if where else {name: value}
    cfg = resolve_config(backend)
    cls_t, cls_d = transport_class(cfg.transport), dialect_class(cfg.dialect)
    read = not (unread_options(cls_d, [name]) if where == "dialect_options" else unread_settings(cls_t, [name]))
    if read:
        ocrclient.load_backend(backend, **kwargs).close()
        return
    shown = f"{where}[{name!r}]" if where else name
    with pytest.raises(ConfigError) as got:
        ocrclient.load_backend(backend, **kwargs)
    assert str(got.value).startswith(f"{shown} does nothing with backend {backend!r}: its "), got.value
    assert "\n" not in str(got.value) and "rp_flag_value_key" not in str(got.value)


def test_convert_refuses_a_key_for_the_local_engine_before_any_page(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)])
    with pytest.raises(ConfigError, match=r"^api_key does nothing with backend 'local': its transport 'local' does not read api_key"):
        ocrclient.convert(pdf, backend="local", api_key="sk-never-shown")


def test_a_pool_member_setting_its_backend_would_not_read_is_refused_naming_the_member(tmp_path: Path) -> None:
    prof = tmp_path / "pool.toml"
    prof.write_text('transport = "pool"\ndialect = "plain"\nmodel = "m"\n[transport_options]\nmembers = [\n'
                    '  { backend = "openai", base_url = "http://127.0.0.1:9/v1", label = "a" },\n'
                    '  { backend = "openai", base_url = "http://127.0.0.1:9/v1", endpoint_id = "e1", label = "b" },\n]\n',
                    encoding="utf-8")  # fmt: skip
    with pytest.raises(ConfigError, match=r"^backend 'pool': pool member b: endpoint_id does nothing with backend 'openai': its transport 'openai' does not read endpoint_id \(read by the runpod transport\)$"):
        ocrclient.load_backend(str(prof))
    prof.write_text(prof.read_text().replace(', endpoint_id = "e1"', ""), encoding="utf-8")
    ocrclient.load_backend(str(prof)).close()  # (without it the pool loads)


def test_a_plugin_subclass_of_a_built_in_transport_is_not_held_to_its_parents_reads() -> None:
    """A plugin's OpenAI-compatible transport may read an endpoint id its parent does not: one
    that declares no ``READS`` of its own is taken to read every setting."""
    from ocrclient.transports.openai import OpenAITransport

    class EndpointOpenAI(OpenAITransport):
        pass

    class Declared(OpenAITransport):
        READS = frozenset({"base_url", "endpoint_id"})

    assert unread_settings(EndpointOpenAI, ["endpoint_id", "mode"]) == []
    assert unread_settings(Declared, ["endpoint_id", "mode"]) == ["mode"]
    cfg = BackendConfig(name="ep", transport="epplug:EndpointOpenAI", dialect="plain", model="m")
    check_flags_read({"endpoint_id": "abc"}, cfg, EndpointOpenAI, dialect_class("plain"))


def test_bench_says_a_missing_input_before_a_backend_that_cannot_load(tmp_path: Path, env: dict[str, str]) -> None:
    """As ``convert`` does (and ``bench`` did before flags were checked): the inputs first."""
    res = CliRunner().invoke(app, ["bench", str(tmp_path / "nope.pdf"), "--backend", "runpod-chandra"],
                             env={**env, "RUNPOD_API_KEY": ""}, catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "nope.pdf" in res.output and "API key" not in res.output, res.output


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_a_dialect_declares_text_layer_exactly_when_it_changes_what_is_sent(dialect: str) -> None:
    """The behaviour behind ``--text-layer``'s refusal: a PDF page's request, built with
    ``text_layer = "never"`` and without, differs for a dialect that declares the option and is
    the same for one that does not."""
    from dataclasses import replace

    from ocrclient.models import Attempt
    from ocrclient.registry import load_dialect

    from .fakes import make_page

    declared = not unread_options(dialect_class(dialect), ["text_layer"])
    sent = []
    for options in ({}, {"text_layer": "never"}):
        cfg = BackendConfig(name="x", transport="openai", dialect=dialect, model="m", dialect_options=options)
        built = load_dialect(cfg)
        page = replace(make_page(0), pdf_path="doc.pdf")
        sent.append(repr(built.build(page, Attempt(1)).body))
    assert (sent[0] != sent[1]) is declared, dialect


def test_run_bench_refuses_settings_beside_a_loaded_backend(tmp_path: Path) -> None:
    """They were dropped without a word (a ``Client`` refuses them the same way)."""
    from ocrclient.bench import run_bench
    from ocrclient.errors import UsageError

    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)])
    with ocrclient.load_backend("local") as be, pytest.raises(UsageError, match=r"a loaded Backend's settings are fixed: pass endpoint_id, model"):
        asyncio.run(run_bench([str(pdf)], backend=be, model="m", endpoint_id="e"))
