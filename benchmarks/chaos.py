"""Chaos run: every fault a cloud throws, at once, through the RunPod and the OpenAI simulators.

    python benchmarks/chaos.py [--pages 500] [--seed 8] [--quick]

Half the pages (one generated PDF) go through the RunPod serverless simulator (``/run`` +
status polling), the other half (another PDF) through the vLLM OpenAI-compatible simulator
(streaming), each with the same seeded :class:`~ocrclient.testing.FaultPlan`:

    10 % 5xx (500/502/503) · 5 % 429 with Retry-After · 3 % connection resets mid-reply ·
    2 % FAILED jobs · 1 % COMPLETED without output · 2 % hangs · a cold start ·
    one endpoint restart when half the pages are done

(``failed`` / ``no_output`` exist only on RunPod; the OpenAI simulator serves those draws
healthy.  The RunPod restart loses every job -> status 404 -> resubmit; the OpenAI restart stops
the server and starts it again on the same port (``restart()``): connections in flight are cut,
the port refuses for a moment, the model loads again.)

Bounded in time: service 0.05-0.2 s, hangs hold 3 s, attempt timeout 2 s (+0.5 s grace), cold
start 1.5 s (3 s allowance until the first success), backoff 0.05 s doubling to 0.5 s,
``max_attempts=15``.  The simulators run in this process so their counters and ``restart()``
are at hand.

Prints, per simulator and in total: pages ok / total, duplicates in the output, order errors,
pages carrying another page's content, retries by cause, faults injected, remote work left
running at the end (RunPod: jobs IN_QUEUE / IN_PROGRESS; OpenAI: requests still holding a
service slot), wall time.  Exits 1 if a target is missed (ok = total, every other count 0).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_scheduler import (  # noqa: E402
    FAST_RENDER,
    RUNPOD_KEY,
    SIM_MODEL,
    check_pages,
    convert_pdf,
    expected_digests,
    make_pdf,
    print_table,
    sim_overrides,
    sim_stats,
)

CHAOS_RATES = {
    "http_500": 0.04,
    "http_502": 0.03,
    "http_503": 0.03,
    "http_429": 0.05,
    "reset": 0.03,
    "failed": 0.02,
    "no_output": 0.01,
    "hang": 0.02,
}
SCHEDULER = {
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.5,
    "attempt_timeout_s": 2.0,
    "timeout_grace_s": 0.5,
    "cold_start_s": 3.0,
    "max_attempts": 15,
}
HANG_S = 3.0


def make_plan(seed: int) -> Any:
    from ocrclient.testing.faults import FaultPlan

    return FaultPlan(
        seed=seed,
        rates=CHAOS_RATES,
        latency_s=(0.05, 0.2),
        slots=8,
        cold_start_s=1.5,
        retry_after_s=0.3,
        hang_s=HANG_S,
    )


def run_one(
    kind: str, pdf: Path, pages: int, seed: int, *, restart: bool = True, concurrency: int = 16
) -> dict[str, Any]:
    """Convert ``pages`` pages of ``pdf`` through one simulator under the chaos plan."""
    from ocrclient.registry import load_backend
    from ocrclient.scheduler import PageDone, PageFailed
    from ocrclient.testing.openai_sim import OpenAISimulator
    from ocrclient.testing.runpod_sim import RunPodSimulator

    plan = make_plan(seed)
    sim: Any
    if kind == "runpod":
        sim = RunPodSimulator(plan=plan, api_key=RUNPOD_KEY)
    else:
        sim = OpenAISimulator(plan=plan, model=SIM_MODEL)
    sim.start()
    restarted: list[float] = []
    threads: list[threading.Thread] = []
    try:
        over = sim_overrides(kind, sim.base_url, sim.api_key, getattr(sim, "endpoint_id", None))
        over["render"] = FAST_RENDER
        if kind == "runpod":
            over["transport_options"] = {
                "mode": "run",
                "poll_interval_s": 0.1,
                "max_poll_interval_s": 0.5,
            }
        probe = load_backend(kind, **over)
        expected = expected_digests(pdf, probe.render, pages)
        asyncio.run(probe.aclose())

        done = [0]

        def on_event(event: object) -> None:
            if isinstance(event, PageDone | PageFailed):
                done[0] += 1
                if restart and not restarted and done[0] >= pages // 2:
                    restarted.append(time.monotonic())
                    t = threading.Thread(target=sim.restart, daemon=True)
                    t.start()
                    threads.append(t)

        doc, wall = asyncio.run(
            convert_pdf(
                kind,
                over,
                pdf,
                pages=pages,
                concurrency=concurrency,
                scheduler_options=SCHEDULER,
                on_event=on_event,
            )
        )
        for t in threads:
            t.join(10)
        left_now = sim_stats(sim)["left_running"]
        # the OpenAI simulator does not notice a client hanging up (vLLM aborts the request):
        # a hang it is serving ends after hang_s; count what is still held after that
        settle_until = time.monotonic() + (HANG_S + 0.5 if kind == "openai" else 0.5)
        while sim_stats(sim)["left_running"] and time.monotonic() < settle_until:
            time.sleep(0.05)
        stats = sim_stats(sim)
    finally:
        sim.stop()
    chk = check_pages(doc.pages, expected)
    return {
        "kind": kind,
        "pages": pages,
        **chk,
        "retries": dict(sorted(doc.stats.retries_by_cause.items())),
        "injected": dict(sorted(stats["injected"].items())),
        "restarted": bool(restarted),
        "left_running_at_end": left_now,
        "left_running": stats["left_running"],
        "cancels": stats.get("cancels"),
        "wall_s": wall,
        "failed_errors": [p.error.message for p in doc.pages if p.status == "failed" and p.error][
            :3
        ],
    }


def verdict(results: list[dict[str, Any]]) -> tuple[list[tuple[str, str, str, str]], bool]:
    total = sum(r["pages"] for r in results)
    ok = sum(r["ok"] for r in results)
    figures = [
        ("pages ok / total", f"{ok}/{total}", f"{total}/{total}", ok == total),
        (
            "duplicates in output",
            str(sum(r["duplicates"] for r in results)),
            "0",
            sum(r["duplicates"] for r in results) == 0,
        ),
        (
            "order errors",
            str(sum(r["order_errors"] for r in results)),
            "0",
            sum(r["order_errors"] for r in results) == 0,
        ),
        (
            "pages with another page's content",
            str(sum(r["wrong_content"] + r["missing"] for r in results)),
            "0",
            sum(r["wrong_content"] + r["missing"] for r in results) == 0,
        ),
        (
            "remote work left running",
            str(sum(r["left_running"] for r in results)),
            "0",
            sum(r["left_running"] for r in results) == 0,
        ),
        (
            "endpoint restarted mid-run",
            str(sum(r["restarted"] for r in results)),
            str(len(results)),
            all(r["restarted"] for r in results),
        ),
    ]
    rows = [(n, v, t, "PASS" if good else "MISS") for n, v, t, good in figures]
    return rows, all(good for *_, good in figures)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--pages",
        type=int,
        default=None,
        help="total pages, split over both simulators (default 500)",
    )
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="120 pages")
    args = ap.parse_args()
    total = args.pages or (120 if args.quick else 500)
    half = total // 2
    print(
        f"chaos: {total} pages ({half} RunPod /run, {total - half} OpenAI streaming), seed {args.seed}"
    )
    print(
        f"fault rates: {CHAOS_RATES}; cold start 1.5 s; hangs {HANG_S:g} s; one restart at half-way"
    )
    print(f"scheduler: {SCHEDULER}")
    results = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        for i, (kind, n) in enumerate((("runpod", half), ("openai", total - half))):
            pdf = make_pdf(Path(tmp) / f"{kind}.pdf", n, seed=args.seed + i)
            r = run_one(kind, pdf, n, args.seed + i)
            results.append(r)
            print(
                f"\n[{kind}] pages ok {r['ok']}/{r['pages']}  duplicates {r['duplicates']}  order errors "
                f"{r['order_errors']}  wrong content {r['wrong_content']}  wall {r['wall_s']:.1f} s"
            )
            print(f"  injected: {r['injected']}")
            print(f"  retries by cause: {r['retries']}")
            print(
                f"  remote work left running: {r['left_running_at_end']} when the run returned, "
                f"{r['left_running']} after settling; remote cancels received: {r['cancels']}"
            )
            if r["failed_errors"]:
                print(f"  failed pages, first errors: {r['failed_errors']}")
    retries: Counter[str] = Counter()
    for r in results:
        retries.update(r["retries"])
    print(f"\nretries by cause, both: {dict(sorted(retries.items()))}")
    print(f"wall time, both runs: {time.perf_counter() - t0:.1f} s")
    rows, good = verdict(results)
    print_table(rows, "chaos summary")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
