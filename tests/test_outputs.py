"""Where outputs go (``ocrclient.outputs.output_stems``): unique per input, always.

The property test builds a random tree of inputs (same stems in many folders, stems differing
only in case or suffix, nested folders, symlinked files and folders), names a random mix of
them as files, directories and glob patterns (and sometimes raw bytes), and checks: either the
run is refused — exactly when two inputs have the same path once the suffix is dropped (case
folded) — or every input gets its own output name, under OUT, that mirrors its own path from one
common root."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from ocrclient.errors import InputError
from ocrclient.outputs import output_stems
from ocrclient.pages import Source, open_sources


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2), "white").save(buf, "PNG")
    return buf.getvalue()


PNG = _png()  # every file holds a PNG: the type comes from the bytes, the suffix only selects

folders = st.lists(st.sampled_from(["a", "A", "b"]), min_size=0, max_size=2).map(tuple)
files = st.tuples(folders, st.sampled_from(["x", "X", "y"]), st.sampled_from([".pdf", ".png", ".PDF", ".jpg"]))


Tree = list[tuple[tuple[str, ...], str, str]]
Links = list[tuple[str, int, str]]
Picks = list[tuple[str, int]]
Scenario = tuple[Tree, Links, Picks]
KINDS = ("file", "dir", "glob", "link", "bytes")


@st.composite
def scenario(draw: st.DrawFn) -> Scenario:
    tree = draw(st.lists(files, min_size=1, max_size=10, unique_by=lambda f: (f[0], f[1] + f[2])))
    links = draw(st.lists(st.tuples(st.sampled_from(["file", "dir"]), st.integers(0, 7), st.sampled_from(["l1", "l2"])),
                          max_size=2, unique_by=lambda link: link[2]))  # fmt: skip
    picks = draw(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 50)), min_size=1, max_size=5))
    return tree, links, picks


def _build(root: Path, tree: Tree, links: Links) -> dict[str, list[str]]:
    """Write the tree under ``root``; return the input specs one may name (relative to root),
    by kind: files, folders, glob patterns and symlinks (to files and to folders)."""
    made: list[Path] = []
    for parts, stem, suffix in tree:
        folder = root.joinpath("t", *parts)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}{suffix}"
        if path.exists():  # "X.pdf" vs "x.pdf" on a case-insensitive disk
            continue
        path.write_bytes(PNG)
        made.append(path)
    specs: dict[str, list[str]] = {
        "file": [str(p.relative_to(root)) for p in made],
        "dir": sorted({str(p.parent.relative_to(root)) for p in made}),
        "glob": [*sorted({f"{p.parent.relative_to(root)}/*{p.suffix}" for p in made}), "t/**/*.*", "t/*"],
        "link": [],
    }
    for kind, index, name in links:
        target = made[index % len(made)]
        if kind == "dir" and target.parent == root / "t":
            continue  # a link to its own ancestor: glob's ** would follow it round and round
        link = root / "t" / (f"{name}{target.suffix}" if kind == "file" else f"links/{name}")
        if link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(target if kind == "file" else target.parent, target_is_directory=kind == "dir")
        specs["link"].append(str(link.relative_to(root)))
    return specs


def _clash_key(src: Source) -> tuple[str, ...]:
    """Two inputs must be refused exactly when this is equal: the input's absolute path as
    given without its suffix, case folded."""
    if src.path is None:
        return ("<bytes>", src.stem.casefold())
    path = Path(os.path.abspath(src.path))
    return (*(p.casefold() for p in path.parent.parts), src.stem.casefold())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_outputs_are_unique_and_mirror_their_own_source(case: Scenario) -> None:
    tree, links, picks = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        specs = _build(root, tree, links)
        chosen: list[str | bytes] = []
        for kind, index in picks:
            if kind == "bytes":
                chosen.append(PNG + b"%d" % index)  # distinct bytes, distinct documents
            elif specs[kind]:
                chosen.append(specs[kind][index % len(specs[kind])])
            event(f"names a {kind}")
        chosen = list(dict.fromkeys(chosen))
        with contextlib.chdir(root):
            try:
                sources = open_sources(chosen)
            except InputError as exc:  # a glob that picks up no file (``t/*.jpg`` vs ``X.JPG``)
                assert "matches no" in str(exc), exc
                event("no input")
                return
            out = Path("out")
            keys = [_clash_key(s) for s in sources]
            clash = len(set(keys)) < len(keys)
            try:
                stems = output_stems(sources, out)
            except InputError as exc:
                event("refused")
                assert clash, f"refused without a clash: {exc}"
                message = str(exc)
                assert "\n" not in message
                seen: dict[tuple[str, ...], Source] = {}
                for src in sources:  # the first input whose name is taken, and who took it
                    if (taken := seen.setdefault(_clash_key(src), src)) is not src:
                        first, second = taken, src
                        break
                assert f"{first.name} and {second.name} would both be written as" in message
                return
            assert not clash, f"two inputs clash but were not refused: {[s.name for s in sources]}"
            event("laid out")
            assert len({tuple(p.casefold() for p in s.parts) for s in stems}) == len(stems)
            mirror_root: Path | None = None
            for src, stem in zip(sources, stems, strict=True):
                rel = stem.relative_to(out)  # under OUT
                assert ".." not in rel.parts and not rel.is_absolute()
                assert rel.name == src.stem  # names its own source
                if src.path is None:
                    assert rel == Path(src.stem)
                    continue
                source_path = Path(os.path.abspath(src.path))
                # ... by its own path: OUT/<rel> + suffix is the input's path under one common root
                base = source_path.parents[len(rel.parts) - 1]
                assert base / rel.parent / source_path.name == source_path
                mirror_root = mirror_root or base
                assert base == mirror_root, (src.name, base, mirror_root)


# -- the cases the README promises and the refusals, spelled out ---------------------------------


def _tree(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PNG)


@pytest.mark.parametrize(
    "names, specs, expected",
    [
        (["docs/sample.pdf"], ["docs/sample.pdf"], ["out/sample"]),  # README: out/sample.md
        (["in/a.pdf", "in/s/b.png"], ["in"], ["out/a", "out/s/b"]),  # one folder: its tree
        (["a/x.pdf", "b/x.pdf"], ["a", "b"], ["out/a/x", "out/b/x"]),
        (["a/x.pdf", "b/x.pdf"], ["a/x.pdf", "b/x.pdf"], ["out/a/x", "out/b/x"]),
        (["a/x.pdf", "b/c/x.pdf"], ["a/*.pdf", "b/**/*.pdf"], ["out/a/x", "out/b/c/x"]),
        (["a/x.pdf", "a/y.pdf"], ["a/x.pdf", "a/y.pdf"], ["out/x", "out/y"]),
        # names no file system folds together (full case folding made ß "ss": refused)
        (["a/Straße.pdf", "a/STRASSE.pdf"], ["a/Straße.pdf", "a/STRASSE.pdf"], ["out/Straße", "out/STRASSE"]),
        (["a/x.pdf", "a/s/x.pdf"], ["a", "a/s/x.pdf"], ["out/s/x", "out/x"]),  # walked in order
    ],
)
def test_layout_examples(tmp_path: Path, names: list[str], specs: list[str], expected: list[str]) -> None:
    _tree(tmp_path, *names)
    with contextlib.chdir(tmp_path):
        stems = output_stems(open_sources(specs), Path("out"))
    assert [str(s) for s in stems] == expected


@pytest.mark.parametrize(
    "names, specs, first, second",
    [
        (["a/x.pdf", "a/x.png"], ["a"], "a/x.pdf", "a/x.png"),
        (["a/x.pdf", "a/X.png"], ["a/x.pdf", "a/X.png"], "a/x.pdf", "a/X.png"),
    ],
)
def test_two_inputs_with_one_name_are_refused(
    tmp_path: Path, names: list[str], specs: list[str], first: str, second: str
) -> None:
    _tree(tmp_path, *names)
    with contextlib.chdir(tmp_path), pytest.raises(InputError) as info:
        output_stems(open_sources(specs), Path("out"))
    assert str(info.value) == f"{first} and {second} would both be written as out/x.*; rename one or convert them in separate runs"


def test_an_output_that_would_overwrite_an_input_is_refused(tmp_path: Path) -> None:
    _tree(tmp_path, "scans/x.pdf")
    with contextlib.chdir(tmp_path):
        sources = open_sources(["scans"])
        assert [str(s) for s in output_stems(sources, Path("scans"), [".md", ".json"])] == ["scans/x"]
        with pytest.raises(InputError, match=r"writing scans/x\.pdf for scans/x\.pdf would overwrite the input"):
            output_stems(sources, Path("scans"), [".md", ".pdf"])


@pytest.mark.parametrize("name", ["manifest.pdf", "MANIFEST.png", "sub/manifest.pdf"])
def test_an_output_that_would_be_the_runs_manifest_is_refused(name: str, tmp_path: Path) -> None:
    """A format whose suffix is ``.jsonl`` (a plugin's) for an input named ``manifest``: its rows
    went into ``OUT/manifest.jsonl``, both spoilt, and the rerun read '0 pages'; one below OUT's
    top (``OUT/sub/manifest.jsonl``) is no manifest, and is written."""
    _tree(tmp_path, f"docs/{name}", "docs/other.pdf")
    with contextlib.chdir(tmp_path):
        sources = open_sources(["docs"])
        if "/" in name:
            output_stems(sources, Path("out"), [".md", ".jsonl"])
            return
        with pytest.raises(InputError, match=r"would overwrite the run's manifest"):
            output_stems(sources, Path("out"), [".md", ".jsonl"])
        output_stems(sources, Path("out"), [".md", ".json"])  # (no .jsonl: fine)


@pytest.mark.parametrize("spec", ["scans", "scans/*", "scans/**/*.*"], ids=["folder", "glob", "deep glob"])
def test_a_searchable_pdf_written_beside_its_scan_is_never_an_input(spec: str, tmp_path: Path) -> None:
    """The whole kind: ``ocr convert scans -o scans -f md,json,pdf`` (the README's layout: a scan
    and the PDF made of it side by side), run again, into the same folder and into another one,
    by a folder, a glob and a ``**`` glob.  The run's own ``scans/x.pdf`` (its manifest lists it)
    was met as a second input named like the scan: the rerun exited 2, and so did every later
    conversion of the folder anywhere."""
    from typer.testing import CliRunner

    from ocrclient.cli import app
    from ocrclient.testing import OpenAISimulator

    scans = tmp_path / "scans"
    scans.mkdir()
    Image.new("RGB", (300, 120), "white").save(scans / "x.png")
    with OpenAISimulator(model="m") as sim, contextlib.chdir(tmp_path):
        base = ["--backend", "openai", "--base-url", sim.base_url, "--model", "m", "--no-cache", "-f", "md,json,pdf"]
        env = {"OCRCLIENT_API_KEY": sim.api_key or ""}
        runs = [CliRunner().invoke(app, ["convert", spec, "-o", out, *base], env=env) for out in ("scans", "scans", "elsewhere")]
    for run in runs:
        assert run.exit_code == 0, run.output
    assert (scans / "x.pdf").is_file() and (tmp_path / "elsewhere" / "x.md").is_file()
    assert not (tmp_path / "elsewhere" / "x.pdf.md").exists()
    with contextlib.chdir(tmp_path):
        assert [s.name for s in open_sources([spec])] == [os.path.join("scans", "x.png")]


#: what the other input of the command is: convertible, refused as unusable, or left out by the
#: page range ("2-": a one-page document has none of it)
_OTHER = {
    "usable": lambda p: _two_pages(p),
    "empty file": lambda p: p.write_bytes(b""),
    "not a document": lambda p: p.write_text("plain text, named .pdf"),
    "encrypted, no password": lambda p: _encrypted(p),
    "left out by the range": lambda p: _one_page(p),
}


def _two_pages(path: Path) -> None:
    from .pdfgen import text_pdf

    text_pdf(path, [["one"], ["two"]])


def _one_page(path: Path) -> None:
    from .pdfgen import text_pdf

    text_pdf(path, [["only page"]])


def _encrypted(path: Path) -> None:
    from .test_bad_inputs import build_pdf

    path.write_bytes(build_pdf([(612, 792)] * 2, user_password="secret-pw"))


@pytest.mark.parametrize("other", sorted(_OTHER))
@pytest.mark.parametrize("pages", [None, "2-"])
def test_where_an_inputs_outputs_go_does_not_hang_on_whether_the_others_convert(
    other: str, pages: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ocr convert a/x.pdf b/y.pdf -o out`` writes ``out/a/x.*`` whatever ``b/y.pdf`` is: with it
    refused (empty, not a document, encrypted) or left out by ``--pages``, x went to ``out/x.*``,
    and a rerun once y was fixed wrote a second copy at ``out/a/x.*``."""
    from ocrclient.cli.plan import plan_inputs as _plan
    from ocrclient.pages.inputs import Refused

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _two_pages(tmp_path / "a" / "x.pdf")
    _OTHER[other](tmp_path / "b" / "y.pdf")
    monkeypatch.chdir(tmp_path)
    refused: list[Refused] = []
    with warnings.catch_warnings():  # (the page range's notes on y)
        warnings.simplefilter("ignore")
        plan, stem_of = _plan(["a/x.pdf", "b/y.pdf"], pages, None, None, ["md"], tmp_path / "out", refused)
    x = next(src for src, _ in plan if src.name.endswith("x.pdf"))
    assert stem_of[x.key] == tmp_path / "out" / "a" / "x", (other, pages, stem_of)


def test_the_python_api_lays_out_a_left_out_input_with_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same through ``convert_many(..., outputs=OutputWriter(...))``: the input the page
    range leaves out still takes its place in the layout."""
    import ocrclient
    from ocrclient.exporters.sink import OutputWriter

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _two_pages(tmp_path / "a" / "x.pdf")
    _one_page(tmp_path / "b" / "y.pdf")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(), OutputWriter(tmp_path / "out", ["json"]) as outputs:
        warnings.simplefilter("ignore")
        results = list(ocrclient.convert_many(["a/x.pdf", "b/y.pdf"], pages="2-", backend="local", cache=False,
                                              outputs=outputs))  # fmt: skip
    assert [Path(r.source.name).name for r in results] == ["x.pdf"]
    assert (tmp_path / "out" / "a" / "x.json").is_file(), sorted(p.name for p in (tmp_path / "out").rglob("*"))
