"""OCR text lines with TrOCR behind the OLM / RoLM "ocular" HTTP contract (backend ``runpod-trocr``).

The ``runpod-trocr`` profile sends ocular bodies (``{"image": <base64>, ...}`` for
``/extract_text``) as RunPod serverless jobs.  The same FastAPI app also runs as plain HTTP
(deploy/runpod-trocr/app.py); for that, override the profile's transport — in Python
``transport="ocular", base_url=URL``, on the command line ``--transport ocular --base-url URL``.

* ``RUNPOD_API_KEY`` + ``RUNPOD_TROCR_ENDPOINT_ID`` (or ``RUNPOD_ENDPOINT_ID``) set: your RunPod endpoint;
* else ``OCRCLIENT_BASE_URL`` set: your plain-HTTP deployment, with the ocular transport;
* else: ``ocrclient.testing.OcularSimulator`` on 127.0.0.1, with the ocular transport.

Usage::

    python examples/ocular_trocr.py [INPUT] [--pages 1]
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
from ocrclient.testing import FaultPlan, OcularSimulator
from ocrclient.testing.responders import DialectResponder

SAMPLE = Path(__file__).resolve().parent / "sample.pdf"
BACKEND = "runpod-trocr"


@contextlib.contextmanager
def target() -> Iterator[tuple[dict[str, Any], OcularSimulator | None]]:
    """(overrides for ``convert``, the simulator or None) — your deployment when configured."""
    endpoint = os.environ.get("RUNPOD_TROCR_ENDPOINT_ID") or os.environ.get("RUNPOD_ENDPOINT_ID")
    if os.environ.get("RUNPOD_API_KEY") and endpoint:
        print(f"target: RunPod cloud (endpoint {endpoint}, runpod transport)")
        yield {}, None
        return
    if url := os.environ.get("OCRCLIENT_BASE_URL"):
        print(f"target: ocular HTTP server ({url}, ocular transport)")
        yield {"transport": "ocular", "base_url": url}, None
        return
    plan = FaultPlan(seed=0, latency_s=(0.05, 0.2), slots=2)
    responder = DialectResponder("trocr", confidence=0.91)  # answers text + confidence
    with OcularSimulator(plan=plan, responder=responder, api_key="ocular-sim-key") as sim:
        print(f"target: simulator (OcularSimulator at {sim.url}, ocular transport); "
              "set RUNPOD_API_KEY + RUNPOD_ENDPOINT_ID or OCRCLIENT_BASE_URL to use your server")
        yield {"transport": "ocular", "base_url": sim.url, "api_key": sim.api_key}, sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", default=str(SAMPLE), help="PDF or image (default: examples/sample.pdf)")
    parser.add_argument("--pages", default="1-2", help="page range (default: 1-2)")
    args = parser.parse_args(argv)

    with target() as (overrides, sim):
        try:
            doc = ocrclient.convert(args.input, backend=BACKEND, pages=args.pages, cache=False, **overrides)
        except OcrError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for page in doc.pages:
            conf = [b.confidence for b in page.blocks if b.confidence is not None]
            shown = f", confidence {conf[0]:.2f}" if conf else ""
            print(f"page {page.page}: {page.status}, {len(page.blocks)} blocks{shown}: {page.markdown[:60]!r}"
                  + (f" - {page.error.message}" if page.error else ""))
        if sim is not None:
            print(f"simulator: {sim.requests['POST /extract_text']} POST /extract_text requests")
    failed = sum(p.status == "failed" for p in doc.pages)
    print(f"done: {len(doc.pages)} pages, {len(doc.pages) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":  # (so that importing this file runs nothing; no guard is needed to render)
    sys.exit(main())
