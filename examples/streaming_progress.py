"""Stream pages as they finish, with progress events (``ocrclient.astream_pages`` + ``on_event``).

Pages come back in the order they finish, not page order; ``on_event`` sees every
``PageStarted`` / ``PageRetried`` / ``PageDone`` / ``PageFailed`` as it happens — what a progress
bar or a job queue needs.  Runs on ``runpod-olmocr``: your endpoint when ``RUNPOD_API_KEY`` and
``RUNPOD_ENDPOINT_ID`` are set, else ``ocrclient.testing.RunPodSimulator`` with uneven page
latencies and one truncated reply (retried).

Usage::

    python examples/streaming_progress.py [INPUT] [--pages 1-4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ocrclient
from ocrclient.errors import OcrError
from ocrclient.scheduler import Event, PageDone, PageFailed, PageRetried, PageStarted
from ocrclient.testing import FaultPlan, RunPodSimulator
from ocrclient.testing.responders import DialectResponder

SAMPLE = Path(__file__).resolve().parent / "sample.pdf"
BACKEND = "runpod-olmocr"


@contextlib.contextmanager
def target() -> Iterator[dict[str, Any]]:
    """Overrides for ``astream_pages`` — your endpoint when configured, else a simulator."""
    endpoint = os.environ.get("RUNPOD_OLMOCR_ENDPOINT_ID") or os.environ.get("RUNPOD_ENDPOINT_ID")
    if os.environ.get("RUNPOD_API_KEY") and endpoint:
        print(f"target: RunPod cloud (endpoint {endpoint})")
        yield {}
        return
    plan = FaultPlan(seed=2, rates={"length": 0.2}, latency_s=(0.05, 1.0), slots=4, max_faults_per_key=1)
    with RunPodSimulator(plan=plan, responder=DialectResponder("olmocr")) as sim:
        print(f"target: simulator (RunPodSimulator at {sim.base_url}); "
              "set RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID to use your endpoint")
        yield {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key,
               "transport_options": {"poll_interval_s": 0.05}}


async def run(path: str, pages: str | None, overrides: dict[str, Any]) -> int:
    t0 = time.monotonic()

    def on_event(event: Event) -> None:
        at = f"[{time.monotonic() - t0:5.2f} s]"
        if isinstance(event, PageStarted):
            print(f"{at} event: page {event.page} started (attempt {event.attempt})")
        elif isinstance(event, PageRetried):
            print(f"{at} event: page {event.page} retried after {event.cause} ({event.delay_s:.1f} s)")
        elif isinstance(event, PageDone):
            print(f"{at} event: page {event.page} done: {event.status}")
        elif isinstance(event, PageFailed):
            print(f"{at} event: page {event.page} failed: {event.error.message}")

    order, failed = [], 0
    async for page in ocrclient.astream_pages(path, backend=BACKEND, pages=pages, cache=False,
                                              on_event=on_event, **overrides):
        order.append(page.page)
        failed += page.status == "failed"
        print(f"[{time.monotonic() - t0:5.2f} s] page {page.page} arrived: {page.status}, "
              f"{len(page.markdown)} chars of markdown")
    print(f"arrival order: {order}")
    print(f"done: {len(order)} pages, {len(order) - failed} ok, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", default=str(SAMPLE), help="PDF or image (default: examples/sample.pdf)")
    parser.add_argument("--pages", default=None, help="page range, e.g. 1-3,7 (default: all)")
    args = parser.parse_args(argv)
    with target() as overrides:
        try:
            return asyncio.run(run(args.input, args.pages, overrides))
        except OcrError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # (so that importing this file runs nothing; no guard is needed to render)
    sys.exit(main())
