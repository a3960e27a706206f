"""ocrclient beside its peers, against the same simulated endpoint, in one run.

    python benchmarks/bench_peers.py [--quick] [--pages 64] [--slots 8] [--service-s 1.5]
                                     [--repeat 1] [--no-vlmparse]

Every client runs as its own process (as a user runs it) against one simulator served from
another process (``--slots`` GPU slots, ``--service-s`` per page, ``--concurrency`` = slots)
and converts the same ``--pages``-page text PDF (ocrclient as ``python -m ocrclient``, which is
what the installed ``ocr`` script runs: :mod:`ocrclient.console`):

* ``ocrclient runpod-chandra`` — ``ocr convert --backend runpod-chandra`` (the profile's
  default mode) against the RunPod simulator, default outputs (md with figure crops + json);
* ``ocrclient runpod-pod-lightonocr2`` — ``ocr convert --backend runpod-pod-lightonocr2``
  (OpenAI API, streaming) against the OpenAI simulator, default outputs;
* ``vlmparse`` — installed by this script with pip into a throwaway venv under a temporary
  directory (skipped with a message when that fails: no network, no wheel), run as
  ``vlmparse convert DOC -o OUT --model lightonocr2 --uri SIM/v1 --concurrency N --save-mode md``
  against a twin OpenAI simulator serving the model name it sends (``vllm-model``);
* ``naive loop`` — the ~80-line asyncio client below (:data:`NAIVE`): pypdfium2 renders each
  page to a PNG in a worker thread, httpx sends it, a semaphore keeps ``--concurrency`` in
  flight, the markdown is written at the end.  It runs twice, each time sending the images of
  the ocrclient row it is the baseline of: ``naive loop, RunPod`` renders at Chandra's 192 dpi
  and sends worker-vllm jobs to ``/runsync`` (polling ``/status`` every 0.5 s if a job is not
  done when ``/runsync`` answers) against the RunPod simulator; ``naive loop, OpenAI`` renders
  at LightOnOCR-2's 1540 px and posts chat completions to the OpenAI simulator.

The simulator records when each request arrived and when its reply was written (every route,
patched onto its handler in the simulator's process).  Printed per client:

* **requests** — what the client sent besides health checks and ``/v1/models`` (RunPod: ``/run``
  and ``/status`` polls); a client with any page not answered 200 is reported as failed;
* **efficiency** — ideal busy time (pages x service / slots) / (first page's request -> last
  reply written, on the simulator's clock); 1.0 is every slot busy from the first request on;
* **first request** — process start (just before ``exec``) -> the first page's request arrived
  (health checks and ``/v1/models`` not counted); ocrclient's sources are byte-compiled first,
  as ``pip install`` leaves an installed package (and the clients run without
  ``PYTHONDONTWRITEBYTECODE``);
* **wall** — process start -> process exit;
* **exit after last** — the last reply written -> the process exited (the tail: outputs,
  shutdown, interpreter exit);
* **client CPU** — user + system CPU of the client and every process under it (``/proc``,
  sampled, plus ``wait4`` of the client);
* **peak RSS** — the sum over the client and every process under it of each one's peak.

``--repeat N`` runs N rounds, every client once per round (so a slow spell of the shared machine
falls on all of them alike), and each printed figure is the median of a client's runs.  Each
figure is also printed as a ratio to ocrclient's OpenAI row in the same run, and each
ocrclient row is set beside the naive loop that sent the same images over the same API, and
under them the **start floors** (:data:`FLOORS`): processes importing only libraries, start ->
imports done, the median of seven each, in three layers: the naive loop's own libraries, then
with pydantic (the settings), then with typer (the command line), which is every library ``ocr
convert`` needs before its first request; the last is set beside each naive loop's first request
(what is left for ocrclient's own start to be level).  A second
table explains the efficiency, on the simulator's clock, from the page requests (OpenAI: chat
completions; RunPod: ``/run`` and ``/runsync`` submits, not ``/status``):

* **service** (mean, max) — a page request's arrival -> its result ready (the reply written;
  RunPod: the job's end, or the ``/runsync`` reply that carried it);
* **slot** (mean, max) — the simulator's service in its slot (RunPod: the job's run), which the
  plan's latency sets; service - slot is reading the request and writing the reply;
* **start stagger** — the first page request -> the ``slots``-th one's arrival;
* **refill gap** (mean, max) — for the i-th page request after the first ``slots``: its arrival
  - the (i - slots)-th earliest result: how long a freed slot stood idle.  Not a unit
test: the figures move with other load on the machine (the 1-minute load average is printed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _procfs import descendants, proc_cpu_s, status_kb  # noqa: E402
from _venvs import cached_venv  # noqa: E402

VLMPARSE = "vlmparse==0.1.28"
SIM_KEY = "sk-bench-peers"
RUNPOD_KEY = "rp-bench-peers"

# ---------------------------------------------------------------------------------------------
# the simulator, in its own process, recording every request's arrival and reply
# ---------------------------------------------------------------------------------------------


def _truth(image: Any) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    """What the simulated Chandra reads on every page: text and one figure (so the default
    outputs cut a figure crop per page, as bench_outputs.py does)."""
    return [
        ("section_header", f"Page {image.digest[:8]}", (0.1, 0.05, 0.9, 0.1)),
        ("text", "Text before the figure on this page.", (0.1, 0.15, 0.9, 0.3)),
        ("figure", "A chart", (0.15, 0.35, 0.85, 0.65)),
        ("caption", "Figure: a chart of the page", (0.15, 0.66, 0.85, 0.7)),
        ("text", "Text after the figure.", (0.1, 0.75, 0.9, 0.9)),
    ]


def _host_main(kind: str, slots: int, service_s: float, conn: Any) -> None:
    from http.server import BaseHTTPRequestHandler

    from ocrclient.testing import _server
    from ocrclient.testing.faults import FaultPlan

    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the stdlib server prints client hang-ups
    spans: list[tuple[float, float, str, int]] = []
    lock = threading.Lock()
    plain = _server.SimHandler._any
    send_response = BaseHTTPRequestHandler.send_response

    def noted(self: Any, code: int, message: str | None = None) -> None:
        self.bench_status = code
        send_response(self, code, message)

    here = threading.local()  # .t0: when the request this thread serves arrived

    def timed(self: Any) -> None:
        t0 = here.t0 = time.monotonic()
        self.bench_status = 0
        try:
            plain(self)
        finally:
            with lock:
                spans.append((t0, time.monotonic(), f"{self.command} {self.path.split('?')[0]}", self.bench_status))

    _server.SimHandler.send_response = noted  # type: ignore[method-assign]
    _server.SimHandler.do_GET = _server.SimHandler.do_POST = timed
    plan = FaultPlan(slots=slots, latency_s=(service_s, service_s))
    sim: Any
    jobs: list[tuple[float, Any]] = []  # RunPod: (its /run or /runsync request's arrival, the job)
    holds: list[tuple[float, float]] = []  # OpenAI: each request's slot service (start, end)
    if kind == "runpod":
        from ocrclient.testing import DialectResponder
        from ocrclient.testing.runpod_sim import RunPodSimulator

        submit = RunPodSimulator.submit

        def noted_submit(self: Any, *args: Any, **kwargs: Any) -> Any:
            job = submit(self, *args, **kwargs)
            with lock:
                jobs.append((here.t0, job))
            return job

        RunPodSimulator.submit = noted_submit  # type: ignore[method-assign]
        sim = RunPodSimulator(plan=plan, api_key=RUNPOD_KEY, responder=DialectResponder("chandra", truth=_truth))
    else:
        from contextlib import contextmanager

        from ocrclient.testing import DialectResponder, OpenAISimulator
        from ocrclient.testing.http_sim import HTTPSimulator

        serving = HTTPSimulator.serving

        @contextmanager
        def held(self: Any, fault: str | None) -> Any:
            with serving(self, fault) as start:
                try:
                    yield start
                finally:
                    with lock:
                        holds.append((start, self.clock()))

        HTTPSimulator.serving = held  # type: ignore[method-assign]

        # vlmparse names the model "vllm-model" (the served name of the servers it deploys)
        model = "vllm-model" if kind == "openai-vlmparse" else "lightonai/LightOnOCR-2-1B"
        sim = OpenAISimulator(plan=plan, responder=DialectResponder("lighton"), api_key=None, model=model)
    sim.start()
    conn.send({"base_url": sim.base_url, "endpoint_id": getattr(sim, "endpoint_id", None)})
    while True:
        cmd = conn.recv()
        with lock:
            got, spans[:] = list(spans), []
            submitted, jobs[:] = list(jobs), []
            slot_spans, holds[:] = list(holds), []
        if submitted:
            slot_spans = [(job.started, job.finished) for _, job in submitted if job.finished is not None]
        conn.send((got, [_page_span(t0, job, got) for t0, job in submitted], slot_spans))
        if cmd == "stop":
            sim.stop()
            return


def _page_span(arrived: float, job: Any, spans: list[tuple[float, float, str, int]]) -> tuple[float, float]:
    """A RunPod page's (request arrived, result ready): its job's end, or the reply written to
    the ``/runsync`` that carried the result (what the client could read first)."""
    end = job.finished if job.finished is not None else float("inf")
    if job.sync:
        held = [s[1] for s in spans if s[0] == arrived and s[2].endswith("/runsync")]
        if held and held[0] >= end:
            end = held[0]
    return arrived, end


class Sim:
    """The simulator (``"runpod"`` or ``"openai"``) in a child process; :meth:`take` hands back
    (and forgets) the requests it served since the last call: ``(arrived, replied, route,
    status)``."""

    def __init__(self, kind: str, slots: int, service_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_host_main, args=(kind, slots, service_s, child), daemon=True)
        self._proc.start()
        info = self._conn.recv()
        self.kind = kind
        self.base_url: str = info["base_url"]
        self.endpoint_id: str | None = info["endpoint_id"]

    def take(self) -> tuple[list[tuple[float, float, str, int]], list[tuple[float, float]], list[tuple[float, float]]]:
        """(every request served, as ``(arrived, replied, route, status)``; RunPod only: every
        job submitted, as ``(its request arrived, its result ready)``; every slot service, as
        ``(start, end)``: a job's run, an OpenAI request's hold of its slot after the cold start)."""
        self._conn.send("take")
        spans, pages, slot_spans = self._conn.recv()
        return list(spans), list(pages), list(slot_spans)

    def __enter__(self) -> Sim:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()


# ---------------------------------------------------------------------------------------------
# running one client process and watching it from /proc
# ---------------------------------------------------------------------------------------------


def run_client(argv: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 600) -> dict[str, Any]:
    """Run ``argv``; its start and exit on the monotonic clock the simulator uses (the exit as
    a thread blocked in ``wait4`` sees it, not rounded up to the next sample), CPU and peak RSS
    of its process tree (sampled every 20 ms from ``/proc``)."""
    peak: dict[int, int] = {}
    cpu: dict[int, float] = {}
    t_start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout else b""), daemon=True)
    reader.start()
    ended: dict[str, Any] = {}

    def reap() -> None:
        _, status, ru = os.wait4(proc.pid, 0)
        ended.update(t=time.monotonic(), status=status, cpu=ru.ru_utime + ru.ru_stime)

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    deadline = t_start + timeout_s
    while reaper.is_alive():
        for p in [proc.pid, *descendants(proc.pid)]:
            peak[p] = max(peak.get(p, 0), status_kb(p, "VmHWM"))
            c = proc_cpu_s(p)
            if c:
                cpu[p] = c
        if time.monotonic() > deadline:
            proc.kill()
        reaper.join(0.02)
    t_exit, rusage_cpu = ended["t"], ended["cpu"]
    proc.returncode = os.waitstatus_to_exitcode(ended["status"])
    reader.join(5)
    # the client's own CPU from wait4 (it includes every child it waited for); processes it did
    # not wait for are counted from their last /proc sample
    others = sum(c for p, c in cpu.items() if p != proc.pid)
    return {
        "rc": proc.returncode,
        "start": t_start,
        "exit": t_exit,
        "cpu_s": max(rusage_cpu, cpu.get(proc.pid, 0.0) + others),
        "rss_mb": sum(peak.values()) / 1024,
        "output": b"".join(out).decode("utf-8", "replace"),
    }


def diagnostics(pages: list[tuple[float, float]], slots: int, held: list[tuple[float, float]]) -> dict[str, float]:
    """What explains the efficiency, from each page request's ``(arrived, result ready)`` on the
    simulator's clock: the service time (mean, max), the start stagger (the first page request
    -> the ``slots``-th one's arrival) and the refill gap of the i-th request after the first
    ``slots`` (its arrival - the (i - slots)-th earliest result: how long a freed slot stood
    idle; mean, max); and from ``held`` (each slot service's start and end) the slot time (mean,
    max): the service without reading the request and writing the reply."""
    if not pages:
        return {}
    service = [end - t0 for t0, end in pages]
    hold = [end - t0 for t0, end in held] or [float("nan")]
    arrivals = sorted(t0 for t0, _ in pages)
    ends = sorted(end for _, end in pages)
    gaps = [arrivals[i] - ends[i - slots] for i in range(slots, len(arrivals))]
    return {
        "service_mean_s": sum(service) / len(service),
        "service_max_s": max(service),
        "slot_mean_s": sum(hold) / len(hold),
        "slot_max_s": max(hold),
        "stagger_s": arrivals[min(slots, len(arrivals)) - 1] - arrivals[0],
        "refill_mean_s": sum(gaps) / len(gaps) if gaps else 0.0,
        "refill_max_s": max(gaps) if gaps else 0.0,
    }


def page_requests(spans: list[tuple[float, float, str, int]]) -> list[tuple[float, float, str, int]]:
    """The requests of ``spans`` that carry a page: not a health check or the model list (the
    OpenAI transport reads /v1/models once for max_model_len; vlmparse may too)."""
    return [s for s in spans if not s[2].endswith(("/health", "/models"))]


def figures(run: dict[str, Any], spans: list[tuple[float, float, str, int]], pages: int, slots: int,
            service_s: float, jobs: list[tuple[float, float]] | None = None,
            held: list[tuple[float, float]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The printed figures of one client run from its process times and the simulator's log
    (``jobs``: the RunPod simulator's page submits, ``(arrived, result ready)``; ``held``: each
    slot service's ``(start, end)``)."""
    work = page_requests(spans)
    if not work:
        return {**run, "error": "sent no request"}
    first = min(s[0] for s in work)
    last = max(s[1] for s in work)
    ideal = pages * service_s / slots
    ok = sum(1 for s in work if s[3] == 200)
    if ok < pages:  # a client whose pages failed measured nothing worth printing
        bad = Counter(s[3] for s in work if s[3] != 200)
        return {**run, "error": f"{ok} of {pages} pages answered 200 (others: {dict(bad)})"}
    if jobs is None:  # an OpenAI server: a page request is a chat completion, ready when replied
        jobs = [(s[0], s[1]) for s in work if s[2].endswith("/chat/completions")]
    return {
        **run,
        **diagnostics(jobs, slots, held or []),
        "requests": len(spans),
        "page_requests": len(work),
        "efficiency": ideal / (last - first),
        "first_request_s": first - run["start"],
        "wall_s": run["exit"] - run["start"],
        "exit_after_last_s": run["exit"] - last,
    }


# ---------------------------------------------------------------------------------------------
# the clients
# ---------------------------------------------------------------------------------------------

#: the naive client: what a developer writes in an afternoon (python naive.py PDF OUT BASE_URL
#: KEY MODEL CONCURRENCY)
NAIVE = '''\
"""A naive asyncio OCR client: render every page, send it, write the markdown."""

import asyncio
import base64
import io
import sys
from pathlib import Path

import httpx
import pypdfium2 as pdfium

LONGEST_SIDE = 1540  # LightOnOCR-2's size (OpenAI API)
DPI = 192  # Chandra's (RunPod)


def render(pdf, index, runpod):
    page = pdf[index]
    width, height = page.get_size()
    scale = DPI / 72 if runpod else LONGEST_SIDE / max(width, height)
    image = page.render(scale=scale).to_pil().convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode()


async def ocr_page(client, sem, pdf, lock, index, model, results, runpod):
    async with lock:  # pdfium is not thread-safe: one render at a time, off the event loop
        b64 = await asyncio.to_thread(render, pdf, index, runpod)
    async with sem:
        body = {
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}},
                    ],
                }
            ],
            "max_tokens": 4096,
            "temperature": 0.2,
        }
        for attempt in range(5):
            try:
                if runpod:  # a worker-vllm job: /runsync, then /status until it ends
                    job_input = {"openai_route": "/v1/chat/completions", "openai_input": body}
                    resp = await client.post("/runsync", json={"input": job_input})
                    resp.raise_for_status()
                    job = resp.json()
                    while job["status"] in ("IN_QUEUE", "IN_PROGRESS"):
                        await asyncio.sleep(0.5)
                        resp = await client.get("/status/" + job["id"])
                        resp.raise_for_status()
                        job = resp.json()
                    reply = job["output"][0]
                else:
                    resp = await client.post("/chat/completions", json=body)
                    resp.raise_for_status()
                    reply = resp.json()
                results[index] = reply["choices"][0]["message"]["content"]
                return
            except (httpx.HTTPError, KeyError, ValueError):
                await asyncio.sleep(0.5 * 2**attempt)
        results[index] = ""


async def main():
    pdf_path, out_dir, base_url, key, model, concurrency = sys.argv[1:7]
    runpod = "/v2/" in base_url
    pdf = pdfium.PdfDocument(pdf_path)
    results = [None] * len(pdf)
    sem = asyncio.Semaphore(int(concurrency))
    lock = asyncio.Lock()
    headers = {"Authorization": "Bearer " + key}
    limits = httpx.Limits(max_connections=int(concurrency))
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=600, limits=limits) as client:
        await asyncio.gather(
            *(ocr_page(client, sem, pdf, lock, i, model, results, runpod) for i in range(len(pdf)))
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / (Path(pdf_path).stem + ".md")).write_text("\\n\\n".join(r or "" for r in results))


if __name__ == "__main__":
    asyncio.run(main())
'''


#: the start floors, each a process importing libraries and nothing of ocrclient's, in layers:
#: the naive loop's own (pypdfium2 and PIL render, httpx/httpcore/h11/anyio send), then with
#: pydantic (ocrclient's settings are pydantic models, validated before anything is sent), then
#: with typer (the command line: from 0.29 on it coerces every option through a pydantic
#: ``TypeAdapter``, ``typer._adapters``).  The last is the start no CLI built on the required
#: dependencies can beat; the gaps between them are what each layer costs at start.
FLOORS = [
    ("the naive loop's libraries", "asyncio, httpx, pypdfium2, PIL, httpcore, h11, anyio"),
    ("+ pydantic", "pydantic"),
    ("+ typer", "typer with its pydantic option coercion"),
]
_FLOOR_IMPORTS = [
    "import asyncio, httpx, pypdfium2, PIL.Image, httpcore, h11, anyio, anyio._backends._asyncio",
    "import pydantic.main",
    "import typer\ntry:\n    import typer._adapters\nexcept ImportError:  # typer before 0.29 coerces without pydantic\n    pass",
]


def floor_code(layers: int) -> str:
    """The program of the floor with the first ``layers`` of :data:`FLOORS`."""
    return "import time\n" + "\n".join(_FLOOR_IMPORTS[:layers]) + "\nprint(time.monotonic())\n"


def start_floors(py: str, cwd: Path, runs: int = 7) -> list[float] | None:
    """Each floor of :data:`FLOORS`: the median of ``runs`` processes' start -> its imports
    done, in seconds, the layers interleaved run by run (None when one fails)."""
    took: list[list[float]] = [[] for _ in FLOORS]
    for _ in range(runs):
        for layer in range(len(FLOORS)):
            t_start = time.monotonic()
            done = subprocess.run([py, "-c", floor_code(layer + 1)], env=_env(), cwd=cwd, capture_output=True, text=True,
                                  timeout=60)  # fmt: skip
            try:
                took[layer].append(float(done.stdout.strip()) - t_start)
            except ValueError:
                return None
    return [sorted(t)[len(t) // 2] for t in took]


def install_vlmparse(tmp: Path) -> tuple[Path | None, str]:
    """``vlmparse`` installed into a throwaway venv under ``tmp``: (its executable, "") or
    (None, why not)."""
    venv = tmp / "vlmparse-venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", VLMPARSE],
                              capture_output=True, text=True, timeout=900)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not make a venv for it: {exc}"
    exe = venv / "bin" / "vlmparse"
    if done.returncode != 0 or not exe.exists():
        last = (done.stderr or done.stdout).strip().splitlines()
        return None, f"pip install {VLMPARSE} failed: {last[-1] if last else done.returncode}"
    return exe, ""


def user_python() -> tuple[Path | None, str]:
    """The python of a venv holding what ``pip install ocrclient`` installs (the project's
    dependencies, as the resolver picks them; the code under test comes from this checkout's
    ``src``), built once under benchmarks/.cache: the clients start as on a user's machine, not
    in the development venv, whose extra packages (click, zstandard, the RunPod SDK's tree) make
    httpx load its own command line and more at import."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return cached_venv("peers-user", [sorted(deps)])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RUNPOD_", "VLLM_", "OCRCLIENT_")) and k != "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def compile_sources() -> str:
    """Compile ocrclient's sources to bytecode, as ``pip install`` does for an installed package
    (its wheel's modules are byte-compiled at install): the clients then start as a user's does,
    not compiling ~50 modules from source on each run (as they would under
    ``PYTHONDONTWRITEBYTECODE``).  Returns a note for the output."""
    done = subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "ocrclient")],
                          env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    return "ocrclient's sources byte-compiled" if done.returncode == 0 else "could not byte-compile ocrclient's sources"


def clients(sims: dict[str, Sim], tmp: Path, pdf: Path, concurrency: int, vlmparse: Path | None,
            py: str) -> list[tuple[str, str, list[str], dict[str, str]]]:  # fmt: skip
    """(label, simulator kind, argv, env) of each client to run; ocrclient and the naive loop
    run with the python ``py``."""
    rp, oa = sims["runpod"], sims["openai"]
    out = tmp / "out"
    rows = [
        ("ocrclient runpod-chandra", "runpod",
         [py, "-m", "ocrclient", "convert", str(pdf), "-o", str(out / "chandra"), "--backend", "runpod-chandra",
          "--concurrency", str(concurrency), "--cache-dir", str(out / "cache-chandra"), "--quiet"],
         _env(RUNPOD_API_KEY=RUNPOD_KEY, RUNPOD_CHANDRA_ENDPOINT_ID=rp.endpoint_id or "", RUNPOD_BASE_URL=rp.base_url)),
        ("ocrclient runpod-pod-lightonocr2", "openai",
         [py, "-m", "ocrclient", "convert", str(pdf), "-o", str(out / "lighton"), "--backend",
          "runpod-pod-lightonocr2", "--concurrency", str(concurrency), "--cache-dir", str(out / "cache-lighton"), "--quiet"],
         _env(RUNPOD_POD_BASE_URL=oa.base_url, VLLM_API_KEY=SIM_KEY)),
    ]  # fmt: skip
    if vlmparse is not None:
        vp = sims["openai-vlmparse"]
        rows.append(("vlmparse " + VLMPARSE.split("==")[1], "openai-vlmparse",
                     [str(vlmparse), "convert", str(pdf), "-o", str(out / "vlmparse"), "--model", "lightonocr2",
                      "--uri", vp.base_url, "--concurrency", str(concurrency), "--save-mode", "md"],
                     _env(OPENAI_API_KEY=SIM_KEY)))  # fmt: skip
    naive = tmp / "naive.py"
    naive.write_text(NAIVE)
    rows.append(("naive loop, RunPod", "runpod",
                 [py, str(naive), str(pdf), str(out / "naive-runpod"), f"{rp.base_url}/{rp.endpoint_id}",
                  RUNPOD_KEY, "datalab-to/chandra-ocr-2", str(concurrency)], _env()))  # fmt: skip
    rows.append(("naive loop, OpenAI", "openai",
                 [py, str(naive), str(pdf), str(out / "naive"), oa.base_url, SIM_KEY,
                  "lightonai/LightOnOCR-2-1B", str(concurrency)], _env()))  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------

COLUMNS = [  # key, header, format, better ("hi" or "lo")
    ("page_requests", "requests", "{:d}", "lo"),
    ("efficiency", "efficiency", "{:.3f}", "hi"),
    ("first_request_s", "first request", "{:.2f} s", "lo"),
    ("wall_s", "wall", "{:.2f} s", "lo"),
    ("exit_after_last_s", "exit after last", "{:.2f} s", "lo"),
    ("cpu_s", "client CPU", "{:.2f} s", "lo"),
    ("rss_mb", "peak RSS", "{:.0f} MB", "lo"),
]


def print_table(results: list[tuple[str, dict[str, Any]]], base: str) -> None:
    ref = dict(results).get(base)
    head = ["client", *(c[1] for c in COLUMNS)]
    rows = []
    for label, r in results:
        if "error" in r:
            rows.append([label, r["error"], *[""] * (len(COLUMNS) - 1)])
            continue
        cells = [label]
        for key, _, fmt, _better in COLUMNS:
            cell = fmt.format(r[key])
            if ref is not None and label != base and ref.get(key):
                cell += f" ({r[key] / ref[key]:.2f}x)"
            cells.append(cell)
        rows.append(cells)
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"(x): ratio to {base} in this run")


#: each ocrclient row and the naive loop that sends the same images over the same API
PAIRS = [("ocrclient runpod-chandra", "naive loop, RunPod"),
         ("ocrclient runpod-pod-lightonocr2", "naive loop, OpenAI")]  # fmt: skip


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a client's runs: each number the median of its runs (the middle one; of
    two middle ones, their mean, or for counts the lower one), so a column is not one run's
    outlier."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = sorted(r[key] for r in runs if isinstance(r.get(key), int | float))
            mid = len(values) // 2
            if len(values) % 2 or isinstance(value, int):
                out[key] = values[(len(values) - 1) // 2]
            else:
                out[key] = (values[mid - 1] + values[mid]) / 2
    return out


def print_pairs(results: list[tuple[str, dict[str, Any]]], floors: list[float] | None = None) -> None:
    """Each ocrclient row against its naive baseline: ours / naive per column, and which is ahead;
    then the start floors (:data:`FLOORS`) beside each naive loop's first request."""
    by = dict(results)
    for ours, naive in PAIRS:
        a, b = by.get(ours), by.get(naive)
        if a is None or b is None or "error" in a or "error" in b:
            continue
        cells = []
        for key, header, _fmt, better in COLUMNS:
            if not b.get(key):
                continue
            ahead = a[key] > b[key] if better == "hi" else a[key] < b[key]
            level = a[key] == b[key]
            cells.append(f"{header} {a[key] / b[key]:.2f}x " + ("level" if level else "ahead" if ahead else "BEHIND"))
        print(f"{ours} / {naive}: " + ", ".join(cells))
    if not floors:
        return
    print("start floors (python importing only libraries, none of ocrclient's code; median of 7 each):")
    for (label, what), floor_s in zip(FLOORS, floors, strict=True):
        print(f"  {label}: {floor_s:.3f} s ({what})")
    floor_s = floors[-1]
    for _ours, naive in PAIRS:
        b = by.get(naive)
        if b is not None and "error" not in b and b.get("first_request_s"):
            left = b["first_request_s"] - floor_s
            print(f"  {naive} first request {b['first_request_s']:.3f} s: "
                  + (f"{left * 1000:.0f} ms left above the last floor for ocrclient's own start to be level" if left > 0
                     else f"{-left * 1000:.0f} ms before the last floor: no client on these libraries can be ahead"))  # fmt: skip


DIAGNOSTICS = [  # key, header
    ("service_mean_s", "service mean"),
    ("service_max_s", "service max"),
    ("slot_mean_s", "slot mean"),
    ("slot_max_s", "slot max"),
    ("stagger_s", "start stagger"),
    ("refill_mean_s", "refill gap mean"),
    ("refill_max_s", "refill gap max"),
]


def print_diagnostics(results: list[tuple[str, dict[str, Any]]], service_s: float) -> None:
    """Where each client's efficiency goes, on the simulator's clock (see :func:`diagnostics`)."""
    head = ["client", *(d[1] for d in DIAGNOSTICS)]
    rows = [[label, *(f"{r[key]:.3f} s" for key, _ in DIAGNOSTICS)]
            for label, r in results if "error" not in r and "service_mean_s" in r]  # fmt: skip
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"service: a page request's arrival -> its result ready (plan: {service_s:g} s); slot: the "
          "simulator's service in its slot (RunPod: the job's run); start stagger: the first page "
          "request -> the slots-th one; refill gap: a request after the first slots -> the result "
          "that freed its slot")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=64)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--service-s", type=float, default=1.5)
    ap.add_argument("--repeat", type=int, default=1, help="rounds, each running every client once (the tables print medians)")
    ap.add_argument("--no-vlmparse", action="store_true", help="skip installing and running vlmparse")
    ap.add_argument("--vlmparse", type=Path, help="an installed vlmparse executable to run (no install)")
    ap.add_argument("--only", action="append", default=[], help="run only clients whose label contains this")
    ap.add_argument("--quick", action="store_true", help="16 pages, 0.5 s per page")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    ap.add_argument("--python", help="run ocrclient and the naive loop with this python (default: a venv with "
                    "ocrclient's dependencies only, built once; 'self': the one running this script)")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.pages, args.service_s = 16, 0.5
    from bench_scheduler import make_pdf

    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{args.pages} pages, {args.slots} slots x {args.service_s} s, concurrency {args.slots}; "
          f"ideal busy {args.pages * args.service_s / args.slots:.2f} s")  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        pdf = make_pdf(tmp / "doc.pdf", args.pages)
        print(compile_sources() + " (as pip install does)", flush=True)
        py, how = args.python, "given"
        if py is None:
            built, how = user_python()
            py = str(built) if built else sys.executable
            if built is None:
                print(f"could not build the user venv ({how}): the clients run with {sys.executable}")
        elif py == "self":
            py, how = sys.executable, "this script's"
        print(f"ocrclient and the naive loop run with {py} ({how})", flush=True)
        vlm: Path | None = args.vlmparse
        if vlm is None and not args.no_vlmparse and (not args.only or any("vlmparse" in o for o in args.only)):
            print(f"installing {VLMPARSE} into a throwaway venv ...", flush=True)
            vlm, why = install_vlmparse(tmp)
            if vlm is None:
                print(f"SKIPPED vlmparse: {why}")
        with (
            Sim("runpod", args.slots, args.service_s) as rp,
            Sim("openai", args.slots, args.service_s) as oa,
            Sim("openai-vlmparse", args.slots, args.service_s) as vp,
        ):
            sims = {"runpod": rp, "openai": oa, "openai-vlmparse": vp}
            chosen = [c for c in clients(sims, tmp, pdf, args.slots, vlm, py)
                      if not args.only or any(o in c[0] for o in args.only)]  # fmt: skip
            runs: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in chosen}
            # round by round, every client once per round: a slow spell of the machine falls on
            # every client alike, not on whichever ran its repeats then
            for _ in range(args.repeat):
                for label, kind, argv, env in chosen:
                    shutil.rmtree(tmp / "out", ignore_errors=True)
                    sims[kind].take()
                    run = run_client(argv, env, tmp)
                    spans, jobs, held = sims[kind].take()
                    fig = figures(run, spans, args.pages, args.slots, args.service_s,
                                  jobs if kind == "runpod" else None, held)  # fmt: skip
                    if run["rc"] != 0:
                        fig["error"] = f"exit {run['rc']}: {run['output'].strip()[-300:]}"
                    runs[label].append(fig)
                    time.sleep(0.5)
            for label, *_ in chosen:
                ok = [r for r in runs[label] if "error" not in r]
                results.append((label, median_run(ok) if ok else runs[label][0]))
                print(f"  {label}: " + ("; ".join(f"{r.get('efficiency', 0):.3f} eff, {r.get('first_request_s', 0):.2f} s first, "
                                                   f"{r.get('exit_after_last_s', 0):.2f} s tail, service {r.get('service_mean_s', 0):.3f}/"
                                                   f"{r.get('service_max_s', 0):.3f} s, slot {r.get('slot_mean_s', 0):.3f}/{r.get('slot_max_s', 0):.3f} s, stagger {r.get('stagger_s', 0):.3f} s, "
                                                   f"refill {r.get('refill_mean_s', 0):.3f}/{r.get('refill_max_s', 0):.3f} s" for r in ok) or runs[label][0]["error"]), flush=True)  # fmt: skip
        print()
        print_table(results, "ocrclient runpod-pod-lightonocr2")
        print()
        print_pairs(results, start_floors(py, tmp))
        print()
        print_diagnostics(results, args.service_s)
        print(f"load average (1 min) at end: {os.getloadavg()[0]:.2f}")
        if args.json:
            keys = [c[0] for c in COLUMNS] + [d[0] for d in DIAGNOSTICS]
            args.json.write_text(json.dumps([{"client": k, **{c: v.get(c) for c in keys}} for k, v in results], indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
