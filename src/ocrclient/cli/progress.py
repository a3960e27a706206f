"""What ``ocr convert`` shows: the progress bar fed by the scheduler's events, and the summary
(a table on stderr, or JSON on stdout) when the run is over."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import redact
from .common import failed_page, real_console, stderr

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress

    from ..pages import Source
    from ..pages.inputs import Refused

__all__ = ["Progress", "Unconverted", "print_failed_pages", "summary", "summary_json"]


class Progress:
    """Rich progress bar on stderr fed by scheduler events; without the bar (``enabled``
    false) it only counts, and rich is not imported for it."""

    def __init__(self, total: int, enabled: bool, verbose: bool) -> None:
        self.verbose = verbose
        self.console = stderr()
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self.retries: Counter[str] = Counter()
        self.progress: RichProgress | None = self._bar(total) if enabled else None

    def _bar(self, total: int) -> RichProgress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        bar = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]} p/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=real_console(self.console),
            transient=False,
        )
        self.task = bar.add_task("pages", total=total, failed=0, rate="0.00")
        return bar

    def __enter__(self) -> Progress:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def __call__(self, event: object) -> None:
        from ..scheduler import PageDone, PageFailed, PageRetried

        if isinstance(event, PageDone | PageFailed):
            self.done += 1
            if isinstance(event, PageFailed):
                self.failed += 1
                if self.verbose:
                    line = failed_page(event.source, event.page, event.error.message)
                    self.console.print(f"failed {line}", soft_wrap=True)
            if self.progress is not None:
                rate = self.done / max(time.monotonic() - self.started, 1e-6)
                self.progress.update(self.task, advance=1, failed=self.failed, rate=f"{rate:.2f}")
        elif isinstance(event, PageRetried):
            self.retries[event.cause] += 1
            if self.verbose:
                from rich.markup import escape

                self.console.print(
                    escape(f"retry page {event.page} of {event.source} (attempt {event.attempt}, {event.cause}): "
                           f"{event.message}; next in {event.delay_s:.1f}s"), soft_wrap=True
                )  # fmt: skip


def summary(results: list[Any], wall: float, console: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="ocr convert", show_lines=False)
    rows = []
    for r in results:
        s = r.document.stats
        rows.append({
            "file": escape(r.source.name),  # (a file's name is text, not markup: "[red]x.pdf")
            "pages": str(s.pages), "ok": str(s.ok), "degraded": str(s.degraded),
            "failed": f"[red]{s.failed}[/]" if s.failed else "0", "cached": str(s.cached),
            "retries": str(sum(s.retries_by_cause.values())), "pages/s": f"{s.pages_per_s:.2f}",
        })  # fmt: skip
    # a file's name folds onto more lines rather than being cut (at 80 columns two inputs were
    # both "/data/corpus/…"); the counts never fold.  Degraded, cached and retries show when a
    # file has some: their three zeros left the name 14 of 80 columns, folding most names
    columns = ("file", "pages", "ok", "degraded", "failed", "cached", "retries", "pages/s")
    shown = [c for c in columns if c not in ("degraded", "cached", "retries") or any(r[c] != "0" for r in rows)]
    for col in shown:
        if col == "file":
            table.add_column(col, justify="left", overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(row[c] for c in shown))
    console.print(table)
    pages = sum(r.document.stats.pages for r in results)
    console.print(f"{pages} pages in {wall:.1f}s")


def summary_json(
    results: list[Any], wall: float, code: int, error: str | None = None, refused: Sequence[tuple[str, str]] = (),
    skipped: Sequence[str] = (), left_out: Sequence[tuple[str, str]] = (), unfinished: Sequence[str] = (),
) -> str:
    """The ``--json`` summary: per document its page counts and failed pages, then every input
    named that has no document, each list by why: the inputs refused as unusable (``refused``:
    their names and why), the inputs a rerun found done with the same settings and left alone
    (``skipped``), the inputs of several the page range left out (``left_out``: their names and
    why), the inputs of a run that stopped before their documents were written
    (``unfinished``: a rerun converts them); the wall time, the exit code and, for a run that
    stopped or never started, why (``error``: the one line ``ocr`` printed, "interrupted" or
    "terminated"; ``null`` for a run that ended)."""
    return json.dumps(
        {
            "documents": [
                {
                    "source": r.source.name,
                    "pages": r.document.stats.pages,
                    "ok": r.document.stats.ok,
                    "degraded": r.document.stats.degraded,
                    "failed": r.document.stats.failed,
                    "failed_pages": r.document.failed_pages,
                    "output_errors": [redact(e) for e in getattr(r, "output_errors", ())],
                }
                for r in results
            ],
            "refused": [{"source": name, "error": redact(why)} for name, why in refused],
            "skipped": [{"source": name} for name in skipped],
            "left_out": [{"source": name, "reason": why} for name, why in left_out],
            "unfinished": [{"source": name} for name in unfinished],
            "wall_s": round(wall, 3),
            "exit_code": code,
            "error": redact(error) if error else None,
        },
        indent=2,
    )


@dataclass
class Unconverted:
    """The inputs of an ``ocr convert`` run that it does not convert, which its ``--json``
    summary lists beside the documents (a script reading it could not tell that an input left
    out by ``--pages`` had been named at all): refused as unusable, left out by the page range
    (name, why), found done by the manifest (``skipped``); and the inputs the run set out to
    convert (``planned``), of which a stopped run's summary lists those it wrote no document of."""

    refused: list[Refused] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    planned: list[Source] = field(default_factory=list)

    def summary(self, results: list[Any], wall: float, code: int, error: str | None = None) -> str:
        """:func:`summary_json` of ``results`` with these inputs."""
        written = {r.source.key for r in results}
        unfinished = [src.name for src in self.planned if src.key not in written]
        return summary_json(results, wall, code, error=error, refused=[(r.name, r.message) for r in self.refused],
                            skipped=self.skipped, left_out=self.left_out, unfinished=unfinished)  # fmt: skip


def print_failed_pages(results: list[Any], console: Console) -> None:
    """One line per failed page, with its error, after the summary."""
    for r in results:
        for p in r.document.pages:
            if p.status == "failed" and p.error is not None:
                console.print(f"[red]failed[/] {failed_page(r.source.name, p.page, p.error.message)}", soft_wrap=True)
