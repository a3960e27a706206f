"""A simulated RunPod serverless endpoint on loopback (stdlib only).

It speaks the RunPod serverless API (``flavour="api"``, paths under ``/v2/{endpoint_id}``) or the
runpod SDK's ``--rp_serve_api`` test server (``flavour="local"``), runs jobs through N worker
slots with a queue, a cold start, retention expiry, cancel, ``executionTimeout`` and seeded
faults from a :class:`~ocrclient.testing.faults.FaultPlan`, and answers with what a pluggable
responder says, wrapped in the output shape of the worker that would have run it:

* ``{"openai_route": ..., "openai_input": req}`` -> worker-vllm's aggregated stream:
  ``[chat_completion]``, or (``req["stream"]``) a list of SSE strings ending in ``data: [DONE]``;
  ``req`` is checked as vLLM checks it (:mod:`.vllm_checks`, the OpenAI simulator's checks: the
  model, the messages, ``max_tokens`` against ``max_model_len``, ...), and a request vLLM
  refuses ends ``FAILED`` as the official worker reports it (:func:`worker_refusal`) -- in the
  local flavour, as the SDK's local server reports it: ``COMPLETED`` with the error item the
  worker yielded (:mod:`.runpod_local` says how that server answers each handler outcome);
* ``{"route": "/extract_text", ...}`` -> the ocular ``OCRResponse`` dict
  (``text``, ``confidence``, ``language``, ``processing_time``, ``metadata``);
  ``{"route": "/health"}`` -> the Ocular worker's health (deploy/runpod-trocr): ``status``,
  ``models_loaded`` (the model), ``models_allowed``, ``models_failed`` (``{}``), or what
  :attr:`worker_health` is set to;
* anything else -> the DeepSeek whole-PDF worker dict (``status``, ``markdown`` base64, ...).

A responder that returns ``SimReply(data={"raw_output": X})`` makes ``X`` the job output as is;
a responder that raises makes the job ``FAILED`` with the runpod SDK's JSON-encoded error; the
``failed`` fault makes it ``FAILED`` with ``failed_error`` as is when that is set (any worker's
error string), and ``force_reply`` answers every request with one exact HTTP reply.  ``api_key``
``None`` accepts requests without a key.

It is served by the loopback server every simulator shares (:mod:`ocrclient.testing._server`);
jobs run on ``slots`` daemon worker threads.

Example::

    from ocrclient.testing import FaultPlan
    from ocrclient.testing.runpod_sim import RunPodSimulator

    with RunPodSimulator(plan=FaultPlan(seed=1, slots=2)) as sim:
        # sim.base_url ("http://127.0.0.1:PORT/v2"), sim.endpoint_id, sim.api_key
        ...
        assert sim.max_concurrent <= 2

``/runsync`` holds the request until the job ends, for ``?wait=`` milliseconds (1000 to 300000)
or 90 s without it -- and never longer than ``runsync_block_s``, a test knob -- then answers the
unfinished ``{"id": "sync-...", "status": "IN_QUEUE" | "IN_PROGRESS"}``; the job goes on and is
read by ``/status/{id}`` for ``runsync_retention_s`` after it ends.  RunPod's per-endpoint rate
limits (:mod:`.runpod_limits`: ``/run`` 1000 per 10 s, ``/runsync`` and ``/status`` 2000 per
10 s, ...; ``rate_limits`` to change them, ``{}`` for none) answer ``429`` past them, with
``Retry-After: rate_retry_after_s`` when that is set (RunPod documents no such header).
``max_outstanding`` is the most jobs queued or running at once, ``max_queued`` the most waiting
for a slot: what a client keeps at the endpoint.

Latency: a job holds its slot for the plan's latency counted from when it started on the slot
(after any cold start), the handler's work (the responder, building the output) included, so its
``executionTime`` is the latency; it ends then, whether a ``/status`` poll or a held
``/runsync`` reads it.

Not simulated: the ``ttl`` policy, ``/stream`` and ``/retry``, webhooks, whether ``?wait=``
also extends the retention.  Unverified guesses: the bodies of 401/404/413/429 replies (RunPod
documents the status codes, not the bodies) — clients should rely on the status code only.

``restart()`` loses every job and restarts the endpoint's workers (their threads joined); in
the local flavour it restarts the server too, as ``stop()`` stops it (connections reset,
threads joined), on the same port.

Run one by hand: ``python -m ocrclient.testing.runpod_sim --port 8765``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import queue
import re
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from ._cli import OneLineParser
from ._server import (
    LoopbackServer,
    ServerOwner,
    SimHandler,
    hang_up,
    read_body,
    write_json,
    write_reply,
)
from .faults import (
    CannedReply,
    FaultPlan,
    Responder,
    SimReply,
    body_key,
    cut_at_max_tokens,
    echo_responder,
    garbage_reply,
)
from .runpod_limits import DOCUMENTED, RateWindow
from .runpod_local import Handled, answer, dispatch_local
from .vllm_checks import Refusal, check_chat, check_generation

__all__ = ["RUNSYNC_LIMIT_BYTES", "RUN_LIMIT_BYTES", "RunPodSimulator", "SimJob"]

RUN_LIMIT_BYTES = 10_000_000
RUNSYNC_LIMIT_BYTES = 20_000_000
#: how long /runsync holds the request without ?wait=
RUNSYNC_DEFAULT_WAIT_S = 90.0
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
_RUNPOD_VERSION = "1.12.0-sim"


@dataclass
class SimJob:
    """One job as the simulator tracks it."""

    id: str
    input: Any
    key: str
    sync: bool
    execution_timeout_s: float
    created: float = field(default_factory=time.monotonic)
    status: str = "IN_QUEUE"
    started: float | None = None
    finished: float | None = None
    output: Any = None
    has_output: bool = False
    error: str | None = None
    worker_id: str | None = None
    expires: float | None = None
    fault: str | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done_event: threading.Event = field(default_factory=threading.Event)

    def reply(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.started is not None:
            out["delayTime"] = int((self.started - self.created) * 1000)
            out["workerId"] = self.worker_id
        if self.finished is not None and self.started is not None:
            out["executionTime"] = int((self.finished - self.started) * 1000)
        if self.status == "COMPLETED" and self.has_output:
            out["output"] = self.output
        if self.status == "FAILED" and self.error is not None:
            out["error"] = self.error
        return out


#: the model name a completion carries when the request named none (the simulator serves any name)
SIM_MODEL = "sim-model"


def _chat_completion(reply: SimReply, request: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or SIM_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "tool_calls": []},
                "logprobs": None,
                "finish_reason": reply.finish_reason,
                "stop_reason": None,
            }
        ],
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "completion_tokens": reply.completion_tokens,
            "prompt_tokens_details": None,
        },
        "prompt_logprobs": None,
    }


def _sse_batches(reply: SimReply, request: Mapping[str, Any], batch: int) -> list[str]:
    """worker-vllm's streamed output with RAW_OPENAI_OUTPUT=1: batches of SSE lines, joined."""
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    model = request.get("model") or SIM_MODEL
    words = re.findall(r"\S+\s*|\s+", reply.text) or [""]

    def chunk(delta: dict[str, Any], finish: str | None, usage: bool = False) -> str:
        body: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage:
            body["usage"] = {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            }
        return f"data: {json.dumps(body)}\n\n"

    events = [chunk({"role": "assistant", "content": ""}, None)]
    events += [chunk({"content": w}, None) for w in words]
    events.append(chunk({"content": ""}, reply.finish_reason, usage=True))
    events.append("data: [DONE]\n\n")
    batch = max(1, batch)
    return ["".join(events[i : i + batch]) for i in range(0, len(events), batch)]


def _retry_after(seconds: float | None) -> dict[str, str] | None:
    """The ``Retry-After`` header of a 429 (``None``: none, as RunPod sends its own)."""
    return {"Retry-After": f"{seconds:g}"} if seconds is not None else None


def worker_refusal(refused: Refusal) -> str:
    """The ``error`` of a job whose request the worker's vLLM server refused, as today's
    official worker (``runpod-workers/worker-vllm``, ``vllm serve`` behind its handler) ends it:
    the handler yields ``{"error": {"message": "vLLM returned HTTP <status>: <vLLM's reply>",
    "type": "worker_error", "code": None}}`` and RunPod marks the job ``FAILED`` with the
    Python ``str()`` of the inner dict (deploy/README.md)."""
    return str(worker_error(refused))


def worker_error(refused: Refusal) -> dict[str, Any]:
    """The error object the official worker yields (as ``{"error": <this>}``) for a request its
    vLLM server refused: ``{"message": "vLLM returned HTTP <status>: <vLLM's reply>", "type":
    "worker_error", "code": None}``."""
    reply = {"error": {"message": refused.message, "type": _VLLM_ERROR_TYPE.get(refused.status, "BadRequestError"),
                       "param": refused.param, "code": refused.status}}  # fmt: skip
    quoted = json.dumps(reply, separators=(",", ":"))
    return {"message": f"vLLM returned HTTP {refused.status}: {quoted}", "type": "worker_error", "code": None}


_VLLM_ERROR_TYPE = {400: "BadRequestError", 404: "NotFoundError"}


class RunPodSimulator(ServerOwner):
    """A RunPod serverless endpoint (or the SDK's local test server) on 127.0.0.1.

    Example::

        with RunPodSimulator(plan=FaultPlan(seed=3, rates={"failed": 0.2})) as sim:
            transport = RunPodTransport(endpoint_id=sim.endpoint_id, api_key=sim.api_key,
                                        base_url=sim.base_url)
            ...
            print(sim.jobs_submitted, sim.cancels_received, sim.max_concurrent)

    Counters (thread-safe reads): ``jobs_submitted``, ``jobs_by_key``, ``cancels_received``,
    ``running_now``, ``max_concurrent``, ``requests`` (by route), ``requests_total``.
    """

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        responder: Responder | None = None,
        flavour: str = "api",
        endpoint_id: str = "sim-endpoint",
        api_key: str | None = "rp_sim_key_0123456789",
        host: str = "127.0.0.1",
        port: int = 0,
        retention_s: float = 1800.0,
        runsync_retention_s: float = 60.0,
        runsync_block_s: float = 300.0,
        execution_timeout_s: float = 600.0,
        run_limit_bytes: int = RUN_LIMIT_BYTES,
        runsync_limit_bytes: int = RUNSYNC_LIMIT_BYTES,
        max_queue: int | None = None,
        stream_batch: int = 4,
        failed_message: str = "CUDA out of memory. Tried to allocate 2.00 GiB",
        failed_error: str | None = None,
        force_reply: CannedReply | None = None,
        rate_limits: Mapping[str, tuple[int, float, int | None]] | None = None,
        rate_retry_after_s: float | None = None,
        key_fn: Callable[[Any], str] | None = None,
        model: str | None = None,
        max_model_len: int | None = 16384,
    ) -> None:
        if flavour not in ("api", "local"):
            raise ValueError("flavour must be 'api' or 'local'")
        self.plan = plan or FaultPlan()
        self.responder: Responder = responder or echo_responder
        self.key_fn: Callable[[Any], str] = key_fn or body_key  # a job input -> its fault key (or page_key)
        self.model = model  # the model served (a chat job naming another FAILs, 404; None: any, listed as none)
        #: what an Ocular worker's ``{"route": "/health"}`` job answers (None: the model loaded, nothing failed)
        self.worker_health: dict[str, Any] | None = None
        #: the served model's context (as vLLM's ``--max-model-len``): a chat job whose prompt +
        #: ``max_tokens`` is over it FAILs with vLLM's 400 (``None``: no limit)
        self.max_model_len = max_model_len
        self.flavour = flavour
        self.endpoint_id = endpoint_id
        self.api_key = api_key
        self.host = host
        self._port = port
        self.retention_s = retention_s
        self.runsync_retention_s = runsync_retention_s
        self.runsync_block_s = runsync_block_s
        self.execution_timeout_s = execution_timeout_s
        self.run_limit_bytes = run_limit_bytes
        self.runsync_limit_bytes = runsync_limit_bytes
        self.max_queue = max_queue
        self.stream_batch = stream_batch
        self.failed_message = failed_message
        #: the exact ``error`` of a job FAILED by the ``failed`` fault (``None``: the runpod
        #: SDK's JSON for a handler that raised ``RuntimeError(failed_message)``)
        self.failed_error = failed_error
        self.force_reply = force_reply  # every request gets exactly this reply (a gateway's error shape)
        #: RunPod's per-endpoint limits (family -> requests, window s, concurrent); 429 past them
        self.rates = RateWindow(DOCUMENTED if rate_limits is None else rate_limits)
        self.rate_retry_after_s = rate_retry_after_s

        self._lock = threading.Lock()
        self._jobs: dict[str, SimJob] = {}
        self._local_pending: dict[str, Any] = {}
        #: jobs for the slot threads; ``None`` tells one slot thread to stop
        self._queue: queue.Queue[SimJob | None] = queue.Queue()
        self._stop = threading.Event()
        self._warm_at: float | None = None
        self._generation = 0
        self._server: LoopbackServer | None = None
        self._threads: list[threading.Thread] = []

        self._status_errors: list[int] = []
        self._start_counters()

    def _start_counters(self) -> None:
        self.jobs_submitted = 0
        self.jobs_by_key: Counter[str] = Counter()
        self.cancels_received = 0
        self.running_now = 0
        self.max_concurrent = 0
        self.requests: Counter[str] = Counter()
        self.requests_total = 0
        self.completed = 0
        self.failed = 0
        #: most jobs queued or running at once / most queued (waiting for a slot) at once
        self.max_outstanding = 0
        self.max_queued = 0
        #: when each operation's requests arrived (``time.monotonic``), for rates over time
        self.request_times: dict[str, list[float]] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """What a client uses as its base URL (``.../v2`` for the api flavour)."""
        root = f"http://{self.host}:{self.port}"
        return root if self.flavour == "local" else f"{root}/v2"

    def start(self) -> Self:
        self._stop.clear()
        with self._lock:
            self._queue = queue.Queue()  # no stop marks left over from an earlier stop()
        self._server = LoopbackServer.start(self, _Handler, host=self.host, port=self._port, name="runpod-sim")
        self._start_workers()
        return self

    def _start_workers(self) -> None:
        """The endpoint's slot threads, on the queue of jobs now current."""
        jobs = self._queue
        self._threads = []
        for i in range(max(1, self.plan.slots)):
            w = threading.Thread(target=self._worker, args=(f"sim-worker-{i}", jobs), daemon=True)
            w.start()
            self._threads.append(w)

    def _stop_workers(self, jobs: queue.Queue[SimJob | None]) -> None:
        """A stop mark on ``jobs`` (their queue) for each slot thread, then each joined (a job
        running is cancelled by then)."""
        threads, self._threads = self._threads, []
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join(timeout=2.0)

    def _release_jobs(self, *, lose: bool) -> queue.Queue[SimJob | None]:
        """Every job cancelled and its waiters released; ``lose`` (a restart): every job
        forgotten, and a fresh queue for the jobs from now on.  The queue the slot threads
        took their jobs from."""
        with self._lock:
            jobs = self._queue
            for job in self._jobs.values():
                job.cancel_event.set()
                job.done_event.set()  # release runsync / local requests still waiting
            if lose:
                self._generation += 1
                self._jobs.clear()
                self._local_pending.clear()
                self._warm_at = None
                self._queue = queue.Queue()
        return jobs

    def stop(self) -> None:
        self._stop.set()
        server = self._server
        if server is not None:
            server.close()  # cut first: a request held (a /runsync) gets no reply, as at a restart
        jobs = self._release_jobs(lose=False)
        if server is not None:
            server.join()
        self._stop_workers(jobs)

    def restart(self, down_s: float = 0.1) -> None:
        """An endpoint restart: every job (queued, running, finished) is lost (a ``/status``
        404, in the local flavour ``"Job ID not found"``), and its workers with them: the slot
        threads end, are waited for, and new ones take the next jobs; the cold start runs again.

        RunPod's API in front of an endpoint does not restart with it: its connections are
        kept, and a ``/runsync`` held answers the unfinished job at once.  In the local flavour
        the SDK's server is the worker process, and it restarts as :meth:`stop` stops it: every
        open connection is reset (a request in flight gets no reply), the threads serving them
        have ended, the port refuses connections for ``down_s`` seconds, then the server listens
        again on the same port.  Blocks for ``down_s`` (local flavour): from async code call it
        in a thread (``await asyncio.to_thread(sim.restart)``)."""
        server = self._server
        if server is None:
            raise RuntimeError("simulator not started")
        local = self.flavour == "local"
        if local:
            server.close(keep_port=True)
        jobs = self._release_jobs(lose=True)
        if local:
            server.join()
        self._stop_workers(jobs)
        if not self._stop.is_set():
            self._start_workers()
            if local and not self._stop.wait(down_s):
                self._server = server.relisten()
                return
        if local:
            server.release_port()  # stopped meanwhile

    def fail_next_status(self, count: int, code: int = 503) -> None:
        """Answer the next ``count`` status requests with HTTP ``code`` (a flaky gateway)."""
        with self._lock:
            self._status_errors.extend([code] * count)

    def _next_status_error(self) -> int | None:
        with self._lock:
            return self._status_errors.pop(0) if self._status_errors else None

    # -- job engine --------------------------------------------------------------------------
    def job(self, job_id: str) -> SimJob | None:
        """The job with this id (``None`` if unknown or expired)."""
        with self._lock:
            self._expire_locked()
            return self._jobs.get(job_id)

    def _expire_locked(self) -> None:
        now = self.clock()
        for jid in [j.id for j in self._jobs.values() if j.expires is not None and j.expires <= now]:
            del self._jobs[jid]

    def submit(
        self,
        job_input: Any,
        *,
        sync: bool,
        policy: Mapping[str, Any] | None = None,
        fault: str | None = None,
        key: str | None = None,
    ) -> SimJob:
        """Queue a job (``fault`` is what the plan drew for it at submission; ``key`` is
        :func:`body_key` of ``job_input`` when the caller has it already)."""
        timeout_s = math.inf if self.flavour == "local" else self.execution_timeout_s  # (the SDK: none)
        if policy and isinstance(policy.get("executionTimeout"), int | float):
            timeout_s = float(policy["executionTimeout"]) / 1000.0
        key = key or self.key_fn(job_input)
        prefix = "sync-" if sync else ""
        job = SimJob(
            id=f"{prefix}{uuid.uuid4()}-u1", input=job_input, key=key, sync=sync, execution_timeout_s=timeout_s,
            fault=fault,
        )
        with self._lock:
            self.jobs_submitted += 1
            self.jobs_by_key[key] += 1
            self._jobs[job.id] = job
            states = Counter(j.status for j in self._jobs.values())
            self.max_queued = max(self.max_queued, states["IN_QUEUE"])
            self.max_outstanding = max(self.max_outstanding, states["IN_QUEUE"] + states["IN_PROGRESS"])
            if self._warm_at is None:
                self._warm_at = self.clock() + self.plan.cold_start_s
            if self._stop.is_set():  # (stop() is releasing every waiter: a /runsync must not wait)
                job.done_event.set()
            self._queue.put(job)  # (under the lock: a restart swaps the queue)
        return job

    def _queue_depth(self) -> int:
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.status == "IN_QUEUE")

    def _worker(self, worker_id: str, jobs: queue.Queue[SimJob | None]) -> None:
        # blocks on the queue: 64 slot threads waking every 50 ms to look at a stop flag cost the
        # simulator 6% of a core while idle, a quarter of its CPU in a busy benchmark
        while not self._stop.is_set():
            job = jobs.get()
            if job is None:
                return
            with self._lock:
                warm_at = self._warm_at or 0.0
                gen = self._generation
                live = self._jobs.get(job.id) is job and job.status == "IN_QUEUE"
            if not live:
                continue
            delay = warm_at - self.clock()
            if delay > 0 and job.cancel_event.wait(delay):
                continue
            with self._lock:
                if self._jobs.get(job.id) is not job or job.status != "IN_QUEUE" or gen != self._generation:
                    continue
                job.status = "IN_PROGRESS"
                job.started = self.clock()
                job.worker_id = worker_id
                self.running_now += 1
                self.max_concurrent = max(self.max_concurrent, self.running_now)
            try:
                self._execute(job)
            finally:
                with self._lock:
                    self.running_now -= 1

    def _finish(self, job: SimJob, status: str, *, output: Any = None, has_output: bool = False,
                error: str | None = None) -> None:
        with self._lock:
            if job.status in TERMINAL or self._jobs.get(job.id) is not job:
                return  # cancelled meanwhile, or lost in a restart
            job.status = status
            job.finished = self.clock()
            job.output = output
            job.has_output = has_output
            job.error = error
            job.expires = job.finished + (self.runsync_retention_s if job.sync else self.retention_s)
            if status == "COMPLETED":
                self.completed += 1
            elif status == "FAILED":
                self.failed += 1
        job.done_event.set()

    def _hold(self, job: SimJob, seconds: float) -> bool:
        """Keep ``job``'s slot for ``seconds``; ``True`` when it was cancelled meanwhile."""
        return job.cancel_event.wait(seconds)

    def _execute(self, job: SimJob) -> None:
        """Run ``job`` on its slot: it ends ``latency`` after it started (``hang_s`` for the
        ``hang`` fault; ``TIMED_OUT`` at its execution timeout when that is shorter), the
        handler's work (the responder, the output) counted in that time, not added to it."""
        fault = job.fault
        start = job.started if job.started is not None else self.clock()
        latency = self.plan.hang_s if fault == "hang" else self.plan.latency(job.key)
        limit = job.execution_timeout_s
        if latency > limit:
            if not self._hold(job, max(0.0, start + limit - self.clock())):
                self._finish(job, "TIMED_OUT")
            return
        if self.flavour == "local":  # the SDK's local server answers by what the handler did
            handled = self._handle_local(job, fault)
            if not self._hold(job, max(0.0, start + latency - self.clock())):
                self._finish(job, answer(job.id, handled).status, output=handled, has_output=True)
            return
        status, output, error = self._outcome(job, fault)
        if self._hold(job, max(0.0, start + latency - self.clock())):
            return
        if status == "COMPLETED" and output is not None and output != {}:
            self._finish(job, status, output=output, has_output=True)
        else:  # rp_job drops None / {} outputs
            self._finish(job, status, error=error)

    def _outcome(self, job: SimJob, fault: str | None) -> tuple[str, Any, str | None]:
        """(status, output, error) the handler ends ``job`` with."""
        if fault == "timed_out":
            return "TIMED_OUT", None, None
        if fault == "no_output":
            return "COMPLETED", None, None
        if fault == "failed":
            error = self.failed_error
            if error is None:
                error = self._error_json(RuntimeError(self.failed_message), "")
            return "FAILED", None, error
        try:
            return "COMPLETED", self._output(job.input, fault), None
        except Refusal as refused:  # the worker's vLLM server refused the request
            return "FAILED", None, worker_refusal(refused)
        except Exception as exc:  # the "handler" raised: FAILED as the runpod SDK reports it
            return "FAILED", None, self._error_json(exc, traceback.format_exc())

    @staticmethod
    def serves_as_generator(job_input: Any) -> bool:
        """Whether the worker that runs this job is a generator handler: worker-vllm's, for the
        ``openai_route`` chat jobs; the ocular and whole-PDF workers return their output."""
        return isinstance(job_input, Mapping) and "openai_route" in job_input

    def _handle_local(self, job: SimJob, fault: str | None) -> Handled:
        """What the worker's handler does with ``job`` (:mod:`.runpod_local` makes the SDK's
        local server's reply of it): a refusal of vLLM's is an item ``{"error": ...}`` it
        yields, a ``failed`` fault an exception it raises (an ``{"error": failed_error}`` it
        returns or yields, when that is set), ``no_output`` nothing returned or yielded."""
        generator = self.serves_as_generator(job.input)
        if fault == "no_output":
            return Handled(generator, [] if generator else None)
        if fault == "failed":
            if self.failed_error is not None:
                error = {"error": self.failed_error}
                return Handled(generator, [error] if generator else error)
            return Handled(generator, raised=self._error_json(RuntimeError(self.failed_message), ""))
        try:
            output = self._output(job.input, fault)
        except Exception as exc:
            if isinstance(exc, Refusal) and generator:  # the official worker yields the error
                return Handled(True, [{"error": worker_error(exc)}])
            return Handled(generator, raised=self._error_json(exc, traceback.format_exc()))
        if generator and not isinstance(output, list):  # (a raw_output: what it yielded)
            output = [output]
        return Handled(generator, output)

    def run_local(self, job_input: Any) -> Handled | None:
        """Run one job of the local flavour inside its request, on a slot (the SDK's server
        runs the handler inside the request): what the handler did, ``None`` if the job was
        lost (a restart, a stop)."""
        key = self.key_fn(job_input)
        fault = self.plan.draw(key)
        if fault and (fault.startswith("http_") or fault in ("reset", "timed_out")):
            fault = None  # no gateway in front of the local server, no execution timeout
        job = self.submit(job_input, sync=True, fault=fault, key=key)
        job.done_event.wait()  # (a restart, a stop release it too)
        done = self.job(job.id)
        if done is None or not isinstance(done.output, Handled):
            return None
        return done.output

    @staticmethod
    def _error_json(exc: BaseException, tb: str) -> str:
        return json.dumps(
            {
                "error_type": str(type(exc)),
                "error_message": str(exc),
                "error_traceback": tb or f"Traceback (most recent call last):\n{type(exc).__name__}: {exc}\n",
                "hostname": "sim-host",
                "worker_id": "sim-worker",
                "runpod_version": _RUNPOD_VERSION,
            }
        )

    def _output(self, job_input: Any, fault: str | None) -> Any:
        if isinstance(job_input, Mapping) and "openai_route" in job_input:
            request = job_input.get("openai_input") or {}
            if str(job_input.get("openai_route")).rstrip("/").endswith("/models"):  # (what the worker serves)
                return [{"object": "list", "data": [{"id": self.model, "object": "model"}] if self.model else []}]
            if not isinstance(request, Mapping):
                raise Refusal(400, "request body is not a JSON object")
            limit = check_chat(request, model=self.model)  # vLLM's checks, as the OpenAI simulator's
            reply = self.responder(dict(request))
            check_generation(request, limit, reply.prompt_tokens, self.max_model_len)
            if "raw_output" in reply.data:
                return reply.data["raw_output"]
            reply = self._apply_model_fault(reply, fault) if fault else cut_at_max_tokens(reply, limit)
            if request.get("stream"):
                return _sse_batches(reply, request, self.stream_batch)
            return [_chat_completion(reply, request)]
        if isinstance(job_input, Mapping) and job_input.get("route") == "/health":  # (the Ocular worker's own)
            models = [self.model] if self.model else []
            return self.worker_health or {"status": "healthy", "models_loaded": models, "models_allowed": models,
                                          "models_failed": {}, "gpu_available": True, "memory_info": {}}  # fmt: skip
        if isinstance(job_input, Mapping) and "route" in job_input:
            body = {k: v for k, v in job_input.items() if k != "route"}
            reply = self.responder(body)
            if "raw_output" in reply.data:
                return reply.data["raw_output"]
            reply = self._apply_model_fault(reply, fault)
            extra = dict(reply.data)
            confidence = extra.pop("confidence", 0.9)
            return {
                "text": reply.text,
                "confidence": confidence,
                "language": extra.pop("language", "en"),
                "processing_time": 0.01,
                "metadata": {"route": job_input.get("route"), **extra},
            }
        body = dict(job_input) if isinstance(job_input, Mapping) else {"input": job_input}
        reply = self.responder(body)
        if "raw_output" in reply.data:
            return reply.data["raw_output"]
        reply = self._apply_model_fault(reply, fault)
        out_dir = body.get("output_dir") or "/tmp/runpod-output"
        return {
            "status": "succeeded",
            "command": "python custom_run_dpsk_ocr_pdf.py --input input.pdf",
            "return_code": 0,
            "stdout": "",
            "stderr": "",
            "markdown": base64.b64encode(reply.text.encode()).decode(),
            "markdown_path": f"{out_dir}/result.md",
            **reply.data,
        }

    @staticmethod
    def _apply_model_fault(reply: SimReply, fault: str | None) -> SimReply:
        if fault == "length":
            return SimReply(reply.text, "length", reply.prompt_tokens, reply.completion_tokens, dict(reply.data))
        if fault == "garbage":
            return garbage_reply(reply)
        return reply

    # -- HTTP-facing operations (called by the handler) -------------------------------------
    def cancel(self, job_id: str) -> SimJob | None:
        with self._lock:
            self.cancels_received += 1
            self._expire_locked()
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.status not in TERMINAL:
                job.status = "CANCELLED"
                job.finished = self.clock()
                job.expires = job.finished + self.retention_s
                job.cancel_event.set()
                job.done_event.set()
            return job

    def purge_queue(self) -> int:
        with self._lock:
            queued = [j for j in self._jobs.values() if j.status == "IN_QUEUE"]
            for j in queued:
                del self._jobs[j.id]
                j.cancel_event.set()
                j.done_event.set()
            return len(queued)

    def health(self) -> dict[str, Any]:
        with self._lock:
            self._expire_locked()
            in_queue = sum(1 for j in self._jobs.values() if j.status == "IN_QUEUE")
            in_progress = sum(1 for j in self._jobs.values() if j.status == "IN_PROGRESS")
            cold = self._warm_at is not None and self._warm_at > self.clock()
            # an endpoint with a cold start has no worker up before its first job (scaled to
            # zero: it reported them all idle and ready)
            slots = 0 if self.plan.cold_start_s > 0 and self._warm_at is None else max(1, self.plan.slots)
            return {
                "jobs": {
                    "completed": self.completed,
                    "failed": self.failed,
                    "inProgress": in_progress,
                    "inQueue": in_queue,
                    "retried": 0,
                },
                "workers": {
                    "idle": 0 if cold else slots - self.running_now,
                    "initializing": slots if cold else 0,
                    "ready": 0 if cold else slots,
                    "running": self.running_now,
                    "throttled": 0,
                    "unhealthy": 0,
                },
            }

    def _count(self, route: str) -> None:
        with self._lock:
            self.requests[route] += 1
            self.requests_total += 1
            self.request_times.setdefault(route, []).append(time.monotonic())


_ROUTE = re.compile(r"^/v2/(?P<endpoint>[^/]+)/(?P<op>run|runsync|status|cancel|health|purge-queue|stream|retry)(?:/(?P<id>[^/]+))?/?$")
_LOCAL_ROUTE = re.compile(r"^/(?P<op>run|runsync|status|stream)(?:/(?P<id>[^/]+))?/?$")


class _Handler(SimHandler):
    server_version = "RunPodSim/1.0"

    @property
    def simulator(self) -> RunPodSimulator:
        sim: RunPodSimulator = self.server.owner
        return sim

    def respond(self) -> None:
        self._dispatch(self.command)

    # -- plumbing ----------------------------------------------------------------------------
    def _send(self, code: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        write_json(self, code, body, (headers or {}).items())

    def _send_raw(self, reply: CannedReply) -> None:
        data, ctype = reply.encoded()
        write_reply(self, reply.status, data, ctype, reply.headers)

    def _read_body(self, limit: int | None) -> tuple[Any, bool]:
        """(parsed JSON or None, too_large); a body over ``limit`` is drained (for our 413)."""
        raw, too_large = read_body(self, limit)
        if too_large or not raw:
            return None, too_large
        try:
            return json.loads(raw), False
        except ValueError:
            return ValueError, False

    def _drop(self) -> None:
        """The ``reset`` fault: close without a reply."""
        hang_up(self)

    # -- routing -----------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        sim = self.simulator
        parts = urlsplit(self.path)
        if sim.force_reply is not None:
            routed = (_LOCAL_ROUTE if sim.flavour == "local" else _ROUTE).match(parts.path)
            sim._count(routed.group("op") if routed else parts.path)
            self._read_body(None)
            self._send_raw(sim.force_reply)
            return
        if sim.flavour == "local":  # the runpod SDK's --rp_serve_api server
            dispatch_local(self, sim, method, parts.path, sim.run_local)
            return
        m = _ROUTE.match(parts.path)
        if not m:
            self._read_body(None)
            self._send(404, {"error": "not found"})
            return
        op, job_id = m.group("op"), m.group("id")
        sim._count(op)
        auth = self.headers.get("Authorization") or ""
        if sim.api_key is not None and auth not in (f"Bearer {sim.api_key}", sim.api_key):
            self._read_body(None)
            self._send(401, {"error": "Unauthorized"})
            return
        if m.group("endpoint") != sim.endpoint_id:
            self._read_body(None)
            self._send(404, {"error": f"endpoint {m.group('endpoint')} not found"})
            return
        if not sim.rates.admit(op):
            self._read_body(None)
            wait = sim.rate_retry_after_s
            self._send(429, {"error": "Too Many Requests"}, {"Retry-After": f"{wait:g}"} if wait is not None else None)
            return
        try:
            self._operate(method, op, job_id, parts.query)
        finally:
            sim.rates.leave(op)

    def _operate(self, method: str, op: str, job_id: str | None, query: str) -> None:
        sim = self.simulator
        if op in ("run", "runsync") and method == "POST":
            self._submit(op, parse_qs(query))
        elif op == "status" and job_id:
            self._read_body(None)
            failure = sim._next_status_error()
            if failure is not None:
                headers = _retry_after(sim.plan.retry_after_s) if failure == 429 else None
                self._send(failure, {"error": HTTPStatus(failure).phrase}, headers)
                return
            job = sim.job(job_id)
            if job is None:
                self._send(404, {"error": "request does not exist"})
            else:
                self._send(200, job.reply())
        elif op == "cancel" and job_id and method == "POST":
            self._read_body(None)
            job = sim.cancel(job_id)
            if job is None:
                self._send(404, {"error": "request does not exist"})
            else:
                self._send(200, {"id": job.id, "status": job.status})
        elif op == "health" and method == "GET":
            self._send(200, sim.health())
        elif op == "purge-queue" and method == "POST":
            self._read_body(None)
            self._send(200, {"removed": sim.purge_queue(), "status": "completed"})
        else:
            self._read_body(None)
            self._send(405 if op in ("run", "runsync", "cancel", "health", "purge-queue") else 404,
                       {"error": f"{method} /{op} not supported by the simulator"})

    def _submit(self, op: str, query: Mapping[str, list[str]]) -> None:
        sim = self.simulator
        limit = sim.run_limit_bytes if op == "run" else sim.runsync_limit_bytes
        body, too_large = self._read_body(limit)
        if too_large:
            self._send(413, {"error": f"request body exceeds the {limit // 1_000_000} MB limit of /{op}"})
            return
        if body is ValueError or not isinstance(body, dict) or "input" not in body:
            self._send(400, {"error": "body must be a JSON object with an 'input' field"})
            return
        job_input = body["input"]
        key = sim.key_fn(job_input)
        fault = sim.plan.draw(key)
        if fault == "reset":
            self._drop()
            return
        if fault and fault.startswith("http_"):
            code = int(fault[5:])
            headers = _retry_after(sim.plan.retry_after_s) if code == 429 else None
            msg = HTTPStatus(code).phrase
            self._send(code, {"error": msg}, headers)
            return
        if sim.max_queue is not None and sim._queue_depth() >= sim.max_queue:
            self._send(429, {"error": "Too Many Requests"}, _retry_after(sim.plan.retry_after_s))
            return
        policy = body.get("policy") if isinstance(body.get("policy"), Mapping) else None
        job = sim.submit(job_input, sync=(op == "runsync"), policy=policy, fault=fault, key=key)
        if op == "run":
            self._send(200, {"id": job.id, "status": "IN_QUEUE"})
            return
        wait_s = RUNSYNC_DEFAULT_WAIT_S  # RunPod: 90 s, or ?wait= ms in 1000..300000
        if query.get("wait"):
            with contextlib.suppress(ValueError):
                wait_s = min(300.0, max(1.0, float(query["wait"][0]) / 1000.0))
        job.done_event.wait(min(wait_s, sim.runsync_block_s))
        current = sim.job(job.id)
        self._send(200, current.reply() if current else {"id": job.id, "status": "IN_QUEUE"})

def main(argv: list[str] | None = None) -> None:
    """``python -m ocrclient.testing.runpod_sim --port 8765``: serve until Ctrl-C."""
    p = OneLineParser(prog="python -m ocrclient.testing.runpod_sim", description="Simulated RunPod serverless endpoint on loopback")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--flavour", choices=["api", "local"], default="api")
    p.add_argument("--endpoint-id", default="sim-endpoint")
    p.add_argument("--api-key", default="rp_sim_key_0123456789")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--slots", type=int, default=4)
    p.add_argument("--latency", type=float, nargs=2, default=(0.2, 0.8), metavar=("MIN", "MAX"))
    p.add_argument("--cold-start", type=float, default=0.0)
    p.add_argument("--max-model-len", type=int, default=16384,
                   help="the served model's context: a chat job whose prompt + max_tokens is over it FAILs")
    p.add_argument("--fault", action="append", default=[], metavar="NAME=RATE",
                   help="e.g. --fault failed=0.1 --fault http_429=0.05")
    args = p.parse_args(argv)
    try:  # (a bad --fault, a port in use: one line, exit 2)
        rates = {k: float(v) for k, _, v in (f.partition("=") for f in args.fault)}
        plan = FaultPlan(seed=args.seed, rates=rates, latency_s=tuple(args.latency), slots=args.slots,
                         cold_start_s=args.cold_start)
        sim = RunPodSimulator(plan=plan, flavour=args.flavour, endpoint_id=args.endpoint_id,
                              api_key=args.api_key, port=args.port, max_model_len=args.max_model_len).start()
    except (ValueError, OSError, OverflowError) as exc:
        p.error(f"{exc} (--fault takes NAME=RATE)" if "float" in str(exc) else str(exc))
    try:
        print(f"RunPod simulator ({args.flavour}) at {sim.base_url}")
        if args.flavour == "api":
            print(f"  RUNPOD_ENDPOINT_ID={sim.endpoint_id}  (API key: the --api-key value)")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping")
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
