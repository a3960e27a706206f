"""A tiny RunPod worker for the SDK integration test (tests/test_runpod_worker_sdk.py).

It accepts the envelope of RunPod's official vLLM worker,
``{"openai_route": "/v1/chat/completions", "openai_input": <chat request>}``, and answers with a
chat completion echoing the prompt text.  A prompt containing ``EXPLODE`` raises RuntimeError
(an infrastructure-looking failure), one containing ``INVALID`` raises ValueError (an input
problem).

``ECHO_HANDLER_KIND=generator`` makes it an async generator started with
``return_aggregate_stream=True``, like worker-vllm, so the job output is the list it yielded.

Run: ``python echo_handler.py --rp_serve_api --rp_api_port 8000 --rp_api_host 127.0.0.1``
"""

from __future__ import annotations

import os
import time
from typing import Any

import runpod


def _prompt_text(request: dict[str, Any]) -> str:
    parts: list[str] = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return " ".join(parts)


def _answer(job: dict[str, Any]) -> dict[str, Any]:
    job_input = job["input"]
    if job_input.get("openai_route") != "/v1/chat/completions":
        raise ValueError(f"unsupported openai_route {job_input.get('openai_route')!r}")
    request = job_input["openai_input"]
    text = _prompt_text(request)
    if "EXPLODE" in text:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    if "INVALID" in text:
        raise ValueError("invalid image payload: cannot identify image file")
    content = f"echo: {text}"
    return {
        "id": f"chatcmpl-{job['id']}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "echo"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": len(text.split()), "completion_tokens": len(content.split()),
                  "total_tokens": len(text.split()) + len(content.split())},
    }


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    return _answer(job)


async def generator_handler(job: dict[str, Any]):  # type: ignore[no-untyped-def]
    yield _answer(job)


if __name__ == "__main__":
    if os.environ.get("ECHO_HANDLER_KIND") == "generator":
        runpod.serverless.start({"handler": generator_handler, "return_aggregate_stream": True})
    else:
        runpod.serverless.start({"handler": handler})
