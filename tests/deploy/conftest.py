"""Fixtures for the deploy/ tests (helpers live in deploy_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import WorkerProcess


@pytest.fixture
def worker_process() -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(handler: Path, env: dict[str, str]) -> WorkerProcess:
        wp = WorkerProcess(handler, env)
        started.append(wp)
        wp.wait_ready()
        return wp

    yield start
    for wp in started:
        wp.stop()
