"""Test-wide isolation: no test reads or writes the user's config or cache, and no test can
reach the network except loopback."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# A suite started in the background by a shell without job control (``.ci/run &`` from a
# script) inherits SIGINT ignored, and so would every ``ocr`` the tests start: their Ctrl-C
# tests would send a signal no one hears.  The tests stand for a user at a terminal, where
# Ctrl-C is heard: children start with SIGINT at its default (a caught signal is reset at exec).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: the real PDFs beside the repository (CI lays ``shared/`` out next to the clone)
CORPUS = SHARED / "corpus"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    base = tmp_path_factory.mktemp("ocrhome")
    monkeypatch.setenv("OCRCLIENT_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("OCRCLIENT_CONFIG_DIR", str(base / "config"))
    # the suite runs two workers on two cores: an engine per worker spinning on every core made
    # the OCR tests slower (two OCR files: 144 s and 3m58 of CPU, with one thread each 121 s
    # and 2m41); tests/test_local_threads.py runs without it
    monkeypatch.setenv("OCRCLIENT_LOCAL_THREADS", "1")
    for var in ("RUNPOD_API_KEY", "RUNPOD_ENDPOINT_ID", "OCRCLIENT_API_KEY", "VLLM_API_KEY", "OCRCLIENT_BACKEND",
                "MODAL_KEY", "MODAL_SECRET"):
        monkeypatch.delenv(var, raising=False)
    yield


_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    host = address[0] if isinstance(address, tuple) else None
    loopback = str(host).startswith("127.") or host in ("::1", "localhost")
    if host is not None and self.family in (socket.AF_INET, socket.AF_INET6) and not loopback:
        raise OSError(f"tests may only connect to loopback, not {host}")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


def require_corpus(present: object, what: str = "") -> None:
    """Skip a test whose corpus files are missing -- but fail under CI, which always lays the
    corpus beside the clone, so a CI run never silently skips the real documents."""
    if present:
        return
    msg = f"shared corpus not available: {CORPUS}{' (' + what + ')' if what else ''}"
    if os.environ.get("CI"):
        pytest.fail(msg + "; CI lays it out at ../shared/corpus beside the clone")
    pytest.skip(msg)


def corpus(*parts: str) -> Path:
    """A path in ../shared/corpus (skipped when absent outside CI, failed under CI)."""
    path = CORPUS.joinpath(*parts)
    require_corpus(path.exists(), "/".join(parts))
    return path
