"""A run's start: nothing the first request does not need stands in its way.

* a default render pool's workers are threads: entering it starts no process;
* an isolated pool's worker processes start in the background when the run enters the pool
  (``async with``), while the process goes on planning, not on the first page's render;
* what the first request needs is prepared beside the first render (``Backend.warm_up``): the
  OpenAI transport's ``GET /v1/models`` (no request waits for it: its reply caps those that
  leave after it, a request refused for its length is sent again capped, a wrong model is still
  refused), the async HTTP stack's imports, Chandra's HTML parser; a warm-up that fails or
  hangs changes nothing;
* the shared TLS context loads its CA certificates before the first TLS connection, off the
  event loop (an ``https`` transport's preload or warm-up): an ``http://`` run loads none, an
  ``https://`` one still verifies, with httpx's certificates and settings.

(The OpenAI transport imports no SDK at all: tests/test_openai_without_sdk.py.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
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

from ocrclient.errors import CancelledRunError, ConfigError, EndpointError, TransientError
from ocrclient.imaging import RenderSpec
from ocrclient.pages import PageImage, RenderPool, aiter_pages, iter_pages
from ocrclient.registry import Backend
from ocrclient.scheduler import RunAborted, Scheduler

from .conftest import ROOT
from .fakes import FakeTransport, counting_renders, make_backend, make_page, page_stream
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
    holds its first page until the transport has the cards), and the requests that leave after
    its reply are capped to what it said (max_model_len 1024 -> max_tokens 768)."""
    from ocrclient.testing import DialectResponder, OpenAISimulator

    with OpenAISimulator(responder=DialectResponder("lighton"), model=MODEL, max_model_len=1024) as sim:
        be = _openai_backend(sim, MODEL)

        async def pages() -> AsyncIterator[PageImage]:
            deadline = time.monotonic() + 20
            while be.transport._models is None:  # type: ignore[attr-defined]
                assert time.monotonic() < deadline, "no model cards before the first page was ready"
                await _sleep(0.01)
            assert not sim.requests["POST /v1/chat/completions"]
            for i in range(3):
                yield make_page(i)

        try:
            doc = await Scheduler(be).run_document("doc.pdf", pages())
        finally:
            await be.aclose()
    assert [p.status for p in doc.pages] == ["ok", "ok", "ok"]
    assert sim.requests["GET /v1/models"] == 1  # read once, not again
    sent = [b for b in sim.bodies if isinstance(b, dict) and "messages" in b]
    assert len(sent) == 3 and all(b["max_tokens"] == 768 for b in sent)


async def test_the_first_requests_do_not_wait_for_the_model_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages leave while ``GET /v1/models`` is still on its way (here it takes 1 s, a page
    1.5 s): none waits for the cards.  Those sent before the reply and refused for their length
    go once more, capped; every page is read, and the cards are asked for once."""
    from ocrclient.testing import DialectResponder, FaultPlan, OpenAISimulator

    plan = FaultPlan(latency_s=(1.5, 1.5))
    with OpenAISimulator(plan=plan, responder=DialectResponder("lighton"), model=MODEL, max_model_len=1024) as sim:
        be = _openai_backend(sim, MODEL)
        transport: Any = be.transport
        real = transport.list_models
        seen_before_cards: list[int] = []

        async def slow(**kw: Any) -> Any:
            await _sleep(1.0)
            seen_before_cards.append(sim.requests["POST /v1/chat/completions"])
            return await real(**kw)

        monkeypatch.setattr(transport, "list_models", slow)
        try:
            doc = await asyncio.wait_for(Scheduler(be).run_document("doc.pdf", page_stream(3)), 30)
        finally:
            await be.aclose()
    assert [p.status for p in doc.pages] == ["ok", "ok", "ok"]
    assert seen_before_cards and seen_before_cards[0] >= 1  # sent while the cards were on their way
    assert sim.requests["GET /v1/models"] == 1
    accepted = [b for b in sim.bodies if isinstance(b, dict) and "messages" in b and b["max_tokens"] <= 1024]
    assert len(accepted) == 3


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


@pytest.mark.parametrize("pages, concurrency, window", [(6, 3, 3), (2, 8, 2), (1, 1, 1)])
async def test_the_dialects_warm_up_waits_for_the_first_window_of_requests(pages: int, concurrency: int, window: int) -> None:
    """The transport's warm-up starts with the run; the dialect's (Chandra's HTML parser, ~60 ms
    holding the interpreter) only once the first window of requests is out: every slot taken,
    or, with fewer pages than slots, every page taken.  Its pages are all read either way."""
    from .fakes import FakeDialect

    seen: dict[str, int] = {}

    class Transport(FakeTransport):
        async def warm_up(self) -> None:
            seen["transport"] = sum(self.calls.values())

    transport = Transport(service_s=0.3)

    class Dialect(FakeDialect):
        async def warm_up(self) -> None:
            seen["dialect"] = sum(transport.calls.values())
            seen["in flight"] = transport.inflight

    be = make_backend(transport, Dialect())
    doc = await asyncio.wait_for(Scheduler(be, concurrency=concurrency).run_document("doc.pdf", page_stream(pages)), 30)
    assert [p.status for p in doc.pages] == ["ok"] * pages
    assert seen["transport"] == 0  # at once, before the first send
    assert seen["dialect"] == window and seen["in flight"] == window, seen


async def test_the_dialects_warm_up_waits_for_the_windows_requests_to_be_written() -> None:
    """... and for the requests of that window to be written: the last one's upload (a 0.6 MB
    page) went on while the dialect's import held the interpreter, and the page reached the
    server later (the start stagger).  A transport reporting the first body written at once
    and each later one 0.2 s after its send starts: the dialect warms up once all 4 are
    written, not as the 4th starts."""
    from ocrclient.transports.written import REQUEST_WRITTEN

    from .fakes import FakeDialect

    written: list[float] = []
    seen: dict[str, int] = {}

    class Uploading(FakeTransport):
        async def send(self, request: Any) -> Any:
            report = REQUEST_WRITTEN.get()
            if written:
                await _sleep(0.2)  # the upload
            written.append(1)
            if report is not None:
                report()
            return await super().send(request)

    class Dialect(FakeDialect):
        async def warm_up(self) -> None:
            seen["written"] = len(written)

    be = make_backend(Uploading(service_s=0.3), Dialect())
    doc = await asyncio.wait_for(Scheduler(be, concurrency=4).run_document("doc.pdf", page_stream(8)), 30)
    assert [p.status for p in doc.pages] == ["ok"] * 8
    assert seen["written"] == 4, seen


async def test_a_backend_warmed_up_with_no_window_warms_every_part_at_once() -> None:
    """``Backend.warm_up()`` without the scheduler's event (a caller's own warm-up) runs both
    parts' warm-ups and returns."""
    from .fakes import FakeDialect

    ran: list[str] = []

    class Transport(FakeTransport):
        async def warm_up(self) -> None:
            ran.append("transport")

    class Dialect(FakeDialect):
        async def warm_up(self) -> None:
            ran.append("dialect")

    await asyncio.wait_for(make_backend(Transport(), Dialect()).warm_up(), 10)
    assert sorted(ran) == ["dialect", "transport"]


def test_preload_imports_what_the_first_connection_needs() -> None:
    """``Backend.preload()`` (what ``ocr convert`` calls while its first page renders) imports,
    in the calling thread, the modules an httpx client imports when built and at its first
    connection, for every HTTP transport and for each member of a pool; a transport without
    ``preload`` is left alone, and one whose ``preload`` fails changes nothing."""
    code = textwrap.dedent("""
        import sys
        from ocrclient.registry import load_backend
        from ocrclient.transports.http import FIRST_CONNECTION_IMPORTS
        for name, over in (("runpod-chandra", {"endpoint_id": "e", "api_key": "k"}),
                           ("runpod-pod-lightonocr2", {"base_url": "http://127.0.0.1:9/v1"})):
            be = load_backend(name, **over)
            for m in FIRST_CONNECTION_IMPORTS:
                sys.modules.pop(m, None)
            be.preload()
            missing = [m for m in FIRST_CONNECTION_IMPORTS if m not in sys.modules]
            assert not missing, (name, missing)
        from ocrclient.transports.pool import PoolMember, PoolTransport
        calls = []
        class Member:
            def preload(self): calls.append(1)
        class Bare:
            pass
        PoolTransport([PoolMember("a", Member()), PoolMember("b", Bare()), PoolMember("c", Member())]).preload()
        assert calls == [1, 1], calls
        class Broken:
            def preload(self): raise RuntimeError("no")
        be.transport = Broken()
        be.preload()  # best effort: never raises
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


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


def test_a_default_start_imports_neither_multiprocessing_nor_the_request_models(tmp_path: Path) -> None:
    """What ``ocr convert`` loads before its first request, for every backend profile: its
    dialect and transport, a render pool of threads with its first page rendered.  Neither
    ``multiprocessing`` (only an isolated pool's worker processes need it, and one is started
    below to show it then is) nor, but for DeepSeek's whole-PDF job, the chat request models (the
    dialects need only the sampling keys: ``ocrclient.contracts.sampling``) are among it."""
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]])
    code = textwrap.dedent(f"""
        import sys
        import ocrclient.cli.convert
        from ocrclient.config import list_profiles
        from ocrclient.pages import prepare
        from ocrclient.pages.pool import pool_for
        from ocrclient.config import resolve_config
        from ocrclient.registry import load_backend, transport_class
        from ocrclient.transports.base import unread_settings
        plan = prepare([{str(pdf)!r}])
        for name in sorted(list_profiles(), key=lambda n: ("deepseek" in n, n)):  # (see below)
            if name == "local":
                continue
            kw = dict(endpoint_id="e", api_key="k", base_url="http://127.0.0.1:9/v1", model="m")
            unread = unread_settings(transport_class(resolve_config(name).transport), kw)  # (refused: load_backend)
            be = load_backend(name, **{{k: v for k, v in kw.items() if k not in unread}})
            pool = pool_for(plan)
            pool.prime(plan, be.render)
            page = pool.result(pool.submit(plan[0][0], 0, be.render))
            assert page.error is None, (name, page.error)
            pool.close()
            unneeded = ["multiprocessing", "concurrent.futures.process"]
            if be.dialect.name != "deepseek":  # (its whole-PDF job is built with contracts.runpod)
                unneeded.append("ocrclient.contracts.chat")
            loaded = [m for m in unneeded if m in sys.modules]
            assert not loaded, (name, loaded)
        pool = pool_for(plan, isolated=True)
        pool.result(pool.submit(plan[0][0], 0, be.render))
        pool.close()
        assert "multiprocessing" in sys.modules
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(
    "extra, tty, terminal, rich_loaded",
    [({}, False, False, False), ({"FORCE_COLOR": "1"}, False, True, True), ({"TTY_COMPATIBLE": "0"}, True, False, True),
     ({"TTY_COMPATIBLE": "1"}, False, True, True), ({}, True, True, True)],
    ids=["pipe", "pipe-FORCE_COLOR", "tty-TTY_COMPATIBLE=0", "pipe-TTY_COMPATIBLE=1", "tty"],
)
def test_whether_stderr_is_a_terminal_is_riches_answer_and_a_pipe_needs_no_rich(
    extra: dict[str, str], tty: bool, terminal: bool, rich_loaded: bool
) -> None:
    """``ocr convert`` asks, before its first request, whether stderr is a terminal (to draw a
    progress bar): the answer is rich's own for the same stderr, and for a pipe with neither
    ``FORCE_COLOR`` nor ``TTY_COMPATIBLE`` set it is found without importing rich (~30 ms)."""
    code = textwrap.dedent(f"""
        import os, pty, sys
        if {tty}:
            master, slave = pty.openpty()
            os.dup2(slave, 2)
        from ocrclient.cli.common import stderr
        got = stderr().is_terminal
        loaded = "rich" in sys.modules
        from rich.console import Console
        print(got, Console(stderr=True).is_terminal, loaded)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    env.update(extra, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(terminal), str(terminal), str(rich_loaded)]


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


@pytest.mark.parametrize("how", ["preload", "warm_up"])
def test_an_https_server_has_its_certificates_loaded_before_the_first_request(fresh_tls: None, how: str) -> None:
    """An ``https`` transport loads the CA certificates off the event loop before its first
    connection: ``preload`` in a thread of its own, ``warm_up`` in a worker thread; an ``http``
    one loads none.  (No request is sent: RunPod's URL is only looked at.)"""
    from ocrclient.registry import load_backend
    from ocrclient.transports.http import shared_ssl_context

    for url, loaded in (("http://127.0.0.1:9/v2", False), ("https://api.runpod.ai/v2", True)):
        shared_ssl_context.cache_clear()
        be = load_backend("runpod-chandra", endpoint_id="e", api_key="k", base_url=url)
        threads = set(threading.enumerate())
        if how == "preload":
            be.preload()
        else:
            asyncio.run(be.transport.warm_up())  # type: ignore[attr-defined]
        for t in set(threading.enumerate()) - threads:
            t.join(20)
        assert (shared_ssl_context().cert_store_stats()["x509_ca"] > 0) is loaded, url


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
        assert t._http._clients.loops() == []  # type: ignore[attr-defined]
        assert await t.list_models(timeout=10) == {MODEL: 16384}
        assert t._http._clients.loops() == [asyncio.get_running_loop()]  # type: ignore[attr-defined]
        assert t._http.params["tenant"] == "t-7d41e2b9"
        await t.aclose()
        assert t._http.is_closed
        unused = OpenAITransport(sim.base_url, api_key=sim.api_key)
        await unused.aclose()
        assert unused._http.is_closed and unused._http._clients.loops() == []  # type: ignore[attr-defined]
        with pytest.raises(CancelledRunError, match="closed"):  # (a page of a run it was closed under: cancelled)
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


# ------------------------------------------------------------------------------------------------
# ocr convert's head start: its first page renders while the transport is imported and built
# ------------------------------------------------------------------------------------------------


def test_a_primed_page_is_rendered_once_and_handed_to_its_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``prime`` renders the first page at once; the stream that then asks for it takes that
    render (the same image as an unprimed stream's), and no page is rendered twice."""
    from ocrclient.pages import open_sources

    rendered = counting_renders(monkeypatch)
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(4)])
    spec = RenderSpec(dpi=50)
    (src,) = open_sources([pdf])
    with RenderPool(workers=2) as pool:
        assert pool.prime([(src, [0, 1, 2, 3])], spec) == 1
        deadline = time.monotonic() + 30
        while not rendered:  # under way before any stream asked
            assert time.monotonic() < deadline, "the primed page never started rendering"
            time.sleep(0.005)
        assert rendered == [0]
        primed = [p.encoded.data for p in iter_pages(src, spec, pool=pool) if p.encoded is not None]
    assert sorted(rendered) == [0, 1, 2, 3]  # four pages, four renders
    plain = [p.encoded.data for p in iter_pages(src, spec) if p.encoded is not None]
    assert primed == plain


def test_a_primed_page_at_another_spec_or_page_is_not_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream takes a primed render only for the same page of the same document at the same
    spec: at another spec, or from another page on, it renders its own."""
    from ocrclient.pages import open_sources

    rendered = counting_renders(monkeypatch)
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"], ["three"]])
    (src,) = open_sources([pdf])
    with RenderPool(workers=2) as pool:
        assert pool.prime([(src, [0, 1, 2])], RenderSpec(dpi=50), pages=2) == 2
        pages = list(iter_pages(src, RenderSpec(dpi=72), pool=pool))
        assert [p.frame.width_px for p in pages] == [300, 300, 300]  # 300 pt at 72 dpi, not 50
        later = list(iter_pages(src, RenderSpec(dpi=50), pages=[2], pool=pool))
        assert [p.number for p in later] == [3]
    assert sorted(rendered) == [0, 0, 1, 1, 2, 2]  # primed 0 and 1 at 50 dpi; 0-2 at 72; 2 at 50


def test_an_inline_pool_primes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ocrclient.pages import open_sources

    rendered = counting_renders(monkeypatch)
    (src,) = open_sources([text_pdf(tmp_path / "d.pdf", [["one"]])])
    with RenderPool(workers=0) as pool:
        assert pool.prime([(src, [0])], RenderSpec(dpi=50)) == 0
        assert pool.prime([(src, [0])], RenderSpec(dpi=50), pages=0) == 0
    assert rendered == []
    with RenderPool(workers=2) as pool:
        assert pool.prime([(src, [0])], RenderSpec(dpi=50), pages=0) == 0
    assert rendered == []


def _gated_renders(monkeypatch: pytest.MonkeyPatch, gate: threading.Event) -> list[tuple[int, float, float]]:
    """Every page the render pools render, as ``(index, start, end)``; page 0 waits for ``gate``."""
    from ocrclient.pages import pool as pool_mod

    spans: list[tuple[int, float, float]] = []
    real = pool_mod.render_job

    def gated(job: Any) -> PageImage:
        t0 = time.monotonic()
        if job.index == 0:
            assert gate.wait(30), "page 0 was never let go"
        try:
            return real(job)
        finally:
            spans.append((job.index, t0, time.monotonic()))

    monkeypatch.setattr(pool_mod, "render_job", gated)
    return spans


@pytest.mark.parametrize(("cpus", "workers", "lanes"), [(1, 1, 1), (2, 2, 1), (3, 2, 2), (8, 2, 2), (8, 1, 1)])
def test_primed_pages_leave_the_caller_a_cpu(cpus: int, workers: int, lanes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The primed pages render at most ``workers`` at a time, one fewer when that would take every
    CPU (the caller's thread, importing meanwhile, keeps one), and at least one."""
    from ocrclient.pages import pool as pool_mod

    monkeypatch.setattr(pool_mod, "usable_cpus", lambda: cpus)
    assert RenderPool(workers=workers).prime_lanes() == lanes


def test_primed_pages_on_two_cpus_render_one_after_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On two CPUs the head start's pages take one lane: while no stream asks for them, the
    second starts when the first has ended, the third when the second has; each is then handed
    to its stream, rendered once."""
    from ocrclient.pages import open_sources
    from ocrclient.pages import pool as pool_mod

    monkeypatch.setattr(pool_mod, "usable_cpus", lambda: 2)
    gate = threading.Event()
    spans = _gated_renders(monkeypatch, gate)
    (src,) = open_sources([text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(4)])])
    spec = RenderSpec(dpi=50)
    with RenderPool(workers=2) as pool:
        assert pool.prime([(src, [0, 1, 2, 3])], spec, pages=3) == 3
        time.sleep(0.3)
        assert spans == []  # page 0 is held: pages 1 and 2 wait their turn, though a worker is free
        gate.set()
        deadline = time.monotonic() + 30
        while len(spans) < 3:
            assert time.monotonic() < deadline, f"the primed pages never all rendered: {spans}"
            time.sleep(0.01)
        assert [i for i, _, _ in spans] == [0, 1, 2]
        assert all(spans[k][2] <= spans[k + 1][1] for k in range(2)), spans  # none overlapped
        pages = list(iter_pages(src, spec, pool=pool))
    assert [p.number for p in pages] == [1, 2, 3, 4] and all(p.encoded is not None for p in pages)
    assert sorted(i for i, _, _ in spans) == [0, 1, 2, 3]  # four pages, four renders


def test_a_stream_asking_for_a_queued_primed_page_starts_it_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A primed page still waiting for its turn in the lane starts as soon as a stream asks for
    it (the run has begun: the caller no longer needs the CPU), not when the page before it ends;
    it is rendered once."""
    from ocrclient.pages import open_sources
    from ocrclient.pages import pool as pool_mod

    monkeypatch.setattr(pool_mod, "usable_cpus", lambda: 2)
    gate = threading.Event()
    spans = _gated_renders(monkeypatch, gate)
    (src,) = open_sources([text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(3)])])
    spec = RenderSpec(dpi=50)
    try:
        with RenderPool(workers=2) as pool:
            assert pool.prime([(src, [0, 1, 2])], spec, pages=3) == 3
            third = list(iter_pages(src, spec, pages=[2], pool=pool))  # (returns once page 3 is rendered)
            assert [i for i, _, _ in spans] == [2]  # while page 0 is still held
            gate.set()
            pages = third + list(iter_pages(src, spec, pages=[0, 1], pool=pool))
    finally:
        gate.set()
    assert [p.number for p in pages] == [3, 1, 2] and all(p.encoded is not None for p in pages)
    assert sorted(i for i, _, _ in spans) == [0, 1, 2]


def test_a_stream_that_stops_cancels_a_handed_over_primed_page_not_yet_rendering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that stops early cancels the renders it asked for and has not taken (a primed
    page among them): one still waiting for a worker is never rendered, as a page it asked for
    itself."""
    from ocrclient.pages import open_sources
    from ocrclient.pages import pool as pool_mod
    from ocrclient.pages.stream import _submitted

    monkeypatch.setattr(pool_mod, "usable_cpus", lambda: 2)
    gate = threading.Event()
    started: list[int] = []
    real = pool_mod.render_job

    def gated(job: Any) -> PageImage:
        started.append(job.index)
        if job.index in (0, 1):
            assert gate.wait(30)
        return real(job)

    monkeypatch.setattr(pool_mod, "render_job", gated)
    (src,) = open_sources([text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(3)])])
    spec = RenderSpec(dpi=50)
    try:
        with RenderPool(workers=2) as pool:
            assert pool.prime([(src, [0, 1, 2])], spec, pages=3) == 3
            futures = _submitted(src, [0, 1, 2], spec, pool, depth=3)
            next(futures)  # the stream asks for pages 0-2 and takes page 0's render
            _until(lambda: sorted(started) == [0, 1], f"pages 0 and 1 never both started: {started}")
            futures.close()  # the stream stops (pages 0 and 1 hold both workers): 1 and 2 are let go
            gate.set()
            time.sleep(0.3)
    finally:
        gate.set()
    assert sorted(started) == [0, 1]  # page 2 never rendered


def test_a_pool_closing_while_a_primed_page_starts_the_next_builds_no_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The render thread that ends a primed page starts the next one in its lane; a close()
    under way at that moment (the thread switched out between the closed check and taking the
    pool's lock, forced here) leaves no executor behind and no page rendered after it."""
    from ocrclient.pages import open_sources
    from ocrclient.pages import pool as pool_mod

    monkeypatch.setattr(pool_mod, "usable_cpus", lambda: 2)
    gate = threading.Event()
    spans = _gated_renders(monkeypatch, gate)
    (src,) = open_sources([text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(3)])])
    before = set(threading.enumerate())
    pool = RenderPool(workers=2)
    in_callback = threading.Event()

    class Preempted:
        """The pool's lock: a render thread waits, before taking it, until close() has let the
        executor go."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __enter__(self) -> Any:
            if threading.current_thread().name.startswith("ocrclient-render") and not in_callback.is_set():
                in_callback.set()
                deadline = time.monotonic() + 5
                while pool._executor is not None and time.monotonic() < deadline:
                    time.sleep(0.001)
            return self.inner.__enter__()

        def __exit__(self, *exc: Any) -> Any:
            return self.inner.__exit__(*exc)

    assert pool.prime([(src, [0, 1, 2])], RenderSpec(dpi=50), pages=3) == 3
    pool._lock = Preempted(pool._lock)  # type: ignore[assignment]
    gate.set()
    assert in_callback.wait(10)
    pool.close()
    time.sleep(0.3)
    assert pool._executor is None
    assert [i for i, _, _ in spans] == [0]
    assert not [t.name for t in set(threading.enumerate()) - before if t.name.startswith("ocrclient-render")]


def _gated_by_page(monkeypatch: pytest.MonkeyPatch, pages: int) -> tuple[dict[int, threading.Event], list[int]]:
    """Every page the render pools render waits for its own gate; the pages started, in order."""
    from ocrclient.pages import pool as pool_mod

    gates = {i: threading.Event() for i in range(pages)}
    started: list[int] = []
    real = pool_mod.render_job

    def gated(job: Any) -> PageImage:
        started.append(job.index)
        assert gates[job.index].wait(30)
        return real(job)

    monkeypatch.setattr(pool_mod, "render_job", gated)
    return gates, started


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def _one_lane_both_workers_busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, RenderSpec, dict[int, threading.Event], list[int]]:
    """A two-worker pool on two CPUs (one lane) with pages 0-2 of a 6-page PDF primed: page 0
    rendering, 1 and 2 waiting their turn, and another stream's page 4 rendering on the second
    worker; every render waits for its page's gate.  (pool, source, spec, gates, pages started)"""
    from ocrclient.pages import open_sources
    from ocrclient.pages import pool as pool_mod

    monkeypatch.setattr(pool_mod, "usable_cpus", lambda: 2)
    gates, started = _gated_by_page(monkeypatch, 6)
    (src,) = open_sources([text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(6)])])
    spec = RenderSpec(dpi=50)
    pool = RenderPool(workers=2)
    assert pool.prime([(src, [0, 1, 2])], spec, pages=3) == 3
    _until(lambda: 0 in started, "page 0 never started")
    pool.submit(src, 4, spec)
    _until(lambda: 4 in started, "page 4 never started")
    return pool, src, spec, gates, started


def test_close_and_a_stream_asking_for_a_waiting_primed_page_at_once_both_return(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream asks for a primed page still waiting in the lane while the pool closes (the
    stream's thread switched out between the closed check and handing the render to the workers,
    forced here, until the close has begun): the close cancels the page before it, whose lane
    turn would start the asked-for page.  Neither waits for the other: both return, and the
    stream meets the closed pool."""
    pool, src, spec, gates, _ = _one_lane_both_workers_busy(tmp_path, monkeypatch)
    try:
        pool.submit(src, 1, spec)  # page 1 asked for: it waits for a worker
        real_ensure = pool._ensure_executor

        def switched_out() -> Any:
            ex = real_ensure()
            if threading.current_thread().name == "stream":
                _until(lambda: getattr(ex, "_shutdown", False), "the close never began")
                time.sleep(0.05)
            return ex

        monkeypatch.setattr(pool, "_ensure_executor", switched_out)
        got: dict[str, Any] = {}

        def ask() -> None:
            try:
                got["page 3"] = pool.submit(src, 2, spec)
            except BaseException as exc:
                got["page 3"] = exc

        stream = threading.Thread(target=ask, name="stream", daemon=True)
        closing = threading.Thread(target=pool.close, name="close", daemon=True)
        stream.start()
        time.sleep(0.05)
        closing.start()
        time.sleep(0.3)
    finally:
        for gate in gates.values():
            gate.set()
    stream.join(10)
    closing.join(10)
    assert not stream.is_alive() and not closing.is_alive(), "close() and the stream's submit() wait for each other"
    outcome = got["page 3"]  # the closed pool, in its words or its executor's
    if isinstance(outcome, cf.Future):
        with pytest.raises(RuntimeError, match=r"closed|after shutdown"):
            outcome.result(5)
    else:
        assert isinstance(outcome, RuntimeError) and "closed" in str(outcome)


def test_a_stream_asking_for_a_primed_page_while_the_pool_closes_meets_the_closed_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While close() waits for the renders under way, a stream that asks for a primed page whose
    render the close cancelled meets the closed pool, as for any other page: not a cancelled
    future (awaited, it raised CancelledError in a task no one cancelled)."""
    pool, src, spec, gates, started = _one_lane_both_workers_busy(tmp_path, monkeypatch)
    try:
        # (another stream's pages: 4 holds the second worker, 5 waits)
        pool.submit(src, 5, spec)
        gates[0].set()  # page 0 ends: its lane turn starts page 1 (behind page 5)
        _until(lambda: 5 in started, "page 5 never started")
        time.sleep(0.05)
        closing = threading.Thread(target=pool.close, name="close", daemon=True)
        closing.start()  # cancels page 1's render, waits for pages 4 and 5
        time.sleep(0.2)
        assert closing.is_alive()
        try:
            handed = pool.submit(src, 1, spec)
        except RuntimeError as exc:
            assert "closed" in str(exc)
        else:
            assert not handed.cancelled()
            with pytest.raises(RuntimeError, match="closed"):
                handed.result(5)
    finally:
        for gate in gates.values():
            gate.set()
    closing.join(10)


def test_prime_starts_no_more_pages_than_its_streams_render_ahead(tmp_path: Path) -> None:
    from ocrclient.pages import open_sources
    from ocrclient.pages.pool import PREFETCH_PER_WORKER

    (src,) = open_sources([text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(12)])])
    with RenderPool(workers=2) as pool:
        assert pool.prime([(src, list(range(12)))], RenderSpec(dpi=50), pages=1000) == 2 * PREFETCH_PER_WORKER


def test_a_pool_closed_with_primed_pages_waiting_renders_them_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closing the pool while primed pages wait for their turn: the one rendering ends, the
    waiting ones are never rendered, and nothing is raised."""
    from ocrclient.pages import open_sources
    from ocrclient.pages import pool as pool_mod

    monkeypatch.setattr(pool_mod, "usable_cpus", lambda: 2)
    gate = threading.Event()
    spans = _gated_renders(monkeypatch, gate)
    (src,) = open_sources([text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(3)])])
    pool = RenderPool(workers=2)
    assert pool.prime([(src, [0, 1, 2])], RenderSpec(dpi=50), pages=3) == 3
    threading.Timer(0.2, gate.set).start()
    pool.close()  # (waits for page 0, let go by the timer)
    time.sleep(0.2)
    assert [i for i, _, _ in spans] == [0]


@pytest.mark.parametrize("transport", ["runpod", "openai"])
def test_ocr_convert_starts_its_first_page_before_it_builds_the_transport(
    transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ocr convert`` primes its first three pages before it imports and builds the transport (on
    two CPUs the first renders and the others wait their turn in its lane), and
    every page is still rendered exactly once and read; a rerun that the manifest skips renders
    nothing (the manifest is read before the head start)."""
    from typer.testing import CliRunner

    from ocrclient import registry
    from ocrclient.cli import app
    from ocrclient.pages import pool as pool_mod
    from ocrclient.pages.pool import RenderPool as Pool
    from ocrclient.testing import DialectResponder, OpenAISimulator, RunPodSimulator

    rendered = counting_renders(monkeypatch)
    order: list[str] = []
    real_submit, real_queue, real_load = Pool._submit_job, Pool._queue_after, registry.load_transport
    monkeypatch.setattr(pool_mod, "usable_cpus", lambda: 2)  # one lane: the primed pages queue in turn

    def submit(self: Any, job: Any) -> Any:
        order.append(f"render {job.index}")
        return real_submit(self, job)

    def queue(self: Any, job: Any, after: Any) -> Any:
        order.append(f"queue {job.index}")
        return real_queue(self, job, after)

    def load(cfg: Any) -> Any:
        order.append("transport")
        return real_load(cfg)

    monkeypatch.setattr(Pool, "_submit_job", submit)
    monkeypatch.setattr(Pool, "_queue_after", queue)
    monkeypatch.setattr(registry, "load_transport", load)
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(5)])
    out = tmp_path / "out"
    if transport == "runpod":
        sim: Any = RunPodSimulator(responder=DialectResponder("chandra"))
        args = ["--backend", "runpod-chandra", "--endpoint-id", "sim-endpoint"]
    else:
        sim = OpenAISimulator(responder=DialectResponder("lighton"), model=MODEL)
        args = ["--backend", "runpod-pod-lightonocr2", "--model", MODEL]
    with sim:
        env = {"RUNPOD_API_KEY": str(sim.api_key), "VLLM_API_KEY": str(sim.api_key), "NO_COLOR": "1",
               "RUNPOD_BASE_URL": sim.base_url, "RUNPOD_POD_BASE_URL": sim.base_url}  # fmt: skip
        for key in env:
            monkeypatch.setenv(key, env[key])
        argv = ["convert", str(pdf), "-o", str(out), *args, "--concurrency", "2", "--no-cache", "--quiet"]
        first = CliRunner().invoke(app, argv, catch_exceptions=False)
        assert first.exit_code == 0, first.output
        assert order[:4] == ["render 0", "queue 1", "queue 2", "transport"], order  # (HEAD_START_PAGES)
        assert sorted(rendered) == [0, 1, 2, 3, 4]
        pages = json.loads((out / "d.json").read_text())["pages"]
        assert [p["page"] for p in pages] == [1, 2, 3, 4, 5] and {p["status"] for p in pages} == {"ok"}
        rendered.clear()
        again = CliRunner().invoke(app, argv, catch_exceptions=False)
        assert again.exit_code == 0, again.output
        assert rendered == []  # done: skipped before anything was rendered


def test_what_ocr_convert_loads_before_its_head_start_imports_no_http_stack() -> None:
    """The head start's premise: planning, every shipped profile's settings and dialect (the
    render spec) and the manifest load without httpx, httpcore or any transport module, so
    those import while the first page renders.  (The chandra dialect's HTML parser is not
    loaded either: it waits for the first window.)"""
    code = textwrap.dedent("""
        import sys
        import ocrclient.cli.convert
        from ocrclient.config import resolve_config, shipped_profiles_dir
        from ocrclient.manifest import Manifest
        from ocrclient.pages import open_sources, parse_page_range
        from ocrclient.pages.pool import pool_for
        from ocrclient.registry import load_dialect
        names = sorted(p.stem for p in shipped_profiles_dir().glob("*.toml"))
        assert len(names) >= 8, names
        for name in names:
            cfg = resolve_config(name, model="m", endpoint_id="e", api_key="k", base_url="http://127.0.0.1:9/v1")
            load_dialect(cfg).render
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("httpx", "httpcore", "anyio", "bs4")
                        or m.startswith("ocrclient.transports."))
        assert not loaded, loaded
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("flags", [["--quiet"], [], ["--progress"]], ids=["quiet", "summary", "progress-bar"])
def test_a_quiet_ocr_convert_never_imports_rich(flags: list[str], tmp_path: Path) -> None:
    """Importing rich costs ~30 ms of a run's start: ``ocr convert`` makes its stderr console,
    progress bar and summary table only when it shows something, so a ``--quiet`` run (no TTY)
    converts every page without loading rich at all; without ``--quiet`` the summary table
    loads it at the end, and ``--progress`` draws its bar on the same console.  (httpx's own
    command line, which loads rich when click is installed, is blocked: a user's install has
    no click.)"""
    from ocrclient.testing import DialectResponder, RunPodSimulator

    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(3)])
    out = tmp_path / "out"
    code = textwrap.dedent(f"""
        import json, sys
        sys.modules["httpx._main"] = None
        sys.argv = ["ocr", "convert", {str(pdf)!r}, "-o", {str(out)!r}, "--backend", "runpod-chandra",
                    "--endpoint-id", "sim-endpoint", "--concurrency", "2", "--no-cache"] + {flags!r}
        from ocrclient.cli import main
        try:
            main()
        except SystemExit as exc:
            rc = exc.code
        print(json.dumps({{"rc": rc, "rich": sorted(m for m in sys.modules if m.split(".")[0] == "rich")}}))
    """)
    with RunPodSimulator(responder=DialectResponder("chandra")) as sim:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "RUNPOD_API_KEY": str(sim.api_key),
               "RUNPOD_BASE_URL": sim.base_url, "NO_COLOR": "1"}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0, done.stderr[-2000:]
    assert [p["status"] for p in json.loads((out / "d.json").read_text())["pages"]] == ["ok"] * 3
    if flags == ["--quiet"]:
        assert report["rich"] == [], report["rich"]
    else:
        assert "rich.table" in report["rich"] and "3 pages in" in done.stderr, done.stderr[-500:]
    if flags == ["--progress"]:
        assert "rich.progress" in report["rich"] and "3/3" in done.stderr, done.stderr[-500:]
