"""Secrets: registered as soon as they are read, masked in every log line, error and output.

A secret (an API key, a Modal token, a key in a URL's query string) is registered with
:func:`register_secret` by whoever reads it (the config resolver, a transport).  :func:`redact`
masks every registered secret, any environment value whose variable name looks secret (``*KEY*``,
``*SECRET*``, ``*TOKEN*``, ``*PASSWORD*``), bearer tokens and ``api_key=...`` style pairs;
:func:`redact_data` does the same for JSON-like data.  Every :class:`~ocrclient.errors.OcrError`
message goes through :func:`redact`, and :class:`RedactingFilter` masks log records (installed on
the HTTP libraries' loggers by :func:`install_logger_redaction`, on handlers by
:func:`install_log_redaction`).

Example::

    >>> register_secret("sk-doctest-0123456789")
    >>> redact("POST failed with key sk-doctest-0123456789")
    'POST failed with key ***'
    >>> redact_data({"api_key": "abc", "note": "Bearer abcdefgh1234"})
    {'api_key': '***', 'note': 'Bearer ***'}
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "HTTP_LOGGERS",
    "RedactingFilter",
    "clip",
    "header_secret",
    "install_log_redaction",
    "install_logger_redaction",
    "redact",
    "redact_data",
    "register_secret",
    "register_url_secrets",
]

_SECRETS: set[str] = set()
#: secrets masked as whole words only (:func:`register_secret` ``word=True``)
_WORD_SECRETS: set[str] = set()
_SECRET_ENV_HINTS = ("KEY", "SECRET", "TOKEN", "PASSWORD")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}")
_KV = re.compile(r"(?i)\b(api[_-]?key|modal[_-]secret|modal[_-]key|token|password)(\"?\s*[:=]\s*\"?)([^\s\"',}]{4,})")


def register_secret(value: str | None, *, word: bool = False) -> None:
    """Remember a secret value so :func:`redact` masks it wherever it appears; with ``word``, only
    where it stands as a word of its own (a PDF's password, chosen by a person: "pass" made
    "wrong password" read "wrong ***word" for the rest of the process)."""
    if value and len(value) >= 4 and value.upper() != "EMPTY":
        (_WORD_SECRETS if word else _SECRETS).add(value)


#: a query parameter whose name says it is a credential (``api_key``, ``token``, ``sig``, ...)
_SECRET_PARAM = re.compile(r"(?i)key|token|secret|sig|auth|pass|cred|session|code")
#: a query value that looks like a credential whatever its name: long and opaque
_OPAQUE = re.compile(r"[A-Za-z0-9._~+/=-]{16,}")


def register_url_secrets(url: str | None) -> None:
    """Register what a URL carries that is secret: the password of its user info
    (``https://user:PASSWORD@host``) and the query's credentials: a value under a name like
    ``api_key``, ``token`` or ``sig``, or any long opaque one (``?stream=true`` is none: masking
    every "true" would garble every log line)."""
    if not url:
        return
    parts = urlsplit(url.strip())
    register_secret(parts.password)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if _SECRET_PARAM.search(name) or _OPAQUE.fullmatch(value):
            register_secret(value)


def _env_secrets() -> set[str]:
    found = set()
    for name, value in os.environ.items():
        if value and len(value) >= 6 and any(h in name.upper() for h in _SECRET_ENV_HINTS):
            found.add(value)
    return found


#: the fewest characters of a secret, cut off at a text's end or resumed at its start, that are
#: masked (fewer say nothing of it, and masking them would garble ordinary words)
CUT_PIECE = 6
#: what a shortened text ends (or a resumed one starts) with after the cut
_ELLIPSIS = ".\u2026 "


def redact(text: str, *, cuts: bool = True) -> str:
    """Mask registered secrets, secret-looking env values, bearer tokens and ``key=value`` pairs;
    also (unless ``cuts`` is false: a whole value, never a message cut short) a secret's piece
    where a message was cut short across it (its first characters at the text's end, or its last
    ones at the start of a text resumed after a cut): messages are shortened before they are
    masked in more than one place.

    >>> register_secret("sk-doctest-cut-0123456789")
    >>> redact("the server said: key sk-doctest-cut-01...")
    'the server said: key ***...'
    """
    if not text:
        return text
    secrets = sorted(_SECRETS | _env_secrets(), key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    for secret in _WORD_SECRETS:
        if secret in text:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    for secret in secrets if cuts else ():
        text = _mask_cut(text, secret)
    text = _BEARER.sub(r"\1***", text)
    text = _KV.sub(r"\1\2***", text)
    return text


def clip(text: str, limit: int = 300) -> str:
    """``text`` on one line (each run of whitespace one space), masked (:func:`redact`) and then
    cut to ``limit`` characters ending in ``...``: masked before it is cut, so no piece of a
    secret is left where the cut fell (the one way the transports shorten what a server said).

    >>> clip("a  long\t message", 10)
    'a long ...'
    """
    text = redact(" ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: what an HTTP header value can carry of a secret: visible ASCII, no space
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def header_secret(value: str | None, what: str) -> str | None:
    """``value``, a secret sent in an HTTP header, as it is sent: without the whitespace around
    it (a key pasted with a space, read from a file with its newline), registered for redaction
    either way.  A :class:`~ocrclient.errors.ConfigError` naming ``what`` (never the value) when
    what is left holds a character no header can carry (a space, a control or a non-ASCII
    character): every request failed as a connection error, each page retried until it failed.

    >>> header_secret(" sk-doctest-header\t", "the API key")
    'sk-doctest-header'
    """
    if not value:
        return value
    register_secret(value)
    clean = value.strip()
    register_secret(clean)
    if clean and not _HEADER_SAFE.fullmatch(clean):
        from .errors import ConfigError

        raise ConfigError(f"{what} holds a space, a control or a non-ASCII character, which no HTTP header can "
                          "carry: check that it was copied whole")  # fmt: skip
    return clean or None


def _mask_cut(text: str, secret: str) -> str:
    """``text`` with the longest piece of ``secret`` (at least :data:`CUT_PIECE` characters) it
    ends with (before a trailing ellipsis) or starts with (after a leading one) masked."""
    if len(secret) <= CUT_PIECE:
        return text
    body = text.rstrip(_ELLIPSIS)
    # where the secret's first characters stand in the body's tail: few places, each checked once
    at = body.find(secret[:CUT_PIECE], max(0, len(body) - len(secret) + 1))
    while at >= 0:
        if secret.startswith(body[at:]):
            text = body[:at] + "***" + text[len(body) :]
            break
        at = body.find(secret[:CUT_PIECE], at + 1)
    body = text.lstrip(_ELLIPSIS)
    head = body[: len(secret) - 1]
    at = head.rfind(secret[-CUT_PIECE:])
    while at >= 0:
        if secret.endswith(body[: at + CUT_PIECE]):
            return text[: len(text) - len(body)] + "***" + body[at + CUT_PIECE :]
        at = head.rfind(secret[-CUT_PIECE:], 0, at + CUT_PIECE - 1)
    return text


_SECRET_FIELD = re.compile(r"(?i)api[_-]?key|modal[_-]secret|modal[_-]key|token|password|secret")


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, scalars) with every string :func:`redact`-ed and
    every field named like a secret (``api_key``, ``token``, ``password``...) that holds a value
    replaced by the string ``"***"`` — so the result still serialises to valid JSON.  A value is
    whole, never a message cut short: one that is only the first characters of a secret (a
    transport named ``runpod`` beside a key ``runpod-pod-key-...``) is shown as it is."""
    if isinstance(value, str):
        return redact(value, cuts=False)
    if isinstance(value, dict):
        return {
            k: "***" if _SECRET_FIELD.fullmatch(str(k)) and v is not None and not isinstance(v, bool) else redact_data(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in every record it sees (attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not stop logging
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        return True


def install_log_redaction(logger_names: tuple[str, ...] = ("", "httpx", "httpcore", "openai")) -> None:
    """Attach :class:`RedactingFilter` to the handlers of these loggers (idempotent)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


#: loggers of the HTTP libraries under us that print URLs and headers
HTTP_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "openai",
    "openai._base_client",
)


def install_logger_redaction(logger_names: tuple[str, ...] = HTTP_LOGGERS) -> None:
    """Attach :class:`RedactingFilter` to these loggers themselves (idempotent), so records they
    emit are masked before any handler — the user's included — sees them."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
