"""Chain components: the density around one chain, box-cropped, with its voxel labels.

For a chain (or a group of chains), the component is the density within ``zone_radius_a`` Å
of its heavy atoms (everything else, including neighbouring chains' density, set to 0),
cropped to the atoms' bounding box plus ``margin_a`` Å and padded (with zeros, evenly on
both sides) so that every side is a multiple of ``multiple`` voxels. Labels follow
:mod:`cryosse.prep.labels` with the component's own atoms only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import HELIX, OTHER, SHEET
from ..io import Map, ProteinAtoms, write_json, write_map
from .labels import DEFAULT_RADIUS_A, zone_and_labels

__all__ = ["ComponentConfig", "Component", "ComponentRejected", "crop_box", "extract",
           "make_component", "write_component", "write_rejected"]


@dataclass(frozen=True)
class ComponentConfig:
    """How a chain component is cut (config ``components``; ``label_radius_a`` is config
    ``labels.radius_a``): density within ``zone_radius_a`` Å of the chain, boxed to its atoms
    plus ``margin_a`` Å, sides padded to a multiple of ``multiple`` voxels; components with a
    side over ``max_side`` (or, with ``reject_all_coil``, without helix or sheet) are rejected."""

    zone_radius_a: float = 6.0
    margin_a: float = 6.0
    multiple: int = 8
    max_side: int = 256
    label_radius_a: float = DEFAULT_RADIUS_A
    reject_all_coil: bool = True


class ComponentRejected(Exception):
    """A component that cannot be a sample; ``str()`` is the reason recorded in the manifest."""


@dataclass(frozen=True)
class Component:
    density: Map
    labels: Map
    counts: dict[str, int]


def crop_box(grid: Map, xyz: np.ndarray, margin_a: float, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """Start index (x, y, z; may be negative or beyond the map) and size of the padded box."""
    idx = grid.xyz_to_index(xyz)
    margin = margin_a / np.asarray(grid.voxel_size_a)
    lo = np.floor(idx.min(axis=0) - margin).astype(int)
    hi = np.ceil(idx.max(axis=0) + margin).astype(int)
    size = hi - lo + 1
    extra = (-size) % multiple
    lo = lo - extra // 2
    return lo, size + extra


def extract(m: Map, start_xyz: np.ndarray, size_xyz: np.ndarray, fill=0) -> Map:
    """The sub-grid of ``m`` starting at voxel ``start_xyz`` of size ``size_xyz`` (x, y, z);
    voxels outside ``m`` get ``fill``."""
    nx, ny, nz = m.shape_xyz
    out = np.full(tuple(int(v) for v in size_xyz[::-1]), fill, dtype=m.data.dtype)
    src_lo = np.maximum(start_xyz, 0)
    src_hi = np.minimum(start_xyz + size_xyz, [nx, ny, nz])
    if np.all(src_hi > src_lo):
        dst_lo = src_lo - start_xyz
        dst_hi = dst_lo + (src_hi - src_lo)
        out[dst_lo[2]:dst_hi[2], dst_lo[1]:dst_hi[1], dst_lo[0]:dst_hi[0]] = \
            m.data[src_lo[2]:src_hi[2], src_lo[1]:src_hi[1], src_lo[0]:src_hi[0]]
    origin = np.asarray(m.origin_a) + np.asarray(start_xyz) * np.asarray(m.voxel_size_a)
    return Map(out, m.voxel_size_a, tuple(float(v) for v in origin), meta=dict(m.meta))


def class_counts(labels: np.ndarray) -> dict[str, int]:
    counts = {name: int(np.count_nonzero(labels == c)) for name, c in
              (("helix", HELIX), ("sheet", SHEET), ("other", OTHER))}
    return {"background": int(labels.size) - sum(counts.values()), **counts}


def make_component(density: Map, atoms: ProteinAtoms, classes: np.ndarray,
                   cfg: ComponentConfig = ComponentConfig()) -> Component:
    """Cut the component of ``atoms`` (one chain or a group) out of ``density``.

    Raises :class:`ComponentRejected` when the component has no atoms, has no helix or sheet
    residue (``cfg.reject_all_coil``), lies outside the map, or its box is larger than
    ``cfg.max_side`` voxels along some axis.
    """
    if len(atoms.xyz) == 0:
        raise ComponentRejected("chain has no atoms")
    if cfg.reject_all_coil and not np.isin(classes, (HELIX, SHEET)).any():
        raise ComponentRejected("all-coil chain: no helix or sheet residue")
    idx = density.xyz_to_index(atoms.xyz)
    inside = np.all((idx >= -0.5) & (idx <= np.asarray(density.shape_xyz) - 0.5), axis=1)
    if inside.mean() < 0.5:
        raise ComponentRejected(f"map covers only {inside.mean():.0%} of the chain's atoms")
    start, size = crop_box(density, atoms.xyz, cfg.margin_a, cfg.multiple)
    if size.max() > cfg.max_side:
        raise ComponentRejected(f"box {tuple(int(s) for s in size)} exceeds max_side {cfg.max_side}")
    box = extract(density, start, size)
    zone, labels = zone_and_labels(box, atoms, classes, cfg.zone_radius_a, cfg.label_radius_a)
    dens = box.with_data(np.where(zone, box.data, 0).astype(np.float32, copy=False))
    return Component(dens, labels, class_counts(labels.data))


def write_rejected(out: str | os.PathLike, meta: dict, reason: str) -> dict:
    """Record a rejected sample in ``out/meta.json`` (no tensors; stale ones removed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("density.mrc", "labels.mrc"):
        (out / stale).unlink(missing_ok=True)
    meta = dict(meta, status="rejected", reason=reason)
    write_json(out / "meta.json", meta)
    return meta


def write_component(out: str | os.PathLike, density: Map, atoms: ProteinAtoms, classes: np.ndarray,
                    cfg: ComponentConfig, meta: dict) -> dict:
    """Cut the component and write ``density.mrc``, ``labels.mrc`` and ``meta.json`` into
    ``out``; a rejected component gets only ``meta.json`` with its reason. Returns the meta."""
    out = Path(out)
    try:
        comp = make_component(density, atoms, classes, cfg)
    except ComponentRejected as exc:
        return write_rejected(out, meta, str(exc))
    out.mkdir(parents=True, exist_ok=True)
    write_map(comp.density, out / "density.mrc")
    write_map(comp.labels, out / "labels.mrc", labels=True)
    meta = dict(meta, status="ok", reason="", shape_xyz=list(comp.density.shape_xyz),
                origin_a=list(comp.density.origin_a), counts=comp.counts, label_radius_a=float(cfg.label_radius_a))
    write_json(out / "meta.json", meta)
    return meta
