"""``ocr convert``'s inputs, planned before anything is sent: :func:`plan_inputs` (the inputs of
this machine's shard with their page ranges and output stems, the unusable ones of several
refused each in one line) and, in document mode, :func:`whole_pdfs` (images refused: a
whole-PDF job cannot carry one)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, InputError
from .common import fail

if TYPE_CHECKING:
    from ..config import BackendConfig
    from ..pages import Source
    from ..pages.inputs import Refused

__all__ = ["Plan", "plan_inputs", "whole_pdfs"]

Plan = list[tuple["Source", list[int]]]


def plan_inputs(
    inputs: list[str], pages: str | None, password: str | None, shard: str | None, fmts: list[str], out: Path | None,
    refused: list[Refused] | None = None, left_out: list[tuple[str, str]] | None = None,
) -> tuple[Plan, dict[str, Path]]:
    """The inputs of this machine's shard with their page ranges, and each input's output stem
    (laid out over every input, before sharding, so that all machines agree on the names).
    ``refused`` gets the files of this shard that cannot be converted (of several: each is one
    error line, the others go on; with none left and no shard to share the corpus, a run with
    nothing to convert is refused); ``left_out`` the name of each input of this shard that the
    page range leaves out, and why (``--json`` lists them)."""
    from ..exporters import EXPORTERS
    from ..outputs import in_shard, output_stems, parse_shard, shard_keys
    from ..pages import prepare  # not ..run: see convert
    from ..pages.inputs import left_out_reason

    unknown = [f for f in fmts if f not in EXPORTERS]
    if unknown:
        raise ConfigError(f"unknown --format {', '.join(unknown)}; known: {', '.join(EXPORTERS)}")
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"-o {out}: exists and is not a directory")
    shard_spec = parse_shard(shard)
    found: list[Refused] = []
    left: list[Source] = []  # (of several, those the page range leaves out)
    plan = prepare(inputs, pages=pages, password=password, exclude=[out] if out is not None else [], refused=found,
                   left_out=left)  # fmt: skip
    stem_of: dict[str, Path] = {}
    if out is not None:  # (laid out with every input named, converted or not: see output_stems)
        stems = output_stems([src for src, _ in plan], out, [EXPORTERS[f][1] for f in fmts], beside=[*found, *left])
        stem_of = {src.key: stem for (src, _), stem in zip(plan, stems, strict=True)}
    keys = shard_keys([*(src for src, _ in plan), *found, *left])
    mine = [in_shard(key, shard_spec) for key in keys]
    bad = [r for r, ok in zip(found, mine[len(plan) : len(plan) + len(found)], strict=True) if ok]
    if left_out is not None:
        left_out.extend((src.name, left_out_reason(pages, src.page_count))
                        for src, ok in zip(left, mine[len(plan) + len(found) :], strict=True) if ok)  # fmt: skip
    plan = [entry for entry, ok in zip(plan, mine, strict=False) if ok]
    _refuse(bad, plan, refused, shard, f"none of the {len(bad)} input(s) found can be")
    return plan, stem_of


def _refuse(bad: list[Refused], kept: Plan, refused: list[Refused] | None, shard: str | None, none_left: str) -> None:
    """``bad``, inputs of several that cannot be converted: each listed in ``refused`` and said in
    one line (the others go on, and the exit is 1); with none ``kept`` and no shard to share the
    corpus, the run has nothing to convert (``none_left`` says why).  A shard of only those is
    done, exit 1: other machines have the rest."""
    if refused is not None:
        refused.extend(bad)
    for r in bad:
        fail(f"{r.message} (not converted{'; the other inputs go on' if kept else ''})", as_json=False)
    if bad and not kept and not shard:
        raise InputError(f"nothing to convert: {none_left} (see above)")


def whole_pdfs(plan: Plan, cfg: BackendConfig, document_mode: bool, refused: list[Refused], shard: str | None) -> Plan:
    """In document mode, ``plan`` without its images (a whole-PDF job cannot carry one), each
    refused in one line as :func:`plan_inputs` refuses an unusable file of several: the others go on,
    exit 1; one image alone is the run's refusal, exit 2."""
    from .. import docmode
    from ..pages.inputs import Refused

    images = [src for src, _ in plan if src.kind != "pdf"]
    if not images or not docmode.requested(cfg, document_mode):
        return plan
    bad = [Refused(src.name, src.stem, src.path or Path(src.name), src.root or Path("."), src.rel,
                   f"{src.name}: document mode (whole PDFs) needs a PDF, not an image") for src in images]  # fmt: skip
    if len(plan) == 1:
        raise InputError(bad[0].message)
    pdfs = [(src, idx) for src, idx in plan if src.kind == "pdf"]
    _refuse(bad, pdfs, refused, shard, f"none of the {len(images)} input(s) is a PDF")
    return pdfs
