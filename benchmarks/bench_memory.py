"""Peak memory of ``ocr convert`` with its defaults over a long document with word boxes.

    python benchmarks/bench_memory.py [--quick] [--pages 50,250] [--repeat 1]

A generated text-layer PDF (``bench_render.make_text_pdf``: ~70 lines of ~17 words a page)
converted by ``ocr convert FILE -o OUT`` with nothing else set: the default backend (``local``)
reads each page's text layer, so every word is a block with its box, and the default outputs
(markdown + JSON) are written.  A fresh cache and config directory for every run (so nothing is
served from an earlier run) and a fresh process, whose peak is its own ``VmHWM`` plus the peak
of every process under it, sampled from ``/proc`` (``bench_scheduler.rss_child``).

* **ours** -- the CLI as shipped: each word's block made by ``Block.built`` (no second
  validation, one shared set of set fields), the JSON written page by page
  (``exporters/jsonout.py``), and lean outputs (``OutputWriter(lean=True)``): each page's
  pieces of the JSON and the markdown spilled to a file beside the outputs as it finishes, and
  its blocks let go of (``exporters/spill.py``);
* **blocks kept** -- the same CLI with ``lean=False``: every page keeps its blocks until the
  document is written (the CLI before session 28);
* **JSON at once** -- blocks kept, and the JSON dumped as one string first
  (``doc.model_dump_json(indent=2)``, the same bytes);
* **before** -- the baseline, as it was before session 26: blocks kept, every block validated
  (``Block(**values)``) and the JSON dumped at once.

All four in the same run, interleaved.  Printed: peak MB of each at both sizes, MB per page
between the sizes, and the judged ratio ours / before at the larger size (target <= 0.75x).
The runs' outputs must be the same (every page's markdown and blocks; the timings aside).
What still grows with the page count in ours is what the document keeps of each page without
its blocks (its markdown, status, usage) and the files written.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TARGET = 0.75
MODES = ("ours", "blocks kept", "JSON at once", "before")


def child(mode: str, argv: list[str]) -> None:
    """Run ``ocr convert argv`` here, the ``mode`` way; print the peaks."""
    if mode != "ours":
        from ocrclient.exporters.sink import OutputWriter

        init = OutputWriter.__init__

        def kept(self: OutputWriter, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **{**kwargs, "lean": False})

        OutputWriter.__init__ = kept  # type: ignore[method-assign]
    if mode in ("JSON at once", "before"):
        from ocrclient.exporters import _io, jsonout

        def at_once(doc: Any, path: Path) -> Path:
            return _io.atomic_write(path, doc.model_dump_json(indent=2) + "\n")

        jsonout.write = at_once  # type: ignore[assignment]
    if mode == "before":
        from ocrclient.document import Block

        def validated(cls: type[Block], **values: Any) -> Block:
            return cls(**values)

        Block.built = classmethod(validated)  # type: ignore[assignment,method-assign]
    from bench_scheduler import rss_child

    rss_child(argv)


def measure(mode: str, pdf: Path, pages: int, work: Path) -> dict[str, Any]:
    run = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    env = {**os.environ, "OCRCLIENT_CACHE_DIR": str(run / "cache"), "OCRCLIENT_CONFIG_DIR": str(run / "config")}
    for name in ("OCRCLIENT_BACKEND", "OCRCLIENT_PROFILE"):
        env.pop(name, None)
    argv = [str(pdf), "-o", str(run / "out"), "--pages", f"1-{pages}", "--quiet", "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(argv)],
                          env=env, capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"{mode} at {pages} pages failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    if r["code"] != 0:
        raise RuntimeError(f"{mode} at {pages} pages: ocr convert exited {r['code']}")
    doc = json.loads((run / "out" / f"{pdf.stem}.json").read_text())
    words = sum(len(line["children"]) for p in doc["pages"] for b in p["blocks"] for line in b["children"])
    ok = sum(p["status"] == "ok" for p in doc["pages"])
    json_mb = (run / "out" / f"{pdf.stem}.json").stat().st_size / 2**20
    content = [(p["page"], p["status"], p["markdown"], p["blocks"]) for p in doc["pages"]]
    return {"mb": (r["self_kb"] + r["children_kb"]) / 1024, "ok": ok, "words": words, "json_mb": json_mb,
            "wall_s": wall, "content": content}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 and 100 pages")
    ap.add_argument("--pages", default=None, help="the two sizes, e.g. 50,250 (the full run's)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each (mode, size); the lowest peak kept")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], json.loads(args.child[1]))
        return 0
    small, big = (int(n) for n in (args.pages or ("20,100" if args.quick else "50,250")).split(","))
    from bench_render import make_text_pdf

    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        pdf = work / "long.pdf"
        pdf.write_bytes(make_text_pdf(big))
        peaks: dict[tuple[str, int], dict[str, Any]] = {}
        for _ in range(max(1, args.repeat)):
            for pages in (small, big):
                for mode in MODES:  # (interleaved: a slow minute of the machine hits every mode)
                    r = measure(mode, pdf, pages, work)
                    if r["ok"] != pages:
                        raise RuntimeError(f"{mode}: {r['ok']} of {pages} pages ok")
                    first = peaks.get((MODES[0], pages))
                    if first is not None and r["content"] != first["content"]:
                        raise RuntimeError(f"{mode}: the output differs from {MODES[0]}'s at {pages} pages")
                    key = (mode, pages)
                    if key not in peaks or r["mb"] < peaks[key]["mb"]:
                        peaks[key] = r
    print(f"ocr convert with its defaults (local backend, md + json), a text-layer PDF, "
          f"{peaks[('ours', big)]['words'] // big} words a page")  # fmt: skip
    print(f"{'mode':<14}{'pages':>7}{'peak RSS':>11}{'JSON':>10}{'wall':>9}")
    for (mode, pages), r in sorted(peaks.items(), key=lambda kv: (kv[0][1], MODES.index(kv[0][0]))):
        print(f"{mode:<14}{pages:>7}{r['mb']:>8.0f} MB{r['json_mb']:>7.1f} MB{r['wall_s']:>7.1f} s")
    for mode in MODES:
        slope = (peaks[(mode, big)]["mb"] - peaks[(mode, small)]["mb"]) / (big - small)
        print(f"{mode}: {slope:.2f} MB a page between {small} and {big} pages")
    ratio = peaks[("ours", big)]["mb"] / peaks[("before", big)]["mb"]
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print()
    print(f"{'figure':<44}  {'measured':>8}  {'target':<9}  result")
    print(f"{f'peak RSS of ocr convert, ours / before, {big} pages':<44}  {ratio:>7.2f}x  <= {TARGET}x    {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
