"""One-file GPU check: times a training step of the default network (bf16 autocast on CUDA, as
``cryosse train`` does) and ``predict_map`` on a 256³ map (fp16 autocast on CUDA, as
``cryosse predict`` does), and prints one JSON line (also written to ``--json``).

Runs on the CPU too, with small sizes (``--small``, the default without CUDA), so it can be
tested anywhere:

    python scripts/gpu_check.py                 # on a GPU machine: 4 x 64³ training, 256³ map
    python scripts/gpu_check.py --small --device cpu
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    import numpy as np
    import torch

    from cryosse.io import Map
    from cryosse.inference import PredictConfig, plan_memory, predict_map
    from cryosse.train.loop import train_step
    from cryosse.train.losses import make_loss
    from cryosse.net.network import PRESETS, build_network

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--small", action="store_true", help="small sizes (default on CPU): 2 x 32³, 64³ map")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args(argv)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    small = a.small or device == "cpu"
    cuda = device.startswith("cuda")
    batch, patch, side = (2, 32, 64) if small else (4, 64, 256)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    torch.manual_seed(0)
    arch = dict(PRESETS["resunet"], n_classes=3, preset="resunet")
    net = build_network(arch).to(device)
    # training step: forward, focal+Dice, backward, AdamW; bf16 autocast on CUDA
    loss_fn = make_loss("focal_dice")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, patch, patch, patch, device=device)
    y = torch.randint(0, 3, (batch, patch, patch, patch), device=device)
    autocast = torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda)
    net.train()
    times = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for i in range(a.steps + 2):
        sync()
        t = time.perf_counter()
        loss = train_step(net, opt, loss_fn, x, y, autocast)
        sync()
        times.append(time.perf_counter() - t)
    step_s = sorted(times[2:])[len(times[2:]) // 2]
    train_mem = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None
    # inference on a side³ map at 1 Å (working grid 2 Å), fp16 autocast on CUDA
    card = {"arch": arch, "voxel_size_a": 2.0, "tile": 64, "classes": ["other", "helix", "sheet"]}
    m = Map(np.random.default_rng(0).normal(size=(side,) * 3).astype(np.float32), (1.0,) * 3, (0.0,) * 3)
    cfg = PredictConfig(device=device)
    plan = plan_memory(m.data.shape, m.voxel_size_a, card, net, cfg, device=device)
    net.eval()
    predict_map(m, net, card, cfg, tile=plan.tile)  # warm-up
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync()
    t = time.perf_counter()
    pred = predict_map(m, net, card, cfg, tile=plan.tile)
    sync()
    infer_s = time.perf_counter() - t
    res = {"device": device, "gpu": torch.cuda.get_device_name(0) if cuda else None,
           "torch": str(torch.__version__), "cpu": platform.processor() or platform.machine(),
           "train": {"batch": batch, "patch": patch, "step_s": round(step_s, 4),
                     "voxels_per_s": round(batch * patch ** 3 / step_s), "amp": "bf16" if cuda else None,
                     "peak_gpu_mb": train_mem, "loss": float(loss.detach())},
           "predict": {"side": side, "seconds": round(infer_s, 3), "network_s": pred.summary["network_s"],
                       "tile": plan.tile, "amp": pred.summary["amp"],
                       "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None,
                       "helix_fraction": pred.summary["helix_fraction"]}}
    line = json.dumps(res)
    print(line)
    if a.json:
        Path(a.json).write_text(line + "\n")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
