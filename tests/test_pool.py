"""Endpoint pools: weighted sharing and failover when one member goes down mid-run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import ClassVar

import pytest

import ocrclient
from ocrclient.errors import RUN_STOPPING, AuthError, EndpointError, OcrError, TransientError
from ocrclient.registry import load_backend
from ocrclient.testing import FaultPlan, OpenAISimulator
from ocrclient.transports.base import Health, ModelReply, ModelRequest
from ocrclient.transports.pool import PoolMember, PoolTransport

from .pdfgen import blank_pdf


def _pool_profile(tmp_path: Path, a: OpenAISimulator, b: OpenAISimulator, wa: float = 1, wb: float = 1) -> Path:
    prof = tmp_path / "pool.toml"
    prof.write_text(
        f"""
transport = "pool"
dialect = "plain"
model = "sim/ocr-model"
concurrency = 4
max_attempts = 6
[render]
dpi = 30
[transport_options]
cooldown_s = 30
members = [
  {{ backend = "openai", base_url = "{a.base_url}", api_key = "{a.api_key}", label = "a", weight = {wa} }},
  {{ backend = "openai", base_url = "{b.base_url}", api_key = "{b.api_key}", label = "b", weight = {wb} }},
]
""",
        encoding="utf-8",
    )
    return prof


async def test_failover_when_one_endpoint_goes_down_mid_run(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 24)
    plan = FaultPlan(latency_s=(0.02, 0.02), slots=4)
    with OpenAISimulator(plan=plan) as a, OpenAISimulator(plan=FaultPlan(latency_s=(0.02, 0.02), slots=4)) as b:
        backend = load_backend(str(_pool_profile(tmp_path, a, b)))
        done = 0

        def on_event(event: object) -> None:
            nonlocal done
            if type(event).__name__ == "PageDone":
                done += 1
                if done == 6:
                    a.stop()  # endpoint a dies mid-run

        doc = await ocrclient.aconvert(
            pdf, backend=backend, cache=False, on_event=on_event,
            scheduler_options={"backoff_initial_s": 0.01, "backoff_max_s": 0.05},
        )
        await backend.aclose()
    assert [p.status for p in doc.pages] == ["ok"] * 24
    assert [p.page for p in doc.pages] == list(range(1, 25))
    pool = backend.transport
    assert isinstance(pool, PoolTransport)
    stats = pool.stats()
    assert stats["a"]["ok"] >= 1 and stats["b"]["ok"] >= 12
    assert stats["a"]["failed"] >= 1  # it was tried, benched, and the pages went to b
    assert stats["a"]["ok"] + stats["b"]["ok"] == 24


async def test_weights_share_the_load(tmp_path: Path) -> None:
    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 30)
    with OpenAISimulator(plan=FaultPlan(latency_s=(0.05, 0.05), slots=8)) as a, OpenAISimulator(
        plan=FaultPlan(latency_s=(0.05, 0.05), slots=8)
    ) as b:
        backend = load_backend(str(_pool_profile(tmp_path, a, b, wa=3, wb=1)))
        doc = await ocrclient.aconvert(pdf, backend=backend, cache=False)
        await backend.aclose()
    assert doc.ok
    stats = backend.transport.stats()  # type: ignore[attr-defined]
    assert stats["a"]["sent"] > stats["b"]["sent"] >= 1


class _Dead:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls = 0

    async def send(self, request: ModelRequest) -> ModelReply:
        self.calls += 1
        raise self.exc

    async def health(self) -> Health:
        return Health(False, "dead")

    async def aclose(self) -> None:
        pass


class _Ok(_Dead):
    async def send(self, request: ModelRequest) -> ModelReply:
        self.calls += 1
        await asyncio.sleep(0)
        return ModelReply(text="ok", finish_reason="stop")

    async def health(self) -> Health:
        return Health(True, "up")


async def test_auth_error_on_one_member_is_not_fatal_but_on_all_is() -> None:
    bad = _Dead(AuthError("HTTP 401: nope"))
    pool = PoolTransport([PoolMember("bad", bad, weight=10), PoolMember("good", _Ok(None))])  # type: ignore[arg-type]
    req = ModelRequest(body={})
    with pytest.raises(TransientError):
        await pool.send(req)
    assert (await pool.send(req)).text == "ok"
    assert bad.calls == 1
    both_bad = PoolTransport([PoolMember("x", _Dead(AuthError("HTTP 401"))), PoolMember("y", _Dead(AuthError("HTTP 403")))])
    with pytest.raises(TransientError):
        await both_bad.send(req)
    with pytest.raises(AuthError):
        await both_bad.send(req)


async def test_endpoint_error_on_one_member_drops_it_and_on_all_stops() -> None:
    """A member whose endpoint does not exist (or does not serve the model) is dropped, like one
    that refuses the key; only when every member has one does the run stop, as an EndpointError."""
    gone = _Dead(EndpointError("RunPod endpoint 'x' not found (HTTP 404)", status=404))
    pool = PoolTransport([PoolMember("gone", gone, weight=10), PoolMember("good", _Ok(None))])  # type: ignore[arg-type]
    req = ModelRequest(body={})
    with pytest.raises(TransientError) as first:
        await pool.send(req)
    assert first.value.cause == "pool_member_endpoint"
    assert [(await pool.send(req)).text for _ in range(3)] == ["ok"] * 3
    assert gone.calls == 1
    all_gone = PoolTransport([PoolMember("x", _Dead(EndpointError("HTTP 404: no model", status=404))),
                              PoolMember("y", _Dead(EndpointError("HTTP 404: no model", status=404)))])  # fmt: skip
    with pytest.raises(TransientError):
        await all_gone.send(req)
    with pytest.raises(EndpointError) as last:
        await all_gone.send(req)
    assert "no model" in str(last.value) and last.value.status == 404


async def test_benched_member_is_skipped_until_cooldown() -> None:
    flaky = _Dead(TransientError("HTTP 503", status=503))
    good = _Ok(None)
    pool = PoolTransport([PoolMember("flaky", flaky, weight=5), PoolMember("good", good)], cooldown_s=60)  # type: ignore[arg-type]
    with pytest.raises(TransientError):
        await pool.send(ModelRequest(body={}))
    for _ in range(5):
        await pool.send(ModelRequest(body={}))
    assert flaky.calls == 1 and good.calls == 5
    health = await pool.health()
    assert health.detail == "1/2 members up"


class _Parts:
    """A member recording which of its lifecycle parts ran; ``broken`` ones raise."""

    def __init__(self, broken: set[str]) -> None:
        self.broken = broken
        self.ran: list[str] = []

    def _part(self, name: str) -> None:
        self.ran.append(name)
        if name in self.broken:
            raise RuntimeError(f"{name} broke")

    def preload(self) -> None:
        self._part("preload")

    async def release(self) -> None:
        self._part("release")

    async def aclose(self) -> None:
        self._part("aclose")


@pytest.mark.parametrize("part", ["preload", "release", "aclose"])
async def test_every_member_gets_each_lifecycle_part_when_one_fails(part: str) -> None:
    """The whole kind: preload, release and close each reach every member even when the first
    member's raises (a member left unreleased or unclosed keeps its connections open); close and
    release raise the first error after, preload (best effort, as Backend.preload) logs it."""
    first, second = _Parts({part}), _Parts(set())
    pool = PoolTransport([PoolMember("a", first), PoolMember("b", second)])  # type: ignore[arg-type]
    if part == "preload":
        pool.preload()
    else:
        with pytest.raises(RuntimeError, match=f"{part} broke"):
            await getattr(pool, part)()
    assert first.ran == [part] and second.ran == [part]


class _SlowToClose:
    """A member whose release and close each take ``wait_s`` (a RunPod member waits for the
    cancels of its jobs in flight)."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s

    async def release(self) -> None:
        await asyncio.sleep(self.wait_s)

    async def aclose(self) -> None:
        await asyncio.sleep(self.wait_s)


@pytest.mark.parametrize("part", ["release", "aclose"])
async def test_members_close_at_once_not_one_after_another(part: str) -> None:
    """The whole kind (release and close): four members each taking 0.3 s to close close in
    about 0.3 s, not 1.2 s."""
    pool = PoolTransport([PoolMember(n, _SlowToClose(0.3)) for n in "abcd"])  # type: ignore[arg-type]
    started = time.monotonic()
    await getattr(pool, part)()
    assert time.monotonic() - started < 0.9


def _runpod_pool(tmp_path: Path, a: object, b: object) -> Path:
    """A pool of two RunPod endpoints (the simulators ``a`` and ``b``), attempts of 20 s."""
    prof = tmp_path / "runpod-pool.toml"
    members = ",\n".join(
        f'  {{ backend = "runpod", base_url = "{s.base_url}", endpoint_id = "{s.endpoint_id}", '  # type: ignore[attr-defined]
        f'api_key = "{s.api_key}", model = "m", label = "{label}" }}'  # type: ignore[attr-defined]
        for label, s in (("a", a), ("b", b))
    )
    prof.write_text(
        'transport = "pool"\ndialect = "plain"\nmodel = "m"\nconcurrency = 8\nmax_attempts = 4\n'
        "attempt_timeout_s = 20\ncold_start_s = 0\n[render]\ndpi = 30\n"
        f"[transport_options]\ncooldown_s = 30\nmembers = [\n{members}\n]\n",
        encoding="utf-8",
    )
    return prof


@pytest.mark.parametrize("fault", ["http_429", "http_503", "down"])
async def test_a_runpod_member_that_refuses_every_job_hands_its_pages_over_at_once(fault: str, tmp_path: Path) -> None:
    """Member b refuses every submission (a 429 storm, 503s, or its server is gone) while a is
    healthy: each page b took goes to a (in the same attempt after a 429, which made no job; at
    the next attempt, with no backoff before it, after a failure), and the run's concurrency is
    not cut for b's trouble.  A 429 used to be resent to b, with a doubling
    wait, until the attempt's whole budget (attempt_timeout_s, plus cold_start_s the first time:
    over ten minutes with the shipped profiles) had passed, a's slots idle meanwhile."""
    from ocrclient.testing import RunPodSimulator

    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 16)
    fast = FaultPlan(latency_s=(0.05, 0.05), slots=4)
    refusing = FaultPlan(latency_s=(0.05, 0.05), slots=4, rates={fault: 1.0} if fault != "down" else {})
    with RunPodSimulator(plan=fast, endpoint_id="ep-a") as a, RunPodSimulator(plan=refusing, endpoint_id="ep-b") as b:
        backend = load_backend(str(_runpod_pool(tmp_path, a, b)))
        if fault == "down":
            b.stop()
        retries: list[float] = []

        def on_event(event: object) -> None:
            if type(event).__name__ == "PageRetried":
                retries.append(event.delay_s)  # type: ignore[attr-defined]

        doc = await ocrclient.aconvert(pdf, backend=backend, cache=False, on_event=on_event)
        await backend.aclose()
        a_jobs, b_jobs, a_busiest = a.jobs_submitted, b.jobs_submitted, a.max_concurrent
    assert [(p.page, p.status) for p in doc.pages] == [(i, "ok") for i in range(1, 17)]
    assert a_jobs == 16 and b_jobs == 0
    if fault == "http_429":  # b made no job of it: a takes the page within the same attempt
        assert retries == [] and max(p.attempts for p in doc.pages) == 1
    else:  # b failed: the retry goes straight to a
        assert retries and all(delay == 0.0 for delay in retries), retries
        # (attempts are requests sent: b's 503 was one; b down took none, there was no server)
        assert max(p.attempts for p in doc.pages) == (1 if fault == "down" else 2)
    # no page waited out its attempt's budget (20 s) on b: handed over on b's first refusal
    assert max(p.latency_s or 0.0 for p in doc.pages) < 5.0
    assert a_busiest == 4  # a's every slot in use: the run's concurrency was not halved for b


async def test_a_dropped_member_is_named_in_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A member whose key is refused takes no more pages: a user paying for it is told which one
    and why (it showed only as one retry in the summary)."""
    pool = PoolTransport([PoolMember("east", _Dead(AuthError("HTTP 401: bad key")), weight=10),  # type: ignore[arg-type]
                          PoolMember("west", _Ok(None))])  # type: ignore[arg-type]  # fmt: skip
    with caplog.at_level("WARNING", logger="ocrclient.transports.pool"), pytest.raises(TransientError) as info:
        await pool.send(ModelRequest(body={}))
    assert info.value.elsewhere
    assert [r.getMessage() for r in caplog.records] == ["pool member east takes no more pages in this run: HTTP 401: bad key"]


@pytest.mark.parametrize("west_says", [AuthError("HTTP 403: key revoked"), EndpointError("HTTP 404: endpoint 'w' not found")])
async def test_when_every_member_is_refused_the_error_names_each(west_says: OcrError, caplog: pytest.LogCaptureFixture) -> None:
    """The run stops when the last member is refused: its error names every member and why (it
    said the last one's refusal only, and the warnings named the others but that last one)."""
    pool = PoolTransport([PoolMember("east", _Dead(AuthError("HTTP 401: bad key")), weight=10),  # type: ignore[arg-type]
                          PoolMember("west", _Dead(west_says))])  # type: ignore[arg-type]  # fmt: skip
    with caplog.at_level("WARNING", logger="ocrclient.transports.pool"), pytest.raises(TransientError):
        await pool.send(ModelRequest(body={}))
    with pytest.raises(type(west_says)) as info:
        await pool.send(ModelRequest(body={}))
    assert info.value.message == f"every pool member refused: east: HTTP 401: bad key; west: {west_says.message}"
    assert isinstance(info.value, RUN_STOPPING)


async def test_a_member_slowed_down_now_and_then_stays_in_the_pool(tmp_path: Path) -> None:
    """A short 429 (Retry-After 1 s) takes b out of the rotation for that second only, not for a
    failure's doubling cooldown (b, the bigger member, sat idle for the rest of the run), and the
    page it refused goes to a in the same attempt: none is retried, none fails."""
    from ocrclient.testing import RunPodSimulator

    class Timed(FaultPlan):
        """b's plan, noting when it drew what for which page."""

        drawn: ClassVar[list[tuple[float, str, str | None]]] = []

        def draw(self, key: str) -> str | None:
            got = super().draw(key)
            self.drawn.append((time.monotonic(), key, got))
            return got

    pdf = blank_pdf(tmp_path / "doc.pdf", [(200, 260)] * 60)
    small = FaultPlan(latency_s=(0.1, 0.1), slots=2)
    big = Timed(seed=3, latency_s=(0.1, 0.1), slots=8, rates={"http_429": 0.05}, retry_after_s=1.0)
    with RunPodSimulator(plan=small, endpoint_id="ep-a") as a, RunPodSimulator(plan=big, endpoint_id="ep-b") as b:
        prof = _runpod_pool(tmp_path, a, b)
        prof.write_text(prof.read_text().replace('label = "b" }', 'label = "b", weight = 4 }').replace("concurrency = 8", "concurrency = 10"))
        backend = load_backend(str(prof))
        doc = await ocrclient.aconvert(pdf, backend=backend, cache=False)
        await backend.aclose()
        refused, a_times = b.plan.injected.get("http_429", 0), dict(a.request_times)
    assert [(p.status, p.attempts) for p in doc.pages] == [("ok", 1)] * 60
    assert refused >= 1  # (the plan's seed makes some)
    # b stays in the rotation: once its Retry-After is over, it takes new pages again (benched
    # for a cooldown at its first 429, it took none for the rest of the run).  Counted by time,
    # not by share: its share moved with the machine's load (29 to 48 of 60 idle, 12 under load)
    first = min(t for t, _, got in Timed.drawn if got == "http_429")
    b_after = sum(1 for t, _, got in Timed.drawn if t > first + 1.0 and got is None)
    a_after = sum(1 for op in ("run", "runsync") for t in a_times.get(op, ()) if t > first + 1.2)
    assert a_after < 3 or b_after >= 1, (a_after, b_after)  # pages were still going out: b took some
    pool = backend.transport
    assert isinstance(pool, PoolTransport) and all(m.strikes == 0 for m in pool.members)


async def test_a_dropped_member_is_named_once_whatever_was_in_flight_there(caplog: pytest.LogCaptureFixture) -> None:
    """Every page in flight on the member meets the refusal: one warning, not one per page."""

    class SlowDead(_Dead):
        async def send(self, request: ModelRequest) -> ModelReply:
            self.calls += 1
            await asyncio.sleep(0.05)
            raise self.exc

    east = SlowDead(AuthError("HTTP 401: bad key"))
    pool = PoolTransport([PoolMember("east", east, weight=10),  # type: ignore[arg-type]
                          PoolMember("west", _Ok(None))])  # type: ignore[arg-type]  # fmt: skip
    with caplog.at_level("WARNING", logger="ocrclient.transports.pool"):
        got = await asyncio.gather(*(pool.send(ModelRequest(body={})) for _ in range(4)), return_exceptions=True)
    assert east.calls >= 2 and all(isinstance(g, TransientError) for g in got[: east.calls]), got
    assert [r.getMessage() for r in caplog.records] == ["pool member east takes no more pages in this run: HTTP 401: bad key"]


def _two_member_pool(tmp_path: Path, model: str, member_b: str) -> Path:
    """A pool profile of two OpenAI members, ``a`` and ``b`` (with ``member_b``'s settings)."""
    extra = f", {member_b}" if member_b else ""
    prof = tmp_path / "pool.toml"
    prof.write_text(f"""
transport = "pool"
dialect = "plain"
model = "{model}"
[transport_options]
members = [
  {{ backend = "openai", base_url = "http://127.0.0.1:9/v1", label = "a" }},
  {{ backend = "openai", base_url = "http://127.0.0.1:9/v1", label = "b"{extra} }},
]
""", encoding="utf-8")  # fmt: skip
    return prof


@pytest.mark.parametrize(("member_model", "refused"), [("served-elsewhere", True), ("sim/ocr-model", False), (None, False)])
def test_a_member_serving_another_model_is_refused_before_anything_is_sent(member_model: str | None, refused: bool,
                                                                         tmp_path: Path) -> None:  # fmt: skip
    """Each page's request carries the pool's model: a member given another one (a pod serving
    the model under its own name) passed ``ocr health`` on its own model, then answered every
    page 404 and was dropped, the run on one endpoint and exit 0.  Refused when the backend loads
    (``convert`` and ``health`` alike), in one line; the same model, or none, is fine."""
    from ocrclient.errors import ConfigError

    prof = _two_member_pool(tmp_path, "sim/ocr-model", f'model = "{member_model}"' if member_model else "")
    if refused:
        with pytest.raises(ConfigError, match="pool member b serves model 'served-elsewhere'"):
            load_backend(str(prof))
    else:
        load_backend(str(prof)).close()


def test_a_member_model_is_checked_against_the_model_the_pool_sends_by_default(tmp_path: Path) -> None:
    """A pool naming no model sends its dialect's default (olmOCR's): a member serving another
    model passed (the check compared with no model at all)."""
    from ocrclient.errors import ConfigError

    prof = tmp_path / "pool.toml"
    prof.write_text("""
transport = "pool"
dialect = "olmocr"
[transport_options]
members = [ { backend = "openai", base_url = "http://127.0.0.1:9/v1", dialect = "olmocr", model = "allenai/olmOCR-7B-0725-FP8" } ]
""", encoding="utf-8")  # fmt: skip
    with pytest.raises(ConfigError, match="the pool sends 'allenai/olmOCR-2-7B-1025-FP8'"):
        load_backend(str(prof))


@pytest.mark.parametrize(("refusing", "refused"), [(2, True), (1, False), (0, False)])
async def test_a_pool_whose_every_member_refuses_the_settings_says_so(refusing: int, refused: bool) -> None:
    """``ocr health`` exits 2 for a backend refusing its settings: a pool did only when one
    member alone would have (its own Health never said it)."""

    class _Member:
        def __init__(self, refuses: bool) -> None:
            self.refuses = refuses

        async def health(self) -> Health:
            return Health(False, "bad API key (HTTP 401)", refused=True) if self.refuses else Health(False, "down")

    pool = PoolTransport([PoolMember(n, _Member(i < refusing)) for i, n in enumerate("ab")])  # type: ignore[arg-type]
    h = await pool.health()
    assert not h.ok and h.refused is refused


@pytest.mark.parametrize(("member", "refused"), [
    ('sampling = { max_tokens = 1234 }', "sampling is the pool's to set"),
    ('render = { longest_side = 500 }', "render is the pool's to set"),
    ('dialect_options = { prompt = "hi" }', "dialect_options is the pool's to set"),
    ("max_attempts = 9", "max_attempts is the pool's to set"),
    ("concurrency = 3", "concurrency is the pool's to set"),
    ("weight = 0", "weight takes a positive number"),
    ("weight = -1", "weight takes a positive number"),
    ('weight = "x"', "weight takes a positive number"),
    ("endpoint_idd = 3", "pool member b: .*endpoint_idd"),
    ("weight = 2", None),
    ('api_key = "member-key"', None),
])  # fmt: skip
def test_a_members_setting_is_used_or_refused_naming_the_member(member: str, refused: str | None, tmp_path: Path) -> None:
    """The pool's dialect builds every request: a member's sampling, render or dialect options
    (and the run's attempts, concurrency) were taken and silently dropped; a weight of 0 or -1
    was taken; a member's typo was reported as the member backend's, not the member's."""
    from ocrclient.errors import ConfigError

    prof = _two_member_pool(tmp_path, "m", member)
    if refused is None:
        load_backend(str(prof)).close()
        return
    with pytest.raises(ConfigError, match=refused):
        load_backend(str(prof))
