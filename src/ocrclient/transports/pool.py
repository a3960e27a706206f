"""A pool of endpoints behind one transport: weighted load sharing and failover.

Several endpoints serving the same model (two RunPod endpoints in different regions, a RunPod
endpoint plus a pod, ...) act as one backend.  Each request goes to the healthy member with the
lowest ``in-flight / weight``; a member whose attempt fails with a transient error (down, 5xx,
timeout) is benched for a cooldown that doubles on repeated failures, one that answers 429 (its
RunPod transport hands the refusal back rather than resend it) sits out that slow-down only, so
the scheduler's next attempt — the scheduler still owns every retry — lands on another member at
once, and one member's 429 does not lower the run's concurrency.  When every member is
benched, the one whose cooldown ends first is tried.  A member that answers an auth or endpoint
error (bad key, unknown endpoint id or model) is dropped; that error only stops the run when
every member has had one.

Profile::

    transport = "pool"
    dialect = "olmocr"
    [transport_options]
    cooldown_s = 30
    members = [
      { backend = "runpod-olmocr", endpoint_id = "abc", weight = 2 },
      { backend = "runpod-olmocr", endpoint_id = "def", weight = 1 },
    ]

Each member is a backend profile name (or TOML path) plus overrides; its dialect must match the
pool's, since one request is built once for whichever member sends it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from ..config import BackendConfig, resolve_config
from ..errors import RUN_STOPPING, AuthError, ConfigError, PermanentError, TransientError
from .base import Health, ModelReply, ModelRequest, Transport

__all__ = ["PoolMember", "PoolTransport"]

log = logging.getLogger(__name__)

#: settings a member cannot have its own of: the pool's dialect builds every request and reads
#: every reply, and the pool's run holds the pages (set on the pool, they hold for every member)
_POOL_WIDE = frozenset({"render", "sampling", "dialect_options", "concurrency", "max_attempts",
                        "page_deadline_s", "cold_start_s", "unreachable_s", "document_mode"})  # fmt: skip


@dataclass
class PoolMember:
    name: str
    transport: Transport
    weight: float = 1.0
    inflight: int = 0
    sent: int = 0
    ok: int = 0
    failed: int = 0
    benched_until: float = 0.0
    strikes: int = 0
    #: dropped after an auth or endpoint error (``fatal``): it is never picked again
    auth_failed: bool = False
    fatal: PermanentError | None = None
    last_error: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def healthy(self, now: float) -> bool:
        return not self.auth_failed and now >= self.benched_until


def _model_sent(cfg: BackendConfig) -> str | None:
    """The model ``cfg``'s requests name: its own, else its dialect's default."""
    from ..registry import dialect_class

    return cfg.resolved_model() or getattr(dialect_class(cfg.dialect), "DEFAULT_MODEL", None)


class PoolTransport:
    """Weighted, failover-aware pool of transports (see the module docstring).

    Example::

        pool = PoolTransport([PoolMember("east", t1, weight=2), PoolMember("west", t2)])
        reply = await pool.send(request)
    """

    #: options that cannot change what a page reads (the cache key leaves them out)
    neutral_options = frozenset({"cooldown_s", "max_cooldown_s"})

    #: the settings chosen for a backend that it reads: none (each member's are its own, in
    #: ``transport_options.members``; see ``Transport``)
    READS: frozenset[str] = frozenset()

    def __init__(self, members: list[PoolMember], *, cooldown_s: float = 30.0, max_cooldown_s: float = 600.0) -> None:
        if not members:
            raise ConfigError("a pool needs at least one member")
        self.members = members
        #: a GPU-second's price on every member (``None``: unknown, or they differ)
        self.price_per_gpu_second: float | None = None
        self.cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        for m in members:  # a member that would resend a refused page itself hands it back
            if hasattr(m.transport, "hand_back_429"):  # while another member can take it
                m.transport.hand_back_429 = functools.partial(self._any_healthy, but=m)

    @property
    def reports_writes(self) -> bool:
        """Whether every member says when its requests are written (see ``HttpImports``)."""
        return all(getattr(m.transport, "reports_writes", False) for m in self.members)

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> PoolTransport:
        from ..registry import check_read, load_transport
        from .options import PoolOptions, checked_options

        o = checked_options(PoolOptions, cfg, "pool")
        specs = o.members
        if not specs:
            raise ConfigError(f"backend {cfg.name!r}: transport 'pool' needs transport_options.members")
        members = []
        sent = _model_sent(cfg)  # (each page's request carries the pool's model)
        prices: set[float | None] = set()
        for i, spec in enumerate(specs):
            if not isinstance(spec, dict) or "backend" not in spec:
                raise ConfigError(f"backend {cfg.name!r}: pool member {i + 1} needs a 'backend' name")
            spec = dict(spec)
            name = spec.pop("backend")
            try:
                weight = float(spec.pop("weight", 1.0))
            except (TypeError, ValueError):
                weight = math.nan
            if not weight > 0 or math.isinf(weight):  # (0 and -1 were taken, as 0.001)
                raise ConfigError(f"backend {cfg.name!r}: pool member {i + 1}: weight takes a positive number")
            label = str(spec.pop("label", f"{name}#{i + 1}"))
            pool_wide = sorted(set(spec) & _POOL_WIDE)
            if pool_wide:  # (the pool's dialect builds every request: a member's were dropped silently)
                raise ConfigError(f"backend {cfg.name!r}: pool member {label}: {', '.join(pool_wide)} is the pool's "
                                  "to set (every member gets the pool's requests, read by the pool's dialect)")  # fmt: skip
            try:
                member_cfg = resolve_config(name, **spec)
                check_read(spec, member_cfg)
            except ConfigError as exc:
                raise ConfigError(f"backend {cfg.name!r}: pool member {label}: {exc.message}") from None
            if member_cfg.dialect != cfg.dialect:
                raise ConfigError(
                    f"pool member {label} speaks dialect {member_cfg.dialect!r}, the pool {cfg.dialect!r}"
                )
            model = _model_sent(member_cfg)
            if model and sent and model != sent:
                raise ConfigError(
                    f"pool member {label} serves model {model!r}, but the pool sends {sent!r} to every member; "
                    "give them the same model"
                )
            if member_cfg.transport == "pool":
                raise ConfigError("pools cannot be nested")
            members.append(PoolMember(label, load_transport(member_cfg), weight=max(weight, 1e-3)))
            prices.add(member_cfg.price_per_gpu_second)
        pool = cls(members, cooldown_s=o.cooldown_s, max_cooldown_s=o.max_cooldown_s)
        # the members' price when they agree (each page is billed by whichever member served it)
        pool.price_per_gpu_second = prices.pop() if len(prices) == 1 else None
        return pool

    def _pick(self) -> PoolMember:
        now = time.monotonic()
        live = [m for m in self.members if m.healthy(now)]
        if live:
            return min(live, key=lambda m: ((m.inflight + 1) / m.weight, -m.weight))
        candidates = [m for m in self.members if not m.auth_failed]
        if not candidates:
            first = self.members[0].fatal
            if first is not None and not isinstance(first, AuthError):
                raise type(first)(f"every pool member failed: {first.message}", cause=first.cause, status=first.status)
            raise AuthError(f"every pool member rejected the credentials ({self.members[0].last_error})")
        return min(candidates, key=lambda m: m.benched_until)

    def _bench(self, member: PoolMember, message: str) -> None:
        member.strikes += 1
        member.failed += 1
        member.last_error = message
        delay = min(self.max_cooldown_s, self.cooldown_s * 2 ** (member.strikes - 1))
        member.benched_until = time.monotonic() + delay

    def _hold(self, member: PoolMember, exc: TransientError) -> None:
        """A member that answered 429 sits out its ``Retry-After`` (its endpoint's backoff; 1 s
        without one), not a failure's doubling cooldown: a short slow-down leaves it in the pool."""
        member.failed += 1
        member.last_error = exc.message
        wait = exc.retry_after if exc.retry_after is not None else min(1.0, self.cooldown_s)
        member.benched_until = max(member.benched_until, time.monotonic() + wait)

    async def send(self, request: ModelRequest) -> ModelReply:
        """Send ``request`` to the healthiest member (see the module docstring).  A member that
        answers 429 made nothing of it: the next healthy member takes it in the same attempt."""
        while True:
            member = self._pick()
            member.inflight += 1
            member.sent += 1
            try:
                reply = await member.transport.send(request)
            except RUN_STOPPING as exc:
                first = not member.auth_failed  # (pages in flight there meet it too: one warning)
                member.auth_failed = True
                member.fatal = exc
                member.failed += 1
                member.last_error = exc.message
                if all(m.auth_failed for m in self.members):  # the run stops: each member said, not the last alone
                    if len(self.members) == 1:
                        raise
                    said = "; ".join(f"{m.name}: {m.last_error}" for m in self.members)
                    raise type(exc)(f"every pool member refused: {said}", cause=exc.cause, status=exc.status) from exc
                if first:
                    log.warning("pool member %s takes no more pages in this run: %s", member.name, exc.message)
                # another member may accept: let the scheduler retry there
                cause = "pool_member_auth" if isinstance(exc, AuthError) else "pool_member_endpoint"
                raise TransientError(f"pool member {member.name}: {exc.message}", cause=cause,
                                     elsewhere=self._any_healthy()) from exc  # fmt: skip
            except TransientError as exc:
                if exc.status == 429:  # a slow-down: out of the rotation while it lasts, no strike
                    self._hold(member, exc)
                    if self._any_healthy():
                        continue
                else:
                    self._bench(member, exc.message)
                # with another member to go to, the next attempt goes at once, and one member's
                # 429 is not the run's congestion (the scheduler would halve its concurrency)
                others = self._any_healthy()
                raise TransientError(
                    f"pool member {member.name}: {exc.message}",
                    cause=exc.cause,
                    retry_after=None if others else exc.retry_after,
                    status=None if others and exc.status == 429 else exc.status,
                    elsewhere=others,
                ) from exc
            except PermanentError:
                member.failed += 1
                raise
            finally:
                member.inflight -= 1
            member.ok += 1
            member.strikes = 0
            member.benched_until = 0.0
            reply.data.setdefault("pool_member", member.name)
            return reply

    def _any_healthy(self, but: PoolMember | None = None) -> bool:
        """Whether a member (other than ``but``) can take a page now."""
        now = time.monotonic()
        return any(m is not but and m.healthy(now) for m in self.members)

    def preload(self) -> None:
        """Every member's own ``preload`` (``Backend.preload``): best effort, as there; one that
        fails leaves the others to preload, and its imports to its first request."""
        for m in self.members:
            load = getattr(m.transport, "preload", None)
            try:
                if load is not None:
                    load()
            except Exception as exc:
                log.debug("pool member %s: preload failed: %s", m.name, exc)

    async def warm_up(self) -> None:
        """Every member's own warm-up, side by side (``Backend.warm_up``; failures are theirs to
        tolerate: a member that cannot warm up works as it did)."""
        warms = [warm() for m in self.members if (warm := getattr(m.transport, "warm_up", None)) is not None]
        await asyncio.gather(*warms, return_exceptions=True)

    async def health(self) -> Health:
        results: dict[str, Any] = {}
        ok_any, refused = False, 0
        for m in self.members:
            try:
                h = await m.transport.health()
            except Exception as exc:
                results[m.name] = f"error: {exc}"
                continue
            ok_any = ok_any or h.ok
            refused += h.refused
            results[m.name] = f"{'ok' if h.ok else 'down'}: {h.detail}"
        up = sum(1 for v in results.values() if str(v).startswith("ok"))
        # every member refusing the settings: a configuration to fix, as one member alone says
        return Health(ok_any, f"{up}/{len(self.members)} members up", results, refused=refused == len(self.members))

    def stats(self) -> dict[str, dict[str, Any]]:
        return {
            m.name: {"weight": m.weight, "sent": m.sent, "ok": m.ok, "failed": m.failed, "benched": not m.healthy(time.monotonic())}
            for m in self.members
        }

    async def release(self) -> None:
        """Each member's ``release`` (the running event loop is about to end)."""
        await self._each("release")

    async def aclose(self) -> None:
        """Close every member, each even when another raised (the first error, in member order,
        is raised after): a member's failure leaves no other's connections open."""
        await self._each("aclose")

    async def _each(self, method: str) -> None:
        """``method`` of every member at once (a RunPod member cancelling its jobs in flight
        waits for their cancels: members one after another added their waits up)."""
        calls = [call for m in self.members if (call := getattr(m.transport, method, None)) is not None]
        done = await asyncio.gather(*(call() for call in calls), return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
