"""Scheduler proof figures: server-bound efficiency, client-bound throughput, memory, faults.

    python benchmarks/bench_scheduler.py [--quick] [--service-s 1.0] [--pages 400] [--slots 32]

Every figure runs a real ``ocrclient`` conversion (render pool -> dialect -> scheduler ->
transport -> HTTP) of a generated text PDF against a simulated cloud from
``ocrclient.testing``.  The simulator runs in its **own process** (:class:`SimHost`): in the
client's process its HTTP threads would fight the client for the GIL and the figures would
measure that fight, not the client.

(a) **Server-bound efficiency** — a simulated endpoint with ``slots`` GPU slots and a fixed
    service time ``s`` per page (default 2 s: the client must feed ``slots / s`` = 16 pages/s,
    well under what it manages on 2 shared cores; at 0.5 s it would need 64 pages/s and the
    figure would measure the client, see (b)); efficiency = ideal wall / measured wall.  Two ideals are
    printed: the brief's ``pages x s / slots`` and the makespan bound ``ceil(pages / slots) x s``
    (with a fixed service time no schedule beats it: some slot must serve ``ceil(pages/slots)``
    pages; 400 / 32 = 12.5 caps the brief's figure at 0.96).  PASS/MISS uses the makespan
    bound.  Client concurrency is ``2 x slots`` so queued jobs cover the client's turnaround
    (poll latency, next render), and ``1 x slots`` is shown beside it.  The RunPod transport is
    measured in ``runsync`` mode and in ``run`` mode with the shipped profiles' poll
    (``poll_interval_s = 2.0``, x1.5 per poll, capped at 5 s), the transport's own default
    (0.25 s, same growth and cap) and 0.25 s capped at 0.5 s; the OpenAI transport beside.
    Render spec: 72 dpi JPEG, so the client can feed ``slots / s`` pages per second on 2 cores
    (at the profiles' 150 dpi PNG one core renders ~8 pages/s; see (b) for that spec).
(b) **Client-bound throughput** — the same conversion against an instant server (service time
    0, 64 slots), pages/s as a ratio of a serial pypdfium2 render + PIL encode loop at the same
    spec (no HTTP, no scheduler).  Judged at the specs the shipped profiles send: the generic
    profiles' 150 dpi PNG and the cheapest, runpod-rolmocr's 1024 px PNG.  72 dpi JPEG, which
    no profile sends, is printed as a stress row beside the target and not judged
    (:data:`CLIENT_SPECS` says why).
(c) **Peak RSS of a full ``ocr convert``** (the CLI, writing md + json) at 100 and 1000 pages,
    each in a fresh subprocess: the CLI process's own peak plus the peak of every process it
    started (render workers, fork server), all read as ``VmHWM`` from ``/proc`` while it runs
    (not ``ru_maxrss``: Linux keeps that across ``execve``, so a child of a big parent reports
    the parent's peak).  ``RUSAGE_CHILDREN`` as seen by this script is printed too (it is a max over single
    processes, not a sum, and render workers are not our direct children).
(d) **Faults** — 10 % 5xx + 5 % 429 (Retry-After 0.2 s) + 2 % hangs against the RunPod
    simulator; pages ok / total and the scheduler's retries by cause.  Tightened for the
    benchmark via Scheduler kwargs: ``backoff_initial_s=0.05``, ``backoff_max_s=1``,
    ``attempt_timeout_s=3``, ``timeout_grace_s=0.5``, ``max_attempts=12`` (profile default 4).

The helpers at the top (:func:`make_pdf`, :class:`SimHost`, :func:`expected_digests`,
:func:`check_pages`) are shared with ``chaos.py``, ``crash_resume.py`` and the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _procfs import busy_cpu_s, descendants, proc_cpu_s, status_kb  # noqa: E402

RUNPOD_KEY = "rp_sim_key_0123456789"
SIM_MODEL = "sim/ocr-model"

# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------


def make_pdf(path: Path, pages: int, seed: int = 7) -> Path:
    """A text PDF of ``pages`` US-letter pages (the bench_render generator: every page differs)."""
    from bench_render import make_text_pdf

    path.write_bytes(make_text_pdf(pages, seed=seed))
    return path


def image_digest(data_url: str) -> str:
    """What the simulators' echo responder calls an image: ``# Page <digest>``."""
    from ocrclient.testing.faults import body_key

    return body_key(data_url)[:8]


_DIGEST = re.compile(r"# Page ([0-9a-f]{8})")


def digest_of(markdown: str | None) -> str | None:
    m = _DIGEST.search(markdown or "")
    return m.group(1) if m else None


def expected_digests(pdf: Path, spec: Any, pages: int | None = None) -> list[str]:
    """The echo digest of every page image the client will send (rendered here, same spec)."""
    from ocrclient.pages import RenderPool, iter_pages

    out: list[str] = []
    with RenderPool() as pool:
        sel = f"1-{pages}" if pages else None
        for page in iter_pages(pdf, spec, pages=sel, pool=pool):
            assert page.encoded is not None, page.error
            out.append(image_digest(page.encoded.data_url()))
    return out


def check_pages(pages: Sequence[Any], expected: Sequence[str] | None = None) -> dict[str, Any]:
    """Invariants of one output document (``pages``: Page models or their JSON dicts).

    ``ok`` pages with status ok/degraded; ``duplicates`` — pages whose content (the digest the
    simulator echoed) also appears on another page; ``order_errors`` — positions whose page
    number is not ``i + 1``; ``wrong_content`` — pages whose content is another image's reply
    (needs ``expected``); ``missing`` — expected pages absent from the output.
    """

    def get(p: Any, name: str) -> Any:
        return p.get(name) if isinstance(p, dict) else getattr(p, name)

    numbers = [get(p, "page") for p in pages]
    digests = [digest_of(get(p, "markdown")) for p in pages]
    seen = Counter(d for d in digests if d is not None)
    out = {
        "total": len(pages),
        "ok": sum(get(p, "status") in ("ok", "degraded") for p in pages),
        "failed": sum(get(p, "status") == "failed" for p in pages),
        "duplicates": sum(n - 1 for n in seen.values() if n > 1)
        + sum(n - 1 for n in Counter(numbers).values() if n > 1),
        "order_errors": sum(1 for i, n in enumerate(numbers) if n != i + 1),
        "wrong_content": 0,
        "missing": 0,
    }
    if expected is not None:
        out["missing"] = max(0, len(expected) - len(pages))
        out["wrong_content"] = sum(
            1
            for i, d in enumerate(digests)
            if i < len(expected) and d is not None and d != expected[i]
        )
    return out


def _runpod_stats(sim: Any) -> dict[str, Any]:
    with sim._lock:
        jobs = list(sim._jobs.values())
    statuses = Counter(j.status for j in jobs)
    started = [j.started for j in jobs if j.started is not None]
    finished = [j.finished for j in jobs if j.finished is not None]
    busy = sum(
        j.finished - j.started for j in jobs if j.started is not None and j.finished is not None
    )
    return {
        "jobs_submitted": sim.jobs_submitted,
        "requests": dict(sim.requests),
        "statuses": dict(statuses),
        "running_now": sim.running_now,
        "left_running": statuses.get("IN_QUEUE", 0) + statuses.get("IN_PROGRESS", 0),
        "max_concurrent": sim.max_concurrent,
        "cancels": sim.cancels_received,
        "first_start": min(started) if started else None,
        "last_finish": max(finished) if finished else None,
        "busy_s": busy,
        "injected": dict(sim.plan.injected),
    }


def _openai_stats(sim: Any) -> dict[str, Any]:
    starts = getattr(sim.responder, "starts", [])
    return {
        "requests": dict(sim.requests),
        "statuses": dict(sim.statuses),
        "left_running": sim._active,
        "in_flight_now": sim._inflight,
        "max_concurrent": sim.max_active,
        "first_start": min(starts) if starts else None,
        "last_start": max(starts) if starts else None,
        "resets": sim.resets,
        "injected": dict(sim.plan.injected),
    }


def sim_stats(sim: Any) -> dict[str, Any]:
    """Counters of an in-process simulator, the same shape :class:`SimHost` reports."""
    from ocrclient.testing.runpod_sim import RunPodSimulator

    return _runpod_stats(sim) if isinstance(sim, RunPodSimulator) else _openai_stats(sim)


class _TimedEcho:
    """The echo responder, recording when each request started being served."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def __call__(self, body: dict[str, Any]) -> Any:
        from ocrclient.testing.faults import echo_responder

        self.starts.append(time.monotonic())
        return echo_responder(body)


def _host_main(kind: str, plan_kw: dict[str, Any], sim_kw: dict[str, Any], conn: Any) -> None:
    from ocrclient.testing.faults import FaultPlan

    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the stdlib server prints client hang-ups
    plan = FaultPlan(**plan_kw)
    sim: Any
    if kind == "runpod":
        from ocrclient.testing.runpod_sim import RunPodSimulator

        sim = RunPodSimulator(plan=plan, api_key=RUNPOD_KEY, **sim_kw)
    else:
        from ocrclient.testing.openai_sim import OpenAISimulator

        sim = OpenAISimulator(plan=plan, responder=_TimedEcho(), model=SIM_MODEL, **sim_kw)
    sim.start()
    conn.send(
        {
            "base_url": sim.base_url,
            "api_key": sim.api_key,
            "endpoint_id": getattr(sim, "endpoint_id", None),
        }
    )
    while True:
        cmd = conn.recv()
        if cmd == "stats":
            conn.send(sim_stats(sim))
        elif cmd == "stop":
            stats = sim_stats(sim)
            sim.stop()
            conn.send(stats)
            return


class SimHost:
    """A simulator (``"runpod"`` or ``"openai"``) served from a child process.

    Example::

        with SimHost("runpod", {"slots": 32, "latency_s": (1.0, 1.0)}) as host:
            host.base_url, host.api_key, host.endpoint_id
            host.stats()["busy_s"]
    """

    def __init__(self, kind: str, plan: dict[str, Any], **sim_kw: Any) -> None:
        self.kind = kind
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_host_main, args=(kind, plan, sim_kw, child), daemon=True)
        self._proc.start()
        self.pid: int = self._proc.pid or 0
        info = self._conn.recv()
        self.base_url: str = info["base_url"]
        self.api_key: str = info["api_key"]
        self.endpoint_id: str | None = info["endpoint_id"]

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return dict(self._conn.recv())

    def stop(self) -> dict[str, Any]:
        if not self._proc.is_alive():
            return {}
        self._conn.send("stop")
        stats = dict(self._conn.recv())
        self._proc.join(5)
        return stats

    def __enter__(self) -> SimHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._proc.is_alive():
            self._proc.kill()

    def backend_overrides(self) -> dict[str, Any]:
        """load_backend overrides pointing a generic backend at this simulator."""
        return sim_overrides(self.kind, self.base_url, self.api_key, self.endpoint_id)


def sim_overrides(
    kind: str, base_url: str, api_key: str | None, endpoint_id: str | None
) -> dict[str, Any]:
    over: dict[str, Any] = {
        "base_url": base_url,
        "api_key": api_key,
        "model": SIM_MODEL,
    }
    if kind == "runpod":
        over["endpoint_id"] = endpoint_id
    return over


async def convert_pdf(
    backend_name: str,
    overrides: dict[str, Any],
    pdf: Path,
    *,
    pages: int | None = None,
    concurrency: int,
    scheduler_options: dict[str, Any] | None = None,
    on_event: Any = None,
) -> tuple[Any, float]:
    """One conversion through the public API; returns (Document, wall seconds)."""
    from ocrclient.api import aconvert
    from ocrclient.registry import load_backend

    be = load_backend(backend_name, concurrency=concurrency, cold_start_s=0, **overrides)
    t0 = time.perf_counter()
    try:
        doc = await aconvert(
            str(pdf),
            backend=be,
            cache=False,
            concurrency=concurrency,
            pages=f"1-{pages}" if pages else None,
            scheduler_options=scheduler_options or {},
            on_event=on_event,
        )
    finally:
        await be.aclose()
    return doc, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# (a) server-bound efficiency
# ---------------------------------------------------------------------------------------------

FAST_RENDER = {"dpi": 72, "format": "jpeg"}


def efficiency_run(
    pdf: Path,
    pages: int,
    slots: int,
    service_s: float,
    kind: str,
    concurrency: int,
    topts: dict[str, Any],
) -> dict[str, Any]:
    plan = {"slots": slots, "latency_s": (service_s, service_s)}
    with SimHost(kind, plan) as host:
        over = {**host.backend_overrides(), "render": FAST_RENDER}
        if topts:
            over["transport_options"] = topts
        name = "runpod" if kind == "runpod" else "openai"
        t_start = time.monotonic()
        doc, wall = asyncio.run(convert_pdf(name, over, pdf, pages=pages, concurrency=concurrency))
        st = host.stats()
    ideal_brief = pages * service_s / slots
    ideal_bound = math.ceil(pages / slots) * service_s
    first = st.get("first_start")
    last = st.get("last_finish") or (
        (st["last_start"] + service_s) if st.get("last_start") else None
    )
    server_wall = (last - first) if first and last else float("nan")
    return {
        "ok": doc.stats.ok,
        "wall_s": wall,
        "eff_brief": ideal_brief / wall,
        "eff_bound": ideal_bound / wall,
        "eff_server": ideal_bound / server_wall,
        "startup_s": (first - t_start) if first else float("nan"),
        "server_busy": (st["busy_s"] / (slots * wall)) if "busy_s" in st else float("nan"),
        "max_concurrent": st.get("max_concurrent"),
        "requests": sum(st.get("requests", {}).values()),
    }


# ---------------------------------------------------------------------------------------------
# (b) client-bound throughput
# ---------------------------------------------------------------------------------------------


def serial_render_encode(pdf: Path, spec: Any, pages: int) -> float:
    """Seconds for a plain loop: pypdfium2 render at the spec's scale + PIL encode (same
    format/quality/compress level as imaging.encode); no pool, no HTTP."""
    import pypdfium2 as pdfium

    from ocrclient.imaging import encode

    doc = pdfium.PdfDocument(str(pdf))
    t0 = time.perf_counter()
    total = 0
    for i in range(pages):
        page = doc[i]
        w, h = page.get_size()
        scale = spec.scale(w, h)
        img = page.render(scale=scale).to_pil()
        total += len(encode(img, spec).data)
        page.close()
    dt = time.perf_counter() - t0
    doc.close()
    assert total > 0
    return dt


def spec_label(spec: Any) -> str:
    """``150 dpi png`` or ``1024 px png``: whichever of dpi / longest side decides a US-letter
    page's size."""
    w, h = spec.pixel_size(612, 792)
    if spec.dpi is not None and (w, h) == (round(612 * spec.dpi / 72), round(792 * spec.dpi / 72)):
        return f"{spec.dpi:g} dpi {spec.format}"
    return f"{max(w, h)} px {spec.format}"


#: (b)'s specs: (render, who sends it, judged against the target).  The shipped profiles all send
#: PNG at 144 dpi or more, or at a longest side of 1024-1540 px; 72 dpi JPEG is sent by none of
#: them and is kept as a stress row (a page costs 4-5 ms to render there, so the client's
#: per-request work costs about as much as the render, and the simulated server's CPU comes out
#: of the same 2 cores).
CLIENT_SPECS: list[tuple[dict[str, Any], str, bool]] = [
    ({"dpi": 150, "format": "png"}, "runpod, openai, runpod-trocr profiles", True),
    ({"longest_side": 1024, "format": "png"}, "runpod-rolmocr: the cheapest shipped spec", True),
    (FAST_RENDER, "stress: no profile sends it", False),
]


def client_bound(
    pdf: Path, pages: int, render: dict[str, Any], kind: str = "runpod"
) -> dict[str, Any]:
    from ocrclient.registry import load_backend

    topts = {"mode": "runsync"} if kind == "runpod" else {"stream": False}
    with SimHost(kind, {"slots": 64, "latency_s": (0.0, 0.0)}) as host:
        over = {**host.backend_overrides(), "render": render, "transport_options": topts}
        be = load_backend("runpod" if kind == "runpod" else "openai", **over)
        spec = be.render
        asyncio.run(be.aclose())
        serial_render_encode(pdf, spec, 3)  # warm-up
        from ocrclient.scheduler import PageDone

        runs = []
        steady = []
        base = []
        cpu: list[tuple[float, float, float, float]] = []
        for _ in range(2):  # interleaved, best of 2 (shared machine)
            c0 = time.process_time()
            base.append(serial_render_encode(pdf, spec, pages))
            base_cpu = time.process_time() - c0
            m0, s0, b0 = time.process_time(), proc_cpu_s(host.pid), busy_cpu_s()
            done: list[float] = []

            def on_event(event: object, done: list[float] = done) -> None:
                if isinstance(event, PageDone):
                    done.append(time.perf_counter())

            doc, wall = asyncio.run(
                convert_pdf(kind, over, pdf, pages=pages, concurrency=64, on_event=on_event)
            )
            main_s, sim_s = time.process_time() - m0, proc_cpu_s(host.pid) - s0
            cpu.append((base_cpu, main_s, busy_cpu_s() - b0 - main_s - sim_s, sim_s))
            assert doc.stats.ok == pages, doc.stats
            runs.append(wall)
            # pages/s once running: from the first page done to the last (start-up excluded)
            steady.append((pages - 1) / (done[-1] - done[0]))
    best = runs.index(min(runs))
    return {
        "spec": spec_label(spec),
        "client_pps": pages / min(runs),
        "serial_pps": pages / min(base),
        "ratio": min(base) / min(runs),
        "steady_pps": max(steady),
        "steady_ratio": max(steady) * min(base) / pages,
        # CPU ms/page: the serial loop; the client's main process; the rest of the machine's busy
        # time (render workers, plus anything else running); the simulated server
        "cpu_ms": [round(1000 * v / pages, 2) for v in cpu[best]],
    }


# ---------------------------------------------------------------------------------------------
# (c) peak RSS of a full CLI convert
# ---------------------------------------------------------------------------------------------


def rss_child(argv: list[str]) -> None:
    """Run ``ocr convert argv`` in this process, sampling descendants' peak RSS; print JSON."""
    peaks: dict[int, int] = {}
    stop = threading.Event()
    me = os.getpid()

    def sample() -> None:
        while not stop.is_set():
            for pid in descendants(me):
                kb = status_kb(pid)
                if kb:
                    peaks[pid] = max(peaks.get(pid, 0), kb)
            stop.wait(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    from ocrclient.cli import app

    code = 0
    try:
        app(["convert", *argv], standalone_mode=False)
    except SystemExit as exc:
        code = int(exc.code or 0)
    except Exception as exc:  # typer.Exit under standalone_mode=False
        code = int(getattr(exc, "exit_code", 1))
    stop.set()
    t.join()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child started by a
    # big parent would report the parent's peak (seen: 434 MB for a 136 MB CLI run)
    self_kb = status_kb(os.getpid()) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "code": code,
                "self_kb": self_kb,
                "children_kb": sum(peaks.values()),
                "children": len(peaks),
            }
        )
    )


def measure_rss(pdf: Path, pages: int, host: SimHost, out_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "OCRCLIENT_API_KEY": host.api_key or ""}
    argv = [
        str(pdf),
        "-o",
        str(out_dir),
        "--backend",
        "openai",
        "--base-url",
        host.base_url,
        "--model",
        SIM_MODEL,
        "--pages",
        f"1-{pages}",
        "--no-cache",
        "--dpi",
        "72",
        "--image-format",
        "jpeg",
        "--concurrency",
        "32",
        "--quiet",
        "--no-progress",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--rss-child", json.dumps(argv)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"rss child failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    doc = json.loads((out_dir / f"{pdf.stem}.json").read_text())
    r["pages_ok"] = sum(p["status"] == "ok" for p in doc["pages"])
    r["rusage_children_kb"] = max(before, after)
    r["wall_s"] = wall
    return r


# ---------------------------------------------------------------------------------------------
# (d) faults
# ---------------------------------------------------------------------------------------------

FAULT_MIX = {"http_500": 0.04, "http_502": 0.03, "http_503": 0.03, "http_429": 0.05, "hang": 0.02}
TIGHT = {
    "backoff_initial_s": 0.05,
    "backoff_max_s": 1.0,
    "attempt_timeout_s": 3.0,
    "timeout_grace_s": 0.5,
    "max_attempts": 12,
}


def fault_run(pdf: Path, pages: int, slots: int) -> dict[str, Any]:
    plan = {
        "seed": 11,
        "rates": FAULT_MIX,
        "slots": slots,
        "latency_s": (0.1, 0.3),
        "retry_after_s": 0.2,
        "hang_s": 30.0,
    }
    with SimHost("runpod", plan) as host:
        over = {
            **host.backend_overrides(),
            "render": FAST_RENDER,
            "transport_options": {
                "mode": "run",
                "poll_interval_s": 0.1,
                "max_poll_interval_s": 0.5,
            },
        }
        doc, wall = asyncio.run(
            convert_pdf(
                "runpod", over, pdf, pages=pages, concurrency=2 * slots, scheduler_options=TIGHT
            )
        )
        time.sleep(0.3)
        st = host.stats()
    chk = check_pages(doc.pages)
    return {
        "ok": chk["ok"],
        "total": pages,
        "duplicates": chk["duplicates"],
        "order_errors": chk["order_errors"],
        "retries": dict(sorted(doc.stats.retries_by_cause.items())),
        "injected": st["injected"],
        "left_running": st["left_running"],
        "wall_s": wall,
    }


# ---------------------------------------------------------------------------------------------


def _row(name: str, value: str, target: str, ok: bool | None) -> tuple[str, str, str, str]:
    """A summary row; ``ok=None`` is a figure reported beside a target but not judged by it."""
    return (name, value, target, "info" if ok is None else ("PASS" if ok else "MISS"))


def print_table(rows: list[tuple[str, str, str, str]], title: str) -> None:
    w0 = max(len(r[0]) for r in rows) + 2
    w1 = max(len("measured"), *(len(r[1]) for r in rows)) + 2
    w2 = max(len("target"), *(len(r[2]) for r in rows)) + 2
    print(f"\n{title}")
    print(f"{'figure':<{w0}}{'measured':<{w1}}{'target':<{w2}}result")
    for r in rows:
        print(f"{r[0]:<{w0}}{r[1]:<{w1}}{r[2]:<{w2}}{r[3]}")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small version (about a minute)")
    ap.add_argument(
        "--pages", type=int, default=None, help="pages for (a) and (d) (default 400; quick 128)"
    )
    ap.add_argument("--slots", type=int, default=32)
    ap.add_argument(
        "--service-s", type=float, default=2.0, help="fixed service time per page for (a)"
    )
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(json.loads(args.rss_child))
        return 0

    quick = args.quick
    pages = args.pages or (128 if quick else 400)
    slots = args.slots
    s = args.service_s
    rss_pages = (50, 300) if quick else (100, 1000)
    client_pages = 40 if quick else 300
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows: list[tuple[str, str, str, str]] = []
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sched-") as tmp:
        pdf = make_pdf(Path(tmp) / "doc.pdf", max(pages, rss_pages[1], client_pages))
        print(
            f"generated {max(pages, rss_pages[1], client_pages)}-page text PDF; CPUs usable: {cpus}; "
            f"1-min load: {os.getloadavg()[0]:.2f}"
        )

        # (a)
        print(
            f"\n(a) server-bound: {pages} pages, {slots} slots, fixed service time {s:g} s, render 72 dpi JPEG"
        )
        ideal_b = pages * s / slots
        ideal_m = math.ceil(pages / slots) * s
        print(
            f"    ideal wall: pages x s / slots = {ideal_b:.2f} s; makespan bound ceil(pages/slots) x s = {ideal_m:.2f} s"
        )
        from ocrclient.config import resolve_config

        popts = resolve_config("runpod").transport_options  # what users get: merged below
        profile_run = (
            f"runpod run, profile poll {popts['poll_interval_s']:g} s x1.5 cap "
            f"{popts['max_poll_interval_s']:g} s"
        )
        variants: list[tuple[str, str, int, dict[str, Any]]] = [
            ("runpod runsync", "runpod", 2 * slots, {"mode": "runsync"}),
            (profile_run, "runpod", 2 * slots, {"mode": "run"}),
            (
                "runpod run, poll 0.25 s x1.5 cap 5 s",
                "runpod",
                2 * slots,
                {"mode": "run", "poll_interval_s": 0.25, "max_poll_interval_s": 5.0},
            ),
            (
                "runpod run, poll 0.5 s x1.5 cap 1 s",
                "runpod",
                2 * slots,
                {"mode": "run", "poll_interval_s": 0.5, "max_poll_interval_s": 1.0},
            ),
            ("openai (vLLM direct), streaming", "openai", 2 * slots, {}),
            ("runpod runsync", "runpod", slots, {"mode": "runsync"}),
            (profile_run, "runpod", slots, {"mode": "run"}),
        ]
        if quick:
            variants = [variants[0], variants[1], variants[4]]
        print(
            "    eff e2e = bound / wall of the whole convert call (imports, render-pool start-up included);"
        )
        print(
            "    eff after start-up = bound / (last page served - first page served), on the simulator's clock"
        )
        print(
            f"    {'transport':<46}{'conc':>5}{'wall s':>8}{'e2e':>7}{'brief':>7}{'after start-up':>16}"
            f"{'start-up s':>11}{'srv busy':>9}{'max conc':>9}"
        )
        e2e: dict[str, float] = {}
        steady: dict[str, float] = {}
        for label, kind, conc, topts in variants:
            r = efficiency_run(pdf, pages, slots, s, kind, conc, topts)
            assert r["ok"] == pages, r
            print(
                f"    {label:<46}{conc:>5}{r['wall_s']:>8.2f}{r['eff_bound']:>7.3f}{r['eff_brief']:>7.3f}"
                f"{r['eff_server']:>16.3f}{r['startup_s']:>11.2f}{r['server_busy']:>9.3f}{r['max_concurrent']!s:>9}"
            )
            key = f"{label} (c={conc})"
            e2e[key] = r["eff_bound"]
            steady[key] = r["eff_server"]
            figures[f"a:{key}"] = {
                k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()
            }
        top = max(e2e, key=lambda k: e2e[k])
        rows.append(
            _row(
                f"(a) efficiency end-to-end, best: {top}",
                f"{e2e[top]:.3f}",
                ">= 0.97",
                e2e[top] >= 0.97,
            )
        )
        top = max(steady, key=lambda k: steady[k])
        rows.append(
            _row(
                f"(a) efficiency after start-up, best: {top}",
                f"{steady[top]:.3f}",
                ">= 0.97",
                steady[top] >= 0.97,
            )
        )
        default_label = f"{profile_run} (c={2 * slots})"
        rows.append(
            _row(
                "(a) efficiency after start-up, runpod /run with the profile's poll",
                f"{steady[default_label]:.3f}",
                ">= 0.97",
                steady[default_label] >= 0.97,
            )
        )
        rows.append(
            _row(
                "(a) efficiency end-to-end, runpod /run with the profile's poll",
                f"{e2e[default_label]:.3f}",
                ">= 0.97",
                e2e[default_label] >= 0.97,
            )
        )

        # (b)
        print(
            f"\n(b) client-bound: {client_pages} pages against an instant server (64 slots, runpod runsync)"
        )
        print(
            "    CPU ms/page: serial loop | client main process | rest of the machine (render"
            " workers + anything else) | simulated server"
        )
        print(
            "    'once running': pages/s from the first page done to the last (render-pool and"
            " connection start-up excluded)"
        )
        print(
            f"    {'spec':<18}{'client p/s':>12}{'serial loop p/s':>17}{'ratio':>8}"
            f"{'once running p/s':>18}{'ratio':>8}{'CPU ms/page':>32}"
        )
        for render, who, judged in CLIENT_SPECS:
            r = client_bound(pdf, client_pages, render)
            split = " | ".join(f"{v:.1f}" for v in r["cpu_ms"])
            print(
                f"    {r['spec']:<18}{r['client_pps']:>12.1f}{r['serial_pps']:>17.1f}{r['ratio']:>8.2f}"
                f"{r['steady_pps']:>18.1f}{r['steady_ratio']:>8.2f}{split:>32}   {who}"
            )
            # the stress row is reported beside the target, not judged by it
            target = ">= 0.8" if judged else "(>= 0.8)"
            for what, value in (("", r["ratio"]), (" once running", r["steady_ratio"])):
                rows.append(
                    _row(
                        f"(b) client/serial pages/s{what}, {r['spec']} ({who})",
                        f"{value:.2f}",
                        target,
                        value >= 0.8 if judged else None,
                    )
                )
            figures[f"b:{r['spec']}"] = r

        # (c)
        print(
            "\n(c) peak RSS of `ocr convert` (openai backend, 72 dpi JPEG, concurrency 32), fresh process each"
        )
        print(
            f"    {'pages':>6}{'CLI MB':>9}{'children MB':>13}{'total MB':>10}{'wall s':>8}{'ok':>6}{'RUSAGE_CHILDREN MB':>20}"
        )
        totals = []
        with SimHost("openai", {"slots": 32, "latency_s": (0.0, 0.0)}) as host:
            for n in rss_pages:
                r = measure_rss(pdf, n, host, Path(tmp) / f"out{n}")
                total = r["self_kb"] + r["children_kb"]
                totals.append(total)
                print(
                    f"    {n:>6}{r['self_kb'] / 1024:>9.1f}{r['children_kb'] / 1024:>13.1f}{total / 1024:>10.1f}"
                    f"{r['wall_s']:>8.1f}{r['pages_ok']:>6}{r['rusage_children_kb'] / 1024:>20.1f}"
                )
                assert r["pages_ok"] == n, r
        ratio = totals[1] / totals[0]
        rows.append(
            _row(
                f"(c) peak RSS {rss_pages[1]}/{rss_pages[0]} pages",
                f"{ratio:.2f}x",
                "<= 1.2x",
                ratio <= 1.2,
            )
        )
        figures["c"] = {"totals_kb": totals, "ratio": ratio}

        # (d)
        print(
            f"\n(d) faults: {pages} pages, 10% 5xx + 5% 429 + 2% hangs (runpod /run, seed 11); scheduler: {TIGHT}"
        )
        r = fault_run(pdf, pages, slots)
        print(
            f"    pages ok {r['ok']}/{r['total']}; duplicates {r['duplicates']}; order errors {r['order_errors']}; "
            f"wall {r['wall_s']:.1f} s; remote jobs left running {r['left_running']}"
        )
        print(f"    injected by the simulator: {r['injected']}")
        print(f"    scheduler retries by cause: {r['retries']}")
        frac = r["ok"] / r["total"]
        rows.append(
            _row(
                "(d) pages ok / total under faults",
                f"{frac:.3f}",
                "1.0",
                frac == 1.0 and r["duplicates"] == 0 and r["order_errors"] == 0,
            )
        )
        figures["d"] = r

    print_table(rows, "bench_scheduler summary")
    print("FIGURES " + json.dumps({"rows": rows}))
    return 0 if all(r[3] != "MISS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
