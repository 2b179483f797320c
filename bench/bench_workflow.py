"""Workflow scale: Snakemake planning time and per-job overhead for 1000 entries, and how many
Slurm submissions the slurm profile's grouping saves.

A synthetic structures table of 1000 entries (copies of the 70 embedded structure files, ids
``s0001-1ahsa`` ...) is written to a temporary folder, then:

- planning: ``snakemake -n`` with the workstation profile, and with the slurm profile
  (``--executor slurm``) with and without its ``groups``; seconds and milliseconds per job;
- submissions: Slurm jobs the dry run lists with the profile's groups (group jobs + ungrouped
  jobs) and without them (every job but the local target rule ``all``); the predict/evaluate jobs
  after the ``dataset`` checkpoint are not known before it runs and not counted;
- per-job start-up: every Slurm job starts Snakemake again, which parses the workflow and loads
  the structures table; a one-target dry run on the 1000-entry config measures that cost;
- per-entry compute: the data preparation (simulate, sse, label, crop) of a few embedded entries,
  run for real with 2 cores, as CPU seconds per entry (this machine);
- the `split` step compares every pair of chains (one job): milliseconds per pair of
  300-residue sequences.

Prints the figures and writes bench/results/bench_workflow.json. Run: ``make bench``.
"""
from __future__ import annotations

import json
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EMBEDDED = ROOT / "src/cryosse/data/structures/structures.tsv"
OUT = ROOT / "bench/results/bench_workflow.json"
N_ENTRIES = 1000
PREP_ENTRIES = ["1a8o", "2xdga", "3nbka"]      # small to mid-sized embedded chains
ENTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


def synthetic_table(dest: Path, n: int) -> Path:
    """A structures table of ``n`` entries cycling over the embedded files (hard links or copies:
    a table's files must lie inside its folder)."""
    lines = EMBEDDED.read_text().splitlines()
    header, rows = lines[0].split("\t"), [dict(zip(lines[0].split("\t"), l.split("\t")))
                                          for l in lines[1:] if l.strip()]
    files = dest / "files"
    files.mkdir(parents=True)
    out = ["\t".join(header)]
    for i in range(n):
        src = rows[i % len(rows)]
        entry = f"s{i + 1:04d}-{src['entry']}"
        assert ENTRY_ID.match(entry), entry
        target = files / f"{entry}.pdb.gz"
        try:
            os.link(EMBEDDED.parent / src["file"], target)
        except OSError:
            shutil.copyfile(EMBEDDED.parent / src["file"], target)
        out.append("\t".join({**src, "entry": entry, "file": f"files/{target.name}"}[h] for h in header))
    table = dest / "structures.tsv"
    table.write_text("\n".join(out) + "\n")
    return table


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    """Run the project's Snakefile in ``workdir``; (seconds, stdout + stderr)."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    t0 = time.perf_counter()
    r = subprocess.run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                        "--configfile", str(workdir / "config.yaml"), *args],
                       cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{(r.stdout + r.stderr)[-3000:]}")
    return seconds, r.stdout + r.stderr


def job_stats(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    stats, inside = {}, False
    for line in out.splitlines():
        if line.startswith("Job stats:"):
            inside, stats = True, {}
        elif inside:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                stats[m.group(1)] = int(m.group(2))
            elif stats and not line.strip():
                inside = False
    return stats


def submissions(out: str) -> tuple[int, int]:
    """(group jobs, ungrouped jobs other than the target rule `all`) listed by a dry run:
    group members are indented under 'Group job ...', ungrouped jobs start at column 0."""
    groups = sum(1 for line in out.splitlines() if re.search(r"\] Group job \w+", line))
    single = sum(1 for line in out.splitlines()
                 if re.match(r"^(rule|checkpoint) (\w+):$", line) and line != "rule all:")
    return groups, single


def profile_without_groups(dest: Path) -> Path:
    """A copy of the slurm profile without its `groups`."""
    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    profile.pop("groups", None)
    profile.pop("group-components", None)
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile))
    return dest


def main() -> None:
    results: dict = {"entries": N_ENTRIES, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    with tempfile.TemporaryDirectory(prefix="cryosse-bench-") as tmp:
        tmp = Path(tmp)
        table = synthetic_table(tmp / "data", N_ENTRIES)
        work = tmp / "work"
        work.mkdir()
        (work / "config.yaml").write_text(yaml.safe_dump({"structures": str(table)}))

        # planning (dry run), workstation profile, then slurm profile with its groups
        local_s, local_out = snakemake(work, "-n", "--workflow-profile",
                                       str(ROOT / "workflow/profiles/default"), "--cores", "2")
        stats = job_stats(local_out)
        n_jobs = sum(stats.values())
        slurm_s, slurm_out = snakemake(work, "-n", "--executor", "slurm", "--workflow-profile",
                                       str(ROOT / "workflow/profiles/slurm"))
        groups, single = submissions(slurm_out)
        flat_s, flat_out = snakemake(work, "-n", "--executor", "slurm", "--workflow-profile",
                                     str(profile_without_groups(tmp / "profile-no-groups")))
        flat_groups, flat_single = submissions(flat_out)
        assert flat_groups == 0 and flat_single == n_jobs - stats.get("all", 0)
        ms = lambda seconds: round(1000 * seconds / n_jobs, 2)
        results["planning"] = {
            "jobs": n_jobs, "jobs_by_rule": stats,
            "workstation_s": round(local_s, 2), "slurm_grouped_s": round(slurm_s, 2),
            "slurm_ungrouped_s": round(flat_s, 2), "ms_per_job_workstation": ms(local_s),
            "ms_per_job_slurm_grouped": ms(slurm_s), "ms_per_job_slurm_ungrouped": ms(flat_s)}
        results["submissions"] = {
            "without_grouping": flat_single, "with_grouping": groups + single,
            "group_jobs": groups, "ungrouped_jobs": single,
            "reduction": round(flat_single / (groups + single), 1)}

        # per-job start-up: what each Slurm job pays before its command runs
        first = table.read_text().splitlines()[1].split("\t")[0]
        startup = [snakemake(work, "-n", f"results/entries/{first}/sse.tsv")[0] for _ in range(2)]
        results["job_startup_s"] = round(min(startup), 2)

        # per-entry data preparation, real run on embedded entries
        prep = tmp / "prep"
        prep.mkdir()
        (prep / "config.yaml").write_text(yaml.safe_dump({"structures": str(EMBEDDED),
                                                          "entries": PREP_ENTRIES}))
        targets = [f"results/entries/{e}/labels.mrc" for e in PREP_ENTRIES] + \
                  [f"results/components/{e}" for e in PREP_ENTRIES]
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        prep_s, _ = snakemake(prep, "--cores", "2", *targets)
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        results["prep"] = {"entries": PREP_ENTRIES, "wall_s": round(prep_s, 1),
                           "cpu_s_per_entry": round(cpu / len(PREP_ENTRIES), 1)}

    # split: all-against-all sequence identity, cost per pair
    from cryosse.prep.split import sequence_identity
    rng = random.Random(0)
    pairs = [tuple("".join(rng.choice("ACDEFGHIKLMNPQRSTVWY") for _ in range(300)) for _ in "ab")
             for _ in range(40)]
    t0 = time.perf_counter()
    for a, b in pairs:
        sequence_identity(a, b)
    results["split_ms_per_pair_300aa"] = round(1000 * (time.perf_counter() - t0) / len(pairs), 2)

    p, s = results["planning"], results["submissions"]
    print(f"{N_ENTRIES} entries, {p['jobs']} jobs before the dataset checkpoint")
    print(f"  planning (snakemake -n): workstation {p['workstation_s']:.1f} s "
          f"({p['ms_per_job_workstation']:.1f} ms/job); slurm profile {p['slurm_grouped_s']:.1f} s "
          f"({p['ms_per_job_slurm_grouped']:.1f} ms/job), without its groups "
          f"{p['slurm_ungrouped_s']:.1f} s ({p['ms_per_job_slurm_ungrouped']:.1f} ms/job)")
    print(f"  Slurm submissions: {s['without_grouping']} without grouping, {s['with_grouping']} with "
          f"the profile's groups ({s['group_jobs']} group jobs + {s['ungrouped_jobs']} single), "
          f"{s['reduction']}x fewer")
    print(f"  per-job Snakemake start-up inside a cluster job: {results['job_startup_s']:.1f} s")
    print(f"  data preparation: {results['prep']['cpu_s_per_entry']:.1f} CPU s per embedded entry "
          f"({len(PREP_ENTRIES)} entries, {results['prep']['wall_s']:.0f} s wall on 2 cores)")
    print(f"  split: {results['split_ms_per_pair_300aa']:.1f} ms per chain pair (300 residues), "
          "all pairs in one job")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written: {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
