"""A rehearsed harvest, short or long: write a rehearsal archive (cryosse.research.rehearse),
serve it on 127.0.0.1 with tests/fetch_server.py (faults injected: a 503 and a truncated
transfer on the first map, a corrupted first model), run the online workflow up to the data
set (``results/dataset/manifest.tsv``) on ``--cores``, and report entries/hour, CPU s and peak
RSS per job of the rules with Snakemake benchmark files (fetch_entry, prepare_map, crop_entry; simulate, sse, label, crop), cache disk per entry
and rejections by reason (ids and numbers blanked). Writes WORKDIR/rehearsal.json. Rerunning the same command resumes, also after ``kill -9`` (the stale lock is removed, jobs
left incomplete are rerun); entries/hour is then that of the resumed part.

    python bench/rehearse/run.py WORKDIR --entries 20 --scale 0.12 --template …/emd-0001.xml
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from cryosse.prep.structures import load_structures  # noqa: E402
from cryosse.research.rehearse import write_archive  # noqa: E402
from fetch_server import FaultServer  # noqa: E402


def archive_files(www: Path) -> dict[str, Path]:
    return {"/" + str(f.relative_to(www)): f for f in www.rglob("*") if f.is_file() and f.name != "entries.json"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work")
    ap.add_argument("--entries", type=int, default=20)
    ap.add_argument("--scale", type=float, default=0.12)
    ap.add_argument("--template", required=True)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    work = Path(a.work).resolve()
    www, run = work / "www", work / "run"
    run.mkdir(parents=True, exist_ok=True)
    if not (www / "entries.json").is_file():
        paths = [e.path for e in load_structures(ROOT / "src/cryosse/data/structures/structures.tsv")]
        write_archive(www, a.entries, paths, a.template, a.seed, a.scale)
    recs = json.loads((www / "entries.json").read_text())
    rows = ["emdb_id,resolution,fitted_pdbs,title,release_date"] + [
        f'{r["emdb"]},{r["resolution_a"]},{r["pdb"].upper()},"rehearsal",2020-01-01T00:00:00Z' for r in recs]
    # every entry is in the search answer, obsolete and withdrawn ones too (the real search
    # returns them unless the query asks for current_status REL)
    (work / "search.csv").write_text("\n".join(rows) + "\n")
    files = archive_files(www)
    files["/api/search/*"] = work / "search.csv"
    first = next(r for r in recs if not r["missing"])
    t0 = time.time()
    # the same port on every run of WORKDIR: the URLs are part of the stage settings, and a new
    # port would make Snakemake rerun every job instead of resuming
    port_file = work / "port"
    port = int(port_file.read_text()) if port_file.is_file() else 0
    try:
        server = FaultServer(files, port=port)
    except OSError:  # taken by something else since: a new one (this run then redoes the jobs)
        server = FaultServer(files)
    port_file.write_text(server.url.rsplit(":", 1)[1])
    with server as srv:
        n = first["emdb"][4:]
        srv.fault(f"/emdb/structures/EMD-{n}/map/emd_{n}.map.gz", "503", "truncate")
        srv.fault(f"/pdb/mmCIF/{first['pdb'][1:3]}/{first['pdb']}.cif.gz", "corrupt")
        cfg = {"structures": "", "emdb": {"entries": [], "query": {"enabled": True, "resolution_a": [5.0, 10.0]},
                                          "emdb_url": srv.url + "/emdb", "pdb_url": srv.url + "/pdb/mmCIF",
                                          "api_url": srv.url + "/api", "timeout_s": 10, "retries": 3}}
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        env = dict(os.environ, PATH=f"{ROOT / '.venv/bin'}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        smk = [str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(run),
               "--configfile", str(run / "config.yaml")]
        resumed = (run / ".snakemake").is_dir()
        if resumed:  # a run killed with -9 leaves its lock; this script owns WORKDIR
            subprocess.run([*smk, "--unlock"], cwd=run, env=env, capture_output=True, text=True)
        r = subprocess.run([*smk, "--cores", str(a.cores), "--keep-going", "--rerun-incomplete",
                            "results/dataset/manifest.tsv"], cwd=run, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        print(r.stdout[-2000:] + r.stderr[-3000:])
    manifest = list(csv.DictReader(open(run / "results/dataset/manifest.tsv"), delimiter="\t")) \
        if (run / "results/dataset/manifest.tsv").is_file() else []
    stages = {}
    for d in sorted((run / "benchmarks").glob("*")) if (run / "benchmarks").is_dir() else []:
        rows = [next(csv.DictReader(open(f), delimiter="\t")) for f in d.glob("*.tsv")]
        cpu = [float(b["cpu_time"]) for b in rows]
        stages[d.name] = {"jobs": len(rows), "cpu_s_per_job": round(sum(cpu) / max(len(cpu), 1), 2),
                          "peak_rss_mb": max(float(b["max_rss"]) for b in rows) if rows else None}
    reasons = Counter(re.sub(r"(EMD-\d+|PDB \w+|http\S+|\d+)", "…", m["reason"])[:120]
                      for m in manifest if m["status"] != "ok")
    disk = sum(f.stat().st_size for f in (run / "resources").rglob("*") if f.is_file()) if (run / "resources").exists() else 0
    steps = re.findall(r"(\d+) of \d+ steps", r.stderr)
    jobs_run = int(steps[-1]) if steps else 0  # Snakemake's last progress line ("Nothing to be done": 0)
    out = {"entries": len(recs), "resumed": resumed, "jobs_run": jobs_run, "wall_s": round(wall, 1), "entries_per_hour": round(len(recs) / wall * 3600, 1),
           "stages": stages, "cache_disk_mb_per_entry": round(disk / len(recs) / 1e6, 2),
           "samples_ok": sum(m["status"] == "ok" for m in manifest), "rejections": dict(reasons),
           "returncode": r.returncode}
    (work / "rehearsal.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0 if r.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
