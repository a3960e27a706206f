"""Bad documents through the real ``ocr convert`` command (issue 8, item 3).

Every case runs ``python -m ocrclient.cli convert <input> -o <tmp>`` as a subprocess, the way a
user meets it, and checks the CLI contract:

* unusable input -> exit 2 and exactly ONE line on stderr, no traceback, nothing sent;
* convertible input -> exit 0/1 and a JSON whose pages are exactly the requested pages (none
  dropped), each failed page present with its error, exit 1 iff a page failed.

Document-level cases use the simulated OpenAI-compatible server (``plain`` dialect) so nothing
slow runs; a few real corpus pages go through the default local engine at ``--dpi 50``.  Every
PDF of the shared corpus is opened and its first page streamed in-process.

The generators below (:func:`build_pdf`, :func:`many_pages_pdf`, ...) are reused by
``benchmarks/bad_documents.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from .conftest import CORPUS, ROOT, require_corpus

CORPUS_PDFS = sorted((CORPUS / "gnarly").glob("*.pdf")) + sorted(
    (CORPUS / "olmocr-bench-sample" / "pdfs").rglob("*.pdf")
)

# ---------------------------------------------------------------------------------------------
# generators (plain bytes; no dependency beyond the stdlib and Pillow)
# ---------------------------------------------------------------------------------------------

#: the 32-byte padding string of the PDF standard security handler (PDF 1.7, 7.6.3.3)
_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    box = list(range(256))
    j = 0
    for i in range(256):
        j = (j + box[i] + key[i % len(key)]) & 0xFF
        box[i], box[j] = box[j], box[i]
    out = bytearray(len(data))
    i = j = 0
    for n, byte in enumerate(data):
        i = (i + 1) & 0xFF
        j = (j + box[i]) & 0xFF
        box[i], box[j] = box[j], box[i]
        out[n] = byte ^ box[(box[i] + box[j]) & 0xFF]
    return bytes(out)


def _content(text: str, height: float) -> bytes:
    y = max(10, int(height) - 60)
    return b"BT /F1 18 Tf 36 %d Td (%s) Tj ET\n0 0 0 rg 36 36 80 40 re f\n" % (
        y,
        text.encode("latin-1"),
    )


def build_pdf(
    sizes: list[tuple[float, float]],
    *,
    user_password: str | None = None,
    shared_content: bool = False,
    texts: list[str] | None = None,
) -> bytes:
    """A small valid PDF, one text line per page ("Page N", or ``texts[i]``), pages of the given
    (w, h) sizes in points.

    ``shared_content`` makes every page point at ONE content stream (cheap 10,000-page files);
    ``user_password`` encrypts it with the standard security handler, RC4 40-bit (V1 R2).
    """
    objs: dict[int, bytes] = {3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"}
    streams: dict[int, bytes] = {}
    kids: list[int] = []
    num = 4
    if shared_content:
        streams[num] = _content("Shared page", 792)
        shared = num
        num += 1
    for i, (w, h) in enumerate(sizes):
        if shared_content:
            contents = shared
        else:
            streams[num + 1] = _content(texts[i] if texts else f"Page {i + 1}", h)
            contents = num + 1
        objs[num] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % (f"{w:g}".encode(), f"{h:g}".encode(), contents)
        )
        kids.append(num)
        num += 1 if shared_content else 2
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    file_id = hashlib.md5(repr((sizes, user_password)).encode()).digest()
    key: bytes | None = None
    encrypt_ref = b""
    if user_password is not None:
        perms = struct.pack("<i", -4)
        padded_user = (user_password.encode("latin-1") + _PAD)[:32]
        # owner password = a different secret; O = RC4(md5(owner padded)[:5], user padded)
        owner_key = hashlib.md5((b"not-the-user-password" + _PAD)[:32]).digest()[:5]
        o_entry = _rc4(owner_key, padded_user)
        key = hashlib.md5(padded_user + o_entry + perms + file_id).digest()[:5]
        u_entry = _rc4(key, _PAD)
        objs[num] = b"<< /Filter /Standard /V 1 /R 2 /Length 40 /O <%s> /U <%s> /P -4 >>" % (
            o_entry.hex().encode(),
            u_entry.hex().encode(),
        )
        encrypt_ref = b" /Encrypt %d 0 R" % num
    for n, data in streams.items():
        if key is not None:
            obj_key = hashlib.md5(key + n.to_bytes(3, "little") + b"\x00\x00").digest()[:10]
            data = _rc4(obj_key, data)
        objs[n] = b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for n in sorted(objs):
        offsets[n] = len(out)
        out += b"%d 0 obj\n" % n + objs[n] + b"\nendobj\n"
    size = max(objs) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for n in range(1, size):
        out += b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R /ID [<%s><%s>]%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        file_id.hex().encode(),
        file_id.hex().encode(),
        encrypt_ref,
        xref,
    )
    return bytes(out)


def many_pages_pdf(n: int = 10_000) -> bytes:
    """``n`` US-letter pages sharing one content stream (about 100 bytes per page)."""
    return build_pdf([(612, 792)] * n, shared_content=True)


def flip_xref(data: bytes) -> bytes:
    """Flip bits in every xref offset (the table points into the middle of objects) and in the
    ``startxref`` number, keeping the file's length."""
    start = data.rindex(b"xref\n0 ")
    end = data.index(b"trailer", start)
    body = bytearray(data)
    for m in re.finditer(rb"(\d{10}) 00000 n", data[start:end]):
        pos = start + m.start() + 8  # the tens digit of the offset
        body[pos] ^= 0x03  # '0'<->'3', '1'<->'2', ...
    sx = data.rindex(b"startxref\n") + len(b"startxref\n")
    body[sx] ^= 0x04
    return bytes(body)


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (250, 250, 250)).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int] = (400, 300)) -> bytes:
    buf = io.BytesIO()
    img = Image.effect_noise(size, 60).convert("RGB")
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 200_000, height: int = 200_000) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def bad_png_header() -> bytes:
    """PNG magic followed by garbage."""
    return b"\x89PNG\r\n\x1a\n" + hashlib.sha256(b"garbage").digest() * 16


# ---------------------------------------------------------------------------------------------
# running the CLI
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def ocr(args: list[str], env: dict[str, str] | None = None, timeout: float = 60, cwd: Path | None = None) -> Run:
    """``python -m ocrclient.cli ARGS`` in a subprocess (no progress bar, no colour)."""
    full_env = dict(os.environ)
    full_env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ocrclient.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=str(cwd or ROOT),
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - t0)


def assert_unusable(run: Run, *needles: str) -> str:
    """Exit 2, exactly one stderr line, no traceback; returns the line."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code == 2, (run.code, run.stderr)
    assert len(run.lines) == 1, run.stderr
    line = run.lines[0]
    assert line.startswith("error: "), line
    for needle in needles:
        assert needle.lower() in line.lower(), line
    return line


def assert_converted(
    run: Run, out: Path, stem: str, expected_pages: list[int], *, only_doc: bool = True
) -> dict:
    """Exit 0/1, a JSON with exactly the requested pages; when this is the run's only document,
    exit 1 iff one of its pages failed (else a failed page at least forces exit 1)."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code in (0, 1), (run.code, run.stderr)
    doc = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
    assert [p["page"] for p in doc["pages"]] == expected_pages
    failed = [p for p in doc["pages"] if p["status"] == "failed"]
    for p in failed:
        assert p["error"] and p["error"]["message"], p
    for p in doc["pages"]:
        if p["status"] != "failed":
            assert p["markdown"].strip(), p  # no silently empty page from the echo model
    if only_doc:
        assert (run.code == 1) == bool(failed), (run.code, [p["status"] for p in doc["pages"]])
    elif failed:
        assert run.code == 1
    assert (out / f"{stem}.md").is_file()
    return doc


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[object]:
    from ocrclient.testing import OpenAISimulator

    with OpenAISimulator(model="sim") as server:
        yield server


def sim_convert(
    sim: object, work: Path, inp: str | Path, *extra: str, out: Path | None = None
) -> tuple[Run, Path]:
    """``ocr convert INP -o OUT`` through the simulator (plain dialect, --dpi 50)."""
    out = out or work / "out"
    env = {
        "OCRCLIENT_API_KEY": sim.api_key,  # type: ignore[attr-defined]
        "OCRCLIENT_CACHE_DIR": str(work / "cache"),
    }
    args = ["convert", str(inp), "-o", str(out), "--backend", "openai", "--base-url", sim.base_url]  # type: ignore[attr-defined]
    args += ["--model", "sim", "--dpi", "50", "--no-progress", *extra]
    return ocr(args, env), out


def run_many(sim: object, work: Path, cases: dict[str, list[str]]) -> dict[str, tuple[Run, Path]]:
    """Run several conversions at once (each in its own subprocess and output dir)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(item: tuple[int, list[str]]) -> tuple[Run, Path]:
        i, argv = item
        return sim_convert(sim, work / f"case{i}", *argv)

    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(one, enumerate(cases.values())))
    return dict(zip(cases, results, strict=True))


@pytest.fixture
def via_sim(sim: object, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``convert(input, *extra)`` through the simulator; returns (Run, out dir)."""

    def convert(inp: str | Path, *extra: str) -> tuple[Run, Path]:
        return sim_convert(sim, tmp_path, inp, *extra)

    return convert


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------
# unusable inputs: exit 2, one line, nothing sent
# ---------------------------------------------------------------------------------------------

_GOOD3 = build_pdf([(612, 792)] * 3)


def _unusable_cases(tmp: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    """name -> (argv after ``convert``'s input is placed first, needles in the error line)."""
    empty_dir = tmp / "nodocs"
    _write(empty_dir / "notes.txt", b"no documents here\n")
    (empty_dir / "sub").mkdir()
    cases: dict[str, tuple[list[str], tuple[str, ...]]] = {
        "missing file": ([str(tmp / "nope.pdf")], ("no such file",)),
        "empty file": ([str(_write(tmp / "empty.pdf", b""))], ("empty",)),
        "text named .pdf": (
            [str(_write(tmp / "notes.pdf", b"Dear diary,\nthis is not a PDF.\n" * 20))],
            ("not a PDF", "text"),
        ),
        "zero pages": ([str(_write(tmp / "zero.pdf", build_pdf([])))], ("no pages",)),
        "encrypted, no password": (
            [
                str(
                    _write(
                        tmp / "locked.pdf", build_pdf([(612, 792)] * 2, user_password="open-sesame")
                    )
                )
            ],
            ("encrypted", "--password"),
        ),
        "encrypted, wrong password": (
            [
                str(
                    _write(
                        tmp / "locked2.pdf", build_pdf([(612, 792)], user_password="open-sesame")
                    )
                ),
                "--password",
                "hunter2-wrong",
            ],
            ("wrong password",),
        ),
        "garbage after %PDF header": (
            [str(_write(tmp / "junk.pdf", b"%PDF-1.7\n" + hashlib.sha512(b"x").digest() * 8))],
            ("corrupt",),
        ),
        "PNG magic + garbage": ([str(_write(tmp / "bogus.png", bad_png_header()))], ("PNG",)),
        "PNG decompression bomb": (
            [str(_write(tmp / "bomb.png", png_bomb()))],
            ("decompression bomb",),
        ),
        "directory with no documents": ([str(empty_dir)], ("no PDF or image",)),
        "glob matching nothing": ([str(tmp / "*.nothing-here")], ("matches no",)),
        "page past the end": (
            [str(_write(tmp / "three.pdf", _GOOD3)), "--pages", "4"],
            ("past the end", "3 pages", "three.pdf"),
        ),
        "page range past the end": (
            [str(_write(tmp / "three2.pdf", _GOOD3)), "--pages", "2-9"],
            ("past the end", "three2.pdf"),
        ),
        "open range past the end": (  # (it said '9-' runs backwards)
            [str(_write(tmp / "three5.pdf", _GOOD3)), "--pages", "9-"],
            ("past the end", "3 pages", "three5.pdf"),
        ),
        "page zero": ([str(_write(tmp / "three3.pdf", _GOOD3)), "--pages", "0"], ("start at 1",)),
        "backwards range": (
            [str(_write(tmp / "three4.pdf", _GOOD3)), "--pages", "3-1"],
            ("backwards",),  # (a range that cannot be read names no input)
        ),
        # settings a user can get wrong: one line each too (they were tracebacks, exit 1)
        "render dpi zero": ([str(_write(tmp / "s1.pdf", _GOOD3)), "--dpi", "0"], ("dpi must be positive",)),
        "render dpi negative": ([str(_write(tmp / "s2.pdf", _GOOD3)), "--dpi", "-5"], ("dpi must be positive",)),
        "unknown image format": ([str(_write(tmp / "s3.pdf", _GOOD3)), "--image-format", "gif"], ("unknown image format",)),
        "-o names a file": ([str(_write(tmp / "s4.pdf", _GOOD3)), "-o", str(_write(tmp / "taken", b"x"))],
                            ("exists and is not a directory",)),
        "-o cannot be made": ([str(_write(tmp / "s5.pdf", _GOOD3)), "-o", "/proc/no-such/out"], ("cannot make the output folder",)),
        "profile that is not text": ([str(_write(tmp / "s6.pdf", _GOOD3)), "--backend", str(_write(tmp / "p.toml", _GOOD3))],
                                     ("not a toml profile",)),
        "base URL that is no URL": ([str(_write(tmp / "s7.pdf", _GOOD3)), "--base-url", "notaurl"], ("not an http(s) url",)),
        "base URL of another scheme": ([str(_write(tmp / "s8.pdf", _GOOD3)), "--base-url", "ftp://x/y"], ("not an http(s) url",)),
        # (httpx raised InvalidURL with a traceback; a port out of range failed every page four times)
        "base URL host no IP address": ([str(_write(tmp / "s9.pdf", _GOOD3)), "--base-url", "http://256.1.1.1/v2"],
                                        ("is not an ip address",)),
        "base URL port out of range": ([str(_write(tmp / "s10.pdf", _GOOD3)), "--base-url", "http://127.0.0.1:99999/v2"],
                                       ("port is not a number",)),
        "base URL port zero": ([str(_write(tmp / "s11.pdf", _GOOD3)), "--base-url", "http://127.0.0.1:0/v2"],
                               ("port is not a number",)),
        # (one bad input among good ones is one error line and the good ones go on, exit 1:
        # tests/test_unusable_in_batch.py)
    }
    return cases


_UNUSABLE = [
    "missing file",
    "empty file",
    "text named .pdf",
    "zero pages",
    "encrypted, no password",
    "encrypted, wrong password",
    "garbage after %PDF header",
    "PNG magic + garbage",
    "PNG decompression bomb",
    "directory with no documents",
    "glob matching nothing",
    "page past the end",
    "page range past the end",
    "open range past the end",
    "page zero",
    "backwards range",
    "render dpi zero",
    "render dpi negative",
    "unknown image format",
    "-o names a file",
    "-o cannot be made",
    "profile that is not text",
    "base URL that is no URL",
    "base URL of another scheme",
    "base URL host no IP address",
    "base URL port out of range",
    "base URL port zero",
]


@pytest.fixture(scope="module")
def unusable_runs(sim, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("unusable")
    cases = _unusable_cases(work)
    before = sum(sim.requests.values())
    runs = run_many(sim, work, {name: argv for name, (argv, _) in cases.items()})
    sent = sum(sim.requests.values()) - before
    return {name: (runs[name], needles) for name, (_, needles) in cases.items()}, sent


@pytest.mark.parametrize("case", _UNUSABLE)
def test_unusable_input_exits_2_with_one_line(case: str, unusable_runs) -> None:  # type: ignore[no-untyped-def]
    runs, sent = unusable_runs
    (run, out), needles = runs[case]
    line = assert_unusable(run, *needles)
    assert sent == 0, "nothing may be sent for an unusable input"
    assert not out.exists() or not any(out.rglob("*.json")), "no output for an unusable input"
    assert "hunter2-wrong" not in run.stderr + run.stdout  # a password is never echoed
    assert len(line) < 400, line


def test_password_fixture_is_really_encrypted_and_opens_with_the_password(
    tmp_path: Path, via_sim: Any
) -> None:
    """The encrypted fixture is a real one: the right password converts every page."""
    f = _write(tmp_path / "locked.pdf", build_pdf([(612, 792)] * 2, user_password="open-sesame"))
    assert b"Page 1" not in f.read_bytes()  # the content stream is encrypted on disk
    run, out = via_sim(f, "--password", "open-sesame")
    doc = assert_converted(run, out, "locked", [1, 2])
    assert run.code == 0 and all(p["status"] == "ok" for p in doc["pages"])


# ---------------------------------------------------------------------------------------------
# damaged but maybe repairable: the CLI agrees with the page stream, either way
# ---------------------------------------------------------------------------------------------


def _damaged(tmp: Path) -> dict[str, Path]:
    good = build_pdf([(612, 792)] * 3)
    xref = good.rindex(b"xref\n")
    cuts = {
        "cut at 10%": len(good) // 10,
        "cut at 50%": len(good) // 2,
        "cut before xref": xref,
        "cut in xref": xref + 40,
        "cut before %%EOF": len(good) - 7,
    }
    files = {
        name: _write(tmp / f"trunc{i}.pdf", good[:at]) for i, (name, at) in enumerate(cuts.items())
    }
    files["bit-flipped xref"] = _write(tmp / "flipped.pdf", flip_xref(good))
    jpg = jpeg_bytes()
    files["truncated JPEG"] = _write(tmp / "cut.jpg", jpg[: len(jpg) // 2])
    files["truncated JPEG header only"] = _write(tmp / "cut2.jpg", jpg[:30])
    return files


@pytest.fixture(scope="module")
def damaged_runs(sim, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Each damaged file: what the page stream makes of it in-process (page count, or None when
    it refuses it) and what the CLI did with it."""
    from ocrclient.errors import InputError
    from ocrclient.pages import open_sources

    work = tmp_path_factory.mktemp("damaged")
    files = _damaged(work)
    expected: dict[str, list[int] | None] = {}
    for name, path in files.items():
        try:
            [src] = open_sources([path])
            expected[name] = list(range(1, src.page_count + 1))
        except InputError:
            expected[name] = None
    runs = run_many(sim, work, {name: [str(path)] for name, path in files.items()})
    return {name: (files[name], expected[name], runs[name]) for name in files}


@pytest.mark.parametrize(
    "case",
    [
        "cut at 10%",
        "cut at 50%",
        "cut before xref",
        "cut in xref",
        "cut before %%EOF",
        "bit-flipped xref",
        "truncated JPEG",
        "truncated JPEG header only",
    ],
)
def test_damaged_file_is_refused_or_converted_whole(case: str, damaged_runs) -> None:  # type: ignore[no-untyped-def]
    path, expected, (run, out) = damaged_runs[case]
    if expected is None:
        assert_unusable(run, path.name)
    else:
        assert_converted(run, out, path.stem, expected)


# ---------------------------------------------------------------------------------------------
# odd but valid documents: converted, every requested page present
# ---------------------------------------------------------------------------------------------


def test_zero_size_and_huge_pages(tmp_path: Path, via_sim) -> None:  # type: ignore[no-untyped-def]
    """A 0x0 pt page, a 0.5 pt page and a 20000x20000 pt page beside a normal one: all four
    pages come back, in order; the huge page is rendered within the pixel ceiling."""
    f = _write(tmp_path / "sizes.pdf", build_pdf([(0, 0), (612, 792), (20000, 20000), (0.5, 0.5)]))
    run, out = via_sim(f)
    doc = assert_converted(run, out, "sizes", [1, 2, 3, 4])
    pages = doc["pages"]
    assert pages[1]["status"] == "ok"
    assert pages[2]["status"] == "ok" and pages[2]["width"] == pytest.approx(20000)
    # a page under one point is an unusable page, reported (not dropped, not blank)
    assert pages[3]["status"] == "failed" and "size" in pages[3]["error"]["message"]
    assert run.code == 1


def test_huge_page_alone_converts(tmp_path: Path, via_sim, sim) -> None:  # type: ignore[no-untyped-def]
    f = _write(tmp_path / "huge.pdf", build_pdf([(20000, 20000)]))
    run, out = via_sim(f)
    doc = assert_converted(run, out, "huge", [1])
    assert run.code == 0 and doc["pages"][0]["height"] == pytest.approx(20000)
    body = sim.bodies[-1]
    url = json.dumps(body)
    assert "data:image/png;base64," in url  # the page image really went out


def test_ten_thousand_pages_open_fast_and_a_slice_converts(tmp_path: Path, via_sim) -> None:  # type: ignore[no-untyped-def]
    from ocrclient.imaging import RenderSpec
    from ocrclient.pages import RenderPool, iter_pages, open_sources

    data = many_pages_pdf(10_000)
    assert len(data) < 2_000_000
    f = _write(tmp_path / "big.pdf", data)
    t0 = time.monotonic()
    [src] = open_sources([f])
    assert src.page_count == 10_000
    with RenderPool(workers=1) as pool:
        stream = iter_pages(src, RenderSpec(dpi=20), pool=pool, prefetch=2)
        first = [next(stream) for _ in range(3)]
        stream.close()  # type: ignore[attr-defined]
        assert pool.submitted <= 5, "the stream must render lazily, not the whole document"
    assert [p.number for p in first] == [1, 2, 3] and all(p.error is None for p in first)
    assert time.monotonic() - t0 < 10
    run, out = via_sim(f, "--pages", "1-3,9998-")
    doc = assert_converted(run, out, "big", [1, 2, 3, 9998, 9999, 10000])
    assert run.code == 0 and doc["pages"][-1]["status"] == "ok"


def test_truncated_jpeg_among_good_inputs_keeps_every_document(tmp_path: Path, via_sim) -> None:  # type: ignore[no-untyped-def]
    """A directory mixing good files with a damaged image: every document is accounted for,
    the damaged one as a failed page with its error, and the run exits 1."""
    folder = tmp_path / "mixed"
    _write(folder / "a.pdf", build_pdf([(612, 792)] * 2))
    _write(folder / "b.png", png_bytes())
    jpg = jpeg_bytes()
    _write(folder / "c.jpg", jpg[: len(jpg) // 2])
    run, out = via_sim(folder)
    assert sorted(p.name for p in out.rglob("*.json")) == ["a.json", "b.json", "c.json"]
    a = assert_converted(run, out, "a", [1, 2], only_doc=False)
    b = assert_converted(run, out, "b", [1], only_doc=False)
    c = assert_converted(run, out, "c", [1], only_doc=False)
    assert [p["status"] for p in a["pages"] + b["pages"]] == ["ok", "ok", "ok"]
    assert c["pages"][0]["status"] == "failed" and "truncated" in c["pages"][0]["error"]["message"]
    assert run.code == 1
    # the failure is reported on stderr too, on one line naming file and page
    failed_lines = [ln for ln in run.lines if ln.startswith("failed ")]
    assert len(failed_lines) == 1 and "c.jpg" in failed_lines[0] and "page 1" in failed_lines[0]


# ---------------------------------------------------------------------------------------------
# the real corpus: everything opens and streams; a few pages through the local engine
# ---------------------------------------------------------------------------------------------


def test_every_corpus_pdf_opens_and_streams_its_first_page() -> None:
    require_corpus(CORPUS_PDFS)
    from ocrclient.imaging import RenderSpec
    from ocrclient.pages import RenderPool, iter_pages, open_sources

    assert any("headers_footers" in str(p) for p in CORPUS_PDFS)
    srcs = open_sources(CORPUS_PDFS)
    assert len(srcs) == len(CORPUS_PDFS)
    with RenderPool(workers=2) as pool:
        for src in srcs:
            assert src.page_count >= 1
            [page] = list(iter_pages(src, RenderSpec(dpi=20), pages="1", pool=pool))
            assert page.error is None, (src.name, page.error)
            assert page.encoded is not None and page.encoded.width > 0


_LOCAL_PICKS = ["gnarly/edgar-rotated90.pdf", "gnarly/slideshow_mostly_images.pdf"]


def test_corpus_pages_through_the_local_engine(tmp_path: Path) -> None:
    """Real pages through the default engine: one process, two documents, their first pages."""
    require_corpus(CORPUS_PDFS)
    inputs = [str(CORPUS / p) for p in _LOCAL_PICKS if (CORPUS / p).exists()]
    out = tmp_path / "out"
    run = ocr(
        ["convert", *inputs, "-o", str(out), "--pages", "1", "--dpi", "50", "--no-progress"],
        {"OCRCLIENT_CACHE_DIR": str(tmp_path / "cache")},
        timeout=120,
    )
    for inp in inputs:
        doc = assert_converted(run, out, Path(inp).stem, [1])
        assert doc["backend"] == "local"
    assert run.code == 0


def test_a_cache_cap_that_cannot_be_read_is_one_line(sim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``OCRCLIENT_CACHE_MAX_BYTES=abc``: one line, exit 2, nothing sent (it was a traceback)."""
    pdf = _write(tmp_path / "a.pdf", _GOOD3)
    before = sum(sim.requests.values())
    args = ["convert", str(pdf), "-o", str(tmp_path / "out"), "--backend", "openai", "--base-url", sim.base_url, "--model", "sim"]
    run = ocr(args, {"OCRCLIENT_API_KEY": sim.api_key, "OCRCLIENT_CACHE_DIR": str(tmp_path / "c"), "OCRCLIENT_CACHE_MAX_BYTES": "abc"})
    assert_unusable(run, "expected a size")
    assert sum(sim.requests.values()) == before
