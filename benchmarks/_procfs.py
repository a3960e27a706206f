"""What the benchmarks read from Linux ``/proc``: process trees, peak and current RSS, CPU time.

Render workers are children of a fork server, so ``RUSAGE_CHILDREN`` never sees them; the
benchmarks sample ``/proc`` instead.  Every reader returns 0 where ``/proc`` has no answer (the
process is gone, or this is not Linux).
"""

from __future__ import annotations

import os

__all__ = ["busy_cpu_s", "descendants", "proc_cpu_s", "status_kb", "tree_kb"]


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children, their children, ...)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def status_kb(pid: int, field: str = "VmHWM") -> int:
    """A ``/proc/<pid>/status`` memory field in kB: ``VmHWM`` (peak RSS) or ``VmRSS`` (now)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_kb(root: int, field: str = "VmRSS") -> int:
    """``field`` summed over ``root`` and every process below it."""
    return sum(status_kb(pid, field) for pid in [root, *descendants(root)])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (not idle or iowait) since boot."""
    try:
        with open("/proc/stat") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")
