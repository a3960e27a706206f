"""An encrypted PDF, converted with its password, is read as its unencrypted twin is.

Two seams met there.  The local engine read the PDF's own text layer with a handle opened without
the password: it failed, and the page was OCR'd in silence (slower, and less exact), even under
``--text-layer always``.  Document mode sent the original, still encrypted bytes when every page
was selected: the worker could not open them, and the run stopped with "PDF is encrypted" naming
an anonymous ``bytes:`` input.  The kind: every way an encrypted input is read after it is opened
(the local run from a path and from bytes, by the CLI and the API, each text-layer mode; the
document sent whole, every page or a selection) reads what its twin reads; and a layer that is
there but cannot be read says so on the page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pypdfium2 as pdfium
import pytest

import ocrclient
from ocrclient.docmode import pdf_subset
from ocrclient.pages import open_sources

from .test_bad_inputs import build_pdf

PASSWORD = "open-sesame"


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("twins")
    plain, locked = folder / "plain.pdf", folder / "locked.pdf"
    texts = ["Alpha reviews the shipping of the year", "Bravo reviews the dredging programme",
             "Charlie reviews the tonnage at the quays"]  # fmt: skip
    plain.write_bytes(build_pdf([(612, 792)] * 3, texts=texts))
    locked.write_bytes(build_pdf([(612, 792)] * 3, user_password=PASSWORD, texts=texts))
    return plain, locked


def _read(doc: ocrclient.Document) -> list[tuple[str, list[str | None], list[str]]]:
    return [(p.markdown, sorted({b.source for b in p.blocks}), p.warnings) for p in doc.pages]


@pytest.mark.parametrize("mode", ["auto", "always"])
@pytest.mark.parametrize("given", ["path", "bytes"])
def test_the_local_engine_reads_an_encrypted_pdfs_layer(given: str, mode: str, twins: tuple[Path, Path]) -> None:
    plain, locked = twins
    opts = {"dialect_options": {"text_layer": mode}, "cache": False}
    want = _read(ocrclient.convert(plain, **opts))
    src = locked if given == "path" else locked.read_bytes()
    got = _read(ocrclient.convert(src, password=PASSWORD, **opts))
    assert got == want and all(sources == ["text-layer"] for _, sources, _ in got), got


def test_the_cli_reads_it_too(twins: tuple[Path, Path], tmp_path: Path) -> None:
    _, locked = twins
    run = subprocess.run([sys.executable, "-m", "ocrclient.cli", "convert", str(locked), "-o", str(tmp_path), "--password",
                          PASSWORD, "--text-layer", "always", "--no-cache", "--quiet"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    pages = json.loads((tmp_path / "locked.json").read_text())["pages"]
    assert [{b["source"] for b in p["blocks"]} for p in pages] == [{"text-layer"}] * 3
    assert PASSWORD not in run.stdout + run.stderr + (tmp_path / "locked.json").read_text()


def test_a_layer_there_but_unreadable_is_said_on_the_page(twins: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from ocrclient.engines import pdf_page

    def broken(path: str, index: int, password: str | None = None) -> None:
        raise OSError("the file went away")

    monkeypatch.setattr(pdf_page, "read_layer", broken)
    doc = ocrclient.convert(twins[0], cache=False)
    for page in doc.pages:
        assert page.status == "degraded" and {b.source for b in page.blocks} == {"ocr"}, page
        assert any("cannot read the text layer (OSError)" in w for w in page.warnings), page.warnings


@pytest.mark.parametrize("indices", [[0, 1, 2], [0, 2]], ids=["every page", "a selection"])
def test_a_document_sent_whole_opens_without_the_password(indices: list[int], twins: tuple[Path, Path]) -> None:
    """What the worker gets (deploy/runpod-deepseek-ocr opens it with no password) holds the pages
    asked for, readable."""
    plain, locked = twins
    (src,) = open_sources([locked], password=PASSWORD)
    data, boxes = pdf_subset(src, indices)
    assert b"/Encrypt" not in data and len(boxes) == len(indices)
    sent = pdfium.PdfDocument(data)
    twin = pdfium.PdfDocument(str(plain))
    assert [sent[i].get_textpage().get_text_range() for i in range(len(sent))] == [
        twin[i].get_textpage().get_text_range() for i in indices
    ]


def test_every_command_that_reads_inputs_takes_the_password_its_error_asks_for(twins: tuple[Path, Path], tmp_path: Path) -> None:
    """The whole kind: each ``ocr`` command that takes documents (an ``inputs`` argument) takes
    ``--password``, which its error for an encrypted PDF tells the user to pass.  ``ocr bench``
    said "pass its password (--password ...)" and had no such option: an encrypted PDF could
    not be benchmarked."""
    import inspect

    import typer.main

    from ocrclient.cli import app

    takers = []
    for info in app.registered_commands:
        params = inspect.signature(info.callback).parameters  # type: ignore[arg-type]
        if "inputs" in params:
            takers.append(info.name or typer.main.get_command_name(info.callback.__name__))  # type: ignore[union-attr]
            assert "password" in params, info.callback
    assert {"convert", "bench"} <= set(takers), takers
    _, locked = twins
    env = {**os.environ, "COLUMNS": "200", "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache")}
    for command in sorted(takers):
        base = [sys.executable, "-m", "ocrclient", command, str(locked), "--text-layer", "always"] if command == "convert" else \
               [sys.executable, "-m", "ocrclient", command, str(locked)]  # fmt: skip
        out = ["-o", str(tmp_path / command)] if command == "convert" else []
        refused = subprocess.run([*base, *out], capture_output=True, text=True, timeout=120, env=env)
        assert refused.returncode == 2 and "--password" in refused.stderr, (command, refused.stderr)
        done = subprocess.run([*base, *out, "--password", PASSWORD], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, (command, done.stderr[-600:])
        assert PASSWORD not in done.stdout + done.stderr
