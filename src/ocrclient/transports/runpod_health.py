"""``ocr health`` of a RunPod endpoint: ``GET .../health`` (workers and queue) with the key, or
the SDK's local test server's ``/openapi.json`` (it has no ``/health``).  Never raises."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import OcrError
from .base import Health
from .http import map_errors
from .limits import ERROR_BODY_BYTES, loads, read_capped

if TYPE_CHECKING:
    from .runpod import RunPodTransport

__all__ = ["endpoint_health"]


async def endpoint_health(t: RunPodTransport) -> Health:
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
