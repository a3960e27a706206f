"""Crash and resume: SIGKILL ``ocr convert`` at random points, rerun it, count what is sent again.

    python benchmarks/crash_resume.py [--pages 60] [--trials 5] [--seed 3] [--quick]

The simulated vLLM server (:class:`~ocrclient.testing.openai_sim.OpenAISimulator`) runs in
*this* process, keyed by page image (``key_fn`` = the digest of the image a request carries),
so its per-page request counters survive the client's death.  Each trial:

1. starts ``python -m ocrclient.cli convert doc.pdf -o OUT --backend openai --base-url SIM
   --cache-dir CACHE ...`` in its own process group;
2. waits until the resume cache holds a random number of finished pages, then SIGKILLs the
   whole group (the CLI and its render workers) — some trials crash twice, the second time
   during the rerun;
3. reads the cache as the crash left it: every entry must parse (writes are temp file + rename,
   so a kill cannot leave a torn entry); the pages in it are the *finished* pages;
4. reruns the same command to completion and checks: requests sent again for finished pages
   (target 0), the final ``OUT/doc.json`` has every page exactly once, in order, each with its
   own image's reply, and exit code 0.

Prints one line per trial and the totals ("finished pages sent again: 0"); exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_scheduler import (  # noqa: E402
    SIM_MODEL,
    check_pages,
    digest_of,
    expected_digests,
    image_digest,
    make_pdf,
    print_table,
)

RENDER_FLAGS = ["--dpi", "72", "--image-format", "jpeg"]


def image_key(body: Any) -> str:
    """Key a chat request by the image it carries (the digest the echo responder prints)."""
    try:
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        return image_digest(part["image_url"]["url"])
    except (AttributeError, KeyError, TypeError):
        pass
    return "no-image"


def start_sim(latency: tuple[float, float] = (0.15, 0.35), slots: int = 4) -> Any:
    from ocrclient.testing.faults import FaultPlan
    from ocrclient.testing.openai_sim import OpenAISimulator

    sim = OpenAISimulator(
        plan=FaultPlan(seed=1, latency_s=latency, slots=slots), model=SIM_MODEL, key_fn=image_key
    )
    sim.start()  # its server stays quiet about clients that die mid-request
    return sim


def cli_command(
    pdf: Path, out: Path, cache: Path, base_url: str, concurrency: int = 4
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ocrclient.cli",
        "convert",
        str(pdf),
        "-o",
        str(out),
        "--backend",
        "openai",
        "--base-url",
        base_url,
        "--model",
        SIM_MODEL,
        "--cache-dir",
        str(cache),
        *RENDER_FLAGS,
        "--concurrency",
        str(concurrency),
        "--quiet",
        "--no-progress",
    ]


def cli_env(api_key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCRCLIENT_")}
    env["OCRCLIENT_API_KEY"] = api_key or ""
    env["OCRCLIENT_CONFIG_DIR"] = str(
        Path(tempfile.gettempdir()) / "ocrclient-crash-resume-noconfig"
    )
    return env


def read_cache(cache: Path) -> tuple[set[str], int, int]:
    """(digests of the finished pages, corrupt entries, leftover temp files)."""
    from ocrclient.cache import entry_page

    finished: set[str] = set()
    corrupt = 0
    for f in (cache / "pages").glob("*/*.json"):
        if f.name.startswith(".tmp-"):
            continue
        try:
            page = entry_page(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            corrupt += 1
            continue
        d = digest_of(page.markdown)
        if d:
            finished.add(d)
    leftovers = sum(1 for _ in (cache / "pages").glob("*/.tmp-*"))
    return finished, corrupt, leftovers


def cached_count(cache: Path) -> int:
    return sum(1 for f in (cache / "pages").glob("*/*.json") if not f.name.startswith(".tmp-"))


def run_until(
    cmd: list[str], env: dict[str, str], cache: Path, kill_at: int | None, timeout_s: float = 120.0
) -> dict[str, Any]:
    """Run the CLI; with ``kill_at``, SIGKILL its process group once the cache holds that many
    pages.  Returns {"killed", "code", "stderr"}."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout_s
    killed = False
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if kill_at is not None and cached_count(cache) >= kill_at:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
        if proc.poll() is None and not killed:
            os.killpg(proc.pid, signal.SIGKILL)
            raise TimeoutError(f"ocr convert did not finish within {timeout_s:g}s")
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {"killed": killed, "code": proc.returncode, "stderr": (err or "")[-500:]}


def trial(
    sim: Any, pdf: Path, pages: int, kills: list[int], work: Path, expected: list[str]
) -> dict[str, Any]:
    """Crash at each cache size in ``kills`` (increasing), then rerun to completion."""
    out, cache = work / "out", work / "cache"
    cmd = cli_command(pdf, out, cache, sim.base_url)
    env = cli_env(sim.api_key)
    resent_finished = 0
    finished_total: set[str] = set()
    corrupt = leftovers = 0
    crashes = []
    for k in kills:
        before = dict(sim.requests_by_key)
        r = run_until(cmd, env, cache, k)
        # what the killed run had written before it died may reach the server a moment later
        sim.wait_quiet()
        finished, bad, tmp_left = read_cache(cache)
        corrupt += bad
        leftovers = tmp_left
        # requests the run just killed sent for pages that were already finished before it
        after = dict(sim.requests_by_key)
        resent_finished += sum(after.get(d, 0) - before.get(d, 0) for d in finished_total)
        crashes.append({"kill_at": k, "killed": r["killed"], "finished": len(finished)})
        finished_total = finished
    before = dict(sim.requests_by_key)
    final = run_until(cmd, env, cache, None)
    after = dict(sim.requests_by_key)
    resent_finished += sum(after.get(d, 0) - before.get(d, 0) for d in finished_total)
    rerun_sent = sum(after.get(d, 0) - before.get(d, 0) for d in after)
    doc_path = out / f"{pdf.stem}.json"
    doc = json.loads(doc_path.read_text()) if doc_path.exists() else {"pages": []}
    chk = check_pages(doc["pages"], expected)
    return {
        "kills": crashes,
        "finished_at_crash": len(finished_total),
        "resent_finished": resent_finished,
        "rerun_sent": rerun_sent,
        "rerun_cached": sum(1 for p in doc["pages"] if p.get("cached")),
        "corrupt_entries": corrupt,
        "tmp_leftovers": leftovers,
        "final_code": final["code"],
        "final_stderr": final["stderr"],
        **chk,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--pages", type=int, default=None, help="pages per trial (default 60; quick 30)"
    )
    ap.add_argument("--trials", type=int, default=None, help="default 5; quick 2")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    pages = args.pages or (30 if args.quick else 60)
    trials = args.trials or (2 if args.quick else 5)
    rng = random.Random(args.seed)
    sim = start_sim()
    results = []
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="crash-resume-") as tmp:
            pdf = make_pdf(Path(tmp) / "doc.pdf", pages)
            from ocrclient.imaging import RenderSpec

            expected = expected_digests(pdf, RenderSpec(dpi=72, format="jpeg"))
            print(
                f"crash/resume: {pages}-page PDF, {trials} trials, openai backend against an in-process "
                f"simulator (4 slots, 0.15-0.35 s per page), CLI concurrency 4, seed {args.seed}"
            )
            print(
                f"{'trial':>5}  {'kill points (cached pages)':<28}{'finished':>9}{'sent again':>11}{'rerun sent':>11}"
                f"{'rerun cached':>13}{'corrupt':>8}{'tmp left':>9}{'pages ok':>9}{'dup':>4}{'order':>6}{'exit':>5}"
            )
            for i in range(trials):
                first = rng.randint(2, pages - 4)
                kills = [first] if i % 2 == 0 else [first, rng.randint(first + 1, pages - 2)]
                work = Path(tmp) / f"trial{i}"
                work.mkdir()
                r = trial(sim, pdf, pages, kills, work, expected)
                results.append(r)
                points = ",".join(
                    f"{c['kill_at']}{'' if c['killed'] else '(finished first)'}" for c in r["kills"]
                )
                print(
                    f"{i + 1:>5}  {points:<28}{r['finished_at_crash']:>9}{r['resent_finished']:>11}{r['rerun_sent']:>11}"
                    f"{r['rerun_cached']:>13}{r['corrupt_entries']:>8}{r['tmp_leftovers']:>9}"
                    f"{r['ok']:>6}/{r['total']:<3}{r['duplicates']:>3}{r['order_errors']:>6}{r['final_code']:>5}"
                )
                if r["final_code"] != 0:
                    print(f"       rerun stderr: {r['final_stderr']}")
    finally:
        sim.stop()
    resent = sum(r["resent_finished"] for r in results)
    print(f"\nfinished pages sent again: {resent}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    figures = [
        ("finished pages sent again", str(resent), "0", resent == 0),
        (
            "corrupt cache entries after a kill",
            str(sum(r["corrupt_entries"] for r in results)),
            "0",
            all(r["corrupt_entries"] == 0 for r in results),
        ),
        (
            "final outputs with every page once, in order",
            f"{sum(r['ok'] == pages and r['duplicates'] == 0 and r['order_errors'] == 0 and r['wrong_content'] == 0 for r in results)}/{trials}",
            f"{trials}/{trials}",
            all(
                r["ok"] == pages
                and r["duplicates"] == 0
                and r["order_errors"] == 0
                and r["wrong_content"] == 0
                for r in results
            ),
        ),
        (
            "reruns exiting 0",
            f"{sum(r['final_code'] == 0 for r in results)}/{trials}",
            f"{trials}/{trials}",
            all(r["final_code"] == 0 for r in results),
        ),
    ]
    rows = [(n, v, t, "PASS" if good else "MISS") for n, v, t, good in figures]
    print_table(rows, "crash/resume summary")
    return 0 if all(good for *_, good in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
