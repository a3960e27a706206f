"""The page stream: inputs, validation, page ranges, rendering, bounds, failures."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import struct
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ocrclient.errors import InputError
from ocrclient.imaging import RenderSpec
from ocrclient.pages import (
    PageImage,
    RenderPool,
    RenderPoolError,
    Source,
    aiter_pages,
    iter_pages,
    open_sources,
    parse_page_range,
)
from ocrclient.pages import inputs as inputs_module

from .conftest import CORPUS, require_corpus
from .fakes import short_outage

LOW = RenderSpec(dpi=36)

# ---------------------------------------------------------------------------------------------
# fixtures: PDFs written by hand (standard Helvetica), optional RC4 (R2) encryption
# ---------------------------------------------------------------------------------------------

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def make_pdf(
    pages: list[dict] | int = 1,
    *,
    user_password: str | None = None,
    kids_extra: int = 0,
) -> bytes:
    """A PDF with one text line per page.  Page dicts may set w, h, text, rotate, crop.
    ``kids_extra`` adds page references to objects that do not exist (pages that cannot load)."""
    if isinstance(pages, int):
        pages = [{} for _ in range(pages)]
    objs: dict[int, bytes] = {}
    streams: dict[int, bytes] = {}
    objs[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    kids = []
    num = 4
    for i, p in enumerate(pages):
        w, h = p.get("w", 612), p.get("h", 792)
        text = p.get("text", f"Hello page {i + 1}").encode("latin-1")
        content = b"BT /F1 24 Tf 36 %d Td (%s) Tj ET\n0 0 0 rg 36 36 100 100 re f\n" % (
            int(h) - 60,
            text,
        )
        extra = b""
        if "rotate" in p:
            extra += b" /Rotate %d" % p["rotate"]
        if "crop" in p:
            extra += b" /CropBox [%s]" % " ".join(str(v) for v in p["crop"]).encode()
        objs[num] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R%s >>"
            % (str(w).encode(), str(h).encode(), num + 1, extra)
        )
        streams[num + 1] = content
        kids.append(num)
        num += 2
    missing = [900 + k for k in range(kids_extra)]
    kid_refs = b" ".join(b"%d 0 R" % k for k in kids + missing)
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kid_refs, len(kids) + len(missing))

    file_id = hashlib.md5(repr(pages).encode()).digest()
    key = None
    encrypt_num = None
    if user_password is not None:
        perms = struct.pack("<i", -44)
        owner = _rc4(
            hashlib.md5((b"owner-secret" + _PAD)[:32]).digest()[:5],
            (user_password.encode() + _PAD)[:32],
        )
        key = hashlib.md5((user_password.encode() + _PAD)[:32] + owner + perms + file_id).digest()[
            :5
        ]
        user = _rc4(key, _PAD)
        encrypt_num = num
        objs[num] = b"<< /Filter /Standard /V 1 /R 2 /O <%s> /U <%s> /P -44 >>" % (
            owner.hex().encode(),
            user.hex().encode(),
        )
    for n, data in streams.items():
        if key is not None:
            data = _rc4(
                hashlib.md5(key + n.to_bytes(3, "little") + b"\x00\x00").digest()[:10], data
            )
        objs[n] = b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for n in sorted(objs):
        offsets[n] = len(out)
        out += b"%d 0 obj\n" % n + objs[n] + b"\nendobj\n"
    size = max(objs) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for n in range(1, size):
        out += (b"%010d 00000 n \n" % offsets[n]) if n in offsets else b"0000000000 65535 f \n"
    trailer = b"/Size %d /Root 1 0 R /ID [<%s><%s>]" % (
        size,
        file_id.hex().encode(),
        file_id.hex().encode(),
    )
    if encrypt_num is not None:
        trailer += b" /Encrypt %d 0 R" % encrypt_num
    out += b"trailer\n<< " + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def image_bytes(fmt: str, size=(120, 80), color=(200, 30, 30), **save) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt, **save)
    return buf.getvalue()


def one_line(exc: pytest.ExceptionInfo[InputError]) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, msg
    return msg


@pytest.fixture(scope="module")
def pool():
    with RenderPool(workers=2) as p:
        yield p


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def test_pdf_file_opens_and_renders_text(tmp_path: Path, pool: RenderPool) -> None:
    f = write(tmp_path / "doc.pdf", make_pdf(3))
    [src] = open_sources([f])
    assert (src.kind, src.page_count, src.stem, src.format, src.rel) == (
        "pdf",
        3,
        "doc",
        "pdf",
        None,
    )
    assert src.path == f and src.data is None
    pages = list(iter_pages(src, RenderSpec(dpi=72), pool=pool))
    assert [p.number for p in pages] == [1, 2, 3]
    for p in pages:
        assert p.error is None and p.source == str(f)
        assert (p.encoded.width, p.encoded.height) == (612, 792)
        assert p.render_scale == pytest.approx(1.0)
        arr = np.asarray(p.image().convert("L"))
        # the heading (text) is dark near the top, the 100pt square near the bottom-left
        assert arr[20:70, 30:300].min() < 80
        assert arr[792 - 130 : 792 - 40, 40:130].mean() < 10
        assert arr[300:500, 300:600].min() == 255


def test_pdf_bytes_and_image_bytes(pool: RenderPool) -> None:
    data = make_pdf(2)
    srcs = open_sources([data, image_bytes("PNG"), data])  # duplicate bytes kept once
    assert [s.kind for s in srcs] == ["pdf", "image"]
    assert srcs[0].path is None and srcs[0].data == data
    assert srcs[0].name.startswith("bytes:") and srcs[0].stem.startswith("document-")
    assert len(list(iter_pages(data, LOW, pool=pool))) == 2
    [img] = list(iter_pages(srcs[1], RenderSpec(dpi=72), pool=pool))
    assert img.page_box.width == 120 and img.page_box.height == 80
    assert img.image().getpixel((5, 5))[:3] == (200, 30, 30)


@pytest.mark.parametrize(
    ("fmt", "save"),
    [
        ("PNG", {}),
        ("JPEG", {"quality": 95}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
        ("TIFF", {}),
    ],
)
def test_each_image_kind(tmp_path: Path, fmt: str, save: dict, pool: RenderPool) -> None:
    f = write(tmp_path / f"pic.{fmt.lower()}", image_bytes(fmt, (300, 200), (10, 120, 240), **save))
    [src] = open_sources([f])
    assert src.kind == "image" and src.page_count == 1 and src.format == fmt.lower()
    [page] = list(iter_pages(src, RenderSpec(dpi=150), pool=pool))
    assert page.error is None
    # a point is a pixel at 72 dpi of the original image; no upscaling past the raster
    assert (page.page_box.width, page.page_box.height) == (300, 200)
    assert (page.encoded.width, page.encoded.height) == (300, 200)
    r, g, b = page.image().convert("RGB").getpixel((150, 100))
    assert abs(r - 10) < 8 and abs(g - 120) < 8 and abs(b - 240) < 8


def test_image_resized_to_spec_budget(pool: RenderPool) -> None:
    data = image_bytes("PNG", (2000, 1000))
    [page] = list(iter_pages(data, RenderSpec(dpi=150, longest_side=500), pool=pool))
    assert (page.encoded.width, page.encoded.height) == (500, 250)
    assert page.render_scale == pytest.approx(0.25)
    assert (page.page_box.width, page.page_box.height) == (2000, 1000)
    # an exact longest_side spec (olmOCR-style) also enlarges
    [page] = list(
        iter_pages(image_bytes("PNG", (100, 50)), RenderSpec(dpi=None, longest_side=400), pool=pool)
    )
    assert (page.encoded.width, page.encoded.height) == (400, 200)


def test_multiframe_tiff_each_frame_is_a_page(tmp_path: Path, pool: RenderPool) -> None:
    frames = [Image.new("L", (64 + 10 * i, 48), 40 * i) for i in range(4)]
    f = tmp_path / "scan.tif"
    frames[0].save(f, save_all=True, append_images=frames[1:])
    [src] = open_sources([f])
    assert src.page_count == 4
    pages = list(iter_pages(src, RenderSpec(dpi=72), pages="2-4", pool=pool))
    assert [p.index for p in pages] == [1, 2, 3]
    for p in pages:
        assert p.page_box.width == 64 + 10 * p.index
        assert p.image().convert("L").getpixel((3, 3)) == 40 * p.index


@pytest.mark.parametrize(("fmt", "suffix", "extra"), [("TIFF", "tif", {}), ("WEBP", "webp", {"lossless": True}), ("PNG", "png", {})])
def test_every_frame_of_a_paged_format_is_a_page(
    tmp_path: Path, pool: RenderPool, fmt: str, suffix: str, extra: dict[str, object]
) -> None:
    """A multi-page TIFF, an animated WebP and an animated PNG each give one page per frame, in
    order, each its own picture (an animated WebP kept only its first frame, status ok)."""
    frames = [Image.new("L", (64, 48), 40 * i + 20).convert("RGB") for i in range(3)]
    f = tmp_path / f"anim.{suffix}"
    frames[0].save(f, fmt, save_all=True, append_images=frames[1:], **extra)
    [src] = open_sources([f])
    assert src.page_count == 3
    pages = list(iter_pages(src, RenderSpec(dpi=72), pool=pool))
    assert [p.index for p in pages] == [0, 1, 2]
    assert [p.image().convert("L").getpixel((3, 3)) for p in pages] == [20, 60, 100]


def test_a_jpegs_further_pictures_are_not_pages(tmp_path: Path, pool: RenderPool) -> None:
    """An MPO (a phone's JPEG with a second picture: a stereo view, a preview) is one page, its
    first picture."""
    f = tmp_path / "phone.jpg"
    Image.new("RGB", (64, 48), (20, 20, 20)).save(
        f, "MPO", save_all=True, append_images=[Image.new("RGB", (32, 24), (200, 200, 200))]
    )
    with Image.open(f) as img:
        assert getattr(img, "n_frames", 1) == 2
    [src] = open_sources([f])
    assert src.page_count == 1
    [page] = list(iter_pages(src, RenderSpec(dpi=72), pool=pool))
    assert page.image().convert("L").getpixel((3, 3)) < 40


def test_exif_orientation_applied(tmp_path: Path, pool: RenderPool) -> None:
    img = Image.new("RGB", (200, 100), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 100, 100))  # stored: left half black
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    f = tmp_path / "phone.jpg"
    img.save(f, "JPEG", exif=exif, quality=95)
    [page] = list(iter_pages(f, RenderSpec(dpi=72), pool=pool))
    assert (page.page_box.width, page.page_box.height) == (100, 200)
    arr = np.asarray(page.image().convert("L"))
    assert arr.shape == (200, 100)
    assert arr[:90].mean() < 20 and arr[110:].mean() > 235  # left column went to the top


def test_rgba_image_flattened_on_white(pool: RenderPool) -> None:
    img = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    img.paste((0, 0, 0, 255), (0, 0, 10, 10))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    [page] = list(iter_pages(buf.getvalue(), RenderSpec(dpi=72), pool=pool))
    im = page.image().convert("L")
    assert im.getpixel((30, 30)) == 255 and im.getpixel((2, 2)) == 0


def test_type_detected_by_magic_not_suffix(tmp_path: Path) -> None:
    a = write(tmp_path / "really_png.pdf", image_bytes("PNG"))
    b = write(tmp_path / "really_pdf.png", make_pdf(1))
    kinds = [(s.stem, s.kind) for s in open_sources([a, b])]
    assert kinds == [("really_png", "image"), ("really_pdf", "pdf")]


def test_directory_walk_sorted_recursive_with_rel(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write(root / "b.pdf", make_pdf(2))
    write(root / "a" / "z.png", image_bytes("PNG"))
    write(root / "a" / "y.TIFF", image_bytes("TIFF"))
    write(root / "notes.txt", b"not a document")
    write(root / ".hidden.pdf", make_pdf(1))
    write(root / "a" / "deeper" / "c.jpeg", image_bytes("JPEG"))
    with pytest.warns(UserWarning, match=r"1 hidden file\(s\) left out .*: \.hidden\.pdf"):  # (said, each walk)
        srcs = open_sources([root])
        assert [s.rel.as_posix() for s in srcs] == ["a/deeper/c.jpeg", "a/y.TIFF", "a/z.png", "b.pdf"]
        assert [s.kind for s in srcs] == ["image", "image", "image", "pdf"]
        assert open_sources([root]) == srcs  # deterministic
        # explicit file + the directory holding it: kept once
        assert len(open_sources([root / "b.pdf", root])) == 4


def test_glob_patterns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "in"
    write(root / "one.pdf", make_pdf(1))
    write(root / "sub" / "two.pdf", make_pdf(1))
    write(root / "sub" / "pic.png", image_bytes("PNG"))
    srcs = open_sources([str(root / "**" / "*.pdf")])
    assert [s.rel.as_posix() for s in srcs] == ["one.pdf", "sub/two.pdf"]
    monkeypatch.chdir(tmp_path)
    srcs = open_sources(["in/sub/*"])
    assert [(s.name, s.rel.as_posix()) for s in srcs] == [
        ("in/sub/pic.png", "pic.png"),
        ("in/sub/two.pdf", "two.pdf"),
    ]


#: patterns of the whole kind: ** first, last, in the middle, alone, after a wildcard, naming
#: dot folders, relative and absolute (ABS: the test's folder)
_PATTERNS = ["in/**/*.pdf", "in/**", "**/*.pdf", "in/*/**/*.png", "in/**/sub/*", "in/**/.dot/*.pdf", "in/*.pdf", "in/*",
             "in/.*/**/*.pdf", "in/**/../*.pdf", "./in/**/*.pdf", "in/**/", "**.pdf", "in/**.pdf", "in/***/*.pdf",
             "in/a**/*.pdf", "in/**/**/*.pdf"]  # fmt: skip


@pytest.mark.filterwarnings("ignore:.*hidden file")  # (a pattern matching a folder walks it: its hidden files are named)
@pytest.mark.parametrize("pattern", _PATTERNS + ["ABS/" + p for p in _PATTERNS[:4]] + ["ABS/**.pdf"])
def test_glob_patterns_match_as_glob_does_and_never_go_down_linked_folders(
    pattern: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pattern finds what ``glob.glob(..., recursive=True)`` finds (folders it matches
    walked) in a tree without links; once the tree has links to folders -- one to a parent
    (``glob`` went down it for ever: ``ocr convert 'in/**/*.pdf'`` hung), one to the root by
    absolute path, one to a folder outside -- it ends, and ``**`` finds the same files (a link
    that a plain wildcard matches is taken, as a folder named would be)."""
    import glob
    import os
    import threading

    from ocrclient.pages.inputs import _find_files, _walk, _wanted

    root = tmp_path / "in"
    for rel in ["one.pdf", "a/two.pdf", "a/sub/three.pdf", "a/sub/pic.png", "b/sub/four.pdf", ".dot/five.pdf",
                "a/.dot/six.pdf", "a/.seven.pdf", "b/notes.txt", ".h/.dot/ten.pdf", ".dot/.deeper/nine.pdf"]:  # fmt: skip
        write(root / rel, image_bytes("PNG") if rel.endswith((".png", ".txt")) else make_pdf(1))
    write(tmp_path / "top.pdf", make_pdf(1))
    outside = tmp_path / "outside"
    write(outside / "eight.pdf", make_pdf(1))
    monkeypatch.chdir(tmp_path)
    text = pattern.replace("ABS", str(tmp_path))

    def once(paths: list[str]) -> list[str]:  # (as open_sources keeps them: the first of a file)
        firsts: dict[Path, str] = {}
        for path in paths:
            firsts.setdefault(Path(path).resolve(), path)
        return list(firsts.values())

    def found() -> list[str]:
        got: list[list[str]] = []
        worker = threading.Thread(target=lambda: got.append(once([f[1] for f in _find_files(text)])), daemon=True)
        worker.start()
        worker.join(20)
        assert got, f"{pattern}: still expanding after 20 s"
        return got[0]

    by_glob = []
    with warnings.catch_warnings():  # (the reference's own walks name the hidden files they leave out)
        warnings.simplefilter("ignore")
        for m in sorted(glob.glob(text, recursive=True)):
            by_glob += [str(f) for f in _walk(Path(m))] if Path(m).is_dir() else [str(Path(m))] if _wanted(Path(m)) else []
    before = found()
    assert before == once(by_glob) and before, pattern
    os.symlink("..", root / "a" / "sub" / "up")
    os.symlink(root, root / "b" / "sub" / "to-root")
    os.symlink(outside, root / "b" / "elsewhere")
    after = found()
    if pattern.endswith(("**/*.pdf", "**/*.png", "**", "**/")):  # only ** could reach a link
        assert after == before, pattern
    else:
        assert set(before) <= set(after), pattern


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_pipes_are_read_once_when_named_and_skipped_when_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe named as an input (``ocr convert <(curl ...)``, a FIFO) is read once, into
    memory: the file was opened again to be rendered and found empty ("corrupt or truncated
    PDF").  A pipe a glob finds is skipped, as a folder's walk skips it: the glob opened it and
    waited for ever for a writer."""
    import threading

    from ocrclient.pages.inputs import _find_files

    pdf = make_pdf(3)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "ok.pdf", pdf)
    os.mkfifo(tmp_path / "waiting.pdf")  # no writer, ever
    got: list[list[str]] = []
    looker = threading.Thread(target=lambda: got.append([f[1] for f in _find_files("*.pdf")]), daemon=True)
    looker.start()
    looker.join(10)
    assert got == [["ok.pdf"]]
    os.mkfifo(tmp_path / "named.pdf")
    other = make_pdf(2)
    pipes = [os.pipe(), os.pipe()]  # the same content as named.pdf, and another
    threading.Thread(target=lambda: (tmp_path / "named.pdf").write_bytes(pdf), daemon=True).start()
    for (_, w), data in zip(pipes, [pdf, other], strict=True):
        threading.Thread(target=lambda w=w, data=data: os.write(w, data) and os.close(w), daemon=True).start()
    srcs = open_sources(["named.pdf", *(f"/dev/fd/{r}" for r, _ in pipes)])
    # read, each is kept once by its content, as bytes are (two pipes of one file wrote one output)
    assert [(s.name, s.kind, s.page_count, s.path) for s in srcs] == [
        ("named.pdf", "pdf", 3, None), (f"/dev/fd/{pipes[1][0]}", "pdf", 2, None)]  # fmt: skip
    for r, _ in pipes:
        os.close(r)
    with pytest.raises(InputError, match="not a PDF or supported image"):  # refused at its first bytes
        open_sources(["/dev/zero"])


def test_source_repr_hides_password() -> None:
    [src] = open_sources([make_pdf(1, user_password="hunter22")], password="hunter22")
    assert "hunter22" not in repr(src)


# ---------------------------------------------------------------------------------------------
# bad inputs: one clear line each
# ---------------------------------------------------------------------------------------------


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[object, str]]:
    good = make_pdf(3)
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    write(empty_dir / "readme.txt", b"nothing to see")
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    return {
        "missing": (tmp_path / "nope.pdf", "no such file"),
        "text named pdf": (
            write(tmp_path / "fake.pdf", b"just some notes\nin a text file\n"),
            "not a PDF",
        ),
        "empty file": (write(tmp_path / "empty.pdf", b""), "empty"),
        "truncated": (write(tmp_path / "cut.pdf", good[: len(good) // 2]), "corrupt or truncated"),
        "garbage after header": (
            write(tmp_path / "junk.pdf", b"%PDF-1.7\n" + os.urandom(300)),
            "corrupt or truncated",
        ),
        "zero pages": (
            write(tmp_path / "zero.pdf", make_pdf([])),
            "no pages",
        ),
        "encrypted, no password": (
            write(tmp_path / "locked.pdf", make_pdf(2, user_password="s3cret")),
            "encrypted",
        ),
        "unsupported type": (write(tmp_path / "anim.gif", gif.getvalue()), "GIF"),
        "empty dir": (empty_dir, "no PDF or image"),
        "glob nothing": (str(tmp_path / "*.nothing"), "matches no"),
        "corrupt png": (
            write(tmp_path / "bad.png", image_bytes("PNG")[:40]),
            "corrupt or unreadable",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "text named pdf",
        "empty file",
        "truncated",
        "garbage after header",
        "zero pages",
        "encrypted, no password",
        "unsupported type",
        "empty dir",
        "glob nothing",
        "corrupt png",
    ],
)
def test_bad_inputs_raise_one_line_input_error(tmp_path: Path, case: str) -> None:
    value, needle = _bad_inputs(tmp_path)[case]
    with pytest.raises(InputError) as exc:
        open_sources([value])  # type: ignore[list-item]
    msg = one_line(exc)
    assert needle.lower() in msg.lower(), msg
    if not isinstance(value, bytes):
        assert str(value) in msg  # says which input


def test_bad_input_fails_iter_pages_before_iteration(tmp_path: Path) -> None:
    f = write(tmp_path / "fake.pdf", b"hello")
    with pytest.raises(InputError):
        iter_pages(f, LOW)  # raises on the call, not on first next()


def test_password_protected_pdf(tmp_path: Path, pool: RenderPool) -> None:
    f = write(tmp_path / "locked.pdf", make_pdf(2, user_password="s3cret"))
    with pytest.raises(InputError) as exc:
        open_sources([f], password="wrong-one")
    assert "wrong password" in one_line(exc)
    assert "wrong-one" not in str(exc.value)
    [src] = open_sources([f], password="s3cret")
    assert src.page_count == 2
    pages = list(iter_pages(src, RenderSpec(dpi=72), pool=pool))
    assert all(p.error is None for p in pages)
    # the decrypted content really rendered (text + square), not a blank page
    assert np.asarray(pages[1].image().convert("L"))[792 - 130 : 792 - 40, 40:130].mean() < 10
    # password given to iter_pages directly
    assert len(list(iter_pages(f, LOW, password="s3cret", pool=pool))) == 2


def test_decompression_bomb_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(InputError) as exc:
        open_sources([image_bytes("PNG", (100, 100))])
    assert "decompression bomb" in one_line(exc)


# ---------------------------------------------------------------------------------------------
# page ranges
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "count", "want"),
    [
        (None, 3, [0, 1, 2]),
        ("1-3,7,10-", 11, [0, 1, 2, 6, 9, 10]),
        ("-3", 10, [0, 1, 2]),
        ("5-", 6, [4, 5]),
        (" 3 , 1-2 ,2", 4, [0, 1, 2]),
        ("4-4", 4, [3]),
    ],
)
def test_parse_page_range(spec: str | None, count: int, want: list[int]) -> None:
    assert parse_page_range(spec, count) == want


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("12", "has 11 pages"),
        ("3-20", "has 11 pages"),
        ("0", "start at 1"),
        ("5-2", "backwards"),
        ("a-b", "cannot read"),
        ("-", "needs a number"),
        ("1;2", "cannot read"),
        (",", "selects no pages"),
        ("", "is empty"),  # (--pages "$RANGE" with RANGE unset: it took every page, paid for)
        (" \t", "is empty"),
    ],
)
def test_parse_page_range_errors(spec: str, needle: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_page_range(spec, 11)
    assert needle in one_line(exc)


def test_page_selection_in_stream(pool: RenderPool) -> None:
    data = make_pdf(6)
    assert [p.number for p in iter_pages(data, LOW, pages="2,4-", pool=pool)] == [2, 4, 5, 6]
    assert [p.index for p in iter_pages(data, LOW, pages=[5, 0, 5], pool=pool)] == [0, 5]
    with pytest.raises(InputError, match="has 6 pages"):
        iter_pages(data, LOW, pages="7", pool=pool)
    with pytest.raises(InputError, match="out of range"):
        iter_pages(data, LOW, pages=[6], pool=pool)


# ---------------------------------------------------------------------------------------------
# geometry of what is rendered
# ---------------------------------------------------------------------------------------------


def test_rotate_and_cropbox_render_as_displayed(pool: RenderPool) -> None:
    data = make_pdf(
        [{"w": 400, "h": 600, "rotate": 90}, {"w": 400, "h": 600, "crop": [50, 100, 350, 400]}]
    )
    rot, crop = list(iter_pages(data, RenderSpec(dpi=72), pool=pool))
    assert (rot.page_box.width, rot.page_box.height, rot.page_box.rotation) == (600, 400, 90)
    assert (rot.encoded.width, rot.encoded.height) == (600, 400)
    # the unrotated bottom-left square (36..136) ends up top-left once turned clockwise
    arr = np.asarray(rot.image().convert("L"))
    assert arr[40:130, 40:130].mean() < 10
    assert (crop.page_box.width, crop.page_box.height) == (300, 300)
    assert (crop.page_box.crop_x, crop.page_box.crop_y) == (50, 100)
    assert (crop.encoded.width, crop.encoded.height) == (300, 300)


def test_spec_scale_and_pixel_budget(pool: RenderPool) -> None:
    data = make_pdf([{"w": 612, "h": 792}, {"w": 14400, "h": 14400}])
    letter, huge = list(iter_pages(data, RenderSpec(dpi=100, max_pixels=250_000), pool=pool))
    assert letter.encoded.width * letter.encoded.height <= 250_000 * 1.01
    assert letter.encoded.width / letter.encoded.height == pytest.approx(612 / 792, rel=0.01)
    assert huge.error is None and huge.encoded.width * huge.encoded.height <= 250_000 * 1.01
    [g] = list(
        iter_pages(data, RenderSpec(dpi=30, grayscale=True, format="jpeg"), pages="1", pool=pool)
    )
    assert g.encoded.format == "jpeg" and g.image().mode == "L"
    assert (g.encoded.width, g.encoded.height) == RenderSpec(dpi=30).pixel_size(612, 792)


# ---------------------------------------------------------------------------------------------
# failures of single pages, bounds, pool breakage
# ---------------------------------------------------------------------------------------------


def test_failed_page_is_kept_with_error(pool: RenderPool) -> None:
    data = make_pdf([{}, {"w": 0.5, "h": 0.5}, {}], kids_extra=1)
    [src] = open_sources([data])
    assert src.page_count == 4
    pages = list(iter_pages(src, LOW, pool=pool))
    assert [p.index for p in pages] == [0, 1, 2, 3]
    assert [p.error is None for p in pages] == [True, False, True, False]
    tiny, missing = pages[1], pages[3]
    assert tiny.encoded is None and "unusable size" in tiny.error and "\n" not in tiny.error
    assert missing.encoded is None and "page 4" in missing.error
    with pytest.raises(ValueError):
        _ = missing.frame


def test_stream_is_lazy_and_bounded(tmp_path: Path) -> None:
    data = make_pdf(12)
    with RenderPool(workers=2) as pool:
        stream = iter_pages(data, LOW, pool=pool, prefetch=3)
        time.sleep(0.2)
        assert pool.submitted == 0  # nothing before the first pull
        seen = []
        for consumed, page in enumerate(stream):
            # pages handed out so far: `consumed`; in flight/ready but unconsumed: <= prefetch
            assert pool.submitted - consumed <= 3, (pool.submitted, consumed)
            seen.append(page.index)
            time.sleep(0.03)  # a slow consumer: workers would race ahead if unbounded
        assert seen == list(range(12)) and pool.submitted == 12


def test_default_prefetch_is_per_worker() -> None:
    from ocrclient.pages import PREFETCH_PER_WORKER

    with RenderPool(workers=2) as pool:
        stream = iter_pages(make_pdf(20), LOW, pool=pool)
        next(stream)
        time.sleep(0.2)
        assert pool.submitted == 2 * PREFETCH_PER_WORKER
        stream.close()


def test_abandoned_stream_cancels_and_private_pool_closes() -> None:
    stream = iter_pages(make_pdf(8), LOW)
    first = next(stream)
    assert first.index == 0
    stream.close()  # must not hang or leak


def test_worker_crash_raises_clear_error_not_hang() -> None:
    with RenderPool(workers=2, isolated=True) as pool:
        stream = iter_pages(make_pdf(30), LOW, pool=pool, prefetch=2)
        next(stream)
        for proc in list(pool._executor._processes.values()):  # type: ignore[union-attr]
            os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(RenderPoolError, match="render worker process died"):
            for _ in stream:
                pass
        with pytest.raises(RenderPoolError):
            pool.submit(open_sources([make_pdf(1)])[0], 0, LOW)


@pytest.mark.parametrize("isolated", [False, True], ids=["threads", "processes"])
def test_pool_shared_across_documents_and_inline_mode(tmp_path: Path, isolated: bool) -> None:
    a, b = make_pdf(3), make_pdf([{"w": 300, "h": 300}] * 2)
    with RenderPool(workers=0) as inline, RenderPool(workers=2, isolated=isolated) as procs:
        assert procs.isolated is isolated
        for doc in (a, b):
            x = list(iter_pages(doc, RenderSpec(dpi=50), pool=inline))
            y = list(iter_pages(doc, RenderSpec(dpi=50), pool=procs))
            assert [p.encoded.data for p in x] == [p.encoded.data for p in y]
        assert procs.submitted == 5


def test_threaded_renders_equal_inline_ones_while_this_thread_uses_pdfium() -> None:
    """Render threads share PDFium with the rest of the process: many pages of several
    documents, in every spec a profile uses (RGB, grey, PNG, JPEG), rendered by 4 threads at once
    while this thread opens and reads PDFs under the lock as the exporters do, come out
    byte-identical to inline renders."""
    import pypdfium2 as pdfium

    from ocrclient.pages.render import PDFIUM_LOCK

    docs = [make_pdf(6), make_pdf([{"w": 300, "h": 500}] * 5), make_pdf([{"w": 700, "h": 400}] * 4)]
    specs = [RenderSpec(dpi=60), RenderSpec(dpi=60, grayscale=True), RenderSpec(dpi=60, format="jpeg")]
    with RenderPool(workers=0) as inline:
        want = [[p.encoded.data for p in iter_pages(d, s, pool=inline)] for d in docs for s in specs]
    with RenderPool(workers=4) as threads:
        assert not threads.isolated
        streams = [iter_pages(d, s, pool=threads) for d in docs for s in specs]
        got: list[list[bytes]] = [[] for _ in streams]
        live = True
        while live:
            live = False
            for i, stream in enumerate(streams):
                page = next(stream, None)
                if page is not None:
                    live = True
                    got[i].append(page.encoded.data)
                with PDFIUM_LOCK:  # what an exporter does meanwhile
                    pdf = pdfium.PdfDocument(docs[i % len(docs)])
                    pdf[0].get_textpage().get_text_bounded()
                    pdf.close()
    assert got == want


# ---------------------------------------------------------------------------------------------
# async
# ---------------------------------------------------------------------------------------------


async def test_aiter_pages_matches_sync_and_keeps_loop_free() -> None:
    data = make_pdf(6)
    spec = RenderSpec(dpi=300)
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with RenderPool(workers=2) as pool:
        tick = asyncio.create_task(ticker())
        got = [p async for p in aiter_pages(data, spec, pool=pool)]
        done = True
        await tick
        want = list(iter_pages(data, spec, pool=pool))
    assert [p.index for p in got] == list(range(6))
    assert [p.encoded.data for p in got] == [p.encoded.data for p in want]
    slowest_render = max(p.render_s for p in got)
    # a blocking implementation would stall the loop for at least one whole render
    assert max(gaps) < max(0.5 * slowest_render, 0.02), (max(gaps), slowest_render)


_POOLS = {
    "inline": lambda: RenderPool(workers=0),
    "threads": lambda: RenderPool(workers=2),
    "processes, not started": lambda: RenderPool(workers=2, isolated=True),
    "processes, starting": lambda: RenderPool(workers=2, isolated=True),
}


@pytest.mark.parametrize("pool_kind", list(_POOLS))
@pytest.mark.parametrize("given", ["path", "bytes", "image path", "path, its password again"])
async def test_aiter_pages_blocks_the_loop_in_no_combination_and_hops_only_when_it_must(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, pool_kind: str
) -> None:
    """Every kind of source on every kind of pool: the stream yields what the synchronous one
    does, nothing that can block (opening a file, spilling bytes, starting processes, an inline
    render) runs on the event loop's thread, and a thread pool streaming a file's pages makes
    no trip to a thread at all (a submit there only queues a render)."""
    import ocrclient.pages.pool as pool_mod
    import ocrclient.pages.stream as stream_mod

    path = tmp_path / "doc.pdf"
    path.write_bytes(make_pdf(3))
    if given == "image path":
        path = tmp_path / "doc.png"
        path.write_bytes(image_bytes("PNG", (120, 90)))
    [src] = open_sources([path.read_bytes() if given == "bytes" else path])
    password = "" if given.endswith("password again") else None
    if password is not None:
        src.password = password
    loop_thread = threading.get_ident()
    on_loop: list[str] = []
    hops: list[str] = []

    def watch(module: object, name: str, what: str) -> None:
        real = getattr(module, name)

        def watched(*args: object, **kwargs: object) -> object:
            if threading.get_ident() == loop_thread:
                on_loop.append(what)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, watched)

    if not pool_kind.startswith("processes"):  # (their renders are pickled to the workers)
        watch(pool_mod, "render_job", "a render in this thread")
    watch(stream_mod, "make_source", "a file opened")
    watch(stream_mod, "open_sources", "a file opened")
    watch(pool_mod.cf.ProcessPoolExecutor, "submit", "a submit that may start a worker process")
    watch(pool_mod.cf, "ProcessPoolExecutor", "worker processes made")
    watch(pool_mod.tempfile, "mkdtemp", "bytes spilled")
    real_to_thread = asyncio.to_thread

    async def to_thread(fn: object, *args: object, **kwargs: object) -> object:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await real_to_thread(fn, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stream_mod.asyncio, "to_thread", to_thread)
    with _POOLS[pool_kind]() as pool:
        if pool_kind in ("threads", "processes, starting"):
            pool.start_soon()  # (as the run's pool: started before the stream)
        got = [p async for p in aiter_pages(src, LOW, pool=pool, password=password)]
    monkeypatch.undo()
    want = list(iter_pages(src, LOW))
    assert [(p.index, p.error, p.encoded.data) for p in got] == [(p.index, p.error, p.encoded.data) for p in want]
    assert len(got) == src.page_count and on_loop == [], on_loop
    if pool_kind == "threads" and given != "bytes":
        assert hops == [], hops
    else:
        assert hops, "a pull that may block went on the loop"


async def test_aresult_of_every_state_of_a_render() -> None:
    """A render done is handed over at once, one still running is awaited, a cancelled one
    (or one let go with concurrent.futures' CancelledError) raises the event loop's
    CancelledError, and a broken pool its RenderPoolError."""
    import concurrent.futures as cf

    pool = RenderPool(workers=0)
    done: cf.Future[object] = cf.Future()
    done.set_result("page")
    assert await pool.aresult(done) == "page"  # type: ignore[arg-type]
    later: cf.Future[object] = cf.Future()
    asyncio.get_running_loop().call_later(0.01, later.set_result, "later")
    assert await pool.aresult(later) == "later"  # type: ignore[arg-type]
    cancelled: cf.Future[object] = cf.Future()
    cancelled.cancel()
    let_go: cf.Future[object] = cf.Future()  # (how a page queued while workers start is let go)
    let_go.set_exception(cf.CancelledError())
    for fut in (cancelled, let_go):
        with pytest.raises(asyncio.CancelledError):
            await pool.aresult(fut)  # type: ignore[arg-type]
    broken: cf.Future[object] = cf.Future()
    broken.set_exception(cf.BrokenExecutor("gone"))
    with pytest.raises(RenderPoolError):
        await pool.aresult(broken)  # type: ignore[arg-type]


async def test_aiter_pages_input_errors_and_private_pool(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        async for _ in aiter_pages(tmp_path / "missing.pdf", LOW):
            pass
    pages = [p async for p in aiter_pages(make_pdf(3), LOW, pages="2-")]
    assert [p.number for p in pages] == [2, 3]


# ---------------------------------------------------------------------------------------------
# real documents
# ---------------------------------------------------------------------------------------------

_REAL = sorted((CORPUS / "gnarly").glob("*.pdf")) + sorted(
    (CORPUS / "olmocr-bench-sample" / "pdfs").glob("*.pdf")
)


def test_real_corpus_opens_and_streams(pool: RenderPool) -> None:
    require_corpus(_REAL)
    srcs = open_sources(_REAL)
    assert len(srcs) == len(_REAL) >= 20
    rotated = {s.stem: s for s in srcs}.get("edgar-rotated90")
    for src in srcs:
        assert src.kind == "pdf" and src.page_count >= 1
        pages = list(
            iter_pages(src, RenderSpec(dpi=24), pages=f"1-{min(2, src.page_count)}", pool=pool)
        )
        for p in pages:
            assert p.error is None, p.error
            assert isinstance(p, PageImage) and p.encoded is not None
            w, h = RenderSpec(dpi=24).pixel_size(p.page_box.width, p.page_box.height)
            assert (p.encoded.width, p.encoded.height) == (w, h)
            if src.stem != "blanktext":  # that one is blank by design (invisible text only)
                assert np.asarray(p.image().convert("L")).min() < 200, (
                    f"{src.name} page {p.number} is blank"
                )
    if rotated is not None:
        [p] = list(iter_pages(rotated, RenderSpec(dpi=24), pool=pool))
        assert p.page_box.rotation == 90 and p.page_box.width > p.page_box.height


def test_source_requires_exactly_one_of_path_and_data() -> None:
    with pytest.raises(ValueError):
        Source(name="x", stem="x", path=None, data=None, kind="pdf", page_count=1)


def test_pil_pixel_limit_travels_to_workers(
    monkeypatch: pytest.MonkeyPatch, pool: RenderPool
) -> None:
    [src] = open_sources([image_bytes("PNG", (100, 100))])  # validated under the default limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # now 10000 px > 2 x limit
    [page] = list(iter_pages(src, LOW, pool=pool))
    assert page.encoded is None and "decompression bomb" in page.error.lower()
    monkeypatch.undo()
    [page] = list(iter_pages(src, LOW, pool=pool))
    assert page.error is None


async def test_aiter_pages_is_lazy_and_bounded() -> None:
    async with RenderPool(workers=2) as pool:
        stream = aiter_pages(make_pdf(10), LOW, pool=pool, prefetch=2)
        await asyncio.sleep(0.1)
        assert pool.submitted == 0
        consumed = 0
        async for page in stream:
            assert pool.submitted - consumed <= 2, (pool.submitted, consumed)
            assert page.index == consumed
            consumed += 1
            await asyncio.sleep(0.03)
        assert consumed == 10 and pool.submitted == 10


def test_streams_on_one_pool_share_its_window_and_each_keeps_one() -> None:
    """Streams rendering on one pool at once hold its window between them (each its share of
    ``prefetch``, at least one page), not a window each: the many calls at once of one
    AsyncClient keep as many rendered pages as one call would.  One stream has it whole."""
    with RenderPool(workers=2) as pool:
        first = iter_pages(make_pdf(12), LOW, pool=pool, prefetch=8)
        next(first)
        assert pool.submitted == 8  # alone: the whole window
        second = iter_pages(make_pdf(12), LOW, pool=pool, prefetch=8)
        next(second)
        assert pool.submitted == 12  # its share: 8 // 2
        next(first)
        assert pool.submitted == 12  # the first has 6 ahead, above its share of 4: nothing more
        many = [iter_pages(make_pdf(3), LOW, pool=pool, prefetch=8) for _ in range(10)]
        for stream in many:
            next(stream)
        assert pool.submitted == 12 + 2 + 2 + 8  # the 3rd and 4th stream 8 // 3 and 8 // 4, the rest one each
        for stream in [second, *many]:
            stream.close()  # type: ignore[attr-defined]
        next(first)
        assert pool.submitted == 24 + 2  # alone again: its 6 ahead topped up to the whole window
        assert [p.number for p in first] == list(range(4, 13))


def test_spilled_bytes_go_with_the_last_run_holding_them() -> None:
    """In-memory bytes are written to a file for the workers (and for an engine that reads a
    page again, e.g. its text layer); a run holds them while it lasts, and the file goes with
    the last run holding them: a long-lived pool keeps no file of a call that has ended.  Bytes
    streamed outside any run keep theirs until the pool closes."""
    data = make_pdf(3)
    (src,) = open_sources([data])
    with RenderPool(workers=2) as pool:
        with pool.holding([src]):
            with pool.holding([src]):
                assert [p.number for p in iter_pages(src, LOW, pool=pool)] == [1, 2, 3]
                assert pool._tmpdir is not None
                tmp = Path(pool._tmpdir)
                assert len(list(tmp.iterdir())) == 1  # streamed whole, still held
            assert len(list(tmp.iterdir())) == 1  # the other run still holds it
            assert [p.number for p in iter_pages(src, LOW, pool=pool)] == [1, 2, 3]
            assert len(list(tmp.iterdir())) == 1  # one file for the same bytes
        assert list(tmp.iterdir()) == []
        assert len(list(iter_pages(data, LOW, pool=pool))) == 3
        assert len(list(tmp.iterdir())) == 1  # held by no run: kept...
    assert not tmp.exists()  # ...until the pool closes


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_large_jpeg_downscaled_keeps_original_page_size(
    tmp_path: Path, orientation: int, pool: RenderPool
) -> None:
    img = Image.new("RGB", (2400, 1200), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 1200, 1200))  # stored: left half black
    exif = Image.Exif()
    exif[0x0112] = orientation
    f = tmp_path / "photo.jpg"
    img.save(f, "JPEG", exif=exif, quality=90)
    [page] = list(iter_pages(f, RenderSpec(dpi=None, longest_side=300), pool=pool))
    want_w, want_h = (1200, 2400) if orientation != 1 else (2400, 1200)
    assert (page.page_box.width, page.page_box.height) == (want_w, want_h)
    assert max(page.encoded.width, page.encoded.height) == 300
    assert page.render_scale == pytest.approx(300 / 2400)
    arr = np.asarray(page.image().convert("L")).astype(int)
    if orientation == 1:
        assert arr[:, :140].mean() < 20 and arr[:, 160:].mean() > 235
    elif orientation == 6:  # rotated clockwise: left half -> top half
        assert arr[:140].mean() < 20 and arr[160:].mean() > 235
    else:  # orientation 8, counter-clockwise: left half -> bottom half
        assert arr[160:].mean() < 20 and arr[:140].mean() > 235


# ---------------------------------------------------------------------------------------------
# through the API: one page renders in process
# ---------------------------------------------------------------------------------------------


async def _convert_via_sim(sources: list[tuple[Path, str | None]], **extra: object) -> list[object]:
    """Convert each (source, pages) through the generic openai backend and a simulated server."""
    import ocrclient
    from ocrclient.testing import DialectResponder, OpenAISimulator

    with OpenAISimulator(api_key=None, model="sim", responder=DialectResponder("plain")) as sim:
        over = {"backend": "openai", "base_url": sim.base_url, "base_url_env": "", "model": "sim",
                "cache": False, "render": {"dpi": 36}, **extra}
        return [await ocrclient.aconvert(source, pages=pages, **over) for source, pages in sources]


async def test_a_conversion_starts_no_render_processes(tmp_path: Path) -> None:
    """Converting one PNG, one page of a PDF, or two pages renders in this process: no render
    worker process appears while its pages are done.  One page renders inline; two pages in the
    pool's render threads (which shows the check can see the pool at work)."""
    import multiprocessing

    from ocrclient.scheduler import PageDone

    png = tmp_path / "one.png"
    Image.new("RGB", (300, 200), "white").save(png)
    pdf = tmp_path / "two.pdf"
    pdf.write_bytes(make_pdf(2))
    before = {p.pid for p in multiprocessing.active_children()}  # e.g. this module's pool
    new_children: dict[str, int] = {}
    render_threads: dict[str, int] = {}

    def on_event(event: object) -> None:
        if isinstance(event, PageDone):
            now = {p.pid for p in multiprocessing.active_children()}
            key = f"{Path(event.source).suffix} {event.page}"
            new_children[key] = max(new_children.get(key, 0), len(now - before))
            threads = [t for t in threading.enumerate() if t.name.startswith("ocrclient-render")]
            render_threads[key] = max(render_threads.get(key, 0), len(threads))

    one_png, pdf_page_2 = await _convert_via_sim([(png, None), (pdf, "2")], on_event=on_event)
    single = dict(new_children)
    new_children.clear()
    (both,) = await _convert_via_sim([(pdf, None)], on_event=on_event)
    for doc, n in ((one_png, 1), (pdf_page_2, 1), (both, 2)):
        assert [p.status for p in doc.pages] == ["ok"] * n  # type: ignore[attr-defined]
    assert single == {".png 1": 0, ".pdf 2": 0}, single
    assert set(new_children.values()) == {0}, new_children
    assert render_threads[".pdf 1"] >= 1 and render_threads[".pdf 2"] >= 1, render_threads


@pytest.mark.parametrize("pages", ["1", None], ids=["one page", "three pages"])
async def test_isolate_render_renders_in_worker_processes(tmp_path: Path, pages: str | None) -> None:
    """``isolate_render=True`` (the CLI's ``--isolate-render``) renders every page, even a single
    one, in worker processes of its own, and the pages come back the same."""
    import multiprocessing

    from ocrclient.scheduler import PageDone

    pdf = tmp_path / "three.pdf"
    pdf.write_bytes(make_pdf(3))
    before = {p.pid for p in multiprocessing.active_children()}
    seen: list[int] = []

    def on_event(event: object) -> None:
        if isinstance(event, PageDone):
            seen.append(len({p.pid for p in multiprocessing.active_children()} - before))

    (isolated,) = await _convert_via_sim([(pdf, pages)], on_event=on_event, isolate_render=True)
    (threaded,) = await _convert_via_sim([(pdf, pages)])
    assert seen and min(seen) >= 1, seen
    assert [p.markdown for p in isolated.pages] == [p.markdown for p in threaded.pages]  # type: ignore[attr-defined]
    assert [p.status for p in isolated.pages] == ["ok"] * (1 if pages else 3)  # type: ignore[attr-defined]
    assert not ({p.pid for p in multiprocessing.active_children()} - before)


def test_the_cli_passes_isolate_render_to_the_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import ocrclient.run as run
    from ocrclient.cli import app

    seen: list[bool] = []
    real = run.Conversion

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(bool(kwargs.get("isolate_render")))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(run, "Conversion", spy)
    short_outage("openai")  # (nothing listens at the URL: the run stops at once)
    png = tmp_path / "one.png"
    Image.new("RGB", (60, 40), "white").save(png)
    for flag in ([], ["--isolate-render"]):
        CliRunner().invoke(app, ["convert", str(png), "-o", str(tmp_path / "out"), "--backend", "openai",
                                 "--base-url", "http://127.0.0.1:9", "--model", "m", "--no-cache", "-q", *flag])
    assert seen == [False, True]


async def test_conversion_closes_its_render_pool_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each conversion closes its render pool (in-process or processes) before ``aconvert``
    returns, in a worker thread: joining render processes never blocks the event loop."""
    import threading

    closed_in: list[int] = []
    real_close = RenderPool.close

    def close(self: RenderPool) -> None:
        closed_in.append(threading.get_ident())
        real_close(self)

    monkeypatch.setattr(RenderPool, "close", close)
    png = tmp_path / "one.png"
    Image.new("RGB", (300, 200), "white").save(png)
    pdf = tmp_path / "two.pdf"
    pdf.write_bytes(make_pdf(2))
    await _convert_via_sim([(png, None), (pdf, None)])
    assert len(closed_in) == 2 and threading.get_ident() not in closed_in, closed_in


def test_long_documents_are_reopened_and_render_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pdfium keeps what it parsed while a document is open, so a renderer reopens a document
    after ``REOPEN_AFTER`` pages; pages rendered across the reopen are identical."""
    import pypdfium2 as pdfium

    from ocrclient.pages import pdfdocs

    monkeypatch.setattr(pdfdocs, "REOPEN_AFTER", 3)
    monkeypatch.setattr(pdfdocs, "PAGE_BUDGET_S", 1e9)  # (however long opening took)
    f = write(tmp_path / "long.pdf", make_pdf(8))
    [src] = open_sources([f])
    opened: list[object] = []
    real_open = pdfium.PdfDocument

    def spy(*args: object, **kwargs: object) -> object:
        opened.append(real_open(*args, **kwargs))  # type: ignore[arg-type]
        return opened[-1]

    monkeypatch.setattr(pdfium, "PdfDocument", spy)
    with RenderPool(workers=0) as inline:
        first = [p.encoded.data for p in iter_pages(src, LOW, pool=inline)]  # type: ignore[union-attr]
        again = [p.encoded.data for p in iter_pages(src, LOW, pool=inline)]  # type: ignore[union-attr]
    assert len(first) == 8 and first == again
    assert len(opened) == -(-16 // 3)  # one document object per 3 renders, not one for all 16


def _shipped_specs() -> list[tuple[str, RenderSpec]]:
    from ocrclient.config import resolve_config, shipped_profiles_dir
    from ocrclient.registry import load_dialect

    return [
        (p.stem, load_dialect(resolve_config(p.stem, model="m")).render)
        for p in sorted(shipped_profiles_dir().glob("*.toml"))
    ]


@pytest.mark.parametrize(("profile", "spec"), _shipped_specs())
def test_an_image_is_grown_no_further_than_its_own_pixels_or_min_side(profile: str, spec: RenderSpec) -> None:
    """A raster has no more detail than its pixels: a dpi-driven spec sends it at its own size,
    grown only as far as ``min_side`` asks (Chandra's 1024 minimum turned a 900 x 600 image
    into 2400 x 1600 at its 192 dpi, 4x the upload, for one pixel under the minimum)."""
    from ocrclient.pages.render import _image_size_for

    sizes = [(900, 600), (1500, 1023), (1500, 1024), (1023, 1500), (40, 30), (5000, 20),
             (20, 5000), (3000, 2000), (8000, 6000), (1, 1)]  # fmt: skip
    for w, h in sizes:
        tw, th = _image_size_for(spec, w, h)
        want_min = spec.pixel_size(w, h)  # what the spec asks at its own scale (budget, caps)
        if spec.dpi is None:  # an exact longest_side spec resizes as asked
            assert (tw, th) == want_min, (profile, w, h)
            continue
        # never more than the raster's own pixels, unless min_side asks for more ...
        grow = max(1.0, spec.min_side / min(w, h))
        assert tw <= max(w, round(w * grow)) + 1 and th <= max(h, round(h * grow)) + 1, (profile, w, h, tw, th)
        # ... and never more than the spec itself would give
        assert tw * th <= max(want_min[0] * want_min[1], w * h), (profile, w, h, tw, th)
        # min_side is honoured (within the budget) and the aspect ratio kept
        if min(w, h) < spec.min_side and w * h * grow * grow <= (spec.max_pixels or 10**12):
            assert min(tw, th) >= spec.min_side - 1, (profile, w, h, tw, th)
        assert abs(tw / th - w / h) <= max(w / h, h / w) * 0.02 + 1 / min(th, tw), (profile, w, h, tw, th)


@pytest.mark.parametrize("kind", sorted(inputs_module._IMAGES_NOT_TAKEN))
def test_a_folder_walk_names_the_images_of_a_kind_it_leaves_out(kind: str, tmp_path: Path) -> None:
    """A scan folder's GIFs (HEICs, ...) were left out without a word, while one named outright
    is refused saying why: the walk says which it passed over, once, and takes the rest; a file
    that is no image (notes, a JSON) is passed over silently, as before."""
    import warnings

    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), "white").save(scans / "a.png")
    (scans / "sub" / f"photo{kind}").write_bytes(b"\x00" * 16)  # (only its name is looked at)
    (scans / "notes.txt").write_text("not a document")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        sources = open_sources([scans])
    assert [Path(s.name).name for s in sources] == ["a.png"]
    lines = [str(w.message) for w in said]
    assert len(lines) == 1 and f"sub/photo{kind}" in lines[0] and kind.lstrip(".").upper() in lines[0], lines
    assert "notes.txt" not in lines[0]


@pytest.mark.parametrize("suffix", sorted(inputs_module.PDF_SUFFIXES | inputs_module.IMAGE_SUFFIXES))
def test_a_folder_walk_names_the_hidden_documents_it_leaves_out(suffix: str, tmp_path: Path) -> None:
    """A hidden PDF or image (``.x.pdf``, macOS's ``._x.pdf``) in a folder converted was left out
    without a word: the walk still leaves it out (as it leaves out hidden folders, as git and
    ripgrep do), and says so, once, naming it; a hidden file of no kind taken goes unnamed."""
    import warnings

    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    (scans / ".cache").mkdir()
    Image.new("RGB", (40, 30), "white").save(scans / "a.png")
    (scans / "sub" / f".draft{suffix}").write_bytes(b"\x00" * 16)  # (only its name is looked at)
    (scans / "sub" / ".notes").write_text("not a document")
    Image.new("RGB", (40, 30), "white").save(scans / ".cache" / "b.png")  # (a hidden folder: not walked)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        sources = open_sources([scans])
    assert [Path(s.name).name for s in sources] == ["a.png"]
    lines = [str(w.message) for w in said]
    assert len(lines) == 1 and f"sub/.draft{suffix}" in lines[0] and "1 hidden file(s)" in lines[0], lines
    assert ".notes" not in lines[0]


def _worker_pixel_limit() -> int:
    """The page image pixels our RunPod workers take (deploy/ocrworker: ``OCR_MAX_IMAGE_PIXELS``)."""
    import importlib
    import sys

    from .conftest import ROOT

    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        return int(importlib.import_module("ocrworker.envelope").Limits().max_image_pixels)
    finally:
        sys.path.remove(str(ROOT / "deploy"))


_SIZES = st.floats(min_value=1.0, max_value=30_000.0, allow_nan=False)


@settings(max_examples=400, deadline=None)
@given(w=_SIZES, h=_SIZES, dpi=st.one_of(st.none(), st.floats(min_value=1.0, max_value=600.0)),
       longest=st.one_of(st.none(), st.integers(min_value=16, max_value=40_000)),
       budget=st.one_of(st.none(), st.integers(min_value=10_000, max_value=80_000_000)),
       fmt=st.sampled_from(["png", "jpeg", "webp"]), min_side=st.integers(min_value=1, max_value=2048))  # fmt: skip
def test_a_page_never_renders_past_its_budget_its_formats_side_or_the_workers_limit(
    w: float, h: float, dpi: float | None, longest: int | None, budget: int | None, fmt: str, min_side: int
) -> None:
    """Every page size under every spec a profile or flag can give: at most the spec's pixel
    budget (and so the workers' 40 M limit: a page fitted to it was rounded to 40,005,625 pixels
    and refused with a 413), and no side longer than its format can hold (WebP 16383 px: a tall
    page failed to encode)."""
    from ocrclient.imaging import MAX_SIDE

    if dpi is None and longest is None:
        dpi = 150.0
    spec = RenderSpec(dpi=dpi, longest_side=longest, max_pixels=budget, format=fmt, min_side=min_side)  # type: ignore[arg-type]
    pw, ph = spec.pixel_size(w, h)
    assert pw >= 1 and ph >= 1
    assert pw * ph <= spec.budget <= WORKER_PIXELS, (pw, ph, spec)
    assert max(pw, ph) <= MAX_SIDE.get(fmt, 1 << 31), (pw, ph, spec)


WORKER_PIXELS = _worker_pixel_limit()


def test_a_tall_page_sent_as_webp_is_encoded(pool: RenderPool) -> None:
    """The corpus' 14,295 pt strip at a dpi profile's 144 as WebP: 28,590 px tall, past WebP's
    16383, failed as "cannot render (encoding error 5)"; it is sent at WebP's longest side."""
    data = make_pdf([{"w": 234, "h": 14295}])
    [page] = list(iter_pages(data, RenderSpec(dpi=144, format="webp"), pool=pool))
    assert page.error is None, page.error
    assert page.encoded.format == "webp" and page.encoded.height == 16383
