"""Sequence clustering that scales: single linkage at ``max_identity`` with MMseqs2 as prefilter.

The cluster definition is that of :func:`cryosse.prep.split.cluster_chains`: two chains are
linked when they share an entry (or PDB id) or when :func:`~cryosse.prep.split.sequence_identity`
(Smith-Waterman, BLOSUM62, gaps 11/1, identities over the shorter length) is at least
``max_identity``; clusters are the connected components. Aligning every pair costs 2-4 ms a
pair, ~14 h for 5000 chains. Here only candidate pairs are aligned exactly:

1. chains of one entry / PDB id are linked without alignment; identical sequences are
   aligned once (identity 1);
2. MMseqs2 (``mmseqs search`` with :data:`MMSEQS_SEARCH`: its most sensitive settings, same
   BLOSUM62 and gap costs) searches the distinct sequences against each other; sequences
   shorter than :data:`SHORT` residues are aligned exactly with every other sequence, because
   at that length chance local alignments reach 30 % identity (1 in 6 random 20-mers against a
   300-mer) and no k-mer seed finds them; sequences shorter than :data:`MEDIUM` are searched
   a second time against every target (no top-300 cut);
3. every reported pair whose MMseqs2 identity (its identical positions over the shorter
   length) is at least ``max_identity - SLACK`` is aligned again with
   :func:`~cryosse.prep.split.sequence_identity` and linked when that exact value is at least
   ``max_identity``; pairs already in one cluster are skipped.

The recall of this prefilter at the 30 % threshold is measured, not assumed:
``tests/test_dataset.py`` compares the clusters with the exhaustive method on the embedded
set and on synthetic families with designed identities of 25-90 % (with indels), and
``bench/bench_split.py`` reports, for 5000+ chains, the pairs of known >= 50 % homologues that
end in different clusters (none allowed).

Without the ``mmseqs`` program (Debian package ``mmseqs2``; ``make setup`` installs it) the
exhaustive method is used, with a one-line notice on stderr.
"""
from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import CryosseError

__all__ = ["cluster_pairs", "mmseqs_available", "mmseqs_candidates", "MMSEQS_SEARCH", "SHORT", "MEDIUM", "SLACK"]

#: Sequences shorter than this are searched against all others without a k-mer prefilter.
SHORT = 60
#: Sequences shorter than this are also searched against every target (no top-300 cut, no
#: ungapped-score floor): at 30 % identity their alignments score low and can fall outside a
#: query's best 300 prefilter hits (one 80-residue pair at 32.5 % of 5132 did, in 5500 sequences).
MEDIUM = 160
#: MMseqs2 pairs within this much below the threshold are realigned exactly.
SLACK = 0.10


def mmseqs_available() -> bool:
    return shutil.which("mmseqs") is not None


def _run(args: list[str], log: Path) -> None:
    with open(log, "ab") as fh:
        r = subprocess.run(["mmseqs", *args], stdout=fh, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise CryosseError(f"mmseqs {args[0]} failed (exit {r.returncode}): {tail[0]}")


def _fasta(path: Path, seqs: dict[int, str]) -> None:
    path.write_text("".join(f">{k}\n{s}\n" for k, s in seqs.items()))


#: ``mmseqs search`` settings: most sensitive preset with 5-mers, a low ungapped-score floor,
#: the 300 best prefilter hits per query, E-value cut-off 1000 (BLOSUM62, gaps 11/1: its
#: defaults, as ours). On synthetic families around the threshold (124 pairs at 30-45 %,
#: lengths 40-450) ``-s 7.5`` alone missed 5 pairs at 30-34 % identity (lengths 63-269);
#: these settings missed none (docs/pipeline.md, "Split at scale").
MMSEQS_SEARCH = ["-s", "7.5", "-k", "5", "--min-ungapped-score", "5", "--max-seqs", "300", "-e", "1000",
                 "-c", "0", "--min-seq-id", "0", "--alignment-mode", "3"]


def mmseqs_candidates(seqs: list[str], threads: int = 2, min_ratio: float = 0.20) -> list[tuple[float, int, int]]:
    """``(mmseqs identity, i, j)`` with ``i < j`` for the pairs of ``seqs`` that MMseqs2 aligns
    with at least ``min_ratio`` identical positions over the shorter length, best first."""
    pairs: dict[tuple[int, int], float] = {}
    if not mmseqs_available():
        raise CryosseError("mmseqs not found on PATH (Debian package mmseqs2; make setup)")
    if len(seqs) < 2:
        return []
    with tempfile.TemporaryDirectory(prefix="cryosse-mmseqs-") as tmp:
        t = Path(tmp)
        log = t / "mmseqs.log"
        _fasta(t / "all.fasta", dict(enumerate(seqs)))
        db, res, out = str(t / "all"), str(t / "res"), t / "res.tsv"
        _run(["createdb", str(t / "all.fasta"), db, "-v", "1"], log)
        _run(["search", db, db, res, str(t / "tmp"), *MMSEQS_SEARCH, "--threads", str(threads), "-v", "1"], log)
        _run(["convertalis", db, db, res, str(out), "--format-output", "query,target,fident,alnlen", "-v", "1"], log)
        outs = [out]
        medium = {i: s for i, s in enumerate(seqs) if len(s) < MEDIUM}
        if medium:
            _fasta(t / "medium.fasta", medium)
            mdb, mres = str(t / "medium"), str(t / "mres")
            _run(["createdb", str(t / "medium.fasta"), mdb, "-v", "1"], log)
            wide = list(MMSEQS_SEARCH)
            wide[wide.index("--max-seqs") + 1] = str(len(seqs))
            wide[wide.index("--min-ungapped-score") + 1] = "0"
            _run(["search", mdb, db, mres, str(t / "mtmp"), *wide, "--threads", str(threads), "-v", "1"], log)
            _run(["convertalis", mdb, db, mres, str(t / "mres.tsv"), "--format-output", "query,target,fident,alnlen",
                  "-v", "1"], log)
            outs.append(t / "mres.tsv")
        for path in outs:
            with open(path) as fh:
                rows = [line.split("\t") for line in fh]
            for q, s, fident, alnlen in rows:
                i, j = int(q), int(s)
                if i == j:
                    continue
                # MMseqs2 14's nident column reads 0; fident is identities over the alignment length
                ratio = float(fident) * int(alnlen) / max(min(len(seqs[i]), len(seqs[j])), 1)
                if ratio >= min_ratio:
                    key = (min(i, j), max(i, j))
                    pairs[key] = max(ratio, pairs.get(key, 0.0))
    return sorted(((r, i, j) for (i, j), r in pairs.items()), key=lambda x: (-x[0], x[1], x[2]))


def cluster_pairs(n: int, links, groups: list[list[int]], seqs: list[str], max_identity: float, identity,
                  engine: str = "auto", threads: int = 2, stats: dict | None = None) -> list[int]:
    """Root of each item (0..n-1) under single linkage of ``links`` (pairs of items linked
    without alignment: one entry) and of distinct sequences at ``identity >= max_identity``:
    ``groups[k]`` lists the items whose sequence is ``seqs[k]``. ``engine``: ``auto`` (MMseqs2
    when installed, else exhaustive), ``mmseqs`` or ``exhaustive``; ``stats`` gets the engine
    used and the number of exact alignments."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    stats = stats if stats is not None else {}
    for i, j in links:
        union(i, j)
    for g in groups:
        for x in g[1:]:
            union(g[0], x)
    if engine == "auto":
        engine = "mmseqs" if mmseqs_available() else "exhaustive"
        if engine == "exhaustive" and len(seqs) > 200:
            print(f"cryosse split: mmseqs not found (Debian package mmseqs2): aligning all "
                  f"{len(seqs) * (len(seqs) - 1) // 2} pairs of distinct sequences", file=sys.stderr)
    if engine == "mmseqs":
        candidates = mmseqs_candidates(seqs, threads, max(max_identity - SLACK, 0.0))
        short = [k for k, s in enumerate(seqs) if len(s) < SHORT]
        stats["short"] = len(short)
        pairs = itertools.chain(((i, j) for _, i, j in candidates),
                                ((i, j) for i in short for j in range(len(seqs)) if j != i))
    elif engine == "exhaustive":
        pairs = ((i, j) for i in range(len(seqs)) for j in range(i + 1, len(seqs)))
    else:
        raise CryosseError(f"split engine {engine!r}: expected auto, mmseqs or exhaustive")
    aligned = 0
    for i, j in pairs:
        a, b = groups[i][0], groups[j][0]
        if find(a) == find(b):
            continue
        aligned += 1
        if identity(seqs[i], seqs[j]) >= max_identity:
            union(a, b)
    stats.update(engine=engine, aligned=aligned)
    return [find(i) for i in range(n)]
