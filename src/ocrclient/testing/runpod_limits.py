"""RunPod's per-endpoint rate limits, as the simulated endpoint enforces them.

RunPod documents, per endpoint and operation family: ``/run`` 1000 requests per 10 s and 200
concurrent; ``/runsync`` 2000 per 10 s, 400 concurrent; ``/status`` and ``/stream`` (one family)
2000 per 10 s, 400 concurrent; ``/cancel`` 100 per 10 s, 20 concurrent; ``/purge-queue`` 2 per
10 s.  A request over a limit is answered ``429``.  :class:`RateWindow` counts requests in a
sliding window and requests open at once, per family, and says whether the next one is admitted.

Example::

    window = RateWindow({"status": (2, 10.0, None)})
    assert window.admit("status") and window.admit("status") and not window.admit("status")
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping

__all__ = ["DOCUMENTED", "RateWindow", "family"]

#: family -> (requests, window seconds, concurrent or None): RunPod's documented figures
DOCUMENTED: dict[str, tuple[int, float, int | None]] = {
    "run": (1000, 10.0, 200),
    "runsync": (2000, 10.0, 400),
    "status": (2000, 10.0, 400),
    "cancel": (100, 10.0, 20),
    "purge-queue": (2, 10.0, None),
}


def family(op: str) -> str:
    """``stream`` and ``status-sync`` share the ``status`` limit."""
    return "status" if op in ("stream", "status-sync") else op


class RateWindow:
    """Sliding-window request counts and open requests per family (thread-safe)."""

    def __init__(self, limits: Mapping[str, tuple[int, float, int | None]]) -> None:
        self.limits = dict(limits)
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {name: deque() for name in self.limits}
        self._open: Counter[str] = Counter()
        #: 429s answered, by family
        self.refused: Counter[str] = Counter()

    def admit(self, op: str) -> bool:
        """Count a request of ``op``; ``False`` if it is over a limit (answer 429, do nothing).
        An admitted request is open until :meth:`leave`."""
        name = family(op)
        limit = self.limits.get(name)
        if limit is None:
            return True
        requests, window_s, concurrent = limit
        now = time.monotonic()
        with self._lock:
            times = self._times[name]
            while times and times[0] <= now - window_s:
                times.popleft()
            if len(times) >= requests or (concurrent is not None and self._open[name] >= concurrent):
                self.refused[name] += 1
                return False
            times.append(now)
            self._open[name] += 1
            return True

    def leave(self, op: str) -> None:
        """An admitted request has been answered."""
        name = family(op)
        if name in self.limits:
            with self._lock:
                self._open[name] = max(0, self._open[name] - 1)
