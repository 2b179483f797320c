"""Commands of the evaluation stage: evaluate, score, report, compare-losses, real-maps."""
from __future__ import annotations

import json
from pathlib import Path

from .. import BUNDLED_NAME
from ..errors import InputError
from .options import add_command, alias, output_option, say


def cmd_evaluate(a) -> None:
    from ..evaluate import evaluate_maps, format_table
    from ..io import read_map, write_json

    pred, truth = read_map(a.prediction), read_map(a.truth)
    scores = evaluate_maps(pred, truth)
    scores.update(id=a.id or Path(a.prediction).parent.name, prediction=a.prediction, truth=a.truth,
                  density=a.density or "")
    if a.model:
        from ..evaluate import evaluate_residues
        from ..io import read_model
        from ..prep.crop import sse_of

        st = read_model(a.model)
        chain = a.chain[0] if a.chain else None
        if a.chain and len(a.chain) > 1:
            raise InputError("--chain", "evaluate scores one chain (or all, without --chain)")
        scores["residues"] = evaluate_residues(pred, st, chain, sse_of(a.sse, st))
    if a.output:
        write_json(a.output, scores)
    if a.png:
        from ..evaluate import write_slice_figure

        if not a.density:
            raise InputError(a.prediction, "--png needs --density")
        write_slice_figure(a.png, read_map(a.density), truth, pred, scores["id"])
    if a.preview:
        from ..inference.preview import write_preview

        if not a.density:
            raise InputError(a.prediction, "--preview needs --density")
        write_preview(a.preview, read_map(a.density), pred, truth=truth, title=scores["id"])
    print("voxels\n" + format_table(scores))
    if a.model:
        print("residues (majority of predicted voxels within 3 Å)\n" + format_table(scores["residues"]))


def cmd_score(a) -> None:
    from ..evaluate import score_checkpoint
    from ..io import write_json

    res = score_checkpoint(a.checkpoint, a.datalist, a.split, a.device)
    write_json(a.output, res)
    v = res["voxel"]
    say(f"{a.output}: {res['n_samples']} {a.split} samples, voxel F1 helix {v['helix']['f1']:.3f}, "
        f"sheet {v['sheet']['f1']:.3f}")


def cmd_compare(a) -> None:
    from ..evaluate import compare_scores

    rows = compare_scores(a.scores, a.output)
    say(f"{a.output}/comparison.md: {len(rows)} losses")
    print((Path(a.output) / "comparison.md").read_text(), end="")


def cmd_report(a) -> None:
    from ..evaluate import write_report

    fig = tuple(a.figure.split(",")) if a.figure else None
    card = json.loads(Path(a.model_card).read_text()) if a.model_card else None
    res = write_report(a.evals, a.output, fig, card)
    p = res["pooled"]
    say(f"{a.output}/report.md: {res['n_samples']} samples; pooled F1 helix {p['helix']['f1']:.3f}, "
        f"sheet {p['sheet']['f1']:.3f}")


def cmd_real_maps(a) -> None:
    from ..evaluate.realmaps import format_real_table, score_real_maps

    s = score_real_maps(a.checkpoint, a.cases, a.data, a.output, device=a.device,
                        tta=a.tta, diagnose=a.diagnose)
    print(format_real_table(s))


def cmd_calibrate(a) -> None:
    import datetime
    from pathlib import Path

    from ..errors import InputError
    from ..io import write_json
    from ..net.checkpoint import export_checkpoint, load_checkpoint
    from ..research.calibration import collect, fit, load_rows, refuse_calibrated, save_rows

    a.set = a.set or ["selection"]
    if "report" in a.set:
        raise InputError("--set", "the report set is scored once per shipped model and never used to choose; "
                         "calibrate on the selection set")
    out = Path(a.output)
    if a.max_voxels < 1000:
        raise InputError("--max-voxels", f"must be at least 1000, not {a.max_voxels}")
    fit_dir = out.parent / (out.stem + "_fit")
    if a.rows:  # (collect refuses a calibrated checkpoint itself, before any work)
        refuse_calibrated(load_checkpoint(a.checkpoint)[1], a.checkpoint)
        rows = load_rows(a.rows)
    else:
        rows, _ = collect(a.checkpoint, a.cases, a.data, sets=tuple(a.set), device=a.device,
                          out_dir=fit_dir, max_voxels=a.max_voxels)
        save_rows(rows, fit_dir / "rows.npz")
    result = fit(rows)
    provenance = {k: v for k, v in result.items() if k not in ("grid", "objective_grid", "ratio_grid")}
    provenance.update(fitted_on=list(a.set), source=Path(a.checkpoint).name, max_voxels=a.max_voxels,
                      date=datetime.date.today().isoformat())
    export_checkpoint(a.checkpoint, out, half=None,
                      card_update={"class_weights": result["class_weights"], "calibration": provenance})
    write_json(fit_dir / "calibration.json", result)
    w, r0, r1 = result["class_weights"], result["ratios_uncalibrated"], result["ratios"]
    print(f"{out}: class weights helix {w['helix']:g}, sheet {w['sheet']:g}; objective "
          f"{result['objective_uncalibrated']:.3f} -> {result['objective']:.3f} (F1/oracle helix "
          f"{r0['helix']} -> {r1['helix']}, sheet {r0['sheet']} -> {r1['sheet']})")


def cases_options(p):
    p.add_argument("--cases", required=True, help="YAML file of cases (see bench/real_maps.yaml)")
    p.add_argument("--data", help="folder the cases' paths are relative to (default: the file's 'data:')")


def device_option(p):
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")


def register(sub) -> None:
    from .prep import chain_option, sse_option

    s = add_command(sub, "evaluate", "per-class voxel (and residue) precision/recall/F1 of a prediction",
                    "Compare a predicted label map with a true one (same grid): precision, recall and F1 for "
                    "helix, sheet and other; with --model also per residue.",
                    "evaluate --prediction pred/labels.mrc --truth comp/labels.mrc -o scores.json\n"
                    "evaluate --prediction labels.mrc --truth truth.mrc --model fitted.pdb --chain A "
                    "--density map.mrc --png slices.png --preview preview.png", cmd_evaluate)
    s.add_argument("--prediction", required=True, help="predicted label map (from 'cryosse predict')")
    s.add_argument("--truth", required=True, help="true label map on the same grid")
    s.add_argument("--id", help="sample id recorded in the JSON (default: the prediction's folder name)")
    s.add_argument("--density", help="density map, recorded so that reports can draw it")
    s.add_argument("--model", help="atomic model: also score residues (majority of predicted voxels "
                   "within 3 Å of each residue's heavy atoms vs its DSSP class)")
    chain_option(s, "with --model: only this chain")
    sse_option(s)
    s.add_argument("-o", "--output", help="write the scores as JSON")
    alias(s, "--json", dest="output")
    s.add_argument("--png", help="also draw density, true and predicted labels on a slice (needs --density)")
    s.add_argument("--preview", help="also write a preview PNG: true and predicted labels on three orthogonal "
                   "slices through the density's centre of mass (needs --density)")

    s = add_command(sub, "score", "predict and score every sample of a datalist split",
                    "Voxel F1 (pooled and mean over samples) and residue F1 of a checkpoint on the train, val "
                    "or test split of a datalist, as JSON.",
                    "score --checkpoint results/model/checkpoint.pt --datalist results/dataset/datalist.json "
                    "-o test_scores.json", cmd_score)
    s.add_argument("--checkpoint", required=True, help="checkpoint from 'cryosse train'")
    s.add_argument("--datalist", required=True, help="datalist JSON")
    s.add_argument("--split", default="test", choices=["train", "val", "test"], help="the split to score")
    device_option(s)
    output_option(s, "output JSON")

    s = add_command(sub, "compare-losses", "table and bar chart of scores per loss",
                    "The loss comparison of Mu et al. 2024: comparison.md, comparison.tsv and comparison.png "
                    "from the JSON files of 'cryosse score'.",
                    "compare-losses results/losses/*/test_scores.json -o results/losses", cmd_compare)
    s.add_argument("scores", nargs="+", help="JSON files from 'cryosse score'")
    output_option(s, "output folder")

    s = add_command(sub, "report", "aggregate evaluations into a report with figures",
                    "report.md (pooled and per-sample voxel and residue F1), f1.json, f1.png and a slice figure "
                    "from the JSON files of 'cryosse evaluate'.",
                    "report results/predict/test/*/scores.json --model-card results/model/model_card.json "
                    "-o results/report", cmd_report)
    s.add_argument("evals", nargs="+", help="JSON files from 'cryosse evaluate'")
    s.add_argument("--figure", help="id,density,truth,prediction of the sample to draw "
                   "(default: the evaluated sample with the most helix and sheet voxels)")
    s.add_argument("--model-card", help="model_card.json of the checkpoint, summarised in the report")
    output_option(s, "output folder")

    s = add_command(sub, "real-maps", "score a checkpoint on real maps with fitted models",
                    "Predict and score the real maps of a case file (bench/real_maps.yaml: EMDB maps, native or "
                    "low-passed, with fitted models) within 6 Å of their models: voxel and residue F1, slice "
                    "figures; --diagnose adds the research diagnostics (clean simulation, Cα-trace oracle, "
                    "grid ceiling).",
                    f"real-maps --checkpoint src/cryosse/data/models/{BUNDLED_NAME}.pt --cases bench/real_maps.yaml "
                    "-o real_maps", cmd_real_maps)
    s.add_argument("--checkpoint", required=True, help="checkpoint to score")
    cases_options(s)
    s.add_argument("--tta", action="store_true", help="average over the four 180-degree rotations")
    s.add_argument("--diagnose", action="store_true",
                   help="also score a clean simulation of each fitted model on the map's grid, the Cα-trace "
                   "oracle and the working grid's ceiling")
    device_option(s)
    output_option(s, "output folder")

    s = add_command(sub, "calibrate", "fit class weights (a prior shift) on the selection set",
                    "Predict every derived condition of the selection set's real maps (the robustness "
                    "benchmark's conditions), fit per-class probability weights (other 1, helix, sheet) that "
                    "maximise the mean of the two classes' F1/oracle target fractions, and write a copy of "
                    "the checkpoint whose card carries them; prediction then applies them.",
                    "calibrate --checkpoint results/bundle/model/ensemble.pt --cases bench/real_maps.yaml "
                    "-o calibrated.pt", cmd_calibrate)
    s.add_argument("--checkpoint", required=True, help="checkpoint to calibrate (without class weights)")
    cases_options(s)
    s.add_argument("--set", action="append", choices=["selection", "report"], default=None,
                   help="the sets to fit on (default and only allowed: selection)")
    s.add_argument("--max-voxels", type=int, default=200_000, help="scored voxels kept per condition")
    s.add_argument("--rows", help="refit on the voxels an earlier run kept (its OUT_fit/rows.npz) instead of "
                   "predicting again")
    device_option(s)
    output_option(s, "output checkpoint")
