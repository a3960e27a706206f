"""A server that cannot be reached for a while (a pod's vLLM restarting or still loading, a Modal
container replaced: 30-90 s) costs time, not pages: an attempt that found no server while none
answered meanwhile does not count against ``max_attempts``.  A 12-second restart failed 16 of 20
pages in 11 s, each queued page burning its four attempts against the closed port.

But the endpoint may find no server only so long (``unreachable_s``, a backend setting, 300 s):
then the run stops, what finished is kept, the pages not done fail with ``endpoint_down`` and a
rerun sends only them.  An endpoint that died mid-run failed its pages wave after wave, each page
waiting out its whole deadline (1800 s) first: at concurrency 8, 16 pages are taken at a time, so
64 pages would take two hours to fail (reckoned from the settings, not timed)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import warnings
from pathlib import Path

import pytest

import ocrclient
from ocrclient import retries
from ocrclient.errors import (
    AuthError,
    BadOutputError,
    EndpointDownError,
    EndpointError,
    PermanentError,
    TransientError,
)
from ocrclient.retries import Reachability, unreachable
from ocrclient.testing import FaultPlan, OpenAISimulator

from .pdfgen import text_pdf

FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.4}


def test_a_restart_of_a_server_that_answered_loses_no_page(tmp_path: Path) -> None:
    """Refused for 3 s mid-run: every page comes back, and the restart is not said as an outage
    (a silence shorter than ``retries.WARN_AFTER_S`` is a retry like any other)."""
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(12)])
    with (
        OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.15)) as sim,
        warnings.catch_warnings(record=True) as said,
    ):
        warnings.simplefilter("always")
        answered = threading.Event()

        def on_event(event: ocrclient.Event) -> None:
            if isinstance(event, ocrclient.PageDone):
                answered.set()

        async def run() -> ocrclient.Document:
            async def restart() -> None:
                await asyncio.to_thread(answered.wait, 30)  # (mid-run: the server had answered)
                await asyncio.to_thread(sim.restart, 3.0)  # refused for 3 s: ~10 tries of each page

            down = asyncio.create_task(restart())
            doc = await ocrclient.aconvert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key,
                                           model="m", cache=False, concurrency=4, max_attempts=2,
                                           scheduler_options=FAST, on_event=on_event)  # fmt: skip
            await down
            return doc

        doc = asyncio.run(run())
    assert sim.restarts == 1
    assert not [w for w in said if "no server answers" in str(w.message)], [str(w.message) for w in said]
    assert [p.status for p in doc.pages] == ["ok"] * 12, [(p.page, p.error) for p in doc.pages if p.error]
    assert doc.stats.retries_by_cause.get("connection", 0) > 4  # (it was refused, and tried again)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # (closed again: nothing listens there)


def _never_reached(backend: str, port: int) -> dict[str, object]:
    url = f"http://127.0.0.1:{port}"
    return {
        "openai": {"backend": "openai", "base_url": f"{url}/v1", "api_key": "k", "model": "m"},
        "runpod": {"backend": "runpod", "base_url": f"{url}/v2", "endpoint_id": "ep", "api_key": "k", "model": "m"},
        "ocular": {"backend": "runpod-trocr", "transport": "ocular", "base_url": url, "api_key": "k"},
    }[backend]


@pytest.mark.parametrize("backend", ["openai", "runpod", "ocular"])
def test_a_server_never_reached_stops_the_run_once_its_wait_is_over(tmp_path: Path, backend: str) -> None:
    """Every transport alike: no page burns its attempts against the closed port (a server still
    coming up would fail them all), the run waits ``unreachable_s`` for it, said once as a
    warning, then stops with every page failed ``endpoint_down``, none sent, none dropped."""
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"], ["three"]])
    t0 = time.monotonic()
    port = _closed_port()
    # the warning names where (a mistyped port shows there)
    waits = pytest.warns(UserWarning, match=rf"no server answers at the endpoint http://127\.0\.0\.1:{port}\S* .*waiting up to 1 s")
    with waits as said, pytest.raises(ocrclient.RunAborted) as stopped:
        ocrclient.convert(pdf, **_never_reached(backend, port), cache=False, max_attempts=2,  # type: ignore[arg-type]
                          scheduler_options={**FAST, "unreachable_s": 1.0})  # fmt: skip
    took = time.monotonic() - t0
    assert len([w for w in said if "no server answers" in str(w.message)]) == 1
    exc = stopped.value
    assert isinstance(exc, ocrclient.EndpointDownError) and isinstance(exc, TransientError)
    assert exc.cause == "endpoint_down"
    # (the silence as measured, at least the 1 s waited: on a loaded machine the try that ends it comes later)
    silent = re.search(r"no server answered at the endpoint for (\d+) s", str(exc))
    assert silent and int(silent[1]) >= 1 and "a rerun sends them" in str(exc), str(exc)
    (doc,) = exc.documents
    assert [(p.page, p.status, p.attempts) for p in doc.pages] == [(1, "failed", 0), (2, "failed", 0), (3, "failed", 0)]
    assert {p.error.cause for p in doc.pages if p.error} == {"endpoint_down"}
    assert 1.0 <= took < 20


def test_a_server_still_coming_up_fails_no_page(tmp_path: Path) -> None:
    """Before its first answer too: a server that refuses for 2 s (vLLM loading) is waited for,
    though each page may try only twice (and not said: shorter than ``retries.WARN_AFTER_S``)."""
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(6)])
    with OpenAISimulator(model="m") as sim:
        down = threading.Thread(target=sim.restart, args=(2.0,))
        down.start()
        try:
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always")
                doc = ocrclient.convert(pdf, backend="openai", base_url=sim.base_url, api_key=sim.api_key, model="m",
                                        cache=False, concurrency=3, max_attempts=2,
                                        scheduler_options=FAST)  # fmt: skip
            assert not [w for w in said if "no server answers" in str(w.message)]
        finally:
            down.join()
        temperatures = [body.get("temperature") for body in sim.bodies]
    assert [p.status for p in doc.pages] == ["ok"] * 6
    assert doc.stats.retries_by_cause["connection"] > 6  # (each page tried more than its two attempts)
    # each page went as its first attempt, at the ladder's first temperature: waiting for the
    # server is not the dialect's retry (the pages went at the ladder's last rung)
    assert len(temperatures) == 6 and set(temperatures) == {0.0}, temperatures


def test_an_endpoint_gone_for_good_mid_run_stops_the_run_and_a_rerun_sends_only_what_was_left(
    tmp_path: Path,
) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(12)])
    cache = tmp_path / "cache"
    settings = {"backend": "openai", "model": "m", "concurrency": 2, "cache": cache}
    with OpenAISimulator(model="m", plan=FaultPlan(latency_s=0.1)) as sim:
        done = threading.Event()
        count = [0]

        def on_event(event: ocrclient.Event) -> None:
            if isinstance(event, ocrclient.PageDone) and not event.cached:
                count[0] += 1
                if count[0] == 4:
                    done.set()

        dying = threading.Thread(
            target=lambda: (done.wait(30), sim.restart(5.0))
        )  # (down past the wait)
        dying.start()
        t0 = time.monotonic()
        with (
            pytest.warns(UserWarning, match="no server answers"),
            pytest.raises(ocrclient.RunAborted) as stopped,
        ):
            ocrclient.convert(
                pdf,
                base_url=sim.base_url,
                api_key=sim.api_key,
                on_event=on_event,
                scheduler_options={**FAST, "unreachable_s": 1.0},
                **settings,
            )  # type: ignore[arg-type]
        took = time.monotonic() - t0
        dying.join()  # (up again: the rerun goes to the same endpoint, the same cache keys)
        (doc,) = stopped.value.documents
        assert len(doc.pages) == 12 and [p.page for p in doc.pages] == list(
            range(1, 13)
        )  # none dropped
        ok = [p.page for p in doc.pages if p.status == "ok"]
        left = [p for p in doc.pages if p.status != "ok"]
        assert len(ok) >= 4 and left, (ok, [(p.page, p.status) for p in left])
        assert {p.status for p in left} == {"failed"} and {
            p.error.cause for p in left if p.error
        } == {"endpoint_down"}
        assert took < 5  # (the endpoint came back after 5 s; each page's own deadline is 1800 s)
        before = sim.requests["POST /v1/chat/completions"]
        redone = ocrclient.convert(pdf, base_url=sim.base_url, api_key=sim.api_key, **settings)  # type: ignore[arg-type]
        assert [p.status for p in redone.pages] == ["ok"] * 12
        assert redone.stats.cached == len(ok)
        assert sim.requests["POST /v1/chat/completions"] - before == len(left)


def test_the_cli_says_the_wait_and_stops_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ocr convert``: the warning as one line, the stop as one ``error:`` line, exit 1 (pages
    failed that a rerun may pass, not a configuration error), the JSON summary naming it;
    ``unreachable_s`` from the user's config file."""
    import json

    from typer.testing import CliRunner

    from ocrclient.cli import app

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.toml").write_text("[backends.openai]\nunreachable_s = 1\n", encoding="utf-8")
    monkeypatch.setenv("OCRCLIENT_CONFIG_DIR", str(tmp_path / "conf"))
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]])
    monkeypatch.setenv("OCRCLIENT_API_KEY", "k")
    port = _closed_port()
    args = ["convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", "openai", "--model", "m",
            "--base-url", f"http://127.0.0.1:{port}/v1", "--no-cache", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    err = result.stderr
    assert err.count(f"warning: no server answers at the endpoint http://127.0.0.1:{port}/v1 (") == 1, err
    assert re.search(r"error: run stopped: no server answered at the endpoint for \d+ s", err), err
    assert "Traceback" not in err
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 1 and "no server answered" in summary["error"]
    # ocr bench alike (its run is a conversion)
    bench = CliRunner().invoke(app, ["bench", str(pdf), "--backend", "openai", "--model", "m", "--base-url",
                                     f"http://127.0.0.1:{_closed_port()}/v1", "--json"])  # fmt: skip
    assert bench.exit_code == 1, bench.output
    assert re.search(r"error: run stopped: no server answered at the endpoint for \d+ s", bench.stderr), bench.stderr
    assert "Traceback" not in bench.stderr
    assert json.loads(bench.stdout)["exit_code"] == 1


# -- the rule, unit by unit ----------------------------------------------------------------------


def test_what_finds_no_server_the_whole_kind() -> None:
    assert unreachable(TransientError("refused", cause="connection"))
    assert unreachable(TransientError("HTTP 502", cause="http_502", status=502))
    for answer in (
        TransientError("HTTP 503", cause="http_503", status=503),
        TransientError("HTTP 500", cause="http_500", status=500),
        TransientError("HTTP 504", cause="http_504", status=504),
        TransientError("HTTP 524", cause="http_524", status=524),
        TransientError("HTTP 429", cause="http_429", status=429),
        TransientError("dropped mid-reply", cause="reset"),
        TransientError("no reply in time", cause="timeout"),
        BadOutputError("truncated", cause="length"),
        PermanentError("HTTP 400", cause="http_400", status=400),
        AuthError("HTTP 401", cause="http_401", status=401),
        EndpointError("HTTP 404", cause="http_404", status=404),
        TransientError("pool member a: refused", cause="connection", elsewhere=True),  # (b is up)
        None,
    ):
        assert not unreachable(answer), answer


def test_the_clock_of_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(retries.time, "monotonic", lambda: now[0])
    refused = TransientError("refused", cause="connection")
    reach = Reachability(10.0)
    assert reach.warn_after_s == 5.0  # (WARN_AFTER_S, or half of the limit if less)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a silence not yet WARN_AFTER_S long is not said)
        assert reach.after(refused, 99.0) == (True, None)  # (nothing answered yet: free)
        now[0] = 104.9
        assert reach.after(refused, 104.0) == (True, None)
    now[0] = 105.0
    with pytest.warns(UserWarning, match="waiting up to 10 s"):
        assert reach.after(refused, 104.5) == (True, None)  # (silent 5 s: said, once per outage)
    now[0] = 107.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reach.after(refused, 106.0) == (True, None)
    now[0] = 110.0
    free, down = reach.after(refused, 109.0)
    assert free and isinstance(down, EndpointDownError) and "for 10 s" in str(down)
    now[0] = 131.0
    assert reach.after(None, 130.5) == (False, None)  # an answer: the outage is over
    now[0] = 132.0
    assert reach.after(refused, 130.0) == (False, None)  # counted: an answer came since it started
    assert reach.since is None  # (a server answered meanwhile: another page's, a pool's other member's)
    now[0] = 140.0
    for waited in (TransientError("no reply", cause="timeout"), TransientError("deadline", cause="deadline")):
        assert reach.after(waited, 139.0) == (False, None)  # neither an answer nor an absence
    assert reach.after(refused, 139.0) == (True, None)  # (a new outage begins)
    now[0] = 150.0
    with pytest.warns(UserWarning, match="waiting up to 10 s"):  # (said again, at the latest as it stops)
        free, down = reach.after(refused, 149.0)
    assert free and isinstance(down, EndpointDownError) and "for 10 s" in str(down)
    now[0] = 151.0
    assert reach.after(TransientError("HTTP 503", cause="http_503", status=503), 150.0) == (False, None)
    assert reach.since is None  # a 503 is a server's answer
    assert Reachability(1.0).warn_after_s == 0.5


def test_a_pool_stops_only_when_no_member_has_a_server(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    """One member gone, the other up: the pages go to the other, no warning, no stop.  Both
    gone: the run stops as for one endpoint."""
    pdf = text_pdf(tmp_path / "d.pdf", [[f"page {i}"] for i in range(6)])

    def pool(urls: list[str], key: str = "k") -> Path:
        members = ",\n".join(f'  {{ backend = "openai", base_url = "{u}", api_key = "{key}", label = "m{i}" }}'
                             for i, u in enumerate(urls))  # fmt: skip
        prof = tmp_path / f"pool{len(urls)}{urls[0][-8:-3]}.toml"
        prof.write_text('transport = "pool"\ndialect = "plain"\nmodel = "m"\nunreachable_s = 1\n'
                        f"[transport_options]\nmembers = [\n{members}\n]\n", encoding="utf-8")  # fmt: skip
        return prof

    gone = f"http://127.0.0.1:{_closed_port()}/v1"
    with OpenAISimulator(model="m") as up:
        doc = ocrclient.convert(pdf, backend=str(pool([gone, up.base_url], str(up.api_key))), cache=False,
                                scheduler_options=FAST)  # fmt: skip
    assert [p.status for p in doc.pages] == ["ok"] * 6
    assert not [w for w in recwarn if "no server answers" in str(w.message)]
    with pytest.warns(UserWarning, match="no server answers"), pytest.raises(EndpointDownError):
        ocrclient.convert(pdf, backend=str(pool([gone, f"http://127.0.0.1:{_closed_port()}/v1"])), cache=False,
                          scheduler_options=FAST)  # fmt: skip


@pytest.mark.parametrize("how", ["Client", "convert"])
def test_the_python_apis_outage_warning_is_one_line_on_stderr(how: str, tmp_path: Path) -> None:
    """A script's run against a server that is gone, under Python's own warning display: the
    wait is said in one line naming the package, not a line of ocrclient's source (it came from
    the client's event loop, where no frame of the caller's is: ``scheduler.py:466`` and the
    line of code below it)."""
    import subprocess
    import sys

    pdf = text_pdf(tmp_path / "d.pdf", [["one"]])
    call = ("with ocrclient.Client('openai', **kw) as c:\n    c.convert(pdf)" if how == "Client"
            else "ocrclient.convert(pdf, backend='openai', **kw)")  # fmt: skip
    script = (f"import ocrclient\npdf = {str(pdf)!r}\n"
              f"kw = dict(base_url='http://127.0.0.1:{_closed_port()}/v1', model='m', cache=False, unreachable_s=1.0)\n"
              f"try:\n    " + call.replace("\n", "\n    ") + "\nexcept ocrclient.EndpointDownError:\n    print('stopped')\n")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "stopped", run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "UserWarning: no server answers at the endpoint" in lines[0], run.stderr
    assert ".py" not in lines[0].split("UserWarning")[0], lines
