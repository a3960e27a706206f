"""A real runpod SDK worker on loopback: ``python <handler> --rp_serve_api`` in a subprocess
(the SDK's local test server), for the tests that drive or compare against the real thing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SdkWorker:
    """``handler`` served by the SDK's local server; ``kind`` goes to the handler as
    ``ECHO_HANDLER_KIND`` (``generator``: an aggregated-stream generator handler).  It runs in
    ``tmp`` (the SDK keeps its stashed jobs in ``.runpod_jobs.pkl`` there)."""

    def __init__(self, handler: Path, kind: str, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"worker-{kind}.log"
        env = {**os.environ, "ECHO_HANDLER_KIND": kind, "UVICORN_LOG_LEVEL": "warning"}
        env.pop("RUNPOD_ENDPOINT_ID", None)
        env.pop("RUNPOD_WEBHOOK_GET_JOB", None)
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(handler), "--rp_serve_api", "--rp_api_port", str(self.port),
             "--rp_api_host", "127.0.0.1"],
            cwd=str(tmp), env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout}s: {self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._fh.close()
