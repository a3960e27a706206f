"""A run's start: nothing the first request does not need stands in its way.

* a default render pool's workers are threads: entering it starts no process;
* an isolated pool's worker processes start in the background when the run enters the pool
  (``async with``), while the process goes on planning, not on the first page's render;
* what the first request needs is prepared beside the first render (``Backend.warm_up``): the
  OpenAI transport's ``GET /v1/models`` (its reply still caps the first request, a wrong model
  is still refused), the async HTTP stack's imports, Chandra's HTML parser; a warm-up that fails
  or hangs changes nothing;
* the shared TLS context loads its CA certificates at the first TLS connection: an ``http://``
  run loads none, an ``https://`` one still verifies, with httpx's certificates and settings.

(The OpenAI transport imports no SDK at all: tests/test_openai_without_sdk.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ocrclient.errors import ConfigError, EndpointError, TransientError
from ocrclient.imaging import RenderSpec
from ocrclient.pages import PageImage, RenderPool, aiter_pages, iter_pages
from ocrclient.registry import Backend
from ocrclient.scheduler import RunAborted, Scheduler

from .conftest import ROOT
from .fakes import FakeTransport, make_backend, make_page, page_stream
from .pdfgen import text_pdf


async def test_entering_the_pool_starts_its_workers_in_the_background(tmp_path: Path) -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    pool = RenderPool(workers=2, isolated=True)
    t0 = time.monotonic()
    async with pool:
        entered = time.monotonic() - t0
        deadline = time.monotonic() + 30
        while pool._executor is None or not pool._executor._processes:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the workers never started without a page asked for"
            await _sleep(0.02)
        assert pool.submitted == 0  # started before any page was submitted
        pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]])
        pages = [p async for p in aiter_pages(pdf, RenderSpec(dpi=50), pool=pool)]
        assert [p.number for p in pages] == [1, 2] and all(p.encoded for p in pages)
    assert entered < 0.5, f"entering the pool waited {entered:.2f} s for its workers"
    assert pool.closed and pool._executor is None
    leftover = {p.pid for p in multiprocessing.active_children()} - before
    assert not leftover


async def test_a_pool_closed_while_its_workers_start_leaves_none_running() -> None:
    for _ in range(3):
        before = {p.pid for p in multiprocessing.active_children()}
        async with RenderPool(workers=2, isolated=True) as pool:
            pass  # closed at once, the background start possibly still under way
        assert pool.closed and pool._executor is None and pool._booting is not None
        assert not pool._booting.is_alive()
        assert not ({p.pid for p in multiprocessing.active_children()} - before)


async def test_a_default_pool_renders_in_threads_and_starts_no_process(tmp_path: Path) -> None:
    before = {p.pid for p in multiprocessing.active_children()}
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(5)])
    async with RenderPool(workers=2) as pool:
        assert not pool.isolated and pool._booting is None
        pages = [p async for p in aiter_pages(pdf, RenderSpec(dpi=50), pool=pool)]
        assert not ({p.pid for p in multiprocessing.active_children()} - before)
    assert [p.number for p in pages] == [1, 2, 3, 4, 5] and all(p.encoded for p in pages)
    assert pool.closed and pool._executor is None
    assert not [t for t in threading.enumerate() if t.name.startswith("ocrclient-render")]


def test_an_inline_pool_starts_nothing() -> None:
    pool = RenderPool(workers=0)
    pool.start_soon()
    assert pool._booting is None and pool._executor is None
    pool.close()


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


async def test_while_the_workers_start_pages_queue_and_none_renders_here(tmp_path: Path) -> None:
    """An isolated pool draws no page in this process, not even while its fork server starts:
    the pages submitted meanwhile do not block the caller and come back, in order, as the
    workers render them -- the same images as an inline pool renders."""
    import pypdfium2  # noqa: F401 - loaded for the render below either way

    from ocrclient.pages import pool as pool_mod

    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(6)])
    spec = RenderSpec(dpi=40)
    with RenderPool(workers=0) as inline:
        want = [p.encoded.data for p in iter_pages(pdf, spec, pool=inline)]  # type: ignore[union-attr]
    from ocrclient.pages import open_sources

    src = open_sources([pdf])[0]
    slow = threading.Event()
    real = pool_mod.RenderPool._ensure_executor

    def held(self: RenderPool) -> object:  # the fork server "takes" until the test lets it go
        if threading.current_thread().name == "ocrclient-render-pool-start":
            slow.wait(30)
        return real(self)

    pool_mod.RenderPool._ensure_executor = held  # type: ignore[method-assign]
    try:
        async with RenderPool(workers=2, isolated=True) as pool:
            t0 = time.monotonic()
            futs = [pool.submit(src, i, spec) for i in range(6)]
            submitted_in = time.monotonic() - t0
            assert not any(f.done() for f in futs)  # nothing rendered here
            slow.set()
            got = [(await pool.aresult(f)).encoded.data for f in futs]  # type: ignore[union-attr]
        assert pool.submitted == 6
    finally:
        pool_mod.RenderPool._ensure_executor = real  # type: ignore[method-assign]
    assert submitted_in < 5  # nothing waited for the held start
    assert got == want


async def test_pages_queued_while_starting_are_let_go_when_the_pool_closes(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(4)])
    pages = []
    before = {p.pid for p in multiprocessing.active_children()}
    async with RenderPool(workers=2, isolated=True) as pool:
        async for page in aiter_pages(pdf, RenderSpec(dpi=40), pool=pool):
            pages.append(page)
            break  # abandon the stream with pages still queued for the starting workers
    assert len(pages) == 1 and pages[0].number == 1 and pages[0].encoded is not None and pool.closed
    assert not ({p.pid for p in multiprocessing.active_children()} - before)


# ------------------------------------------------------------------------------------------------
# what the first request needs is prepared beside the first render (Backend.warm_up)
# ------------------------------------------------------------------------------------------------

MODEL = "lightonai/LightOnOCR-2-1B"


def _openai_backend(sim: Any, model: str) -> Backend:
    from ocrclient.dialects.lighton import LightOnDialect
    from ocrclient.transports.openai import OpenAITransport

    return make_backend(OpenAITransport(sim.base_url, api_key=sim.api_key, model=model), LightOnDialect(model=model))


async def test_the_model_cards_are_read_while_the_first_page_renders() -> None:
    """``GET /v1/models`` leaves when the run starts, before any page is ready (the stream below
    holds its first page until the simulator has seen it), and the first request still goes
    out capped to what it said (max_model_len 1024 -> max_tokens 768), after its reply."""
    from ocrclient.testing import DialectResponder, OpenAISimulator

    with OpenAISimulator(responder=DialectResponder("lighton"), model=MODEL, max_model_len=1024) as sim:
        be = _openai_backend(sim, MODEL)

        async def pages() -> AsyncIterator[PageImage]:
            deadline = time.monotonic() + 20
            while not sim.requests["GET /v1/models"]:
                assert time.monotonic() < deadline, "no GET /v1/models before the first page was ready"
                await _sleep(0.01)
            assert not sim.requests["POST /v1/chat/completions"]
            for i in range(3):
                yield make_page(i)

        try:
            doc = await Scheduler(be).run_document("doc.pdf", pages())
        finally:
            await be.aclose()
    assert [p.status for p in doc.pages] == ["ok", "ok", "ok"]
    assert sim.requests["GET /v1/models"] == 1  # read once, before the first send, not again
    sent = [b for b in sim.bodies if isinstance(b, dict) and "messages" in b]
    assert len(sent) == 3 and all(b["max_tokens"] == 768 for b in sent)


async def test_a_wrong_model_still_stops_the_run_with_the_servers_error() -> None:
    from ocrclient.testing import DialectResponder, OpenAISimulator

    with OpenAISimulator(responder=DialectResponder("lighton"), model=MODEL) as sim:
        be = _openai_backend(sim, "no/such-model")
        try:
            with pytest.raises(RunAborted) as info:
                await Scheduler(be).run_document("doc.pdf", page_stream(4))
        finally:
            await be.aclose()
    assert isinstance(info.value, EndpointError) and info.value.status == 404
    assert "The model `no/such-model` does not exist." in str(info.value)
    assert sim.requests["GET /v1/models"] == 1


async def test_a_warm_up_that_fails_or_never_ends_changes_nothing() -> None:
    """A part's warm_up is best effort: one that raises leaves the run as it was, and one still
    running when the run ends is cancelled with it."""
    ended: list[str] = []

    class Raising(FakeTransport):
        async def warm_up(self) -> None:
            raise TransientError("down", cause="connection")

    class Endless(FakeTransport):
        async def warm_up(self) -> None:
            try:
                await _sleep(3600)
            finally:
                ended.append("cancelled")

    for transport in (Raising(), Endless()):
        be = make_backend(transport)
        doc = await asyncio.wait_for(Scheduler(be).run_document("doc.pdf", page_stream(3)), 30)
        assert [p.status for p in doc.pages] == ["ok", "ok", "ok"]
    assert ended == ["cancelled"]


def test_loading_chandra_leaves_its_html_parser_to_the_warm_up() -> None:
    """The Chandra backend loads without BeautifulSoup or markdownify (~60 ms the first request
    does not need); its warm-up (beside the first render) imports them, as does a first parse."""
    code = textwrap.dedent("""
        import asyncio, sys
        from ocrclient.registry import load_backend
        be = load_backend("runpod-chandra", endpoint_id="e", api_key="k")
        loaded = sorted(m for m in ("bs4", "markdownify") if m in sys.modules)
        assert not loaded, loaded
        asyncio.run(be.warm_up())
        assert "bs4" in sys.modules and "markdownify" in sys.modules
        assert "anyio._backends._asyncio" in sys.modules  # the RunPod transport's warm-up
        from ocrclient.dialects.chandra import parse_chandra_html
        html = '<div data-label="Text" data-bbox="10 10 500 100"><p>Hello <b>world</b></p></div>'
        content = parse_chandra_html(html, 1000)
        assert content.markdown == "Hello **world**", content.markdown
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ------------------------------------------------------------------------------------------------
# the shared TLS context: CA certificates loaded at the first TLS connection, still verified
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_tls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from ocrclient.transports.http import shared_ssl_context

    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "SSLKEYLOGFILE"):
        monkeypatch.delenv(name, raising=False)
    shared_ssl_context.cache_clear()
    yield
    shared_ssl_context.cache_clear()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def _https_models_server(cert: Path, key: Path) -> Iterator[str]:
    """A loopback HTTPS server answering ``GET /v1/models`` with one card; yields its base URL."""

    class Models(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [{"id": "m", "max_model_len": 4096}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


async def test_an_https_url_still_verifies_its_certificate(tmp_path: Path, fresh_tls: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server whose certificate no trusted CA signed is refused; the same server is reached
    once its certificate is trusted ($SSL_CERT_FILE, read as httpx reads it)."""
    from ocrclient.transports.http import shared_ssl_context
    from ocrclient.transports.openai import OpenAITransport

    cert, key = _self_signed(tmp_path)
    with _https_models_server(cert, key) as url:
        t = OpenAITransport(url, api_key="k")
        with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
            await t.list_models(timeout=10)
        await t.aclose()
        shared_ssl_context.cache_clear()
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        t = OpenAITransport(url, api_key="k")
        assert await t.list_models(timeout=10) == {"m": 4096}
        await t.aclose()
        shared_ssl_context.cache_clear()  # a trust store that cannot be read: a one-line error
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
        t = OpenAITransport(url, api_key="k")
        with pytest.raises(ConfigError, match=r"cannot load the CA certificates from .*missing\.pem"):
            await t.list_models(timeout=10)
        await t.aclose()


async def test_an_http_url_loads_no_ca_certificates(fresh_tls: None) -> None:
    from ocrclient.testing import OpenAISimulator
    from ocrclient.transports.http import shared_ssl_context
    from ocrclient.transports.openai import OpenAITransport

    with OpenAISimulator(model=MODEL) as sim:
        t = OpenAITransport(sim.base_url, api_key=sim.api_key)
        assert await t.list_models(timeout=10) == {MODEL: 16384}
        await t.aclose()
    assert shared_ssl_context().cert_store_stats()["x509_ca"] == 0


def test_the_shared_context_is_httpxs_default_once_loaded(fresh_tls: None) -> None:
    """Loaded (as the first TLS connection loads it), the shared context trusts and checks what
    ``httpx.create_ssl_context()`` does on this Python: same certificates, same settings."""
    import httpx

    from ocrclient.transports.http import shared_ssl_context

    ours, theirs = shared_ssl_context(), httpx.create_ssl_context()
    assert ours.cert_store_stats()["x509_ca"] == 0
    ours._load_trust()  # type: ignore[attr-defined]
    for attr in ("protocol", "options", "verify_mode", "check_hostname", "verify_flags", "minimum_version",
                 "maximum_version", "keylog_filename", "post_handshake_auth"):  # fmt: skip
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert ours.cert_store_stats() == theirs.cert_store_stats()
    assert ours.get_ca_certs() == theirs.get_ca_certs()


async def test_a_transports_http_client_is_built_at_its_first_use(fresh_tls: None) -> None:
    """make_client defers building the httpx client (and importing httpcore) to its first use:
    the run's warm-up.  Built then, it carries what the transport set (the API key the
    simulator requires, the query parameters of the base URL); closed unused, it builds none."""
    from ocrclient.testing import OpenAISimulator
    from ocrclient.transports.openai import OpenAITransport

    with OpenAISimulator(model=MODEL) as sim:
        # (a query value is registered as a secret for the process: one no other test prints)
        t = OpenAITransport(sim.base_url + "?tenant=t-7d41e2b9", api_key=sim.api_key)
        assert t._http._client is None  # type: ignore[attr-defined]
        assert await t.list_models(timeout=10) == {MODEL: 16384}
        assert t._http._client is not None and t._http.params["tenant"] == "t-7d41e2b9"  # type: ignore[attr-defined]
        await t.aclose()
        assert t._http.is_closed
        unused = OpenAITransport(sim.base_url, api_key=sim.api_key)
        await unused.aclose()
        assert unused._http.is_closed and unused._http._client is None  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="closed"):
            unused._http.build_request("GET", sim.base_url)


async def test_a_pool_warms_up_every_member() -> None:
    """The pool transport over two endpoints warms each member up (each OpenAI member reads its
    own ``/v1/models``), and a member whose warm-up fails keeps neither the others from theirs."""
    from ocrclient.testing import OpenAISimulator
    from ocrclient.transports.openai import OpenAITransport
    from ocrclient.transports.pool import PoolMember, PoolTransport

    class Raising(FakeTransport):
        async def warm_up(self) -> None:
            raise TransientError("down", cause="connection")

    with OpenAISimulator(model=MODEL) as east, OpenAISimulator(model=MODEL) as west:
        members = [PoolMember("broken", Raising())] + [
            PoolMember(name, OpenAITransport(sim.base_url, api_key=sim.api_key, model=MODEL))
            for name, sim in (("east", east), ("west", west))
        ]
        pool = PoolTransport(members)
        await make_backend(pool).warm_up()
        await pool.aclose()
        assert east.requests["GET /v1/models"] == 1 and west.requests["GET /v1/models"] == 1
