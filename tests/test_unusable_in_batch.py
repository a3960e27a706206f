"""One file of a batch that cannot be converted is one ``error:`` line and leaves the others to
go on (exit 1, listed under ``refused`` in ``--json``); only a run with nothing left to convert
sends nothing (exit 2), as a single unusable input always does.  One empty PDF in a corpus of
thousands stopped every machine, each ``--shard`` too, even those that did not hold it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from .pdfgen import text_pdf


def _unusable(folder: Path) -> dict[str, str]:
    """Every way a file found in a folder can be unusable -> what its error line says."""
    good = text_pdf(folder / "_model.pdf", [["x"]]).read_bytes()
    (folder / "_model.pdf").unlink()
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "truncated.pdf").write_bytes(good[:200])
    (folder / "notes.pdf").write_text("just some text, not a document\n")
    (folder / "zip.png").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    (folder / "header.pdf").write_bytes(b"%PDF-1.7\n")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    Image.new("L", (64, 64)).save(folder / "t.tif")
    (folder / "bad.tif").write_bytes((folder / "t.tif").read_bytes()[:16])
    (folder / "t.tif").unlink()
    return {"empty.pdf": "it is empty", "truncated.pdf": "corrupt or truncated", "notes.pdf": "text file",
            "zip.png": "ZIP", "header.pdf": "PDF", "broken.png": "PNG", "bad.tif": "TIFF"}  # fmt: skip


def _ocr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCRCLIENT_CONFIG_DIR": str(cwd / "cfg"), "OCRCLIENT_CACHE_DIR": str(cwd / "cache"),
           "NO_COLOR": "1", "COLUMNS": "300"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ocrclient", "convert", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_every_unusable_file_of_a_folder_is_one_line_and_the_others_are_converted(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    bad = _unusable(docs)
    text_pdf(docs / "a.pdf", [["first document"]], size=(0, 0, 200, 100))
    text_pdf(docs / "sub" / "b.pdf", [["second document"]], size=(0, 0, 200, 100))
    run = _ocr("docs", "-o", "out", "--json", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == len(bad), run.stderr
    for name, says in bad.items():
        [line] = [line for line in lines if f"docs/{name}:" in line]
        assert says in line, line
    summary = json.loads(run.stdout)
    assert sorted(Path(r["source"]).name for r in summary["refused"]) == sorted(bad)
    assert [d["ok"] for d in summary["documents"]] == [1, 1]
    assert "first document" in (tmp_path / "out" / "a.md").read_text()
    assert "second document" in (tmp_path / "out" / "sub" / "b.md").read_text()


def test_nothing_left_to_convert_sends_nothing(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    bad = _unusable(docs)
    run = _ocr("docs", "-o", "out", "--json", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("error:") == len(bad) + 1, run.stderr  # each, then why nothing is sent
    summary = json.loads(run.stdout)
    assert summary["exit_code"] == 2 and sorted(Path(r["source"]).name for r in summary["refused"]) == sorted(bad)
    assert f"nothing to convert: none of the {len(bad)} input(s) found can be" in run.stderr.splitlines()[-1]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["empty.pdf", "truncated.pdf", "notes.pdf"])
def test_one_unusable_input_alone_is_refused(name: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    _unusable(docs)
    run = _ocr(f"docs/{name}", "-o", "out", cwd=tmp_path)
    assert run.returncode == 2 and run.stderr.count("error:") == 1, run.stderr


def test_each_shard_reports_only_its_own_unusable_files(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    bad = _unusable(docs)
    for i in range(6):
        text_pdf(docs / f"d{i}.pdf", [[f"doc {i}"]], size=(0, 0, 200, 100))
    said: list[str] = []
    converted: list[str] = []
    for i in range(3):
        run = _ocr("docs", "-o", "out", "--shard", f"{i}/3", "--json", cwd=tmp_path)
        said_here = json.loads(run.stdout)["refused"]
        assert run.returncode == (1 if said_here else 0), run.stderr
    for i in range(3):  # (again, into another folder: the first round's manifest skips the converted)
        run = _ocr("docs", "-o", "out2", "--shard", f"{i}/3", "--json", cwd=tmp_path)
        summary = json.loads(run.stdout)
        mine = [Path(r["source"]).name for r in summary["refused"]]
        assert run.returncode == (1 if mine else 0), run.stderr
        assert run.stderr.count("error:") == len(mine), run.stderr
        said += mine
        converted += [Path(d["source"]).name for d in summary["documents"]]
    assert sorted(said) == sorted(bad)
    assert sorted(converted) == [f"d{i}.pdf" for i in range(6)]


def test_a_shard_holding_only_unusable_files_reports_them_and_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its machine's share is done (those files cannot be converted); the others hold the rest:
    exit 1 with the files under ``refused``, not exit 2 with an empty list."""
    from ocrclient.cli.plan import plan_inputs as _plan
    from ocrclient.pages.inputs import Refused

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "empty.pdf").write_bytes(b"")
    for i in range(3):
        text_pdf(docs / f"d{i}.pdf", [[f"doc {i}"]], size=(0, 0, 200, 100))
    monkeypatch.chdir(tmp_path)
    def alone(spec: str) -> bool:
        refused: list[Refused] = []
        plan, _ = _plan(["docs"], None, None, spec, ["md"], tmp_path / "o", refused)
        return bool(refused) and not plan

    lone = next((f"{i}/{n}" for n in range(2, 12) for i in range(n) if alone(f"{i}/{n}")), None)
    assert lone is not None, "no shard holds the unusable file alone"
    run = _ocr("docs", "-o", "out", "--shard", lone, "--json", cwd=tmp_path)
    summary = json.loads(run.stdout)
    assert run.returncode == 1 and summary["exit_code"] == 1, run.stderr
    assert [Path(r["source"]).name for r in summary["refused"]] == ["empty.pdf"] and summary["documents"] == []


def test_inputs_named_one_by_one_are_a_batch_too(tmp_path: Path) -> None:
    """``ocr convert good.pdf bad.pdf``: the same as a folder holding them."""
    good = text_pdf(tmp_path / "good.pdf", [["good document"]], size=(0, 0, 200, 100))
    (tmp_path / "bad.pdf").write_bytes(b"GIF89a...")
    run = _ocr(str(good), "bad.pdf", "-o", "out", "--json", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("error:")] == [
        line for line in run.stderr.splitlines() if "bad.pdf" in line and line.startswith("error:")
    ]
    summary = json.loads(run.stdout)
    assert [r["source"] for r in summary["refused"]] == ["bad.pdf"] and summary["documents"][0]["ok"] == 1
