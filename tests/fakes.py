"""In-process fakes for scheduler tests: a transport driven by the same seeded FaultPlan as the
simulated clouds, a tiny dialect, and synthetic page streams."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ocrclient.config import BackendConfig
from ocrclient.dialects.base import Attempt, PageContent, RawBlock
from ocrclient.errors import BadOutputError, TransientError, classify_status
from ocrclient.geometry import CoordSpace, Frame, PageBox
from ocrclient.imaging import RenderSpec, encode
from ocrclient.pages import PageImage
from ocrclient.registry import Backend
from ocrclient.testing.faults import FaultPlan
from ocrclient.transports.base import Health, ModelReply, ModelRequest


def read_by(transport: str, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` less those the built-in ``transport`` would not read (``load_backend``
    refuses a setting chosen for a backend that does not read it: ``registry.check_read``)."""
    from ocrclient.registry import transport_class
    from ocrclient.transports.base import unread_settings

    unread = set(unread_settings(transport_class(transport), settings))
    return {k: v for k, v in settings.items() if k not in unread}


def make_page(index: int, source: str = "doc.pdf", *, error: str | None = None) -> PageImage:
    img = Image.new("L", (40, 52), color=(index * 37) % 256)
    spec = RenderSpec(dpi=10, format="png")
    return PageImage(
        source=source,
        index=index,
        page_box=PageBox(612, 792),
        encoded=None if error else encode(img, spec),
        error=error,
    )


async def cancel_with_in_flight(sched: Any, transport: FakeTransport, pages: int, in_flight: int) -> None:
    """Run a ``pages``-page document through ``sched``, cancel it once ``transport`` has
    ``in_flight`` requests in hand, and see the run end with the cancel."""
    import pytest

    run = asyncio.create_task(sched.run_document("doc.pdf", page_stream(pages)))
    while transport.inflight < in_flight:
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run


async def page_stream(n: int, source: str = "doc.pdf", *, errors: set[int] = frozenset(), pulled: list[int] | None = None) -> AsyncIterator[PageImage]:  # type: ignore[assignment]
    for i in range(n):
        if pulled is not None:
            pulled.append(i)
        yield make_page(i, source, error="render failed" if i in errors else None)
        await asyncio.sleep(0)


class FakeDialect:
    """Markdown = the reply text; one text block covering the middle of the page (grid 1000).
    Replies starting with GARBAGE are bad output."""

    name = "fake"
    render = RenderSpec(dpi=10)

    def __init__(self, ladder: tuple[float, ...] = (0.0, 0.3, 0.6)) -> None:
        self.ladder = ladder
        self.temperatures: dict[int, list[float]] = defaultdict(list)

    def build(self, page: PageImage, attempt: Attempt) -> ModelRequest:
        t = self.ladder[min(attempt.number - 1, len(self.ladder) - 1)]
        self.temperatures[page.number].append(t)
        assert page.encoded is not None
        return ModelRequest(
            body={"page": page.number, "source": page.source, "temperature": t, "img": page.encoded.data.hex()[:32]},
            frame=Frame(page.encoded.width, page.encoded.height),
        )

    def parse(self, reply: ModelReply, request: ModelRequest) -> PageContent:
        if reply.text.startswith("GARBAGE"):
            raise BadOutputError("model repeated itself", cause="repetition")
        return PageContent(
            markdown=reply.text,
            blocks=[RawBlock("text", reply.text, (250, 250, 750, 750))],
            space=CoordSpace.grid(1000),
        )


@dataclass
class FakeTransport:
    """Applies a FaultPlan keyed by (source, page); records everything."""

    plan: FaultPlan = field(default_factory=FaultPlan)
    service_s: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    call_times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    inflight: int = 0
    max_inflight: int = 0
    cancelled: int = 0
    timeouts: list[float | None] = field(default_factory=list)
    closed: bool = False
    first_401_at: float | None = None
    started_after_401: int = 0

    async def send(self, request: ModelRequest) -> ModelReply:
        key = f"{request.body['source']}#{request.body['page']}"
        self.calls[key] += 1
        self.call_times[key].append(time.monotonic())
        self.timeouts.append(request.timeout_s)
        if self.first_401_at is not None:
            self.started_after_401 += 1
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            fault = self.plan.draw(key)
            await asyncio.sleep(self.service_s if fault != "hang" else self.plan.hang_s)
            if fault and fault.startswith("http_"):
                status = int(fault[5:])
                if status == 401:
                    self.first_401_at = time.monotonic()
                retry_after = self.plan.retry_after_s if status == 429 else None
                raise classify_status(status, "simulated", retry_after=retry_after)
            if fault == "reset":
                raise TransientError("connection reset", cause="reset")
            if fault == "garbage":
                return ModelReply(text="GARBAGE GARBAGE", finish_reason="stop")
            if fault == "length":
                return ModelReply(text=f"partial {key}", finish_reason="length")
            return ModelReply(text=f"text of {key}", finish_reason="stop", prompt_tokens=10, completion_tokens=5, gpu_seconds=0.5)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.inflight -= 1

    async def health(self) -> Health:
        return Health(True, "fake")

    async def aclose(self) -> None:
        self.closed = True


def make_backend(transport: Any, dialect: Any | None = None, **cfg: Any) -> Backend:
    config = BackendConfig(
        name="fake",
        transport="fake",
        dialect="fake",
        model="fake-model",
        **{"concurrency": 4, "max_attempts": 4, "cold_start_s": 0, **cfg},
    )
    return Backend(config, dialect or FakeDialect(), transport)


def short_outage(*backends: str, seconds: float = 0.5) -> None:
    """For a test that sends to an address nobody listens on: its run stops after ``seconds``
    of no server (``unreachable_s``, 300 s by default, the run waiting for the server meanwhile),
    set in the test's own config file (``$OCRCLIENT_CONFIG_DIR``, a fresh one per test: see
    conftest.py) for each of ``backends``, so ``ocr`` run in-process or as a subprocess of the
    test's environment reads it too."""
    import os
    from pathlib import Path

    conf = Path(os.environ["OCRCLIENT_CONFIG_DIR"])
    conf.mkdir(parents=True, exist_ok=True)
    with (conf / "config.toml").open("a", encoding="utf-8") as f:
        for name in backends:
            f.write(f'\n["backends"."{name}"]\nunreachable_s = {seconds}\n')


def counting_renders(monkeypatch: Any) -> list[int]:
    """Every page index the render pools of this process render (their ``render_job``), in the
    order they start."""
    from ocrclient.pages import pool as pool_mod

    rendered: list[int] = []
    real = pool_mod.render_job

    def counting(job: Any) -> PageImage:
        rendered.append(job.index)
        return real(job)

    monkeypatch.setattr(pool_mod, "render_job", counting)
    return rendered
