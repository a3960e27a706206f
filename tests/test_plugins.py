"""Third-party plugins through entry points (ocrclient.plugins, docs/plugins.md).

The worked example ``examples/plugin/`` is really installed (pip, into a temporary folder put on
``PYTHONPATH``) and used through the ``ocr`` command: its backend is listed, a convert through its
dialect and into its output format works.  A plugin reusing a built-in name is refused, with one
line and exit 2, in every group."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocrclient import plugins
from ocrclient.config import list_profiles
from ocrclient.errors import ConfigError
from ocrclient.exporters import EXPORTERS, write_outputs
from ocrclient.registry import load_backend
from ocrclient.testing import FixedResponder, OpenAISimulator

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "plugin"
SAMPLE = ROOT / "examples" / "sample.pdf"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install examples/plugin`` (no dependencies, no network) into a folder of its own."""
    site = tmp_path_factory.mktemp("plugin") / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(EXAMPLE)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (site / "ocrclient_shout" / "acme-shout.toml").is_file()
    return site


def _ocr(site: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")]),
            "NO_COLOR": "1", "COLUMNS": "200", "OCRCLIENT_CONFIG_DIR": str(site.parent / "config")}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ocrclient.cli", *args], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=120)  # fmt: skip


def _dist_info(folder: Path, dist: str, groups: dict[str, dict[str, str]]) -> Path:
    """A minimal installed distribution (``METADATA`` + ``entry_points.txt``) under ``folder``."""
    info = folder / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n", encoding="utf-8")
    body = "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for g, eps in groups.items())
    (info / "entry_points.txt").write_text(body, encoding="utf-8")
    return folder


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on ``sys.path`` for fake distributions; the entry-point cache is reset around it."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    plugins.refresh()
    yield folder
    plugins.refresh()


# ------------------------------------------------------------------------------------------------
# the worked example, installed
# ------------------------------------------------------------------------------------------------


def test_installed_plugin_backend_is_listed(installed: Path) -> None:
    proc = _ocr(installed, "backends", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["acme-shout"]["dialect"] == "shout" and rows["acme-shout"]["transport"] == "openai"
    assert "local" in rows and "runpod-chandra" in rows  # the shipped ones are still there


def test_convert_through_the_installed_plugin(installed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with OpenAISimulator(model="acme/shout-ocr", responder=FixedResponder("Hello, page.")) as sim:
        env = {"SHOUT_BASE_URL": sim.base_url, "SHOUT_API_KEY": str(sim.api_key)}
        proc = _ocr(installed, "convert", str(SAMPLE), "--backend", "acme-shout", "--pages", "1-2",
                    "--format", "md,json,csv", "--no-cache", "-o", str(out), "-q", env=env)  # fmt: skip
        sent = list(sim.bodies)
    assert proc.returncode == 0, proc.stderr
    # the plugin's dialect built the request and read the reply
    assert sent and sent[-1]["max_tokens"] == 2048 and "Transcribe this page as markdown." in json.dumps(sent[-1])
    doc = json.loads((out / "sample.json").read_text(encoding="utf-8"))
    assert [p["markdown"] for p in doc["pages"]] == ["HELLO, PAGE.", "HELLO, PAGE."]
    # the plugin's output format wrote its file, one row per block
    rows = list(csv.reader((out / "sample.csv").open(encoding="utf-8")))
    assert rows[0] == ["page", "type", "x0", "y0", "x1", "y1", "text"]
    assert [(r[0], r[-1]) for r in rows[1:]] == [("1", "HELLO, PAGE."), ("2", "HELLO, PAGE.")]


def test_a_plugin_reusing_a_builtin_name_is_refused_by_the_cli(tmp_path: Path) -> None:
    clash = _dist_info(tmp_path / "clash", "acme-local", {"ocrclient.backends": {"local": "ocrclient_shout:acme-shout.toml"}})
    proc = _ocr(clash, "backends")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "'acme-local'" in lines[0] and "backend 'local'" in lines[0] and "built in" in lines[0]
    # the same for an output format named like a built-in one, where convert reads the formats
    md = _dist_info(tmp_path / "md", "acme-md", {"ocrclient.exporters": {"md": "ocrclient_shout.csv_export:write"}})
    proc = _ocr(md, "convert", str(SAMPLE), "--backend", "local", "-f", "md", "-o", str(tmp_path / "o"), "-q")
    assert proc.returncode == 2 and "output format 'md'" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------
# every group: found, and a clash refused (in process, fake distributions on sys.path)
# ------------------------------------------------------------------------------------------------


def test_every_group_finds_its_plugins(on_path: Path, tmp_path: Path) -> None:
    pkg = on_path / "acme_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "p.toml").write_text('transport = "acme-t"\ndialect = "acme-d"\nmodel = "m"\n', encoding="utf-8")
    _dist_info(on_path, "acme", {
        "ocrclient.transports": {"acme-t": "ocrclient.transports.openai:OpenAITransport"},
        "ocrclient.dialects": {"acme-d": "ocrclient.dialects.plain:PlainDialect"},
        "ocrclient.backends": {"acme-b": "acme_pkg:p.toml"},
        "ocrclient.exporters": {"acme-x": "ocrclient.exporters.text:write"},
    })  # fmt: skip
    assert list_profiles()["acme-b"] == pkg / "p.toml"
    backend = load_backend("acme-b", base_url="http://127.0.0.1:9/v1")
    assert type(backend.transport).__name__ == "OpenAITransport" and type(backend.dialect).__name__ == "PlainDialect"
    assert EXPORTERS["acme-x"] == ("ocrclient.exporters.text:write", ".acme-x")
    assert "acme-x" in EXPORTERS and "md" in EXPORTERS
    from ocrclient.document import Document

    written = write_outputs(Document(source="x.pdf", backend="local"), tmp_path / "w", "x", ["acme-x"])
    assert [p.name for p in written] == ["x.acme-x"]


@pytest.mark.parametrize(
    "group,name,value,use",
    [
        ("ocrclient.transports", "runpod", "acme:T", lambda: load_backend("runpod-chandra")),
        ("ocrclient.dialects", "chandra", "acme:D", lambda: load_backend("runpod-chandra")),
        ("ocrclient.backends", "local", "acme:local.toml", list_profiles),
        ("ocrclient.exporters", "json", "acme:write", lambda: EXPORTERS["json"]),
    ],
    ids=["transport", "dialect", "backend", "exporter"],
)
def test_a_builtin_name_taken_by_a_plugin_is_an_error(on_path: Path, group: str, name: str, value: str, use: object) -> None:
    _dist_info(on_path, "acme-clash", {group: {name: value}})
    with pytest.raises(ConfigError, match=rf"plugin 'acme-clash' registers the .* '{name}', which is built in"):
        use()  # type: ignore[operator]


def test_two_plugins_with_one_name_is_an_error(on_path: Path) -> None:
    _dist_info(on_path, "acme-one", {"ocrclient.exporters": {"blocks": "acme_one:write"}})
    _dist_info(on_path, "acme-two", {"ocrclient.exporters": {"blocks": "acme_two:write"}})
    with pytest.raises(ConfigError, match="'acme-one' and 'acme-two' both register the output format 'blocks'"):
        list(EXPORTERS)


def test_entry_points_are_read_once(on_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One scan of the installed distributions serves every group (a scan per group read every
    distribution's entry points four times), and a plugin in each group is still found."""
    calls: list[dict[str, str]] = []
    real = plugins.entry_points

    def counting(**params: str):  # type: ignore[no-untyped-def]
        calls.append(params)
        return real(**params)

    _dist_info(on_path, "acme-all", {
        "ocrclient.exporters": {"acme-blocks": "acme_all:write"},
        "ocrclient.dialects": {"acme-dialect": "acme_all:Dialect"},
        "ocrclient.transports": {"acme-transport": "acme_all:Transport"},
    })  # fmt: skip
    plugins.refresh()
    monkeypatch.setattr(plugins, "entry_points", counting)
    for _ in range(3):
        list(EXPORTERS)
        list_profiles()
        load_backend("local")
    assert calls == [{}]
    assert [p.name for p in plugins.discovered("output format")] == ["acme-blocks"]
    assert [p.name for p in plugins.discovered("dialect")] == ["acme-dialect"]
    assert [(p.name, p.dist) for p in plugins.discovered("transport")] == [("acme-transport", "acme-all")]
    plugins.refresh()
    list(EXPORTERS)
    assert calls == [{}, {}]  # refresh reads them again, once


@pytest.mark.parametrize(
    "value,message",
    [("acme_missing_pkg:p.toml", "package acme_missing_pkg is not installed"), ("no_colon_here", "is not 'package:file.toml'")],
)
def test_a_backend_entry_point_that_names_no_file_is_a_clear_error(on_path: Path, value: str, message: str) -> None:
    """... when that backend is used; it is still listed (the others run: see below)."""
    from ocrclient.config import resolve_config

    _dist_info(on_path, "acme-bad", {"ocrclient.backends": {"acme-bad": value}})
    assert "acme-bad" in list_profiles() and "local" in list_profiles()
    with pytest.raises(ConfigError, match=rf"plugin 'acme-bad': backend 'acme-bad' = .*{message}"):
        resolve_config("acme-bad")


def test_the_plugins_page_shows_the_example_as_it_is() -> None:
    """docs/plugins.md quotes the example's files: each quoted block is in the file it names."""
    import re

    page = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:toml|python) file=(\S+)\n(.*?)```", page, re.S)
    assert {name for name, _ in blocks} == {
        "examples/plugin/pyproject.toml", "examples/plugin/ocrclient_shout/acme-shout.toml",
        "examples/plugin/ocrclient_shout/csv_export.py",
    }  # fmt: skip
    for name, body in blocks:
        assert body in (ROOT / name).read_text(encoding="utf-8"), name


_BAD_WRITERS = {
    "raises": "def write(doc, path, **kw):\n    raise ValueError('exporter bug')\n",
    "returns None": "def write(doc, path, **kw):\n    path.write_text('x')\n",
    "returns a number": "def write(doc, path, **kw):\n    path.write_text('x')\n    return 3\n",
    "not callable": "write = 3\n",
}


@pytest.mark.parametrize("how", sorted(_BAD_WRITERS))
def test_a_failing_plugin_writer_costs_its_own_file_only(how: str, tmp_path: Path) -> None:
    """A plugin writer that raises, returns no path or is no function: one error line for its
    format, every other format and the manifest written, exit 1 (it was a traceback with only
    the files written before it; in Python a raw ValueError that lost the converted document)."""
    site = _dist_info(tmp_path / "site", "acme-bad", {"ocrclient.exporters": {"badfmt": "acme_bad_writer:write"}})
    (site / "acme_bad_writer.py").write_text(_BAD_WRITERS[how], encoding="utf-8")
    out = tmp_path / "out"
    proc = _ocr(site, "convert", str(SAMPLE), "--pages", "1", "-f", "md,badfmt,json", "--no-cache", "-o", str(out), "-q")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "badfmt" in proc.stderr, proc.stderr
    assert (out / "sample.md").is_file() and (out / "sample.json").is_file()
    assert json.loads((out / "manifest.jsonl").read_text().splitlines()[-1])["output_errors"] == 1
    # the same writer through the Python API: OutputError, with the document and the other files
    code = ("import ocrclient, sys\n"
            "from ocrclient.exporters import write_outputs\n"
            f"doc = ocrclient.convert({str(SAMPLE)!r}, backend='local', pages='1', cache=False)\n"
            "try:\n"
            f"    write_outputs(doc, {str(tmp_path / 'api')!r}, 'sample', ['md', 'badfmt', 'json'])\n"
            "except ocrclient.OutputError as exc:\n"
            "    print(len(exc.errors), sorted(p.name for p in exc.written), exc.document.pages[0].status)\n")  # fmt: skip
    api = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src")]),
                              "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg")})  # fmt: skip
    assert api.stdout.split() == ["1", "['sample.json',", "'sample.md']", "ok"], api.stdout + api.stderr


_BROKEN_TRANSPORTS = {
    "module that does not compile": "def broken(:\n",
    "not a class": "Thing = 3\n",
    "from_config raises": ("class Thing:\n    @classmethod\n    def from_config(cls, cfg):\n"
                           "        raise RuntimeError('exploded')\n"),
    "health raises": ("from ocrclient.transports.base import Health\n"
                      "class Thing:\n    @classmethod\n    def from_config(cls, cfg):\n        return cls()\n"
                      "    async def health(self):\n        raise RuntimeError('health exploded')\n"
                      "    async def send(self, request):\n        raise RuntimeError('send exploded')\n"
                      "    async def aclose(self):\n        pass\n"),
}  # fmt: skip


@pytest.mark.parametrize("how", sorted(_BROKEN_TRANSPORTS))
def test_a_broken_plugin_transport_is_one_line_in_every_command(how: str, tmp_path: Path) -> None:
    """A plugin transport that does not import, is no class, fails to set up or fails its
    health check: one error line from every command that uses it, never a traceback; ``ocr
    backends`` still lists every backend (it printed a traceback and listed none)."""
    site = _dist_info(tmp_path / "site", "acme-broken", {
        "ocrclient.transports": {"acme-t": "acme_broken_t:Thing"},
        "ocrclient.backends": {"acme-b": "acme_broken_t:acme-b.toml"},
    })  # fmt: skip
    pkg = site / "acme_broken_t"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(_BROKEN_TRANSPORTS[how], encoding="utf-8")
    (pkg / "acme-b.toml").write_text('transport = "acme-t"\ndialect = "plain"\nmodel = "m"\nmax_attempts = 1\n',
                                     encoding="utf-8")  # (one attempt: a send that raises is not tried again)
    out = tmp_path / "out"
    for args in (["convert", str(SAMPLE), "--pages", "1", "--backend", "acme-b", "--no-cache", "-o", str(out), "-q"],
                 ["config", "--backend", "acme-b"], ["health", "--backend", "acme-b"], ["backends"]):  # fmt: skip
        proc = _ocr(site, *args)
        assert "Traceback" not in proc.stderr + proc.stdout, (args, proc.stderr)
        if args[0] == "backends":
            assert proc.returncode == 0 and "local" in proc.stdout and "acme-b" in proc.stdout, proc.stderr
            continue
        if args[0] in ("convert", "config") and how == "health raises":  # (it sets up: pages fail, the run goes on)
            assert proc.returncode == (1 if args[0] == "convert" else 0), proc.stderr
            continue
        assert proc.returncode in (1, 2), (args, proc.returncode, proc.stderr)
        errors = [line for line in (proc.stderr + proc.stdout).splitlines() if line.startswith("error:")]
        assert len(errors) == 1 or args[0] == "config", (args, proc.stderr, proc.stdout)


def test_a_plugin_backend_naming_no_file_fails_only_itself(tmp_path: Path) -> None:
    """An ``ocrclient.backends`` entry point whose package is not installed: that backend is
    refused in one line when used; every other backend still runs (``--backend local`` was
    refused for it, and ``ocr backends`` listed nothing)."""
    site = _dist_info(tmp_path / "site", "acme-nofile", {"ocrclient.backends": {"acme-x": "nosuchpkg:x.toml"}})
    proc = _ocr(site, "convert", str(SAMPLE), "--pages", "1", "--backend", "local", "--no-cache", "-o", str(tmp_path / "o"), "-q")
    assert proc.returncode == 0, proc.stderr
    proc = _ocr(site, "convert", str(SAMPLE), "--pages", "1", "--backend", "acme-x", "--no-cache", "-o", str(tmp_path / "p"))
    assert proc.returncode == 2 and "nosuchpkg is not installed" in proc.stderr and "Traceback" not in proc.stderr
    proc = _ocr(site, "backends", "--json")
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["acme-x"]["configured"] is False and "nosuchpkg" in rows["acme-x"]["detail"]
    assert "local" in rows
