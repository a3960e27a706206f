"""The JSON output is written page by page (``exporters/jsonout.py``), never as one string: the
file must still be, byte for byte, what pydantic dumps for the whole document -- for every
document, so the whole kind is drawn: no pages, one, many; failed pages with errors; blocks
nested three deep; text with quotes, backslashes, newlines, non-ASCII and the very text the
writer splits the dump at (``"pages": []``) in the source name, a page's markdown and a block."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocrclient.document import SCHEMA_VERSION, Block, Document, Page, PageError, RunStats, Usage
from ocrclient.exporters import jsonout

_TRICKY = ['\n  "pages": []', '"pages": [],', "\\", '"', "\n", "\t", "é ✓ 漢字 🙂", "\u2028", "}", "],"]
texts = st.one_of(st.sampled_from(_TRICKY), st.text(max_size=30))
boxes = st.none() | st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=4)
words = st.builds(Block, type=st.just("word"), text=texts, bbox=boxes, bbox_norm=boxes,
                  confidence=st.none() | st.floats(0, 1), source=st.sampled_from([None, "text-layer", "ocr"]))  # fmt: skip
lines = st.builds(Block, type=st.just("line"), text=texts, bbox=boxes, children=st.lists(words, max_size=3))
blocks = st.builds(Block, type=st.sampled_from(["text", "table", "figure"]), text=texts, label=st.none() | texts,
                   flags=st.lists(st.sampled_from(["clamped", "reversed"]), max_size=2), children=st.lists(lines, max_size=2))  # fmt: skip
errors = st.none() | st.builds(PageError, kind=st.just("permanent"), cause=st.just("http_400"), message=texts)
pages = st.builds(Page, page=st.integers(1, 9999), status=st.sampled_from(["ok", "degraded", "failed"]), error=errors,
                  warnings=st.lists(texts, max_size=2), markdown=texts, blocks=st.lists(blocks, max_size=3),
                  usage=st.builds(Usage, gpu_seconds=st.none() | st.floats(0, 100)), cached=st.booleans())  # fmt: skip
documents = st.builds(Document, source=texts, backend=st.just("local"), model=st.none() | texts,
                      pages=st.lists(pages, max_size=4), stats=st.builds(RunStats, pages=st.integers(0, 9)))  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_the_json_written_page_by_page_is_the_whole_dump(doc: Document, tmp_path: Path) -> None:
    path = jsonout.write(doc, tmp_path / "doc.json")
    written = path.read_text(encoding="utf-8")
    assert written == doc.model_dump_json(indent=2) + "\n"
    assert Document.model_validate(json.loads(written)) == doc


def test_a_document_of_many_pages_is_never_one_string(tmp_path: Path) -> None:
    """The writer hands the file one page at a time: no piece holds more than one page."""
    page = Page(page=1, status="ok", markdown="x" * 1000, blocks=[Block(type="text", text="y" * 1000)])
    doc = Document(source="big.pdf", backend="local", pages=[page.model_copy(update={"page": i}) for i in range(1, 201)])
    pieces = list(jsonout.dump_pieces(doc))
    assert len(pieces) == 202 and max(map(len, pieces)) < 3000
    assert "".join(pieces) == doc.model_dump_json(indent=2) + "\n"
    assert json.loads("".join(pieces))["schema_version"] == SCHEMA_VERSION
