"""Through the Python API, one output per input, always (as ``ocr convert`` does): an
``OutputWriter`` wrote every input as ``OUT/<stem>.*``, so two inputs named alike were written
to the same files, the second over the first, and both results listed them.  The kind: the same
name in two folders (named, or found in a folder), bytes whose made-up name is a file's, the same
stem for a PDF and an image, names differing only in case.  Each run either writes every input
to files of its own or refuses before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import ocrclient
from ocrclient.errors import InputError
from ocrclient.exporters.sink import OutputWriter
from ocrclient.testing import OpenAISimulator

from .pdfgen import text_pdf


def _pdf(path: Path, pages: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return text_pdf(path, [[f"{path.name} page {i + 1}"] for i in range(pages)])


def _cases(tmp: Path) -> dict[str, tuple[list[Any], bool]]:
    """name -> (inputs, whether the run is refused)"""
    import hashlib

    from PIL import Image

    a = _pdf(tmp / "a" / "x.pdf", 3)
    b = _pdf(tmp / "b" / "x.pdf", 1)
    _pdf(tmp / "tree" / "x.pdf", 2)
    _pdf(tmp / "tree" / "sub" / "x.pdf", 1)
    data = _pdf(tmp / "data.pdf", 2).read_bytes()
    named_like = _pdf(tmp / "made" / f"document-{hashlib.sha256(data).hexdigest()[:8]}.pdf", 1)
    _pdf(tmp / "mixed" / "y.pdf", 1)
    Image.new("RGB", (60, 40), "white").save(tmp / "mixed" / "y.png")
    upper, lower = _pdf(tmp / "case" / "Z.pdf", 1), _pdf(tmp / "case" / "z.pdf", 1)
    return {
        "one name in two folders": ([a, b], False),
        "a folder holding x.pdf and sub/x.pdf": ([tmp / "tree"], False),
        "bytes named as a file is": ([data, named_like], True),
        "a PDF and an image of one stem": ([tmp / "mixed"], True),
        "names differing in case": ([upper, lower], True),
    }


@pytest.mark.parametrize("case", ["one name in two folders", "a folder holding x.pdf and sub/x.pdf",
                                  "bytes named as a file is", "a PDF and an image of one stem", "names differing in case"])  # fmt: skip
def test_every_input_gets_its_own_outputs_or_the_run_is_refused(case: str, tmp_path: Path) -> None:
    inputs, refused = _cases(tmp_path)[case]
    out = tmp_path / "out"
    with OpenAISimulator(model="m") as sim, OutputWriter(out, ["md", "json"]) as writer:
        kw = {"backend": "openai", "base_url": sim.base_url, "api_key": sim.api_key, "model": "m", "cache": False}
        if refused:
            with pytest.raises(InputError, match="would both be written as"):
                list(ocrclient.convert_many(inputs, outputs=writer, **kw))
            assert sum(sim.requests_by_key.values()) == 0  # nothing sent
            return
        results = list(ocrclient.convert_many(inputs, outputs=writer, **kw))
    paths = [p for r in results for p in r.outputs]
    assert len(paths) == len(set(paths)) == 2 * len(results), paths
    for r in results:  # each file on disk holds its own input's document
        (json_path,) = [p for p in r.outputs if p.suffix == ".json"]
        on_disk = json.loads(json_path.read_text(encoding="utf-8"))
        assert on_disk["source"] == r.document.source and len(on_disk["pages"]) == len(r.document.pages)
