"""The memory plan of a prediction, estimated from the map's header shape and the network
before any work, and the CPU threads to use."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .config import PredictConfig, Zone

__all__ = ["GB", "MemoryPlan", "plan_memory", "check_before_reading", "cpu_threads"]

GB = 1024 ** 3


def cpu_threads(requested: int = 0) -> int:
    """Threads for CPU inference: ``requested`` if given; else ``OMP_NUM_THREADS`` when set
    (Snakemake sets it to the rule's threads); else torch's default, less the cores other
    processes keep busy (1-minute load average), at least 1. On a shared 2-core machine
    with other work running, one thread was 3-10x faster than two (docs/prediction.md, speed)."""
    import torch

    if requested > 0:
        return requested
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    n = torch.get_num_threads()
    try:
        busy = max(0.0, os.getloadavg()[0] - 1.0)  # the load includes this process
    except OSError:
        busy = 0.0
    return max(1, min(n, int((os.cpu_count() or n) - busy + 0.5)))


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated peak bytes (``parts`` by item) with outputs in memory or streamed to disk."""

    in_memory: int
    streamed: int
    parts: dict
    tile: int
    tile_shape: tuple = ()  # (z, y, x) of the margin tiles; () with an explicit tile (Gaussian blending)

    def describe(self) -> str:
        return ", ".join(f"{k} {v / GB:.2f}" for k, v in self.parts.items() if v) + " GB"


def _work_shape(shape_xyz, voxel_in, voxel_work: float) -> tuple[int, int, int]:
    from ..prep.density import resampled_shape

    return resampled_shape(shape_xyz, voxel_in, voxel_work)[::-1]  # z, y, x


def plan_memory(shape_zyx, voxel_size_a, card: dict, net, cfg: PredictConfig,
                zone: Zone | None = None, device: str = "cpu") -> MemoryPlan:
    """Estimate the peak memory of :func:`predict_map` (bytes), before doing anything.

    Items: the input map (float32), its masked copy (contour or zone), the zone mask,
    the resampling to the working grid (float64 coordinates and float32 copies), the sliding
    window (padded volume, one accumulator per class, the weights), the network activations of
    one batch of tiles (CPU only), the back-interpolation of one slab of planes, and the output
    maps (helix and sheet float32, labels int8) when held in memory.
    """
    from ..net.window import activation_bytes_per_voxel

    n_in = int(np.prod(shape_zyx))
    box_zyx = tuple(int(v) for v in zone.size_xyz[::-1]) if zone is not None else tuple(shape_zyx)
    n_box = int(np.prod(box_zyx))
    work = _work_shape(box_zyx[::-1], voxel_size_a, float(card["voxel_size_a"]))
    div = int(getattr(net, "divisor", 1))
    padded = [max(math.ceil(n / div) * div, div) for n in work]
    n_work = int(np.prod(padded))
    n_cls = int(card["arch"].get("n_classes", 3))
    per_vox = activation_bytes_per_voxel(net, div) if device == "cpu" else 0.0
    ny, nx = shape_zyx[1], shape_zyx[2]
    fixed = {"input": 4 * n_in,
             "masked copy": 4 * n_box if (zone is not None or cfg.contour is not None) else 0,
             "zone mask": 25 * n_box if zone is not None else 0}
    # an explicit tile: Gaussian blending with cfg.overlap; else the whole working volume in one
    # pass, or margin tiles (net.window.plan_tiles), the largest that fits
    if cfg.tile:
        candidates = [(cfg.tile, ())]
    else:
        from ..net.window import plan_tiles

        sides = [s for s in (320, 288, 256, 224, 192, 160, 128, 96) if s < max(padded)]
        candidates = [(0, plan_tiles(padded, div, float("inf")))] + \
            [(0, plan_tiles(padded, div, s ** 3)) for s in sides]
    plans = []
    for tile, shape in candidates:
        if shape:
            tile_vox, n_tiles_batch, norm = int(np.prod(shape)), (1 if shape == tuple(padded) else cfg.batch), 0
        else:
            tile_vox = int(np.prod([min(math.ceil(min(tile, p) / div) * div, p) for p in padded]))
            n_tiles_batch, norm = cfg.batch, 1
        phases = {"resampling": 4 * n_box + 40 * n_work,
                  "sliding window": (n_cls + 2 + norm) * 4 * n_work + int(n_tiles_batch * tile_vox * per_vox),
                  "back-interpolation": n_cls * 4 * n_work + 48 * cfg.slab * ny * nx}
        worst = max(phases, key=phases.get)
        parts = dict(fixed, **{worst: phases[worst]}, outputs=9 * n_in)
        streamed = sum(parts.values()) - parts["outputs"]
        plans.append(MemoryPlan(streamed + parts["outputs"], streamed, parts, tile or max(shape), shape))
    budget = cfg.max_memory_gb * GB
    if not cfg.tile and plans[0].streamed <= budget:
        return plans[0]  # one pass (outputs streamed if need be) costs less than tiles
    # the largest tile with outputs in memory, else the largest with streamed outputs
    return next((p for p in plans if p.in_memory <= budget),
                next((p for p in plans if p.streamed <= budget), plans[-1]))


def check_before_reading(map_path, card: dict, net, cfg: PredictConfig, atoms_xyz=None, zone_cfg=None,
                         device: str = "cpu", model=None) -> None:
    """The plan from the map's header alone (:func:`cryosse.io.budget.map_header`), before
    the map is read: the larger of reading it and :func:`plan_memory` of the whole map,
    or with a model only of its zone box (from the atoms' extent; a far-away atom makes an
    absurd box and is refused here). One line naming the file and the numbers when over."""
    from ..io.budget import box_voxels, check_budget, map_header

    h = map_header(map_path)
    budget = cfg.max_memory_gb
    reading = h.voxels * (2 * h.bytes_per_voxel + 4)  # the file's data, its reordered copy, float32
    if atoms_xyz is not None and len(atoms_xyz):
        pad = zone_cfg.margin_a + zone_cfg.multiple * max(h.voxel_size_a)
        n_box = box_voxels(atoms_xyz.min(axis=0), atoms_xyz.max(axis=0), h.voxel_size_a, pad)
        extent = " x ".join(f"{v:.0f}" for v in np.ptp(atoms_xyz, axis=0))
        check_budget(model, max(reading, 4 * h.voxels + 30 * n_box), budget,
                     f"a zone box of {n_box:.3g} voxels for a model extent of {extent} Å, and the map")
        return
    plan = plan_memory(h.shape_zyx, h.voxel_size_a, card, net, cfg, None, device)
    check_budget(map_path, max(reading, plan.streamed), budget,
                 f"{'x'.join(map(str, h.shape_zyx[::-1]))} voxels, outputs streamed to disk: {plan.describe()}")
