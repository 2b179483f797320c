"""Content checks a downloaded file passes before it enters the cache: gzip stream complete,
MRC header consistent with the data size, mmCIF and XML well formed."""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from xml.etree import ElementTree

from .transport import _Retryable

# ----------------------------------------------------------------------------- checks

def check_gzip(path: Path) -> int:
    """Decompress ``path`` to the end (CRC and length checked); the uncompressed size."""
    n = 0
    try:
        with gzip.open(path, "rb") as fh:
            while True:
                b = fh.read(1 << 20)
                if not b:
                    break
                n += len(b)
    except (OSError, EOFError, zlib.error) as exc:
        raise _Retryable(f"corrupt or incomplete gzip stream ({' '.join(str(exc).split())})",
                         keep_part=False) from None
    return n


_MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}


def check_mrc_gz(path: Path) -> dict:
    """Check a gzipped MRC map: complete gzip stream, sane header, data size = nx*ny*nz*mode."""
    with gzip.open(path, "rb") as fh:
        try:
            head = fh.read(1024)
        except (OSError, EOFError, zlib.error):
            head = b""
    total = check_gzip(path)
    if len(head) < 1024:
        raise _Retryable("MRC header shorter than 1024 bytes", keep_part=False)
    for endian in "<>":
        nx, ny, nz, mode = struct.unpack(endian + "4i", head[:16])
        if mode in _MODE_BYTES and 0 < nx < 100000 and 0 < ny < 100000 and 0 < nz < 100000:
            break
    else:
        raise _Retryable("not an MRC map (bad dimensions or mode in the header)", keep_part=False)
    nsymbt = struct.unpack(endian + "i", head[92:96])[0]
    expected = 1024 + nsymbt + nx * ny * nz * _MODE_BYTES[mode]
    if total != expected:
        raise _Retryable(f"MRC data size {total} bytes, header announces {expected}", keep_part=False)
    return {"nx": nx, "ny": ny, "nz": nz, "mode": mode}


def check_cif_gz(path: Path) -> None:
    check_gzip(path)
    with gzip.open(path, "rt", errors="replace") as fh:
        first = fh.readline()
    if not first.startswith("data_"):
        raise _Retryable("not an mmCIF file (no data_ block)", keep_part=False)


def check_xml(path: Path) -> None:
    try:
        ElementTree.parse(path)
    except ElementTree.ParseError as exc:
        raise _Retryable(f"malformed XML ({exc})", keep_part=False) from None
