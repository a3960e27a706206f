"""What each HTTP transport's ``transport_options`` take, checked when the backend is loaded: an
unknown name (a typo such as ``strem``, which was accepted and ignored -- and went into the
cache key) or a value of the wrong kind (``idle_timeout_s = "abc"`` was a bare ``ValueError``,
no :class:`~ocrclient.errors.OcrError`) is a :class:`~ocrclient.errors.ConfigError` naming the
option, as the RunPod and local transports' were.  ``"false"`` for a flag is false (it was true:
``bool("false")``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..config import BackendConfig
from ..errors import ConfigError

__all__ = ["LocalOptions", "OcularOptions", "OpenAIOptions", "PoolOptions", "checked_options"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # (built when first read)


class OpenAIOptions(_Options):
    """The ``openai`` transport's (see :meth:`~ocrclient.transports.openai.OpenAITransport.from_config`)."""

    stream: bool = True
    idle_timeout_s: float | None = Field(default=None, gt=0)
    connect_timeout_s: float = Field(default=15.0, gt=0)
    health_timeout_s: float = Field(default=30.0, gt=0)
    modal: bool | None = None
    modal_key_env: str = "MODAL_KEY"
    modal_secret_env: str = "MODAL_SECRET"
    modal_key: str | None = None
    modal_secret: str | None = None
    cap_max_tokens: bool = True
    prompt_token_reserve: int | None = Field(default=None, ge=0)
    api_key_env_aliases: list[str] | str | None = None


class OcularOptions(_Options):
    """The ``ocular`` transport's."""

    route: str = "/extract_text"
    api_key_header: str = "Authorization"
    connect_timeout_s: float = Field(default=15.0, gt=0)


class PoolOptions(_Options):
    """The ``pool`` transport's (its members' own settings are their profiles' and overrides)."""

    members: list[dict[str, Any]] = Field(default_factory=list)
    cooldown_s: float = Field(default=30.0, ge=0)
    max_cooldown_s: float = Field(default=600.0, ge=0)


class LocalOptions(_Options):
    """The ``local`` transport's: the embedded engine's settings (its unknown names are refused
    by the transport itself, which takes no other transport's)."""

    threads: int = Field(default=0, ge=0)
    max_side_len: int = Field(default=2000, ge=32)  # (0 divided by zero, -5 failed every page)
    use_cls: bool = True
    text_score: float = Field(default=0.5, ge=0.0, le=1.0)  # (5 emptied every page: "no text found")
    tight_boxes: bool = True


#: each transport's options read through a model here
MODELS: dict[str, type[_Options]] = {"openai": OpenAIOptions, "ocular": OcularOptions, "pool": PoolOptions}

OptionsT = TypeVar("OptionsT", bound=_Options)


def _known_to_another_transport() -> set[str]:
    """The names some other built-in transport takes: a profile made for one (``runpod-trocr``'s
    RunPod ``mode``) may be sent over another (``--transport ocular``); those are not its to read."""
    from .local import _OPTIONS as LOCAL
    from .runpod import _OPTIONS as RUNPOD

    return {*LOCAL, *RUNPOD, *(name for m in MODELS.values() for name in m.model_fields)}


def checked_options(model: type[OptionsT], cfg: BackendConfig, transport: str) -> OptionsT:
    """``cfg.transport_options`` read as ``model``, or a one-line :class:`ConfigError`; names
    another built-in transport takes are left to it."""
    opts = dict(cfg.transport_options)
    if set(opts) - set(model.model_fields):
        other = _known_to_another_transport() - set(model.model_fields)
        opts = {k: v for k, v in opts.items() if k not in other}
    try:
        return model.model_validate(opts)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = ".".join(str(p) for p in err.get("loc", ()))
        if err.get("type") == "extra_forbidden":
            raise ConfigError(f"backend {cfg.name!r}: unknown {transport} transport_options {name!r}; "
                              f"known: {', '.join(model.model_fields)}") from None  # fmt: skip
        raise ConfigError(f"backend {cfg.name!r}: transport_options.{name}: {err.get('msg', 'invalid')}") from None
