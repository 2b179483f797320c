"""The bundled-model recipe on one GPU for a fixed wall-clock budget: several training runs at
once (one process each, sharing the GPU), each sized to end inside the budget.

Each run first times its own training step (full realism, once every run has loaded its data, so
that the others are busy beside it), then
sets ``steps`` so that the run ends inside the budget (``val_every`` = steps / 4) and trains
with ``cryosse.train.loop.train``. The best checkpoint of each run is exported as float16 with
the run's timing in its card; checkpoints, cards and metrics are packed into a few tar files
(at most ``--max-tar-mb`` each) in ``--out`` beside ``summary.json``.

    python scripts/gpu_recipe.py --datalist TS/datalist.json --out OUT --budget-s 400 \\
        --runs runs.json
    python scripts/gpu_recipe.py --datalist TS/datalist.json --out /tmp/o --budget-s 60 \\
        --device cpu --runs runs.json          # a rehearsal on the CPU

``runs.json`` is a list of ``{"name": ..., "config": {TrainConfig fields}}``; fields not given
are the bundle recipe's (``config.yaml``, ``bundle:``, over the schema's defaults). A run whose
config gives ``steps`` trains exactly that many, with no time limit (to repeat a recorded run:
``docs/notebook/gpu_runs/bundled_model.json`` repeats the shipped model's two members). A run may
name its own ``"datalist"`` (a training set on another working grid, say); the others use
``--datalist``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def recipe(root: Path = ROOT) -> dict:
    """The bundle recipe as TrainConfig fields: ``bundle:`` of ``config.yaml`` over the schema's
    defaults (steps and val_every are set per run; the seed is the first of ``seeds``)."""
    import yaml

    schema = yaml.safe_load((root / "workflow/schemas/config.schema.yaml").read_text())
    b = {k: v["default"] for k, v in schema["properties"]["bundle"]["properties"].items() if "default" in v}
    b.update(yaml.safe_load((root / "config.yaml").read_text()).get("bundle") or {})
    return {"preset": b["preset"], "loss": b["loss"], "norm": b["norm"], "realism": b["realism"],
            "realism_ramp": [float(v) for v in str(b["realism_ramp"]).split(",")], "seed": b["seeds"][0],
            "voxel_size_a": b["voxel_size_a"], "patch": b["patch"], "batch": b["batch"], "lr": b["lr"]}


def _config(kw: dict, steps: int, device: str, minutes: float):
    from cryosse.train.loop import TrainConfig

    kw = dict(recipe(), **kw)
    for k in ("realism_ramp", "loss_weights", "focal_alpha"):
        if k in kw and kw[k] is not None:
            kw[k] = tuple(kw[k])
    return TrainConfig(**kw, steps=steps, val_every=max(steps // 4, 1), checkpoint_every=max(steps // 4, 1),
                       device=device, max_minutes=minutes)


def _barrier(ready: Path | None, name: str, n: int, timeout: float = 120.0) -> None:
    """Wait until ``n`` runs have written their name into ``ready`` (or ``timeout`` passes), so
    that every run times its steps while all the others are training too."""
    if ready is None:
        return
    ready.mkdir(exist_ok=True)
    (ready / name).touch()
    t0 = time.time()
    while len(list(ready.iterdir())) < n and time.time() - t0 < timeout:
        time.sleep(0.2)


def steps_per_s(datalist: str, cfg, n_warm: int = 10, n_timed: int = 40, *,
                ready: Path | None = None, name: str = "", n_runs: int = 1) -> tuple[float, float]:
    """Training steps per second of ``cfg`` at full realism strength (sampling included),
    timed after all ``n_runs`` runs are ready (see :func:`_barrier`), and the seconds that
    loading the whole datalist will take (extrapolated from the first 40 samples)."""
    import random

    import torch

    from cryosse.train.data import load_sample
    from cryosse.prep.dataset import load_datalist
    from cryosse.train.loop import train_step
    from cryosse.train.sampler import PatchSampler
    from cryosse.train.losses import make_loss
    from cryosse.net.network import PRESETS, build_network

    dl = load_datalist(datalist)
    items = dl["training"][:40]
    t_load = time.time()
    samples = [load_sample(it["id"], it["image"], it["label"], cfg.voxel_size_a, cfg.norm,
                           keep_raw=cfg.realism) for it in items]
    load_s = (time.time() - t_load) / len(items) * (len(dl["training"]) + len(dl.get("validation", [])))
    net = build_network(dict(PRESETS[cfg.preset], n_classes=3)).to(cfg.device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss_fn = make_loss(cfg.loss, weights=tuple(cfg.loss_weights))
    sampler = PatchSampler(samples, cfg, random.Random(1))
    cuda = cfg.device.startswith("cuda")
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda and cfg.amp)
    _barrier(ready, name, n_runs)
    t0 = 0.0
    for i in range(n_warm + n_timed):
        if i == n_warm:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.time()
        x, y = sampler.batch(cfg.steps)
        train_step(net, opt, loss_fn, x.to(cfg.device), y.to(cfg.device), autocast)
    if cuda:
        torch.cuda.synchronize()
    return n_timed / (time.time() - t0), load_s


def worker(name: str, kw: dict, datalist: str, out: Path, deadline: float, device: str,
           safety: float, n_runs: int = 1) -> dict:
    import torch

    from cryosse.net.checkpoint import export_checkpoint
    from cryosse.train.loop import train

    torch.set_num_threads(1)
    t_start = time.time()
    kw = dict(kw)
    fixed = kw.pop("steps", None)
    rate, load_s = steps_per_s(datalist, _config(kw, 1000, device, 0), ready=out / ".ready", name=name,
                               n_runs=n_runs)
    left = deadline - time.time() - load_s
    if fixed:  # a run that repeats a recorded one: its steps, no time limit
        steps, cfg = int(fixed), _config(kw, int(fixed), device, minutes=0)
    else:
        steps = max(100, int(rate * left * safety) // 100 * 100)
        cfg = _config(kw, steps, device, minutes=max(left - 15, 30) / 60)
    print(f"{name}: {rate:.1f} steps/s -> {steps} steps in {left:.0f} s (after ~{load_s:.0f} s loading)",
          flush=True)
    card = train(datalist, out / name, cfg, resume=False)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    info = {"name": name, "steps_per_s": round(rate, 2), "steps": steps, "steps_run": card["steps_run"],
            "best_step": card["step"], "stop_reason": card["stop_reason"],
            "train_time_s": card["train_time_s"], "device_name": gpu,
            "wall_s": round(time.time() - t_start, 1),
            "val": {k: v for k, v in (card.get("metrics") or {}).items() if k.endswith("f1")}}
    export_checkpoint(out / name / "checkpoint.pt", out / f"{name}.pt",
                      card_update={"gpu_run": {k: info[k] for k in ("steps_per_s", "device_name", "wall_s")}})
    (out / f"{name}.json").write_text(json.dumps(info, indent=1))
    return info


def pack(out: Path, names: list[str], max_mb: float) -> list[str]:
    """Exported checkpoints, run summaries, metrics and curves into tars of at most ``max_mb``."""
    files = []
    for n in names:
        for f in (out / f"{n}.pt", out / f"{n}.json", out / n / "metrics.jsonl",
                  out / n / "training_curve.png", out / n / "train.log"):
            if f.is_file():
                files.append(f)
    tars, cur, size = [], None, 0.0
    for f in files:
        mb = f.stat().st_size / 2**20
        if cur is None or size + mb > max_mb:
            if cur is not None:
                cur.close()
            tars.append(out / f"runs{len(tars)}.tar")
            cur, size = tarfile.open(tars[-1], "w"), 0.0
        cur.add(f, arcname=str(f.relative_to(out)))
        size += mb
    if cur is not None:
        cur.close()
    return [t.name for t in tars]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datalist", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", required=True, help="JSON file: [{name, config}]")
    ap.add_argument("--budget-s", type=float, default=400, help="wall-clock seconds for all runs")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--safety", type=float, default=0.8, help="share of the measured rate to plan on")
    ap.add_argument("--max-tar-mb", type=float, default=15.0)
    ap.add_argument("--grace-s", type=float, default=90, help="seconds past the budget before runs are killed")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    out = Path(a.out)
    runs = json.loads(Path(a.runs).read_text())
    if a.worker:
        run = next(r for r in runs if r["name"] == a.worker)
        worker(a.worker, run.get("config", {}), a.datalist, out, a.deadline, a.device, a.safety, len(runs))
        return
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + a.budget_s
    shutil.rmtree(out / ".ready", ignore_errors=True)
    procs = {}
    for r in runs:
        (out / r["name"]).mkdir(exist_ok=True)
        log = open(out / r["name"] / "train.log", "w")
        procs[r["name"]] = subprocess.Popen(
            [sys.executable, __file__, "--worker", r["name"], "--deadline", str(deadline),
             "--datalist", r.get("datalist", a.datalist), "--out", a.out, "--runs", a.runs, "--device", a.device,
             "--safety", str(a.safety)],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    hard = deadline + a.grace_s
    fixed = {r["name"] for r in runs if (r.get("config") or {}).get("steps")}
    for name, p in procs.items():
        try:
            p.wait(timeout=None if name in fixed else max(hard - time.time(), 1))
        except subprocess.TimeoutExpired:
            p.kill()
            print(f"{name}: killed after the budget", flush=True)
    summary = []
    for r in runs:
        f = out / f"{r['name']}.json"
        if f.is_file():
            summary.append(json.loads(f.read_text()))
        else:
            tail = (out / r["name"] / "train.log").read_text()[-600:]
            summary.append({"name": r["name"], "failed": tail})
    tars = pack(out, [r["name"] for r in runs], a.max_tar_mb)
    (out / "summary.json").write_text(json.dumps({"runs": summary, "tars": tars}, indent=1))
    for s in summary:
        print(json.dumps(s)[:400], flush=True)


if __name__ == "__main__":
    main()
