"""The OpenAI-compatible transport: vLLM reached directly, through the RunPod pod proxy, or on Modal.

One request = one ``POST {base}/v1/chat/completions`` sent with httpx (one shared
``httpx.AsyncClient``; the scheduler owns retries): the JSON body is exactly what the dialect
built.  No SDK stands between: importing the openai SDK costs about 1 s of CPU, as much as the
whole budget of a first request (see docs/ARCHITECTURE.md, "Decisions, and why"); the replies
are read by :mod:`.openai_replies` and the error statuses mapped by :func:`.http.map_errors`.

* **Streaming by default** (``transport_options.stream``, per request ``request.options["stream"]``)
  with ``stream_options={"include_usage": true}``: bytes keep flowing while a long page is decoded,
  so the RunPod pod proxy (Cloudflare, 524 after 100 s without a byte) does not cut the request.
  ``transport_options.idle_timeout_s`` bounds the silence between two chunks.
* **Modal**: ``transport_options.modal = true`` (or a ``*.modal.run`` URL) sends ``Modal-Key`` /
  ``Modal-Secret`` from ``$MODAL_KEY`` / ``$MODAL_SECRET``; the 303 See Other Modal answers after
  150 s is followed with a GET of the result URL (httpx turns a 303 on a POST into a GET and keeps
  same-origin headers; the final reply is read as usual).
* ``max_tokens`` is capped so it fits the server's ``max_model_len``, because vLLM rejects
  ``prompt + max_tokens > max_model_len`` (a 400 naming the length): the cap is ``max_model_len -
  prompt_token_reserve`` (default a quarter of the context).  The length comes from ``GET
  /v1/models``, read by the run's warm-up (failures tolerated) without holding up the first
  requests, or from such a refusal, after which the refused request is sent once more, capped.
* Errors become :mod:`ocrclient.errors` classes through :func:`.http.map_errors`: HTTP statuses
  with the message parsed from either vLLM error shape and ``Retry-After`` surfaced; 524 is
  ``TransientError(cause="proxy_idle_524")``; connection errors, timeouts and a stream cut
  mid-reply are transient.  ``finish_reason == "length"`` is reported, not raised.

Example::

    transport = OpenAITransport("https://abc123-8000.proxy.runpod.net", model="lightonai/LightOnOCR-2-1B")
    reply = await transport.send(ModelRequest(body={"model": "lightonai/LightOnOCR-2-1B",
        "messages": [...], "max_tokens": 4096, "temperature": 0.2}, timeout_s=300))
    reply.text, reply.finish_reason, reply.completion_tokens
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..config import BackendConfig, env_name
from ..errors import (
    BadOutputError,
    ConfigError,
    EndpointError,
    OcrError,
    PermanentError,
    TransientError,
    is_endpoint_error,
    is_model_refusal,
)
from ..loops import PerLoop
from ..secrets import (
    header_secret,
    install_logger_redaction,
    redact,
    register_secret,
)
from .base import Health, ModelReply, ModelRequest, is_refusal
from .closing import cancelled_if_closed
from .http import (
    HttpImports,
    make_client,
    map_errors,
    raise_for_status,
    release_loop,
    secrets_kept_home,
    shown_url,
)
from .limits import (
    ERROR_BODY_BYTES,
    aloads,
    cap_reply,
    loads,
    read_capped,
    reply_limit,
    request_max_tokens,
    token_count,
)
from .openai_replies import CHAT, completion_reply, read_stream
from .urls import normalize_base_url, split_query

__all__ = ["OpenAITransport", "normalize_base_url"]

log = logging.getLogger(__name__)

#: vLLM's 400 for prompt + max_tokens over the context names the length in each of its wordings
#: ("This model's maximum context length is N tokens. However, you requested ...", "'max_tokens'
#: or 'max_completion_tokens' is too large: M. This model's maximum context length is N tokens
#: and your request has P input tokens ...")
_CONTEXT_REFUSAL = re.compile(r"maximum context length is (\d+) tokens")
#: ... and the prompt's tokens: "your prompt contains at least P input tokens", "your request has
#: P input tokens", "(P in the messages, M in the completion)"
_PROMPT_TOKENS = re.compile(r"(?:contains at least|request has) (\d+) input tokens|\((\d+) in the messages")

DEFAULT_API_KEY_ENV = "OCRCLIENT_API_KEY"
DEFAULT_BASE_URL_ENV = "OCRCLIENT_BASE_URL"
#: the most a ``/v1/models`` reply may weigh (a card is ~1 kB)
MODEL_LIST_BYTES = 1024 * 1024


def is_modal(modal: Any, url: str | None) -> bool:
    """A Modal endpoint: ``transport_options.modal`` when it is set, else a ``*.modal.run`` host."""
    return bool(modal) if modal is not None else (urlsplit((url or "").strip()).hostname or "").endswith(".modal.run")


def modal_env_names(opts: Mapping[str, Any]) -> tuple[str, str]:
    """The variables holding Modal's proxy auth (``transport_options.modal_key_env`` /
    ``modal_secret_env``, else ``MODAL_KEY`` / ``MODAL_SECRET``)."""
    return (env_name(opts.get("modal_key_env", "MODAL_KEY"), "transport_options.modal_key_env", secret=True),
            env_name(opts.get("modal_secret_env", "MODAL_SECRET"), "transport_options.modal_secret_env", secret=True))


def api_key_from_aliases(names: Any, *, backend: str = "") -> tuple[str, str] | None:
    """The API key from the first set variable of ``transport_options.api_key_env_aliases``
    (other names a profile accepts for its ``api_key_env``, read only when that one is unset),
    registered for redaction, with that variable's name.

    >>> api_key_from_aliases(["OCRCLIENT_DOCTEST_UNSET_VARIABLE"]) is None
    True
    """
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"backend {backend!r}: transport_options.api_key_env_aliases must be a list of names")
    for name in names:
        env_name(name, f"backend {backend!r}: transport_options.api_key_env_aliases", secret=True)
        value = os.environ.get(name)
        if value:
            register_secret(value)
            return value, name
    return None


class OpenAITransport(HttpImports):
    """Sends chat-completions requests to a vLLM (OpenAI-compatible) server.

    Example::

        >>> t = OpenAITransport("http://127.0.0.1:8000/v1", api_key="EMPTY")
        >>> t.api_url
        'http://127.0.0.1:8000/v1'
    """

    #: the kinds of request it carries (``Backend`` checks its dialect's ``SENDS`` against them)
    TAKES: frozenset[str] = frozenset({"chat"})

    #: the settings chosen for a backend that it reads (``endpoint_id`` and ``mode`` are refused:
    #: see ``Transport``)
    READS: frozenset[str] = frozenset({"base_url", "api_key", "api_key_env"})

    #: options that cannot change what a page reads (the cache key leaves them out)
    neutral_options = frozenset(
        {"stream", "idle_timeout_s", "connect_timeout_s", "health_timeout_s", "modal", "modal_key_env",
         "modal_secret_env", "modal_key", "modal_secret", "api_key_env_aliases"}
    )

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str | None = None,
        stream: bool = True,
        idle_timeout_s: float | None = None,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 15.0,
        health_timeout_s: float = 30.0,
        modal: bool | None = None,
        modal_key: str | None = None,
        modal_secret: str | None = None,
        cap_max_tokens: bool = True,
        prompt_token_reserve: int | None = None,
        max_connections: int = 100,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        http_client: httpx.AsyncClient | None = None,
        modal_env: tuple[str, str] = ("MODAL_KEY", "MODAL_SECRET"),
    ) -> None:
        self.root_url, self.api_url = normalize_base_url(base_url)
        self.modal = is_modal(modal, self.root_url)
        self.model = model
        self.stream = stream
        self.idle_timeout_s = idle_timeout_s
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.health_timeout_s = health_timeout_s
        self.cap_max_tokens = cap_max_tokens
        self.prompt_token_reserve = prompt_token_reserve
        self._api_key_env = api_key_env
        #: the variables Modal's proxy auth is read from (``transport_options.modal_key_env`` /
        #: ``modal_secret_env``), named by messages
        self._modal_env = modal_env
        api_key = header_secret(api_key, f"${api_key_env}" if api_key_env else "the API key")
        modal_key = header_secret(modal_key, f"the Modal key (${modal_env[0]})")
        modal_secret = header_secret(modal_secret, f"the Modal secret (${modal_env[1]})")
        key = api_key or "EMPTY"
        headers = {"Authorization": f"Bearer {key}"}
        if self.modal and modal_key and modal_secret:
            # on the client, once, not in each request's options
            headers["Modal-Key"] = modal_key
            headers["Modal-Secret"] = modal_secret
        self._has_modal_keys = bool(modal_key and modal_secret)
        self._owns_http = http_client is None
        #: the API key and Modal's pair never go to another host (a redirect away)
        self._keep_secrets_home = secrets_kept_home(self.root_url, ("Authorization", "Modal-Key", "Modal-Secret"))
        query = split_query(base_url)[1]
        if http_client is None:  # built at its first use (the run's warm-up)
            self._http = make_client(
                timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s, pool=None),
                max_connections=max_connections,
                follow_redirects=True,  # Modal's 303 to the result URL (POST -> GET)
                headers=headers, params=query or None, request_hooks=[self._keep_secrets_home],
            )
        else:
            self._http = http_client
            self._http.headers.update(headers)
            if query:
                self._http.params = self._http.params.merge(query)
            self._http.event_hooks.setdefault("request", []).append(self._keep_secrets_home)
        install_logger_redaction()
        self._models: dict[str, int | None] | None = None
        self._models_checked_at = -1e9
        # one per event loop: a lock that has waited on one loop cannot be waited on another
        self._models_locks = PerLoop(asyncio.Lock)
        self._refused_at: dict[str, int] = {}  # model -> the context length a refusal named

    @classmethod
    def env_names(cls, cfg: BackendConfig) -> list[str]:
        """The variables it reads beyond the profile's own ``*_env`` fields (``ocr backends``
        lists them): the API key's aliases, and Modal's proxy auth for a Modal endpoint."""
        opts = cfg.transport_options
        names = [n for n in opts.get("api_key_env_aliases") or [] if isinstance(n, str)]
        try:
            url = cfg.resolved_base_url()
        except ConfigError:  # (not a URL: loading the backend says so)
            url = None
        if is_modal(opts.get("modal"), url):
            names += modal_env_names(opts)
        return names

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> OpenAITransport:
        """Build from a backend profile (``base_url`` / ``base_url_env``, ``api_key_env``,
        ``transport_options``: ``stream``, ``idle_timeout_s``, ``modal``, ``modal_key_env``,
        ``modal_secret_env``, ``cap_max_tokens``, ``prompt_token_reserve``,
        ``api_key_env_aliases`` — other variables read for the key when ``api_key_env`` is
        unset)."""
        base = cfg.resolved_base_url()
        if not base and cfg.base_url_env in (None, "", DEFAULT_BASE_URL_ENV):
            base = os.environ.get(DEFAULT_BASE_URL_ENV)  # (a pod's or Modal app's key stays with its own URL)
        if not base:
            env = cfg.base_url_env or DEFAULT_BASE_URL_ENV
            example = ("https://<workspace>--<app>-serve.modal.run/v1" if cfg.transport_options.get("modal")
                       else "https://<pod-id>-8000.proxy.runpod.net/v1")  # fmt: skip
            raise ConfigError(f"backend {cfg.name!r} needs the server URL: set ${env} or pass --base-url (e.g. {example})")
        api_key_env = cfg.api_key_env or DEFAULT_API_KEY_ENV
        from .options import OpenAIOptions, checked_options

        o = checked_options(OpenAIOptions, cfg, "openai")  # (the options read from here on)
        key = cfg.secret()
        if key is None and not cfg.api_key_env:
            key = os.environ.get(DEFAULT_API_KEY_ENV) or None
            register_secret(key)
        if key is None and cfg.api_key is None:
            found = api_key_from_aliases(o.api_key_env_aliases, backend=cfg.name)
            if found is not None:  # (a refused key's message names the variable it came from)
                key, used = found
                api_key_env = f"{used}, read as ${api_key_env} is unset"
        modal_key = modal_secret = None
        key_env, secret_env = "MODAL_KEY", "MODAL_SECRET"
        if is_modal(o.modal, base):  # (Modal's proxy auth is read only for a Modal endpoint)
            key_env, secret_env = modal_env_names(o.model_dump())
            modal_key = os.environ.get(key_env) or o.modal_key
            modal_secret = os.environ.get(secret_env) or o.modal_secret
        return cls(
            base,
            api_key=key,
            model=cfg.model,
            stream=o.stream,
            idle_timeout_s=o.idle_timeout_s,
            timeout_s=float(cfg.attempt_timeout_s),
            connect_timeout_s=o.connect_timeout_s,
            health_timeout_s=o.health_timeout_s,
            modal=o.modal,
            modal_key=str(modal_key) if modal_key else None,
            modal_secret=str(modal_secret) if modal_secret else None,
            cap_max_tokens=o.cap_max_tokens,
            prompt_token_reserve=o.prompt_token_reserve,
            max_connections=max(100, cfg.concurrency + 8),
            api_key_env=api_key_env,
            modal_env=(key_env, secret_env),
        )

    # -- sending ------------------------------------------------------------------------------
    async def send(self, request: ModelRequest) -> ModelReply:
        """One chat-completions attempt; raises an :mod:`ocrclient.errors` class on failure."""
        with cancelled_if_closed(self._http):
            return await self._send(request)

    async def _send(self, request: ModelRequest) -> ModelReply:
        if request.kind != "chat":
            raise PermanentError(f"the openai transport sends chat requests, not {request.kind!r}")
        body = {k: v for k, v in request.body.items() if k not in ("stream", "stream_options")}
        stream = bool(request.options.get("stream", self.stream))
        timeout = float(request.timeout_s or self.timeout_s)
        idle = request.options.get("idle_timeout_s", self.idle_timeout_s)
        t0 = time.monotonic()
        if not body.get("model"):
            with map_errors(CHAT, timeout_s=timeout, hint=self._auth_hint()):
                async with asyncio.timeout(timeout):
                    body["model"] = self.model or await self._only_model()
        capped = self._cap(body)
        try:
            reply = await self._complete(body, stream, timeout, idle, request.page)
        except PermanentError as exc:  # refused for its length: once more, capped to what it said
            capped = self._cap_to_refusal(body, exc)
            if capped is None:
                raise
            reply = await self._complete(body, stream, timeout - (time.monotonic() - t0), idle, request.page)
        reply.latency_s = time.monotonic() - t0
        if capped is not None:
            reply.data["max_tokens_capped_to"] = capped
        return reply

    async def _complete(
        self, body: dict[str, Any], stream: bool, timeout: float, idle: float | None, page: int | None
    ) -> ModelReply:
        """``POST /chat/completions`` of ``body`` and its reply, within ``timeout`` s (none left:
        it times out at once)."""
        timeout = max(timeout, 0.0)
        try:
            with map_errors(CHAT, timeout_s=timeout, hint=self._auth_hint(), rule=self._no_api_here):
                async with asyncio.timeout(timeout):
                    log.debug("POST %s/chat/completions model=%s stream=%s max_tokens=%s page=%s",
                              redact(self.api_url), body.get("model"), stream, body.get("max_tokens"), page)
                    if stream:
                        return await self._send_stream(body, timeout, idle)
                    return await self._send_json(body, timeout)
        except ValueError as exc:
            # a 2xx whose body is not JSON (empty, HTML): the server misbehaved, so it is worth
            # another attempt
            raise TransientError(
                f"the server's reply is not a chat completion ({type(exc).__name__})", cause="bad_reply"
            ) from exc

    def _timeout(self, timeout: float) -> httpx.Timeout:
        return httpx.Timeout(timeout, connect=min(self.connect_timeout_s, timeout), pool=None)

    def _post(self, body: dict[str, Any], timeout: float) -> httpx.Request:
        """The ``POST {api}/chat/completions`` of ``body``, exactly as the dialect built it."""
        return self._http.build_request(
            "POST", self.api_url + "/chat/completions", json=body, timeout=self._timeout(timeout)
        )

    async def _send_json(self, body: dict[str, Any], timeout: float) -> ModelReply:
        """A non-streamed completion, read under its cap and decoded off the event loop when
        big, with the server's numbers made sane (:mod:`.limits`)."""
        limit = reply_limit(ModelRequest(body=body))
        response = await read_capped(self._http, self._post(body, timeout), limit, what=CHAT)
        raise_for_status(response)
        return completion_reply(await aloads(response.content))

    async def _send_stream(self, body: dict[str, Any], timeout: float, idle: float | None) -> ModelReply:
        """A streamed completion (``stream_options.include_usage``), read event by event under
        its caps; a server that answers with a whole completion instead is read as one."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        sent = ModelRequest(body=body)
        limit = reply_limit(sent, streamed=True)
        response = await self._http.send(self._post(body, timeout), stream=True)
        try:
            cap_reply(response, limit, what=CHAT)
            if response.status_code >= 400:
                await response.aread()
                raise_for_status(response)
            if "text/event-stream" not in response.headers.get("content-type", ""):
                await response.aread()
                return completion_reply(await aloads(response.content))
            return await read_stream(response, request_max_tokens(sent), idle)
        finally:
            await response.aclose()

    # -- error mapping ------------------------------------------------------------------------
    def _auth_hint(self) -> str:
        if self.modal:
            key_env, secret_env = self._modal_env
            if not self._has_modal_keys:
                return f"this Modal endpoint needs proxy auth: set {key_env} and {secret_env}"
            return f"check {key_env} / {secret_env} (Modal proxy auth) and the API key"
        return f"check the API key (${self._api_key_env})"

    def _no_api_here(self, status: int, message: str) -> OcrError | None:
        """A 404 that names no model (vLLM's "The model `x` does not exist." does): no
        OpenAI-compatible API at this URL, said with the URL (it said "HTTP 404: Not Found")."""
        if status != 404 or is_model_refusal(message) or not is_endpoint_error(status, message):
            return None  # (a model not served says so; an input not found fails its page only)
        said = f": {message}" if message else ""
        return EndpointError(f"no OpenAI-compatible API at {shown_url(self.api_url)} (HTTP 404{said}); check the "
                             "base URL: the API base, e.g. https://host:8000/v1", cause="http_404", status=404)  # fmt: skip

    # -- model cards / max_model_len ------------------------------------------------------------
    async def list_models(self, *, timeout: float | None = None) -> dict[str, int | None]:
        """``GET /v1/models`` as ``{model id: max_model_len or None}`` (raises on failure)."""
        with map_errors("GET /v1/models", hint=self._auth_hint(), label_status=True, rule=self._no_api_here):
            get = self._http.build_request("GET", self.api_url + "/models", timeout=timeout or self.health_timeout_s)
            resp = await read_capped(self._http, get, MODEL_LIST_BYTES, what="GET /v1/models")
            raise_for_status(resp)
        try:
            data = loads(resp.content).get("data") or []
        except (ValueError, AttributeError, BadOutputError) as exc:
            raise TransientError("GET /v1/models: not a model list", cause="bad_reply") from exc
        out: dict[str, int | None] = {}
        if not isinstance(data, list):
            raise TransientError("GET /v1/models: not a model list", cause="bad_reply")
        for card in data:
            if isinstance(card, dict) and card.get("id"):
                mml = card.get("max_model_len")
                # a context length is a positive int (a server's nonsense is no cap at all)
                out[str(card["id"])] = (token_count(mml) or None) if isinstance(mml, int) else None
        return out

    async def _cards(self) -> dict[str, int | None]:
        """The model cards, fetched once (re-tried at most every 60 s after a failure)."""
        if self._models is not None:
            return self._models
        async with self._models_locks.get():
            if self._models is not None:
                return self._models
            if time.monotonic() - self._models_checked_at < 60.0:
                return {}
            self._models_checked_at = time.monotonic()
            try:
                self._models = await self.list_models(timeout=min(10.0, self.health_timeout_s))
            except OcrError as exc:
                log.debug("could not read /v1/models (%s); max_tokens is sent as is", exc)
                return {}
            return self._models

    def _server_url(self) -> str:
        return self.root_url

    async def warm_up(self) -> None:
        """Read the model cards as the run starts (``Backend.warm_up``): the requests that leave
        after their reply are capped by them (:meth:`_cap`); none waits for it (:meth:`_cards`
        tolerates its failure as before; a wrong model is still refused by the server's reply)."""
        if self.cap_max_tokens or not self.model:
            await self._cards()

    async def max_model_len(self, model: str | None = None) -> int | None:
        """The server's context length for ``model`` (or its only model), if it reports one."""
        cards = await self._cards()
        if model is None:
            return next(iter(cards.values())) if len(cards) == 1 else None
        return cards.get(model)

    async def _only_model(self) -> str:
        cards = await self._cards()
        if len(cards) == 1:
            return next(iter(cards))
        served = ", ".join(sorted(cards)) or "unknown"
        raise ConfigError(f"no model set for this backend (pass --model); the server serves: {served}")

    def _cap(self, body: dict[str, Any]) -> int | None:
        """Cap the body's ``max_tokens`` to the context length known for its model: from a
        refusal already met, or from the model cards if they have arrived.  Nothing waits for
        them: the first requests leave at once, and one the server refuses for its length is
        sent again capped (:meth:`_cap_to_refusal`)."""
        if not self.cap_max_tokens:
            return None
        model = str(body.get("model"))
        limit = self._refused_at.get(model) or (self._models or {}).get(model)
        return self._cap_to(body, limit, 0) if limit else None

    def _cap_to(self, body: dict[str, Any], limit: int, prompt_tokens: int) -> int | None:
        """``max_tokens`` lowered to ``limit`` minus the prompt's share (``prompt_token_reserve``,
        default a quarter of ``limit``, or ``prompt_tokens`` if more); ``None`` when it fits."""
        key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        want = body.get(key)
        if not isinstance(want, int):
            return None
        reserve = self.prompt_token_reserve if self.prompt_token_reserve is not None else limit // 4
        cap = max(1, limit - max(reserve, prompt_tokens))
        if want <= cap:
            return None
        log.debug("capping %s from %d to %d (max_model_len %d)", key, want, cap, limit)
        body[key] = cap
        return cap

    def _cap_to_refusal(self, body: dict[str, Any], exc: PermanentError) -> int | None:
        """The cap for a request vLLM refused because prompt + ``max_tokens`` exceeds the
        model's context (its 400 names the length, and often the prompt's tokens); the length
        is kept for the model's next requests.  ``None``: not such a refusal, or capping changes
        nothing (the refusal stands)."""
        if not self.cap_max_tokens or exc.status != 400:
            return None
        message = str(exc)
        found = _CONTEXT_REFUSAL.search(message)
        if found is None:
            return None
        limit = int(found.group(1))
        prompt = _PROMPT_TOKENS.search(message)
        self._refused_at[str(body.get("model"))] = limit
        return self._cap_to(body, limit, int(prompt.group(1) or prompt.group(2)) if prompt else 0)

    # -- health / close -------------------------------------------------------------------------
    async def health(self) -> Health:
        """``GET /health`` and ``GET /v1/models``: ok when both answer."""
        info: dict[str, Any] = {"url": redact(self.root_url), "modal": self.modal}
        try:
            with map_errors("GET /health", hint=self._auth_hint(), label_status=True):
                get = self._http.build_request("GET", self.root_url + "/health", timeout=self.health_timeout_s)
                resp = await read_capped(self._http, get, ERROR_BODY_BYTES, what="GET /health")
                info["health_status"] = resp.status_code
                if resp.status_code != 404:  # no /health route: /v1/models decides
                    raise_for_status(resp)
            cards = await self.list_models(timeout=self.health_timeout_s)
        except OcrError as exc:  # down, a status, a reply over its cap
            return Health(False, exc.message, info, refused=is_refusal(exc))
        self._models = cards
        info["models"] = cards
        described = ", ".join(
            f"{name} (max_model_len {mml})" if mml else name for name, mml in cards.items()
        )
        if self.model and cards and self.model not in cards:
            return Health(False, f"model {self.model!r} is not served; the server has: {described}", info, refused=True)
        return Health(True, f"server up; models: {described or 'none listed'}", info)

    async def release(self) -> None:
        """Close the connections made on the running event loop (it is about to end)."""
        if self._owns_http:
            await release_loop(self._http)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

