"""SSRF and path-traversal guards for inputs that name a URL or a file.

* :func:`fetch_url` downloads a URL only if every address its host resolves to is public
  (no loopback, private, link-local / cloud metadata 169.254.169.254, CGNAT, multicast,
  reserved or unspecified ranges, IPv4-mapped IPv6 included).  The check runs at connect time
  inside the HTTP client's network backend and the connection goes to the vetted address, so
  DNS rebinding between check and connect does not help; redirects are followed by hand (at
  most ``max_redirects``) and each hop is checked again.  The body is capped at ``max_bytes``.
* :func:`safe_path` accepts a path only if, after resolving symlinks and ``..``, it lies under
  one of the allowed roots.

Example::

    data = await fetch_url("https://example.com/paper.pdf", max_bytes=50_000_000)
    path = safe_path("/runpod-volume/in/doc.pdf", roots=["/runpod-volume"])
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

from .envelope import JobError

__all__ = ["UrlPolicy", "check_address", "fetch_url", "safe_path"]

#: indirection so tests can fake DNS without touching the network
getaddrinfo = socket.getaddrinfo

_BLOCKED_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "::/128",
        "64:ff9b::/96",
        "fc00::/7",
        "fe80::/10",
    )
]


@dataclass(frozen=True)
class UrlPolicy:
    """What :func:`fetch_url` allows.  ``allow_endpoints`` lists ``(ip, port)`` pairs exempt
    from the public-address rule (an internal mirror; tests use it for a loopback server)."""

    allow_http: bool = False
    allow_endpoints: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    max_redirects: int = 3
    timeout_s: float = 60.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> UrlPolicy:
        pairs: set[tuple[str, int]] = set()
        for item in env.get("PDF_URL_ALLOW_ENDPOINTS", "").split(","):
            item = item.strip()
            if not item:
                continue
            host, _, port = item.rpartition(":")
            pairs.add((str(ipaddress.ip_address(host.strip("[]"))), int(port)))
        return cls(
            allow_http=env.get("PDF_URL_ALLOW_HTTP", "0").strip() in ("1", "true", "yes"),
            allow_endpoints=frozenset(pairs),
            timeout_s=float(env.get("PDF_URL_TIMEOUT_S", "60")),
        )


def check_address(ip_text: str) -> None:
    """Raise :class:`JobError` unless ``ip_text`` is a public unicast address."""
    ip = ipaddress.ip_address(ip_text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bad = (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
        or any(ip in net for net in _BLOCKED_NETS if net.version == ip.version)
    )
    if bad:
        raise JobError(f"pdf_url resolves to a non-public address ({ip}); refused")


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise JobError(f"pdf_url host {host!r} cannot be resolved") from exc
    addrs = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in addrs:
            addrs.append(addr)
    if not addrs:
        raise JobError(f"pdf_url host {host!r} has no address")
    return addrs


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets every address, then connects to a vetted address."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addrs = await asyncio.to_thread(_resolve, host, port)
        for addr in addrs:
            if (
                str(ipaddress.ip_address(addr.split("%", 1)[0])),
                port,
            ) in self.policy.allow_endpoints:
                continue
            check_address(addr)
        return await self.inner.connect_tcp(
            addrs[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise JobError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _check_url(url: str, policy: UrlPolicy) -> None:
    parts = urlsplit(url)
    allowed = {"https", "http"} if policy.allow_http else {"https"}
    if parts.scheme not in allowed:
        raise JobError(f"pdf_url scheme must be {' or '.join(sorted(allowed))}")
    if not parts.hostname:
        raise JobError("pdf_url has no host")
    if parts.username or parts.password:
        raise JobError("pdf_url must not carry credentials")


async def fetch_url(url: str, *, max_bytes: int, policy: UrlPolicy | None = None) -> bytes:
    """Download ``url`` under the SSRF rules in the module docstring."""
    policy = policy or UrlPolicy()
    if not isinstance(url, str) or not url.strip():
        raise JobError("pdf_url is empty")
    current = url.strip()
    timeouts = {
        "connect": policy.timeout_s,
        "read": policy.timeout_s,
        "write": policy.timeout_s,
        "pool": policy.timeout_s,
    }
    async with httpcore.AsyncConnectionPool(
        network_backend=_GuardedBackend(policy), retries=0
    ) as pool:
        for _hop in range(policy.max_redirects + 1):
            _check_url(current, policy)
            try:
                async with pool.stream(
                    "GET",
                    current,
                    headers={"User-Agent": "ocrclient-worker/1", "Accept": "application/pdf,*/*"},
                    extensions={"timeout": timeouts},
                ) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = dict((k.lower(), v) for k, v in resp.headers).get(b"location")
                        if not location:
                            raise JobError(f"pdf_url redirect ({resp.status}) without a Location")
                        current = urljoin(current, location.decode("latin-1"))
                        continue
                    if resp.status != 200:
                        raise JobError(f"pdf_url answered HTTP {resp.status}", code=400)
                    length = dict((k.lower(), v) for k, v in resp.headers).get(b"content-length")
                    if length is not None and length.isdigit() and int(length) > max_bytes:
                        raise JobError(f"pdf_url body is larger than {max_bytes} bytes", code=413)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.aiter_stream():
                        size += len(chunk)
                        if size > max_bytes:
                            raise JobError(
                                f"pdf_url body is larger than {max_bytes} bytes", code=413
                            )
                        chunks.append(chunk)
                    return b"".join(chunks)
            except JobError:
                raise
            except httpcore.TimeoutException as exc:
                raise JobError("pdf_url download timed out", code=504) from exc
            except (
                httpcore.NetworkError,
                httpcore.ProtocolError,
                httpcore.UnsupportedProtocol,
            ) as exc:
                raise JobError(f"pdf_url download failed ({type(exc).__name__})", code=502) from exc
    raise JobError(f"pdf_url redirected more than {policy.max_redirects} times")


def safe_path(path: str, *, roots: Iterable[str], must_exist: bool = True) -> Path:
    """``path`` resolved, if it stays under one of ``roots``; else :class:`JobError`."""
    if not isinstance(path, str) or not path.strip():
        raise JobError("path is empty")
    if "\x00" in path:
        raise JobError("path contains a NUL byte")
    candidate = Path(path)
    if not candidate.is_absolute():
        raise JobError("path must be absolute")
    resolved = candidate.resolve(strict=False)
    root_list = [Path(r).resolve(strict=False) for r in roots if r]
    if not any(resolved == r or resolved.is_relative_to(r) for r in root_list):
        allowed = ", ".join(str(r) for r in root_list) or "(none configured)"
        raise JobError(f"path {path!r} is outside the allowed roots: {allowed}")
    if must_exist and not resolved.is_file():
        raise JobError(f"path {path!r} is not an existing file", code=404)
    return resolved
