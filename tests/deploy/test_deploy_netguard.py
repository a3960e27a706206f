"""SSRF guard on URLs and traversal guard on paths (loopback servers only; DNS is faked)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ocrworker import netguard
from ocrworker.envelope import JobError
from ocrworker.netguard import UrlPolicy, check_address, fetch_url, safe_path

PDF = b"%PDF-1.4\n" + b"x" * 2000


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {}
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        status, headers, body = self.routes.get(self.path, (404, {}, b"nope"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("H", (_Handler,), {"routes": {}, "hits": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host in table:
            out = []
            for addr in table[host]:
                fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
                out.append((fam, socket.SOCK_STREAM, 6, "", (addr, port)))
            return out
        if host.replace(".", "").isdigit() or ":" in host:
            return real(host, port, *args, **kwargs)  # IP literals: no network involved
        raise socket.gaierror(f"no fake DNS entry for {host}")

    monkeypatch.setattr(netguard, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(addr: str) -> None:
    with pytest.raises(JobError, match="non-public"):
        check_address(addr)


@pytest.mark.parametrize("addr", ["8.8.8.8", "151.101.1.69", "2606:4700:4700::1111"])
def test_public_addresses_pass(addr: str) -> None:
    check_address(addr)


async def test_hostname_resolving_to_loopback_is_refused_before_connecting(
    server: tuple[int, type[_Handler]], fake_dns: dict[str, list[str]]
) -> None:
    port, handler = server
    handler.routes["/doc.pdf"] = (200, {}, PDF)
    fake_dns["docs.example.com"] = ["127.0.0.1"]
    with pytest.raises(JobError, match="non-public"):
        await fetch_url(
            f"http://docs.example.com:{port}/doc.pdf",
            max_bytes=10**6,
            policy=UrlPolicy(allow_http=True),
        )
    assert handler.hits == []


@pytest.mark.parametrize(
    "addrs", [["10.0.0.5"], ["169.254.169.254"], ["93.184.216.34", "192.168.0.10"]]
)
async def test_private_or_metadata_or_mixed_answers_refused(
    fake_dns: dict[str, list[str]], addrs: list[str]
) -> None:
    fake_dns["evil.example.com"] = addrs
    with pytest.raises(JobError, match="non-public"):
        await fetch_url("https://evil.example.com/x.pdf", max_bytes=10**6)


async def test_ip_literals_refused() -> None:
    for url in (
        "https://127.0.0.1/x.pdf",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x",
    ):
        with pytest.raises(JobError, match="non-public"):
            await fetch_url(url, max_bytes=10**6)


async def test_scheme_and_credentials_rules() -> None:
    with pytest.raises(JobError, match="scheme must be https"):
        await fetch_url("http://example.com/x.pdf", max_bytes=10)
    with pytest.raises(JobError, match="scheme"):
        await fetch_url("file:///etc/passwd", max_bytes=10)
    with pytest.raises(JobError, match="credentials"):
        await fetch_url("https://user:pw@example.com/x.pdf", max_bytes=10)


async def test_allowed_endpoint_downloads_and_redirect_to_loopback_is_refused(
    server: tuple[int, type[_Handler]], fake_dns: dict[str, list[str]]
) -> None:
    port, handler = server
    policy = UrlPolicy(allow_http=True, allow_endpoints=frozenset({("127.0.0.1", port)}))
    handler.routes["/ok.pdf"] = (200, {"Content-Type": "application/pdf"}, PDF)
    # positive control: the exempted endpoint is reachable
    assert await fetch_url(f"http://127.0.0.1:{port}/ok.pdf", max_bytes=10**6, policy=policy) == PDF
    # a redirect to another loopback port (not exempt) is refused, and nothing is fetched there
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        other_port = s.getsockname()[1]
    handler.routes["/hop"] = (302, {"Location": f"http://localhost:{other_port}/secret"}, b"")
    fake_dns["localhost"] = ["127.0.0.1"]
    with pytest.raises(JobError, match="non-public"):
        await fetch_url(f"http://127.0.0.1:{port}/hop", max_bytes=10**6, policy=policy)
    # a redirect to a name that resolves to the metadata address is refused too
    fake_dns["meta.example.com"] = ["169.254.169.254"]
    handler.routes["/hop2"] = (307, {"Location": "http://meta.example.com/latest/meta-data/"}, b"")
    with pytest.raises(JobError, match="non-public"):
        await fetch_url(f"http://127.0.0.1:{port}/hop2", max_bytes=10**6, policy=policy)
    # a relative redirect on the same allowed endpoint is followed
    handler.routes["/rel"] = (301, {"Location": "/ok.pdf"}, b"")
    assert await fetch_url(f"http://127.0.0.1:{port}/rel", max_bytes=10**6, policy=policy) == PDF
    # redirect loops stop
    handler.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(JobError, match="redirected more than"):
        await fetch_url(f"http://127.0.0.1:{port}/loop", max_bytes=10**6, policy=policy)


async def test_oversize_and_http_errors(server: tuple[int, type[_Handler]]) -> None:
    port, handler = server
    policy = UrlPolicy(allow_http=True, allow_endpoints=frozenset({("127.0.0.1", port)}))
    handler.routes["/big.pdf"] = (200, {}, PDF)
    with pytest.raises(JobError) as info:
        await fetch_url(f"http://127.0.0.1:{port}/big.pdf", max_bytes=100, policy=policy)
    assert info.value.code == 413
    with pytest.raises(JobError, match="HTTP 404"):
        await fetch_url(f"http://127.0.0.1:{port}/missing", max_bytes=100, policy=policy)


def test_policy_from_env() -> None:
    policy = UrlPolicy.from_env(
        {"PDF_URL_ALLOW_HTTP": "1", "PDF_URL_ALLOW_ENDPOINTS": "127.0.0.1:9000, [::1]:81"}
    )
    assert policy.allow_http
    assert policy.allow_endpoints == {("127.0.0.1", 9000), ("::1", 81)}
    assert UrlPolicy.from_env({}) == UrlPolicy()


def test_safe_path(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "in").mkdir(parents=True)
    good = root / "in" / "doc.pdf"
    good.write_bytes(PDF)
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (root / "in" / "link.pdf").symlink_to(outside)
    roots = [str(root)]
    assert safe_path(str(good), roots=roots) == good.resolve()
    for bad, needle in [
        (str(root / "in" / ".." / ".." / "secret.txt"), "outside the allowed roots"),
        (str(root / "in" / "link.pdf"), "outside the allowed roots"),
        ("/etc/passwd", "outside the allowed roots"),
        ("in/doc.pdf", "must be absolute"),
        (str(root / "in" / "missing.pdf"), "not an existing file"),
        (str(root) + "x/doc.pdf", "outside the allowed roots"),
        ("", "empty"),
    ]:
        with pytest.raises(JobError, match=needle):
            safe_path(bad, roots=roots)
    assert (
        safe_path(str(root / "out" / "new"), roots=roots, must_exist=False)
        == (root / "out" / "new").resolve()
    )
