#!/usr/bin/env python
"""Rebuild the embedded default structures from installable packages.

The embedded data set is made only of real protein structures that ship inside
packages anyone can install offline:

* PyPI ``MDAnalysisTests`` (its ``data/`` folder, including the 50 single
  chains of ``data/dssp`` that come with reference DSSP strings),
* the biopython source distribution on PyPI (``Tests/PDB``),
* Debian's ``pymol-data`` (``/usr/share/pymol``).

For every file, the first model is kept, waters, ligands, hydrogens and
alternative conformations are removed, and each protein chain of at least
``--min-residues`` residues whose sequence is less than 95% identical to a
chain already taken is selected.  Chains that are not selected stay in the
file (their density surrounds the selected chains), but are not samples.

Usage (needs network access to PyPI and the Debian archive the first time)::

    pip install MDAnalysisTests==2.11.0
    pip download --no-deps --no-binary :all: biopython==1.88 -d /tmp/bio
    apt-get install pymol-data
    python scripts/build_embedded_data.py --biopython-sdist /tmp/bio/biopython-1.88.tar.gz
"""
from __future__ import annotations

import argparse
import csv
import gzip
import importlib.metadata
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

import gemmi

OUT = Path(__file__).resolve().parents[1] / "src" / "cryosse" / "data" / "structures"
PDB_ID = re.compile(r"^[0-9][a-z0-9]{3}$", re.I)
#: Files that are not PDB entries but are named after one in their package docs.
KNOWN_IDS = {"adk_closed": "1AKE", "il2": "1M47"}
#: Files that are synthetic, broken or duplicates of a better copy.
SKIP = {"cryst_then_model", "model_then_cryst", "incomplete", "varying_occ_tmp", "odd01", "odd02",
        "1hpv", "cobrotoxin_dry_neutral_0", "adk_open", "adk_oplsaa", "1grm_single", "A6PA6_alpha",
        "1A8O_min", "a_structure", "7CFN_aligned"}


def candidate_files(bio_root: Path | None) -> list[tuple[str, str, Path]]:
    """(package, version, path) of every structure file to consider, in a fixed order."""
    out = []
    mda = Path(importlib.util.find_spec("MDAnalysisTests").origin).parent / "data"
    ver = importlib.metadata.version("MDAnalysisTests")
    for p in sorted((mda / "dssp").glob("*.pdb.gz")):
        out.append(("MDAnalysisTests", ver, p))
    for p in sorted(mda.iterdir()):
        if p.name.endswith((".pdb", ".pdb.gz", ".pdbx")):
            out.append(("MDAnalysisTests", ver, p))
    if bio_root is not None:
        for p in sorted((bio_root / "Tests" / "PDB").iterdir()):
            if p.suffix in (".cif", ".pdb"):
                out.append(("biopython (sdist)", bio_root.name.split("-")[-1], p))
    pymol = Path("/usr/share/pymol")
    if pymol.is_dir():
        ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "pymol-data"],
                             capture_output=True, text=True).stdout.strip()
        for p in sorted(pymol.glob("*/*.pdb")) + sorted(pymol.glob("*/*/*.pdb")):
            out.append(("pymol-data (Debian)", ver, p))
    return out


def stem(path: Path) -> str:
    name = path.name
    for suf in (".gz", ".pdbx", ".pdb", ".cif", ".ent"):
        name = name.removesuffix(suf)
    return name


def read(path: Path) -> gemmi.Structure:
    fmt = gemmi.CoorFormat.Mmcif if path.name.endswith(".pdbx") else gemmi.CoorFormat.Detect
    st = gemmi.read_structure(str(path), format=fmt)
    st.setup_entities()
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--biopython-sdist", type=Path, help="biopython-X.tar.gz source distribution")
    ap.add_argument("--min-residues", type=int, default=50)
    ap.add_argument("--max-identity", type=float, default=0.95)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    bio_root = None
    if args.biopython_sdist:
        with tarfile.open(args.biopython_sdist) as tf:
            members = [m for m in tf.getmembers() if "/Tests/PDB/" in m.name]
            tf.extractall(tmp.name, members=members, filter="data")
        bio_root = next(Path(tmp.name).iterdir())
    for old in OUT.glob("*.pdb.gz"):
        old.unlink()
    taken: list[str] = []
    rows = []
    used_entries = set()
    for package, version, path in candidate_files(bio_root):
        s = stem(path)
        if s in SKIP:
            continue
        try:
            st = read(path)
        except Exception as exc:  # broken test files are expected in test-data packages
            print(f"skip {path.name}: {exc}")
            continue
        if len(st) == 0:
            continue
        del st[1:]  # first model only
        st.remove_hydrogens()
        st.remove_ligands_and_waters()
        st.remove_alternative_conformations()
        st.remove_empty_chains()
        model = st[0]
        for ch in model:  # blank chain names are not usable as identifiers
            if not ch.name.strip():
                ch.name = "A"
        protein, chains = [], []
        for ch in model:
            pol = ch.get_polymer()
            if pol.check_polymer_type() not in (gemmi.PolymerType.PeptideL, gemmi.PolymerType.PeptideD):
                continue
            protein.append(ch.name)
            seq = gemmi.one_letter_code([r.name for r in pol])
            n_ca = sum(1 for r in pol if r.find_atom("CA", "*"))
            if n_ca < args.min_residues:
                continue
            dup = False
            for other in taken:
                al = gemmi.align_string_sequences(list(seq), list(other), [])
                if al.match_count / min(len(seq), len(other)) >= args.max_identity:
                    dup = True
                    break
            if not dup:
                taken.append(seq)
                chains.append((ch.name, n_ca))
        if not chains:
            continue
        for ch in list(model):
            if ch.name not in protein:
                model.remove_chain(ch.name)
        pdb_id = s[:4].upper() if PDB_ID.match(s[:4]) and (len(s) == 4 or len(s) == 5) else KNOWN_IDS.get(s, "-")
        entry = re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")
        if entry in used_entries:
            entry = f"{entry}-{len(used_entries)}"
        used_entries.add(entry)
        st.setup_entities()
        st.name = pdb_id if pdb_id != "-" else entry.upper()
        text = st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))
        header = f"HEADER    {'EMBEDDED STRUCTURE':<40}{'':9}   {st.name[:4]:<4}\n"
        with gzip.GzipFile(OUT / f"{entry}.pdb.gz", "wb", mtime=0) as fh:
            fh.write((header + text).encode())
        rows.append({
            "entry": entry, "file": f"{entry}.pdb.gz", "chains": ",".join(c for c, _ in chains),
            "residues": ",".join(str(n) for _, n in chains), "pdb_id": pdb_id,
            "source_package": package, "source_version": version,
            "source_path": str(path.relative_to(bio_root.parent) if bio_root and bio_root in path.parents
                               else path.relative_to(path.parents[2]) if "MDAnalysisTests" in str(path)
                               else path),
        })
        print(f"{entry:24s} {pdb_id:5s} {rows[-1]['chains']:12s} {package}")
    with open(OUT / "structures.tsv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    n = sum(len(r["chains"].split(",")) for r in rows)
    size = sum(f.stat().st_size for f in OUT.glob("*.pdb.gz"))
    print(f"{len(rows)} entries, {n} chains, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
