"""The ``ocr`` process's threads share two malloc heaps (:mod:`ocrclient.console`, "Memory").

Each case runs in a fresh interpreter (the heaps are process state) and counts glibc's heaps
with ``malloc_stats`` after six threads, alive together, each allocated blocks of 64 kB (above
Python's small-object allocator, below glibc's mapping threshold: from the thread's heap)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

PROBE = textwrap.dedent("""\
    import ctypes, sys, threading
    SETUP
    ready = threading.Barrier(7)
    def work():
        held = [bytearray(65536) for _ in range(8)]
        ready.wait()
        ready.wait()
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    ready.wait()  # (every thread has allocated and is alive)
    sys.stderr.flush()
    ctypes.CDLL(None).malloc_stats()
    ready.wait()
    for t in threads:
        t.join()
""")


def _heaps(setup: str, env: dict[str, str] | None = None) -> int:
    full = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"} | (env or {})
    done = subprocess.run([sys.executable, "-c", PROBE.replace("SETUP", setup)], capture_output=True, text=True,
                          timeout=60, env=full)  # fmt: skip
    assert done.returncode == 0, done.stderr
    heaps = re.findall(r"^Arena \d+:", done.stderr, re.M)
    if not heaps:
        pytest.skip("not glibc's malloc_stats")
    return len(heaps)


MAIN = "from ocrclient.console import main\nsys.argv = ['ocr', '--version']\ntry:\n    main()\nexcept SystemExit:\n    pass"


def test_the_probe_sees_glibc_give_each_thread_a_heap() -> None:
    """The check below can fail: without the command, six threads make heaps of their own."""
    assert _heaps("pass") >= 4


def test_the_ocr_commands_threads_share_two_heaps() -> None:
    from ocrclient.console import HEAPS

    assert _heaps(MAIN) <= HEAPS == 2


def test_importing_the_library_leaves_the_heaps_as_they_are() -> None:
    assert _heaps("import ocrclient, ocrclient.cli") >= 4


def test_a_heap_count_the_user_set_is_theirs() -> None:
    assert _heaps(MAIN, {"MALLOC_ARENA_MAX": "6"}) >= 4
