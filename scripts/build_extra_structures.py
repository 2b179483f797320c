#!/usr/bin/env python
"""Rebuild ``resources/structures_extra`` (the bundled model's extra training entries).

The entries are the PRODIGY binding-affinity benchmark as shipped in the PyPI sdist of
``prodigy-prot`` 2.4.0 (``tests/test_data/dataset.tgz``, folder ``PRODIGYdataset/``): crystal
structures of protein-protein complexes, ATOM records only. Each file is gzipped unchanged.

An entry is left out when one of its protein chains (at least 30 residues with a CA atom) is
``--max-identity`` or more identical (cryosse's sequence identity) to

* a chain of a fitted model of the real maps that judge the bundled model (``--real-maps``,
  the cases of ``bench/real_maps.yaml``), so that no evaluated protein is trained on; or
* a chain of the embedded default's validation or test split (``--splits``, the workflow's
  ``results/dataset/splits.tsv``). ``cryosse training-set`` screens again at build time, so this
  only keeps useless files out of the repository.

Usage (needs PyPI the first time)::

    pip download --no-deps --no-binary prodigy-prot prodigy-prot==2.4.0 -d /tmp/prodigy
    python scripts/build_extra_structures.py --sdist /tmp/prodigy/prodigy_prot-2.4.0.tar.gz \\
        --real-maps ../shared/data --splits results/dataset/splits.tsv
"""
from __future__ import annotations

import argparse
import gzip
import io
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cryosse.io import read_model, read_tsv  # noqa: E402
from cryosse.evaluate.realmaps import read_cases  # noqa: E402
from cryosse.prep.trainingset import ca_residues, first_homologue, protein_chains  # noqa: E402

OUT = ROOT / "resources" / "structures_extra"
SDIST_TOP = "prodigy_prot-2.4.0"
MEMBER = f"{SDIST_TOP}/tests/test_data/dataset.tgz"
COLUMNS = ["entry", "file", "chains", "residues", "pdb_id", "source_package", "source_version", "source_path"]


def benchmark_files(sdist: Path) -> dict[str, bytes]:
    """PDB id -> file content of every complex in the sdist's dataset.tgz (macOS ._ files skipped)."""
    with tarfile.open(sdist) as outer:
        inner_bytes = outer.extractfile(MEMBER).read()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for m in inner.getmembers():
            name = Path(m.name).name
            if m.isfile() and name.endswith(".pdb") and not name.startswith("._"):
                out[name[:-4].upper()] = inner.extractfile(m).read()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", required=True, type=Path, help="prodigy_prot-2.4.0.tar.gz")
    ap.add_argument("--real-maps", required=True, type=Path, help="the real maps' folder (../shared/data)")
    ap.add_argument("--cases", type=Path, default=ROOT / "bench" / "real_maps.yaml", help="the real-map cases")
    ap.add_argument("--splits", required=True, type=Path, help="the embedded default's splits.tsv")
    ap.add_argument("--max-identity", type=float, default=0.30)
    ap.add_argument("-o", "--output", type=Path, default=OUT)
    a = ap.parse_args(argv)

    judged = []
    for m in sorted({c.model for c in read_cases(a.cases)[0]}):
        judged += [(m, q) for _, q in protein_chains(read_model(a.real_maps / m))]
    held = [(r["id"], r["sequence"]) for r in read_tsv(a.splits) if r["split"] in ("val", "test")]
    embedded = {r["pdb_id"] for r in read_tsv(ROOT / "src/cryosse/data/structures/structures.tsv")}
    a.output.mkdir(parents=True, exist_ok=True)
    rows = []
    for pdb_id, content in sorted(benchmark_files(a.sdist).items()):
        entry = pdb_id.lower()
        tmp = a.output / f".{entry}.pdb"
        tmp.write_bytes(content)
        try:
            st = read_model(tmp)
            chains = protein_chains(st)
            residues = [ca_residues(st[0][c]) for c, _ in chains]
        finally:
            tmp.unlink()
        hit = first_homologue(chains, judged + held, a.max_identity)
        if pdb_id in embedded or hit:
            why = "already embedded" if pdb_id in embedded else f"chain {hit[0]} {hit[2]:.0%} identical to {hit[1]}"
            print(f"{pdb_id}: left out ({why})", file=sys.stderr)
            continue
        with gzip.GzipFile(a.output / f"{entry}.pdb.gz", "wb", mtime=0) as g:
            g.write(content)
        rows.append([entry, f"{entry}.pdb.gz", ",".join(c for c, _ in chains), ",".join(map(str, residues)),
                     pdb_id, "prodigy-prot (PyPI sdist)", "2.4.0", f"{MEMBER} → PRODIGYdataset/{pdb_id}.pdb"])
    table = a.output / "structures.tsv"
    tmp = table.with_suffix(".tsv.tmp")
    tmp.write_text("\n".join("\t".join(r) for r in [COLUMNS] + rows) + "\n")
    tmp.replace(table)
    print(f"{table}: {len(rows)} entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
