"""Scripts around the official servers: the RunPod endpoint check, the pod health check, the
Modal app definition and the shell scripts."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from deploy_helpers import DEPLOY, load_module, page_png

check = load_module("check_runpod_endpoint", DEPLOY / "check_runpod_endpoint.py")
health = load_module("pod_healthcheck", DEPLOY / "runpod-pod-lightonocr2" / "healthcheck.py")


class FakeVllm(BaseHTTPRequestHandler):
    """Just enough of vLLM's OpenAI server: open /health, bearer-protected /v1/*."""

    key = "k-123"
    seen: ClassVar[list[dict[str, Any]]] = []

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authed(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.key}":
            self._send(401, {"error": "Unauthorized"})
            return False
        return True

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {})
        elif self.path == "/v1/models" and self._authed():
            self._send(200, {"object": "list", "data": [{"id": "lightonai/LightOnOCR-2-1B"}]})

    def do_POST(self) -> None:
        if self.path == "/v1/chat/completions" and self._authed():
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.seen.append(body)
            self._send(
                200, {"choices": [{"message": {"content": "Hello page"}, "finish_reason": "stop"}]}
            )

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_vllm() -> Iterator[str]:
    FakeVllm.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeVllm)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_pod_healthcheck(
    fake_vllm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = tmp_path / "p.png"
    img.write_bytes(page_png())
    assert health.check(fake_vllm + "/v1", "k-123", "lightonai/LightOnOCR-2-1B", str(img), 10) == 0
    assert "Hello page" in capsys.readouterr().out
    sent = FakeVllm.seen[0]
    assert sent["model"] == "lightonai/LightOnOCR-2-1B" and sent["max_tokens"] == 4096
    assert sent["messages"][0]["content"][0]["image_url"]["url"].startswith(
        "data:image/png;base64,"
    )
    assert health.check(fake_vllm, "wrong", "lightonai/LightOnOCR-2-1B", None, 10) == 1
    assert "API key was refused" in capsys.readouterr().err
    assert health.check(fake_vllm, "k-123", "lightonai/LightOnOCR-2-1B-bbox", None, 10) == 1
    assert health.check("http://127.0.0.1:9", "k", "", None, 2) == 1


def test_check_script_parses_outputs() -> None:
    comp = {"choices": [{"message": {"content": "x"}}]}
    assert check.first_completion([comp]) is comp
    assert check.first_completion(comp) is comp
    for bad in (
        [{"error": {"message": "boom"}}],
        [{"object": "error", "message": "m"}],
        [],
        "text",
        [{"choices": []}],
    ):
        with pytest.raises(ValueError):
            check.first_completion(bad)
    job = check.build_job(b"png", "image/png", "m", "read", 99)
    body = job["input"]["openai_input"]
    assert job["input"]["openai_route"] == "/v1/chat/completions"
    assert body["max_tokens"] == 99 and body["stream"] is False
    assert body["messages"][0]["content"][1] == {"type": "text", "text": "read"}


@pytest.mark.slow
def test_check_script_against_a_local_worker(
    worker_process: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    wp = worker_process(DEPLOY / "runpod-chandra" / "handler.py", {"OCRWORKER_STANDIN": "echo"})
    assert (
        check.main(
            ["--url", wp.base, "--local", "--model", "datalab-to/chandra", "--prompt", "read"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "image 1000x300 RGB" in out and "finish_reason: stop" in out
    wp2 = worker_process(DEPLOY / "runpod-chandra" / "handler.py", {"OCRWORKER_STANDIN": "fail"})
    assert check.main(["--url", wp2.base, "--local"]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_modal_app_defines_the_web_server(monkeypatch: pytest.MonkeyPatch) -> None:
    modal = pytest.importorskip("modal", reason="modal is not installed (it is in the dev extra: pip install -e .[dev])")
    monkeypatch.setenv("MODEL_ID", "lightonai/LightOnOCR-0.9B-32k-1025")
    monkeypatch.setenv("GPU", "A100-40GB")
    monkeypatch.setenv("FAST_BOOT", "1")
    app_mod = load_module("modal_lightonocr_app", DEPLOY / "modal-lightonocr" / "app.py")
    assert isinstance(app_mod.app, modal.App) and app_mod.app.name == "ocrclient-lightonocr"
    assert isinstance(app_mod.serve, modal.Function)
    assert app_mod.serve._is_web_endpoint()  # @modal.web_server took effect
    assert app_mod.serve._spec_.gpus == "A100-40GB"
    cmd = app_mod.vllm_command()
    assert cmd[:3] == ["vllm", "serve", "lightonai/LightOnOCR-0.9B-32k-1025"]
    assert cmd[cmd.index("--limit-mm-per-prompt") + 1] == '{"image": 1}'
    assert "--no-enable-prefix-caching" in cmd and "--enforce-eager" in cmd
    assert "--tensor-parallel-size" not in cmd  # one GPU
    assert [app_mod.gpu_count(g) for g in ("L4", "L4:2", "H100:8", "A100-40GB", "x:0")] == [1, 2, 8, 1, 1]
    monkeypatch.setattr(app_mod, "GPU", "L4:2")  # every GPU asked for is used: the model split over them
    cmd = app_mod.vllm_command()
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "2"


@pytest.mark.parametrize(
    "script",
    [
        "runpod-pod-lightonocr2/setup.sh",
        "runpod-pod-lightonocr2/serve.sh",
        "runpod-olmocr/check.sh",
        "runpod-rolmocr/check.sh",
    ],
)
def test_shell_scripts_parse(script: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    res = subprocess.run([bash, "-n", str(DEPLOY / script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = (DEPLOY / script).read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text


def test_pod_serve_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash not available")
    script = (
        (DEPLOY / "runpod-pod-lightonocr2" / "serve.sh")
        .read_text()
        .replace("/workspace/", f"{tmp_path}/")
    )
    (tmp_path / "serve.sh").write_text(script)
    res = subprocess.run(
        [bash, str(tmp_path / "serve.sh")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 1 and "VLLM_API_KEY" in res.stderr
    code = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    assert not any("--api-key" in line for line in code)  # the key travels by environment, not argv
    assert any("export VLLM_API_KEY" in line for line in code)


def test_worker_vllm_env_files_use_flags_the_worker_maps() -> None:
    # names checked against runpod-workers/worker-vllm src/args_builder.py (generic flag scan + aliases)
    mapped = {
        "MODEL_NAME",
        "MAX_MODEL_LEN",
        "LIMIT_MM_PER_PROMPT",
        "MM_PROCESSOR_CACHE_GB",
        "ENABLE_PREFIX_CACHING",
        "GPU_MEMORY_UTILIZATION",
        "MAX_NUM_SEQS",
        "MAX_CONCURRENCY",
    }
    for folder, model in (
        ("runpod-olmocr", "allenai/olmOCR-2-7B-1025-FP8"),
        ("runpod-rolmocr", "reducto/RolmOCR"),
    ):
        env = dict(
            line.split("=", 1)
            for line in (DEPLOY / folder / "endpoint.env").read_text().splitlines()
            if line and not line.startswith("#")
        )
        assert set(env) <= mapped, set(env) - mapped
        assert env["MODEL_NAME"] == model
        assert json.loads(env["LIMIT_MM_PER_PROMPT"]) == {"image": 1}


def test_modal_check_sends_the_proxy_auth_pair_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """``modal run app.py --url ...`` beside ``REQUIRES_PROXY_AUTH=1``: the check was refused by
    Modal's proxy (it sent no Modal-Key / Modal-Secret)."""
    import io
    import urllib.request

    pytest.importorskip("modal", reason="modal is not installed (it is in the dev extra: pip install -e .[dev])")
    app_mod = load_module("modal_lightonocr_app_check", DEPLOY / "modal-lightonocr" / "app.py")
    sent: list[urllib.request.Request] = []

    class Reply(io.BytesIO):
        status = 200

        def __enter__(self) -> Reply:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    def urlopen(request: urllib.request.Request, timeout: float = 0) -> Reply:
        sent.append(request)
        return Reply(b'{"data": []}')

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    for key, secret in ((None, None), ("wk-1", "ws-2")):
        for name, value in (("MODAL_KEY", key), ("MODAL_SECRET", secret)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        sent.clear()
        app_mod.main.info.raw_f(url="https://ws--ocrclient-lightonocr-serve.modal.run/")
        assert [r.full_url for r in sent] == ["https://ws--ocrclient-lightonocr-serve.modal.run/health",
                                              "https://ws--ocrclient-lightonocr-serve.modal.run/v1/models"]  # fmt: skip
        got = [(r.get_header("Modal-key"), r.get_header("Modal-secret")) for r in sent]
        assert got == [(key, secret)] * 2, got


def test_check_script_fails_in_one_line_however_the_endpoint_is_out_of_reach(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening, a server that never answers, no key: one line and exit 1 (it printed
    httpx's tracebacks, and without a key sent none, then said "the API key was refused")."""
    import socket

    from deploy_helpers import free_port

    monkeypatch.setenv("RUNPOD_API_KEY", "rp-check-secret-4242")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never answers
    try:
        cases = [
            ["--url", f"http://127.0.0.1:{free_port()}", "--local"],
            ["--url", f"http://127.0.0.1:{silent.getsockname()[1]}", "--timeout", "1"],
            ["--url", f"http://127.0.0.1:{silent.getsockname()[1]}", "--local", "--timeout", "1"],
        ]
        for argv in cases:
            assert check.main(argv) == 1, argv
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "Traceback" not in err and "rp-check-secret" not in err, (argv, err)
        monkeypatch.delenv("RUNPOD_API_KEY")
        assert check.main(["--endpoint-id", "ep1", "--base-url", f"http://127.0.0.1:{free_port()}"]) == 1
        assert "RUNPOD_API_KEY" in capsys.readouterr().err
    finally:
        silent.close()
