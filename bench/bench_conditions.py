"""Robustness of a checkpoint (default: the bundled model) across derived conditions of the real
maps of bench/real_maps.yaml: each map as deposited, low-passed to 6/8/10 Å, blurred and
sharpened (B = ±100 Å²), thresholded at its molecular-volume contour, one chain segmented
(ChimeraX ``volume zone``, tight box, native and 1 Å voxels) and its most β-rich domain boxed on
its own, both also cut by a high-contour mask and low-passed after it
(:mod:`cryosse.evaluate.conditions`). Per row: voxel and residue F1, the Cα-trace oracle,
the network on a clean simulation of the same atoms on the same grid; per set (selection /
report) the targets of :mod:`cryosse.evaluate.robustness`. Writes bench/results/conditions/
(conditions.json, .md, .png).

    python bench/bench_conditions.py [--checkpoint CKPT] [--cases bench/real_maps.yaml] [--data DIR]
                                     [--set selection|report] [--device cpu] [--compare OLD.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    from cryosse.evaluate.realmaps import SETS, cases_and_data
    from cryosse.evaluate.robustness import format_comparison, format_conditions, score_conditions
    from cryosse.inference import BUNDLED_CHECKPOINT

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(BUNDLED_CHECKPOINT))
    ap.add_argument("--cases", default=str(HERE / "real_maps.yaml"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--set", choices=SETS, action="append", help="only these sets (default: both)")
    ap.add_argument("--device", default=None)
    ap.add_argument("-o", "--output", default=str(HERE / "results" / "conditions"))
    ap.add_argument("--compare", help="conditions.json of a previous model: also write comparison.md, "
                    "this model beside it per condition")
    a = ap.parse_args()
    cases, data = cases_and_data(a.cases, a.data, missing_ok=True)
    if data is None:
        print(f"real maps not found ({a.data or 'the data: folder of ' + a.cases}): skipped")
        return 0
    s = score_conditions(a.checkpoint, cases, data, a.output, device=a.device,
                         sets=tuple(a.set or SETS))
    print(format_conditions(s))
    if a.compare:
        import json

        from cryosse.evaluate.robustness import decide, format_decision, model_labels, report_check

        old = json.loads(Path(a.compare).read_text())
        table = format_comparison(old, s)
        if "selection" in s["targets"] and "selection" in old["targets"]:  # the rule of the notebook
            table += "\n\n" + format_decision(decide(old, s), *model_labels(old, s))
        if "report" in s["targets"] and "report" in old["targets"]:
            r = report_check(old, s)
            table += ("\n\nReport set: " + ("no class fell" if r["ships"] else "fell, so it does not ship: "
                                              + "; ".join(r["fell"])))
        (Path(a.output) / "comparison.md").write_text(table + "\n")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
