"""A rerun never sends back what the last run wrote.

``ocr convert scans -o scans/ocr`` walked ``scans`` again on the rerun (the documented resume)
and sent the run's own figure crops (``scans/ocr/<stem>_figures/*.png``) as new documents, paid
GPU time, and nested one level deeper on every rerun.  The kind: every place the output folder
can sit relative to what is walked (inside the input folder, deeper inside it, the input folder
itself, under a glob pattern's root), through the CLI and through the Python API's
``outputs=``: the rerun converts no new document.  A folder of the user's that merely ends in
``_figures`` is still an input, as is a file named outright."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.exporters.sink import OutputWriter
from ocrclient.testing import DialectResponder
from ocrclient.testing.runpod_sim import RunPodSimulator

from .pdfgen import text_pdf
from .test_bad_inputs import ocr

KEY = "rp-test-outputs-inside"


def _truth(image: Any) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    """Every page has a figure: the markdown output cuts a crop of it."""
    return [("text", "Text on the page.", (0.1, 0.1, 0.9, 0.2)), ("figure", "A chart", (0.2, 0.3, 0.8, 0.7))]


@pytest.fixture(scope="module")
def sim() -> Any:
    with RunPodSimulator(api_key=KEY, responder=DialectResponder("chandra", truth=_truth)) as s:
        yield s


def _env(sim: Any) -> dict[str, str]:
    return {"RUNPOD_API_KEY": KEY, "RUNPOD_CHANDRA_ENDPOINT_ID": str(sim.endpoint_id), "RUNPOD_BASE_URL": sim.base_url}


def _inputs(root: Path) -> None:
    (root / "sub").mkdir(parents=True, exist_ok=True)
    text_pdf(root / "report.pdf", [["page one"], ["page two"]])
    text_pdf(root / "sub" / "memo.pdf", [["a memo"]])


#: name -> (what is converted, the output folder), both under the test's folder
PLACES = {
    "inside the input folder": ("scans", "scans/ocr"),
    "deeper inside it": ("scans", "scans/sub/out/ocr"),
    "the input folder itself": ("scans", "scans"),
    "under a glob's root": ("scans/**/*", "scans/ocr"),
}


def _converted(stdout: str) -> list[str]:
    return sorted(Path(d["source"]).name for d in json.loads(stdout)["documents"])


@pytest.mark.parametrize("place", list(PLACES))
def test_a_cli_rerun_converts_no_output_of_the_last_run(place: str, sim: Any, tmp_path: Path) -> None:
    what, where = PLACES[place]
    (tmp_path / "scans" / "sub").mkdir(parents=True)
    _inputs(tmp_path / "scans")
    argv = ["convert", str(tmp_path / what), "-o", str(tmp_path / where), "--backend", "runpod-chandra",
            "--no-cache", "--json", "--quiet"]  # fmt: skip
    first = ocr(argv, _env(sim))
    assert first.code == 0, first.stderr
    assert _converted(first.stdout) == ["memo.pdf", "report.pdf"]
    assert list((tmp_path / where).rglob("*_figures/*.png")), "the run cut figure crops"
    for again in (argv, [*argv, "--redo"]):  # resumed, and redone from scratch
        rerun = ocr(again, _env(sim))
        assert rerun.code == 0, rerun.stderr
        assert _converted(rerun.stdout) == ([] if again is argv else ["memo.pdf", "report.pdf"]), rerun.stdout


def test_the_python_api_does_not_convert_its_own_outputs(sim: Any, tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    _inputs(scans)
    kw = {"backend": "runpod-chandra", "cache": False, "api_key": KEY, "endpoint_id": sim.endpoint_id,
          "base_url": sim.base_url}  # fmt: skip
    for _ in range(2):
        with OutputWriter(scans / "ocr", ["md", "json"]) as writer:
            results = list(ocrclient.convert_many([scans], outputs=writer, **kw))
        assert sorted(r.source.name.rsplit("/", 1)[-1] for r in results) == ["memo.pdf", "report.pdf"]
    assert list((scans / "ocr").rglob("*_figures/*.png"))


def test_a_users_own_figures_folder_and_a_file_named_outright_are_inputs(sim: Any, tmp_path: Path) -> None:
    """... and a user's PDF kept in a folder named like a markdown's crops folder
    (``report.md`` beside ``report_figures/``) is an input: only the crops a run saves there
    (``page<N>_fig<K>.png``) are passed over (every file there was skipped, without a word)."""
    scans = tmp_path / "scans"
    (scans / "plates_figures").mkdir(parents=True)
    text_pdf(scans / "plates_figures" / "plate.pdf", [["a plate"]])  # no plates.md beside it: the user's
    (scans / "notes_figures").mkdir()
    (scans / "notes.md").write_text("the user's own notes")
    text_pdf(scans / "notes_figures" / "appendix.pdf", [["an appendix"]])  # beside notes.md, and still the user's
    _inputs(scans)
    first = ocr(["convert", str(scans), "-o", str(scans / "ocr"), "--backend", "runpod-chandra", "--no-cache",
                 "--json", "--quiet"], _env(sim))  # fmt: skip
    assert first.code == 0 and _converted(first.stdout) == ["appendix.pdf", "memo.pdf", "plate.pdf", "report.pdf"], first.stderr
    (crop,) = list((scans / "ocr" / "report_figures").glob("*.png"))[:1]
    named = ocr(["convert", str(crop), "-o", str(tmp_path / "crop"), "--backend", "runpod-chandra", "--no-cache",
                 "--json", "--quiet"], _env(sim))  # fmt: skip
    assert named.code == 0 and _converted(named.stdout) == [crop.name], named.stderr


@pytest.mark.parametrize("pattern", ["{root}", "{root}/*.pdf", "{root}/**/*.pdf"])
@pytest.mark.parametrize("out", ["{root}", "{root}/..", "{root}/ocr"])
def test_an_output_folder_at_or_above_what_is_walked_holds_the_inputs(pattern: str, out: str, tmp_path: Path) -> None:
    """Only an output folder *below* the folder or pattern root is passed over: ``ocr convert
    'scans/*.pdf' -o scans`` (or ``-o .`` above it) found no input once outputs were excluded."""
    from ocrclient.pages.inputs import prepare

    root = tmp_path / "scans"
    _inputs(root)
    (root / "ocr").mkdir()
    text_pdf(root / "ocr" / "written.pdf", [["a file a run wrote"]])
    plan = prepare([pattern.format(root=root)], exclude=[out.format(root=root)])
    names = sorted(Path(src.name).name for src, _ in plan)
    flat = pattern == "{root}/*.pdf"
    want = ["report.pdf"] if flat else ["memo.pdf", "report.pdf"]
    if out.endswith("ocr") or flat:
        assert names == want, names
    else:  # the output folder holds the inputs: nothing below it is passed over
        assert names == sorted([*want, "written.pdf"]), names


@pytest.mark.parametrize("kind", ["png", "tiff", "pdf-in-sub"])
def test_a_searchable_pdf_never_replaces_a_pdf_no_run_wrote(kind: str, sim: Any, tmp_path: Path) -> None:
    """``scans/invoice.pdf`` (the user's) beside ``scans/invoice.png`` converted with ``-o scans
    -f md,pdf``: the searchable PDF of the image replaced the user's PDF without a word.  Now
    the run is refused before anything is sent; the run's own PDF is replaced on a rerun."""
    from PIL import Image

    from .test_bad_inputs import assert_unusable

    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    theirs = text_pdf(scans / "invoice.pdf", [["the user's own"], ["three"], ["pages"]])
    before = theirs.read_bytes()
    if kind == "pdf-in-sub":  # another PDF input whose output lands on the user's PDF
        src = text_pdf(scans / "sub" / "invoice.pdf", [["scanned"]])
        out = scans
        argv_in = [str(scans / "sub")]
    else:
        src = scans / f"invoice.{kind}"
        Image.new("RGB", (300, 200), "white").save(src)
        out = scans
        argv_in = [str(src)]
    jobs = sim.jobs_submitted
    argv = ["convert", *argv_in, "-o", str(out), "-f", "md,pdf", "--backend", "runpod-chandra", "--no-cache", "--quiet"]
    line = assert_unusable(ocr(argv, _env(sim)), "invoice.pdf", "no earlier run wrote")
    assert str(src.name) in line
    assert theirs.read_bytes() == before and sim.jobs_submitted == jobs  # nothing replaced, nothing sent
    # elsewhere it converts, and a rerun (and --redo) replaces the run's own PDF
    argv[argv.index(str(out))] = str(tmp_path / "ocr")
    for again in (argv, [*argv, "--redo"]):
        run = ocr(again, _env(sim))
        assert run.code == 0, run.stderr
    assert (tmp_path / "ocr" / "invoice.pdf").is_file()


@pytest.mark.parametrize("fmt", ["md", "json", "txt", "html", "pdf"])
def test_no_output_replaces_a_file_no_run_wrote(fmt: str, sim: Any, tmp_path: Path) -> None:
    """The whole kind of the searchable PDF's rule above: ``report.md`` (the user's own notes)
    beside ``report.pdf`` converted with ``-o`` their folder was replaced by the OCR's markdown
    without a word, exit 0 (and so its JSON, text, HTML).  Each format's file is now refused
    before anything is sent, and the run's own files are replaced by a rerun."""
    from .test_bad_inputs import assert_unusable

    folder = tmp_path / "x"
    folder.mkdir()
    text_pdf(folder / "report.pdf", [["page one"]])
    mine = folder / f"report.{fmt}"
    if fmt != "pdf":
        mine.write_text("my own notes\n")
    else:  # (the input is an image here, so that the user's PDF is not the input)
        (folder / "report.pdf").rename(mine)
        from PIL import Image

        Image.new("RGB", (300, 200), "white").save(folder / "report.png")
    before, jobs = mine.read_bytes(), sim.jobs_submitted
    src = folder / ("report.png" if fmt == "pdf" else "report.pdf")
    argv = ["convert", str(src), "-o", str(folder), "-f", f"md,{fmt}" if fmt != "md" else "md", "--backend", "runpod-chandra",
            "--no-cache", "--quiet"]  # fmt: skip
    assert_unusable(ocr(argv, _env(sim)), f"report.{fmt}", "no earlier run wrote")
    assert mine.read_bytes() == before and sim.jobs_submitted == jobs  # nothing replaced, nothing sent
    mine.unlink()
    for again in (argv, [*argv, "--redo"]):  # the run's own files: replaced on a rerun
        run = ocr(again, _env(sim))
        assert run.code == 0, run.stderr
    assert mine.is_file() and mine.read_bytes() != before


@pytest.mark.parametrize("case", ["one it would replace", "one it would remove", "an input there"])
def test_no_figure_crop_replaces_or_removes_a_file_no_run_wrote(case: str, sim: Any, tmp_path: Path) -> None:
    """The same rule for the markdown's figure crops (``report_figures/page<N>_fig<K>.png``): a
    run wrote its crops over a file of that name there that no run wrote, and removed the others
    as an earlier run's crops it no longer had -- the user's own image, or an input of the same
    run (``ocr convert x -o x`` with ``x/report_figures/page9_fig1.png``: converted, then
    deleted).  Now refused before anything is sent; the run's own crops are replaced and
    pruned by its reruns as before."""
    from PIL import Image

    from .test_bad_inputs import assert_unusable

    folder = tmp_path / "x"
    (folder / "report_figures").mkdir(parents=True)
    text_pdf(folder / "report.pdf", [["page one"]])
    name = {"one it would replace": "page1_fig1.png", "one it would remove": "page7_fig1.png"}.get(case, "page9_fig1.png")
    mine = folder / "report_figures" / name
    Image.new("RGB", (300, 200), "white").save(mine)
    before, jobs = mine.read_bytes(), sim.jobs_submitted
    src = folder if case == "an input there" else folder / "report.pdf"
    argv = ["convert", str(src), "-o", str(folder), "--backend", "runpod-chandra", "--no-cache", "--quiet"]
    assert_unusable(ocr(argv, _env(sim)), name, "no earlier run wrote")
    assert mine.read_bytes() == before and sim.jobs_submitted == jobs  # nothing replaced, nothing sent
    mine.rename(tmp_path / name)  # moved away, as the message says
    for again in (argv, [*argv, "--redo"]):
        run = ocr(again, _env(sim))
        assert run.code == 0, run.stderr
    assert (folder / "report_figures" / "page1_fig1.png").is_file()  # the run's own crop


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_a_run_stopped_after_its_first_crops_is_resumed_not_refused(stop: str, tmp_path: Path) -> None:
    """The refusal above never takes a run's own crops for a user's: a run stopped (or killed)
    once some of its crops are written, before its markdown is, is resumed by the next run into
    the same folder (its manifest names the document's files before the first crop is written),
    and the crops it left that the next run has not are removed (a killed run's, which no
    markdown links, stayed when only the linked ones were)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from ocrclient.testing import FaultPlan

    pdf = text_pdf(tmp_path / "long.pdf", [[f"page {i}"] for i in range(12)])
    out = tmp_path / "out"
    with RunPodSimulator(api_key=KEY, plan=FaultPlan(latency_s=1.0, slots=2),
                         responder=DialectResponder("chandra", truth=_truth)) as slow:  # fmt: skip
        argv = ["convert", str(pdf), "-o", str(out), "--backend", "runpod-chandra", "--cache-dir", str(tmp_path / "cache"),
                "--concurrency", "2", "--quiet"]  # fmt: skip
        env = {**os.environ, **_env(slow), "NO_COLOR": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "ocrclient.cli", *argv], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while len(list(out.glob("long_figures/*.png"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # (pages 1 and 2 done, one more: two or more crops besides page 1's)
        proc.send_signal(getattr(signal, stop))
        proc.communicate(timeout=60)
        # SIGTERM: what had finished written (with its manifest entry); SIGKILL: no markdown yet
        assert (proc.returncode, (out / "long.md").is_file()) == ((143, True) if stop == "SIGTERM" else (-9, False))
        left = sorted(p.name for p in out.glob("long_figures/*.png"))
        assert 3 <= len(left) < 12, left
        fewer = ocr([*argv, "--pages", "1"], _env(slow), timeout=120)  # one page: the others' crops go
        assert fewer.code == 0, fewer.stderr
        assert sorted(p.name for p in out.glob("long_figures/*.png")) == ["page1_fig1.png"]
        rerun = ocr(argv, _env(slow), timeout=120)
    assert rerun.code == 0, rerun.stderr
    assert len(list(out.glob("long_figures/*.png"))) == 12


def test_a_write_removes_only_the_crops_its_earlier_markdown_linked(sim: Any, tmp_path: Path) -> None:
    """The other half of the rule, for every writer (the Python API's ``OutputWriter``, which
    keeps no manifest, and a Document written again without its run): the crops an earlier
    markdown linked that the new one has not are removed, and nothing else named like a crop
    (they all were: a user's ``page9_fig1.png`` beside a run's crops went with them)."""
    from PIL import Image

    from ocrclient.document import Document
    from ocrclient.exporters.markdown import write

    out = tmp_path / "out"
    pdf = text_pdf(tmp_path / "report.pdf", [["page one"], ["page two"]])
    kw = {"backend": "runpod-chandra", "cache": False, "api_key": KEY, "endpoint_id": sim.endpoint_id, "base_url": sim.base_url}
    (out / "report_figures").mkdir(parents=True)
    mine = out / "report_figures" / "page9_fig1.png"
    Image.new("RGB", (30, 20), "white").save(mine)
    with OutputWriter(out, ["md"]) as writer:
        doc = ocrclient.convert(pdf, outputs=writer, **kw)
    ran = sorted(p.name for p in (out / "report_figures").iterdir())
    assert ran == ["page1_fig1.png", "page2_fig1.png", "page9_fig1.png"]  # the run's two, and the user's
    # the same document written again with page 2's figure gone: its crop goes, the user's stays
    fewer = Document.model_validate({**doc.model_dump(), "pages": [doc.pages[0].model_dump(),
                                     {**doc.pages[1].model_dump(), "blocks": [], "markdown": "page two"}]})  # fmt: skip
    write(fewer, out / "report.md", source=pdf)
    assert sorted(p.name for p in (out / "report_figures").iterdir()) == ["page1_fig1.png", "page9_fig1.png"]
    assert mine.is_file()


@pytest.mark.parametrize("gone", ["the whole folder", "one crop"])
def test_a_rerun_makes_again_the_figure_crops_its_markdown_links_to(gone: str, sim: Any, tmp_path: Path) -> None:
    """A deleted figure crop: the rerun took the document for finished (its md and json were
    there) and left the markdown's links dangling.  Now it converts the document again (from
    the page cache: nothing is sent) and the crops are back."""
    _inputs(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["convert", str(tmp_path / "in"), "-o", str(out), "--backend", "runpod-chandra",
            "--cache-dir", str(tmp_path / "cache"), "--json", "--quiet"]  # fmt: skip
    assert ocr(argv, _env(sim)).code == 0
    crops = sorted(out.rglob("*_figures/*.png"))
    assert crops
    if gone == "one crop":
        crops[-1].unlink()
    else:
        import shutil

        shutil.rmtree(crops[0].parent)
    jobs = sim.jobs_submitted
    rerun = ocr(argv, _env(sim))
    assert rerun.code == 0, rerun.stderr
    assert _converted(rerun.stdout), "the document with a missing crop was converted again"
    assert sim.jobs_submitted == jobs  # (from the page cache)
    assert all(c.is_file() for c in crops)
    again = ocr(argv, _env(sim))  # and now it is finished
    assert again.code == 0 and _converted(again.stdout) == []


def test_a_runs_json_beside_a_users_file_does_not_let_it_be_replaced(tmp_path: Path) -> None:
    """A run's JSON makes the files beside it the run's only when the manifest could not record
    that run (a full disk), and only for the very input it names: a recorded ``report.json``, or
    one made for another ``report.pdf``, let the user's ``report.md`` beside it be replaced."""
    from .test_bad_inputs import assert_unusable

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        text_pdf(tmp_path / name / "report.pdf", [[f"report {name}"]])
    out = tmp_path / "out"
    env = {"OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"), "OCRCLIENT_CONFIG_DIR": str(tmp_path / "cfg")}
    base = ["--backend", "local", "--no-progress", "-q"]
    assert ocr(["convert", str(tmp_path / "a" / "report.pdf"), "-o", str(out), "-f", "json", *base], env).code == 0
    (out / "report.md").write_text("my own notes\n")
    assert_unusable(ocr(["convert", str(tmp_path / "a" / "report.pdf"), "-o", str(out), "-f", "md,json", *base], env),
                    "report.md", "no earlier run wrote")  # fmt: skip
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.json").write_bytes((out / "report.json").read_bytes())  # a's JSON, no manifest here
    (other / "report.md").write_text("my own notes\n")
    assert_unusable(ocr(["convert", str(tmp_path / "b" / "report.pdf"), "-o", str(other), "-f", "md,json", *base], env),
                    "report.md", "no earlier run wrote")  # fmt: skip
    assert (out / "report.md").read_text() == (other / "report.md").read_text() == "my own notes\n"
