"""Convert a folder of documents with ``ocrclient.aconvert_many`` and resume from the page cache.

Every finished page is stored in a content-addressed cache (key: the page image sent, the
model, the render and sampling settings — never the file name).  Running the same batch again
sends nothing: every page comes from the cache.  This script runs the batch twice and prints how
many requests each run sent.

Runs on ``runpod-olmocr``: your endpoint when ``RUNPOD_API_KEY`` and ``RUNPOD_ENDPOINT_ID`` are
set, else ``ocrclient.testing.RunPodSimulator`` (whose own request counter is printed too).

Usage::

    python examples/batch_resume.py [FOLDER] [--cache-dir DIR]

Without FOLDER it builds a small one in a temporary directory (examples/sample.pdf and a PNG of
its first page); without ``--cache-dir`` the cache is a temporary directory too (the default of
``convert`` / ``ocr convert`` is ``~/.cache/ocrclient``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ocrclient
from ocrclient.errors import OcrError
from ocrclient.scheduler import Event, PageDone, PageStarted
from ocrclient.testing import FaultPlan, RunPodSimulator
from ocrclient.testing.responders import DialectResponder

SAMPLE = Path(__file__).resolve().parent / "sample.pdf"
BACKEND = "runpod-olmocr"


def make_folder(folder: Path) -> Path:
    """A small batch: the sample PDF and a PNG image of its first page."""
    import pypdfium2 as pdfium

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLE, folder / "sample.pdf")
    pdf = pdfium.PdfDocument(str(SAMPLE))
    try:
        pdf[0].render(scale=100 / 72).to_pil().save(folder / "sample-page1.png")
    finally:
        pdf.close()
    return folder


@contextlib.contextmanager
def target() -> Iterator[tuple[dict[str, Any], RunPodSimulator | None]]:
    """(overrides for ``aconvert_many``, the simulator or None)."""
    endpoint = os.environ.get("RUNPOD_OLMOCR_ENDPOINT_ID") or os.environ.get("RUNPOD_ENDPOINT_ID")
    if os.environ.get("RUNPOD_API_KEY") and endpoint:
        print(f"target: RunPod cloud (endpoint {endpoint})")
        yield {}, None
        return
    with RunPodSimulator(plan=FaultPlan(seed=0, latency_s=(0.05, 0.2), slots=4),
                         responder=DialectResponder("olmocr")) as sim:
        print(f"target: simulator (RunPodSimulator at {sim.base_url}); "
              "set RUNPOD_API_KEY and RUNPOD_ENDPOINT_ID to use your endpoint")
        yield {"base_url": sim.base_url, "endpoint_id": sim.endpoint_id, "api_key": sim.api_key,
               "transport_options": {"poll_interval_s": 0.05}}, sim


async def run_batch(folder: Path, cache_dir: Path, overrides: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(documents, pages, failed pages, requests sent, pages served from the cache)."""
    sent = cached = 0

    def on_event(event: Event) -> None:
        nonlocal sent, cached
        if isinstance(event, PageStarted):
            sent += 1  # one request per attempt
        elif isinstance(event, PageDone) and event.cached:
            cached += 1

    docs = pages = failed = 0
    async for result in ocrclient.aconvert_many([folder], backend=BACKEND, cache=cache_dir,
                                                on_event=on_event, **overrides):
        docs += 1
        pages += len(result.document.pages)
        failed += sum(p.status == "failed" for p in result.document.pages)
        statuses = ", ".join(p.status for p in result.document.pages)
        print(f"  {Path(result.source.name).name}: {len(result.document.pages)} pages ({statuses})")
    return docs, pages, failed, sent, cached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=None, help="folder of PDFs / images (default: a small demo folder)")
    parser.add_argument("--cache-dir", default=None, help="page cache directory (default: a temporary one)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ocr-batch-") as tmp:
        folder = Path(args.folder) if args.folder else make_folder(Path(tmp) / "batch")
        cache_dir = Path(args.cache_dir) if args.cache_dir else Path(tmp) / "cache"
        failed = 0
        with target() as (overrides, sim):
            for run in (1, 2):
                before = sim.jobs_submitted if sim is not None else 0
                print(f"run {run}:")
                try:
                    docs, pages, failed, sent, cached = asyncio.run(run_batch(folder, cache_dir, overrides))
                except OcrError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                line = (f"run {run}: {docs} documents, {pages} pages ({failed} failed), {sent} requests sent, "
                        f"{cached} pages from cache")
                if sim is not None:
                    line += f" (simulator received {sim.jobs_submitted - before} jobs)"
                print(line)
    return 1 if failed else 0


if __name__ == "__main__":  # (so that importing this file runs nothing; no guard is needed to render)
    sys.exit(main())
