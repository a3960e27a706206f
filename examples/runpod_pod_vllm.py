"""OCR a document with LightOnOCR-2 served by ``vllm serve`` on a RunPod GPU pod
(backend ``runpod-pod-lightonocr2``, OpenAI API through the RunPod pod proxy).

With ``RUNPOD_POD_BASE_URL`` set to
``https://<pod-id>-8000.proxy.runpod.net/v1`` it talks to your pod (the key in ``VLLM_API_KEY``,
as on the pod; see deploy/runpod-pod-lightonocr2/).  Without it, it starts
``ocrclient.testing.OpenAISimulator(mode="proxy")``: a vLLM server behind a simulated pod proxy
that answers 524 when no byte flows for ``proxy_idle_s`` — here 0.6 s instead of RunPod's 100 s,
with replies that take up to 0.9 s.  The backend streams its replies, so none is cut.

Usage::

    python examples/runpod_pod_vllm.py [INPUT] [--pages 1-3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ocrclient
from ocrclient.errors import OcrError
from ocrclient.testing import FaultPlan, OpenAISimulator
from ocrclient.testing.responders import DialectResponder

SAMPLE = Path(__file__).resolve().parent / "sample.pdf"
BACKEND = "runpod-pod-lightonocr2"


@contextlib.contextmanager
def target() -> Iterator[tuple[dict[str, Any], OpenAISimulator | None]]:
    """(overrides for ``convert``, the simulator or None) — your pod when configured."""
    url = os.environ.get("RUNPOD_POD_BASE_URL")  # (its key goes only to its own server: not OCRCLIENT_BASE_URL)
    if url:
        print(f"target: RunPod pod ({url})")
        yield {"base_url": url}, None
        return
    plan = FaultPlan(seed=1, latency_s=(0.2, 0.9), slots=4)
    with OpenAISimulator(mode="proxy", proxy_idle_s=0.6, plan=plan, responder=DialectResponder("lighton"),
                         model="lightonai/LightOnOCR-2-1B") as sim:
        print(f"target: simulator (OpenAISimulator mode=proxy at {sim.base_url}); "
              "set RUNPOD_POD_BASE_URL to use your pod")
        yield {"base_url": sim.base_url, "api_key": sim.api_key}, sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", default=str(SAMPLE), help="PDF or image (default: examples/sample.pdf)")
    parser.add_argument("--pages", default=None, help="page range, e.g. 1-3,7 (default: all)")
    args = parser.parse_args(argv)

    with target() as (overrides, sim):
        try:
            doc = ocrclient.convert(args.input, backend=BACKEND, pages=args.pages, cache=False, **overrides)
        except OcrError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for page in doc.pages:
            print(f"page {page.page}: {page.status}, {len(page.blocks)} blocks, {page.attempts} attempt(s), "
                  f"{page.latency_s or 0:.1f} s" + (f" - {page.error.message}" if page.error else ""))
        if sim is not None:
            print(f"simulator: {sim.streamed} streamed replies, {sim.proxy_524s} proxy 524s, "
                  f"{sim.proxy_cuts} cut streams")
    failed = sum(p.status == "failed" for p in doc.pages)
    print(f"done: {len(doc.pages)} pages, {len(doc.pages) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":  # (so that importing this file runs nothing; no guard is needed to render)
    sys.exit(main())
