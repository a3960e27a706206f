"""The ``ocr`` process returns large freed blocks to the system (:mod:`ocrclient.console`,
"Memory"): a page's buffers of several MB, freed, do not stay in the process's heap.

Each case runs in a fresh interpreter: glibc's moving threshold is process state."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

# a block of 8 MB made and freed twice, as page buffers are: with glibc's moving threshold the
# first one (mapped, freed) raises the threshold, the second comes from the heap and stays there
PROBE = textwrap.dedent("""\
    import sys
    def rss_kb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4
    SETUP
    before = rss_kb()
    for _ in range(2):
        block = bytearray(8 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # (touch every page: counted in RSS)
        del block
    print(rss_kb() - before)
""")


def _kept_kb(setup: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run([sys.executable, "-c", PROBE.replace("SETUP", setup)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


MAIN = "from ocrclient.console import main\nsys.argv = ['ocr', '--version']\ntry:\n    main()\nexcept SystemExit:\n    pass"


def test_the_probe_sees_glibcs_own_rule_keep_a_freed_block() -> None:
    """The check below can fail: without the command, the second block stays."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        pytest.skip("the environment fixes the threshold itself")
    assert _kept_kb("pass") > 4096


def test_the_ocr_command_gives_freed_large_blocks_back() -> None:
    assert _kept_kb(MAIN) < 1024


def test_importing_the_library_leaves_the_allocator_as_it_is() -> None:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        pytest.skip("the environment fixes the threshold itself")
    assert _kept_kb("import ocrclient, ocrclient.cli") > 4096


def test_a_threshold_the_user_set_is_left_alone() -> None:
    """``MALLOC_MMAP_THRESHOLD_`` in the environment is the user's choice: the command does not
    override it (and glibc took it: the setting is not asked for again)."""
    probe = "from ocrclient.console import _large_blocks_returned as f; print(f())"
    ran = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}).stdout.strip() for env in ({"MALLOC_MMAP_THRESHOLD_": "65536"}, {})]  # fmt: skip
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        assert ran == ["False", "False"]
    else:
        assert ran == ["False", "True"]
