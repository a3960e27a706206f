"""The openai SDK is an extra (``ocrclient[openai]``), imported only by the OpenAI transport.

Without it every other backend works and never imports it; the OpenAI-compatible backends stop
with one line naming the extra (exit 2, nothing sent or written).  With it, building the
transport starts the import in the background and the first request uses it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from .pdfgen import text_pdf

ROOT = Path(__file__).resolve().parents[1]
HINT = "pip install 'ocrclient[openai]'"


def _run(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``import openai`` fails (as without the extra)."""
    prelude = "import sys; sys.modules['openai'] = None\n"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    for name in [k for k in env if k.startswith(("OCRCLIENT_", "RUNPOD_", "VLLM_", "MODAL_"))]:
        env.pop(name)
    return subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_openai_is_an_extra_not_a_core_dependency() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("<")[0].split("=")[0].strip() for d in meta["dependencies"]]
    assert "openai" not in names
    assert any(d.startswith("openai") for d in meta["optional-dependencies"]["openai"])
    # the README's install command (a) and the suite's (b, .ci/run) include the extra
    readme = (ROOT / "README.md").read_text()
    assert "pip install '.[local,openai]'" in readme
    assert "'.[local,openai,dev]'" in readme and "'.[local,openai,dev]'" in (ROOT / ".ci" / "run").read_text()


def test_local_backend_converts_without_the_sdk(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [["Hello world"]], size=(0, 0, 300, 120))
    out = tmp_path / "out"
    run = _run(
        "from ocrclient.cli import main\n"
        f"sys.argv = ['ocr', 'convert', {str(pdf)!r}, '-o', {str(out)!r}, '--backend', 'local', '--no-cache', '-q']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "assert sys.modules['openai'] is None, 'something imported openai'\n"
        "sys.exit(code)\n"
    )
    assert run.returncode == 0, run.stderr
    assert (out / "d.md").exists() and (out / "d.json").exists()


def test_every_backend_but_the_openai_ones_builds_without_the_sdk() -> None:
    """The whole kind: every shipped profile loads without the SDK except those on the OpenAI
    transport, which fail with the one-line hint (a ConfigError, not an ImportError)."""
    run = _run(
        "from ocrclient.config import shipped_profiles_dir\n"
        "from ocrclient.errors import ConfigError\n"
        "from ocrclient.registry import load_backend\n"
        "for path in sorted(shipped_profiles_dir().glob('*.toml')):\n"
        "    kw = dict(base_url='http://127.0.0.1:9/v1', api_key='k', endpoint_id='e', model='m')\n"
        "    try:\n"
        "        load_backend(path.stem, **kw)\n"
        "        print(path.stem, 'ok')\n"
        "    except ConfigError as exc:\n"
        "        print(path.stem, 'config-error', str(exc).replace(chr(10), ' '))\n"
    )
    assert run.returncode == 0, run.stderr
    results = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    profiles = {p.stem: tomllib.loads(p.read_text()) for p in (ROOT / "backends").glob("*.toml")}
    assert set(results) == set(profiles)
    for name, profile in profiles.items():
        if profile.get("transport") == "openai":
            assert results[name].startswith("config-error") and HINT in results[name], (name, results[name])
        else:
            assert results[name] == "ok", (name, results[name])


def test_openai_backend_without_the_sdk_is_one_line_exit_2(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [["one"]], size=(0, 0, 200, 120))
    out = tmp_path / "out"
    run = _run(
        "from ocrclient.cli import main\n"
        f"sys.argv = ['ocr', 'convert', {str(pdf)!r}, '-o', {str(out)!r}, '--backend', 'openai',\n"
        "            '--base-url', 'http://127.0.0.1:9/v1', '--model', 'm', '--no-cache']\n"
        "main()\n"
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and HINT in lines[0], lines
    assert "Traceback" not in run.stderr and not out.exists()
