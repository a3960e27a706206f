"""Settings that name an environment variable (``api_key_env``, ``base_url_env``, ...): what a
name is, and the one-line refusal of a value that is none (often the key itself, never shown).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ConfigError

__all__ = ["ENV_NAME", "NOT_AN_ENV_NAME", "NOT_A_SECRET_ENV_NAME", "SECRET_ENV_NAME", "env_name", "not_a_name"]

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
