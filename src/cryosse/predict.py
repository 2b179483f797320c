"""Prediction: helix and sheet probabilities and a label map for any map, on its own grid.

The map is resampled to the model's working voxel size and normalised exactly as in training
(:func:`cryosse.train.data.prepare_density`), segmented by sliding windows with Gaussian
blending, and the probabilities are interpolated back onto the input grid (same shape,
voxel size and origin), so outputs overlay the input map in ChimeraX without moving.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import HELIX, SHEET
from .density import resample_to_grid
from .io import Map, write_json, write_map, write_text
from .train.data import prepare_density
from .train.infer import sliding_window_probs

__all__ = ["Prediction", "predict_map", "write_prediction", "BUNDLED_CHECKPOINT"]

#: The model that ships with cryosse (``snakemake bundled_model`` rebuilds it; its model card
#: says how it was trained and how it scores on real maps).
BUNDLED_CHECKPOINT = Path(__file__).resolve().parent / "data" / "models" / "cryosse-sse-v1.pt"


@dataclass(frozen=True)
class Prediction:
    helix_prob: Map
    sheet_prob: Map
    labels: Map
    summary: dict


class FlipAverage:
    """Test-time augmentation: the mean logits over the identity and the three 180-degree
    rotations about the grid axes (proper rotations only: mirror images would turn
    right-handed helices left-handed)."""

    _PAIRS = ((), (3, 4), (2, 4), (2, 3))

    def __init__(self, net):
        self.net = net
        self.divisor = net.divisor

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


def predict_map(m: Map, net, card: dict, *, device: str | None = None, overlap: float = 0.5,
                batch: int = 2, amp: bool | None = None, tta: bool = False) -> Prediction:
    """Segment ``m`` with a loaded network and its model card (``tta``: average over the
    four 180-degree grid rotations, about 4x the time)."""
    import torch

    t0 = time.time()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    amp = (device == "cuda") if amp is None else amp
    net = net.to(device)
    work, x, pad = prepare_density(m, float(card["voxel_size_a"]), card.get("norm", "zscore"))
    probs = sliding_window_probs(FlipAverage(net) if tta else net, x, tile=int(card.get("tile", 64)), overlap=overlap, batch=batch,
                                 divisor=net.divisor, pad_value=pad, device=device, amp=amp)
    back = [resample_to_grid(work.with_data(p), m.origin_a, m.voxel_size_a, m.shape_xyz,
                             order=1, mode="nearest").data for p in probs]
    stack = np.stack(back)
    labels = np.zeros(m.data.shape, np.uint8)
    arg = stack.argmax(0)
    labels[arg == 1] = HELIX
    labels[arg == 2] = SHEET
    n = labels.size
    summary = {"shape_xyz": list(m.shape_xyz), "voxel_size_a": list(m.voxel_size_a),
               "origin_a": list(m.origin_a), "working_voxel_size_a": float(card["voxel_size_a"]),
               "helix_fraction": float((labels == HELIX).sum() / n),
               "sheet_fraction": float((labels == SHEET).sum() / n),
               "runtime_s": round(time.time() - t0, 3), "device": device, "amp": bool(amp)}
    return Prediction(m.with_data(stack[1].astype(np.float32)), m.with_data(stack[2].astype(np.float32)),
                      m.with_data(labels), summary)


def write_prediction(pred: Prediction, out_dir: str | os.PathLike, map_path: str | os.PathLike) -> None:
    """``helix_prob.mrc``, ``sheet_prob.mrc``, ``labels.mrc``, ``summary.json`` and a ChimeraX
    script ``view.cxc`` that opens the input map and the predictions, coloured."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_map(pred.helix_prob, out / "helix_prob.mrc")
    write_map(pred.sheet_prob, out / "sheet_prob.mrc")
    write_map(pred.labels, out / "labels.mrc", labels=True)
    write_json(out / "summary.json", dict(pred.summary, input=str(map_path)))
    rel = os.path.relpath(Path(map_path).resolve(), out.resolve())
    write_text(out / "view.cxc", "\n".join([
        "# ChimeraX: open this file (it opens the map and the predicted helix/sheet probabilities)",
        f"open \"{rel}\"", "open helix_prob.mrc", "open sheet_prob.mrc",
        "volume #1 style mesh color #b0b0b0",
        "volume #2 level 0.5 color #e41a1c style surface transparency 0.3",
        "volume #3 level 0.5 color #377eb8 style surface transparency 0.3", "view", ""]))
