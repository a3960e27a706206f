"""A profile's ``[sampling]`` is checked when its backend loads, for every chat profile shipped:
every key a chat dialect sends has a rule, each value a rule accepts builds bodies that both of
our chat servers' request models take whole (vLLM's and our workers'), each value a rule refuses
is one ``ConfigError`` before anything is sent, and so is a key no dialect reads (a typo was
dropped without a word; ``max_tokens = 0`` or ``top_p = 2`` failed every page on the server's
400 instead).  A layer that sets ``temperature`` (or ``top_p``) replaces a lower layer's ladder
of it: the profiles' ``temperature_ladder`` had silently won over a user's ``temperature``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ocrclient.config import list_profiles, resolve_config
from ocrclient.contracts import unknown_fields
from ocrclient.contracts.chat import VllmChatRequest, WorkerChatRequest
from ocrclient.contracts.sampling import SAMPLING_KEYS
from ocrclient.dialects.sampling import SAMPLING_RULES
from ocrclient.errors import ConfigError
from ocrclient.registry import load_dialect

from .test_dialect_common import make_page

#: the profiles whose dialect sends a chat body (the others: the local engine, the TrOCR service)
CHAT_PROFILES = sorted(p for p in list_profiles() if p not in ("local", "runpod-trocr"))

VALID: dict[str, list[Any]] = {
    "max_tokens": [1, 4096],
    "temperature": [0, 0.7, 1.5],
    "temperature_ladder": [0.2, [0.0, 0.3, 1.5]],
    "top_p": [1, 0.05, [0.1, 0.95]],
    "top_p_ladder": [0.5, [0.1, 0.95]],
    "top_k": [-1, 0, 1, 50],
    "min_p": [0, 0.05, 1],
    "repetition_penalty": [1.05, 0.5],
    "presence_penalty": [-2, 0, 1.5],
    "frequency_penalty": [2, -0.5],
    "seed": [0, 42],
    "stop": ["</s>", ["a", "b"]],
    "skip_special_tokens": [True, False],
    "include_stop_str_in_output": [True, False],
    "vllm_xargs": [{"ngram_size": 30, "whitelist_token_ids": [128821, 128822], "mode": "x"}],
}
INVALID: dict[str, list[Any]] = {
    "max_tokens": [0, -1, 1.5, "10", True],
    "temperature": [-0.1, "hot", float("nan"), [], [0.0, 0.5]],  # (a ladder is temperature_ladder)
    "temperature_ladder": [[], ["x"], [0.2, -1], float("inf")],
    "top_p": [0, 1.01, 2, "x"],
    "top_p_ladder": [[], [0.5, 0]],
    "top_k": [-2, 1.5, "x"],
    "min_p": [-0.1, 1.5],
    "repetition_penalty": [0, -1],
    "presence_penalty": [-3, 2.5],
    "frequency_penalty": [3],
    "seed": [1.5, "7"],
    "stop": [1, ["a", 2]],
    "skip_special_tokens": ["yes", 1],
    "include_stop_str_in_output": [0],
    "vllm_xargs": [[1], {"a": {"b": 1}}, {"a": None}],
}


def _dialect(profile: str, sampling: dict[str, Any]) -> Any:
    return load_dialect(resolve_config(profile, model="m/odel", sampling=sampling))


def test_every_key_a_chat_dialect_sends_has_a_rule_and_cases() -> None:
    keys = set(SAMPLING_KEYS) | {"max_tokens", "temperature_ladder", "top_p_ladder"}
    assert set(SAMPLING_RULES) == keys
    assert set(VALID) == set(INVALID) == keys


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in VALID.items() for v in vs])
def test_each_accepted_value_builds_bodies_both_chat_servers_take_whole(key: str, value: Any) -> None:
    page = make_page()
    for profile in CHAT_PROFILES:
        dialect = _dialect(profile, {key: value})
        for attempt in (1, 2, 5):
            body = dialect.build(page, attempt).body
            for server in (VllmChatRequest, WorkerChatRequest):
                assert unknown_fields(server.model_validate(body)) == [], (profile, server.__name__)


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in INVALID.items() for v in vs])
def test_each_refused_value_is_a_config_error_as_the_backend_loads(key: str, value: Any) -> None:
    for profile in CHAT_PROFILES:
        with pytest.raises(ConfigError, match=rf"sampling\.{key} must be"):
            _dialect(profile, {key: value})


@pytest.mark.parametrize("profile", [*CHAT_PROFILES, "runpod-trocr"])
def test_an_unknown_sampling_key_is_a_config_error(profile: str) -> None:
    with pytest.raises(ConfigError, match=r"sampling\.max_token: not a sampling setting"):
        _dialect(profile, {"max_token": 100})


def test_trocr_takes_its_own_keys_and_refuses_the_chat_ones() -> None:
    assert _dialect("runpod-trocr", {"num_beams": 2, "max_tokens": 256}).decoding(1)["num_beams"] == 2
    with pytest.raises(ConfigError, match=r"sampling\.top_k: not a sampling setting of the trocr dialect"):
        _dialect("runpod-trocr", {"top_k": 5})


def test_a_temperature_replaces_the_profiles_ladder_and_a_top_p_its_ladder() -> None:
    page = make_page()
    profile = resolve_config("runpod-chandra")  # temperature_ladder [0.0, 0.3, ...], top_p_ladder
    assert {"temperature_ladder", "top_p_ladder"} <= set(profile.sampling)
    cfg = resolve_config("runpod-chandra", sampling={"temperature": 0.5, "top_p": 0.8})
    assert "temperature_ladder" not in cfg.sampling and "top_p_ladder" not in cfg.sampling
    body = load_dialect(cfg).build(page, 1).body
    assert (body["temperature"], body["top_p"]) == (0.5, 0.8)
    # and the other way round: a ladder replaces a lower layer's fixed value
    cfg = resolve_config("runpod-pod-lightonocr2", sampling={"top_p_ladder": [0.5, 0.9]})
    assert "top_p" not in cfg.sampling and load_dialect(cfg).build(page, 1).body["top_p"] == 0.5


def test_the_user_config_layer_replaces_a_ladder_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_text('[backends.runpod-chandra.sampling]\ntemperature = 0.25\n')
    monkeypatch.setenv("OCRCLIENT_CONFIG_DIR", str(tmp_path))
    cfg = resolve_config("runpod-chandra")
    assert cfg.sampling["temperature"] == 0.25 and "temperature_ladder" not in cfg.sampling
    assert cfg.sampling["top_p_ladder"] == [0.1, 0.95]  # the other pair is the profile's still


def test_the_cli_refuses_a_bad_sampling_in_one_line(tmp_path: Path) -> None:
    profile = tmp_path / "mine.toml"
    profile.write_text('transport = "openai"\ndialect = "lighton"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
                       '[sampling]\ntop_p = 2\n')  # fmt: skip
    pdf = Path(__file__).resolve().parents[1] / "examples" / "sample.pdf"
    done = subprocess.run([sys.executable, "-m", "ocrclient", "convert", str(pdf), "-o", str(tmp_path / "out"),
                           "--backend", str(profile), "--no-cache"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["error: sampling.top_p must be a number in (0, 1] (or a list of them) (got 2)"]
    assert not (tmp_path / "out").exists()


def test_a_plugin_dialect_declares_its_own_sampling_keys() -> None:
    """A dialect of a plugin that reads keys of its own from ``[sampling]`` names them; the
    others are refused as for every chat dialect."""
    from ocrclient.dialects.base import ChatDialect, PageContent

    class Beamy(ChatDialect):
        name = "beamy"
        DEFAULT_MODEL = "m"
        EXTRA_SAMPLING_KEYS = ("beam_width",)

        def content(self, page: Any, image: Any, attempt: Any) -> list[dict[str, Any]]:
            return []

        def parse_text(self, text: str, reply: Any, request: Any) -> PageContent:
            return PageContent(markdown=text)

    assert Beamy(sampling={"beam_width": 3, "top_k": 5}).sampling_cfg["beam_width"] == 3
    with pytest.raises(ConfigError, match=r"sampling\.beam_widht: not a sampling setting of the beamy dialect"):
        Beamy(sampling={"beam_widht": 3})
