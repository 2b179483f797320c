"""One source of every default: the stage settings dataclasses. The config schema's defaults,
the embedded config.yaml and the command line's defaults are held equal to them here, and the
id grammar of the schema to cryosse.ids."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from cryosse import ids
from cryosse.fetch import ArchiveConfig, EmdbQuery, FetchConfig
from cryosse.inference import PredictConfig
from cryosse.prep.components import ComponentConfig
from cryosse.prep.density import SimulateConfig
from cryosse.prep.experimental import QualityConfig
from cryosse.prep.labels import LabelConfig
from cryosse.prep.split import SplitConfig
from cryosse.prep.sse import SSEConfig
from cryosse.prep.trainingset import TrainingSetConfig
from cryosse.train.losses import LOSSES
from cryosse.train.loop import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())

#: schema key path -> (settings dataclass, field)
SOURCES = {
    "simulate.voxel_size_a": (SimulateConfig, "voxel_size_a"),
    "sse.engine": (SSEConfig, "engine"), "sse.classes.helix": (SSEConfig, "helix"),
    "sse.classes.sheet": (SSEConfig, "sheet"),
    **{f"emdb.{k}": (ArchiveConfig, k) for k in ("cache", "emdb_url", "pdb_url", "api_url")},
    **{f"emdb.{k}": (FetchConfig, k) for k in ("timeout_s", "retries", "per_host")},
    **{f"emdb.query.{k}": (EmdbQuery, k) for k in ("resolution_a", "released_after", "released_before",
                                                   "max_map_mb", "limit")},
    **{f"experimental.{k}": (QualityConfig, k) for k in ("voxel_size_a", "normalise", "resolution_a",
                                                         "min_correlation", "min_atoms_in_contour",
                                                         "min_coverage", "min_sse_fraction")},
    "labels.radius_a": (LabelConfig, "radius_a"),
    **{f"components.{k}": (ComponentConfig, k) for k in ("zone_radius_a", "margin_a", "multiple", "max_side")},
    **{f"split.{k}": (SplitConfig, k) for k in ("max_identity", "fractions", "seed", "kfold")},
    **{f"train.{f.name}": (TrainConfig, f.name) for f in dataclasses.fields(TrainConfig)
       if f.name in SCHEMA["properties"]["train"]["properties"]},
    "predict.max_memory_gb": (PredictConfig, "max_memory_gb"),
    **{f"bundle.{k}": (TrainingSetConfig, k) for k in ("resolutions_a", "voxel_size_a", "train_splits")},
}

#: config.yaml values that differ from the schema's default, and why
EMBEDDED_CHOICES = {
    "bundle.extra_structures": "the embedded default names the bundled model's extra training structures",
    "real_maps": "the embedded default names the project's real-map evaluation cases",
    # the shipped model's second stage (cryosse-sse-v1.2): off by default, on in the embedded recipe
    "bundle.finetune.steps": "the embedded recipe fine-tunes",
    "bundle.finetune.init": "from the members of the previous bundled model",
    "bundle.finetune.seed_offsets": "two fine-tune seeds per member, averaged",
    "bundle.finetune.realism_params": "with segmentation and membrane-belt realism",
}


def _schema_default(path: str):
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node["default"]


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def _default(cls, name):
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


@pytest.mark.parametrize("path", sorted(SOURCES))
def test_schema_default_is_the_dataclass_default(path):
    cls, name = SOURCES[path]
    assert _plain(_schema_default(path)) == _plain(_default(cls, name)), f"{path} vs {cls.__name__}.{name}"


def test_every_train_key_has_a_source_and_the_losses_are_the_papers():
    assert set(SCHEMA["properties"]["train"]["properties"]) <= {f.name for f in dataclasses.fields(TrainConfig)}
    assert _schema_default("compare_losses.losses") == list(LOSSES)
    bundle = set(SCHEMA["properties"]["bundle"]["properties"])
    recipe_only = {"resolutions_a", "seeds", "train_splits", "extra_structures", "calibrate", "finetune"}
    assert bundle - recipe_only <= {f.name for f in dataclasses.fields(TrainConfig)}
    finetune = set(SCHEMA["properties"]["bundle"]["properties"]["finetune"]["properties"])
    assert finetune - {"init", "seed_offsets"} <= {f.name for f in dataclasses.fields(TrainConfig)}


def _leaves(schema, doc, prefix=""):
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub and key != "fractions":
            yield from _leaves(sub, doc.get(key, {}) if isinstance(doc, dict) else {}, path + ".")
        elif isinstance(doc, dict) and key in doc:
            yield path, doc[key], sub.get("default")


def test_config_yaml_holds_the_defaults():
    """The embedded config.yaml writes out the defaults (so a reader sees them), except the
    listed choices of the embedded run."""
    doc = yaml.safe_load((ROOT / "config.yaml").read_text())
    seen = 0
    for path, value, default in _leaves(SCHEMA, doc):
        seen += 1
        if path in EMBEDDED_CHOICES:
            assert value != default, f"{path} is listed as a choice but equals the default"
            continue
        assert _plain(value) == _plain(default), f"config.yaml {path}: {value!r}, schema default {default!r}"
    assert seen > 40


@pytest.mark.parametrize("command,flag,cls,name", [
    ("train", "--steps", TrainConfig, "steps"), ("train", "--lr", TrainConfig, "lr"),
    ("crop", "--zone-radius", ComponentConfig, "zone_radius_a"), ("crop", "--label-radius", ComponentConfig,
                                                                    "label_radius_a"),
    ("label", "--label-radius", LabelConfig, "radius_a"), ("split", "--kfold", SplitConfig, "kfold"),
    ("split", "--max-identity", SplitConfig, "max_identity"), ("query-emdb", "--limit", EmdbQuery, "limit"),
    ("predict", "--max-memory-gb", PredictConfig, "max_memory_gb"),
    ("prepare-map", "--min-correlation", QualityConfig, "min_correlation"),
    ("training-set", "--resolutions", TrainingSetConfig, "resolutions_a"),
    ("fetch", "--retries", FetchConfig, "retries"),
])
def test_cli_shows_the_dataclass_default(command, flag, cls, name):
    from cryosse.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    action = next(a for a in sub._actions if flag in a.option_strings)
    d = _default(cls, name)
    shown = ",".join(map(str, d)) if isinstance(d, tuple) else str(d)
    assert f"(default: {shown})" in action.help


def test_every_option_has_help_and_every_command_an_example():
    from cryosse.cli import build_parser

    for name, sub in next(a for a in build_parser()._actions if a.dest == "command").choices.items():
        assert "example:\n  cryosse " + name in (sub.epilog or ""), name
        for a in sub._actions:
            assert a.help, (name, a.option_strings or a.dest)


def test_config_file_and_flags(tmp_path):
    """--config FILE gives a stage's settings; flags given override it; unknown keys are refused
    with one line naming the file."""
    from cryosse.cli import build_parser
    from cryosse.cli.options import settings
    from cryosse.errors import InputError

    f = tmp_path / "train.json"
    f.write_text('{"steps": 7, "lr": 0.01, "realism_ramp": [0.1, 0.3], "voxel_size_a": 2}')
    a = build_parser().parse_args(["train", "--datalist", "d.json", "--config", str(f), "--lr", "0.5", "-o", "x"])
    cfg = settings(a, TrainConfig)
    assert (cfg.steps, cfg.lr, cfg.realism_ramp, cfg.voxel_size_a) == (7, 0.5, (0.1, 0.3), 2.0)
    assert dataclasses.asdict(settings(build_parser().parse_args(["train", "--datalist", "d", "-o", "x"]),
                                       TrainConfig)) == dataclasses.asdict(TrainConfig())
    f.write_text("stepz: 3\n")
    with pytest.raises(InputError, match="unknown setting 'stepz'"):
        settings(build_parser().parse_args(["train", "--datalist", "d", "--config", str(f), "-o", "x"]), TrainConfig)


def test_workflow_stage_configs_are_accepted_by_their_commands(tmp_path):
    """Every results/config/{stage}.json the workflow writes (from the default config) has only
    keys of the settings its command reads."""
    from cryosse.workflow import STAGES, stage_configs

    def defaults(schema):
        out = {}
        for k, sub in schema.get("properties", {}).items():
            if sub.get("type") == "object" and "properties" in sub and k != "fractions":
                out[k] = defaults(sub)
            else:
                out[k] = sub.get("default")
        return out

    config = defaults(SCHEMA)
    assert set(stage_configs(config)) == set(STAGES) - {"bundle_finetune"}  # only with a fine-tune
    config["bundle"]["finetune"].update(steps=1200, realism_params={"segment_p": 0.5, "cut_keep": [0.3, 0.7]})
    cfgs = stage_configs(config)
    assert set(cfgs) == set(STAGES)
    reads = {"simulate": [SimulateConfig], "sse": [SSEConfig], "labels": [LabelConfig],
             "components": [ComponentConfig], "fetch": [FetchConfig, ArchiveConfig],
             "query": [EmdbQuery, FetchConfig, ArchiveConfig], "experimental": [QualityConfig],
             "split": [SplitConfig], "train": [TrainConfig], "losses": [TrainConfig],
             "training_set": [TrainingSetConfig], "bundle_train": [TrainConfig], "bundle_finetune": [TrainConfig],
             "predict": [PredictConfig]}
    import argparse
    import json

    from cryosse.cli.options import settings

    for stage, values in cfgs.items():
        known = {f.name for c in reads[stage] for f in dataclasses.fields(c)} | {"max_memory_gb"}  # the budget
        assert set(values) <= known, (stage, set(values) - known)
        # read back as the command reads it: every value of the default's type
        f = tmp_path / f"{stage}.json"
        f.write_text(json.dumps(values))
        got = settings(argparse.Namespace(config=str(f), command=stage), *reads[stage])
        for obj in (got if isinstance(got, tuple) else (got,)):
            for field in dataclasses.fields(obj):
                if field.name in values:
                    d, v = _default(type(obj), field.name), getattr(obj, field.name)
                    if d is not None:
                        assert type(v) is type(d), (stage, field.name, v, d)


SCHEMA_IDS = {  # schema key path (items or field) -> the grammar's pattern
    "entries.items": ids.ENTRY, "emdb.entries.items.emdb": ids.EMDB_CONFIG, "emdb.entries.items.pdb": ids.PDB,
    "emdb.entries.items.chains.items": ids.CHAIN, "predict.maps.items.id": ids.MAP,
    "predict.maps.items.chain": ids.CHAIN,
}


@pytest.mark.parametrize("path", sorted(SCHEMA_IDS))
def test_schema_ids_are_the_grammar(path):
    node = SCHEMA
    for part in path.split("."):
        node = node["items"] if part == "items" else node["properties"][part]
    assert node["pattern"] == f"^{SCHEMA_IDS[path]}$"


def test_wildcard_constraints_use_the_grammar():
    text = (ROOT / "workflow/rules/common.smk").read_text()
    block = text[text.index("wildcard_constraints:"):text.index("def stage_config")]
    for name in ("ENTRY", "EMDB", "CHAIN", "MAP"):
        assert f"ids.{name}" in block, name
    assert not any(c in block for c in ("[A-Za-z0-9]", "[0-9]{4")), "a pattern written out again"


def test_every_query_key_is_read():
    """Each key of the schema's emdb.query section is a field of the query's settings class
    (or the switch that turns the query on): a key nothing reads would be ignored silently
    (helix and sheet lists, copied from sse.classes, once were)."""
    keys = {f"emdb.query.{k}" for k in SCHEMA["properties"]["emdb"]["properties"]["query"]["properties"]}
    assert keys - {"emdb.query.enabled"} <= set(SOURCES), sorted(keys - set(SOURCES))
