"""OCR a document with LightOnOCR served by vLLM inside a Modal app (backend ``modal-lightonocr``).

With ``MODAL_LIGHTONOCR_URL`` set to your app's URL
(``https://<workspace>--lighton-ocr-vllm-serve.modal.run/v1``) and, when the endpoint requires
proxy auth, ``MODAL_KEY`` / ``MODAL_SECRET``, it talks to Modal (see deploy/modal-lightonocr/).
Without a URL it starts ``ocrclient.testing.OpenAISimulator(mode="modal")``: proxy auth (401
without the right ``Modal-Key`` / ``Modal-Secret``) and the 303 redirect to a result URL that
Modal sends when a request runs longer than 150 s — here after 0.3 s, with non-streamed replies
that take up to 0.8 s, so some pages come back through the redirect.

Usage::

    python examples/modal_endpoint.py [INPUT] [--pages 1-3]
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
BACKEND = "modal-lightonocr"


@contextlib.contextmanager
def target() -> Iterator[tuple[dict[str, Any], OpenAISimulator | None]]:
    """(overrides for ``convert``, the simulator or None) — your Modal app when configured."""
    url = os.environ.get("MODAL_LIGHTONOCR_URL")  # (its key goes only to its own server: not OCRCLIENT_BASE_URL)
    if url:
        auth = "with" if os.environ.get("MODAL_KEY") and os.environ.get("MODAL_SECRET") else "without"
        print(f"target: Modal ({url}, {auth} proxy auth)")
        yield {"base_url": url}, None
        return
    plan = FaultPlan(seed=1, latency_s=(0.1, 0.8), slots=8)
    with OpenAISimulator(mode="modal", modal_redirect_after_s=0.3, plan=plan,
                         responder=DialectResponder("lighton"), model="lightonai/LightOnOCR-1B-1025") as sim:
        print(f"target: simulator (OpenAISimulator mode=modal at {sim.base_url}); "
              "set MODAL_LIGHTONOCR_URL (+ MODAL_KEY / MODAL_SECRET) to use your app")
        # the transport reads the proxy-auth pair from the environment, as it would for Modal
        os.environ["MODAL_KEY"] = sim.modal_headers["Modal-Key"]
        os.environ["MODAL_SECRET"] = sim.modal_headers["Modal-Secret"]
        # stream=False: a streamed reply starts at once and never gets the 303
        yield {"base_url": sim.base_url, "transport_options": {"stream": False}}, sim


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
            print(f"simulator: {sim.redirects} replies fetched through a 303 redirect, "
                  f"{sim.statuses.get(401, 0)} unauthorized")
    failed = sum(p.status == "failed" for p in doc.pages)
    print(f"done: {len(doc.pages)} pages, {len(doc.pages) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":  # (so that importing this file runs nothing; no guard is needed to render)
    sys.exit(main())
