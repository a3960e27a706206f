"""Backend profiles + user config + environment + flags -> one resolved :class:`BackendConfig`.

Precedence, lowest first: the shipped profile (``ocrclient/backends/<name>.toml``, or a user
profile in ``<config dir>/backends/<name>.toml``, or a TOML path given as the backend name), the
``[backends.<name>]`` table of the user config file, environment variables, explicit overrides
(CLI flags / ``load_backend(**overrides)``).

Secrets are never stored on the model in clear: ``api_key`` is a ``SecretStr`` and
:meth:`BackendConfig.public_dict` masks it.  Environment variables that hold secrets are named by
the profile (``api_key_env``) and read only when a transport is built.

Example::

    >>> cfg = resolve_config("local")
    >>> cfg.transport, cfg.dialect
    ('local', 'rapidocr')
"""

from __future__ import annotations

import os
import stat
import sys
import tomllib
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .errors import ConfigError, register_secret
from .imaging import RenderSpec

__all__ = [
    "BackendConfig",
    "cache_dir",
    "config_dir",
    "list_profiles",
    "load_user_config",
    "resolve_config",
]

DEFAULT_BACKEND = "local"


def config_dir() -> Path:
    """``$OCRCLIENT_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/ocrclient``, else ``~/.config/ocrclient``."""
    if env := os.environ.get("OCRCLIENT_CONFIG_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ocrclient"


def cache_dir() -> Path:
    """``$OCRCLIENT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ocrclient``, else ``~/.cache/ocrclient``."""
    if env := os.environ.get("OCRCLIENT_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ocrclient"


class RenderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dpi: float | None = None
    longest_side: int | None = None
    max_pixels: int | None = None
    min_side: int | None = None
    grayscale: bool | None = None
    format: str | None = None
    quality: int | None = None

    def apply(self, base: RenderSpec) -> RenderSpec:
        """``base`` (the dialect's own spec) with these settings laid over it.  A profile that
        sets ``longest_side`` without ``dpi`` means "exactly this longest side"."""
        changes = self.model_dump(exclude_none=True)
        if "longest_side" in changes and "dpi" not in changes:
            changes["dpi"] = None
            return RenderSpec(**{**_spec_fields(base), **changes})
        return base.with_(**changes)


def _spec_fields(spec: RenderSpec) -> dict[str, Any]:
    return {k: getattr(spec, k) for k in spec.__dataclass_fields__}


class BackendConfig(BaseModel):
    """Everything needed to build one backend (transport x dialect + settings)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    transport: str
    dialect: str
    model: str | None = None
    base_url: str | None = None
    endpoint_id: str | None = None
    #: env var holding the API key (RUNPOD_API_KEY, OCRCLIENT_API_KEY, ...)
    api_key_env: str | None = None
    #: env var holding the endpoint id (falls back to RUNPOD_ENDPOINT_ID for RunPod)
    endpoint_id_env: str | None = None
    #: env var holding the base URL
    base_url_env: str | None = None
    #: env var holding the model name (generic profiles: OCRCLIENT_MODEL)
    model_env: str | None = None
    api_key: SecretStr | None = None
    render: RenderSettings = Field(default_factory=RenderSettings)
    sampling: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(8, ge=1, le=4096)
    max_attempts: int = Field(4, ge=1, le=50)
    attempt_timeout_s: float = Field(600.0, gt=0)
    page_deadline_s: float = Field(1800.0, gt=0)
    cold_start_s: float = Field(600.0, ge=0)
    price_per_gpu_second: float | None = None
    price_per_hour: float | None = None
    transport_options: dict[str, Any] = Field(default_factory=dict)
    dialect_options: dict[str, Any] = Field(default_factory=dict)
    #: where the profile came from (file path), for `ocr config`
    origin: str | None = None

    # -- secrets ---------------------------------------------------------------------------
    def secret(self) -> str | None:
        """The API key: explicit value, else the env var the profile names; registered for
        redaction before it is returned."""
        value: str | None = None
        if self.api_key is not None:
            value = self.api_key.get_secret_value()
        elif self.api_key_env:
            value = os.environ.get(self.api_key_env)
        register_secret(value)
        return value or None

    def resolved_endpoint_id(self) -> str | None:
        if self.endpoint_id:
            return self.endpoint_id
        for env in (self.endpoint_id_env, "RUNPOD_ENDPOINT_ID" if self.transport == "runpod" else None):
            if env and os.environ.get(env):
                return os.environ[env]
        return None

    def resolved_base_url(self) -> str | None:
        if self.base_url_env and os.environ.get(self.base_url_env):
            return os.environ[self.base_url_env]
        return self.base_url

    def resolved_model(self) -> str | None:
        if self.model_env and os.environ.get(self.model_env):
            return os.environ[self.model_env]
        return self.model

    def render_spec(self, base: RenderSpec) -> RenderSpec:
        return self.render.apply(base)

    def public_dict(self) -> dict[str, Any]:
        """The settings with every secret masked (for ``ocr config`` and logs)."""
        data = self.model_dump(mode="json", exclude={"api_key"})
        data["api_key"] = "***" if self.api_key is not None else None
        if self.api_key_env:
            data["api_key_set"] = bool(os.environ.get(self.api_key_env))
        return data


# ---------------------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------------------


def _shipped_profiles() -> dict[str, Path]:
    root = resources.files("ocrclient") / "backends"
    out: dict[str, Path] = {}
    for entry in root.iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name[:-5]] = Path(str(entry))
    return out


def _user_profiles() -> dict[str, Path]:
    folder = config_dir() / "backends"
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def list_profiles() -> dict[str, Path]:
    """Known backend names -> profile file (user profiles override shipped ones)."""
    return {**_shipped_profiles(), **_user_profiles()}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"backend profile not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc


def _warn_if_world_readable(path: Path, data: dict[str, Any]) -> None:
    if sys.platform == "win32" or not _has_secret(data):
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.warn(
            f"{path} holds an API key and is readable by other users; run: chmod 600 {path}",
            stacklevel=3,
        )


def _has_secret(data: Any) -> bool:
    if isinstance(data, dict):
        return any(
            (k in ("api_key", "modal_secret", "modal_key") and v) or _has_secret(v)
            for k, v in data.items()
        )
    return False


def load_user_config() -> dict[str, Any]:
    """The user config file (``<config dir>/config.toml``) or ``{}``."""
    path = config_dir() / "config.toml"
    if not path.is_file():
        return {}
    data = _read_toml(path)
    _warn_if_world_readable(path, data)
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_config(name: str | Path | None = None, **overrides: Any) -> BackendConfig:
    """Resolve a backend name (or TOML path) plus overrides into a :class:`BackendConfig`.

    Overrides use the field names of :class:`BackendConfig`; nested tables (``render``,
    ``sampling``, ``transport_options``, ``dialect_options``) merge key by key.  ``None`` values
    are ignored, so CLI flags that were not given can be passed straight through.
    """
    user = load_user_config()
    if name is None:
        name = os.environ.get("OCRCLIENT_BACKEND") or user.get("default_backend") or DEFAULT_BACKEND
    name = str(name)
    path: Path
    if name.endswith(".toml") or os.sep in name or "/" in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"backend profile not found: {path}")
    else:
        profiles = list_profiles()
        if name not in profiles:
            known = ", ".join(sorted(profiles))
            raise ConfigError(f"unknown backend {name!r}; known backends: {known}")
        path = profiles[name]
    data = _read_toml(path)
    _warn_if_world_readable(path, data)
    data.setdefault("name", path.stem)
    data["origin"] = str(path)
    data = _merge(data, dict(user.get("backends", {}).get(data["name"], {})))
    data = _merge(data, {k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = BackendConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"backend {name!r}: {loc}: {first['msg']}") from exc
    if cfg.api_key is not None:
        register_secret(cfg.api_key.get_secret_value())
    if cfg.model_env and os.environ.get(cfg.model_env) and overrides.get("model") is None:
        cfg = cfg.model_copy(update={"model": os.environ[cfg.model_env]})
    return cfg
