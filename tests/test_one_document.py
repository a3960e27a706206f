"""The calls that take one document (``convert``, ``stream_pages``, their async twins and the
clients' methods) refuse, before anything is opened or sent, every input that does not name
exactly one: a folder or pattern naming several (``convert("scans/")`` returned the first
document and dropped the others without a word; ``stream_pages`` raised a bare ``ValueError``),
a list, an empty path (it walked the working folder), a value that is no path.  And a run that
stops (an auth error) hands back every page of the selection from each entry point: the
streaming one lost the pages it had not sent."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

import ocrclient
from ocrclient.testing import FaultPlan, OpenAISimulator

from .pdfgen import text_pdf


def _settings(sim: OpenAISimulator) -> dict[str, Any]:
    return {"backend": "openai", "base_url": sim.base_url, "api_key": sim.api_key, "model": sim.model, "cache": False}


def _png(text: str) -> bytes:
    img = Image.new("RGB", (320, 80), "white")
    ImageDraw.Draw(img).text((10, 20), text, fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def _alist(agen: Any) -> list[Any]:
    return [x async for x in agen]


def _entry_points(settings: dict[str, Any]) -> dict[str, Callable[[Any], Any]]:
    """Each call that takes one document, as ``f(source)`` run to its end."""
    backend = settings.pop("backend")

    def client_call(method: str) -> Callable[[Any], Any]:
        def call(source: Any) -> Any:
            with ocrclient.Client(backend, **settings) as c:
                result = getattr(c, method)(source)
                return list(result) if method == "stream_pages" else result

        return call

    async def async_client(source: Any, method: str) -> Any:
        async with ocrclient.AsyncClient(backend, **settings) as c:
            return await (_alist(c.stream_pages(source)) if method == "stream_pages" else c.convert(source))

    return {
        "convert": lambda s: ocrclient.convert(s, backend=backend, **settings),
        "stream_pages": lambda s: list(ocrclient.stream_pages(s, backend=backend, **settings)),
        "aconvert": lambda s: asyncio.run(ocrclient.aconvert(s, backend=backend, **settings)),
        "astream_pages": lambda s: asyncio.run(_alist(ocrclient.astream_pages(s, backend=backend, **settings))),
        "Client.convert": client_call("convert"),
        "Client.stream_pages": client_call("stream_pages"),
        "AsyncClient.convert": lambda s: asyncio.run(async_client(s, "convert")),
        "AsyncClient.stream_pages": lambda s: asyncio.run(async_client(s, "stream_pages")),
    }


ENTRY_POINTS = list(_entry_points({"backend": "openai"}))


@pytest.fixture(scope="module")
def sim() -> Any:
    with OpenAISimulator() as s:
        yield s


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    (tmp_path / "two" / "a.png").write_bytes(_png("first"))
    (tmp_path / "two" / "b.png").write_bytes(_png("second"))
    (tmp_path / "one" / "c.png").write_bytes(_png("only"))
    return tmp_path


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_an_input_naming_other_than_one_document_is_refused_before_anything_is_sent(
    entry: str, sim: OpenAISimulator, folders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folders / "two")  # an empty path walked the working folder
    call = _entry_points(_settings(sim))[entry]
    before = dict(sim.requests)
    refused = {
        str(folders / "two"): "names 2 documents; this call takes one",
        str(folders / "two" / "*.png"): "names 2 documents; this call takes one",
        "": "an empty path names no document",
        "   ": "an empty path names no document",
    }
    for source, message in refused.items():
        with pytest.raises(ocrclient.InputError, match=message):
            call(source)
    for source in ([str(folders / "one" / "c.png")], (b"x",)):
        with pytest.raises(ocrclient.InputError, match="takes one document, got a list of 1: use convert_many"):
            call(source)
    for source in (123, None, 1.5):
        with pytest.raises(ocrclient.InputError, match="an input is a path or the document's bytes"):
            call(source)
    assert dict(sim.requests) == before, "nothing is sent for a refused input"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_folder_or_pattern_naming_one_document_is_that_document(entry: str, sim: OpenAISimulator, folders: Path) -> None:
    call = _entry_points(_settings(sim))[entry]
    for source in (folders / "one", str(folders / "one" / "*.png")):
        got = call(source)
        pages = got if isinstance(got, list) else got.pages
        assert [p.page for p in pages] == [1] and pages[0].status == "ok"


def test_the_lists_call_still_takes_folders_and_patterns(sim: OpenAISimulator, folders: Path) -> None:
    settings = _settings(sim)
    results = list(ocrclient.convert_many([folders / "two", str(folders / "one" / "*.png")], **settings))
    assert [Path(r.source.name).name for r in results] == ["a.png", "b.png", "c.png"]


def test_every_entry_point_hands_back_every_page_of_a_stopped_run(tmp_path: Path) -> None:
    """A 401 stops the run (RunAborted): the document it hands back holds every selected page,
    the ones never sent failed, from each entry point alike."""
    pdf = text_pdf(tmp_path / "big.pdf", [[f"page {i}"] for i in range(1, 13)])
    plan = FaultPlan(seed=1, rates={"http_401": 0.3}, latency_s=(0.02, 0.05))
    with OpenAISimulator(plan=plan) as sim:
        settings = {**_settings(sim), "concurrency": 2}
        backend = settings.pop("backend")
        calls: dict[str, Callable[[], Any]] = {
            "convert": lambda: ocrclient.convert(pdf, backend=backend, pages="2-11", **settings),
            "convert_many": lambda: list(ocrclient.convert_many([pdf], backend=backend, pages="2-11", **settings)),
            "stream_pages": lambda: list(ocrclient.stream_pages(pdf, backend=backend, pages="2-11", **settings)),
        }
        for name, call in calls.items():
            with pytest.raises(ocrclient.RunAborted) as info:
                call()
            (doc,) = info.value.documents
            assert [p.page for p in doc.pages] == list(range(2, 12)), name
            assert any(p.status == "failed" for p in doc.pages), name
            assert all(p.error is not None for p in doc.pages if p.status == "failed"), name


class _Fspath:
    """A path-like object that is not a ``pathlib.Path`` (pytest's ``tmpdir`` gives one)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_kind_of_one_document_is_taken(entry: str, sim: OpenAISimulator, folders: Path) -> None:
    """Bytes in any buffer type, a str, a Path or any path-like object: the calls that take one
    document took bytearray and memoryview before they checked their input, and refused a
    path-like that is no Path."""
    call = _entry_points(_settings(sim))[entry]
    data = (folders / "one" / "c.png").read_bytes()
    for source in (data, bytearray(data), memoryview(data), str(folders / "one" / "c.png"),
                   folders / "one" / "c.png", _Fspath(folders / "one" / "c.png")):  # fmt: skip
        got = call(source)
        pages = got if isinstance(got, list) else got.pages
        assert [p.status for p in pages] == ["ok"], type(source).__name__


def test_the_lists_call_and_the_cache_take_path_like_objects(sim: OpenAISimulator, folders: Path, tmp_path: Path) -> None:
    settings = {**_settings(sim), "cache": _Fspath(tmp_path / "cache")}
    data = (folders / "one" / "c.png").read_bytes()
    results = list(ocrclient.convert_many([_Fspath(folders / "two"), bytearray(data)], **settings))
    assert [r.document.ok for r in results] == [True, True, True]
    assert (tmp_path / "cache").is_dir()
    with pytest.raises(ocrclient.ConfigError, match="cache takes"):
        ocrclient.convert(data, **{**settings, "cache": ""})
