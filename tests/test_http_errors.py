"""The one error map every HTTP transport uses (``transports/http.py``): each row of its table —
what httpx and an error status raise -> the ocrclient error class and cause (and an error event
inside a chat-completions stream, read by ``transports/openai_replies.py``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from ocrclient.errors import (
    AuthError,
    BadOutputError,
    EndpointError,
    OcrError,
    PermanentError,
    TransientError,
)
from ocrclient.transports.http import json_object, map_errors, raise_for_status
from ocrclient.transports.openai_replies import stream_error

REQ = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


def _mapped(exc: BaseException, **kwargs: Any) -> BaseException:
    """What ``exc`` raised inside ``map_errors("POST /x", **kwargs)`` comes out as."""
    try:
        with map_errors("POST /x", **kwargs):
            raise exc
    except BaseException as out:
        return out
    raise AssertionError("map_errors swallowed the exception")


def _reply(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers, request=REQ)


def _status(status: int, body: bytes = b"", **kwargs: Any) -> BaseException:
    try:
        with map_errors("POST /x", **kwargs):
            raise_for_status(_reply(status, body))
    except BaseException as out:
        return out
    raise AssertionError(f"HTTP {status} raised nothing")


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused", request=REQ), "connection"),
        (httpx.ReadTimeout("read timed out", request=REQ), "timeout"),
        (httpx.ConnectTimeout("connect timed out", request=REQ), "timeout"),
        (TimeoutError(), "timeout"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response.", request=REQ),
         "reset"),
        (httpx.RemoteProtocolError("peer closed connection without sending complete message body",
                                   request=REQ), "reset"),
        (httpx.TooManyRedirects("Exceeded maximum allowed redirects.", request=REQ), "redirects"),
        (httpx.DecodingError("Error -3 while decompressing data", request=REQ), "bad_reply"),
        (httpx.ConnectError("All connection attempts failed", request=REQ), "connection"),
        (httpx.ReadTimeout("timed out", request=REQ), "timeout"),
    ],
)
def test_library_exceptions_become_transient_errors_by_cause(exc: BaseException, cause: str) -> None:
    out = _mapped(exc)
    assert type(out) is TransientError and out.cause == cause, repr(out)
    assert str(out).startswith("POST /x: ") and "\n" not in str(out)


@pytest.mark.parametrize(("budget", "said"), [(12.5, "12.5 s"), (1.89762, "1.9 s"), (600.0, "600.0 s")])
def test_the_attempt_budget_is_named_when_it_runs_out(budget: float, said: str) -> None:
    """In tenths of a second, naming the page deadline as what may have cut it (it said 'within
    1.89762 s' where page_deadline_s had cut the attempt), as the RunPod transport says it."""
    out = _mapped(TimeoutError(), timeout_s=budget)
    assert str(out) == f"POST /x: no reply within {said} (the attempt's time: timeout, or what was left of page_deadline_s)"


def test_ocrclient_errors_and_unrelated_exceptions_pass_through_unchanged() -> None:
    own = BadOutputError("too large", cause="reply_too_large")
    assert _mapped(own) is own
    other = ValueError("not ours")
    assert _mapped(other) is other
    cancelled = asyncio.CancelledError()
    assert _mapped(cancelled) is cancelled


def test_too_deep_json_is_bad_output() -> None:
    out = _mapped(RecursionError("maximum recursion depth exceeded"))
    assert isinstance(out, BadOutputError) and out.cause == "reply_too_deep"


@pytest.mark.parametrize(
    ("status", "kind", "cause"),
    [
        (400, PermanentError, "http_400"),
        (401, AuthError, "http_401"),
        (403, AuthError, "http_403"),
        (404, EndpointError, "http_404"),
        (405, EndpointError, "http_405"),
        (408, TransientError, "http_408"),
        (413, PermanentError, "http_413"),
        (429, TransientError, "http_429"),
        (500, TransientError, "http_500"),
        (501, PermanentError, "http_501"),
        (503, TransientError, "http_503"),
        (524, TransientError, "proxy_idle_524"),
    ],
)
def test_statuses_from_a_reply_and_from_a_stream_error_event_get_the_same_class(
    status: int, kind: type[OcrError], cause: str
) -> None:
    error = {"message": "the server says no", "type": "SomeError", "code": status}
    ours = _status(status, json.dumps({"error": error}).encode())
    in_stream = stream_error(error)
    for out in (ours, in_stream):
        assert type(out) is kind and out.cause == cause, repr(out)
        assert getattr(out, "status", None) == status
        if status != 524:
            assert str(out) == f"HTTP {status}: the server says no (SomeError)"


def test_retry_after_hint_and_label() -> None:
    try:
        with map_errors("RunPod status", label_status=True):
            raise_for_status(httpx.Response(429, content=b'{"error": "slow down"}',
                                            headers={"Retry-After": "3"}, request=REQ))
    except TransientError as exc:
        assert exc.retry_after == 3.0 and str(exc) == "HTTP 429: RunPod status: slow down"
    out = _status(401, b"<html><title>401 Unauthorized</title></html>", hint="check $MY_KEY")
    assert isinstance(out, AuthError) and str(out) == "HTTP 401: 401 Unauthorized; check $MY_KEY"


def test_a_transport_rule_reads_its_own_statuses_first() -> None:
    def rule(status: int, message: str) -> OcrError | None:
        return PermanentError(f"too big: {message}", cause="payload_too_large") if status == 413 else None

    assert _status(413, b'{"detail": "over 10 MB"}', rule=rule).cause == "payload_too_large"  # type: ignore[attr-defined]
    assert _status(500, b"", rule=rule).cause == "http_500"  # type: ignore[attr-defined]


def test_only_error_statuses_raise() -> None:
    for status in (200, 204, 304):
        raise_for_status(_reply(status))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308, 399])
def test_a_redirect_left_unfollowed_is_an_endpoint_error_naming_where_it_points(status: int) -> None:
    reply = httpx.Response(status, headers={"location": "https://u:pw@api.example.com/v2/e/run?key=s3cr3t"},
                           request=httpx.Request("POST", "http://api.example.com/v2/e/run"))  # fmt: skip
    with pytest.raises(EndpointError) as err:
        raise_for_status(reply)
    assert "redirects http://api.example.com/v2/e/run to https://api.example.com/v2/e/run" in str(err.value)
    assert "s3cr3t" not in str(err.value) and "pw" not in str(err.value) and err.value.cause == "redirect"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"code": 503, "message": "engine overloaded", "type": "ServiceUnavailableError"}, TransientError),
        ({"code": 400, "message": "bad image", "type": "BadRequestError"}, PermanentError),
        ({"message": "something broke mid-stream"}, TransientError),
    ],
)
def test_an_error_event_inside_a_stream(body: dict[str, Any], kind: type[OcrError]) -> None:
    out = stream_error(body)
    assert type(out) is kind
    if "code" not in body:
        assert out.cause == "stream_error"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("content", "kind", "cause"),
    [
        (b"<html>oops</html>", TransientError, "bad_reply"),
        (b"[1, 2]", TransientError, "bad_reply"),
        (b"[" * 100_000 + b"]" * 100_000, BadOutputError, "reply_too_deep"),
    ],
)
async def test_json_object_refuses_what_is_not_a_json_object(content: bytes, kind: type[OcrError], cause: str) -> None:
    with pytest.raises(kind) as info:
        await json_object(_reply(200, content), "GET /x")
    assert info.value.cause == cause and str(info.value).startswith("GET /x: ")
    assert await json_object(_reply(200, b'{"ok": NaN}'), "GET /x") == {"ok": None}


@pytest.mark.parametrize(
    ("first", "last", "moved"),
    [("http://api.example.com/v1/x", "https://api.example.com/v1/x", False),  # (an https upgrade keeps the key)
     ("https://api.example.com/v1/x", "https://api.example.com/v2/y", False),
     ("https://api.example.com/v1/x", "https://other.example.com/v1/x", True),
     ("http://127.0.0.1:8000/v1/x", "http://127.0.0.1:8001/v1/x", True),
     ("http://[::1]:8000/v1/x", "http://[::1]:8001/v1/x", True)],
)  # fmt: skip
def test_a_401_blames_the_redirect_only_where_the_key_was_left_behind(first: str, last: str, moved: bool) -> None:
    from ocrclient.transports.http import map_errors

    hop = httpx.Response(307, headers={"location": last}, request=httpx.Request("POST", first))
    reply = httpx.Response(401, json={"error": "no"}, request=httpx.Request("POST", last), history=[hop])
    with pytest.raises(AuthError) as err, map_errors("POST x", hint="check the API key"):
        raise_for_status(reply)
    assert ("redirected to" in str(err.value)) is moved and ("check the API key" in str(err.value)) is not moved
    if moved:
        assert last.rsplit("/", 2)[0] in str(err.value), str(err.value)
