"""Training speed: voxels per second of a training step (forward + backward + AdamW) for the
cryosse U-Net presets, as a ratio to MONAI's UNet of the same size, patch and batch, measured in
the same run; peak memory; the cost per voxel (FLOP) of each network; and what channels-last 3D,
bf16 autocast and torch.compile change on this CPU.

Each configuration runs in its own process (so peak memory is its own). Results are printed and
written to bench/results/bench_train.json.

    python bench/bench_train.py [--steps 8] [--no-compile]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(kind: str):
    from cryosse.net.network import PRESETS, build_network

    if kind in PRESETS:
        return build_network(dict(PRESETS[kind], n_classes=3))
    from monai.networks.nets import UNet

    if kind == "monai_unet":
        # the same size as the default 'resunet' preset: channels 16-32-64-128, strided
        # convolutions down (the first one included), two residual units per level, BatchNorm
        return UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(16, 32, 64, 128),
                    strides=(2, 2, 2), num_res_units=2, norm="batch")
    if kind == "monai_unet_small":
        # the same size as the classic 'small' preset: 16-32-64, no residual units
        return UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(16, 32, 64),
                    strides=(2, 2), num_res_units=0, norm="batch")
    raise ValueError(kind)


def flops_per_voxel(net, side: int = 32) -> float:
    """Multiply-adds x 2 of all convolutions per input voxel (one forward pass)."""
    import torch

    total = [0]

    def hook(mod, inp, out):
        k = 1
        for s in mod.kernel_size:
            k *= s
        if isinstance(mod, torch.nn.ConvTranspose3d):
            total[0] += 2 * inp[0].numel() // inp[0].shape[1] * mod.in_channels * mod.out_channels // mod.groups * k
        else:
            total[0] += 2 * out.numel() // out.shape[1] * mod.out_channels * mod.in_channels // mod.groups * k

    hs = [m.register_forward_hook(hook) for m in net.modules()
          if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, side, side, side))
    for h in hs:
        h.remove()
    return total[0] / side ** 3


def one(kind: str, patch: int, batch: int, steps: int, mode: str) -> dict:
    """Time ``steps`` training steps after two warm-up steps."""
    import torch

    from cryosse.train.loop import train_step
    from cryosse.train.losses import make_loss

    torch.manual_seed(0)
    net = build(kind)
    n_params = sum(p.numel() for p in net.parameters())
    fpv = flops_per_voxel(net)
    net.train()
    x = torch.randn(batch, 1, patch, patch, patch)
    y = torch.randint(0, 3, (batch, patch, patch, patch))
    if mode == "channels_last":
        net = net.to(memory_format=torch.channels_last_3d)
        x = x.to(memory_format=torch.channels_last_3d)
    step_net = torch.compile(net) if mode == "compile" else net
    loss_fn = make_loss("focal_dice")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16")
    t_compile = time.perf_counter()
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        train_step(step_net, opt, loss_fn, x, y, autocast)
        times.append(time.perf_counter() - t)
        if i == 1:
            t_compile = time.perf_counter() - t_compile
        if mode == "bf16" and i == 0 and times[0] > 30:  # hopeless on CPUs without bf16 kernels
            return {"kind": kind, "mode": mode, "skipped": f"first step took {times[0]:.0f} s"}
    sec = sorted(times[2:])[len(times[2:]) // 2]  # median
    return {"kind": kind, "mode": mode, "patch": patch, "batch": batch, "params": n_params,
            "flop_per_voxel": fpv, "step_s": sec, "voxels_per_s": batch * patch ** 3 / sec,
            "warmup_s": t_compile, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def run_child(kind: str, patch: int, batch: int, steps: int, mode: str) -> dict:
    r = subprocess.run([sys.executable, __file__, "--one", kind, mode, str(patch), str(batch), str(steps)],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode:
        return {"kind": kind, "mode": mode, "error": r.stderr.strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (takes 20-60 s)")
    ap.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        kind, mode, patch, batch, steps = a.one
        print(json.dumps(one(kind, int(patch), int(batch), int(steps), mode)))
        return
    import torch

    runs = []
    plan = [("resunet", 32, 4, "eager"), ("monai_unet", 32, 4, "eager"),
            ("resunet", 64, 2, "eager"), ("monai_unet", 64, 2, "eager"),
            ("resunet", 32, 4, "channels_last"), ("resunet", 32, 4, "bf16")]
    if not a.no_compile:
        plan.append(("resunet", 32, 4, "compile"))
    plan += [("small", 32, 4, "eager"), ("monai_unet_small", 32, 4, "eager"),
             ("deepssetracer", 32, 4, "eager")]
    for kind, patch, batch, mode in plan:
        r = run_child(kind, patch, batch, 3 if kind == "deepssetracer" else a.steps, mode)
        runs.append(r)
        if "voxels_per_s" in r:
            print(f"{kind:14s} {mode:13s} {batch}x{patch}^3: {r['step_s']:6.3f} s/step, "
                  f"{r['voxels_per_s'] / 1e6:6.3f} M voxels/s, {r['flop_per_voxel'] / 1e3:7.1f} kFLOP/voxel, "
                  f"{r['params'] / 1e6:5.2f} M params, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
        else:
            print(f"{kind:14s} {mode:13s}: {r.get('skipped') or r.get('error')}", flush=True)

    def get(kind, mode, patch):
        return next((r for r in runs if r["kind"] == kind and r["mode"] == mode and r.get("patch") == patch
                     and "voxels_per_s" in r), None)

    summary = {}
    for patch in (32, 64):
        ours, ref = get("resunet", "eager", patch), get("monai_unet", "eager", patch)
        if ours and ref:
            summary[f"resunet_vs_monai_{patch}"] = ours["voxels_per_s"] / ref["voxels_per_s"]
    ours, ref = get("small", "eager", 32), get("monai_unet_small", "eager", 32)
    if ours and ref:
        summary["small_vs_monai_32"] = ours["voxels_per_s"] / ref["voxels_per_s"]
    base = get("resunet", "eager", 32)
    for mode in ("channels_last", "bf16", "compile"):
        r = get("resunet", mode, 32)
        if base and r:
            summary[f"speedup_{mode}"] = r["voxels_per_s"] / base["voxels_per_s"]
    dst = get("deepssetracer", "eager", 32)
    if base and dst:
        summary["flop_ratio_deepssetracer_vs_resunet"] = dst["flop_per_voxel"] / base["flop_per_voxel"]
        summary["speed_ratio_resunet_vs_deepssetracer"] = base["voxels_per_s"] / dst["voxels_per_s"]
    print("summary: " + ", ".join(f"{k} {v:.2f}" for k, v in summary.items()))
    out = HERE / "results" / "bench_train.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"runs": runs, "summary": summary, "torch": str(torch.__version__),
                               "cpu": platform.processor() or platform.machine(),
                               "cores": os.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
