"""Prediction: helix and sheet probabilities and a label map for any map, on its own grid.

Steps, for a map of any size, voxel size and axis order (:func:`cryosse.io.read_map` brings
it to ``[z, y, x]``):

1. Optional contour: density below ``contour`` is set to 0 (the value of empty space in the
   training components) on the input grid, before anything else.
2. Optional chain zone (``zone``, from :func:`chain_zone`): the map is cut to the chain's
   component box (atoms' bounding box + ``margin_a``, sides a multiple of ``multiple`` voxels,
   as :mod:`cryosse.prep.components` cuts training samples) and density farther than
   ``zone_radius_a`` from the chain's heavy atoms is set to 0, as DeepSSETracer does.
3. Resampled to the model's working voxel size and z-scored over the whole box
   (:func:`cryosse.train.data.prepare_density`, exactly as in training).
4. Sliding windows with Gaussian blending (:func:`cryosse.net.window.sliding_window_probs`),
   batched, on CUDA with fp16 autocast when available, else on the CPU in float32.
5. Helix and sheet probabilities are interpolated back (trilinear, separable, edge values
   extended) onto the input map's own grid, one slab of z-planes at a time; outside the chain
   zone they are 0 and the label is background. Labels: 1 helix, 2 sheet, 0 everything else
   (the network's "other" class merges background and coil, so code 3 is never written).
   A model card with ``class_weights`` (``{"helix": w_h, "sheet": w_s}``, other 1: a prior
   shift fitted by ``cryosse calibrate``) has its probabilities reweighted,
   ``p_c' = w_c p_c / sum_k w_k p_k``, before the labels are taken from them.

Memory: :func:`plan_memory` estimates the peak before any work; :func:`predict_to_dir` keeps
the three output maps in memory when they fit the budget, else streams them to
memory-mapped files slab by slab, else stops with a one-line error before writing anything.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import BACKGROUND, HELIX, SHEET
from ..errors import InputError
from ..io import Map
from ..net.device import resolve_device
from ..prep.components import ComponentConfig, crop_box, extract
from .config import PredictConfig, Zone
from .memory import cpu_threads

__all__ = ["PredictConfig", "Zone", "Prediction", "chain_zone", "predict_map", "FlipAverage"]


class FlipAverage:
    """Test-time augmentation: the mean logits over the identity and the three 180-degree
    rotations about the grid axes (proper rotations only: mirror images would turn
    right-handed helices left-handed)."""

    _PAIRS = ((), (3, 4), (2, 4), (2, 3))

    def __init__(self, net):
        self.net = net
        self.divisor = getattr(net, "divisor", 1)

    def eval(self):
        self.net.eval()
        return self

    def __call__(self, x):
        import torch

        out = None
        for dims in self._PAIRS:
            y = self.net(torch.flip(x, dims) if dims else x)
            y = torch.flip(y, dims) if dims else y
            out = y if out is None else out + y
        return out / len(self._PAIRS)


@dataclass(frozen=True)
class Prediction:
    helix_prob: Map
    sheet_prob: Map
    labels: Map
    summary: dict


def chain_zone(m: Map, atoms_xyz: np.ndarray, chains: tuple[str, ...],
               cfg: ComponentConfig = ComponentConfig()) -> Zone:
    """The component box and zone mask of a chain's heavy atoms on ``m``'s grid."""
    from ..prep.labels import within

    if len(atoms_xyz) == 0:
        raise InputError(",".join(chains) or "model", "chain has no atoms")
    start, size = crop_box(m, atoms_xyz, cfg.margin_a, cfg.multiple)
    box = Map(np.zeros(tuple(int(v) for v in size[::-1]), np.uint8), m.voxel_size_a,
              tuple(np.asarray(m.origin_a) + start * np.asarray(m.voxel_size_a)))
    mask = within(box, atoms_xyz, cfg.zone_radius_a)
    if not mask.any():
        raise InputError(",".join(chains), "no voxel of the map lies within the chain's zone")
    return Zone(start, size, mask, tuple(chains), float(cfg.zone_radius_a))


# ----------------------------------------------------------------------------- interpolation

def _axis(f: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour indices and weights for linear interpolation at fractional indices ``f``
    (clamped to the edge, like ``map_coordinates(mode="nearest")``)."""
    f = np.clip(f, 0, n - 1)
    i0 = np.minimum(np.floor(f).astype(np.intp), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, (f - i0).astype(np.float32)


def _lerp(a: np.ndarray, axis: int, ax) -> np.ndarray:
    i0, i1, w = ax
    shape = [1] * a.ndim
    shape[axis] = len(w)
    a0 = np.take(a, i0, axis=axis)
    a1 = np.take(a, i1, axis=axis)
    a1 -= a0
    a1 *= w.reshape(shape)
    a0 += a1
    return a0


def class_weights(card: dict) -> tuple[float, float] | None:
    """The card's ``class_weights`` as (helix, sheet), or None when it has none (or all 1)."""
    w = card.get("class_weights")
    if not w:
        return None
    try:
        if not isinstance(w, dict) or set(w) - {"helix", "sheet"}:
            raise TypeError
        wh, ws = float(w.get("helix", 1.0)), float(w.get("sheet", 1.0))
    except (TypeError, ValueError):
        wh = ws = float("nan")
    if not (wh > 0 and ws > 0 and np.isfinite(wh) and np.isfinite(ws)):
        raise InputError("checkpoint", f"class_weights must be positive numbers for helix and sheet, not {w!r}"[:200])
    return None if wh == ws == 1.0 else (wh, ws)


def reweight(h: np.ndarray, s: np.ndarray, weights: tuple[float, float] | None) -> None:
    """In place: helix and sheet probabilities after a prior shift by ``weights`` (other
    weighs 1; see the module doc). Voxels with h = s = 0 stay 0."""
    if weights is None:
        return
    wh, ws = weights
    z = 1.0 + (wh - 1.0) * h + (ws - 1.0) * s  # = other + wh h + ws s, with other = 1 - h - s
    h *= wh
    h /= z
    s *= ws
    s /= z


def _labels_of(h: np.ndarray, s: np.ndarray) -> np.ndarray:
    """argmax over (other = 1 - h - s, helix, sheet), first maximum wins, as label codes."""
    o = 1.0 - h - s
    lab = np.full(h.shape, BACKGROUND, np.int8)
    lab[(h > o) & (h >= s)] = HELIX
    lab[(s > o) & (s > h)] = SHEET
    return lab


# ----------------------------------------------------------------------------- prediction

def predict_map(m: Map, net, card: dict, cfg: PredictConfig = PredictConfig(), *,
                zone: Zone | None = None, outputs: dict[str, np.ndarray] | None = None,
                tile: int | None = None, progress=None) -> Prediction:
    """Segment ``m`` with a loaded network and its model card (see the module doc).

    ``outputs``: arrays of ``m``'s shape to fill (``helix``, ``sheet``, ``labels``), e.g.
    memory-mapped files; by default they are allocated. ``progress(done, total)``: called
    with the tiles done (:func:`cryosse.net.window.sliding_window_probs`).
    """
    import torch

    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    amp = (device.startswith("cuda")) if cfg.amp is None else cfg.amp
    net = net.to(device).eval()
    threads_before = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads))
    try:
        return _predict(m, _Network(net, card, device, amp, progress), cfg, zone, outputs, tile, t0)
    finally:
        torch.set_num_threads(threads_before)


def _masked_input(m: Map, cfg: PredictConfig, zone: Zone | None) -> Map:
    """Steps 1-2: the input cut to the chain's component box and zone, density below the
    contour set to 0."""
    if zone is not None:
        src = extract(m, zone.start_xyz, zone.size_xyz, fill=0)
        d = np.where(zone.mask, src.data, 0).astype(np.float32)
    else:
        src, d = m, m.data
    if cfg.contour is not None:
        d = np.where(d < cfg.contour, 0, d).astype(np.float32)
    return src.with_data(d) if d is not src.data else src


def _network_probs(src: Map, net, card: dict, cfg: PredictConfig, tile, device: str, amp: bool,
                   progress=None):
    """Steps 3-4: the working grid and the class probabilities on it (sliding windows).

    ``tile``: a (z, y, x) shape: margin tiles (one pass when it holds the whole volume); an
    int: Gaussian blending with ``cfg.overlap``; None: planned here (:func:`plan_memory`)."""
    from ..net.inputs import prepare_density
    from ..net.window import CONTEXT_MARGIN, sliding_window_probs
    from .memory import plan_memory

    work, x, pad = prepare_density(src, float(card["voxel_size_a"]), card.get("norm", "zscore"))
    if tile is None:
        plan = plan_memory(src.data.shape, src.voxel_size_a, card, net, cfg, device=device)
        tile = plan.tile_shape or plan.tile
    margin = CONTEXT_MARGIN if isinstance(tile, (tuple, list)) else None
    probs = sliding_window_probs(FlipAverage(net) if cfg.tta else net, x, tile=tile, overlap=cfg.overlap,
                                 batch=cfg.batch, divisor=getattr(net, "divisor", 1), pad_value=pad,
                                 device=device, amp=amp, margin=margin, progress=progress)
    return work, probs, tile


def _region(m: Map, zone: Zone | None) -> tuple[np.ndarray, np.ndarray]:
    """The [z, y, x] index range of the input grid that the prediction covers."""
    nz, ny, nx = m.data.shape
    if zone is None:
        return np.zeros(3, int), np.array([nz, ny, nx])
    return (np.maximum(zone.start_xyz, 0)[::-1],
            np.minimum(zone.start_xyz + zone.size_xyz, [nx, ny, nz])[::-1])


def _onto_grid(m: Map, work: Map, probs: np.ndarray, zone: Zone | None, outputs: dict, slab: int,
               weights: tuple[float, float] | None = None) -> np.ndarray:
    """Step 5: helix and sheet probabilities interpolated back onto the input grid, one slab
    of z-planes at a time (reweighted by the card's class weights), and the labels; returns
    the voxel count per label code."""
    nz, ny, nx = m.data.shape
    lo, hi = _region(m, zone)
    # fractional working-grid index of each input voxel centre inside the region, per axis
    axes = []
    for a_zyx in range(3):
        a_xyz = 2 - a_zyx
        pos = m.origin_a[a_xyz] + m.voxel_size_a[a_xyz] * np.arange(lo[a_zyx], hi[a_zyx])
        axes.append(_axis((pos - work.origin_a[a_xyz]) / work.voxel_size_a[a_xyz], probs.shape[1 + a_zyx]))
    hs = probs[1:3]  # helix, sheet: other = 1 - helix - sheet (interpolation is linear)
    counts = np.zeros(3, np.int64)
    for z0 in range(0, nz, slab):
        z1 = min(z0 + slab, nz)
        h = np.zeros((z1 - z0, ny, nx), np.float32)
        s = np.zeros_like(h)
        a, b = max(z0, lo[0]), min(z1, hi[0])
        if a < b and np.all(hi[1:] > lo[1:]):
            zax = tuple(v[a - lo[0]:b - lo[0]] for v in axes[0])
            part = _lerp(_lerp(_lerp(hs, 1, zax), 2, axes[1]), 3, axes[2])
            if zone is not None:
                off = lo - zone.start_xyz[::-1]
                keep = zone.mask[a - lo[0] + off[0]:b - lo[0] + off[0],
                                 off[1]:off[1] + hi[1] - lo[1], off[2]:off[2] + hi[2] - lo[2]]
                part *= keep[None]
            reweight(part[0], part[1], weights)
            h[a - z0:b - z0, lo[1]:hi[1], lo[2]:hi[2]] = part[0]
            s[a - z0:b - z0, lo[1]:hi[1], lo[2]:hi[2]] = part[1]
        lab = _labels_of(h, s)  # outside the region and the zone: h = s = 0, background
        outputs["helix"][z0:z1] = h
        outputs["sheet"][z0:z1] = s
        outputs["labels"][z0:z1] = lab
        counts += np.bincount(lab.ravel().astype(np.uint8), minlength=3)[:3]
    return counts


@dataclass(frozen=True)
class _Network:
    """A loaded network, its model card, and where it runs."""

    net: object
    card: dict
    device: str
    amp: bool
    progress: object = None


def _predict(m: Map, nw: _Network, cfg: PredictConfig, zone: Zone | None, outputs: dict | None,
             tile: int | None, t0: float) -> Prediction:
    import torch

    card, device, amp = nw.card, nw.device, nw.amp
    tile = tile or cfg.tile or None
    work, probs, tile = _network_probs(_masked_input(m, cfg, zone), nw.net, card, cfg, tile, device, amp,
                                       nw.progress)
    t_net = time.perf_counter() - t0
    if outputs is None:
        outputs = {"helix": np.empty(m.data.shape, np.float32), "sheet": np.empty(m.data.shape, np.float32),
                   "labels": np.empty(m.data.shape, np.int8)}
    weights = class_weights(card)
    counts = _onto_grid(m, work, probs, zone, outputs, cfg.slab, weights)
    n = m.data.size
    summary = {"shape_xyz": list(m.shape_xyz), "voxel_size_a": list(m.voxel_size_a),
               "origin_a": list(m.origin_a), "working_voxel_size_a": float(card["voxel_size_a"]),
               "working_shape_xyz": list(work.shape_xyz),
               "helix_fraction": float(counts[HELIX] / n), "sheet_fraction": float(counts[SHEET] / n),
               "contour": cfg.contour, "tile": [int(v) for v in tile] if isinstance(tile, (tuple, list)) else int(tile),
               "overlap": cfg.overlap if not isinstance(tile, (tuple, list)) else "margin",
               "network_s": round(t_net, 3), "runtime_s": round(time.perf_counter() - t0, 3),
               "device": device, "amp": bool(amp), "threads": torch.get_num_threads(), "tta": cfg.tta,
               "class_weights": {"helix": weights[0], "sheet": weights[1]} if weights else None}
    if zone is not None:
        summary.update(zone_chains=list(zone.chains), zone_radius_a=zone.radius_a,
                       zone_voxels=int(zone.mask.sum()), zone_box_start_xyz=[int(v) for v in zone.start_xyz],
                       zone_box_size_xyz=[int(v) for v in zone.size_xyz])
    return Prediction(m.with_data(outputs["helix"]), m.with_data(outputs["sheet"]),
                      m.with_data(outputs["labels"]), summary)
