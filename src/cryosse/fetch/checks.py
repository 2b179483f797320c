"""Content checks a downloaded file passes before it enters the cache, all streamed (a map is
never held in memory to check it): the gzip stream complete (CRC and length), an MRC map's
data size equal to what its MRC header announces and within what the EMDB header announces
(inflation stops as soon as it goes past: a decompression bomb costs at most that much CPU
and no memory), an mmCIF with a ``data_`` block before its first category and atom sites,
XML well formed and without a DTD (no entity expansion, no external entities).

A damaged transfer (gzip CRC or truncated stream) is transient and retried; content that
fails a check once fails it again (a valid gzip of something that is not a map, a map larger
than announced): those are :class:`FetchError` and not retried.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from xml.etree import ElementTree

from .transport import FetchError, TooLarge, _Retryable

_STEP = 1 << 20  # inflated bytes per read: the memory a check holds


def _inflate(path: Path, limit: int, first: int = 0):
    """Yield the inflated bytes of ``path`` in blocks of at most 1 MiB; :class:`TooLarge` as
    soon as more than ``limit`` bytes come out. ``first``: size of the first block."""
    n = 0
    try:
        with gzip.open(path, "rb") as fh:
            size = first or _STEP
            while True:
                b = fh.read(min(size, limit - n + 1))
                if not b:
                    return
                n += len(b)
                if n > limit:
                    raise TooLarge(f"inflates past {limit} bytes, the most its headers announce "
                                   "(decompression bomb?); stopped")
                yield b
                size = _STEP
    except (OSError, EOFError, zlib.error) as exc:
        raise _Retryable(f"corrupt or incomplete gzip stream ({' '.join(str(exc).split())})",
                         keep_part=False) from None


def check_gzip(path: Path, limit: int = 1 << 62) -> int:
    """Decompress ``path`` to the end (CRC and length checked, at most ``limit`` bytes out);
    the uncompressed size."""
    return sum(len(b) for b in _inflate(path, limit))


_MODE_BYTES = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}


def mrc_size(head: bytes) -> tuple[int, dict]:
    """File size an MRC header announces (1024 + extended header + nx·ny·nz·mode bytes)."""
    if len(head) < 1024:
        raise FetchError("MRC header shorter than 1024 bytes")
    for endian in "<>":
        nx, ny, nz, mode = struct.unpack(endian + "4i", head[:16])
        if mode in _MODE_BYTES and 0 < nx < 100000 and 0 < ny < 100000 and 0 < nz < 100000:
            break
    else:
        raise FetchError("not an MRC map (bad dimensions or mode in the header)")
    nsymbt = struct.unpack(endian + "i", head[92:96])[0]
    if nsymbt < 0:
        raise FetchError(f"not an MRC map (extended header size {nsymbt})")
    return 1024 + nsymbt + nx * ny * nz * _MODE_BYTES[mode], {"nx": nx, "ny": ny, "nz": nz, "mode": mode}


def announced_bound(announced: int | None) -> int | None:
    """Most bytes a map whose EMDB header says ``announced`` bytes (``size_kbytes`` × 1000)
    may have: 5 % and 1 MB over it (kB rounding, kB = 1000 or 1024, extended headers)."""
    return None if announced is None else int(announced * 1.05) + 1_000_000


def check_mrc_gz(path: Path, max_bytes: int | None = None, announced: int | None = None) -> dict:
    """Check a gzipped MRC map, streamed: complete gzip stream, sane header, data size =
    what the MRC header announces, which must be within ``max_bytes`` (the map size limit) and
    within the EMDB header's ``announced`` size; inflation stops past the smallest of them."""
    bound = min(b for b in (max_bytes, announced_bound(announced), 1 << 62) if b is not None)
    blocks = _inflate(path, bound, first=1024)
    head = next(blocks, b"")
    while len(head) < 1024:
        more = next(blocks, b"")
        if not more:
            break
        head += more
    expected, facts = mrc_size(head)
    if announced is not None and expected > announced_bound(announced):
        raise TooLarge(f"MRC header announces {expected} bytes, the EMDB header {announced} "
                       "(map/@size_kbytes)")
    if max_bytes is not None and expected > max_bytes:
        raise TooLarge(f"MRC header announces {expected / 1e6:.0f} MB, over the limit of {max_bytes / 1e6:g} MB")
    total = len(head)
    for b in blocks:
        total += len(b)
        if total > expected:
            raise TooLarge(f"inflates past the {expected} bytes its MRC header announces "
                           "(decompression bomb?); stopped")
    if total != expected:
        raise FetchError(f"MRC data size {total} bytes, header announces {expected}")
    return facts


def check_cif_gz(path: Path, max_bytes: int | None = None) -> None:
    """A gzipped mmCIF: comment (``#``, e.g. the ``#\\#CIF_1.1`` magic) and blank lines, then a
    ``data_`` block header before anything else, and an ``_atom_site`` category somewhere
    (streamed; at most ``max_bytes`` inflated)."""
    state, carry = "head", b""
    for block in _inflate(path, max_bytes or (1 << 62)):
        if state == "done":
            continue  # read to the end: the gzip CRC and length
        buf = carry + block
        if state == "head":
            *lines, carry = buf.split(b"\n")
            for k, ln in enumerate(lines):
                s = ln.strip()
                if not s or s.startswith(b"#"):
                    continue
                if s[:5].lower() == b"data_" and len(s) > 5:
                    state, buf, carry = "body", b"\n".join(lines[k + 1:] + [carry]), b""
                    break
                what = "a category" if s[:1] == b"_" or s[:5].lower() == b"loop_" else repr(s[:40].decode("latin-1"))
                raise FetchError(f"not an mmCIF file ({what} before any data_ block)")
            else:
                if len(carry) > _STEP:
                    raise FetchError("not an mmCIF file (no data_ block in its first MiB)")
                continue
        if b"_atom_site." in buf:
            state = "done"
        carry = buf[-16:]
    if state == "head":
        raise FetchError("not an mmCIF file (no data_ block)")
    if state != "done":
        raise FetchError("mmCIF without atoms (no _atom_site category)")


def _refuse_dtd(*_):
    raise FetchError("XML with a DTD refused (entities are not expanded)")


def parse_xml(path: Path):
    """The root element of an XML file that has no DTD: a first pass with expat stops at a
    document type declaration (entity definitions: billion laughs, external entities) before
    anything is expanded; EMDB headers have none."""
    from xml.parsers import expat

    p = expat.ParserCreate()
    p.StartDoctypeDeclHandler = _refuse_dtd
    p.EntityDeclHandler = _refuse_dtd
    try:
        with open(path, "rb") as fh:
            p.ParseFile(fh)
    except expat.ExpatError as exc:
        raise ElementTree.ParseError(str(exc)) from None
    return ElementTree.parse(path).getroot()


def check_xml(path: Path) -> None:
    try:
        parse_xml(path)
    except ElementTree.ParseError as exc:
        raise FetchError(f"malformed XML ({exc})") from None
