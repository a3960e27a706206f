"""The ocular HTTP transport: the OLM / RoLM seed's plain JSON contract over HTTP.

``POST {base}{route}`` with ``{"image": <base64>, "model_name", "prompt", "use_preprocessing",
"ensemble_size", "robust_processing", "decoding_options", "options"}`` (the seed's FastAPI
``OCRRequest``; the dialect builds it), where ``route`` is ``/extract_text`` (OLM),
``/extract_text_robust`` (RoLM), ``/extract_structured`` or ``/extract_structured_robust``.
The reply is ``{"text", "confidence", "language", "processing_time", "metadata"}``
(structured routes: ``{"structured_data", "confidence", "processing_time", "metadata"}``).
``GET /health`` answers ``{"status": "healthy", "models_loaded", "gpu_available", ...}``.
Errors are FastAPI's ``{"detail": ...}``.

This module also holds the small HTTP error helpers the OpenAI transport shares
(:func:`error_message`, :func:`status_error`, :func:`transport_error`) — they need only httpx.

Example::

    transport = OcularTransport("https://my-ocr.example.com", route="/extract_text")
    reply = await transport.send(ModelRequest(kind="ocular", body={"image": b64},
                                              route="/extract_text", timeout_s=60))
    reply.text, reply.data["confidence"]
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import ssl
import time
from functools import lru_cache
from typing import Any

import httpx

from ..config import BackendConfig
from ..errors import (
    AuthError,
    ConfigError,
    OcrError,
    TransientError,
    classify_status,
    parse_retry_after,
    redact,
)
from .base import Health, ModelReply, ModelRequest, json_bytes, release_request_body_hook
from .limits import (
    ERROR_BODY_BYTES,
    aloads,
    error_body,
    finite,
    loads,
    read_capped,
    reply_limit,
    seconds,
)

__all__ = ["OcularTransport", "error_message", "shared_ssl_context", "status_error", "transport_error"]

log = logging.getLogger(__name__)

_TITLE = re.compile(r"(?is)<title>(.*?)</title>")
_TAGS = re.compile(r"(?s)<[^>]+>")
_MAX_MESSAGE = 300


# ---------------------------------------------------------------------------------------------
# shared HTTP error helpers
# ---------------------------------------------------------------------------------------------


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def error_message(body: Any) -> str:
    """A readable one-line message from an error body, whatever its shape.

    Understands vLLM's ``{"error": {"message", "type", "code"}}`` and older flat
    ``{"object": "error", "message", ...}``, ``{"error": "Unauthorized"}``, FastAPI's
    ``{"detail": "..."}`` / ``{"detail": [{"loc", "msg"}]}``, HTML pages (their ``<title>``) and
    plain text.  ``body`` may be bytes, text or already-parsed JSON.

    >>> error_message('{"error": {"message": "bad image", "type": "BadRequestError", "code": 400}}')
    'bad image (BadRequestError)'
    >>> error_message({"object": "error", "message": "no such model", "type": "NotFoundError"})
    'no such model (NotFoundError)'
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        stripped = body.strip()
        if not stripped:
            return ""
        try:
            body = json.loads(stripped)
        except ValueError:
            if "<" in stripped and ">" in stripped:
                match = _TITLE.search(stripped)
                text = match.group(1) if match else _TAGS.sub(" ", stripped)
                return _short(html.unescape(text))
            return _short(stripped)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return _with_type(err.get("message"), err.get("type"))
        if isinstance(err, str) and err:
            return _short(err)
        if "message" in body:
            return _with_type(body.get("message"), body.get("type"))
        detail = body.get("detail")
        if isinstance(detail, str):
            return _short(detail)
        if isinstance(detail, list) and detail:
            parts = []
            for item in detail[:3]:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
                else:
                    parts.append(str(item))
            return _short("; ".join(parts))
    return _short(json.dumps(body, default=str)) if body is not None else ""


def _with_type(message: Any, err_type: Any) -> str:
    text = str(message) if message not in (None, "") else ""
    if err_type and str(err_type) not in text:
        text = f"{text} ({err_type})" if text else str(err_type)
    return _short(text)


def status_error(
    status: int, body: Any, headers: httpx.Headers | dict[str, str] | None = None, *,
    hint: str | None = None,
) -> OcrError:
    """Classify an HTTP error reply (see DESIGN.md): 524 is the pod proxy's idle cut,
    401/403 are :class:`AuthError` (with ``hint``), ``Retry-After`` is surfaced."""
    message = error_message(body)
    retry_after = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    if status == 524:
        return TransientError(
            "HTTP 524: the proxy closed the request after its idle limit without a byte from the "
            "server (stream the reply or use a shorter page)",
            cause="proxy_idle_524", retry_after=retry_after, status=524,
        )
    err = classify_status(status, message, retry_after=retry_after)
    if isinstance(err, AuthError) and hint:
        return AuthError(f"{err.message}; {hint}", cause=err.cause, status=status)
    return err


@lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    """One verified TLS context per process (building one costs ~40 ms per httpx client)."""
    return httpx.create_ssl_context()


def transport_error(exc: BaseException, *, what: str = "request") -> TransientError:
    """An httpx / connection failure as a :class:`TransientError` with a short cause."""
    if isinstance(exc, (httpx.TimeoutException, TimeoutError, asyncio.TimeoutError)):
        return TransientError(f"{what} timed out ({type(exc).__name__})", cause="timeout")
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransientError(f"{what}: connection dropped mid-reply ({exc})", cause="reset")
    if isinstance(exc, httpx.TooManyRedirects):
        return TransientError(f"{what}: too many redirects", cause="redirects")
    detail = str(exc) or type(exc).__name__
    return TransientError(f"{what}: connection error ({detail})", cause="connection")


# ---------------------------------------------------------------------------------------------
# the transport
# ---------------------------------------------------------------------------------------------


class OcularTransport:
    """The OLM / RoLM ocular HTTP contract.

    Example::

        >>> t = OcularTransport("http://127.0.0.1:8000")
        >>> t.base_url
        'http://127.0.0.1:8000'
    """

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
        if api_key:
            headers[api_key_header] = (
                f"Bearer {api_key}" if api_key_header.lower() == "authorization" else api_key
            )
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s, pool=None),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            follow_redirects=True,
            verify=shared_ssl_context(),
        )
        if http_client is not None and headers:
            http_client.headers.update(headers)
        if self._owns_client:  # a caller's own client keeps its own behaviour
            self._client.event_hooks.setdefault("response", []).append(release_request_body_hook)

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
        opts = cfg.transport_options
        return cls(
            base,
            route=str(opts.get("route", "/extract_text")),
            api_key=cfg.secret(),
            api_key_header=str(opts.get("api_key_header", "Authorization")),
            timeout_s=float(cfg.attempt_timeout_s),
            connect_timeout_s=float(opts.get("connect_timeout_s", 15.0)),
            max_connections=max(100, cfg.concurrency + 8),
        )

    async def send(self, request: ModelRequest) -> ModelReply:
        """POST the ocular body to its route; one attempt, no retries."""
        route = request.route or self.route
        if not route.startswith("/"):
            route = "/" + route
        timeout = request.timeout_s or self.timeout_s
        url = self.base_url + route
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                req = self._client.build_request(
                    "POST", url, content=json_bytes(request.body),
                    headers={"Content-Type": "application/json"},
                    timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0), pool=None),
                )
                # read as it arrives, never past the cap max_tokens allow (see .limits)
                resp = await read_capped(self._client, req, reply_limit(request), what=f"POST {route}")
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise TransientError(f"no reply from {route} within {timeout:g} s",
                                 cause="timeout") from exc
        except httpx.HTTPError as exc:
            raise transport_error(exc, what=f"POST {route}") from exc
        latency = time.monotonic() - t0
        if resp.status_code >= 400:
            raise status_error(resp.status_code, error_body(resp.content), resp.headers,
                               hint="check the API key for this ocular server")
        try:
            data = await aloads(resp.content)  # NaN -> None, too deep -> BadOutputError
        except ValueError as exc:
            raise TransientError(f"{route} answered HTTP {resp.status_code} with a non-JSON body: "
                                 f"{error_message(resp.content)}", cause="bad_reply") from exc
        if not isinstance(data, dict):
            raise TransientError(f"{route} answered JSON that is not an object", cause="bad_reply")
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
            raise TransientError(f"{route} reply has no 'text' field", cause="bad_reply")
        return ModelReply(text=text, finish_reason="stop", latency_s=latency, data=extra)

    async def health(self) -> Health:
        """``GET /health``: ok when the server says ``healthy``."""
        try:
            req = self._client.build_request("GET", self.base_url + "/health", timeout=30.0)
            resp = await read_capped(self._client, req, ERROR_BODY_BYTES, what="GET /health")
        except httpx.HTTPError as exc:
            return Health(False, transport_error(exc, what="GET /health").message)
        except OcrError as exc:
            return Health(False, exc.message)
        if resp.status_code >= 400:
            return Health(False, status_error(resp.status_code, error_body(resp.content), resp.headers).message,
                          {"status_code": resp.status_code})
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
        return Health(ok, detail, data if isinstance(data, dict) else {})

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
