"""A stopped run does not wait for the page the embedded engine is reading.

The engine cannot be interrupted mid-page, and a page can take long: page 2 of the corpus'
``skinnypage.pdf`` (14,295 pt tall) takes about 25 s.  Its call ran on the event loop's default
executor, which ``asyncio.run`` waits for as it ends and whose threads the interpreter joins at
exit: Ctrl-C took 24 s to end ``ocr convert``, and ``Client.close()`` as long.  The engine now
reads in a thread the stopped run leaves behind (``loops.left_behind_on_stop``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import corpus


def test_ctrl_c_ends_a_local_run_at_once_while_a_long_page_is_read(tmp_path: Path) -> None:
    pdf = corpus("gnarly", "skinnypage.pdf")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocrclient", "convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", "local",
         "--no-cache", "--no-progress", "--pages", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    time.sleep(4.0)  # (the engine loaded, the tall page being read: it takes about 25 s)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    waited = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert waited < 3.0, f"exited {waited:.1f} s after Ctrl-C"
    assert "interrupted: wrote 0 document(s)" in err and "1 had no page finished" in err, err
    assert "Traceback" not in err, err
    assert not (tmp_path / "out" / "skinnypage.json").exists()  # no page finished: nothing to write


_SCRIPT = """
import sys, threading, time
import ocrclient
client = ocrclient.Client("local", cache=False)
caught = []
def work():
    try:
        client.convert(sys.argv[1])
    except BaseException as exc:
        caught.append(type(exc).__name__)
worker = threading.Thread(target=work)
worker.start()
while not any(t.name == "ocrclient-left-behind-on-stop" for t in threading.enumerate()):
    time.sleep(0.05)  # (the engine's thread: it loads the engine, then reads the strip)
time.sleep(1.5)
started = time.monotonic()
client.close()
worker.join(30)
print(f"closed in {time.monotonic() - started:.2f} s; caught {caught}", flush=True)
"""


def _tall_strip(path: Path, height: int = 2000) -> Path:
    """A 900 x ``height`` px strip of ~55 printed lines: the engine reads it in tiles for
    several seconds (a few more than the 1.5 s the script gives it before closing)."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (900, height), 255)
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=22)
    for i, y in enumerate(range(20, height - 40, 36)):
        draw.text((20, y), f"line {i} of a long strip read by the embedded engine", fill=0, font=font)
    img.save(path)
    return path


def test_closing_a_local_client_does_not_wait_for_the_page_being_read(tmp_path: Path) -> None:
    """``Client.close()`` returns at once (the call gets ``CancelledRunError``); the script then
    ends normally, waiting at exit for the engine's thread (one still in native code while the
    interpreter tears down aborted the process: "terminate called", exit 134)."""
    strip = _tall_strip(tmp_path / "strip.png")
    run = subprocess.run([sys.executable, "-c", _SCRIPT, str(strip)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "terminate called" not in run.stderr
    closed = float(run.stdout.split("closed in ")[1].split(" s")[0])
    assert closed < 3.0 and "caught ['CancelledRunError']" in run.stdout, run.stdout
