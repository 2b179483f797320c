"""Inference speed: cryosse's whole ``predict_map`` (resampling to the 2 Å working grid,
normalisation, sliding windows, interpolation back to the input grid, labels) on a 1 Å
74x59x83 map (a chain component, the size DeepSSETracer times) and a 1 Å 200³ map, with the
default network (``resunet``, random weights: speed does not depend on them), against MONAI's
``sliding_window_inference`` (64³ windows, overlap 0.5, Gaussian blending) with the same network
on the same working-grid tensor: the network part only, so the ratio favours MONAI.

Timings run in this one process, interleaved (median of ``--repeats``), so the ratios are fair
on a shared machine; peak memory (RSS) of each case is measured in a child process of its own,
next to cryosse's own estimate (``plan_memory``). Writes bench/results/predict.json.

    python bench/bench_predict.py [--repeats 5] [--threads 0]

Scale (``--scale``, with the bundled model): maps of 200 Å (200³ at 1 Å), 295 Å (220³ at
1.34 Å, EMD-0093's grid) and 402 Å (300³ at 1.34 Å) across, each predicted whole; time per
working voxel (per Å³) relative to the 200 Å map (target <= 1.3), the tile plan, peak RSS in a
child process of its own; and, on EMD-0093 itself (``--real-map``), the labels of the planned
prediction (one pass) against the old tiling (128³ tiles, half overlapping, Gaussian
blending). Writes bench/results/predict_scale.json.

    python bench/bench_predict.py --scale [--real-map ../shared/data/emd_0093/emd_0093_hidedust.mrc.gz]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryosse import BUNDLED_NAME

HERE = Path(__file__).resolve().parent
CASES = {"component_74x59x83": (83, 59, 74), "map_200": (200, 200, 200)}  # z, y, x at 1 Å
SCALE = {"map_200A": ((200, 200, 200), 1.0), "map_295A": ((220, 220, 220), 1.34), "map_402A": ((300, 300, 300), 1.34)}
BUNDLED = HERE.parent / f"src/cryosse/data/models/{BUNDLED_NAME}.pt"


def setup(checkpoint: str | None = None):
    """The network and card: ``checkpoint``'s (e.g. the bundled model, an ensemble), or the
    default ``resunet`` with random weights."""
    import numpy as np
    import torch

    from cryosse.net.network import PRESETS, build_network

    if checkpoint:
        from cryosse.net.checkpoint import load_checkpoint

        net, card, _ = load_checkpoint(checkpoint)
        return np, torch, net, card
    torch.manual_seed(0)
    arch = dict(PRESETS["resunet"], n_classes=3, preset="resunet")
    net = build_network(arch).eval()
    card = {"arch": arch, "voxel_size_a": 2.0, "tile": 64, "classes": ["other", "helix", "sheet"]}
    return np, torch, net, card


def make_map(shape, voxel=1.0):
    import numpy as np

    from cryosse.io import Map

    rng = np.random.default_rng(0)
    return Map(rng.normal(size=shape).astype(np.float32), (voxel,) * 3, (10.0, -20.0, 30.0))


def cryosse_run(m, net, card, tile=None, overlap=0.5):
    from cryosse.inference import PredictConfig, plan_memory, predict_map

    cfg = PredictConfig(device="cpu", overlap=overlap, tile=tile or 0)
    plan = plan_memory(m.data.shape, m.voxel_size_a, card, net, cfg)
    return predict_map(m, net, card, cfg, tile=plan.tile_shape or plan.tile), plan


def monai_run(x, net, threads=0):
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _monai(x, net)
    finally:
        torch.set_num_threads(before)


def _monai(x, net):
    import torch
    from monai.inferers import sliding_window_inference

    with torch.inference_mode():
        out = sliding_window_inference(x, roi_size=(64, 64, 64), sw_batch_size=2, predictor=net,
                                       overlap=0.5, mode="gaussian")
        return torch.softmax(out, 1)


def working_tensor(m, card):
    import torch

    from cryosse.net.inputs import prepare_density

    _, x, _ = prepare_density(m, card["voxel_size_a"])
    return torch.from_numpy(x)[None, None]


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss, it is not inherited across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, case: str, checkpoint: str | None = None) -> dict:
    """Peak RSS of one case, alone in this process."""
    np, torch, net, card = setup(checkpoint)
    m = make_map(*SCALE[case]) if case in SCALE else make_map(CASES[case])
    base = peak_rss_mb()
    t = time.perf_counter()
    if kind == "cryosse":
        _, plan = cryosse_run(m, net, card)
        est = plan.in_memory / 2 ** 20
    else:
        monai_run(working_tensor(m, card), net)
        est = None
    return {"kind": kind, "case": case, "s": time.perf_counter() - t, "rss_before_mb": base,
            "peak_rss_mb": peak_rss_mb(),
            "estimate_mb": est}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--checkpoint", help="time this checkpoint's network (e.g. the bundled model, "
                    f"src/cryosse/data/models/{BUNDLED_NAME}.pt) instead of a random resunet")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--scale", action="store_true", help="the map-size scale bench (module doc)")
    ap.add_argument("--real-map", help="EMD-0093's map: planned tiles against the old tiling")
    a = ap.parse_args()
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    if a.child:
        print(json.dumps(child(*a.child, a.checkpoint)))
        return
    if a.scale:
        scale(a)
        return
    from cryosse.inference import cpu_threads

    np, torch, net, card = setup(a.checkpoint)
    results = {}
    for case, shape in CASES.items():
        m = make_map(shape)
        x = working_tensor(m, card)
        variants = {
            "cryosse": lambda: cryosse_run(m, net, card),
            "cryosse_tile64": lambda: cryosse_run(m, net, card, tile=64),
            "monai_network_only": lambda: monai_run(x, net),
            # MONAI with the thread count cryosse picked (cpu_threads), for a like-for-like ratio
            "monai_same_threads": lambda: monai_run(x, net, cpu_threads()),
        }
        times = {k: [] for k in variants}
        extra = {}
        for k, f in variants.items():  # warm-up
            f()
        for _ in range(a.repeats):
            for k, f in variants.items():
                t = time.perf_counter()
                r = f()
                times[k].append(time.perf_counter() - t)
                if k.startswith("cryosse"):
                    extra[k] = {"network_s": r[0].summary["network_s"], "tile": r[1].tile,
                                "threads": r[0].summary["threads"]}
        med = {k: statistics.median(v) for k, v in times.items()}
        results[case] = {"shape_xyz": list(shape[::-1]), "working_shape_xyz": list(x.shape[2:][::-1]),
                         "median_s": med, "all_s": times, "detail": extra,
                         "ratio_monai_over_cryosse": med["monai_network_only"] / med["cryosse"],
                         "ratio_monai_over_cryosse_tile64": med["monai_network_only"] / med["cryosse_tile64"],
                         "ratio_monai_same_threads_over_cryosse": med["monai_same_threads"] / med["cryosse"]}
        print(f"{case}: cryosse {med['cryosse']:.3f} s (tile {extra['cryosse']['tile']}, network "
              f"{extra['cryosse']['network_s']:.3f} s), tile 64 {med['cryosse_tile64']:.3f} s, MONAI network "
              f"only {med['monai_network_only']:.3f} s ({med['monai_same_threads']:.3f} s with cryosse's "
              f"{extra['cryosse']['threads']} threads): MONAI / cryosse = "
              f"{results[case]['ratio_monai_over_cryosse']:.2f} "
              f"({results[case]['ratio_monai_same_threads_over_cryosse']:.2f})", flush=True)
    memory = []
    for case in CASES:
        for kind in ("cryosse", "monai"):
            cmd = [sys.executable, __file__, "--child", kind, case] + (["--threads", str(a.threads)] if a.threads else []) \
                + (["--checkpoint", a.checkpoint] if a.checkpoint else [])
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
            rec = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else \
                {"kind": kind, "case": case, "error": r.stderr.strip().splitlines()[-1:]}
            memory.append(rec)
            if "peak_rss_mb" in rec:
                est = f", cryosse's estimate {rec['estimate_mb']:.0f} MB of arrays" if rec["estimate_mb"] else ""
                print(f"{case} {kind}: peak RSS {rec['peak_rss_mb']:.0f} MB (at start "
                      f"{rec['rss_before_mb']:.0f} MB){est}", flush=True)
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    targets = {"component_s": 0.5, "map_200_s": 8.0}
    met = {"component": results["component_74x59x83"]["median_s"]["cryosse"] <= targets["component_s"],
           "map_200": results["map_200"]["median_s"]["cryosse"] <= targets["map_200_s"]}
    print(f"targets (component <= 0.5 s, 200³ <= 8 s): {met}")
    out = HERE / "results" / ("predict.json" if not a.checkpoint else f"predict_{Path(a.checkpoint).stem}.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"results": results, "memory": memory, "targets": targets, "targets_met": met,
                               "network": card["arch"].get("preset"),
                               "checkpoint": a.checkpoint, "torch": str(torch.__version__), "threads": torch.get_num_threads(),
                               "cpu": cpu, "machine": platform.machine(), "cores": os.cpu_count()},
                              indent=2) + "\n")


def scale(a) -> None:
    """Time per working voxel vs map size, peak RSS, and the real-map check (module doc)."""
    ckpt = a.checkpoint or str(BUNDLED)
    np, torch, net, card = setup(ckpt)
    rows = {}
    for case, (shape, voxel) in SCALE.items():
        m = make_map(shape, voxel)
        cryosse_run(m, net, card) if case == "map_200A" else None  # warm-up
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            pred, plan = cryosse_run(m, net, card)
            times.append(time.perf_counter() - t)
        work = pred.summary["working_shape_xyz"]
        rows[case] = {"shape_xyz": list(shape[::-1]), "voxel_a": voxel, "extent_a": round(shape[0] * voxel),
                      "working_shape_xyz": work, "tile": pred.summary["tile"], "median_s": statistics.median(times),
                      "all_s": times, "network_s": pred.summary["network_s"],
                      "plan_gb": round(plan.in_memory / 2 ** 30, 2),
                      "s_per_mvoxel_working": statistics.median(times) / (np.prod(work) / 1e6)}
        print(f"{case}: {statistics.median(times):.1f} s, tile {pred.summary['tile']}, working {work}, "
              f"plan {rows[case]['plan_gb']} GB", flush=True)
    ref = rows["map_200A"]["s_per_mvoxel_working"]
    for case, r in rows.items():
        r["per_voxel_vs_200A"] = r["s_per_mvoxel_working"] / ref
        cmd = [sys.executable, __file__, "--child", "cryosse", case, "--checkpoint", ckpt] + \
            (["--threads", str(a.threads)] if a.threads else [])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=3000)
        r["memory"] = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else \
            {"error": out.stderr.strip().splitlines()[-1:]}
        print(f"{case}: per working voxel {r['per_voxel_vs_200A']:.2f}x the 200 Å map; peak RSS "
              f"{r['memory'].get('peak_rss_mb', float('nan')):.0f} MB (plan {r['plan_gb']} GB)", flush=True)
    real = {}
    if a.real_map:
        from cryosse.inference import PredictConfig, predict_map
        from cryosse.io import read_map

        m = read_map(a.real_map)
        t = time.perf_counter()
        new = predict_map(m, net, card, PredictConfig(device="cpu"))
        t_new = time.perf_counter() - t
        t = time.perf_counter()
        old = predict_map(m, net, card, PredictConfig(device="cpu", tile=128, overlap=0.5))
        t_old = time.perf_counter() - t
        dh = np.abs(new.helix_prob.data - old.helix_prob.data)
        ds = np.abs(new.sheet_prob.data - old.sheet_prob.data)
        real = {"map": a.real_map, "new_s": t_new, "old_s": t_old, "new_tile": new.summary["tile"],
                "label_agreement": float((new.labels.data == old.labels.data).mean()),
                "max_prob_diff": float(max(dh.max(), ds.max())), "mean_prob_diff": float((dh.mean() + ds.mean()) / 2),
                "helix_fraction": [new.summary["helix_fraction"], old.summary["helix_fraction"]],
                "sheet_fraction": [new.summary["sheet_fraction"], old.summary["sheet_fraction"]]}
        print(f"real map: planned {t_new:.1f} s (tile {real['new_tile']}), old tiling {t_old:.1f} s; labels "
              f"{real['label_agreement']:.4%} equal, probabilities differ by {real['mean_prob_diff']:.4f} on "
              f"average (max {real['max_prob_diff']:.3f}); helix {real['helix_fraction']}, sheet "
              f"{real['sheet_fraction']}", flush=True)
    met = all(r["per_voxel_vs_200A"] <= 1.3 for r in rows.values())
    print(f"target (per working voxel <= 1.3x the 200 Å map): {met}")
    out = HERE / "results" / "predict_scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cases": rows, "real_map": real, "target_met": met, "checkpoint": ckpt,
                               "threads": torch.get_num_threads(), "cores": os.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
