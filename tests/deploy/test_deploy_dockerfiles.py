"""A small Dockerfile lint (hadolint is not packaged in Debian, so these rules run here).

Rules: pinned base image (no ``latest``), apt lists cleaned in the same layer with
``--no-install-recommends``, ``--no-cache-dir`` on every pip install, a non-root ``USER`` or a
``# root:`` comment saying why, a ``CMD``, ``ENTRYPOINT`` reset on vLLM server images, every
``COPY`` source present in the build context (and not excluded by ``.dockerignore``), and pinned
requirements.  Then each image's ``/app`` is rebuilt from its ``COPY`` lines and one job runs
there with nothing else of the repository importable: the handlers need only what the image has.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import DEPLOY, ROOT, b64_png, data_url, dockerfile_instructions, page_png

#: Dockerfile -> its build context: the repository root, since every image needs the client's
#: request models (src/ocrclient/contracts) and the Chandra / DeepSeek images deploy/ocrworker
IMAGES = {
    DEPLOY / "runpod-chandra" / "Dockerfile": ROOT,
    DEPLOY / "runpod-deepseek-ocr" / "Dockerfile": ROOT,
    DEPLOY / "runpod-trocr" / "Dockerfile": ROOT,
}


def lint(path: Path, context: Path) -> list[str]:
    problems: list[str] = []
    ins = dockerfile_instructions(path)
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
                elif dockerignored(context, src):
                    problems.append(f"{kind} source excluded by .dockerignore: {src}")
    return problems


def dockerignored(context: Path, rel: str) -> bool:
    """Whether ``.dockerignore`` keeps ``rel`` out of the build context (docker's rules: the last
    matching pattern wins, ``!`` re-includes, a pattern matching a parent directory matches)."""
    ignore = context / ".dockerignore"
    if not ignore.exists():
        return False
    path = rel.strip("/")
    parents = [path.rsplit("/", i)[0] for i in range(path.count("/") + 1)]
    excluded = False
    for raw in ignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        regex = _pattern_regex(line.lstrip("!").strip("/"))
        if any(re.fullmatch(regex, p) for p in parents):
            excluded = not keep
    return excluded


def _pattern_regex(pattern: str) -> str:
    """A ``.dockerignore`` pattern (paths from the context root) as a regex."""
    out = ""
    for piece in re.split(r"(\*\*/|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}.get(piece, re.escape(piece))
    return out


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


def image_app(dockerfile: Path, context: Path, dest: Path) -> Path:
    """What the Dockerfile's ``COPY`` lines put in the image, recreated under ``dest``."""
    for kind, args in dockerfile_instructions(dockerfile):
        if kind != "COPY":
            continue
        *sources, target = [p for p in args.split() if not p.startswith("--")]
        root = dest / target.lstrip("/")
        for src in sources:
            path = context / src
            if path.is_dir():
                shutil.copytree(path, root, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
            else:
                out = root / path.name if target.endswith("/") else root
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
    return dest / "app"


_RUN_JOB = """
import asyncio, importlib.util, json, sys
app, sites = sys.argv[1], json.loads(sys.argv[2])
sys.path[:0] = [app]
sys.path.extend(sites)
spec = importlib.util.spec_from_file_location("handler", app + "/handler.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
out = asyncio.run(module.handler(json.loads(sys.stdin.read())))
import ocrclient
print(json.dumps({"out": out, "ocrclient": [str(p) for p in ocrclient.__path__],
                  "modules": sorted(m for m in sys.modules if m.startswith("ocrclient"))}))
"""


def _job(image: str) -> dict[str, Any]:
    if image == "runpod-trocr":
        return {"id": "t", "input": {"route": "/extract_text", "image": b64_png(page_png(lines=1)),
                                     "decoding_options": {"do_sample": True, "temperature": 0.3}}}  # fmt: skip
    body = {"max_tokens": 32, "temperature": 0.2, "min_p": 0.05,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": data_url(page_png())}},
                {"type": "text", "text": "OCR"}]}]}  # fmt: skip
    return {"id": "c", "input": {"openai_route": "/v1/chat/completions", "openai_input": body}}


@pytest.mark.parametrize("dockerfile", list(IMAGES), ids=lambda p: p.parent.name)
def test_image_app_serves_a_job_with_only_what_the_image_holds(
    dockerfile: Path, tmp_path: Path
) -> None:
    app = image_app(dockerfile, IMAGES[dockerfile], tmp_path)
    assert (app / "ocrclient" / "contracts" / "__init__.py").is_file()
    assert not (app / "ocrclient" / "__init__.py").exists()  # only the contracts, not the client
    # no site processing (-S): the editable install of the client is not importable, only the
    # third-party packages the image installs (taken from this interpreter's site-packages)
    sites = [p for p in sys.path if p.endswith("site-packages")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OCRWORKER_STANDIN="echo", TROCR_STANDIN="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _RUN_JOB, str(app), json.dumps(sites)],
        input=json.dumps(_job(dockerfile.parent.name)), capture_output=True, text=True,
        cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # a namespace: the contracts only. An editable install of this checkout leaves the profiles it
    # force-includes (site-packages/ocrclient/backends/*.toml, no code) as one more portion of
    # the namespace here; no portion but the image's may hold Python code.
    portions = {Path(p) for p in result["ocrclient"]}
    assert app / "ocrclient" in portions
    assert not [f for p in portions - {app / "ocrclient"} for f in p.rglob("*.py")], portions
    assert all(m == "ocrclient" or m.startswith("ocrclient.contracts") for m in result["modules"])
    out = result["out"]
    assert "error" not in out, out
    text = out["text"] if isinstance(out, dict) else out[0]["choices"][0]["message"]["content"]
    assert text.startswith(("line ", "[stand-in] image"))


def test_dockerignore_rules(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text(
        "*\n!deploy/\n!src/ocrclient/contracts/\n**/__pycache__\n"
    )
    assert dockerignored(tmp_path, "src/ocrclient/api.py")
    assert dockerignored(tmp_path, "tests/x.py")
    assert not dockerignored(tmp_path, "deploy/runpod-trocr/app.py")
    assert not dockerignored(tmp_path, "src/ocrclient/contracts/")
    assert not dockerignored(tmp_path, "src/ocrclient/contracts/chat.py")
    assert dockerignored(tmp_path, "deploy/ocrworker/__pycache__")
