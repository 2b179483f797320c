"""The split at archive scale: clustering time per chain and the homologues it keeps together.

Synthetic families (cryosse.research.families: a random ancestor and variants at 25, 35, 50
and 90 % designed identity, with indels; every 7th entry a homo-oligomer of 2-12 copies) give
5000+ distinct sequences in ~10 000 chains. ``split_chains`` (MMseqs2 prefilter + exact
realignment, then splits and folds) is timed on them. Then, independently of the prefilter:

- every designed pair at >= 50 % identity (ancestor-variant) must share a cluster;
- every pair within a family is aligned exactly (``sequence_identity``): those at >= 30 %
  in different clusters are prefilter misses (recall of the prefilter at the threshold);
- a random sample of pairs across families is aligned exactly: chance pairs >= 30 % that the
  prefilter did not link would be split apart by it but not by the exhaustive method.

Prints the figures and writes bench/results/split.json. Run: ``make bench`` or
``python bench/bench_split.py [--families N]``. The done-when limit: 10 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cryosse.prep.clustering import mmseqs_available  # noqa: E402
from cryosse.prep.split import SplitConfig, cluster_chains, sequence_identity, split_chains  # noqa: E402
from cryosse.research.families import synthetic_families  # noqa: E402

OUT = ROOT / "bench/results/split.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", type=int, default=1100)
    ap.add_argument("--cross-pairs", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    if not mmseqs_available():
        print("bench_split: mmseqs not found (Debian package mmseqs2; make setup): skipped")
        return 0
    identities = (0.25, 0.35, 0.50, 0.90)
    chains, relations = synthetic_families(a.families, identities, seed=0)
    distinct = len({c.sequence for c in chains})
    print(f"{len(chains)} chains, {distinct} distinct sequences, {a.families} families")

    t0, c0 = time.perf_counter(), time.process_time()
    stats: dict = {}
    clusters = cluster_chains(chains, 0.30, threads=a.threads, stats=stats)
    t_cluster, cpu_cluster = time.perf_counter() - t0, time.process_time() - c0
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        counts = split_chains(chains, SplitConfig(), Path(tmp) / "splits.tsv", Path(tmp) / "folds.tsv")
        t_split = time.perf_counter() - t1
    children = os.times()
    print(f"cluster_chains: {t_cluster:.1f} s wall ({t_cluster / len(chains) * 1e3:.2f} ms per chain), "
          f"{stats['aligned']} exact alignments; split_chains (cluster + splits + folds + tables): {t_split:.1f} s")

    close = [(i, j) for i, j, ident in relations if ident >= 0.5]
    close_apart = [(chains[i].id, chains[j].id) for i, j in close if clusters[i] != clusters[j]]
    print(f">= 50 % designed pairs split apart: {len(close_apart)} of {len(close)}")

    t2 = time.perf_counter()
    family: dict[int, list[int]] = {}
    for i, j, _ in relations:
        family.setdefault(i, [i]).append(j)
    missed, positives, within = [], 0, 0
    for members in family.values():
        for i, j in itertools.combinations(members, 2):
            within += 1
            x = sequence_identity(chains[i].sequence, chains[j].sequence)
            if x >= 0.30:
                positives += 1
                if clusters[i] != clusters[j]:
                    missed.append((chains[i].id, chains[j].id, round(x, 3)))
    rng = np.random.default_rng(1)
    heads = sorted(family)
    cross_pos, cross_missed = 0, []
    for _ in range(a.cross_pairs):
        f1, f2 = rng.choice(len(heads), 2, replace=False)
        i, j = rng.choice(family[heads[f1]]), rng.choice(family[heads[f2]])
        x = sequence_identity(chains[i].sequence, chains[j].sequence)
        if x >= 0.30:
            cross_pos += 1
            if clusters[i] != clusters[j]:
                cross_missed.append((chains[i].id, chains[j].id, round(x, 3)))
    t_check = time.perf_counter() - t2
    print(f"within-family pairs: {within}, {positives} at >= 30 % (exact), {len(missed)} of them split apart "
          f"(prefilter recall {1 - len(missed) / max(positives, 1):.4f}); random cross-family pairs: "
          f"{a.cross_pairs}, {cross_pos} at >= 30 %, {len(cross_missed)} split apart ({t_check:.0f} s)")
    result = {
        "host": {"cpus": os.cpu_count(), "threads": a.threads, "machine": platform.machine()},
        "chains": len(chains), "distinct_sequences": distinct, "families": a.families,
        "clusters": len(set(clusters)), "engine": stats["engine"], "exact_alignments": stats["aligned"],
        "cluster_wall_s": round(t_cluster, 2), "cluster_cpu_s_python": round(cpu_cluster, 2),
        "cpu_s_children": round(children.children_user + children.children_system, 2),
        "ms_per_chain": round(t_cluster / len(chains) * 1e3, 3), "split_chains_wall_s": round(t_split, 2),
        "counts": counts, "close_pairs": len(close), "close_pairs_split_apart": close_apart,
        "within_family_pairs": within, "within_family_at_30": positives, "within_family_missed": missed,
        "cross_pairs": a.cross_pairs, "cross_at_30": cross_pos, "cross_missed": cross_missed,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    ok = not close_apart and not missed and not cross_missed and t_split < 600
    print("OK" if ok else "FAILED", f"(results: {a.out})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
