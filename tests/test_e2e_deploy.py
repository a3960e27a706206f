"""Issue 6, end to end: the real RunPod workers in deploy/ (``handler.py --rp_serve_api``, the
runpod SDK's local API server, with their CPU stand-in models) driven by the real `ocr` CLI in
``--mode local``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ocrclient.document import Document

from .pdfgen import text_pdf

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

pytest.importorskip("runpod")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(folder: str, env: dict[str, str]) -> str:
        port = free_port()
        handler = DEPLOY / folder / "handler.py"
        full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        for key in (
            "RUNPOD_POD_ID",
            "RUNPOD_AI_API_KEY",
            "RUNPOD_WEBHOOK_GET_JOB",
            "RUNPOD_REALTIME_PORT",
        ):
            full.pop(key, None)
        log = (tmp_path / f"{folder}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, str(handler), "--rp_serve_api", "--rp_api_port", str(port), "--rp_api_host", "127.0.0.1"],
            cwd=str(handler.parent), env=full, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / f"{folder}.log").read_text(errors="replace")[-3000:])
            try:
                if httpx.get(base + "/openapi.json", timeout=1.0).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"{folder} worker not ready: "
            + (tmp_path / f"{folder}.log").read_text(errors="replace")[-3000:]
        )

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def ocr(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "ocrclient.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_chandra_worker_end_to_end(worker: object, tmp_path: Path) -> None:
    base = worker("runpod-chandra", {"OCRWORKER_STANDIN": "echo"})  # type: ignore[operator]
    pdf = text_pdf(tmp_path / "two.pdf", [["first page"], ["second page"]], size=(0, 0, 200, 150))
    res = ocr("convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", "runpod-chandra", "--mode", "local",
              "--base-url", base, "--endpoint-id", "local", "--dpi", "72", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["documents"][0]["failed"] == 0 and summary["exit_code"] == 0
    doc = Document.model_validate_json((tmp_path / "out" / "two.json").read_text())
    assert [p.page for p in doc.pages] == [1, 2]
    for page in doc.pages:
        # the stand-in "model" really received the rendered page and Chandra's layout prompt;
        # its answer is no layout HTML, so the page is kept as degraded, never empty
        assert page.status in ("ok", "degraded"), page.error
        assert "[stand-in] image" in page.markdown
        assert "OCR this image to HTML" in page.markdown
        assert "max_tokens=8192" in page.markdown
    # chandra renders at least 1024 px on the short side: 200x150 pt -> 1365x1024
    assert "image 1365x1024 RGB" in doc.pages[0].markdown
    assert (tmp_path / "out" / "two.md").read_text().count("[stand-in] image") == 2

    health = ocr(
        "health", "--backend", "runpod-chandra", "--mode", "local", "--base-url", base, "--json"
    )
    assert health.returncode == 0, health.stdout + health.stderr
    assert json.loads(health.stdout)["ok"] is True


def test_trocr_worker_end_to_end(worker: object, tmp_path: Path) -> None:
    base = worker("runpod-trocr", {"TROCR_STANDIN": "1"})  # type: ignore[operator]
    pdf = text_pdf(
        tmp_path / "lines.pdf", [["one line of text", "another line"]], size=(0, 0, 220, 120)
    )
    res = ocr("convert", str(pdf), "--backend", "runpod-trocr", "--mode", "local", "--base-url", base,
              "--endpoint-id", "local", "--dpi", "100", "--format", "md,json", "-o", str(tmp_path / "o"))  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = Document.model_validate_json((tmp_path / "o" / "lines.json").read_text())
    (page,) = doc.pages
    assert page.status == "ok", page.error
    # the stand-in recogniser answers "line <w>x<h>" per line crop the server cut from the page
    assert page.markdown.startswith("line ") and "x" in page.markdown
    (block,) = page.blocks
    assert block.confidence is not None and 0 < block.confidence <= 1


def test_health_of_the_trocr_worker_says_whether_its_model_loaded(worker: object) -> None:
    """``ocr health`` against the real handler: a worker whose model failed to load (no torch,
    or no weights offline) is down, exit 1, saying why, as its jobs are answered; it said "ok
    ... model not confirmed", exit 0, having sent a ``/v1/models`` job the worker refused as a
    bad request.  A worker that can serve the profile's model is up."""
    cases = [({"TROCR_STANDIN": "", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}, 1, "model failed to load"),
             ({"TROCR_STANDIN": "1"}, 0, "model microsoft/trocr-base-printed served")]  # fmt: skip
    for env, code, says in cases:
        base = worker("runpod-trocr", env)  # type: ignore[operator]
        res = ocr("health", "--backend", "runpod-trocr", "--mode", "local", "--base-url", base, "--endpoint-id", "local", "--json")
        report = json.loads(res.stdout)
        assert res.returncode == code and says in report["detail"], (res.returncode, report, res.stderr)


#: the seed's (OLM/RoLM Ocular) own decoding defaults, merged under a caller's options: the plain
#: and the robust route's
SEED_DECODING = [
    {"num_beams": 4, "max_length": 512, "early_stopping": True, "do_sample": False, "temperature": 0.0},
    {"num_beams": 8, "max_length": 768, "repetition_penalty": 1.2, "temperature": 0.0, "length_penalty": 1.0},
]


def test_trocr_worker_takes_the_seeds_own_decoding_defaults(worker: object, tmp_path: Path) -> None:
    """An Ocular client passing the seed's greedy defaults (``"temperature": 0.0`` beside
    ``"do_sample": false``) through ``decoding_options`` was refused 400 ("Input should be
    greater than 0"): every one of them is taken, on both routes; a sampled request at 0 stays
    refused, in one line."""
    import base64
    import io

    from PIL import Image

    base = worker("runpod-trocr", {"TROCR_STANDIN": "1"})  # type: ignore[operator]
    buf = io.BytesIO()
    Image.new("L", (200, 40), 255).save(buf, "PNG")
    image = base64.b64encode(buf.getvalue()).decode()

    def job(route: str, options: dict[str, object]) -> dict[str, object]:
        body = {"input": {"route": route, "image": image, "decoding_options": options}}
        return httpx.post(base + "/runsync", json=body, timeout=60).json()  # type: ignore[no-any-return]

    for route, options in zip(("/extract_text", "/extract_text_robust"), SEED_DECODING, strict=True):
        done = job(route, options)
        assert done.get("status") == "COMPLETED" and "text" in done["output"], (route, done)  # type: ignore[operator]
    refused = job("/extract_text", {"do_sample": True, "temperature": 0.0})
    assert refused.get("status") == "FAILED" and "above 0 when do_sample" in str(refused.get("error")), refused


class FaultProxy:
    """A loopback proxy in front of a worker: the first job for each page image answers HTTP 503
    (a transient fault), later ones go through to the worker; every job body is kept."""

    def __init__(self, upstream: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.upstream = upstream
        self.bodies: list[dict[str, object]] = []
        self.answers: list[int] = []
        seen: set[str] = set()
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _relay(self, method: str, body: bytes | None) -> None:
                r = httpx.request(method, proxy.upstream + self.path, content=body, timeout=60,
                                  headers={"Content-Type": "application/json"})  # fmt: skip
                self._answer(r.status_code, r.content)

            def _answer(self, status: int, content: bytes, **headers: str) -> None:
                with lock:
                    proxy.answers.append(status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                for key, value in headers.items():
                    self.send_header(key.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(content)

            def do_GET(self) -> None:
                self._relay("GET", None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                job = json.loads(body or b"{}")
                image = str((job.get("input") or {}).get("image", ""))
                with lock:
                    proxy.bodies.append(job)
                    first = bool(image) and image not in seen
                    seen.add(image)
                if first:
                    self._answer(503, b'{"error": "injected fault"}', Retry_After="0")
                else:
                    self._relay("POST", body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_trocr_retry_after_a_transient_fault_passes_the_real_handler(worker: object, tmp_path: Path) -> None:
    """Issue 14, defect 1: attempt 2 decodes by sampling (do_sample + temperature); the real
    handler used to refuse those keys with a 400, so a page that needed a retry always failed."""
    base = worker("runpod-trocr", {"TROCR_STANDIN": "1"})  # type: ignore[operator]
    proxy = FaultProxy(base)
    try:
        pdf = text_pdf(tmp_path / "retry.pdf", [["first line of text"], ["second page line"]],
                       size=(0, 0, 220, 120))  # fmt: skip
        res = ocr("convert", str(pdf), "--backend", "runpod-trocr", "--mode", "local", "--base-url", proxy.url,
                  "--endpoint-id", "local", "--dpi", "100", "--format", "md,json", "-o", str(tmp_path / "o"))  # fmt: skip
    finally:
        proxy.close()
    assert res.returncode == 0, res.stdout + res.stderr
    doc = Document.model_validate_json((tmp_path / "o" / "retry.json").read_text())
    assert [p.status for p in doc.pages] == ["ok", "ok"], [p.error for p in doc.pages]
    assert [p.attempts for p in doc.pages] == [2, 2]
    assert all(p.markdown.startswith("line ") for p in doc.pages)
    # each page: attempt 1 hit the fault, attempt 2 (sampling) reached the worker and was served
    jobs = [b["input"] for b in proxy.bodies if isinstance(b.get("input"), dict) and "image" in b["input"]]
    assert len(jobs) == 4 and proxy.answers.count(503) == 2
    retries = [j["decoding_options"] for j in jobs if j["decoding_options"].get("do_sample")]  # type: ignore[index]
    assert len(retries) == 2 and all(r["temperature"] == 0.3 and r["num_beams"] == 1 for r in retries)
    assert proxy.answers.count(200) >= 2
