"""The inputs of a run: the structures table (simulated entries), the experimental entries
(EMDB ids from the config or a query table) and the configured maps to segment, validated;
per-entry simulation parameters. No side effects."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..ids import CHAIN_ID, ENTRY_ID, MAP_ID, PDB_ID
from ..io import read_tsv

__all__ = ["Entry", "ExperimentalEntry", "load_structures", "experimental_entries",
           "resolution_for", "sample_id", "predict_maps"]



@dataclass(frozen=True)
class Entry:
    entry: str
    path: str
    chains: tuple[str, ...]
    pdb_id: str


def load_structures(table: str | os.PathLike, entries: list[str] | None = None) -> list[Entry]:
    """Entries of a structures table (TSV with columns entry, file, chains, pdb_id), validated.

    ``file`` is relative to the table's folder and must stay inside it; ids must be plain
    (letters, digits, '-'), so they are safe in paths and wildcards. An entry's ``path`` is the
    table's path as given joined with ``file`` (relative when the table's path is).
    """
    p = Path(table)
    rows = read_tsv(p)
    root = p.resolve().parent
    out = []
    for k, r in enumerate(rows, start=2):
        for col, v in r.items():  # other characters are safe in a file name: rules quote every value
            if isinstance(v, str) and re.search(r"[\x00-\x1f\x7f]", v):
                raise InputError(p, f"line {k}: column {col!r} has control characters: {v!r}")
        for col in ("entry", "file", "chains"):
            if not r.get(col):
                raise InputError(p, f"line {k}: missing column {col!r}")
        if not ENTRY_ID.match(r["entry"]):
            raise InputError(p, f"line {k}: invalid entry id {r['entry']!r}")
        chains = tuple(r["chains"].split(","))
        for c in chains:
            if not CHAIN_ID.match(c):
                raise InputError(p, f"line {k}: invalid chain id {c!r}")
        pdb_id = r.get("pdb_id") or "-"
        if not PDB_ID.match(pdb_id):
            raise InputError(p, f"line {k}: invalid PDB id {pdb_id!r}")
        f = (root / r["file"]).resolve()
        if root not in f.parents:
            raise InputError(p, f"line {k}: file {r['file']!r} is outside the table's folder")
        if not f.is_file():
            raise InputError(p, f"line {k}: no such file {r['file']!r}")
        # as given (relative to the working folder when the table's path is), so that a copied
        # or moved work folder records the same paths and Snakemake plans nothing
        out.append(Entry(r["entry"], os.path.normpath(p.parent / r["file"]), chains, pdb_id))
    names = [e.entry for e in out]
    if len(set(names)) != len(names):
        raise InputError(p, "entry ids are not unique")
    if entries:
        unknown = sorted(set(entries) - set(names))
        if unknown:
            raise InputError(p, f"config 'entries' names unknown entries: {', '.join(unknown)}")
        out = [e for e in out if e.entry in set(entries)]
    return out


def resolution_for(entry: str, seed: int, lo: float, hi: float) -> float:
    """A resolution in [lo, hi] Å, fixed for an entry and a seed (0.1 Å steps)."""
    h = int(hashlib.sha256(f"{seed}:{entry}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return round(lo + (hi - lo) * h, 1)


def sample_id(entry: str, chain: str) -> str:
    return f"{entry}_{chain}"


def predict_maps(maps: list[dict]) -> dict[str, dict]:
    """The ``predict.maps`` entries of the config by id (``id``, or the file name without
    ``.gz`` and the map extension); ids must be plain and unique."""
    out = {}
    for k, m in enumerate(maps):
        name = Path(m["path"]).name
        name = re.sub(r"\.gz$", "", name)
        name = re.sub(r"\.(mrc|map|ccp4|mrcs)$", "", name, flags=re.I)
        mid = m.get("id") or name
        if not MAP_ID.match(mid):
            raise InputError("config predict.maps", f"entry {k}: {mid!r} is not a plain id: set 'id'")
        if mid in out:
            raise InputError("config predict.maps", f"entry {k}: id {mid!r} is used twice")
        if m.get("chain") and not m.get("model"):
            raise InputError("config predict.maps", f"entry {k}: 'chain' needs 'model'")
        out[mid] = dict(m, id=mid)
    return out


@dataclass(frozen=True)
class ExperimentalEntry:
    emdb: str                  # EMD-NNNN, also the entry id of its samples
    pdb: str                   # "" : the first fitted model named in the EMDB header
    chains: tuple[str, ...]    # () : every protein chain of the model


def experimental_entries(items: list[dict], table_rows: list[dict] = (),
                         simulated: list[str] = ()) -> dict[str, ExperimentalEntry]:
    """Experimental entries from the config's explicit list and a query table, validated
    (ids as :func:`cryosse.fetch.emdb_id` / ``pdb_id`` accept them), explicit ones first."""
    from ..ids import emdb_id, pdb_id

    out: dict[str, ExperimentalEntry] = {}
    for k, item in enumerate(list(items) + [dict(r, chains=[]) for r in table_rows]):
        eid = emdb_id(item.get("emdb", ""))
        if eid in out:
            if k < len(items):
                raise InputError("config emdb.entries", f"{eid} is listed twice")
            continue
        chains = tuple(item.get("chains") or ())
        for c in chains:
            if not CHAIN_ID.match(c):
                raise InputError("config emdb.entries", f"{eid}: invalid chain id {c!r}")
        out[eid] = ExperimentalEntry(eid, pdb_id(item["pdb"]) if item.get("pdb") else "", chains)
    clash = sorted(set(out) & set(simulated))
    if clash:
        raise InputError("config", f"entries {', '.join(clash)} are both simulated and experimental")
    return out
