"""A small Dockerfile lint (hadolint is not packaged in Debian, so these rules run here).

Rules: pinned base image (no ``latest``), apt lists cleaned in the same layer with
``--no-install-recommends``, ``--no-cache-dir`` on every pip install, a non-root ``USER`` or a
``# root:`` comment saying why, a ``CMD``, ``ENTRYPOINT`` reset on vLLM server images, every
``COPY`` source present in the build context, and pinned requirements.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY

#: Dockerfile -> its build context (the Chandra / DeepSeek images need deploy/ocrworker)
IMAGES = {
    DEPLOY / "runpod-chandra" / "Dockerfile": DEPLOY,
    DEPLOY / "runpod-deepseek-ocr" / "Dockerfile": DEPLOY,
    DEPLOY / "runpod-trocr" / "Dockerfile": DEPLOY / "runpod-trocr",
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def lint(path: Path, context: Path) -> list[str]:
    problems: list[str] = []
    ins = instructions(path)
    text = path.read_text()
    froms = [a for k, a in ins if k == "FROM"]
    if not froms:
        problems.append("no FROM")
    for image in froms:
        ref = image.split()[0]
        _name, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "")
        if "@sha256:" not in ref and (not tag or tag == "latest"):
            problems.append(f"base image not pinned to a version tag: {ref}")
    for kind, args in ins:
        if kind != "RUN":
            continue
        if "apt-get install" in args:
            if "apt-get update" not in args:
                problems.append("apt-get install without apt-get update in the same RUN")
            if "rm -rf /var/lib/apt/lists/*" not in args:
                problems.append("apt lists not cleaned in the same RUN")
            if "--no-install-recommends" not in args:
                problems.append("apt-get install without --no-install-recommends")
        for pip_cmd in re.findall(r"pip3? install[^&;]*", args):
            if "--no-cache-dir" not in pip_cmd:
                problems.append(f"pip install without --no-cache-dir: {pip_cmd.strip()}")
    users = [a for k, a in ins if k == "USER"]
    if users:
        if users[-1].split(":")[0] in ("root", "0"):
            problems.append("last USER is root")
    elif not re.search(r"^#\s*root:", text, re.MULTILINE):
        problems.append("runs as root without a '# root:' comment saying why")
    if not any(k in ("CMD", "HEALTHCHECK") for k, _ in ins):
        problems.append("no CMD")
    if any(f.startswith("vllm/vllm-openai") for f in froms) and not any(
        k == "ENTRYPOINT" and a.replace(" ", "") == "[]" for k, a in ins
    ):
        problems.append("vllm/vllm-openai base keeps its `vllm serve` ENTRYPOINT")
    for kind, args in ins:
        if kind in ("COPY", "ADD"):
            parts = [p for p in args.split() if not p.startswith("--")]
            for src in parts[:-1]:
                if not (context / src).exists():
                    problems.append(f"{kind} source missing in build context: {src}")
    return problems


@pytest.mark.parametrize("dockerfile", list(IMAGES), ids=lambda p: p.parent.name)
def test_dockerfile_lint(dockerfile: Path) -> None:
    assert lint(dockerfile, IMAGES[dockerfile]) == []


def test_every_dockerfile_is_linted() -> None:
    assert set(DEPLOY.rglob("Dockerfile")) == set(IMAGES)


@pytest.mark.parametrize(
    "req", sorted(DEPLOY.rglob("requirements.txt")), ids=lambda p: p.parent.name
)
def test_requirements_are_pinned(req: Path) -> None:
    lines = [ln.split("#")[0].strip() for ln in req.read_text().splitlines()]
    reqs = [ln for ln in lines if ln]
    assert reqs
    for ln in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.\-+]+", ln), f"not pinned: {ln}"


def test_the_linter_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN pip install requests\n"
        "COPY missing.txt /app/\n"
    )
    problems = lint(bad, tmp_path)
    assert any("not pinned" in p for p in problems)
    assert any("apt lists not cleaned" in p for p in problems)
    assert any("--no-install-recommends" in p for p in problems)
    assert any("--no-cache-dir" in p for p in problems)
    assert any("without a '# root:'" in p for p in problems)
    assert any("no CMD" in p for p in problems)
    assert any("missing.txt" in p for p in problems)
    bad.write_text('FROM vllm/vllm-openai:v0.23.0\nUSER root\nCMD ["python3"]\n')
    problems = lint(bad, tmp_path)
    assert "last USER is root" in problems and any("ENTRYPOINT" in p for p in problems)
