"""A checkpoint scored on every sample of a datalist split (``cryosse score``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import read_map
from ..metrics import CLASS3, prf_from_confusion
from .scores import evaluate_maps, evaluate_residues

__all__ = ["score_checkpoint"]


def _sample_context(image: str) -> dict:
    meta = Path(image).with_name("meta.json")
    return json.loads(meta.read_text()) if meta.is_file() else {}


def score_checkpoint(checkpoint: str | os.PathLike, datalist: str | os.PathLike, split: str = "test",
                     device: str | None = None) -> dict:
    """Predict every sample of a datalist split with a checkpoint and score it: pooled and
    mean-over-samples voxel F1, and residue-level F1 where the sample's model is known."""
    from ..inference.predictor import PredictConfig, predict_map
    from ..io import read_model
    from ..net.checkpoint import load_checkpoint
    from ..prep.dataset import load_datalist
    from ..prep.sse import read_sse

    key = {"train": "training", "val": "validation", "test": "test"}.get(split, split)
    items = load_datalist(datalist).get(key, [])
    if not items:
        raise InputError(datalist, f"no samples in split {split!r}")
    net, card, _ = load_checkpoint(checkpoint)
    vox_cm = np.zeros((3, 3), np.int64)
    res_cm = np.zeros((3, 3), np.int64)
    per_sample = {}
    for it in items:
        dens, truth = read_map(it["image"]), read_map(it["label"])
        pred = predict_map(dens, net, card, PredictConfig(device=device)).labels
        ev = evaluate_maps(pred, truth)
        vox_cm += np.asarray(ev["confusion"])
        row = {f"voxel_{c}_f1": ev["classes"][c]["f1"] for c in CLASS3}
        ctx = _sample_context(it["image"])
        if ctx.get("model") and ctx.get("sse") and Path(ctx["model"]).is_file():
            rs = evaluate_residues(pred, read_model(ctx["model"]), ctx.get("chain"), read_sse(ctx["sse"]))
            res_cm += np.asarray(rs["confusion"])
            row.update({f"residue_{c}_f1": rs["classes"][c]["f1"] for c in CLASS3})
        per_sample[it["id"]] = row
    out = {"checkpoint": str(checkpoint), "loss": card.get("loss"), "preset": card["arch"].get("preset"),
           "split": split, "n_samples": len(items), "per_sample": per_sample,
           "voxel": prf_from_confusion(vox_cm), "voxel_confusion": vox_cm.tolist(),
           "voxel_mean_f1": {c: float(np.nanmean([r[f"voxel_{c}_f1"] for r in per_sample.values()]))
                             for c in CLASS3}}
    if res_cm.sum():
        out["residue"] = prf_from_confusion(res_cm)
        out["residue_confusion"] = res_cm.tolist()
    return out
