"""Commands of the training stage: train, ensemble, export-model."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from ..train.config import LOSSES, TrainConfig
from .options import (add_command, config_option, field_option, floats, memory_budget, memory_option, output_option,
                      say, settings)


def _oversample(text: str) -> dict:
    """``--oversample H,S``: the fractions of patch centres drawn on helix and on sheet voxels."""
    try:
        h, s = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError("--oversample", f"expected two fractions HELIX,SHEET, got {text!r}") from None
    _check_oversample({"helix": h, "sheet": s})
    return {"helix": h, "sheet": s}


def _check_oversample(o: dict) -> None:
    h, s = o.get("helix", 0), o.get("sheet", 0)
    if not (0 <= h <= 1 and 0 <= s <= 1 and h + s <= 1):
        raise InputError("--oversample", f"fractions must lie in [0, 1] and sum to at most 1, got {h:g},{s:g}")


def _threads(a) -> None:
    """``--threads N``: torch's CPU threads (0 leaves torch's default)."""
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)


def cmd_train(a) -> None:
    from ..train.loop import train

    cfg = settings(a, TrainConfig)
    _check_oversample(cfg.oversample)
    _memory_plan(a, a.datalist, cfg)
    _threads(a)
    card = train(a.datalist, a.output, cfg, init=a.init, init_member=a.init_member, resume=not a.no_resume)
    m = card["metrics"] or {}
    say(f"{a.output}/checkpoint.pt: best at step {card['step']} of {card['steps_run']} "
        f"({card['stop_reason']}): validation F1 helix {m.get('val_helix_f1', float('nan')):.3f}, "
        f"sheet {m.get('val_sheet_f1', float('nan')):.3f}")


def _memory_plan(a, datalist, cfg) -> None:
    """Refuse a datalist whose samples (sized from their headers) need more than the budget
    (default: the memory of this machine, or of its cgroup: a SLURM job's allocation)."""
    from ..io.budget import check_budget, machine_memory_gb
    from ..prep.dataset import load_datalist
    from ..train.data import memory_plan

    need, what = memory_plan(load_datalist(datalist), cfg.voxel_size_a, cfg.realism)
    check_budget(datalist, need, memory_budget(a, default=round(machine_memory_gb(), 1)), what)


#: bytes of memory per byte of checkpoint file that ``ensemble`` and ``soup`` hold at once: the
#: sources' tensors (a torch file stores them uncompressed), the network built from them, and the
#: ensemble or the float64 mean; measured between 2 and 4 sources of 18 MB, the peak grew 2.0x
#: their size in ensemble and 1.0-1.5x in soup
CHECKPOINT_BYTES_PER_BYTE = 3


def _checkpoints_plan(a, paths) -> None:
    """Refuse checkpoints whose sizes on disk alone say they will not fit in the budget (default:
    the memory of this machine or its cgroup), before any of them is read."""
    from ..io.budget import check_budget, machine_memory_gb

    sizes = []
    for p in paths:
        if not Path(p).is_file():
            raise InputError(p, "no such checkpoint")
        sizes.append(Path(p).stat().st_size)
    largest = paths[max(range(len(paths)), key=sizes.__getitem__)]
    total = sum(sizes)
    on_disk = f"{total / 1e9:.3g} GB" if total >= 1e9 else f"{total / 1e6:.3g} MB"
    check_budget(largest, CHECKPOINT_BYTES_PER_BYTE * total, memory_budget(a, default=round(machine_memory_gb(), 1)),
                 f"{len(paths)} checkpoints, {on_disk} on disk, the largest this one")


def cmd_export_model(a) -> None:
    from ..evaluate.realmaps import card_scores
    from ..io import write_json
    from ..net.checkpoint import export_checkpoint

    update = {}
    if a.real_maps:
        update["real_maps"] = card_scores(a.real_maps)
    if a.recipe:
        update["recipe"] = json.loads(Path(a.recipe).read_text()) if Path(a.recipe).is_file() else a.recipe
    card = export_checkpoint(a.checkpoint, a.output, half=not a.float32, card_update=update)
    write_json(Path(str(a.output)).with_suffix(".json"), card)
    say(f"{a.output}: {card['arch'].get('preset')} ({card['weights_dtype']}), "
        f"{Path(a.output).stat().st_size / 1e6:.1f} MB; card in {Path(str(a.output)).with_suffix('.json').name}")


def cmd_ensemble(a) -> None:
    from ..io import write_json
    from ..net.checkpoint import ensemble_checkpoints

    _checkpoints_plan(a, a.checkpoints)
    card = ensemble_checkpoints(a.checkpoints, a.output, half=a.float16)
    write_json(Path(str(a.output)).with_suffix(".json"), card)
    say(f"{a.output}: ensemble of {len(a.checkpoints)} networks ({card['arch']['preset']}), "
        f"{Path(a.output).stat().st_size / 1e6:.1f} MB")


def cmd_soup(a) -> None:
    from ..io import write_json
    from ..net.checkpoint import soup_checkpoints

    _checkpoints_plan(a, a.checkpoints)
    _threads(a)
    card = soup_checkpoints(a.checkpoints, a.output, validate_on=a.datalist)
    write_json(Path(str(a.output)).with_suffix(".json"), card)
    m = card["metrics"] or {}
    val = (f"; validation F1 helix {m['val_helix_f1']:.3f}, sheet {m['val_sheet_f1']:.3f}"
           if "val_helix_f1" in m else "")
    say(f"{a.output}: the mean weights of {len(a.checkpoints)} fine-tunes of "
        f"{card['init_checkpoint']['path']} (seeds {', '.join(str(x['seed']) for x in card['soup'])}){val}")


def register(sub) -> None:
    from ..net.inputs import NORMALISATIONS
    from ..net.presets import PRESETS

    s = add_command(sub, "train", "train the 3D U-Net on a datalist",
                    "Train on the datalist's training samples, validate on whole validation samples; writes "
                    "into OUTPUT checkpoint.pt (best validation mean of helix and sheet F1, a model card with "
                    "weights), last.pt (resumable: rerun the same command after an interruption), "
                    "metrics.jsonl, training_curve.png, model_card.json.",
                    "train --datalist results/dataset/datalist.json --loss focal_dice --steps 3000 -o results/model\n"
                    "train --config results/config/train.json --datalist datalist.json -o model",
                    cmd_train)
    s.add_argument("--datalist", required=True, help="datalist JSON from 'cryosse dataset' or 'training-set'")
    field_option(s, TrainConfig, "preset", "--preset", choices=list(PRESETS), help="network preset")
    field_option(s, TrainConfig, "loss", "--loss", choices=list(LOSSES), help="loss of Mu et al. 2024")
    field_option(s, TrainConfig, "focal_gamma", "--focal-gamma", type=float, help="focal loss gamma")
    field_option(s, TrainConfig, "focal_alpha", "--focal-alpha", type=floats(3, "weights"),
                 help="per-class focal weights other,helix,sheet")
    field_option(s, TrainConfig, "loss_weights", "--loss-weights", type=floats(2, "weights"),
                 help="weights of the two parts of ce_dice/focal_dice")
    field_option(s, TrainConfig, "voxel_size_a", "--voxel-size", type=float, help="working voxel size in Å")
    field_option(s, TrainConfig, "patch", "--patch", type=int, help="patch side in working voxels")
    field_option(s, TrainConfig, "batch", "--batch", type=int, help="patches per step")
    field_option(s, TrainConfig, "steps", "--steps", type=int, help="optimisation steps")
    field_option(s, TrainConfig, "optimizer", "--optimizer", choices=["adamw", "sgd"],
                 help="adamw (one-cycle schedule) or sgd (poly schedule)")
    field_option(s, TrainConfig, "lr", "--lr", type=float, help="peak learning rate")
    field_option(s, TrainConfig, "seed", "--seed", type=int, help="seed of weights, sampling and augmentation")
    field_option(s, TrainConfig, "val_every", "--val-every", type=int, help="steps between validations")
    field_option(s, TrainConfig, "checkpoint_every", "--checkpoint-every", type=int,
                 help="steps between resumable checkpoints")
    field_option(s, TrainConfig, "patience", "--patience", type=int,
                 help="stop after this many validations without better sheet F1 (0: never)")
    field_option(s, TrainConfig, "max_minutes", "--max-minutes", type=float, help="stop after this long (0: no limit)")
    field_option(s, TrainConfig, "device", "--device", help="auto (cuda when available), cpu or cuda")
    s.add_argument("--no-amp", dest="amp", action="store_false", default=argparse.SUPPRESS,
                   help="no mixed precision on CUDA")
    field_option(s, TrainConfig, "norm", "--norm", choices=list(NORMALISATIONS),
                 help="input normalisation: z-score over the box, local (8 Å window) or support (local, over the "
                 "non-zero voxels only)")
    field_option(s, TrainConfig, "realism", "--realism", action="store_true",
                 help="degrade training patches like native maps (noise, blur, local resolution, sharpening, "
                 "background, masks, thresholds; see cryosse.prep.realism)")
    field_option(s, TrainConfig, "realism_ramp", "--realism-ramp", type=floats(2, "fractions"),
                 help="fractions of the steps where realism starts and reaches full strength")
    field_option(s, TrainConfig, "oversample", "--oversample", type=_oversample,
                 help="class-aware sampling: fractions HELIX,SHEET of patch centres on helix and on sheet "
                 "voxels (0,0 draws every centre uniformly)")
    s.add_argument("--init", help="start from this checkpoint's weights (fine-tuning)")
    s.add_argument("--init-member", type=int, default=None,
                   help="with an ensemble as --init: start from its member N (0-based, in the card's members order)")
    s.add_argument("--no-resume", action="store_true", help="ignore OUTPUT/last.pt")
    memory_option(s, "the memory of this machine or job")
    s.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    config_option(s)
    output_option(s, "output folder", "--out-dir")

    s = add_command(sub, "ensemble", "several checkpoints as one (mean probability)",
                    "Combine checkpoints trained on the same data and grid into one checkpoint whose "
                    "prediction is the members' mean probability; the card lists each member's loss, seed, "
                    "step and metrics. 'cryosse export-model' slims it.",
                    "ensemble seed0/checkpoint.pt seed1/checkpoint.pt -o ensemble.pt", cmd_ensemble)
    s.add_argument("checkpoints", nargs="+", help="checkpoints from 'cryosse train'")
    s.add_argument("--float16", action="store_true", help="store weights as float16")
    memory_option(s, "the memory of this machine or job")
    output_option(s, "output checkpoint")

    s = add_command(sub, "soup", "average the weights of fine-tunes of one start (a model soup)",
                    "One network whose weights are the mean of several fine-tunes that began from the same "
                    "checkpoint (their cards' init_checkpoint must agree, as must architecture and data): the "
                    "seed noise of a fine-tune averaged out at no extra prediction cost. The card lists each "
                    "source's seed, steps and validation metrics.",
                    "soup ft_seed0/checkpoint.pt ft_seed100/checkpoint.pt -o soup.pt", cmd_soup)
    s.add_argument("checkpoints", nargs="+", help="fine-tunes from 'cryosse train --init' of one checkpoint")
    s.add_argument("--datalist", help="the sources' datalist: validate the soup as training validates a run")
    s.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    memory_option(s, "the memory of this machine or job")
    output_option(s, "output checkpoint")

    s = add_command(sub, "export-model", "a slim checkpoint for distribution (the bundled model)",
                    "Weights only (float16 unless --float32), the model card updated with the recipe and the "
                    "real-map scores; the card is also written beside it as JSON.",
                    "export-model ensemble.pt --real-maps real_maps.json --recipe recipe.json -o model.pt",
                    cmd_export_model)
    s.add_argument("checkpoint", help="checkpoint from 'cryosse train' or 'cryosse ensemble'")
    s.add_argument("--real-maps", help="real_maps.json from 'cryosse real-maps', recorded in the card")
    s.add_argument("--recipe", help="JSON file or text describing how the model was made")
    s.add_argument("--float32", action="store_true", help="keep float32 weights")
    output_option(s, "output checkpoint")

