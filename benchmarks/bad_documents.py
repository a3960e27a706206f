"""Bad and real documents through ``ocr convert`` with the default local engine.

    python benchmarks/bad_documents.py [--slice 50] [--dpi 150] [--skip-corpus] [--skip-bad]

Three parts, each ``ocr convert`` run as its own subprocess (what a user runs), with no cache:

1. **Corpus** — every PDF under ``../shared/corpus`` (``gnarly/`` and
   ``olmocr-bench-sample/pdfs/`` including ``headers_footers/``), converted fully.  Per file:
   pages, ok / degraded / failed counts, exit code, seconds, peak RSS.
2. **Bad documents** — the generated corruptions of ``tests/test_bad_inputs.py`` (truncated and
   bit-flipped PDFs, encrypted ones, zero pages, 0x0 and 20000x20000 pt pages, bogus images, a
   decompression bomb, a text file named .pdf, an empty file...).  Per case: exit code, stderr
   line count, pages.
3. **10,000 pages** — a generated 10,000-page PDF (one shared content stream): a ``--slice``-page
   and a 10-page slice are converted, with peak RSS for both (bounded streaming means they match).

The last line is ``N files, M pages, T tracebacks`` and the peak RSS.  Peak RSS is measured two
ways: the CLI process's own ``ru_maxrss`` (``wait4``) and the sampled sum over its whole process
tree (render workers are children of the fork server, so ``RUSAGE_CHILDREN`` would miss them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _procfs import tree_kb  # noqa: E402
from tests.test_bad_inputs import (  # noqa: E402
    CORPUS,
    CORPUS_PDFS,
    bad_png_header,
    build_pdf,
    flip_xref,
    jpeg_bytes,
    many_pages_pdf,
    png_bomb,
)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    seconds: float
    maxrss_mb: float
    tree_mb: float


def run_cli(args: list[str], timeout: float = 3600) -> Result:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocrclient.cli", *args], stdout=out, stderr=err, env=env
        )
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                peak[0] = max(peak[0], tree_kb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - t0
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Result(
            proc.returncode, out.read(), err.read(), seconds, usage.ru_maxrss / 1024, peak[0] / 1024
        )


def convert(inputs: list[str], out: Path, *extra: str) -> Result:
    return run_cli(
        ["convert", *inputs, "-o", str(out), "--no-progress", "--no-cache", "--json", *extra]
    )


def _summary(res: Result) -> dict[str, int]:
    counts = {"pages": 0, "ok": 0, "degraded": 0, "failed": 0}
    if res.code in (0, 1) and res.stdout.strip():
        data = json.loads(res.stdout)
        for d in data["documents"]:
            for k in counts:
                counts[k] += int(d[k])
    return counts


def _bad_cases(tmp: Path) -> dict[str, list[str]]:
    good = build_pdf([(612, 792)] * 3)
    xref = good.rindex(b"xref\n")
    jpg = jpeg_bytes()
    files: dict[str, tuple[str, bytes]] = {
        "truncated 10%": ("t10.pdf", good[: len(good) // 10]),
        "truncated 50%": ("t50.pdf", good[: len(good) // 2]),
        "truncated before xref": ("txref.pdf", good[:xref]),
        "truncated before %%EOF": ("teof.pdf", good[:-7]),
        "bit-flipped xref": ("flip.pdf", flip_xref(good)),
        "encrypted, no password": ("enc.pdf", build_pdf([(612, 792)], user_password="pw")),
        "zero pages": ("zero.pdf", build_pdf([])),
        "0x0 and 20000x20000 pt pages": ("sizes.pdf", build_pdf([(0, 0), (20000, 20000)])),
        "PNG magic + garbage": ("bogus.png", bad_png_header()),
        "truncated JPEG": ("cut.jpg", jpg[: len(jpg) // 2]),
        "PNG decompression bomb": ("bomb.png", png_bomb()),
        "text named .pdf": ("text.pdf", b"just text\n" * 50),
        "empty file": ("empty.pdf", b""),
    }
    cases: dict[str, list[str]] = {}
    for name, (fn, data) in files.items():
        (tmp / fn).write_bytes(data)
        cases[name] = [str(tmp / fn)]
    cases["encrypted, wrong password"] = [str(tmp / "enc.pdf"), "--password", "nope"]
    (tmp / "nodocs").mkdir()
    (tmp / "nodocs" / "readme.txt").write_text("nothing")
    cases["directory with no documents"] = [str(tmp / "nodocs")]
    cases["glob matching nothing"] = [str(tmp / "*.none")]
    (tmp / "three.pdf").write_bytes(good)
    cases["page range outside"] = [str(tmp / "three.pdf"), "--pages", "99"]
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slice", type=int, default=50, help="pages of the 10,000-page PDF to convert")
    ap.add_argument("--dpi", type=float, default=None, help="render dpi (default: the backend's)")
    ap.add_argument("--skip-corpus", action="store_true")
    ap.add_argument("--skip-bad", action="store_true")
    args = ap.parse_args()
    extra = ["--dpi", f"{args.dpi:g}"] if args.dpi else []
    files = pages = tracebacks = 0
    peak_main = peak_tree = 0.0
    with tempfile.TemporaryDirectory(prefix="ocr-bad-") as tmpdir:
        tmp = Path(tmpdir)

        def account(res: Result, n_pages: int) -> None:
            nonlocal files, pages, tracebacks, peak_main, peak_tree
            files += 1
            pages += n_pages
            tracebacks += res.stderr.count("Traceback")
            peak_main = max(peak_main, res.maxrss_mb)
            peak_tree = max(peak_tree, res.tree_mb)

        if not args.skip_corpus:
            print(f"# corpus: {len(CORPUS_PDFS)} PDFs under {CORPUS}")
            print(
                f"{'file':52} {'pages':>5} {'ok':>4} {'degr':>4} {'fail':>4} {'exit':>4} {'sec':>7} {'rss MB':>7} {'tree MB':>7}"
            )
            for i, pdf in enumerate(CORPUS_PDFS):
                res = convert([str(pdf)], tmp / f"corpus{i}", *extra)
                s = _summary(res)
                account(res, s["pages"])
                name = str(pdf.relative_to(CORPUS))
                print(
                    f"{name[-52:]:52} {s['pages']:5d} {s['ok']:4d} {s['degraded']:4d} {s['failed']:4d} "
                    f"{res.code:4d} {res.seconds:7.1f} {res.maxrss_mb:7.0f} {res.tree_mb:7.0f}",
                    flush=True,
                )
                if res.code not in (0, 1):
                    print(f"    stderr: {res.stderr.strip()}")
        if not args.skip_bad:
            bad = tmp / "bad"
            bad.mkdir()
            print("\n# generated bad documents")
            print(
                f"{'case':36} {'exit':>4} {'lines':>5} {'pages':>5} {'fail':>4} {'sec':>6}  stderr (last line)"
            )
            for name, argv in _bad_cases(bad).items():
                res = convert(argv, tmp / "badout", *extra)
                s = _summary(res)
                account(res, s["pages"])
                lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
                shown = lines[-1] if res.code == 2 and lines else ""
                print(
                    f"{name:36} {res.code:4d} {len(lines) if res.code == 2 else '-':>5} {s['pages']:5d} {s['failed']:4d} {res.seconds:6.1f}  {shown[:90]}",
                    flush=True,
                )
        big = tmp / "big10000.pdf"
        big.write_bytes(many_pages_pdf(10_000))
        print(f"\n# 10,000-page PDF ({big.stat().st_size / 1e6:.2f} MB, one shared content stream)")
        for n in sorted({10, args.slice}):
            res = convert([str(big)], tmp / f"big{n}", "--pages", f"1-{n}", *extra)
            s = _summary(res)
            account(res, s["pages"])
            rate = s["pages"] / res.seconds if res.seconds else 0.0
            print(
                f"slice 1-{n}: exit {res.code}, {s['pages']} pages ({s['ok']} ok, {s['failed']} failed) in "
                f"{res.seconds:.1f}s ({rate:.2f} pages/s), peak RSS {res.maxrss_mb:.0f} MB (CLI) / "
                f"{res.tree_mb:.0f} MB (process tree)",
                flush=True,
            )
    print(f"\n{files} files, {pages} pages, {tracebacks} tracebacks")
    print(
        f"peak RSS: {peak_main:.0f} MB (CLI process), {peak_tree:.0f} MB (CLI + render workers, sampled)"
    )
    return 1 if tracebacks else 0


if __name__ == "__main__":
    raise SystemExit(main())
