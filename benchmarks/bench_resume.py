"""Resume: the rerun of a run that stopped part-way, its pages cached -- how soon the GPUs work again.

    python benchmarks/bench_resume.py [--pages 200] [--done 184] [--repeat 3] [--quick]

A simulated vLLM server runs in this process (:class:`~ocrclient.testing.OpenAISimulator`, 8
slots x 0.2 s a page) and records when each chat request arrives.  A first ``ocr convert``
converts pages 1-DONE of a PAGES-page text PDF into a page cache (rendered at 192 dpi PNG, as
``runpod-chandra`` renders); then the whole document is converted again into a new output
folder, by the same command a user reruns, twice a round, the two interleaved:

* ``recall`` -- with the cache as the first run left it, its recall entries with it
  (:mod:`ocrclient.recall`: a PDF page the cache holds is not rendered again);
* ``render`` -- a copy of that cache without its recall entries: every page is rendered to be
  looked up, as every rerun did before (the baseline, measured in the same run).

Printed per variant, medians over ``--repeat`` rounds: **first request** (the process started
-> the rerun's first chat request arrived), **wall**, **client CPU** (user + system of the
process and its children), and recall / render; then ``run_all.py``'s rows: the first request's
ratio against its target (:data:`TARGET`), and that both sent exactly the PAGES - DONE pages not
cached and wrote the same markdown (a miss exits 1).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_scheduler import make_pdf  # noqa: E402

MODEL = "sim/ocr-model"
#: the rerun's first request with the recall entries, at most this share of the baseline's
TARGET = 0.5


def start_sim(arrivals: list[float]) -> Any:
    from ocrclient.testing import FaultPlan, OpenAISimulator, SimReply

    lock = threading.Lock()

    def respond(body: dict[str, Any]) -> SimReply:
        with lock:
            arrivals.append(time.monotonic())
        return SimReply("# A page\n\nIts text, read.")

    sim = OpenAISimulator(plan=FaultPlan(latency_s=(0.2, 0.2), slots=8), model=MODEL, responder=respond)
    sim.start()
    return sim


def convert(pdf: Path, out: Path, cache: Path, sim: Any, pages: str | None = None) -> tuple[float, float, float]:
    """(started, wall s, client CPU s) of one ``ocr convert`` run as a user runs it."""
    argv = [sys.executable, "-m", "ocrclient", "convert", str(pdf), "-o", str(out), "--backend", "openai",
            "--base-url", sim.base_url, "--model", MODEL, "--dpi", "192", "--cache-dir", str(cache),
            "--concurrency", "8", "--quiet", "--no-progress", *(["--pages", pages] if pages else [])]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRCLIENT_")}
    env.update(OCRCLIENT_API_KEY=sim.api_key or "", OCRCLIENT_CONFIG_DIR=str(cache.parent / "noconfig"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"ocr convert exited {done.returncode}: {done.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return started, wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--done", type=int, default=184, help="pages the first run converts (cached)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="60 pages, 52 done, one round")
    args = ap.parse_args()
    if args.quick:
        args.pages, args.done, args.repeat = 60, 52, 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    arrivals: list[float] = []
    sim = start_sim(arrivals)
    failed = False
    try:
        pdf = make_pdf(tmp / "doc.pdf", args.pages)
        convert(pdf, tmp / "first", tmp / "cache", sim, pages=f"1-{args.done}")
        entries = sum(p.is_file() for p in (tmp / "cache" / "recall").rglob("*"))
        print(f"{args.pages}-page PDF at 192 dpi, pages 1-{args.done} cached by a first run ({entries} recall entries); "
              f"8 slots x 0.2 s; each round reruns the whole document into a new folder", flush=True)  # fmt: skip
        figures: dict[str, list[tuple[float, float, float]]] = {"recall": [], "render": []}
        for round_ in range(args.repeat):
            for variant in ("recall", "render"):
                cache = tmp / f"cache-{variant}-{round_}"
                shutil.copytree(tmp / "cache", cache)
                if variant == "render":
                    shutil.rmtree(cache / "recall", ignore_errors=True)
                out = tmp / f"out-{variant}-{round_}"
                n = len(arrivals)
                started, wall, cpu = convert(pdf, out, cache, sim)
                sent = arrivals[n:]
                if len(sent) != args.pages - args.done or (out / "doc.md").read_bytes() != (tmp / f"out-recall-{round_}" / "doc.md").read_bytes():
                    print(f"MISS: {variant} sent {len(sent)} pages (want {args.pages - args.done}) or wrote other markdown")
                    failed = True
                first = (min(sent) - started) if sent else float("nan")
                figures[variant].append((first, wall, cpu))
                print(f"  round {round_ + 1} {variant}: first request {first:.2f} s, wall {wall:.2f} s, CPU {cpu:.2f} s", flush=True)
    finally:
        sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    med = {v: [statistics.median(f[i] for f in rows) for i in range(3)] for v, rows in figures.items()}
    print(f"\n{'rerun':<8} {'first request':>14} {'wall':>9} {'client CPU':>11}")
    for v in ("recall", "render"):
        print(f"{v:<8} {med[v][0]:>12.2f} s {med[v][1]:>7.2f} s {med[v][2]:>9.2f} s")
    ratios = [med["recall"][i] / med["render"][i] for i in range(3)]
    print(f"recall / render: first request {ratios[0]:.2f}x, wall {ratios[1]:.2f}x, client CPU {ratios[2]:.2f}x\n")
    rows = [("resume first request, recall / render", f"{ratios[0]:.2f}x", f"<= {TARGET:.2f}x",
             "PASS" if ratios[0] <= TARGET else "MISS"),
            ("resume wall, recall / render", f"{ratios[1]:.2f}x", "-", "info"),
            ("resume client CPU, recall / render", f"{ratios[2]:.2f}x", "-", "info"),
            ("resume: pages sent and markdown as the baseline", "yes" if not failed else "no", "yes",
             "MISS" if failed else "PASS")]  # fmt: skip
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, (48, 8, 10, 4), strict=True)).rstrip())
    return 1 if failed or ratios[0] > TARGET else 0


if __name__ == "__main__":
    sys.exit(main())
