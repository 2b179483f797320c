"""Archive layouts and the cache: EMDB maps and headers, PDB models, by id.

Files are laid out as the official archives lay them out, under a base URL that any mirror
(EBI, RCSB, PDBj, a local copy) can provide:

- EMDB map:    ``{emdb_url}/structures/EMD-1234/map/emd_1234.map.gz``
- EMDB header: ``{emdb_url}/structures/EMD-1234/header/emd-1234.xml``
- PDB model:   ``{pdb_url}/mf/1mfp.cif.gz`` (``divided/mmCIF`` layout: middle two characters)

Downloads go into a cache keyed by id (``{cache}/emdb/EMD-1234/…``, ``{cache}/pdb/1mfp.cif.gz``).
A download is written to ``<name>.part``, resumed with an HTTP ``Range`` request after a
dropped connection or a killed process, checked (gzip stream complete, MRC header consistent
with the data size, size as announced, XML well formed) and only then renamed into place, so
the cache never holds a corrupt file. Timeouts, 5xx answers, dropped connections and failed
checks are retried with exponential backoff and jitter; 404/410 are not retried and end in a
clear message. A per-host semaphore limits concurrent connections to one host.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import CryosseError, InputError
from ..ids import emdb_id, pdb_id
from ..io import write_json
from .checks import check_cif_gz, check_mrc_gz, check_xml
from .emdb import DEFAULT_EMDB_API, parse_emdb_header
from .transport import FetchConfig, FetchError, NotFound, download
from .transport import base_url as _base

DEFAULT_EMDB_URL = "https://ftp.ebi.ac.uk/pub/databases/emdb"
DEFAULT_PDB_URL = "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF"


@dataclass(frozen=True)
class ArchiveConfig:
    """Where files come from and go (config ``emdb``): the cache folder and the archives' base
    URLs (any mirror with the same layout; ``file://`` for a local copy)."""

    cache: str = "resources"
    emdb_url: str = DEFAULT_EMDB_URL
    pdb_url: str = DEFAULT_PDB_URL
    api_url: str = DEFAULT_EMDB_API



# ----------------------------------------------------------------------------- URLs

def emdb_map_url(base: str, eid: str) -> str:
    n = emdb_id(eid)[4:]
    return f"{_base(base)}/structures/EMD-{n}/map/emd_{n}.map.gz"


def emdb_header_url(base: str, eid: str) -> str:
    n = emdb_id(eid)[4:]
    return f"{_base(base)}/structures/EMD-{n}/header/emd-{n}.xml"


def pdb_model_url(base: str, pid: str) -> str:
    p = pdb_id(pid)
    return f"{_base(base)}/{p[1:3]}/{p}.cif.gz"


# ----------------------------------------------------------------------------- items

def emdb_paths(cache: str | os.PathLike, eid: str) -> dict[str, Path]:
    eid = emdb_id(eid)
    n = eid[4:]
    d = Path(cache) / "emdb" / eid
    return {"map": d / f"emd_{n}.map.gz", "header": d / f"emd-{n}.xml"}


def pdb_path(cache: str | os.PathLike, pid: str) -> Path:
    return Path(cache) / "pdb" / f"{pdb_id(pid)}.cif.gz"


def fetch_emdb(eid: str, cache: str | os.PathLike, emdb_url: str = DEFAULT_EMDB_URL,
               cfg: FetchConfig = FetchConfig()) -> dict[str, Path]:
    """Header XML and map of an EMDB entry into the cache; paths by kind."""
    eid = emdb_id(eid)
    paths = emdb_paths(cache, eid)
    download(emdb_header_url(emdb_url, eid), paths["header"], what=f"{eid} header",
             check=check_xml, cfg=cfg)
    hdr = parse_emdb_header(paths["header"])
    if hdr.status.upper() in ("OBS", "WDRN"):
        raise NotFound(f"{eid}: entry is {'obsolete' if hdr.status.upper() == 'OBS' else 'withdrawn'}"
                       f" (status {hdr.status})")
    download(emdb_map_url(emdb_url, eid), paths["map"], what=f"{eid} map", check=check_mrc_gz,
             cfg=cfg)
    return paths


def fetch_pdb(pid: str, cache: str | os.PathLike, pdb_url: str = DEFAULT_PDB_URL,
              cfg: FetchConfig = FetchConfig()) -> Path:
    """The mmCIF model of a PDB entry into the cache."""
    pid = pdb_id(pid)
    return download(pdb_model_url(pdb_url, pid), pdb_path(cache, pid), what=f"PDB {pid} model",
                    check=check_cif_gz, cfg=cfg)


def fetch_entry(eid: str, cache: str | os.PathLike, *, pdb: str | None = None,
                emdb_url: str = DEFAULT_EMDB_URL, pdb_url: str = DEFAULT_PDB_URL,
                cfg: FetchConfig = FetchConfig()) -> dict:
    """Map, header and fitted model of one EMDB entry; a record (``status`` ok or failed,
    ``reason``, file paths, header facts) that never raises for download failures."""
    eid = emdb_id(eid)
    rec = {"emdb": eid, "pdb": pdb_id(pdb) if pdb else "", "status": "failed", "reason": ""}
    try:
        paths = fetch_emdb(eid, cache, emdb_url, cfg)
        hdr = parse_emdb_header(paths["header"])
        rec.update(map=str(paths["map"]), header=str(paths["header"]),
                   resolution_a=hdr.resolution_a, contour_level=hdr.contour_level,
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
               emdb_url: str = DEFAULT_EMDB_URL, pdb_url: str = DEFAULT_PDB_URL,
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
