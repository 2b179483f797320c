"""Leakage-free splits: chain records, sequence clustering, train/val/test and k-fold assignment.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..io import read_tsv, write_tsv

__all__ = ["ChainRecord", "SplitConfig", "sequence_identity", "cluster_chains", "assign_splits", "assign_folds",
           "write_splits", "write_folds", "read_splits", "stratum_of", "chain_sequence", "gather_chains",
           "split_chains", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """How chains are split (config ``split``): chains at or above ``max_identity`` sequence
    identity (or of one entry) share a split; ``fractions`` of residues per split; ``kfold``
    leakage-free folds over train+val chains (DeepSSETracer: 5-fold CV; 0: none)."""

    max_identity: float = 0.30
    fractions: dict = field(default_factory=lambda: {"train": 0.70, "val": 0.15, "test": 0.15})
    seed: int = 0
    kfold: int = 5


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


def cluster_chains(chains: list[ChainRecord], max_identity: float = 0.30, engine: str = "auto",
                   threads: int = 2, stats: dict | None = None) -> list[int]:
    """Cluster index of each chain (single linkage over same entry/PDB id or identity).

    Only candidate pairs are aligned (MMseqs2 prefilter, exact realignment: see
    :mod:`cryosse.prep.clustering`); ``engine="exhaustive"`` aligns every pair of distinct
    sequences. Both give the same clusters (tests/test_dataset.py)."""
    from .clustering import cluster_pairs

    links, first_entry, first_pdb = [], {}, {}
    for i, c in enumerate(chains):
        links.append((first_entry.setdefault(c.entry, i), i))
        if c.pdb_id != "-":
            links.append((first_pdb.setdefault(c.pdb_id, i), i))
    by_seq: dict[str, list[int]] = {}
    for i, c in enumerate(chains):
        s = c.sequence.upper().replace("X", "")
        if s:  # an empty sequence has identity 0 with everything
            by_seq.setdefault(s, []).append(i)
    roots = cluster_pairs(len(chains), links, list(by_seq.values()), list(by_seq), max_identity,
                          sequence_identity, engine, threads, stats)
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


def _chain_record(entry: str, chain: str, pdb: str, structure, sse: list) -> ChainRecord:
    from .sse import residue_class

    codes = [residue_class(x) for x in sse if x.chain == chain]
    n = max(len(codes), 1)
    try:
        seq = chain_sequence(structure, chain)
    except KeyError:  # no protein residues: crop records the rejection; keep its place
        seq = ""
    return ChainRecord(f"{entry}_{chain}", entry, chain, pdb or "-", seq, codes.count(1) / n, codes.count(2) / n)


def gather_chains(structures_tsv: str | os.PathLike | None = None, sse_dir: str | os.PathLike | None = None,
                  prepared: list[str | os.PathLike] = (), entries: list[str] | None = None) -> list[ChainRecord]:
    """Chain records of the experimental entries (folders from ``cryosse prepare-map``:
    accepted chains of accepted entries only) and of the rows of a structures table (its
    DSSP tables in ``sse_dir``, as ``<entry>.tsv`` or ``<entry>/sse.tsv``; ``entries``: a subset)."""
    from ..ids import CHAIN_ID, check
    from ..io import read_model
    from .sse import read_sse

    chains = []
    for d in map(Path, prepared or []):
        q = json.loads((d / "quality.json").read_text())
        if q["status"] != "ok":
            continue
        entry = check("entry", q["entry"])
        st, sse = read_model(d / "model.cif"), read_sse(d / "sse.tsv")
        chains += [_chain_record(entry, ch, q.get("pdb"), st, sse)
                   for ch, cq in q["chains"].items() if cq.get("status") == "ok"]
    if structures_tsv:
        table = Path(structures_tsv)
        keep = set(entries) if entries else None
        for r in read_tsv(table):
            if keep is not None and r["entry"] not in keep:
                continue
            entry = check("entry", r["entry"])
            st = read_model(table.parent / r["file"])
            sse_path = Path(sse_dir) / f"{entry}.tsv"
            if not sse_path.is_file() and (Path(sse_dir) / entry / "sse.tsv").is_file():
                sse_path = Path(sse_dir) / entry / "sse.tsv"  # the workflow's layout: one folder per entry
            sse = list({x.key: x for x in read_sse(sse_path)}.values())
            chains += [_chain_record(entry, check("chain", ch, CHAIN_ID), r.get("pdb_id"), st, sse)
                       for ch in r["chains"].split(",")]
    return chains


def split_chains(chains: list[ChainRecord], cfg: SplitConfig, splits_tsv: str | os.PathLike,
                 folds_tsv: str | os.PathLike | None = None) -> dict:
    """Cluster ``chains``, assign splits (and folds when ``cfg.kfold >= 2``), write the splits
    table (and the folds table); returns the counts."""
    clusters = cluster_chains(chains, cfg.max_identity)
    splits = assign_splits(chains, clusters, cfg.fractions, cfg.seed)
    folds = assign_folds(chains, clusters, cfg.kfold, cfg.seed, splits) if cfg.kfold >= 2 else None
    write_splits(splits_tsv, chains, clusters, splits, folds)
    if folds_tsv:
        write_folds(folds_tsv, chains, clusters, splits, folds or [-1] * len(chains))
    return {"chains": len(chains), "clusters": len(set(clusters)),
            "splits": {s: splits.count(s) for s in SPLITS},
            "folds": [folds.count(k) for k in range(cfg.kfold)] if folds else []}
