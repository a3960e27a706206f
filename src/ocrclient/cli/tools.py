"""``ocr bench``, ``ocr view`` and ``ocr schema``: measure a backend, write the HTML viewer of a
result, print the output's JSON schema."""

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import EndpointDownError, OcrError
from .common import (
    EXIT_FAILED_PAGES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    Termination,
    app,
    backend_overrides,
    fail,
    failed_json,
    file_errors,
    flags_checked,
    stdout,
)


@app.command()
def bench(
    inputs: Annotated[list[str], typer.Argument(help="Documents to run (the cache is bypassed).")],
    backend: Annotated[str | None, typer.Option("--backend", "-b")] = None,
    pages: Annotated[str | None, typer.Option("--pages", "-p")] = None,
    password: Annotated[str | None, typer.Option("--password", help="Password for encrypted PDFs.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", min=1)] = None,
    endpoint_id: Annotated[str | None, typer.Option("--endpoint-id")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api-key-env")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
    dialect: Annotated[str | None, typer.Option("--dialect", help="Override the reply dialect.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="RunPod: run, runsync or local.")] = None,
    transport: Annotated[str | None, typer.Option("--transport", help="Override the transport.")] = None,
    dpi: Annotated[float | None, typer.Option("--dpi", help="Render resolution (the profile's longest_side still caps the image: see ocr config).")] = None,
    image_format: Annotated[str | None, typer.Option("--image-format", help="png, jpeg or webp.")] = None,
    metrics: Annotated[bool, typer.Option("--metrics", help="Sample the vLLM server's /metrics during the run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Measure a backend: pages/s, latency p50/p95, retries, tokens, cost estimate, and the upload
    rate the run achieved beside the rate needed to keep the endpoint busy (the requests the run
    can have in flight, at most its pages, x the mean body / the median latency); the local
    engine uploads nothing."""
    from ..bench import run_bench

    over = backend_overrides(endpoint_id, base_url, api_key_env, model, dpi, dialect, image_format, mode)
    if transport:
        over["transport"] = transport
    try:
        flags_checked(backend, over)  # (bad inputs, then a backend that cannot load: said by the run, in that order)
    except OcrError as exc:
        raise fail(str(exc), as_json=as_json) from None

    async def measure() -> dict[str, Any]:
        term.task = asyncio.current_task()
        return await run_bench(inputs, backend=backend, pages=pages, password=password, concurrency=concurrency,
                               metrics=metrics, **over)  # fmt: skip

    # Ctrl-C and SIGTERM alike: the run's jobs cancelled at the endpoint, the exit 130 / 143 with
    # its --json (SIGTERM killed the process: no JSON, RunPod jobs left running and billing)
    with (term := Termination()):
        try:
            report = asyncio.run(measure())
        except EndpointDownError as exc:  # (as ocr convert: pages failed that a rerun may pass)
            raise fail(str(exc), EXIT_FAILED_PAGES, as_json=as_json) from None
        except OcrError as exc:
            raise fail(str(exc), as_json=as_json) from None
        except (KeyboardInterrupt, asyncio.CancelledError):
            code = EXIT_TERMINATED if term.signalled else EXIT_INTERRUPTED
            if as_json:
                failed_json("terminated" if term.signalled else "interrupted", code)
            raise typer.Exit(code) from None
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"ocr bench: {report['backend']}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in report.items():
            if k in ("backend",) or (k.startswith("upload_") and v is None):  # (local: upload_detail says why)
                continue
            table.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
        stdout().print(table)
    raise typer.Exit(EXIT_FAILED_PAGES if report["failed"] else EXIT_OK)


@app.command()
def view(
    result: Annotated[Path, typer.Argument(help="A JSON result written by `ocr convert`.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="HTML file (or folder) to write to (default: next to the JSON).")] = None,
    password: Annotated[str | None, typer.Option("--password", help="Password of an encrypted source PDF.")] = None,
) -> None:
    """Write a static HTML viewer: page images with block boxes drawn over them."""
    from ..exporters.html import write_viewer
    from ..exporters.source import source_password
    from ..secrets import register_secret

    register_secret(password)
    if result.is_dir():
        raise fail(f"{result}: a folder; give one of the .json results in it")
    if not result.is_file():
        raise fail(f"{result}: no such file")
    if out is not None and not out.exists() and out.suffix.lower() not in (".html", ".htm"):
        # a new folder (``-o viewers/``: the shell's trailing slash is gone by here, and the
        # viewer was written as a file named ``viewers``)
        with file_errors(f"cannot make the folder {out}"):
            out.mkdir(parents=True)
    if out is not None and out.is_dir():  # (its write met the folder: the error named a temp file)
        out = out / result.with_suffix(".html").name
    try:
        with file_errors(f"cannot write the viewer {out or result.with_suffix('.html')}"), source_password(password):
            path = write_viewer(result, out)
    except OcrError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(f"{result}: not an ocrclient result ({str(exc).splitlines()[0]})") from None
    typer.echo(str(path))


@app.command()
def schema(path: Annotated[Path | None, typer.Argument(help="Write here instead of stdout.")] = None) -> None:
    """Print (or write) the JSON schema of the output document."""
    from ..document import json_schema, write_schema

    if path is None:
        typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))
    else:
        with file_errors(f"cannot write {path}"):
            written = write_schema(path)
        typer.echo(str(written))
