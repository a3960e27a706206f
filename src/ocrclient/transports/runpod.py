"""RunPod serverless transport: one page = one RunPod job, over plain httpx.

Wire contract (RunPod's serverless API, and its Python SDK 1.12, whose wire parts are the same
in 1.10, the release deploy/ pins; a ``FAILED`` job's error and worker-vllm's output shapes are
in :mod:`.runpod_jobs`):

* ``mode="runsync"`` (the default, and every shipped profile's): ``POST .../runsync?wait=<ms>``.
  RunPod holds the request until the job ends and answers with the finished job (``{"id":
  "sync-...", "status": "COMPLETED", "output", ...}``): a freed GPU slot is seen the moment it
  frees, no poll delay.  ``?wait=`` bounds the hold (1000 to 300000 ms; 90 s without it); past
  it RunPod answers ``{"id", "status": "IN_QUEUE" | "IN_PROGRESS"}`` and the job goes on: we
  poll ``GET .../status/{id}`` as for ``/run``, never resubmitting (RunPod's Python SDK does the
  same).  ``/runsync`` results are kept 1 minute.  One request and one job per page; the price:
  while the request is held the job id is unknown, so a run stopped then (Ctrl-C) cannot cancel
  those jobs (each runs its one page to the end), and a connection lost during the hold leaves
  its job running while the scheduler's retry submits the page again.  An attempt with less
  than ~1.3 s left goes by ``/run``: the hold is 1 s at least, and the id would come back too
  late to cancel the job at the deadline.
* ``mode="run"``: ``POST .../run`` -> ``{"id", "status"}``, then ``GET .../status/{id}`` until
  a terminal status (``COMPLETED``, ``FAILED``, ``CANCELLED``, ``TIMED_OUT``).  Results of
  ``/run`` are kept 30 minutes.  A finished job is seen at the next poll, so each page costs its
  slot up to one poll interval (``poll_interval_s`` x1.5 per poll, capped at
  ``max_poll_interval_s``); with ``--concurrency`` = the endpoint's workers that idles the GPUs
  (``benchmarks/bench_scheduler.py``).  The job id is known at once, so every job can be
  cancelled.
* RunPod's per-endpoint rate limits (:mod:`.runpod_rate`): paced at ``rate_share`` (default
  half) of each; a 429 on any route makes every request to the endpoint wait (``Retry-After``,
  else exponential backoff) and the refused one go again -- a slow-down, not a failed page --
  but a pool member hands a refused submission back while another member can take it.
* ``POST .../cancel/{id}``, ``GET .../health``; every route takes ``Authorization: Bearer <key>``.
* Bodies: ``/run`` <= 10 MB, ``/runsync`` <= 20 MB — checked *before* sending; a ``policy``
  takes ``executionTimeout`` (ms, over 5000), ``ttl`` (ms, at least 10000) and ``lowPriority``.
* Status replies carry ``delayTime`` (queue) and ``executionTime`` (GPU) in milliseconds.
* ``mode="local"`` talks to the runpod SDK's own test server (``python handler.py
  --rp_serve_api``): no endpoint id in the path, no auth, ``POST /runsync`` runs the job inside
  the request, ``POST /status/{id}`` runs a ``/run`` job synchronously and then forgets it, and
  there is neither ``/cancel`` nor ``/health``.

Envelopes by :attr:`ModelRequest.kind`:

* ``chat``     -> ``{"input": {"openai_route": "/v1/chat/completions", "openai_input": body}}``
  (the official ``runpod-workers/worker-vllm`` contract);
* ``ocular``   -> ``{"input": {"route": request.route, **body}}``;
* ``document`` -> ``{"input": body}`` (the DeepSeek whole-PDF worker).

A finished job's status (its output read by request kind, a ``FAILED`` job's error classified
as transient, permanent or about the endpoint): :mod:`.runpod_jobs`; HTTP errors: :mod:`.http`.

Example::

    transport = RunPodTransport(endpoint_id="abc123", api_key=os.environ["RUNPOD_API_KEY"])
    reply = await transport.send(ModelRequest(body=chat_request, timeout_s=300))
    print(reply.text, reply.gpu_seconds, reply.job_id)
    await transport.aclose()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    wait_exponential,
)

from ..config import BackendConfig
from ..envnames import env_that_gave
from ..errors import (
    BadOutputError,
    CancelledRunError,
    ConfigError,
    EndpointError,
    OcrError,
    PermanentError,
    TransientError,
)
from ..secrets import header_secret
from .base import Health, ModelReply, ModelRequest, json_bytes, release_request_body
from .closing import OpenRequests, finish_if_dropped
from .http import (
    HttpImports,
    StatusRule,
    json_object,
    make_client,
    map_errors,
    raise_for_status,
    release_loop,
)
from .limits import DEFAULT_REPLY_BYTES, read_capped, reply_limit
from .runpod_jobs import (  # classify_failure .. parse_chat_output: re-exported (their old home)
    TERMINAL,
    classify_failure,
    decode_job_error,
    job_reply,
    parse_chat_output,
)
from .runpod_rate import DOCUMENTED_LIMITS, EndpointGate

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_LOCAL_URL", "RUNSYNC_LIMIT_BYTES", "RUN_LIMIT_BYTES", "RunPodTransport",
           "classify_failure", "decode_job_error", "parse_chat_output"]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
#: where ``python handler.py --rp_serve_api`` listens by default (runpod SDK: localhost:8000)
DEFAULT_LOCAL_URL = "http://localhost:8000"
#: RunPod's documented request-body limits (decimal MB, the conservative reading of "10 MB")
RUN_LIMIT_BYTES = 10_000_000
RUNSYNC_LIMIT_BYTES = 20_000_000
#: how long ``/runsync`` holds the request for the job by default, and the most ``?wait=`` asks
RUNSYNC_DEFAULT_WAIT_MS = 90_000
RUNSYNC_MAX_WAIT_MS = 300_000
#: how long a cancelled send (the run stopping: Ctrl-C) and then ``aclose`` wait for the remote
#: cancel of its job, each: the run must end within 2 s even when ``/cancel`` does not answer
INTERRUPT_CANCEL_WAIT_S = 0.75
MODES = ("run", "runsync", "local")
#: the transport_options that cannot change what a page reads (the cache key leaves them out)
_NEUTRAL_OPTIONS = {
    "mode",  # /run + poll or /runsync: the same job, learnt of sooner or later
    "poll_interval_s",
    "max_poll_interval_s",
    "runsync_wait_ms",
    "policy",
    "max_run_bytes",
    "max_runsync_bytes",
    "default_timeout_s",
    "cancel_timeout_s",
    "max_poll_errors",
    "rate_share",
    "health_route",  # (what ``ocr health`` asks a worker: see runpod_health)
}
_OPTIONS = set(_NEUTRAL_OPTIONS)
_POLICY_KEYS = {"executionTimeout", "ttl", "lowPriority"}
CHAT_ROUTE = "/v1/chat/completions"


@dataclass
class _Job:
    id: str | None = None
    terminal: bool = False


class RunPodTransport(HttpImports):
    """Send one page as one RunPod serverless job and wait for its result.

    Example::

        >>> t = RunPodTransport(endpoint_id="abc123", api_key="rp_xxx")
        >>> t.mode, t.url("runsync")
        ('runsync', 'https://api.runpod.ai/v2/abc123/runsync')

    ``send`` raises :class:`TransientError` / :class:`PermanentError` / :class:`AuthError`; it
    never retries a job itself (the scheduler does).  A ``send`` that is cancelled, times out or
    fails while its job is queued or running cancels the job remotely (best effort; a cancelled
    ``send`` waits at most ``INTERRUPT_CANCEL_WAIT_S`` for it, so Ctrl-C stays prompt).  Every
    reply is read under a cap derived from the request's ``max_tokens`` (:mod:`.limits`).  A ``/run``
    open when its page is dropped is left to answer and its job cancelled then (:mod:`.closing`);
    the one blind spot left: a ``/runsync`` held open has no job id yet, so a cancellation then
    cannot reach the job (it runs its one page, and its result expires).  Closing the transport
    cuts the requests open (a held ``/runsync`` would hold its page until its job ended)."""

    TAKES: frozenset[str] = frozenset({"chat", "ocular", "document"})  # (request kinds: see Backend)

    #: the settings chosen for a backend that it reads (every one: see ``Transport``)
    READS: frozenset[str] = frozenset({"endpoint_id", "base_url", "api_key", "api_key_env", "mode"})

    neutral_options = frozenset(_NEUTRAL_OPTIONS)
    model: str | None = None  # the profile's model: ``ocr health`` asks the worker whether it serves it

    def __init__(
        self,
        *,
        endpoint_id: str | None,
        api_key: str | None,
        base_url: str | None = None,
        mode: str = "runsync",
        poll_interval_s: float = 0.25,
        max_poll_interval_s: float = 5.0,
        runsync_wait_ms: int = RUNSYNC_DEFAULT_WAIT_MS,
        policy: Mapping[str, Any] | None = None,
        max_run_bytes: int = RUN_LIMIT_BYTES,
        max_runsync_bytes: int = RUNSYNC_LIMIT_BYTES,
        default_timeout_s: float = 1800.0,
        cancel_timeout_s: float = 5.0,
        max_poll_errors: int = 5,
        rate_share: float = 0.5,
        health_route: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"runpod transport: unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if mode != "local" and not endpoint_id:
            raise ConfigError("RunPod endpoint id missing; set RUNPOD_ENDPOINT_ID or pass --endpoint-id")
        if poll_interval_s <= 0 or max_poll_interval_s < poll_interval_s:
            raise ConfigError("runpod transport: need 0 < poll_interval_s <= max_poll_interval_s")
        api_key = header_secret(api_key, "the RunPod API key")
        self.mode = mode
        self.endpoint_id = endpoint_id
        self.endpoint_env = "RUNPOD_ENDPOINT_ID"  # (what an unknown endpoint's error names: from_config)
        self.base_url = (base_url or (DEFAULT_LOCAL_URL if mode == "local" else DEFAULT_BASE_URL)).rstrip("/")
        self.poll_interval_s = float(poll_interval_s)
        self.max_poll_interval_s = float(max_poll_interval_s)
        self.runsync_wait_ms = max(1000, min(int(runsync_wait_ms), RUNSYNC_MAX_WAIT_MS))
        self.policy = dict(policy or {})
        self.max_run_bytes = int(max_run_bytes)
        self.max_runsync_bytes = int(max_runsync_bytes)
        self.default_timeout_s = float(default_timeout_s)
        self.cancel_timeout_s = float(cancel_timeout_s)
        self.max_poll_errors = int(max_poll_errors)
        self.health_route = health_route  # the worker's own health job (Ocular: "/health"), else a /v1/models job
        #: this endpoint's pacing and 429 backoff, shared by every send to it (:mod:`.runpod_rate`)
        self.gate = EndpointGate.shared(self.url("run"), share=float(rate_share))
        #: a pool's (pool.py): while it says True, a 429 to /run or /runsync is raised, not resent
        self.hand_back_429: Callable[[], bool] | None = None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._owns_client = client is None
        self._client = client or make_client(
            timeout=httpx.Timeout(60.0, connect=10.0), max_connections=256, max_keepalive=64
        )
        self._headers = headers
        #: job ids submitted and not yet terminal (cancelled by ``aclose``)
        self.in_flight: set[str] = set()
        self._bg: set[asyncio.Future[bool]] = set()
        self._open = OpenRequests()  # (a /runsync held open is cut when the transport closes)
        self._submits: set[asyncio.Future[Any]] = set()  # /run requests going on for dropped pages

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: BackendConfig) -> RunPodTransport:
        """Build from a resolved backend config (``transport_options`` hold the knobs)."""
        opts = dict(cfg.transport_options)
        unknown = set(opts) - _OPTIONS
        if unknown:
            raise ConfigError(
                f"backend {cfg.name!r}: unknown runpod transport_options {sorted(unknown)}; "
                f"known: {', '.join(sorted(_OPTIONS))}"
            )
        mode = str(opts.pop("mode", "runsync"))
        policy = opts.pop("policy", None)
        if policy is not None and (not isinstance(policy, Mapping) or set(policy) - _POLICY_KEYS):
            raise ConfigError(f"backend {cfg.name!r}: transport_options.policy takes only {', '.join(sorted(_POLICY_KEYS))} (milliseconds)")
        key_cfg = cfg
        if cfg.api_key is None and not cfg.api_key_env:
            key_cfg = cfg.model_copy(update={"api_key_env": "RUNPOD_API_KEY"})
        api_key = key_cfg.secret()
        if not api_key and mode != "local":
            env = key_cfg.api_key_env or "RUNPOD_API_KEY"
            raise ConfigError(f"backend {cfg.name!r}: RunPod API key missing; set {env}")
        endpoint_id = cfg.resolved_endpoint_id()
        if not endpoint_id and mode != "local":
            env = cfg.endpoint_id_env or "RUNPOD_ENDPOINT_ID"  # (the profile's own variable first)
            raise ConfigError(f"backend {cfg.name!r}: RunPod endpoint id missing; set {env} or pass --endpoint-id")
        try:
            transport = cls(
                endpoint_id=endpoint_id,
                api_key=api_key,
                base_url=cfg.resolved_base_url(),
                mode=mode,
                policy=policy,
                **opts,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"backend {cfg.name!r}: bad runpod transport_options ({exc})") from exc
        transport.model = cfg.model
        transport.endpoint_env = env_that_gave(endpoint_id, "runpod", "endpoint_id", cfg.endpoint_id_env) or cfg.endpoint_id_env or transport.endpoint_env
        return transport

    # -- urls --------------------------------------------------------------------------------
    def url(self, op: str, job_id: str | None = None) -> str:
        """The URL of one operation (``run``, ``runsync``, ``status``, ``cancel``, ``health``)."""
        root = self.base_url if self.mode == "local" else f"{self.base_url}/{self.endpoint_id}"
        return f"{root}/{op}/{job_id}" if job_id else f"{root}/{op}"

    # -- envelope ----------------------------------------------------------------------------
    def envelope(self, request: ModelRequest) -> dict[str, Any]:
        """The RunPod job body for a request (see the module docstring)."""
        if request.kind == "chat":
            job_input: dict[str, Any] = {"openai_route": CHAT_ROUTE, "openai_input": request.body}
        elif request.kind == "ocular":
            job_input = {"route": request.route or "/extract_text", **request.body}
        elif request.kind == "document":
            job_input = dict(request.body)
        else:  # pragma: no cover - guarded by the RequestKind literal
            raise PermanentError(f"runpod transport cannot send a {request.kind!r} request")
        payload: dict[str, Any] = {"input": job_input}
        if self.policy:
            payload["policy"] = dict(self.policy)
        return payload

    def _check_size(self, size: int, route: str, kind: str) -> None:
        limit = self.max_run_bytes if route == "run" else self.max_runsync_bytes
        if size > limit:  # (a whole PDF's job: no render setting makes it smaller)
            what, fix = (("document", "send its pages instead (without document mode)") if kind == "document"
                         else ("page", "lower dpi or longest_side, or set the image format to jpeg or webp"))  # fmt: skip
            raise PermanentError(f"{what} payload is {size / 1e6:.1f} MB, over RunPod's {limit / 1e6:g} MB limit "
                                 f"for /{route}; {fix}", cause="payload_too_large", status=413)  # fmt: skip

    # -- HTTP --------------------------------------------------------------------------------
    def _status_rule(self, what: str) -> StatusRule:
        """RunPod's own reading of an error status (the rest: :func:`.http.status_error`)."""

        def rule(status: int, message: str) -> OcrError | None:
            if status == 413:
                return PermanentError(
                    f"RunPod {what}: HTTP 413 payload too large; lower dpi or longest_side, or use jpeg/webp "
                    "(a whole PDF's job: send its pages instead)",
                    cause="payload_too_large",
                    status=status,
                )
            if status == 404 and what in ("submit", "runsync"):
                where = (f"no RunPod SDK test server at {self.base_url} (HTTP 404); check --base-url" if self.mode == "local"
                         else f"RunPod endpoint {self.endpoint_id!r} not found (HTTP 404); check {self.endpoint_env} / --endpoint-id")  # fmt: skip
                return EndpointError(where, cause="http_404", status=status)
            return None

        return rule

    async def _call(self, method: str, url: str, *, what: str, deadline: float, content: bytes | None = None,
                    timeout: float | None = None, limit: int = DEFAULT_REPLY_BYTES) -> dict[str, Any]:
        """One request and its JSON object reply, paced by the endpoint's :attr:`gate` and sent
        again after a 429 while ``deadline`` allows (:meth:`.EndpointGate.resend_on_429`: a 429
        created no job, so resending never duplicates one)."""
        op = "run" if what == "submit" else what
        async with self._open.open(f"RunPod {what}", cut=what != "submit"):  # (see aclose)
            return await self.gate.resend_on_429(
                op, lambda: self._request(method, url, what=what, content=content, timeout=timeout, limit=limit),
                deadline=deadline, give_up=self.hand_back_429 if op in ("run", "runsync") else None,
            )

    async def _request(
        self, method: str, url: str, *, what: str, content: bytes | None, timeout: float | None, limit: int
    ) -> dict[str, Any]:
        """One request and its JSON object reply, read in full but never past ``limit`` bytes
        (see :mod:`.limits`: over it the connection is closed and ``BadOutputError`` raised).
        A 404 to ``status`` is a job that no longer exists (``job_expired``); the other errors
        are :func:`.http.map_errors`'s."""
        if self._client.is_closed:
            raise CancelledRunError(f"RunPod {what}: the transport was closed", cause="closed")
        label = f"RunPod {what}"
        rule = self._status_rule(what)
        with map_errors(label, hint="check the RunPod API key", label_status=True, rule=rule):
            req = self._client.build_request(
                method,
                url,
                content=content,
                headers=self._headers,
                timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)) if timeout else None,
            )
            resp = await read_capped(self._client, req, limit, what=label)
            release_request_body(resp)
            if resp.status_code == 404 and what == "status":
                raise TransientError(
                    f"RunPod job {url.rsplit('/', 1)[-1]} no longer exists (expired or endpoint "
                    "restarted); resubmit",
                    cause="job_expired",
                    status=404,
                )
            raise_for_status(resp)
        return await json_object(resp, label)

    # -- send --------------------------------------------------------------------------------
    async def send(self, request: ModelRequest) -> ModelReply:
        """Submit one job, wait for it, and return its reply (see the class docstring)."""
        started = time.monotonic()
        route = "run" if self.mode == "run" else "runsync"
        data = json_bytes(self.envelope(request))
        self._check_size(len(data), route, request.kind)
        budget = request.timeout_s if request.timeout_s and request.timeout_s > 0 else self.default_timeout_s
        deadline = started + budget
        job = _Job()
        streamed = request.kind == "chat" and bool(request.body.get("stream"))
        limit = reply_limit(request, streamed=streamed)
        try:
            async with asyncio.timeout(budget):
                status = await self._run(data, route, job, deadline, limit)
        except TimeoutError:
            if job.id and not job.terminal:
                await self._cancel_shielded(job.id)
            what = f"job {job.id}" if job.id else "job submission"
            tail = "; cancelled it" if job.id else ""
            raise TransientError(
                f"RunPod {what} did not finish within {budget:.1f} s (the attempt's time: timeout, or what was left of page_deadline_s){tail}",
                cause="timeout",
            ) from None
        except asyncio.CancelledError:  # the run is stopping (Ctrl-C): it must not wait long
            if job.id and not job.terminal:
                await self._cancel_shielded(job.id, wait=INTERRUPT_CANCEL_WAIT_S)
            raise
        except OcrError as exc:  # (a transport closing cancels the jobs in flight itself)
            if job.id and not job.terminal and getattr(exc, "cause", "") not in ("job_expired", "closed"):
                await self._cancel_shielded(job.id)
            raise
        finally:
            if job.id:
                self.in_flight.discard(job.id)
        try:  # (its queue and run bounded by our wait: the job was submitted within it)
            return job_reply(status, request, waited_s=time.monotonic() - started)
        except RecursionError:  # an error or output nested deeper than its readers go
            raise BadOutputError(
                f"RunPod job {job.id}: the reply is nested too deeply to read", cause="reply_too_deep"
            ) from None

    async def _run(self, data: bytes, route: str, job: _Job, deadline: float, limit: int) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        # the hold ends before the attempt does: the job's id then comes back in time to cancel
        # the job if it is still running at the deadline
        hold = min(remaining - min(5.0, remaining / 4), self.runsync_wait_ms / 1000)  # (no limit: inf)
        if route == "runsync" and self.mode != "local" and hold < 1.0 and len(data) <= self.max_run_bytes:
            # RunPod holds 1 s at least: the id would come back past the deadline (or not at
            # all), too late to cancel the job; /run answers with the id at once
            route = "run"
        if route == "run":  # (a page dropped meanwhile: its job is cancelled once its id is known)
            submit = self._call("POST", self.url("run"), content=data, timeout=30.0, what="submit", limit=limit,
                                deadline=deadline)  # fmt: skip
            status = await finish_if_dropped(submit, self._dropped_job, self._submits)
        else:
            remaining = max(1.0, remaining)
            url = self.url("runsync")
            read_timeout = remaining
            if self.mode != "local":
                wait_ms = max(1000, int(hold * 1000))
                url = f"{url}?wait={wait_ms}"
                read_timeout = min(remaining, wait_ms / 1000 + 30.0)
            status = await self._call(
                "POST", url, content=data, timeout=read_timeout, what="runsync", limit=limit, deadline=deadline
            )
        job.id = str(status.get("id") or "") or None
        state = str(status.get("status") or "")
        if state in TERMINAL:
            job.terminal = True
            return status
        if not job.id:
            raise TransientError(f"RunPod {route}: reply without a job id (status {state!r})", cause="bad_reply")
        # past /runsync's hold (or after /run) the job goes on by its id: polled, never resubmitted
        self.in_flight.add(job.id)
        log.debug("runpod job %s %s (%s)", job.id, "submitted" if route == "run" else "outlasted the hold", state or "?")
        status = await self._poll(job, deadline, limit)
        job.terminal = True
        return status

    async def _poll(self, job: _Job, deadline: float, limit: int) -> dict[str, Any]:
        """``/status`` of the job until it is terminal (tenacity): from ``poll_interval_s``, x1.5
        per poll up to ``max_poll_interval_s``; a failed poll is tried again (at least its
        ``Retry-After`` later) up to ``max_poll_errors`` times in a row; a 429 is the gate's."""
        assert job.id is not None
        method = "POST" if self.mode == "local" else "GET"
        url = self.url("status", job.id)
        growth = wait_exponential(multiplier=self.poll_interval_s, exp_base=1.5, max=self.max_poll_interval_s)
        errors = 0

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            return max(growth(state), getattr(exc, "retry_after", None) or 0.0)

        def after(state: RetryCallState) -> None:
            nonlocal errors
            errors = errors + 1 if state.outcome and state.outcome.failed else 0

        async for attempt in AsyncRetrying(
            retry=retry_if_result(lambda done: not done)
            | retry_if_exception(lambda e: isinstance(e, TransientError) and e.cause != "job_expired"),
            wait=wait,
            after=after,
            stop=lambda _: errors > self.max_poll_errors,
            reraise=True,
        ):
            with attempt:
                remaining = deadline - time.monotonic()
                status = await self._call(
                    method, url, timeout=max(1.0, min(30.0, remaining)), what="status", limit=limit,
                    deadline=deadline,
                )
                state = str(status.get("status") or "")
                if self.mode == "local" and state == "FAILED" and "not found" in str(status.get("error", "")).lower():
                    raise TransientError(
                        f"RunPod job {job.id} is unknown to the local test server; resubmit", cause="job_expired"
                    )
            if attempt.retry_state.outcome and not attempt.retry_state.outcome.failed:
                # a bool, not the reply: tenacity's state is a reference cycle (kept until the GC)
                attempt.retry_state.set_result(state in TERMINAL)
        return status

    # -- cancel ------------------------------------------------------------------------------
    async def cancel(self, job_id: str) -> bool:
        """Ask RunPod to cancel a job (best effort; ``True`` if the endpoint accepted)."""
        if self.mode == "local" or self._client.is_closed:  # the SDK's test server has no /cancel
            self.in_flight.discard(job_id)
            return False
        try:
            req = self._client.build_request(
                "POST", self.url("cancel", job_id), headers=self._headers, timeout=self.cancel_timeout_s
            )
            resp = await self._client.send(req, stream=True)  # the status is the answer: no body read
            await resp.aclose()
            ok = resp.status_code < 400
            log.debug("runpod cancel %s -> HTTP %s", job_id, resp.status_code)
        except (httpx.HTTPError, OSError) as exc:
            log.debug("runpod cancel %s failed: %s", job_id, type(exc).__name__)
            ok = False
        self.in_flight.discard(job_id)
        return ok

    def _live_job(self, status: dict[str, Any]) -> str | None:
        """The id of the job a ``/run`` reply says goes on (noted as in flight), else ``None``."""
        job_id = str(status.get("id") or "")
        if not job_id or str(status.get("status") or "") in TERMINAL:
            return None
        self.in_flight.add(job_id)
        return job_id

    def _dropped_job(self, status: dict[str, Any]) -> None:
        if (job_id := self._live_job(status)) is not None:
            self._cancel_in_background(job_id)

    def _cancel_in_background(self, job_id: str) -> asyncio.Future[bool]:
        """The cancel of ``job_id``, going on by itself (kept in ``_bg`` until it ends)."""
        task = asyncio.ensure_future(self.cancel(job_id))
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        return task

    async def _cancel_shielded(self, job_id: str, wait: float | None = None) -> None:
        """Cancel ``job_id`` even while our own task is being cancelled, waiting ``wait`` seconds
        at most (default: the cancel's own timeout; the request goes on in the background)."""
        task = self._cancel_in_background(job_id)
        try:
            await asyncio.wait_for(asyncio.shield(task), self.cancel_timeout_s + 1.0 if wait is None else wait)
        except (asyncio.CancelledError, TimeoutError):
            pass  # the shielded task keeps going on its own
        except Exception as exc:  # pragma: no cover - cancel() swallows its errors
            log.debug("runpod cancel %s: %s", job_id, type(exc).__name__)

    # -- health / close ----------------------------------------------------------------------
    async def health(self) -> Health:
        """Endpoint health from ``GET /health`` (workers and queue), never raising."""
        from .runpod_health import endpoint_health

        return await endpoint_health(self)

    async def aclose(self) -> None:
        """Cut the requests open, cancel jobs still in flight (best effort), then close the HTTP
        client."""
        self._open.close()  # (a /run is left to answer: the job it made is cancelled below)
        for submit in await self._submitted():
            if not submit.cancelled() and submit.exception() is None:
                self._live_job(submit.result())
        pending = list(self.in_flight)
        if pending:  # at most RunPod's concurrent /cancel limit at once
            room = asyncio.Semaphore(DOCUMENTED_LIMITS["cancel"].concurrent or 20)

            async def cancel_one(job_id: str) -> None:
                async with room:
                    await self._cancel_shielded(job_id)

            await asyncio.gather(*(cancel_one(j) for j in pending), return_exceptions=True)
        await self._cancels_sent()
        if self._owns_client:
            await self._client.aclose()

    async def release(self) -> None:
        """Close the connections made on the running event loop (it is about to end): the
        ``/run`` requests of pages dropped on it answered first (their jobs then cancelled)."""
        await self._submitted()
        await self._cancels_sent()
        if self._owns_client:
            await release_loop(self._client)

    async def _submitted(self) -> set[asyncio.Future[Any]]:
        """The ``/run`` requests open on this loop, given a short while to answer."""
        loop = asyncio.get_running_loop()
        mine = [t for t in tuple(self._submits) if t.get_loop() is loop]
        return (await asyncio.wait(mine, timeout=INTERRUPT_CANCEL_WAIT_S))[0] if mine else set()

    async def _cancels_sent(self) -> None:
        """The cancels a stopping run left going on this loop: a last, short chance to arrive."""
        loop, tasks = asyncio.get_running_loop(), tuple(self._bg)  # (other loops' threads change it)
        self._bg.difference_update(t for t in tasks if t.get_loop().is_closed())
        mine = [t for t in tasks if t.get_loop() is loop]
        if mine:
            await asyncio.wait(mine, timeout=INTERRUPT_CANCEL_WAIT_S)

    async def __aenter__(self) -> RunPodTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

