"""Prediction outputs for people: the files of ``cryosse predict`` in an output folder, written
atomically (``summary.json`` last), and a ChimeraX script that shows them."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import BUNDLED_NAME
from ..errors import InputError
from ..net.device import resolve_device
from ..io import Map, write_json, write_map, write_map_mmap, write_text
from ..io.files import remove_stale, temp_prefix
from ..prep.components import ComponentConfig
from .memory import GB, check_before_reading, plan_memory
from .predictor import PredictConfig, chain_zone, predict_map
from .preview import write_preview

__all__ = ["predict_to_dir", "write_view_script", "OUTPUT_FILES", "BUNDLED_CHECKPOINT"]

#: The model that ships with cryosse (``snakemake bundled_model`` rebuilds it; its model card
#: says how it was trained and how it scores on real maps).
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "models" / f"{BUNDLED_NAME}.pt"
#: The previous bundled model (cryosse-sse-v1.1), kept in the package: the bundle recipe's
#: fine-tunes start from its members (config bundle.finetune.init).
PREVIOUS_CHECKPOINT = BUNDLED_CHECKPOINT.with_name("cryosse-sse-v1.1.pt")

OUTPUT_FILES = ("helix_prob.mrc", "sheet_prob.mrc", "labels.mrc", "view.cxc", "preview.png", "summary.json")


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


def _shown_name(map_path) -> str:
    """The map's name in the preview's title, with its folder (``1abc_A/density.mrc``)."""
    p = Path(map_path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _contour_level(m: Map, cfg: PredictConfig) -> float:
    if cfg.contour is not None:
        return float(cfg.contour)
    d = m.data
    return float(d.mean(dtype=np.float64) + 2 * d.std(dtype=np.float64))


def predict_to_dir(map_path: str | os.PathLike, checkpoint: str | os.PathLike,
                   out_dir: str | os.PathLike, cfg: PredictConfig = PredictConfig(), *,
                   model: str | os.PathLike | None = None, chains: list[str] | None = None,
                   zone_cfg: ComponentConfig = ComponentConfig(), progress=None) -> dict:
    """Predict ``map_path`` and write :data:`OUTPUT_FILES` into ``out_dir``; returns the summary.
    ``preview.png``: :func:`cryosse.inference.preview.write_preview`; ``progress(done, total)``
    is called with the tiles done.

    The memory plan is checked first: an estimate over ``cfg.max_memory_gb`` even with streamed
    outputs raises :class:`InputError` before anything is written. All files are written into
    a temporary folder inside ``out_dir`` and then renamed into place, ``summary.json`` last
    (a previous ``summary.json`` is removed first), so a complete set is marked by its summary.
    """
    from ..io import protein_atoms, read_map, read_model
    from ..net.checkpoint import load_checkpoint

    t0 = time.perf_counter()
    if chains and model is None:
        raise InputError("--chain", "needs --model")
    net, card, _ = load_checkpoint(checkpoint)
    atoms = protein_atoms(read_model(model, chains)) if model is not None else None
    check_before_reading(map_path, card, net, cfg, None if atoms is None else atoms.xyz, zone_cfg,
                         resolve_device(cfg.device), model)
    m = read_map(map_path)
    zone = None
    if atoms is not None:
        zone = chain_zone(m, atoms.xyz, tuple(chains or sorted({c for c in atoms.chain})), zone_cfg)
    plan = plan_memory(m.data.shape, m.voxel_size_a, card, net, cfg, zone, resolve_device(cfg.device))
    budget = cfg.max_memory_gb * GB
    if plan.streamed > budget:
        raise InputError(map_path, f"needs about {plan.streamed / GB:.2f} GB even with outputs streamed to "
                                   f"disk ({plan.describe()}), more than --max-memory-gb {cfg.max_memory_gb:g}")
    stream = plan.in_memory > budget
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").unlink(missing_ok=True)
    remove_stale(out)  # the temporary folders of killed runs
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(), suffix=".predict", dir=out))
    try:
        if stream:
            with write_map_mmap(m, tmp / "helix_prob.mrc") as h, write_map_mmap(m, tmp / "sheet_prob.mrc") as s, \
                    write_map_mmap(m, tmp / "labels.mrc", labels=True) as lab:
                pred = predict_map(m, net, card, cfg, zone=zone, tile=plan.tile_shape or plan.tile,
                                   outputs={"helix": h, "sheet": s, "labels": lab}, progress=progress)
                write_preview(tmp / "preview.png", m, pred.labels, title=_shown_name(map_path))
                summary = dict(pred.summary)
                del pred
        else:
            pred = predict_map(m, net, card, cfg, zone=zone, tile=plan.tile_shape or plan.tile, progress=progress)
            write_preview(tmp / "preview.png", m, pred.labels, title=_shown_name(map_path))
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
