"""The tail of a run: from the last page done to the last output written.

    python benchmarks/bench_outputs.py [--quick] [--pages 64] [--slots 8] [--service-s 1.5]

A real conversion (render pool -> chandra dialect -> scheduler -> OpenAI transport -> HTTP) of a
generated ``--pages``-page text PDF against the OpenAI simulator, served from its own process
(:class:`SimHost`: in the client's process its HTTP threads would compete for the GIL), whose
simulated Chandra model puts one figure on every page, so the markdown has a figure crop per
page.  ``--slots`` GPU slots, ``--service-s`` per page, ``--concurrency`` = slots; the render is
the ``runpod-chandra`` profile's (192 dpi PNG).

* **new** — the run writes its outputs (:class:`~ocrclient.exporters.sink.OutputWriter`): figure
  crops cut from the run's own page images as each page finishes, the small files when the
  document is done.  Measured: the last ``PageDone`` -> the conversion returned with every file
  written (also checked against the newest file's mtime).
* **old** — in the same run, the same Document written afterwards the way every writer did
  before: :func:`~ocrclient.exporters.write_outputs`, which opens the input again and re-renders
  every page with a figure at ``FIGURE_DPI``.  It started when the last page was done, so its
  duration is that way's tail.

Both with the default outputs (``md`` + ``json``; the judged figure, target <= 0.5 s), and, as
``info`` rows, with every format (``md,json,txt,html,pdf``).  The two ways' markdown must be the
same text (crop links included) and name the same crops.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bench_scheduler import make_pdf  # noqa: E402

MODEL = "datalab-to/chandra"
RENDER = {"dpi": 192, "format": "png"}  # the runpod-chandra profile's
TARGET_S = 0.5
FIGURE_BOX = (0.15, 0.35, 0.85, 0.65)


def _truth(image: Any) -> list[tuple[str, str, tuple[float, float, float, float]]]:
    return [
        ("section_header", f"Page {image.digest[:8]}", (0.1, 0.05, 0.9, 0.1)),
        ("text", "Text before the figure on this page.", (0.1, 0.15, 0.9, 0.3)),
        ("figure", "A chart", FIGURE_BOX),
        ("caption", "Figure: a chart of the page", (0.15, 0.66, 0.85, 0.7)),
        ("text", "Text after the figure.", (0.1, 0.75, 0.9, 0.9)),
    ]


def _serve(plan_kw: dict[str, Any], conn: Any) -> None:
    from ocrclient.testing import DialectResponder, FaultPlan, OpenAISimulator

    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the stdlib server prints client hang-ups
    sim = OpenAISimulator(plan=FaultPlan(**plan_kw), responder=DialectResponder("chandra", truth=_truth), model=MODEL)
    sim.start()
    conn.send({"base_url": sim.base_url, "api_key": sim.api_key})
    conn.recv()
    sim.stop()


class Sim:
    """The simulated Chandra endpoint in a child process."""

    def __init__(self, slots: int, service_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=({"slots": slots, "latency_s": (service_s, service_s)}, child), daemon=True)
        self._proc.start()
        info = self._conn.recv()
        self.base_url: str = info["base_url"]
        self.api_key: str = info["api_key"]

    def __enter__(self) -> Sim:
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()


def run_once(sim: Sim, pdf: Path, out: Path, formats: list[str], concurrency: int) -> dict[str, Any]:
    """One conversion writing ``formats`` as it goes, then the old way into ``out/old``."""
    from ocrclient.api import aconvert
    from ocrclient.exporters import write_outputs
    from ocrclient.exporters.sink import OutputWriter
    from ocrclient.registry import load_backend
    from ocrclient.scheduler import PageDone

    done: list[tuple[float, float]] = []

    def on_event(event: object) -> None:
        if isinstance(event, PageDone):
            done.append((time.perf_counter(), time.time()))

    be = load_backend("openai", base_url=sim.base_url, api_key=sim.api_key, model=MODEL, dialect="chandra",
                      render=RENDER, concurrency=concurrency, cold_start_s=0)  # fmt: skip

    async def convert(writer: OutputWriter) -> Any:
        try:
            return await aconvert(str(pdf), backend=be, cache=False, concurrency=concurrency, on_event=on_event, outputs=writer)
        finally:
            await be.aclose()

    new_dir, old_dir = out / "new", out / "old"
    t0 = time.perf_counter()
    with OutputWriter(new_dir, formats) as writer:
        doc = asyncio.run(convert(writer))
        t_written = time.perf_counter()
    (last_done, last_done_wall) = max(done)
    newest = max(p.stat().st_mtime for p in new_dir.rglob("*") if p.is_file())
    t1 = time.perf_counter()
    write_outputs(doc, old_dir, pdf.stem, formats)
    old_s = time.perf_counter() - t1
    new_md = (new_dir / f"{pdf.stem}.md").read_text(encoding="utf-8")
    old_md = (old_dir / f"{pdf.stem}.md").read_text(encoding="utf-8")
    crops_new = sorted(p.name for p in (new_dir / f"{pdf.stem}_figures").iterdir())
    crops_old = sorted(p.name for p in (old_dir / f"{pdf.stem}_figures").iterdir())
    return {
        "pages_ok": doc.stats.ok,
        "pages": len(doc.pages),
        "wall_s": t_written - t0,
        "new_s": t_written - last_done,
        "new_mtime_s": max(0.0, newest - last_done_wall),
        "old_s": old_s,
        "crops": len(crops_new),
        "same_markdown": new_md == old_md and crops_new == crops_old,
    }


def row(figure: str, measured: str, target: str, result: str) -> str:
    return f"{figure:<60}  {measured:>10}  {target:<12}  {result}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="32 pages, 0.5 s per page")
    ap.add_argument("--pages", type=int, default=64)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--service-s", type=float, default=1.5)
    a = ap.parse_args()
    pages, service = (32, 0.5) if a.quick else (a.pages, a.service_s)
    print(f"{pages} pages, {a.slots} slots x {service} s, --concurrency {a.slots}, render {RENDER}, one figure per page")
    rows: list[str] = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        pdf = make_pdf(Path(tmp) / "doc.pdf", pages)
        with Sim(a.slots, service) as sim:
            for formats, judged in ((["md", "json"], True), (["md", "json", "txt", "html", "pdf"], False)):
                res = run_once(sim, pdf, Path(tmp) / "-".join(formats), formats, a.slots)
                label = ",".join(formats)
                print(f"\n[{label}] pages ok {res['pages_ok']}/{res['pages']}, wall {res['wall_s']:.1f} s, "
                      f"{res['crops']} figure crops; last page done -> last write: new {res['new_s']:.3f} s "
                      f"(newest file's mtime: +{res['new_mtime_s']:.3f} s), old (re-render) {res['old_s']:.3f} s; "
                      f"same markdown and crops: {res['same_markdown']}")  # fmt: skip
                good = res["pages_ok"] == pages and res["crops"] == pages and res["same_markdown"]
                ok = ok and good
                verdict = ("PASS" if res["new_s"] <= TARGET_S and good else "MISS") if judged else "info"
                rows.append(row(f"tail, {label}: last page done -> last write (new)", f"{res['new_s']:.3f}s", f"<= {TARGET_S}s", verdict))
                rows.append(row(f"tail, {label}: the old way (re-render after the run)", f"{res['old_s']:.3f}s", "beside", "info"))
                if judged:
                    ok = ok and res["new_s"] <= TARGET_S
    print("\nfigure" + " " * 56 + "measured    target        result")
    for r in rows:
        print(r)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
