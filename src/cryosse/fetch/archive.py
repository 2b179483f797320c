"""Archive layouts and the cache: EMDB maps and headers, PDB models, by id.

Files are laid out as the official archives lay them out. A named mirror (config
``emdb.mirror``, ``--mirror``) gives each archive's base URLs and its layout (:data:`MIRRORS`):

- EMDB map:    ``{emdb}/structures/EMD-1234/map/emd_1234.map.gz`` (every mirror)
- EMDB header: ``{emdb}/structures/EMD-1234/header/emd-1234.xml`` (every mirror)
- PDB model, divided layout (wwPDB, PDBe/EBI, PDBj): ``{pdb}/mf/3mfp.cif.gz`` (the second and
  third characters from the end; ``pdb_00003mfp`` is served as ``3mfp``)
- PDB model, flat layout (RCSB ``files.rcsb.org/download``): ``{pdb}/3MFP.cif.gz``

``custom`` (the default) takes ``emdb_url`` and ``pdb_url`` (a local copy, ``file://``, a
test server) with the divided layout.

Downloads go into a cache keyed by id (``{cache}/emdb/EMD-1234/…``, ``{cache}/pdb/1mfp.cif.gz``).
A download is written to ``<name>.part``, resumed with an HTTP ``Range`` request after a
dropped connection or a killed process, checked (gzip stream complete, MRC header consistent
with the data size and the EMDB header, size as announced, XML well formed, mmCIF with a data
block and atoms) and only then renamed into place, so the cache never holds a corrupt file.
Every download is bounded (:mod:`.transport`); a map is refused before its download when its
header announces more than ``max_map_mb``. Timeouts, 5xx answers, dropped connections and
damaged gzip streams are retried with exponential backoff and jitter; 404/410, content that
fails a check and oversized files are not, and end in a one-line message. A per-host
semaphore limits concurrent connections to one host.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import CryosseError, InputError
from ..ids import emdb_id, pdb_archive_name, pdb_hash, pdb_id
from ..io import write_json
from .checks import announced_bound, check_cif_gz, check_mrc_gz, check_xml
from .emdb import DEFAULT_EMDB_API, parse_emdb_header
from .transport import FetchConfig, FetchError, NotFound, TooLarge, download
from .transport import base_url as _base

DEFAULT_EMDB_URL = "https://ftp.ebi.ac.uk/pub/databases/emdb"
DEFAULT_PDB_URL = "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF"
#: the most bytes an EMDB header may have (real ones are tens of kB)
MAX_HEADER_BYTES = 16_000_000


@dataclass(frozen=True)
class Mirror:
    """Base URLs and layout of one archive mirror: EMDB (``structures/EMD-N/…`` under
    ``emdb``) and PDB models under ``pdb``, ``divided`` (``/<hash>/<id>.cif.gz``) or ``flat``
    (``/<ID>.cif.gz``)."""

    name: str
    emdb: str
    pdb: str
    pdb_layout: str = "divided"

    def rebased(self, url: str) -> "Mirror":
        """The same layout under another host (a local copy of this mirror, a test server):
        ``url`` replaces the scheme and host of both base URLs."""
        from urllib.parse import urlparse

        def move(u):
            return _base(url) + urlparse(u).path
        return replace(self, emdb=move(self.emdb), pdb=move(self.pdb))


#: The named mirrors, with each one's real layout (wwPDB "PDB Archive Downloads"; the EMDB
#: archive is mirrored at each wwPDB site under ``pub/emdb``).
MIRRORS = {
    "ebi": Mirror("ebi", "https://ftp.ebi.ac.uk/pub/databases/emdb",
                  "https://ftp.ebi.ac.uk/pub/databases/pdb/data/structures/divided/mmCIF"),
    "wwpdb": Mirror("wwpdb", "https://files.wwpdb.org/pub/emdb",
                    "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF"),
    "rcsb": Mirror("rcsb", "https://files.rcsb.org/pub/emdb", "https://files.rcsb.org/download", "flat"),
    "pdbj": Mirror("pdbj", "https://files.pdbj.org/pub/emdb",
                   "https://files.pdbj.org/pub/pdb/data/structures/divided/mmCIF"),
}
MIRROR_NAMES = ("custom", *MIRRORS)


@dataclass(frozen=True)
class ArchiveConfig:
    """Where files come from and go (config ``emdb``): the cache folder, a named ``mirror``
    (:data:`MIRRORS`) or ``custom``: the archives' base URLs ``emdb_url`` and ``pdb_url`` (any
    copy in the EMDB and divided mmCIF layouts; ``file://`` for a local copy)."""

    cache: str = "resources"
    emdb_url: str = DEFAULT_EMDB_URL
    pdb_url: str = DEFAULT_PDB_URL
    api_url: str = DEFAULT_EMDB_API
    mirror: str = "custom"

    def __post_init__(self):
        if self.mirror not in MIRROR_NAMES:
            raise ValueError(f"unknown mirror {self.mirror!r} (one of {', '.join(MIRROR_NAMES)})")

    def resolve(self) -> Mirror:
        """The mirror to fetch from: the named preset, or ``emdb_url``/``pdb_url``."""
        if self.mirror != "custom":
            return MIRRORS[self.mirror]
        return Mirror("custom", _base(self.emdb_url, "emdb_url"), _base(self.pdb_url, "pdb_url"))


def as_mirror(where: "str | Mirror", pdb: bool = False) -> Mirror:
    """A :class:`Mirror` from a mirror, a preset name, or a base URL (custom, divided layout)."""
    if isinstance(where, Mirror):
        return where
    if where in MIRRORS:
        return MIRRORS[where]
    base = _base(where, "pdb_url" if pdb else "emdb_url")
    return Mirror("custom", base, base)


# ----------------------------------------------------------------------------- URLs

def emdb_map_url(base: "str | Mirror", eid: str) -> str:
    n = emdb_id(eid)[4:]
    return f"{as_mirror(base).emdb}/structures/EMD-{n}/map/emd_{n}.map.gz"


def emdb_header_url(base: "str | Mirror", eid: str) -> str:
    n = emdb_id(eid)[4:]
    return f"{as_mirror(base).emdb}/structures/EMD-{n}/header/emd-{n}.xml"


def pdb_model_url(base: "str | Mirror", pid: str) -> str:
    m = as_mirror(base, pdb=True)
    name = pdb_archive_name(pid)
    if m.pdb_layout == "flat":
        return f"{m.pdb}/{name.upper() if len(name) == 4 else name}.cif.gz"
    return f"{m.pdb}/{pdb_hash(pid)}/{name}.cif.gz"


# ----------------------------------------------------------------------------- items

def emdb_paths(cache: str | os.PathLike, eid: str) -> dict[str, Path]:
    eid = emdb_id(eid)
    n = eid[4:]
    d = Path(cache) / "emdb" / eid
    return {"map": d / f"emd_{n}.map.gz", "header": d / f"emd-{n}.xml"}


def pdb_path(cache: str | os.PathLike, pid: str) -> Path:
    """The cached model: one file per entry, whichever spelling of its id (``pdb_00001abc``
    and ``1abc`` share ``1abc.cif.gz``)."""
    return Path(cache) / "pdb" / f"{pdb_archive_name(pid)}.cif.gz"


_NOT_RELEASED = {"OBS": "obsolete", "WDRN": "withdrawn"}


def fetch_emdb(eid: str, cache: str | os.PathLike, emdb_url: "str | Mirror" = DEFAULT_EMDB_URL,
               cfg: FetchConfig = FetchConfig()) -> dict[str, Path]:
    """Header XML and map of an EMDB entry into the cache; paths by kind. The map is refused
    before its download when the header's ``map/@size_kbytes`` is over ``cfg.max_map_mb``,
    and its download and inflation are bounded by that size."""
    eid = emdb_id(eid)
    paths = emdb_paths(cache, eid)
    download(emdb_header_url(emdb_url, eid), paths["header"], what=f"{eid} header",
             check=check_xml, cfg=cfg, max_bytes=MAX_HEADER_BYTES)
    hdr = parse_emdb_header(paths["header"])
    status = hdr.status.upper()
    if status in _NOT_RELEASED:
        raise NotFound(f"{eid}: entry is {_NOT_RELEASED[status]} (status {hdr.status})")
    if status and status != "REL":
        raise NotFound(f"{eid}: entry is not released (status {hdr.status})")
    announced = hdr.map_bytes
    if announced is not None and announced > cfg.max_map_bytes:
        for stale in (paths["map"], paths["map"].with_name(paths["map"].name + ".part")):
            stale.unlink(missing_ok=True)  # cached or begun under a larger limit: not used now
        raise TooLarge(f"{eid} map: {announced / 1e6:.0f} MB uncompressed (header map/@size_kbytes "
                       f"{hdr.map_kbytes}), over max_map_mb {cfg.max_map_mb:g}; not downloaded")
    bound = min(b for b in (announced_bound(announced), announced_bound(cfg.max_map_bytes)) if b is not None)
    download(emdb_map_url(emdb_url, eid), paths["map"], what=f"{eid} map",
             check=lambda p: check_mrc_gz(p, cfg.max_map_bytes, announced), cfg=cfg, max_bytes=bound)
    return paths


def fetch_pdb(pid: str, cache: str | os.PathLike, pdb_url: "str | Mirror" = DEFAULT_PDB_URL,
              cfg: FetchConfig = FetchConfig()) -> Path:
    """The mmCIF model of a PDB entry into the cache (inflated size at most ``max_file_mb``)."""
    pid = pdb_id(pid)
    return download(pdb_model_url(pdb_url, pid), pdb_path(cache, pid), what=f"PDB {pid} model",
                    check=lambda p: check_cif_gz(p, cfg.max_file_bytes), cfg=cfg)


def fetch_entry(eid: str, cache: str | os.PathLike, *, pdb: str | None = None,
                emdb_url: "str | Mirror" = DEFAULT_EMDB_URL, pdb_url: "str | Mirror" = DEFAULT_PDB_URL,
                cfg: FetchConfig = FetchConfig()) -> dict:
    """Map, header and fitted model of one EMDB entry; a record (``status`` ok or failed,
    ``reason``, file paths, header facts) that never raises for download failures."""
    eid = emdb_id(eid)
    rec = {"emdb": eid, "pdb": pdb_id(pdb) if pdb else "", "status": "failed", "reason": ""}
    try:
        paths = fetch_emdb(eid, cache, emdb_url, cfg)
        hdr = parse_emdb_header(paths["header"])
        rec.update(map=str(paths["map"]), header=str(paths["header"]),
                   resolution_a=hdr.resolution_a, contour_level=hdr.contour_level, map_kbytes=hdr.map_kbytes,
                   fitted_pdb_ids=list(hdr.fitted_pdb_ids))
        if not rec["pdb"]:
            if not hdr.fitted_pdb_ids:
                raise FetchError(f"{eid}: header lists no fitted PDB model")
            rec["pdb"] = hdr.fitted_pdb_ids[0]
        rec["model"] = str(fetch_pdb(rec["pdb"], cache, pdb_url, cfg))
        rec.update(status="ok")
    except (FetchError, InputError) as exc:
        rec["reason"] = str(exc)
    return rec


def fetch_many(items: list[tuple[str, str]], cache: str | os.PathLike, *,
               emdb_url: "str | Mirror" = DEFAULT_EMDB_URL, pdb_url: "str | Mirror" = DEFAULT_PDB_URL,
               cfg: FetchConfig = FetchConfig(), workers: int = 4) -> list[dict]:
    """Fetch ``(kind, id)`` items (kind ``emdb``, ``pdb`` or ``entry``) concurrently (at most
    ``cfg.per_host`` connections per host). One record per item, failures included; the run
    goes on past failures."""

    def one(item):
        kind, ident = item
        try:
            if kind == "emdb":
                paths = fetch_emdb(ident, cache, emdb_url, cfg)
                return {"kind": kind, "id": emdb_id(ident), "status": "ok",
                        "files": [str(p) for p in paths.values()]}
            if kind == "pdb":
                return {"kind": kind, "id": pdb_id(ident), "status": "ok",
                        "files": [str(fetch_pdb(ident, cache, pdb_url, cfg))]}
            rec = fetch_entry(ident, cache, emdb_url=emdb_url, pdb_url=pdb_url, cfg=cfg)
            return {"kind": kind, "id": rec["emdb"], **rec}
        except CryosseError as exc:
            return {"kind": kind, "id": ident, "status": "failed", "reason": str(exc)}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, items))


def write_record(path: str | os.PathLike, rec: dict) -> None:
    """Write a record of :func:`fetch_entry` (JSON, atomically)."""
    write_json(path, rec)


def read_record(path: str | os.PathLike) -> dict:
    """Read a record of :func:`fetch_entry`; ids validated again before they name files."""
    p = Path(path)
    try:
        rec = json.loads(p.read_text())
        emdb_id(rec["emdb"])
    except (OSError, ValueError, KeyError, InputError) as exc:
        raise InputError(p, f"not a fetch record ({exc})") from None
    return rec
