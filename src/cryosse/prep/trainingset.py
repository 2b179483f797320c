"""Whole-entry training maps for the bundled model.

For each entry of the embedded structures in the train or validation split, the density of
all its protein chains (neighbours included, not masked) is simulated at several resolutions
directly on the working grid, and labelled there by the same nearest-heavy-atom rule as the
data contract. On-the-fly realism (:mod:`cryosse.prep.realism`) in the trainer then turns these
clean maps into native-looking ones. The test split is left out, so it stays a held-out set.

Extra structures (a second table, training only) widen the training set without touching the
embedded default's splits: an extra entry is used only if none of its protein chains reaches
``max_identity`` sequence identity with a chain of a split it is not trained with (validation,
and test unless the test entries are trained on too), so the leakage rule still holds.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io import protein_atoms, read_model, read_tsv, write_json, write_map
from .density import simulate_density
from .labels import DEFAULT_RADIUS_A, atom_classes, label_voxels
from .split import chain_sequence, sequence_identity
from .sse import assign_sse
from .structures import load_structures

__all__ = ["build_training_set", "screen_extra_entries", "first_homologue", "protein_chains", "ca_residues"]

#: Chains shorter than this (residues with a CA) are not compared (peptides align spuriously).
MIN_SCREEN_RESIDUES = 30


@dataclass(frozen=True)
class TrainingSetConfig:
    """The bundled model's training maps (config ``bundle``): every protein chain of the entries
    of ``train_splits`` (and of the validation split) simulated at each of ``resolutions_a`` on
    the working grid and labelled; an extra-structures entry is left out when a chain is
    ``max_identity`` or more identical to a chain of a split not trained on."""

    resolutions_a: tuple[float, ...] = (5.0, 6.5, 8.0, 10.0)
    voxel_size_a: float = 2.0
    label_radius_a: float = DEFAULT_RADIUS_A
    train_splits: tuple[str, ...] = ("train",)
    max_identity: float = 0.30


def ca_residues(chain) -> int:
    """Residues of a chain that have a CA atom."""
    return sum(1 for r in chain if r.find_atom("CA", "*"))


def protein_chains(structure) -> list[tuple[str, str]]:
    """(chain, sequence) of the first model's chains with at least :data:`MIN_SCREEN_RESIDUES`
    residues that have a CA atom."""
    return [(ch.name, chain_sequence(structure, ch.name)) for ch in structure[0]
            if ca_residues(ch) >= MIN_SCREEN_RESIDUES]


def first_homologue(chains: list[tuple[str, str]], held_out: list[tuple[str, str]],
                    max_identity: float = 0.30) -> tuple[str, str, float] | None:
    """The first (chain, held-out chain, identity) among ``chains`` (chain, sequence) whose
    identity to a held-out (name, sequence) is ``max_identity`` or more; None when there is none."""
    for chain, seq in chains:
        for name, other in held_out:
            ident = sequence_identity(seq, other)
            if ident >= max_identity:
                return chain, name, ident
    return None


def screen_extra_entries(entries, held_out: list[tuple[str, str]], max_identity: float = 0.30):
    """Split extra ``entries`` into (kept, excluded). ``held_out`` is a list of (chain id,
    sequence) that training must not see homologues of; an entry is excluded when any of its
    protein chains of at least :data:`MIN_SCREEN_RESIDUES` residues is ``max_identity`` or more
    identical to one of them. ``excluded`` holds one record per entry left out, as the datalist
    lists it: ``{"entry", "chain", "held_out", "identity"}``."""
    kept, excluded = [], []
    for e in entries:
        hit = first_homologue(protein_chains(read_model(e.path)), held_out, max_identity)
        if hit:
            excluded.append({"entry": e.entry, "chain": hit[0], "held_out": hit[1], "identity": round(hit[2], 3)})
        else:
            kept.append(e)
    return kept, excluded


def build_training_set(structures_tsv: str | os.PathLike, splits_tsv: str | os.PathLike,
                       out_dir: str | os.PathLike, resolutions_a: list[float],
                       voxel_size_a: float = 2.0, radius_a: float = 3.0,
                       train_splits: tuple[str, ...] = ("train",),
                       val_splits: tuple[str, ...] = ("val",),
                       extra_structures_tsv: str | os.PathLike | None = None,
                       max_identity: float = 0.30) -> dict:
    """Write ``{entry}_r{res}/density.mrc`` and ``labels.mrc`` for every entry of
    ``train_splits`` and ``val_splits`` and every resolution, and ``datalist.json`` (training:
    the entries of ``train_splits``, validation: those of ``val_splits``).

    The bundled model is judged on real maps, not on the test split, so its recipe may train on
    ``("train", "test")``; validation stays on its own split, which shares no cluster with them.

    ``extra_structures_tsv``: a second structures table whose entries are training only, after
    :func:`screen_extra_entries` against every chain of the splits not trained on; the entries
    it drops are listed in the datalist's ``extra_excluded``."""
    overlap = set(train_splits) & set(val_splits)
    if overlap:
        raise ValueError(f"splits {sorted(overlap)} cannot be both training and validation")
    out = Path(out_dir)
    split_of: dict[str, str] = {}
    for row in read_tsv(splits_tsv):
        split_of.setdefault(row["entry"], row["split"])
    wanted = set(train_splits) | set(val_splits)
    table = load_structures(structures_tsv)
    entries = [e for e in table if split_of.get(e.entry) in wanted]
    excluded: list = []
    n_extra = 0
    if extra_structures_tsv:
        held_out = []  # every protein chain of every entry in a split not trained on (whole-entry maps)
        for e in table:
            if e.entry in split_of and split_of[e.entry] not in train_splits:
                held_out += [(f"{e.entry}_{c}", q) for c, q in protein_chains(read_model(e.path))]
        if not held_out:
            raise InputError(splits_tsv, "no held-out entries to screen the extra structures against")
        extra = load_structures(extra_structures_tsv)
        clash = sorted({e.entry for e in extra} & set(split_of))
        if clash:
            raise InputError(extra_structures_tsv, f"entry ids already in the splits: {', '.join(clash)}")
        kept, excluded = screen_extra_entries(extra, held_out, max_identity)
        for e in kept:
            split_of[e.entry] = train_splits[0]
        entries += kept
        n_extra = len(kept)
    description = "whole-entry simulated maps on the working grid, resolutions " + ", ".join(
        f"{r:g}" for r in resolutions_a)
    if (tuple(train_splits), tuple(val_splits)) != (("train",), ("val",)):
        # only then: the default datalist (and so the data hash in model cards) stays as it was
        description += f"; training: {'+'.join(train_splits)} split, validation: {'+'.join(val_splits)} split"
    if extra_structures_tsv:
        description += f"; plus {n_extra} extra training entries ({Path(extra_structures_tsv).parent.name})"
    datalist: dict = {"training": [], "validation": [], "description": description}
    if radius_a != DEFAULT_RADIUS_A:  # realism's zones need it; the default datalist (and its hash) stays as it was
        datalist["label_radius_a"] = float(radius_a)
    if extra_structures_tsv:
        datalist["extra_excluded"] = excluded
    for k, e in enumerate(entries, 1):
        st = read_model(e.path)
        atoms = protein_atoms(st)
        classes = atom_classes(atoms, assign_sse(st))
        for res in resolutions_a:
            sid = f"{e.entry}_r{res:g}".replace(".", "p")
            d = out / sid
            dens = simulate_density(st, res, voxel_size_a, padding_a=max(2 * res, 8.0))
            lab = label_voxels(dens, atoms, classes, radius_a)
            write_map(dens, d / "density.mrc")
            write_map(lab, d / "labels.mrc", labels=True)
            key = "training" if split_of[e.entry] in train_splits else "validation"
            datalist[key].append({"id": sid, "image": f"{sid}/density.mrc", "label": f"{sid}/labels.mrc",
                                  "entry": e.entry, "resolution_a": res})
        print(f"\r[{k}/{len(entries)}] {e.entry}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    write_json(out / "datalist.json", datalist)
    return datalist
