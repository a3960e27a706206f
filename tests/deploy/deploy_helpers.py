"""Helpers for the deploy/ tests: load handler files by path, make page images, run workers."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

if str(DEPLOY) not in sys.path:
    sys.path.insert(0, str(DEPLOY))


def load_module(name: str, path: Path) -> ModuleType:
    """Import ``path`` as module ``name`` (folders under deploy/ have dashes in their names)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def page_png(width: int = 120, height: int = 80, *, lines: int = 2, color: str = "white") -> bytes:
    img = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(img)
    for i in range(lines):
        y = 10 + i * 25
        draw.rectangle((10, y, width - 20, y + 10), fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def b64_png(png: bytes) -> str:
    return base64.b64encode(png).decode()


def data_url(png: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(png).decode()


def chat_request(
    url: str | None = None, prompt: str = "OCR this page", *, model: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A chat request; with ``model`` it names one (a worker refuses any but its own)."""
    content: list[dict[str, Any]] = []
    if url is not None:
        content.append({"type": "image_url", "image_url": {"url": url}})
    content.append({"type": "text", "text": prompt})
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 256,
    }
    if model is not None:
        body["model"] = model
    body.update(extra)
    return body


def envelope(body: Any) -> dict[str, Any]:
    return {"id": "job-1", "input": {"openai_route": "/v1/chat/completions", "openai_input": body}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """``python handler.py --rp_serve_api`` in a subprocess, on a free loopback port."""

    def __init__(self, handler: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        for key in (
            "RUNPOD_POD_ID",
            "RUNPOD_AI_API_KEY",
            "RUNPOD_WEBHOOK_GET_JOB",
            "RUNPOD_REALTIME_PORT",
        ):
            full_env.pop(key, None)
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"worker-{self.port}.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(handler),
                "--rp_serve_api",
                "--rp_api_host",
                "127.0.0.1",
                "--rp_api_port",
                str(self.port),
            ],
            cwd=str(handler.parent),
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.output()}")
            try:
                r = httpx.get(self.base + "/openapi.json", timeout=1.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out
