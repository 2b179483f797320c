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

__all__ = ["ChainRecord", "sequence_identity", "cluster_chains", "assign_splits", "assign_folds",
           "write_folds",
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


def _balance(chains: list[ChainRecord], clusters: list[int], frac: np.ndarray, seed: int,
             members_only: set[int] | None = None) -> dict[int, int]:
    """Bin of each cluster: clusters in seeded hash order, per stratum, each to the bin furthest
    below its share ``frac`` of the stratum's residues; every bin gets a cluster if possible."""
    members: dict[int, list[int]] = {}
    for i, c in enumerate(clusters):
        if members_only is None or i in members_only:
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
    bin_of: dict[int, int] = {}
    for stratum in sorted(by_stratum):
        cl = sorted(by_stratum[stratum], key=lambda c: _order_key(seed, min(chains[i].id for i in members[c])))
        total = sum(size[c] for c in cl)
        got = np.zeros(len(frac))
        for c in cl:
            deficit = frac * total - got
            k = int(np.argmax(deficit))
            bin_of[c] = k
            got[k] += size[c]
    # every bin gets at least one cluster when there are enough clusters
    if len(members) >= len(frac):
        for k in range(len(frac)):
            if k not in bin_of.values():
                counts = np.bincount(list(bin_of.values()), minlength=len(frac))
                donor = int(np.argmax(counts))
                movable = sorted((c for c, s in bin_of.items() if s == donor),
                                 key=lambda c: (size[c], _order_key(seed, str(c))))
                bin_of[movable[0]] = k
    return bin_of


def assign_splits(chains: list[ChainRecord], clusters: list[int],
                  fractions: dict[str, float], seed: int = 0) -> list[str]:
    """Split name of each chain; whole clusters go to one split (see module doc)."""
    names = [s for s in SPLITS if fractions.get(s, 0) > 0]
    frac = np.array([fractions[s] for s in names], float)
    bin_of = _balance(chains, clusters, frac / frac.sum(), seed)
    return [names[bin_of[c]] for c in clusters]


def assign_folds(chains: list[ChainRecord], clusters: list[int], k: int, seed: int = 0,
                 splits: list[str] | None = None) -> list[int]:
    """Cross-validation fold (0 .. k-1) of each chain, -1 for test chains (``splits``).

    The chains outside the test split are divided into ``k`` folds by the same rule as the
    splits: whole clusters only (so a fold never shares an entry or a >= ``max_identity``
    homologue with another fold), balanced in residues per fold class, deterministic for a
    seed. Training on k-1 folds and validating on the k-th is then leakage-free, and the test
    split stays untouched by every fold.
    """
    if k < 2:
        raise ValueError("k-fold needs k >= 2")
    pool = {i for i in range(len(chains)) if splits is None or splits[i] != "test"}
    bin_of = _balance(chains, clusters, np.full(k, 1.0 / k), seed + 1, pool)
    return [bin_of[c] if i in pool else -1 for i, c in enumerate(clusters)]


def write_splits(path: str | os.PathLike, chains: list[ChainRecord], clusters: list[int],
                 splits: list[str], folds: list[int] | None = None) -> None:
    """The splits table; with ``folds``, a ``fold`` column (-1: test chain, not in a fold)."""
    rows = []
    folds = folds if folds is not None else [""] * len(chains)
    for ch, cl, sp, fo in zip(chains, clusters, splits, folds):
        row = asdict(ch)
        row.update(cluster=cl, split=sp, fold=fo, stratum=stratum_of(ch.helix_fraction, ch.sheet_fraction),
                   n_residues=len(ch.sequence),
                   helix_fraction=f"{ch.helix_fraction:.3f}", sheet_fraction=f"{ch.sheet_fraction:.3f}")
        rows.append(row)
    write_tsv(path, rows, ["id", "entry", "chain", "pdb_id", "split", "fold", "cluster", "stratum",
                           "n_residues", "helix_fraction", "sheet_fraction", "sequence"])


def write_folds(path: str | os.PathLike, chains: list[ChainRecord], clusters: list[int],
                splits: list[str], folds: list[int]) -> None:
    """The k-fold table: id, split, fold (-1 for test chains), cluster, stratum, n_residues."""
    rows = [{"id": ch.id, "split": sp, "fold": fo, "cluster": cl, "n_residues": len(ch.sequence),
             "stratum": stratum_of(ch.helix_fraction, ch.sheet_fraction)}
            for ch, cl, sp, fo in zip(chains, clusters, splits, folds)]
    write_tsv(path, rows, ["id", "split", "fold", "cluster", "stratum", "n_residues"])


def read_splits(path: str | os.PathLike) -> dict[str, str]:
    """Sample id -> split name."""
    return {r["id"]: r["split"] for r in read_tsv(path)}


MANIFEST_COLUMNS = ["id", "entry", "chain", "pdb_id", "split", "status", "reason", "resolution_a",
                    "voxel_size_a", "shape_xyz", "n_background", "n_helix", "n_sheet", "n_other",
                    "density", "labels", "source", "correlation", "atoms_in_contour", "fold", "n_residues",
                    "n_missing_backbone", "n_chain_breaks", "n_insertion_codes", "n_altloc_chosen", "n_modified"]


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
    fold_of = {r["id"]: r.get("fold", "") for r in read_tsv(splits_tsv)}
    manifest_dir = Path(manifest_path).resolve().parent
    datalist_dir = Path(datalist_path).resolve().parent
    rows = []
    datalist = {"training": [], "validation": [], "test": []}
    key = {"train": "training", "val": "validation", "test": "test"}
    for d in _component_folders(component_dirs):
        meta = json.loads((d / "meta.json").read_text())
        row = {k: meta.get(k, "") for k in MANIFEST_COLUMNS}
        row["split"] = split_of.get(meta["id"], "")
        row["fold"] = fold_of.get(meta["id"], "")
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
                item = {"id": meta["id"], "image": os.path.relpath(dens, datalist_dir),
                        "label": os.path.relpath(lab, datalist_dir)}
                if row["fold"] not in ("", "-1"):
                    item["fold"] = int(row["fold"])
                datalist[key[row["split"]]].append(item)
        rows.append(row)
    write_tsv(manifest_path, rows, MANIFEST_COLUMNS)
    datalist.update(name="cryosse", data_contract=DATA_CONTRACT_VERSION,
                    labels={"0": "background", "1": "helix", "2": "sheet", "3": "other"},
                    numTraining=len(datalist["training"]))
    write_json(datalist_path, datalist)
    return rows


def write_dataset_report(manifest_path: str | os.PathLike, splits_path: str | os.PathLike,
                         out_dir: str | os.PathLike, max_thumbnails: int = 24) -> dict:
    """A Markdown report of the data set with PNG figures, in ``out_dir``.

    ``dataset_report.md``: entries, chains, accepted and rejected components (with reasons),
    class balance in voxels (from the manifest) and residues (from the splits table), per split
    and fold; ``class_balance.png``; ``resolution.png`` (histogram of the accepted components'
    resolutions); ``thumbnails.png`` (the central z slice of each accepted component's density,
    up to ``max_thumbnails``, with helix in red and sheet in blue over it). Returns the figures.
    """
    from .io import pyplot, read_map, write_png, write_text

    out = Path(out_dir)
    rows = read_tsv(manifest_path)
    chains = read_tsv(splits_path)
    base = Path(manifest_path).resolve().parent
    ok = [r for r in rows if r["status"] == "ok"]
    rejected = [r for r in rows if r["status"] != "ok"]
    classes = ("background", "helix", "sheet", "other")
    voxels = {c: sum(int(r[f"n_{c}"] or 0) for r in ok) for c in classes}
    residues = {"helix": 0.0, "sheet": 0.0, "other": 0.0}
    for c in chains:
        if not c.get("n_residues"):
            continue  # a splits table without residue counts (hand-written)
        n = int(c["n_residues"])
        h, e = float(c["helix_fraction"]), float(c["sheet_fraction"])
        residues["helix"] += h * n
        residues["sheet"] += e * n
        residues["other"] += (1 - h - e) * n
    summary = {"entries": len({r["entry"] for r in rows}), "chains": len(chains),
               "components": len(rows), "accepted": len(ok), "rejected": len(rejected),
               "voxels": voxels, "residues": {k: round(v) for k, v in residues.items()}}
    plt = pyplot()
    # class balance
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    protein = [voxels[c] for c in classes[1:]]
    axes[0].bar(classes[1:], protein, color=["tab:red", "tab:blue", "tab:gray"])
    axes[0].set_title(f"voxels (background: {voxels['background']})")
    axes[1].bar(list(residues), list(residues.values()), color=["tab:red", "tab:blue", "tab:gray"])
    axes[1].set_title("residues")
    fig.tight_layout()
    write_png(fig, out / "class_balance.png")
    # resolution histogram
    res = [float(r["resolution_a"]) for r in ok if r.get("resolution_a")]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.hist(res, bins=10)
    ax.set_xlabel("resolution (Å)")
    ax.set_ylabel("components")
    fig.tight_layout()
    write_png(fig, out / "resolution.png")
    # thumbnails
    shown = ok[:max_thumbnails]
    ncol = min(6, max(1, len(shown)))
    nrow = max(1, -(-len(shown) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2 * ncol, 2 * nrow), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, r in zip(axes.ravel(), shown):
        d, lab = read_map(base / r["density"]).data, read_map(base / r["labels"]).data
        k = d.shape[0] // 2
        ax.imshow(d[k], cmap="gray", origin="lower")
        over = np.zeros(d[k].shape + (4,))
        over[lab[k] == 1] = (1, 0, 0, 0.5)
        over[lab[k] == 2] = (0, 0.3, 1, 0.5)
        ax.imshow(over, origin="lower")
        ax.set_title(r["id"], fontsize=7)
    fig.tight_layout()
    write_png(fig, out / "thumbnails.png")
    split_counts = {s: sum(r["split"] == s for r in ok) for s in SPLITS}
    folds = sorted({r.get("fold", "") for r in chains} - {"", "-1"}, key=int)
    lines = ["# Data set report", "",
             f"{summary['entries']} entries, {summary['chains']} chains, {summary['components']} components: "
             f"{summary['accepted']} accepted, {summary['rejected']} rejected.", "",
             "| split | accepted components |", "|---|---|",
             *[f"| {s} | {n} |" for s, n in split_counts.items()], ""]
    if folds:
        lines += [f"{len(folds)}-fold cross-validation over train+val chains (chains per fold): " +
                  ", ".join(f"fold {f}: {sum(r.get('fold') == f for r in chains)}" for f in folds), ""]
    tv, tr = sum(voxels[c] for c in classes[1:]) or 1, sum(residues.values()) or 1
    lines += ["## Class balance", "", "| class | voxels | % of protein voxels | residues | % of residues |",
              "|---|---|---|---|---|",
              *[f"| {c} | {voxels[c]} | {100 * voxels[c] / tv:.1f} | {residues[c]:.0f} | "
                f"{100 * residues[c] / tr:.1f} |" for c in classes[1:]],
              f"| background | {voxels['background']} | | | |", "",
              "![class balance](class_balance.png)", "", "## Resolution", "",
              f"{len(res)} accepted components, {min(res, default=0):.1f}–{max(res, default=0):.1f} Å.", "",
              "![resolution](resolution.png)", "", "## Samples", "",
              f"Central z slice of {len(shown)} of {len(ok)} accepted components (density in grey, "
              "helix red, sheet blue).", "", "![thumbnails](thumbnails.png)", "", "## Rejected", ""]
    lines += (["| id | reason |", "|---|---|", *[f"| {r['id']} | {r['reason']} |" for r in rejected]]
              if rejected else ["None."])
    write_text(out / "dataset_report.md", "\n".join(lines) + "\n")
    return summary
