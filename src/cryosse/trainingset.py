"""Whole-entry training maps for the bundled model.

For each entry of the embedded structures in the train or validation split, the density of
all its protein chains (neighbours included, not masked) is simulated at several resolutions
directly on the working grid, and labelled there by the same nearest-heavy-atom rule as the
data contract. On-the-fly realism (:mod:`cryosse.realism`) in the trainer then turns these
clean maps into native-looking ones. The test split is left out, so it stays a held-out set.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .density import simulate_density
from .io import protein_atoms, read_model, read_tsv, write_json, write_map
from .labels import atom_classes, label_voxels
from .sse import assign_sse
from .workflow import load_structures

__all__ = ["build_training_set"]


def build_training_set(structures_tsv: str | os.PathLike, splits_tsv: str | os.PathLike,
                       out_dir: str | os.PathLike, resolutions_a: list[float],
                       voxel_size_a: float = 2.0, radius_a: float = 3.0,
                       train_splits: tuple[str, ...] = ("train",),
                       val_splits: tuple[str, ...] = ("val",)) -> dict:
    """Write ``{entry}_r{res}/density.mrc`` and ``labels.mrc`` for every entry of
    ``train_splits`` and ``val_splits`` and every resolution, and ``datalist.json`` (training:
    the entries of ``train_splits``, validation: those of ``val_splits``).

    The bundled model is judged on real maps, not on the test split, so its recipe may train on
    ``("train", "test")``; validation stays on its own split, which shares no cluster with them."""
    overlap = set(train_splits) & set(val_splits)
    if overlap:
        raise ValueError(f"splits {sorted(overlap)} cannot be both training and validation")
    out = Path(out_dir)
    split_of: dict[str, str] = {}
    for row in read_tsv(splits_tsv):
        split_of.setdefault(row["entry"], row["split"])
    wanted = set(train_splits) | set(val_splits)
    entries = [e for e in load_structures(structures_tsv) if split_of.get(e.entry) in wanted]
    description = "whole-entry simulated maps on the working grid, resolutions " + ", ".join(
        f"{r:g}" for r in resolutions_a)
    if (tuple(train_splits), tuple(val_splits)) != (("train",), ("val",)):
        # only then: the default datalist (and so the data hash in model cards) stays as it was
        description += f"; training: {'+'.join(train_splits)} split, validation: {'+'.join(val_splits)} split"
    datalist: dict = {"training": [], "validation": [], "description": description}
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
