"""ocrclient's first request beside the naive loop's, split into the libraries and the rest.

    python benchmarks/bench_start.py [--runs 15] [--pages 16] [--also-src OLD/src ...]

``bench_peers.py`` prints each client's first request (process start -> the first page's request
at the simulator) and the *start floors*: processes that only import libraries.  This splits the
first request of ``ocr convert`` and of the naive loop (:data:`bench_peers.NAIVE`) in two, against
the same simulators (8 slots x 0.5 s), with the same python as ``bench_peers.py`` (a venv of
ocrclient's dependencies only).  Each client runs ``--runs`` times each way, every way once per
round (a slow spell of the shared machine falls on all of them alike):

* **as run** -- as a user runs it (``python -m ocrclient convert ...``, ``python naive.py ...``);
* **libraries first** -- the same, after a preamble has imported every library ``ocr convert``
  imports before its first request (the last layer of :data:`bench_peers.FLOORS`: the naive
  loop's libraries, pydantic, typer) and noted the time: printed are when the preamble ended and
  the first request after that, the client's *own start* (its code, its command line, its first
  page's render and request).  The naive loop imports what it lacks of them too (pydantic and
  typer), so both own starts are taken from the same point.

``--also-src`` adds another source tree of ocrclient (e.g. ``git worktree add /tmp/prev HEAD~1``,
then ``--also-src /tmp/prev/src``) as a client of its own, in the same rounds: a change to the
start measured beside the code before it.  Each path is measured with its own pages: Chandra's (192 dpi, RunPod ``/runsync``) and
LightOnOCR-2's (1540 px, OpenAI chat completions).  Printed: the medians, and per path the
difference of the own starts and of the preambles.  Not a unit test: the figures move with other
load on the machine (the 1-minute load average is printed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_peers import (
    _FLOOR_IMPORTS,
    NAIVE,
    RUNPOD_KEY,
    SIM_KEY,
    Sim,
    _env,
    compile_sources,
    page_requests,
    user_python,
)

#: the preamble of the "libraries first" runs: every library of ``ocr convert``'s start, then the
#: time written to the file named by $BENCH_START_STAMP
PREAMBLE = "\n".join([*_FLOOR_IMPORTS, "import os, time",
                      "open(os.environ['BENCH_START_STAMP'], 'w').write(repr(time.monotonic()))"])  # fmt: skip
RUN_OCR = "import runpy, sys\nsys.argv = ['ocr', *sys.argv[1:]]\nrunpy.run_module('ocrclient', run_name='__main__', alter_sys=True)"
RUN_NAIVE = "import runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')"

PATHS = {  # path -> (simulator kind, ocrclient backend, the naive loop's model)
    "RunPod": ("runpod", "runpod-chandra", "datalab-to/chandra-ocr-2"),
    "OpenAI": ("openai", "runpod-pod-lightonocr2", "lightonai/LightOnOCR-2-1B"),
}


def commands(py: str, sim: Sim, path: str, pdf: Path, out: Path, naive: Path,
             also: list[Path]) -> dict[str, tuple[list[str], list[str], dict[str, str]]]:  # fmt: skip
    """client -> (argv as run, argv after the preamble, env); ``also``: other source trees of
    ocrclient run the same way, each a client of its own."""
    kind, backend, model = PATHS[path]
    ours = ["convert", str(pdf), "-o", str(out), "--backend", backend, "--concurrency", "8", "--cache-dir",
            str(out / "cache"), "--quiet"]  # fmt: skip
    if kind == "runpod":
        env = _env(RUNPOD_API_KEY=RUNPOD_KEY, RUNPOD_CHANDRA_ENDPOINT_ID=sim.endpoint_id or "", RUNPOD_BASE_URL=sim.base_url)
        url, key = f"{sim.base_url}/{sim.endpoint_id}", RUNPOD_KEY
    else:
        env = _env(RUNPOD_POD_BASE_URL=sim.base_url, VLLM_API_KEY=SIM_KEY)
        url, key = sim.base_url, SIM_KEY
    theirs = [str(naive), str(pdf), str(out / "naive"), url, key, model, "8"]
    cmds = {"ocrclient": ([py, "-m", "ocrclient", *ours], [py, "-c", PREAMBLE + "\n" + RUN_OCR, *ours], env)}
    for src in also:
        cmds[f"ocrclient @ {src}"] = cmds["ocrclient"][0], cmds["ocrclient"][1], {**env, "PYTHONPATH": str(src)}
    cmds["naive loop"] = ([py, *theirs], [py, "-c", PREAMBLE + "\n" + RUN_NAIVE, *theirs], _env())
    return cmds


def first_request(sim: Sim) -> float | None:
    """When the simulator saw the first page request since the last call (health checks and the
    model list are not pages)."""
    spans, _, _ = sim.take()
    work = [s[0] for s in page_requests(spans)]
    return min(work) if work else None


def run_once(argv: list[str], env: dict[str, str], sim: Sim, cwd: Path, stamp: Path | None) -> dict[str, float] | None:
    """One run: its first request after its start, and (with a preamble) the preamble's end and
    the first request after it, in seconds; None if it failed."""
    if stamp is not None:
        stamp.unlink(missing_ok=True)
        env = {**env, "BENCH_START_STAMP": str(stamp)}
    sim.take()
    t0 = time.monotonic()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    first = first_request(sim)
    if done.returncode != 0 or first is None:
        print(f"  failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-300:]}")
        return None
    got = {"first": first - t0}
    if stamp is not None:
        ended = float(stamp.read_text())
        got.update(preamble=ended - t0, own=first - ended)
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="runs of each client, each way (medians printed)")
    ap.add_argument("--pages", type=int, default=16)
    ap.add_argument("--also-src", type=Path, action="append", default=[],
                    help="another source tree of ocrclient (its src/ folder, e.g. of a git worktree of an older "
                         "commit), run beside this one as a client of its own")  # fmt: skip
    args = ap.parse_args()
    also = [p.resolve() for p in args.also_src]
    for src in also:
        if not (src / "ocrclient" / "__init__.py").is_file():
            ap.error(f"--also-src {src}: no ocrclient package there (give the tree's src/ folder)")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "ocrclient")], capture_output=True, timeout=300)
    from bench_scheduler import make_pdf

    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    built, how = user_python()
    py = str(built) if built else sys.executable
    print(f"{compile_sources()}; the clients run with {py} ({how or 'cached'})", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-start-"))
    try:
        pdf = make_pdf(tmp / "doc.pdf", args.pages)
        naive = tmp / "naive.py"
        naive.write_text(NAIVE)
        for path, (kind, backend, _) in PATHS.items():
            got: dict[tuple[str, str], list[dict[str, float]]] = {}
            with Sim(kind, 8, 0.5) as sim:
                cmds = commands(py, sim, path, pdf, tmp / "out", naive, also)
                for _ in range(args.runs):
                    for client, (plain, first, env) in cmds.items():
                        for way, argv in (("as run", plain), ("libraries first", first)):
                            shutil.rmtree(tmp / "out", ignore_errors=True)
                            r = run_once(argv, env, sim, tmp, tmp / "stamp" if way == "libraries first" else None)
                            if r is not None:
                                got.setdefault((client, way), []).append(r)
            print(f"\n{path} ({backend} beside the naive loop with the same pages), medians of {args.runs}:")
            med: dict[tuple[str, str, str], float] = {}
            width = max(len(c) for c, _ in got) if got else 10
            for (client, way), runs in got.items():
                for key in runs[0]:
                    med[(client, way, key)] = statistics.median(r[key] for r in runs) * 1000
                line = f"  {client:{width}s} {way:16s} first request {med[(client, way, 'first')]:5.0f} ms"
                if way == "libraries first":
                    line += (f"  (libraries imported at {med[(client, way, 'preamble')]:4.0f} ms, "
                             f"first request {med[(client, way, 'own')]:4.0f} ms after)")  # fmt: skip
                print(line + f"  [{len(runs)} runs]")
            for client in [c for c in cmds if c != "naive loop"]:
                keys = [(client, "as run", "first"), ("naive loop", "as run", "first"),
                        (client, "libraries first", "own"), ("naive loop", "libraries first", "own")]  # fmt: skip
                if all(k in med for k in keys):
                    ours, theirs, own, own_theirs = (med[k] for k in keys)
                    print(f"  as run, {client} - naive loop: {ours - theirs:+.0f} ms; own start after the same "
                          f"libraries: {own - own_theirs:+.0f} ms")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average (1 min) at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
