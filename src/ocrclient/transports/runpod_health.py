"""``ocr health`` of a RunPod endpoint: ``GET .../health`` (workers and queue) with the key, or
the SDK's local test server's ``/openapi.json`` (it has no ``/health``); then, when a worker is
up to answer, whether it serves the profile's model: a ``/v1/models`` job, as worker-vllm and
deploy/'s vLLM workers take it, or, with the transport option ``health_route``, the worker's
own health job (``{"route": "/health"}``: the Ocular worker of deploy/runpod-trocr, which knows
no ``/v1/models`` and refused that job as a bad request, its model never checked), whose
``models_loaded`` and ``models_allowed`` it serves and whose ``models_failed`` did not load.
Never raises."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import OcrError
from .base import Health, json_bytes
from .http import map_errors
from .limits import ERROR_BODY_BYTES, loads, read_capped
from .runpod_jobs import _flatten, _is_error_obj, decode_job_error

if TYPE_CHECKING:
    from .runpod import RunPodTransport

__all__ = ["endpoint_health"]


#: how long ``ocr health`` waits for a worker's model list: an idle worker answers at once; one
#: still loading its model leaves the model unconfirmed, not failed
MODELS_WAIT_S = 20.0


async def endpoint_health(t: RunPodTransport) -> Health:
    """``t``'s endpoint up and authorised, and its worker serving ``t.model`` when one is up to
    say so: a worker serving another model, or whose model failed to load, is down (the run
    would stop at its first page); no worker up is not asked (a job would start one, billed)."""
    up = await _endpoint_up(t)
    if not up.ok or not t.model:
        return up
    workers = up.info.get("workers") or {}
    if t.mode != "local" and not (workers.get("idle") or workers.get("running")):
        return replace(up, detail=f"{up.detail}; model not checked: no worker is up (a job would start one)")
    try:
        models = await served_models(t)
    except OcrError as exc:
        if exc.message.startswith("model_not_ready") or " 503:" in exc.message:  # (deploy/'s failed load)
            return Health(False, f"the worker's model is not ready: {exc.message}", up.info)
        return replace(up, detail=f"{up.detail}; model not confirmed ({exc.message})")
    if not models:
        why = "the worker names no model" if models is not None else f"no model list within {MODELS_WAIT_S:g} s"
        return replace(up, detail=f"{up.detail}; model not confirmed ({why})")
    info = {**up.info, "models": models}
    if t.model not in models:
        return Health(False, f"model {t.model!r} is not served; the endpoint serves: {', '.join(models)}", info, refused=True)
    return Health(True, f"{up.detail}; model {t.model} served", info)


async def served_models(t: RunPodTransport, wait_s: float = MODELS_WAIT_S) -> list[str] | None:
    """The models ``t``'s worker serves, from a ``/v1/models`` job; ``None`` when it does not
    answer within ``wait_s`` (its job is then cancelled).  Raises :class:`OcrError` with the
    worker's ``kind code: message`` when the job fails or its output is an error."""
    from .runpod import _Job

    job = _Job()
    data = json_bytes({"input": {"route": t.health_route} if t.health_route else {"openai_route": "/v1/models"}})
    try:
        async with asyncio.timeout(wait_s):
            status = await t._run(data, "runsync", job, time.monotonic() + wait_s, ERROR_BODY_BYTES)
    except TimeoutError:
        if job.id and not job.terminal:
            await t._cancel_shielded(job.id)
        return None
    finally:
        if job.id:
            t.in_flight.discard(job.id)
    state = status.get("status")
    items = _flatten(status.get("output")) if state == "COMPLETED" else []
    bad = next((i for i in items if _is_error_obj(i)), None) if state == "COMPLETED" else status.get("error") or f"job {state}"
    if bad is not None:
        kind, message = decode_job_error(bad)
        raise OcrError(f"{kind}: {message}" if kind else message)
    if t.health_route:
        return _ocular_models(next((i for i in items if isinstance(i, dict)), {}), t.model)
    return [str(m.get("id")) for i in items if isinstance(i, dict) for m in i.get("data") or [] if isinstance(m, dict)]


def _ocular_models(report: dict[str, object], model: str | None) -> list[str]:
    """The models an Ocular worker's health report says it serves (loaded, or allowed: loaded
    on first use); raises the 503 its jobs answer when ``model`` failed to load."""
    failed = report.get("models_failed")
    if isinstance(failed, dict) and model in failed:
        raise OcrError(f"model_not_ready 503: {failed[model]}")
    named = [report.get("models_loaded"), report.get("models_allowed")]
    return list(dict.fromkeys(str(m) for ms in named if isinstance(ms, list) for m in ms))


async def _endpoint_up(t: RunPodTransport) -> Health:
    """``t``'s endpoint: up and authorised (workers idle/running, jobs queued/in progress)."""
    if t.mode == "local":
        try:
            with map_errors(f"local RunPod test server unreachable at {t.base_url}"):
                resp = await t._client.get(f"{t.base_url}/openapi.json", timeout=5.0)
        except OcrError as exc:
            return Health(False, exc.message)
        ok = resp.status_code == 200 and "/runsync" in resp.text
        return Health(ok, "local RunPod test server up" if ok else f"local server: HTTP {resp.status_code}")
    try:
        with map_errors(f"cannot reach RunPod at {t.base_url}"):
            req = t._client.build_request("GET", t.url("health"), headers=t._headers, timeout=10.0)
            resp = await read_capped(t._client, req, ERROR_BODY_BYTES, what="RunPod health")
    except OcrError as exc:  # down, or a reply over its cap
        return Health(False, exc.message)
    if resp.status_code in (401, 403):
        return Health(False, f"bad API key (HTTP {resp.status_code})", refused=True)
    if resp.status_code == 404:
        return Health(False, f"endpoint {t.endpoint_id!r} not found (HTTP 404)", refused=True)
    if resp.status_code >= 400:
        return Health(False, f"RunPod health: HTTP {resp.status_code}")
    try:
        info = loads(resp.content)
    except (ValueError, OcrError):
        return Health(False, "RunPod health: non-JSON reply")
    if not isinstance(info, dict):
        return Health(False, "RunPod health: not a JSON object")
    workers = info.get("workers") or {}
    jobs = info.get("jobs") or {}
    detail = (
        f"endpoint {t.endpoint_id}: workers {workers.get('idle', 0)} idle, "
        f"{workers.get('running', 0)} running; jobs {jobs.get('inQueue', 0)} in queue, "
        f"{jobs.get('inProgress', 0)} in progress"
    )
    return Health(True, detail, dict(info))
