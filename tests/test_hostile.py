"""Hostile and broken servers (issue 14, defect 5): whatever a server sends back, the client stays
bounded — in time, in memory, in what it writes — and says what happened in one line.

Two levels, both driven by :class:`ocrclient.testing.hostile.HostileServer`:

* every transport (RunPod, OpenAI streamed and not, ocular) against every hostile behaviour that
  exists for its wire contract, in-process: elapsed time, the peak of Python allocations
  (``tracemalloc``), the reply or the error it ends in;
* the ``ocr`` command in a subprocess: its peak RSS (``VmHWM`` from ``/proc``), the size of the
  JSON it writes, its exit code, and how fast Ctrl-C (SIGINT) ends it at several moments.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ocrclient.errors import BadOutputError, OcrError, TransientError
from ocrclient.testing.hostile import HostileServer
from ocrclient.transports.base import ModelReply, ModelRequest
from ocrclient.transports.limits import MAX_SECONDS, MAX_TOKEN_COUNT, reply_limit
from ocrclient.transports.ocular import OcularTransport
from ocrclient.transports.openai import OpenAITransport
from ocrclient.transports.runpod import RunPodTransport

from .pdfgen import PdfPage, write_pdf

pytestmark = pytest.mark.timeout(90)

MB = 1_000_000
RUNAWAY = 40 * MB
MAX_TOKENS = 4096
#: a Chandra block longer than the repetition detector's longest period (400 characters): a
#: runaway made of it is not "repetition" to the raw-reply check
CHANDRA_UNIT = (
    '<div data-bbox="100 100 900 140" data-label="Text"><p>'
    + "A long paragraph that the model keeps writing out. " * 9
    + "</p></div>"
)
CHANDRA_OK = '<div data-bbox="100 100 900 140" data-label="Text"><p>A healthy page.</p></div>'


# ---------------------------------------------------------------------------------------------
# transports, in-process
# ---------------------------------------------------------------------------------------------


def _transport(srv: HostileServer, stream: bool) -> Any:
    if srv.contract == "openai":
        return OpenAITransport(srv.base_url, api_key=srv.api_key, model=srv.model, stream=stream,
                               cap_max_tokens=False)
    if srv.contract == "runpod":
        return RunPodTransport(endpoint_id=srv.endpoint_id, api_key=srv.api_key, base_url=srv.base_url,
                               poll_interval_s=0.02, max_poll_interval_s=0.05, cancel_timeout_s=1.0)
    return OcularTransport(srv.url)


def _request(srv: HostileServer, timeout_s: float = 20.0, max_tokens: int = MAX_TOKENS) -> ModelRequest:
    if srv.contract == "ocular":
        return ModelRequest(kind="ocular", route="/extract_text", timeout_s=timeout_s,
                            body={"image": "aGk=", "decoding_options": {"max_length": max_tokens}})
    return ModelRequest(timeout_s=timeout_s, body={
        "model": srv.model, "messages": [{"role": "user", "content": "read this page"}],
        "max_tokens": max_tokens,
    })


@dataclass
class Outcome:
    result: ModelReply | OcrError | BaseException
    seconds: float
    peak_bytes: int


def _drive(srv: HostileServer, stream: bool = False, timeout_s: float = 20.0, max_tokens: int = MAX_TOKENS,
           trace: bool = True) -> Outcome:
    """One send against ``srv``, with its time and (``trace``) the peak of Python allocations."""

    async def go() -> ModelReply:
        transport = _transport(srv, stream)
        try:
            return await transport.send(_request(srv, timeout_s, max_tokens))  # type: ignore[no-any-return]
        finally:
            await transport.aclose()

    if trace:
        tracemalloc.start()
    t0 = time.monotonic()
    try:
        result: Any = asyncio.run(go())
    except BaseException as exc:
        result = exc
    elapsed = time.monotonic() - t0
    peak = tracemalloc.get_traced_memory()[1] if trace else 0
    tracemalloc.stop()
    return Outcome(result, elapsed, peak)


def _one_line_error(result: object, kind: type[OcrError], cause: str | None = None) -> OcrError:
    assert isinstance(result, kind), repr(result)
    assert "\n" not in str(result) and len(str(result)) < 400, str(result)
    if cause is not None:
        assert result.cause == cause, (result.cause, str(result))
    return result


#: (contract, streamed) of every transport path
PATHS = [("runpod", False), ("openai", False), ("openai", True), ("ocular", False)]


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """One healthy reply down every path first, so the peaks measured are the replies', not the
    lazy imports' of the first use (the openai SDK loads its resources on demand)."""
    for contract, stream in PATHS:
        with HostileServer("huge_body", contract=contract, healthy_first=1) as srv:  # type: ignore[arg-type]
            assert isinstance(_drive(srv, stream, trace=False).result, ModelReply)


def _paths(behaviour: str) -> list[Any]:
    forms = {"huge_stream": [("openai", True)], "empty_deltas": [("openai", True)]}
    chosen = forms.get(behaviour, PATHS)
    return [pytest.param(c, s, id=f"{c}-{'stream' if s else 'json'}-{behaviour}") for c, s in chosen]


@pytest.mark.parametrize(("contract", "stream", "behaviour"),
                         [pytest.param(*p.values, b, id=p.id) for b in ("huge_body", "huge_stream") for p in _paths(b)])
def test_a_runaway_reply_is_cut_at_its_cap(contract: str, stream: bool, behaviour: str) -> None:
    """40 MB of reply: the client stops reading near the cap max_tokens allow, in bounded time and
    memory, with BadOutputError(reply_too_large) — for every transport, JSON or streamed, as one
    reply (streamed: one event) or as many deltas.  (A streamed request to ``huge_body`` was
    answered a healthy page, and counted hostile: this test ran ``huge_stream`` in its place.)"""
    with HostileServer(behaviour, contract=contract, size=RUNAWAY, delta_bytes=2000) as srv:  # type: ignore[arg-type]
        out = _drive(srv, stream)
        sent = srv.bytes_sent
    err = _one_line_error(out.result, BadOutputError, "reply_too_large")
    assert "max_tokens" in str(err)
    assert out.seconds < 10, out.seconds
    cap = reply_limit(MAX_TOKENS, streamed=stream)
    assert out.peak_bytes < 4 * cap + 8 * MB, out.peak_bytes  # nothing like the 40 MB sent our way
    assert sent < RUNAWAY / 2, sent  # it stopped reading; the server could not push it all


def test_an_endless_stream_of_empty_deltas_ends() -> None:
    """Bytes keep coming (no idle timeout fires) but nothing is said: the stream ends at two
    chunks per token of max_tokens (plus slack) — here 512 tokens, 1088 chunks."""
    with HostileServer("empty_deltas", max_reply_s=30) as srv:
        out = _drive(srv, stream=True, max_tokens=512)
    err = _one_line_error(out.result, BadOutputError, "reply_too_large")
    assert "more than 1088 chunks" in str(err)
    assert out.seconds < 10, out.seconds
    assert out.peak_bytes < 16 * MB, out.peak_bytes


@pytest.mark.parametrize(("contract", "stream"), _paths("deep_nesting"))
def test_deep_nesting_is_its_own_clear_error(contract: str, stream: bool) -> None:
    """A reply nested 100 000 levels deep: "nested too deeply", not "non-JSON body"."""
    with HostileServer("deep_nesting", contract=contract, depth=100_000) as srv:  # type: ignore[arg-type]
        out = _drive(srv, stream)
    err = _one_line_error(out.result, BadOutputError, "reply_too_deep")
    assert "nested too deeply" in str(err) and "non-JSON" not in str(err)
    assert out.seconds < 10 and out.peak_bytes < 16 * MB, (out.seconds, out.peak_bytes)


BAD_NUMBERS = ["NaN", "Infinity", "-Infinity", "-5", "1e308", "1e999", "9" * 5000]


@pytest.mark.parametrize("number", BAD_NUMBERS, ids=["nan", "inf", "-inf", "neg", "1e308", "1e999", "5000digits"])
@pytest.mark.parametrize(("contract", "stream"), _paths("bad_numbers"))
def test_bad_numbers_never_fail_a_good_page_and_stay_sane(contract: str, stream: bool, number: str) -> None:
    """NaN, infinities, negatives, 1e308, a 5000-digit integer in usage / timings / confidence:
    the good reply comes through, and every number it carries is sane."""
    with HostileServer("bad_numbers", contract=contract, number=number) as srv:  # type: ignore[arg-type]
        out = _drive(srv, stream)
    reply = out.result
    assert isinstance(reply, ModelReply), repr(reply)
    assert "This page came back normally." in reply.text
    for count in (reply.prompt_tokens, reply.completion_tokens):
        assert type(count) is int and 0 <= count <= MAX_TOKEN_COUNT, count
    for secs in (reply.gpu_seconds, reply.queue_seconds):
        assert secs is None or (math.isfinite(secs) and 0 <= secs <= MAX_SECONDS), secs
    # no longer than the wait, the two together: what the page is charged follows them
    assert (reply.gpu_seconds or 0) + (reply.queue_seconds or 0) <= reply.latency_s, (reply.gpu_seconds, reply.queue_seconds, reply.latency_s)
    for key in ("confidence", "processing_time"):
        value = reply.data.get(key)
        assert value is None or (isinstance(value, float) and math.isfinite(value)), (key, value)
    if number in ("NaN", "Infinity", "-Infinity", "-5", "1e999"):
        assert reply.prompt_tokens == reply.completion_tokens == 0


@pytest.mark.parametrize(("contract", "stream"), _paths("early_close"))
def test_early_close_is_a_transient_one_line_error(contract: str, stream: bool) -> None:
    with HostileServer("early_close", contract=contract) as srv:  # type: ignore[arg-type]
        out = _drive(srv, stream)
    _one_line_error(out.result, TransientError)
    assert out.seconds < 10, out.seconds


@pytest.mark.parametrize(("contract", "stream"), _paths("no_reply"))
def test_a_request_answered_by_a_hang_up_is_a_reset_one_line_error(contract: str, stream: bool) -> None:
    """``no_reply``: the request read whole, the connection closed with no reply -- an attempt
    (cause ``reset``), not "no server at the endpoint" (``unreachable``)."""
    with HostileServer("no_reply", contract=contract) as srv:  # type: ignore[arg-type]
        out = _drive(srv, stream)
        assert srv.hostile_replies == 1
    _one_line_error(out.result, TransientError, cause="reset")
    assert out.seconds < 10, out.seconds


def test_a_job_in_queue_forever_ends_at_the_attempt_timeout_and_is_cancelled() -> None:
    with HostileServer("in_queue_forever", contract="runpod") as srv:
        out = _drive(srv, timeout_s=1.0)
        cancels = srv.cancels
    err = _one_line_error(out.result, TransientError, "timeout")
    assert "did not finish within 1.0 s" in str(err)
    assert 1.0 <= out.seconds < 4.0, out.seconds
    assert cancels == 1


def test_completed_without_output_is_a_transient_one_line_error() -> None:
    with HostileServer("no_output", contract="runpod") as srv:
        out = _drive(srv)
    err = _one_line_error(out.result, TransientError, "runpod_no_output")
    assert "COMPLETED without output" in str(err)
    assert out.seconds < 5, out.seconds


def test_hostile_server_refuses_unknown_combinations() -> None:
    with pytest.raises(ValueError, match="no 'ocular' form"):
        HostileServer("in_queue_forever", contract="ocular")
    with pytest.raises(ValueError, match="unknown behaviour"):
        HostileServer("polite")


# ---------------------------------------------------------------------------------------------
# the CLI in a subprocess: memory, output size, exit codes, Ctrl-C
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    stderr: str
    peak_rss_mb: float
    json_bytes: int | None
    doc: dict[str, Any] | None
    sigint_latency_s: float | None


@pytest.fixture
def pdf2(tmp_path: Path) -> Path:
    return write_pdf(tmp_path / "doc.pdf", [PdfPage(texts=[(20, 100, 12, f"page {i}")]) for i in (1, 2)])


def _pdf(path: Path, pages: int) -> Path:
    return write_pdf(path, [PdfPage(texts=[(20, 100, 12, f"page {i}")]) for i in range(1, pages + 1)])


class PeakRSS:
    """The client's peak RSS, read from ``/proc/<pid>/status`` (``VmHWM``, the high-water mark
    of its resident memory) every 10 ms while it runs.  Not ``wait4``'s ``ru_maxrss``: that
    keeps the high-water mark of the memory a child had before ``exec`` (the test process's,
    shared through ``vfork``).  Readings start once ``/proc/<pid>/cmdline`` is the client's."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            if b"ocrclient.cli" not in Path(f"/proc/{self.pid}/cmdline").read_bytes():
                return  # not exec'd yet
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.kb = max(self.kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass  # gone

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self._read()

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.kb / 1024


def _ocr(srv: HostileServer, backend: str, pdf: Path, out: Path, *, pages: str = "1",
         sigint_after_s: float | None = None, sigint_on: str = "started", extra: tuple[str, ...] = (),
         stop: signal.Signals = signal.SIGINT) -> Run:
    """``ocr convert`` against ``srv``; with ``sigint_after_s``, SIGINT that long after the
    server started (``sigint_on="started"``) or finished writing (``"written"``) its first
    hostile reply.  Peak RSS: :class:`PeakRSS`."""
    env = {**os.environ, **srv.env(), "NO_COLOR": "1"}
    args = [sys.executable, "-m", "ocrclient.cli", "convert", str(pdf), "-o", str(out), "--backend", backend,
            "--no-cache", "--no-progress", "--dpi", "36", "--pages", pages, *extra]
    if srv.contract == "runpod":
        args += ["--base-url", srv.base_url]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rss = PeakRSS(proc.pid)
    sent = None
    try:
        if sigint_after_s is not None:
            moment = srv.hostile_started if sigint_on == "started" else srv.hostile_written
            assert moment.wait(30), f"the client never got to the hostile reply ({sigint_on})"
            time.sleep(sigint_after_s)
            proc.send_signal(stop)
            sent = time.monotonic()
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()  # until the client closes it: it is exiting
        rss._read()  # the last reading, as late as it can be (VmHWM only grows)
        code = proc.wait(timeout=30)
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
    peak = rss.stop()
    js = out / "doc.json"
    return Run(
        code=code,
        stderr=stderr,
        peak_rss_mb=peak,
        json_bytes=js.stat().st_size if js.exists() else None,
        doc=json.loads(js.read_text()) if js.exists() else None,
        sigint_latency_s=None if sent is None else ended - sent,
    )


RUNAWAYS = [
    pytest.param("huge_stream", "openai", "openai", {}, id="openai-stream-40MB"),
    pytest.param("huge_body", "runpod", "runpod-chandra", {"unit": CHANDRA_UNIT}, id="runpod-chandra-40MB"),
]


@pytest.mark.parametrize(("behaviour", "contract", "backend", "kw"), RUNAWAYS)
def test_a_40mb_runaway_reply_keeps_the_client_small_and_the_page_not_ok(
    behaviour: str, contract: str, backend: str, kw: dict[str, Any], pdf2: Path, tmp_path: Path
) -> None:
    with HostileServer(behaviour, contract=contract, size=RUNAWAY, delta_bytes=4000, **kw) as srv:  # type: ignore[arg-type]
        run = _ocr(srv, backend, pdf2, tmp_path / "out")
    print(f"peak RSS {run.peak_rss_mb:.0f} MB, JSON {run.json_bytes} bytes")
    assert 30 < run.peak_rss_mb < 600, run.peak_rss_mb  # (over 30 MB: it was measured at all)
    assert run.json_bytes is not None and run.json_bytes < 2 * MB, run.json_bytes
    assert run.doc is not None
    (page,) = run.doc["pages"]
    assert page["status"] == "failed" and page["error"]["cause"] == "reply_too_large", page
    assert run.code == 1, run.stderr
    failed = [line for line in run.stderr.splitlines() if line.startswith("failed ")]
    assert len(failed) == 1 and "more than max_tokens allow" in failed[0], run.stderr
    assert "Traceback" not in run.stderr


MOMENTS = [
    # a job queued forever, its page's retry never comes: Ctrl-C while polling (once the client
    # was told the job's id: signalled before, on a busy machine, it had no job to cancel)
    pytest.param("in_queue_forever", "runpod", "runpod-chandra", {}, "written", 0.3, 2, id="job-queued-forever"),
    # a 40 MB stream trickling in: Ctrl-C while it is read
    pytest.param("huge_stream", "openai", "openai", {"delay_s": 0.002, "delta_bytes": 200}, "started", 0.3, 2,
                 id="reading-a-giant-stream"),
    # a giant reply just under the cap (Chandra HTML, 0.7 MB): Ctrl-C while it arrives, and once
    # it is all sent, while the client reads and parses it (dialect, repetition checks, trimming)
    pytest.param("huge_body", "runpod", "runpod-chandra", {"unit": CHANDRA_UNIT, "size": 700_000}, "started",
                 0.0, 2, id="receiving-a-giant-reply"),
    pytest.param("huge_body", "runpod", "runpod-chandra", {"unit": CHANDRA_UNIT, "size": 700_000}, "written",
                 0.02, 2, id="processing-a-giant-reply"),
    # 40 MB runaways at full speed, page after page: 1 s in, Ctrl-C (it was ignored for tens of
    # seconds while a giant reply was decoded and trimmed on the event loop).  Enough pages that
    # the run is still going then on an idle machine (40 pages finished in 1.7 s once replies
    # were capped, so the signal could come after the end)
    pytest.param("huge_body", "runpod", "runpod-chandra", {"unit": CHANDRA_UNIT}, "started", 1.0, 400,
                 id="40MB-runaways-at-full-speed"),
]


#: how a run is stopped from outside: Ctrl-C, and SIGTERM (``timeout``, ``docker stop``,
#: Kubernetes, systemd, a batch scheduler), which ended the process at once, writing nothing and
#: leaving the RunPod jobs in flight to run (and bill) on
STOPS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


@pytest.mark.parametrize("stop", list(STOPS), ids=[s.name for s in STOPS])
@pytest.mark.parametrize(("behaviour", "contract", "backend", "kw", "on", "after_s", "pages"), MOMENTS)
def test_ctrl_c_ends_the_run_within_2s_writing_what_finished(
    behaviour: str, contract: str, backend: str, kw: dict[str, Any], on: str, after_s: float, pages: int,
    stop: signal.Signals, tmp_path: Path,
) -> None:
    """The first page is answered normally, the others meet the hostile server.  SIGINT (or
    SIGTERM) at that moment: exit 130 (143) within 2 s, the JSON written with page 1 done and the
    others failed, but for a giant reply that was all in hand (parsed and being written to the
    cache) as the signal came: that page is kept, degraded (what it says is repeated), as every
    reply in hand is."""
    healthy = CHANDRA_OK if backend == "runpod-chandra" else "# A healthy page\n\nThis page came back normally."
    with HostileServer(behaviour, contract=contract, healthy_first=1, healthy_text=healthy,  # type: ignore[arg-type]
                       **{"size": RUNAWAY, **kw}) as srv:
        run = _ocr(srv, backend, _pdf(tmp_path / "doc.pdf", pages), tmp_path / "out", pages=f"1-{pages}",
                   sigint_after_s=after_s, sigint_on=on, extra=("--concurrency", "1"), stop=stop)
        cancels = srv.cancels
    print(f"{stop.name} latency {run.sigint_latency_s:.2f} s")
    code, said = STOPS[stop]
    assert run.code == code, run.stderr
    assert run.sigint_latency_s is not None and run.sigint_latency_s < 2.0, run.sigint_latency_s
    assert f"{said}: wrote 1 document(s)" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert run.doc is not None, run.stderr
    statuses = [p["status"] for p in run.doc["pages"]]
    assert len(statuses) == pages and statuses[0] == "ok", run.doc["pages"]
    for page in run.doc["pages"][1:]:
        kept = behaviour == "huge_body" and page["status"] == "degraded" and page["page"] == 2
        assert kept or page["status"] == "failed", page
    if behaviour == "in_queue_forever":
        assert cancels >= 1  # the queued job was cancelled on the way out


def test_debug_never_changes_the_exit_code(tmp_path: Path) -> None:
    """--debug adds the traceback; the exit code stays 2 for unusable input."""
    missing = tmp_path / "missing.pdf"
    for flags in ([], ["--debug"]):
        run = subprocess.run([sys.executable, "-m", "ocrclient.cli", "convert", str(missing), *flags],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, (flags, run.returncode, run.stderr)
        assert ("Traceback" in run.stderr) == bool(flags), run.stderr


def test_debug_keeps_exit_2_when_the_run_is_aborted(tmp_path: Path) -> None:
    """A 401 stops the run (RunAborted): exit 2, with or without --debug."""
    from ocrclient.testing import FaultPlan, OpenAISimulator

    pdf = write_pdf(tmp_path / "doc.pdf", [PdfPage(texts=[(20, 100, 12, "x")])])
    with OpenAISimulator(plan=FaultPlan(rates={"http_401": 1.0}), model="m") as sim:
        for flags in ([], ["--debug"]):
            run = subprocess.run(
                [sys.executable, "-m", "ocrclient.cli", "convert", str(pdf), "-o", str(tmp_path / "out"),
                 "--backend", "openai", "--base-url", sim.base_url, "--model", "m", "--no-cache", *flags],
                env={**os.environ, "OCRCLIENT_API_KEY": str(sim.api_key)},
                capture_output=True, text=True, timeout=60,
            )
            assert run.returncode == 2, (flags, run.returncode, run.stderr)


# ---------------------------------------------------------------------------------------------
# CPU-heavy parsing stays off the event loop
# ---------------------------------------------------------------------------------------------


def test_parsing_a_giant_reply_never_blocks_the_event_loop() -> None:
    """A dialect that takes 0.6 s to read a big reply: the event loop keeps ticking meanwhile
    (the scheduler parses big replies in a worker thread)."""
    from ocrclient.dialects.base import PageContent
    from ocrclient.geometry import Frame
    from ocrclient.scheduler import OFF_LOOP_REPLY_CHARS, Scheduler

    from .fakes import make_backend, make_page

    class SlowDialect:
        name = "slow"
        render = None

        def build(self, page: Any, attempt: Any) -> ModelRequest:
            return ModelRequest(body={"max_tokens": 100_000}, frame=Frame(10, 10))

        def parse(self, reply: ModelReply, request: Any) -> PageContent:
            end = time.perf_counter() + 0.6
            while time.perf_counter() < end:  # CPU, holding the GIL between switches
                pass
            return PageContent(markdown=reply.text[:100])

    class Big:
        async def send(self, request: ModelRequest) -> ModelReply:
            return ModelReply(text="x" * (OFF_LOOP_REPLY_CHARS + 1), finish_reason="stop")

        async def health(self) -> Any: ...

        async def aclose(self) -> None: ...

    backend = make_backend(Big(), SlowDialect())
    page = make_page(0)

    async def go() -> float:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())

        async def pages() -> Any:
            yield page

        doc = await Scheduler(backend).run_document("doc", pages())
        done.set()
        await tick
        assert doc.pages[0].status == "ok"
        return max(gaps)

    worst = asyncio.run(go())
    assert worst < 0.3, worst

