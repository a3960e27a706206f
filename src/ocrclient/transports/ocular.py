"""The ocular HTTP transport: the OLM / RoLM seed's plain JSON contract over HTTP.

``POST {base}{route}`` with ``{"image": <base64>, "model_name", "prompt", "use_preprocessing",
"ensemble_size", "robust_processing", "decoding_options", "options"}`` (the seed's FastAPI
``OCRRequest``; the dialect builds it), where ``route`` is ``/extract_text`` (OLM),
``/extract_text_robust`` (RoLM), ``/extract_structured`` or ``/extract_structured_robust``.
The reply is ``{"text", "confidence", "language", "processing_time", "metadata"}``
(structured routes: ``{"structured_data", "confidence", "processing_time", "metadata"}``).
``GET /health`` answers ``{"status": "healthy", "models_loaded", "gpu_available", ...}``.
Errors are FastAPI's ``{"detail": ...}``, classified by :func:`.http.map_errors`.

Example::

    transport = OcularTransport("https://my-ocr.example.com", route="/extract_text")
    reply = await transport.send(ModelRequest(kind="ocular", body={"image": b64},
                                              route="/extract_text", timeout_s=60))
    reply.text, reply.data["confidence"]
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx

from ..config import BackendConfig
from ..errors import ConfigError, OcrError, TransientError
from ..secrets import header_secret, redact
from .base import Health, ModelReply, ModelRequest, is_refusal, json_bytes
from .closing import cancelled_if_closed
from .http import (  # error_message .. transport_error: re-exported (their old home)
    HttpImports,
    error_message,
    json_object,
    make_client,
    map_errors,
    raise_for_status,
    release_loop,
    secrets_kept_home,
    shared_ssl_context,
    status_error,
    transport_error,
)
from .limits import ERROR_BODY_BYTES, finite, loads, read_capped, reply_limit, seconds

__all__ = ["OcularTransport", "error_message", "shared_ssl_context", "status_error", "transport_error"]

log = logging.getLogger(__name__)


class OcularTransport(HttpImports):
    """The OLM / RoLM ocular HTTP contract.

    Example::

        >>> t = OcularTransport("http://127.0.0.1:8000")
        >>> t.base_url
        'http://127.0.0.1:8000'
    """

    #: the kinds of request it carries (``Backend`` checks its dialect's ``SENDS`` against them)
    TAKES: frozenset[str] = frozenset({"ocular"})

    #: the settings chosen for a backend that it reads (``endpoint_id`` and ``mode`` are refused:
    #: see ``Transport``)
    READS: frozenset[str] = frozenset({"base_url", "api_key", "api_key_env"})

    #: options that cannot change what a page reads (the cache key leaves them out)
    neutral_options = frozenset({"api_key_header", "connect_timeout_s"})

    def __init__(
        self,
        base_url: str,
        *,
        route: str = "/extract_text",
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        timeout_s: float = 600.0,
        connect_timeout_s: float = 15.0,
        max_connections: int = 100,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"ocular base URL must start with http:// or https://: {redact(base_url)!r}")
        self.base_url = base_url.rstrip("/")
        self.route = route if route.startswith("/") else "/" + route
        self.timeout_s = timeout_s
        headers = {}
        api_key = header_secret(api_key, "the API key")
        if api_key:
            headers[api_key_header] = (
                f"Bearer {api_key}" if api_key_header.lower() == "authorization" else api_key
            )
        #: the key never goes to another host (a redirect away)
        self._keep_key_home = secrets_kept_home(self.base_url, (api_key_header,))
        self._owns_client = http_client is None
        self._client = http_client or make_client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s, pool=None),
            max_connections=max_connections,
            follow_redirects=True,
            request_hooks=[self._keep_key_home],
        )
        if http_client is not None:
            http_client.headers.update(headers)
            http_client.event_hooks.setdefault("request", []).append(self._keep_key_home)

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> OcularTransport:
        """Build from a backend profile: ``base_url`` (or its env var), optional API key,
        ``transport_options.route`` / ``api_key_header``."""
        base = cfg.resolved_base_url()
        if not base:
            where = f"set {cfg.base_url_env} or " if cfg.base_url_env else ""
            raise ConfigError(
                f"backend {cfg.name!r} needs a server URL: {where}pass --base-url (or base_url in the profile)"
            )
        from .options import OcularOptions, checked_options

        o = checked_options(OcularOptions, cfg, "ocular")
        return cls(
            base,
            route=o.route,
            api_key=cfg.secret(),
            api_key_header=o.api_key_header,
            timeout_s=float(cfg.attempt_timeout_s),
            connect_timeout_s=o.connect_timeout_s,
            max_connections=max(100, cfg.concurrency + 8),
        )

    async def send(self, request: ModelRequest) -> ModelReply:
        """POST the ocular body to its route; one attempt, no retries."""
        with cancelled_if_closed(self._client):
            return await self._send(request)

    async def _send(self, request: ModelRequest) -> ModelReply:
        route = request.route or self.route
        if not route.startswith("/"):
            route = "/" + route
        timeout = request.timeout_s or self.timeout_s
        what = f"POST {route}"
        t0 = time.monotonic()
        with map_errors(what, timeout_s=timeout, hint="check the API key for this ocular server"):
            async with asyncio.timeout(timeout):
                req = self._client.build_request(
                    "POST", self.base_url + route, content=json_bytes(request.body),
                    headers={"Content-Type": "application/json"},
                    timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0), pool=None),
                )
                # read as it arrives, never past the cap max_tokens allow (see .limits)
                resp = await read_capped(self._client, req, reply_limit(request), what=what)
            raise_for_status(resp)
        latency = time.monotonic() - t0
        data = await json_object(resp, what)  # NaN -> None, too deep -> BadOutputError
        return _reply(data, what, latency)

    async def health(self) -> Health:
        """``GET /health``: ok when the server says ``healthy``."""
        try:
            with map_errors("GET /health"):
                req = self._client.build_request("GET", self.base_url + "/health", timeout=30.0)
                resp = await read_capped(self._client, req, ERROR_BODY_BYTES, what="GET /health")
                raise_for_status(resp)
        except OcrError as exc:
            status = getattr(exc, "status", None)
            return Health(False, exc.message, {"status_code": status} if status else {}, refused=is_refusal(exc))
        try:
            data = loads(resp.content)
        except (ValueError, OcrError):
            data = {}
        status = data.get("status") if isinstance(data, dict) else None
        ok = status in (None, "healthy", "ok")
        models = data.get("models_loaded") if isinstance(data, dict) else None
        detail = f"ocular server {status or 'up'}"
        if models:
            detail += f"; models loaded: {', '.join(map(str, models))}"
        info = data if isinstance(data, dict) else {}
        refused = await self._key_refused() if ok else None
        if refused is not None:
            return Health(False, f"bad API key (HTTP {refused}); check the API key for this ocular server",
                          {**info, "status_code": refused}, refused=True)  # fmt: skip
        return Health(ok, detail, info)

    async def _key_refused(self) -> int | None:
        """The status with which the server refuses the key (401/403), ``None`` when it takes it.
        ``/health`` asks for no key, so a wrong one passed there: ``POST /extract_text`` with an
        empty body is checked for the key before anything else and runs no model (a 4xx for the
        missing image when the key is right)."""
        try:
            with map_errors("POST /extract_text"):
                req = self._client.build_request("POST", self.base_url + "/extract_text", content=b"{}",
                                                 headers={"Content-Type": "application/json"}, timeout=30.0)  # fmt: skip
                resp = await read_capped(self._client, req, ERROR_BODY_BYTES, what="POST /extract_text")
        except OcrError:
            return None
        return resp.status_code if resp.status_code in (401, 403) else None

    async def release(self) -> None:
        """Close the connections made on the running event loop (it is about to end)."""
        if self._owns_client:
            await release_loop(self._client)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _reply(data: dict[str, Any], what: str, latency: float) -> ModelReply:
    """The ocular reply (text or structured data) as a :class:`ModelReply`."""
    text = data.get("text")
    confidence = data.get("confidence")
    extra: dict[str, Any] = {
        # numbers from the server: finite or absent (the dialect checks the 0..1 range)
        "confidence": finite(confidence) if isinstance(confidence, int | float) else confidence,
        "processing_time": seconds(data.get("processing_time")),
    }
    for key in ("language", "metadata", "structured_data"):
        if key in data:
            extra[key] = data[key]
    if text is None and "structured_data" in data:
        meta = data.get("metadata") or {}
        text = meta.get("source_text") if isinstance(meta, dict) else None
        if text is None:
            text = json.dumps(data["structured_data"], ensure_ascii=False)
    if not isinstance(text, str):
        raise TransientError(f"{what}: the reply has no 'text' field", cause="bad_reply")
    return ModelReply(text=text, finish_reason="stop", latency_s=latency, data=extra)
