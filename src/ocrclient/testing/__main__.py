"""Run a simulated cloud on loopback: ``python -m ocrclient.testing KIND --port N``.

KIND is ``runpod`` (RunPod serverless), ``openai`` (a vLLM server reached directly), ``proxy``
(vLLM behind the RunPod pod proxy: 524 after ``--proxy-idle`` seconds without a byte), ``modal``
(a Modal web endpoint: proxy auth + 303 to a result URL after ``--modal-redirect-after``) or
``ocular`` (the OLM / RoLM HTTP contract).  It prints the URL (and keys) to point a client at,
then serves until Ctrl-C.  ``--dialect NAME`` answers as that model family writes (``chandra``,
``deepseek``, ``olmocr``, ``lighton``, ``rolmocr``, ``plain``, ``trocr``, ``dots``), so a named
backend reads ok pages from it; without it the simulator echoes a line naming the image.

Example::

    python -m ocrclient.testing proxy --port 8000 --dialect lighton --model lightonai/LightOnOCR-2-1B
    RUNPOD_POD_BASE_URL=http://127.0.0.1:8000/v1 VLLM_API_KEY=... \
        ocr convert doc.pdf --backend runpod-pod-lightonocr2
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import signal
import sys
import threading
from typing import Any

from ._cli import OneLineParser
from .faults import (
    FAULTS,
    FaultPlan,
    FixedResponder,
    ReplayResponder,
    Responder,
    check_rate,
    echo_responder,
)
from .responders import DIALECT_NAMES, DialectResponder

KINDS = ("runpod", "openai", "modal", "proxy", "ocular")


def _rate(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    if name not in FAULTS or not value:
        raise argparse.ArgumentTypeError(f"expected FAULT=P with FAULT one of {', '.join(FAULTS)}")
    try:
        return name, check_rate(name, float(value))
    except ValueError as exc:  # (-0.5, 1.5, nan, inf were taken: the simulator served with them)
        raise argparse.ArgumentTypeError(f"not a probability in [0, 1]: {value!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m ocrclient.testing", description=__doc__.split("\n\n")[0])
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=_rate, action="append", default=[], metavar="FAULT=P",
                   help="fault rate, repeatable (e.g. http_503=0.1)")
    p.add_argument("--latency", type=float, nargs=2, default=(0.0, 0.0), metavar=("MIN", "MAX"))
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--cold-start", type=float, default=0.0)
    p.add_argument("--max-faults-per-key", type=int, default=None)
    p.add_argument("--retry-after", type=float, default=1.0, help="Retry-After (s) sent with http_429")
    p.add_argument("--hang", type=float, default=3600.0, help="how long (s) a hang fault holds a request")
    p.add_argument("--first-byte-delay", type=float, default=0.0, help="wait (s) before a slow_first_byte reply")
    p.add_argument("--api-key", default=None,
                   help="API key to require (default: runpod rp_sim_key_0123456789, openai/proxy generated, "
                        "modal and ocular none)")
    p.add_argument("--no-auth", action="store_true", help="accept requests without an API key")
    p.add_argument("--model", default=None, help="served model id: a request naming another is refused as vLLM does")
    p.add_argument("--flavour", choices=("api", "local"), default="api",
                   help="runpod: the RunPod API (/v2/ENDPOINT/...) or the runpod SDK's local test server")
    p.add_argument("--max-model-len", type=int, default=16384,
                   help="the served model's context: a chat request (runpod: chat job) whose prompt + "
                        "max_tokens is over it gets vLLM's 400 (runpod: the job FAILs with it)")
    p.add_argument("--error-shape", choices=("new", "flat"), default="new")
    p.add_argument("--proxy-idle", type=float, default=100.0, help="proxy: 524 after S s of silence")
    p.add_argument("--modal-redirect-after", type=float, default=150.0)
    answer = p.add_mutually_exclusive_group()
    answer.add_argument("--dialect", choices=DIALECT_NAMES, default=None,
                        help="answer in this model family's output format (blocks with boxes)")
    answer.add_argument("--reply", default=None, help="answer this fixed text instead of the echo")
    answer.add_argument("--replay-dir", default=None, help="replay recorded *.md replies from DIR")
    return p


def _responder(args: argparse.Namespace) -> Responder:
    if args.replay_dir:
        return ReplayResponder.from_dir(args.replay_dir)
    if args.reply is not None:
        return FixedResponder(args.reply)
    if args.dialect is not None:
        return DialectResponder(args.dialect)
    return echo_responder


def _runpod_class() -> Any:
    try:
        module = importlib.import_module("ocrclient.testing.runpod_sim")
        return module.RunPodSimulator
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"the RunPod simulator is not available: {exc}") from None


def _construct(cls: Any, kwargs: dict[str, Any]) -> Any:
    """``cls(**kwargs)`` keeping only the keyword arguments ``cls`` accepts."""
    params = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        # it forwards **kwargs: pass what its own base class (HTTPSimulator) would accept too
        return cls(**kwargs)
    return cls(**{k: v for k, v in kwargs.items() if k in params})


def make_simulator(args: argparse.Namespace) -> Any:
    """The simulator ``args`` describe (not started)."""
    plan = FaultPlan(
        seed=args.seed, rates=dict(args.rate), latency_s=tuple(args.latency), slots=args.slots,
        cold_start_s=args.cold_start, max_faults_per_key=args.max_faults_per_key,
        retry_after_s=args.retry_after, hang_s=args.hang, first_byte_delay_s=args.first_byte_delay,
    )
    common: dict[str, Any] = {"plan": plan, "responder": _responder(args), "host": args.host,
                              "port": args.port}
    if args.kind == "runpod":
        kwargs = {**common, "flavour": args.flavour, "model": args.model, "max_model_len": args.max_model_len}
        if args.no_auth:
            kwargs["api_key"] = None
        elif args.api_key:
            kwargs["api_key"] = args.api_key
        return _construct(_runpod_class(), kwargs)
    if args.kind == "ocular":
        from .ocular_sim import OcularSimulator

        return OcularSimulator(api_key=None if args.no_auth else args.api_key, **common)
    from .http_sim import SimulatorMode
    from .openai_sim import OpenAISimulator

    modes: dict[str, SimulatorMode] = {"openai": "direct", "proxy": "proxy", "modal": "modal"}
    mode = modes[args.kind]
    api_key = None if args.no_auth else (args.api_key or "auto")
    extra: dict[str, Any] = {}
    if args.model:
        extra["model"] = args.model
    return OpenAISimulator(
        mode=mode, api_key=api_key, max_model_len=args.max_model_len, error_shape=args.error_shape,
        proxy_idle_s=args.proxy_idle, modal_redirect_after_s=args.modal_redirect_after,
        **extra, **common,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # (a bad plan, a port in use or out of range, no replay files: one line, exit 2)
        sim = make_simulator(args)
        sim.start()
    except (ValueError, OSError, OverflowError) as exc:
        parser.error(str(exc))
    base = getattr(sim, "base_url", None) or getattr(sim, "url", "")
    print(f"{args.kind} simulator listening on {base}", flush=True)
    for attr in ("api_key", "endpoint_id", "model"):
        value = getattr(sim, attr, None)
        if value:
            print(f"  {attr}: {value}", flush=True)
    if args.kind == "runpod" and getattr(sim, "api_key", None) is None:
        print("  (no key checked: the client sends one all the same, set RUNPOD_API_KEY to anything)", flush=True)
    modal_headers = getattr(sim, "modal_headers", None)
    if modal_headers:
        print(f"  MODAL_KEY={modal_headers['Modal-Key']} MODAL_SECRET={modal_headers['Modal-Secret']}",
              flush=True)
    print("  serving until Ctrl-C", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
