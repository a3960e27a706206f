"""The committed JSON schema matches the model, and real output validates against it."""

from __future__ import annotations

import json
from pathlib import Path

from ocrclient.document import Document, json_schema

from .conftest import ROOT


def test_committed_schema_is_current() -> None:
    committed = json.loads((ROOT / "schema" / "document.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema(), sort_keys=True)), (
        "schema/document.schema.json is stale: run `ocr schema schema/document.schema.json`"
    )


def _check(value: object, schema: dict, defs: dict, path: str = "$") -> None:
    """A small validator for the subset of JSON schema pydantic emits (types, required, refs,
    anyOf, items, additionalProperties=false)."""
    if "$ref" in schema:
        _check(value, defs[schema["$ref"].split("/")[-1]], defs, path)
        return
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _check(value, option, defs, path)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{path}: matches no anyOf option: {errors}")
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if kind in types:
        assert isinstance(value, types[kind]), f"{path}: expected {kind}"
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: expected integer"
    elif kind == "number":
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{path}: expected number"
    if isinstance(value, dict) and kind == "object":
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            assert req in value, f"{path}: missing {req}"
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(props)
            assert not extra, f"{path}: unexpected {extra}"
        for key, sub in props.items():
            if key in value:
                _check(value[key], sub, defs, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], defs, f"{path}[{i}]")


def test_a_real_document_validates_against_the_committed_schema(tmp_path: Path) -> None:
    schema = json.loads((ROOT / "schema" / "document.schema.json").read_text())
    doc = Document.model_validate_json(
        json.dumps(
            {
                "source": "x.pdf",
                "backend": "local",
                "pages": [
                    {"page": 1, "status": "ok", "width": 612, "height": 792, "markdown": "# A",
                     "blocks": [{"type": "text", "text": "A", "bbox": [1, 2, 3, 4], "bbox_norm": [0, 0, 0.1, 0.1],
                                 "children": [{"type": "line", "text": "A"}]}]},
                    {"page": 2, "status": "failed", "error": {"kind": "transient", "cause": "http_503", "message": "x"}},
                ],
            }
        )
    )
    _check(json.loads(doc.model_dump_json()), schema, schema.get("$defs", {}))
    try:
        _check({"source": "x", "backend": "y", "pages": [{"page": 1}]}, schema, schema.get("$defs", {}))
    except AssertionError as exc:
        assert "missing status" in str(exc)
    else:
        raise AssertionError("a page without status must not validate")
