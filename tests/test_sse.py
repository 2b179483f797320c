"""DSSP assignment against the reference DSSP strings that ship with MDAnalysisTests."""
from __future__ import annotations

import numpy as np

from cryosse.io import read_model
from cryosse.sse import assign_sse, read_sse, sse_class_of, write_sse


def test_agrees_with_reference_dssp_strings(mda_dssp_dir, capsys):
    total = agree = 0
    chains = 0
    for pdb in sorted(mda_dssp_dir.glob("*.pdb.gz")):
        ref_file = pdb.with_name(pdb.name.replace(".pdb.gz", ".pdb.dssp"))
        if not ref_file.exists():
            continue
        ref = ref_file.read_text().split()[0]
        got = "".join(r.dssp for r in assign_sse(read_model(pdb)))
        assert len(got) == len(ref), pdb.name
        total += len(ref)
        agree += sum(a == b for a, b in zip(got, ref))
        chains += 1
    assert chains >= 45
    with capsys.disabled():
        print(f"\nDSSP agreement with MDAnalysisTests references: {agree / total:.4f} "
              f"over {total} residues in {chains} chains")
    assert agree / total >= 0.99


def test_class_mapping():
    assert [sse_class_of(c) for c in "HGIEBTS- "] == [1, 1, 1, 2, 2, 3, 3, 3, 3]


def test_table_round_trip(tmp_path, structures_dir):
    res = assign_sse(read_model(structures_dir / "1a8o.pdb.gz"))
    write_sse(res, tmp_path / "sse.tsv")
    assert read_sse(tmp_path / "sse.tsv") == res
    codes = np.array([r.dssp for r in res])
    assert (codes == "H").mean() > 0.5  # 1A8O (HIV capsid C-terminal domain) is all-alpha
