"""Many calls at once on one ``AsyncClient``: peak memory, wall and first page, against one call.

    python benchmarks/bench_calls.py [--pages 240] [--calls 1,20,60] [--slots 8] [--latency 0.5]

A service converts each upload with ``await client.convert(...)`` on one shared
``AsyncClient``; under load many calls run at once.  The same pages (``--pages`` generated text
pages at Chandra's 192 dpi, split evenly into each run's documents) go through the
``runpod-chandra`` profile to the RunPod simulator (``--slots`` slots, ``--latency`` s a page)
with ``concurrency`` = slots, as one call and as ``--calls`` calls at once
(``asyncio.gather``).  Each run is a fresh process; the simulator runs in this one.

* **ours** -- as shipped: the client's calls render on its one render pool and hold between
  them ``BUILT_AHEAD`` pages per slot (``AdaptiveLimiter.admission``), the streams sharing the
  pool's prefetch window (``RenderPool.window``);
* **before** -- the baseline, as it was before session 32 (patched back in the child): every
  call made its own render pool (two threads, and with them glibc's per-thread malloc arenas)
  and admitted ``BUILT_AHEAD`` pages per slot of its own, so twenty calls held twenty times the
  pages one call does, each rendered and its request built, waiting for the shared limit.

Printed per mode and number of calls: pages ok, wall (first call made -> last returned), the
first page done (the earliest ``PageDone`` of any call), and the peak RSS (``VmHWM`` of the
child).  The judged figure is ours at the most calls against ours at one call (target: at most
1.5x the memory) and beside the baseline.  Not a unit test: the figures move with other load on
the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TARGET = 1.5
KEY = "rp-bench-calls"

CHILD = """\
import asyncio, json, os, sys, time
mode, concurrency, *pdfs = sys.argv[1:]
import ocrclient
if mode == "before":  # each call its own render pool and its own budget of pages in hand
    import asyncio as _aio
    from ocrclient import concurrency as _conc, run as _run
    _init = _run.Conversion.__init__
    def _own_pool(self, *a, **kw):
        kw["shared_pool"] = None
        _init(self, *a, **kw)
    _run.Conversion.__init__ = _own_pool
    _conc.AdaptiveLimiter.admission = lambda self, per_slot: _aio.Semaphore(per_slot * self.ceiling)
first = []
def on_event(event):
    if isinstance(event, ocrclient.PageDone) and not first:
        first.append(time.monotonic())
def peak_mb():
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM")) / 1024
async def main():
    async with ocrclient.AsyncClient("runpod-chandra", concurrency=int(concurrency), cache=False) as client:
        t0 = time.monotonic()
        docs = await asyncio.gather(*(client.convert(p, on_event=on_event) for p in pdfs))
        wall = time.monotonic() - t0
    ok = sum(1 for d in docs for p in d.pages if p.status == "ok")
    print(json.dumps({"ok": ok, "wall_s": wall, "first_page_s": first[0] - t0, "peak_mb": peak_mb()}))
asyncio.run(main())
"""


def run_child(mode: str, pdfs: list[Path], concurrency: int, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(concurrency), *map(str, pdfs)],
                          capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=240)
    parser.add_argument("--calls", default="1,20,60", help="numbers of calls at once, comma-separated")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    counts = [int(c) for c in args.calls.split(",")]
    if any(args.pages % c for c in counts):
        parser.error("--pages must divide evenly among every number of --calls")

    from bench_scheduler import make_pdf

    from ocrclient.testing import DialectResponder, FaultPlan
    from ocrclient.testing.runpod_sim import RunPodSimulator

    plan = FaultPlan(slots=max(64, args.slots), latency_s=(args.latency, args.latency))
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{args.pages} pages, runpod-chandra, concurrency {args.slots}, {args.latency} s a page")
    rows: list[tuple[str, int, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp, RunPodSimulator(
        plan=plan, api_key=KEY, responder=DialectResponder("chandra")
    ) as sim:
        env = {**os.environ, "RUNPOD_API_KEY": KEY, "RUNPOD_CHANDRA_ENDPOINT_ID": sim.endpoint_id,
               "RUNPOD_BASE_URL": sim.base_url, "PYTHONPATH": str(ROOT / "src"),
               "OCRCLIENT_CONFIG_DIR": str(Path(tmp) / "config")}  # fmt: skip
        for calls in counts:
            per = args.pages // calls
            pdfs = [make_pdf(Path(tmp) / f"c{calls}-{i}.pdf", per, seed=i) for i in range(calls)]
            for mode in ("ours", "before"):
                result = run_child(mode, pdfs, args.slots, env)
                rows.append((mode, calls, result))
                if "error" in result:
                    print(f"  {mode}, {calls} call(s): FAILED: {result['error']}")
                else:
                    print(f"  {mode}, {calls} call(s): {result['ok']} ok, wall {result['wall_s']:.1f} s, "
                          f"first page {result['first_page_s']:.2f} s, peak {result['peak_mb']:.0f} MB")  # fmt: skip
    print()
    print(f"{'mode':8s} {'calls':>5s} {'pages ok':>8s} {'wall':>8s} {'first page':>10s} {'peak RSS':>9s}")
    for mode, calls, r in rows:
        if "error" not in r:
            print(f"{mode:8s} {calls:5d} {r['ok']:8d} {r['wall_s']:7.1f}s {r['first_page_s']:9.2f}s {r['peak_mb']:7.0f}MB")
    ours = {calls: r for mode, calls, r in rows if mode == "ours" and "error" not in r}
    before = {calls: r for mode, calls, r in rows if mode == "before" and "error" not in r}
    most, least = max(counts), min(counts)
    missed = True
    if most in ours and least in ours and most in before:
        ratio = ours[most]["peak_mb"] / ours[least]["peak_mb"]
        missed = ratio > TARGET or any(r["ok"] != args.pages for r in ours.values())
        print()
        print(f"peak RSS, {most} calls at once / 1 call  {ratio:.2f}x  <= {TARGET}x  {'MISS' if missed else 'PASS'}")
        print(f"the same, before  {before[most]['peak_mb'] / before[least]['peak_mb']:.2f}x  (baseline)  info")
        print(f"peak RSS at {most} calls, ours / before  {ours[most]['peak_mb'] / before[most]['peak_mb']:.2f}x  (lower is better)  info")
        print(f"wall at {most} calls, ours / before  {ours[most]['wall_s'] / before[most]['wall_s']:.2f}x  (lower is better)  info")
        print(f"first page at {most} calls, ours  {ours[most]['first_page_s']:.2f}s  before: {before[most]['first_page_s']:.2f}s  info")
    print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
