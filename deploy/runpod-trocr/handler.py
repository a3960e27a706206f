"""RunPod serverless worker for the TrOCR "ocular" service (OLM / RoLM contract).

Job envelope (``route`` picks the endpoint; the other keys are that endpoint's JSON body)::

    {"input": {"route": "/extract_text", "image": "<base64>", "model_name": "microsoft/trocr-base-printed"}}
    {"input": {"route": "/extract_structured", "image": "<base64>", "schema": {"total": "number"}}}
    {"input": {"route": "/health"}}

The seed's form ``{"input": {"endpoint": "/extract_text", "request": {...}}}`` is accepted too.
Output: the endpoint's reply (``{"text", "confidence", "language", "processing_time",
"metadata"}`` for ``/extract_text``).  Errors: ``{"error": "<json string>"}`` -> FAILED job, the
string holding ``error_type``, ``error_message``, ``code`` and ``retryable``.

The same service runs as plain HTTP with ``app.py`` (FastAPI).  ``TROCR_STANDIN=1`` replaces
the model with a CPU stand-in.  Run locally: ``python handler.py --rp_serve_api``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trocr_core import OcrService, ServiceError

log = logging.getLogger("trocr-worker")

SERVICE: OcrService | None = None


def get_service() -> OcrService:
    global SERVICE
    if SERVICE is None:
        SERVICE = OcrService()
    return SERVICE


def set_service(service: OcrService | None) -> None:
    """Inject a service (tests: one built with a stand-in recognizer)."""
    global SERVICE
    SERVICE = service


def _error(message: str, status: int) -> dict[str, str]:
    kind = {400: "invalid_request", 404: "not_found", 413: "payload_too_large", 503: "model_not_ready"}.get(
        status, "server_error"
    )
    payload = {
        "error_type": kind,
        "error_message": " ".join(message.split()),
        "code": status,
        "retryable": status >= 500,
    }
    return {"error": json.dumps(payload)}


def split_envelope(job_input: Any) -> tuple[str, dict[str, Any]]:
    """``(route, body)`` from a job input in either accepted form."""
    if not isinstance(job_input, dict):
        raise ServiceError("job input must be a JSON object")
    if "request" in job_input or "endpoint" in job_input:
        route = job_input.get("endpoint") or job_input.get("route") or "/extract_text"
        body = job_input.get("request") or {}
    else:
        route = job_input.get("route") or "/extract_text"
        body = {k: v for k, v in job_input.items() if k != "route"}
    if not isinstance(route, str):
        raise ServiceError("route must be a string")
    if not isinstance(body, dict):
        raise ServiceError("request must be a JSON object")
    return route, body


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """RunPod handler: one request of the ocular contract per job."""
    try:
        route, body = split_envelope(job.get("input") if isinstance(job, dict) else None)
        return await get_service().route(route, body)
    except ServiceError as exc:
        return _error(str(exc), exc.status)
    except Exception as exc:
        log.exception("trocr job failed")
        return _error(f"OCR failed: {type(exc).__name__}: {exc}", 500)


def concurrency_modifier(current: int) -> int:
    return max(1, int(os.environ.get("MAX_CONCURRENCY", "4") or 4))


if __name__ == "__main__":
    import runpod

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    try:
        get_service().preload()
    except Exception as exc:  # keep serving; jobs will report the load error
        log.error("preload failed: %s", exc)
    runpod.serverless.start({"handler": handler, "concurrency_modifier": concurrency_modifier})
