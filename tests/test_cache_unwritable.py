"""A page cache that cannot be written costs pages their entries, never the pages or the run.

The whole kind: every way a cache directory on disk can refuse a write -- the directory is a
file, its ``pages`` folder is a file, every shard folder is a file, each entry's path is a
directory, the directory is read-only -- and a cache whose ``put`` fails for a reason of its
own (a defect, a subclass).  Before, any of them raised out of the page's task: the page never
reached the run's queue and the run waited for it forever.  Now every page comes back (the
first kinds ok and uncached, with one warning per cache; the last failed with its error), and
a run never waits for a page whose task died.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.cache import PageCache
from ocrclient.document import Document, Page
from ocrclient.testing import OpenAISimulator

from .pdfgen import text_pdf

PAGES = 4
KINDS = ["dir-is-file", "pages-is-file", "shards-are-files", "entries-are-dirs", "read-only"]


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_pdf(tmp_path_factory.mktemp("unwritable") / "d.pdf", [[f"page {i}"] for i in range(PAGES)])


@pytest.fixture(scope="module")
def sim() -> Any:
    with OpenAISimulator(model="sim/ocr-model") as s:
        yield s


def _convert(pdf: Path, sim: Any, cache: Any) -> Document:
    """One conversion through the simulator; a run that waits for a page forever fails here."""
    run = ocrclient.aconvert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key, model="sim/ocr-model",
                             render={"dpi": 40}, cache=cache)  # fmt: skip
    return asyncio.run(asyncio.wait_for(run, 60))


def _spoil(kind: str, root: Path, pdf: Path, sim: Any) -> None:
    """Make the cache directory ``root`` refuse writes in the way ``kind`` names."""
    if kind == "dir-is-file":
        root.write_text("not a directory")
    elif kind == "pages-is-file":
        root.mkdir()
        (root / "pages").write_text("not a directory")
    elif kind == "shards-are-files":
        (root / "pages").mkdir(parents=True)
        for i in range(256):
            (root / "pages" / f"{i:02x}").write_text("not a directory")
    elif kind == "entries-are-dirs":
        _convert(pdf, sim, root)  # the entries of exactly these pages, then each made a folder
        entries = sorted((root / "pages").glob("*/*.json"))
        assert len(entries) == PAGES
        for entry in entries:
            entry.unlink()
            entry.mkdir()
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        root.mkdir()
        root.chmod(0o500)


@pytest.mark.parametrize("kind", KINDS)
def test_a_cache_that_cannot_be_written_costs_no_page(kind: str, pdf: Path, sim: Any, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    root = tmp_path / "cache"
    _spoil(kind, root, pdf, sim)
    with caplog.at_level(logging.WARNING, logger="ocrclient.cache"):
        doc = _convert(pdf, sim, root)
    assert [p.status for p in doc.pages] == ["ok"] * PAGES
    assert doc.stats.cached == 0
    warned = [r.getMessage() for r in caplog.records if r.name == "ocrclient.cache"]
    assert len(warned) == 1 and "cannot be written" in warned[0] and str(root) in warned[0], warned
    again = _convert(pdf, sim, root)  # nothing stored, nothing damaged: converted again, whole
    assert [p.status for p in again.pages] == ["ok"] * PAGES and again.stats.cached == 0


SECRET = "sk-live-c4f3b2a1d0e9f8a7"


class _BrokenCache(PageCache):
    def put(self, key: str, page: Page) -> None:
        raise RuntimeError(f"a defect in the cache (GET https://host/?key={SECRET} failed)")


def test_a_page_whose_task_dies_fails_and_the_run_ends(pdf: Path, sim: Any, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """...with its error, secrets masked in the page and in the log line, as everywhere."""
    from ocrclient.secrets import register_secret

    register_secret(SECRET)
    with caplog.at_level(logging.ERROR, logger="ocrclient.scheduler"):
        doc = _convert(pdf, sim, _BrokenCache(tmp_path / "cache"))
    assert [p.status for p in doc.pages] == ["failed"] * PAGES
    assert {p.error.cause for p in doc.pages if p.error} == {"RuntimeError"}
    assert all("a defect in the cache" in p.error.message for p in doc.pages if p.error)
    assert SECRET not in doc.model_dump_json() and SECRET not in caplog.text
    assert len([r for r in caplog.records if r.name == "ocrclient.scheduler"]) == PAGES
