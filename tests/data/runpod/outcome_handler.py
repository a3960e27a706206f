"""A RunPod worker whose every outcome is chosen by its job, for the table that compares the
SDK's local server with ``RunPodSimulator(flavour="local")`` (tests/test_runpod_local_sdk.py).

The job says what to do, in its input (or, for a chat job, in its ``openai_input``):
``{"value": X}`` returns ``X`` (the plain handler), ``{"yield": [X, ...]}`` yields each item
(the generator handler), and ``{"raise": "message"}`` then raises ``RuntimeError(message)``.

``ECHO_HANDLER_KIND=generator`` makes it an async generator started with
``return_aggregate_stream=True``, as worker-vllm is; otherwise a coroutine that returns.

Run: ``python outcome_handler.py --rp_serve_api --rp_api_port 8000 --rp_api_host 127.0.0.1``
"""

from __future__ import annotations

import os
from typing import Any

import runpod


def _spec(job: dict[str, Any]) -> dict[str, Any]:
    job_input = job["input"]
    spec = job_input.get("openai_input", job_input)
    return spec if isinstance(spec, dict) else {}


async def handler(job: dict[str, Any]) -> Any:
    spec = _spec(job)
    if "raise" in spec:
        raise RuntimeError(spec["raise"])
    return spec.get("value")


async def generator_handler(job: dict[str, Any]):  # type: ignore[no-untyped-def]
    spec = _spec(job)
    for item in spec.get("yield", []):
        yield item
    if "raise" in spec:
        raise RuntimeError(spec["raise"])


if __name__ == "__main__":
    if os.environ.get("ECHO_HANDLER_KIND") == "generator":
        runpod.serverless.start({"handler": generator_handler, "return_aggregate_stream": True})
    else:
        runpod.serverless.start({"handler": handler})
