"""The page cache (issue 13, defect 2): what its key holds, its size cap, `ocr cache info|clear`.

*Kind* tests: every field of :class:`BackendConfig` (walked recursively) is either in the key or
on the one list of content-neutral fields; changing any content field, or any transport option
not listed as neutral, changes the key; changing a neutral one does not.  The end-to-end checks
(a changed ``text_score``, another endpoint) are in ``test_resume.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field
from typer.testing import CliRunner

import ocrclient.cache as cache_mod
from ocrclient.cache import (
    KEY_FIELDS,
    NEUTRAL_FIELDS,
    PageCache,
    key_settings,
    neutral_transport_options,
    page_key,
    settings_digest,
)
from ocrclient.cli import app
from ocrclient.config import (
    DEFAULT_CACHE_MAX_BYTES,
    BackendConfig,
    RenderSettings,
    cache_max_bytes,
    shipped_profiles_dir,
)
from ocrclient.document import Page
from ocrclient.errors import ConfigError
from ocrclient.registry import TRANSPORTS
from ocrclient.transports.options import MODELS as OPTION_MODELS

IMAGE = b"\x89PNG fake page bytes"
SRC = Path(cache_mod.__file__).resolve().parent


def base_config(**over: Any) -> BackendConfig:
    data: dict[str, Any] = {
        "name": "t",
        "transport": "runpod",
        "dialect": "plain",
        "model": "m",
        "base_url": "http://127.0.0.1:9/v2",
        "endpoint_id": "ep",
        "sampling": {"max_tokens": 100, "temperature_ladder": [0.0, 0.2]},
        # worker_route: unknown to the RunPod transport, so it stays in the key (its own are all neutral)
        "transport_options": {"mode": "run", "poll_interval_s": 0.25, "worker_route": "/ocr"},
        "dialect_options": {"prompt": "read"},
        **over,
    }
    return BackendConfig.model_validate(data)


def key(cfg: BackendConfig, dialect: str = "plain") -> str:
    return page_key(IMAGE, cfg, dialect)


# -- every field is classified ----------------------------------------------------------------


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None``, ``Optional[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
    return None


def leaf_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted names of every field, descending into nested models (``render.dpi``)."""
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        if nested is not None:
            yield from leaf_fields(nested, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def unclassified(model: type[BaseModel]) -> list[str]:
    """Fields that are neither in the key nor on the neutral list (by themselves or through the
    model that holds them)."""
    classified = KEY_FIELDS | NEUTRAL_FIELDS
    out = []
    for path in leaf_fields(model):
        parts = path.split(".")
        if not any(".".join(parts[:i]) in classified for i in range(1, len(parts) + 1)):
            out.append(path)
    return out


def test_every_backend_field_is_in_the_key_or_declared_neutral() -> None:
    assert "render.dpi" in set(leaf_fields(BackendConfig))  # the walk reaches nested models
    assert unclassified(BackendConfig) == []
    assert not KEY_FIELDS & NEUTRAL_FIELDS
    # no stale names on either list
    assert set(BackendConfig.model_fields) >= KEY_FIELDS | NEUTRAL_FIELDS


def test_a_new_field_on_neither_list_fails_the_walk() -> None:
    class Render2(RenderSettings):
        sharpen: bool | None = None

    class Config2(BackendConfig):
        gpu_type: str | None = None
        render: Render2 = Field(default_factory=Render2)

    missing = unclassified(Config2)
    # a new top-level field is caught; a new render field is in the key through "render"
    assert missing == ["gpu_type"]


# -- content fields change the key, neutral ones do not ----------------------------------------


def _other_value(annotation: Any, current: Any) -> Any:
    """A valid value of ``annotation`` different from ``current``."""
    args = set(typing.get_args(annotation)) or {annotation}
    if bool in args:
        return not current
    if int in args:
        return (current or 0) + 7
    if float in args:
        return (current or 0.0) + 13.5
    if str in args:
        return "webp" if current != "webp" else "jpeg"
    raise AssertionError(f"no test value for {annotation!r}")


def _changed(cfg: BackendConfig, path: str) -> BackendConfig:
    """``cfg`` with the field at ``path`` (dotted; dicts get a key changed and a key added)."""
    head, _, rest = path.partition(".")
    value = getattr(cfg, head)
    if rest:
        sub = value.model_copy(update={rest: _other_value(type(value).model_fields[rest].annotation, getattr(value, rest))})
        return cfg.model_copy(update={head: sub})
    if isinstance(value, dict):
        if head == "dialect_options":  # (the key has the options the dialect reads: plain's prompt)
            return cfg.model_copy(update={head: {**value, "prompt": f"{value.get('prompt')} changed"}})
        return cfg.model_copy(update={head: {**value, "added_by_test": 1}})
    info = BackendConfig.model_fields[head]
    if head in ("base_url", "endpoint_id", "model", "transport", "dialect"):
        return cfg.model_copy(update={head: f"{value}-other"})
    return cfg.model_copy(update={head: _other_value(info.annotation, value)})


@pytest.mark.parametrize(
    "path", sorted(p for p in leaf_fields(BackendConfig) if p.split(".")[0] in KEY_FIELDS)
)
def test_changing_a_content_field_changes_the_key(path: str) -> None:
    cfg = base_config()
    assert key(_changed(cfg, path)) != key(cfg)
    # and the run manifest's settings digest, so a changed setting is converted again
    assert settings_digest(_changed(cfg, path)) != settings_digest(cfg)


@pytest.mark.parametrize("field", sorted(KEY_FIELDS & {"sampling", "transport_options", "dialect_options"}))
def test_changing_an_existing_table_entry_changes_the_key(field: str) -> None:
    cfg = base_config()
    table = dict(getattr(cfg, field))
    neutral = neutral_transport_options(cfg.transport) if field == "transport_options" else frozenset()
    first = next(k for k in sorted(table) if k not in neutral)
    table[first] = [table[first], "changed"]
    assert key(cfg.model_copy(update={field: table})) != key(cfg)


#: a changed value for each neutral field
NEUTRAL_VALUES: dict[str, Any] = {
    "name": "renamed",
    "description": "other words",
    "origin": "/elsewhere.toml",
    "api_key": "sk-a-different-key",
    "api_key_env": "OTHER_KEY_VAR",
    "base_url_env": "OTHER_URL_VAR",
    "endpoint_id_env": "OTHER_EP_VAR",
    "model_env": "OTHER_MODEL_VAR",
    "concurrency": 99,
    "max_attempts": 9,
    "attempt_timeout_s": 5.0,
    "page_deadline_s": 50.0,
    "cold_start_s": 1.0,
    "unreachable_s": 1.0,
    "price_per_gpu_second": 0.5,
    "price_per_hour": 3.0,
}


def test_every_neutral_field_has_a_test_value() -> None:
    assert set(NEUTRAL_VALUES) == NEUTRAL_FIELDS


@pytest.mark.parametrize("field", sorted(NEUTRAL_VALUES))
def test_changing_a_neutral_field_keeps_the_key(field: str) -> None:
    cfg = base_config()
    changed = BackendConfig.model_validate({**cfg.model_dump(), field: NEUTRAL_VALUES[field]})
    assert getattr(changed, field) != getattr(cfg, field)
    assert key(changed) == key(cfg)
    assert settings_digest(changed) == settings_digest(cfg)


def transport_options_by_transport() -> dict[str, set[str]]:
    """Every transport option each shipped transport reads (its module's ``opts.get(...)`` and
    ``_OPTIONS`` / ``_NEUTRAL_OPTIONS`` sets) or a shipped profile sets for it."""
    out: dict[str, set[str]] = {}
    for name, (target, _) in TRANSPORTS.items():
        module = target.partition(":")[0].rpartition(".")[2]
        text = (SRC / "transports" / f"{module}.py").read_text(encoding="utf-8")
        names = set(re.findall(r"""(?:opts|transport_options)\.(?:get|pop)\(\s*["'](\w+)["']""", text))
        for block in re.findall(r"_(?:NEUTRAL_)?OPTIONS = [({](.*?)[)}]", text, re.S):
            names |= set(re.findall(r'"(\w+)"', block))
        if name in OPTION_MODELS:  # (read through a model: transports/options.py)
            names |= set(OPTION_MODELS[name].model_fields)
        out[name] = names
    for profile in shipped_profiles().values():
        out[profile.transport] |= set(profile.transport_options)
    return out


def shipped_profiles() -> dict[str, BackendConfig]:
    profiles = shipped_profiles_dir()
    assert profiles is not None
    return {
        path.stem: BackendConfig.model_validate({"name": path.stem, **tomllib.loads(path.read_text())})
        for path in sorted(profiles.glob("*.toml"))
    }


def dialect_options_by_module() -> dict[str, set[str]]:
    """Every dialect option each dialect module (and the run, ``docmode``) reads:
    ``options.get(...)`` / ``options[...]`` / ``opts.get(...)``."""
    pattern = r"""(?:options|opts)(?:\.(?:get|pop)\(\s*|\[\s*)["'](\w+)["']"""
    out = {path.stem: set(re.findall(pattern, path.read_text(encoding="utf-8")))
           for path in sorted((SRC / "dialects").glob("*.py"))}  # fmt: skip
    out["docmode"] = set(re.findall(pattern, (SRC / "docmode.py").read_text(encoding="utf-8")))
    return out


def test_every_dialect_option_read_anywhere_is_declared() -> None:
    """The whole kind behind the resume cache keying a page on the options its dialect reads
    (``OPTIONS``): an option a dialect read but did not declare would leave the key, and a
    changed value would be served the old page.  Every option read in a dialect's module is
    declared by that module's dialect; the run's own (``docmode``) by ``RUN_DIALECT_OPTIONS``.
    An output option (``OUTPUT_OPTIONS``: out of the key) is read in no dialect's module at all:
    no request and no parse depend on it, the run picks among what the parse gave."""
    from ocrclient.cache import RUN_DIALECT_OPTIONS
    from ocrclient.registry import DIALECTS, dialect_class

    read = dialect_options_by_module()
    assert read["docmode"] and read["docmode"] <= set(RUN_DIALECT_OPTIONS)
    assert {"text_layer", "prompt", "route"} <= set().union(*read.values())
    furniture = {name for name in DIALECTS if "include_headers_footers" in dialect_class(name).OUTPUT_OPTIONS}
    assert furniture == {"chandra", "dots", "rapidocr"}
    for name, (target, _) in DIALECTS.items():
        module = target.partition(":")[0].rpartition(".")[2]
        cls = dialect_class(name)
        declared, output = cls.OPTIONS, cls.OUTPUT_OPTIONS
        assert declared is not None, f"{name} declares no OPTIONS"
        assert read[module] <= set(declared) | set(RUN_DIALECT_OPTIONS), (name, read[module] - set(declared))
        assert not set(output) & (set(declared) | read[module]), (name, "an output option read by the dialect")


@pytest.mark.parametrize("profile", sorted(shipped_profiles()))
def test_a_dialect_option_changes_the_key_only_where_the_dialect_reads_it(profile: str) -> None:
    """Every shipped profile: an option its dialect does not read (``--keep-furniture`` on
    olmOCR, ``--text-layer`` on a remote model) and one set to its default (``--text-layer auto``
    on the local engine) keep the key (both sent every page again); each option it reads, at
    another value, moves it.  An output option (``--keep-furniture`` on Chandra, dots.ocr, the
    local engine) keeps the page key too, and moves the run manifest's settings digest (its
    outputs differ) only where the dialect has it, and not at its default."""
    from ocrclient.cache import dialect_options_read, output_options_read

    cfg = shipped_profiles()[profile]
    read, output = dialect_options_read(cfg.dialect), output_options_read(cfg.dialect)
    assert read is not None

    def with_(**opts: Any) -> BackendConfig:
        return cfg.model_copy(update={"dialect_options": {**cfg.dialect_options, **opts}})

    def keyed(c: BackendConfig) -> str:
        return json.dumps(key_settings(c), sort_keys=True, default=str)

    for option in ("include_headers_footers", "text_layer", "min_pixels", "route", "not_an_option"):
        if option not in read:
            assert keyed(with_(**{option: "x"})) == keyed(cfg), option
            assert (settings_digest(with_(**{option: "x"})) == settings_digest(cfg)) == (option not in output), option
    for option, default in read.items():
        if option not in cfg.dialect_options and default is not None:
            assert settings_digest(with_(**{option: default})) == settings_digest(cfg), option
        assert keyed(with_(**{option: ["another", "value"]})) != keyed(cfg), option
        assert settings_digest(with_(**{option: ["another", "value"]})) != settings_digest(cfg), option
    for option, default in output.items():
        assert settings_digest(with_(**{option: default})) == settings_digest(cfg), option
        assert keyed(with_(**{option: True})) == keyed(cfg), option


def test_transport_option_discovery_finds_the_known_ones() -> None:
    found = transport_options_by_transport()
    assert set(found) == {"local", "runpod", "openai", "ocular", "pool"}
    assert {"text_score", "tight_boxes", "threads"} <= found["local"]
    assert {"mode", "poll_interval_s", "policy"} <= found["runpod"]
    assert {"stream", "modal", "cap_max_tokens", "api_key_env_aliases"} <= found["openai"]
    assert {"route", "api_key_header"} <= found["ocular"]
    assert {"members", "cooldown_s"} <= found["pool"]


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_each_transport_declares_only_options_it_reads(transport: str) -> None:
    declared = neutral_transport_options(transport)
    assert declared, f"{transport} declares no neutral option"
    assert declared <= transport_options_by_transport()[transport]  # no stale names


@pytest.mark.parametrize(
    ("transport", "option"),
    sorted((t, o) for t, names in transport_options_by_transport().items() for o in names),
)
def test_each_transport_option_is_in_the_key_unless_its_transport_declares_it_neutral(
    transport: str, option: str
) -> None:
    cfg = base_config(transport=transport, transport_options={})
    one = cfg.model_copy(update={"transport_options": {option: 1}})
    two = cfg.model_copy(update={"transport_options": {option: 2}})
    if option in neutral_transport_options(transport):
        assert key(one) == key(two) == key(cfg)
    else:
        assert len({key(one), key(two), key(cfg)}) == 3


@pytest.mark.parametrize("profile", sorted(shipped_profiles()))
def test_every_option_of_every_shipped_profile_is_classified(profile: str) -> None:
    """Each option the profile sets either keeps the key (its transport declares it neutral) or
    moves it when its value changes, from the profile's own settings."""
    cfg = shipped_profiles()[profile]
    neutral = neutral_transport_options(cfg.transport)
    for option, value in cfg.transport_options.items():
        changed = cfg.model_copy(update={"transport_options": {**cfg.transport_options, option: [value, "changed"]}})
        if option in neutral:
            assert key(changed) == key(cfg), option
        else:
            assert key(changed) != key(cfg), option


def test_neutral_options_are_the_declaring_transports_own() -> None:
    # the same option is neutral for the transport that declares it and in the key elsewhere
    assert "threads" in neutral_transport_options("local")
    runpod = base_config(transport_options={"mode": "run"})
    assert key(runpod.model_copy(update={"transport_options": {"mode": "run", "threads": 4}})) != key(runpod)
    local = base_config(transport="local", transport_options={})
    assert key(local.model_copy(update={"transport_options": {"threads": 4}})) == key(local)


class DeclaresRoute:
    """A third-party transport named by import path, declaring one neutral option."""

    neutral_options = frozenset({"route_hint"})


def test_a_transport_named_by_import_path_declares_its_own() -> None:
    cfg = base_config(transport=f"{__name__}:DeclaresRoute", transport_options={"route_hint": "a"})
    assert neutral_transport_options(cfg.transport) == {"route_hint"}
    assert key(cfg.model_copy(update={"transport_options": {"route_hint": "b"}})) == key(cfg)
    assert key(cfg.model_copy(update={"transport_options": {"other": "b"}})) != key(cfg)
    # one that cannot be imported declares nothing: every option is in the key
    gone = base_config(transport="no_such_module_xyz:Gone", transport_options={"poll_interval_s": 1})
    assert key(gone.model_copy(update={"transport_options": {"poll_interval_s": 2}})) != key(gone)


def test_importing_the_cache_does_not_import_a_transport() -> None:
    code = (
        "import sys, ocrclient.cache; "
        "print(sorted(m for m in sys.modules if m.startswith(('ocrclient.transports.', 'ocrclient.registry'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)})
    loaded = json.loads(out.stdout.replace("'", '"'))
    assert "ocrclient.transports.runpod" not in loaded and "ocrclient.registry" not in loaded, loaded


def test_local_text_score_and_tight_boxes_change_the_key() -> None:
    cfg = base_config(transport="local", dialect="rapidocr", transport_options={})
    keys = {
        key(cfg),
        key(cfg.model_copy(update={"transport_options": {"text_score": 0.9}})),
        key(cfg.model_copy(update={"transport_options": {"tight_boxes": False}})),
    }
    assert len(keys) == 3


def test_endpoint_identity_is_in_the_key_and_the_api_key_is_not() -> None:
    cfg = base_config(api_key="rp_secret_value_123")
    assert key(cfg.model_copy(update={"endpoint_id": "PRODUCTION"})) != key(cfg)
    assert key(cfg.model_copy(update={"base_url": "https://api.runpod.ai/v2"})) != key(cfg)
    assert key(cfg.model_copy(update={"transport": "openai"})) != key(cfg)
    # a trailing slash is the same server
    assert key(cfg.model_copy(update={"base_url": "http://127.0.0.1:9/v2/"})) == key(cfg)
    assert "rp_secret_value_123" not in json.dumps(key_settings(cfg), default=str)


def test_endpoint_from_the_environment_is_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = base_config(base_url=None, endpoint_id=None, base_url_env="T_URL", endpoint_id_env="T_EP")
    monkeypatch.setenv("T_URL", "http://127.0.0.1:1/v2")
    monkeypatch.setenv("T_EP", "one")
    first = key(cfg)
    monkeypatch.setenv("T_EP", "two")
    assert key(cfg) != first
    monkeypatch.setenv("T_EP", "one")
    monkeypatch.setenv("T_URL", "http://127.0.0.1:2/v2")
    assert key(cfg) != first


def test_secrets_inside_transport_options_stay_out_of_the_key() -> None:
    member = {"backend": "runpod-olmocr", "endpoint_id": "abc", "api_key": "rp_member_secret_1"}
    cfg = base_config(transport="pool", transport_options={"members": [member], "modal_key": "mk_secret_value"})
    text = json.dumps(key_settings(cfg), default=str)
    assert "rp_member_secret_1" not in text and "mk_secret_value" not in text
    other_key = {**member, "api_key": "rp_member_secret_2"}
    assert key(cfg.model_copy(update={"transport_options": {"members": [other_key]}})) == key(cfg)
    other_ep = {**member, "endpoint_id": "def"}
    assert key(cfg.model_copy(update={"transport_options": {"members": [other_ep]}})) != key(cfg)


def _pool(*members: dict[str, Any]) -> BackendConfig:
    return base_config(transport="pool", dialect="olmocr", transport_options={"members": list(members)})


#: every way a pool member can be pointed elsewhere: (its override, the environment it reads)
_MEMBER_MOVES: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"endpoint_id": "other"}, {}),
    ({"base_url": "http://127.0.0.1:2/v2"}, {}),
    ({"model": "someone/another-model"}, {}),
    ({}, {"RUNPOD_OLMOCR_ENDPOINT_ID": "other"}),
    ({}, {"RUNPOD_BASE_URL": "http://127.0.0.1:2/v2"}),
]


@pytest.mark.parametrize(("over", "env"), _MEMBER_MOVES)
def test_a_pool_member_pointed_elsewhere_changes_the_key(
    over: dict[str, Any], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool keyed on its members as written: a member whose endpoint came from the environment
    (or the user config) and was pointed at another endpoint got the first endpoint's pages back
    from the cache, and nothing was sent to the second.  Each member now enters the key as the
    endpoint it reaches, resolved as the pool resolves it."""
    monkeypatch.setenv("RUNPOD_BASE_URL", "http://127.0.0.1:1/v2")
    monkeypatch.setenv("RUNPOD_OLMOCR_ENDPOINT_ID", "first")
    monkeypatch.delenv("RUNPOD_ENDPOINT_ID", raising=False)
    member = {"backend": "runpod-olmocr"}
    first = key(_pool(member))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    moved = key(_pool({**member, **over}))
    # (a content option the member's transport declares neutral would keep it: none of these)
    assert moved != first, (over, env)


@pytest.mark.parametrize(
    ("backend", "option"),
    sorted(
        (b, o)
        for b, t in (("runpod-olmocr", "runpod"), ("runpod-pod-lightonocr2", "openai"))
        for o in transport_options_by_transport()[t]
    ),
)
def test_each_pool_member_option_is_in_the_key_unless_its_transport_declares_it_neutral(
    backend: str, option: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_BASE_URL", "http://127.0.0.1:1/v2")
    monkeypatch.setenv("RUNPOD_POD_BASE_URL", "http://127.0.0.1:1/v1")
    member = {"backend": backend, **({"endpoint_id": "a"} if backend.startswith("runpod-olmocr") else {})}
    one = key(_pool({**member, "transport_options": {option: 1}}))
    two = key(_pool({**member, "transport_options": {option: 2}}))
    transport = "runpod" if backend.startswith("runpod-olmocr") else "openai"
    if option in neutral_transport_options(transport):
        assert one == two
    else:
        assert one != two


def test_a_pool_member_s_weight_label_and_order_keep_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Who serves a page is not what it reads: changing a member's weight sent every page of a
    corpus again."""
    monkeypatch.setenv("RUNPOD_BASE_URL", "http://127.0.0.1:1/v2")
    a = {"backend": "runpod-olmocr", "endpoint_id": "a", "weight": 1}
    b = {"backend": "runpod-olmocr", "endpoint_id": "b", "weight": 1}
    first = key(_pool(a, b))
    assert {"weight", "label"} == cache_mod.POOL_MEMBER_NEUTRAL
    assert key(_pool(a, {**b, "weight": 3})) == first
    assert key(_pool({**a, "label": "eu"}, b)) == first
    assert key(_pool(b, a)) == first
    assert key(_pool(a)) != first  # a member less: another set of endpoints


def test_the_pool_pops_exactly_the_members_neutral_keys() -> None:
    """The pool transport takes a member's weight and label for itself and hands every other key
    to the member's profile: the cache's neutral set is those two, no more."""
    import inspect

    from ocrclient.transports.pool import PoolTransport

    source = inspect.getsource(PoolTransport.from_config)
    popped = set(re.findall(r'spec\.pop\("(\w+)"', source))
    assert popped - {"backend"} == set(cache_mod.POOL_MEMBER_NEUTRAL)


def test_local_engine_versions_are_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = base_config(transport="local", dialect="rapidocr", transport_options={})
    assert set(key_settings(cfg)["engine"]) == {"ocrclient", "rapidocr", "onnxruntime"}
    before = key(cfg)
    versions = {"ocrclient": "0.1.0", "rapidocr": "3.0.0", "onnxruntime": "1.20.0"}
    monkeypatch.setattr(cache_mod, "version", lambda package: versions[package])
    cache_mod.engine_versions.cache_clear()
    try:
        first = key(cfg)
        for package, newer in (("rapidocr", "3.1.0"), ("onnxruntime", "1.21.0"), ("ocrclient", "0.2.0")):
            old = versions[package]
            versions[package] = newer
            cache_mod.engine_versions.cache_clear()
            assert key(cfg) != first, package
            versions[package] = old
    finally:
        monkeypatch.undo()
        cache_mod.engine_versions.cache_clear()
    assert key(cfg) == before
    assert key_settings(base_config())["engine"] == {}  # remote: the endpoint stands for the model


# -- size cap ----------------------------------------------------------------------------------


def _page(n: int, size: int = 900) -> Page:
    return Page(page=n + 1, status="ok", markdown="x" * size)


def _entry_bytes(tmp_path: Path) -> int:
    probe = PageCache(tmp_path / "probe", max_bytes=0)
    probe.put("00" * 32, _page(1))
    return probe.info().bytes


def test_holds_tells_an_entry_on_disk_whether_or_not_get_serves_it(tmp_path: Path) -> None:
    """``holds``: what the recall asks before it drops an entry whose page is gone (a page the
    cache keeps but does not serve, a degraded one under ``retry_degraded``, keeps its entry)."""
    cache = PageCache(tmp_path / "c", retry_degraded=True)
    ok, degraded = "aa" * 32, "bb" * 32
    cache.put(ok, _page(1))
    cache.put(degraded, Page(page=2, status="degraded", markdown="cut"))
    assert cache.holds(ok) and cache.get(ok) is not None
    assert cache.holds(degraded) and cache.get(degraded) is None
    assert not cache.holds("cc" * 32)
    os.unlink(cache._path(ok))
    assert not cache.holds(ok)


def test_cap_prunes_least_recently_used_entries(tmp_path: Path) -> None:
    one = _entry_bytes(tmp_path)
    cache = PageCache(tmp_path / "c", max_bytes=10 * one)
    keys = [f"{i:02x}" * 32 for i in range(30)]
    for i, k in enumerate(keys):
        cache.put(k, _page(i))
        os.utime(cache._path(k), (1_000_000 + i, 1_000_000 + i))  # a clear age order, oldest first
        assert cache.info().bytes <= 10 * one
    info = cache.info()
    assert 0 < info.entries <= 10 and info.bytes <= 10 * one
    assert cache.pruned == 30 - info.entries
    kept = [k for k in keys if cache._path(k).exists()]
    assert kept == keys[-len(kept):]  # the newest survive, the oldest went first


@pytest.mark.parametrize("writers", [2, 4])
def test_the_cap_holds_for_processes_sharing_the_cache(tmp_path: Path, writers: int) -> None:
    """Several ``ocr convert`` at once on one cache (each its own PageCache), writing in turn:
    the directory stays within the cap plus each writer's unmeasured share.  Before, each
    counted only its own writes from the size it first saw, and together they filled the
    cache to about ``writers`` times the cap."""
    from ocrclient.cache import REMEASURE

    one = _entry_bytes(tmp_path)
    cap = 100 * one
    caches = [PageCache(tmp_path / "c", max_bytes=cap) for _ in range(writers)]
    most = 0
    for i in range(400):
        caches[i % writers].put(f"{i:04x}" * 16, _page(i))
        most = max(most, caches[0].info().bytes)
    assert most <= cap * (1 + writers * REMEASURE) + one, (most / cap, writers)
    # each entry pruned is counted once, by the writer that deleted it
    assert 0 < sum(c.pruned for c in caches) == 400 - caches[0].info().entries


def test_one_cache_written_from_many_threads_keeps_its_count_and_cap(tmp_path: Path) -> None:
    """A run stores its pages from worker threads: the size it keeps stays the directory's
    (so the cap holds without re-measuring), and every write and prune is counted once."""
    from concurrent.futures import ThreadPoolExecutor

    one = _entry_bytes(tmp_path)
    cap = 40 * one
    cache = PageCache(tmp_path / "c", max_bytes=cap)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: cache.put(f"{i:04x}" * 16, _page(i)), range(300)))
    info = cache.info()
    assert cache.writes == 300 and cache.write_errors == 0
    assert cache._size == info.bytes <= cap
    assert cache.pruned == 300 - info.entries > 0


def test_prune_counts_only_the_entries_it_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process deletes entries between this one's listing and its deletes (they prune
    at once): those are not counted here (before, ``pruned`` counted them for both)."""
    import ocrclient.cache as cache_mod

    cache = PageCache(tmp_path / "c", max_bytes=0)
    for i in range(6):
        cache.put(f"{i:02x}" * 32, _page(i))
    unlink, raced = os.unlink, iter(range(4))

    def other_process_first(path: Any) -> None:
        if next(raced, None) is not None:
            unlink(path)  # the other process's delete
        unlink(path)

    monkeypatch.setattr(cache_mod.os, "unlink", other_process_first)
    assert cache.prune(target=0) == 2 and cache.pruned == 2 and len(cache) == 0


def test_cap_keeps_the_recently_hit_entry(tmp_path: Path) -> None:
    one = _entry_bytes(tmp_path)
    cache = PageCache(tmp_path / "c", max_bytes=int(4.5 * one))
    keys = [f"{i:02x}" * 32 for i in range(4)]
    now = time.time()
    for i, k in enumerate(keys):
        cache.put(k, _page(i))
        os.utime(cache._path(k), (now - 100 + i, now - 100 + i))
    assert cache.get(keys[0]) is not None  # refreshes the oldest entry's mtime
    cache.put("ff" * 32, _page(9))  # 5 entries: over the cap, pruned to 90 % of it (4 entries)
    assert cache._path(keys[0]).exists()
    assert not cache._path(keys[1]).exists()  # the least recently used went


def test_no_cap_with_zero(tmp_path: Path) -> None:
    cache = PageCache(tmp_path / "c", max_bytes=0)
    for i in range(20):
        cache.put(f"{i:02x}" * 32, _page(i))
    assert len(cache) == 20 and cache.pruned == 0


def test_cap_default_env_and_user_config(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_max_bytes() == DEFAULT_CACHE_MAX_BYTES == 2 * 1024**3
    cfg_dir = Path(os.environ["OCRCLIENT_CONFIG_DIR"])
    cfg_dir.mkdir(parents=True, exist_ok=True)
    (cfg_dir / "config.toml").write_text('cache_max_bytes = "300M"\n')
    assert cache_max_bytes() == 300 * 1024**2
    monkeypatch.setenv("OCRCLIENT_CACHE_MAX_BYTES", "1.5GiB")  # the environment outranks the file
    assert cache_max_bytes() == int(1.5 * 1024**3)
    assert PageCache("/nonexistent-dir-for-test").max_bytes == int(1.5 * 1024**3)
    monkeypatch.setenv("OCRCLIENT_CACHE_MAX_BYTES", "12345")
    assert cache_max_bytes() == 12345
    monkeypatch.setenv("OCRCLIENT_CACHE_MAX_BYTES", "lots")
    with pytest.raises(ConfigError, match="OCRCLIENT_CACHE_MAX_BYTES"):
        cache_max_bytes()
    # a fraction of a byte is a unit forgotten (1.5 was a cap of one byte): every spelling
    monkeypatch.delenv("OCRCLIENT_CACHE_MAX_BYTES")
    for text in ("cache_max_bytes = 1.5\n", 'cache_max_bytes = "1.5"\n', 'cache_max_bytes = "0.5"\n'):
        (cfg_dir / "config.toml").write_text(text)
        with pytest.raises(ConfigError, match="give a unit"):
            cache_max_bytes()
    monkeypatch.setenv("OCRCLIENT_CACHE_MAX_BYTES", "2.5")
    with pytest.raises(ConfigError, match="give a unit"):
        cache_max_bytes()


def test_a_cap_is_read_exactly_in_every_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizes are read as decimals, not floats: a 23-digit cap came back rounded."""
    cfg_dir = Path(os.environ["OCRCLIENT_CONFIG_DIR"])
    cfg_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("OCRCLIENT_CACHE_MAX_BYTES", "12345678901234567890123")
    assert cache_max_bytes() == 12345678901234567890123
    monkeypatch.delenv("OCRCLIENT_CACHE_MAX_BYTES")
    for text, want in ((f"cache_max_bytes = {2**70 + 1}\n", 2**70 + 1), ('cache_max_bytes = "9007199254740993"\n', 2**53 + 1),
                       ('cache_max_bytes = "1.5G"\n', 3 * 1024**3 // 2), ('cache_max_bytes = "0.1T"\n', 1024**4 // 10)):  # fmt: skip
        (cfg_dir / "config.toml").write_text(text)
        assert cache_max_bytes() == want, text


# -- ocr cache info | clear --------------------------------------------------------------------


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_cli_cache_info_and_clear(tmp_path: Path) -> None:
    default_dir = Path(os.environ["OCRCLIENT_CACHE_DIR"])
    cache = PageCache(default_dir)
    for i in range(3):
        cache.put(f"{i:02x}" * 32, _page(i))
    (cache._path("00" * 32).parent / ".tmp-leftover.json").write_text("{")
    size = cache.info().bytes

    res = invoke("cache", "info", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"dir": str(default_dir), "entries": 3, "bytes": size, "max_bytes": DEFAULT_CACHE_MAX_BYTES}
    text = invoke("cache", "info", env={"OCRCLIENT_CACHE_MAX_BYTES": "1G"}).stdout
    assert f"dir: {default_dir}" in text and "entries: 3" in text and f"bytes: {size}" in text
    assert "cap: 1073741824 bytes" in text

    res = invoke("cache", "clear")
    assert res.exit_code == 0 and "removed 3 cached page(s)" in res.stdout
    assert json.loads(invoke("cache", "info", "--json").stdout)["entries"] == 0
    assert not list((default_dir / "pages").rglob("*.json"))  # the temp file went too

    other = tmp_path / "elsewhere"
    PageCache(other).put("ab" * 32, _page(1))
    assert json.loads(invoke("cache", "info", "--cache-dir", str(other), "--json").stdout)["entries"] == 1
    assert "removed 1" in invoke("cache", "clear", "--cache-dir", str(other)).stdout


def test_cli_cache_bad_cap_is_one_line_exit_2() -> None:
    res = CliRunner().invoke(app, ["cache", "info"], env={"OCRCLIENT_CACHE_MAX_BYTES": "-5"})
    assert res.exit_code == 2
    assert "OCRCLIENT_CACHE_MAX_BYTES" in res.stderr and "Traceback" not in res.output


# -- a request that reads more than the page image: that file is in the key -------------------


def _pdf_page(pdf: Path | None) -> Any:
    import dataclasses

    from .fakes import make_page

    return dataclasses.replace(make_page(0), pdf_path=str(pdf) if pdf else None)


def test_two_pdfs_rendering_alike_but_holding_other_text_get_other_keys(tmp_path: Path) -> None:
    """The embedded engine reads a PDF page's own text layer: the same pixels with another text
    layer (an invisible OCR layer, a font's wrong mapping) must not be served from the cache."""
    from ocrclient.cache import page_key_for
    from ocrclient.dialects.rapidocr import RapidOCRDialect

    from .pdfgen import text_pdf

    a = text_pdf(tmp_path / "a.pdf", [["one text"]])
    b = text_pdf(tmp_path / "b.pdf", [["another text"]])
    cfg = base_config(transport="local")
    reading = RapidOCRDialect()
    assert page_key_for(_pdf_page(a), cfg, reading) != page_key_for(_pdf_page(b), cfg, reading)
    # the file changing in place moves the key too
    before = page_key_for(_pdf_page(a), cfg, reading)
    text_pdf(a, [["one text, edited"]])
    assert page_key_for(_pdf_page(a), cfg, reading) != before
    # with the text layer off, the request is the image alone: one key for both files
    pixels_only = RapidOCRDialect(text_layer="never")
    assert page_key_for(_pdf_page(a), cfg, pixels_only) == page_key_for(_pdf_page(b), cfg, pixels_only)
    # a file that is gone gives no key (no entry could be checked against it)
    gone = _pdf_page(tmp_path / "gone.pdf")
    assert page_key_for(gone, cfg, reading) is None


def test_every_dialect_that_sends_the_pdf_says_so(tmp_path: Path) -> None:
    """Whole kind: any built-in dialect whose request carries the page's file must declare
    ``reads_source`` (so the file is in the key)."""
    from ocrclient.config import BackendConfig
    from ocrclient.registry import DIALECTS, load_dialect

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "a.pdf", [["text"]])
    page = _pdf_page(pdf)
    checked = 0
    for name in sorted(DIALECTS):
        try:
            dialect = load_dialect(BackendConfig(name="t", transport="local", dialect=name, model="m"))
            body = dialect.build(page, 1).body
        except Exception:  # dialects that need options or another kind of page
            continue
        checked += 1
        carries_file = str(pdf) in repr(body)
        declares = getattr(dialect, "reads_source", None)
        assert not carries_file or (declares is not None and declares(page)), name
    assert checked >= 3


# -- a page's place: pages that render to the same pixels but sit differently ------------------


def test_pages_rendering_alike_keep_their_own_size_and_rotation(tmp_path: Path) -> None:
    """The whole kind of pages that render to the same pixels and differ in what their boxes are
    laid on: a page turned by ``/Rotate 90`` beside one drawn upright, and two sizes a fraction
    of a point apart.  Each keeps its own size and rotation with the cache on, in the run that
    stores them and in the rerun served from it (a hit used to carry the stored page's)."""
    import asyncio

    import ocrclient
    from ocrclient.testing import OpenAISimulator

    from .pdfgen import PdfPage, write_pdf

    pdf = write_pdf(tmp_path / "alike.pdf", [
        PdfPage(media=(0, 0, 612, 792)), PdfPage(media=(0, 0, 792, 612), rotate=90),
        PdfPage(media=(0, 0, 595.28, 841.89)), PdfPage(media=(0, 0, 595, 842)),
    ])  # fmt: skip

    def place(cache: Any) -> tuple[list[tuple[float | None, float | None, int | None]], int]:
        run = ocrclient.aconvert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                 model="sim/ocr-model", render={"dpi": 40}, cache=cache)  # fmt: skip
        doc = asyncio.run(run)
        return [(p.width, p.height, p.rotation) for p in doc.pages], doc.stats.cached

    with OpenAISimulator(model="sim/ocr-model") as sim:
        truth, _ = place(False)
        assert truth[0] != truth[1] and truth[2] != truth[3]  # (the pages differ there)
        assert place(tmp_path / "cache") == (truth, 0)
        assert place(tmp_path / "cache") == (truth, 4)


def test_a_request_that_reads_the_file_keys_on_the_page_number(tmp_path: Path) -> None:
    """Two pages of one file rendering alike, for a dialect whose request reads the page from the
    file as well (the embedded engine's text layer): other keys, since what is read differs."""
    import dataclasses

    from ocrclient.cache import page_key_for
    from ocrclient.dialects.rapidocr import RapidOCRDialect

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "a.pdf", [["one"], ["two"]])
    cfg = base_config(transport="local")
    first = _pdf_page(pdf)
    second = dataclasses.replace(first, index=1)
    assert page_key_for(first, cfg, RapidOCRDialect()) != page_key_for(second, cfg, RapidOCRDialect())
    pixels_only = RapidOCRDialect(text_layer="never")
    assert page_key_for(first, cfg, pixels_only) == page_key_for(second, cfg, pixels_only)


def test_a_run_counts_what_it_spent_not_what_its_cached_pages_once_cost(tmp_path: Path) -> None:
    """A run's attempts and usage (tokens, GPU time, cost) are what it sent: a rerun served from
    the cache spent nothing, one half served spent the other half; each cached page keeps what
    producing it took."""
    import asyncio

    import ocrclient
    from ocrclient.testing import OpenAISimulator

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(4)])
    with OpenAISimulator(model="sim/ocr-model") as sim:

        def run(pages: str) -> Any:
            return asyncio.run(ocrclient.aconvert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                                  model="sim/ocr-model", render={"dpi": 40}, pages=pages,
                                                  cache=tmp_path / "cache"))  # fmt: skip

        half = run("1-2").stats
        assert (half.cached, half.attempts) == (0, 2) and half.usage.prompt_tokens > 0
        whole = run("1-4")
        assert (whole.stats.cached, whole.stats.attempts) == (2, 2)
        assert whole.stats.usage.prompt_tokens == half.usage.prompt_tokens  # pages 3-4 cost as much as 1-2
        again = run("1-4")
        assert (again.stats.cached, again.stats.attempts, again.stats.usage.prompt_tokens) == (4, 0, 0)
        assert all(p.attempts == 1 and p.usage.prompt_tokens > 0 for p in again.pages)


@pytest.mark.parametrize("kind", ["openai", "runpod", "ocular"])
def test_a_rerun_served_from_the_cache_sends_nothing_at_all(kind: str, tmp_path: Path) -> None:
    """Every remote transport: a rerun whose pages are all in the cache makes no request of any
    kind (the run's warm-up read ``/v1/models`` anyway: on a Modal app or a pod scaled to zero,
    a container started and billed for nothing)."""
    import ocrclient
    from ocrclient.testing import OcularSimulator, OpenAISimulator, RunPodSimulator
    from ocrclient.testing.responders import DialectResponder

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "a.pdf", [["one"], ["two"]])
    sims = {"openai": lambda: OpenAISimulator(), "runpod": lambda: RunPodSimulator(),
            "ocular": lambda: OcularSimulator(responder=DialectResponder("trocr"))}  # fmt: skip
    with sims[kind]() as sim:
        if kind == "openai":
            over: dict[str, Any] = {"backend": "openai", "base_url": sim.base_url, "model": sim.model,
                                    "api_key": sim.api_key}  # fmt: skip
        elif kind == "runpod":
            over = {"backend": "runpod-olmocr", "base_url": sim.base_url, "endpoint_id": sim.endpoint_id,
                    "api_key": sim.api_key}  # fmt: skip
        else:
            over = {"backend": "runpod-trocr", "transport": "ocular", "base_url": sim.url}
        first = ocrclient.convert(pdf, cache=tmp_path / "c", **over)
        assert first.ok and sum(sim.requests.values()) > 0
        before = dict(sim.requests)
        again = ocrclient.convert(pdf, cache=tmp_path / "c", **over)
        assert all(p.cached for p in again.pages)
        assert dict(sim.requests) == before


def test_a_dialect_subclass_without_its_own_options_keys_on_every_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin's dialect subclassing a built-in reads options its parent does not: an inherited
    ``OPTIONS`` left them out of the key (a changed ``shout`` served the old pages).  Only a
    class's own declaration counts; without one, every option is keyed (docs/plugins.md)."""
    import sys

    from ocrclient.cache import dialect_options_read

    (tmp_path / "loudplug.py").write_text(
        "from ocrclient.dialects.plain import PlainDialect\n"
        "class LoudPlain(PlainDialect):\n"
        "    pass\n"
        "class DeclaredLoud(PlainDialect):\n"
        "    OPTIONS = {**PlainDialect.OPTIONS, 'shout': False}\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("loudplug", None)
    a = base_config(dialect="loudplug:LoudPlain", dialect_options={})
    assert dialect_options_read("loudplug:LoudPlain") is None
    assert settings_digest(a) != settings_digest(a.model_copy(update={"dialect_options": {"shout": True}}))
    b = base_config(dialect="loudplug:DeclaredLoud", dialect_options={})
    assert settings_digest(b) != settings_digest(b.model_copy(update={"dialect_options": {"shout": True}}))
    assert settings_digest(b) == settings_digest(b.model_copy(update={"dialect_options": {"shout": False}}))


#: one server written each way a user writes it, per transport: the same key; another server
#: (another host, port or path prefix) another key
SPELLINGS = {
    "openai": (["http://h:8000/v1", "http://h:8000/v1/", "http://h:8000", "http://h:8000/",
                "http://h:8000/v1/chat/completions", "http://h:8000/v1?api_key=abcd1234", " http://h:8000/v1 ",
                "HTTP://H:8000/v1", "http://H:8000"],
               ["http://h:8001/v1", "http://g:8000/v1", "http://h:8000/gw/v1", "https://h:8000/v1", "http://h/v1"]),
    "runpod": (["https://api.runpod.ai/v2", "https://api.runpod.ai/v2/", "HTTPS://API.RunPod.ai/v2",
                "https://api.runpod.ai:443/v2", "https://api.runpod.ai:443/v2/"],
               ["https://api.runpod.ai/v3", "https://other.example/v2", "https://api.runpod.ai:8443/v2",
                "http://api.runpod.ai/v2", "https://api.runpod.ai/V2"]),
    "ocular": (["http://h:8000", "http://h:8000/", "HTTP://h:8000"], ["http://h:8001", "http://h:8000/gw"]),
    "openai:80": (["http://h/v1", "http://h:80/v1", "http://H:80"], ["http://h:8080/v1", "https://h/v1"]),
}  # fmt: skip


@pytest.mark.parametrize("transport", sorted(SPELLINGS))
def test_one_server_however_written_is_one_key_and_another_server_another(transport: str) -> None:
    """The whole kind: a server written with or without ``/v1``, as its ``/chat/completions``,
    with a trailing slash or a credential in its query, its scheme or host in capitals, its
    default port written out, is the one server its transport reaches:
    its pages are served from the cache and its documents skipped by the manifest.  Each
    spelling missed the cache (every page sent again) and changed the manifest's digest."""
    same, other = SPELLINGS[transport]

    def cfg(url: str) -> BackendConfig:
        return base_config(transport=transport.partition(":")[0], base_url=url, transport_options={})

    keys = {u: key(cfg(u)) for u in same}
    digests = {u: settings_digest(cfg(u)) for u in same}
    assert len(set(keys.values())) == 1, keys
    assert len(set(digests.values())) == 1, digests
    for u in other:
        assert key(cfg(u)) not in keys.values(), u
        assert settings_digest(cfg(u)) not in digests.values(), u
