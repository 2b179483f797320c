"""Diagnostics of the real-map benchmark: the working grid's ceiling (analytic shapes) and the
clean simulation of a fitted model (it must sit on the experimental density)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cryosse.io import Map


def _truth(shape=(48, 48, 48), voxel=1.0):
    """Helix (1): a ball of radius 9 Å; sheet (2): a 3 Å-thick plate; the rest other."""
    z, y, x = np.indices(shape) * voxel
    c = (np.asarray(shape) - 1) * voxel / 2
    lab = np.zeros(shape, np.uint8)
    lab[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - 14 * voxel) ** 2 <= 9.0 ** 2] = 1
    lab[(np.abs(x - 36 * voxel) <= 1.5) & (np.abs(y - c[1]) <= 12) & (np.abs(z - c[0]) <= 12)] = 2
    return Map(lab, (voxel,) * 3, (5.0, -3.0, 2.0))


def test_grid_ceiling_is_one_on_the_maps_own_grid_and_falls_with_coarser_grids():
    from cryosse.research.diagnostics import grid_ceiling

    truth = _truth()
    mask = np.ones(truth.data.shape, bool)
    own = grid_ceiling(truth, mask, 1.0)
    assert own["helix"] == pytest.approx(1.0) and own["sheet"] == pytest.approx(1.0)
    two, four = grid_ceiling(truth, mask, 2.0), grid_ceiling(truth, mask, 4.0)
    # a 9 Å ball survives a 2 Å grid almost intact; a 3 Å plate loses much more on a 4 Å grid
    assert 0.9 < two["helix"] < 1.0 and four["helix"] < two["helix"]
    assert four["sheet"] < two["sheet"] < 1.0 and four["sheet"] < 0.8


def test_clean_simulation_sits_on_the_experimental_density(shared_data, real_cases):
    """The clean simulation of each small case's fitted model correlates with the map in the
    scored zone far better than the same model shifted by 5 Å (the data README's fit check)."""
    from cryosse.evaluate.zone import load_case
    from cryosse.research.diagnostics import clean_simulation

    for case in real_cases:
        if case.name not in ("emd_2566_chain9", "emd_5168_monomer"):
            continue
        m, st, sse, truth, mask = load_case(case, shared_data)
        res = case.lowpass_a or case.native_resolution_a
        sim = clean_simulation(m, st, res)
        assert sim.data.shape == m.data.shape
        shifted = st.clone()
        for cra in shifted[0].all():
            cra.atom.pos = cra.atom.pos + type(cra.atom.pos)(5.0, 0.0, 0.0)
        off = clean_simulation(m, shifted, res)
        fit = np.corrcoef(sim.data[mask], m.data[mask])[0, 1]
        ctl = np.corrcoef(off.data[mask], m.data[mask])[0, 1]
        assert fit > 0.45 and fit > ctl + 0.15, (case.name, fit, ctl)


def test_real_maps_diagnosis_table(shared_data, real_cases, tmp_path):
    """`diagnose` adds both diagnoses per case and to the table; the grid ceiling lies above
    what the bundled model reaches."""
    from cryosse.inference import BUNDLED_CHECKPOINT
    from cryosse.evaluate.realmaps import format_real_table, score_real_maps

    cases = [c for c in real_cases if c.name == "emd_2566_chain9"]
    s = score_real_maps(BUNDLED_CHECKPOINT, cases, shared_data, tmp_path, diagnose=True)
    d = s["cases"][0]["diagnosis"]
    assert 0 < d["clean_simulation"]["helix"] <= 1
    assert d["grid_ceiling"]["helix"] > max(s["cases"][0]["voxel"]["helix"]["f1"], 0.85)
    table = format_real_table(s)
    assert d["trace_oracle"]["helix"] > max(s["cases"][0]["voxel"]["helix"]["f1"], 0.75)
    assert "clean simulation" in table and "Cα-trace oracle" in table and "grid ceiling" in table
    assert "clean simulation" in (tmp_path / "real_maps.md").read_text()
    assert (tmp_path / "diagnosis.png").stat().st_size > 5000


def test_trace_oracle_is_exact_for_a_trace_only_truth_and_below_one_with_side_chains(structures_dir):
    """Under the label rule, the truth of a Cα-only model IS the nearest-Cα labelling at 3 Å,
    so the oracle must reach F1 1 on it; with every heavy atom in the truth it must not."""
    import gemmi

    from cryosse.io import protein_atoms, read_model
    from cryosse.prep.labels import atom_classes, label_voxels, within
    from cryosse.research.diagnostics import trace_oracle
    from cryosse.prep.sse import assign_sse

    st = read_model(structures_dir / "2fvva.pdb.gz")  # 135 residues: 32 helix, 49 strand
    sse = assign_sse(st)
    atoms = protein_atoms(st)
    lo, hi = atoms.xyz.min(0) - 6, atoms.xyz.max(0) + 6
    shape = tuple(int(v) for v in np.ceil(hi - lo).astype(int)[::-1])
    grid = Map(np.zeros(shape, np.float32), (1.0, 1.0, 1.0), tuple(lo))
    mask = within(grid, atoms.xyz, 6.0)
    full = label_voxels(grid, atoms, atom_classes(atoms, sse))

    # the trace by gemmi's own selection, not by the oracle's code
    ca = protein_atoms(gemmi.Selection("/1/*/*/CA").copy_structure_selection(st))
    assert len(ca.xyz) == 135
    ca_truth = label_voxels(grid, ca, atom_classes(ca, sse))
    exact = trace_oracle(grid, st, sse, ca_truth, mask)
    assert exact["helix"] == pytest.approx(1.0) and exact["sheet"] == pytest.approx(1.0)
    assert exact["radius_a"] == {"helix": 3.0, "sheet": 3.0}

    o = trace_oracle(grid, st, sse, full, mask)
    assert 0.6 < o["helix"] < 0.97 and 0.5 < o["sheet"] < 0.97, o
    # side chains reach past 3 Å of their Cα: the best radius is larger than the label's 3 Å
    assert o["radius_a"]["helix"] > 3.0


def _case_file(tmp_path, model, extra: str) -> "Path":
    f = tmp_path / "cases.yaml"
    f.write_text(f"data: .\ncases:\n  - name: c\n    map: m.mrc\n    model: {model}\n"
                 f"    native_resolution_a: 6\n{extra}")
    return f


def test_a_case_places_copies_of_an_unplaced_model_and_trims_low_confidence(structures_dir, tmp_path):
    """A predicted model fitted into a map as rigid copies: each placement is one chain whose
    coordinates are R x + t of the model's (checked against numpy), and residues whose CA
    B-factor (pLDDT) is below min_plddt are gone."""
    import math

    from cryosse.evaluate.realmaps import read_cases
    from cryosse.evaluate.zone import case_structure
    from cryosse.io import read_model

    path = sorted(structures_dir.glob("*.pdb.gz"))[0]
    src = read_model(path)
    ch0 = src[0][0]
    bs = sorted(r.find_atom("CA", "*").b_iso for r in ch0 if r.find_atom("CA", "*"))
    cut = bs[len(bs) // 2]
    c, s = math.cos(0.3), math.sin(0.3)
    f = _case_file(tmp_path, path.name, f"    min_plddt: {cut}\n    placements:\n"
                   f"      - {{rotation: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], translation: [0, 0, 0]}}\n"
                   f"      - {{rotation: [[{c}, {-s}, 0], [{s}, {c}, 0], [0, 0, 1]], translation: [5, -2, 40]}}\n")
    (case,), _ = read_cases(f)
    st = case_structure(case, path)
    assert [ch.name for ch in st[0]] == ["A", "B"]
    kept = [r for r in ch0 if (r.find_atom("CA", "*") or r[0]).b_iso >= cut]
    assert len(st[0]["A"]) == len(kept) and len(st[0]["B"]) == len(kept)
    a = np.array([[at.pos.x, at.pos.y, at.pos.z] for r in st[0]["A"] for at in r])
    b = np.array([[at.pos.x, at.pos.y, at.pos.z] for r in st[0]["B"] for at in r])
    orig = np.array([[at.pos.x, at.pos.y, at.pos.z] for r in kept for at in r])
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    np.testing.assert_allclose(a, orig, atol=1e-3)
    np.testing.assert_allclose(b, orig @ rot.T + [5, -2, 40], atol=1e-3)


@pytest.mark.parametrize("placement, problem", [
    ("{rotation: [[1, 0, 0], [0, 1, 0], [0, 0, -1]], translation: [0, 0, 0]}", "not a proper rotation"),
    ("{rotation: [[2, 0, 0], [0, 1, 0], [0, 0, 1]], translation: [0, 0, 0]}", "not a proper rotation"),
    ("{rotation: [[1, 0, 0], [0, 1, 0]], translation: [0, 0, 0]}", "rotation must be 3x3"),
    ("{rotation: [[1, 0, 0], [0, 1, 0], [0, 0, 1]], translation: [0, .nan, 0]}", "finite"),
    ("{rotation: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}", "needs exactly rotation and translation"),
])
def test_bad_placements_are_one_line_errors_naming_the_file(tmp_path, placement, problem):
    from cryosse.errors import InputError
    from cryosse.evaluate.realmaps import read_cases

    f = _case_file(tmp_path, "x.pdb", f"    placements:\n      - {placement}\n")
    with pytest.raises(InputError) as e:
        read_cases(f)
    assert str(f) in str(e.value) and problem in str(e.value) and "\n" not in str(e.value)


def test_fit_placements_recovers_a_known_symmetric_fit(structures_dir, tmp_path):
    """scripts/fit_placements.py: a C2 map simulated from two rigid copies of a chain at a known
    placement; started from a copy 8° and 2 Å off, the refinement finds the placement again
    (copy RMSD under 1 Å) and prints placements that read back as a valid case."""
    import io
    import runpy
    import sys
    from contextlib import redirect_stdout

    from scipy.spatial.transform import Rotation

    from cryosse.evaluate.realmaps import _placements
    from cryosse.evaluate.zone import RealCase, case_structure
    from cryosse.io import read_model, write_map
    from cryosse.research.diagnostics import clean_simulation
    import yaml

    root = Path(__file__).resolve().parents[1]
    src = structures_dir / "1a8o.pdb.gz"
    st = read_model(src)
    xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for r in st[0][0] for a in r])
    box = Map(np.zeros((40, 40, 40), np.float32), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    axis = np.array([40.0, 40.0, 0.0])
    r_true = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    t_true = np.array([40.0, 58.0, 40.0]) - r_true @ xyz.mean(0)
    two = [(r_true, t_true), (Rotation.from_euler("z", 180, degrees=True).as_matrix() @ r_true,
                              Rotation.from_euler("z", 180, degrees=True).as_matrix() @ (t_true - axis) + axis)]
    case = RealCase("c", "m.mrc", str(src), 6.0, placements=tuple((tuple(map(tuple, r)), tuple(t)) for r, t in two))
    m = clean_simulation(box, case_structure(case, src), 6.0)
    write_map(m, tmp_path / "m.mrc")
    off = Rotation.from_euler("z", 8, degrees=True).as_matrix()
    c = xyz.mean(0) @ r_true.T + t_true
    fit = read_model(src)
    for res in fit[0][0]:
        for a in res:
            p = off @ (r_true @ [a.pos.x, a.pos.y, a.pos.z] + t_true - c) + c + [2.0, 0.0, 0.0]
            a.pos = type(a.pos)(*p)
    fit.write_pdb(str(tmp_path / "fit_1.pdb"))
    out = io.StringIO()
    argv = sys.argv
    sys.argv = ["fit_placements.py", str(tmp_path / "m.mrc"), str(src), str(tmp_path / "fit_1.pdb"),
                "--resolution", "6", "--order", "2", "--axis", "40", "40", "--max-evaluations", "150"]
    try:
        with redirect_stdout(out), pytest.raises(SystemExit) as e:
            runpy.run_path(str(root / "scripts" / "fit_placements.py"), run_name="__main__")
    finally:
        sys.argv = argv
    assert e.value.code == 0
    text = out.getvalue()
    got = _placements(yaml.safe_load(text[text.index("placements:"):])["placements"])
    assert len(got) == 2
    for (r, t), (rg, tg) in zip(two, got):
        rmsd = np.sqrt((((xyz @ np.asarray(rg).T + tg) - (xyz @ r.T + t)) ** 2).sum(1).mean())
        assert rmsd < 1.0
    assert "control, the model shifted 5 Å" in text
