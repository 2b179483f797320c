"""What the Snakefile calls while it plans: the stage settings each rule passes to its command
(one JSON file per stage under ``results/config/``), and the one artifact layout that simulated
and experimental entries share. No side effects.

Layout (``entry`` is a structures-table entry or ``EMD-NNNN``; a sample is ``<entry>_<chain>``)::

    results/config/{stage}.json                the settings each stage ran with
    results/entries/{entry}/                   map.mrc, sse.tsv (+ labels.mrc: simulated;
                                               + model.cif, quality.json: experimental)
    results/fetch/{EMD-NNNN}.json              download records of experimental entries
    results/components/{entry}/{sample}/       density.mrc, labels.mrc, meta.json
    results/predict/test/{sample}/             predictions of the test split + scores.json
    results/predict/maps/{map_id}/             configured maps (predict.maps)
"""
from __future__ import annotations

import re

from .ids import EMDB
from .prep.structures import (Entry, ExperimentalEntry, experimental_entries, load_structures, predict_maps,
                              resolution_for, sample_id)

__all__ = ["Layout", "stage_configs", "check_config", "finetune_members", "is_experimental", "load_structures", "experimental_entries",
           "predict_maps", "resolution_for", "sample_id", "Entry", "ExperimentalEntry", "STAGES"]

_EMDB = re.compile(rf"^{EMDB}$")

#: The stages whose settings the workflow writes to ``results/config/{stage}.json``.
STAGES = ("simulate", "sse", "labels", "components", "fetch", "query", "experimental", "split", "train",
          "losses", "training_set", "bundle_train", "bundle_finetune", "predict")

_TRAIN_KEYS = ("preset", "loss", "norm", "realism", "realism_ramp", "voxel_size_a", "patch", "batch", "steps",
               "lr", "val_every")


def is_experimental(entry: str) -> bool:
    return _EMDB.match(entry) is not None


def stage_configs(config: dict) -> dict[str, dict]:
    """Each stage's settings, as its command's ``--config`` takes them (field names of the
    stage's settings dataclass), from the validated workflow config. ``bundle_finetune`` only
    when the bundle recipe has a fine-tune (``bundle.finetune.steps`` > 0)."""
    c, emdb, q = config["components"], config["emdb"], config["emdb"]["query"]
    train, bundle, losses = config["train"], config["bundle"], config["compare_losses"]
    ft = bundle["finetune"]
    radius = config["labels"]["radius_a"]
    mem = {"max_memory_gb": config["max_memory_gb"]}  # the preparation jobs' budget (cryosse.io.budget)
    out = {
        "simulate": {"voxel_size_a": config["simulate"]["voxel_size_a"], **mem},
        "sse": {"engine": config["sse"]["engine"], "helix": config["sse"]["classes"]["helix"],
                "sheet": config["sse"]["classes"]["sheet"]},
        "labels": {"radius_a": radius, **mem},
        "components": {**c, "label_radius_a": radius, **mem},
        "fetch": {**{k: emdb[k] for k in ("cache", "mirror", "emdb_url", "pdb_url", "timeout_s", "retries",
                                          "per_host", "max_file_mb")}, "max_map_mb": q["max_map_mb"]},
        "query": {"api_url": emdb["api_url"], "timeout_s": emdb["timeout_s"], "retries": emdb["retries"],
                  **{k: q[k] for k in ("resolution_a", "released_after", "released_before", "max_map_mb", "limit")}},
        "experimental": {**config["experimental"], "zone_radius_a": c["zone_radius_a"], **mem},
        "split": dict(config["split"]),
        "train": dict(train),
        # the loss comparison: one seed and budget for every loss (the loss comes from the job)
        "losses": {**{k: v for k, v in train.items() if k not in ("patience", "max_minutes", "loss")},
                   "steps": losses["steps"], "seed": losses["seed"]},
        "training_set": {"resolutions_a": bundle["resolutions_a"], "voxel_size_a": bundle["voxel_size_a"],
                         "label_radius_a": radius, "train_splits": bundle["train_splits"],
                         "max_identity": config["split"]["max_identity"]},
        # the seed comes from the job; the config writes the ramp as "start,full"
        "bundle_train": {**{k: bundle[k] for k in _TRAIN_KEYS}, "realism_ramp": _ramp(bundle["realism_ramp"]),
                         **({"realism_params": bundle["realism_params"]} if bundle["realism_params"] else {})},
        "predict": {"max_memory_gb": config["predict"]["max_memory_gb"]},
    }
    if ft["steps"]:  # the second stage: the same run, its own steps, rate, ramp and realism
        out["bundle_finetune"] = {**{k: bundle[k] for k in _TRAIN_KEYS}, "realism_ramp": _ramp(ft["realism_ramp"]),
                                  **{k: ft[k] for k in ("steps", "lr", "val_every", "realism_params")}}
    return out


def _ramp(text) -> list[float]:
    """The config's realism ramp, written "start,full", as the run's two fractions."""
    return [float(v) for v in str(text).split(",")]


#: the settings classes each stage's command reads, and the config section it comes from
_READS = {"simulate": (("SimulateConfig",), "simulate"), "sse": (("SSEConfig",), "sse"),
          "labels": (("LabelConfig",), "labels"),
          "components": (("ComponentConfig",), "components"), "fetch": (("FetchConfig", "ArchiveConfig"), "emdb"),
          "query": (("EmdbQuery", "FetchConfig", "ArchiveConfig"), "emdb.query"),
          "experimental": (("QualityConfig",), "experimental"), "split": (("SplitConfig",), "split"),
          "train": (("TrainConfig",), "train"), "losses": (("TrainConfig",), "compare_losses"),
          "training_set": (("TrainingSetConfig",), "bundle"), "bundle_train": (("TrainConfig",), "bundle"),
          "bundle_finetune": (("TrainConfig",), "bundle.finetune"),
          "predict": (("PredictConfig",), "predict")}


def _strings(node, key=""):
    """(dotted key, value) of every string in a config."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for k, v in enumerate(node):
            yield from _strings(v, f"{key}[{k}]")
    elif isinstance(node, str):
        yield key, node


def check_config(config: dict) -> None:
    """The checks the schema cannot make, by the rules the command line uses
    (:mod:`cryosse.io.rules`): ranges and cross-field rules (low < high, fractions summing to
    more than 0) of every stage's settings, URLs, no control characters in any string (ids,
    paths), and the inputs that must exist. Raises :class:`~cryosse.errors.InputError`
    naming the config key."""
    from .errors import InputError
    from .io import rules

    for key, value in _strings(config):
        if not re.fullmatch(rules.PATH, value):
            raise InputError(f"config {key}", f"has control characters: {value!r}")
    lo, hi = config["simulate"]["resolution_a"]
    if not lo < hi:
        raise InputError("config simulate.resolution_a", f"low must be below high, got {lo:g}, {hi:g}")
    for stage, values in stage_configs(config).items():
        names, section = _READS[stage]
        for name in names:
            bad = rules.problems_in(name, values)
            if bad:
                raise InputError(f"config {section}.{bad[0][0]}", bad[0][1])
    must_exist = [("structures", config["structures"]),
                  ("bundle.extra_structures", config["bundle"]["extra_structures"]),
                  ("bundle.finetune.init", config["bundle"]["finetune"]["init"])]
    if not config["emdb"]["query"]["enabled"]:
        must_exist.append(("emdb.table", config["emdb"]["table"]))
    for k, m in enumerate(config["predict"]["maps"]):
        must_exist += [(f"predict.maps[{k}].path", m["path"]), (f"predict.maps[{k}].model", m.get("model", ""))]
    for key, path in must_exist:
        rules.check_path(f"config {key}", path, must_exist=True)
    for key, path in (("emdb.cache", config["emdb"]["cache"]), ("predict.checkpoint", config["predict"]["checkpoint"]),
                      ("real_maps", config["real_maps"])):
        rules.check_path(f"config {key}", path)
    checkpoint = config["predict"]["checkpoint"]  # one under results/ is made by the workflow
    rules.check_path("config predict.checkpoint", checkpoint, must_exist=not checkpoint.startswith("results/"))


def finetune_members(config: dict) -> dict[int, int | None]:
    """Seed -> the member of ``bundle.finetune.init`` its fine-tune starts from: the seed's place
    in ``bundle.seeds`` when the init is an ensemble, None (the one network, for every seed) when
    it is a single network; empty when there is no fine-tune or it starts from the seeds' own
    runs. Reads the init's model card (``weights_only=True``); an ensemble with fewer members than
    ``bundle.seeds`` is an :class:`~cryosse.errors.InputError` naming the config key."""
    from .errors import InputError

    bundle = config["bundle"]
    ft, seeds = bundle["finetune"], list(bundle["seeds"])
    if not ft["steps"] or not ft["init"]:
        return {}
    from .net.checkpoint import load_checkpoint

    _, card, _ = load_checkpoint(ft["init"])
    arch = card["arch"]
    if arch.get("type") != "ensemble":
        return {s: None for s in seeds}
    n = len(arch["members"])
    if len(seeds) > n:
        raise InputError("config bundle.finetune.init", f"{ft['init']} is an ensemble of {n} networks and "
                                                        f"bundle.seeds has {len(seeds)}: one member per seed")
    return {s: k for k, s in enumerate(seeds)}


class Layout:
    """Paths of every entry's artifacts, the same functions for simulated entries (a
    structures table) and experimental ones (EMD-NNNN, prepared into one folder)."""

    #: the folder of every entry's folder
    ENTRIES = "results/entries"

    def __init__(self, structures: dict[str, Entry]):
        self.structures = structures

    @classmethod
    def entry_dir(cls, entry: str) -> str:
        return f"{cls.ENTRIES}/{entry}"

    @staticmethod
    def entry_of(sample: str) -> str:
        return sample.rsplit("_", 1)[0]

    def map(self, entry: str) -> str:
        return f"{self.entry_dir(entry)}/map.mrc"

    def sse(self, entry: str) -> str:
        return f"{self.entry_dir(entry)}/sse.tsv"

    def model(self, entry: str) -> str:
        """An experimental entry's model as prepared; a simulated entry's from its table."""
        return f"{self.entry_dir(entry)}/model.cif" if is_experimental(entry) else self.structures[entry].path

    def entry_inputs(self, entry: str) -> list[str]:
        """What a job that reads an entry's map, model and DSSP depends on: the prepared folder
        of an experimental entry (one directory output), the files of a simulated one."""
        if is_experimental(entry):
            return [self.entry_dir(entry)]
        return [self.map(entry), self.sse(entry), self.model(entry)]

    @staticmethod
    def components(entry: str) -> str:
        return f"results/components/{entry}"

    def component(self, sample: str) -> str:
        return f"{self.components(self.entry_of(sample))}/{sample}"
