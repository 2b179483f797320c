"""Commands that assemble the data set: split, dataset, dataset-report, training-set."""
from __future__ import annotations

from ..errors import InputError
from ..prep.split import SplitConfig
from ..prep.trainingset import TrainingSetConfig
from .options import (add_command, alias, config_option, field_option, floats, output_option, say, settings,
                      strings)


def _fractions(text: str) -> dict:
    vals = floats(3, "fractions")(text)
    return dict(zip(("train", "val", "test"), vals))


def cmd_split(a) -> None:
    from ..prep.split import gather_chains, split_chains

    if not a.structures and not a.prepared:
        raise InputError("split", "give --structures (with --sse-dir) and/or --prepared")
    if a.structures and not a.sse_dir:
        raise InputError("--structures", "needs --sse-dir")
    cfg = settings(a, SplitConfig)
    chains = gather_chains(a.structures, a.sse_dir, a.prepared or [], list(a.entries) if a.entries else None)
    r = split_chains(chains, cfg, a.output, a.folds)
    say(f"{a.output}: {r['chains']} chains in {r['clusters']} clusters: " +
        ", ".join(f"{s} {n}" for s, n in r["splits"].items()) +
        (f"; {cfg.kfold} folds of train+val: " + ", ".join(map(str, r["folds"])) if r["folds"] else ""))


def cmd_dataset(a) -> None:
    from ..prep.dataset import write_manifest

    rows = write_manifest(a.components, a.splits, a.manifest, a.datalist)
    ok = [r for r in rows if r["status"] == "ok"]
    say(f"{a.manifest}: {len(rows)} components, {len(ok)} accepted, {len(rows) - len(ok)} rejected")


def cmd_dataset_report(a) -> None:
    from ..prep.report import write_dataset_report

    s = write_dataset_report(a.manifest, a.splits, a.output)
    say(f"{a.output}/dataset_report.md: {s['components']} components, {s['accepted']} accepted, "
        f"{s['rejected']} rejected")


def cmd_training_set(a) -> None:
    from ..prep.trainingset import build_training_set

    cfg = settings(a, TrainingSetConfig)
    if not cfg.train_splits or any(v not in ("train", "test") for v in cfg.train_splits):
        raise InputError("--train-splits", f"must name train and/or test, not {','.join(cfg.train_splits)!r} "
                         "(val is the validation split)")
    dl = build_training_set(a.structures, a.splits, a.output, list(cfg.resolutions_a), cfg.voxel_size_a,
                            cfg.label_radius_a, train_splits=tuple(cfg.train_splits),
                            extra_structures_tsv=a.extra_structures or None, max_identity=cfg.max_identity)
    say(f"{a.output}/datalist.json: {len(dl['training'])} training and {len(dl['validation'])} validation maps")
    for x in dl.get("extra_excluded", []):
        say(f"extra entry {x['entry']} left out: chain {x['chain']} is {x['identity']:.0%} identical "
            f"to held-out chain {x['held_out']}")


def register(sub) -> None:
    s = add_command(sub, "split", "leakage-free train/val/test split of chains",
                    "Cluster chains (same PDB entry, or sequence identity >= --max-identity, single "
                    "linkage) and assign whole clusters to train/val/test, stratified by fold class; "
                    "optionally K leakage-free folds of the train+val chains.",
                    "split --structures structures.tsv --sse-dir results/entries -o splits.tsv --folds folds.tsv",
                    cmd_split)
    s.add_argument("--structures", help="structures table (TSV: entry, file, chains, pdb_id)")
    s.add_argument("--sse-dir", help="folder of DSSP tables from 'cryosse sse': <entry>.tsv or <entry>/sse.tsv")
    s.add_argument("--prepared", nargs="*", help="experimental entries: folders from 'cryosse prepare-map'")
    s.add_argument("--entries", type=strings, help="comma-separated subset of the table's entries")
    field_option(s, SplitConfig, "max_identity", "--max-identity", type=float,
                 help="chains at or above this sequence identity share a split")
    alias(s, "--identity", dest="max_identity", type=float)
    field_option(s, SplitConfig, "fractions", "--fractions", type=_fractions,
                 help="fractions of residues for train,val,test")
    field_option(s, SplitConfig, "seed", "--seed", type=int, help="seed of the assignment order")
    field_option(s, SplitConfig, "kfold", "--kfold", type=int,
                 help="also divide the train+val chains into K leakage-free folds (0: none)")
    s.add_argument("--folds", help="write the folds table (id, split, fold, cluster, stratum) here")
    config_option(s)
    output_option(s, "output splits TSV")

    s = add_command(sub, "dataset", "manifest and datalist from components and splits",
                    "Gather the component folders (from 'cryosse crop' or 'crop-entry'; a folder of them "
                    "counts as its components) into the manifest (TSV, rejected components with their "
                    "reason) and a MONAI-style datalist (JSON).",
                    "dataset results/components/* --splits splits.tsv --manifest manifest.tsv "
                    "--datalist datalist.json", cmd_dataset)
    s.add_argument("components", nargs="+", help="component folders")
    s.add_argument("--splits", required=True, help="splits table from 'cryosse split'")
    s.add_argument("--manifest", required=True, help="output manifest TSV")
    s.add_argument("--datalist", required=True, help="output datalist JSON")

    s = add_command(sub, "dataset-report", "Markdown report of the data set with PNG figures",
                    "Entries, chains, components, class balance (voxels and residues), resolution "
                    "histogram, per-sample thumbnails with labels, rejected samples and why.",
                    "dataset-report --manifest manifest.tsv --splits splits.tsv -o report", cmd_dataset_report)
    s.add_argument("--manifest", required=True, help="manifest from 'cryosse dataset'")
    s.add_argument("--splits", required=True, help="splits table from 'cryosse split'")
    output_option(s, "output folder")

    s = add_command(sub, "training-set", "simulate whole-entry training maps on the working grid",
                    "For the entries of the training splits (--train-splits) and of the validation split: all "
                    "protein chains simulated at each resolution on the working grid and labelled; writes "
                    "OUTPUT/datalist.json.",
                    "training-set --structures structures.tsv --splits splits.tsv -o results/bundle/data",
                    cmd_training_set)
    s.add_argument("--structures", required=True, help="structures table (TSV)")
    s.add_argument("--splits", required=True, help="splits.tsv from 'cryosse split'")
    field_option(s, TrainingSetConfig, "resolutions_a", "--resolutions", type=floats(None, "resolutions"),
                 help="comma-separated resolutions in Å")
    field_option(s, TrainingSetConfig, "voxel_size_a", "--voxel-size", type=float, help="working voxel size in Å")
    field_option(s, TrainingSetConfig, "label_radius_a", "--label-radius", type=float, help="label radius in Å")
    alias(s, "--radius", dest="label_radius_a", type=float)
    field_option(s, TrainingSetConfig, "train_splits", "--train-splits", type=strings,
                 help="splits to train on: train, or train,test for a model judged elsewhere (the bundled "
                 "model); val is always the validation split")
    s.add_argument("--extra-structures", default="",
                   help="a second structures table of training-only entries; each is left out if a chain is "
                   "--max-identity or more identical to a chain of a split not trained on")
    field_option(s, TrainingSetConfig, "max_identity", "--max-identity", type=float,
                 help="sequence identity that makes an extra entry a homologue of a held-out chain")
    config_option(s)
    output_option(s, "output folder")
