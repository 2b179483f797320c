"""The data set: chain records, leakage-free splits, manifest and MONAI-style datalist.

Leakage rule (data contract): two chains that share a PDB entry, or whose sequences are at
least ``max_identity`` identical (see :func:`sequence_identity`), are in the same cluster, and a cluster is never divided
between splits. Clusters are assigned to splits deterministically (seeded hash order), per
stratum (sheet-rich, helix-rich, mixed), so that each split gets its share of residues of
every stratum.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import DATA_CONTRACT_VERSION
from .io import read_tsv, write_json, write_tsv

__all__ = ["ChainRecord", "sequence_identity", "cluster_chains", "assign_splits",
           "stratum_of", "write_manifest", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ChainRecord:
    id: str            # sample id, "<entry>_<chain>"
    entry: str
    chain: str
    pdb_id: str        # "-" when unknown
    sequence: str
    helix_fraction: float
    sheet_fraction: float


def chain_sequence(structure, chain: str) -> str:
    """One-letter sequence of a protein chain's residues (model order)."""
    import gemmi

    for ch in structure[0]:
        if ch.name == chain:
            return gemmi.one_letter_code([r.name for r in ch]).upper()
    raise KeyError(chain)


_ALIGNER = None


def _aligner():
    global _ALIGNER
    if _ALIGNER is None:
        from Bio import Align
        from Bio.Align import substitution_matrices

        _ALIGNER = Align.PairwiseAligner(mode="local", open_gap_score=-11, extend_gap_score=-1,
                                         substitution_matrix=substitution_matrices.load("BLOSUM62"))
    return _ALIGNER


def sequence_identity(a: str, b: str) -> float:
    """Identical positions of the best local alignment (Smith-Waterman, BLOSUM62, gap open
    11, extend 1) over the length of the shorter sequence (CD-HIT's definition of identity).

    A global alignment is not used: it scatters a short sequence along a long one and finds
    30% "identity" between unrelated proteins.
    """
    a, b = a.upper().replace("X", ""), b.upper().replace("X", "")
    if not a or not b:
        return 0.0
    aln = _aligner().align(a, b)[0]
    return aln.counts().identities / min(len(a), len(b))


def cluster_chains(chains: list[ChainRecord], max_identity: float = 0.30) -> list[int]:
    """Cluster index of each chain (single linkage over same entry/PDB id or identity)."""
    parent = list(range(len(chains)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    for i, a in enumerate(chains):
        for j in range(i + 1, len(chains)):
            b = chains[j]
            if find(i) == find(j):
                continue
            same_entry = a.entry == b.entry or (a.pdb_id != "-" and a.pdb_id == b.pdb_id)
            if same_entry or sequence_identity(a.sequence, b.sequence) >= max_identity:
                union(i, j)
    roots = [find(i) for i in range(len(chains))]
    renumber = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return [renumber[r] for r in roots]


def stratum_of(helix_fraction: float, sheet_fraction: float) -> str:
    """``sheet-rich`` (>= 20% sheet residues), ``helix-rich`` (>= 30% helix, < 10% sheet) or ``mixed``."""
    if sheet_fraction >= 0.20:
        return "sheet-rich"
    if helix_fraction >= 0.30 and sheet_fraction < 0.10:
        return "helix-rich"
    return "mixed"


def _order_key(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def assign_splits(chains: list[ChainRecord], clusters: list[int],
                  fractions: dict[str, float], seed: int = 0) -> list[str]:
    """Split name of each chain; whole clusters go to one split (see module doc)."""
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    frac = np.array([fractions[s] for s in names], float)
    frac = frac / frac.sum()
    members: dict[int, list[int]] = {}
    for i, c in enumerate(clusters):
        members.setdefault(c, []).append(i)
    size = {c: sum(len(chains[i].sequence) for i in m) for c, m in members.items()}

    def cluster_stratum(c: int) -> str:
        m = members[c]
        n = sum(len(chains[i].sequence) for i in m) or 1
        h = sum(chains[i].helix_fraction * len(chains[i].sequence) for i in m) / n
        e = sum(chains[i].sheet_fraction * len(chains[i].sequence) for i in m) / n
        return stratum_of(h, e)

    by_stratum: dict[str, list[int]] = {}
    for c in members:
        by_stratum.setdefault(cluster_stratum(c), []).append(c)
    split_of_cluster: dict[int, int] = {}
    for stratum in sorted(by_stratum):
        cl = sorted(by_stratum[stratum], key=lambda c: _order_key(seed, min(chains[i].id for i in members[c])))
        total = sum(size[c] for c in cl)
        got = np.zeros(len(names))
        for c in cl:
            deficit = frac * total - got
            k = int(np.argmax(deficit))
            split_of_cluster[c] = k
            got[k] += size[c]
    # every split gets at least one cluster when there are enough clusters
    if len(members) >= len(names):
        for k in range(len(names)):
            if k not in split_of_cluster.values():
                counts = np.bincount(list(split_of_cluster.values()), minlength=len(names))
                donor = int(np.argmax(counts))
                movable = sorted((c for c, s in split_of_cluster.items() if s == donor),
                                 key=lambda c: (size[c], _order_key(seed, str(c))))
                split_of_cluster[movable[0]] = k
    return [names[split_of_cluster[c]] for c in clusters]


def write_splits(path: str | os.PathLike, chains: list[ChainRecord], clusters: list[int],
                 splits: list[str]) -> None:
    rows = []
    for ch, cl, sp in zip(chains, clusters, splits):
        row = asdict(ch)
        row.update(cluster=cl, split=sp, stratum=stratum_of(ch.helix_fraction, ch.sheet_fraction),
                   n_residues=len(ch.sequence),
                   helix_fraction=f"{ch.helix_fraction:.3f}", sheet_fraction=f"{ch.sheet_fraction:.3f}")
        rows.append(row)
    write_tsv(path, rows, ["id", "entry", "chain", "pdb_id", "split", "cluster", "stratum",
                           "n_residues", "helix_fraction", "sheet_fraction", "sequence"])


def read_splits(path: str | os.PathLike) -> dict[str, str]:
    """Sample id -> split name."""
    return {r["id"]: r["split"] for r in read_tsv(path)}


MANIFEST_COLUMNS = ["id", "entry", "chain", "pdb_id", "split", "status", "reason", "resolution_a",
                    "voxel_size_a", "shape_xyz", "n_background", "n_helix", "n_sheet", "n_other",
                    "density", "labels", "source", "correlation", "atoms_in_contour"]


def _component_folders(dirs) -> list[Path]:
    """Component folders (holding ``meta.json``); a folder without one stands for the
    component folders inside it (one per chain of an experimental entry)."""
    out = []
    for d in map(Path, dirs):
        if (d / "meta.json").is_file():
            out.append(d)
        else:
            out.extend(sorted(p.parent for p in d.glob("*/meta.json")))
    return sorted(out)


def write_manifest(component_dirs: list[str | os.PathLike], splits_tsv: str | os.PathLike,
                   manifest_path: str | os.PathLike, datalist_path: str | os.PathLike) -> list[dict]:
    """Gather component metadata into the manifest (TSV) and a MONAI-style datalist (JSON).

    Paths in the datalist are relative to the datalist's folder (MONAI's
    ``load_decathlon_datalist`` default); the manifest's paths are relative to its own folder.
    Rejected components stay in the manifest with ``status = rejected`` and their reason.
    """
    split_of = read_splits(splits_tsv)
    manifest_dir = Path(manifest_path).resolve().parent
    datalist_dir = Path(datalist_path).resolve().parent
    rows = []
    datalist = {"training": [], "validation": [], "test": []}
    key = {"train": "training", "val": "validation", "test": "test"}
    for d in _component_folders(component_dirs):
        meta = json.loads((d / "meta.json").read_text())
        row = {k: meta.get(k, "") for k in MANIFEST_COLUMNS}
        row["split"] = split_of.get(meta["id"], "")
        counts = meta.get("counts", {})
        for c in ("background", "helix", "sheet", "other"):
            row[f"n_{c}"] = counts.get(c, "")
        row["shape_xyz"] = "x".join(str(v) for v in meta.get("shape_xyz", []))
        quality = meta.get("quality") or {}
        for k in ("correlation", "atoms_in_contour"):  # experimental maps only
            row[k] = "" if quality.get(k) is None else f"{quality[k]:.3f}"
        if meta.get("status") == "ok":
            dens, lab = (d / "density.mrc").resolve(), (d / "labels.mrc").resolve()
            row["density"] = os.path.relpath(dens, manifest_dir)
            row["labels"] = os.path.relpath(lab, manifest_dir)
            if row["split"] in key:
                datalist[key[row["split"]]].append({
                    "id": meta["id"], "image": os.path.relpath(dens, datalist_dir),
                    "label": os.path.relpath(lab, datalist_dir)})
        rows.append(row)
    write_tsv(manifest_path, rows, MANIFEST_COLUMNS)
    datalist.update(name="cryosse", data_contract=DATA_CONTRACT_VERSION,
                    labels={"0": "background", "1": "helix", "2": "sheet", "3": "other"},
                    numTraining=len(datalist["training"]))
    write_json(datalist_path, datalist)
    return rows
