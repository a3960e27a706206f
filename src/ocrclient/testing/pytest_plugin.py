"""pytest fixtures for testing your code against the simulated clouds of :mod:`ocrclient.testing`.

Not registered automatically: enable it in a ``conftest.py`` (or a test module) with::

    pytest_plugins = ["ocrclient.testing.pytest_plugin"]

Fixtures (each simulator is started on 127.0.0.1 and stopped at teardown):

=====================  =====================================================================
``runpod_sim``         :class:`~ocrclient.testing.RunPodSimulator` (RunPod serverless)
``openai_sim``         :class:`~ocrclient.testing.OpenAISimulator`, ``mode="direct"`` (vLLM)
``pod_proxy_sim``      ``OpenAISimulator(mode="proxy")``: vLLM behind the RunPod pod proxy,
                       serving ``runpod-pod-lightonocr2``'s model
``modal_sim``          ``OpenAISimulator(mode="modal")``: a Modal web endpoint, serving
                       ``modal-lightonocr``'s model
``ocular_sim``         :class:`~ocrclient.testing.OcularSimulator` (``/extract_text``)
``*_sim_factory``      ``runpod_sim_factory(**kwargs)`` etc.: build more, or with your own
                       ``plan=FaultPlan(...)`` / ``responder=...`` / other constructor arguments
``ocr_env``            ``ocr_env(sim, backend=None)``: point a named backend at a simulator
                       through the environment (monkeypatched, undone at teardown)
=====================  =====================================================================

The fixture simulators use a default :class:`~ocrclient.testing.FaultPlan` (no faults, no
latency, 8 slots) and the echo responder; use the factories for anything else.

Example::

    pytest_plugins = ["ocrclient.testing.pytest_plugin"]

    def test_my_pipeline(runpod_sim_factory, ocr_env):
        sim = runpod_sim_factory(plan=FaultPlan(seed=1, rates={"http_503": 0.3}))
        ocr_env(sim, "runpod-olmocr")
        doc = my_code.ocr_invoice("invoice.pdf")       # calls ocrclient.convert(...) inside
        assert all(p.status == "ok" for p in doc.pages)
        assert sim.plan.injected["http_503"] >= 1

``ocr_env`` sets the variables the backend's profile reads (API key, endpoint id, base URL,
``MODAL_KEY`` / ``MODAL_SECRET``, ``OCRCLIENT_BACKEND``), points ``OCRCLIENT_CONFIG_DIR`` at a
fresh directory whose ``config.toml`` holds what has no variable (the RunPod base URL, a short
poll interval, the simulator's model name, ``transport = "ocular"`` for a RunPod ocular profile)
and ``OCRCLIENT_CACHE_DIR`` at an empty cache, so every test sends its pages.  Code that calls
``ocrclient.convert(path)`` with no backend, or the ``ocr`` CLI in a subprocess, then runs against
the simulator unchanged.  (A profile of your own in ``~/.config/ocrclient/backends/`` is hidden by
the fresh config directory: pass its TOML path as ``backend``.)

pytest is imported here only: the rest of ``ocrclient`` does not need it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from ..config import BackendConfig, resolve_config
from .faults import FaultPlan
from .http_sim import HTTPSimulator
from .ocular_sim import OcularSimulator
from .openai_sim import OpenAISimulator
from .runpod_sim import SIM_MODEL, RunPodSimulator

__all__ = [
    "OcrEnv",
    "default_backend_for",
    "modal_sim",
    "modal_sim_factory",
    "ocr_env",
    "ocular_sim",
    "ocular_sim_factory",
    "openai_sim",
    "openai_sim_factory",
    "pod_proxy_sim",
    "pod_proxy_sim_factory",
    "runpod_sim",
    "runpod_sim_factory",
]

S = TypeVar("S", RunPodSimulator, OpenAISimulator, OcularSimulator)

#: the model each OpenAI-mode fixture serves, so the paired profile's requests are accepted
POD_PROXY_MODEL = "lightonai/LightOnOCR-2-1B"
MODAL_MODEL = "lightonai/LightOnOCR-1B-1025"
#: the model a generic RunPod profile (no model of its own) is given: the simulator serves any
RUNPOD_SIM_MODEL = SIM_MODEL

#: RunPod profiles poll from every 0.25 s (backing off to 0.5 s); a simulator answers in milliseconds
SIM_POLL_INTERVAL_S = 0.05


def _factory(cls: type[S], defaults: dict[str, Any]) -> Iterator[Callable[..., S]]:
    started: list[S] = []

    def make(**kwargs: Any) -> S:
        args = {**defaults, **kwargs}
        args.setdefault("plan", FaultPlan())
        sim = cls(**args)
        sim.start()
        started.append(sim)
        return sim

    try:
        yield make
    finally:
        for sim in reversed(started):
            sim.stop()


# -- factories ----------------------------------------------------------------------------------


@pytest.fixture
def runpod_sim_factory() -> Iterator[Callable[..., RunPodSimulator]]:
    """``runpod_sim_factory(**kwargs)`` -> a started :class:`RunPodSimulator` (stopped at teardown)."""
    yield from _factory(RunPodSimulator, {})


@pytest.fixture
def openai_sim_factory() -> Iterator[Callable[..., OpenAISimulator]]:
    """``openai_sim_factory(**kwargs)`` -> a started :class:`OpenAISimulator` (default ``mode="direct"``)."""
    yield from _factory(OpenAISimulator, {"mode": "direct"})


@pytest.fixture
def pod_proxy_sim_factory() -> Iterator[Callable[..., OpenAISimulator]]:
    """``pod_proxy_sim_factory(**kwargs)`` -> a started ``OpenAISimulator(mode="proxy")`` serving
    LightOnOCR-2-1B (pass ``proxy_idle_s=`` to shorten the proxy's 100 s idle limit)."""
    yield from _factory(OpenAISimulator, {"mode": "proxy", "model": POD_PROXY_MODEL})


@pytest.fixture
def modal_sim_factory() -> Iterator[Callable[..., OpenAISimulator]]:
    """``modal_sim_factory(**kwargs)`` -> a started ``OpenAISimulator(mode="modal")`` serving
    LightOnOCR-1B-1025 (pass ``modal_redirect_after_s=`` to shorten Modal's 150 s)."""
    yield from _factory(OpenAISimulator, {"mode": "modal", "model": MODAL_MODEL})


@pytest.fixture
def ocular_sim_factory() -> Iterator[Callable[..., OcularSimulator]]:
    """``ocular_sim_factory(**kwargs)`` -> a started :class:`OcularSimulator`."""
    yield from _factory(OcularSimulator, {})


# -- ready-made simulators ------------------------------------------------------------------------


@pytest.fixture
def runpod_sim(runpod_sim_factory: Callable[..., RunPodSimulator]) -> RunPodSimulator:
    """A started RunPod serverless simulator with the default plan."""
    return runpod_sim_factory()


@pytest.fixture
def openai_sim(openai_sim_factory: Callable[..., OpenAISimulator]) -> OpenAISimulator:
    """A started vLLM (OpenAI-compatible) simulator, reached directly."""
    return openai_sim_factory()


@pytest.fixture
def pod_proxy_sim(pod_proxy_sim_factory: Callable[..., OpenAISimulator]) -> OpenAISimulator:
    """A started vLLM simulator behind a simulated RunPod pod proxy."""
    return pod_proxy_sim_factory()


@pytest.fixture
def modal_sim(modal_sim_factory: Callable[..., OpenAISimulator]) -> OpenAISimulator:
    """A started vLLM simulator behind a simulated Modal web endpoint."""
    return modal_sim_factory()


@pytest.fixture
def ocular_sim(ocular_sim_factory: Callable[..., OcularSimulator]) -> OcularSimulator:
    """A started ocular (``/extract_text``) simulator."""
    return ocular_sim_factory()


# -- ocr_env --------------------------------------------------------------------------------------


def default_backend_for(sim: Any) -> str:
    """The named backend a simulator stands in for by default.

    Example::

        >>> default_backend_for(OpenAISimulator(mode="modal"))
        'modal-lightonocr'
    """
    if isinstance(sim, RunPodSimulator):
        return "runpod-olmocr"
    if isinstance(sim, OcularSimulator):
        return "runpod-trocr"
    if isinstance(sim, OpenAISimulator):
        return {"direct": "openai", "proxy": "runpod-pod-lightonocr2", "modal": "modal-lightonocr"}[sim.mode]
    raise TypeError(f"not an ocrclient.testing simulator: {type(sim).__name__}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


class OcrEnv(Protocol):
    """``ocr_env(sim, backend=None) -> dict[str, str]`` (the variables it set)."""

    def __call__(self, sim: Any, backend: str | None = None) -> dict[str, str]: ...


class _OcrEnv:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.monkeypatch = monkeypatch
        self.root = root
        self.calls = 0
        self.set_before: set[str] = set()

    def __call__(self, sim: Any, backend: str | None = None) -> dict[str, str]:
        if not isinstance(sim, RunPodSimulator | HTTPSimulator):
            raise TypeError(f"ocr_env needs an ocrclient.testing simulator, not {type(sim).__name__}")
        self.calls += 1
        for name in self.set_before:  # an earlier call's variables point at its simulator
            self.monkeypatch.delenv(name, raising=False)
        home = self.root / f"env{self.calls}"
        config_dir, cache = home / "config", home / "cache"
        config_dir.mkdir(parents=True)
        cache.mkdir()
        env: dict[str, str] = {"OCRCLIENT_CONFIG_DIR": str(config_dir), "OCRCLIENT_CACHE_DIR": str(cache)}
        # resolve the profile with an empty user config: only the profile itself counts
        self.monkeypatch.setenv("OCRCLIENT_CONFIG_DIR", str(config_dir))
        name = backend or default_backend_for(sim)
        cfg = resolve_config(name)
        table: dict[str, Any] = {}
        options: dict[str, Any] = {}

        def secret(value: str | None) -> None:
            """The API key: in the variable the profile names, else in the (0600) config file."""
            if not value:
                return
            if cfg.api_key_env:
                env[cfg.api_key_env] = value
            else:
                table["api_key"] = value

        if isinstance(sim, RunPodSimulator):
            self._expect(cfg, {"runpod"}, sim)
            table["base_url"] = sim.base_url
            table["endpoint_id"] = sim.endpoint_id
            if cfg.base_url_env:  # the environment outranks the config file
                env[cfg.base_url_env] = sim.base_url
            env[cfg.endpoint_id_env or "RUNPOD_ENDPOINT_ID"] = sim.endpoint_id
            env["RUNPOD_ENDPOINT_ID"] = sim.endpoint_id
            secret(sim.api_key or NO_AUTH_KEY)  # (the client sends a key: one checked by nobody)
            if cfg.resolved_model() is None:  # a generic profile: the simulator serves any name
                if cfg.model_env:
                    env[cfg.model_env] = RUNPOD_SIM_MODEL
                else:
                    table["model"] = RUNPOD_SIM_MODEL
            if sim.flavour == "local":
                options["mode"] = "local"
            options["poll_interval_s"] = SIM_POLL_INTERVAL_S
        elif isinstance(sim, OcularSimulator):
            cfg = self._ocular(cfg, sim, table)
            table["base_url"] = sim.url
            if cfg.base_url_env:
                env[cfg.base_url_env] = sim.url
            secret(sim.api_key)
        elif isinstance(sim, OpenAISimulator):
            self._expect(cfg, {"openai"}, sim)
            table["base_url"] = sim.base_url
            env[cfg.base_url_env or "OCRCLIENT_BASE_URL"] = sim.base_url
            secret(sim.api_key)
            if cfg.resolved_model() != sim.model:
                table["model"] = sim.model
            if cfg.model_env:
                env[cfg.model_env] = sim.model
            if sim.mode == "modal":
                options["modal"] = True
                headers = sim.modal_headers
                from ..transports.openai import modal_env_names

                key_env, secret_env = modal_env_names(cfg.transport_options)
                env[key_env], env[secret_env] = headers["Modal-Key"], headers["Modal-Secret"]
        else:  # pragma: no cover - HTTPSimulator subclasses of the user's own
            raise TypeError(f"ocr_env does not know {type(sim).__name__}")

        _write_config(config_dir / "config.toml", cfg.name, table, options)
        env["OCRCLIENT_BACKEND"] = cfg.name if backend is None or not _is_path(backend) else backend
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        self.set_before = set(env)
        return env

    def _ocular(self, cfg: BackendConfig, sim: OcularSimulator, table: dict[str, Any]) -> BackendConfig:
        """``cfg`` as it reaches an ocular simulator: a RunPod TrOCR profile switched to its
        plain-HTTP deployment (``table`` gets the switch), with the key that one reads."""
        self._expect(cfg, {"ocular", "runpod"}, sim)
        if sim.mode == "modal":  # (a 401 at every page otherwise)
            raise ValueError("the ocular transport sends no Modal proxy auth: an OcularSimulator(mode='modal') "
                             "serves clients of your own, not ocr_env's backend")
        if cfg.transport != "runpod":
            return cfg
        if cfg.dialect != "trocr":
            raise ValueError(f"backend {cfg.name!r} does not speak the ocular contract")
        table["transport"] = "ocular"  # the plain-HTTP deployment of the same contract
        return resolve_config(cfg.origin or cfg.name, transport="ocular")  # (its key: not the RunPod one)

    @staticmethod
    def _expect(cfg: BackendConfig, transports: set[str], sim: Any) -> None:
        if cfg.transport not in transports:
            raise ValueError(
                f"backend {cfg.name!r} uses the {cfg.transport!r} transport; "
                f"a {type(sim).__name__} serves {' or '.join(sorted(transports))}"
            )


#: the key ``ocr_env`` gives the client for a RunPod simulator that checks none (``api_key=None``):
#: the RunPod transport refuses to send without one
NO_AUTH_KEY = "sim-no-auth-key"


def _write_config(path: Path, name: str, table: dict[str, Any], options: dict[str, Any]) -> None:
    """The user config ``ocr_env`` writes: ``name``'s settings and transport options (0600)."""
    lines = [f"[backends.{json.dumps(name)}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    if options:
        lines.append(f"[backends.{json.dumps(name)}.transport_options]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in options.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)


def _is_path(name: str) -> bool:
    return name.endswith(".toml") or "/" in name or os.sep in name


@pytest.fixture
def ocr_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> OcrEnv:
    """``ocr_env(sim, backend=None)``: make ``backend`` (default: the one ``sim`` stands in for)
    reach ``sim`` through the environment; returns the variables it set."""
    return _OcrEnv(monkeypatch, tmp_path_factory.mktemp("ocr-env"))
