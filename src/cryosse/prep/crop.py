"""Cropping chain components out of an entry's map: one chain (``cryosse crop``), the listed
chains of a simulated entry, or every accepted chain of a prepared experimental entry
(``cryosse crop-entry``). The map and the model are read once per entry."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError
from ..ids import CHAIN_ID, ENTRY_ID, SAMPLE_ID, check
from ..io import model_report, protein_atoms, read_map, read_model
from .components import ComponentConfig, write_component, write_rejected
from .labels import atom_classes

__all__ = ["crop_chains", "crop_prepared", "sse_of"]


def _by_chain(sse: list) -> dict[str, list]:
    """The DSSP table split by chain, once per entry: each chain's atom classes then look up
    its own residues only (not the whole entry's table once per chain)."""
    out: dict[str, list] = {}
    for r in sse:
        out.setdefault(r.chain, []).append(r)
    return out


def sse_of(sse_path: str | os.PathLike | None, structure) -> list:
    """The DSSP table at ``sse_path``, or DSSP run on ``structure`` when there is none."""
    from .sse import assign_sse, read_sse

    return read_sse(sse_path) if sse_path else assign_sse(structure)


def crop_chains(map_path: str | os.PathLike, model_path: str | os.PathLike, chains: list[str],
                out_dirs: list[str | os.PathLike], cfg: ComponentConfig = ComponentConfig(), *,
                sample_ids: list[str], entry: str = "", pdb_id: str = "", resolution_a: float | None = None,
                sse_path: str | os.PathLike | None = None) -> list[dict]:
    """Cut the component of each of ``chains`` out of the map into its folder of ``out_dirs``
    (``density.mrc``, ``labels.mrc``, ``meta.json``; a rejected chain gets ``meta.json`` with
    the reason only). Returns the metas."""
    for c in chains:
        check("--chain", c, CHAIN_ID)
    for s in sample_ids:
        check("--id", s, SAMPLE_ID)
    density = read_map(map_path)
    st = read_model(model_path)
    sse = None
    present = {c.name for c in st[0]}
    metas = []
    for chain, sid, out in zip(chains, sample_ids, out_dirs):
        meta = {"id": sid, "entry": entry or "", "chain": chain, "pdb_id": pdb_id or "-",
                "resolution_a": resolution_a, "voxel_size_a": density.voxel_size_a[0],
                "source": str(map_path), "model": str(model_path), "sse": str(sse_path or ""),
                "config": cfg.__dict__}
        meta.update(model_report(st, chain))
        if chain not in present:
            metas.append(write_rejected(out, meta, f"no protein residues in chain {chain} "
                                                   "(empty, absent, or not protein)"))
            continue
        if sse is None:
            sse = _by_chain(sse_of(sse_path, st))
        atoms = protein_atoms(st, [chain])
        metas.append(write_component(out, density, atoms, atom_classes(atoms, sse.get(chain, [])), cfg, meta))
    return metas


def crop_prepared(prepared: str | os.PathLike, out_dir: str | os.PathLike,
                  cfg: ComponentConfig = ComponentConfig()) -> list[dict]:
    """One component folder per chain of a prepared experimental entry (a folder from
    ``cryosse prepare-map``) under ``out_dir/<entry>_<chain>``; chains rejected by the quality
    checks, or an entry that failed, get only ``meta.json`` with the reason."""
    from .sse import read_sse

    prepared = Path(prepared)
    qpath = prepared / "quality.json"
    if not qpath.is_file():
        raise InputError(prepared, "no quality.json (not a folder from 'cryosse prepare-map')")
    q = json.loads(qpath.read_text())
    entry = check("entry", q["entry"], ENTRY_ID)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = {"entry": entry, "pdb_id": q.get("pdb") or "-", "resolution_a": q.get("resolution_a"),
            "voxel_size_a": q["config"]["voxel_size_a"], "source": str(prepared / "map.mrc"),
            "model": str(prepared / "model.cif"), "sse": str(prepared / "sse.tsv"),
            "config": cfg.__dict__, "quality": {}}
    if not q["chains"]:  # failed before its chains were known
        return [write_rejected(out / entry, dict(base, id=entry, chain="-"), q["reason"])]
    if q["status"] == "ok":
        density = read_map(prepared / "map.mrc")
        st = read_model(prepared / "model.cif")
        sse = _by_chain(read_sse(prepared / "sse.tsv"))
    metas = []
    for ch, cq in q["chains"].items():
        check("chain", ch, CHAIN_ID)
        meta = dict(base, id=f"{entry}_{ch}", chain=ch,
                    quality={k: v for k, v in cq.items() if k not in ("status", "reason")})
        if cq.get("status") != "ok":
            metas.append(write_rejected(out / meta["id"], meta, cq.get("reason") or q["reason"]))
            continue
        atoms = protein_atoms(st, [ch])
        metas.append(write_component(out / meta["id"], density, atoms, atom_classes(atoms, sse.get(ch, [])), cfg,
                                     meta))
    return metas
