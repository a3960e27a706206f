"""What a finished RunPod job says: its terminal status decoded into a reply or an error.

A terminal status (``COMPLETED``, ``FAILED``, ``CANCELLED``, ``TIMED_OUT``) becomes a
:class:`~ocrclient.transports.base.ModelReply` or an :mod:`ocrclient.errors` class by
:func:`job_reply`.  The output of a ``COMPLETED`` job is read by request kind:

* ``chat``: worker-vllm's aggregated stream, :func:`parse_chat_output` — ``[chat_completion]``
  when not streaming, SSE strings (or lists of chunk dicts with ``RAW_OPENAI_OUTPUT=0``) when
  streaming, native ``{"choices": [{"tokens": [...]}]}`` batches, a plain string;
* ``ocular``: the ocular reply dict (or a plain string);
* ``document``: the DeepSeek whole-PDF worker's dict (its ``markdown`` is base64).

Error classification of a ``FAILED`` job (its ``error`` is a JSON-encoded string of
``{error_type, error_message, error_traceback, hostname, worker_id, runpod_version}`` for a
handler exception, a plain ``"handler: ... traceback: ..."`` string for a generator handler, or
the ``str()`` of what a generator yielded as ``{"error": x}`` — today's worker-vllm yields
``{"message": "vLLM returned HTTP 404: {...}", "type": "worker_error", "code": None}``): an HTTP
status, from the error's type/code or quoted in its message (``HTTP 404``), is read first — 4xx
but 408/429 permanent, and :class:`EndpointError` (the run stops) when it is about the endpoint
(an unknown model or route, the worker's own server refusing it); then worker-vllm's startup
verdicts about the endpoint's configuration (model not on Hugging Face, gated, bad vLLM flags)
-> :class:`EndpointError`; infrastructure words (out of memory, CUDA, NCCL, killed,
worker/engine crash, timeout, connection) -> :class:`TransientError` ``runpod_failed``;
validation words (ValueError, KeyError, TypeError, ValidationError, invalid, bad request,
missing, unsupported, context length) -> :class:`PermanentError` ``runpod_failed``; anything
else -> transient (the scheduler caps attempts, and an unexplained worker failure is more often
infrastructure than input).

Example::

    >>> reply = job_reply({"id": "j1", "status": "COMPLETED", "executionTime": 1500,
    ...                    "output": [{"choices": [{"message": {"content": "# Title"},
    ...                                             "finish_reason": "stop"}]}]},
    ...                   ModelRequest(body={}))
    >>> reply.text, reply.gpu_seconds, reply.job_id
    ('# Title', 1.5, 'j1')
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EndpointError, OcrError, PermanentError, TransientError, is_endpoint_error
from ..secrets import clip
from .base import ModelReply, ModelRequest
from .http import error_message
from .limits import loads, seconds, token_count

__all__ = ["TERMINAL", "classify_failure", "decode_job_error", "job_reply", "parse_chat_output"]

#: the statuses a job ends in
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


# ---------------------------------------------------------------------------------------------
# error decoding / classification
# ---------------------------------------------------------------------------------------------

_TRANSIENT_WORDS = re.compile(
    r"out of memory|\boom\b|outofmemory|cuda|cublas|cudnn|nccl|\bgpu\b|killed|sigkill|sigterm|"
    r"segmentation fault|core dumped|worker (?:crash|died|exited|lost|shut)|engine (?:dead|died|"
    r"not initialized)|not initialized|enginedeaderror|timed? ?out|timeout|connection|"
    r"temporarily|unavailable|overloaded|memoryerror|broken pipe|startup|no space left|"
    r"exit (?:137|139|-9|-11)\b",
    re.IGNORECASE,
)
_PERMANENT_WORDS = re.compile(
    r"valueerror|keyerror|typeerror|validationerror|jsondecodeerror|unidentifiedimageerror|"
    r"badrequest|bad request|\binvalid\b|must be|missing|required|unsupported|not supported|"
    r"context length|too long|maximum context|exceeds|cannot identify image|unprocessable",
    re.IGNORECASE,
)
#: worker-vllm's answer to every job when vLLM cannot start on the endpoint's configuration
#: (``startup_errors.py``: model not on Hugging Face, gated, bad flags, MAX_MODEL_LEN above the
#: model's, an architecture it cannot serve) -- a restart cannot fix those; its out-of-memory
#: verdict is left transient (an endpoint may offer other, larger GPUs)
_ENDPOINT_WORDS = re.compile(
    r"not found on hugging face|gated or private on hugging face|rejected its command line|"
    r"larger than the context length|architecture this vllm version cannot serve",
    re.IGNORECASE,
)
#: the verdict of deploy/'s own workers when their model did not load: they keep it and answer
#: every job with it (a 503 ``model_not_ready``), so no retry can help -- unless the GPU ran out
#: of memory, which another worker may not
_LOAD_VERDICT = re.compile(r"\bmodel failed to load\b(?!.*out ?of ?memory)", re.IGNORECASE)
#: an HTTP status a worker quotes in its message ("vLLM returned HTTP 404: {...}")
_QUOTED_STATUS = re.compile(r"\bHTTP(?:/\d(?:\.\d)?)?[ :]*([1-5]\d\d)\b")


def _first_line(text: str, limit: int = 300) -> str:
    return clip(text.split("\ntraceback:", 1)[0].split("\nTraceback", 1)[0], limit)


def _type_name(raw: Any) -> str:
    """``"<class 'torch.OutOfMemoryError'>"`` -> ``"torch.OutOfMemoryError"``."""
    text = str(raw or "").strip()
    m = re.match(r"<class '([^']+)'>", text)
    return m.group(1) if m else text


def _short(obj: Any) -> str:
    """A compact, bounded rendering of any JSON-ish value (safe on pathological nesting)."""
    try:
        return clip(json.dumps(obj, default=str), 400)
    except (RecursionError, ValueError, TypeError):
        return reprlib.repr(obj)


def _readable(text: str) -> str:
    """A quoted error body made readable: ``'vLLM returned HTTP 404: {"error": {"message": "The
    model `x` does not exist.", "type": "NotFoundError", ...}}'`` ->
    ``'vLLM returned HTTP 404: The model `x` does not exist. (NotFoundError)'``."""
    m = _QUOTED_STATUS.search(text)
    if not m:
        return text
    rest = text[m.end() :].lstrip(" :")
    if rest[:1] not in ("{", "<") or len(rest) > 1_000_000:
        return text
    try:
        detail = error_message(rest)
    except (ValueError, RecursionError):
        return text
    return f"{text[: m.end()]}: {detail}" if detail else text


def decode_job_error(error: Any, _depth: int = 0) -> tuple[str, str]:
    """Turn the ``error`` of a FAILED job (or an error object in an output) into
    ``(error_type, one-line message)``.

    Handles the runpod SDK's JSON-encoded ``{error_type, error_message, ...}`` string, the
    generator handler's ``"handler: <msg> \\ntraceback: ..."`` string, a Python ``repr`` of a dict
    (what ``rp_job`` makes of a yielded ``{"error": {...}}``), vLLM error objects
    (``{"object": "error", "message", "type", "code"}`` and ``{"error": {"message", ...}}``) and
    plain strings.

    >>> decode_job_error('{"error_type": "<class \\'ValueError\\'>", "error_message": "bad"}')
    ('ValueError', 'bad')
    """
    obj: Any = error
    if isinstance(error, str):
        text = error.strip()
        if text[:1] in "{[":
            try:
                obj = json.loads(text)
            except ValueError:
                try:
                    obj = ast.literal_eval(text)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    obj = text
        if isinstance(obj, str):
            msg = obj
            if msg.startswith("handler:"):
                msg = msg[len("handler:") :]
            return "", _first_line(_readable(msg))
    if isinstance(obj, Mapping):
        if "error" in obj and len(obj) <= 3 and not obj.get("error_message") and _depth < 5:
            inner_type, inner_msg = decode_job_error(obj["error"], _depth + 1)
            code = obj.get("code")
            if code and not inner_type:
                inner_type = str(code)
            return inner_type, inner_msg
        kind = _type_name(obj.get("error_type") or obj.get("type") or "")
        message = obj.get("error_message") or obj.get("message") or obj.get("detail") or ""
        code = obj.get("code")
        if code is not None and str(code) not in kind:
            kind = f"{kind} {code}".strip()
        if not message:
            message = _short(obj)
        return kind, _first_line(_readable(str(message)))
    return "", _first_line(_short(obj))


def classify_failure(kind: str, message: str, *, cause: str, job_id: str | None) -> OcrError:
    """A FAILED job (or an error output) -> Transient, Permanent or Endpoint, by what it says.

    Order: deploy/'s workers' "model failed to load" verdict (endpoint), then an HTTP status,
    from the error's type/code or quoted in the message (4xx
    permanent except 408/425/429, 5xx but 501 transient; a 4xx about the endpoint — see
    :func:`~ocrclient.errors.is_endpoint_error` — and a 401/403 the worker's own server answered
    it are :class:`EndpointError`), then worker-vllm's startup verdicts and "model not served"
    (endpoint), then infrastructure words (transient), then validation words (permanent), else
    transient.

    >>> type(classify_failure("worker_error", "vLLM returned HTTP 404: The model `m` does not "
    ...     "exist. (NotFoundError)", cause="runpod_failed", job_id="j1")).__name__
    'EndpointError'
    """
    label = f"{kind}: {message}" if kind else message
    where = f"RunPod job {job_id} failed" if job_id else "RunPod job failed"
    text = f"{where}: {label}"
    code = re.search(r"\b([45]\d\d)\b", kind) or _QUOTED_STATUS.search(message)
    if _LOAD_VERDICT.search(label):
        return EndpointError(text, cause=cause, status=int(code.group(1)) if code else None)
    if code:
        status = int(code.group(1))
        if status in (408, 425, 429) or (status >= 500 and status != 501):
            return TransientError(text, cause=cause, status=status)
        if status in (401, 403) or is_endpoint_error(status, message):
            # a 401/403 inside a job: RunPod took our key, the worker's own server refused it
            return EndpointError(text, cause=cause, status=status)
        if status >= 400:
            return PermanentError(text, cause=cause, status=status)
    if _ENDPOINT_WORDS.search(label) or is_endpoint_error(None, message):
        return EndpointError(text, cause=cause)
    if _TRANSIENT_WORDS.search(label):
        return TransientError(text, cause=cause)
    if _PERMANENT_WORDS.search(label):
        return PermanentError(text, cause=cause)
    return TransientError(text, cause=cause)



def _is_error_obj(item: Any) -> bool:
    return isinstance(item, Mapping) and (
        ("error" in item and item.get("error")) or item.get("object") == "error"
    )


# ---------------------------------------------------------------------------------------------
# output parsing
# ---------------------------------------------------------------------------------------------


@dataclass
class _Chat:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    raw: Any


def _sse_events(text: str) -> list[Any]:
    events: list[Any] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data or data == "[DONE]":
            continue
        try:
            events.append(loads(data))
        except ValueError:
            continue
    return events


def _flatten(output: Any) -> list[Any]:
    """The worker's aggregated stream -> a flat list of items (dicts or plain strings)."""
    items: list[Any] = []
    stack = [output]
    budget = 1_000_000  # bounded, whatever the shape
    while stack and budget > 0:
        budget -= 1
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, str) and "data:" in node:
            items.extend(_sse_events(node))
        else:
            items.append(node)
    return items


def parse_chat_output(output: Any) -> _Chat | Any:
    """Text, finish reason and usage out of worker-vllm's ``openai_route`` output.

    Accepts ``[chat_completion]`` (non-streaming), a bare completion dict, SSE strings or lists
    of ``chat.completion.chunk`` dicts (streaming, aggregated by ``return_aggregate_stream``),
    worker-vllm's native ``{"choices": [{"tokens": [...]}], "usage": {"input", "output"}}``
    batches, and a plain string.  Returns the first error object found instead, if any.
    """
    items = _flatten(output)
    for item in items:
        if _is_error_obj(item):
            return item
    pieces: list[str] = []
    finish: str | None = None
    prompt_tokens = completion_tokens = 0
    found = False
    for item in items:
        if isinstance(item, str):
            pieces.append(item)
            found = True
            continue
        if not isinstance(item, Mapping):
            continue
        choices = item.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
        usage = item.get("usage") or {}
        if isinstance(usage, Mapping):  # whatever the numbers, counts stay sane (limits.token_count)
            prompt_tokens = token_count(usage.get("prompt_tokens") or usage.get("input") or prompt_tokens)
            completion_tokens = token_count(
                usage.get("completion_tokens") or usage.get("output") or completion_tokens
            )
        if isinstance(choice.get("message"), Mapping):  # a whole chat completion: done
            content = choice["message"].get("content")
            return _Chat(
                content if isinstance(content, str) else "",
                choice.get("finish_reason"),
                prompt_tokens,
                completion_tokens,
                output,
            )
        if isinstance(choice.get("delta"), Mapping):
            content = choice["delta"].get("content")
            if isinstance(content, str):
                pieces.append(content)
            found = True
        elif isinstance(choice.get("tokens"), list):
            pieces.extend(str(t) for t in choice["tokens"])
            found = True
        elif isinstance(choice.get("text"), str):
            pieces.append(choice["text"])
            found = True
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    if not found:
        return None
    return _Chat("".join(pieces), finish, prompt_tokens, completion_tokens, output)


def _b64_text(value: Any) -> str | None:
    """A worker's base64 (or plain) text artifact; ``None`` when there is none ("" is an empty
    one: a blank page's markdown, not a missing artifact)."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return value  # already plain markdown


def _unwrap_single(output: Any) -> Any:
    while isinstance(output, list) and len(output) == 1:
        output = output[0]
    return output


# ---------------------------------------------------------------------------------------------
# a terminal status -> a reply or an error
# ---------------------------------------------------------------------------------------------


def job_reply(status: Mapping[str, Any], request: ModelRequest, waited_s: float | None = None) -> ModelReply:
    """The reply of a job in a terminal status, or the error it ended with.

    ``FAILED`` -> :func:`classify_failure`; ``TIMED_OUT`` / ``CANCELLED`` and a ``COMPLETED``
    job without output (the platform or handler lost the result) -> :class:`TransientError`;
    ``gpu_seconds`` / ``queue_seconds`` from ``executionTime`` / ``delayTime`` (ms), of a reply
    and of a failed job's ``spent`` alike.  With ``waited_s`` (the client's wait, the job
    submitted within it: the reply's ``latency_s``), the two together are at most that wait: a
    job cannot have queued and run longer than it was waited for, and its cost follows them.
    """
    try:
        reply = _job_reply(status, request)
    except OcrError as exc:  # a job that ran and failed was billed too
        gpu, queue = _within(waited_s, status)
        if gpu and exc.spent is None:
            from ..document import Usage

            exc.spent = Usage(gpu_seconds=gpu, queue_seconds=queue)
        raise
    reply.gpu_seconds, reply.queue_seconds = _within(waited_s, status)
    if waited_s is not None:
        reply.latency_s = waited_s
    return reply


def _within(waited_s: float | None, status: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The job's ``executionTime`` and ``delayTime`` in seconds (NaN, negative, absurd -> None
    or clamped), together at most ``waited_s``: the run first, the queue in what is left."""
    gpu, queue = seconds(status.get("executionTime"), 0.001), seconds(status.get("delayTime"), 0.001)
    if waited_s is not None:
        gpu = None if gpu is None else min(gpu, waited_s)
        queue = None if queue is None else min(queue, max(0.0, waited_s - (gpu or 0.0)))
    return gpu, queue


def _job_reply(status: Mapping[str, Any], request: ModelRequest) -> ModelReply:
    job_id = str(status.get("id") or "") or None
    state = str(status.get("status") or "")
    if state == "FAILED":
        kind, message = decode_job_error(status.get("error") or "no error message")
        raise classify_failure(kind, message, cause="runpod_failed", job_id=job_id)
    if state == "TIMED_OUT":
        raise TransientError(
            f"RunPod job {job_id} TIMED_OUT (executionTimeout reached on the worker)",
            cause="runpod_timed_out",
        )
    if state == "CANCELLED":
        raise TransientError(f"RunPod job {job_id} was CANCELLED on the endpoint", cause="runpod_cancelled")
    output = status.get("output")
    if output is None or output == [] or output == {} or output == "":
        # COMPLETED without output: the platform or handler lost the result (rp_job drops an
        # empty dict; oversized results are not stored).  Not an empty page — a failure
        # worth one more try, and the scheduler's attempt cap bounds it.
        raise TransientError(
            f"RunPod job {job_id} COMPLETED without output (result lost or handler returned nothing)",
            cause="runpod_no_output",
        )
    if request.kind == "chat":
        reply = _chat_reply(output, job_id)
    elif request.kind == "ocular":
        reply = _ocular_reply(output, job_id)
    else:
        reply = _document_reply(output, job_id)
    reply.job_id = job_id
    return reply


def _output_error(item: Any, job_id: str | None) -> OcrError:
    kind, message = decode_job_error(item)
    return classify_failure(kind, message, cause="worker_error", job_id=job_id)


def _chat_reply(output: Any, job_id: str | None) -> ModelReply:
    chat = parse_chat_output(output)
    if chat is None:
        raise TransientError(
            f"RunPod job {job_id}: output is not a chat completion ({type(output).__name__})",
            cause="bad_reply",
        )
    if not isinstance(chat, _Chat):
        raise _output_error(chat, job_id)
    return ModelReply(
        text=chat.text,
        finish_reason=chat.finish_reason,
        prompt_tokens=chat.prompt_tokens,
        completion_tokens=chat.completion_tokens,
        data={"raw": chat.raw},
    )


def _ocular_reply(output: Any, job_id: str | None) -> ModelReply:
    item = _unwrap_single(output)
    if _is_error_obj(item):
        raise _output_error(item, job_id)
    if isinstance(item, str):
        return ModelReply(text=item, finish_reason="stop")
    if not isinstance(item, Mapping) or not isinstance(item.get("text"), str):
        raise TransientError(f"RunPod job {job_id}: ocular output has no text", cause="bad_reply")
    data = {k: v for k, v in item.items() if k != "text"}
    return ModelReply(text=item["text"], finish_reason="stop", data=data)


def _document_reply(output: Any, job_id: str | None) -> ModelReply:
    """The DeepSeek whole-PDF worker's output."""
    item = _unwrap_single(output)
    if _is_error_obj(item):
        raise _output_error(item, job_id)
    if not isinstance(item, Mapping):
        raise TransientError(f"RunPod job {job_id}: document output is not an object", cause="bad_reply")
    if str(item.get("status", "succeeded")).lower() == "failed":
        detail = _first_line(str(item.get("stderr") or item.get("stdout") or "no details"), 240)
        raise classify_failure(
            f"exit {item.get('return_code')}", detail, cause="worker_error", job_id=job_id
        )
    text = _b64_text(item.get("markdown"))
    if text is None:
        where = item.get("markdown_path")
        hint = f" (it is at {where} on the worker; too large to return inline)" if where else ""
        raise PermanentError(
            f"RunPod job {job_id}: the worker returned no markdown{hint}", cause="runpod_output_missing"
        )
    data = {k: v for k, v in item.items() if k not in ("markdown", "layout_pdf_base64")}
    if "detection_markdown" in data:
        data["detection_markdown"] = _b64_text(data["detection_markdown"])
    prompt_tokens, completion_tokens = _document_usage(item)
    return ModelReply(text=text, finish_reason="stop", data=data, prompt_tokens=prompt_tokens,
                      completion_tokens=completion_tokens)  # fmt: skip


def _document_usage(item: Mapping[str, Any]) -> tuple[int, int]:
    """The tokens a whole-PDF job spent: its top-level ``usage`` when it gives one, else the sum
    of its ``pages[].usage`` (the project's worker reports each page's; they were dropped, and a
    document's pages counted no tokens)."""
    listed = item.get("pages")
    usages = [item["usage"]] if isinstance(item.get("usage"), Mapping) else [
        e.get("usage") for e in (listed if isinstance(listed, list) else []) if isinstance(e, Mapping)]  # fmt: skip
    prompt = completion = 0
    for usage in usages:
        if isinstance(usage, Mapping):
            prompt += token_count(usage.get("prompt_tokens") or usage.get("input") or 0)
            completion += token_count(usage.get("completion_tokens") or usage.get("output") or 0)
    return token_count(prompt), token_count(completion)
