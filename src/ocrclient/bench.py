"""``ocr bench``: measure a backend on real input — pages/s, latency p50/p95, retries by cause,
tokens, GPU-seconds and an estimated cost — and, with ``metrics=True``, sample the vLLM server's
Prometheus ``/metrics`` during the run (running / waiting requests, KV-cache use).

Bytes on the wire: every request body the transport is handed is counted (its JSON text: the
page image travels base64-encoded inside it), and the report sets the upload rate the run
achieved (``upload_mbit_s``: the bytes counted over the run's wall time) beside the rate needed
to keep the endpoint busy (``upload_mbit_s_to_keep_busy``): ``upload_in_flight`` requests in
flight, each carrying the mean body size and each served in the median latency measured, so
in-flight x mean body x 8 / p50.  ``upload_in_flight`` is the requests this run could have in
flight at once: ``min(concurrency, pages, requests sent)`` -- a run of 6 pages at concurrency 16
never has more than 6 (it was counted as 16, claiming 27 Mbit/s needed against 5 achieved).
``upload_peak_in_flight`` is the most requests measured in flight at once.  When the rate needed
is near or above what the link can upload, the link, not the GPU, sets the pace.  The ``local``
transport runs its engine in-process and uploads nothing: its upload figures are null and
``upload_detail`` says so.

The run bypasses the resume cache (a cached page would measure nothing).

Example::

    report = asyncio.run(run_bench(["doc.pdf"], backend="runpod-pod-lightonocr2", metrics=True))
    print(report["pages_per_s"], report["metrics"]["max_running"])
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from typing import Any

import httpx

from .api import Conversion, prepare
from .document import percentile
from .errors import OcrError, UsageError
from .registry import Backend, load_backend

__all__ = ["body_bytes", "parse_prometheus", "run_bench"]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")

#: vLLM metric names (old and new spellings) -> our short names
VLLM_METRICS = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:gpu_cache_usage_perc": "kv_cache_usage",
    "vllm:kv_cache_usage_perc": "kv_cache_usage",
}


def parse_prometheus(text: str) -> dict[str, float]:
    """Sum the samples of each metric in a Prometheus text exposition (labels summed over)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line.strip())
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


def _metrics_url(be: Backend) -> str | None:
    base = be.config.resolved_base_url()
    if be.config.transport != "openai" or not base:
        return None
    root = base.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root + "/metrics"


async def _sample_metrics(url: str, headers: dict[str, str], samples: list[dict[str, float]], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError, OSError):
                resp = await client.get(url, headers=headers)
                if resp.status_code == 200:
                    raw = parse_prometheus(resp.text)
                    samples.append({short: raw[name] for name, short in VLLM_METRICS.items() if name in raw})
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


def body_bytes(value: Any) -> int:
    """The length of ``value`` as JSON text, near enough (strings and keys counted, quotes and
    separators not): a request body is dominated by its base64 image."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(len(str(k)) + body_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(body_bytes(v) for v in value)
    return len(str(value))


class _Counting:
    """A transport that sends as the wrapped one and counts the request bodies that went up,
    as its HTTP client wrote them (:data:`~ocrclient.transports.written.BODY_WRITTEN`): each one
    written whole -- a job that then FAILED, a 429 sent again, a reply cut after the body was
    read -- and none that never reached the server (a refused connection uploads nothing).  A
    transport that writes by other means is counted by its request: answered, or refused by an
    HTTP status."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests = 0
        self.bytes = 0
        self.in_flight = 0
        self.peak_in_flight = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _wrote(self, size: int) -> None:
        self.requests, self.bytes = self.requests + 1, self.bytes + size

    async def send(self, request: Any) -> Any:
        from .transports.written import BODY_WRITTEN

        written: list[int] = []  # (this send's own: others run beside it)

        def wrote(size: int) -> None:
            written.append(size)
            self._wrote(size)

        token = BODY_WRITTEN.set(wrote)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            reply = await self.inner.send(request)
        except OcrError as exc:
            if not written and getattr(exc, "status", None) is not None:  # (answered)
                self._wrote(body_bytes(request.body))
            raise
        finally:
            self.in_flight -= 1
            BODY_WRITTEN.reset(token)
        if not written:  # (a transport that writes by other means)
            self._wrote(body_bytes(request.body))
        return reply


#: the report's upload figures (null where nothing is uploaded)
UPLOAD_KEYS = ("upload_requests", "upload_bytes_per_request", "upload_in_flight", "upload_peak_in_flight",
               "upload_mbit_s", "upload_mbit_s_to_keep_busy")  # fmt: skip


def _upload(counted: _Counting, wall: float, concurrency: int, pages: int, latencies: list[float], transport: str) -> dict[str, Any]:
    """The bytes on the wire (see the module's docstring); none for the in-process engine."""
    p50 = percentile(latencies, 0.5)
    if transport == "local":
        return {**dict.fromkeys(UPLOAD_KEYS), "upload_detail": "nothing uploaded: the local engine runs in-process"}
    per_request = counted.bytes / counted.requests if counted.requests else 0.0
    # the requests that can be in flight at once: never more than the run's pages (one attempt
    # of a page at a time) nor than the requests it sent
    in_flight = max(0, min(concurrency, pages, counted.requests))
    busy = per_request * 8 * in_flight / p50 / 1e6 if p50 else None
    return {
        "upload_requests": counted.requests,
        "upload_bytes_per_request": round(per_request),
        "upload_in_flight": in_flight,
        "upload_peak_in_flight": counted.peak_in_flight,
        "upload_mbit_s": round(counted.bytes * 8 / wall / 1e6, 3) if wall > 0 else 0.0,
        "upload_mbit_s_to_keep_busy": round(busy, 3) if busy is not None else None,
    }


def _throttled_since(gate: Any, before: dict[str, int]) -> dict[str, int]:
    """The 429s ``gate`` (a RunPod endpoint's) saw since ``before``, by operation: each waited
    out and sent again without spending an attempt (so in no retry count)."""
    now: dict[str, int] = getattr(gate, "throttles", {})
    return {op: n - before.get(op, 0) for op, n in now.items() if n > before.get(op, 0)}


def _cost(reported: float, gpu: float, wall: float, cfg: Any) -> tuple[float, str | None]:
    """The run's estimated cost and how it was reckoned: the GPU-seconds the endpoint reported
    at the profile's price; else the run's hours at ``price_per_hour`` (a pod); else, where the
    server reports no GPU time (vLLM's API), one GPU held for the run at ``price_per_gpu_second``
    (a pod, or a Modal container serving the run's requests at once: Modal's priced profile was
    never costed, its estimate said null)."""
    if reported:
        return reported, "GPU-seconds the endpoint reported x price_per_gpu_second"
    if cfg.price_per_hour:
        return cfg.price_per_hour * wall / 3600.0, "wall time x price_per_hour"
    if not gpu and cfg.price_per_gpu_second and cfg.transport != "runpod":
        return cfg.price_per_gpu_second * wall, "wall time x price_per_gpu_second (one GPU held for the run)"
    return 0.0, None  # (RunPod serverless bills the jobs that ran: none reported, none known)


def _backend(backend: str | Backend | None, overrides: dict[str, Any]) -> Backend:
    """The backend to measure: ``backend`` loaded with ``overrides``, or the loaded one given
    (settings beside it are refused, as a Client refuses them: they were dropped without a word)."""
    if not isinstance(backend, Backend):
        return load_backend(backend, **overrides)
    fixed = sorted(k for k, v in overrides.items() if v is not None)
    if fixed:
        raise UsageError(f"a loaded Backend's settings are fixed: pass {', '.join(fixed)} to load_backend() "
                         "or give run_bench the backend's name")  # fmt: skip
    return backend


async def run_bench(
    inputs: list[str],
    *,
    backend: str | Backend | None = None,
    pages: str | None = None,
    password: str | None = None,
    concurrency: int | None = None,
    metrics: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    plan = await asyncio.to_thread(prepare, inputs, pages=pages, password=password)
    be = _backend(backend, overrides)
    samples: list[dict[str, float]] = []
    stop = asyncio.Event()
    sampler = None
    url = _metrics_url(be) if metrics else None
    if url:
        key = be.config.secret()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        sampler = asyncio.create_task(_sample_metrics(url, headers, samples, stop))
    gate = getattr(be.transport, "gate", None)  # (RunPod's: the 429s it waited out)
    throttles_before = dict(getattr(gate, "throttles", {}))
    t0 = time.monotonic()
    docs = []
    counted = _Counting(be.transport)
    be.transport = counted
    try:
        async for result in Conversion(backend=be, cache=False, concurrency=concurrency, prepared=plan):
            docs.append(result.document)
    finally:
        be.transport = counted.inner
        stop.set()
        if sampler is not None:
            await sampler
        if not isinstance(backend, Backend):
            await be.aclose()
    wall = time.monotonic() - t0
    all_pages = [p for d in docs for p in d.pages]
    latencies = sorted(p.latency_s for p in all_pages if p.status != "failed")
    retries: Counter[str] = sum((Counter(d.stats.retries_by_cause) for d in docs), Counter())
    gpu = sum(p.usage.gpu_seconds or 0.0 for p in all_pages)
    cost, basis = _cost(sum(p.usage.cost_usd or 0.0 for p in all_pages), gpu, wall, be.config)

    report: dict[str, Any] = {
        "backend": be.name,
        "model": be.config.model,
        "documents": len(docs),
        "pages": len(all_pages),
        "ok": sum(p.status == "ok" for p in all_pages),
        "degraded": sum(p.status == "degraded" for p in all_pages),
        "failed": sum(p.status == "failed" for p in all_pages),
        "wall_s": round(wall, 3),
        # pages read (ok or degraded) per second: a failed page is no throughput
        "pages_per_s": round(sum(p.status != "failed" for p in all_pages) / wall, 4) if wall > 0 else 0.0,
        "latency_p50_s": percentile(latencies, 0.5),
        "latency_p95_s": percentile(latencies, 0.95),
        "attempts": sum(p.attempts for p in all_pages),
        "retries_by_cause": dict(retries),
        "throttled_429": _throttled_since(gate, throttles_before),
        "prompt_tokens": sum(p.usage.prompt_tokens for p in all_pages),
        "completion_tokens": sum(p.usage.completion_tokens for p in all_pages),
        "gpu_seconds": round(gpu, 3) if gpu else None,
        "estimated_cost_usd": round(cost, 6) if cost else None,
        "cost_basis": basis,
        **_upload(counted, wall, concurrency or be.config.concurrency, len(all_pages), latencies, be.config.transport),
    }
    if metrics:
        report["metrics"] = (
            {
                "url": url,
                "samples": len(samples),
                "max_running": max((s.get("running", 0.0) for s in samples), default=None),
                "max_waiting": max((s.get("waiting", 0.0) for s in samples), default=None),
                "max_kv_cache_usage": max((s.get("kv_cache_usage", 0.0) for s in samples), default=None),
            }
            if url
            else {"detail": "this backend exposes no vLLM /metrics"}
        )
    return report
