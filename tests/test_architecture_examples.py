"""docs/ARCHITECTURE.md's worked examples run as written: "add a model" (one dialect file + one
profile) against the simulated OpenAI-compatible server, and "add a cloud" (one transport file +
one profile) against a small server that speaks its made-up contract, including its errors."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

import ocrclient
from ocrclient.errors import AuthError
from ocrclient.testing import FixedResponder, OpenAISimulator

from .conftest import ROOT

DOC = ROOT / "docs" / "ARCHITECTURE.md"
SAMPLE = ROOT / "examples" / "sample.pdf"
_BLOCK = re.compile(r"```(?:python|toml) file=(\S+)\n(.*?)```", re.S)


def _examples() -> dict[str, str]:
    return {name: body for name, body in _BLOCK.findall(DOC.read_text(encoding="utf-8"))}


@pytest.fixture
def example_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The doc's files written out as a user would, importable, forgotten afterwards."""
    files = _examples()
    assert set(files) == {"shout_dialect.py", "shout.toml", "tiny_cloud.py", "tiny.toml"}, sorted(files)
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in ("shout_dialect", "tiny_cloud"):
        sys.modules.pop(mod, None)


def test_add_a_model_example_runs(example_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAISimulator(model="acme/shout-ocr", responder=FixedResponder("Hello, page.")) as sim:
        monkeypatch.setenv("SHOUT_BASE_URL", sim.base_url)
        monkeypatch.setenv("SHOUT_API_KEY", str(sim.api_key))
        doc = ocrclient.convert(SAMPLE, backend=str(example_dir / "shout.toml"), pages="1-2", cache=False)
        sent = list(sim.bodies)
    assert [p.status for p in doc.pages] == ["ok", "ok"]
    assert all(p.markdown == "HELLO, PAGE." for p in doc.pages)
    # what the dialect built is what went out: its prompt, its max_tokens, the profile's model
    body = sent[-1]
    assert body["model"] == "acme/shout-ocr" and body["max_tokens"] == 2048
    assert "Transcribe this page as markdown." in json.dumps(body["messages"])


class _TinyCloud(BaseHTTPRequestHandler):
    """The made-up cloud of the example: POST /infer with a chat body -> {"text": ...}."""

    key = "tiny-secret-123"
    fail_first: ClassVar[dict[str, int]] = {}
    seen: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") != f"Bearer {self.key}":
            return self._reply(401, {"error": "bad key"})
        if self.path != "/infer":
            return self._reply(404, {"error": "no such route"})
        type(self).seen.append(body)
        if self.fail_first.get("n", 0) > 0:  # a busy cloud: 503 first, the scheduler retries
            self.fail_first["n"] -= 1
            return self._reply(503, {"error": "busy"})
        return self._reply(200, {"text": "tiny cloud read it"})

    def _reply(self, status: int, data: dict[str, object]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tiny_cloud() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TinyCloud)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _TinyCloud.seen = []
    _TinyCloud.fail_first = {"n": 0}
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_a_cloud_example_runs(example_dir: Path, tiny_cloud: str, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = str(example_dir / "tiny.toml")
    monkeypatch.setenv("TINY_BASE_URL", tiny_cloud)
    monkeypatch.setenv("TINY_API_KEY", _TinyCloud.key)
    _TinyCloud.fail_first["n"] = 1
    doc = ocrclient.convert(SAMPLE, backend=profile, pages="1-2", cache=False)
    assert [p.status for p in doc.pages] == ["ok", "ok"]
    assert all(p.markdown == "tiny cloud read it" for p in doc.pages)
    assert sum(p.attempts for p in doc.pages) == 3  # the 503 was retried by the scheduler
    assert all(b["model"] == "tiny/vision" for b in _TinyCloud.seen)
    # its errors go through map_errors: a refused key stops the run as an AuthError
    # (a distinctive value: every key the client reads is registered for redaction, process-wide)
    monkeypatch.setenv("TINY_API_KEY", "tiny-refused-key-7731")
    with pytest.raises(AuthError):
        ocrclient.convert(SAMPLE, backend=profile, pages="1", cache=False)

