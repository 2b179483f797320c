"""Hostile and broken input: configs and file names with shell metacharacters, nonsense values,
absurd grids, a full disk, permissions, out of memory, broken checkpoints and the leftovers of
killed jobs. Each case: exit status non-zero, one line naming the culprit, no marker file, nothing
half-written left, memory bounded. (Hostile mirrors and downloads: tests/test_fetch.py.)"""
from __future__ import annotations

import ast
import contextlib
import errno
import gzip
import json
import os
import resource
import shutil
import signal
import string
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from cryosse.cli import main
from cryosse.io import Map, write_map

ROOT = Path(__file__).resolve().parents[1]
STRUCTURES = ROOT / "src/cryosse/data/structures"
MODEL = STRUCTURES / "1a8o.pdb.gz"
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
GB = 1024 ** 3


def run_cli(*args, limit_gb: float | None = None, cwd=None) -> subprocess.CompletedProcess:
    """``cryosse ARGS`` in a fresh process, its address space capped at ``limit_gb``."""
    def cap():
        if limit_gb:
            n = int(limit_gb * GB)
            resource.setrlimit(resource.RLIMIT_AS, (n, n))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "cryosse", *map(str, args)], capture_output=True, text=True,
                          preexec_fn=cap, env=env, cwd=cwd, timeout=300)


def one_error_line(r) -> str:
    """The run failed with exactly one line on stderr and no traceback; that line."""
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    return lines[0]


def in_process_error(capsys, *args) -> str:
    code = main([str(a) for a in args])
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert code != 0 and len(err) == 1, err
    return err[0]


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".cryosse-tmp") or p.name.endswith(".part")]


# ----------------------------------------------------------------------------- 1. quoting


def shell_lines(smk: Path):
    """(rule, shell string) of every ``shell:`` directive of a Snakemake file."""
    lines = smk.read_text().splitlines()
    rule = "?"
    for k, line in enumerate(lines):
        head = line.strip()
        if head.startswith(("rule ", "checkpoint ")):
            rule = head.split()[1].rstrip(":")
        if head == "shell:":
            indent = len(line) - len(line.lstrip())
            body = []
            for nxt in lines[k + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                body.append(nxt.strip())
            yield rule, ast.literal_eval("(" + " ".join(body).rstrip(",") + ")")


def unquoted(shell: str) -> list[str]:
    """Placeholders of a shell line that are not quoted with ``:q`` ({threads} is the rule's
    own integer)."""
    return [name for _, name, spec, _ in string.Formatter().parse(shell)
            if name is not None and spec != "q" and name != "threads"]


def test_the_quoting_lint_catches_unquoted_values():
    assert unquoted("cryosse x {input} -o {output:q} {params.a} {wildcards.e:q} 2> {log}") == [
        "input", "params.a", "log"]
    assert unquoted("printf '%s\\n' {params.s:q} --threads {threads} && echo {{literal}}") == []


def test_every_value_in_every_shell_line_is_quoted():
    seen = 0
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for rule, shell in shell_lines(smk):
            seen += 1
            assert not unquoted(shell), f"{smk.name} rule {rule}: unquoted {unquoted(shell)}"
    assert seen >= 20


# ----------------------------------------------------------------------------- 1./5. one set of rules


def _schema_node(path: str):
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node.get("items", node) if node.get("type") == "array" else node


def _schema_rules(node) -> set:
    ops = {"exclusiveMinimum": ">", "minimum": ">=", "maximum": "<=", "exclusiveMaximum": "<"}
    return {(op, node[k]) for k, op in ops.items() if k in node}


def test_schema_bounds_are_the_rules():
    """The config schema's bounds are the rules the CLI checks (cryosse.io.rules), key by key."""
    from test_defaults import SOURCES

    from cryosse.io import rules

    checked = 0
    for path, (cls, name) in SOURCES.items():
        mine = set(rules.RULES.get(cls.__name__, {}).get(name, ()))
        theirs = _schema_rules(_schema_node(path))
        if mine or theirs:
            checked += 1
            assert mine == theirs, f"{path}: schema {theirs} vs rules {mine}"
    assert checked > 30
    for key in ("emdb_url", "pdb_url", "api_url"):
        assert SCHEMA["properties"]["emdb"]["properties"][key]["pattern"] == f"^{rules.URL}$"
    for path in ("structures", "emdb.table", "emdb.cache", "bundle.extra_structures", "bundle.finetune.init", "real_maps",
                 "predict.checkpoint"):
        assert _schema_node(path)["pattern"] == f"^{rules.PATH}$", path


URLS_BAD = ["https://a\tb.org/x", "https://ftp.ebi.ac.uk/$(touch MARKER)", "http://x/`id`", "http://x/a b",
            "ftp://x.org/a", "https:///nohost", "http://x/'q'", "http://x/a;id", "javascript:alert(1)",
            "https://x.org/\n"]
URLS_GOOD = ["https://ftp.ebi.ac.uk/pub/databases/emdb", "http://127.0.0.1:8000/emdb", "file:///data/mirror/emdb",
             "https://files.wwpdb.org/pub/pdb/data/structures/divided/mmCIF"]


@pytest.mark.parametrize("url", URLS_BAD)
def test_bad_urls_fail_schema_and_rules(url):
    import jsonschema

    from cryosse.io import rules

    assert rules.url_problem(url)
    schema = {"type": "string", "pattern": SCHEMA["properties"]["emdb"]["properties"]["emdb_url"]["pattern"]}
    if not url.endswith("\n"):  # JSON Schema's "$" lets a final newline through; the rules do not
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(url, schema)


@pytest.mark.parametrize("url", URLS_GOOD)
def test_good_urls_pass(url):
    from cryosse.io import rules

    assert rules.url_problem(url) is None


def _config(**changes) -> dict:
    """A validated workflow config (schema defaults filled in) with ``changes`` (dotted keys)."""
    from snakemake.utils import validate

    cfg = {"structures": str(STRUCTURES / "structures.tsv")}
    for key, value in changes.items():
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return cfg


@pytest.mark.parametrize("key,value,culprit", [
    ("simulate.resolution_a", [10, 5], "simulate.resolution_a"),
    ("experimental.resolution_a", [10.0, 5.0], "experimental.resolution_a"),
    ("emdb.query.resolution_a", [8, 8], "emdb.query.resolution_a"),
    ("split.fractions", {"train": 0, "val": 0, "test": 0}, "split.fractions"),
    ("bundle.realism_ramp", "0.5,0.2", "bundle.realism_ramp"),
    ("emdb.emdb_url", "https://x.org/\n", "emdb.emdb_url"),
    ("structures", str(STRUCTURES / "no-such.tsv"), "structures"),
    ("predict.maps", [{"path": "/no/such map.mrc"}], "predict.maps[0].path"),
    ("predict.checkpoint", "-rf.pt", "predict.checkpoint"),
    ("entries", ["1a8o\n"], "entries[0]"),
    ("emdb.entries", [{"emdb": "5168\n"}], "emdb.entries[0].emdb"),
    ("bundle.realism_ramp", "0.2,1.5", "bundle.realism_ramp"),
])
def test_workflow_config_cross_field_rules(key, value, culprit):
    from cryosse.errors import InputError
    from cryosse.workflow import check_config

    with pytest.raises(InputError, match=f"config {culprit.replace('[', '.').replace(']', '.')}"):
        check_config(_config(**{key: value}))


def test_default_config_passes_check_config():
    from cryosse.workflow import check_config

    check_config(_config())


@pytest.mark.parametrize("key,value", [
    ("emdb.emdb_url", "https://a\tb.org"), ("emdb.api_url", "http://x/$(touch MARKER)"),
    ("emdb.cache", "cache\tdir"), ("predict.maps", [{"path": "m\n.mrc"}]), ("structures", "s\x1b.tsv"),
])
def test_schema_refuses_control_characters_and_metacharacters(key, value):
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError):
        _config(**{key: value})


def test_snakemake_refuses_a_reversed_range_before_any_job(tmp_path):
    marker = tmp_path / "MARKER"
    cfg = {"structures": str(STRUCTURES / "structures.tsv"), "simulate": {"resolution_a": [10, 5]},
           "emdb": {"cache": f"c$(touch {marker})"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d",
                        str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "-n"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}"))
    assert r.returncode != 0 and "simulate.resolution_a" in r.stdout + r.stderr
    assert "low must be below high" in r.stdout + r.stderr and not marker.exists()


# ----------------------------------------------------------------------------- 5. the CLI's rules


@pytest.mark.parametrize("args,flag", [
    (["label", "m.pdb", "x.mrc", "--label-radius", "-1", "-o", "{out}"], "--label-radius"),
    (["label", "m.pdb", "x.mrc", "--radius", "-1", "-o", "{out}"], "--label-radius"),
    (["crop", "m.pdb", "x.mrc", "--chain", "A", "--multiple", "0", "-o", "{out}"], "--multiple"),
    (["crop", "m.pdb", "x.mrc", "--chain", "A", "--zone-radius", "-3", "-o", "{out}"], "--zone-radius"),
    (["prepare-map", "--map", "x.mrc", "--model", "m.pdb", "--voxel-size", "0", "-o", "{out}"], "--voxel-size"),
    (["prepare-map", "--map", "x.mrc", "--model", "m.pdb", "--resolution-range", "10", "5", "-o", "{out}"],
     "--resolution-range"),
    (["fetch", "entry", "5168", "--retries", "-1", "--cache", "{out}"], "--retries"),
    (["fetch", "entry", "5168", "--emdb-url", "https://a\tb.org", "--cache", "{out}"], "--emdb-url"),
    (["fetch", "entry", "5168", "--pdb-url", "http://x/$(touch {out}/MARKER)", "--cache", "{out}"], "--pdb-url"),
    (["query-emdb", "--resolution-range", "10", "5", "-o", "{out}"], "--resolution-range"),
    (["query-emdb", "--limit", "0", "-o", "{out}"], "--limit"),
    (["simulate", "m.pdb", "--resolution", "0", "-o", "{out}"], "--resolution"),
    (["simulate", "m.pdb", "--voxel-size", "nan", "-o", "{out}"], "--voxel-size"),
    (["predict", "x.mrc", "--tile", "-1", "-o", "{out}"], "--tile"),
    (["predict", "x.mrc", "--overlap", "1", "-o", "{out}"], "--overlap"),
    (["predict", "x.mrc", "--max-memory-gb", "0", "-o", "{out}"], "--max-memory-gb"),
    (["predict", "x.mrc", "--device", "tpu", "-o", "{out}"], "--device"),
    (["train", "--datalist", "d.json", "--steps", "0", "-o", "{out}"], "--steps"),
    (["split", "--prepared", "p", "--max-identity", "0", "-o", "{out}"], "--max-identity"),
])
def test_nonsense_flags_are_refused_naming_the_flag(tmp_path, capsys, args, flag):
    out = tmp_path / "out"
    line = in_process_error(capsys, *[a.replace("{out}", str(out)) for a in args])
    assert line.startswith("cryosse: error: " + flag + ":"), line
    assert not out.exists() or not any(out.iterdir())


def test_a_config_file_value_names_the_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "split.json"
    cfg.write_text(json.dumps({"fractions": {"train": 0, "val": 0, "test": 0}}))
    line = in_process_error(capsys, "split", "--prepared", "p", "--config", cfg, "-o", tmp_path / "s.tsv")
    assert f"{cfg}: fractions: must sum to more than 0" in line


@pytest.mark.parametrize("params,problem", [
    ({"segmnt_p": 0.5}, "realism_params.segmnt_p: not a realism setting (did you mean segment_p?)"),
    ({"belt_p": -0.1}, "realism_params.belt_p: is a probability: must lie in [0, 1], got -0.1"),
    ({"belt_reach_a": [20, 8]}, "realism_params.belt_reach_a: low must not be above high, got 20, 8"),
    ({"cut_keep": 0.5}, "realism_params.cut_keep: must be a range [low, high] of two numbers, got 0.5"),
    ({"mask_zone_a": "wide"}, "realism_params.mask_zone_a: must be a number, got 'wide'"),
    ([0.5], "realism_params: must map realism settings to values, got list"),
])
def test_realism_params_in_a_config_file_name_the_file_and_key(tmp_path, capsys, params, problem):
    """A training config's realism_params (RealismConfig fields) are checked before any data is
    read: one line naming the file, the key and the problem, nothing written."""
    cfg = tmp_path / "train.json"
    cfg.write_text(json.dumps({"realism": True, "realism_params": params}))
    out = tmp_path / "out"
    line = in_process_error(capsys, "train", "--datalist", tmp_path / "absent.json", "--config", cfg, "-o", out)
    assert line == f"cryosse: error: {cfg}: {problem}", line
    assert not out.exists()


# ----------------------------------------------------------------------------- 1. file names


HOSTILE_NAME = "my model é's \"$(touch MARKER)\" `touch MARKER2`;x.pdb.gz"


def test_hostile_file_names_work_on_the_command_line(tmp_path):
    """Spaces, quotes, unicode and shell syntax in names are only names."""
    d = tmp_path / "dir with space ü"
    d.mkdir()
    model = d / HOSTILE_NAME
    shutil.copy(MODEL, model)
    out = d / "out $(touch MARKER).mrc"
    r = run_cli("simulate", model, "--resolution", "8", "--voxel-size", "2", "-o", out, cwd=d)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and not list(d.glob("MARKER*")) and not leftovers(d)


def test_structures_table_refuses_control_characters_and_accepts_odd_names(tmp_path):
    from cryosse.errors import InputError
    from cryosse.workflow import load_structures

    shutil.copy(MODEL, tmp_path / HOSTILE_NAME)
    table = tmp_path / "structures.tsv"
    table.write_text(f"entry\tfile\tchains\tpdb_id\nodd\t{HOSTILE_NAME}\tA\t1a8o\n")
    e, = load_structures(table)
    assert Path(e.path).name == HOSTILE_NAME
    table.write_text('entry\tfile\tchains\tpdb_id\nodd\t"a\nb.pdb"\tA\t1a8o\n')
    with pytest.raises(InputError, match="control characters"):
        load_structures(table)
    table.write_text("entry\tfile\tchains\tpdb_id\nodd\t../x.pdb\tA\t1a8o\n")
    with pytest.raises(InputError, match="outside the table's folder"):
        load_structures(table)


@pytest.mark.slow
def test_workflow_runs_with_hostile_file_names(tmp_path):
    """A structures table whose model file name has spaces, quotes, unicode, $(…) and backticks,
    in a run folder with a space: simulate, DSSP, label and crop run, and no command is
    injected."""
    run = tmp_path / "run dir ä"
    data = run / "data 'x' $(touch MARKER)"
    data.mkdir(parents=True)
    shutil.copy(MODEL, data / HOSTILE_NAME)
    (data / "structures.tsv").write_text(f"entry\tfile\tchains\tpdb_id\nodd\t{HOSTILE_NAME}\tA\t1a8o\n")
    cfg = {"structures": str(data / "structures.tsv"), "simulate": {"resolution_a": [8.0, 9.0],
                                                                    "voxel_size_a": 2.0}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    bindir = Path(sys.executable).parent
    r = subprocess.run([str(bindir / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(run), "--configfile",
                        str(run / "config.yaml"), "--cores", "1", "results/entries/odd/labels.mrc",
                        "results/components/odd"], capture_output=True, text=True, timeout=600, cwd=run,
                       env=dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT / "src")))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (run / "results/entries/odd/labels.mrc").is_file()
    assert (run / "results/components/odd/odd_A/meta.json").is_file()
    assert not [p for p in tmp_path.rglob("MARKER*")], "a command was injected"
    assert not leftovers(run / "results")


# ----------------------------------------------------------------------------- 3. memory plans


def _far_model(path: Path) -> Path:
    """1a8o with one atom moved 9000 Å away: an absurd grid."""
    import gemmi

    st = gemmi.read_structure(str(MODEL))
    st[0][0][0][0].pos = gemmi.Position(9000, 9000, 9000)
    st.write_pdb(str(path))
    return path


def _claims(path: Path, n: int) -> Path:
    """A map file whose header claims n^3 float32 voxels (its data is 4^3)."""
    write_map(Map(np.zeros((4, 4, 4), np.float32), (1.0,) * 3), path)
    raw = bytearray(path.read_bytes())
    raw[0:12] = np.array([n, n, n], "<i4").tobytes()
    raw[28:40] = np.array([n, n, n], "<i4").tobytes()  # mx, my, mz
    raw[40:52] = np.array([n, n, n], "<f4").tobytes()  # cell: 1 Å voxels
    path.write_bytes(bytes(raw))
    return path


def test_an_absurd_model_extent_is_refused_before_allocating(tmp_path):
    model = _far_model(tmp_path / "far.pdb")
    out = tmp_path / "far.mrc"
    r = run_cli("simulate", model, "--resolution", "6", "-o", out, limit_gb=1.5)
    line = one_error_line(r)
    assert f"{model}: needs ~" in line and "budget 8 GB" in line, line
    assert not out.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("command", ["label", "crop", "crop-entry", "prepare-map"])
def test_a_map_header_over_the_budget_is_refused_before_reading(tmp_path, command):
    big = _claims(tmp_path / "big.mrc", 3000)  # 3000^3 float32: ~100 GB
    out = tmp_path / "out"
    args = {"label": ["label", MODEL, big, "-o", out],
            "crop": ["crop", MODEL, big, "--chain", "A", "-o", out],
            "crop-entry": ["crop-entry", "--map", big, "--model", MODEL, "--chain", "A", "--entry", "x", "-o", out],
            "prepare-map": ["prepare-map", "--map", big, "--model", MODEL, "--resolution", "6", "-o", out]}[command]
    r = run_cli(*args, limit_gb=1.5)
    line = one_error_line(r)
    assert f"{big}: needs ~" in line and "budget 8 GB" in line, line
    assert not out.exists()


def test_a_harvested_map_over_the_budget_is_a_rejection_and_the_harvest_goes_on(tmp_path):
    """prepare-map on a fetch record (one entry of a harvest) whose map's header is over the
    budget: the entry is rejected with the plan's numbers in quality.json, exit 0, nothing read;
    the same map named by --map stays an error (tested above)."""
    import json

    big = _claims(tmp_path / "big.mrc", 3000)
    record = tmp_path / "rec.json"
    record.write_text(json.dumps({"emdb": "EMD-9999", "map": str(big), "model": str(MODEL), "pdb": "1abc",
                                  "resolution_a": 6.0, "contour_level": 0.1, "status": "ok"}))
    out = tmp_path / "entry"
    r = run_cli("prepare-map", "--record", record, "--entry", "EMD-9999", "-o", out, limit_gb=1.5)
    assert r.returncode == 0, r.stderr
    q = json.loads((out / "quality.json").read_text())
    assert q["status"] == "rejected" and "over the memory budget" in q["reason"]
    assert "needs ~" in q["reason"] and "budget 8 GB" in q["reason"] and str(big) in q["reason"]
    assert not (out / "map.mrc").exists() and "source_grid" not in q


def test_a_small_budget_refuses_a_real_map_naming_both_numbers(tmp_path, capsys):
    m = tmp_path / "m.mrc"
    write_map(Map(np.zeros((64, 64, 64), np.float32), (1.0,) * 3), m)
    line = in_process_error(capsys, "label", MODEL, m, "--max-memory-gb", "0.001", "-o", tmp_path / "l.mrc")
    need = float(line.split("needs ~")[1].split()[0])
    assert 64 ** 3 * 8 / GB < need < 64 ** 3 * 100 / GB and "budget 0.001 GB" in line


def _peak(args) -> int:
    """The peak resident bytes of ``cryosse ARGS`` run in a fresh process (which must succeed)."""
    # VmHWM, the peak of this process's own memory map: ru_maxrss would also count the parent's
    # resident set at the fork (a pytest process grown large late in the suite hid every growth)
    code = ("import sys; from cryosse.cli import main; c = main(sys.argv[1:]); "
            "print(next(int(x.split()[1]) for x in open('/proc/self/status') if x.startswith('VmHWM:')), c)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env)
    rss, code = r.stdout.split()
    assert code == "0", r.stderr
    return int(rss) * 1024


def _peak_and_estimate(args) -> tuple[int, float]:
    """(peak RSS bytes of ``cryosse ARGS``, its plan's estimate in bytes from the refusal with a
    tiny budget)."""
    e = run_cli(*args, "--max-memory-gb", "1e-9")
    return _peak(args), float(one_error_line(e).split("needs ~")[1].split()[0]) * GB


@pytest.mark.parametrize("command", ["simulate", "simulate-realism", "label", "crop", "prepare-map"])
def test_the_estimates_bound_the_measured_peaks(tmp_path, command):
    """Between a small and a larger grid, the measured peak grows less than the estimate (the
    interpreter's own memory cancels out)."""
    from cryosse.io import read_model
    from cryosse.prep.density import simulate_density

    sim = simulate_density(read_model(MODEL), 6.0, 1.0, 5.0)
    growth = []
    for n in (72, 144):
        m = tmp_path / f"m{n}.mrc"
        data = np.zeros((n, n, n), np.float32)
        k = [min(a, n) for a in sim.data.shape]
        data[:k[0], :k[1], :k[2]] = sim.data[:k[0], :k[1], :k[2]]
        write_map(Map(data, (1.0,) * 3, sim.origin_a), m)
        sim_args = ["simulate", MODEL, "--resolution", "6", "--padding", n / 2 - 20, "-o", tmp_path / "s.mrc"]
        args = {"simulate": sim_args, "simulate-realism": sim_args + ["--realism-seed", "1"],
                "label": ["label", MODEL, m, "-o", tmp_path / "l.mrc"],
                "crop": ["crop", MODEL, m, "--chain", "A", "-o", tmp_path / "c"],
                "prepare-map": ["prepare-map", "--map", m, "--model", MODEL, "--resolution", "6", "--contour", "0.1",
                                "--voxel-size", "0.7", "-o", tmp_path / "p"]}[command]
        growth.append(_peak_and_estimate(args))
    measured, estimated = growth[1][0] - growth[0][0], growth[1][1] - growth[0][1]
    print(f"{command}: peak grew {measured / 1e6:.0f} MB, estimate {estimated / 1e6:.0f} MB")
    # (crop's growth is small, ~14 MB, and RSS noise can hide it: only the bound is asserted)
    assert measured < estimated and estimated > 0, (command, measured / 1e6, estimated / 1e6)


def test_predict_checks_the_header_and_the_model_extent_first(tmp_path):
    big = _claims(tmp_path / "big.mrc", 3000)
    r = run_cli("predict", big, "-o", tmp_path / "p", limit_gb=2.5)
    line = one_error_line(r)
    assert f"{big}: needs ~" in line and "budget 8 GB" in line, line
    small = tmp_path / "small.mrc"
    write_map(Map(np.zeros((16, 16, 16), np.float32), (2.0,) * 3), small)
    model = _far_model(tmp_path / "far.pdb")
    r = run_cli("predict", small, "--model", model, "--chain", "A", "-o", tmp_path / "q", limit_gb=2.5)
    line = one_error_line(r)
    assert f"{model}: needs ~" in line and "zone box" in line, line
    assert not (tmp_path / "p").exists()
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").iterdir())


# ----------------------------------------------------------------------------- 4. environment


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "200k"):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the disk-full case needs root")
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path):
    with tiny_tmpfs(tmp_path / "full") as full:
        out = full / "map.mrc"
        r = run_cli("simulate", MODEL, "--resolution", "6", "-o", out)  # ~1 MB map, 200 kB disk
        line = one_error_line(r)
        assert "no space left" in line and str(full) in line, line
        assert not out.exists() and not leftovers(full) and not list(full.iterdir())
        r = run_cli("sse", MODEL, "-o", full / "sse.tsv")  # small outputs still fit
        assert r.returncode == 0, r.stderr


def _small_checkpoint(path: Path) -> Path:
    import torch

    from cryosse.net.checkpoint import save_checkpoint
    from cryosse.net.network import PRESETS, build_network

    torch.manual_seed(0)
    arch = dict(PRESETS["small"], n_classes=3, preset="small")
    save_checkpoint(path, build_network(arch), {"arch": arch, "classes": ["other", "helix", "sheet"],
                                                "voxel_size_a": 2.0, "data_voxel_size_a": 1.0, "tile": 32})
    return path


def test_disk_full_in_predict_is_one_line_and_leaves_no_temporary_folder(tmp_path):
    ckpt = _small_checkpoint(tmp_path / "ckpt.pt")
    m = tmp_path / "m.mrc"
    write_map(Map(np.random.default_rng(0).random((48, 48, 48), dtype=np.float32), (1.0,) * 3), m)
    with tiny_tmpfs(tmp_path / "full", "300k") as full:
        r = run_cli("predict", m, "--checkpoint", ckpt, "--device", "cpu", "--quiet", "-o", full / "pred", limit_gb=3)
        line = one_error_line(r)
        assert "no space left" in line, line
        assert not leftovers(full) and not (full / "pred" / "summary.json").exists()


def test_read_only_output_is_one_line(tmp_path):
    with tiny_tmpfs(tmp_path / "ro"):
        subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "ro")], check=True)
        r = run_cli("sse", MODEL, "-o", tmp_path / "ro" / "sse.tsv")
        line = one_error_line(r)
        assert "read-only file system" in line and "sse.tsv" in line or str(tmp_path / "ro") in line, line


@pytest.mark.parametrize("exc,words", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/out.mrc"), "/data/out.mrc: permission denied"),
    (OSError(errno.ENOSPC, "No space left on device"), "{out}: no space left"),
    (MemoryError("Unable to allocate 687. GiB for an array with shape (6000, 6000, 6000)"), "out of memory (Unable"),
    (MemoryError("std::bad_alloc"), "out of memory;"),
    (RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"), "out of memory (CUDA"),
    (ZeroDivisionError("division by zero"), "internal error (ZeroDivisionError"),
])
def test_environment_failures_are_one_line(tmp_path, capsys, monkeypatch, exc, words):
    import cryosse.prep.density as density

    def fail(*a, **k):
        raise exc
    monkeypatch.setattr(density, "simulate_density", fail)
    out = tmp_path / "m.mrc"
    line = in_process_error(capsys, "simulate", MODEL, "-o", out)
    assert line.startswith("cryosse simulate: error: ") and words.replace("{out}", str(out)) in line, line
    assert "weights_only" not in line


def test_unreadable_checkpoints_name_the_file_and_never_suggest_unsafe_loading(tmp_path):
    import torch

    m = tmp_path / "m.mrc"
    write_map(Map(np.zeros((8, 8, 8), np.float32), (2.0,) * 3), m)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint\n")
    trunc = tmp_path / "trunc.pt"
    torch.save({"x": torch.zeros(100)}, trunc)
    trunc.write_bytes(trunc.read_bytes()[:300])
    code = tmp_path / "code.pt"
    torch.save({"card": uuid.UUID(int=1), "state_dict": {}}, code)  # an object that is not plain data
    for ckpt in (text, trunc, code):
        r = run_cli("predict", m, "--checkpoint", ckpt, "-o", tmp_path / "p")
        line = one_error_line(r)
        assert line.startswith(f"cryosse: error: {ckpt}: not a loadable cryosse checkpoint"), line
        assert "weights_only" not in line and len(line) < 300


def test_predict_device_errors_blame_the_device_not_the_map(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --device cuda is valid here")
    m = tmp_path / "m.mrc"
    write_map(Map(np.zeros((8, 8, 8), np.float32), (2.0,) * 3), m)
    line = in_process_error(capsys, "predict", m, "--device", "cuda", "-o", tmp_path / "p")
    assert line.startswith("cryosse: error: --device:") and str(m) not in line


# ----------------------------------------------------------------------------- 6. leftovers


def _killed_writer(folder: Path, name: str) -> Path:
    """A process that dies by SIGKILL in the middle of an atomic write into ``folder``."""
    code = ("import os, signal, sys\nfrom cryosse.io import atomic_path\n"
            f"with atomic_path({str(folder / name)!r}) as t:\n"
            "    t.write_bytes(b'half')\n    print(t, flush=True)\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert r.returncode == -signal.SIGKILL
    tmp = Path(r.stdout.strip())
    assert tmp.is_file() and tmp.name.startswith(".cryosse-tmp.")
    return tmp


def test_a_killed_jobs_temporaries_go_on_the_next_run_and_live_ones_stay(tmp_path):
    from cryosse.io.files import temp_prefix

    out = tmp_path / "entry"
    out.mkdir()
    dead = _killed_writer(out, "map.mrc")
    live = out / (temp_prefix().rsplit(".", 2)[0] + ".1.abcd.map.mrc")  # pid 1 is alive
    live.write_bytes(b"live")
    old_dir = out / (temp_prefix().rsplit(".", 2)[0] + f".{dead.name.split('.')[3]}.xyz.predict")
    old_dir.mkdir()
    (old_dir / "helix_prob.mrc").write_bytes(b"half")
    r = run_cli("simulate", MODEL, "--resolution", "8", "--voxel-size", "2", "-o", out / "map.mrc")
    assert r.returncode == 0, r.stderr
    assert not dead.exists() and not old_dir.exists() and live.exists()
    assert (out / "map.mrc").is_file()


def test_temporaries_of_other_hosts_stay_until_old(tmp_path):
    from cryosse.io.files import STALE_AFTER_S, remove_stale

    other = tmp_path / ".cryosse-tmp.otherhost.12345.abcd.x.json"
    other.write_text("{}")
    assert remove_stale(tmp_path) == [] and other.exists()
    os.utime(other, (0, 0))
    remove_stale_again = __import__("cryosse.io.files", fromlist=["_CLEANED"])._CLEANED
    remove_stale_again.discard(str(tmp_path.resolve()))
    assert STALE_AFTER_S > 3600 and remove_stale(tmp_path) == [other] and not other.exists()


def test_gzipped_outputs_are_whole_or_absent_after_a_full_disk(tmp_path):
    """The same on the gzip path of write_map (the temporary file is removed)."""
    with tiny_tmpfs(tmp_path / "full", "64k") as full:
        rng = np.random.default_rng(0)
        m = Map(rng.random((48, 48, 48), dtype=np.float32), (1.0,) * 3)
        with pytest.raises(OSError):
            write_map(m, full / "x.mrc.gz")
        assert not list(full.iterdir())
    ok = tmp_path / "y.mrc.gz"
    write_map(Map(np.zeros((8, 8, 8), np.float32), (1.0,) * 3), ok)
    assert gzip.decompress(ok.read_bytes())[:4]


def test_a_broken_resume_checkpoint_is_one_line(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    (out / "last.pt").write_text("not a checkpoint\n")
    line = in_process_error(capsys, "train", "--datalist", tiny_dataset / "datalist.json", "--steps", "2",
                            "--device", "cpu", "-o", out)
    assert f"{out / 'last.pt'}: cannot be read to resume" in line and "weights_only" not in line, line


def test_the_budget_comes_from_the_flag_the_config_file_or_the_one_default(tmp_path, capsys):
    from cryosse.inference import PredictConfig
    from cryosse.io.budget import DEFAULT_MEMORY_GB
    from cryosse.workflow import stage_configs

    assert SCHEMA["properties"]["max_memory_gb"]["default"] == DEFAULT_MEMORY_GB == PredictConfig().max_memory_gb
    assert {s for s, v in stage_configs(_config(max_memory_gb=3.5)).items() if v.get("max_memory_gb") == 3.5} == {
        "simulate", "labels", "components", "experimental"}
    m = tmp_path / "m.mrc"
    write_map(Map(np.zeros((32, 32, 32), np.float32), (1.0,) * 3), m)
    cfg = tmp_path / "labels.json"
    cfg.write_text(json.dumps({"radius_a": 3.0, "max_memory_gb": 0.0001}))
    line = in_process_error(capsys, "label", MODEL, m, "--config", cfg, "-o", tmp_path / "l.mrc")
    assert "budget 0.0001 GB" in line
    cfg.write_text(json.dumps({"max_memory_gb": -1}))
    line = in_process_error(capsys, "label", MODEL, m, "--config", cfg, "-o", tmp_path / "l.mrc")
    assert f"{cfg}: max_memory_gb: must be a number > 0" in line
    assert main([str(a) for a in ("label", MODEL, m, "--config", cfg, "--max-memory-gb", "1", "-o", tmp_path / "l.mrc")]) == 0


def _datalist(path: Path, items: dict) -> Path:
    path.write_text(json.dumps(items))
    return path


def test_train_refuses_hostile_datalists_naming_the_item(tmp_path, capsys):
    """A datalist is a table of untrusted paths and ids: every item is checked before any file
    is read, and each problem is one line naming the file and the item."""
    good = {"id": "a_A", "image": "a.mrc", "label": "a_l.mrc"}
    cases = [([1, 2], "not a datalist: a JSON object of splits is expected, got a list"),
             ({"training": "a.mrc"}, "training: a list of items is expected, got a str"),
             ({"training": ["a.mrc"]}, "training[0]: an item is an object with id, image and label"),
             ({"training": [dict(good, label=None)]}, "training[0].label: a path is expected, got None"),
             ({"training": [dict(good, image="a\nb.mrc")]}, "training[0].image: a path is expected"),
             ({"training": [dict(good, id="../../etc")]}, "training[0].id: invalid sample id '../../etc'"),
             ({"training": [good], "validation": [good]}, "validation[0].id: 'a_A' is also training[0]"),
             ({"training": []}, "datalist has no training samples")]
    for k, (content, what) in enumerate(cases):
        dl = _datalist(tmp_path / f"dl{k}.json", content)
        line = in_process_error(capsys, "train", "--datalist", dl, "-o", tmp_path / f"out{k}")
        assert f"{dl}: {what}" in line, line
        assert not (tmp_path / f"out{k}").exists()


def test_train_plans_its_memory_from_the_headers(tmp_path):
    """A datalist whose map claims a huge grid is refused from its header before any data is
    read (the run's folder is not even made); a label grid that differs from its density is
    refused from the headers too, naming the label file."""
    from cryosse.io.budget import machine_memory_gb

    big = _claims(tmp_path / "big.mrc", 6000)
    lab = _claims(tmp_path / "big_l.mrc", 6000)
    dl = _datalist(tmp_path / "dl.json", {"training": [{"id": "b_A", "image": big.name, "label": lab.name}]})
    r = run_cli("train", "--datalist", dl, "-o", tmp_path / "out", limit_gb=2.5)
    line = one_error_line(r)  # the default budget: this machine's memory
    assert f"{dl}: needs ~" in line and f"budget {round(machine_memory_gb(), 1):g} GB" in line, line
    assert "1 maps, 2.7e+04 M voxels on the 2 Å working grid" in line, line
    line = one_error_line(run_cli("train", "--datalist", dl, "--max-memory-gb", "3", "-o", tmp_path / "out"))
    assert "budget 3 GB" in line and "--max-memory-gb" in line
    assert not (tmp_path / "out").exists()
    small = tmp_path / "small_l.mrc"
    write_map(Map(np.zeros((4, 4, 5), np.uint8), (1.0,) * 3), small, labels=True)
    write_map(Map(np.zeros((4, 4, 4), np.float32), (1.0,) * 3), tmp_path / "small.mrc")
    dl = _datalist(tmp_path / "dl2.json", {"training": [{"id": "s_A", "image": "small.mrc", "label": "small_l.mrc"}]})
    line = one_error_line(run_cli("train", "--datalist", dl, "-o", tmp_path / "out"))
    assert f"{small}: label grid (5, 4, 4) (x, y, z) differs from its density's (4, 4, 4)" in line, line


def _fine_tunes(dest: Path, n: int, preset: str = "small") -> list[Path]:
    """``n`` checkpoints that could be fine-tunes of one start (for soup and ensemble)."""
    import torch

    from cryosse.net.checkpoint import save_checkpoint
    from cryosse.net.network import PRESETS, build_network

    arch = dict(PRESETS[preset], n_classes=3, preset=preset)
    paths = []
    for i in range(n):
        torch.manual_seed(i)
        paths.append(dest / f"ft{i}.pt")
        save_checkpoint(paths[-1], build_network(arch), {
            "arch": arch, "classes": ["other", "helix", "sheet"], "voxel_size_a": 2.0, "data_voxel_size_a": 1.0,
            "tile": 32, "data_sha256": "0", "init_checkpoint": {"path": "start.pt", "member": 0, "step": 1}})
    return paths


@pytest.mark.parametrize("command", ["soup", "ensemble"])
def test_checkpoints_over_the_budget_are_refused_from_their_sizes(tmp_path, capsys, command):
    """A checkpoint file that claims 200 GB (sparse: nothing to read) is refused before any
    source is loaded, one line naming it; nothing is written."""
    small = _fine_tunes(tmp_path, 1)[0]
    huge = tmp_path / "huge.pt"
    with open(huge, "wb") as f:
        f.truncate(200 * GB)
    line = in_process_error(capsys, command, small, huge, "-o", tmp_path / "out.pt")
    assert line.startswith(f"cryosse: error: {huge}: needs ~600 GB") and "2 checkpoints, 215 GB on disk" in line, line
    line = in_process_error(capsys, command, small, small, "--max-memory-gb", "0.001", "-o", tmp_path / "out.pt")
    assert "budget 0.001 GB" in line and "--max-memory-gb" in line, line
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "out.json").exists()


def test_the_checkpoints_plan_bounds_the_measured_peaks(tmp_path, capsys):
    """Between two and four sources, the peak of soup and of ensemble grows less than the
    plan's estimate does."""
    srcs = _fine_tunes(tmp_path, 4, "deepssetracer")  # 18 MB each
    seen = []
    for command in ("soup", "ensemble"):
        peaks, estimates = [], []
        for n in (2, 4):
            args = [command, *srcs[:n], "-o", tmp_path / f"{command}{n}.pt"]
            peaks.append(_peak(args))
            line = in_process_error(capsys, *args, "--max-memory-gb", "1e-9")
            estimates.append(float(line.split("needs ~")[1].split()[0]) * GB)
        growth, more = peaks[1] - peaks[0], estimates[1] - estimates[0]
        seen.append(f"{command}: peak grew {growth / 1e6:.0f} MB, estimate {more / 1e6:.0f} MB")
        assert 0 < growth < more, (command, peaks, estimates)
    print("; ".join(seen))


def test_the_training_plan_counts_the_grid_resampling_makes(tmp_path):
    """The plan's working grid, from the headers, is the one loading makes, axis by axis, also
    for voxels of a different size on each axis (an axis order mix-up would count 13 464 voxels
    here instead of 10 560)."""
    from cryosse.train.data import READ_BYTES, TRAIN_BYTES, load_sample, memory_plan

    shape_zyx, voxel_xyz = (20, 30, 40), (1.0, 1.5, 2.5)
    write_map(Map(np.ones(shape_zyx, np.float32), voxel_xyz), tmp_path / "d.mrc")
    write_map(Map(np.ones(shape_zyx, np.uint8), voxel_xyz), tmp_path / "l.mrc", labels=True)
    item = {"id": "a_A", "image": str(tmp_path / "d.mrc"), "label": str(tmp_path / "l.mrc")}
    need, what = memory_plan({"training": [item]}, 2.0, realism=False)
    work = load_sample("a_A", item["image"], item["label"], 2.0).x
    assert work.shape == (24, 22, 20) and "0.0106 M voxels" in what, (work.shape, what)
    assert need == work.size * (READ_BYTES + TRAIN_BYTES) + 20 * 30 * 40 * (4 + 4 + 1 + 1)


def test_the_training_plan_bounds_the_measured_peak(tmp_path):
    """Between a datalist and one with twelve times its maps (the same files under new ids), the
    measured peak of a one-step run with realism grows less than the plan's estimate. The
    labels are two thirds helix and sheet, near the plan's worst case of all voxels."""
    rng = np.random.default_rng(0)
    n = 64
    write_map(Map(rng.standard_normal((n, n, n)).astype(np.float32), (2.0,) * 3), tmp_path / "d.mrc")
    write_map(Map(rng.integers(0, 4, (n, n, n)).astype(np.uint8), (2.0,) * 3), tmp_path / "l.mrc", labels=True)

    def peak(copies, k=0):
        item = lambda split, c: {"id": f"{split}-{c}", "image": "d.mrc", "label": "l.mrc"}  # noqa: E731
        path = _datalist(tmp_path / f"dl{copies}.json", {
            "training": [item("t", c) for c in range(2 * copies)], "validation": [item("v", c) for c in range(copies)]})
        return _peak_and_estimate(["train", "--datalist", path, "--steps", "1", "--patch", "16", "--batch", "1",
                                   "--preset", "small", "--realism", "--device", "cpu", "--val-every", "1",
                                   "-o", tmp_path / f"run{copies}_{k}"])

    small, big = peak(1), peak(12)
    measured, estimated = big[0] - small[0], big[1] - small[1]
    print(f"train: peak grew {measured / 1e6:.0f} MB, estimate {estimated / 1e6:.0f} MB")
    assert 0 < measured < estimated, (measured / 1e6, estimated / 1e6)


def test_real_map_case_files_are_untrusted(tmp_path, checkpoint, capsys):
    """A case's name becomes output file names and its paths are read: a name outside the id
    grammar or used twice, a path outside the data folder and a resolution that is not a
    positive number of Å are each one line naming the case file and the case."""
    ckpt = checkpoint  # uncalibrated: calibrate reads the cases
    ok = {"name": "a", "map": "m.mrc", "model": "m.pdb", "native_resolution_a": 6}
    cases = [([dict(ok, name="../../x")], "case 1: name '../../x' is not a plain id"),
             ([ok, dict(ok)], "case 2: name 'a' is used by an earlier case"),
             ([dict(ok, map="/etc/passwd")], "case 1: map '/etc/passwd' must be a path inside the data folder"),
             ([dict(ok, model="../../m.pdb")], "case 1: model '../../m.pdb' must be a path inside the data folder"),
             ([dict(ok, native_resolution_a=-6)], "case 1: native_resolution_a must be a number in (0, 50] Å, got -6"),
             ([dict(ok, lowpass_a=float("nan"))], "case 1: lowpass_a must be a number in (0, 50] Å, got nan"),
             ([dict(ok, min_plddt="high")], "case 1: min_plddt must be a number in [0, 100], got 'high'")]
    for k, (items, what) in enumerate(cases):
        f = tmp_path / f"cases{k}.yaml"
        f.write_text(yaml.safe_dump({"cases": items}))
        for cmd in ("real-maps", "calibrate"):
            line = in_process_error(capsys, cmd, "--cases", f, "--checkpoint", ckpt, "--data", tmp_path,
                                    "-o", tmp_path / f"out{k}")
            assert f"{f}: {what}" in line, (cmd, line)
        assert not (tmp_path / f"out{k}").exists()


@pytest.mark.parametrize("command, what", [("report", "an evaluation from 'cryosse evaluate'"),
                                           ("compare-losses", "a score file from 'cryosse score'")])
def test_reports_refuse_records_that_are_not_theirs(tmp_path, command, what, capsys):
    """The JSON files report and compare-losses aggregate: not JSON, not an object, or missing a
    key is one line naming the file, and the output folder is not made."""
    for k, text in enumerate(["[1, 2]", '{"helix": 3}', '{"classes": "x", "confusion": 1, "n_samples": 2}',
                              "not json"]):
        f = tmp_path / f"in{k}.json"
        f.write_text(text)
        line = in_process_error(capsys, command, f, "-o", tmp_path / "out")
        assert line.startswith(f"cryosse: error: {f}: not "), line
        assert what in line or "not a readable JSON file" in line, line
        assert not (tmp_path / "out").exists()
