"""The OpenAI-compatible path needs no SDK: it sends with httpx and reads the reply itself.

The ``openai`` package is neither a core dependency nor in a user-facing extra (the ``openai``
extra is kept, empty, for old install lines); in an interpreter where ``import openai`` fails,
every shipped profile builds and ``ocr convert`` over the OpenAI transport converts a document
against the simulator, streamed and not, and nothing imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from ocrclient.testing import OpenAISimulator

from .pdfgen import text_pdf

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where ``import openai`` fails."""
    prelude = "import sys; sys.modules['openai'] = None\n"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    for name in [k for k in env if k.startswith(("OCRCLIENT_", "RUNPOD_", "VLLM_", "MODAL_"))]:
        env.pop(name)
    return subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_openai_is_no_dependency_of_the_client() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    for group, deps in [("core", meta["dependencies"]), *((k, v) for k, v in extras.items() if k != "dev")]:
        names = [d.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip() for d in deps]
        assert "openai" not in names, group
    assert extras["openai"] == []  # old `ocrclient[openai]` install lines still resolve


def test_ocr_convert_over_the_openai_transport_never_imports_the_sdk(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"], ["three"]], size=(0, 0, 200, 120))
    out = tmp_path / "out"
    with OpenAISimulator(api_key="sk-no-sdk-24680", model="sim/ocr-model") as sim:
        run = _run(
            "import os\n"
            "os.environ['OCRCLIENT_API_KEY'] = 'sk-no-sdk-24680'\n"
            "from ocrclient.cli import main\n"
            f"sys.argv = ['ocr', 'convert', {str(pdf)!r}, '-o', {str(out)!r}, '--backend', 'openai',\n"
            f"            '--base-url', {sim.base_url!r}, '--model', 'sim/ocr-model', '--no-cache', '-q']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "assert sys.modules['openai'] is None, 'something imported openai'\n"
            "sys.exit(code)\n"
        )
        streamed = sim.streamed
    assert run.returncode == 0, run.stderr
    pages = json.loads((out / "d.json").read_text())["pages"]
    assert [p["status"] for p in pages] == ["ok"] * 3 and streamed == 3


def test_a_non_streamed_conversion_never_imports_the_sdk(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "d.pdf", [["one"], ["two"]], size=(0, 0, 200, 120))
    with OpenAISimulator(api_key="sk-no-sdk-13579", model="sim/ocr-model") as sim:
        run = _run(
            "import ocrclient\n"
            f"doc = ocrclient.convert({str(pdf)!r}, backend='openai', base_url={sim.base_url!r},\n"
            "                       api_key='sk-no-sdk-13579', model='sim/ocr-model', cache=False,\n"
            "                       transport_options={'stream': False})\n"
            "assert sys.modules['openai'] is None, 'something imported openai'\n"
            "print(' '.join(p.status for p in doc.pages))\n"
        )
        sent = sim.non_streamed
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["ok", "ok"] and sent == 2


def test_every_shipped_profile_builds_without_the_sdk() -> None:
    """The whole kind: every shipped profile, the OpenAI-compatible ones included."""
    run = _run(
        "from ocrclient.config import resolve_config, shipped_profiles_dir\n"
        "from ocrclient.registry import load_backend, transport_class\n"
        "from ocrclient.transports.base import unread_settings\n"
        "for path in sorted(shipped_profiles_dir().glob('*.toml')):\n"
        "    kw = dict(base_url='http://127.0.0.1:9/v1', api_key='k', endpoint_id='e', model='m')\n"
        "    unread = unread_settings(transport_class(resolve_config(path.stem).transport), kw)\n"
        "    load_backend(path.stem, **{k: v for k, v in kw.items() if k not in unread})\n"
        "    print(path.stem)\n"
        "assert sys.modules['openai'] is None\n"
    )
    assert run.returncode == 0, run.stderr
    assert set(run.stdout.split()) == {p.stem for p in (ROOT / "backends").glob("*.toml")}
