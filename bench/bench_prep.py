"""Data preparation speed per component, as ratios to its floor, and DSSP memory.

For a few embedded chains (small to large), each step of preparing one component is timed in
one run: the floor (reading the model and computing its density alone, `simulate_density`),
then DSSP (pydssp and mkdssp), labelling the whole map, cropping the component (zone mask,
box, labels) and writing its files (into a new folder each time, as the workflow does). Every
step is the best of ``REPEAT`` runs (best, median and worst recorded), reported as a ratio to
the floor measured in the same run, and the component's own cost (floor + crop + write: what the crop rules add to reading and simulating
the entry once; DSSP is a rule of its own, once per entry; target <= 1.5). Then peak
memory of the DSSP H-bond computation for a 3000-residue chain (two copies of a 1500-residue
model side by side in one chain): pydssp's dense L x L code vs our row blocks, measured with
tracemalloc (NumPy reports its allocations to it).

Prints the figures and writes bench/results/prep.json. Run: ``make bench``.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cryosse.prep.components import ComponentConfig, make_component  # noqa: E402
from cryosse.prep.density import simulate_density  # noqa: E402
from cryosse.io import protein_atoms, read_model, write_json, write_map  # noqa: E402
from cryosse.prep.labels import atom_classes, label_voxels  # noqa: E402
from cryosse.prep.sse import SSEConfig, _assign_blocked, _backbone, assign_sse  # noqa: E402

STRUCTURES = ROOT / "src/cryosse/data/structures"
OUT = ROOT / "bench/results/prep.json"
ENTRIES = [("1a8o", "A"), ("2xdga", "A"), ("3nbka", "A"), ("19hc", "A")]
RESOLUTION_A = 7.0


REPEAT = 7


def timed(fn, repeat: int = REPEAT, spread: dict | None = None, key: str = ""):
    """Best of ``repeat`` wall times (s) and the last result; ``spread[key]`` gets the
    (best, median, worst) of the runs (the cores are shared, so single runs are noisy)."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    if spread is not None:
        spread[key] = [round(float(np.min(times)), 4), round(float(np.median(times)), 4),
                       round(float(np.max(times)), 4)]
    return min(times), out


def component_times(entry: str, chain: str, tmp: Path) -> dict:
    path = STRUCTURES / f"{entry}.pdb.gz"

    def floor():
        st = read_model(path)
        return st, simulate_density(st, RESOLUTION_A, 1.0)

    spread: dict = {}
    t_floor, (st, dens) = timed(floor, spread=spread, key="floor")
    row = {"entry": entry, "chain": chain, "residues": sum(len(c) for c in st[0]),
           "map_voxels": int(dens.data.size), "floor_s": round(t_floor, 4), "repeats": REPEAT}
    t, sse = timed(lambda: assign_sse(st, SSEConfig(engine="pydssp")))
    row["pydssp_s"] = t
    if shutil.which("mkdssp"):
        row["mkdssp_s"], _ = timed(lambda: assign_sse(st, SSEConfig(engine="mkdssp")))
    atoms = protein_atoms(st)
    classes = atom_classes(atoms, sse)
    row["label_s"], _ = timed(lambda: label_voxels(dens, atoms, classes))
    chain_atoms = protein_atoms(st, [chain])
    chain_classes = atom_classes(chain_atoms, sse)
    row["crop_s"], comp = timed(lambda: make_component(dens, chain_atoms, chain_classes, ComponentConfig()),
                                spread=spread, key="crop")
    row["box_voxels"] = int(comp.density.data.size)
    fresh = iter(range(10 ** 6))

    def write():  # into a new folder each time, as the workflow does (its outputs are removed first)
        out = tmp / f"{entry}_{chain}_{next(fresh)}"
        write_map(comp.density, out / "density.mrc")
        write_map(comp.labels, out / "labels.mrc", labels=True)
        write_json(out / "meta.json", {"counts": comp.counts})

    row["write_s"], _ = timed(write, spread=spread, key="write")
    for k in ("pydssp_s", "mkdssp_s", "label_s", "crop_s", "write_s"):
        if k in row:
            row[k.replace("_s", "_ratio")] = round(row[k] / t_floor, 3)
            row[k] = round(row[k], 4)
    steps = [row[k] for k in ("pydssp_s", "label_s", "crop_s", "write_s")]
    row["total_ratio"] = round((t_floor + sum(steps)) / t_floor, 3)
    # what the workflow does per component: the entry read and simulated once (the floor), the
    # component cut (zone mask and box labels from one search) and written; DSSP is its own
    # rule, once per entry, and the whole-map labels above are not part of it
    row["component_ratio"] = round((t_floor + row["crop_s"] + row["write_s"]) / t_floor, 3)
    # the same ratio from the medians of the runs, and the (best, median, worst) of each step
    med = {k: v[1] for k, v in spread.items()}
    row["component_ratio_median"] = round((med["floor"] + med["crop"] + med["write"]) / med["floor"], 3)
    row["spread_s"] = spread
    return row


def long_chain(n_target: int = 3000):
    """Backbone (L, 4, 3) and donor mask of ~3000 residues: copies of 19hc's chains shifted apart."""
    coords, donor, _, _ = _backbone(read_model(STRUCTURES / "19hc.pdb.gz"))
    reps, shift = [], 0.0
    while sum(len(r) for r in reps) < n_target:
        reps.append(coords + np.array([shift, 0, 0]))
        shift += 120.0
    c = np.concatenate(reps)[:n_target]
    d = np.tile(donor, len(reps))[:n_target]
    d[::len(coords)] = False
    return c, d


def peak_mb(fn) -> tuple[float, float, object]:
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return peak, seconds, out


def main() -> None:
    from pydssp import pydssp_numpy

    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.processor()}",
                     "resolution_a": RESOLUTION_A, "components": []}
    with tempfile.TemporaryDirectory() as tmp:
        for entry, chain in ENTRIES:
            row = component_times(entry, chain, Path(tmp))
            results["components"].append(row)
            print(f"{entry}_{chain}: {row['residues']} residues, floor {row['floor_s']:.3f} s; ratios to it: "
                  f"pydssp {row['pydssp_ratio']}, mkdssp {row.get('mkdssp_ratio', '-')}, label "
                  f"{row['label_ratio']}, crop {row['crop_ratio']}, write {row['write_ratio']}, "
                  f"total {row['total_ratio']}; per component (floor + crop + write) {row['component_ratio']} "
                  f"(from medians {row['component_ratio_median']}); best/median/worst s {row['spread_s']}")
    mem = {}
    for n in (1000, 3000):
        c, d = long_chain(n)
        pb, tb, blocked = peak_mb(lambda: _assign_blocked(c, d))
        mem[n] = {"blocked_peak_mb": round(pb, 1), "blocked_s": round(tb, 2)}
        if n <= 1000 or os.environ.get("CRYOSSE_BENCH_DENSE_3000"):
            pd_, td, dense = peak_mb(lambda: np.argmax(pydssp_numpy.assign(c, donor_mask=d), -1))
            mem[n].update(dense_peak_mb=round(pd_, 1), dense_s=round(td, 2),
                          identical=bool(np.array_equal(dense, blocked)))
        print(f"L = {n}: pydssp in blocks {mem[n]['blocked_peak_mb']} MB, {mem[n]['blocked_s']} s; dense "
              f"{mem[n].get('dense_peak_mb', 'not run')} MB, {mem[n].get('dense_s', '-')} s; "
              f"identical {mem[n].get('identical', '-')}")
    results["dssp_memory"] = mem
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written: {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
