"""Blocks are made by ``Block.built`` (``geometry.content_to_blocks``): values already of the
contract's exact types become the block unvalidated, sharing one set of set fields (half the
memory of a text-layer word); anything else goes through validation.  The same blocks must come
out either way, for every value a dialect can hand over -- so the whole kind is drawn: ints,
bools, NumPy floats, strings and floats for the confidence; int and float boxes; labels and
texts of the wrong type; unknown sources; trees three deep -- against the validated way
(``Block(**values)``), outcome for outcome: the same dump with the same Python types, or the
same refusal."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ocrclient.document import Block, Page
from ocrclient.geometry import CoordSpace, Frame, PageBox, content_to_blocks
from ocrclient.models import ModelRequest, PageContent, PageImage, RawBlock

numbers = st.one_of(st.integers(-10, 1100), st.floats(-10, 1100, allow_nan=False),
                    st.floats(0, 1000).map(np.float32), st.floats(0, 1000).map(np.float64))  # fmt: skip
boxes = st.none() | st.tuples(numbers, numbers, numbers, numbers)
# every value validation takes (coercing some): no tree is refused, so every block is compared
confidences = st.one_of(st.none(), st.floats(0, 1, allow_nan=False), st.integers(0, 1), st.booleans(),
                        st.floats(0, 1).map(np.float32), st.floats(0, 1).map(np.float64), st.just("0.5"))  # fmt: skip
sources = st.sampled_from([None, "text-layer", "ocr", "bogus"])


def _raw(children: Any = None) -> Any:
    return st.builds(RawBlock, type=st.sampled_from(["text", "line", "word"]), text=st.text(max_size=12), box=boxes,
                     confidence=confidences, label=st.none() | st.text(max_size=5), children=st.just([]) if children is None else children,
                     source=sources)  # fmt: skip


trees = st.lists(_raw(st.lists(_raw(st.lists(_raw(), max_size=3)), max_size=2)), min_size=1, max_size=3)
pages = st.sampled_from([PageBox(612.0, 792.0), PageBox(612, 792), PageBox(595.3, 841.9, rotation=90)])
#: one field of one block of the wrong type: validation refuses it, whichever way it is made
REFUSED = [{"type": 3}, {"text": 7}, {"label": 1.5}, {"confidence": "high"}, {"confidence": [1.0]}]


def _outcome(raws: list[RawBlock], page: PageBox) -> Any:
    content = PageContent(markdown="", blocks=raws, space=CoordSpace.grid(1000))
    request = ModelRequest(body={}, frame=Frame(1000, 1294))
    image = PageImage(source="x.pdf", index=0, page_box=page, encoded=None)
    try:
        blocks = content_to_blocks(content, request, image)
    except ValidationError as exc:
        return ("refused", exc.error_count() > 0)
    return [_typed(b) for b in blocks], [b.model_dump_json() for b in blocks]


def _typed(value: Any) -> Any:
    """The block's values as held (not as dumped: a dump turns an int in a float field into a
    float), each with its type."""
    if isinstance(value, Block):
        return {name: _typed(getattr(value, name)) for name in Block.model_fields}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _both_ways(raws: list[RawBlock], page: PageBox) -> tuple[Any, Any]:
    fast = _outcome(raws, page)
    original = Block.__dict__["built"]
    Block.built = classmethod(lambda cls, **values: cls(**values))  # type: ignore[assignment,method-assign]
    try:
        return fast, _outcome(raws, page)
    finally:
        Block.built = original  # type: ignore[method-assign]


@settings(max_examples=300, deadline=None)
@given(raws=trees, page=pages)
def test_built_blocks_are_the_validated_blocks(raws: list[RawBlock], page: PageBox) -> None:
    fast, validated = _both_ways(raws, page)
    assert fast == validated and fast[0], fast


@pytest.mark.parametrize("wrong", REFUSED, ids=lambda w: "-".join(f"{k}={v!r}" for k, v in w.items()))
def test_a_value_validation_refuses_is_refused_either_way(wrong: dict[str, Any]) -> None:
    good = {"type": "word", "text": "t", "box": (1.0, 2.0, 3.0, 4.0), "confidence": 1.0, "label": None, "source": "ocr"}
    raws = [RawBlock(**good), RawBlock(**good, children=[RawBlock(**{**good, **wrong})])]  # type: ignore[arg-type]
    fast, validated = _both_ways(raws, PageBox(612.0, 792.0))
    assert fast == validated == ("refused", True)


def _word(text: str) -> Block:
    return Block.built(type="word", text=text, bbox=[1.0, 2.0, 3.0, 4.0], bbox_norm=[0.1, 0.2, 0.3, 0.4],
                       confidence=1.0, label=None, flags=[], children=[], source="text-layer")  # fmt: skip


def test_blocks_that_share_their_set_fields_stay_apart() -> None:
    """The shared set holds every field, so no assignment, copy or pickle changes it or leaks
    one block's change into another."""
    a, b = _word("a"), _word("b")
    shared = set(a.model_fields_set)
    assert a.model_fields_set is b.model_fields_set and shared == set(Block.model_fields)
    a.text, a.confidence = "changed", 0.5
    a.flags.append("clamped")
    assert (b.text, b.confidence, b.flags) == ("b", 1.0, []) and a.model_fields_set == shared
    for other in (a.model_copy(update={"label": "x"}), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert other == a.model_copy(update={"label": other.label}) and other.model_fields_set is not shared
    assert b.model_fields_set == shared and _word("b") == b
    assert Block.model_validate_json(a.model_dump_json()) == a


def test_a_block_of_the_wrong_types_is_validated_as_before() -> None:
    coerced = Block.built(type="word", text="t", bbox=[1, 2, 3, 4], bbox_norm=None, confidence=1,
                          label=None, flags=[], children=[], source=None)  # fmt: skip
    assert coerced.bbox == [1.0, 2.0, 3.0, 4.0] and type(coerced.confidence) is float
    assert all(type(v) is float for v in coerced.bbox)
    numpy_box = Block.built(type="word", text="t", bbox=[np.float64(1.5), 2.0, 3.0, 4.0], bbox_norm=None,
                            confidence=0.5, label=None, flags=[], children=[], source=None)  # fmt: skip
    assert [type(v) for v in numpy_box.bbox or []] == [float] * 4
    assert coerced.model_fields_set is not _word("x").model_fields_set
    with pytest.raises(ValidationError):
        Block.built(type="word", text="t", bbox=[1.0, 2.0, 3.0], bbox_norm=None, confidence=None,
                    label=None, flags=[], children=[], source=None)  # fmt: skip


def _read(raw: str) -> Any:
    """``Page.from_json`` and ``Page.model_validate_json`` side by side: the same page with
    blocks of the same values and types, or both refusing with a ``ValueError`` (what the cache
    reads as a damaged entry: pydantic's ``ValidationError`` is one, as is ``json``'s error)."""
    outcomes = []
    for read in (Page.from_json, Page.model_validate_json):
        try:
            page = read(raw)
        except ValueError:
            outcomes.append(("refused",))
        else:
            outcomes.append((page, [_typed(b) for b in page.blocks]))
    return outcomes


json_blocks = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(["text", "word", 3]), "text": st.text(max_size=5)},
                          optional={"bbox": st.none() | st.lists(st.integers(0, 9) | st.floats(0, 9), min_size=3, max_size=4),
                                    "confidence": st.none() | st.integers(0, 1) | st.floats(0, 1) | st.just("0.5"),
                                    "label": st.none() | st.text(max_size=3), "flags": st.just(["clamped"]),
                                    "source": st.sampled_from([None, "ocr", "bogus"]), "extra": st.just(1)}),
    lambda kids: st.fixed_dictionaries({"type": st.just("line"), "text": st.just(""), "children": st.lists(kids, max_size=3)}),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(blocks=st.lists(json_blocks, max_size=3), full=st.booleans())
def test_a_cached_page_reads_as_pydantic_reads_it(blocks: list[dict[str, Any]], full: bool) -> None:
    """Pages as the cache stores them (every field dumped) and block objects with fields
    missing, of other types, or unknown: read the same both ways."""
    if full:
        page = Page(page=3, status="ok", markdown="m", blocks=[_word("a"), _word("b")])
        raw = page.model_dump_json()
    else:
        raw = json.dumps({"page": 2, "status": "ok", "blocks": blocks})
    built, validated = _read(raw)
    assert built == validated
    if full:
        assert built[0].blocks[0].model_fields_set is built[0].blocks[1].model_fields_set


@pytest.mark.parametrize("raw", ["", "{", "[]", "null", '{"page": 1}', '{"page": 1, "status": "ok", "blocks": 5}',
                                 '{"page": 1, "status": "ok", "blocks": [5]}', '{"page": 0, "status": "ok"}'])  # fmt: skip
def test_a_damaged_cache_entry_is_refused_either_way(raw: str) -> None:
    built, validated = _read(raw)
    assert built == validated == ("refused",)
