"""Seeded fault plans and pluggable model responders for the simulated clouds.

A :class:`FaultPlan` decides, reproducibly, what goes wrong with each request a simulator
receives.  The decision for a request depends only on the plan's seed, a key for the request
(by default a hash of its body, i.e. the page) and how many times that key was seen before — not
on arrival order — so a run with 32 concurrent pages injects the same faults as a serial run.

A *responder* is what the simulated model answers: any callable taking the request body (the
OpenAI chat request, ocular body or whole-PDF input) and returning a :class:`SimReply`.

Example::

    >>> plan = FaultPlan(seed=7, rates={"http_503": 0.5})
    >>> [plan.draw("page-1"), plan.draw("page-1"), plan.draw("page-2")]  # doctest: +SKIP
    ['http_503', None, None]
    >>> FaultPlan(seed=7, rates={"http_503": 0.5}).draw("page-1") == FaultPlan(
    ...     seed=7, rates={"http_503": 0.5}).draw("page-1")
    True
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FAULTS",
    "CannedReply",
    "FaultPlan",
    "FixedResponder",
    "ReplayResponder",
    "Responder",
    "SimReply",
    "body_key",
    "echo_responder",
    "page_key",
]

#: fault classes the simulators understand (each simulator implements those that exist on its
#: cloud; unknown ones are ignored there)
FAULTS = (
    "http_500",  # plain 500
    "http_502",
    "http_503",
    "http_429",  # rate limited, with Retry-After
    "http_400",
    "http_401",
    "reset",  # connection dropped mid-reply
    "hang",  # the request never completes (until hang_s)
    "slow_first_byte",  # first byte after first_byte_delay_s, then streams (proxy idle tests)
    "failed",  # RunPod job FAILED (handler exception)
    "no_output",  # RunPod job COMPLETED without output
    "timed_out",  # RunPod job TIMED_OUT
    "length",  # model stops at max_tokens (finish_reason "length")
    "garbage",  # model answers nonsense (bad output)
)


@dataclass
class SimReply:
    """What the simulated model says for one request."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: extra fields for non-chat contracts (ocular confidence, whole-PDF outputs)
    data: dict[str, Any] = field(default_factory=dict)


Responder = Callable[[dict[str, Any]], SimReply]


@dataclass(frozen=True)
class CannedReply:
    """An exact HTTP reply a simulator gives to every request instead of serving it: to test how
    a client reads each error shape a real server sends (a proxy's HTML 502, Modal's
    ``modal-http:`` 404, vLLM's error JSON of a given release, RunPod's 404 for an unknown
    endpoint).  Pass it as ``force_reply=`` to any simulator.

    ``body``: bytes or text are sent as they are (text starting with ``<`` as HTML, other text as
    plain text), anything else as JSON; ``content_type`` overrides that guess.

        >>> CannedReply(404, {"detail": "Not Found"}).encoded()
        (b'{"detail": "Not Found"}', 'application/json')
        >>> CannedReply(502, "<html><title>502 Bad Gateway</title></html>").encoded()[1]
        'text/html; charset=utf-8'
    """

    status: int
    body: Any = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def encoded(self) -> tuple[bytes, str]:
        """``(body bytes, content type)``."""
        if isinstance(self.body, bytes):
            data, ctype = self.body, "text/plain; charset=utf-8"
        elif isinstance(self.body, str):
            data = self.body.encode()
            html = self.body.lstrip().startswith("<")
            ctype = "text/html; charset=utf-8" if html else "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(self.body).encode(), "application/json"
        return data, self.content_type or ctype


def body_key(body: Any) -> str:
    """A stable key for a request body (the page it carries).

    The body's structure is hashed as it is walked (mappings in sorted key order), so a request
    carrying a 300 kB base64 image costs one pass of SHA-256 over it, not a JSON re-encoding
    first.  Equal bodies give equal keys however their mappings are ordered:

        >>> body_key({"a": 1, "b": ["x", None]}) == body_key({"b": ["x", None], "a": 1})
        True
        >>> body_key({"a": 1}) == body_key({"a": "1"}), len(body_key("page"))
        (False, 16)
    """
    digest = hashlib.sha256()
    _feed(digest, body)
    return digest.hexdigest()[:16]


#: the request fields a client's retry may change for the same page (a dialect's temperature
#: ladder, a longer ``max_tokens`` after a cut reply): :func:`page_key` leaves them out
SAMPLING_FIELDS = frozenset({"temperature", "top_p", "top_k", "min_p", "seed", "max_tokens", "max_completion_tokens",
                             "repetition_penalty", "frequency_penalty", "presence_penalty", "stream_options"})  # fmt: skip


def page_key(body: Any) -> str:
    """A key for the *page* a request carries, whatever its sampling: :func:`body_key` of the
    body without :data:`SAMPLING_FIELDS` (at the top, and in a RunPod envelope's
    ``openai_input``).  Give it to a simulator (``key_fn=page_key``) for ``max_faults_per_key``
    to count per page with a dialect whose retries change the temperature:

        >>> page_key({"messages": ["p1"], "temperature": 0.2}) == page_key({"messages": ["p1"], "temperature": 0.5})
        True
    """
    def strip(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        kept = {k: v for k, v in value.items() if k not in SAMPLING_FIELDS}
        if isinstance(kept.get("openai_input"), dict):
            kept["openai_input"] = strip(kept["openai_input"])
        return kept

    return body_key(strip(body))


def _feed(digest: Any, value: Any) -> None:
    """Hash ``value``'s structure into ``digest``: each item tagged with its type and length,
    so no two different bodies feed the same bytes."""
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        digest.update(b"s%d:" % len(raw))
        digest.update(raw)
    elif isinstance(value, Mapping):
        digest.update(b"{%d:" % len(value))
        for key in sorted(value, key=str):
            _feed(digest, str(key))
            _feed(digest, value[key])
    elif isinstance(value, list | tuple):
        digest.update(b"[%d:" % len(value))
        for item in value:
            _feed(digest, item)
    else:  # numbers, booleans, None; anything else by its str() (as json's default=str did)
        raw = json.dumps(value, default=str).encode()
        digest.update(b"v%d:" % len(raw))
        digest.update(raw)


def check_rate(name: str, rate: Any) -> float:
    """``rate`` if it is a probability (a finite number in [0, 1]), else a ``ValueError``
    naming the fault:

        >>> check_rate("http_503", 0.25)
        0.25
        >>> check_rate("failed", float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: fault rate of failed must be a number in [0, 1], got nan
    """
    ok = isinstance(rate, int | float) and not isinstance(rate, bool) and 0.0 <= rate <= 1.0  # (NaN: False)
    if not ok:
        raise ValueError(f"fault rate of {name} must be a number in [0, 1], got {rate!r}")
    return float(rate)


@dataclass
class FaultPlan:
    """Rates per fault class, latency, service slots and cold start — all seeded.

    * ``rates`` – probability per request of each fault class in :data:`FAULTS`: each a number in
      [0, 1] (else ``ValueError``), summing ≤ 1.
    * ``latency_s`` – (min, max) service time of a healthy request, drawn uniformly (seeded), or
      one number for a fixed time:
      how long it holds its slot, counted from when it got the slot (after any cold start), the
      simulator's own work inside the slot (the responder, building the reply) included.  An
      ``http_*`` fault is answered as soon as its request has a slot, without it.
    * ``slots`` – how many requests the simulated GPU serves at once; the rest queue.
    * ``cold_start_s`` – delay before the first request is served (scaled-to-zero start).
    * ``retry_after_s`` – the Retry-After value sent with 429s, in seconds (fractions allowed,
      for fast tests, where HTTP says whole seconds); ``None`` sends none (as RunPod's own 429s).
    * ``hang_s`` – how long a "hang" holds the request before giving up on it.
    * ``first_byte_delay_s`` – for ``slow_first_byte``.
    * ``max_faults_per_key`` – after this many faults for the same page, it is served healthy
      (so a plan with high rates still lets retries finish; ``None`` = unlimited).
    """

    seed: int = 0
    rates: Mapping[str, float] = field(default_factory=dict)
    latency_s: tuple[float, float] | float = (0.0, 0.0)
    slots: int = 8
    cold_start_s: float = 0.0
    retry_after_s: float | None = 1.0
    hang_s: float = 3600.0
    first_byte_delay_s: float = 0.0
    max_faults_per_key: int | None = None
    _seen: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _faults: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    #: what was injected, by fault class (for test assertions and benchmark reports)
    injected: Counter[str] = field(default_factory=Counter, init=False)

    def __post_init__(self) -> None:
        unknown = set(self.rates) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault classes: {sorted(unknown)}; known: {FAULTS}")
        for name, rate in self.rates.items():  # (-0.5 or NaN passed while the sum was <= 1)
            check_rate(name, rate)
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates sum to more than 1")
        # one number is a fixed time (it was taken as given, and every simulator worker died
        # unpacking it: each request then waited for its timeout, with no word why)
        lat = self.latency_s
        lo, hi = (lat, lat) if isinstance(lat, int | float) else lat
        if not 0 <= float(lo) <= float(hi):
            raise ValueError(f"latency_s needs 0 <= min <= max, got {lat!r}")
        self.latency_s = (float(lo), float(hi))

    def _rng(self, key: str, n: int, salt: str) -> random.Random:
        return random.Random(f"{self.seed}:{salt}:{key}:{n}")

    def draw(self, key: str) -> str | None:
        """The fault for the next request with this key (``None`` = healthy)."""
        with self._lock:
            n = self._seen[key]
            self._seen[key] += 1
            if self.max_faults_per_key is not None and self._faults[key] >= self.max_faults_per_key:
                return None
            x = self._rng(key, n, "fault").random()
            acc = 0.0
            for name in FAULTS:
                acc += self.rates.get(name, 0.0)
                if x < acc:
                    self._faults[key] += 1
                    self.injected[name] += 1
                    return name
            return None

    def latency(self, key: str) -> float:
        """Service time for a healthy request with this key."""
        lo, hi = self.latency_s  # type: ignore[misc]  # (a pair since __post_init__)
        if hi <= lo:
            return lo
        with self._lock:
            n = self._seen[key]
        return self._rng(key, n, "latency").uniform(lo, hi)

    def attempts(self, key: str) -> int:
        """How many requests with this key were seen."""
        with self._lock:
            return self._seen[key]


# ---------------------------------------------------------------------------------------------
# responders
# ---------------------------------------------------------------------------------------------


def _image_digest(body: Mapping[str, Any]) -> str:
    """A short digest of the image in a chat/ocular body (so replies differ per page)."""
    return body_key(_find_image(body))[:8]


def _find_image(body: Any) -> Any:
    if isinstance(body, Mapping):
        if "image_url" in body and isinstance(body["image_url"], Mapping):
            return body["image_url"].get("url")
        for key in ("image", "image_base64", "pdf_base64"):
            if key in body:
                return body[key]
        for value in body.values():
            found = _find_image(value)
            if found is not None:
                return found
    elif isinstance(body, list):
        for value in body:
            found = _find_image(value)
            if found is not None:
                return found
    return None


#: what the ``garbage`` fault makes a chat model say: a runaway loop, as VLMs fail (a unit
#: repeated ~2,400 characters, past the client's repetition check), ``finish_reason`` stop
GARBAGE_TEXT = "\u2591\u2591 ::: " + "lorem ipsum " * 200


def garbage_reply(reply: SimReply) -> SimReply:
    """``reply`` as the ``garbage`` fault turns it (:data:`GARBAGE_TEXT`, same token counts'
    shape)."""
    return SimReply(GARBAGE_TEXT, "stop", reply.prompt_tokens, 400, dict(reply.data))


def cut_at_max_tokens(reply: SimReply, max_tokens: Any) -> SimReply:
    """``reply`` as a vLLM server gives it under the request's ``max_tokens``: a longer one cut
    there (a token is a word here), ``finish_reason`` "length" (the simulators answered every
    word, "stop", whatever the limit: a client's cap could not be tested)."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return reply
    words = reply.text.split(" ")
    made = reply.completion_tokens or len(reply.text.split())
    if made <= max_tokens or len(words) <= 1:
        return reply
    cut = " ".join(words[:max_tokens])
    return SimReply(cut, "length", reply.prompt_tokens, max_tokens, dict(reply.data))


def echo_responder(body: dict[str, Any]) -> SimReply:
    """Answers plain markdown naming the image it saw: ``# Page <digest>`` plus a line."""
    digest = _image_digest(body)
    text = f"# Page {digest}\n\nSimulated text for image {digest}."
    return SimReply(text=text, prompt_tokens=100, completion_tokens=len(text.split()))


@dataclass
class FixedResponder:
    """Always the same reply (handy for contract tests)."""

    text: str
    finish_reason: str = "stop"
    data: dict[str, Any] = field(default_factory=dict)

    def __call__(self, body: dict[str, Any]) -> SimReply:
        return SimReply(self.text, self.finish_reason, 10, len(self.text.split()), dict(self.data))


@dataclass
class ReplayResponder:
    """Replays recorded replies in turn (e.g. the real olmOCR-2 outputs in the shared corpus).

    ``ReplayResponder.from_dir(path, "*.md")`` loads every matching file, sorted by name; the
    n-th distinct image seen gets the n-th reply (wrapping around), the same image always the
    same reply.
    """

    replies: list[str]
    _assigned: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_dir(cls, path: str | Path, pattern: str = "*.md") -> ReplayResponder:
        files = sorted(Path(path).glob(pattern))
        if not files:
            raise FileNotFoundError(f"no replies matching {pattern} in {path}")
        return cls([f.read_text(encoding="utf-8") for f in files])

    def __call__(self, body: dict[str, Any]) -> SimReply:
        digest = _image_digest(body)
        with self._lock:
            idx = self._assigned.setdefault(digest, len(self._assigned))
        text = self.replies[idx % len(self.replies)]
        return SimReply(text, "stop", 100, len(text.split()))
