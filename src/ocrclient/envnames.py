"""Settings that name an environment variable (``api_key_env``, ``base_url_env``, ...): what a
name is, and the one-line refusal of a value that is none (often the key itself, never shown).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ConfigError

__all__ = ["ENV_FALLBACKS", "ENV_NAME", "NOT_AN_ENV_NAME", "NOT_A_SECRET_ENV_NAME", "SECRET_ENV_NAME", "env_name", "env_that_gave", "fallback_env", "not_a_name"]

#: what an environment variable's name is (POSIX's portable names: letters, digits, ``_``)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: what the name of a variable holding a secret is: in capitals, as every one ocrclient reads.
#: Stricter, because the easy mistake is to put the key itself where its variable's name goes,
#: and a name is shown in messages ("set RUNPOD_API_KEY") and by ``ocr config``: keys have
#: lower-case letters or dashes (``rpa_...``, ``sk-...``, ``hf_...``), so none passes for a name.
SECRET_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")

#: why a setting that names a variable refused its value (which is not shown: it is often the
#: key itself)
NOT_AN_ENV_NAME = "takes the name of an environment variable (letters, digits and _), not a value"
NOT_A_SECRET_ENV_NAME = (
    "takes the name of the environment variable holding the key, in capitals (e.g. RUNPOD_API_KEY), not the key itself"
)


def env_name(value: Any, what: str, *, secret: bool = False) -> str:
    """``value`` when it is an environment variable's name (``secret``: of one holding a secret,
    :data:`SECRET_ENV_NAME`), else a :class:`ConfigError` naming ``what`` without repeating the
    value.

    >>> env_name("RUNPOD_API_KEY", "api_key_env", secret=True)
    'RUNPOD_API_KEY'
    """
    why = not_a_name(value, secret)
    if why is not None:
        raise ConfigError(f"{what} {why}")
    return value


def not_a_name(value: Any, secret: bool) -> str | None:
    """Why ``value`` is no environment variable's name (``secret``: in capitals), else ``None``."""
    pattern, why = (SECRET_ENV_NAME, NOT_A_SECRET_ENV_NAME) if secret else (ENV_NAME, NOT_AN_ENV_NAME)
    return None if isinstance(value, str) and pattern.fullmatch(value) else why


#: generic variables a transport falls back to when no layer sets the value: (transport, field)
ENV_FALLBACKS: dict[tuple[str, str], str] = {
    ("runpod", "endpoint_id"): "RUNPOD_ENDPOINT_ID",
    ("openai", "base_url"): "OCRCLIENT_BASE_URL",
}


def fallback_env(transport: str | None, field: str, own_env: str | None) -> str | None:
    """The generic variable (:data:`ENV_FALLBACKS`) that ``field`` falls back to for a profile
    on ``transport`` whose own variable for it is ``own_env``; ``None`` when there is none: a
    profile with a URL variable of its own (a pod, a Modal app) never reads the generic server's
    ``OCRCLIENT_BASE_URL``, so its key is not sent elsewhere."""
    var = ENV_FALLBACKS.get((transport or "", field))
    if var is not None and field == "base_url" and own_env not in (None, "", var):
        return None
    return var


def env_that_gave(value: str | None, transport: str, field: str, own_env: str | None) -> str | None:
    """The variable ``value`` of ``field`` was read from: the profile's own ``own_env``, or the
    generic one it falls back to (:func:`fallback_env`); ``None`` when neither holds it (a flag,
    a config file gave it).  A message that names the variable to check names this one: an
    unknown RunPod endpoint read from ``RUNPOD_ENDPOINT_ID`` said to check the profile's own
    ``RUNPOD_OLMOCR_ENDPOINT_ID``, which was not set."""
    import os

    for var in (own_env, fallback_env(transport, field, own_env)):
        if var and value and os.environ.get(var) == value:
            return var
    return None
