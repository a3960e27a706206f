"""``--keep-furniture`` toggled on a rerun sends nothing again.

``ocr convert doc.pdf --backend runpod-chandra -o out`` then the same with ``--keep-furniture``
sent every page to the GPU again: the page cache keyed a page on ``include_headers_footers``,
because the parse read it (the cached page's markdown left the furniture out).  The option
changes nothing sent: it is an *output* option (a dialect's ``OUTPUT_OPTIONS``).  Every parse
now gives the markdown without the furniture and, beside it, with it
(``PageContent.furniture_markdown``); the cache stores both, the run picks one, the JSON types
furniture blocks ``page_header`` / ``page_footer`` either way.

The kind, for every dialect that has an output option (Chandra over RunPod, dots.ocr over an
OpenAI-compatible server, the embedded ``local`` engine): a run, then reruns with the option
toggled on and back off, send no page request and write what a fresh run with that option
writes (the markdown byte for byte, the JSON's pages but for what says how they were had);
and no output option changes the request a dialect builds, nor what its parse gives.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ocrclient.cache import PageCache, entry_page, keeps_furniture, page_key, settings_digest
from ocrclient.cli import app
from ocrclient.config import BackendConfig
from ocrclient.document import Page
from ocrclient.models import Attempt, ModelReply
from ocrclient.registry import DIALECTS, dialect_class, load_dialect
from ocrclient.testing import DialectResponder, OpenAISimulator, RunPodSimulator

from .pdfgen import PdfPage, write_pdf
from .test_dialect_common import REPLIES, make_page

pytestmark = pytest.mark.timeout(180)

PAGES = 3
HEAD = "The Journal of Careful Tests"
BODY = "The survey team collected soil cores at twelve sites along the river"

#: what is on every page, for the simulated models: a running head, body text, a page number
TRUTH = [
    ("page_header", HEAD, (0.1, 0.02, 0.9, 0.05)),
    ("section_header", "Field notes", (0.1, 0.1, 0.9, 0.14)),
    ("text", BODY, (0.1, 0.2, 0.9, 0.4)),
    ("page_footer", "- 7 -", (0.45, 0.95, 0.55, 0.98)),
]


def _pdf(path: Path) -> Path:
    """Pages of body text under a running head, over a page number (the local engine's
    furniture rules find both from the text layer)."""
    pages = []
    for n in range(1, PAGES + 1):
        body = [(72.0, 690.0 - 15 * k, 11.0, f"{BODY} ({n}.{k}).") for k in range(30)]
        pages.append(PdfPage(media=(0, 0, 612, 792), texts=[(72.0, 750.0, 9.0, HEAD), *body, (300.0, 40.0, 9.0, str(n))]))
    return write_pdf(path, pages)


@contextmanager
def _chandra() -> Iterator[tuple[list[str], dict[str, str], Callable[[], int]]]:
    with RunPodSimulator(api_key="rp-furniture", responder=DialectResponder("chandra", truth=lambda image: TRUTH)) as sim:
        env = {"RUNPOD_API_KEY": "rp-furniture", "RUNPOD_CHANDRA_ENDPOINT_ID": str(sim.endpoint_id),
               "RUNPOD_BASE_URL": sim.base_url}  # fmt: skip
        yield ["--backend", "runpod-chandra", "--dpi", "50"], env, lambda: sim.requests["run"] + sim.requests["runsync"]


@contextmanager
def _dots() -> Iterator[tuple[list[str], dict[str, str], Callable[[], int]]]:
    model = "rednote-hilab/dots.ocr"
    with OpenAISimulator(responder=DialectResponder("dots", truth=lambda image: TRUTH), model=model) as sim:
        argv = ["--backend", "openai", "--dialect", "dots", "--model", model, "--base-url", sim.base_url, "--dpi", "50"]
        yield argv, {"OCRCLIENT_API_KEY": str(sim.api_key)}, lambda: sim.requests["POST /v1/chat/completions"]


@contextmanager
def _local() -> Iterator[tuple[list[str], dict[str, str], Callable[[], int] | None]]:
    yield ["--backend", "local"], {}, None  # (in process: the pages read are the JSON's attempts)


BACKENDS = {"chandra": _chandra, "dots": _dots, "local": _local}


def _convert(argv: list[str], env: dict[str, str], pdf: Path, out: Path, cache: Path, keep: bool) -> None:
    flags = ["--keep-furniture"] if keep else []
    res = CliRunner().invoke(app, ["convert", str(pdf), "-o", str(out), "--cache-dir", str(cache), "-q", *argv, *flags],
                             env={"NO_COLOR": "1", **env}, catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output


def _outputs(out: Path) -> tuple[str, Any]:
    """The markdown as written, and the JSON without what says how each page was had (from the
    cache or sent: ``cached``, its time, attempts and usage, the run's stats)."""
    md = (out / "doc.md").read_text(encoding="utf-8")
    doc = json.loads((out / "doc.json").read_text(encoding="utf-8"))
    doc.pop("stats")
    for page in doc["pages"]:
        for field in ("cached", "latency_s", "attempts", "usage"):
            page.pop(field)
    return md, doc


def _stats(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "doc.json").read_text(encoding="utf-8"))["stats"])


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_toggling_keep_furniture_on_a_rerun_sends_nothing_and_writes_a_fresh_run_s_outputs(backend: str, tmp_path: Path) -> None:
    pdf = _pdf(tmp_path / "doc.pdf")
    with BACKENDS[backend]() as (argv, env, sent):
        out, cache = tmp_path / "out", tmp_path / "cache"

        def sent_by(run: Callable[[], None]) -> int:
            before = sent() if sent is not None else 0
            run()
            return (sent() if sent is not None else 0) - before

        assert sent_by(lambda: _convert(argv, env, pdf, out, cache, keep=False)) == (PAGES if sent else 0)
        plain = _outputs(out)
        fresh = tmp_path / "fresh-kept"  # a fresh run with the option, its own cache
        assert sent_by(lambda: _convert(argv, env, pdf, fresh, tmp_path / "cache-2", keep=True)) == (PAGES if sent else 0)
        kept = _outputs(fresh)
        assert HEAD in kept[0] and HEAD not in plain[0], (kept[0], plain[0])
        assert kept[1]["pages"][0]["blocks"] == plain[1]["pages"][0]["blocks"]  # the JSON types the furniture either way
        assert {"page_header", "page_footer"} & {b["type"] for b in plain[1]["pages"][0]["blocks"]}
        for keep, want in ((True, kept), (False, plain), (True, kept)):  # toggled on, back off, on again
            assert sent_by(lambda keep=keep: _convert(argv, env, pdf, out, cache, keep=keep)) == 0
            stats = _stats(out)
            assert (stats["cached"], stats["attempts"]) == (PAGES, 0), stats  # rewritten from the cache, not skipped
            assert _outputs(out) == want, keep
        assert sent_by(lambda: _convert(argv, env, pdf, out, cache, keep=True)) == 0
        assert _stats(out) == stats, "done with these settings: skipped, as before"  # (the manifest)


def _config(name: str, options: dict[str, Any]) -> BackendConfig:
    model = getattr(dialect_class(name), "DEFAULT_MODEL", None) or "some/model"
    return BackendConfig.model_validate({"name": "t", "transport": DIALECTS[name][1] or "openai", "dialect": name,
                                         "model": model, "dialect_options": options})  # fmt: skip


def _request_bodies(name: str, options: dict[str, Any], page: Any) -> list[Any]:
    dialect = load_dialect(_config(name, options))
    return [dialect.build(page, Attempt(n)).body for n in (1, 2, 3, 4)]


@pytest.mark.parametrize("name", sorted(DIALECTS))
def test_no_output_option_changes_the_request_a_dialect_builds(name: str, tmp_path: Path) -> None:
    """Every registered dialect, every output option it declares, at another value than its
    default: the same request bodies, attempt after attempt (what the page key leaving the
    option out rests on); and the page key, the cache's, is the same."""
    output = dict(getattr(dialect_class(name), "OUTPUT_OPTIONS", {}))
    if name in ("chandra", "dots", "rapidocr"):
        assert output == {"include_headers_footers": False}
    page = make_page()
    page.pdf_path = str(_pdf(tmp_path / "doc.pdf"))  # (the local engine's request names the PDF)
    base = _request_bodies(name, {}, page)
    for option, default in output.items():
        for value in (True, "yes", default):
            assert _request_bodies(name, {option: value}, page) == base, (option, value)
            cfg, plain = _config(name, {option: value}), _config(name, {})
            assert page_key(b"img", cfg, name) == page_key(b"img", plain, name)
            assert (settings_digest(cfg) != settings_digest(plain)) == bool(value) == keeps_furniture(cfg)


DOTS_REPLY = json.dumps([{"bbox": [40, 10, 500, 30], "category": "Page-header", "text": HEAD},
                         {"bbox": [40, 60, 500, 200], "category": "Text", "text": BODY},
                         {"bbox": [280, 740, 320, 760], "category": "Page-footer", "text": "7"}])  # fmt: skip


@pytest.mark.parametrize("name", ["chandra", "dots"])
def test_no_output_option_changes_what_the_parse_gives(name: str) -> None:
    """Replies with furniture (a real Chandra one): the same content whatever the option, the
    markdown with the furniture beside the one without."""
    text = (REPLIES / "chandra" / "papermeister_structured.html").read_text(encoding="utf-8") if name == "chandra" else DOTS_REPLY
    page = make_page()
    got = []
    for options in ({}, {"include_headers_footers": True}):
        cfg = BackendConfig.model_validate({"name": "t", "transport": "openai", "dialect": name, "model": "m",
                                            "dialect_options": options})  # fmt: skip
        dialect = load_dialect(cfg)
        request = dialect.build(page, Attempt(1))
        got.append(dialect.parse(ModelReply(text=text, finish_reason="stop"), request))
    assert got[0] == got[1]
    assert got[0].furniture_markdown is not None and got[0].furniture_markdown != got[0].markdown


def test_an_entry_of_an_earlier_version_serves_only_a_run_that_leaves_the_furniture_out(tmp_path: Path) -> None:
    """An earlier version stored the page's JSON alone, under the key a run without the option
    still computes: its markdown has no furniture, and the entry does not say it with.  A run
    that keeps the furniture takes it for a miss (sends the page once, rewrites the entry);
    one that leaves it out is served it.  A damaged envelope is a miss, as any damaged entry."""
    cache = PageCache(tmp_path)
    key = "ab" * 32
    old = Page(page=1, status="ok", markdown="Body")
    path = tmp_path / "pages" / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text(old.model_dump_json(), encoding="utf-8")
    assert cache.get(key, furniture=True) is None
    served = cache.get(key)
    assert served is not None and served.markdown == "Body"
    page = Page(page=1, status="ok", markdown="Body")
    page._furniture_markdown = "Head\n\nBody"
    cache.put(key, page)
    for furniture in (False, True):
        hit = cache.get(key, furniture=furniture)
        assert hit is not None and hit.markdown == "Body" and hit._furniture_markdown == "Head\n\nBody"
        assert hit.as_made(furniture).markdown == ("Head\n\nBody" if furniture else "Body")
        assert hit._furniture_markdown is None  # (let go: the page a run gives holds one markdown)
    assert entry_page(path.read_text(encoding="utf-8")).markdown == "Body"
    assert "_furniture_markdown" not in page.model_dump_json() and "Head" not in page.model_dump_json()
    path.write_text('{"page": {"page": 1, "status": "ok"}, "furniture_markdown": 3}', encoding="utf-8")
    assert cache.get(key) is None


def test_the_local_engine_s_furniture_is_the_same_read_either_way(tmp_path: Path) -> None:
    """The Python API: the local engine's pages, the option on or off, differ in their markdown
    only (the blocks, their types and boxes, are the same), and a cached run gives exactly a
    fresh one's."""
    import ocrclient

    pdf = _pdf(tmp_path / "doc.pdf")
    fresh = {keep: ocrclient.convert(pdf, backend="local", cache=False, dialect_options={"include_headers_footers": keep})
             for keep in (False, True)}  # fmt: skip
    assert [p.blocks for p in fresh[False].pages] == [p.blocks for p in fresh[True].pages]
    assert all(HEAD in p.markdown for p in fresh[True].pages) and not any(HEAD in p.markdown for p in fresh[False].pages)
    for keep in (True, False, True):
        doc = ocrclient.convert(pdf, backend="local", cache=tmp_path / "c", dialect_options={"include_headers_footers": keep})
        assert [p.markdown for p in doc.pages] == [p.markdown for p in fresh[keep].pages]
    assert doc.stats.cached == PAGES
    shutil.rmtree(tmp_path / "c")
