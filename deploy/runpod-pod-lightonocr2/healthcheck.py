#!/usr/bin/env python3
"""Check a LightOnOCR-2 pod through the RunPod proxy: /health, /v1/models, optionally one page.

    VLLM_API_KEY=... python healthcheck.py https://<pod-id>-8000.proxy.runpod.net
    VLLM_API_KEY=... python healthcheck.py https://<pod-id>-8000.proxy.runpod.net --ocr page.png

Exit code 0 when healthy.  A 524 from the proxy means no byte came back within 100 s (a cold
server, or a request that should stream); 401 means the API key is wrong or missing.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys

import httpx


def check(base: str, api_key: str, model: str, image: str | None, timeout: float) -> int:
    base = base.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=15)) as client:
        try:
            r = client.get(f"{base}/health")
        except httpx.HTTPError as exc:
            print(f"/health: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(f"/health: HTTP {r.status_code}")
        if r.status_code != 200:
            return 1
        r = client.get(f"{base}/v1/models")
        print(f"/v1/models: HTTP {r.status_code}")
        if r.status_code == 401:
            print(
                "the API key was refused (set VLLM_API_KEY to the key the server was started with)",
                file=sys.stderr,
            )
            return 1
        if r.status_code != 200:
            return 1
        ids = [m.get("id") for m in r.json().get("data", [])]
        print("served models:", ", ".join(str(i) for i in ids))
        if model and model not in ids:
            print(f"{model} is not served", file=sys.stderr)
            return 1
        if image:
            with open(image, "rb") as fh:
                b64 = base64.b64encode(fh.read()).decode()
            mime = "image/jpeg" if image.lower().endswith((".jpg", ".jpeg")) else "image/png"
            body = {
                "model": model or ids[0],
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{b64}"}}
                        ],
                    }
                ],
                "max_tokens": 4096,
                "temperature": 0.2,
                "top_p": 0.9,
            }
            r = client.post(f"{base}/v1/chat/completions", json=body)
            print(f"/v1/chat/completions: HTTP {r.status_code}")
            if r.status_code != 200:
                print(r.text[:500], file=sys.stderr)
                return 1
            choice = r.json()["choices"][0]
            print(f"finish_reason: {choice.get('finish_reason')}")
            print((choice["message"].get("content") or "")[:800])
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="LightOnOCR-2 pod health check")
    p.add_argument("url", help="https://<pod-id>-8000.proxy.runpod.net (with or without /v1)")
    p.add_argument("--model", default=os.environ.get("MODEL_ID", "lightonai/LightOnOCR-2-1B"))
    p.add_argument("--ocr", metavar="IMAGE", help="also OCR this image")
    p.add_argument("--timeout", type=float, default=120.0)
    args = p.parse_args(argv)
    return check(args.url, os.environ.get("VLLM_API_KEY", ""), args.model, args.ocr, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
