"""Server URLs as the transports read them, in a module that imports no HTTP stack (the page
cache keys on an endpoint's URL in the form its transport reaches it: :func:`endpoint_url`).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, parse_qsl, urlsplit, urlunsplit

from ..errors import ConfigError
from ..secrets import redact, register_url_secrets

__all__ = ["endpoint_url", "host_problem", "normalize_base_url", "split_query"]


def split_query(url: str) -> tuple[str, dict[str, str]]:
    """``(url without query or fragment, query parameters)``: a query (e.g. ``?api_key=...`` on a
    gateway URL) is sent as parameters on every request instead of being glued before the path,
    and its values are registered as secrets.

    >>> split_query("https://gw.example/v1?api_key=abcd1234")
    ('https://gw.example/v1', {'api_key': 'abcd1234'})
    """
    register_url_secrets(url)
    parts = urlsplit(url.strip())
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), params


def normalize_base_url(url: str) -> tuple[str, str]:
    """``(root, api_base)`` for a server URL given with or without ``/v1``.

    >>> normalize_base_url("https://abc-8000.proxy.runpod.net/v1/")
    ('https://abc-8000.proxy.runpod.net', 'https://abc-8000.proxy.runpod.net/v1')
    >>> normalize_base_url("http://127.0.0.1:8000")
    ('http://127.0.0.1:8000', 'http://127.0.0.1:8000/v1')
    """
    u = split_query(url)[0].rstrip("/")
    if not u.startswith(("http://", "https://")):
        raise ConfigError(f"server URL must start with http:// or https://: {redact(u)!r}")
    for suffix in ("/chat/completions", "/v1"):
        if u.endswith(suffix):
            u = u[: -len(suffix)].rstrip("/")
    return u, u + "/v1"


def endpoint_url(transport: str | None, url: str | None) -> str | None:
    """The URL of the endpoint ``url`` reaches through ``transport``, one spelling for each: an
    OpenAI-compatible server's API base however it was written (``/v1`` or not, its
    ``/chat/completions``, a trailing slash, query parameters: credentials), any other URL
    without its trailing slash.  A URL the transport refuses is kept as written.

    >>> endpoint_url("openai", "http://127.0.0.1:8000/v1/chat/completions?key=abcd1234")
    'http://127.0.0.1:8000/v1'
    >>> endpoint_url("runpod", "HTTPS://API.runpod.ai:443/v2/")
    'https://api.runpod.ai/v2'
    """
    if not url:
        return url
    url = _canonical(url.strip())
    if transport == "openai":
        try:
            return normalize_base_url(url)[1]
        except ConfigError:
            return url.rstrip("/")
    return url.rstrip("/")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _canonical(url: str) -> str:
    """``url`` with its scheme and host in lower case and its scheme's default port left out,
    as a client reaches it (the path is kept as written); a URL that cannot be read is kept."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    if not parts.hostname:
        return url
    scheme, host = parts.scheme.lower(), parts.hostname  # (urlsplit lowers the host)
    user = parts.netloc.rpartition("@")[0]
    netloc = (user + "@" if user else "") + (f"[{host}]" if ":" in host else host)
    netloc += "" if port is None or port == _DEFAULT_PORTS.get(scheme) else f":{port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def host_problem(parts: SplitResult) -> str | None:
    """What is wrong with a URL's host or port (``None``: nothing): a port out of 1-65535, a
    dotted-quad host that is no IPv4 address (``256.1.1.1``), a bracketed one that is no IPv6
    address, no host at all."""
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if port == 0:
        return "its port is not a number from 1 to 65535"
    host = parts.hostname or ""
    if not host:
        return "it names no host"
    try:
        if ":" in host:
            ipaddress.IPv6Address(host)
        elif re.fullmatch(r"[\d.]+", host):
            ipaddress.IPv4Address(host)
    except ValueError:
        return f"{host} is not an IP address"
    return None
