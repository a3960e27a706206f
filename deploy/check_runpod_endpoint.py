#!/usr/bin/env python3
"""Send one test page to a RunPod endpoint in the job envelope and check the reply shape.

Works for every chat-style backend in deploy/ (official ``runpod/worker-v1-vllm`` endpoints for
olmOCR / RolmOCR, and our Chandra / DeepSeek-OCR workers)::

    RUNPOD_API_KEY=... python deploy/check_runpod_endpoint.py --endpoint-id abc123 \
        --model allenai/olmOCR-2-7B-1025-FP8 --image page.png
    # a worker started locally with `python handler.py --rp_serve_api --rp_api_port 8000`:
    python deploy/check_runpod_endpoint.py --url http://127.0.0.1:8000 --local

Without ``--image`` a small page with a known sentence is drawn.  Exit code 0 when the endpoint
answered a chat completion with non-empty content, 1 otherwise (the reason is printed).
Needs ``httpx`` and ``pillow``.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import time
from typing import Any

import httpx

TEST_SENTENCE = "The quick brown fox jumps over the lazy dog 1234567890"


def test_page_png() -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (1000, 300), "white")
    draw = ImageDraw.Draw(img)
    try:
        font: Any = ImageFont.load_default(size=36)
    except TypeError:  # pillow < 10.1
        font = ImageFont.load_default()
    draw.text((40, 120), TEST_SENTENCE, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def build_job(image: bytes, mime: str, model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {
            "type": "image_url",
            "image_url": {"url": f"data:{mime};base64," + base64.b64encode(image).decode()},
        }
    ]
    if prompt:
        content.append({"type": "text", "text": prompt})
    return {
        "input": {
            "openai_route": "/v1/chat/completions",
            "openai_input": {
                "model": model,
                "messages": [{"role": "user", "content": content}],
                "max_tokens": max_tokens,
                "temperature": 0.0,
                "stream": False,
            },
        }
    }


def first_completion(output: Any) -> dict[str, Any]:
    """The chat completion inside a job output (a list of yielded items, or the item itself)."""
    item = output[0] if isinstance(output, list) and output else output
    if not isinstance(item, dict):
        raise ValueError(f"output is not a chat completion: {str(output)[:200]}")
    if "error" in item or item.get("object") == "error":
        raise ValueError(f"endpoint answered an error: {json.dumps(item)[:300]}")
    if not item.get("choices"):
        raise ValueError(f"output has no choices: {json.dumps(item)[:300]}")
    return item


def run(args: argparse.Namespace) -> int:
    if args.url:
        base = args.url.rstrip("/")
    elif args.endpoint_id:
        base = f"{args.base_url.rstrip('/')}/{args.endpoint_id}"
    else:
        print("give --endpoint-id or --url", file=sys.stderr)
        return 1
    headers = {}
    key = os.environ.get("RUNPOD_API_KEY", "")
    if not key and not args.local:  # (it sent none, then said "the API key was refused")
        print("set RUNPOD_API_KEY (or pass --local for the RunPod SDK's local server)", file=sys.stderr)
        return 1
    if key and not args.local:
        headers["Authorization"] = f"Bearer {key}"
    if args.image:
        with open(args.image, "rb") as fh:
            image = fh.read()
        mime = "image/jpeg" if args.image.lower().endswith((".jpg", ".jpeg")) else "image/png"
    else:
        image, mime = test_page_png(), "image/png"
    job = build_job(image, mime, args.model, args.prompt, args.max_tokens)
    t0 = time.monotonic()
    with httpx.Client(headers=headers, timeout=httpx.Timeout(args.timeout, connect=15)) as client:
        if not args.local:
            r = client.get(f"{base}/health")
            print(f"health: HTTP {r.status_code} {r.text[:200]}")
            if r.status_code in (401, 403):
                print("the API key was refused", file=sys.stderr)
                return 1
        r = client.post(f"{base}/runsync", params=None if args.local else {"wait": 90000}, json=job)
        if r.status_code != 200:
            print(f"runsync: HTTP {r.status_code} {r.text[:300]}", file=sys.stderr)
            return 1
        body = r.json()
        while (
            body.get("status") in ("IN_QUEUE", "IN_PROGRESS")
            and time.monotonic() - t0 < args.timeout
        ):
            time.sleep(2)
            url = f"{base}/status/{body['id']}"
            r = client.post(url) if args.local else client.get(url)
            body = r.json()
    status = body.get("status")
    if status != "COMPLETED":
        print(
            f"job {body.get('id')} ended {status}: {str(body.get('error'))[:500]}", file=sys.stderr
        )
        return 1
    try:
        comp = first_completion(body.get("output"))
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    choice = comp["choices"][0]
    content = (choice.get("message") or {}).get("content") or ""
    print(
        f"model: {comp.get('model')}  finish_reason: {choice.get('finish_reason')}  usage: {comp.get('usage')}"
    )
    print(
        f"delay: {body.get('delayTime')} ms  execution: {body.get('executionTime')} ms  wall: {time.monotonic() - t0:.1f}s"
    )
    print("content:", content[:800])
    if not content.strip():
        print("empty content", file=sys.stderr)
        return 1
    if not args.image and "fox" not in content.lower():
        print("warning: the test sentence was not read back", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--endpoint-id", default=os.environ.get("RUNPOD_ENDPOINT_ID", ""))
    p.add_argument(
        "--base-url", default=os.environ.get("RUNPOD_BASE_URL", "https://api.runpod.ai/v2")
    )
    p.add_argument(
        "--url", default="", help="full endpoint URL (overrides --endpoint-id/--base-url)"
    )
    p.add_argument(
        "--local",
        action="store_true",
        help="the RunPod SDK's local API server (no auth, POST /status)",
    )
    p.add_argument(
        "--model", default=os.environ.get("MODEL_NAME", ""), help="must match the served model name"
    )
    p.add_argument("--prompt", default="", help="text part of the request (model specific)")
    p.add_argument("--image", default="")
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    try:
        return run(args)
    except (httpx.HTTPError, OSError, ValueError) as exc:  # one line, never a traceback
        print(f"{type(exc).__name__}: {exc}".replace(os.environ.get("RUNPOD_API_KEY") or "\0", "***"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
