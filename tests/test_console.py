"""The ``ocr`` console script (:mod:`ocrclient.console`): the garbage collector is off while the
command starts and on again for the run (start-up's objects frozen first), on every way out.

Each case runs the script's ``main`` in a fresh interpreter, as the installed ``ocr`` does, with
a probe that records the collector's state when typer is imported (start-up), when each page
request is sent (the run) and after ``main`` returns or exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ocrclient.testing import OpenAISimulator

from .pdfgen import text_pdf

ROOT = Path(__file__).resolve().parents[1]

PROBE = """\
import gc, json, sys
seen = {"typer": None, "sends": [], "frozen": [], "after": None, "code": None}
def hook(event, args):
    if event == "import" and args[0] == "typer" and seen["typer"] is None:
        seen["typer"] = gc.isenabled()
sys.addaudithook(hook)
import httpx
real_send = httpx.AsyncClient.send
async def send(self, request, **kw):
    seen["sends"].append(gc.isenabled())
    seen["frozen"].append(gc.get_freeze_count())
    return await real_send(self, request, **kw)
httpx.AsyncClient.send = send
from ocrclient.console import main
sys.argv = ["ocr", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    seen["code"] = exc.code
seen["after"] = gc.isenabled()
print("PROBE " + json.dumps(seen))
"""


def _probe(tmp_path: Path, *args: str, **extra_env: str) -> dict[str, object]:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OCRCLIENT_", "VLLM_", "OPENAI_"))}
    env.update(NO_COLOR="1", OCRCLIENT_CACHE_DIR=str(tmp_path / "cache"), OCRCLIENT_CONFIG_DIR=str(tmp_path / "cfg"), **extra_env)
    run = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=120)
    line = next((ln for ln in run.stdout.splitlines() if ln.startswith("PROBE ")), None)
    assert line is not None, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    return dict(json.loads(line[len("PROBE ") :]))


def test_the_installed_ocr_script_is_the_console_entry() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"ocr": "ocrclient.console:main"}


def test_convert_starts_without_collection_and_runs_with_it(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [["one"], ["two"], ["three"]], size=(0, 0, 200, 120))
    with OpenAISimulator() as sim:
        seen = _probe(tmp_path, "convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", "openai",
                      "--base-url", sim.base_url, "--model", sim.model, "--api-key-env", "SIM_KEY",
                      "--no-cache", "-q", SIM_KEY=str(sim.api_key))  # fmt: skip
    assert seen["typer"] is False  # the command line was imported with the collector off
    sends = seen["sends"]
    assert isinstance(sends, list) and len(sends) >= 3 and all(sends)  # every request: on
    # start-up's objects were frozen before collection came back (else the first collection
    # walks all of them, on the way to the first request)
    frozen = seen["frozen"]
    assert isinstance(frozen, list) and min(frozen) > 10_000, frozen
    assert seen["code"] in (None, 0) and seen["after"] is True
    assert (tmp_path / "out" / "doc.md").exists()


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["backends"], ["convert", "/no/such/file.pdf", "-o", "out"], ["convert"], ["nonsense"]],
    ids=["version", "help", "backends", "missing-input", "no-input", "unknown-command"],
)
def test_every_way_out_leaves_collection_on(tmp_path: Path, args: list[str]) -> None:
    seen = _probe(tmp_path, *args)
    assert seen["typer"] is False and seen["after"] is True, seen
    if args[0] == "convert":
        assert seen["code"] == 2 and seen["sends"] == [], seen


def test_python_dash_m_ocrclient_is_the_same_command(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "ocrclient", "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("ocrclient "), (run.stdout, run.stderr)


def test_importing_the_package_or_the_cli_leaves_collection_alone() -> None:
    code = "import gc, ocrclient, ocrclient.cli, ocrclient.console; print(gc.isenabled())"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "True", run.stderr


# -- the way out -------------------------------------------------------------------------------

#: exit handlers registered before and while the command runs; PYTHONVERBOSE=1 makes the
#: interpreter's teardown say "# cleanup[...]" on stderr
SITECUSTOMIZE = """\
import atexit, os, sys
if os.environ.get("PRE_REGISTER"):  # a handler registered before the command starts
    atexit.register(lambda: os.write(2, b"[early handler ran]"))
def _hook(event, args):
    if event == "import" and args[0] == "typer":  # one registered while the command runs
        atexit.register(lambda: os.write(2, b"[late handler ran]"))
    if event == "import" and args[0] == "ocrclient.cli" and os.environ.get("CTRL_C_ON_THE_WAY_OUT"):
        def interrupted():
            raise KeyboardInterrupt
        sys.modules["ocrclient.console"].start_collecting = interrupted  # (main's last step)
sys.addaudithook(_hook)
"""

TORN_DOWN = "\n# cleanup["

#: what pip writes for ``[project.scripts] ocr = "ocrclient.console:main"``
OCR_SCRIPT = """\
import re
import sys
from ocrclient.console import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""


def _run_python(tmp_path: Path, *args: str, commands: str | None = None, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` with :data:`SITECUSTOMIZE` loaded and ``PYTHONVERBOSE=1``."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "OCRCLIENT_", "VLLM_", "OPENAI_"))}
    env.update(NO_COLOR="1", OCRCLIENT_CACHE_DIR=str(tmp_path / "cache"), OCRCLIENT_CONFIG_DIR=str(tmp_path / "cfg"),
               PYTHONPATH=os.pathsep.join([str(site), str(ROOT / "src")]), PYTHONVERBOSE="1", **extra_env)  # fmt: skip
    return subprocess.run([sys.executable, *args], input=commands, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _run_ocr(tmp_path: Path, how: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "ocr").write_text(OCR_SCRIPT)
    program = ["-m", "ocrclient"] if how == "-m" else [str(tmp_path / "ocr")]
    return _run_python(tmp_path, *program, *args, **extra_env)


WAYS_OUT = {
    "version": (["--version"], 0),
    "help": (["--help"], 0),
    "backends": (["backends"], 0),
    "missing input": (["convert", "/no/such/file.pdf", "-o", "out"], 2),
    "no input": (["convert"], 2),
    "unknown command": (["nonsense"], 2),
}


@pytest.mark.parametrize("how", ["-m", "ocr script"])
@pytest.mark.parametrize("way", list(WAYS_OUT))
def test_the_command_leaves_without_tearing_down_and_keeps_its_exit_status_and_output(
    tmp_path: Path, how: str, way: str
) -> None:
    """Every way out of ``python -m ocrclient`` and of the ``ocr`` script pip writes: the same
    exit status and the same stdout as an interpreter that tears itself down, every exit handler
    registered while the command ran still runs, and the teardown itself is skipped; with a
    handler registered before the command, nothing is skipped (that handler would be)."""
    args, status = WAYS_OUT[way]
    fast = _run_ocr(tmp_path, how, *args)
    slow = _run_ocr(tmp_path, how, *args, PRE_REGISTER="1")
    assert fast.returncode == slow.returncode == status, (fast.stderr[-800:], slow.stderr[-800:])
    assert fast.stdout == slow.stdout and (fast.stdout or status), fast.stdout
    assert "Traceback" not in fast.stderr + slow.stderr
    assert "[late handler ran]" in fast.stderr and TORN_DOWN not in fast.stderr, fast.stderr[-800:]
    assert "[early handler ran]" in slow.stderr and TORN_DOWN in slow.stderr, slow.stderr[-800:]
    assert "[late handler ran]" in slow.stderr


def test_a_conversion_leaves_every_output_whole_and_exits_without_tearing_down(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "doc.pdf", [[f"page {i}"] for i in range(5)], size=(0, 0, 200, 120))
    common = ["--backend", "openai", "--model", "m", "--api-key-env", "SIM_KEY", "--no-cache"]
    with OpenAISimulator(model="m") as sim:
        key = str(sim.api_key)
        done = _run_ocr(tmp_path, "-m", "convert", str(pdf), "-o", str(tmp_path / "out"), "--format", "md,json,txt",
                        "--base-url", sim.base_url, *common, SIM_KEY=key)  # fmt: skip
        piped = _run_ocr(tmp_path, "ocr script", "convert", str(pdf), "--base-url", sim.base_url, *common, "-q", SIM_KEY=key)
    assert done.returncode == 0 and piped.returncode == 0, (done.stderr[-2000:], piped.stderr[-2000:])
    assert TORN_DOWN not in done.stderr + piped.stderr and "5 pages" in done.stderr, done.stderr[-800:]
    doc = json.loads((tmp_path / "out" / "doc.json").read_text())
    assert [p["status"] for p in doc["pages"]] == ["ok"] * 5
    md, txt = (tmp_path / "out" / "doc.md").read_text(), (tmp_path / "out" / "doc.txt").read_text()
    assert all(p["markdown"].strip() in md for p in doc["pages"]) and txt.strip()
    assert piped.stdout == md, (piped.stdout[-300:], md[-300:])  # markdown to stdout, whole


def test_a_ctrl_c_on_the_way_out_still_ends_the_process_by_sigint(tmp_path: Path) -> None:
    """The command finished (status 2) but a Ctrl-C came after it: the process ends as the
    interpreter ends it for an uncaught KeyboardInterrupt, by SIGINT, not with the status."""
    import signal

    done = _run_ocr(tmp_path, "-m", "convert", CTRL_C_ON_THE_WAY_OUT="1")
    assert done.returncode == -signal.SIGINT, (done.returncode, done.stderr[-800:])
    assert "KeyboardInterrupt" in done.stderr and TORN_DOWN in done.stderr


@pytest.mark.parametrize("harness", ["script", "runpy", "pdb"])
def test_a_harness_that_runs_the_command_and_goes_on_keeps_its_own_exit(tmp_path: Path, harness: str) -> None:
    """A caller that runs the command and may go on after it: a script calling ``main()``,
    runpy from a script, pdb (which runs ``-m ocrclient`` in the program's own ``__main__``).
    The command's ``SystemExit`` is the caller's to catch, and the process ends as the caller
    says, torn down as usual."""
    run_it = {
        "script": "from ocrclient.console import main\n    main()",
        "runpy": "import runpy\n    runpy.run_module('ocrclient', run_name='__main__', alter_sys=True)",
    }
    script = tmp_path / "harness.py"
    script.write_text(
        "import sys\nsys.argv = ['ocr', 'nonsense']\n"
        f"try:\n    {run_it.get(harness, '')}\n"
        "except SystemExit as exc:\n    print('command said', exc.code)\nsys.exit(5)\n"
    )
    if harness != "pdb":
        argv, commands, status, said = [str(script)], None, 5, "command said 2"
    else:  # continue to the end, where pdb reports the exit and restarts; then quit
        argv, commands, status, said = ["-m", "pdb", "-m", "ocrclient", "nonsense"], "c\nq\n", 0, "exited via sys.exit()"
    done = _run_python(tmp_path, *argv, commands=commands)
    assert done.returncode == status and said in done.stdout, (done.returncode, done.stdout[-800:], done.stderr[-800:])
    assert TORN_DOWN in done.stderr


@pytest.mark.parametrize(
    "code, status", [(None, 0), (0, 0), (3, 3), (-1, -1), (True, 1), ("message", 1), (2**31 - 1, 2**31 - 1), (2**31, None), (-(2**31) - 1, None)]
)
def test_the_exit_status_of_every_kind_of_code(code: object, status: int | None) -> None:
    """The status ``os._exit`` is given for ``SystemExit(code)``: the interpreter's own, and
    ``None`` (the interpreter's exit, not this one) where ``os._exit`` would overflow."""
    from ocrclient.console import _exit_code

    assert _exit_code(code) == status


def test_ocr_never_imports_httpxs_own_command_line(tmp_path: Path) -> None:
    """httpx imports its command line (click, pygments' lexers, rich's syntax and tables) when
    click is installed, ~30-100 ms before the first request; the ``ocr`` process does not, and a
    conversion through httpx still works.  Importing the package leaves httpx as it is."""
    import importlib.util

    if importlib.util.find_spec("click") is None:
        pytest.skip("httpx imports its command line only beside click")
    pdf = text_pdf(tmp_path / "a.pdf", [["one"]])
    with OpenAISimulator(model="m") as sim:
        run = subprocess.run([sys.executable, "-X", "importtime", "-m", "ocrclient", "convert", str(pdf), "-o", str(tmp_path / "out"),
                              "--backend", "openai", "--base-url", sim.base_url, "--model", "m", "--dialect", "plain", "--no-cache", "-q"],
                             capture_output=True, text=True, env={**os.environ, "OCRCLIENT_API_KEY": sim.api_key}, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    assert "httpx" in imported and "pygments.lexers" not in imported and "rich.syntax" not in imported
    assert (tmp_path / "out" / "a.md").read_text(encoding="utf-8").strip()
    library = subprocess.run([sys.executable, "-c", "import ocrclient, httpx, sys; print('httpx._main' in sys.modules)"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert library.stdout.strip() == "True", library.stderr
