"""Hostile and broken servers: the replies no healthy server sends, on loopback.

The simulators in :mod:`ocrclient.testing` play by each cloud's rules and inject the faults those
clouds really have (503s, resets, FAILED jobs).  :class:`HostileServer` breaks the rules on
purpose, to check that a client stays *bounded* — in time, memory and output — whatever a server
(or something pretending to be one) sends back:

==================  =============================================================================
behaviour           what the server does
==================  =============================================================================
``huge_body``       a ``200`` whose reply text is ``size`` bytes (a runaway model: ``unit``
                    repeated), generated as it is written, so the server holds almost nothing;
                    to a streamed request, one SSE event of that size
``huge_stream``     (``openai``) an SSE stream whose content deltas add up to ``size`` bytes
``empty_deltas``    (``openai``) an SSE stream of empty content deltas that never finishes
``deep_nesting``    JSON nested ``depth`` levels deep where the reply should be
``bad_numbers``     a good reply whose numbers (token counts, RunPod ``executionTime`` /
                    ``delayTime``, ocular ``confidence`` / ``processing_time``) are ``number``:
                    ``NaN``, ``Infinity``, ``-5``, ``1e308``, a 5000-digit integer...
``early_close``     ``Content-Length`` promises the whole reply; half of it comes, then the
                    connection closes (streams: a few deltas, then the close)
``in_queue_forever`` (``runpod``) every job stays ``IN_QUEUE`` whatever the client does (a cancel
                    is answered, and changes nothing)
``no_output``       (``runpod``) every job ends ``COMPLETED`` without an ``output``
``no_reply``        the model request (RunPod: the ``/run`` or ``/runsync`` submit) is read whole,
                    then the connection closes without a byte of reply: a server that crashed on
                    the request (no job is made)
==================  =============================================================================

Each ``contract`` is the wire shape of one transport: ``"openai"`` (``/v1/chat/completions``,
JSON or SSE as asked, ``/v1/models``, ``/health``), ``"runpod"`` (``/v2/{endpoint}/run``,
``/runsync``, ``/status/{id}``, ``/cancel/{id}``, ``/health``; outputs shaped as worker-vllm's
``[chat_completion]``, or the ocular reply for ``route`` jobs) and ``"ocular"``
(``/extract_text`` and friends).  The first ``healthy_first`` model requests (jobs, for RunPod)
are answered normally with ``healthy_text``, so a multi-page run can finish some pages and meet
the hostile reply on the others.

Example (pytest; the client bounded by its caps, see ``docs/testing.md``)::

    import ocrclient
    from ocrclient.testing.hostile import HostileServer

    def test_runaway_reply_is_capped(tmp_path):
        with HostileServer("huge_body", contract="openai", size=40_000_000) as srv:
            doc = ocrclient.convert("a.pdf", backend="openai", base_url=srv.base_url,
                                    model=srv.model, cache=False)
        assert doc.pages[0].status != "ok"
        assert srv.bytes_sent < 5_000_000        # the client stopped reading early

Counters (read them in tests): ``requests`` (a ``Counter`` of ``"METHOD /path"``, ids
replaced by ``{id}``), ``hostile_replies``, ``healthy_replies``, ``bytes_sent`` (reply bytes
written, all requests), ``hangups`` (replies the client stopped reading before the end),
``cancels``; events ``hostile_started`` (a hostile reply began) and ``hostile_written`` (one was
written to its end), to act at a chosen moment (e.g. send the client SIGINT).  Run one by hand: ``python -m ocrclient.testing.hostile huge_stream --size 40MB``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from ._cli import OneLineParser
from ._server import (
    LoopbackServer,
    ServerOwner,
    SimHandler,
    end_chunks,
    hang_up,
    read_body,
    write_chunk,
)

__all__ = ["BEHAVIOURS", "CONTRACTS", "HostileServer"]

#: what each behaviour does, by contract (``"*"`` = every contract)
BEHAVIOURS: dict[str, tuple[str, ...]] = {
    "huge_body": ("openai", "runpod", "ocular"),
    "huge_stream": ("openai",),
    "empty_deltas": ("openai",),
    "deep_nesting": ("openai", "runpod", "ocular"),
    "bad_numbers": ("openai", "runpod", "ocular"),
    "early_close": ("openai", "runpod", "ocular"),
    "in_queue_forever": ("runpod",),
    "no_output": ("runpod",),
    "no_reply": ("openai", "runpod", "ocular"),
}
CONTRACTS = ("openai", "runpod", "ocular")
Contract = Literal["openai", "runpod", "ocular"]

#: a line a runaway model repeats (plain text; pass a dialect's own markup as ``unit``)
DEFAULT_UNIT = "The same line of text comes back again and again. "
DEFAULT_HEALTHY = "# A healthy page\n\nThis page came back normally."
_WRITE = 64 * 1024


def _parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 40MB)")
    scale = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


class _Hangup(Exception):
    """The client stopped reading (closed or reset the connection)."""


class HostileServer(ServerOwner):
    """One hostile behaviour for one wire contract, served on ``127.0.0.1`` in a thread.

    * ``size`` – bytes of reply text for ``huge_body`` / ``huge_stream`` (default 40 MB);
    * ``unit`` – what the runaway text repeats (e.g. a Chandra ``<div data-bbox=...>`` block);
    * ``delta_bytes`` – content bytes per SSE chunk for ``huge_stream`` (default: one ``unit``);
    * ``depth`` – nesting depth for ``deep_nesting`` (default 100 000);
    * ``number`` – the JSON number token ``bad_numbers`` writes (default ``NaN``);
    * ``delay_s`` – a pause between writes (slow replies, to catch a client mid-reply);
    * ``max_reply_s`` – how long an endless reply (``empty_deltas``) goes on at most;
    * ``healthy_first`` – model requests (RunPod: jobs) answered normally first.
    """

    def __init__(
        self,
        behaviour: str,
        *,
        contract: Contract = "openai",
        size: int = 40_000_000,
        unit: str = DEFAULT_UNIT,
        delta_bytes: int | None = None,
        depth: int = 100_000,
        number: str = "NaN",
        delay_s: float = 0.0,
        max_reply_s: float = 60.0,
        healthy_first: int = 0,
        healthy_text: str = DEFAULT_HEALTHY,
        model: str = "hostile/ocr-model",
        max_model_len: int = 32_768,
        endpoint_id: str = "hostile-endpoint",
        api_key: str = "hostile-key-0123456789",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")
        if contract not in CONTRACTS:
            raise ValueError(f"unknown contract {contract!r}; known: {', '.join(CONTRACTS)}")
        if contract not in BEHAVIOURS[behaviour]:
            raise ValueError(f"{behaviour!r} has no {contract!r} form (it has: {', '.join(BEHAVIOURS[behaviour])})")
        if not unit:
            raise ValueError("unit must not be empty")
        self.behaviour = behaviour
        self.contract: Contract = contract
        self.size = int(size)
        self.unit = unit
        self.delta_bytes = delta_bytes
        self.depth = int(depth)
        self.number = number
        self.delay_s = float(delay_s)
        self.max_reply_s = float(max_reply_s)
        self.healthy_first = int(healthy_first)
        self.healthy_text = healthy_text
        self.model = model
        self.max_model_len = max_model_len
        self.endpoint_id = endpoint_id
        self.api_key = api_key
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: LoopbackServer | None = None
        self._jobs: dict[str, bool] = {}  # job id -> hostile?
        self._served = 0
        # -- counters --
        self.requests: Counter[str] = Counter()
        self.hostile_replies = 0
        self.healthy_replies = 0
        self.bytes_sent = 0
        self.hangups = 0
        self.cancels = 0
        #: set when the first hostile reply starts, and when one was written to its end (tests
        #: wait on them: Ctrl-C while the client reads it, or while it processes it)
        self.hostile_started = threading.Event()
        self.hostile_written = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Self:
        self._server = LoopbackServer.start(
            self, _Handler, host=self.host, port=self._port, poll_interval=0.02, name="hostile-server"
        )
        return self

    def stop(self) -> None:
        self._stop.set()
        self._stop_server()

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:53127``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give the client: ``.../v1`` (openai), ``.../v2`` (runpod), the root (ocular)."""
        return {"openai": f"{self.url}/v1", "runpod": f"{self.url}/v2", "ocular": self.url}[self.contract]

    def env(self) -> dict[str, str]:
        """Environment variables that point the backends at this server: ``OCRCLIENT_MODEL``,
        and ``OCRCLIENT_BASE_URL`` / ``OCRCLIENT_API_KEY`` (``openai``, for the ``openai``
        backend) or ``RUNPOD_BASE_URL`` / ``RUNPOD_API_KEY`` / ``RUNPOD_ENDPOINT_ID``
        (``runpod``, for ``runpod`` and the named RunPod backends).  ``ocular``: pass
        ``--base-url``."""
        if self.contract == "runpod":
            return {"RUNPOD_BASE_URL": self.base_url, "RUNPOD_API_KEY": self.api_key,
                    "RUNPOD_ENDPOINT_ID": self.endpoint_id, "OCRCLIENT_MODEL": self.model}
        return {"OCRCLIENT_BASE_URL": self.base_url, "OCRCLIENT_API_KEY": self.api_key,
                "OCRCLIENT_MODEL": self.model}

    # -- which requests are hostile -------------------------------------------------------------
    def _next_is_hostile(self) -> bool:
        with self._lock:
            self._served += 1
            hostile = self._served > self.healthy_first
            if hostile:
                self.hostile_replies += 1
            else:
                self.healthy_replies += 1
        if hostile:
            self.hostile_started.set()
        return hostile

    # -- pieces of replies ----------------------------------------------------------------------
    def _escaped_unit(self) -> str:
        return json.dumps(self.unit)[1:-1]

    def _repeats(self, budget: int) -> Iterator[bytes]:
        """JSON-escaped ``unit`` repeated for about ``budget`` bytes, in writes of ~64 kB."""
        piece = self._escaped_unit().encode()
        per_write = max(1, _WRITE // len(piece))
        block = piece * per_write
        left = max(0, budget) // len(piece)
        while left > 0:
            n = min(left, per_write)
            yield block if n == per_write else piece * n
            left -= n

    def _nested(self) -> Iterator[bytes]:
        for i in range(0, self.depth, _WRITE):
            yield b"[" * min(_WRITE, self.depth - i)
        for i in range(0, self.depth, _WRITE):
            yield b"]" * min(_WRITE, self.depth - i)

    def _usage(self, number: str | None) -> str:
        if number is None:
            return '{"prompt_tokens":100,"completion_tokens":12,"total_tokens":112}'
        return f'{{"prompt_tokens":{number},"completion_tokens":{number},"total_tokens":{number}}}'

    def _completion_parts(self, text: Iterable[bytes], number: str | None = None) -> list[Iterable[bytes]]:
        head = (
            '{"id":"chatcmpl-hostile","object":"chat.completion","created":0,'
            f'"model":{json.dumps(self.model)},"choices":[{{"index":0,"message":{{"role":"assistant","content":"'
        ).encode()
        tail = f'"}},"finish_reason":"stop"}}],"usage":{self._usage(number)}}}'.encode()
        return [[head], text, [tail]]

    def _text(self, hostile: bool) -> tuple[Iterable[bytes], int]:
        """The reply text (JSON-escaped) and its length."""
        if hostile and self.behaviour == "huge_body":
            per = len(self._escaped_unit().encode())
            return self._repeats(self.size), (max(0, self.size) // per) * per
        raw = json.dumps(self.healthy_text)[1:-1].encode()
        return iter([raw]), len(raw)

    def _body(self, hostile: bool) -> tuple[list[Iterable[bytes]], int | None]:
        """The whole reply body of a model request as parts, and its length if known."""
        number = self.number if hostile and self.behaviour == "bad_numbers" else None
        if hostile and self.behaviour == "deep_nesting":
            return self._deep_body(), 2 * self.depth + self._deep_overhead()
        text, n = self._text(hostile)
        if self.contract == "ocular":
            conf = number or "0.93"
            ptime = number or "0.5"
            head = b'{"text":"'
            tail = f'","confidence":{conf},"language":"en","processing_time":{ptime},"metadata":{{}}}}'.encode()
            return [[head], text, [tail]], len(head) + n + len(tail)
        parts = self._completion_parts(text, number)
        if self.contract == "runpod":
            ms = number or "1234"
            head = f'{{"id":"{{id}}","status":"COMPLETED","delayTime":{ms},"executionTime":{ms},"output":['.encode()
            parts = [[head], *parts, [b"]}"]]
        return parts, sum(len(b"".join(p)) if isinstance(p, list) else 0 for p in parts) + n

    def _deep_overhead(self) -> int:
        return len(b"".join(self._deep_wrap()[0])) + len(b"".join(self._deep_wrap()[1]))

    def _deep_wrap(self) -> tuple[list[bytes], list[bytes]]:
        if self.contract == "runpod":
            return [b'{"id":"{id}","status":"COMPLETED","output":'], [b"}"]
        if self.contract == "ocular":
            return [b'{"text":"x","confidence":0.9,"metadata":'], [b"}"]
        return [b'{"id":"chatcmpl-hostile","object":"chat.completion","choices":'], [b"}"]

    def _deep_body(self) -> list[Iterable[bytes]]:
        head, tail = self._deep_wrap()
        return [head, self._nested(), tail]

    # -- SSE ------------------------------------------------------------------------------------
    def _chunk(self, content: str | None, finish: str | None = None, usage: str | None = None) -> bytes:
        delta = "{}" if content is None else f'{{"content":{json.dumps(content)}}}'
        body = (
            f'{{"id":"chatcmpl-hostile","object":"chat.completion.chunk","created":0,'
            f'"model":{json.dumps(self.model)},"choices":['
            f'{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{json.dumps(finish)}}}]'
        )
        if usage is not None:
            body = (
                f'{{"id":"chatcmpl-hostile","object":"chat.completion.chunk","created":0,'
                f'"model":{json.dumps(self.model)},"choices":[],"usage":{usage}'
            )
        return f"data: {body}}}\n\n".encode()

    def _sse(self, hostile: bool) -> Iterator[bytes]:
        b = self.behaviour if hostile else "healthy"
        yield self._chunk("")
        if b == "huge_stream":
            piece = self.unit * max(1, (self.delta_bytes or len(self.unit)) // len(self.unit))
            one = self._chunk(piece)
            sent = 0
            while sent < self.size:
                yield one
                sent += len(piece)
        elif b == "empty_deltas":
            empty = self._chunk("") * 64
            end = time.monotonic() + self.max_reply_s
            while time.monotonic() < end:
                yield empty
            return  # no finish, no [DONE]: whatever came, it never ends properly
        elif b == "huge_body":  # streamed, the runaway reply is one event of ``size`` bytes
            head, _, tail = self._chunk("\0").partition(b"\\u0000")
            yield head
            yield from self._repeats(self.size)
            yield tail
        elif b == "deep_nesting":
            yield b"data: " + b"".join(self._nested()) + b"\n\n"
        elif b == "early_close":
            yield self._chunk("Half a ")
            raise _Hangup  # the server goes away mid-stream
        else:
            yield self._chunk(self.healthy_text)
        yield self._chunk(None, "stop")
        yield self._chunk(None, usage=self._usage(self.number if b == "bad_numbers" else None))
        yield b"data: [DONE]\n\n"

    # -- request handling -------------------------------------------------------------------------
    def _count(self, method: str, path: str) -> None:
        label = re.sub(r"/(status|cancel)/[^/]+$", r"/\1/{id}", path)
        with self._lock:
            self.requests[f"{method} {label}"] += 1

    def _handle(self, h: _Handler) -> None:
        path = urlsplit(h.path).path
        raw, _ = read_body(h)
        self._count(h.command, path)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if self.contract == "openai":
            self._openai(h, path, body)
        elif self.contract == "runpod":
            self._runpod(h, path, body)
        else:
            self._ocular(h, path)

    def _openai(self, h: _Handler, path: str, body: Any) -> None:
        if path.endswith("/health"):
            self._send(h, 200, [[b""]], 0)
        elif path.endswith("/models"):
            card = {"id": self.model, "object": "model", "max_model_len": self.max_model_len}
            self._send_json(h, 200, {"object": "list", "data": [card]})
        elif path.endswith("/chat/completions"):
            hostile = self._next_is_hostile()
            if hostile and self.behaviour == "no_reply":
                hang_up(h)
            elif isinstance(body, dict) and body.get("stream"):
                self._send(h, 200, [self._sse(hostile)], None, "text/event-stream", hostile=hostile)
            else:
                parts, n = self._body(hostile)
                self._send(h, 200, parts, n, cut=hostile and self.behaviour == "early_close", hostile=hostile)
        else:
            self._send_json(h, 404, {"error": {"message": f"no route {path}", "type": "NotFoundError"}})

    def _ocular(self, h: _Handler, path: str) -> None:
        if path.endswith("/health"):
            self._send_json(h, 200, {"status": "healthy", "models_loaded": [self.model]})
            return
        hostile = self._next_is_hostile()
        if hostile and self.behaviour == "no_reply":
            hang_up(h)
            return
        parts, n = self._body(hostile)
        self._send(h, 200, parts, n, cut=hostile and self.behaviour == "early_close", hostile=hostile)

    def _runpod(self, h: _Handler, path: str, body: Any) -> None:
        m = re.match(r"^/v2/([^/]+)/(run|runsync|status|cancel|health)(?:/([^/]+))?$", path)
        if not m or m.group(1) != self.endpoint_id:
            self._send_json(h, 404, {"error": "not found"})
            return
        op, jid = m.group(2), m.group(3)
        if op == "health":
            self._send_json(h, 200, {"jobs": {"inQueue": len(self._jobs)}, "workers": {"idle": 0, "running": 1}})
        elif op in ("run", "runsync"):
            jid = "hostile-" + uuid.uuid4().hex[:12]
            with self._lock:
                self._jobs[jid] = False
            hostile = self._next_is_hostile()
            if hostile and self.behaviour == "no_reply":
                with self._lock:
                    del self._jobs[jid]
                hang_up(h)
                return
            with self._lock:
                self._jobs[jid] = hostile
            if op == "run":
                self._send_json(h, 200, {"id": jid, "status": "IN_QUEUE"})
            else:
                self._job_status(h, jid)
        elif op == "status" and jid in self._jobs:
            self._job_status(h, jid)
        elif op == "cancel" and jid in self._jobs:
            with self._lock:
                self.cancels += 1
            self._send_json(h, 200, {"id": jid, "status": "CANCELLED"})
        else:
            self._send_json(h, 404, {"error": f"job {jid} not found"})

    def _job_status(self, h: _Handler, jid: str) -> None:
        hostile = self._jobs[jid]
        if hostile and self.behaviour == "in_queue_forever":  # (written: the client holds the job's id)
            self._send_json(h, 200, {"id": jid, "status": "IN_QUEUE"}, hostile=True)
            return
        if hostile and self.behaviour == "no_output":
            self._send_json(h, 200, {"id": jid, "status": "COMPLETED", "delayTime": 3, "executionTime": 40})
            return
        parts, n = self._body(hostile)
        parts = [[p.replace(b"{id}", jid.encode()) for p in part] if isinstance(part, list) else part
                 for part in parts]
        if n is not None:
            n += len(jid) - len("{id}")
        self._send(h, 200, parts, n, cut=hostile and self.behaviour == "early_close", hostile=hostile)

    # -- writing --------------------------------------------------------------------------------
    def _send_json(self, h: _Handler, status: int, obj: Any, *, hostile: bool = False) -> None:
        data = json.dumps(obj).encode()
        self._send(h, status, [[data]], len(data), hostile=hostile)

    def _send(
        self,
        h: _Handler,
        status: int,
        parts: list[Iterable[bytes]],
        length: int | None,
        content_type: str = "application/json",
        *,
        cut: bool = False,
        hostile: bool = False,
    ) -> None:
        """Write a reply from ``parts`` (iterables of bytes): with ``Content-Length`` when
        ``length`` is known, else chunked.  ``cut``: stop after half the body and close."""
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        chunked = length is None
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(length))
        h.end_headers()
        budget = (length // 2) if (cut and length) else None
        written = 0
        try:
            for data in itertools.chain.from_iterable(parts):
                if self._stop.is_set():
                    raise _Hangup
                if budget is not None and written + len(data) >= budget:
                    data = data[: budget - written]
                    self._write(h, data, chunked)
                    raise _Hangup
                if data:
                    self._write(h, data, chunked)
                    written += len(data)
                if self.delay_s:
                    time.sleep(self.delay_s)
            if chunked:
                end_chunks(h)
            h.wfile.flush()
            if hostile:
                self.hostile_written.set()
        except _Hangup:  # the server goes away: FIN, no more bytes
            hang_up(h)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            with self._lock:
                self.hangups += 1
            h.close_connection = True

    def _write(self, h: _Handler, data: bytes, chunked: bool) -> None:
        if chunked:
            write_chunk(h, data)
        else:
            h.wfile.write(data)
        with self._lock:
            self.bytes_sent += len(data)


class _Handler(SimHandler):
    server: LoopbackServer

    def respond(self) -> None:
        self.server.owner._handle(self)


def main(argv: list[str] | None = None) -> int:
    """``python -m ocrclient.testing.hostile BEHAVIOUR [--contract C] [--size 40MB] ...``"""
    p = OneLineParser(prog="python -m ocrclient.testing.hostile", description=__doc__.split("\n")[0])
    p.add_argument("behaviour", choices=sorted(BEHAVIOURS))
    p.add_argument("--contract", choices=CONTRACTS, default="openai")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--size", type=_parse_size, default=40_000_000, help="reply text size, e.g. 40MB")
    p.add_argument("--depth", type=int, default=100_000)
    p.add_argument("--number", default="NaN", help="the JSON number token for bad_numbers")
    p.add_argument("--delay", type=float, default=0.0, help="seconds between writes")
    p.add_argument("--healthy-first", type=int, default=0)
    args = p.parse_args(argv)
    try:  # (a behaviour without that contract's form, a port in use: one line, exit 2)
        srv = HostileServer(args.behaviour, contract=args.contract, port=args.port, size=args.size,
                            depth=args.depth, number=args.number, delay_s=args.delay,
                            healthy_first=args.healthy_first)
        srv.start()
    except (ValueError, OSError, OverflowError) as exc:
        p.error(str(exc))
    try:
        print(f"hostile {args.contract} server ({args.behaviour}) listening on {srv.base_url}")
        for name, value in srv.env().items():
            print(f"  {name}={value}")
        with suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
