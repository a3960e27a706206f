"""Score candidate folders with olmOCR-bench's own code (run inside the throwaway venv).

    python _olmocr_score.py DATASET_DIR OUT.json NAME=FOLDER [NAME=FOLDER ...]

Runs in the venv that ``bench_olmocr.py`` builds (``pip install --no-deps olmocr`` plus the few
libraries its bench scoring imports), never in ocrclient's: it imports nothing of ocrclient.

What it does is what ``olmocr.bench.benchmark.main`` does, minus the report, the bootstrap and the
permutation tests:

* the tests: every ``*.jsonl`` in DATASET_DIR through ``olmocr.bench.tests.load_tests``, then one
  default ``BaselineTest`` (page 1) for every PDF under ``pdfs/`` that has no baseline test of its
  own (the same loop as ``benchmark.main``);
* each candidate through ``olmocr.bench.benchmark.evaluate_candidate`` (its folder holds
  ``<pdf without .pdf>_pg<N>_repeat1.md``, the layout the bench reads); a test passes when the
  majority of its repeats pass, as there;
* the bench's headline score: the mean over the ``.jsonl`` files (the baselines are a group of
  their own) of each file's pass fraction.

Math tests render LaTeX with KaTeX in Chromium through Playwright.  Playwright's own browser build
is a download; when it is not there, the system's ``chromium`` is used (``OLMOCR_BENCH_CHROMIUM``
names another).  When no browser starts, the math tests are left out and the JSON says why.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from typing import Any


def _use_system_chromium() -> None:
    """Make Playwright's ``chromium.launch()`` use a system Chromium when its own build is missing."""
    from playwright.sync_api import BrowserType

    exe = os.environ.get("OLMOCR_BENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        return
    launch = BrowserType.launch

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        if "executable_path" not in kwargs and os.path.basename(str(getattr(self, "name", ""))) == "chromium":
            try:
                return launch(self, *args, **kwargs)
            except Exception:
                kwargs["executable_path"] = exe
        return launch(self, *args, **kwargs)

    BrowserType.launch = patched  # type: ignore[method-assign]


def _math_problem() -> str | None:
    """Why math tests cannot be scored here, or ``None`` when KaTeX renders."""
    try:
        _use_system_chromium()
        from olmocr.bench.katex.render import render_equation

        if render_equation("x^2") is None:
            return "KaTeX rendered nothing"
    except Exception as exc:  # a missing browser, playwright not importable
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return None


def _load(dataset: str, math_ok: bool) -> tuple[list[Any], dict[str, str], int]:
    from olmocr.bench.tests import BaselineTest, load_single_test, load_tests

    tests: list[Any] = []
    source: dict[str, str] = {}
    skipped_math = 0
    for path in sorted(glob.glob(os.path.join(dataset, "*.jsonl"))):
        name = os.path.basename(path)
        if math_ok:
            loaded = load_tests(path)
        else:
            loaded = []
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    if json.loads(line).get("type") == "math":
                        skipped_math += 1
                        continue
                    loaded.append(load_single_test(line))
        for t in loaded:
            source[t.id] = name
        tests.extend(loaded)
    pdf_dir = os.path.join(dataset, "pdfs")
    pdfs = sorted(os.path.relpath(p, pdf_dir) for p in glob.glob(os.path.join(pdf_dir, "**/*.pdf"), recursive=True))
    for pdf in pdfs:  # benchmark.main: a default baseline test for every PDF without one
        if not any(t.type == "baseline" for t in tests if t.pdf == pdf):
            tests.append(BaselineTest(id=f"{pdf}_baseline", pdf=pdf, page=1, type="baseline"))
            source[tests[-1].id] = "baseline"
    return tests, source, skipped_math


def _score(folder: str, tests: list[Any], source: dict[str, str], pdfs: list[str]) -> dict[str, Any]:
    from olmocr.bench.benchmark import evaluate_candidate

    _, _, errors, _, _, _, results = evaluate_candidate(folder, tests, pdfs, False)
    verdict: dict[str, tuple[bool, str]] = {}
    for pages in results.values():
        for rows in pages.values():
            for test, passed, why in rows:
                verdict[test.id] = (bool(passed), str(why))
    groups: dict[str, list[bool]] = {}
    rows_out = []
    for t in tests:
        passed, why = verdict.get(t.id, (False, "not evaluated"))
        groups.setdefault(source[t.id], []).append(passed)
        rows_out.append({"id": t.id, "pdf": t.pdf, "page": t.page, "type": t.type, "passed": passed, "why": why[:300]})
    per_file = [sum(v) / len(v) for v in groups.values() if v]
    return {
        "errors": errors[:20],
        "tests": rows_out,
        "bench_score": sum(per_file) / len(per_file) if per_file else 0.0,
    }


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    dataset, out, pairs = argv[0], argv[1], argv[2:]
    import olmocr

    problem = _math_problem()
    tests, source, skipped_math = _load(dataset, problem is None)
    pdf_dir = os.path.join(dataset, "pdfs")
    pdfs = sorted(os.path.relpath(p, pdf_dir) for p in glob.glob(os.path.join(pdf_dir, "**/*.pdf"), recursive=True))
    report: dict[str, Any] = {
        "olmocr_version": getattr(olmocr, "VERSION", "?"),
        "math_problem": problem,
        "math_skipped": skipped_math,
        "n_tests": len(tests),
        "candidates": {},
    }
    for pair in pairs:
        name, _, folder = pair.partition("=")
        report["candidates"][name] = _score(folder, tests, source, pdfs)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(report, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # Playwright's browser threads can hold a normal exit


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
