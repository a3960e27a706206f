"""Backend profiles + user config + environment + flags -> one resolved :class:`BackendConfig`.

One precedence rule for every setting, CLI and Python API alike (:func:`merge_layers`), highest
first: an explicit argument (CLI flag, ``convert(..., base_url=...)``,
``load_backend(**overrides)``) > the environment (the variable the profile names in
``base_url_env`` / ``endpoint_id_env`` / ``model_env`` / ``api_key_env``; ``OCRCLIENT_BACKEND``)
> the user config file (its ``[backends.<name>]`` table, ``default_backend``) > the profile (a
shipped ``backends/<name>.toml``, found by :func:`shipped_profiles_dir`; a user profile in
``<config dir>/backends/<name>.toml``; or a TOML path given as the backend name).  A transport's generic variable
(``RUNPOD_ENDPOINT_ID``, ``OCRCLIENT_BASE_URL``) is only a fallback when no layer sets the value.

Secrets are never stored on the model in clear: ``api_key`` is a ``SecretStr`` (whichever layer
it came from, the variable named by ``api_key_env`` included), :meth:`BackendConfig.public_dict`
masks it, and every secret is registered for redaction.

Example::

    >>> cfg = resolve_config("local")
    >>> cfg.transport, cfg.dialect
    ('local', 'rapidocr')
"""

from __future__ import annotations

import os
import re
import stat
import sys
import tomllib
import warnings
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .envnames import (
    ENV_FALLBACKS,
    ENV_NAME,
    env_name,
    fallback_env,
    not_a_name,
)
from .errors import ConfigError, register_secret
from .imaging import RenderSpec
from .secrets import header_secret, redact, register_url_secrets

__all__ = [
    "DEFAULT_CACHE_MAX_BYTES",
    "ENV_NAME",
    "ENV_SETTINGS",
    "BackendConfig",
    "cache_dir",
    "cache_max_bytes",
    "config_dir",
    "env_name",
    "list_profiles",
    "load_user_config",
    "merge_layers",
    "parse_size",
    "resolve_backend_name",
    "resolve_config",
    "shipped_profiles_dir",
]

DEFAULT_BACKEND = "local"

#: the settings an environment variable can set: field -> the field that names the variable
ENV_SETTINGS: dict[str, str] = {
    "base_url": "base_url_env",
    "endpoint_id": "endpoint_id_env",
    "model": "model_env",
    "api_key": "api_key_env",
}

#: the page cache's default size cap (2 GiB); ``OCRCLIENT_CACHE_MAX_BYTES`` or ``cache_max_bytes``
#: in the user config change it, ``0`` lifts it
DEFAULT_CACHE_MAX_BYTES = 2 * 1024**3


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


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(value: str | int, what: str = "size") -> int:
    """Bytes from ``2147483648``, ``"500M"``, ``"2G"``, ``"2GiB"`` or ``"1.5 GB"`` (binary units)."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a size in bytes, got {value!r}")
    if isinstance(value, int):  # (exact, as the decimal below: a float rounded a 23-digit cap)
        number, unit = Decimal(value), ""
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
        if m is None:
            raise ConfigError(f"{what}: expected a size such as 2G or 500M, got {value!r}")
        number, unit = Decimal(m.group(1)), m.group(2).upper()
    if number < 0:
        raise ConfigError(f"{what}: a size cannot be negative ({value!r})")
    if not unit and number != int(number):  # (1.5 was a cap of one byte: a unit was meant)
        raise ConfigError(f"{what}: {value!r} bytes is no whole number; give a unit, e.g. {value}G or {value}M")
    return int(number * _SIZE_UNITS[unit])


def cache_max_bytes() -> int:
    """The page cache's size cap in bytes (``0`` = no cap): ``$OCRCLIENT_CACHE_MAX_BYTES`` >
    ``cache_max_bytes`` in the user config > :data:`DEFAULT_CACHE_MAX_BYTES`."""
    user = load_user_config()
    chosen = merge_layers(
        profile={"cache_max_bytes": DEFAULT_CACHE_MAX_BYTES},
        user={"cache_max_bytes": user.get("cache_max_bytes")},
        env={"cache_max_bytes": os.environ.get("OCRCLIENT_CACHE_MAX_BYTES") or None},
    )
    return parse_size(chosen["cache_max_bytes"], "cache_max_bytes / OCRCLIENT_CACHE_MAX_BYTES")


#: the bounds of the settings a profile and ``scheduler_options`` both set (one rule for both)
Attempts = Annotated[int, Field(ge=1, le=50)]
PositiveSeconds = Annotated[float, Field(gt=0)]
Seconds = Annotated[float, Field(ge=0)]


class SchedulerOptions(BaseModel):
    """What ``scheduler_options=`` may tune (the :class:`~ocrclient.scheduler.Scheduler`'s
    keywords a caller sets), checked when the client is made: an unknown name or a value of the
    wrong kind was a ``TypeError`` at the first call, or a failed page at every one."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # (lax, as BackendConfig)

    max_attempts: Attempts | None = None
    attempt_timeout_s: PositiveSeconds | None = None
    page_deadline_s: PositiveSeconds | None = None
    cold_start_s: Seconds | None = None
    backoff_initial_s: Seconds = 1.0
    backoff_max_s: Seconds = 60.0
    timeout_grace_s: Seconds = 5.0
    unreachable_s: PositiveSeconds | None = None

    @classmethod
    def checked(cls, options: Mapping[str, Any], root: str = "scheduler_options") -> dict[str, Any]:
        """``options`` as given, or :class:`ConfigError` naming the first that is wrong (as
        ``<root>.<name>``; ``root=""`` for settings given by their own names)."""
        from .contracts import first_error

        where = f"{root}." if root else ""
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"{where}{unknown[0]}: not a scheduler option; known: {', '.join(cls.model_fields)}")
        try:
            cls.model_validate(dict(options))
        except ValidationError as exc:
            raise ConfigError(first_error(exc, root)) from None
        return dict(options)


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
    max_attempts: Attempts = 4
    attempt_timeout_s: PositiveSeconds = 600.0
    page_deadline_s: PositiveSeconds = 1800.0
    cold_start_s: Seconds = 600.0
    unreachable_s: PositiveSeconds = 300.0
    price_per_gpu_second: float | None = Field(None, ge=0)  # (a negative price made a negative cost)
    price_per_hour: float | None = Field(None, ge=0)
    transport_options: dict[str, Any] = Field(default_factory=dict)
    dialect_options: dict[str, Any] = Field(default_factory=dict)
    #: where the profile came from (file path), for `ocr config`
    origin: str | None = None

    @field_validator(*ENV_SETTINGS.values())
    @classmethod
    def _names_a_variable(cls, value: str | None, info: ValidationInfo) -> str | None:
        why = not_a_name(value, secret=info.field_name == "api_key_env") if value else None  # ("" reads none)
        if why is not None:
            raise ValueError(why)
        return value

    # -- secrets ---------------------------------------------------------------------------
    def model_post_init(self, context: Any, /) -> None:
        register_url_secrets(self.base_url)  # (a password or key in the URL: masked everywhere)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact(value) if name == "base_url" and isinstance(value, str) else value

    def secret(self) -> str | None:
        """The API key (the field, else the variable ``api_key_env`` names); registered for
        redaction before it is returned."""
        value = self.api_key.get_secret_value() if self.api_key is not None else None
        if not value:
            value = _env_layer(self.model_dump(include=set(ENV_SETTINGS.values())), self.transport).get("api_key")
        where = f"${self.api_key_env} or " if self.api_key_env else ""
        return header_secret(value, f"the API key ({where}api_key in the config)") or None

    # A config from :func:`resolve_config` already holds the winners of every layer in its
    # fields; for one built directly, its fields are the explicit layer and the environment fills
    # in what they leave empty (the same rule).
    def _resolved(self, field: str) -> str | None:
        value = getattr(self, field)
        if value:
            return str(value)
        env = _env_layer(self.model_dump(include=set(ENV_SETTINGS.values())), self.transport)
        return env.get(field)

    def resolved_endpoint_id(self) -> str | None:
        return self._resolved("endpoint_id")

    def resolved_base_url(self) -> str | None:
        """The base URL, checked: ``http(s)://host...`` (a URL that is not one was sent to,
        every page retried as a connection failure, instead of refused once)."""
        url = self._resolved("base_url")
        register_url_secrets(url)
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"base URL {url!r} is not an http(s) URL (e.g. https://host:8000/v1)")
            from .transports.urls import host_problem

            why = host_problem(parts)
            if why:  # (httpx raised its InvalidURL with a traceback, or each page was retried)
                raise ConfigError(f"base URL {url!r}: {why}")
        return url

    def resolved_model(self) -> str | None:
        return self._resolved("model")

    def render_spec(self, base: RenderSpec) -> RenderSpec:
        return self.render.apply(base)

    def public_dict(self) -> dict[str, Any]:
        """The settings with every secret masked (for ``ocr config`` and logs)."""
        data = self.model_dump(mode="json", exclude={"api_key"})
        data["api_key"] = "***" if self.api_key is not None else None
        if self.api_key_env:
            aliases = self.transport_options.get("api_key_env_aliases") or []
            names = [self.api_key_env, *(a for a in aliases if isinstance(a, str))]
            data["api_key_set"] = self.api_key is not None or any(os.environ.get(n) for n in names)
        return data


# ---------------------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------------------


def _holds_profiles(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.toml"))


def shipped_profiles_dir() -> Path | None:
    """The folder of the shipped backend profiles, found by one rule for every way of running.

    The profiles' single source is the repository's top-level ``backends/`` folder.  The wheel
    carries it as ``ocrclient/backends/`` inside the package (hatch ``force-include``), so an
    installed wheel finds it with :mod:`importlib.resources`.  A checkout or an editable install
    imports the package from ``src/ocrclient/``, whose package folder holds no profiles: there the
    folder is ``backends/`` two levels above the package, at the top of the repository.  Rule: the
    package's own ``backends/`` if it holds a ``*.toml``, else the repository's; ``None`` if
    neither does (a broken install).
    """
    packaged = resources.files("ocrclient") / "backends"
    if isinstance(packaged, Path) and _holds_profiles(packaged):
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "backends"
    return checkout if _holds_profiles(checkout) else None


def _shipped_profiles() -> dict[str, Path]:
    folder = shipped_profiles_dir()
    if folder is None:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def _user_profiles() -> dict[str, Path]:
    folder = config_dir() / "backends"
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def list_profiles() -> dict[str, Path]:
    """Known backend names -> profile file: shipped ones, plugins' (``ocrclient.backends`` entry
    points, :mod:`ocrclient.plugins`; a clash with a shipped name is an error), then the user's
    (which override both)."""
    from .plugins import listed_profile, table

    return {**table("backend", _shipped_profiles(), listed_profile), **_user_profiles()}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"backend profile not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a TOML profile (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the profile ({exc.strerror or exc})") from None


#: the (key file, mode) pairs warned of in this process
_WARNED: set[tuple[str, int]] = set()


def _warn_if_world_readable(path: Path, data: dict[str, Any]) -> None:
    if sys.platform == "win32" or not _has_secret(data):
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH) and (str(path), mode) not in _WARNED:
        _WARNED.add((str(path), mode))  # (the config is read several times a run: said once)
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
    _check_user_config(path, data)
    return data


#: what the user config file's top level holds (see ``ocr config init``)
USER_CONFIG_KEYS = ("default_backend", "cache_max_bytes", "backends")


def _check_user_config(path: Path, data: Mapping[str, Any]) -> None:
    """Refuse what the user config cannot mean, as one line: a key its top level does not take
    (``default_backed``, ``cache_max_byte``: ignored, they changed which backend ran and the
    cache's cap without a word), ``backends`` that is not a table of tables (a traceback in every
    command), a ``[backends.NAME]`` one letter off a known backend (its overrides went nowhere).
    A table for a backend not installed here (a plugin's) is left alone."""
    import difflib

    def near(word: str, known: Any) -> str:
        close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.8)
        return f" (did you mean {close[0]!r}?)" if close else ""

    for key in data:
        if key not in USER_CONFIG_KEYS:
            raise ConfigError(f"{path}: unknown setting {key!r}{near(key, USER_CONFIG_KEYS)}; it takes {', '.join(USER_CONFIG_KEYS)}")
    tables = data.get("backends", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: backends must be a table of [backends.NAME] tables")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: backends.{name} must be a table ([backends.{name}] with settings under it)")
    unknown = [n for n in tables if n not in (known := list_profiles())] if tables else []
    for name in unknown:
        hint = near(name, known)
        if hint:
            raise ConfigError(f"{path}: [backends.{name}] names no known backend{hint}")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def merge_layers(
    *,
    profile: Mapping[str, Any] | None = None,
    user: Mapping[str, Any] | None = None,
    env: Mapping[str, Any] | None = None,
    explicit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """THE precedence rule of every setting: explicit argument > environment > user config >
    profile.  Each layer is a mapping of settings; ``None`` values are "not set here", and so is
    an empty (or blank) string of a top-level setting, in every layer as in the environment's (a
    ``model=""`` or ``--model "$UNSET"`` was shown by ``ocr config`` and recorded in the results
    as ``''`` while the requests used the profile's model); nested tables merge key by key."""
    data: dict[str, Any] = {}
    for layer in (profile, user, env, explicit):
        if layer:
            layer = {k: v for k, v in layer.items() if not (isinstance(v, str) and not v.strip())}
            data = _merge(_replaced_by(data, layer), layer)
    return data


#: ``[sampling]`` keys that set one thing two ways: a layer that sets one of a pair drops the
#: other from the layers below it (a user's ``temperature = 0`` over a profile's
#: ``temperature_ladder``, which the dialects read first, was ignored)
ONE_SAMPLING_SETTING = (("temperature", "temperature_ladder"), ("top_p", "top_p_ladder"))


#: the API key a transport reads when a layer switched a profile to it without naming one (the
#: generic profiles' variables): the key of the profile's own transport is not carried over
KEY_ENV_OF_TRANSPORT: dict[str, str] = {
    "runpod": "RUNPOD_API_KEY",
    "openai": "OCRCLIENT_API_KEY",
    "ocular": "OCRCLIENT_API_KEY",
}
#: ... and the variable it reads its server's URL from (a pod's or Modal app's URL variable names
#: the server its key and Modal's tokens belong to, not the switched backend's)
URL_ENV_OF_TRANSPORT: dict[str, str] = {"runpod": "RUNPOD_BASE_URL", "openai": "OCRCLIENT_BASE_URL", "ocular": "OCRCLIENT_BASE_URL"}


def _replaced_by(data: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without what ``layer`` replaces: the sampling keys of a pair it sets one of
    (:data:`ONE_SAMPLING_SETTING`); and, when it switches the transport, the API key settings
    (a RunPod profile switched to ``ocular`` or ``openai`` sent the RunPod account key to that
    other server): the new transport reads :data:`KEY_ENV_OF_TRANSPORT`'s variable unless the
    layer names its own key."""
    switched = layer.get("transport")
    if switched is not None and data.get("transport") not in (None, switched):
        data = {k: v for k, v in data.items() if k not in ("api_key", "api_key_env")}
        options = data.get("transport_options")
        if isinstance(options, Mapping) and "api_key_env_aliases" in options:
            data["transport_options"] = {k: v for k, v in options.items() if k != "api_key_env_aliases"}
        if layer.get("api_key") is None and layer.get("api_key_env") is None and switched in KEY_ENV_OF_TRANSPORT:
            data["api_key_env"] = KEY_ENV_OF_TRANSPORT[str(switched)]
        if layer.get("base_url_env") is None and switched in URL_ENV_OF_TRANSPORT:
            data["base_url_env"] = URL_ENV_OF_TRANSPORT[str(switched)]
    over, below = layer.get("sampling"), data.get("sampling")
    if not isinstance(over, Mapping) or not isinstance(below, dict):
        return data
    gone = {other for pair in ONE_SAMPLING_SETTING for key in pair if over.get(key) is not None
            for other in pair if other != key}  # fmt: skip
    return {**data, "sampling": {k: v for k, v in below.items() if k not in gone}}


def _env_layer(names: Mapping[str, Any], transport: str | None) -> dict[str, str]:
    """The environment's layer: each setting of :data:`ENV_SETTINGS` whose variable (named by
    ``names``) is set and not empty."""
    out: dict[str, str] = {}
    for field, env_field in ENV_SETTINGS.items():
        var = names.get(env_field)
        if var and os.environ.get(var):
            out[field] = os.environ[var]
    for field in {field for _, field in ENV_FALLBACKS}:
        var = fallback_env(transport, field, names.get(f"{field}_env"))  # (None: not this transport's)
        if var and field not in out and not names.get(field) and os.environ.get(var):
            out[field] = os.environ[var]
    return out


def resolve_backend_name(name: str | Path | None = None, *, user: Mapping[str, Any] | None = None) -> str:
    """The backend to use: ``name`` > ``$OCRCLIENT_BACKEND`` > ``default_backend`` in the user
    config (``user``, read from disk when not given) > ``local``."""
    if user is None:
        user = load_user_config()
    chosen = merge_layers(
        profile={"backend": DEFAULT_BACKEND},
        user={"backend": user.get("default_backend")},
        env={"backend": os.environ.get("OCRCLIENT_BACKEND") or None},
        explicit={"backend": str(name) if name is not None else None},
    )
    return str(chosen["backend"])


def resolve_config(name: str | Path | None = None, **overrides: Any) -> BackendConfig:
    """Resolve a backend name (or TOML path) plus overrides into a :class:`BackendConfig`.

    Overrides use the field names of :class:`BackendConfig`; nested tables (``render``,
    ``sampling``, ``transport_options``, ``dialect_options``) merge key by key.  ``None`` values
    (and empty strings) are ignored, so CLI flags that were not given can be passed straight through.  Every value
    follows :func:`merge_layers`: overrides > environment > user config > profile.
    """
    user = load_user_config()
    name = resolve_backend_name(name, user=user)
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
        from .plugins import BROKEN_PROFILES

        if name in BROKEN_PROFILES and not path.is_file():  # (a plugin's entry point that names no file)
            raise ConfigError(BROKEN_PROFILES[name])
    profile = _read_toml(path)
    _warn_if_world_readable(path, profile)
    profile.setdefault("name", path.stem)
    profile["origin"] = str(path)
    user_table = dict(user.get("backends", {}).get(profile["name"], {}))
    explicit = {k: v for k, v in overrides.items() if v is not None}
    # which variables the environment layer reads (and the transport) are settings themselves
    names = merge_layers(profile=profile, user=user_table, explicit=explicit)
    env = _env_layer(names, names.get("transport"))
    data = merge_layers(profile=profile, user=user_table, env=env, explicit=explicit)
    try:
        cfg = BackendConfig.model_validate(data)
    except ValidationError as exc:  # (not chained: pydantic's text repeats each bad value, a key given by mistake too)
        from .contracts import first_error

        raise ConfigError(f"backend {name!r}: {first_error(exc)}") from None
    if cfg.api_key is not None:
        register_secret(cfg.api_key.get_secret_value())
    return cfg
