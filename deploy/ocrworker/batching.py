"""Group concurrent jobs into one model call.

RunPod hands a worker up to ``concurrency_modifier()`` jobs at once; each job awaits
:meth:`MicroBatcher.submit`, and one runner thread calls the (synchronous, GPU-bound) model
function with up to ``max_batch`` pages gathered within ``window_s`` seconds.  Only one model
call runs at a time, so the engine never sees concurrent calls.

Example::

    batcher = MicroBatcher(lambda pages: [run(p) for p in pages], max_batch=8, window_s=0.02)
    results = await batcher.submit([page1, page2])
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["MicroBatcher"]


class MicroBatcher(Generic[T, R]):
    """See the module docstring."""

    def __init__(
        self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 8, window_s: float = 0.02
    ) -> None:
        self.fn = fn
        self.max_batch = max(1, max_batch)
        self.window_s = max(0.0, window_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[Any]]] | None = None
        self._runner: asyncio.Task[None] | None = None
        #: sizes of the batches handed to ``fn`` (for logs and tests)
        self.batch_sizes: list[int] = []

    def _ensure_runner(self) -> asyncio.Queue[tuple[T, asyncio.Future[Any]]]:
        loop = asyncio.get_running_loop()
        if (
            self._loop is not loop
            or self._queue is None
            or self._runner is None
            or self._runner.done()
        ):
            self._loop = loop
            self._queue = asyncio.Queue()
            self._runner = loop.create_task(self._run(self._queue))
        return self._queue

    async def submit(self, items: list[T]) -> list[R]:
        """Queue ``items`` and wait for their results (in order)."""
        queue = self._ensure_runner()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = []
        for item in items:
            fut: asyncio.Future[Any] = loop.create_future()
            futures.append(fut)
            queue.put_nowait((item, fut))
        return list(await asyncio.gather(*futures))

    async def _run(self, queue: asyncio.Queue[tuple[T, asyncio.Future[Any]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await queue.get()
            batch = [first]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    while len(batch) < self.max_batch and not queue.empty():
                        batch.append(queue.get_nowait())
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), timeout))
                except TimeoutError:
                    break
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            self.batch_sizes.append(len(live))
            try:
                results = await asyncio.to_thread(self.fn, [item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(
                        f"model returned {len(results)} results for {len(live)} inputs"
                    )
            except Exception as exc:  # hand the failure to every waiting job
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(res)
