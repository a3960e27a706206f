"""Text from outside (a server's error message, a file's name, a folder's path) is printed as
text, on one line, by every human-readable line of the ``ocr`` command.  rich read it as markup:
a server message holding ``[/]`` ended ``ocr convert -v`` and ``ocr health`` with a MarkupError
traceback, ``[red]`` in a name was swallowed, and ``ocr health`` folded its one line at 80
columns when piped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrclient.testing import CannedReply, OpenAISimulator

from .pdfgen import text_pdf

#: a server's message as a markup parser would misread it, longer than a pipe's 80 columns
MESSAGE = "engine [/] is [red]down[/red] [bold]" + "x" * 90


def _ocr(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "80", **env}
    full.pop("OCRCLIENT_BACKEND", None)
    return subprocess.run([sys.executable, "-m", "ocrclient", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=full)  # fmt: skip


def _lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_a_server_message_is_printed_as_text_on_one_line(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [["one"]])
    with OpenAISimulator(model="m") as sim:
        sim.force_reply = CannedReply(503, {"error": {"message": MESSAGE, "type": "ServiceUnavailable", "code": 503}})
        profile = tmp_path / "two-tries.toml"
        profile.write_text('transport = "openai"\ndialect = "plain"\nmax_attempts = 2\napi_key_env = "OCRCLIENT_API_KEY"\n')
        base = ["--backend", str(profile), "--base-url", sim.base_url, "--model", "m"]
        env = {"OCRCLIENT_API_KEY": sim.api_key or ""}
        health = _ocr("health", *base, cwd=tmp_path, **env)
        convert = _ocr("convert", str(pdf), *base, "-o", str(tmp_path / "out"), "--no-cache", "-v", cwd=tmp_path, **env)
    for name, run in (("health", health), ("convert -v", convert)):
        out = run.stdout + run.stderr
        assert "Traceback" not in out and "MarkupError" not in out, (name, out[-800:])
        lines = _lines_with(out, "engine [/] is [red]down[/red] [bold]")
        assert lines, (name, out[-800:])
        assert all("x" * 90 in line for line in lines), (name, lines)  # not folded
    assert health.returncode == 1
    assert convert.returncode == 1


def test_a_file_name_and_an_output_path_are_printed_as_text(tmp_path: Path) -> None:
    folder = tmp_path / "[bold]run"
    folder.mkdir()
    pdf = text_pdf(folder / "[red]scan.pdf", [["one"]])
    out = folder / "out"
    first = _ocr("convert", pdf.name, "-o", str(out), "--no-cache", cwd=folder)
    assert first.returncode == 0, first.stderr[-800:]
    assert _lines_with(first.stdout + first.stderr, "[red]scan.pdf"), first.stdout + first.stderr
    again = _ocr("convert", pdf.name, "-o", str(out), "--no-cache", cwd=folder)
    said = again.stdout + again.stderr
    assert again.returncode == 0 and "Traceback" not in said, said[-800:]
    assert _lines_with(said, "skipping 1 input(s) already done") and "[bold]run" in said, said


@pytest.mark.parametrize("width", [80, 100, 160])
def test_the_summary_table_shows_every_file_name_whole(width: int) -> None:
    """At any width each file's whole name is in the summary, folded onto more lines where it
    must be (at 80 columns two long paths were both cut to '/data/corpus/…'), and the counts
    are never folded."""
    import io
    import re as _re
    from types import SimpleNamespace

    from rich.console import Console

    from ocrclient.cli.progress import summary
    from ocrclient.document import RunStats

    names = [f"/data/corpus/some_long_folder_name/document_{i}_with_a_long_name.pdf" for i in range(2)]
    rows = [SimpleNamespace(source=SimpleNamespace(name=n), document=SimpleNamespace(stats=RunStats(pages=12345, ok=12345)))
            for n in names]  # fmt: skip
    buf = io.StringIO()
    summary(rows, 1.0, Console(file=buf, width=width, no_color=True))
    cells = [line.split("│")[1].strip() for line in buf.getvalue().splitlines() if line.startswith("│")]
    assert "".join(cells) == "".join(names)
    assert len(_re.findall(r"12345", buf.getvalue())) == 4


@pytest.mark.parametrize(("extra", "column", "count"), [
    ({}, None, ""), ({"degraded": 2}, "degraded", "2"), ({"cached": 5}, "cached", "5"),
    ({"retries_by_cause": {"http_503": 3}}, "retries", "3"),
])  # fmt: skip
def test_the_summary_shows_degraded_cached_and_retries_when_a_file_has_some(
    extra: dict[str, object], column: str | None, count: str
) -> None:
    """Their three zeros left a file's name 14 of 80 columns ("quarterly-report-2024.pdf"
    folded over two lines); a run with none of them shows a 40-character name on one line, and
    a column comes back, with every file's count, as soon as one file has some."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from ocrclient.cli.progress import summary
    from ocrclient.document import RunStats

    names = ["annual-statement-consolidated-2023-q4.pdf", "b.pdf"]
    stats = [RunStats(pages=10, ok=10, **extra), RunStats(pages=3, ok=3)]  # type: ignore[arg-type]
    rows = [SimpleNamespace(source=SimpleNamespace(name=n), document=SimpleNamespace(stats=s))
            for n, s in zip(names, stats, strict=True)]  # fmt: skip
    buf = io.StringIO()
    summary(rows, 1.0, Console(file=buf, width=80, no_color=True))
    lines = buf.getvalue().splitlines()
    header = next(line for line in lines if "file" in line and "pages" in line)
    shown = [c.strip() for c in header.strip("┃").split("┃")]
    assert shown == ["file", "pages", "ok", *([column] if column == "degraded" else []), "failed",
                     *([column] if column in ("cached", "retries") else []), "pages/s"]  # fmt: skip
    body = [[c.strip() for c in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    if column is None:
        assert [r[0] for r in body] == names  # each name on one line
    else:  # (the name may fold again: each file's count on its first line)
        assert "".join(r[0] for r in body) == "".join(names)
        assert [r[shown.index(column)] for r in body if r[shown.index(column)]] == [count, "0"]
