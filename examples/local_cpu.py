"""Convert a document with the embedded CPU engine (backend ``local``, RapidOCR): no GPU, no network.

Usage::

    python examples/local_cpu.py                   # examples/sample.pdf, page 1
    python examples/local_cpu.py scan.png --pages 1-2

Prints each page's status, then its layout blocks with their boxes in PDF points (top-left
origin, the page as displayed).  There is no cloud to choose here: the ``local`` backend always
runs in this process, which is why this example needs no simulator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ocrclient
from ocrclient.errors import OcrError

SAMPLE = Path(__file__).resolve().parent / "sample.pdf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", default=str(SAMPLE), help="PDF or image (default: examples/sample.pdf)")
    parser.add_argument("--pages", default="1", help="page range, e.g. 1-3,7 (default: 1)")
    args = parser.parse_args(argv)

    print("target: local (embedded RapidOCR on CPU, in this process)")
    try:
        # cache=False: always run the engine, so the timing below is real
        doc = ocrclient.convert(args.input, backend="local", pages=args.pages, cache=False)
    except OcrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    for page in doc.pages:
        print(f"page {page.page}: {page.status}, {len(page.blocks)} blocks, "
              f"{page.width:g} x {page.height:g} pt, {page.latency_s or 0:.1f} s")
        for block in page.blocks[:6]:
            bbox = ", ".join(f"{v:.0f}" for v in block.bbox) if block.bbox else "-"
            print(f"  {block.type:<8} [{bbox}]  {block.text[:50]}")
    failed = sum(p.status == "failed" for p in doc.pages)
    print(f"done: {len(doc.pages)} pages, {len(doc.pages) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":  # (so that importing this file runs nothing; no guard is needed to render)
    sys.exit(main())
