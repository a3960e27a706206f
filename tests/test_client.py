"""The Python API as an SDK (issue 17): client objects held across calls, typed signatures, the
public names at the top level, and the rule for blocking calls where an event loop runs.

* every public function and every Client/AsyncClient/Backend method names its keywords (no
  ``**kwargs``); the shortcuts take exactly a client's settings plus the call's keywords, and a
  client takes every :class:`~ocrclient.config.BackendConfig` field the old ``**overrides`` did;
* ``with Client("local") as c: c.convert(a); c.convert(b)`` and its async twin load the backend
  once and close it at the end;
* one AsyncClient shared by 50 concurrent calls keeps its concurrency limit across all of them
  (the simulator counts requests in flight; 50 separate calls exceed it, so the check can fail);
* the blocking API inside ``asyncio.run(...)`` or a FastAPI ``async def`` handler raises
  UsageError naming the async twin (the notebook kernel case is in test_host_processes.py).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFont

import ocrclient
from ocrclient.config import BackendConfig
from ocrclient.testing import FaultPlan, OpenAISimulator

ROOT = Path(__file__).resolve().parents[1]

#: the BackendConfig fields that were never settings of a run (a profile's own name and notes)
NOT_SETTINGS = {"name", "description", "origin"}
CLIENT_ONLY = {"backend", "timeout", "cache", "scheduler_options", "isolate_render"}
CALL_KEYWORDS = {"pages", "password", "on_event", "outputs", "document_mode"}
STREAM_KEYWORDS = {"pages", "password", "on_event"}


def png(text: str, width: int = 480) -> bytes:
    img = Image.new("RGB", (width, 90), "white")
    ImageDraw.Draw(img).text((16, 20), text, fill="black", font=ImageFont.load_default(size=40))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def sim_settings(sim: OpenAISimulator) -> dict[str, Any]:
    return {"base_url": sim.base_url, "api_key": sim.api_key, "model": sim.model, "cache": False}


# -- signatures --------------------------------------------------------------------------------


def _public_callables() -> list[tuple[str, Callable[..., Any]]]:
    found: list[tuple[str, Callable[..., Any]]] = []
    for name in ocrclient.__all__:
        obj = getattr(ocrclient, name)
        if inspect.isfunction(obj):
            found.append((name, obj))
        elif inspect.isclass(obj) and not issubclass(obj, BaseException):
            found.append((name, obj))  # its constructor
    for cls in (ocrclient.Client, ocrclient.AsyncClient, ocrclient.Backend):
        for attr, member in vars(cls).items():
            if inspect.isfunction(member) and (not attr.startswith("_") or attr == "__init__"):
                found.append((f"{cls.__name__}.{attr}", member))
    return found


def test_no_public_signature_takes_var_keywords() -> None:
    checked = _public_callables()
    names = {n for n, _ in checked}
    assert {"convert", "aconvert_many", "load_backend", "Client.convert_many", "AsyncClient.stream_pages",
            "Client.__init__", "Backend.close"} <= names, names  # fmt: skip
    bad = [
        f"{name}{inspect.signature(fn)}"
        for name, fn in checked
        if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    ]
    assert not bad, bad
    untyped = [
        name
        for name, fn in checked
        if inspect.isfunction(fn)
        and (
            inspect.signature(fn).return_annotation is inspect.Signature.empty
            or any(p.annotation is p.empty for p in inspect.signature(fn).parameters.values() if p.name != "self")
        )
    ]
    assert not untyped, untyped


def test_public_models_show_their_fields_before_any_is_built() -> None:
    """The output models build their schema at first use (``defer_build``); in a fresh
    interpreter, before any is built, ``help()`` and editors still see their fields."""
    import subprocess
    import sys

    code = (
        "import inspect, ocrclient\n"
        "from pydantic import BaseModel\n"
        "names = [n for n in ocrclient.__all__ if isinstance(getattr(ocrclient, n), type)"
        " and issubclass(getattr(ocrclient, n), BaseModel)]\n"
        "assert 'Page' in names and 'Document' in names, names\n"
        "bad = [n for n in names if any(p.kind is p.VAR_KEYWORD for p in"
        " inspect.signature(getattr(ocrclient, n)).parameters.values())]\n"
        "print(len(names), bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    count, bad = out.stdout.split(" ", 1)
    assert int(count) >= 5 and bad.strip() == "[]", out.stdout


def test_the_signature_check_can_fail() -> None:
    def old_style(source: str, **kwargs: Any) -> None: ...

    assert any(p.kind is p.VAR_KEYWORD for p in inspect.signature(old_style).parameters.values())


def _keywords(fn: Callable[..., Any]) -> set[str]:
    return {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def test_every_setting_of_the_old_overrides_is_a_keyword() -> None:
    """What ``**overrides`` accepted before (any BackendConfig field) is a named keyword of the
    clients and of every shortcut; the shortcuts take exactly the client's settings plus the
    call's keywords, and both clients take the same settings."""
    fields = set(BackendConfig.model_fields) - NOT_SETTINGS
    settings = set(inspect.signature(ocrclient.AsyncClient).parameters)
    assert settings == set(inspect.signature(ocrclient.Client).parameters)
    assert fields <= settings and settings - fields == CLIENT_ONLY, settings ^ fields
    for fn in (ocrclient.convert, ocrclient.aconvert, ocrclient.convert_many, ocrclient.aconvert_many):
        assert _keywords(fn) == settings | CALL_KEYWORDS, fn.__name__
        assert _keywords(ocrclient.Client.convert) == CALL_KEYWORDS
    for fn in (ocrclient.stream_pages, ocrclient.astream_pages):
        assert _keywords(fn) == settings | STREAM_KEYWORDS, fn.__name__
    assert _keywords(ocrclient.load_backend) == fields


# -- the top-level names -----------------------------------------------------------------------


def test_public_names_import_from_the_top_level_and_dir_lists_them() -> None:
    from ocrclient import AsyncClient, AuthError, Client, ConvertResult, PageDone, UsageError

    assert issubclass(AuthError, ocrclient.OcrError) and issubclass(UsageError, RuntimeError)
    assert PageDone.__module__ == "ocrclient.events" and ConvertResult.__module__ == "ocrclient.run"
    assert Client.__module__ == AsyncClient.__module__ == "ocrclient.client"
    listed = dir(ocrclient)
    public = {name for name in listed if not (name.startswith("__") and name.endswith("__"))}
    assert public == set(ocrclient.__all__) - {"__version__"}, public ^ (set(ocrclient.__all__) - {"__version__"})
    assert "__version__" in listed and "__name__" in listed
    importlib.import_module("ocrclient.errors")  # a submodule imported is an attribute, not a listed name
    assert "errors" not in dir(ocrclient)
    for name in ocrclient.__all__:
        assert getattr(ocrclient, name) is not None, name
    with pytest.raises(AttributeError):
        ocrclient.NoSuchName  # type: ignore[attr-defined]  # noqa: B018


def test_every_class_a_public_signature_names_is_exported() -> None:
    """The kind: a class of ocrclient's that a public function's or client method's parameter
    is annotated with is a top-level name (``outputs: OutputWriter`` was not: the docs say every
    public name imports from the top level, and it had to come from ``ocrclient.exporters.sink``)."""
    import inspect
    import pkgutil
    import re

    classes = set()
    for mod in pkgutil.walk_packages(ocrclient.__path__, "ocrclient."):
        if mod.name.startswith(("ocrclient.testing", "ocrclient.cli")) or mod.name.endswith("__main__"):
            continue
        module = importlib.import_module(mod.name)
        classes |= {n for n, c in vars(module).items() if inspect.isclass(c) and c.__module__ == mod.name and not n.startswith("_")}
    named: set[str] = set()
    for name in ocrclient.__all__:
        obj = getattr(ocrclient, name)
        if inspect.isfunction(obj):
            targets = [obj]
        elif name in ("Client", "AsyncClient"):
            targets = [obj.__init__, *(f for n, f in inspect.getmembers(obj, inspect.isfunction) if not n.startswith("_"))]
        else:
            continue
        for target in targets:
            for param in inspect.signature(target).parameters.values():
                named |= set(re.findall(r"[A-Za-z_]\w*", str(param.annotation))) & classes
    assert "OutputWriter" in named and "Backend" in named
    assert named <= set(ocrclient.__all__), named - set(ocrclient.__all__)


def test_every_exception_and_event_class_is_exported() -> None:
    """The kind, not a list: every OcrError subclass and event class defined in the package is a
    top-level name."""
    import importlib
    import pkgutil

    from ocrclient import events

    for mod in pkgutil.walk_packages(ocrclient.__path__, "ocrclient."):
        if mod.name.startswith(("ocrclient.testing", "ocrclient.cli")) or mod.name.endswith("__main__"):
            continue
        module = importlib.import_module(mod.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == mod.name and issubclass(obj, ocrclient.OcrError):
                assert name in ocrclient.__all__, f"{mod.name}.{name} is not exported"
    for name in events.__all__:
        assert name in ocrclient.__all__, name


def _documented_names() -> set[str]:
    """The names docs/python-api.md lists under its "Public names" heading."""
    import re

    text = (ROOT / "docs" / "python-api.md").read_text()
    section = text.split("## Public names", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", section))


def test_all_equals_the_documented_surface() -> None:
    assert set(ocrclient.__all__) == _documented_names()
    assert len(ocrclient.__all__) == len(set(ocrclient.__all__))


# -- one client, many calls --------------------------------------------------------------------


def test_client_local_two_calls_one_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from ocrclient import client as client_module

    loads: list[str | None] = []
    real_load = client_module.load_backend
    monkeypatch.setattr(client_module, "load_backend", lambda name, **kw: loads.append(name) or real_load(name, **kw))
    with ocrclient.Client("local", cache=False) as c:
        a = c.convert(png("Hello client"))
        b = c.convert(png("Second call"), pages="1")
        backend = c.backend
    assert loads == ["local"]
    assert [a.pages[0].status, b.pages[0].status] == ["ok", "ok"]
    assert "Hello" in a.markdown and "Second" in b.markdown
    assert backend.name == "local"
    with pytest.raises(ocrclient.UsageError, match="closed"):
        c.convert(png("after close"))


async def test_async_client_local_two_calls() -> None:
    async with ocrclient.AsyncClient("local", cache=False) as c:
        a = await c.convert(png("Hello async"))
        b = await c.convert(png("Again async"))
    assert [a.pages[0].status, b.pages[0].status] == ["ok", "ok"]
    assert "Hello" in a.markdown and "Again" in b.markdown
    with pytest.raises(ocrclient.UsageError, match="closed"):
        await c.convert(png("after close"))


async def test_one_async_client_keeps_its_limit_across_50_concurrent_calls() -> None:
    images = [png(f"Document {i}") for i in range(50)]
    plan = FaultPlan(latency_s=(0.05, 0.05), slots=64)
    with OpenAISimulator(plan=plan) as sim:
        async with ocrclient.AsyncClient("openai", concurrency=4, **sim_settings(sim)) as client:
            docs = await asyncio.gather(*(client.convert(img) for img in images))
        shared = sim.max_active  # page requests served at once (not /v1/models, read beside them)
    assert all(d.ok for d in docs) and len({d.markdown for d in docs}) == 50
    assert shared == 4, shared  # reached, never exceeded
    # the same 50 calls each with its own limit of 4 (separate shortcuts) go far over it
    with OpenAISimulator(plan=plan) as sim:
        await asyncio.gather(*(ocrclient.aconvert(img, backend="openai", concurrency=4, **sim_settings(sim))
                               for img in images))  # fmt: skip
        separate = sim.max_active
    assert separate > 4, separate


async def test_calls_at_once_share_the_clients_render_pool_and_its_pages_in_hand(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Twelve calls at once on one AsyncClient render on one pool (its two threads, not two per
    call) and hold between them the pages one run would (rendered, request built, not done:
    ``BUILT_AHEAD`` per slot), not that many each: 20 calls at once each with a pool and a
    budget of their own peaked at 555 MB against 145 MB for one call over the same pages.  The
    pool closes with the client; one whose worker died is replaced at the next call."""
    from ocrclient import client as client_module
    from ocrclient.scheduler import BUILT_AHEAD, Scheduler

    from .pdfgen import text_pdf

    pools: list[Any] = []
    real_pool = client_module.RenderPool

    def counted(**kwargs: Any) -> Any:
        pools.append(real_pool(**kwargs))
        return pools[-1]

    monkeypatch.setattr(client_module, "RenderPool", counted)
    in_hand, most = [0], [0]
    real_task = Scheduler._page_task

    async def page_task(self: Any, *args: Any) -> None:
        in_hand[0] += 1
        most[0] = max(most[0], in_hand[0])
        try:
            await real_task(self, *args)
        finally:
            in_hand[0] -= 1

    monkeypatch.setattr(Scheduler, "_page_task", page_task)
    pdfs = [text_pdf(tmp_path / f"d{i}.pdf", [[f"doc {i} page {k}"] for k in range(4)]) for i in range(12)]
    threads: set[str] = set()
    plan = FaultPlan(latency_s=(0.05, 0.05), slots=64)
    with OpenAISimulator(plan=plan) as sim:
        async with ocrclient.AsyncClient("openai", concurrency=2, **sim_settings(sim)) as client:
            calls = asyncio.gather(*(client.convert(pdf) for pdf in pdfs))
            while not calls.done():
                threads |= {t.name for t in threading.enumerate() if t.name.startswith("ocrclient-render")}
                await asyncio.sleep(0.005)
            docs = await calls
            assert len(pools) == 1 and not pools[0].closed
            pools[0]._broken = "a worker died"  # (as an isolated pool's crash leaves it)
            again = await client.convert(pdfs[0])
            assert len(pools) == 2 and again.ok
        assert all(pool.closed for pool in pools)
    assert all(d.ok for d in docs) and [len(d.pages) for d in docs] == [4] * 12
    assert len(threads) <= 2, threads
    assert 2 <= most[0] <= BUILT_AHEAD * 2, most[0]


async def test_a_long_lived_client_keeps_no_file_of_the_bytes_of_a_call_that_ended(tmp_path: Path) -> None:
    """Bytes given to a call are spilled to a file for the render workers (and the local
    engine's text layer reads the PDF again from it, after its page was rendered); the file
    goes when the call ends, not when the client closes: a service converting uploads for
    days on one client would otherwise fill its temporary folder."""
    from .pdfgen import text_pdf

    data = text_pdf(tmp_path / "d.pdf", [["Alpha reviews the year"], ["Bravo reviews the quays"]]).read_bytes()
    async with ocrclient.AsyncClient("local", cache=False) as client:
        docs = await asyncio.gather(*(client.convert(data) for _ in range(3)))
        pool = client._render_pool
        assert pool is not None and pool._tmpdir is not None
        assert list(Path(pool._tmpdir).iterdir()) == []
        again = await client.convert(data)
    assert [[p.status for p in d.pages] for d in [*docs, again]] == [["ok", "ok"]] * 4
    assert all(not p.warnings for d in [*docs, again] for p in d.pages), [p.warnings for p in again.pages]


async def test_calls_stopped_early_give_back_their_pages_in_hand(tmp_path: Path) -> None:
    """A client's calls share one budget of pages in hand (two per slot): every way a call can
    stop early gives its pages back -- a page task cancelled before it ran included (it never
    ran a ``finally``) -- so the client's next calls are never left waiting for a budget
    nobody holds.  (Each ``stream_pages`` left after its first page lost one page of it: the
    fifth hung at ``concurrency=2``.)"""
    import contextlib

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {k}"] for k in range(16)])

    async def first_page(client: ocrclient.AsyncClient) -> int:
        async with contextlib.aclosing(client.stream_pages(pdf)) as pages:
            async for page in pages:
                return page.page
        raise AssertionError("no page")

    with OpenAISimulator(plan=FaultPlan(latency_s=(0.0, 0.02), slots=64)) as sim:
        async with ocrclient.AsyncClient("openai", concurrency=2, **sim_settings(sim)) as client:
            for _ in range(8):
                await asyncio.wait_for(first_page(client), 30)
            for _ in range(6):  # calls cancelled part way
                task = asyncio.create_task(client.convert(pdf))
                await asyncio.sleep(0.05)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            doc = await asyncio.wait_for(client.convert(pdf), 30)
    assert doc.ok and len(doc.pages) == 16


async def test_closing_an_async_client_under_its_calls_lets_them_end_as_documents(tmp_path: Path) -> None:
    """``aclose()`` while calls run: each ends as it did with a pool of its own -- a document
    whose unfinished pages say the client closed -- not with the shared pool's bare
    ``RuntimeError``; the pool closes when the last of them ends."""
    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "long.pdf", [[f"page {k}"] for k in range(30)])
    with OpenAISimulator(plan=FaultPlan(latency_s=(0.05, 0.1), slots=64)) as sim:
        client = ocrclient.AsyncClient("openai", concurrency=2, **sim_settings(sim))
        calls = [asyncio.create_task(client.convert(pdf)) for _ in range(3)]
        await asyncio.sleep(0.8)
        pool = client._render_pool
        await client.aclose()
        ended = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(doc, ocrclient.Document) for doc in ended), ended
    assert all(len(doc.pages) == 30 for doc in ended if isinstance(doc, ocrclient.Document))
    deadline = time.monotonic() + 10
    while pool is not None and not pool.closed and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert pool is not None and pool.closed


@pytest.mark.parametrize("how", ["relative path", "symlink"])
async def test_a_long_lived_client_reads_the_file_each_call_names(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same name given to two calls of one client, naming another file by then (a relative
    path from another working directory, a symlink pointed elsewhere): each call reads the
    file it named.  (The client's pool remembered each path as resolved by the first call, and
    the second call sent the first file's pages.)"""
    from .pdfgen import text_pdf

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = text_pdf(tmp_path / "a" / "doc.pdf", [["Alpha first"]])
    two = text_pdf(tmp_path / "b" / "doc.pdf", [["Bravo second"]])
    link = tmp_path / "latest.pdf"
    with OpenAISimulator(plan=FaultPlan(latency_s=(0.0, 0.0), slots=8)) as sim:
        async with ocrclient.AsyncClient("openai", **sim_settings(sim)) as client:
            got = []
            for target in (one, two):
                if how == "relative path":
                    monkeypatch.chdir(target.parent)
                    name: Path = Path("doc.pdf")
                else:
                    link.unlink(missing_ok=True)
                    link.symlink_to(target)
                    name = link
                got.append((await client.convert(name)).markdown)
    alone = []
    for target in (one, two):  # what each file gives on a client of its own
        with OpenAISimulator(plan=FaultPlan(latency_s=(0.0, 0.0), slots=8)) as sim:
            alone.append((await ocrclient.aconvert(target, backend="openai", **sim_settings(sim))).markdown)
    assert got == alone and alone[0] != alone[1]


async def test_bytes_of_calls_cancelled_part_way_leave_no_file_once_a_call_ends() -> None:
    """A call given bytes and cancelled while its render thread is still writing them to a
    file for the workers: that file, written after the call let go of it, goes when the next
    call ends (not when the client closes: a service's cancelled uploads filled its temporary
    folder)."""
    from PIL import Image as PILImage

    def upload(seed: int) -> bytes:
        img = PILImage.effect_noise((1400, 1400), 60 + seed).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=0)
        return buf.getvalue()

    with OpenAISimulator(plan=FaultPlan(latency_s=(0.0, 0.01), slots=64)) as sim:
        async with ocrclient.AsyncClient("openai", **sim_settings(sim)) as client:
            for i in range(12):
                task = asyncio.create_task(client.convert(upload(i)))
                await asyncio.sleep(0.01 + (i % 4) * 0.01)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await asyncio.sleep(0.5)  # (the render threads' late writes land)
            doc = await client.convert(png("the last call"))
            pool = client._render_pool
            assert pool is not None and doc.ok
            left = list(Path(pool._tmpdir).iterdir()) if pool._tmpdir else []
    assert left == [], left


def test_one_client_shared_by_threads_keeps_its_limit() -> None:
    """A sync Client called from 12 threads at once: one loop, one limit."""
    plan = FaultPlan(latency_s=(0.05, 0.05), slots=64)
    docs: list[ocrclient.Document] = []
    with OpenAISimulator(plan=plan) as sim, ocrclient.Client("openai", concurrency=3, **sim_settings(sim)) as c:
        threads = [threading.Thread(target=lambda i=i: docs.append(c.convert(png(f"T {i}")))) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # page requests served at once: max_concurrency also counts the GET /v1/models the run
        # reads beside its first pages (it made this test fail 1 run in 15 on a loaded machine)
        assert sim.max_active == 3, sim.max_active
    assert len(docs) == 12 and all(d.ok for d in docs)


def test_sync_iterators_convert_many_and_stream_pages(tmp_path: Path) -> None:
    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "three.pdf", [["one"], ["two"], ["three"]])
    with OpenAISimulator() as sim, ocrclient.Client("openai", **sim_settings(sim)) as c:
        results = list(c.convert_many([png("a"), pdf, png("b")]))
        pages = sorted(p.page for p in c.stream_pages(pdf))
        early = c.convert_many([pdf, pdf])
        first = next(early)
        early.close()  # stops the run; the client stays usable
        again = c.convert(png("c"))
    assert [len(r.document.pages) for r in results] == [1, 3, 1]
    assert isinstance(results[1], ocrclient.ConvertResult) and results[1].source.name == str(pdf)
    assert pages == [1, 2, 3] and len(first.document.pages) == 3 and again.ok
    with OpenAISimulator() as sim:
        shortcut = list(ocrclient.convert_many([png("x"), png("y")], backend="openai", **sim_settings(sim)))
        streamed = list(ocrclient.stream_pages(pdf, backend="openai", pages="2-3", **sim_settings(sim)))
    assert [r.document.ok for r in shortcut] == [True, True]
    assert sorted(p.page for p in streamed) == [2, 3]


# -- timeouts ----------------------------------------------------------------------------------


def test_timeout_is_the_attempt_timeout() -> None:
    with OpenAISimulator(plan=FaultPlan(latency_s=(3.0, 3.0))) as sim:
        c = ocrclient.Client("openai", timeout=0.5, max_attempts=1, **sim_settings(sim),
                             scheduler_options={"timeout_grace_s": 0.2})  # fmt: skip
        with c:
            assert c.backend.config.attempt_timeout_s == 0.5
            doc = c.convert(png("slow"))
    assert doc.pages[0].status == "failed" and doc.pages[0].error is not None
    assert doc.pages[0].error.cause == "timeout", doc.pages[0].error
    with pytest.raises(ocrclient.ConfigError, match="same setting"):  # (a bad setting, as every other)
        ocrclient.Client("openai", timeout=5, attempt_timeout_s=6)
    with pytest.raises(ocrclient.ConfigError, match="timeout"):
        ocrclient.Client("openai", timeout=0)


def test_a_loaded_backend_takes_only_scheduler_settings() -> None:
    with OpenAISimulator() as sim:
        with ocrclient.load_backend("openai", base_url=sim.base_url, api_key=sim.api_key, model=sim.model) as be:
            with ocrclient.Client(be, timeout=30, cache=False) as c:
                assert c.convert(png("x")).ok
            assert not be.transport._http.is_closed  # type: ignore[attr-defined]  # yours to close
            with pytest.raises(ocrclient.UsageError, match="endpoint_id"):
                ocrclient.Client(be, endpoint_id="other")
        assert be.transport._http.is_closed  # type: ignore[attr-defined]  # plain `with` closed it


# -- blocking calls where an event loop runs -----------------------------------------------------


def test_blocking_api_inside_asyncio_run_names_the_async_twin(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(png("x"))

    async def main() -> list[str]:
        messages = []
        calls: list[tuple[Callable[[], object], str]] = [
            (lambda: ocrclient.convert(image, cache=False), r"await ocrclient\.aconvert"),
            (lambda: ocrclient.convert_many([image], cache=False), r"ocrclient\.aconvert_many"),
            (lambda: ocrclient.stream_pages(image, cache=False), r"ocrclient\.astream_pages"),
        ]
        with ocrclient.Client("local", cache=False) as c:
            calls += [
                (lambda: c.convert(image), r"AsyncClient\.convert"),
                (lambda: c.convert_many([image]), r"AsyncClient\.convert_many"),
                (lambda: c.stream_pages(image), r"AsyncClient\.stream_pages"),
            ]
            for call, twin in calls:
                with pytest.raises(ocrclient.UsageError, match=twin) as err:
                    call()
                messages.append(str(err.value))
        be = ocrclient.load_backend("local")
        with pytest.raises(ocrclient.UsageError, match=r"await backend\.aclose"):
            be.close()
        await be.aclose()
        return messages

    messages = asyncio.run(main())
    assert all("event loop is running" in m for m in messages), messages


def test_blocking_convert_in_a_fastapi_async_handler_raises_the_clear_error(tmp_path: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    image = tmp_path / "a.png"
    image.write_bytes(png("x"))
    app = FastAPI()

    @app.get("/wrong")
    async def wrong() -> dict[str, str]:
        try:
            ocrclient.convert(image, cache=False)
        except ocrclient.UsageError as exc:
            return {"error": str(exc)}
        return {"error": ""}

    reply = TestClient(app).get("/wrong").json()
    assert "await ocrclient.aconvert" in reply["error"], reply


def test_a_client_callback_calling_the_client_raises_instead_of_hanging() -> None:
    """An ``on_event`` callback runs on the client's own loop: a blocking call from there would
    wait for itself forever, so it raises (also in a notebook kernel)."""
    errors: list[BaseException] = []
    with OpenAISimulator() as sim, ocrclient.Client("openai", **sim_settings(sim)) as c:

        def on_event(event: ocrclient.Event) -> None:
            if isinstance(event, ocrclient.PageDone) and not errors:
                try:
                    c.convert(png("inner"))
                except ocrclient.UsageError as exc:
                    errors.append(exc)

        assert c.convert(png("outer"), on_event=on_event).ok
    assert len(errors) == 1


async def test_an_async_client_belongs_to_one_loop() -> None:
    with OpenAISimulator() as sim:
        client = ocrclient.AsyncClient("openai", **sim_settings(sim))
        assert (await client.convert(png("a"))).ok

        def elsewhere() -> None:
            with pytest.raises(ocrclient.UsageError, match="event loop it was first used in"):
                asyncio.run(client.convert(png("b")))

        await asyncio.to_thread(elsewhere)
        await client.aclose()


@pytest.mark.parametrize("call", ["convert", "convert_many", "stream_pages"])
def test_closing_a_client_under_a_running_call_is_an_ocrclient_error(call: str) -> None:
    """``Client.close()`` from another thread while a call runs: the call ends with
    ``CancelledRunError`` (one of ``ocrclient.errors``), not asyncio's ``CancelledError``, a
    ``BaseException`` that got past ``except Exception``, nor (the backend closed under it) as
    a document of failed pages: the calls are cancelled before the backend closes (with the
    render pool shared by the client's calls, a call ended that way 1 run in 5)."""
    plan = FaultPlan(latency_s=(2.0, 2.0), slots=4)
    caught: list[BaseException] = []
    with OpenAISimulator(plan=plan) as sim:
        c = ocrclient.Client("openai", **sim_settings(sim))

        def work() -> None:
            try:
                if call == "convert":
                    c.convert(png("slow page"))
                else:
                    list(getattr(c, call)(png("slow page")))
            except BaseException as exc:  # (what reaches the caller is the point)
                caught.append(exc)

        worker = threading.Thread(target=work)
        worker.start()
        deadline = time.monotonic() + 10
        while not sim.requests_by_key and time.monotonic() < deadline:
            time.sleep(0.02)
        c.close()
        worker.join(30)
    assert len(caught) == 1 and isinstance(caught[0], ocrclient.errors.CancelledRunError), caught


def test_a_client_closed_while_other_threads_call_it_says_so_to_each_and_nothing_else() -> None:
    """The whole kind: a ``Client`` closed while six threads keep calling each of its blocking
    calls (``convert``, ``convert_many``, ``stream_pages``) in a loop.  Each call ends as running
    when the client closed (``CancelledRunError``) or refused as closed (``UsageError``, "this
    client is closed"), whichever moment of the close it met, and nothing is printed.  Before, a
    call that met the close half-way was told "this AsyncClient is closed" (a class the caller
    never made) or "the 'openai' Backend is closed: load another" (a backend the client owned),
    and Python warned on stderr of a coroutine never awaited (a call cancelled before its first
    step, or queued on the loop as it ended)."""
    import gc
    import warnings

    image = png("x")
    seen: dict[str, int] = {}
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        for round_ in range(8):
            with OpenAISimulator(plan=FaultPlan(latency_s=(0.01, 0.05), slots=8)) as sim:
                c = ocrclient.Client("openai", **sim_settings(sim))
                calls: list[Callable[[], object]] = [
                    lambda c=c: c.convert(image),
                    lambda c=c: list(c.convert_many([image])),
                    lambda c=c: list(c.stream_pages(image)),
                ]

                def work(call: Callable[[], object]) -> None:
                    while True:
                        try:
                            call()
                        except BaseException as exc:  # (what reaches the caller is the point)
                            said = f"{type(exc).__name__}: {exc}"
                            seen[said] = seen.get(said, 0) + 1
                            if isinstance(exc, ocrclient.UsageError) or not isinstance(exc, ocrclient.OcrError):
                                return

                threads = [threading.Thread(target=work, args=(calls[i % 3],)) for i in range(6)]
                for t in threads:
                    t.start()
                time.sleep(0.2 + 0.02 * round_)  # the close falls at a different moment each round
                c.close()
                for t in threads:
                    t.join(30)
                assert not any(t.is_alive() for t in threads)
        gc.collect()
    assert set(seen) <= {"UsageError: this client is closed",
                         "CancelledRunError: the client was closed while this call was running"}, seen  # fmt: skip
    assert seen.get("UsageError: this client is closed") == 6 * 8, seen  # every thread told, once
    assert not [str(w.message) for w in warned if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("how", ["stream_pages", "convert_many"])
def test_closing_a_client_with_an_iteration_left_unfinished_is_quiet(how: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An iterator taken from a Client and left unfinished, then ``close()``: the loop's shutdown
    closed every generator of the run at once, and each inner one, already being closed by the
    one around it, logged "aclose(): asynchronous generator is already running" (three
    tracebacks on stderr).  The client now closes each iteration left, outermost first."""
    import logging

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "four.pdf", [[f"page {i}"] for i in range(4)])
    plan = FaultPlan(latency_s=(0.3, 0.6), slots=2)
    with caplog.at_level(logging.ERROR, logger="asyncio"), OpenAISimulator(plan=plan) as sim:
        c = ocrclient.Client("openai", **sim_settings(sim))
        items = c.stream_pages(pdf) if how == "stream_pages" else c.convert_many([pdf, png("other")])
        assert next(items) is not None
        c.close()
        del items
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def test_an_on_event_callback_that_raises_is_logged_once_and_loses_no_page(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A callback that raises (a blocking call inside it raises ``UsageError``, which the docs
    promise) loses no page, and the first error is logged with its type: it was swallowed
    without a word, so the user never saw the ``UsageError`` meant for them."""
    import logging

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "three.pdf", [[f"page {i}"] for i in range(3)])
    seen: list[object] = []

    def broken(event: object) -> None:
        seen.append(event)
        ocrclient.convert(png("inside"), backend="openai")  # a blocking call on the run's loop

    with caplog.at_level(logging.WARNING, logger="ocrclient.events"), OpenAISimulator() as sim:
        doc = asyncio.run(ocrclient.aconvert(pdf, backend="openai", on_event=broken, **sim_settings(sim)))
    assert doc.ok and len(doc.pages) == 3 and len(seen) > 3
    said = [r.getMessage() for r in caplog.records if r.name == "ocrclient.events"]
    assert len(said) == 1 and "UsageError" in said[0], said


@pytest.mark.parametrize("name", ["local", "openai"])
def test_every_call_refuses_a_closed_backend(name: str) -> None:
    """A closed Backend's transport has let its connections go: a run through it failed every
    page as cancelled (remote) or went on as if open (local); now each way in raises UsageError."""
    settings = {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key": "k"} if name == "openai" else {}
    be = ocrclient.load_backend(name, **settings)
    client = ocrclient.Client(backend=be, cache=False)  # made while the backend was open
    be.close()
    assert be.closed
    image = png("closed")
    calls = {
        "convert": lambda: ocrclient.convert(image, backend=be, cache=False),
        "convert_many": lambda: list(ocrclient.convert_many([image], backend=be, cache=False)),
        "stream_pages": lambda: list(ocrclient.stream_pages(image, backend=be, cache=False)),
        "aconvert": lambda: asyncio.run(ocrclient.aconvert(image, backend=be, cache=False)),
        "Client()": lambda: ocrclient.Client(backend=be),
        "AsyncClient()": lambda: ocrclient.AsyncClient(backend=be),
        "a client made before": lambda: client.convert(image),
    }
    for what, call in calls.items():
        with pytest.raises(ocrclient.UsageError, match="Backend is closed"):
            call()
            pytest.fail(what)
    client.close()


@pytest.mark.parametrize("call", ["convert", "convert_many", "stream_pages", "close", "with"])
def test_every_blocking_client_call_from_its_own_callback_raises_and_the_client_lives_on(call: str) -> None:
    """The whole kind: each blocking method of a Client, called from an ``on_event`` callback of
    one of its own runs, raises UsageError; the run finishes and the client stays usable.
    ``close()`` there froze the process for good (Ctrl-C did not end it)."""
    errors: list[BaseException] = []
    with OpenAISimulator() as sim, ocrclient.Client("openai", **sim_settings(sim)) as c:
        calls = {
            "convert": lambda: c.convert(png("inner")),
            "convert_many": lambda: list(c.convert_many([png("inner")])),
            "stream_pages": lambda: list(c.stream_pages(png("inner"))),
            "close": c.close,
            "with": lambda: c.__exit__(None, None, None),
        }

        def on_event(event: ocrclient.Event) -> None:
            if isinstance(event, ocrclient.PageDone) and not errors:
                try:
                    calls[call]()
                except ocrclient.UsageError as exc:
                    errors.append(exc)

        assert c.convert(png("outer"), on_event=on_event).ok
        assert len(errors) == 1, errors
        assert c.convert(png("after")).ok  # still open, still working


def test_a_client_used_before_a_fork_refuses_in_the_child() -> None:
    """A Client used in the parent, then called in a forked child (gunicorn --preload, Celery
    prefork): the child waited forever on a loop thread that does not exist there."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with OpenAISimulator() as sim, ocrclient.Client("openai", **sim_settings(sim)) as c:
        assert c.convert(png("parent")).ok
        q = ctx.Queue()

        def child() -> None:
            try:
                c.convert(png("child"))
                q.put("returned")
            except ocrclient.UsageError as exc:
                q.put(f"UsageError: {exc}")

        p = ctx.Process(target=child)
        p.start()
        p.join(30)
        alive = p.is_alive()
        if alive:
            p.kill()
        assert not alive, "the child hung"
        got = q.get(timeout=5)
        assert got.startswith("UsageError") and "forked" in got, got
        assert c.convert(png("parent again")).ok


class SendTimes:
    """The moments the scheduler handed a request to the OpenAI transport (``send`` entered)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from ocrclient.transports.openai import OpenAITransport

        self.times: list[float] = []
        real = OpenAITransport.send

        async def send(transport: OpenAITransport, request: Any) -> Any:
            self.times.append(time.monotonic())
            return await real(transport, request)

        monkeypatch.setattr(OpenAITransport, "send", send)


def _nothing_goes_on(sim: OpenAISimulator, sends: SendTimes, ended_at: float) -> None:
    """No request was handed to the transport after the callback ended the program (one
    written before may still reach the simulator a moment later: not a request sent after),
    and none goes on in the background once the call has raised."""
    late = [round(t - ended_at, 4) for t in sends.times if t > ended_at]
    assert not late, f"requests sent after the callback ended the program (s after): {late}"
    assert sim.wait_quiet(0.3), "requests went on after the call raised"
    sent = sim.requests["POST /v1/chat/completions"]
    time.sleep(0.3)
    assert sim.requests["POST /v1/chat/completions"] == sent, "requests went on after the call raised"
    assert sent <= len(sends.times)


@pytest.mark.parametrize("ending", [SystemExit(3), KeyboardInterrupt()], ids=["sys.exit(3)", "KeyboardInterrupt"])
@pytest.mark.parametrize("call", ["Client.convert", "Client.convert_many", "Client.stream_pages", "convert",
                                  "convert_many", "stream_pages", "aconvert", "AsyncClient.convert"])  # fmt: skip
def test_a_callback_that_ends_the_program_stops_the_run_and_is_raised_to_the_caller(
    call: str, ending: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sys.exit(3)`` or a ``KeyboardInterrupt`` raised in ``on_event``, through every way in:
    the caller meets that exception (its code kept), no request is sent after it, and the client
    and the process's shared render threads keep working.  It ended the blocking client's loop
    thread: the call raised CancelledRunError, the next call hung forever (sys.exit) or raised
    "Executor shutdown has been called", and so did every later ``ocrclient.convert``."""
    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "many.pdf", [[f"page {i}"] for i in range(12)])
    ended: list[float] = []

    def on_event(event: ocrclient.Event) -> None:
        if isinstance(event, ocrclient.PageDone):
            ended.append(time.monotonic())
            raise ending

    with OpenAISimulator(plan=FaultPlan(latency_s=0.05)) as sim, ocrclient.Client("openai", **sim_settings(sim), concurrency=2) as c:
        settings = {"backend": "openai", "concurrency": 2, **sim_settings(sim)}

        async def in_async_client() -> Any:
            async with ocrclient.AsyncClient(**settings) as ac:
                return await ac.convert(pdf, on_event=on_event)

        calls: dict[str, Callable[[], Any]] = {
            "Client.convert": lambda: c.convert(pdf, on_event=on_event),
            "Client.convert_many": lambda: list(c.convert_many([pdf], on_event=on_event)),
            "Client.stream_pages": lambda: list(c.stream_pages(pdf, on_event=on_event)),
            "convert": lambda: ocrclient.convert(pdf, on_event=on_event, **settings),
            "convert_many": lambda: list(ocrclient.convert_many([pdf], on_event=on_event, **settings)),
            "stream_pages": lambda: list(ocrclient.stream_pages(pdf, on_event=on_event, **settings)),
            "aconvert": lambda: asyncio.run(ocrclient.aconvert(pdf, on_event=on_event, **settings)),
            "AsyncClient.convert": lambda: asyncio.run(in_async_client()),
        }
        sends = SendTimes(monkeypatch)
        with pytest.raises(type(ending)) as raised:
            calls[call]()
        if isinstance(ending, SystemExit):
            assert raised.value.code == 3
        assert len(ended) == 1  # (no event is delivered after it)
        _nothing_goes_on(sim, sends, ended[0])
        assert len(sends.times) < 12, len(sends.times)
        assert c.convert(png("after")).ok  # the client lives on
        assert ocrclient.convert(png("after"), **settings).ok  # and so do the shared render threads


@pytest.mark.parametrize("kind", ["PageStarted", "PageRetried", "PageDone", "PageFailed", "DocumentDone"])
def test_a_callback_that_ends_the_program_on_any_event_sends_nothing_after(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole kind: ``sys.exit`` on each kind of event (a retry and a failure drawn by the
    simulator's faults, two documents for a ``DocumentDone`` before pages are left to send).
    On ``PageStarted`` the very request that event announced was sent anyway."""
    from .pdfgen import text_pdf

    pdfs = [text_pdf(tmp_path / f"d{d}.pdf", [[f"doc {d} page {i}"] for i in range(6)]) for d in range(2)]
    ended: list[float] = []

    def on_event(event: ocrclient.Event) -> None:
        if type(event).__name__ == kind:
            ended.append(time.monotonic())
            raise SystemExit(3)

    rates = {"http_500": 0.5} if kind in ("PageRetried", "PageFailed") else {}
    plan = FaultPlan(latency_s=0.05, rates=rates, seed=7)
    with OpenAISimulator(plan=plan) as sim:
        settings = {"backend": "openai", "concurrency": 2, "cache": False, "max_attempts": 1 if kind == "PageFailed" else 3,
                    "scheduler_options": {"backoff_initial_s": 0.01, "backoff_max_s": 0.02}, **sim_settings(sim)}  # fmt: skip
        sends = SendTimes(monkeypatch)
        with pytest.raises(SystemExit):
            list(ocrclient.convert_many(pdfs, on_event=on_event, **settings))
        assert len(ended) == 1
        _nothing_goes_on(sim, sends, ended[0])
        assert len(sends.times) < 12
