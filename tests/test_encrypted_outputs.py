"""A Document of an encrypted PDF, written without its run.

``write_outputs`` and ``ocr view`` open the input again (figure crops, the viewer's page images,
the searchable PDF's pages) and took no password: an encrypted input was "source file not
found", though it was right there.  The kind: every writer that opens the input again (md with
figures, html, pdf; the viewer of ``ocr view``) x no password / the right one: without it, the
message says the PDF is encrypted and what to pass (never "not found"); with it, the pages are
there."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pypdfium2 as pdfium
import pytest

import ocrclient
from ocrclient.document import Block, Document
from ocrclient.errors import InputError
from ocrclient.exporters import write_outputs

from .test_bad_inputs import build_pdf

PASSWORD = "open-sesame"


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Document]:
    """The encrypted input and its Document, each page given a figure (so md crops one)."""
    folder = tmp_path_factory.mktemp("locked")
    pdf = folder / "locked.pdf"
    pdf.write_bytes(build_pdf([(612, 792)] * 2, user_password=PASSWORD))
    doc = ocrclient.convert(pdf, password=PASSWORD, cache=False)
    figure = Block(type="figure", text="", bbox=[100.0, 100.0, 400.0, 400.0],
                   bbox_norm=[100 / 612, 100 / 792, 400 / 612, 400 / 792])  # fmt: skip
    pages = [p.model_copy(update={"blocks": [*p.blocks, figure]}) for p in doc.pages]
    return pdf, doc.model_copy(update={"pages": pages, "source": str(pdf)})


def test_write_outputs_without_the_password_says_the_pdf_is_encrypted(
    converted: tuple[Path, Document], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, doc = converted
    with pytest.raises(InputError, match="encrypted; pass its password"):
        write_outputs(doc, tmp_path, "locked", ["pdf"])
    caplog.set_level(logging.WARNING)
    write_outputs(doc, tmp_path, "locked", ["md", "html"])  # written, without what needs the pages
    said = caplog.text
    assert "encrypted; pass its password" in said and "not found" not in said, said
    assert not (tmp_path / "locked_figures").exists()


def test_write_outputs_with_the_password_has_every_page(converted: tuple[Path, Document], tmp_path: Path) -> None:
    _, doc = converted
    paths = write_outputs(doc, tmp_path, "locked", ["md", "html", "pdf"], password=PASSWORD)
    assert [p.name for p in paths] == ["locked.md", "locked.html", "locked.pdf"]
    assert sorted(p.name for p in (tmp_path / "locked_figures").iterdir()) == ["page1_fig1.png", "page2_fig1.png"]
    assert len(pdfium.PdfDocument(str(tmp_path / "locked.pdf"))) == 2
    assert (tmp_path / "locked.html").read_text().count('class="scan"') == 2


def test_ocr_view_takes_the_password(converted: tuple[Path, Document], tmp_path: Path) -> None:
    _, doc = converted
    result = tmp_path / "locked.json"
    result.write_text(json.dumps(doc.model_dump(mode="json")))
    view = [sys.executable, "-m", "ocrclient.cli", "view", str(result), "-o", str(tmp_path / "v.html")]
    refused = subprocess.run(view, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "encrypted; pass its password (--password" in refused.stderr
    done = subprocess.run([*view, "--password", PASSWORD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr + (tmp_path / "v.html").read_text()
    assert (tmp_path / "v.html").read_text().count('class="scan"') == 2
