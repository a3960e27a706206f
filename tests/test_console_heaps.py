"""The ``ocr`` process's threads share two malloc heaps (:mod:`ocrclient.console`, "Memory").

Each case runs a fresh interpreter (the heaps are process state) with a ``sitecustomize`` on its
path that, as the process exits, has six threads alive together each allocate blocks of 64 kB
(above Python's small-object allocator, below glibc's mapping threshold: from the thread's heap)
and counts glibc's heaps with ``malloc_stats``.  Its exit handler, registered before the
command starts, also keeps ``ocr`` from leaving by ``os._exit`` (:func:`ocrclient.console._leave`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

PROBE = textwrap.dedent("""\
    import atexit, ctypes, sys, threading

    def count_heaps():
        ready = threading.Barrier(7)
        def work():
            held = [bytearray(65536) for _ in range(8)]
            ready.wait()
            ready.wait()
        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        ready.wait()  # (every thread has allocated and is alive)
        sys.stdout.flush()
        sys.stderr.flush()
        ctypes.CDLL(None).malloc_stats()
        ready.wait()
        for t in threads:
            t.join()

    atexit.register(count_heaps)
""")


def _heaps(tmp_path: Path, argv: list[str], env: dict[str, str] | None = None) -> int:
    (tmp_path / "sitecustomize.py").write_text(PROBE)
    full = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")} | (env or {})
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(tmp_path), full.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60, env=full)
    assert done.returncode == 0, done.stderr
    heaps = re.findall(r"^Arena \d+:", done.stderr, re.M)
    if not heaps:
        pytest.skip("not glibc's malloc_stats")
    return len(heaps)


OCR = ["-m", "ocrclient", "--version"]


def test_the_probe_sees_glibc_give_each_thread_a_heap(tmp_path: Path) -> None:
    """The check below can fail: without the command, six threads make heaps of their own."""
    assert _heaps(tmp_path, ["-c", "pass"]) >= 4


def test_the_ocr_commands_threads_share_two_heaps(tmp_path: Path) -> None:
    from ocrclient.console import HEAPS

    assert _heaps(tmp_path, OCR) <= HEAPS == 2


@pytest.mark.parametrize("code", [
    "import ocrclient, ocrclient.cli",
    # a program that runs the command inside itself (a harness, a test runner) keeps its heaps
    "import sys\nfrom ocrclient.console import main\nsys.argv = ['ocr', '--version']\ntry:\n    main()\nexcept SystemExit:\n    pass",
], ids=["import", "main-in-a-program"])  # fmt: skip
def test_other_programs_keep_their_heaps(tmp_path: Path, code: str) -> None:
    assert _heaps(tmp_path, ["-c", code]) >= 4


@pytest.mark.parametrize("env", [{"MALLOC_ARENA_MAX": "6"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=6"}],
                         ids=["MALLOC_ARENA_MAX", "GLIBC_TUNABLES"])  # fmt: skip
def test_a_heap_count_the_user_set_is_theirs(tmp_path: Path, env: dict[str, str]) -> None:
    assert _heaps(tmp_path, OCR, env) >= 4
