"""Accuracy of a checkpoint (default: the bundled model) on the real experimental maps with
fitted models of bench/real_maps.yaml: voxel and residue F1 for helix and sheet within 6 Å of the
model, against the issue's targets (mean voxel F1 helix >= 0.75, sheet >= 0.45), and the
trivial "everything is helix" reference measured in the same run. Writes
bench/results/real_maps.json and .md and a slice figure per map.

    python bench/bench_realmaps.py [--checkpoint CKPT] [--cases bench/real_maps.yaml] [--data DIR] [--tta]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"helix": 0.75, "sheet": 0.45}


def main() -> int:
    from cryosse.inference import BUNDLED_CHECKPOINT
    from cryosse.evaluate.realmaps import cases_and_data, format_real_table, score_real_maps

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(BUNDLED_CHECKPOINT))
    ap.add_argument("--cases", default=str(HERE / "real_maps.yaml"), help="the real-map cases (YAML)")
    ap.add_argument("--data", default=None, help="folder of the real maps (default: the case file's data:)")
    ap.add_argument("--tta", action="store_true")
    a = ap.parse_args()
    cases, data = cases_and_data(a.cases, a.data, missing_ok=True)
    if data is None:
        print(f"real maps not found ({a.data or 'the data: folder of ' + a.cases}): skipped")
        return 0
    out = HERE / "results" / "real_maps"
    s = score_real_maps(a.checkpoint, cases, data, out, tta=a.tta)
    print(format_real_table(s))
    met = {c: s["mean_voxel_f1"][c] >= t for c, t in TARGETS.items()}
    print("targets (mean voxel F1): " + ", ".join(
        f"{c} {s['mean_voxel_f1'][c]:.3f} vs {t} {'met' if met[c] else 'MISSED'}" for c, t in TARGETS.items()))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "real_maps.json").write_text(json.dumps(
        {k: v for k, v in s.items() if k != "cases"} | {"targets": TARGETS, "met": met,
                                                        "cases": s["cases"]}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
