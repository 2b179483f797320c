"""The prediction command: helix/sheet probabilities and labels for any map."""
from __future__ import annotations

import argparse

from ..errors import InputError
from ..inference.config import PredictConfig
from ..prep.components import ComponentConfig
from .options import add_command, alias, config_option, field_option, output_option, say, settings, strings


def cmd_predict(a) -> None:
    from ..inference import BUNDLED_CHECKPOINT, predict_to_dir

    cfg, zone = settings(a, PredictConfig, ComponentConfig)  # ranges: cryosse.io.rules
    if cfg.device and cfg.device not in ("auto", "cpu", "cuda") and not cfg.device.startswith("cuda:"):
        raise InputError("--device", f"unknown device {cfg.device!r} (auto, cpu, cuda, cuda:N)")
    if cfg.device and cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError("--device", f"{cfg.device} asked for, but no CUDA device is available (use auto or cpu)")
    from .progress import Progress

    s = predict_to_dir(a.map, a.checkpoint or BUNDLED_CHECKPOINT, a.output, cfg, model=a.model,
                       chains=list(a.chain) if a.chain else None, zone_cfg=zone,
                       progress=Progress("tiles", quiet=a.quiet))
    if not a.quiet:
        say(f"{a.output}: helix {s['helix_fraction']:.1%}, sheet {s['sheet_fraction']:.1%} of voxels, "
                f"{s['runtime_s']:.2f} s on {s['device']}" + (", outputs streamed" if s["outputs_streamed"] else ""))


def register(sub) -> None:
    s = add_command(sub, "predict", "predict helix/sheet probabilities and labels for a map",
                    "Segment any MRC/CCP4 map (any size, voxel size, axis order): resampled to the model's "
                    "voxel size, normalised as in training, sliding windows with Gaussian blending (CUDA with "
                    "AMP when available, else CPU). Writes into OUTPUT, on MAP's own grid (shape, voxel size, "
                    "origin): helix_prob.mrc, sheet_prob.mrc, labels.mrc (0 background/other, 1 helix, "
                    "2 sheet), view.cxc for ChimeraX, preview.png (three slices through the centre of mass, "
                    "helix red, sheet blue) and summary.json (last). Progress (tiles done, ETA) goes to "
                    "stderr: a bar on a terminal, a line per 10 % otherwise.",
                    "predict emd_5168.map -o prediction\n"
                    "predict map.mrc --model fitted.pdb --chain A --contour 0.02 -o prediction_A", cmd_predict)
    s.add_argument("map", metavar="MAP", help="density map (MRC/CCP4, optionally gzipped)")
    s.add_argument("--checkpoint", help="checkpoint from 'cryosse train' (default: the bundled model)")
    field_option(s, PredictConfig, "contour", "--contour", type=float,
                 help="density below this level is set to 0 before resampling and normalisation")
    s.add_argument("--model", help="atomic model (PDB/mmCIF): predict only the chain zone (--chain)")
    s.add_argument("--chain", type=strings,
                   help="with --model: chain(s), comma-separated (default: all protein chains)")
    alias(s, "--chains", dest="chain", type=strings)
    field_option(s, ComponentConfig, "zone_radius_a", "--zone-radius", type=float,
                 help="with --model: zone radius in Å around the chain's heavy atoms")
    alias(s, "--zone", dest="zone_radius_a", type=float)
    field_option(s, PredictConfig, "device", "--device", help="auto, cpu or cuda (none or auto: cuda when available)")
    s.add_argument("--no-amp", dest="amp", action="store_false", default=argparse.SUPPRESS,
                   help="no fp16 autocast on CUDA")
    field_option(s, PredictConfig, "overlap", "--overlap", type=float, help="tile overlap fraction (with --tile only)")
    field_option(s, PredictConfig, "tile", "--tile", type=int,
                 help="tile side in working voxels, Gaussian-blended with --overlap (0: one pass when the "
                 "map fits the memory budget, else the largest tiles that fit, overlapping by a margin only)")
    field_option(s, PredictConfig, "batch", "--batch", type=int, help="tiles per network call")
    field_option(s, PredictConfig, "max_memory_gb", "--max-memory-gb", type=float,
                 help="memory budget for the arrays in GB: over it, outputs are streamed to disk slab by slab; "
                 "if even that does not fit, stop before writing anything")
    field_option(s, PredictConfig, "tta", "--tta", action="store_true",
                 help="average over the four 180-degree rotations (4x time)")
    field_option(s, PredictConfig, "threads", "--threads", type=int,
                 help="CPU threads (0: OMP_NUM_THREADS if set, else the cores not kept busy by other processes)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress and no result line")
    config_option(s)
    output_option(s, "output folder")
