"""The page-serving core shared by the chat-style RunPod workers (Chandra, DeepSeek-OCR).

:class:`PageWorker` owns the model lifecycle (load once per worker, remember a load failure and
report it on every job), the micro-batcher, and the job envelope of :mod:`ocrworker.envelope`.
A worker module supplies a *loader*: a function that returns the model call
``fn(list[ChatPage]) -> list[Generation]`` (synchronous; it runs in a thread).

Example::

    worker = PageWorker("chandra", served_model="datalab-to/chandra", loader=load_chandra)
    worker.set_model(fake_fn)                 # tests: skip the GPU load
    output = await worker.handle(job)         # list of chat completions, or {"error": "..."}
    worker.serve(handler)                     # __main__: warm the model, start the RunPod loop
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .batching import MicroBatcher
from .envelope import (
    MODELS_ROUTE,
    ChatPage,
    Generation,
    JobError,
    Limits,
    chat_completion,
    error_output,
    models_list,
    parse_pages,
)
from .standin import standin_from_env

__all__ = ["ModelFn", "PageWorker", "env_float", "env_int"]

log = logging.getLogger("ocrworker")

ModelFn = Callable[[list[ChatPage]], list[Generation]]


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


class PageWorker:
    """See the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        served_model: str,
        loader: Callable[[], ModelFn],
        limits: Limits | None = None,
        max_batch: int | None = None,
        window_s: float | None = None,
    ) -> None:
        self.name = name
        self.served_model = served_model
        self.loader = loader
        self.limits = limits or Limits.from_env()
        self.max_batch = max_batch if max_batch is not None else env_int("MAX_BATCH_SIZE", 8)
        self.window_s = window_s if window_s is not None else env_int("BATCH_WINDOW_MS", 20) / 1000
        self._fn: ModelFn | None = None
        self._load_error: str | None = None
        self._load_seconds: float | None = None
        self._lock = threading.Lock()
        self._batcher: MicroBatcher[ChatPage, tuple[Generation, float]] | None = None
        self._batcher_for: ModelFn | None = None

    # -- model lifecycle -------------------------------------------------------------------
    def set_model(self, fn: ModelFn | None) -> None:
        """Use ``fn`` as the model call (``None`` forgets it, so the next job loads again)."""
        with self._lock:
            self._fn = fn
            self._load_error = None
            self._batcher = None

    def warm(self) -> None:
        """Load the model now (call before ``runpod.serverless.start``); failures are kept."""
        try:
            self._ensure_model()
        except JobError as exc:
            log.error("%s: model load failed: %s", self.name, exc)

    def _ensure_model(self) -> ModelFn:
        with self._lock:
            if self._fn is not None:
                return self._fn
            if self._load_error is not None:
                raise JobError(self._load_error, code=503)
            t0 = time.perf_counter()
            try:
                fn = standin_from_env() or self.loader()
            except Exception as exc:
                self._load_error = f"{self.name} model failed to load: {type(exc).__name__}: {exc}"
                raise JobError(self._load_error, code=503) from exc
            self._load_seconds = time.perf_counter() - t0
            log.info("%s: model ready in %.1fs", self.name, self._load_seconds)
            self._fn = fn
            return fn

    def _get_batcher(self, fn: ModelFn) -> MicroBatcher[ChatPage, tuple[Generation, float]]:
        if self._batcher is None or self._batcher_for is not fn:
            self._batcher = MicroBatcher(
                _Timed(fn), max_batch=self.max_batch, window_s=self.window_s
            )
            self._batcher_for = fn
        return self._batcher

    @property
    def batcher(self) -> MicroBatcher[ChatPage, tuple[Generation, float]] | None:
        return self._batcher

    # -- jobs ------------------------------------------------------------------------------
    async def handle(self, job: dict[str, Any]) -> list[dict[str, Any]] | dict[str, Any]:
        """Serve one RunPod job (see :mod:`ocrworker.envelope` for in/out shapes)."""
        t0 = time.perf_counter()
        try:
            parsed = parse_pages(job.get("input") if isinstance(job, dict) else None, self.limits)
            if parsed.route == MODELS_ROUTE:  # served only when it can be: a failed load is its 503
                await asyncio.to_thread(self._ensure_model)
                return [models_list(self.served_model)]
            self._check_model(parsed.pages)
            return await self.run_pages(parsed.pages, t0)
        except JobError as exc:
            return error_output(exc)
        except Exception as exc:
            log.exception("%s: job failed", self.name)
            return error_output(
                JobError(f"inference failed: {type(exc).__name__}: {exc}", code=500)
            )

    def _check_model(self, pages: list[ChatPage]) -> None:
        """A page asking for another model than the one served is refused as vLLM refuses it
        (404, "The model `x` does not exist."): answered by this model, a Chandra-2 request
        on a Chandra-1 endpoint came back ``ok`` with its boxes read on the other grid."""
        for page in pages:
            if page.model and page.model != self.served_model:
                raise JobError(
                    f"The model `{page.model}` does not exist. This endpoint serves {self.served_model}.",
                    code=404,
                    error_type="NotFoundError",
                )

    async def run_pages(
        self, pages: list[ChatPage], t0: float | None = None
    ) -> list[dict[str, Any]]:
        """Run decoded pages through the model; one chat completion per page, in order."""
        t0 = time.perf_counter() if t0 is None else t0
        fn = await asyncio.to_thread(self._ensure_model)
        results = await self._get_batcher(fn).submit(pages)
        total = time.perf_counter() - t0
        out = []
        for gen, infer_s in results:
            out.append(
                chat_completion(
                    gen,
                    model=self.served_model,
                    timing={
                        "inference_s": infer_s,
                        "queue_s": max(0.0, total - infer_s),
                        "total_s": total,
                    },
                )
            )
        return out

    def concurrency_modifier(self, current: int) -> int:
        """For ``runpod.serverless.start``: jobs one worker takes at once (``MAX_CONCURRENCY``)."""
        return max(1, env_int("MAX_CONCURRENCY", 8))

    def serve(self, handler: Callable[[dict[str, Any]], Any]) -> None:
        """Run as a RunPod worker (a handler module's ``__main__``): log at ``LOG_LEVEL``, load
        the model (:meth:`warm`), then hand ``handler`` to ``runpod.serverless.start``."""
        import runpod

        logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
        self.warm()
        runpod.serverless.start(
            {"handler": handler, "concurrency_modifier": self.concurrency_modifier}
        )


class _Timed:
    """Wraps a model fn so each result carries the wall time of the batch it ran in."""

    def __init__(self, fn: ModelFn) -> None:
        self.fn = fn

    def __call__(self, pages: list[ChatPage]) -> list[tuple[Generation, float]]:
        t0 = time.perf_counter()
        gens = self.fn(pages)
        dt = time.perf_counter() - t0
        return [(g, dt) for g in gens]
