"""Run every benchmark and print one PASS/MISS table.

    python benchmarks/run_all.py [--quick] [--only NAME ...]

Runs, each in its own process, with its output shown as it goes:

* ``bench_render.py``     page stream vs serial render loop; RSS at 100 vs 1000 pages
* ``bench_scheduler.py``  server-bound efficiency, client-bound pages/s, convert RSS, faults
* ``bench_outputs.py``    last page done -> last output written (figure crops), beside the old re-render
* ``bench_memory.py``     peak RSS of ``ocr convert``'s defaults over a long text-layer PDF, beside the build before
* ``bench_calls.py``      many calls at once on one AsyncClient: peak RSS against one call, beside per-call pools
* ``chaos.py``            500 pages through the RunPod + OpenAI simulators under every fault
* ``crash_resume.py``     SIGKILL ``ocr convert`` at random points, rerun, count resends
* ``bench_resume.py``     a rerun's first request with cached pages recalled, beside rendering them
* ``bad_documents.py``    (when present) hostile inputs
* ``bench_olmocr.py``     the ``local`` backend scored with olmOCR-bench's rules (full run only)

Figures are read from each script's summary (rows ending in PASS / MISS, or ``info`` for a
figure printed beside a target but not judged by it; for ``bench_render.py`` its "target"
lines); a script that exits non-zero without reporting a MISS is listed as FAILED.
``--quick`` runs small versions (a few minutes in all).  Exit code 0 only if every judged
figure passes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPTS: list[tuple[str, list[str], list[str] | None]] = [
    # name, full args, quick args (None: the full run only)
    ("bench_render.py", [], ["--pages", "40", "--repeat", "1", "--rss-pages", "50,300"]),
    ("bench_scheduler.py", [], ["--quick"]),
    ("bench_outputs.py", [], ["--quick"]),
    ("bench_memory.py", [], ["--quick"]),
    ("bench_calls.py", [], ["--pages", "120", "--calls", "1,20"]),
    ("chaos.py", [], ["--quick"]),
    ("crash_resume.py", [], ["--quick"]),
    ("bench_resume.py", [], ["--quick"]),
    ("bad_documents.py", [], ["--quick"]),
    ("bench_olmocr.py", [], None),  # every corpus page through the engine: minutes, no small version
]

_ROW = re.compile(
    r"^(?P<figure>\S.*?)\s{2,}(?P<measured>\S+)\s{2,}(?P<target>\S.*?)\s{2,}(?P<result>PASS|MISS|info)\s*$"
)
_RENDER_TARGETS = [
    # label regex -> (figure name, target text, comparison)
    (
        re.compile(r"^speed-up, wall clock \(target >= ([\d.]+)x.*?\)\s+([\d.]+)x"),
        "render speed-up, wall clock",
        ">=",
    ),
    (
        re.compile(r"^RSS ratio (\d+/\d+) pages \(target <= ([\d.]+)x\)\s+([\d.]+)x"),
        "render stream RSS",
        "<=",
    ),
]


def figures_of(name: str, output: str) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for line in output.splitlines():
        m = _ROW.match(line.strip())
        if m:
            rows.append((m["figure"], m["measured"], m["target"], m["result"]))
    if name == "bench_render.py":
        for line in output.splitlines():
            line = line.strip()
            m = _RENDER_TARGETS[0][0].match(line)
            if m:
                target, value = float(m.group(1)), float(m.group(2))
                rows.append(
                    (
                        "render speed-up, wall clock",
                        f"{value:.2f}x",
                        f">= {target:g}x",
                        "PASS" if value >= target else "MISS",
                    )
                )
            m = _RENDER_TARGETS[1][0].match(line)
            if m:
                target, value = float(m.group(2)), float(m.group(3))
                rows.append(
                    (
                        f"render stream RSS {m.group(1)} pages",
                        f"{value:.2f}x",
                        f"<= {target:g}x",
                        "PASS" if value <= target else "MISS",
                    )
                )
    return rows


def run(name: str, args: list[str]) -> tuple[int, str, float]:
    cmd = [sys.executable, str(HERE / name), *args]
    print(f"\n{'=' * 100}\n$ {' '.join(cmd[1:])}\n{'=' * 100}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE.parent
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = proc.wait()
    return code, "".join(lines), time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small versions of every benchmark")
    ap.add_argument("--only", nargs="*", help="run only these scripts (e.g. chaos.py)")
    a = ap.parse_args()
    summary: list[tuple[str, str, str, str, str]] = []
    timings: list[tuple[str, int, float]] = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for name, full, quick in SCRIPTS:
        if a.only and name not in a.only:
            continue
        path = HERE / name
        if not path.exists():
            print(f"\n(skipping {name}: not present)")
            continue
        if a.quick and quick is None:
            print(f"\n(skipping {name} with --quick: it runs in the full run only)")
            continue
        args = (quick or []) if a.quick else full
        if a.quick and name == "bad_documents.py":  # another helper's script: use what it offers
            text = path.read_text(encoding="utf-8")
            args = (
                ["--quick"]
                if "--quick" in text
                else ["--skip-corpus"]
                if "--skip-corpus" in text
                else []
            )
        code, out, wall = run(name, args)
        timings.append((name, code, wall))
        rows = figures_of(name, out)
        for fig, measured, target, result in rows:
            summary.append((name, fig, measured, target, result))
        if code != 0 and not any(r[3] == "MISS" for r in rows):
            summary.append((name, "script", f"exit {code}", "exit 0", "FAILED"))
        elif not rows:
            summary.append(
                (name, "script", f"exit {code}", "exit 0", "PASS" if code == 0 else "FAILED")
            )

    print(
        f"\n{'=' * 100}\nrun_all summary ({'quick' if a.quick else 'full'}; 1-min load average at start {load:.2f};"
        f" CPUs {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()})"
    )
    widths = [
        max(
            len(str(r[i])) for r in [("script", "figure", "measured", "target", "result"), *summary]
        )
        + 2
        for i in range(5)
    ]
    header = ("script", "figure", "measured", "target", "result")
    print("".join(f"{h:<{w}}" for h, w in zip(header, widths, strict=True)))
    for r in summary:
        print("".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)))
    print("\nscripts: " + ", ".join(f"{n} exit {c} in {w:.0f} s" for n, c, w in timings))
    judged = [r for r in summary if r[4] != "info"]  # info: printed beside a target, not judged
    bad = [r for r in judged if r[4] != "PASS"]
    print(
        f"overall: {'PASS' if not bad else 'MISS'} ({len(judged) - len(bad)}/{len(judged)} figures pass"
        f"{f'; {len(summary) - len(judged)} info rows' if len(judged) < len(summary) else ''})"
    )
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
