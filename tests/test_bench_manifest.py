"""`ocr bench` (with vLLM /metrics) and the batch manifest (document-level resume)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from ocrclient.bench import parse_prometheus, run_bench
from ocrclient.testing import FaultPlan, OpenAISimulator

from .pdfgen import blank_pdf, text_pdf


def _run(args: list[str], env_extra: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "ocrclient.cli", *args], capture_output=True, text=True, env=env, cwd=tmp, timeout=120)


def test_parse_prometheus_sums_labels() -> None:
    text = """# HELP vllm:num_requests_running Number of requests
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="m",engine="0"} 3.0
vllm:num_requests_running{model_name="m",engine="1"} 2.0
vllm:kv_cache_usage_perc{model_name="m"} 0.25
"""
    assert parse_prometheus(text) == {"vllm:num_requests_running": 5.0, "vllm:kv_cache_usage_perc": 0.25}


async def test_bench_reports_throughput_latency_and_retries(tmp_path: Path) -> None:
    """Over several documents too: each document's retries are its own, so their sum is the
    run's (it summed each document's running total of the run's: 33 retries for 23 attempts of
    12 pages)."""
    pdfs = [blank_pdf(tmp_path / f"d{i}.pdf", [(200 + 10 * i, 260)] * 4) for i in range(3)]
    plan = FaultPlan(seed=4, rates={"http_503": 0.3}, max_faults_per_key=1, latency_s=(0.02, 0.04), slots=4)
    with OpenAISimulator(plan=plan) as sim:
        report = await run_bench(
            [str(p) for p in pdfs], backend="openai", base_url=sim.base_url, api_key=sim.api_key, model=sim.model,
            metrics=True,
        )
    assert report["pages"] == 12 and report["ok"] == 12 and report["documents"] == 3
    assert sum(report["retries_by_cause"].values()) == report["attempts"] - 12 > 0
    assert report["pages_per_s"] > 0
    assert report["latency_p50_s"] is not None and report["latency_p95_s"] >= report["latency_p50_s"]
    assert report["retries_by_cause"].get("http_503", 0) == sum(plan.injected.values())
    assert report["metrics"]["url"].endswith("/metrics")


def test_manifest_records_and_skips_done_inputs(tmp_path: Path) -> None:
    docs = tmp_path / "in"
    (docs / "sub").mkdir(parents=True)
    # pages that differ: identical ones may be answered by the cache within the run
    blank_pdf(docs / "a.pdf", [(200, 260), (210, 260)])
    Image.new("RGB", (120, 90), "white").save(docs / "sub" / "b.png")
    out = tmp_path / "out"
    with OpenAISimulator() as sim:
        env = {"OCRCLIENT_API_KEY": sim.api_key or ""}
        args = ["convert", str(docs), "-o", str(out), "--backend", "openai", "--base-url", sim.base_url, "--model", sim.model, "--no-progress"]
        first = _run(args, env, tmp_path)
        assert first.returncode == 0, first.stderr
        sent = sum(sim.requests_by_key.values())
        lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
        last = {x["key"]: x for x in lines}  # (each input's files are named, "writing", before they are written)
        assert sorted(x["status"] for x in lines) == ["ok", "ok", "writing", "writing"]
        assert {x["input"] for x in last.values()} == {str(docs / "a.pdf"), str(docs / "sub" / "b.png")}
        assert all(x["status"] == "ok" and x["failed"] == 0 for x in last.values())
        assert (out / "sub" / "b.md").is_file() and (out / "a.json").is_file()  # mirrors the input tree
        second = _run(args, env, tmp_path)
        assert second.returncode == 0, second.stderr
        assert "skipping 2 input(s) already done" in second.stderr
        assert sum(sim.requests_by_key.values()) == sent  # nothing sent again
        third = _run([*args, "--redo", "--no-cache"], env, tmp_path)
        assert third.returncode == 0
        assert sum(sim.requests_by_key.values()) == 2 * sent


def _local_reruns(tmp_path: Path) -> tuple[Callable[..., str], Path]:
    """``run(*extra)``: ``ocr convert`` of a one-page input folder into ``out`` with the local
    backend and a cache, asserting exit 0, giving its output; and ``out``."""
    from ocrclient.cli import app

    docs = tmp_path / "in"
    docs.mkdir()
    text_pdf(docs / "a.pdf", [["Hello world"]], size=(0, 0, 300, 120))
    out = tmp_path / "out"
    args = ["convert", str(docs), "-o", str(out), "--backend", "local", "--no-progress", "--cache-dir", str(tmp_path / "c")]
    runner = CliRunner()

    def run(*extra: str) -> str:
        res = runner.invoke(app, [*args, *extra])
        assert res.exit_code == 0, res.output
        return res.output

    return run, out


def test_a_changed_setting_is_converted_again_not_skipped(tmp_path: Path) -> None:
    """The manifest skips an input only when it was converted with the same content settings
    (the cache's own): a rerun with a changed setting converts it again, the same setting again
    skips it, and an entry from before the manifest recorded settings is not trusted."""
    run, out = _local_reruns(tmp_path)
    assert "skipping" not in run()
    assert "skipping 1 input(s)" in run()
    assert "skipping" not in run("--text-layer", "never")  # a content setting changed
    assert "skipping 1 input(s)" in run("--text-layer", "never")
    assert "skipping" not in run()  # and back
    assert "skipping 1 input(s)" in run("--concurrency", "3")  # a neutral setting changed
    # an entry without settings (an older manifest) is converted again
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    (out / "manifest.jsonl").write_text(json.dumps({k: v for k, v in lines[-1].items() if k != "settings"}) + "\n")
    assert "skipping" not in run()


def test_a_rerun_asking_for_other_outputs_is_converted_again(tmp_path: Path) -> None:
    """An input done with some outputs is not done for a run that writes another format or the
    same format with other options: it is converted again (before, the rerun skipped it and the
    new outputs were never written).  The same outputs, or fewer, skip it."""
    run, out = _local_reruns(tmp_path)

    def skipped(*extra: str) -> bool:
        return "skipping 1 input(s)" in run(*extra)

    assert not skipped()
    assert skipped()
    assert not skipped("--format", "md,json,html")  # a format the entry did not write
    assert (out / "a.html").is_file()
    assert skipped("--format", "md,json,html") and skipped("--format", "md")  # the same, or fewer
    assert not skipped("--page-markers")  # the markdown with other options
    assert (out / "a.md").read_text(encoding="utf-8").startswith("<!-- page 1 -->")
    assert skipped("--page-markers")
    assert not skipped()  # and back: without the markers
    assert not (out / "a.md").read_text(encoding="utf-8").startswith("<!-- page 1 -->")


def test_an_input_whose_outputs_another_input_wrote_over_is_converted_again(tmp_path: Path) -> None:
    """Two inputs of one name in two folders, converted to one folder in two runs: the second
    wrote over the first's outputs without a word, and a rerun of the first was skipped as done,
    leaving the second's text under its name.  Now the second run warns, and the first is
    converted again; the whole overlap and a part of it (the second writing only the markdown)."""
    from ocrclient.cli import app

    runner = CliRunner()
    a, b = tmp_path / "A" / "report.pdf", tmp_path / "B" / "report.pdf"
    a.parent.mkdir()
    b.parent.mkdir()
    text_pdf(a, [["Report of department A"]], size=(0, 0, 300, 120))
    text_pdf(b, [["Invoice from supplier B"]], size=(0, 0, 300, 120))
    for second_formats in ("md,json", "md"):
        out = tmp_path / f"out-{second_formats}"

        def run(src: Path, formats: str = "md,json", out: Path = out) -> str:
            res = runner.invoke(app, ["convert", str(src), "-o", str(out), "--backend", "local", "--no-progress",
                                      "--no-cache", "--format", formats])  # fmt: skip
            assert res.exit_code == 0, res.output
            return res.output

        assert "replaces" not in run(a)
        second = run(b, second_formats)
        assert f"{b} replaces the outputs of {a}" in " ".join(second.split()), second
        third = run(a)
        assert "skipping" not in third and f"{a} replaces the outputs of {b}" in " ".join(third.split())
        assert "department A" in (out / "report.md").read_text(encoding="utf-8")
        assert "skipping 1 input(s)" in run(a)  # its own outputs again: done


def test_a_run_option_that_changes_the_result_is_converted_again(tmp_path: Path) -> None:
    """The run's settings outside the profile, against the manifest: ``--document-mode`` sends
    the whole PDF to another worker contract, so a rerun that turns it on (or off) converts the
    input again (it was skipped, the page-mode outputs kept); the same mode again skips it, and
    options that change nothing (``--isolate-render``, ``--concurrency``) skip it too."""
    from ocrclient.testing import DialectResponder
    from ocrclient.testing.runpod_sim import RunPodSimulator

    docs = tmp_path / "in"
    docs.mkdir()
    text_pdf(docs / "a.pdf", [["first page"], ["second page"], ["third page"]])
    with RunPodSimulator(api_key="rp-manifest", responder=DialectResponder("deepseek")) as sim:
        env = {"RUNPOD_API_KEY": "rp-manifest", "RUNPOD_BASE_URL": sim.base_url,
               "RUNPOD_DEEPSEEK_ENDPOINT_ID": str(sim.endpoint_id)}  # fmt: skip
        args = ["convert", str(docs), "-o", str(tmp_path / "out"), "--backend", "runpod-deepseek-ocr", "--no-cache",
                "--no-progress"]  # fmt: skip

        def skipped(*extra: str) -> bool:
            run = _run([*args, *extra], env, tmp_path)
            assert run.returncode == 0, run.stderr
            return "skipping 1 input(s)" in run.stderr

        assert not skipped()
        assert not skipped("--document-mode")  # another contract: converted again
        assert skipped("--document-mode")
        assert not skipped()  # and back to pages
        assert skipped("--isolate-render") and skipped("--concurrency", "3")


async def test_bench_reports_the_429s_a_runpod_endpoint_answered(tmp_path: Path) -> None:
    """A RunPod 429 is waited out and sent again without spending an attempt (no retry): the
    report said nothing of the endpoint throttling the run."""
    from ocrclient.testing import RunPodSimulator

    pdf = blank_pdf(tmp_path / "d.pdf", [(200, 260)] * 6)
    plan = FaultPlan(seed=2, rates={"http_429": 0.5}, max_faults_per_key=1, latency_s=(0.01, 0.02))
    with RunPodSimulator(plan=plan, api_key="rp-k") as sim:
        report = await run_bench([str(pdf)], backend="runpod-chandra", base_url=sim.base_url,
                                 endpoint_id=sim.endpoint_id, api_key="rp-k",
                                 transport_options={"poll_interval_s": 0.02})  # fmt: skip
    injected = plan.injected["http_429"]
    assert injected and report["failed"] == 0 and report["pages"] == 6
    assert sum(report["throttled_429"].values()) == injected, (report["throttled_429"], injected)
    assert "http_429" not in report["retries_by_cause"]


def test_a_manifest_that_cannot_be_written_fails_its_documents_not_the_run(tmp_path: Path) -> None:
    """A manifest append that fails (a full disk, a read-only folder; here a folder where the
    file goes) ended the whole batch with a traceback, the documents after the first converted,
    paid for and lost, and no ``--json``.  Now each document's outputs are written, each says in
    one line that it could not be recorded, the summary is printed, exit 1; a rerun once the
    manifest can be written converts them again and records them."""
    from ocrclient.cli import app

    docs = tmp_path / "in"
    docs.mkdir()
    for name in ("a", "b", "c"):
        text_pdf(docs / f"{name}.pdf", [[f"Hello {name}"]], size=(0, 0, 300, 120))
    out = tmp_path / "out"
    (out / "manifest.jsonl").mkdir(parents=True)
    args = ["convert", str(docs), "-o", str(out), "--backend", "local", "--no-progress", "--json",
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert sum(line.startswith("error:") and "cannot record it" in line for line in res.output.splitlines()) == 3
    assert all((out / f"{n}.md").is_file() and (out / f"{n}.json").is_file() for n in "abc")
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert [len(d["output_errors"]) for d in summary["documents"]] == [1, 1, 1]
    (out / "manifest.jsonl").rmdir()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(x["status"] for x in lines) == ["ok"] * 3 + ["writing"] * 3


def test_a_record_after_a_torn_last_line_is_a_line_of_its_own(tmp_path: Path) -> None:
    """A run killed mid-append leaves a torn last line; the next record was glued to it, unreadable
    too, and that input was converted again on every rerun."""
    from ocrclient.document import Document
    from ocrclient.manifest import Manifest
    from ocrclient.pages import prepare

    pdfs = [text_pdf(tmp_path / f"{n}.pdf", [[n]]) for n in ("a", "b")]
    (src_a, _), (src_b, _) = prepare([str(p) for p in pdfs])
    m = Manifest(tmp_path / "out")
    m.record(src_a, Document(source=src_a.name, backend="local", pages=[]), [], pages=None)
    with (tmp_path / "out" / "manifest.jsonl").open("a") as fh:
        fh.write('{"input": "b.pdf", "key": "/tm')  # torn
    m.record(src_b, Document(source=src_b.name, backend="local", pages=[]), [], pages=None)
    fresh = Manifest(tmp_path / "out")
    assert set(fresh.entries()) == {src_a.key, src_b.key}
    assert fresh.done(src_b, backend="local", model=None, pages=None)


def test_an_input_replaced_while_the_run_read_it_is_converted_again(tmp_path: Path) -> None:
    """The manifest recorded the file's size and mtime when the document finished: a file
    replaced during the run (the old one converted) was recorded as the new one, and skipped by
    every rerun.  It records what the run opened."""
    import os

    from ocrclient.document import Document
    from ocrclient.manifest import Manifest
    from ocrclient.pages import prepare

    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    ((src, _),) = prepare([str(pdf)])
    text_pdf(pdf, [["a longer replacement"], ["with a second page"]])  # replaced during the run
    os.utime(pdf, (1e9, 1e9))
    m = Manifest(tmp_path / "out")
    m.record(src, Document(source=src.name, backend="local", pages=[]), [], pages=None)
    ((again, _),) = prepare([str(pdf)])  # the rerun opens the new file
    assert not Manifest(tmp_path / "out").done(again, backend="local", model=None, pages=None)
    m.record(again, Document(source=again.name, backend="local", pages=[]), [], pages=None)
    assert Manifest(tmp_path / "out").done(again, backend="local", model=None, pages=None)


def test_key_of_names_the_latest_entry_for_an_input_and_skips_torn_lines(tmp_path: Path) -> None:
    """``ocr view`` finds a run's input by the path its manifest records (``Manifest.key_of``):
    two inputs given as the same name from two folders, in two runs, resolve to the later one; a
    torn line and a line without a key count for nothing; a name no entry gives is ``None``."""
    from ocrclient.manifest import Manifest

    out = tmp_path / "out"
    out.mkdir()
    lines = [
        {"input": "a.pdf", "key": "/first/a.pdf", "finished": "2026-01-01T00:00:00+00:00"},
        {"input": "a.pdf", "key": "/second/a.pdf", "finished": "2026-01-02T00:00:00+00:00"},
        {"input": "a.pdf", "finished": "2026-01-03T00:00:00+00:00"},
        {"input": "b.pdf", "key": "/b.pdf", "finished": "2026-01-01T00:00:00+00:00"},
    ]
    text = "".join(json.dumps(e) + "\n" for e in lines) + '{"input": "a.pdf", "key": "/torn'
    (out / "manifest.jsonl").write_text(text)
    m = Manifest(out)
    assert m.key_of("a.pdf") == "/second/a.pdf"
    assert m.key_of("b.pdf") == "/b.pdf"
    assert m.key_of("c.pdf") is None
