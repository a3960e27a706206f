"""The `ocr` command: version, backends, config, schema, convert (stdout, exit codes, pages,
formats, shards, quiet, NO_COLOR, JSON summary).

Conversions run against a simulated vLLM server with the ``openai`` backend and a plain-markdown
responder (fast and offline); most commands run in-process through typer's runner, a few as real
subprocesses where the process boundary matters (colours, exit codes)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from rich.text import Text
from typer.testing import CliRunner

from ocrclient import __version__
from ocrclient.cli import _failed_page, app
from ocrclient.config import list_profiles, resolve_config
from ocrclient.document import Document
from ocrclient.testing import DialectResponder, FaultPlan, OpenAISimulator, SentImage

from .pdfgen import PdfPage, text_pdf, write_pdf

MODEL = "sim/plain-model"


def page_text(image: SentImage) -> list[tuple[str, str]]:
    return [("text", f"Text of image {image.width}x{image.height}")]


@pytest.fixture
def sim() -> Iterator[OpenAISimulator]:
    with OpenAISimulator(responder=DialectResponder("plain", truth=page_text), model=MODEL) as s:
        yield s


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def sim_args(sim: OpenAISimulator) -> list[str]:
    return ["--backend", "openai", "--base-url", sim.base_url, "--model", MODEL, "--dpi", "36"]


def sim_env(sim: OpenAISimulator) -> dict[str, str]:
    return {"OCRCLIENT_API_KEY": str(sim.api_key), "NO_COLOR": "1"}


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return text_pdf(tmp_path / "doc.pdf", [["one"], ["two"], ["three"]], size=(0, 0, 200, 120))


# -- simple commands ----------------------------------------------------------------------------


def test_version() -> None:
    res = invoke("--version")
    assert res.exit_code == 0
    assert res.stdout.strip() == f"ocrclient {__version__}"


def test_backends_table_and_json() -> None:
    table = invoke("backends", env={"NO_COLOR": "1", "COLUMNS": "200"})
    assert table.exit_code == 0
    for name in ("local", "runpod-chandra", "runpod-pod-lightonocr2", "modal-lightonocr", "openai"):
        assert name in table.stdout
    rows = json.loads(invoke("backends", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["local"]["configured"] is True
    assert by_name["runpod-olmocr"]["configured"] is False
    assert "RUNPOD" in by_name["runpod-olmocr"]["detail"]
    assert set(rows[0]) == {"name", "transport", "dialect", "model", "configured", "detail"}


def test_config_masks_secrets(tmp_path: Path) -> None:
    cfg_dir = Path(os.environ["OCRCLIENT_CONFIG_DIR"])
    cfg_dir.mkdir(parents=True, exist_ok=True)
    conf = cfg_dir / "config.toml"
    conf.write_text(
        '[backends.runpod-chandra]\napi_key = "rp_supersecret_123"\nendpoint_id = "ep42"\n'
    )
    conf.chmod(0o600)
    res = invoke(
        "config", "--backend", "runpod-chandra", env={"RUNPOD_API_KEY": "rp_envsecret_456"}
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["endpoint_id"] == "ep42" and data["dialect"] == "chandra"
    assert data["api_key"] == "***" and data["api_key_set"] is True
    assert "rp_supersecret_123" not in res.output and "rp_envsecret_456" not in res.output


def test_config_init_writes_once() -> None:
    first = invoke("config", "init")
    assert first.exit_code == 0, first.output
    path = Path(first.stdout.strip())
    assert path == Path(os.environ["OCRCLIENT_CONFIG_DIR"]) / "config.toml"
    assert "default_backend" in path.read_text()
    assert path.stat().st_mode & 0o077 == 0
    again = invoke("config", "init")
    assert again.exit_code == 2 and "exists" in again.stderr
    assert invoke("config", "init", "--force").exit_code == 0


def test_schema_stdout_and_file(tmp_path: Path) -> None:
    res = invoke("schema")
    schema = json.loads(res.stdout)
    assert "pages" in schema["properties"]
    target = tmp_path / "s.json"
    assert invoke("schema", str(target)).exit_code == 0
    assert json.loads(target.read_text()) == schema


# -- convert --------------------------------------------------------------------------------------


def test_markdown_to_stdout_without_out(sim: OpenAISimulator, pdf: Path) -> None:
    res = invoke("convert", str(pdf), *sim_args(sim), "--quiet", env=sim_env(sim))
    assert res.exit_code == 0, res.output
    # 200x120 pt at 36 dpi -> 100x60 px, once per page, in order
    assert res.stdout.count("Text of image 100x60") == 3
    assert res.stderr == ""


def test_pages_formats_and_json_summary(sim: OpenAISimulator, pdf: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = invoke("convert", str(pdf), "-o", str(out), *sim_args(sim), "--pages", "2-3", "--format", "md,json,txt",
                 "--json", env=sim_env(sim))  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["exit_code"] == 0 and summary["error"] is None
    (d,) = summary["documents"]
    assert (d["pages"], d["ok"], d["failed"], d["failed_pages"]) == (2, 2, 0, [])
    assert sorted(p.name for p in out.iterdir() if p.stem == "doc") == [
        "doc.json",
        "doc.md",
        "doc.txt",
    ]
    doc = Document.model_validate_json((out / "doc.json").read_text())
    assert [p.page for p in doc.pages] == [2, 3]
    assert "Text of image" in (out / "doc.txt").read_text()
    assert "ocr convert" in res.stderr  # the summary table (not --quiet)


@pytest.mark.parametrize("fmt", ["md", "json", "txt", "html", "pdf"])
def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(
    fmt: str, sim: OpenAISimulator, pdf: Path, tmp_path: Path
) -> None:
    """Every page ok but one output file not written (its path is a folder): the run said so on two
    lines (the path wrapped at 80 columns) and exited 0, its JSON summary too.  Each format in
    turn: the others are written, the error is one line naming the file, the exit code is 1."""
    out = tmp_path / "out"
    (out / f"doc.{fmt}").mkdir(parents=True)
    res = invoke("convert", str(pdf), "-o", str(out), *sim_args(sim), "--format", "md,json,txt,html,pdf", "--json",
                 env={**sim_env(sim), "COLUMNS": "80"})  # fmt: skip
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    assert summary["exit_code"] == 1 and summary["documents"][0]["failed"] == 0
    (error,) = summary["documents"][0]["output_errors"]
    assert f"doc.{fmt}" in error
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"doc.{fmt}" in lines[0], res.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_file() and p.stem == "doc") == sorted(
        f"doc.{f}" for f in ("md", "json", "txt", "html", "pdf") if f != fmt
    )


def test_exit_1_when_a_page_fails(pdf: Path, tmp_path: Path) -> None:
    class FirstRequest400(FaultPlan):
        def draw(self, key: str) -> str | None:
            with self._lock:
                self._seen[key] += 1
                first = sum(self._seen.values()) == 1
            if first:
                self.injected["http_400"] += 1
                return "http_400"
            return None

    plan = FirstRequest400()
    with OpenAISimulator(
        responder=DialectResponder("plain", truth=page_text), model=MODEL, plan=plan
    ) as s:
        out = tmp_path / "o"
        res = invoke(
            "convert", str(pdf), "-o", str(out), *sim_args(s), "-c", "1", "--json", env=sim_env(s)
        )
    assert res.exit_code == 1, res.output
    assert plan.injected["http_400"] == 1
    summary = json.loads(res.stdout)
    assert summary["exit_code"] == 1 and summary["documents"][0]["failed"] == 1
    doc = Document.model_validate_json((out / "doc.json").read_text())
    failed = [p for p in doc.pages if p.status == "failed"]
    assert len(failed) == 1 and failed[0].error is not None and "400" in failed[0].error.message
    assert failed[0].attempts == 1  # 400 is permanent: not retried
    assert sum(p.status == "ok" for p in doc.pages) == 2
    assert f"page {failed[0].page}" in res.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.pdf"], "missing.pdf"),
        (["{pdf}", "--backend", "no-such-backend"], "unknown backend"),
        (["{pdf}", "--pages", "7-9"], "page"),
        (["{pdf}", "--pages", ""], "page range '' is empty"),  # ("$RANGE" unset: every page was sent)
        (["{pdf}", "--pages", "  "], "is empty"),
        (["{pdf}", "--format", "md,docx"], "unknown --format"),
        (["{pdf}", "--shard", "3/2"], "--shard 3/2: need 0 <= i < n (i counts from 0: the shards of 2 are 0/2, 1/2)"),
        (["{pdf}", "--shard", "7/5"], "the shards of 5 are 0/5, 1/5, ... 4/5)"),  # (it always said "of 3")
        (["{pdf}", "--shard", "0/0"], "--shard 0/0: n, the number of shards, is at least 1"),
        (["{pdf}", "--shard", "a/b"], "--shard takes i/n (e.g. 0/4), got 'a/b'"),
    ],
)
def test_exit_2_on_bad_input(args: list[str], message: str, pdf: Path, tmp_path: Path) -> None:
    argv = [a.replace("{pdf}", str(pdf)) for a in args]
    res = invoke("convert", *argv, "-o", str(tmp_path / "x"), env={"NO_COLOR": "1"})
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert res.stderr.strip().count("\n") == 0, "one line"
    assert "Traceback" not in res.output
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_shards_cover_every_file_once(sim: OpenAISimulator, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub" / "deeper").mkdir(parents=True)
    files = []
    for i in range(4):
        files.append(text_pdf(src / f"a{i}.pdf", [[f"doc {i}"]], size=(0, 0, 100, 80)))
    for i in range(2):
        files.append(text_pdf(src / "sub" / f"b{i}.pdf", [[f"sub {i}"]], size=(0, 0, 100, 80)))
    img = Image.new("RGB", (90, 60), "white")
    ImageDraw.Draw(img).rectangle((10, 10, 60, 30), fill="black")
    img.save(src / "sub" / "deeper" / "c.png")
    files.append(src / "sub" / "deeper" / "c.png")
    expected = {str(f.relative_to(src).with_suffix(".md")) for f in files}

    out = tmp_path / "out"
    seen: list[str] = []
    for i in range(3):
        res = invoke("convert", str(src), "-o", str(out), *sim_args(sim), "--shard", f"{i}/3", "--format", "md",
                     "--json", "--quiet", env=sim_env(sim))  # fmt: skip
        assert res.exit_code == 0, res.output
        seen += [d["source"] for d in json.loads(res.stdout)["documents"]]
    assert len(seen) == len(files) == len(set(seen)), seen
    written = {str(p.relative_to(out)) for p in out.rglob("*.md")}
    assert written == expected  # outputs mirror the input tree


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocrclient.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-9]|9[0-7]|38;[0-9;]+)m")


def test_no_color_and_quiet_in_a_real_process(
    sim: OpenAISimulator, pdf: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(FORCE_COLOR="1", OCRCLIENT_API_KEY=str(sim.api_key), COLUMNS="120")
    coloured = _cli("backends", env=env)
    assert coloured.returncode == 0 and COLOUR.search(coloured.stdout), coloured.stdout[:300]
    plain = _cli("backends", env={**env, "NO_COLOR": "1"})
    assert plain.returncode == 0 and "runpod-chandra" in plain.stdout
    assert not COLOUR.search(plain.stdout)

    args = ["convert", str(pdf), "-o", str(tmp_path / "o"), *sim_args(sim)]
    loud = _cli(*args, env={**env, "NO_COLOR": "1"})
    assert loud.returncode == 0, loud.stderr
    assert "ocr convert" in loud.stderr and not COLOUR.search(loud.stderr)
    quiet = _cli(*args, "--quiet", "--no-cache", env={**env, "NO_COLOR": "1"})
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""
    assert (tmp_path / "o" / "doc.md").read_text().count("Text of image") == 3


@pytest.mark.parametrize(
    "message, line",
    [
        ("page 3: cannot render (bad xref)", "d.pdf page 3: cannot render (bad xref)"),
        ("page 3 has an unusable size of 0 x 0 pt", "d.pdf page 3 has an unusable size of 0 x 0 pt"),
        ("page 3 of d.pdf has no image: gone", "d.pdf page 3 has no image: gone"),
        ("HTTP 400: simulated bad request", "d.pdf page 3: HTTP 400: simulated bad request"),
        ("page 30: not this page", "d.pdf page 3: page 30: not this page"),
        ("bad [bold]markup[/]", "d.pdf page 3: bad \\[bold]markup\\[/]"),
    ],
)
def test_failed_page_line_names_the_page_once(message: str, line: str) -> None:
    assert _failed_page("d.pdf", 3, message) == line


def test_failed_page_lines_in_a_run(sim: OpenAISimulator, tmp_path: Path) -> None:
    """A page that cannot be rendered (0.5 pt square) fails with its own message; the failure
    lines (--verbose and the summary) name the page once, each on one line even in a narrow
    terminal."""
    doc = write_pdf(tmp_path / "doc.pdf", [PdfPage(media=(0, 0, 200, 120), texts=[(30, 80, 16, "one")]),
                                          PdfPage(media=(0, 0, 0.5, 0.5))])  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "40", "OCRCLIENT_API_KEY": str(sim.api_key)}
    run = _cli("convert", str(doc), "-o", str(tmp_path / "o"), *sim_args(sim), "--no-cache", "-v", env=env)
    assert run.returncode == 1, run.stderr
    pages = json.loads((tmp_path / "o" / "doc.json").read_text())["pages"]
    assert [p["status"] for p in pages] == ["ok", "failed"]
    message = pages[1]["error"]["message"]
    lines = [x for x in run.stderr.splitlines() if x.startswith("failed ")]
    assert len(lines) == 2, run.stderr  # one from --verbose, one after the summary
    for got in lines:
        assert got == "failed " + Text.from_markup(_failed_page(str(doc), 2, message)).plain, got
        assert got.count("page 2") == 1, got


# -- outputs: one per input, always -------------------------------------------------------------


def _two_folders(tmp_path: Path) -> tuple[Path, Path]:
    """``a/x.pdf`` (200x120 pt) and ``b/x.pdf`` (300x200 pt): same name, different documents
    (the simulator's text names the image size, so each output shows which input it came from)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = text_pdf(tmp_path / "a" / "x.pdf", [["alpha"]], size=(0, 0, 200, 120))
    b = text_pdf(tmp_path / "b" / "x.pdf", [["beta"], ["beta 2"]], size=(0, 0, 300, 200))
    return a, b


@pytest.mark.parametrize("given", ["folders", "files"])
def test_same_named_inputs_in_two_folders_write_two_documents(
    sim: OpenAISimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """``ocr convert a b -o out`` (or ``a/x.pdf b/x.pdf``) wrote one out/x.json holding the
    second document and marked both done; now each input has its own mirrored output."""
    a, b = _two_folders(tmp_path)
    monkeypatch.chdir(tmp_path)
    inputs = ["a", "b"] if given == "folders" else ["a/x.pdf", "b/x.pdf"]
    res = invoke("convert", *inputs, "-o", "out", *sim_args(sim), "--quiet", env=sim_env(sim))
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("x.*")) == ["a/x.json", "a/x.md", "b/x.json", "b/x.md"]
    for folder, src, pages, size in (("a", a, 1, "100x60"), ("b", b, 2, "150x100")):
        doc = Document.model_validate_json((out / folder / "x.json").read_text())
        assert Path(doc.source).resolve() == src.resolve() and len(doc.pages) == pages
        assert (out / folder / "x.md").read_text().count(f"Text of image {size}") == pages
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    entries = [e for e in lines if e["status"] != "writing"]  # (the records; each file named before written)
    assert sorted(e["key"] for e in entries) == [str(a.resolve()), str(b.resolve())]
    assert sorted(o for e in entries for o in e["outputs"]) == ["a/x.json", "a/x.md", "b/x.json", "b/x.md"]
    # a rerun (the inputs spelled differently: absolute paths) skips both, sends nothing
    sent = sum(sim.requests_by_key.values())
    again = invoke("convert", str(a), str(b), "-o", "out", *sim_args(sim), env=sim_env(sim))
    assert again.exit_code == 0, again.output
    assert "skipping 2 input(s) already done" in again.stderr and sum(sim.requests_by_key.values()) == sent


def test_json_lists_the_inputs_a_rerun_left_alone_as_done(sim: OpenAISimulator, tmp_path: Path) -> None:
    """A rerun's ``--json`` names the documents it skipped as done ("documents": [] alone told a
    script nothing of what exists); one converted again (``--redo``, or new) is not among them."""
    docs = tmp_path / "in"
    docs.mkdir()
    for name in ("a", "b"):
        text_pdf(docs / f"{name}.pdf", [[name]], size=(0, 0, 200, 120))
    first = invoke("convert", str(docs), "-o", str(tmp_path / "out"), *sim_args(sim), "--json", env=sim_env(sim))
    assert first.exit_code == 0 and json.loads(first.stdout)["skipped"] == [], first.output
    text_pdf(docs / "c.pdf", [["c"]], size=(0, 0, 200, 120))
    again = invoke("convert", str(docs), "-o", str(tmp_path / "out"), *sim_args(sim), "--json", env=sim_env(sim))
    said = json.loads(again.stdout)
    assert again.exit_code == 0 and said["exit_code"] == 0, again.output
    assert [Path(d["source"]).name for d in said["documents"]] == ["c.pdf"]
    assert [Path(d["source"]).name for d in said["skipped"]] == ["a.pdf", "b.pdf"]
    redo = invoke("convert", str(docs), "-o", str(tmp_path / "out"), *sim_args(sim), "--json", "--redo", env=sim_env(sim))
    assert json.loads(redo.stdout)["skipped"] == [] and len(json.loads(redo.stdout)["documents"]) == 3


def test_two_inputs_with_one_output_name_are_refused_before_sending(sim: OpenAISimulator, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    text_pdf(folder / "x.pdf", [["pdf"]], size=(0, 0, 200, 120))
    Image.new("RGB", (90, 60), "white").save(folder / "x.png")
    out = tmp_path / "out"
    res = invoke("convert", str(folder), "-o", str(out), *sim_args(sim), env=sim_env(sim))
    assert res.exit_code == 2, res.output
    line = f"error: {folder / 'x.pdf'} and {folder / 'x.png'} would both be written as {out / 'x'}.*; "
    assert res.stderr.startswith(line) and res.stderr.strip().count("\n") == 0, res.stderr
    assert sum(sim.requests_by_key.values()) == 0 and not out.exists()


def test_single_file_keeps_out_stem(sim: OpenAISimulator, pdf: Path, tmp_path: Path) -> None:
    """README: ``ocr convert examples/sample.pdf -o out/`` writes out/sample.md and out/sample.json."""
    out = tmp_path / "o"
    res = invoke("convert", str(pdf), "-o", str(out), *sim_args(sim), "--quiet", env=sim_env(sim))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["doc.json", "doc.md", "manifest.jsonl"]


# -- ocr config / ocr backends ------------------------------------------------------------------

SECRETS = {
    "RUNPOD_API_KEY": "rp_envsecret_4567",
    "OCRCLIENT_API_KEY": "sk-envsecret-8910",
    "MODAL_KEY": "wk-modalkey-1112",
    "MODAL_SECRET": "ws-modalsecret-1314",
}
SHIPPED = sorted(p.stem for p in (Path(__file__).parents[1] / "backends").glob("*.toml"))


@pytest.mark.parametrize("backend", SHIPPED)
@pytest.mark.parametrize("keys", ["none", "env", "env+file"])
def test_config_prints_valid_json_without_secrets(backend: str, keys: str) -> None:
    """``"api_key": ***`` was not JSON: every backend, with and without keys set, prints JSON
    that parses and holds no secret."""
    env = {"NO_COLOR": "1", **(SECRETS if keys != "none" else {})}
    file_key = "cfg-filesecret-1516"
    if keys == "env+file":
        conf = Path(os.environ["OCRCLIENT_CONFIG_DIR"]) / "config.toml"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'[backends.{backend}]\napi_key = "{file_key}"\n')
        conf.chmod(0o600)
    res = invoke("config", "--backend", backend, env=env)
    data = json.loads(res.stdout)  # JSON, whether convert would take the settings or not
    assert res.exit_code == (2 if data["refused"] else 0), res.output
    assert data["name"] == backend
    # a key from the profile's variable or the config file is resolved (and shown masked)
    env_key = keys == "env" and data["api_key_env"] in SECRETS
    assert data["api_key"] == ("***" if keys == "env+file" or env_key else None)
    for secret in [*SECRETS.values(), file_key]:
        assert secret not in res.output


def test_backends_at_80_columns_keep_every_env_var_name_whole() -> None:
    from ocrclient.config import resolve_config

    res = invoke("backends", env={"NO_COLOR": "1", "COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.stdout.splitlines()) <= 80
    words = set(re.findall(r"[A-Za-z0-9_.-]+", res.stdout))
    for name in SHIPPED:
        cfg = resolve_config(name)
        assert name in words, name
        names = [cfg.endpoint_id_env, cfg.base_url_env, cfg.model_env, cfg.api_key_env]
        for var in filter(None, names):
            assert var in words, (name, var)


# -- a missing local engine ---------------------------------------------------------------------


def test_missing_local_engine_is_a_config_error(tmp_path: Path) -> None:
    """Without the [local] extra every page failed and the exit code was 1: now exit 2, one line
    saying how to install it, nothing rendered or written."""
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]], size=(0, 0, 200, 120))
    out = tmp_path / "out"
    for module in ("rapidocr", "onnxruntime"):
        code = (
            f"import sys; sys.modules[{module!r}] = None\n"
            "from ocrclient.cli import main\n"
            f"sys.argv = ['ocr', 'convert', {str(pdf)!r}, '-o', {str(out)!r}, '--backend', 'local', '--no-cache']\n"
            "main()\n"
        )
        run = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert run.returncode == 2, run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: the local backend needs rapidocr and onnxruntime"), lines
        assert lines[0].endswith("install them with: pip install 'ocrclient[local]'"), lines
        assert module in lines[0] and "Traceback" not in run.stderr
        assert not out.exists()


# -- the markdown holds only what the model read -------------------------------------------------


def test_blank_page_writes_an_empty_markdown_unless_markers_are_asked_for(tmp_path: Path) -> None:
    """A blank page was written as ``<!-- page 1 degraded: no text found -->`` and an empty
    document as "\\n": now a 0-byte .md (the status is in the JSON); --page-markers adds it."""
    blank = write_pdf(tmp_path / "blank.pdf", [PdfPage(media=(0, 0, 200, 120))])
    out = tmp_path / "o"
    args = ["convert", str(blank), "--backend", "local", "--dpi", "72", "--no-cache", "--quiet"]
    res = invoke(*args, "-o", str(out), env={"NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    assert (out / "blank.md").read_bytes() == b""
    page = Document.model_validate_json((out / "blank.json").read_text()).pages[0]
    assert page.status == "degraded" and page.warnings == ["no text found"]
    stdout = invoke(*args, env={"NO_COLOR": "1"})
    assert stdout.exit_code == 0 and stdout.stdout == ""
    marked = invoke(*args, "-o", str(tmp_path / "m"), "--page-markers", env={"NO_COLOR": "1"})
    assert marked.exit_code == 0, marked.output
    assert (tmp_path / "m" / "blank.md").read_text() == "<!-- page 1 degraded: no text found -->\n"


def test_no_command_annotation_is_a_string() -> None:
    """typer reads each command's signature on every run (``ocr convert``'s 30 options among
    them): annotations left as strings (``from __future__ import annotations``) are compiled and
    evaluated twice each time, 10-20 ms of every start; the command modules keep them as objects."""
    import typer

    from ocrclient.cli import app

    def commands(t: typer.Typer) -> list[Any]:
        found = [c.callback for c in t.registered_commands]
        found += [t.registered_callback.callback] if t.registered_callback else []
        for group in t.registered_groups:
            assert group.typer_instance is not None
            found += commands(group.typer_instance)
        return found

    callbacks = commands(app)
    assert len(callbacks) >= 10, callbacks
    strings = {f"{cb.__module__}.{cb.__name__}: {name}" for cb in callbacks
               for name, ann in cb.__annotations__.items() if isinstance(ann, str)}  # fmt: skip
    assert not strings, sorted(strings)


class _ReadEnv(dict):  # type: ignore[type-arg]
    """An environment that remembers every variable read from it."""

    def __init__(self, data: dict[str, str]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return str(super().__getitem__(key))

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


@pytest.mark.parametrize("profile", sorted(list_profiles()))
def test_ocr_backends_lists_every_credential_and_endpoint_variable_a_backend_reads(
    profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a backend reads from the environment to find its server and authenticate (any name
    with KEY, SECRET, TOKEN, URL, ENDPOINT or MODEL in it) is in ``ocr backends``' list for it:
    the Modal profile read MODAL_KEY / MODAL_SECRET without saying so.  And nothing more: the
    pod and Modal profiles listed OCRCLIENT_BASE_URL, which they never fall back to."""
    import os

    from ocrclient.cli.settings import _env_names
    from ocrclient.registry import load_backend

    cfg = resolve_config(profile)
    listed = _env_names(cfg)
    env = _ReadEnv({k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "MODAL_", "OCRCLIENT_"))})
    for name in listed:  # configured, so that loading goes as far as it can
        env[name] = "http://127.0.0.1:9/v1" if name.endswith("_URL") else "value-1234"
    monkeypatch.setattr(os, "environ", env)
    load_backend(profile).close()
    # and with none of them set: what each setting falls back to (RUNPOD_ENDPOINT_ID, ...) is read
    bare = _ReadEnv({k: v for k, v in env.items() if k not in listed})
    monkeypatch.setattr(os, "environ", bare)
    from ocrclient.errors import OcrError

    cfg = resolve_config(profile)
    for setting in (cfg.resolved_endpoint_id, cfg.resolved_base_url, cfg.resolved_model, cfg.secret):
        with contextlib.suppress(OcrError):
            setting()
    wanted = {n for n in env.read | bare.read if re.search(r"KEY|SECRET|TOKEN|URL|ENDPOINT|MODEL", n)}
    wanted -= {"OCRCLIENT_BACKEND", "SSLKEYLOGFILE"}  # the choice of backend; TLS debugging
    assert wanted <= set(listed), (sorted(wanted - set(listed)), listed)
    read = env.read | bare.read
    for name in listed:  # each with the others set: a key's alias is read when the key's own variable is not
        one_less = _ReadEnv({k: v for k, v in env.items() if k != name})
        monkeypatch.setattr(os, "environ", one_less)
        with contextlib.suppress(OcrError):
            load_backend(profile).close()
        read |= one_less.read
    assert set(listed) <= read, (sorted(set(listed) - read), listed)


@pytest.mark.parametrize("profile", sorted(list_profiles()))
def test_ocr_backends_lists_a_generic_variable_exactly_when_the_backend_falls_back_to_it(
    profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RUNPOD_ENDPOINT_ID`` and ``OCRCLIENT_BASE_URL`` are listed for a backend when its
    settings take them, and only then: the pod and Modal profiles, which never fall back to the
    generic server's URL, listed it."""
    import os

    from ocrclient.cli.settings import _env_names
    from ocrclient.envnames import ENV_FALLBACKS

    for name in list(os.environ):
        if name.startswith(("RUNPOD_", "MODAL_", "OCRCLIENT_", "VLLM_")):
            monkeypatch.delenv(name)
    for (_, field), var in ENV_FALLBACKS.items():
        value = "http://127.0.0.1:9/fallback/v1" if field == "base_url" else "fallback-id"
        monkeypatch.setenv(var, value)
        cfg = resolve_config(profile)
        taken = getattr(cfg, field) == value
        assert (var in _env_names(cfg)) == taken, (var, taken, _env_names(cfg))
        monkeypatch.delenv(var)


def test_several_documents_on_stdout_stay_apart_and_named(sim: OpenAISimulator, tmp_path: Path) -> None:
    """Without -o every document's markdown goes to stdout, in order: they were joined by one
    newline (the last paragraph of one ran into the first of the next) and not named."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = text_pdf(tmp_path / "a" / "x.pdf", [["one"]], size=(0, 0, 200, 120))
    b = text_pdf(tmp_path / "b" / "x.pdf", [["two"], ["three"]], size=(0, 0, 200, 120))
    res = invoke("convert", str(a), str(b), *sim_args(sim), "--quiet", env=sim_env(sim))
    assert res.exit_code == 0, res.output
    first, second = res.stdout.split("\n\n<!-- document: ")
    assert first.startswith(f"<!-- document: {a} -->\n\n") and first.count("Text of image") == 1, res.stdout
    assert second.startswith(f"{b} -->\n\n") and second.count("Text of image") == 2, res.stdout
    one = invoke("convert", str(a), *sim_args(sim), "--quiet", env=sim_env(sim))  # one document: as it is
    assert "<!--" not in one.stdout and one.stdout.count("Text of image") == 1


@pytest.mark.parametrize("flags,needle", [
    (["--json"], "--json prints the run's summary on stdout, where the markdown goes without -o"),
    (["-f", "json"], "--format json: files need -o DIR"),
    (["-f", "md,html"], "--format md,html: files need -o DIR"),
    (["-f", ""], "--format '' names no format"),
    (["-f", ",", "-o", "OUT"], "--format ',' names no format"),
    (["--no-cache", "--cache-dir", "OUT"], "--cache-dir OUT and --no-cache contradict each other"),
    (["--quiet", "--verbose"], "--quiet and --verbose contradict each other"),
    (["-o", "OUT", "--force-ocr-text"], "--force-ocr-text changes the pdf output, which --format md,json does not write"),
    (["-o", "OUT", "-f", "json", "--page-markers"], "--page-markers changes the md output, which --format json does not write"),
])  # fmt: skip
def test_outputs_that_cannot_be_had_as_asked_are_refused(flags: list[str], needle: str, sim: OpenAISimulator,
                                                         pdf: Path, tmp_path: Path) -> None:  # fmt: skip
    """--json or file formats without -o (the markdown goes to stdout: JSON mixed with markdown,
    formats dropped without a word), no format at all (every page sent, nothing written), or
    settings that did nothing without a word: a cache folder with --no-cache, --verbose with
    --quiet, an option of a format not written."""
    flags = [str(tmp_path / "out") if f == "OUT" else f for f in flags]
    before = dict(sim.requests)
    res = invoke("convert", str(pdf), *sim_args(sim), *flags, env=sim_env(sim))
    assert res.exit_code == 2 and res.stderr.startswith(f"error: {needle.replace('OUT', str(tmp_path / 'out'))}"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and dict(sim.requests) == before  # one line, nothing sent
    assert not (tmp_path / "out").exists()  # (nothing made either)
    ok = invoke("convert", str(pdf), *sim_args(sim), "-f", "md", "--quiet", env=sim_env(sim))  # md to stdout: fine
    assert ok.exit_code == 0 and ok.stdout.count("Text of image") == 3


@pytest.mark.parametrize("profile", sorted(p for p in list_profiles() if resolve_config(p).transport == "runpod"))
def test_a_missing_setting_is_asked_for_by_the_variable_the_backend_reads(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error for a missing endpoint id names the profile's own variable, the one
    ``ocr backends`` lists (runpod-chandra's said RUNPOD_ENDPOINT_ID, a fallback it also reads)."""
    import os

    from ocrclient.cli.settings import _env_names
    from ocrclient.errors import ConfigError
    from ocrclient.registry import load_backend

    for name in list(os.environ):
        if name.startswith(("RUNPOD_", "OCRCLIENT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RUNPOD_API_KEY", "key-1234")
    cfg = resolve_config(profile)
    with pytest.raises(ConfigError) as info:
        load_backend(profile, model="m")  # (the generic profile needs one first)
    asked = re.search(r"set ([A-Z_]+)", str(info.value))
    assert asked and asked.group(1) in _env_names(cfg) and asked.group(1) == (cfg.endpoint_id_env or "RUNPOD_ENDPOINT_ID")


# ---------------------------------------------------------------------------------------------
# every command that reaches a backend takes the flags that name it
# ---------------------------------------------------------------------------------------------

#: the flags with which ``ocr convert`` names and reaches a backend
BACKEND_FLAGS = ["--backend", "--endpoint-id", "--base-url", "--api-key-env", "--model", "--dialect", "--transport",
                 "--mode"]  # fmt: skip
#: the flags with which it changes how pages are rendered for the backend
RENDER_FLAGS = ["--dpi", "--image-format"]


def _flags(command: str) -> set[str]:
    import typer.main

    group = typer.main.get_command(app)
    return {o for p in group.commands[command].params for o in p.opts}  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", ["convert", "health", "bench", "config"])
def test_every_command_reaching_a_backend_takes_the_flags_that_name_it(command: str) -> None:
    """``ocr health --backend runpod`` asked for ``--model`` (a generic backend's dialect needs
    one) and then refused it: no such option.  A command line that converts, checks and
    benchmarks alike."""
    assert not set(BACKEND_FLAGS) - _flags(command), sorted(set(BACKEND_FLAGS) - _flags(command))
    if command != "health":  # (what renders: the settings shown and the pages benchmarked follow them)
        assert not set(RENDER_FLAGS) - _flags(command), sorted(set(RENDER_FLAGS) - _flags(command))


def test_config_shows_the_render_flags_as_convert_gets_them() -> None:
    from .test_bad_inputs import ocr

    run = ocr(["config", "--backend", "runpod-chandra", "--dpi", "100", "--image-format", "jpeg"],
              {"RUNPOD_API_KEY": "rp-test-key-1234", "RUNPOD_CHANDRA_ENDPOINT_ID": "ep1"})
    assert run.code == 0, run.stderr
    render = json.loads(run.stdout)["render"]
    assert (render["dpi"], render["format"]) == (100, "jpeg")


def test_health_takes_document_mode_and_refuses_it_where_convert_would(tmp_path: Path) -> None:
    """``ocr convert ... --document-mode`` pasted into ``ocr health`` was "no such option"; it now
    checks what convert would: a backend that cannot take whole PDFs is refused with convert's
    line (exit 2) before anything is sent; one that can is checked as usual."""
    from ocrclient.testing.runpod_sim import RunPodSimulator

    from .test_bad_inputs import ocr

    assert "--document-mode" in _flags("health")
    pdf = tmp_path / "a.pdf"
    text_pdf(pdf, [["one"]])
    args = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--document-mode"]
    refused = ocr(["health", *args])
    converted = ocr(["convert", str(pdf), "-o", str(tmp_path / "out"), *args])
    assert refused.code == converted.code == 2
    line = "document mode (whole PDFs) needs a RunPod endpoint running the whole-PDF worker"
    assert line in refused.stderr and line in converted.stderr
    with RunPodSimulator(api_key="rp-health") as sim:
        env = {**os.environ, "RUNPOD_API_KEY": "rp-health", "NO_COLOR": "1"}
        run = subprocess.run([sys.executable, "-m", "ocrclient.cli", "health", "--backend", "runpod-deepseek-ocr",
                              "--base-url", sim.base_url, "--endpoint-id", str(sim.endpoint_id), "--document-mode",
                              "--json"], env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["ok"] is True


def test_health_of_a_generic_backend_with_a_model(tmp_path: Path) -> None:
    from ocrclient.testing.runpod_sim import RunPodSimulator

    with RunPodSimulator(api_key="rp-health") as sim:
        env = {**os.environ, "RUNPOD_API_KEY": "rp-health", "NO_COLOR": "1"}
        run = subprocess.run([sys.executable, "-m", "ocrclient.cli", "health", "--backend", "runpod", "--model", "m",
                              "--base-url", sim.base_url, "--endpoint-id", str(sim.endpoint_id), "--json"],
                             env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["ok"] is True


def _json_commands() -> set[str]:
    """Every ``ocr`` command that takes ``--json``, by its path (``cache info``)."""
    import typer

    def walk(t: typer.Typer, prefix: str) -> set[str]:
        found = set()
        for c in t.registered_commands:
            assert c.callback is not None
            name = c.name or c.callback.__name__.replace("_", "-")
            if "as_json" in c.callback.__annotations__:
                found.add(f"{prefix}{name}")
        for group in t.registered_groups:
            assert group.typer_instance is not None and group.name
            found |= walk(group.typer_instance, f"{prefix}{group.name} ")
        return found

    return walk(app, "")


def test_every_json_command_prints_an_object_on_every_failing_exit(tmp_path: Path) -> None:
    """The whole kind: each command with ``--json``, made to fail in each way it can before or
    while it works, prints one JSON object on stdout (its error and exit code) beside its
    one-line error, so a script parsing stdout never meets an empty output (README: "--json
    prints its summary either way")."""
    from .test_bad_inputs import ocr

    pdf = tmp_path / "a.pdf"
    text_pdf(pdf, [["one"]])
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    out = str(tmp_path / "out")
    failing = {
        "convert": [
            ["convert", str(tmp_path / "nope.pdf"), "-o", out],
            ["convert", str(pdf), "-o", out, "--pages", "9"],
            ["convert", str(pdf), "-o", out, "--backend", "nosuch"],
            ["convert", str(pdf)],  # --json without -o
            ["convert", str(pdf), "-o", out, "--format", "nosuch"],
            ["convert", str(pdf), "-o", out, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
             "--model", "m", "--api-key-env", "sk-live-not-a-name"],
        ],
        "bench": [["bench", str(tmp_path / "nope.pdf")], ["bench", str(pdf), "--backend", "nosuch"]],
        "health": [["health", "--backend", "nosuch"], ["health", "--backend", "openai"]],  # (no model)
        "cache info": [["cache", "info", "--cache-dir", str(a_file)]],
        "backends": [],  # (fails only on a plugin clash: tests/test_plugins.py)
    }
    assert set(failing) == _json_commands()
    for args in (a for cases in failing.values() for a in cases):
        run = ocr([*args, "--json"], {"OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg"), "OCRCLIENT_CACHE_DIR": str(tmp_path / "c")})
        assert run.code == 2, (args, run.code, run.stderr)
        summary = json.loads(run.stdout)
        assert summary["exit_code"] == run.code and summary["error"], (args, summary)
        assert run.stderr.strip() == f"error: {summary['error']}", (args, run.stderr)
        assert "sk-live-not-a-name" not in run.stdout + run.stderr


@pytest.mark.parametrize("value", ["my_modal_key", "my-modal-key"])
def test_ocr_backends_shows_a_refused_transport_setting_as_its_row(value: str, tmp_path: Path) -> None:
    """A user profile whose Modal key variable is no capitals name: one "not configured" row
    saying why (``ocr backends`` ended in a traceback, and ``--json`` printed none)."""
    from .test_bad_inputs import ocr

    (tmp_path / "cfg" / "backends").mkdir(parents=True)
    (tmp_path / "cfg" / "backends" / "mymodal.toml").write_text(
        'transport = "openai"\ndialect = "lighton"\nmodel = "m"\nbase_url = "https://ws--x-serve.modal.run/v1"\n'
        f'[transport_options]\nmodal = true\nmodal_key_env = "{value}"\n'
    )
    env = {"OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg")}
    listed = ocr(["backends", "--json"], env)
    assert listed.code == 0 and "Traceback" not in listed.stderr, listed.stderr
    (row,) = [r for r in json.loads(listed.stdout) if r["name"] == "mymodal"]
    assert row["configured"] is False and "modal_key_env" in row["detail"]
    table = ocr(["backends"], env)
    assert table.code == 0 and "Traceback" not in table.stderr, table.stderr


def test_every_help_text_shows_its_square_brackets() -> None:
    """Help texts are rich markup: ``<!-- page N [status] -->`` printed as ``<!-- page N  -->``
    (``[status]`` read as a style).  Every option's help, of every command, rendered as
    ``--help`` shows each bracketed part it has."""
    import typer.main
    from typer.testing import CliRunner

    group = typer.main.get_command(app)
    checked = 0
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        shown = " ".join(CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "300"}).output.split())
        for param in command.params:
            text = (getattr(param, "help", None) or "").replace("\\[", "[")
            for part in re.findall(r"\[[^\]]*\]", text):
                checked += 1
                assert part in shown, (name, param.name, part)
    assert checked


@pytest.mark.parametrize("transport", ["runpod", "openai", "ocular"])
@pytest.mark.parametrize("trouble", ["key refused", "unreachable"])
def test_health_json_says_a_failure_as_every_command_does(transport: str, trouble: str, tmp_path: Path) -> None:
    """Every remote transport, down in each way: ``ocr health --json`` has ``error`` and
    ``exit_code`` beside its fields (README: "the other commands' --json print {ok: false,
    error, exit_code} when they fail"); a server refusing the settings exits 2, as ``convert``
    does for a refused key, one that cannot be reached 1."""
    from ocrclient.testing import OcularSimulator, OpenAISimulator
    from ocrclient.testing.runpod_sim import RunPodSimulator

    sims = {"runpod": lambda: RunPodSimulator(api_key="rp-right-key-1234"),
            "openai": lambda: OpenAISimulator(api_key="sk-right-key-1234"),
            "ocular": lambda: OcularSimulator(api_key="oc-right-key-1234")}  # fmt: skip
    with sims[transport]() as sim:
        url = sim.url if transport == "ocular" else sim.base_url
        args = {"runpod": ["--backend", "runpod", "--model", "m", "--endpoint-id", str(getattr(sim, "endpoint_id", ""))],
                "openai": ["--backend", "openai", "--model", sim.model if transport == "openai" else "m"],
                "ocular": ["--backend", "runpod-trocr", "--transport", "ocular"]}[transport]  # fmt: skip
        if trouble == "unreachable":
            url = "http://127.0.0.1:9" + ("/v1" if transport == "openai" else "")
        env = {**os.environ, "RUNPOD_API_KEY": "wrong-key-5678", "OCRCLIENT_API_KEY": "wrong-key-5678",
               "NO_COLOR": "1", "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg")}  # fmt: skip
        run = subprocess.run([sys.executable, "-m", "ocrclient.cli", "health", *args, "--base-url", url, "--json"],
                             env=env, capture_output=True, text=True, timeout=90)  # fmt: skip
    out = json.loads(run.stdout)
    want = 2 if trouble == "key refused" else 1
    assert run.returncode == want, (run.returncode, run.stdout, run.stderr)
    assert out["ok"] is False and out["exit_code"] == want and out["error"] == out["detail"] and out["error"]


_REFUSED = {  # a setting `ocr convert` refuses before sending, as a user config sets it
    "sampling": ("[backends.openai.sampling]\ntop_p = 5\n", "top_p"),
    "transport option": ("[backends.openai.transport_options]\nstrem = true\n", "strem"),
    "render": ("[backends.openai.render]\ndpi = -1\n", "dpi"),
    "dialect option": ("[backends.openai]\ndialect = \"plain\"\n[backends.openai.dialect_options]\nprompt_position = \"sideways\"\n",
                       "prompt_position"),
    "pairing": ("[backends.openai]\ndialect = \"rapidocr\"\n", "cannot carry"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(_REFUSED))
def test_config_and_backends_refuse_what_convert_refuses(case: str, tmp_path: Path) -> None:
    """``ocr config`` (exit 0) and ``ocr backends`` ("configured") passed settings ``ocr
    convert`` then refused.  Each kind of setting refused when the backend loads: ``ocr config``
    shows the settings with convert's own line as ``refused``, exit 2; ``ocr backends`` says
    the backend is not configured, with that line."""
    from .test_bad_inputs import ocr

    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    table, needle = _REFUSED[case]
    (cfg_dir / "config.toml").write_text(table, encoding="utf-8")
    env = {"OCRCLIENT_CONFIG_DIR": str(cfg_dir), "OCRCLIENT_BASE_URL": "http://127.0.0.1:9/v1", "OCRCLIENT_MODEL": "m"}
    pdf = tmp_path / "a.pdf"
    text_pdf(pdf, [["one"]])
    converted = ocr(["convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", "openai"], env=env)
    shown = ocr(["config", "--backend", "openai"], env=env)
    listed = ocr(["backends", "--json"], env=env)
    assert converted.code == shown.code == 2, (converted.stderr, shown.stderr)
    line = converted.stderr.strip().splitlines()[-1].removeprefix("error: ")
    assert needle in line and json.loads(shown.stdout)["refused"] == line
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "openai")
    assert row["configured"] is False and row["detail"] == line


def test_config_takes_the_run_flags_convert_takes() -> None:
    from .test_bad_inputs import ocr

    run = ocr(["config", "--backend", "runpod-chandra", "--endpoint-id", "abc123", "-c", "16", "--dpi", "144",
               "--mode", "runsync", "--keep-furniture"], env={"RUNPOD_API_KEY": "rpa-0123456789abcdef"})  # fmt: skip
    assert run.code == 0, run.stderr
    shown = json.loads(run.stdout)
    assert shown["concurrency"] == 16 and shown["dialect_options"]["include_headers_footers"] is True
    assert shown["refused"] is None


def test_health_refuses_a_profile_asking_document_mode_where_convert_would(tmp_path: Path) -> None:
    """The older spelling, ``[dialect_options] document_mode = true`` in a profile, makes every
    run a document-mode run: ``ocr health`` passed such a profile over openai, which convert
    refuses."""
    from .test_bad_inputs import ocr

    prof = tmp_path / "docs.toml"
    prof.write_text('transport = "openai"\ndialect = "deepseek"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
                    '[dialect_options]\ndocument_mode = true\n', encoding="utf-8")  # fmt: skip
    run = ocr(["health", "--backend", str(prof)])
    assert run.code == 2 and "document mode (whole PDFs) needs a RunPod endpoint" in run.stderr, run.stderr


@pytest.mark.parametrize("argv", [
    ["convert", "x.pdf", "-o", "OUT", "-c", "0", "--json"],
    ["convert", "x.pdf", "-o", "OUT", "--dpi", "abc", "--json"],
    ["convert", "x.pdf", "-o", "OUT", "--bogus", "--json"],
    ["health", "--json", "--bogus"],
    ["bench", "x.pdf", "-c", "0", "--json"],
    ["backends", "--json", "--bogus"],
    ["cache", "info", "--json", "--bogus"],
])  # fmt: skip
def test_json_says_why_when_the_parser_refuses_the_command_line(argv: list[str], tmp_path: Path) -> None:
    """The whole kind: every command with ``--json`` given a command line its parser refuses (an
    option's bound, a value of the wrong type, an unknown option) printed nothing on stdout,
    only the usage box; now the object every failing ``--json`` prints, with the parser's
    message, exit 2."""
    from .test_bad_inputs import ocr

    run = ocr([str(tmp_path / "out") if a == "OUT" else a for a in argv])
    assert run.code == 2, run.stderr
    out = json.loads(run.stdout)
    assert out["exit_code"] == 2 and out["error"], out
    # ... and without --json, one error line naming the help to read (it was typer's usage and a
    # box of five lines)
    plain = ocr([str(tmp_path / "out") if a == "OUT" else a for a in argv if a != "--json"])
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert plain.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), plain.stderr
    assert f" {argv[0]} " in lines[0] and "--help tells more" in lines[0], lines


def test_a_file_named_like_an_option_is_told_to_go_after_the_double_dash(tmp_path: Path) -> None:
    from .test_bad_inputs import ocr

    (tmp_path / "-scan.png").write_bytes(b"")
    run = ocr(["convert", "-scan.png"], cwd=tmp_path)
    assert run.code == 2 and "goes after --:" in run.stderr and "convert -- -scan.png" in run.stderr, run.stderr


def test_a_file_is_in_the_same_shard_however_the_corpus_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole kind: one corpus at two mount points, named as a folder, a glob, absolute file
    lists, relative ones (with and without ``./``) from its own folder: every spelling puts each
    file in the same shard.  Keyed by the path as typed, machine A (``/mnt/a/*.pdf``) and
    machine B (``/data/b/*.pdf``) dropped some documents and converted others twice."""
    from ocrclient.cli.plan import plan_inputs as _plan
    from ocrclient.pages.inputs import Refused

    names = [f"doc{i}.pdf" for i in range(12)] + ["broken.pdf"]  # (one that cannot be converted: in one shard too)
    mounts = [tmp_path / "mnt" / "a" / "corpus", tmp_path / "data" / "corpus"]
    for m in mounts:
        m.mkdir(parents=True)
        for i, n in enumerate(names[:-1]):
            text_pdf(m / n, [[f"doc {i}"]], size=(0, 0, 100, 80))
        (m / "broken.pdf").write_bytes((m / "doc0.pdf").read_bytes()[:200])
    spellings: list[tuple[Path, list[str]]] = []  # (working directory, inputs)
    for m in mounts:
        spellings += [
            (tmp_path, [str(m)]),
            (tmp_path, [str(m / "*.pdf")]),
            (tmp_path, [str(m / n) for n in names]),
            (m, list(names)),
            (m, [f"./{n}" for n in names]),
            (m.parent, [f"{m.name}/{n}" for n in names]),
        ]
    assignments = []
    for cwd, inputs in spellings:
        monkeypatch.chdir(cwd)
        shard_of: dict[str, int] = {}
        for i in range(3):
            refused: list[Refused] = []
            plan, _ = _plan(inputs, None, None, f"{i}/3", ["md"], tmp_path / "out", refused)
            for name in [src.name for src, _idx in plan] + [r.name for r in refused]:
                assert Path(name).name not in shard_of, (cwd, inputs[0], name)
                shard_of[Path(name).name] = i
        assert sorted(shard_of) == sorted(names), (cwd, inputs[0])
        assignments.append(shard_of)
    assert all(a == assignments[0] for a in assignments), assignments
    assert len(set(assignments[0].values())) == 3  # (the split is not all in one shard)


@pytest.mark.parametrize("backend", SHIPPED)
@pytest.mark.parametrize("given", ["nothing", "key", "key+endpoint+url+model"])
def test_config_refuses_exactly_what_convert_refuses(backend: str, given: str, pdf: Path, tmp_path: Path) -> None:
    """``ocr config``'s "refused" is the line ``ocr convert`` stops on, for every shipped backend
    with nothing, only a key, or everything set: missing settings were filled in for the check,
    and ``ocr config`` said ``"refused": null`` (exit 0) where convert exited 2."""
    env = {"NO_COLOR": "1"}
    flags: list[str] = []
    if given != "nothing":
        env.update(SECRETS)
    if given == "key+endpoint+url+model":
        flags = ["--endpoint-id", "ep123", "--base-url", "http://127.0.0.1:9/v1", "--model", "some/model"]
    shown = invoke("config", "--backend", backend, *flags, env=env)
    refused = json.loads(shown.stdout)["refused"]
    if not flags:  # `ocr backends` calls it configured exactly when convert would take it
        rows = {r["name"]: r for r in json.loads(invoke("backends", "--json", env=env).stdout)}
        assert rows[backend]["configured"] is (refused is None), (rows[backend], refused)
    if refused is None:
        assert shown.exit_code == 0, shown.output
        return
    assert shown.exit_code == 2 and shown.stderr.strip() == f"error: {refused}", shown.output
    run = invoke("convert", str(pdf), "--backend", backend, *flags, "-o", str(tmp_path / "o"), "--quiet", env=env)
    assert run.exit_code == 2 and run.stderr.strip() == f"error: {refused}", (refused, run.output)


def test_a_missing_server_url_is_asked_for_in_the_backends_own_form() -> None:
    """Modal's profile asked for a RunPod proxy URL (``https://<pod-id>-8000.proxy.runpod.net/v1``)."""
    from ocrclient.config import resolve_config
    from ocrclient.errors import ConfigError
    from ocrclient.transports.openai import OpenAITransport

    for name in SHIPPED:
        cfg = resolve_config(name, model="m")
        if cfg.transport != "openai" or cfg.resolved_base_url():
            continue
        with pytest.raises(ConfigError) as err:
            OpenAITransport.from_config(cfg)
        want = "modal.run" if cfg.transport_options.get("modal") else "proxy.runpod.net"
        assert want in str(err.value), (name, str(err.value))


def test_a_result_of_bytes_does_not_repeat_them_in_its_repr() -> None:
    """A ConvertResult's repr held the whole upload (309,452 characters for a 110 kB PDF)."""
    from ocrclient.pages import open_sources

    data = (Path(__file__).parents[1] / "examples" / "sample.pdf").read_bytes()
    [src] = open_sources([data])
    assert src.data == data and len(repr(src)) < 1000, len(repr(src))


@pytest.mark.parametrize("backend", SHIPPED)
def test_document_mode_is_taken_only_by_a_deepseek_runpod_endpoint(backend: str, pdf: Path, tmp_path: Path) -> None:
    """Every shipped backend with ``--document-mode``: convert refuses before sending (exit 2,
    one line), unless the backend is a DeepSeek-OCR
    RunPod endpoint.  A Chandra or TrOCR endpoint was sent the whole PDF (and ``ocr health``
    said ok); every page then failed on the worker's refusal."""
    from ocrclient.config import resolve_config
    from ocrclient.docmode import check
    from ocrclient.errors import ConfigError

    cfg = resolve_config(backend, model="m" if backend in ("openai", "runpod") else None)
    takes = cfg.transport == "runpod" and cfg.dialect == "deepseek"
    if takes:
        check(cfg)
        return
    with pytest.raises(ConfigError, match=r"document mode \(whole PDFs\) needs"):
        check(cfg)
    env = {"NO_COLOR": "1", **SECRETS}
    flags = ["--endpoint-id", "ep1", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--document-mode"]
    run = invoke("convert", str(pdf), "--backend", backend, *flags, "-o", str(tmp_path / "o"), "--quiet", env=env)
    assert run.exit_code == 2 and "document mode (whole PDFs) needs" in run.stderr and run.stderr.count("\n") == 1, run.output
    assert not (tmp_path / "o").exists()  # (refused before the output folder is made)


def _config_json(*args: str) -> dict[str, Any]:
    out = CliRunner().invoke(app, ["config", *args])
    return dict(json.loads(out.stdout))


@pytest.mark.parametrize("dialect", ["lighton", "olmocr", "rolmocr", "chandra", "plain", "dots", "deepseek"])
def test_ocr_config_shows_the_render_spec_pages_are_sent_at(dialect: str, tmp_path: Path) -> None:
    """The whole kind: the generic ``openai`` backend under each chat dialect (whose own render
    spec the profile's ``render`` is laid over), and the image the OpenAI simulator received.
    ``ocr config`` showed only the profile's layer (dpi 150, no longest side) while LightOnOCR
    pages went out at a longest side of 1540."""
    import base64
    import io

    from PIL import Image

    from ocrclient.testing import OpenAISimulator

    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "one.pdf", [["one page"]])
    with OpenAISimulator(model="m") as sim:
        args = ["--backend", "openai", "--dialect", dialect, "--base-url", sim.base_url, "--model", "m"]
        shown = _config_json(*args)["render_used"]
        env = {"OCRCLIENT_API_KEY": sim.api_key or ""}
        CliRunner().invoke(app, ["convert", str(pdf), *args, "--no-cache", "-o", str(tmp_path / "out")], env=env)
        posts = [b for b in sim.bodies if isinstance(b, dict) and "messages" in b]
    assert posts, "nothing was sent"
    url = next(p["image_url"]["url"] for m in posts[0]["messages"] if isinstance(m["content"], list)
               for p in m["content"] if p.get("type") == "image_url")  # fmt: skip
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert url.startswith(f"data:image/{shown['format']}")
    # the page rendered here at the spec shown is the image that was sent
    from ocrclient.imaging import RenderSpec
    from ocrclient.pages import iter_pages

    here = next(iter(iter_pages(pdf, RenderSpec(**shown))))
    assert here.encoded is not None and (here.encoded.width, here.encoded.height) == image.size, (shown, image.size)


@pytest.mark.parametrize("url", ["http://256.1.1.1/v1", "http://127.0.0.1:99999/v1", "http://127.0.0.1:0/v1"])
@pytest.mark.parametrize("command", ["health", "bench", "config"])
def test_a_base_url_with_a_bad_host_or_port_is_one_line_from_every_command(command: str, url: str, tmp_path: Path) -> None:
    """``health`` and ``bench`` printed httpx's InvalidURL traceback (or an ExceptionGroup) for
    a host that is no IP address or a port out of range; ``convert``'s cases are in
    test_bad_inputs.py.  Now each is refused as the settings' one line, exit 2."""
    from .pdfgen import text_pdf

    pdf = text_pdf(tmp_path / "d.pdf", [["one"]])
    args = {"health": ["health"], "bench": ["bench", str(pdf)], "config": ["config"]}[command]
    run = subprocess.run([sys.executable, "-m", "ocrclient", *args, "--backend", "openai", "--base-url", url, "--model", "m"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert run.returncode == 2, (run.returncode, run.stderr[-600:])
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "base URL" in errors[0] and "Traceback" not in run.stderr, run.stderr[-600:]


#: user config files that cannot mean what they say, and the words of their one line
BAD_USER_CONFIGS = {
    "misspelt top-level key": ('default_backed = "runpod-chandra"\n', "did you mean 'default_backend'"),
    "misspelt cache cap": ('cache_max_byte = "10M"\n', "did you mean 'cache_max_bytes'"),
    "backends not a table": ("backends = 5\n", "backends must be a table"),
    "a backend's table not a table": ("[backends]\nlocal = 5\n", "backends.local must be a table"),
    "a backend's table a string": ('[backends]\nlocal = "fast"\n', "backends.local must be a table"),
    "misspelt backend table": ("[backends.runpod-chandar]\nconcurrency = 2\n", "did you mean 'runpod-chandra'"),
}


@pytest.mark.parametrize("case", sorted(BAD_USER_CONFIGS))
@pytest.mark.parametrize("command", ["convert", "config", "backends", "health", "cache", "bench"])
def test_a_user_config_that_cannot_mean_what_it_says_is_one_line_from_every_command(
    command: str, case: str, tmp_path: Path
) -> None:
    """The whole kind: each user config file that cannot be meant, through every command.  A
    misspelt key was ignored (another backend ran, another cache cap held, without a word); a
    ``backends`` that is not a table of tables was an AttributeError / TypeError traceback from
    every command, ``--json`` too."""
    from .pdfgen import text_pdf

    text, words = BAD_USER_CONFIGS[case]
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "config.toml").write_text(text)
    (cfg / "config.toml").chmod(0o600)
    pdf = text_pdf(tmp_path / "d.pdf", [["one"]])
    args = {"convert": ["convert", str(pdf), "-o", str(tmp_path / "out"), "--json"], "config": ["config"],
            "backends": ["backends"], "health": ["health"], "cache": ["cache", "info"], "bench": ["bench", str(pdf)]}[command]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRCLIENT_")}
    run = subprocess.run([sys.executable, "-m", "ocrclient", *args], capture_output=True, text=True, timeout=120,
                         env={**env, "OCRCLIENT_CONFIG_DIR": str(cfg), "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"),
                              "COLUMNS": "200"})  # fmt: skip
    assert run.returncode == 2, (run.returncode, run.stdout[-300:], run.stderr[-600:])
    assert "Traceback" not in run.stderr and words in run.stderr + run.stdout, run.stderr[-600:]
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, errors


@pytest.mark.parametrize("name", ["a-->x.png", "a--!>x.png", "a--x.png", "<!--x.png"])
def test_a_document_named_with_comment_syntax_stays_inside_its_comment(name: str, tmp_path: Path) -> None:
    """The whole kind: names holding what ends (or opens) an HTML comment, in the
    ``<!-- document: NAME -->`` line between documents on stdout.  ``a-->x.png`` ended the
    comment early: the rest of its name became the markdown's text."""
    import re as _re

    from PIL import Image

    from ocrclient.testing import OpenAISimulator

    for n in (name, "b.png"):
        Image.new("RGB", (200, 80), "white").save(tmp_path / n)
    with OpenAISimulator(model="m") as sim:
        run = CliRunner().invoke(app, ["convert", str(tmp_path / name), str(tmp_path / "b.png"), "--backend", "openai",
                                       "--base-url", sim.base_url, "--model", "m", "--no-cache", "--quiet"],
                                 env={"OCRCLIENT_API_KEY": sim.api_key or ""})  # fmt: skip
    assert run.exit_code == 0, run.output
    heads = [line for line in run.stdout.splitlines() if line.startswith("<!-- document:")]
    assert len(heads) == 2, run.stdout
    for line in heads:  # one comment, closed at the end of its line, and nothing that ends one before
        body = line[len("<!--") : -len("-->")]
        assert line.endswith(" -->") and "--" not in body, line
    assert not _re.search(r"-->\s*\S", run.stdout.replace("-->\n", "")), run.stdout


@pytest.mark.parametrize("fmt", ["md", "json", "txt", "html", "pdf"])
def test_a_full_disk_names_the_output_it_could_not_write(fmt: str, sim: OpenAISimulator, pdf: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The whole kind: each format's file meeting a full disk, whose error names no file
    ("[Errno 28] No space left on device" was all the error line and the JSON said): the line
    names the file that was not written, and the others are written."""
    import errno

    import ocrclient.exporters._io as io_mod

    real = io_mod._temp_beside

    def full(path: Path) -> Any:
        if path.name == f"doc.{fmt}":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path)

    monkeypatch.setattr(io_mod, "_temp_beside", full)
    out = tmp_path / "out"
    res = invoke("convert", str(pdf), "-o", str(out), *sim_args(sim), "--format", "md,json,txt,html,pdf", "--json",
                 env={**sim_env(sim), "COLUMNS": "80"})  # fmt: skip
    assert res.exit_code == 1, res.output
    (error,) = json.loads(res.stdout)["documents"][0]["output_errors"]
    assert f"doc.{fmt}" in error and "No space left" in error, error
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"doc.{fmt}" in lines[0], res.stderr


@pytest.mark.parametrize("cause", ["a failed page", "an output not written", "an input refused"])
def test_under_quiet_every_exit_1_says_why(cause: str, tmp_path: Path) -> None:
    """``--quiet`` keeps only errors on stderr: a run that exits 1 says why there, one line each
    (a failed page's line was hidden: exit 1 with nothing on stderr, and without -o no JSON)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    text_pdf(docs / "a.pdf", [["one"], ["two"]], size=(0, 0, 200, 120))
    plan = FaultPlan(rates={"http_400": 1.0}, max_faults_per_key=1) if cause == "a failed page" else None
    out = tmp_path / "out"
    if cause == "an output not written":
        out.mkdir()
        (out / "a.json").mkdir()  # a folder where the JSON must go
    if cause == "an input refused":
        (docs / "empty.pdf").write_bytes(b"")
    with OpenAISimulator(model=MODEL, plan=plan) as sim:
        env = {**os.environ, **sim_env(sim), "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg")}
        run = _cli("convert", str(docs), "-o", str(out), *sim_args(sim), "-c", "1", "--no-cache", "--quiet", env=env)
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith(("error:", "failed")) for line in lines), run.stderr
