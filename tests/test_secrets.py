"""Secrets never leak (issue 8, item 5).

Distinctive key values (``sk-SECRET-<random hex>``) are set for ``OCRCLIENT_API_KEY``,
``RUNPOD_API_KEY``, a custom ``--api-key-env`` variable (one whose name has no KEY/SECRET/TOKEN in
it, so only explicit registration can mask it), ``MODAL_KEY`` and ``MODAL_SECRET``, and runs go
through the simulated vLLM server in direct, RunPod-proxy and Modal modes with 401/429/500 faults,
a server that echoes the request headers back in its error bodies, and URLs that carry the key in
a query string.  Then every place a secret could surface is searched for it: log records at
DEBUG, exception messages (and the full chained traceback ``--debug`` would print), the JSON and
markdown outputs and anything else written to the output directory (manifest), the cache
directory, ``ocr config`` / ``ocr health`` output, and the CLI's stdout/stderr with ``--verbose``
and ``--debug``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import stat
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocrclient.errors import OcrError
from ocrclient.testing import FaultPlan, OpenAISimulator

from .pdfgen import text_pdf
from .test_bad_inputs import Run, build_pdf, ocr

# ---------------------------------------------------------------------------------------------
# the secrets
# ---------------------------------------------------------------------------------------------


def _secret(prefix: str) -> str:
    return f"{prefix}-SECRET-{secrets.token_hex(16)}"


KEY = _secret("sk")  # the key the server accepts, in the custom variable
OCR_KEY = _secret("sk")  # OCRCLIENT_API_KEY
RUNPOD_KEY = _secret("rp")  # RUNPOD_API_KEY
MODAL_KEY = _secret("wk")
MODAL_SECRET = _secret("ws")
CONFIG_KEY = _secret("sk")  # only ever in a user config file
URL_SECRET = _secret("up")  # only ever inside a base URL (its password, or a query value)
#: a variable name with no KEY / SECRET / TOKEN / PASSWORD in it: the env scan of redact() cannot
#: find it, only the transport's own register_secret can
CUSTOM_VAR = "OCR_CREDENTIAL_FOR_TEST"
ALL = {
    "custom": KEY,
    "OCRCLIENT_API_KEY": OCR_KEY,
    "RUNPOD_API_KEY": RUNPOD_KEY,
    "MODAL_KEY": MODAL_KEY,
    "MODAL_SECRET": MODAL_SECRET,
    "config": CONFIG_KEY,
    "url": URL_SECRET,
}


def leaks(text: str) -> list[str]:
    """Which secrets appear in ``text``, whole or as their random part's first 12 characters
    (so a truncated or re-prefixed copy is caught too)."""
    found = []
    for name, value in ALL.items():
        if value in text or value.rsplit("-", 1)[1][:12] in text:
            found.append(name)
    return found


def scan_dir(root: Path) -> dict[str, list[str]]:
    """Every file under ``root`` -> the secrets it holds (only files that hold one)."""
    hits: dict[str, list[str]] = {}
    for f in root.rglob("*"):
        if f.is_file():
            found = leaks(f.read_bytes().decode("utf-8", "replace"))
            if found:
                hits[str(f.relative_to(root))] = found
    return hits


def full_error_text(exc: BaseException) -> str:
    """What a traceback (``--debug``) shows: every chained exception's message."""
    return "".join(traceback.format_exception(exc))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        CUSTOM_VAR: KEY,
        "OCRCLIENT_API_KEY": OCR_KEY,
        "RUNPOD_API_KEY": RUNPOD_KEY,
        "MODAL_KEY": MODAL_KEY,
        "MODAL_SECRET": MODAL_SECRET,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("doc") / "doc.pdf"
    path.write_bytes(build_pdf([(612, 792)] * 4))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# a message cut short across a secret: no piece of it is left, wherever the cut falls
# ---------------------------------------------------------------------------------------------

CUT_SECRET = _secret("ct")  # registered by whoever read it
ENV_CUT_SECRET = _secret("ce")  # only in a *_API_KEY variable (redact's environment scan)


def longest_piece(text: str, secret: str) -> int:
    """The most characters of ``secret`` in a row that ``text`` holds."""
    best = 0
    for i in range(len(secret)):
        while i + best < len(secret) and secret[i : i + best + 1] in text:
            best += 1
    return best


@pytest.fixture(params=["registered", "environment"])
def cut_secret(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    from ocrclient.secrets import register_secret

    if request.param == "registered":
        register_secret(CUT_SECRET)
        return CUT_SECRET
    monkeypatch.setenv("OCR_TEST_CUT_API_KEY", ENV_CUT_SECRET)
    return ENV_CUT_SECRET


def test_redact_masks_a_secret_cut_anywhere(cut_secret: str) -> None:
    """Every cut of a message quoting the secret, kept head (with or without an ellipsis) or
    kept tail: what redact leaves holds fewer than CUT_PIECE of its characters in a row."""
    from ocrclient.secrets import CUT_PIECE, redact

    msg = f"The request was rejected: {'x' * 20} key {cut_secret} was refused."
    for n in range(len(msg) + 1):
        for text in (msg[:n], msg[:n] + "...", msg[:n] + "\u2026", "..." + msg[n:], msg[n:]):
            assert longest_piece(redact(text), cut_secret) < CUT_PIECE, text
    assert redact("a plain message about nothing...") == "a plain message about nothing..."


#: what a server may answer, quoting a secret after ``pad`` characters of text
SERVER_SAYS = {
    "plain text": lambda pad, s: f"{pad} Incorrect API key provided: {s} (check it)",
    "OpenAI error": lambda pad, s: json.dumps({"error": {"message": f"{pad} key {s}", "type": "BadRequestError"}}),
    "vLLM error object": lambda pad, s: json.dumps({"object": "error", "message": f"{pad} key {s}", "type": "x"}),
    "FastAPI detail": lambda pad, s: json.dumps({"detail": [{"loc": ["body", "image"], "msg": f"{pad} {s}"}]}),
    "HTML page": lambda pad, s: f"<html><head><title>{pad} {s}</title></head><body>x</body></html>",
    "RunPod job error": lambda pad, s: json.dumps({"error_type": "<class 'ValueError'>", "error_message": f"{pad} {s}"}),
    "worker quoting vLLM": lambda pad, s: "vLLM returned HTTP 400: " + json.dumps({"error": {"message": f"{pad} {s}"}}),
}


@pytest.mark.parametrize("says", list(SERVER_SAYS))
def test_every_message_made_of_a_server_reply_is_cut_after_masking(says: str, cut_secret: str) -> None:
    """error_message (every HTTP transport's errors) and decode_job_error (a RunPod job's), the
    secret at every offset around the 300-character cut: their message, before anything masks
    it again (it may be embedded mid-sentence), holds no piece of the secret."""
    from ocrclient.secrets import CUT_PIECE
    from ocrclient.transports.http import error_message
    from ocrclient.transports.runpod_jobs import decode_job_error

    for width in range(0, 420, 3):
        body = SERVER_SAYS[says]("y" * width, cut_secret)
        for made in (error_message(body), decode_job_error(body)[1]):
            assert longest_piece(made, cut_secret) < CUT_PIECE, (width, made)


# ---------------------------------------------------------------------------------------------
# in-process runs: logs at DEBUG, exceptions, documents, cache
# ---------------------------------------------------------------------------------------------


def _page_key(body: Any) -> str:
    """Fault-plan key = the page (its messages), not the sampling: a retry at another temperature
    is the same page, so ``max_faults_per_key=1`` guarantees the second attempt succeeds."""
    from ocrclient.testing.faults import body_key

    return body_key(body.get("messages") if isinstance(body, dict) else body)


def _sim(mode: str, model: str = "sim", **kwargs: Any) -> OpenAISimulator:
    extra: dict[str, Any] = {}
    if mode == "modal":
        extra = {"modal_key": MODAL_KEY, "modal_secret": MODAL_SECRET}
    if mode == "proxy":
        extra = {"proxy_idle_s": 5.0}
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("key_fn", _page_key)
    return OpenAISimulator(mode=mode, model=model, **extra, **kwargs)  # type: ignore[arg-type]


async def _convert(pdf: Path, base_url: str, cache: Path, mode: str = "direct", **over: Any) -> Any:
    """Convert through the generic openai backend with the key in the custom variable."""
    from ocrclient.api import aconvert

    topts = {"modal": True} if mode == "modal" else {}
    return await aconvert(
        pdf,
        backend="openai",
        base_url=base_url,
        base_url_env="",
        model="sim",
        api_key_env=CUSTOM_VAR,
        render={"dpi": 30},
        max_attempts=3,
        transport_options=topts,
        cache=cache,
        scheduler_options={"backoff_initial_s": 0.01, "backoff_max_s": 0.05, **over.pop("scheduler_options", {})},
        **over,
    )


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for rec in caplog.records:
        parts.append(rec.getMessage())
        if rec.exc_info and rec.exc_info[1] is not None:
            parts.append(full_error_text(rec.exc_info[1]))
    return "\n".join(parts)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    for name in ("", "ocrclient", "httpx", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog


@pytest.mark.parametrize("mode", ["direct", "proxy", "modal"])
async def test_run_with_faults_leaks_nothing(
    mode: str, env: dict[str, str], pdf: Path, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    plan = FaultPlan(
        seed=5, rates={"http_429": 0.3, "http_500": 0.3}, max_faults_per_key=1, retry_after_s=0.01
    )
    with _sim(mode, plan=plan) as sim:
        doc = await _convert(pdf, sim.base_url, tmp_path / "cache", mode)
    assert [p.status for p in doc.pages] == ["ok"] * 4
    assert plan.injected["http_429"] + plan.injected["http_500"] >= 1, "faults were injected"
    if mode == "modal":
        assert sim.statuses[401] == 0  # the Modal proxy credentials were really sent
    logs = _log_text(debug_logs)
    assert any(r.levelno == logging.DEBUG for r in debug_logs.records), "DEBUG logging was on"
    assert leaks(logs) == [], logs
    assert leaks(doc.model_dump_json()) == []
    from ocrclient.exporters.markdown import render

    assert leaks(render(doc)) == []
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 4  # the cache was written...
    assert scan_dir(tmp_path / "cache") == {}  # ...and holds no secret


class EchoingSimulator(OpenAISimulator):
    """A careless server: its error bodies quote the request headers (Authorization, Modal-*)."""

    def __init__(self, *, status: int = 400, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status = status

    def dispatch(self, req: Any) -> Any:
        if req.method == "POST":
            headers = "; ".join(f"{k}: {v}" for k, v in req.headers.items())
            return lambda emit: self.emit_error(
                emit, self.status, f"rejected request with headers {headers}"
            )
        return super().dispatch(req)


@pytest.mark.parametrize("mode", ["direct", "modal"])
async def test_server_echoing_the_request_leaks_nothing(
    mode: str, env: dict[str, str], pdf: Path, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    extra = {"modal_key": MODAL_KEY, "modal_secret": MODAL_SECRET} if mode == "modal" else {}
    with EchoingSimulator(status=400, mode=mode, model="sim", api_key=KEY, **extra) as sim:
        doc = await _convert(pdf, sim.base_url, tmp_path / "cache", mode)
    assert sim.requests["POST /v1/chat/completions"] >= 4
    assert [p.status for p in doc.pages] == ["failed"] * 4
    message = doc.pages[0].error.message if doc.pages[0].error else ""
    assert "rejected request with headers" in message and "***" in message  # echoed, then masked
    assert leaks(doc.model_dump_json()) == []
    assert leaks(_log_text(debug_logs)) == []
    assert scan_dir(tmp_path / "cache") == {}


@pytest.mark.parametrize("how", ["wrong key", "echoed 401"])
async def test_auth_failure_error_leaks_nothing(
    how: str, env: dict[str, str], pdf: Path, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    if how == "wrong key":
        sim = _sim("direct", api_key="sk-the-server-wants-another-key")
    else:
        sim = EchoingSimulator(status=401, model="sim", api_key=KEY)
    with sim, pytest.raises(OcrError) as info:
        await _convert(pdf, sim.base_url, tmp_path / "cache")
    exc = info.value
    assert "401" in str(exc)
    assert leaks(str(exc)) == [] and leaks(repr(exc)) == []
    assert leaks(_log_text(debug_logs)) == []


async def test_auth_failure_traceback_chain_leaks_nothing(
    env: dict[str, str], pdf: Path, tmp_path: Path
) -> None:
    """What ``--debug`` prints is the whole chain (``raise ... from exc``): the SDK's own
    exception, whose message quotes the server's error body, must not carry the key either."""
    with (
        EchoingSimulator(status=401, model="sim", api_key=KEY) as sim,
        pytest.raises(OcrError) as info,
    ):
        await _convert(pdf, sim.base_url, tmp_path / "cache")
    assert leaks(full_error_text(info.value)) == []


def _records_text(caplog: pytest.LogCaptureFixture, *, ours: bool) -> str:
    """Log text of ocrclient's own loggers (``ours``) or of the third-party ones."""
    parts = []
    for rec in caplog.records:
        if rec.name.startswith("ocrclient") == ours:
            parts.append(rec.getMessage())
            if rec.exc_info and rec.exc_info[1] is not None:
                parts.append(full_error_text(rec.exc_info[1]))
    return "\n".join(parts)


async def _convert_to_key_url(pdf: Path, tmp_path: Path) -> tuple[Any, str]:
    """A URL to nowhere carrying keys in its query string: every attempt fails to connect, and
    the run stops once ``unreachable_s`` is over.  The stopped run's document, and all it said
    (the warning that it waits, the error that stopped it)."""
    import ocrclient

    url = f"http://127.0.0.1:{_free_port()}/v1?api_key={KEY}&auth={OCR_KEY}"
    waits = pytest.warns(UserWarning, match="no server answers")
    with waits as said, pytest.raises(ocrclient.RunAborted) as stopped:
        await _convert(pdf, url, tmp_path / "cache", scheduler_options={"unreachable_s": 0.5})
    (doc,) = stopped.value.documents
    return doc, "\n".join([*(str(w.message) for w in said), full_error_text(stopped.value)])


async def test_bad_url_with_key_in_query_string_leaks_nothing(
    env: dict[str, str], pdf: Path, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    doc, said = await _convert_to_key_url(pdf, tmp_path)
    assert [p.status for p in doc.pages] == ["failed"] * 4
    assert doc.pages[0].error is not None and "connection" in doc.pages[0].error.message
    assert "no server answered" in said and leaks(said) == []
    assert leaks(doc.model_dump_json()) == []
    assert leaks(_records_text(debug_logs, ours=True)) == []
    # a URL that is not http(s): a configuration error naming it, masked
    from ocrclient.errors import ConfigError
    from ocrclient.registry import load_backend

    with pytest.raises(ConfigError) as info:
        load_backend(
            "openai",
            base_url=f"ftp://host/v1?key={KEY}",
            base_url_env="",
            model="sim",
            api_key_env=CUSTOM_VAR,
        )
    assert "ftp://" in str(info.value) and leaks(full_error_text(info.value)) == []


async def test_key_in_url_query_is_not_logged_by_http_libraries(
    env: dict[str, str], pdf: Path, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    await _convert_to_key_url(pdf, tmp_path)
    assert leaks(_records_text(debug_logs, ours=False)) == []


def test_secret_config_values_are_masked_in_public_dict(env: dict[str, str]) -> None:
    from ocrclient.config import resolve_config

    cfg = resolve_config("openai", api_key=CONFIG_KEY, base_url="http://127.0.0.1:1/v1")
    assert leaks(repr(cfg)) == [] and leaks(str(cfg.public_dict())) == []
    assert cfg.public_dict()["api_key"] == "***"


# ---------------------------------------------------------------------------------------------
# config files holding a key: readable by others -> a warning naming chmod 600
# ---------------------------------------------------------------------------------------------


def _user_config(mode: int) -> Path:
    folder = Path(os.environ["OCRCLIENT_CONFIG_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(
        f'[backends.openai]\napi_key = "{CONFIG_KEY}"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_group_or_world_readable_key_file_warns_chmod_600(mode: int) -> None:
    from ocrclient.config import resolve_config

    path = _user_config(mode)
    with pytest.warns(UserWarning, match="chmod 600") as rec:
        cfg = resolve_config("openai")
    assert cfg.secret() == CONFIG_KEY  # the key in the file is the one used
    assert str(path) in str(rec[0].message) and leaks(str(rec[0].message)) == []


def test_private_key_file_does_not_warn(recwarn: pytest.WarningsRecorder) -> None:
    from ocrclient.config import resolve_config

    _user_config(0o600)
    resolve_config("openai")
    assert not [w for w in recwarn if "chmod" in str(w.message)]
    assert (
        stat.S_IMODE(Path(os.environ["OCRCLIENT_CONFIG_DIR"], "config.toml").stat().st_mode)
        == 0o600
    )


# ---------------------------------------------------------------------------------------------
# the CLI, as a subprocess
# ---------------------------------------------------------------------------------------------


def _cli_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **env,
        "OCRCLIENT_CACHE_DIR": str(tmp_path / "cache"),
        "OCRCLIENT_CONFIG_DIR": os.environ["OCRCLIENT_CONFIG_DIR"],
    }


def _all_text(run: Run) -> str:
    return run.stdout + "\n" + run.stderr


def test_cli_config_masks_env_and_file_keys(env: dict[str, str], tmp_path: Path) -> None:
    cenv = _cli_env(env, tmp_path)
    for backend in ("openai", "runpod", "runpod-chandra", "modal-lightonocr"):
        run = ocr(["config", "--backend", backend], cenv)
        assert run.code == (2 if json.loads(run.stdout)["refused"] else 0), run.stderr  # ("refused": what convert stops on)
        assert leaks(_all_text(run)) == [], (backend, run.stdout)
        assert '"api_key_set": true' in run.stdout  # the env key was seen, not shown
    # a key in the user config file (world-readable): masked, and the warning names chmod 600
    _user_config(0o644)
    run = ocr(["config", "--backend", "openai"], cenv)
    assert run.code == (2 if json.loads(run.stdout)["refused"] else 0), run.stderr  # ("refused": what convert stops on)
    assert '"api_key": "***"' in run.stdout
    assert "chmod 600" in run.stderr
    assert leaks(_all_text(run)) == []


def _profile(tmp_path: Path, mode: str) -> Path:
    """A user TOML profile (``--backend PATH``) for the generic openai transport + plain dialect."""
    path = tmp_path / f"sim-{mode}.toml"
    modal = "true" if mode == "modal" else "false"
    path.write_text(
        'transport = "openai"\ndialect = "plain"\nmodel = "sim"\n'
        f'api_key_env = "{CUSTOM_VAR}"\n[transport_options]\nmodal = {modal}\n'
    )
    return path


@pytest.mark.parametrize("mode", ["direct", "modal"])
def test_cli_health_leaks_nothing(mode: str, env: dict[str, str], tmp_path: Path) -> None:
    cenv = _cli_env(env, tmp_path)
    profile = str(_profile(tmp_path, mode))
    with _sim(mode) as sim:
        args = ["health", "--backend", profile, "--base-url", sim.base_url]
        ok = ocr([*args, "--json"], cenv)
        bad = ocr(args, {**cenv, CUSTOM_VAR: "sk-not-the-right-one"})
    assert ok.code == 0 and '"ok": true' in ok.stdout, ok.stdout + ok.stderr
    assert bad.code == 2 and "401" in bad.stdout + bad.stderr, bad.stdout + bad.stderr
    for run in (ok, bad):
        assert leaks(_all_text(run)) == [], _all_text(run)
    # a URL carrying the key in its query string, to a port where nothing listens
    url = f"http://127.0.0.1:{_free_port()}/v1?api_key={KEY}"
    down = ocr(["health", "--backend", profile, "--base-url", url], cenv)
    assert down.code == 1 and "Traceback" not in down.stderr
    assert leaks(_all_text(down)) == [], _all_text(down)


def test_cli_health_modal_profile_sends_proxy_auth(env: dict[str, str], tmp_path: Path) -> None:
    """The shipped Modal profile reads MODAL_KEY / MODAL_SECRET; without them: 401, masked."""
    cenv = _cli_env(env, tmp_path)
    with _sim("modal", model="lightonai/LightOnOCR-1B-1025") as sim:
        args = [
            "health",
            "--backend",
            "modal-lightonocr",
            "--base-url",
            sim.base_url,
            "--api-key-env",
            CUSTOM_VAR,
        ]
        ok = ocr(args, cenv)
        bad = ocr(args, {**cenv, "MODAL_SECRET": "ws-wrong-secret-value"})
    assert ok.code == 0, ok.stdout + ok.stderr
    assert bad.code == 2 and "401" in bad.stdout + bad.stderr
    for run in (ok, bad):
        assert leaks(_all_text(run)) == [] and "ws-wrong-secret-value" not in _all_text(run)


def test_cli_honours_ocrclient_model_env(env: dict[str, str], tmp_path: Path) -> None:
    cenv = {**_cli_env(env, tmp_path), "OCRCLIENT_MODEL": "sim"}
    with _sim("direct") as sim:
        run = ocr(
            [
                "health",
                "--backend",
                "openai",
                "--base-url",
                sim.base_url,
                "--api-key-env",
                CUSTOM_VAR,
            ],
            cenv,
        )
    assert run.code == 0, run.stderr


@pytest.mark.parametrize("flags", [["--verbose"], ["--verbose", "--debug"]])
def test_cli_convert_verbose_debug_leaks_nothing(
    flags: list[str], env: dict[str, str], pdf: Path, tmp_path: Path
) -> None:
    """Retries (429/500) and a failing page, logged with --verbose / --debug: no secret on
    stdout, stderr, in any output file (JSON, markdown, manifest) or in the cache."""
    cenv = _cli_env(env, tmp_path)
    out = tmp_path / "out"
    plan = FaultPlan(
        seed=2, rates={"http_429": 0.4, "http_500": 0.4}, max_faults_per_key=1, retry_after_s=0.01
    )
    with _sim("proxy", plan=plan) as sim:
        run = ocr(
            [
                "convert",
                str(pdf),
                "-o",
                str(out),
                "--backend",
                "openai",
                "--base-url",
                sim.base_url,
                "--model",
                "sim",
                "--api-key-env",
                CUSTOM_VAR,
                "--dpi",
                "30",
                "--format",
                "md,json,txt,html",
                "--no-progress",
                "--json",
                *flags,
            ],
            cenv,
        )
    assert run.code == 0, run.stderr
    assert sum(plan.injected.values()) >= 1
    if "--verbose" in flags:
        assert "retry page" in run.stderr  # the retries really were logged
    assert leaks(_all_text(run)) == [], _all_text(run)
    assert scan_dir(out) == {} and any(out.glob("*.json"))
    assert scan_dir(tmp_path / "cache") == {}


@pytest.mark.parametrize("status", [400, 401])
def test_cli_convert_against_echoing_server_leaks_nothing(
    status: int, env: dict[str, str], pdf: Path, tmp_path: Path
) -> None:
    """A server that quotes our headers in its errors; 400 fails pages (exit 1), 401 stops the
    run (one error line, exit 2).  With --verbose --debug (tracebacks on) nothing leaks."""
    cenv = _cli_env(env, tmp_path)
    out = tmp_path / "out"
    with EchoingSimulator(status=status, model="sim", api_key=KEY) as sim:
        run = ocr(
            [
                "convert",
                str(pdf),
                "-o",
                str(out),
                "--backend",
                "openai",
                "--base-url",
                sim.base_url,
                "--model",
                "sim",
                "--api-key-env",
                CUSTOM_VAR,
                "--dpi",
                "30",
                "--no-progress",
                "--verbose",
                "--debug",
            ],
            cenv,
        )
    assert run.code in (1, 2), run.stderr
    assert "rejected request with headers" in run.stderr  # the echo reached the user...
    assert leaks(_all_text(run)) == [], _all_text(run)  # ...masked
    assert scan_dir(out) == {} if out.exists() else True
    assert scan_dir(tmp_path / "cache") == {} if (tmp_path / "cache").exists() else True


def test_cli_convert_echoing_401_without_debug_is_one_masked_line(
    env: dict[str, str], pdf: Path, tmp_path: Path
) -> None:
    cenv = _cli_env(env, tmp_path)
    with EchoingSimulator(status=401, model="sim", api_key=KEY) as sim:
        run = ocr(
            [
                "convert",
                str(pdf),
                "-o",
                str(tmp_path / "out"),
                "--backend",
                "openai",
                "--base-url",
                sim.base_url,
                "--model",
                "sim",
                "--api-key-env",
                CUSTOM_VAR,
                "--dpi",
                "30",
                "--no-progress",
                "--quiet",
            ],
            cenv,
        )
    assert run.code == 2, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "401" in lines[0] and "***" in lines[0], run.stderr
    assert leaks(_all_text(run)) == []


def test_cli_verbose_does_not_print_key_from_url_query(
    env: dict[str, str], pdf: Path, tmp_path: Path
) -> None:
    cenv = _cli_env(env, tmp_path)
    with _sim("direct") as sim:
        run = ocr(
            [
                "convert",
                str(pdf),
                "-o",
                str(tmp_path / "out"),
                "--backend",
                "openai",
                "--base-url",
                f"{sim.base_url}?api_key={KEY}",
                "--model",
                "sim",
                "--api-key-env",
                CUSTOM_VAR,
                "--dpi",
                "30",
                "--no-progress",
                "--verbose",
            ],
            cenv,
        )
    assert run.code in (0, 1) and "Traceback" not in run.stderr
    assert leaks(_all_text(run)) == [], _all_text(run)


#: a URL carrying a secret, each way one can: the password of its user info, a query value under
#: a secret-looking name, and under any other name (a signed gateway URL)
URL_FORMS = {
    "userinfo": "http://user:{secret}@127.0.0.1:{port}{path}",
    "query api_key": "http://127.0.0.1:{port}{path}?api_key={secret}",
    "query other": "http://127.0.0.1:{port}{path}?sig={secret}",
}
#: a profile of each transport that takes a base URL, and its URL's path
URL_PROFILES = {"openai": "/v1", "runpod-chandra": "/v2", "runpod-trocr": ""}


@pytest.mark.parametrize("profile", list(URL_PROFILES))
@pytest.mark.parametrize("form", list(URL_FORMS))
def test_a_secret_inside_the_base_url_is_masked_everywhere(
    profile: str, form: str, env: dict[str, str], pdf: Path, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    """The backend's and its settings' repr / str, the client's, a failed run's document, page
    errors and every log record at DEBUG (ours and the HTTP libraries'), and ``ocr config``: a
    password given only in ``base_url`` was printed in all of the reprs and in the transport's
    request log."""
    import ocrclient

    url = URL_FORMS[form].format(secret=URL_SECRET, port=_free_port(), path=URL_PROFILES[profile])
    settings: dict[str, Any] = {"base_url": url, "base_url_env": "", "model": "m", "unreachable_s": 0.5}
    if profile == "runpod-trocr":
        settings["transport"] = "ocular"
    elif profile.startswith("runpod-"):  # (an endpoint id is RunPod serverless's alone)
        settings["endpoint_id"] = "ep"
    be = ocrclient.load_backend(profile, **settings)
    try:
        with ocrclient.Client(backend=be, max_attempts=1) as client:
            shown = [repr(be), str(be.config), repr(be.config), repr(client)]
            # nothing listens there: the run stops once unreachable_s is over, having said so
            with pytest.warns(UserWarning, match="no server answers") as said, pytest.raises(ocrclient.RunAborted) as stopped:
                client.convert(pdf, pages="1")
    finally:
        be.close()
    (doc,) = stopped.value.documents
    shown += [str(w.message) for w in said] + [full_error_text(stopped.value)]
    assert doc.pages[0].status == "failed"
    assert leaks("\n".join(shown)) == []
    assert leaks(doc.model_dump_json()) == []
    assert leaks(_log_text(debug_logs)) == []
    run = ocr(["config", "--backend", profile, "--base-url", url], _cli_env(env, tmp_path))
    assert run.code == (2 if json.loads(run.stdout)["refused"] else 0), run.stderr  # ("refused": what convert stops on)
    assert leaks(_all_text(run)) == []


def test_the_simulators_request_log_masks_a_key_in_the_url(
    env: dict[str, str], pdf: Path, tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    """The simulators log each request line at DEBUG, query string included (users run them in
    their own tests, logs on): a key in the URL is masked there as in ocrclient's own records."""
    import ocrclient

    with _sim("direct") as sim:
        doc = ocrclient.convert(pdf, backend="openai", base_url=f"{sim.base_url}?api_key={URL_SECRET}", base_url_env="",
                                model="sim", api_key_env=CUSTOM_VAR, pages="1", cache=False)  # fmt: skip
    assert doc.pages[0].status == "ok"
    sim_lines = [r.getMessage() for r in debug_logs.records if r.name.startswith("ocrclient.testing")]
    assert any("chat/completions" in line for line in sim_lines), sim_lines[:5]
    assert leaks("\n".join(sim_lines)) == []


def test_a_urls_plain_query_values_are_not_taken_for_secrets() -> None:
    """Only a query value under a credential's name, or a long opaque one, is a secret: every
    "true" of ``?stream=true`` masked would garble every log line and error after it."""
    from ocrclient.secrets import redact, register_url_secrets

    register_url_secrets(f"http://127.0.0.1:9/v1?stream=true&version=2024&api_key=k3y-{URL_SECRET[-8:]}&x={URL_SECRET}")
    assert redact("stream true, version 2024") == "stream true, version 2024"
    assert redact(f"k3y-{URL_SECRET[-8:]} and {URL_SECRET}") == "*** and ***"


def test_cli_shows_the_key_file_warning_as_one_line_once_and_not_under_quiet(tmp_path: Path) -> None:
    """The warning came as Python's own: a file name and ``UserWarning:``, then the source line
    that read the file, twice under ``ocr backends`` (the file is read twice), and under
    ``--quiet`` too.  Each command that reads the file, as a user runs it."""
    path = _user_config(0o644)
    env = {"OCRCLIENT_CONFIG_DIR": os.environ["OCRCLIENT_CONFIG_DIR"], "OCRCLIENT_CACHE_DIR": str(tmp_path / "c")}
    doc = text_pdf(tmp_path / "a.pdf", [["Hello world"]], size=(0, 0, 300, 120))
    convert = ["convert", str(doc), "-b", "local", "-o", str(tmp_path / "out"), "--no-progress"]
    for args in (["backends"], ["config", "--backend", "openai"], convert):
        run = ocr(args, env)
        assert run.code == (2 if args[0] == "config" and json.loads(run.stdout)["refused"] else 0), run.stderr
        warned = [ln for ln in run.stderr.splitlines() if "chmod 600" in ln]
        assert warned == [f"warning: {path} holds an API key and is readable by other users; run: chmod 600 {path}"], run.stderr
        assert "UserWarning" not in run.stderr and "load_user_config" not in run.stderr
    quiet = ocr([*convert, "-q"], env)
    assert quiet.code == 0 and quiet.stderr == "", quiet.stderr


# every setting that names an environment variable, given the key itself by mistake: refused in one
# line that does not repeat it (the name is shown in messages and by `ocr config`)
KEY_BY_MISTAKE = ["sk-live-" + "Q" * 24, "rpa_" + "Z9" * 12, "hf_" + "abc" * 8, "MY KEY"]


@pytest.mark.parametrize("field", ["api_key_env", "endpoint_id_env", "base_url_env", "model_env"])
@pytest.mark.parametrize("value", KEY_BY_MISTAKE)
def test_every_env_name_setting_refuses_a_value_without_showing_it(field: str, value: str, tmp_path: Path) -> None:
    from ocrclient.config import BackendConfig, resolve_config
    from ocrclient.errors import ConfigError

    secret_like = field == "api_key_env" or not value.replace("_", "").isalnum()
    profile = tmp_path / "p.toml"
    profile.write_text(f'transport = "openai"\ndialect = "plain"\nmodel = "m"\n{field} = {json.dumps(value)}\n')
    if secret_like:
        for build in (lambda: resolve_config(profile), lambda: resolve_config("openai", **{field: value})):
            with pytest.raises(ConfigError) as err:
                build()
            assert field in str(err.value) and value not in full_error_text(err.value), str(err.value)
    else:  # a lower-case name is a name (POSIX) for a variable holding no secret
        assert getattr(resolve_config(profile), field) == value
    assert getattr(BackendConfig(name="x", transport="openai", dialect="plain", **{field: "GOOD_NAME_2"}), field) == "GOOD_NAME_2"


@pytest.mark.parametrize("option", ["modal_key_env", "modal_secret_env", "api_key_env_aliases"])
def test_every_env_name_transport_option_refuses_a_key_without_showing_it(option: str) -> None:
    from ocrclient.config import resolve_config
    from ocrclient.errors import ConfigError
    from ocrclient.registry import load_transport

    value = KEY_BY_MISTAKE[0]
    cfg = resolve_config("openai", base_url="https://x.modal.run/v1", model="m",
                         transport_options={"modal": True, option: [value] if option.endswith("aliases") else value})  # fmt: skip
    with pytest.raises(ConfigError) as err:
        load_transport(cfg)
    assert option in str(err.value) and value not in full_error_text(err.value), str(err.value)


def test_cli_api_key_env_given_the_key_exits_2_without_showing_it(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "a.pdf", [["x"]])
    for args in (["convert", str(pdf), "-o", str(tmp_path / "o"), "--backend", "runpod-chandra", "--endpoint-id", "e"],
                 ["config", "--backend", "openai"], ["health", "--backend", "openai"]):  # fmt: skip
        run = ocr([*args, "--api-key-env", KEY_BY_MISTAKE[1]], {**os.environ, "NO_COLOR": "1"})
        assert run.code == 2 and KEY_BY_MISTAKE[1] not in _all_text(run), (args, run.stdout, run.stderr)
        assert run.stderr.count("\n") == 1 and "api_key_env" in run.stderr, run.stderr


@pytest.mark.parametrize("password", ["pass", "wrong", "encrypted", "this", "wron", "word", "password", "crypt"])
def test_a_wrong_password_that_is_a_word_of_the_message_leaves_it_readable(password: str, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A PDF's password is masked where it stands as a word of its own, not inside other words:
    ``--password pass`` made "wrong password" read "wrong ***word", ``encrypted`` "this *** PDF"
    in every later message of the process too.  Each password that is (part of) a word of the
    wrong-password error: no mask glued to letters, and the password nowhere as a word."""
    import re

    import ocrclient
    from ocrclient import secrets as secrets_mod
    from ocrclient.errors import InputError

    monkeypatch.setattr(secrets_mod, "_SECRETS", set())  # (this test's secrets stay its own)
    monkeypatch.setattr(secrets_mod, "_WORD_SECRETS", set())
    pdf = tmp_path / "locked.pdf"
    pdf.write_bytes(build_pdf([(612, 792)], user_password="s3cret-locked"))
    with pytest.raises(InputError) as info:
        ocrclient.convert(pdf, password=password)
    message = str(info.value)
    assert not re.search(r"[A-Za-z0-9]\*\*\*|\*\*\*[A-Za-z0-9]", message), message
    assert not re.search(rf"(?<![A-Za-z0-9]){re.escape(password)}(?![A-Za-z0-9])", message), message
    assert "encrypted" in message or password == "encrypted"


@pytest.mark.parametrize("key", ["rpa0123456789ABCDEF", "s3cr3tkey1", "tok12345"])
def test_a_key_is_masked_inside_words_and_where_a_message_was_cut(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An API key (however short: vLLM's ``--api-key`` is chosen by a person) is masked glued to
    other characters and where a message was cut across it; only a PDF's password is masked as
    a whole word alone."""
    from ocrclient import secrets as secrets_mod

    monkeypatch.setattr(secrets_mod, "_SECRETS", set())
    secrets_mod.register_secret(key)
    assert secrets_mod.redact(f"url=https://x/?k={key}tail") == "url=https://x/?k=***tail"
    assert key[:6] not in secrets_mod.redact(f"401 from server: key {key[:-2]}...")


@pytest.mark.parametrize("secret", ["runpod-pod-key-2024", "ocular-key-123456", "local-0123456789ab"])
def test_ocr_config_shows_a_setting_that_only_begins_like_a_secret(secret: str, tmp_path: Path) -> None:
    """Every setting value that is the first characters of a key in the environment (the
    transport ``runpod`` beside ``VLLM_API_KEY=runpod-pod-key-2024``) was shown as ``***``:
    ``ocr config`` exists to show which transport convert will use.  The key itself stays masked."""
    from ocrclient.secrets import redact, redact_data, register_secret

    register_secret(secret)
    shown = redact_data({"transport": secret.split("-")[0], "name": secret[:8], "api_key": secret,
                         "nested": {"v": secret[:6]}, "message": f"key {secret}"})  # fmt: skip
    assert shown["transport"] == secret.split("-")[0] and shown["name"] == secret[:8]
    assert shown["nested"] == {"v": secret[:6]} and shown["api_key"] == "***"
    assert secret not in json.dumps(shown)
    run = ocr(["config", "--backend", "runpod-chandra"], {"VLLM_API_KEY": "runpod-pod-key-2024",
                                                          "OCRCLIENT_CONFIG_DIR": str(tmp_path)})  # fmt: skip
    assert json.loads(run.stdout)["transport"] == "runpod", run.stdout
    assert redact(f"key {secret[:9]}...") != f"key {secret[:9]}..."  # a message cut short is still masked
