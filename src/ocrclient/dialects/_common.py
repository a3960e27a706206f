"""Helpers shared by the model dialects: request pieces, sampling ladders, reply checks.

Everything here is model-agnostic.  A dialect composes these pieces; the facts about one model
(prompt, grid, labels) live in that model's module.

* :func:`sampling` – ``max_tokens`` (always), ``temperature`` from the per-attempt ladder,
  ``top_p`` (scalar or its own ladder) and pass-through extras from ``cfg.sampling``.
* :func:`chat_body` – the exact OpenAI ``/chat/completions`` JSON for one image + optional text.
* :func:`detect_repetition` – the one repetition detector every dialect uses;
  :func:`trim_repetition` / :func:`bound_blocks` cut a runaway's markdown and blocks down.
* :func:`check_reply` / :func:`finish` – empty reply, repetition and ``finish_reason`` checks,
  raising :class:`~ocrclient.errors.BadOutputError` with what could be salvaged.
* :func:`markdown_blocks` – split plain model markdown into box-less blocks.
* :func:`parse_box` – numbers -> a raw box in model space, with warnings instead of exceptions.
* :class:`ModelDialect` – model, render, sampling and options, and ``from_config`` for every
  configured dialect; :class:`ChatDialect` – the chat-completions ``build`` / ``parse`` around
  the ``content`` / ``parse_text`` hooks.

Example::

    >>> from ocrclient.dialects._common import ladder_value, detect_repetition
    >>> ladder_value([0.0, 0.2, 0.4], 2), ladder_value([0.0, 0.2, 0.4], 9)
    (0.2, 0.4)
    >>> detect_repetition("Intro. " + "the same words " * 60) is not None
    True
"""

from __future__ import annotations

import abc
import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from ..contracts.chat import SAMPLING_KEYS
from ..document import BLOCK_TYPES
from ..errors import BadOutputError
from ..geometry import Frame
from ..imaging import EncodedImage, RenderSpec, encode
from ..transports.base import ModelReply, ModelRequest
from .base import PageContent, RawBlock

if TYPE_CHECKING:
    from ..config import BackendConfig

__all__ = [
    "DEFAULT_LADDER",
    "ChatDialect",
    "ModelDialect",
    "block_type",
    "bound_blocks",
    "chat_body",
    "check_reply",
    "detect_repetition",
    "finish",
    "heading_text",
    "image_part",
    "ladder_value",
    "markdown_blocks",
    "parse_box",
    "rotate_encoded",
    "sampling",
    "text_part",
    "trim_repetition",
]

#: temperature per attempt when neither the profile nor the dialect says otherwise
DEFAULT_LADDER: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6)

#: sampling keys that are ours (not sent as-is)
_OWN_KEYS = {"temperature_ladder", "top_p_ladder", "max_tokens", "temperature", "top_p"}

#: vLLM / OpenAI body keys a profile may pass through from [sampling]: the sampling keys every
#: chat server honours (the shared contract, :data:`ocrclient.contracts.chat.SAMPLING_KEYS`),
#: except the two this module sets per attempt
_PASS_THROUGH = set(SAMPLING_KEYS) - {"temperature", "top_p"}


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------


def ladder_value(ladder: Sequence[float], attempt: int) -> float:
    """The ladder rung for a 1-based attempt: ``ladder[min(attempt - 1, len - 1)]``."""
    if not ladder:
        raise ValueError("empty ladder")
    return float(ladder[min(max(attempt, 1) - 1, len(ladder) - 1)])


def _float_list(value: Any, name: str) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return [float(v) for v in value]
    from ..errors import ConfigError

    raise ConfigError(f"sampling.{name} must be a number or a non-empty list of numbers")


def sampling(
    cfg_sampling: Mapping[str, Any],
    attempt: int,
    *,
    max_tokens: int,
    ladder: Sequence[float] = DEFAULT_LADDER,
    top_p: float | Sequence[float] | None = None,
) -> dict[str, Any]:
    """Sampling fields of a chat body for one attempt.

    ``cfg_sampling`` (the profile's ``[sampling]``) wins over the dialect's defaults:
    ``max_tokens``; ``temperature_ladder`` (or a fixed ``temperature``, which becomes the first
    rung of the default ladder); ``top_p`` or ``top_p_ladder``; other known vLLM/OpenAI keys pass
    through unchanged.
    """
    out: dict[str, Any] = {}
    mt = cfg_sampling.get("max_tokens", max_tokens)
    if not isinstance(mt, int) or isinstance(mt, bool) or mt <= 0:
        from ..errors import ConfigError

        raise ConfigError("sampling.max_tokens must be a positive integer")
    out["max_tokens"] = mt
    if "temperature_ladder" in cfg_sampling:
        rungs = _float_list(cfg_sampling["temperature_ladder"], "temperature_ladder")
    elif "temperature" in cfg_sampling:
        first = _float_list(cfg_sampling["temperature"], "temperature")[0]
        rungs = [first, *[max(first, r) for r in list(ladder)[1:]]]
    else:
        rungs = list(ladder)
    out["temperature"] = ladder_value(rungs, attempt)
    tp: Any = cfg_sampling.get("top_p_ladder", cfg_sampling.get("top_p", top_p))
    if tp is not None:
        out["top_p"] = ladder_value(_float_list(tp, "top_p"), attempt)
    for key, value in cfg_sampling.items():
        if key in _PASS_THROUGH:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# request pieces
# ---------------------------------------------------------------------------------------------


def image_part(encoded: EncodedImage) -> dict[str, Any]:
    """An OpenAI ``image_url`` content part holding the image as a data URL."""
    return {"type": "image_url", "image_url": {"url": encoded.data_url()}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def chat_body(
    model: str,
    content: list[dict[str, Any]],
    sampling_fields: Mapping[str, Any],
    extras: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"model", "messages": [{"role": "user", "content": [...]}], sampling..., extras...}``.

    ``extras`` are vLLM fields placed at the top level of the body (``skip_special_tokens``,
    ``vllm_xargs``, ...); values already in ``sampling_fields`` (from the profile) win.
    """
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": content}]}
    for key, value in (extras or {}).items():
        body[key] = value
    for key, value in sampling_fields.items():
        if key == "vllm_xargs" and isinstance(body.get(key), dict) and isinstance(value, dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


def rotate_encoded(encoded: EncodedImage, clockwise: int, spec: RenderSpec) -> tuple[EncodedImage, Frame]:
    """Rotate an encoded page image clockwise by a multiple of 90 degrees and re-encode it.

    Returns the new image and the :class:`Frame` describing it (the rotation is the clockwise
    rotation applied to the displayed page, as geometry expects).
    """
    r = clockwise % 360
    if r % 90:
        raise ValueError("rotation must be a multiple of 90")
    if r == 0:
        return encoded, Frame(encoded.width, encoded.height, 0)
    from PIL import Image

    img = encoded.decode()
    # PIL's ROTATE_* transposes turn counter-clockwise
    transpose = {
        90: Image.Transpose.ROTATE_270,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_90,
    }[r]
    out = encode(img.transpose(transpose), spec.with_(format=encoded.format))
    return out, Frame(out.width, out.height, r)


# ---------------------------------------------------------------------------------------------
# reply checks
# ---------------------------------------------------------------------------------------------


def detect_repetition(
    text: str,
    *,
    max_period: int = 400,
    min_span: int = 800,
    min_repeats: int = 6,
    window: int = 8000,
) -> str | None:
    """Describe an endless repetition at the end of ``text``, or ``None``.

    Looks for a unit of 1..``max_period`` characters that repeats back to back at the end of the
    text, at least ``min_repeats`` times and over at least ``min_span`` characters.  Units without
    a letter or digit (rules, table padding, whitespace) are ignored: models legitimately emit
    long runs of ``-`` or ``|``.  Whitespace differences between repeats are tolerated by
    comparing a whitespace-collapsed tail.
    """
    if not text:
        return None
    tail = re.sub(r"\s+", " ", text[-window:]).rstrip()
    n = len(tail)
    if n < min_span:
        return None
    for period in range(1, min(max_period, n // min_repeats) + 1):
        unit = tail[n - period :]
        if not any(ch.isalnum() for ch in unit):
            continue
        count = 1
        pos = n - period
        while pos - period >= 0 and tail[pos - period : pos] == unit:
            count += 1
            pos -= period
        needed = max(min_repeats, math.ceil(min_span / period))
        if count >= needed:
            shown = unit.strip()[:40]
            return f"{count} repeats of {shown!r}"
    return None


def _run_length(text: str, unit: str) -> int:
    """How many copies of ``unit`` ``text`` ends with, back to back.

    Copies are taken in blocks of 1, 2, 4, ... while they match, then in halving blocks: each
    test is one C-speed ``endswith`` on the text in place, so a 20 MB run costs two passes over
    it, not a Python loop over every copy.
    """
    p, end, count, k = len(unit), len(text), 0, 1
    while k * p <= end and text.endswith(unit * k, 0, end):
        end, count, k = end - k * p, count + k, k * 2
    while k > 1:
        k //= 2
        if k * p <= end and text.endswith(unit * k, 0, end):
            end, count = end - k * p, count + k
    return count


def _trim_tail(text: str, keep: int) -> str | None:
    """``text`` with a repeated tail cut to ``keep`` copies, or ``None`` if its tail does not
    repeat (the thresholds of :func:`detect_repetition`)."""
    n = len(text)
    for period in range(1, min(400, n // 6) + 1):
        unit = text[n - period :]
        if not any(ch.isalnum() for ch in unit):
            continue
        needed = max(6, math.ceil(800 / period))
        if needed * period > n or not text.endswith(unit * needed):
            continue
        count = _run_length(text, unit)
        return text[: n - (count - keep) * period]
    return None


def trim_repetition(text: str, keep: int = 2) -> str:
    r"""``text`` with a repeated tail cut down to ``keep`` copies (best effort).

    The repeat is looked for in the text as it is (its line breaks kept), then in a
    whitespace-collapsed copy (repeats that differ only in whitespace; the result is that
    copy).  Linear in the text at C speed: safe on a multi-megabyte runaway reply.

    >>> trim_repetition("Intro.\n" + "row 1 | x\n" * 500)
    'Intro.\nrow 1 | x\nrow 1 | x'
    """
    trimmed = _trim_tail(text.rstrip(), keep)
    if trimmed is None:
        trimmed = _trim_tail(" ".join(text.split()), keep)  # split/join: C speed, unlike re.sub
    return text if trimmed is None else trimmed


#: characters of block text allowed beyond the trimmed markdown's length (blocks the markdown
#: leaves out, such as Chandra's page headers and footers)
BLOCK_TEXT_SLACK = 2000


def _block_size(block: RawBlock) -> int:
    return max(1, len(block.text)) + sum(_block_size(c) for c in block.children)


def bound_blocks(blocks: Sequence[RawBlock], budget: int) -> list[RawBlock]:
    """The leading ``blocks`` whose text (children included, every block at least 1) fits in
    ``budget`` characters; the block that does not fit is kept with its text trimmed of
    repetition and cut to what is left, and nothing after it.  So the blocks of a runaway
    reply are bounded the way its markdown is.

    >>> [b.text for b in bound_blocks([RawBlock("text", "a" * 5), RawBlock("text", "b" * 50)], 8)]
    ['aaaaa', 'bbb']
    """
    out: list[RawBlock] = []
    for block in blocks:
        if budget <= 0:
            break
        size = _block_size(block)
        if size <= budget:
            out.append(block)
            budget -= size
            continue
        text = trim_repetition(block.text)[:budget] if block.text else ""
        budget -= max(1, len(text))
        out.append(dataclasses.replace(block, text=text, children=bound_blocks(block.children, budget)))
        break
    return out


def check_reply(reply: ModelReply) -> str:
    """The reply text, or :class:`BadOutputError` (cause ``empty``) when there is none."""
    text = reply.text if isinstance(reply.text, str) else ""
    if not text.strip():
        if reply.finish_reason == "length":
            raise BadOutputError("the model produced no text before max_tokens", cause="length")
        raise BadOutputError("the model returned an empty reply", cause="empty")
    return text


def finish(content: PageContent, reply: ModelReply, *, strict_stop: bool = False) -> PageContent:
    """Final checks shared by every dialect, after a reply has been parsed into ``content``.

    * endless repetition (in the reply or in the markdown read from it) ->
      ``BadOutputError(cause="repetition")`` with the content as ``partial``: its markdown's
      repeated tail trimmed, its blocks bounded to the same text (:func:`bound_blocks`);
    * ``finish_reason == "length"`` -> ``BadOutputError(cause="length")`` (truncated page);
    * with ``strict_stop`` any finish reason other than ``stop`` (or unknown) is bad output.
    """
    # the raw reply, or what was read from it (a runaway whose markup varies, e.g. its boxes,
    # while its text repeats)
    rep = detect_repetition(reply.text or "") or detect_repetition(content.markdown)
    if rep is not None:
        content.markdown = trim_repetition(content.markdown)
        content.blocks = bound_blocks(content.blocks, len(content.markdown) + BLOCK_TEXT_SLACK)
        content.warnings.append(f"repetition: {rep}")
        raise BadOutputError(
            f"the model repeated itself endlessly ({rep})", cause="repetition", partial=content
        )
    reason = reply.finish_reason
    if reason == "length":
        content.warnings.append("truncated: the reply hit max_tokens")
        raise BadOutputError(
            "the reply was cut off at max_tokens (finish_reason=length)", cause="length", partial=content
        )
    if strict_stop and reason not in (None, "stop"):
        content.warnings.append(f"finish_reason={reason}")
        raise BadOutputError(
            f"the reply did not finish normally (finish_reason={reason})",
            cause=f"finish_{reason}",
            partial=content,
        )
    return content


# ---------------------------------------------------------------------------------------------
# parsing helpers
# ---------------------------------------------------------------------------------------------


def block_type(label: str | None, mapping: Mapping[str, str], default: str = "text") -> str:
    """Map a model label to one of :data:`~ocrclient.document.BLOCK_TYPES` (case-insensitive)."""
    if label:
        key = label.strip().lower().replace("_", "-").replace(" ", "-")
        for k, v in mapping.items():
            if k.lower().replace("_", "-").replace(" ", "-") == key and v in BLOCK_TYPES:
                return v
    return default if default in BLOCK_TYPES else "text"


_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_box(
    values: str | Iterable[Any], grid: float | tuple[float, float], warnings: list[str], what: str = "box"
) -> tuple[float, float, float, float] | None:
    """Four numbers (a string such as ``"1 2 3 4"`` / ``"[1, 2, 3, 4]"`` or a sequence) -> a box
    in model units, kept as the model said it.

    Unusable boxes (not four finite numbers) give ``None`` and a warning.  Reversed corners and
    coordinates outside ``0..grid`` (by more than one unit; ``grid`` may be ``(width, height)``) are kept — geometry reorders, clamps
    and flags them — but add a warning, so the page is reported as degraded.
    """
    if isinstance(values, str):
        nums: list[Any] = _NUM.findall(values)
    else:
        try:
            nums = list(values)
        except TypeError:
            nums = []
    if len(nums) != 4:
        warnings.append(f"{what}: expected 4 coordinates, got {len(nums)}; box dropped")
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in nums)
    except (TypeError, ValueError, OverflowError):
        warnings.append(f"{what}: coordinates are not numbers; box dropped")
        return None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        warnings.append(f"{what}: non-finite coordinates; box dropped")
        return None
    if x1 < x0 or y1 < y0:
        warnings.append(f"{what}: reversed corners {[x0, y0, x1, y1]}")
    gx, gy = grid if isinstance(grid, tuple) else (grid, grid)
    if min(x0, y0, x1, y1) < -1 or max(x0, x1) > gx + 1 or max(y0, y1) > gy + 1:
        shown = f"{gx:g}" if gx == gy else f"{gx:g}x{gy:g}"
        warnings.append(f"{what}: coordinates outside 0..{shown}")
    return (x0, y0, x1, y1)


_HEADING = re.compile(r"^(#{1,6})\s+\S")
_LIST = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+\S")
_FIG = re.compile(r"^\s*!\[([^\]]*)\]\([^)]*\)\s*$")


def heading_text(markdown: str) -> str:
    """``"## Title "`` -> ``"Title"`` (markdown heading markers removed, whitespace collapsed)."""
    return " ".join(re.sub(r"^\s*#{1,6}\s+", "", markdown.strip()).split())


def _md_type(chunk: str) -> str:
    first = chunk.lstrip().split("\n", 1)[0]
    if _HEADING.match(first):
        return "title" if first.startswith("# ") else "section_header"
    low = chunk.lstrip().lower()
    if low.startswith("<table") or (first.strip().startswith("|") and first.strip().endswith("|")):
        return "table"
    if low.startswith(("$$", "\\[", "\\begin{")):
        return "equation"
    if low.startswith("```"):
        return "code"
    if _FIG.match(chunk.strip()):
        return "figure"
    if _LIST.match(first):
        return "list_item"
    return "text"


def markdown_blocks(markdown: str) -> list[RawBlock]:
    """Split model markdown on blank lines (keeping fenced code, ``$$`` math and HTML tables whole)
    into box-less blocks with a type guessed from the markdown syntax."""
    blocks: list[RawBlock] = []
    buf: list[str] = []
    fence: str | None = None

    def flush() -> None:
        chunk = "\n".join(buf).strip("\n")
        buf.clear()
        if chunk.strip():
            kind = _md_type(chunk)
            text = chunk
            m = _FIG.match(chunk.strip())
            if kind == "figure" and m:
                text = m.group(1)
            elif kind in ("title", "section_header"):
                text = heading_text(chunk)
            blocks.append(RawBlock(type=kind, text=text))

    for line in markdown.split("\n"):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith("```"):
                fence = "```"
            elif stripped.startswith("$$") and not (len(stripped) > 2 and stripped.endswith("$$")):
                fence = "$$"
            elif stripped.lower().startswith("<table") and "</table>" not in stripped.lower():
                fence = "</table>"
            if fence is None and not stripped:
                flush()
                continue
            buf.append(line)
            continue
        buf.append(line)
        if (fence == "</table>" and "</table>" in stripped.lower()) or (
            fence in ("```", "$$") and stripped.endswith(fence) and len(buf) > 1
        ):
            fence = None
    flush()
    return blocks


# ---------------------------------------------------------------------------------------------
# bases for the configured dialects
# ---------------------------------------------------------------------------------------------


class ModelDialect(abc.ABC):
    """What every configured model dialect holds: the model name, the render spec, the profile's
    ``[sampling]`` and ``dialect_options``; built from a profile by :meth:`from_config`.

    Subclasses set the class attributes, implement ``build`` / ``parse`` and, when their
    constructor takes more keywords, return them from :meth:`config_kwargs`.
    """

    name: str = "model"
    #: the model's own render spec (before the profile's [render] is laid over it)
    DEFAULT_RENDER: RenderSpec = RenderSpec(dpi=150.0)
    DEFAULT_MODEL: str | None = None

    def __init__(
        self,
        *,
        model: str | None = None,
        render: RenderSpec | None = None,
        sampling: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        from ..errors import ConfigError

        self.model = model or self.DEFAULT_MODEL
        if not self.model:
            raise ConfigError(f"dialect {self.name!r} needs a model name: set `model` in the profile or pass --model")
        self.render: RenderSpec = render or self.DEFAULT_RENDER
        self.sampling_cfg: dict[str, Any] = dict(sampling or {})
        self.options: dict[str, Any] = dict(options or {})

    @classmethod
    def from_config(cls, cfg: BackendConfig) -> Self:
        """Build from a :class:`~ocrclient.config.BackendConfig`."""
        return cls(
            model=cfg.model,
            render=cfg.render_spec(cls.DEFAULT_RENDER),
            sampling=cfg.sampling,
            options=cfg.dialect_options,
            **cls.config_kwargs(cfg),
        )

    @classmethod
    def config_kwargs(cls, cfg: BackendConfig) -> dict[str, Any]:
        """Constructor keywords beyond model, render, sampling and options (none by default)."""
        return {}

    @abc.abstractmethod
    def build(self, page: Any, attempt: Any) -> ModelRequest: ...

    @abc.abstractmethod
    def parse(self, reply: ModelReply, page: Any) -> PageContent: ...


class ChatDialect(ModelDialect):
    """Shared machinery of the chat-completions dialects (subclasses set the class attributes
    and implement :meth:`content` / :meth:`parse_text`).

    Example::

        class Echo(ChatDialect):
            name = "echo"
            DEFAULT_RENDER = RenderSpec(dpi=100)
            def content(self, page, image, attempt):
                return [image_part(image), text_part("Read this.")]
            def parse_text(self, text, reply, page):
                return PageContent(markdown=text)
    """

    name: str = "chat"
    DEFAULT_MAX_TOKENS: int = 4096
    DEFAULT_LADDER: tuple[float, ...] = DEFAULT_LADDER
    DEFAULT_TOP_P: float | tuple[float, ...] | None = None
    #: finish_reason other than "stop" is bad output (olmOCR's pipeline rule)
    STRICT_STOP: bool = False

    # -- hooks ----------------------------------------------------------------------------
    @abc.abstractmethod
    def content(self, page: Any, image: EncodedImage, attempt: Any) -> list[dict[str, Any]]:
        """The user message's content parts (image and prompt, in the model's order)."""

    def extras(self, attempt: Any) -> dict[str, Any]:
        """vLLM fields at the top level of the body."""
        return {}

    def prepare(self, page: Any, attempt: Any) -> tuple[EncodedImage, Frame]:
        """The image to send and its frame (olmOCR rotates here)."""
        enc = _require_image(page)
        return enc, Frame(enc.width, enc.height, 0)

    @abc.abstractmethod
    def parse_text(self, text: str, reply: ModelReply, page: Any) -> PageContent:
        """The reply text (already checked to be non-empty) -> page content in model space."""

    # -- the Dialect protocol ---------------------------------------------------------------
    def build(self, page: Any, attempt: Any) -> ModelRequest:
        number = getattr(attempt, "number", attempt if isinstance(attempt, int) else 1)
        image, frame = self.prepare(page, attempt)
        fields = sampling(
            self.sampling_cfg,
            int(number),
            max_tokens=self.DEFAULT_MAX_TOKENS,
            ladder=self.DEFAULT_LADDER,
            top_p=self.DEFAULT_TOP_P,
        )
        assert self.model is not None
        body = chat_body(self.model, self.content(page, image, attempt), fields, self.extras(attempt))
        return ModelRequest(
            body=body,
            kind="chat",
            frame=frame,
            page=getattr(page, "number", None),
            source=getattr(page, "source", None),
        )

    def parse(self, reply: ModelReply, page: Any) -> PageContent:
        text = check_reply(reply)
        try:
            content = self.parse_text(text, reply, page)
        except BadOutputError:
            raise
        except Exception as exc:  # a parser bug must not become a traceback for users
            raise BadOutputError(
                f"{self.name}: could not parse the reply ({type(exc).__name__})", cause="unparseable"
            ) from exc
        return finish(content, reply, strict_stop=self.STRICT_STOP)


def _require_image(page: Any) -> EncodedImage:
    enc = getattr(page, "encoded", None)
    if enc is None:
        from ..errors import InputError

        raise InputError(f"page {getattr(page, 'number', '?')} has no image: {getattr(page, 'error', '')}")
    return enc
