"""The workflow on a real single-node Slurm, through snakemake-executor-plugin-slurm and the
profile workflow/profiles/slurm.

tests/slurm/start-local-slurm.sh installs (apt) and starts slurmctld, slurmd and munged on this
machine; the cluster is stopped when the session ends, also after failures. Where Slurm cannot be
installed or started (no root, no apt, no network) the tests that need it are skipped.

One scenario, run once for this module, exercises everything on the tiny 7-entry config of
tests/test_workflow.py; the same workflow run locally (conftest.py's ``tiny_local_run``, which
test_end_to_end_tiny checks too) is the reference:

1. a first Slurm run (retries off) in which the `train` job is cancelled with `scancel` as soon as
   it runs, so the run stops with the data preparation finished;
2. a second Slurm run that completes the workflow without redoing the finished work; a stand-in
   `cryosse` first on PATH makes the `report` job fail on its first attempt only, so the
   profile's retry (with more memory) is exercised on a real job.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cryosse.io import read_map, read_tsv
from test_workflow import TINY_ENTRIES, tiny_project

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILE = ROOT / "workflow/profiles/slurm"
START = ROOT / "tests/slurm/start-local-slurm.sh"
STOP = ROOT / "tests/slurm/stop-local-slurm.sh"
STATE_DIR = os.environ.get("CRYOSSE_SLURM_DIR", "/tmp/cryosse-slurm")

# Test-only flags. Without accounting (no slurmdbd) job status comes from `squeue` (finished jobs
# stay listed for MinJobAge = 600 s); the first status check after 2 s instead of 40 s and the
# next ones every 2 s instead of 10 (the tiny jobs take seconds); per-job caps that fit the one
# 2-CPU node with its one fake GPU (the profile's caps are for real nodes).
SLURM_ARGS = ["--executor", "slurm", "--workflow-profile", str(PROFILE),
              "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
              "--seconds-between-status-checks", "2",
              "--cores", "2", "--resources", "mem_mb=8000", "gpu=1"]


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
            "--configfile", str(workdir / "config.yaml"), *args]


def env_with(path_first: Path | None = None) -> dict:
    path = f"{BIN}:{os.environ.get('PATH', '')}"
    if path_first is not None:
        path = f"{path_first}:{path}"
    return dict(os.environ, PATH=path)


def tail(text: str, n: int = 4000) -> str:
    return text[-n:]


def assert_close(x, y, where: str = "") -> None:
    """Equal JSON-like values; floats to a relative 1e-6, NaN equal to NaN."""
    if isinstance(x, dict) and isinstance(y, dict):
        assert x.keys() == y.keys(), where
        for k in x:
            assert_close(x[k], y[k], f"{where}/{k}")
    elif isinstance(x, list) and isinstance(y, list):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            assert_close(u, v, f"{where}[{i}]")
    elif isinstance(x, float) or isinstance(y, float):
        assert x == pytest.approx(y, rel=1e-6, abs=1e-9, nan_ok=True), where
    else:
        assert x == y, where


# ---------------------------------------------------------------------------------------------
# Needs no cluster: the profile's rules, resources and groups as Snakemake plans them. A dry run
# goes through Snakemake's dry-run executor, so no sbatch command is built: the job listing's
# `resources:` lines show the requests (the plugin turns gpu=1 into `sbatch --gpus=1`, which
# test_gpu_rules_ran_with_a_gpu checks on the real cluster).

def slurm_dry_run(workdir: Path, *extra: str) -> tuple[dict[str, set[str]], list]:
    """Dry run with the slurm profile; (resources by rule, [(group name, [(rule, wildcards)])]).
    A prediction target puts predict_component (after the checkpoint) into the listing."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    tiny_project(workdir)
    r = subprocess.run(snakemake_cmd(workdir, "-n", "--executor", "slurm", "--workflow-profile",
                                     str(PROFILE), "all", "results/predict/test/1a8o_A/scores.json", *extra),
                       cwd=workdir, env=env_with(), capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, tail(out)
    resources: dict[str, set[str]] = {}
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    rule, group = None, None
    for line in out.splitlines():
        s = line.strip()
        if "] Group job " in line:
            group = (s.split("Group job ")[1].split()[0], [])
            groups.append(group)
        elif s.startswith(("rule ", "checkpoint ")) and s.endswith(":"):
            rule = s.split()[1].rstrip(":")
            if not line.startswith(" "):
                group = None                                 # an ungrouped job
        elif s.startswith("resources:") and rule:
            resources.setdefault(rule, set()).update(x.strip() for x in s[10:].split(","))
        elif s.startswith("wildcards:") and group is not None:
            group[1].append((rule, s[10:].strip()))
    return resources, groups


def test_slurm_profile_passes_lint(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    tiny_project(tmp_path)
    r = subprocess.run(snakemake_cmd(tmp_path, "--lint", "--workflow-profile", str(PROFILE)),
                       cwd=tmp_path, env=env_with(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Congratulations" in r.stdout + r.stderr, tail(r.stdout + r.stderr)


def test_slurm_profile_gpu_requests_and_groups_in_dry_run(tmp_path):
    resources, groups = slurm_dry_run(tmp_path)
    for rule in ("train", "predict_component"):
        assert {"gpu=1", "slurm_partition=gpu"} <= resources[rule], (rule, resources.get(rule))
    for rule in ("simulate", "sse", "label", "crop", "split", "dataset"):
        assert "gpu=1" not in resources[rule] and "slurm_partition=cpu" in resources[rule], rule
    assert {"mem_mb=16000", "runtime=720"} <= resources["train"]  # attempt 1 of 16000 * attempt
    # one Slurm job per entry for its simulate, sse, label, crop; one for predict + evaluate
    prep = [jobs for name, jobs in groups if name == "prep"]
    assert sorted(len(jobs) for jobs in prep) == [4] * len(TINY_ENTRIES), prep
    assert all(len({w.split(",")[0] for _, w in jobs}) == 1 for jobs in prep), prep
    assert [sorted(r for r, _ in jobs) for name, jobs in groups if name == "evaluate"] == \
        [["evaluate_component", "predict_component"]]
    listed = [job for _, jobs in groups for job in jobs]
    assert len(listed) == len(set(listed)), "a job is in two group jobs"


def test_partition_and_account_overridden_on_the_command_line(tmp_path):
    resources, _ = slurm_dry_run(tmp_path, "--default-resources", "slurm_partition=batch",
                                 "slurm_account=lab")
    assert {"slurm_partition=batch", "slurm_account=lab", "mem_mb=4000"} <= resources["simulate"]
    assert {"slurm_partition=gpu", "slurm_account=lab", "gpu=1"} <= resources["train"]


# ---------------------------------------------------------------------------------------------
# Files shared by concurrent cluster jobs: every output is written to a temporary name beside it
# and renamed into place (cryosse.io.atomic_path), so concurrent writers of one path never
# interleave and a reader sees a whole old or a whole new file.

def _write_versions(path: str, value: float, n: int) -> None:
    from cryosse.io import Map, write_map
    for k in range(n):
        write_map(Map(np.full((16, 24, 32), value + k, np.float32), (1.0, 1.0, 1.0)), path)


def test_concurrent_writers_never_expose_partial_files(tmp_path):
    import multiprocessing
    path = tmp_path / "shared.mrc"
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_write_versions, args=(str(path), v, 40)) for v in (0.0, 1000.0)]
    for w in writers:
        w.start()
    seen = 0
    while any(w.is_alive() for w in writers) or seen == 0:
        if path.exists():
            m = read_map(path)
            assert m.data.shape == (16, 24, 32) and m.data.min() == m.data.max()
            seen += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert seen > 0 and [p.name for p in tmp_path.iterdir()] == ["shared.mrc"]


# ---------------------------------------------------------------------------------------------
# The real cluster.

@pytest.fixture(scope="session")
def slurm_cluster(request):
    """A running single-node Slurm; stopped at the end of the session if this fixture started it."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    try:
        r = subprocess.run(["bash", str(START), STATE_DIR], capture_output=True, text=True,
                           timeout=900)
    except subprocess.TimeoutExpired:
        r = None
    if r is None or r.returncode != 0:
        subprocess.run(["bash", str(STOP), STATE_DIR], capture_output=True, timeout=120)
        why = "timed out" if r is None else tail(r.stdout + r.stderr, 600).strip()
        pytest.skip(f"a local Slurm could not be installed or started ({START.name}): {why}")
    if "already running" not in r.stdout:
        request.addfinalizer(lambda: subprocess.run(["bash", str(STOP), STATE_DIR],
                                                    capture_output=True, timeout=120))
    return STATE_DIR


def squeue_jobs(workdir: Path) -> list[dict]:
    """This work directory's Slurm jobs, finished ones included (kept for MinJobAge)."""
    fields = ["JobID", "Partition", "State", "tres-per-job", "MinMemory", "WorkDir", "Comment"]
    r = subprocess.run(["squeue", "--states=all", "-h", "-O", ",".join(f + ":|" for f in fields)],
                       capture_output=True, text=True, check=True, timeout=60)
    keys = ["id", "partition", "state", "tres", "mem", "workdir", "comment"]
    jobs = [dict(zip(keys, line.split("|"))) for line in r.stdout.splitlines() if line.strip()]
    return sorted((j for j in jobs if Path(j["workdir"]) == workdir), key=lambda j: int(j["id"]))


def mtimes(results: Path) -> dict[str, int]:
    return {str(p.relative_to(results)): p.stat().st_mtime_ns
            for p in sorted(results.rglob("*")) if p.is_file()}


def cancel_train_when_running(proc: subprocess.Popen, workdir: Path, timeout: float) -> dict:
    """Wait until the `train` Slurm job of ``workdir`` runs, then `scancel` it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for job in squeue_jobs(workdir):
            if job["comment"] == "rule_train" and job["state"] == "RUNNING":
                subprocess.run(["scancel", job["id"]], check=True, timeout=60)
                return job
        time.sleep(0.5)
    raise AssertionError("the train job was never seen running "
                         f"(first run {'ended' if proc.poll() is not None else 'timed out'})")


@pytest.fixture(scope="module")
def scenario(slurm_cluster, tiny_local_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm-scenario")
    on_slurm, local = tiny_project(base / "slurm"), tiny_local_run  # the local reference: conftest.py

    # stand-in `cryosse`: the first `cryosse report` fails, every other call is the real one
    fakebin, sentinel = base / "bin", base / "report-failed-once"
    fakebin.mkdir()
    real = shutil.which("cryosse", path=str(BIN)) or "cryosse"
    (fakebin / "cryosse").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = report ] && [ ! -e "{sentinel}" ]; then\n'
        f'    : > "{sentinel}"; echo "injected failure (first attempt)" >&2; exit 1\n'
        "fi\n"
        f'exec "{real}" "$@"\n')
    (fakebin / "cryosse").chmod(0o755)

    try:
        with open(on_slurm / "run1.log", "w") as log1:
            first = subprocess.Popen(snakemake_cmd(on_slurm, *SLURM_ARGS, "--retries", "0"),
                                     cwd=on_slurm, env=env_with(fakebin),
                                     stdout=log1, stderr=subprocess.STDOUT)
            try:
                cancelled = cancel_train_when_running(first, on_slurm, timeout=600)
                first.wait(timeout=300)
            finally:
                if first.poll() is None:
                    first.kill()
        after_first = mtimes(on_slurm / "results")
        second = subprocess.run(snakemake_cmd(on_slurm, *SLURM_ARGS), cwd=on_slurm,
                                env=env_with(fakebin), capture_output=True, text=True,
                                timeout=900)
    finally:
        for job in squeue_jobs(on_slurm):
            if job["state"] in ("PENDING", "RUNNING"):
                subprocess.run(["scancel", job["id"]], timeout=60)
    first_log = (on_slurm / "run1.log").read_text()
    assert second.returncode == 0, "second Slurm run failed:\n" + tail(second.stdout + second.stderr)
    return {"slurm": on_slurm, "local": local, "first_rc": first.returncode,
            "first_log": first_log, "cancelled": cancelled, "after_first": after_first,
            "second_log": second.stdout + second.stderr, "jobs": squeue_jobs(on_slurm),
            "sentinel": sentinel}


@pytest.mark.slow
def test_slurm_run_matches_local_run(scenario):
    a, b = scenario["slurm"] / "results", scenario["local"] / "results"
    for table in ("dataset/manifest.tsv", "dataset/splits.tsv"):
        assert read_tsv(a / table) == read_tsv(b / table), table
    datalist = json.loads((a / "dataset/datalist.json").read_text())
    assert datalist == json.loads((b / "dataset/datalist.json").read_text())
    maps = [f"entries/{e}/map.mrc" for e in TINY_ENTRIES] + [f"entries/{e}/labels.mrc" for e in TINY_ENTRIES]
    for row in read_tsv(a / "dataset/manifest.tsv"):
        comp = f"components/{row['entry']}/{row['id']}"
        maps += [f"{comp}/density.mrc", f"{comp}/labels.mrc"]
    for s in datalist["test"]:
        maps += [f"predict/test/{s['id']}/{n}.mrc" for n in ("helix_prob", "sheet_prob", "labels")]
    for name in maps:
        x, y = read_map(a / name), read_map(b / name)
        assert x.data.shape == y.data.shape and x.data.dtype == y.data.dtype, name
        assert np.allclose(x.voxel_size_a, y.voxel_size_a) and np.allclose(x.origin_a, y.origin_a), name
        if np.issubdtype(x.data.dtype, np.integer):
            assert np.array_equal(x.data, y.data), name
        else:
            assert np.allclose(x.data, y.data, rtol=1e-5, atol=1e-6), name
    # same seed, same data, same thread count: the same training curve (wall time aside)
    def curve(path: Path) -> list[dict]:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]
    assert_close(curve(a / "model/metrics.jsonl"), curve(b / "model/metrics.jsonl"))
    assert_close(json.loads((a / "report/f1.json").read_text()),
                 json.loads((b / "report/f1.json").read_text()))
    assert (a / "model/checkpoint.pt").stat().st_size > 0
    assert "| helix |" in (a / "report/report.md").read_text()


@pytest.mark.slow
def test_gpu_rules_ran_with_a_gpu(scenario):
    """`gpu=1` reached sbatch (`--gpus=1`) for train and the predict group, on the gpu partition;
    the per-entry jobs went out as one group job per entry on the cpu partition."""
    jobs = scenario["jobs"]
    gpu_jobs = [j for j in jobs if j["comment"] == "rule_train" or "predict_component" in j["comment"]]
    assert {j["comment"] for j in gpu_jobs} >= {"rule_train"}
    assert any("predict_component" in j["comment"] for j in gpu_jobs)
    for j in gpu_jobs:
        assert j["partition"] == "gpu" and "gpu:1" in j["tres"], j
    prep = [j for j in jobs if j["comment"].startswith("rule_prep")]
    assert len(prep) == len(TINY_ENTRIES), prep
    assert all(j["partition"] == "cpu" and "gpu" not in j["tres"] for j in prep), prep


@pytest.mark.slow
def test_failed_job_is_retried_with_more_memory(scenario):
    report = [j for j in scenario["jobs"] if j["comment"] == "rule_report"]
    assert scenario["sentinel"].exists(), "the injected failure never ran"
    assert [j["state"] for j in report] == ["FAILED", "COMPLETED"], report
    # the profile asks mem_mb = 2000 * attempt
    assert [j["mem"] for j in report] == ["2000M", "4000M"], report


@pytest.mark.slow
def test_cancelled_job_rerun_keeps_finished_work(scenario):
    assert scenario["first_rc"] != 0, tail(scenario["first_log"])
    train = [j for j in scenario["jobs"] if j["comment"] == "rule_train"]
    assert train[0]["id"] == scenario["cancelled"]["id"] and train[0]["state"] == "CANCELLED", train
    assert train[-1]["state"] == "COMPLETED", train
    # every file finished before the cancel (the training's own files aside) is untouched
    before = {k: v for k, v in scenario["after_first"].items() if not k.startswith("model/")}
    assert {"dataset/manifest.tsv", "entries/1a8o/map.mrc", "entries/1a8o/labels.mrc",
            "components/1a8o/1a8o_A/density.mrc"} <= before.keys()
    after = mtimes(scenario["slurm"] / "results")
    assert {k: after.get(k) for k in before} == before
    # and nothing of the data preparation was submitted again
    assert len([j for j in scenario["jobs"] if j["comment"].startswith("rule_prep")]) == len(TINY_ENTRIES)
    for rule in ("simulate", "sse", "label", "crop", "split", "dataset"):
        for kind in ("rule", "checkpoint"):
            assert f"{kind} {rule}:" not in scenario["second_log"], rule
