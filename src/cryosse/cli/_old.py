"""The ``cryosse`` command line: one thin subcommand per stage.

Each subcommand parses its arguments, calls one library function and reports. Errors the
user can fix are printed as one line, ``cryosse: error: <file>: <problem>``, with exit
status 2; outputs are written atomically, so a failed command leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from . import __version__
from .errors import CryosseError, InputError

from .workflow import CHAIN_ID, ENTRY_ID

SAMPLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")


def check_id(kind: str, value: str, pattern: re.Pattern = ENTRY_ID) -> str:
    """Validate an identifier before it becomes part of a path."""
    if not pattern.match(value or ""):
        raise InputError(kind, f"invalid identifier {value!r}")
    return value


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- commands

def cmd_simulate(a) -> None:
    from .density import simulate_density
    from .io import read_model, write_map

    st = read_model(a.model)
    if not 0 < a.resolution <= 50 or not 0 < a.voxel_size <= 10:
        raise InputError(a.model, "resolution must be in (0, 50] Å and voxel size in (0, 10] Å")
    t = time.time()
    m = simulate_density(st, a.resolution, a.voxel_size, a.padding)
    extra = ""
    if a.realism_seed is not None:
        import numpy as np

        from .io import protein_atoms, write_json
        from .labels import within
        from .realism import degrade

        near = within(m, protein_atoms(st).xyz, 3.0)
        data, params = degrade(m.data, near, a.voxel_size, np.random.default_rng(a.realism_seed))
        m = m.with_data(data)
        record = Path(str(a.output) + ".realism.json")
        write_json(record, {"seed": a.realism_seed, "resolution_a": a.resolution, "effects": params})
        extra = f", realism {', '.join(k for k in params if k not in ('scale', 'offset')) or 'none'} ({record.name})"
    write_map(m, a.output)
    _say(f"{a.output}: {m.shape_xyz[0]}x{m.shape_xyz[1]}x{m.shape_xyz[2]} voxels of {a.voxel_size} Å, "
         f"origin {tuple(round(v, 2) for v in m.origin_a)}, {a.resolution} Å, {time.time() - t:.2f} s{extra}")


def _fetch_config(a):
    from .fetch import FetchConfig

    return FetchConfig(timeout_s=a.timeout, retries=a.retries, backoff_s=a.backoff,
                       per_host=a.per_host)


def cmd_fetch(a) -> None:
    from .fetch import fetch_entry, fetch_many, write_record

    cfg = _fetch_config(a)
    if a.record:  # one entry, its record written whatever happens (the workflow's mode)
        if a.kind != "entry" or len(a.ids) != 1:
            raise InputError("--record", "needs 'fetch entry' with one id")
        rec = fetch_entry(a.ids[0], a.cache, pdb=a.pdb, emdb_url=a.emdb_url, pdb_url=a.pdb_url,
                          cfg=cfg)
        write_record(a.record, rec)
        _say(f"{rec['emdb']}: {rec['status']}{': ' + rec['reason'] if rec['reason'] else ''}")
        return
    if a.pdb and a.kind != "entry":
        raise InputError("--pdb", "only with 'fetch entry'")
    items = [(a.kind, i) for i in a.ids]
    if a.pdb:
        from .fetch import emdb_id

        recs = [dict(kind="entry", id=emdb_id(a.ids[0]), **fetch_entry(
            a.ids[0], a.cache, pdb=a.pdb, emdb_url=a.emdb_url, pdb_url=a.pdb_url, cfg=cfg))]
    else:
        recs = fetch_many(items, a.cache, emdb_url=a.emdb_url, pdb_url=a.pdb_url, cfg=cfg,
                          workers=a.workers)
    failed = [r for r in recs if r["status"] != "ok"]
    for r in recs:
        if r["status"] == "ok":
            _say(f"{r['id']}: ok")
    if failed:
        _say(f"{len(failed)} of {len(recs)} failed:")
        for r in failed:
            _say(f"  {r['reason']}")
        raise CryosseError(f"{len(failed)} of {len(recs)} downloads failed")


def cmd_query(a) -> None:
    from .fetch import EmdbQuery, query_emdb, write_query_table

    lo, hi = a.resolution
    q = EmdbQuery(resolution_a=(lo, hi), method=a.method, released_after=a.released_after or "",
                  released_before=a.released_before or "", max_map_mb=a.max_map_mb, limit=a.limit,
                  extra=a.extra or "")
    rows = query_emdb(q, a.api_url, _fetch_config(a))
    write_query_table(a.output, rows, q, a.api_url)
    _say(f"{a.output}: {len(rows)} entries")


def cmd_sse(a) -> None:
    from .io import read_model
    from .sse import SSEConfig, assign_sse, sse_class_of, write_sse

    try:
        cfg = SSEConfig(engine=a.engine, helix=tuple(a.helix.split(",")), sheet=tuple(a.sheet.split(",")))
    except ValueError as exc:
        raise InputError("--engine/--helix/--sheet", str(exc)) from None
    t = time.perf_counter()
    res = assign_sse(read_model(a.model), cfg)
    write_sse(res, a.output, cfg.class_map)
    classes = [sse_class_of(r.dssp, cfg.class_map) for r in res]
    _say(f"{a.output}: {len(res)} residues ({cfg.engine}, {time.perf_counter() - t:.2f} s), "
         f"helix {classes.count(1)}, sheet {classes.count(2)}, "
         f"missing backbone atoms {sum(not r.complete for r in res)}, "
         f"chain breaks {sum(r.break_before for r in res)}")


def _sse_for(a, st):
    from .sse import assign_sse, read_sse

    return read_sse(a.sse) if a.sse else assign_sse(st)


def cmd_label(a) -> None:
    import numpy as np

    from .io import protein_atoms, read_map, read_model, write_map
    from .labels import atom_classes, label_voxels

    st = read_model(a.model, a.chains.split(",") if a.chains else None)
    grid = read_map(a.map)
    atoms = protein_atoms(st)
    lab = label_voxels(grid, atoms, atom_classes(atoms, _sse_for(a, st)), a.radius)
    write_map(lab, a.output, labels=True)
    counts = np.bincount(lab.data.ravel(), minlength=4)
    _say(f"{a.output}: background {counts[0]}, helix {counts[1]}, sheet {counts[2]}, other {counts[3]} voxels")


def cmd_crop(a) -> None:
    from .components import write_component, write_rejected
    from .io import model_report, protein_atoms, read_map, read_model
    from .labels import atom_classes

    check_id("--chain", a.chain, CHAIN_ID)
    sid = check_id("--id", a.id or f"{Path(a.model).name.split('.')[0]}_{a.chain}", SAMPLE_ID)
    density = read_map(a.map)
    st = read_model(a.model)
    cfg = _component_config(a)
    meta = {"id": sid, "entry": a.entry or "", "chain": a.chain, "pdb_id": a.pdb_id or "-",
            "resolution_a": a.resolution, "voxel_size_a": density.voxel_size_a[0],
            "source": str(a.map), "model": str(a.model), "sse": str(a.sse or ""), "config": cfg.__dict__}
    meta.update(model_report(st, a.chain))
    if a.chain not in {c.name for c in st[0]}:
        meta = write_rejected(a.output, meta, f"no protein residues in chain {a.chain} "
                                              "(empty, absent, or not protein)")
    else:
        atoms = protein_atoms(st, [a.chain])
        meta = write_component(a.output, density, atoms, atom_classes(atoms, _sse_for(a, st)), cfg, meta)
    _report_component(meta)


def _component_config(a):
    from .components import ComponentConfig

    return ComponentConfig(zone_radius_a=a.zone_radius, margin_a=a.margin, multiple=a.multiple,
                           max_side=a.max_side, label_radius_a=a.radius)


def _report_component(meta: dict) -> None:
    if meta["status"] != "ok":
        _say(f"{meta['id']}: rejected: {meta['reason']}")
    else:
        _say(f"{meta['id']}: {'x'.join(map(str, meta['shape_xyz']))} voxels, {meta['counts']}")


def cmd_prepare(a) -> None:
    from .experimental import QualityConfig, prepare_entry
    from .fetch import read_record

    if a.entry:
        check_id("--entry", a.entry)
    if a.record:
        rec = read_record(a.record)
    else:
        if not (a.map and a.model):
            raise InputError("prepare-map", "give --record, or --map and --model")
        rec = {"emdb": "", "map": a.map, "model": a.model, "resolution_a": a.resolution,
               "contour_level": a.contour, "status": "ok"}
    if a.entry:
        rec["entry"] = a.entry
    if a.pdb_id:
        rec["pdb"] = a.pdb_id
    if a.resolution is not None:
        rec["resolution_a"] = a.resolution
    if a.contour is not None:
        rec["contour_level"] = a.contour
    chains = [check_id("--chains", c, CHAIN_ID) for c in a.chains.split(",")] if a.chains else None
    cfg = QualityConfig(voxel_size_a=a.voxel_size, normalise=a.normalise,
                        resolution_a=tuple(a.resolution_range), min_correlation=a.min_correlation,
                        min_atoms_in_contour=a.min_atoms_in_contour, min_coverage=a.min_coverage,
                        min_sse_fraction=a.min_sse_fraction, zone_radius_a=a.zone_radius)
    q = prepare_entry(rec, a.output, cfg, chains)
    for ch, cq in q["chains"].items():
        corr = cq.get("correlation")
        _say(f"{q['entry']} chain {ch}: {cq.get('status')}"
             + (f", correlation {corr:.2f}" if corr is not None else "")
             + (f": {cq['reason']}" if cq.get("reason") else ""))
    _say(f"{a.output}/quality.json: {q['status']}{': ' + q['reason'] if q['reason'] else ''}")


def cmd_crop_entry(a) -> None:
    from .components import write_component, write_rejected
    from .io import protein_atoms, read_map, read_model
    from .labels import atom_classes
    from .sse import read_sse

    prepared = Path(a.prepared)
    qpath = prepared / "quality.json"
    if not qpath.is_file():
        raise InputError(prepared, "no quality.json (not a folder from 'cryosse prepare-map')")
    q = json.loads(qpath.read_text())
    entry = check_id("entry", q["entry"])
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    cfg = _component_config(a)
    base = {"entry": entry, "pdb_id": q.get("pdb") or "-", "resolution_a": q.get("resolution_a"),
            "voxel_size_a": q["config"]["voxel_size_a"], "source": str(prepared / "map.mrc"),
            "model": str(prepared / "model.cif"), "sse": str(prepared / "sse.tsv"),
            "config": cfg.__dict__, "quality": {}}
    if not q["chains"]:  # failed before its chains were known
        _report_component(write_rejected(out / entry, dict(base, id=entry, chain="-"), q["reason"]))
        return
    if q["status"] == "ok":
        density = read_map(prepared / "map.mrc")
        st = read_model(prepared / "model.cif")
        sse = read_sse(prepared / "sse.tsv")
    for ch, cq in q["chains"].items():
        check_id("chain", ch, CHAIN_ID)
        meta = dict(base, id=f"{entry}_{ch}", chain=ch,
                    quality={k: v for k, v in cq.items() if k not in ("status", "reason")})
        if cq.get("status") != "ok":
            _report_component(write_rejected(out / meta["id"], meta, cq.get("reason") or q["reason"]))
            continue
        atoms = protein_atoms(st, [ch])
        _report_component(write_component(out / meta["id"], density, atoms, atom_classes(atoms, sse),
                                          cfg, meta))


def cmd_split(a) -> None:
    from .dataset import (ChainRecord, assign_folds, assign_splits, chain_sequence, cluster_chains,
                          write_folds, write_splits)
    from .io import read_model, read_tsv
    from .sse import read_sse, residue_class

    if not a.structures and not a.prepared:
        raise InputError("split", "give --structures (with --sse-dir) and/or --prepared")
    table = Path(a.structures) if a.structures else None
    rows = read_tsv(table) if table else []
    if rows and not a.sse_dir:
        raise InputError("--structures", "needs --sse-dir")
    fractions = dict(zip(("train", "val", "test"), (float(v) for v in a.fractions.split(","))))
    chains = []
    entries = set(a.entries.split(",")) if a.entries else None
    for d in map(Path, a.prepared or []):  # experimental entries: accepted chains only
        q = json.loads((d / "quality.json").read_text())
        if q["status"] != "ok":
            continue
        entry = check_id("entry", q["entry"])
        st = read_model(d / "model.cif")
        sse = read_sse(d / "sse.tsv")
        for ch, cq in q["chains"].items():
            if cq.get("status") != "ok":
                continue
            codes = [residue_class(x) for x in sse if x.chain == ch]
            n = max(len(codes), 1)
            chains.append(ChainRecord(f"{entry}_{ch}", entry, ch, q.get("pdb") or "-",
                                      chain_sequence(st, ch), codes.count(1) / n, codes.count(2) / n))
    for r in rows:
        if entries is not None and r["entry"] not in entries:
            continue
        entry = check_id("entry", r["entry"])
        st = read_model(table.parent / r["file"])
        sse = {x.key: x for x in read_sse(Path(a.sse_dir) / f"{entry}.tsv")}
        for ch in r["chains"].split(","):
            check_id("chain", ch, CHAIN_ID)
            codes = [residue_class(x) for x in sse.values() if x.chain == ch]
            n = max(len(codes), 1)
            try:
                seq = chain_sequence(st, ch)
            except KeyError:  # no protein residues: crop records the rejection; keep its place
                seq = ""
            chains.append(ChainRecord(f"{entry}_{ch}", entry, ch, r.get("pdb_id", "-") or "-",
                                      seq, codes.count(1) / n, codes.count(2) / n))
    clusters = cluster_chains(chains, a.identity)
    splits = assign_splits(chains, clusters, fractions, a.seed)
    folds = assign_folds(chains, clusters, a.kfold, a.seed, splits) if a.kfold >= 2 else None
    write_splits(a.output, chains, clusters, splits, folds)
    if a.folds:
        write_folds(a.folds, chains, clusters, splits, folds or [-1] * len(chains))
    _say(f"{a.output}: {len(chains)} chains in {len(set(clusters))} clusters: " +
         ", ".join(f"{s} {splits.count(s)}" for s in ("train", "val", "test")) +
         (f"; {a.kfold} folds of train+val: " + ", ".join(str(folds.count(k)) for k in range(a.kfold))
          if folds else ""))


def cmd_dataset(a) -> None:
    from .dataset import write_manifest

    rows = write_manifest(a.components, a.splits, a.manifest, a.datalist)
    ok = [r for r in rows if r["status"] == "ok"]
    _say(f"{a.manifest}: {len(rows)} components, {len(ok)} accepted, {len(rows) - len(ok)} rejected")


def _train_config(a):
    from .train.loop import TrainConfig

    return TrainConfig(preset=a.preset, loss=a.loss, voxel_size_a=a.voxel_size, patch=a.patch,
                       batch=a.batch, steps=a.steps, optimizer=a.optimizer, lr=a.lr, seed=a.seed,
                       val_every=a.val_every, checkpoint_every=a.checkpoint_every, patience=a.patience,
                       max_minutes=a.max_minutes, focal_gamma=a.focal_gamma,
                       focal_alpha=tuple(float(v) for v in a.focal_alpha.split(",")) if a.focal_alpha else None,
                       loss_weights=tuple(float(v) for v in a.loss_weights.split(",")),
                       device=a.device, amp=not a.no_amp, norm=a.norm, realism=a.realism,
                       realism_ramp=tuple(float(v) for v in a.realism_ramp.split(",")),
                       oversample=_oversample(a.oversample))


def _oversample(text: str) -> dict:
    """``--oversample H,S``: the fractions of patch centres drawn on helix and on sheet voxels."""
    try:
        h, s = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError("--oversample", f"expected two fractions HELIX,SHEET, got {text!r}") from None
    if not (0 <= h <= 1 and 0 <= s <= 1 and h + s <= 1):
        raise InputError("--oversample", f"fractions must lie in [0, 1] and sum to at most 1, got {text!r}")
    return {"helix": h, "sheet": s}


def cmd_train(a) -> None:
    from .train.loop import train

    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    card = train(a.datalist, a.out_dir, _train_config(a), init=a.init, resume=not a.no_resume)
    m = card["metrics"] or {}
    _say(f"{a.out_dir}/checkpoint.pt: best at step {card['step']} of {card['steps_run']} "
         f"({card['stop_reason']}): validation F1 helix {m.get('val_helix_f1', float('nan')):.3f}, "
         f"sheet {m.get('val_sheet_f1', float('nan')):.3f}")


def cmd_training_set(a) -> None:
    from .trainingset import build_training_set

    train_splits = tuple(v for v in a.train_splits.split(",") if v)
    if not train_splits or any(v not in ("train", "test") for v in train_splits):
        raise InputError(a.splits, f"--train-splits must name train and/or test, not {a.train_splits!r} "
                         "(val is the validation split)")
    dl = build_training_set(a.structures, a.splits, a.output, [float(v) for v in a.resolutions.split(",")],
                            a.voxel_size, a.radius, train_splits=train_splits,
                            extra_structures_tsv=a.extra_structures or None, max_identity=a.max_identity)
    _say(f"{a.output}/datalist.json: {len(dl['training'])} training and {len(dl['validation'])} "
         f"validation maps")
    for x in dl.get("extra_excluded", []):
        _say(f"extra entry {x['entry']} left out: chain {x['chain']} is {x['identity']:.0%} identical "
             f"to held-out chain {x['held_out']}")


def cmd_export_model(a) -> None:
    from .io import write_json
    from .train.checkpoint import export_checkpoint

    update = {}
    if a.real_maps:
        rm = json.loads(Path(a.real_maps).read_text())
        update["real_maps"] = {"mean_voxel_f1": rm["mean_voxel_f1"], "mean_residue_f1": rm["mean_residue_f1"],
                               "cases": {c["case"]: {"voxel_helix_f1": c["voxel"]["helix"]["f1"],
                                                     "voxel_sheet_f1": c["voxel"]["sheet"]["f1"] if c["has_sheet"] else None,
                                                     "residue_helix_f1": c["residue"]["helix"]["f1"],
                                                     "residue_sheet_f1": c["residue"]["sheet"]["f1"] if c["has_sheet"] else None}
                                         for c in rm["cases"]}}
    if a.recipe:
        update["recipe"] = json.loads(Path(a.recipe).read_text()) if Path(a.recipe).is_file() else a.recipe
    card = export_checkpoint(a.checkpoint, a.output, half=not a.float32, card_update=update)
    write_json(Path(str(a.output)).with_suffix(".json"), card)
    _say(f"{a.output}: {card['arch'].get('preset')} ({card['weights_dtype']}), "
         f"{Path(a.output).stat().st_size / 1e6:.1f} MB; card in {Path(str(a.output)).with_suffix('.json').name}")


def cmd_ensemble(a) -> None:
    from .io import write_json
    from .train.checkpoint import ensemble_checkpoints

    card = ensemble_checkpoints(a.checkpoints, a.output, half=a.float16)
    write_json(Path(str(a.output)).with_suffix(".json"), card)
    _say(f"{a.output}: ensemble of {len(a.checkpoints)} networks ({card['arch']['preset']}), "
         f"{Path(a.output).stat().st_size / 1e6:.1f} MB")


def cmd_real_maps(a) -> None:
    from .realmaps import format_real_table, score_real_maps

    s = score_real_maps(a.checkpoint, a.data, a.output, device=a.device, tta=a.tta, diagnose=a.diagnose)
    print(format_real_table(s))


def cmd_predict(a) -> None:
    from .components import ComponentConfig
    from .predict import BUNDLED_CHECKPOINT, PredictConfig, predict_to_dir

    if a.max_memory_gb <= 0 or not 0 <= a.overlap < 1 or a.batch < 1 or a.tile < 0:
        raise InputError(a.map, "--max-memory-gb and --batch must be positive, --overlap in [0, 1), --tile >= 0")
    if a.device and a.device not in ("cpu", "cuda") and not a.device.startswith("cuda:"):
        raise InputError(a.map, f"unknown --device {a.device!r} (cpu, cuda)")
    cfg = PredictConfig(contour=a.contour, overlap=a.overlap, tile=a.tile, batch=a.batch, threads=a.threads,
                        device=a.device, amp=False if a.no_amp else None, max_memory_gb=a.max_memory_gb,
                        tta=a.tta)
    chains = a.chain.split(",") if a.chain else None
    s = predict_to_dir(a.map, a.checkpoint or BUNDLED_CHECKPOINT, a.output, cfg, model=a.model, chains=chains,
                       zone_cfg=ComponentConfig(zone_radius_a=a.zone))
    _say(f"{a.output}: helix {s['helix_fraction']:.1%}, sheet {s['sheet_fraction']:.1%} of voxels, "
         f"{s['runtime_s']:.2f} s on {s['device']}" + (", outputs streamed" if s["outputs_streamed"] else ""))


def cmd_evaluate(a) -> None:
    from .evaluate import evaluate_maps, format_table
    from .io import read_map, write_json

    pred, truth = read_map(a.prediction), read_map(a.truth)
    scores = evaluate_maps(pred, truth)
    scores.update(id=a.id or Path(a.prediction).parent.name, prediction=a.prediction, truth=a.truth,
                  density=a.density or "")
    if a.model:
        from .evaluate import evaluate_residues
        from .io import read_model

        st = read_model(a.model)
        scores["residues"] = evaluate_residues(pred, st, a.chain, _sse_for(a, st))
    if a.json:
        write_json(a.json, scores)
    if a.png:
        from .evaluate import write_slice_figure

        if not a.density:
            raise InputError(a.prediction, "--png needs --density")
        write_slice_figure(a.png, read_map(a.density), truth, pred, scores["id"])
    print("voxels\n" + format_table(scores))
    if a.model:
        print("residues (majority of predicted voxels within 3 Å)\n" + format_table(scores["residues"]))


def cmd_score(a) -> None:
    from .evaluate import score_checkpoint
    from .io import write_json

    res = score_checkpoint(a.checkpoint, a.datalist, a.split, a.device)
    write_json(a.output, res)
    v = res["voxel"]
    _say(f"{a.output}: {res['n_samples']} {a.split} samples, voxel F1 helix {v['helix']['f1']:.3f}, "
         f"sheet {v['sheet']['f1']:.3f}")


def cmd_compare(a) -> None:
    from .evaluate import compare_scores

    rows = compare_scores(a.scores, a.output)
    _say(f"{a.output}/comparison.md: {len(rows)} losses")
    print((Path(a.output) / "comparison.md").read_text(), end="")


def cmd_dataset_report(a) -> None:
    from .dataset import write_dataset_report

    s = write_dataset_report(a.manifest, a.splits, a.output)
    _say(f"{a.output}/dataset_report.md: {s['components']} components, {s['accepted']} accepted, "
         f"{s['rejected']} rejected")


def cmd_report(a) -> None:
    from .evaluate import write_report

    fig = tuple(a.figure.split(",")) if a.figure else None
    card = json.loads(Path(a.model_card).read_text()) if a.model_card else None
    res = write_report(a.evals, a.output, fig, card)
    p = res["pooled"]
    _say(f"{a.output}/report.md: {res['n_samples']} samples; pooled F1 helix {p['helix']['f1']:.3f}, "
         f"sheet {p['sheet']['f1']:.3f}")


# ----------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cryosse", description="Secondary-structure segmentation data "
                                "and models for medium-resolution cryo-EM maps.")
    p.add_argument("--version", action="version", version=f"cryosse {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("simulate", help="simulate a density map from an atomic model",
                       description="Simulate density from MODEL (PDB/mmCIF, optionally gzipped) at a "
                       "resolution: each atom a Gaussian of sigma = 0.225 x resolution (ChimeraX molmap "
                       "convention), electron form factors (gemmi). The MRC header holds the voxel size "
                       "and the origin.")
    s.add_argument("model")
    s.add_argument("--resolution", type=float, default=6.0, help="resolution in Å (default 6.0)")
    s.add_argument("--voxel-size", type=float, default=1.0, help="voxel size in Å (default 1.0)")
    s.add_argument("--padding", type=float, default=None, help="Å of space around the model (default 3 x resolution)")
    s.add_argument("--realism-seed", type=int, default=None,
                   help="degrade the map like a native one (cryosse.realism: noise, blur, local resolution, "
                   "band-pass ripples, background, mask, threshold) with this seed; the effects and their "
                   "parameters are recorded in OUTPUT.realism.json")
    s.add_argument("-o", "--output", required=True, help="output MRC map")
    s.set_defaults(func=cmd_simulate)

    from .fetch import DEFAULT_EMDB_API, DEFAULT_EMDB_URL, DEFAULT_PDB_URL

    def net_args(s):
        s.add_argument("--timeout", type=float, default=30.0, help="seconds per connection attempt (default 30)")
        s.add_argument("--retries", type=int, default=5, help="retries after 5xx, timeouts, drops (default 5)")
        s.add_argument("--backoff", type=float, default=1.0, help="first retry delay in s, doubled each time")
        s.add_argument("--per-host", type=int, default=2, help="concurrent connections per host (default 2)")

    s = sub.add_parser("fetch", help="download EMDB maps/headers and PDB models into a cache",
                       description="Download into CACHE (emdb/EMD-NNNN/emd_NNNN.map.gz and "
                       "emd-NNNN.xml; pdb/<id>.cif.gz) from the archive layouts under --emdb-url / "
                       "--pdb-url (any mirror). Partial files resume; every file is checked before "
                       "it enters the cache. 'entry' fetches map, header and fitted model (--pdb, "
                       "default the header's first fitted model).")
    s.add_argument("kind", choices=["emdb", "pdb", "entry"])
    s.add_argument("ids", nargs="+", metavar="ID")
    s.add_argument("--cache", default="resources", help="cache folder (default resources)")
    s.add_argument("--emdb-url", default=DEFAULT_EMDB_URL, help=f"EMDB archive base (default {DEFAULT_EMDB_URL})")
    s.add_argument("--pdb-url", default=DEFAULT_PDB_URL, help=f"PDB divided/mmCIF base (default {DEFAULT_PDB_URL})")
    s.add_argument("--pdb", help="with 'entry': the PDB model to use")
    s.add_argument("--record", help="with 'entry': write the outcome (ok or failed, reason) as JSON "
                   "and exit 0 even when the download failed")
    s.add_argument("--workers", type=int, default=4)
    net_args(s)
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("query-emdb", help="select EMDB entries with the EMDB search API",
                       description="Query the EMDB search API (single particle, fitted model, "
                       "resolution range, release dates, map size) and save the result as a "
                       "versioned TSV (date and query in its header) for reproducible runs.")
    s.add_argument("--api-url", default=DEFAULT_EMDB_API)
    s.add_argument("--resolution", type=float, nargs=2, default=(5.0, 10.0), metavar=("LO", "HI"))
    s.add_argument("--method", default="singleParticle")
    s.add_argument("--released-after", help="YYYY-MM-DD")
    s.add_argument("--released-before", help="YYYY-MM-DD")
    s.add_argument("--max-map-mb", type=float, default=512.0)
    s.add_argument("--limit", type=int, default=1000)
    s.add_argument("--extra", help="extra Solr clause ANDed to the query")
    s.add_argument("-o", "--output", required=True)
    net_args(s)
    s.set_defaults(func=cmd_query)

    s = sub.add_parser("sse", help="assign secondary structure (DSSP) per residue",
                       description="Per-residue DSSP codes and classes (helix = H,G,I; sheet = E,B; "
                       "other = the rest; configurable) of the protein chains of MODEL, as a TSV table with the "
                       "engine's code, the class, and flags for residues missing backbone atoms and "
                       "chain breaks.")
    s.add_argument("model")
    s.add_argument("--engine", default="pydssp", choices=["pydssp", "mkdssp"],
                   help="pydssp (default; H, E, - only) or mkdssp (Debian package dssp 4.x, eight states)")
    s.add_argument("--helix", default="H,G,I", help="DSSP codes of the helix class (default H,G,I)")
    s.add_argument("--sheet", default="E,B", help="DSSP codes of the sheet class (default E,B)")
    s.add_argument("-o", "--output", required=True, help="output TSV")
    s.set_defaults(func=cmd_sse)

    def label_args(s):
        s.add_argument("--sse", help="per-residue table from 'cryosse sse' (default: run DSSP)")
        s.add_argument("--radius", type=float, default=3.0, help="label radius in Å (default 3.0)")

    s = sub.add_parser("label", help="voxel labels of a model on a map's grid",
                       description="Label every voxel of MAP's grid: the class of the nearest heavy "
                       "atom of MODEL's protein chains within --radius Å (0 background, 1 helix, 2 sheet, "
                       "3 other protein). Writes an 8-bit MRC on exactly MAP's grid.")
    s.add_argument("model")
    s.add_argument("map")
    s.add_argument("--chains", help="comma-separated chains (default: all protein chains)")
    label_args(s)
    s.add_argument("-o", "--output", required=True, help="output label MRC")
    s.set_defaults(func=cmd_label)

    s = sub.add_parser("crop", help="box-crop one chain component with its labels",
                       description="Cut the component of one chain out of MAP: density within "
                       "--zone-radius Å of the chain (other density masked out), boxed with --margin Å, "
                       "sides padded to a multiple of --multiple; writes density.mrc, labels.mrc and "
                       "meta.json into OUTDIR (only meta.json, with the reason, when rejected).")
    s.add_argument("map")
    s.add_argument("model")
    s.add_argument("--chain", required=True)
    s.add_argument("--id", help="sample id (default <model>_<chain>)")
    s.add_argument("--entry")
    s.add_argument("--pdb-id")
    s.add_argument("--resolution", type=float, help="map resolution in Å, recorded in meta.json")
    from .components import ComponentConfig

    c = ComponentConfig()

    def component_args(s):
        s.add_argument("--zone-radius", type=float, default=c.zone_radius_a)
        s.add_argument("--margin", type=float, default=c.margin_a)
        s.add_argument("--multiple", type=int, default=c.multiple)
        s.add_argument("--max-side", type=int, default=c.max_side)
        s.add_argument("--radius", type=float, default=3.0, help="label radius in Å (default 3.0)")

    component_args(s)
    s.add_argument("--sse", help="per-residue table from 'cryosse sse' (default: run DSSP)")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_crop)

    from .experimental import NORMALISE_MODES, QualityConfig

    qc = QualityConfig()
    s = sub.add_parser("prepare-map", help="resample and normalise an experimental map, check the fit",
                       description="Read an experimental map (any MRC/CCP4 header), resample it to "
                       "cubic voxels (trilinear at explicit positions), normalise it, and check each "
                       "chain of its fitted model: map-model correlation in the chain's zone, atoms "
                       "inside the recommended contour, coverage, resolution range, SSE content. "
                       "Writes OUTDIR/quality.json (rejections with reasons) and, when a chain "
                       "passes, map.mrc, model.cif and sse.tsv.")
    s.add_argument("--record", help="JSON record from 'cryosse fetch entry --record'")
    s.add_argument("--map", help="local map (instead of --record)")
    s.add_argument("--model", help="local model (instead of --record)")
    s.add_argument("--entry", help="entry id (default the EMDB id)")
    s.add_argument("--pdb-id")
    s.add_argument("--chains", help="comma-separated chains (default all protein chains)")
    s.add_argument("--resolution", type=float, help="map resolution in Å (default from the header)")
    s.add_argument("--contour", type=float, help="recommended contour level (default from the header)")
    s.add_argument("--voxel-size", type=float, default=qc.voxel_size_a)
    s.add_argument("--normalise", choices=NORMALISE_MODES, default=qc.normalise)
    s.add_argument("--resolution-range", type=float, nargs=2, default=qc.resolution_a, metavar=("LO", "HI"))
    s.add_argument("--min-correlation", type=float, default=qc.min_correlation)
    s.add_argument("--min-atoms-in-contour", type=float, default=qc.min_atoms_in_contour)
    s.add_argument("--min-coverage", type=float, default=qc.min_coverage)
    s.add_argument("--min-sse-fraction", type=float, default=qc.min_sse_fraction)
    s.add_argument("--zone-radius", type=float, default=qc.zone_radius_a)
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("crop-entry", help="box-crop every accepted chain of a prepared entry",
                       description="One component folder per chain of PREPARED (from 'cryosse "
                       "prepare-map') under OUTDIR/<entry>_<chain>; chains rejected by the quality "
                       "checks (or an entry that failed) get only meta.json with the reason.")
    s.add_argument("prepared")
    component_args(s)
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_crop_entry)

    s = sub.add_parser("split", help="leakage-free train/val/test split of chains",
                       description="Cluster chains (same PDB entry, or sequence identity >= --identity) "
                       "and assign whole clusters to train/val/test, stratified by fold class.")
    s.add_argument("--structures", help="structures table (TSV: entry, file, chains, pdb_id)")
    s.add_argument("--sse-dir", help="folder of <entry>.tsv from 'cryosse sse'")
    s.add_argument("--prepared", nargs="*", help="experimental entries: folders from 'cryosse prepare-map'")
    s.add_argument("--entries", help="comma-separated subset of entries")
    s.add_argument("--identity", type=float, default=0.30)
    s.add_argument("--fractions", default="0.7,0.15,0.15", help="train,val,test (default 0.7,0.15,0.15)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--kfold", type=int, default=0,
                   help="also divide the train+val chains into K leakage-free folds (0: none)")
    s.add_argument("--folds", help="write the folds table (id, split, fold, cluster, stratum) here")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=cmd_split)

    s = sub.add_parser("dataset", help="manifest and datalist from components and splits")
    s.add_argument("components", nargs="+", help="component folders from 'cryosse crop'")
    s.add_argument("--splits", required=True)
    s.add_argument("--manifest", required=True)
    s.add_argument("--datalist", required=True)
    s.set_defaults(func=cmd_dataset)

    s = sub.add_parser("dataset-report", help="Markdown report of the data set with PNG figures",
                       description="Entries, chains, components, class balance (voxels and residues), "
                       "resolution histogram, per-sample thumbnails with labels, rejected samples and why.")
    s.add_argument("--manifest", required=True)
    s.add_argument("--splits", required=True)
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_dataset_report)

    s = sub.add_parser("train", help="train the 3D U-Net on a datalist",
                       description="Train on the datalist's training samples, validate on whole "
                       "validation samples; writes checkpoint.pt (best validation mean of helix and "
                       "sheet F1, a model card with weights), last.pt (resumable: rerun the same command "
                       "after an interruption), metrics.jsonl, training_curve.png, model_card.json.")
    s.add_argument("--datalist", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--preset", default="resunet",
                   help="network preset: resunet (default), resunet_wide, resunet_fine, small or deepssetracer")
    s.add_argument("--loss", default="focal_dice", help="ce, focal, dice, ce_dice or focal_dice (default)")
    s.add_argument("--focal-gamma", type=float, default=2.0)
    s.add_argument("--focal-alpha", help="per-class focal weights other,helix,sheet (default none)")
    s.add_argument("--loss-weights", default="1,1", help="weights of the two parts of ce_dice/focal_dice")
    s.add_argument("--voxel-size", type=float, default=2.0, help="working voxel size in Å (default 2.0)")
    s.add_argument("--patch", type=int, default=32, help="patch side in working voxels (default 32)")
    s.add_argument("--batch", type=int, default=4)
    s.add_argument("--steps", type=int, default=3000)
    s.add_argument("--optimizer", default="adamw", help="adamw (one-cycle) or sgd (poly)")
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--val-every", type=int, default=500)
    s.add_argument("--checkpoint-every", type=int, default=250, help="steps between resumable checkpoints")
    s.add_argument("--patience", type=int, default=0,
                   help="stop after this many validations without better sheet F1 (0: never)")
    s.add_argument("--max-minutes", type=float, default=0.0, help="stop after this long (0: no limit)")
    s.add_argument("--init", help="start from this checkpoint's weights (fine-tuning)")
    s.add_argument("--no-resume", action="store_true", help="ignore OUT_DIR/last.pt")
    s.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    s.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--norm", default="zscore", choices=["zscore", "local"],
                   help="input normalisation: z-score over the box (default) or local (8 Å window)")
    s.add_argument("--realism", action="store_true",
                   help="degrade training patches like native maps (noise, blur, local resolution, "
                   "sharpening, background, masks, thresholds; see cryosse.realism)")
    s.add_argument("--realism-ramp", default="0.2,0.5",
                   help="fractions of the steps where realism starts and reaches full strength")
    s.add_argument("--oversample", default="0.33,0.33",
                   help="class-aware sampling: fractions of patch centres on helix and on sheet voxels "
                   "(default 0.33,0.33; 0,0 draws every centre uniformly)")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("training-set", help="simulate whole-entry training maps on the working grid",
                       description="For the train (and with --train-splits test) and val split entries: all protein chains simulated "
                       "at each resolution on the working grid and labelled; writes OUTPUT/datalist.json.")
    s.add_argument("--structures", required=True, help="structures table (TSV)")
    s.add_argument("--splits", required=True, help="splits.tsv from 'cryosse split'")
    s.add_argument("--resolutions", default="5,6.5,8,10", help="comma-separated resolutions in Å")
    s.add_argument("--voxel-size", type=float, default=2.0, help="working voxel size in Å (default 2.0)")
    s.add_argument("--radius", type=float, default=3.0, help="label radius in Å (default 3.0)")
    s.add_argument("--train-splits", default="train",
                   help="comma-separated splits to train on: train (default), or train,test for a model "
                   "judged elsewhere (the bundled model); val is always the validation split")
    s.add_argument("--extra-structures", default="",
                   help="a second structures table of training-only entries; each is left out if a chain is "
                   "--max-identity or more identical to a chain of a split not trained on")
    s.add_argument("--max-identity", type=float, default=0.30,
                   help="sequence identity that makes an extra entry a homologue of a held-out chain (default 0.30)")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_training_set)

    s = sub.add_parser("export-model", help="a slim checkpoint for distribution (the bundled model)",
                       description="Weights only (float16 unless --float32), the model card updated with "
                       "the recipe and the real-map scores; the card is also written beside it as JSON.")
    s.add_argument("checkpoint")
    s.add_argument("--real-maps", help="real_maps.json from 'cryosse real-maps', recorded in the card")
    s.add_argument("--recipe", help="JSON file or text describing how the model was made")
    s.add_argument("--float32", action="store_true")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=cmd_export_model)

    s = sub.add_parser("ensemble", help="several checkpoints as one (mean probability)",
                       description="Combine checkpoints trained on the same data and grid into one "
                       "checkpoint whose prediction is the members' mean probability; the card lists "
                       "each member's loss, seed, step and metrics. 'cryosse export-model' slims it.")
    s.add_argument("checkpoints", nargs="+")
    s.add_argument("--float16", action="store_true", help="store weights as float16")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=cmd_ensemble)
    s = sub.add_parser("real-maps", help="score a checkpoint on the real maps with fitted models",
                       description="Predict and score EMD-5168 (whole and masked monomer, native 6.6 Å), "
                       "EMD-2566 chain 9 (low-passed to 6 Å) and EMD-0093 (low-passed to 7 Å) within "
                       "6 Å of their models: voxel and residue F1, slice figures.")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", help="folder of the real maps (default: $CRYOSSE_REAL_DATA or ../shared/data)")
    s.add_argument("--tta", action="store_true", help="average over the four 180-degree rotations")
    s.add_argument("--diagnose", action="store_true",
                   help="also score a clean simulation of each fitted model on the map's grid, and the "
                   "working grid's ceiling (the truth passed through the network's grid)")
    s.add_argument("--device", default=None)
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_real_maps)

    s = sub.add_parser("predict", help="predict helix/sheet probabilities and labels for a map",
                       description="Segment any MRC/CCP4 map (any size, voxel size, axis order): resampled "
                       "to the model's voxel size, normalised as in training, sliding windows with Gaussian "
                       "blending (CUDA with AMP when available, else CPU). Writes into OUTDIR, on MAP's own "
                       "grid (shape, voxel size, origin): helix_prob.mrc, sheet_prob.mrc, labels.mrc (0 "
                       "background/other, 1 helix, 2 sheet), view.cxc for ChimeraX and summary.json (last).")
    s.add_argument("map")
    s.add_argument("--checkpoint", help="checkpoint from 'cryosse train' (default: the bundled model)")
    s.add_argument("--contour", type=float, default=None,
                   help="density below this level is set to 0 before resampling and normalisation")
    s.add_argument("--model", help="atomic model (PDB/mmCIF): predict only the chain zone (--chain)")
    s.add_argument("--chain", help="with --model: chain(s), comma-separated (default: all protein chains)")
    s.add_argument("--zone", type=float, default=c.zone_radius_a,
                   help=f"zone radius in Å around the chain's heavy atoms (default {c.zone_radius_a})")
    s.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    s.add_argument("--no-amp", action="store_true", help="no fp16 autocast on CUDA")
    s.add_argument("--overlap", type=float, default=0.5, help="tile overlap fraction (default 0.5)")
    s.add_argument("--tile", type=int, default=0,
                   help="tile side in working voxels (default 0: the largest of 128, 96 or the model's "
                   "tile that fits the memory budget)")
    s.add_argument("--batch", type=int, default=2, help="tiles per network call (default 2)")
    s.add_argument("--max-memory-gb", type=float, default=8.0,
                   help="memory budget for the arrays (default 8): over it, outputs are streamed to disk "
                   "slab by slab; if even that does not fit, stop before writing anything")
    s.add_argument("--tta", action="store_true", help="average over the four 180-degree rotations (4x time)")
    s.add_argument("--threads", type=int, default=0, help="CPU threads (default: OMP_NUM_THREADS if set, "
                   "else the cores not kept busy by other processes)")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("evaluate", help="per-class voxel precision/recall/F1 of a prediction",
                       description="Compare a predicted label map with a true one (same grid): "
                       "precision, recall and F1 for helix, sheet and other.")
    s.add_argument("--prediction", required=True)
    s.add_argument("--truth", required=True)
    s.add_argument("--id", help="sample id recorded in the JSON")
    s.add_argument("--density", help="density map, recorded so that reports can draw it")
    s.add_argument("--model", help="atomic model: also score residues (majority of predicted voxels "
                   "within 3 Å of each residue's heavy atoms vs its DSSP class)")
    s.add_argument("--chain", help="with --model: only this chain")
    s.add_argument("--sse", help="with --model: per-residue table from 'cryosse sse' (default: run DSSP)")
    s.add_argument("--json", help="also write the scores as JSON")
    s.add_argument("--png", help="also draw density, true and predicted labels on a slice (needs --density)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("score", help="predict and score every sample of a datalist split",
                       description="Voxel F1 (pooled and mean over samples) and residue F1 of a "
                       "checkpoint on the train, val or test split of a datalist, as JSON.")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--datalist", required=True)
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    s.add_argument("--device", default=None)
    s.add_argument("-o", "--output", required=True, help="output JSON")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("compare-losses", help="table and bar chart of scores per loss")
    s.add_argument("scores", nargs="+", help="JSON files from 'cryosse score'")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("report", help="aggregate evaluations into a report with figures")
    s.add_argument("evals", nargs="+")
    s.add_argument("--figure", help="id,density,truth,prediction of the sample to draw "
                   "(default: the evaluated sample with the most helix and sheet voxels)")
    s.add_argument("--model-card")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CryosseError as exc:
        print(f"cryosse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cryosse: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
