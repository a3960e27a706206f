"""The README's first Python lines work in every kind of program that may call the library,
none of which has an ``if __name__ == "__main__":`` guard: a plain script, ``python -c``, a
script read from stdin, ``python -m module``, a Jupyter/IPython kernel, and a uvicorn-served
FastAPI app (started by ``python -m uvicorn`` and by a server script).

Each runs as a real subprocess converting a 6-page PDF, so the pages go through the render
pool's worker processes (``pages.pool.pool_for`` renders in process only for a single page; each
run reports how many worker processes its pool started, and must have started one).  The
backend is the generic ``runpod`` one, chosen through ``OCRCLIENT_BACKEND`` and pointed at a
RunPod simulator in this process by its environment variables (the README's ``local`` engine
would add seconds of OCR per page, and the render pool is the same for every backend).

Each run must finish with every page ok and distinct content, exit 0, execute the program's
body once (render workers used to re-run the user's main module), write no traceback and no
"leaked semaphore" warning to stderr, and leave no process behind (the fork server and the
workers run in the program's process group).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocrclient.testing import DialectResponder, RunPodSimulator

from .pdfgen import text_pdf

ROOT = Path(__file__).resolve().parents[1]
PAGES = 6
TIMEOUT_S = 60
CLOUD_VARS = re.compile(r"^(RUNPOD_|OCRCLIENT_|MODAL_)")


def _readme_lines() -> str:
    """The README's first Python lines, up to and including the first ``ocrclient.convert``."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    lines = []
    for line in block.splitlines():
        lines.append(line)
        if "ocrclient.convert(" in line:
            break
    code = "\n".join(lines) + "\n"
    assert "import ocrclient" in code and 'ocrclient.convert("report.pdf")' in code, code
    return code


#: runs first: counts executions of the program body and records, for each render pool that
#: closes, how many workers it started, threads or processes (the pool must really be used)
PROBE = """\
print("BODY-RAN", flush=True)
import ocrclient.pages as _pages
_workers = []
_close = getattr(_pages.RenderPool, "_unprobed_close", _pages.RenderPool.close)
_pages.RenderPool._unprobed_close = _close
def _spy(self):
    if self._executor is not None:
        _ex = self._executor
        _workers.append(len(getattr(_ex, "_processes", None) or getattr(_ex, "_threads", ())))
    _close(self)
_pages.RenderPool.close = _spy
"""

REPORT = """\
import json as _json
print("RESULT " + _json.dumps({"pages": [[p.page, p.status, p.markdown] for p in doc.pages],
                               "workers": _workers}), flush=True)
"""

PROGRAM = PROBE + _readme_lines() + REPORT


@pytest.fixture(scope="module")
def sim() -> Iterator[RunPodSimulator]:
    with RunPodSimulator(responder=DialectResponder("plain")) as s:
        yield s


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    text_pdf(tmp_path / "report.pdf", [[f"Page {i} of the report"] for i in range(1, PAGES + 1)])
    return tmp_path


@pytest.fixture
def env(workdir: Path, sim: RunPodSimulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not CLOUD_VARS.match(k)}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
        PYTHONUNBUFFERED="1",
        OCRCLIENT_BACKEND="runpod",
        RUNPOD_BASE_URL=sim.base_url,
        RUNPOD_ENDPOINT_ID=sim.endpoint_id,
        RUNPOD_API_KEY=sim.api_key,
        OCRCLIENT_MODEL="sim",
        OCRCLIENT_CACHE_DIR=str(workdir / "cache"),
        OCRCLIENT_CONFIG_DIR=str(workdir / "config"),
    )
    return env


def _check_pages(pages: list[list[Any]]) -> None:
    assert [p[0] for p in pages] == list(range(1, PAGES + 1)), pages
    assert [p[1] for p in pages] == ["ok"] * PAGES, pages
    markdown = [p[2] for p in pages]
    assert all(md.strip() for md in markdown) and len(set(markdown)) == PAGES, markdown


def _check_stderr(err: str) -> None:
    assert "Traceback" not in err, err
    assert "leaked semaphore" not in err and "leaked" not in err, err
    assert "RenderPoolError" not in err, err


def _result(out: str) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, out
    return dict(json.loads(lines[0][len("RESULT ") :]))


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid`` (none known without ``/proc``)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _reap_group(pgid: int) -> list[int]:
    """Wait up to 10 s for process group ``pgid`` to empty; kill what is left (so a failing
    run leaves nothing behind) and return it."""
    deadline = time.monotonic() + 10
    while (left := _group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    return left


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], stdin: Path | None = None
) -> tuple[int, str, str]:
    """Run ``cmd`` in its own process group; also asserts that the group is empty after it."""
    with open(stdin or os.devnull) as fh:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=fh, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        finally:
            left = _reap_group(proc.pid)
    assert not left, (f"processes left behind: {left}", out, err)
    return proc.returncode, out, err


def _check_run(code: int, out: str, err: str) -> None:
    assert code == 0, (code, out, err)
    _check_stderr(err)
    _check_output(out)


def _check_output(out: str) -> None:
    assert out.count("BODY-RAN") == 1, out  # the program ran once: no worker re-ran it
    result = _result(out)
    _check_pages(result["pages"])
    assert len(result["workers"]) == 1 and result["workers"][0] >= 1, result


# -- plain interpreters ------------------------------------------------------------------------


def _script_cmd(mode: str, workdir: Path) -> tuple[list[str], Path | None]:
    if mode == "script":
        (workdir / "readme.py").write_text(PROGRAM)
        return [sys.executable, "readme.py"], None
    if mode == "-c":
        return [sys.executable, "-c", PROGRAM], None
    if mode == "stdin":
        (workdir / "readme.py").write_text(PROGRAM)
        return [sys.executable, "-"], workdir / "readme.py"
    assert mode == "-m"
    (workdir / "readme_mod.py").write_text(PROGRAM)
    return [sys.executable, "-m", "readme_mod"], None


@pytest.mark.parametrize("mode", ["script", "-c", "stdin", "-m"])
def test_readme_lines_without_main_guard(mode: str, workdir: Path, env: dict[str, str]) -> None:
    cmd, stdin = _script_cmd(mode, workdir)
    _check_run(*_run(cmd, workdir, env, stdin))


def test_script_that_closes_nothing_exits_cleanly(workdir: Path, env: dict[str, str]) -> None:
    """A script that leaves a shared pool open and abandons two page streams half-way (one on
    a private pool, one on bytes spilled to a temporary directory) exits 0 and quietly, its
    worker processes gone and the temporary directory removed."""
    script = """\
from ocrclient.imaging import RenderSpec
from ocrclient.pages import RenderPool, iter_pages
pool = RenderPool(workers=2, isolated=True)
spilled = iter_pages(open("report.pdf", "rb").read(), RenderSpec(dpi=50), pool=pool)
private = iter_pages("report.pdf", RenderSpec(dpi=50))
assert next(spilled).error is None and next(private).error is None
workers = [p.pid for p in pool._executor._processes.values()]
print("STATE", pool._tmpdir, *workers, flush=True)
"""
    (workdir / "noclose.py").write_text(script)
    code, out, err = _run([sys.executable, "noclose.py"], workdir, env)
    assert code == 0 and err == "", (code, out, err)
    [state] = [line.split()[1:] for line in out.splitlines() if line.startswith("STATE")]
    assert len(state) >= 2 and not Path(state[0]).exists(), state  # workers ran; spill removed


# -- a Jupyter / IPython kernel ----------------------------------------------------------------

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_convert_inside_a_running_event_loop_refuses_outside_a_kernel(workdir: Path) -> None:
    """Inside ``asyncio.run(...)`` (or a FastAPI ``async def`` handler) a blocking ``convert``
    would stall every other task of the loop: it raises UsageError naming the async twin, before
    any work, with no "coroutine was never awaited" warning.  (This test used to expect the call
    to block the loop and return; issue 17 makes that an error outside a notebook kernel.)"""
    import warnings

    import ocrclient

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a never-awaited coroutine would warn
        with pytest.raises(ocrclient.UsageError, match=r"ocrclient\.aconvert"):
            ocrclient.convert(str(workdir / "report.pdf"), backend="runpod", cache=False)
    assert isinstance(ocrclient.UsageError("x"), RuntimeError)


async def test_convert_in_a_kernel_loop_blocks_and_returns(
    workdir: Path, sim: RunPodSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a notebook cell does: the synchronous ``convert`` called in a thread whose event
    loop is a Jupyter kernel's (``asyncio.run`` refuses there).  It returns the document;
    callbacks see the caller's context variables; the caller's loop is blocked meanwhile, as with
    any blocking call.  (The kernel is detected by its shell; a real kernel runs in
    ``test_readme_lines_in_an_ipython_kernel``.)"""
    import ocrclient
    from ocrclient.scheduler import PageDone

    monkeypatch.setattr("ocrclient.loops.in_ipython_kernel", lambda: True)
    _REQUEST_ID.set("req-42")
    seen: set[str] = set()

    def on_event(event: object) -> None:
        if isinstance(event, PageDone):
            seen.add(_REQUEST_ID.get())

    doc = ocrclient.convert(
        str(workdir / "report.pdf"), backend="runpod", base_url=sim.base_url,
        endpoint_id=sim.endpoint_id, api_key=sim.api_key, model="sim", cache=False,
        on_event=on_event,
    )  # fmt: skip
    _check_pages([[p.page, p.status, p.markdown] for p in doc.pages])
    assert seen == {"req-42"}, seen


def test_kernel_detection_needs_a_kernel_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an IPython shell with a kernel (ipykernel's) lifts the rule: not a plain process,
    not a terminal IPython shell."""
    import types

    from ocrclient.loops import in_ipython_kernel

    fake = types.ModuleType("IPython")
    monkeypatch.setitem(sys.modules, "IPython", fake)
    fake.get_ipython = lambda: None  # type: ignore[attr-defined]
    assert not in_ipython_kernel()
    fake.get_ipython = lambda: types.SimpleNamespace(kernel=None)  # type: ignore[attr-defined]
    assert not in_ipython_kernel()
    fake.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # type: ignore[attr-defined]
    assert in_ipython_kernel()


async def test_interrupt_while_waiting_in_a_running_loop_cancels_the_work() -> None:
    """A notebook's stop button (SIGINT) while ``convert`` waits on its client's loop thread
    (:class:`ocrclient.loops.LoopThread`): the conversion is cancelled and wound down, and
    KeyboardInterrupt reaches the caller.  (ipykernel
    runs a cell with Python's default SIGINT handler, installed here the same way; this loop's
    runner has its own, which only cancels its main task.)"""
    import asyncio

    from ocrclient.loops import LoopThread

    events: list[str] = []

    async def work() -> None:
        try:
            events.append("started")
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    timer = threading.Timer(0.3, signal.raise_signal, args=(signal.SIGINT,))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    loop_thread = LoopThread()
    try:
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            loop_thread.call(work())
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
        loop_thread.stop()
    assert events == ["started", "cancelled"] and time.monotonic() - t0 < 10, events


def test_readme_lines_in_an_ipython_kernel(workdir: Path, env: dict[str, str]) -> None:
    """Two cells converting in a real ipykernel (its event loop runs in the thread that runs
    the cell, where ``asyncio.run`` refuses), the second reusing the warm fork server."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    with open(workdir / "kernel.err", "w") as kernel_err:
        km.start_kernel(cwd=str(workdir), env=env, stderr=kernel_err)
        pgid = km.provisioner.pgid  # type: ignore[union-attr]  # its own session, on POSIX
        try:
            kc = km.client()
            kc.start_channels()
            try:
                kc.wait_for_ready(timeout=60)
                outs = []
                for _ in range(2):
                    # (the second cell renders too: without the first's recall entries its
                    # cached pages are rendered to be looked up, on the warm pool)
                    shutil.rmtree(workdir / "cache" / "recall", ignore_errors=True)
                    stream: list[str] = []
                    errors: list[Any] = []

                    def hook(
                        msg: dict[str, Any], stream: list[str] = stream, errors: list[Any] = errors
                    ) -> None:
                        if msg["msg_type"] == "stream":
                            stream.append(msg["content"]["text"])
                        elif msg["msg_type"] == "error":
                            errors.append(msg["content"])

                    reply = kc.execute_interactive(PROGRAM, timeout=TIMEOUT_S, output_hook=hook)
                    assert reply["content"]["status"] == "ok" and not errors, (
                        reply["content"],
                        errors,
                    )
                    outs.append("".join(stream))
            finally:
                kc.stop_channels()
        finally:
            km.shutdown_kernel(now=False)
            left = _reap_group(pgid)
    for out in outs:
        _check_output(out)
    _check_stderr((workdir / "kernel.err").read_text())
    assert not left, f"processes left behind: {left}"


# -- a web server ------------------------------------------------------------------------------

APP = (
    PROBE
    + """\
import ocrclient
from fastapi import FastAPI

app = FastAPI()


def _summary(doc):
    return {"pages": [[p.page, p.status, p.markdown] for p in doc.pages], "workers": _workers[-1]}


@app.get("/convert")
def convert():  # a sync handler: runs in the server's thread pool
    return _summary(ocrclient.convert("report.pdf"))


@app.get("/aconvert")
async def aconvert():  # an async handler: on the server's event loop
    return _summary(await ocrclient.aconvert("report.pdf"))
"""
)

SERVER_SCRIPT = APP + 'import uvicorn\nuvicorn.run(app, host="127.0.0.1", port=0)\n'


@pytest.mark.parametrize("launch", ["python -m uvicorn app:app", "python server.py"])
def test_readme_lines_in_a_uvicorn_fastapi_app(
    launch: str, workdir: Path, env: dict[str, str]
) -> None:
    """Requests, two of them at once, convert in the handlers of a FastAPI app served by
    uvicorn; the server then stops on SIGINT (as on Ctrl-C) and exits 0."""
    import httpx

    (workdir / "app.py").write_text(APP)
    (workdir / "server.py").write_text(SERVER_SCRIPT)
    if launch == "python server.py":
        cmd = [sys.executable, "server.py"]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    err_lines: list[str] = []
    ready = threading.Event()
    port: list[int] = []

    def read_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            m = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port.append(int(m.group(1)))
                ready.set()
        ready.set()

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    try:
        assert ready.wait(60) and port, "".join(err_lines)
        base = f"http://127.0.0.1:{port[0]}"
        results: dict[str, Any] = {}

        def call(path: str) -> None:
            results[path] = httpx.get(base + path, timeout=TIMEOUT_S / 2)

        calls = [threading.Thread(target=call, args=(p,)) for p in ("/convert", "/aconvert")]
        for t in calls:
            t.start()
        for t in calls:
            t.join(TIMEOUT_S)
        call("/convert")  # once more, alone: a pool after the first two closed
        for path in ("/convert", "/aconvert"):
            resp = results[path]
            assert resp.status_code == 200, (path, resp.text, "".join(err_lines))
            _check_pages(resp.json()["pages"])
            assert resp.json()["workers"] >= 1, resp.json()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        finally:
            left = _reap_group(proc.pid)
        reader.join(10)
    err = "".join(err_lines)
    assert proc.returncode == 0 and not left, (proc.returncode, left, err)
    assert out.count("BODY-RAN") == 1, out
    _check_stderr(err)
