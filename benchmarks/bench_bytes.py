"""Bytes on the wire: what each shipped render spec sends per page, and what a smaller encoding
costs in accuracy.

    python benchmarks/bench_bytes.py [--quick] [--corpus DIR] [--spec-of runpod-pod-lightonocr2]

On the real pages of the corpus (``../shared/corpus/olmocr-bench-sample/pdfs``, every page of
every PDF):

1. **bytes/page per shipped profile** — each profile's render spec (``backends/*.toml``
   ``[render]`` over its dialect's defaults) rendered by ``ocrclient.pages``: mean, median and
   largest encoded page, and the upload that one page per second needs (base64, as the image
   travels inside the JSON body: bytes x 4/3 x 8).
2. **accuracy vs encoding** — the pages at one profile's geometry (``--spec-of``, default
   LightOnOCR-2's 1540 px longest side, PNG), re-encoded as JPEG (q95, q90) / WebP (q90) and as
   grayscale PNG with 256 and 16 grey levels (4 bits a pixel), each decoded to RGB as a model
   server does and read by the embedded engine (``ocrclient
   .engines``, RapidOCR, the ``local`` backend's reader).  Scored by word recall against the
   PDF's own text layer (pages without one are skipped and counted): the share of the page's
   words (lower-cased, letters and digits) the engine read, as a multiset.  Printed per
   encoding: mean bytes/page, its ratio to PNG, mean recall and its change against PNG's, and
   the pages whose recall dropped by more than 2 points.

A VLM is not RapidOCR: this measures what the encoding removes from the pixels that an OCR
engine can see, not what a given model does with them.  Not a unit test.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "olmocr-bench-sample" / "pdfs"

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def corpus_pages(corpus: Path, limit: int | None = None) -> list[tuple[Path, int]]:
    import pypdfium2 as pdfium

    out = []
    for pdf in sorted(corpus.rglob("*.pdf")):
        doc = pdfium.PdfDocument(str(pdf))
        try:
            out.extend((pdf, i) for i in range(len(doc)))
        finally:
            doc.close()
    return out[:limit] if limit else out


def text_layer(pdf: Path, index: int) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        page = doc[index]
        textpage = page.get_textpage()
        return str(textpage.get_text_range())
    finally:
        doc.close()


def words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _WORD.findall(text))


def recall(ref: Counter[str], got: Counter[str]) -> float:
    total = sum(ref.values())
    return sum(min(n, got[w]) for w, n in ref.items()) / total if total else 1.0


def profile_specs() -> list[tuple[str, Any]]:
    """(profile, render spec) of every shipped profile."""
    from ocrclient.config import resolve_config, shipped_profiles_dir
    from ocrclient.registry import load_dialect

    out = []
    for path in sorted(shipped_profiles_dir().glob("*.toml")):
        cfg = resolve_config(path.stem, model="m")
        out.append((path.stem, load_dialect(cfg).render))
    return out


def spec_label(spec: Any) -> str:
    size = f"{spec.dpi:g} dpi" if spec.dpi else f"{spec.longest_side} px"
    if spec.dpi and spec.longest_side:
        size += f" (<= {spec.longest_side} px)"
    if spec.max_pixels:
        size += f" (<= {spec.max_pixels / 1e6:.2g} MP)"
    enc = spec.format + (f" q{spec.quality}" if spec.format != "png" else "")
    return f"{size} {enc}" + (" gray" if spec.grayscale else "")


def bytes_per_profile(pages: list[tuple[Path, int]]) -> list[dict[str, Any]]:
    from ocrclient.pages import RenderPool, iter_pages

    rows = []
    by_pdf: dict[Path, list[int]] = {}
    for pdf, i in pages:
        by_pdf.setdefault(pdf, []).append(i)
    with RenderPool() as pool:
        for name, spec in profile_specs():
            sizes = []
            for pdf, idx in by_pdf.items():
                for page in iter_pages(pdf, spec, pages=idx, pool=pool):
                    if page.encoded is not None:
                        sizes.append(len(page.encoded.data))
            rows.append({
                "profile": name, "spec": spec_label(spec), "pages": len(sizes),
                "mean_kb": statistics.mean(sizes) / 1e3, "median_kb": statistics.median(sizes) / 1e3,
                "max_kb": max(sizes) / 1e3,
                "mbit_per_page_s": statistics.mean(sizes) * 4 / 3 * 8 / 1e6,
            })  # fmt: skip
    return rows


#: the encodings compared: name -> how the rendered RGB page becomes bytes
def _png(img: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _jpeg(q: int) -> Any:
    def enc(img: Any) -> bytes:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=q)
        return buf.getvalue()

    return enc


def _webp(q: int) -> Any:
    def enc(img: Any) -> bytes:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "WEBP", quality=q, method=2)
        return buf.getvalue()

    return enc


def _gray(levels: int) -> Any:
    def enc(img: Any) -> bytes:
        gray = img.convert("L")
        buf = io.BytesIO()
        if levels >= 256:
            gray.save(buf, "PNG", compress_level=1)
            return buf.getvalue()
        # `levels` evenly spaced greys in a palette: PNG stores 4 bits a pixel for 16
        step = 255 / (levels - 1)
        pal = gray.point(lambda v: round(v / step)).convert("P")
        pal.putpalette([round(i * step) for i in range(levels) for _ in range(3)])
        pal.save(buf, "PNG", bits=max(1, (levels - 1).bit_length()), compress_level=1)
        return buf.getvalue()

    return enc


def as_seen(data: bytes) -> bytes:
    """What a model server sees: the bytes decoded and made RGB (as vLLM's image loader does),
    handed to the engine losslessly (the engine would read a palette image's indices)."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.load()
    return _png(img.convert("RGB"))


ENCODINGS = {
    "png (as sent)": _png,
    "jpeg q95": _jpeg(95),
    "jpeg q90": _jpeg(90),
    "webp q90": _webp(90),
    "png gray 256": _gray(256),
    "png gray 16": _gray(16),
}


def accuracy(pages: list[tuple[Path, int]], spec: Any, limit: int | None = None) -> tuple[list[dict[str, Any]], int, int]:
    """Per encoding: mean bytes, mean recall, pages that lost > 2 points; and the pages scored
    and skipped (no text layer)."""
    from ocrclient.engines.rapidocr import EngineSettings
    from ocrclient.engines.read import read_image
    from ocrclient.pages import iter_pages

    settings = EngineSettings()
    sizes: dict[str, list[int]] = {k: [] for k in ENCODINGS}
    recalls: dict[str, list[float]] = {k: [] for k in ENCODINGS}
    skipped = 0
    for pdf, i in pages:
        if limit is not None and len(sizes["png (as sent)"]) >= limit:
            break
        ref = words(text_layer(pdf, i))
        if sum(ref.values()) < 20:
            skipped += 1
            continue
        page = next(iter(iter_pages(pdf, spec.with_(format="png", grayscale=False), pages=[i])))
        if page.encoded is None:
            skipped += 1
            continue
        img = page.encoded.decode()
        for name, enc in ENCODINGS.items():
            data = enc(img)
            sizes[name].append(len(data))
            recalls[name].append(recall(ref, words(read_image(as_seen(data), settings).text)))
        print(f"  {pdf.name} p{i + 1}: " + ", ".join(f"{k.split(' (')[0]} {recalls[k][-1]:.3f}" for k in ENCODINGS), flush=True)
    base_size, base_rec = sizes["png (as sent)"], recalls["png (as sent)"]
    rows = []
    for name in ENCODINGS:
        if not sizes[name]:
            continue
        drops = sum(1 for r, b in zip(recalls[name], base_rec, strict=True) if r < b - 0.02)
        rows.append({
            "encoding": name, "mean_kb": statistics.mean(sizes[name]) / 1e3,
            "size_ratio": statistics.mean(sizes[name]) / statistics.mean(base_size),
            "recall": statistics.mean(recalls[name]),
            "delta": statistics.mean(recalls[name]) - statistics.mean(base_rec), "drops": drops,
        })  # fmt: skip
    return rows, len(base_rec), skipped


def _table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--spec-of", default="runpod-pod-lightonocr2", help="the profile whose geometry part 2 uses")
    ap.add_argument("--quick", action="store_true", help="the first 6 pages")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--accuracy-pages", type=int, help="score at most this many pages (the engine reads each 6 times)")
    args = ap.parse_args()
    if not args.corpus.is_dir():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    pages = corpus_pages(args.corpus, 6 if args.quick else None)
    print(f"{len(pages)} pages of {len({p for p, _ in pages})} PDFs from {args.corpus}; load average {os.getloadavg()[0]:.1f}")
    t0 = time.monotonic()
    print("\nBytes per page, each shipped profile's render spec (upload per page/s: base64 in JSON)\n")
    _table(["profile", "render", "mean kB", "median kB", "max kB", "Mbit/s per page/s"],
           [[r["profile"], r["spec"], f"{r['mean_kb']:.0f}", f"{r['median_kb']:.0f}", f"{r['max_kb']:.0f}",
             f"{r['mbit_per_page_s']:.2f}"] for r in bytes_per_profile(pages)])  # fmt: skip
    if args.skip_accuracy:
        return 0
    spec = dict(profile_specs())[args.spec_of]
    print(f"\nAccuracy vs encoding at {args.spec_of}'s geometry ({spec_label(spec)}), read by the local engine\n")
    rows, scored, skipped = accuracy(pages, spec, args.accuracy_pages)
    print()
    _table(["encoding", "mean kB", "size vs PNG", "word recall", "vs PNG", "pages -2 pts"],
           [[r["encoding"], f"{r['mean_kb']:.0f}", f"{r['size_ratio']:.2f}x", f"{r['recall']:.3f}",
             f"{r['delta']:+.3f}", str(r["drops"])] for r in rows])  # fmt: skip
    print(f"\n{scored} pages scored, {skipped} skipped before the last one scored (fewer than 20 words in the "
          f"text layer); {time.monotonic() - t0:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
