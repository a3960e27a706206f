"""Run pip as if on a container image's Python: ``python pip_for_image.py 3.12 install --dry-run …``.

Used by test_deploy_pins.py. Two adjustments to pip, nothing else changes in how it resolves:

* Environment markers (``; python_version > "3.11"``) are evaluated for the image's Python on
  Linux x86_64. pip's ``--python-version`` / ``--platform`` only choose wheel tags and check
  ``Requires-Python``; markers would otherwise follow the interpreter running pip.
* A wheel whose index entry offers no PEP 658 ``.metadata`` file is streamed once and only its
  ``*.dist-info/METADATA`` is kept, where pip would store the whole wheel until it exits (the
  registry mirror these machines reach advertises no ``.metadata`` files and ignores range
  requests, so resolving a vLLM set would otherwise park ~5 GB of CUDA wheels in /tmp per set).
  pip's own path (``--use-feature=fast-deps``) needs range requests; this one reads the zip's
  local headers in order. A wheel it cannot read that way is left to pip.
"""

from __future__ import annotations

import struct
import sys
import zlib
from typing import IO, Any

from pip._vendor.packaging import markers

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_CHUNK = 1 << 20


def _read(raw: IO[bytes], n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = raw.read(min(n - len(out), _CHUNK))
        if not chunk:
            raise EOFError("wheel ended early")
        out += chunk
    return bytes(out)


def metadata_from_stream(raw: IO[bytes]) -> bytes | None:
    """``<name>.dist-info/METADATA`` of the wheel streamed in ``raw``; None if it cannot be read
    in order (an entry with a data descriptor, zip64 sizes, or no METADATA before the index)."""
    while True:
        sig, _ver, flags, method, _t, _d, _crc, csize, _usize, nlen, xlen = _LOCAL_HEADER.unpack(
            _read(raw, _LOCAL_HEADER.size)
        )
        if sig != b"PK\x03\x04" or flags & 0x08 or csize == 0xFFFFFFFF:
            return None
        name = _read(raw, nlen).decode("utf-8", "replace")
        _read(raw, xlen)
        parts = name.split("/")
        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
            data = _read(raw, csize)
            if method == 8:
                return zlib.decompress(data, -15)
            return data if method == 0 else None
        while csize:
            csize -= len(_read(raw, min(csize, _CHUNK)))


def for_image(python: str) -> None:
    """Patch this process's pip (before pip's commands are imported) for ``python`` on Linux x86_64."""
    host_environment = markers.default_environment

    def image_environment() -> dict[str, str]:
        env = dict(host_environment())
        env.update(
            python_version=python,
            python_full_version=f"{python}.0",
            implementation_name="cpython",
            implementation_version=f"{python}.0",
            platform_python_implementation="CPython",
            sys_platform="linux",
            platform_system="Linux",
            os_name="posix",
            platform_machine="x86_64",
        )
        return env

    markers.default_environment = image_environment

    from pip._internal.metadata import get_metadata_distribution
    from pip._internal.models.link import Link
    from pip._internal.models.wheel import Wheel
    from pip._internal.operations.prepare import RequirementPreparer

    def metadata_from_wheel_stream(self: RequirementPreparer, link: Link) -> Any:
        if link.is_file or not link.is_wheel:
            return None
        url = link.url.split("#", 1)[0]
        with self._session.get(url, stream=True, headers={"Accept-Encoding": "identity"}) as resp:
            resp.raise_for_status()
            try:
                contents = metadata_from_stream(resp.raw)
            except (EOFError, struct.error, zlib.error):
                contents = None
            while resp.raw.read(_CHUNK):  # the rest (RECORD, zip index) is small; read to the end
                pass  # so the connection goes back to the pool instead of a new TLS handshake
        if contents is None:
            return None
        return get_metadata_distribution(contents, link.filename, Wheel(link.filename).name)

    RequirementPreparer._fetch_metadata_using_lazy_wheel = metadata_from_wheel_stream


if __name__ == "__main__":
    for_image(sys.argv[1])
    from pip._internal.cli.main import main

    sys.exit(main(sys.argv[2:]))
