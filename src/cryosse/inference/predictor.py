"""Prediction: helix and sheet probabilities and a label map for any map, on its own grid.

Steps, for a map of any size, voxel size and axis order (:func:`cryosse.io.read_map` brings
it to ``[z, y, x]``):

1. Optional contour: density below ``contour`` is set to 0 (the value of empty space in the
   training components) on the input grid, before anything else.
2. Optional chain zone (``zone``, from :func:`chain_zone`): the map is cut to the chain's
   component box (atoms' bounding box + ``margin_a``, sides a multiple of ``multiple`` voxels,
   as :mod:`cryosse.components` cuts training samples) and density farther than
   ``zone_radius_a`` from the chain's heavy atoms is set to 0, as DeepSSETracer does.
3. Resampled to the model's working voxel size and z-scored over the whole box
   (:func:`cryosse.train.data.prepare_density`, exactly as in training).
4. Sliding windows with Gaussian blending (:func:`cryosse.train.infer.sliding_window_probs`),
   batched, on CUDA with fp16 autocast when available, else on the CPU in float32.
5. Helix and sheet probabilities are interpolated back (trilinear, separable, edge values
   extended) onto the input map's own grid, one slab of z-planes at a time; outside the chain
   zone they are 0 and the label is background. Labels: 1 helix, 2 sheet, 0 everything else
   (the network's "other" class merges background and coil, so code 3 is never written).

Memory: :func:`plan_memory` estimates the peak before any work; :func:`predict_to_dir` keeps
the three output maps in memory when they fit the budget, else streams them to
memory-mapped files slab by slab, else stops with a one-line error before writing anything.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import BACKGROUND, HELIX, SHEET
from .components import ComponentConfig, crop_box, extract
from .errors import InputError
from .io import Map, write_json, write_map, write_map_mmap, write_text

__all__ = ["PredictConfig", "cpu_threads", "Zone", "Prediction", "MemoryPlan", "chain_zone", "plan_memory",
           "predict_map", "write_view_script", "predict_to_dir", "OUTPUT_FILES", "BUNDLED_CHECKPOINT",
           "FlipAverage"]

#: The model that ships with cryosse (``snakemake bundled_model`` rebuilds it; its model card
#: says how it was trained and how it scores on real maps).
BUNDLED_CHECKPOINT = Path(__file__).resolve().parent / "data" / "models" / "cryosse-sse-v1.pt"

OUTPUT_FILES = ("helix_prob.mrc", "sheet_prob.mrc", "labels.mrc", "view.cxc", "summary.json")
GB = 1024 ** 3


@dataclass(frozen=True)
class PredictConfig:
    """How to predict. ``tile`` is in working voxels (0: automatic, the largest of 128, 96 and
    the model card's tile that fits the memory budget; the network is fully convolutional, so
    larger tiles only save overlap); ``max_memory_gb`` bounds the arrays (maps, accumulators,
    network activations on the CPU), not the ~0.5 GB of Python and torch themselves."""

    contour: float | None = None
    overlap: float = 0.5
    tile: int = 0
    batch: int = 2
    device: str | None = None
    amp: bool | None = None
    max_memory_gb: float = 8.0
    slab: int = 16
    threads: int = 0  # CPU threads; 0: see cpu_threads()
    tta: bool = False  # average over the four 180-degree grid rotations (FlipAverage), ~4x time


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


def cpu_threads(requested: int = 0) -> int:
    """Threads for CPU inference: ``requested`` if given; else ``OMP_NUM_THREADS`` when set
    (Snakemake sets it to the rule's threads); else torch's default, less the cores other
    processes keep busy (1-minute load average), at least 1. On a shared 2-core machine
    with other work running, one thread was 3-10x faster than two (README, Prediction speed)."""
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
class Zone:
    """A chain component on the input grid: box start and size (x, y, z voxels of the input
    grid; may reach outside it) and the mask of voxels within the zone radius (``[z, y, x]``
    of the box)."""

    start_xyz: np.ndarray
    size_xyz: np.ndarray
    mask: np.ndarray
    chains: tuple[str, ...]
    radius_a: float


@dataclass(frozen=True)
class Prediction:
    helix_prob: Map
    sheet_prob: Map
    labels: Map
    summary: dict


@dataclass(frozen=True)
class MemoryPlan:
    """Estimated peak bytes (``parts`` by item) with outputs in memory or streamed to disk."""

    in_memory: int
    streamed: int
    parts: dict
    tile: int

    def describe(self) -> str:
        return ", ".join(f"{k} {v / GB:.2f}" for k, v in self.parts.items() if v) + " GB"


def chain_zone(m: Map, atoms_xyz: np.ndarray, chains: tuple[str, ...],
               cfg: ComponentConfig = ComponentConfig()) -> Zone:
    """The component box and zone mask of a chain's heavy atoms on ``m``'s grid."""
    from .labels import within

    if len(atoms_xyz) == 0:
        raise InputError(",".join(chains) or "model", "chain has no atoms")
    start, size = crop_box(m, atoms_xyz, cfg.margin_a, cfg.multiple)
    box = Map(np.zeros(tuple(int(v) for v in size[::-1]), np.uint8), m.voxel_size_a,
              tuple(np.asarray(m.origin_a) + start * np.asarray(m.voxel_size_a)))
    mask = within(box, atoms_xyz, cfg.zone_radius_a)
    if not mask.any():
        raise InputError(",".join(chains), "no voxel of the map lies within the chain's zone")
    return Zone(start, size, mask, tuple(chains), float(cfg.zone_radius_a))


def _work_shape(shape_xyz, voxel_in, voxel_work: float) -> tuple[int, int, int]:
    extent = (np.asarray(shape_xyz) - 1) * np.asarray(voxel_in)
    n = np.floor(extent / voxel_work + 1e-6).astype(int) + 1
    return tuple(int(v) for v in n[::-1])  # z, y, x


def plan_memory(shape_zyx, voxel_size_a, card: dict, net, cfg: PredictConfig,
                zone: Zone | None = None, device: str = "cpu") -> MemoryPlan:
    """Estimate the peak memory of :func:`predict_map` (bytes), before doing anything.

    Items: the input map (float32), its masked copy (contour or zone), the zone mask,
    the resampling to the working grid (float64 coordinates and float32 copies), the sliding
    window (padded volume, one accumulator per class, the weights), the network activations of
    one batch of tiles (CPU only), the back-interpolation of one slab of planes, and the output
    maps (helix and sheet float32, labels int8) when held in memory.
    """
    from .train.infer import activation_bytes_per_voxel

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
    candidates = [cfg.tile] if cfg.tile else sorted({128, 96, int(card.get("tile", 64))}, reverse=True)
    plans = []
    for tile in candidates:
        tile_vox = int(np.prod([min(math.ceil(min(tile, p) / div) * div, p) for p in padded]))
        phases = {"resampling": 4 * n_box + 40 * n_work,
                  "sliding window": (n_cls + 3) * 4 * n_work + int(cfg.batch * tile_vox * per_vox),
                  "back-interpolation": n_cls * 4 * n_work + 48 * cfg.slab * ny * nx}
        worst = max(phases, key=phases.get)
        parts = dict(fixed, **{worst: phases[worst]}, outputs=9 * n_in)
        streamed = sum(parts.values()) - parts["outputs"]
        plans.append(MemoryPlan(streamed + parts["outputs"], streamed, parts, tile))
    budget = cfg.max_memory_gb * GB
    # the largest tile with outputs in memory, else the largest with streamed outputs
    return next((p for p in plans if p.in_memory <= budget),
                next((p for p in plans if p.streamed <= budget), plans[-1]))


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
                tile: int | None = None) -> Prediction:
    """Segment ``m`` with a loaded network and its model card (see the module doc).

    ``outputs``: arrays of ``m``'s shape to fill (``helix``, ``sheet``, ``labels``), e.g.
    memory-mapped files; by default they are allocated.
    """
    import torch

    t0 = time.perf_counter()
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    amp = (device.startswith("cuda")) if cfg.amp is None else cfg.amp
    net = net.to(device).eval()
    threads_before = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(cpu_threads(cfg.threads))
    try:
        return _predict(m, net, card, cfg, zone, outputs, tile, device, amp, t0)
    finally:
        torch.set_num_threads(threads_before)


def _predict(m, net, card, cfg, zone, outputs, tile, device, amp, t0) -> Prediction:
    import torch

    from .train.data import prepare_density
    from .train.infer import sliding_window_probs

    voxel_work = float(card["voxel_size_a"])
    # 1-2: contour and chain zone on the input grid
    if zone is not None:
        src = extract(m, zone.start_xyz, zone.size_xyz, fill=0)
        d = np.where(zone.mask, src.data, 0).astype(np.float32)
    else:
        src, d = m, m.data
    if cfg.contour is not None:
        d = np.where(d < cfg.contour, 0, d).astype(np.float32)
    if d is not src.data:
        src = src.with_data(d)
    # 3-4: working grid, normalisation, sliding windows
    work, x, pad = prepare_density(src, voxel_work, card.get("norm", "zscore"))
    del d, src
    tile = tile or cfg.tile or int(card.get("tile", 64))
    probs = sliding_window_probs(FlipAverage(net) if cfg.tta else net, x, tile=tile, overlap=cfg.overlap, batch=cfg.batch,
                                 divisor=getattr(net, "divisor", 1), pad_value=pad, device=device, amp=amp)
    del x
    t_net = time.perf_counter() - t0
    # 5: back onto the input grid, one slab of z-planes at a time
    if outputs is None:
        outputs = {"helix": np.empty(m.data.shape, np.float32), "sheet": np.empty(m.data.shape, np.float32),
                   "labels": np.empty(m.data.shape, np.int8)}
    nz, ny, nx = m.data.shape
    if zone is not None:
        lo = np.maximum(zone.start_xyz, 0)[::-1]
        hi = np.minimum(zone.start_xyz + zone.size_xyz, [nx, ny, nz])[::-1]
    else:
        lo, hi = np.zeros(3, int), np.array([nz, ny, nx])
    # fractional working-grid index of each input voxel centre inside the region, per axis
    axes = []
    for a_zyx in range(3):
        a_xyz = 2 - a_zyx
        pos = m.origin_a[a_xyz] + m.voxel_size_a[a_xyz] * np.arange(lo[a_zyx], hi[a_zyx])
        axes.append(_axis((pos - work.origin_a[a_xyz]) / work.voxel_size_a[a_xyz], probs.shape[1 + a_zyx]))
    hs = probs[1:3]  # helix, sheet: other = 1 - helix - sheet (interpolation is linear)
    counts = np.zeros(3, np.int64)
    for z0 in range(0, nz, cfg.slab):
        z1 = min(z0 + cfg.slab, nz)
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
            h[a - z0:b - z0, lo[1]:hi[1], lo[2]:hi[2]] = part[0]
            s[a - z0:b - z0, lo[1]:hi[1], lo[2]:hi[2]] = part[1]
        lab = _labels_of(h, s)  # outside the region and the zone: h = s = 0, background
        outputs["helix"][z0:z1] = h
        outputs["sheet"][z0:z1] = s
        outputs["labels"][z0:z1] = lab
        counts += np.bincount(lab.ravel().astype(np.uint8), minlength=3)[:3]
    n = m.data.size
    summary = {"shape_xyz": list(m.shape_xyz), "voxel_size_a": list(m.voxel_size_a),
               "origin_a": list(m.origin_a), "working_voxel_size_a": voxel_work,
               "working_shape_xyz": list(work.shape_xyz),
               "helix_fraction": float(counts[HELIX] / n), "sheet_fraction": float(counts[SHEET] / n),
               "contour": cfg.contour, "tile": int(tile), "overlap": cfg.overlap,
               "network_s": round(t_net, 3), "runtime_s": round(time.perf_counter() - t0, 3),
               "device": device, "amp": bool(amp), "threads": torch.get_num_threads(), "tta": cfg.tta}
    if zone is not None:
        summary.update(zone_chains=list(zone.chains), zone_radius_a=zone.radius_a,
                       zone_voxels=int(zone.mask.sum()), zone_box_start_xyz=[int(v) for v in zone.start_xyz],
                       zone_box_size_xyz=[int(v) for v in zone.size_xyz])
    return Prediction(m.with_data(outputs["helix"]), m.with_data(outputs["sheet"]),
                      m.with_data(outputs["labels"]), summary)


# ----------------------------------------------------------------------------- outputs

def write_view_script(path: str | os.PathLike, map_path: str | os.PathLike, level: float,
                      folder: str | os.PathLike | None = None) -> None:
    """A ChimeraX script that opens the input map (mesh at ``level``) and the helix (red) and
    sheet (blue) probability maps at 0.5. Paths are relative to the folder the script will
    live in (``folder``, default its own), which ChimeraX makes the current folder while it
    runs a ``.cxc`` file."""
    out = Path(folder or Path(path).parent).resolve()
    rel = os.path.relpath(Path(map_path).resolve(), out)
    write_text(path, "\n".join([
        "# ChimeraX (open in a fresh session): the input map as a grey mesh at its contour level,",
        "# helix probability >= 0.5 in red, sheet probability >= 0.5 in blue.",
        f'open "{rel}"', "open helix_prob.mrc", "open sheet_prob.mrc",
        f"volume #1 level {level:.6g} style mesh color #b0b0b0",
        "volume #2 level 0.5 style surface color #e41a1c transparency 0.3",
        "volume #3 level 0.5 style surface color #377eb8 transparency 0.3", "view", ""]))


def _contour_level(m: Map, cfg: PredictConfig) -> float:
    if cfg.contour is not None:
        return float(cfg.contour)
    d = m.data
    return float(d.mean(dtype=np.float64) + 2 * d.std(dtype=np.float64))


def predict_to_dir(map_path: str | os.PathLike, checkpoint: str | os.PathLike,
                   out_dir: str | os.PathLike, cfg: PredictConfig = PredictConfig(), *,
                   model: str | os.PathLike | None = None, chains: list[str] | None = None,
                   zone_cfg: ComponentConfig = ComponentConfig()) -> dict:
    """Predict ``map_path`` and write :data:`OUTPUT_FILES` into ``out_dir``; returns the summary.

    The memory plan is checked first: an estimate over ``cfg.max_memory_gb`` even with streamed
    outputs raises :class:`InputError` before anything is written. All files are written into
    a temporary folder inside ``out_dir`` and then renamed into place, ``summary.json`` last
    (a previous ``summary.json`` is removed first), so a complete set is marked by its summary.
    """
    from .io import protein_atoms, read_map, read_model
    from .train.checkpoint import load_checkpoint

    t0 = time.perf_counter()
    m = read_map(map_path)
    net, card, _ = load_checkpoint(checkpoint)
    zone = None
    if model is not None:
        st = read_model(model, chains)
        atoms = protein_atoms(st)
        zone = chain_zone(m, atoms.xyz, tuple(chains or sorted({c for c in atoms.chain})), zone_cfg)
    elif chains:
        raise InputError("--chain", "needs --model")
    import torch

    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    plan = plan_memory(m.data.shape, m.voxel_size_a, card, net, cfg, zone, device)
    budget = cfg.max_memory_gb * GB
    if plan.streamed > budget:
        raise InputError(map_path, f"needs about {plan.streamed / GB:.2f} GB even with outputs streamed to "
                                   f"disk ({plan.describe()}), more than --max-memory-gb {cfg.max_memory_gb:g}")
    stream = plan.in_memory > budget
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".predict-", dir=out))
    try:
        if stream:
            with write_map_mmap(m, tmp / "helix_prob.mrc") as h, write_map_mmap(m, tmp / "sheet_prob.mrc") as s, \
                    write_map_mmap(m, tmp / "labels.mrc", labels=True) as lab:
                pred = predict_map(m, net, card, cfg, zone=zone, tile=plan.tile,
                                   outputs={"helix": h, "sheet": s, "labels": lab})
                summary = dict(pred.summary)
                del pred
        else:
            pred = predict_map(m, net, card, cfg, zone=zone, tile=plan.tile)
            write_map(pred.helix_prob, tmp / "helix_prob.mrc")
            write_map(pred.sheet_prob, tmp / "sheet_prob.mrc")
            write_map(pred.labels, tmp / "labels.mrc", labels=True)
            summary = dict(pred.summary)
            del pred
        level = _contour_level(m, cfg)
        write_view_script(tmp / "view.cxc", map_path, level, folder=out)
        summary.update(input=str(map_path), checkpoint=str(checkpoint), outputs_streamed=stream,
                       memory_estimate_gb=round((plan.streamed if stream else plan.in_memory) / GB, 3),
                       max_memory_gb=cfg.max_memory_gb, input_contour_level=level,
                       total_s=round(time.perf_counter() - t0, 3), config=asdict(cfg))
        write_json(tmp / "summary.json", summary)
        for name in OUTPUT_FILES:  # summary.json last
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary
