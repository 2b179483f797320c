"""DSSP assignment against independent references: the reference DSSP strings that ship with
MDAnalysisTests, and the mkdssp program (Debian package dssp 4.x) on the same chains."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from cryosse.errors import CryosseError
from cryosse.io import read_model
from cryosse.prep.sse import (MkdsspError, SSEConfig, _assign_blocked, _backbone, assign_mkdssp,
                         assign_sse, read_sse, sse_class_of, write_sse)

needs_mkdssp = pytest.mark.skipif(shutil.which("mkdssp") is None,
                                  reason="mkdssp not installed (Debian package 'dssp'; `make setup` "
                                  "installs it when run as root with apt-get)")


def three(code: str) -> str:
    return "H" if code in "HGI" else "E" if code in "EB" else "-"


def _reference_chains(mda_dssp_dir):
    for pdb in sorted(mda_dssp_dir.glob("*.pdb.gz")):
        ref_file = pdb.with_name(pdb.name.replace(".pdb.gz", ".pdb.dssp"))
        if ref_file.exists():
            yield pdb, ref_file.read_text().split()[0]


def test_agrees_with_reference_dssp_strings(mda_dssp_dir, capsys):
    total = agree = 0
    chains = 0
    for pdb, ref in _reference_chains(mda_dssp_dir):
        got = "".join(r.dssp for r in assign_sse(read_model(pdb)))
        assert len(got) == len(ref), pdb.name
        total += len(ref)
        agree += sum(a == b for a, b in zip(got, ref))
        chains += 1
    assert chains >= 45
    with capsys.disabled():
        print(f"\npydssp vs MDAnalysisTests reference DSSP: {agree / total:.4f} "
              f"over {total} residues in {chains} chains")
    assert agree / total >= 0.99


@needs_mkdssp
def test_mkdssp_agrees_with_references(mda_dssp_dir, capsys):
    """mkdssp (eight states, mapped to three) vs the reference strings and vs pydssp."""
    total = vs_ref = vs_pydssp = 0
    states = set()
    for pdb, ref in _reference_chains(mda_dssp_dir):
        st = read_model(pdb)
        mk = assign_mkdssp(st)
        py = assign_sse(st, SSEConfig(engine="pydssp"))
        assert [r.key for r in mk] == [r.key for r in py]
        states |= {r.dssp for r in mk}
        total += len(ref)
        vs_ref += sum(three(m.dssp) == c for m, c in zip(mk, ref))
        vs_pydssp += sum(three(m.dssp) == p.dssp for m, p in zip(mk, py))
    with capsys.disabled():
        print(f"\nmkdssp vs reference DSSP: {vs_ref / total:.4f}; mkdssp vs pydssp: "
              f"{vs_pydssp / total:.4f} over {total} residues (helix = H,G,I; sheet = E,B)")
    assert vs_ref / total >= 0.97 and vs_pydssp / total >= 0.97
    assert {"H", "E", "G", "T", "S"} <= states  # eight-state codes are kept


def test_blocked_hbonds_equal_pydssp_dense(structures_dir):
    """The memory-bounded assignment is identical to pydssp's dense one, on real chains (one
    with several chains) and with blocks of a few rows."""
    from pydssp import pydssp_numpy

    for name in ("1a8o", "2xdga", "4e43", "19hc"):
        coords, donor, _, _ = _backbone(read_model(structures_dir / f"{name}.pdb.gz"))
        dense = np.argmax(pydssp_numpy.assign(coords, donor_mask=donor), -1)
        for block in (1000, 200_000):
            assert np.array_equal(_assign_blocked(coords, donor, block), dense), (name, block)


@needs_mkdssp
def test_mkdssp_keeps_eight_states_and_keys(tmp_path, structures_dir):
    st = read_model(structures_dir / "1osm.pdb.gz")  # insertion codes
    res = assign_sse(st, SSEConfig(engine="mkdssp"))
    assert any(r.icode for r in res) and all(r.dssp in "HGIPEBTS-" for r in res)
    assert sum(r.dssp != "-" for r in res) > 0.5 * len(res)
    write_sse(res, tmp_path / "sse.tsv")
    back = read_sse(tmp_path / "sse.tsv")
    assert [r.dssp for r in back] == [r.dssp for r in res]


def test_mkdssp_assigning_nothing_is_an_error(tmp_path, structures_dir):
    """A mkdssp that succeeds but assigns no residue (the HEADER trap) raises, never passes."""
    fake = tmp_path / "fake-mkdssp"
    fake.write_text("#!/bin/sh\nprintf '  #  RESIDUE AA STRUCTURE BP1\\n' > \"$4\"\n")
    fake.chmod(0o755)
    with pytest.raises(MkdsspError, match="assigned no residue"):
        assign_mkdssp(read_model(structures_dir / "1a8o.pdb.gz"), str(fake))
    with pytest.raises(CryosseError, match="not found"):
        assign_mkdssp(read_model(structures_dir / "1a8o.pdb.gz"), str(tmp_path / "none"))


def test_class_mapping_is_configurable(tmp_path):
    assert [sse_class_of(c) for c in "HGIEBTS- "] == [1, 1, 1, 2, 2, 3, 3, 3, 3]
    cfg = SSEConfig(helix=("H",), sheet=("E",))
    assert [sse_class_of(c, cfg.class_map) for c in "HGIEB"] == [1, 3, 3, 2, 3]
    with pytest.raises(ValueError):
        SSEConfig(engine="stride")
    from cryosse.prep.sse import ResidueSSE
    res = [ResidueSSE("A", 1, "", "ALA", "G"), ResidueSSE("A", 2, "", "ALA", "B")]
    write_sse(res, tmp_path / "s.tsv", cfg.class_map)
    from cryosse.prep.sse import residue_class
    assert [residue_class(r) for r in read_sse(tmp_path / "s.tsv")] == [3, 3]  # the table's mapping


def test_table_round_trip(tmp_path, structures_dir):
    res = assign_sse(read_model(structures_dir / "1a8o.pdb.gz"))
    write_sse(res, tmp_path / "sse.tsv")
    assert read_sse(tmp_path / "sse.tsv") == res
    codes = np.array([r.dssp for r in res])
    assert (codes == "H").mean() > 0.5  # 1A8O (HIV capsid C-terminal domain) is all-alpha
