"""Every profile's request fits the context of the server it targets.

The ``runpod-deepseek-ocr`` profile asked ``max_tokens=8192`` of a server built with
``MAX_MODEL_LEN`` 8192 (DeepSeek-OCR's own context): no room was left for the prompt, and vLLM's
OpenAI server (the official worker-vllm image, which deploy/README.md calls interchangeable)
refused every page, 400 "maximum context length is 8192 tokens", a permanent failure.  The worker
itself took ``max_tokens`` up to 16384, twice its context.

The whole kind: for every shipped profile whose server is in ``deploy/`` (the folder named like
the profile), ``max_tokens`` + the prompt (the tokens of the largest image the profile sends, the
UTF-8 bytes of its text -- byte-level BPE makes at most a token a byte -- and a chat template's
tokens) fits the server's shipped max model length; and a worker of ours takes no ``max_tokens``
over its context, nor replies by default past what its largest prompt leaves.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from deploy_helpers import DEPLOY, load_module
from PIL import Image

from ocrclient.config import resolve_config
from ocrclient.dialects.base import Attempt
from ocrclient.geometry import PageBox
from ocrclient.imaging import encode
from ocrclient.pages import PageImage
from ocrclient.registry import load_dialect

ROOT = DEPLOY.parent
#: profiles with a deploy/ server that have no shared context: TrOCR's image goes to its encoder,
#: and its decoder's ``max_length`` is the request's own setting
NOT_A_CONTEXT = {"runpod-trocr"}
#: tokens a chat template adds around the prompt (BOS, role markers, image start/end; Qwen's
#: default system line is ~20 in all)
TEMPLATE_TOKENS = 32
#: page sizes (points), tiny to the PDF maximum, long thin pages included: the largest image a
#: profile sends is among their renders
PAGES = [(72, 72), (612, 792), (792, 612), (1224, 1584), (200, 14400), (14400, 200), (6000, 6000), (14400, 14400)]


def _deepseek_tokens(w: int, h: int) -> int:
    """vLLM's DeepSeek-OCR processor (Gundam mode): a 1024 px global view (16 x 17 + 1 tokens),
    plus, for an image over 640 px, tiles of 640 px in a w x h grid (2 <= w*h <= 6), each grid
    ``(10 w + 1) x 10 h`` tokens; bounded by the largest grid."""
    tiles = max((10 * a + 1) * 10 * b for a in range(1, 7) for b in range(1, 7) if 2 <= a * b <= 6)
    return 273 + (tiles if max(w, h) > 640 else 0)


def _qwen_tokens(w: int, h: int) -> int:
    """Qwen2.5-VL / Qwen3-VL (Chandra, olmOCR, RolmOCR): a token per 28 x 28 pixels at most
    (14 px patches merged 2 x 2; Qwen3-VL's are 16 px, fewer tokens), plus vision start / end."""
    return math.ceil(w / 28) * math.ceil(h / 28) + 2


def _pixtral_tokens(w: int, h: int) -> int:
    """LightOnOCR (Pixtral encoder, 14 px patches merged 2 x 2): a token per 28 x 28 pixels and an
    image-break / image-end token per row."""
    return math.ceil(w / 28) * math.ceil(h / 28) + math.ceil(h / 28)


IMAGE_TOKENS = {"deepseek": _deepseek_tokens, "chandra": _qwen_tokens, "olmocr": _qwen_tokens,
                "rolmocr": _qwen_tokens, "lighton": _pixtral_tokens}  # fmt: skip


def _profiles() -> list[str]:
    return sorted(p.stem for p in (ROOT / "backends").glob("*.toml") if (DEPLOY / p.stem).is_dir())


def shipped_max_model_len(server: str) -> int:
    """The max model length ``deploy/<server>`` ships with (its code, env file or start script)."""
    found: set[int] = set()
    for path in (DEPLOY / server).iterdir():
        if path.suffix in (".py", ".env", ".sh"):
            found |= {int(n) for n in re.findall(r"MAX_MODEL_LEN\W{1,6}(\d+)", path.read_text())}
    assert len(found) == 1, f"deploy/{server} ships no single MAX_MODEL_LEN: {found}"
    return found.pop()


def _text_bytes(body: dict[str, Any]) -> int:
    total = 0
    for message in body["messages"]:
        parts = message["content"] if isinstance(message["content"], list) else [message["content"]]
        for part in parts:
            text = part if isinstance(part, str) else part.get("text", "")
            total += len(str(text).encode("utf-8"))
    return total


def prompt_budget(profile: str) -> tuple[int, int]:
    """(the largest ``max_tokens`` the profile asks over its attempts, its largest prompt)."""
    cfg = resolve_config(profile)
    dialect = load_dialect(cfg)
    image_tokens = max(IMAGE_TOKENS[cfg.dialect](*dialect.render.pixel_size(w, h)) for w, h in PAGES)
    img = Image.new("RGB", dialect.render.pixel_size(612, 792), "white")
    page = PageImage(source="p.pdf", index=0, page_box=PageBox(612, 792), encoded=encode(img, dialect.render))
    bodies = [dialect.build(page, Attempt(n)).body for n in range(1, cfg.max_attempts + 1)]
    text = max(_text_bytes(b) for b in bodies)
    return max(int(b["max_tokens"]) for b in bodies), image_tokens + text + TEMPLATE_TOKENS


def test_every_profile_with_a_deploy_server_is_checked() -> None:
    assert set(_profiles()) - NOT_A_CONTEXT == {
        "modal-lightonocr", "runpod-chandra", "runpod-deepseek-ocr", "runpod-olmocr",
        "runpod-pod-lightonocr2", "runpod-rolmocr",
    }  # fmt: skip
    for profile in set(_profiles()) - NOT_A_CONTEXT:
        assert resolve_config(profile).dialect in IMAGE_TOKENS, profile


@pytest.mark.parametrize("profile", sorted(set(_profiles()) - NOT_A_CONTEXT))
def test_the_profiles_request_fits_its_servers_context(profile: str) -> None:
    max_tokens, prompt = prompt_budget(profile)
    context = shipped_max_model_len(profile)
    assert max_tokens + prompt <= context, (
        f"{profile}: max_tokens {max_tokens} + prompt {prompt} > deploy/{profile}'s max model length {context}"
    )


@pytest.mark.parametrize("server", ["runpod-chandra", "runpod-deepseek-ocr"])
def test_our_workers_take_no_max_tokens_past_their_context(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MAX_MODEL_LEN", "OCR_MAX_TOKENS_LIMIT", "OCR_DEFAULT_MAX_TOKENS"):
        monkeypatch.delenv(var, raising=False)
    limits = load_module(f"context_{server}", DEPLOY / server / "handler.py").WORKER.limits
    context = shipped_max_model_len(server)
    assert limits.max_tokens_limit <= context, (server, limits)
    _, prompt = prompt_budget(server)
    assert limits.default_max_tokens + prompt <= context, (server, limits)


def test_the_deepseek_worker_holds_its_limits_within_max_model_len(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_MODEL_LEN", "4096")
    monkeypatch.setenv("OCR_MAX_TOKENS_LIMIT", "16384")
    monkeypatch.delenv("OCR_DEFAULT_MAX_TOKENS", raising=False)
    mod = load_module("context_deepseek_4k", DEPLOY / "runpod-deepseek-ocr" / "handler.py")
    assert mod.WORKER.limits.max_tokens_limit == 4096
    assert mod.WORKER.limits.default_max_tokens == 4096 - 1024
    monkeypatch.setenv("OCR_DEFAULT_MAX_TOKENS", "6000")  # (an explicit setting, still within)
    assert mod.worker_limits().default_max_tokens == 4096
