"""Real-world models: multi-model files, alternative conformations, modified residues,
non-protein parts, missing backbone atoms, chain breaks and insertion codes."""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import gemmi
import pytest

from cryosse.io import model_report, protein_atoms, read_model
from cryosse.prep.sse import assign_sse


@pytest.fixture(scope="module")
def mda_data() -> Path:
    spec = importlib.util.find_spec("MDAnalysisTests")
    if spec is None:
        pytest.skip("MDAnalysisTests is not installed (pip install '.[test]')")
    return Path(spec.origin).parent / "data"


def _lines(path: Path) -> list[str]:
    text = gzip.open(path, "rt").read() if path.suffix == ".gz" else path.read_text()
    return text.splitlines()


def test_first_model_of_nmr_ensemble(mda_data):
    path = mda_data / "nmr_neopetrosiamide.pdb"
    assert gemmi.read_structure(str(path)).__len__() > 1
    st = read_model(path)
    assert len(st) == 1
    first = gemmi.read_structure(str(path))[0]
    ca = st[0][0][0].find_atom("CA", "*").pos
    assert ca.dist(first[0][0].find_atom("CA", "*").pos) < 1e-6


def test_highest_occupancy_altloc_is_kept(tmp_path, mda_data):
    """4E43 (real file, A/B conformers); in a copy, residue GLU 34's B gets the higher occupancy."""
    src = mda_data / "4E43.pdb"
    st = read_model(src)
    assert model_report(st)["n_altloc_chosen"] == 7
    lines = []
    for ln in _lines(src):
        if ln.startswith("ATOM") and ln[17:20] == "GLU" and ln[21] == "A" and ln[22:26].strip() == "34" \
                and ln[16] in "AB":
            ln = ln[:54] + ("  0.30" if ln[16] == "A" else "  0.70") + ln[60:]
        lines.append(ln)
    swapped = tmp_path / "swapped.pdb"
    swapped.write_text("\n".join(lines) + "\n")
    raw = gemmi.read_structure(str(swapped))
    want = {a.name: a.pos for a in raw[0]["A"]["34"][0] if a.altloc == "B"}
    res = read_model(swapped)[0]["A"]["34"][0]
    assert res.flag == "a" and len(want) > 3
    for a in res:
        if a.name in want:
            assert a.pos.dist(want[a.name]) < 1e-6, a.name
    assert len({a.name for a in res}) == len(res)  # one conformer per atom


def test_insertion_codes_are_kept(mda_data):
    st = read_model(mda_data / "1osm.pdb.gz")
    rep = model_report(st)
    assert rep["n_insertion_codes"] == 11
    keys = [r.key for r in assign_sse(st)]
    assert len(keys) == len(set(keys)) and any(k[2] for k in keys)
    assert {r[2] for r in protein_atoms(st).residues} > {""}


def _synthetic(tmp_path: Path, structures_dir: Path) -> Path:
    """1A8O (real, selenomethionine HETATM MSE residues) with: one residue without its O, a gap
    (residues 200-201 removed), a water, a zinc ion and a two-residue DNA chain."""
    out = []
    for ln in _lines(structures_dir / "1a8o.pdb.gz"):
        if ln.startswith(("ATOM", "HETATM")):
            num = int(ln[22:26])
            if num in (200, 201) or (num == 190 and ln[12:16] == " O  "):
                continue
        if ln.startswith(("END", "MASTER", "CONECT")):
            continue
        out.append(ln)
    out += ["HETATM 9001  O   HOH W   1      10.000  10.000  10.000  1.00 20.00           O",
            "HETATM 9002 ZN    ZN A 301      12.000  10.000  10.000  1.00 20.00          ZN",
            "ATOM   9003  P    DA D   1      30.000  30.000  30.000  1.00 20.00           P",
            "ATOM   9004  C1'  DA D   1      31.000  30.000  30.000  1.00 20.00           C",
            "ATOM   9005  P    DT D   2      36.000  30.000  30.000  1.00 20.00           P",
            "ATOM   9006  C1'  DT D   2      37.000  30.000  30.000  1.00 20.00           C", "END"]
    path = tmp_path / "synthetic.pdb"
    path.write_text("\n".join(out) + "\n")
    return path


def test_modified_missing_breaks_and_non_protein(tmp_path, structures_dir):
    raw = gemmi.read_structure(str(structures_dir / "1a8o.pdb.gz"))
    n_mse = sum(r.name == "MSE" for r in raw[0]["A"])
    n_met = n_mse + sum(r.name == "MET" for r in raw[0]["A"])
    assert n_mse > 0
    st = read_model(_synthetic(tmp_path, structures_dir))
    assert [c.name for c in st[0]] == ["A"]  # DNA chain D, water and zinc are gone
    names = [r.name for r in st[0]["A"]]
    assert "MSE" not in names and names.count("MET") == n_met and "ZN" not in names
    rep = model_report(st)
    assert rep["n_modified"] == n_mse
    assert all(a.name != "SE" for r in st[0]["A"] for a in r)
    assert rep["n_missing_backbone"] == 1
    assert rep["n_chain_breaks"] == 1  # at the gap (the residue without O keeps its C-N bond)
    sse = assign_sse(st)
    assert [r.complete for r in sse].count(False) == 1
    assert sum(r.break_before for r in sse) == rep["n_chain_breaks"]
