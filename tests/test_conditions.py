"""Derived conditions of real maps (issue: the model on maps it was not tuned on): each transform
against an analytic or brute-force reference, and the robustness table on a real map."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cryosse.io import Map


def _gaussian(sigma_a: float, n: int = 64, voxel: float = 1.0) -> Map:
    z, y, x = (np.indices((n, n, n)) - n // 2) * voxel
    return Map(np.exp(-(x ** 2 + y ** 2 + z ** 2) / (2 * sigma_a ** 2)).astype(np.float32), (voxel,) * 3)


def _sigma2(m: Map) -> float:
    """Second moment per axis of a centred blob (Å²)."""
    n = m.data.shape[0]
    x = (np.arange(n) - n // 2) * m.voxel_size_a[0]
    w = m.data.sum(axis=(0, 1))
    return float((w * x ** 2).sum() / w.sum())


@pytest.mark.parametrize("b", [100.0, -30.0])
def test_bfactor_adds_b_over_8pi2_to_a_gaussians_variance(b):
    """exp(-B s²/4) on the amplitudes of a Gaussian of variance σ² gives variance σ² + B/(8π²)."""
    from cryosse.evaluate.conditions import bfactor

    m = _gaussian(2.5)
    out = bfactor(m, b, resolution_a=0.5)  # the cap (2 Å⁻¹) lies beyond Nyquist: no effect
    assert _sigma2(out) == pytest.approx(2.5 ** 2 + b / (8 * math.pi ** 2), rel=0.01)


def test_sharpening_is_flat_beyond_the_resolution():
    """Beyond 1/resolution the factor stays at its value there: a sharpened map gains no more
    than exp(|B|/(4 d²)) at any frequency."""
    from cryosse.evaluate.conditions import bfactor

    rng = np.random.default_rng(0)
    m = Map(rng.standard_normal((32, 32, 32)).astype(np.float32), (1.0,) * 3)
    out = bfactor(m, -100.0, resolution_a=6.0)
    gain = np.abs(np.fft.rfftn(out.data)) / np.abs(np.fft.rfftn(m.data))
    assert gain.max() == pytest.approx(math.exp(100 / (4 * 36)), rel=1e-3)


def test_molecular_volume_contour_encloses_the_models_volume():
    from cryosse.evaluate.conditions import molecular_volume_contour

    rng = np.random.default_rng(1)
    m = Map(rng.random((40, 40, 40)).astype(np.float32), (1.5,) * 3)
    level = molecular_volume_contour(m, 100)
    expected = 100 * 110 * 1.21 / 1.5 ** 3
    assert abs(int((m.data >= level).sum()) - expected) <= 1


def test_zone_segment_keeps_exactly_the_zone_in_a_tight_box():
    """Against brute-force distances: kept voxels are those within the radius; the box is the
    zone's bounding box plus one voxel."""
    from cryosse.evaluate.conditions import zone_segment

    rng = np.random.default_rng(2)
    m = Map(rng.random((30, 34, 38)).astype(np.float32) + 1.0, (1.2, 1.3, 1.1), (-5.0, 3.0, 10.0))
    xyz = np.array([[10.0, 20.0, 22.0], [13.5, 22.0, 25.0], [12.0, 24.0, 27.5]])
    seg = zone_segment(m, xyz, 3.5)
    gx, gy, gz = np.meshgrid(*seg.axis_coords(), indexing="ij")
    pts = np.stack([gx, gy, gz], -1).transpose(2, 1, 0, 3)  # [z, y, x, 3]
    d = np.min(np.linalg.norm(pts[..., None, :] - xyz, axis=-1), axis=-1)
    assert np.array_equal(seg.data > 0, d <= 3.5)
    kept = np.argwhere(seg.data > 0)
    assert np.array_equal(kept.min(0), [1, 1, 1])
    assert np.array_equal(kept.max(0), np.asarray(seg.data.shape) - 2)
    # values are the map's own where kept
    idx = np.rint(seg.xyz_to_index(np.array([xyz[0]])) + 0).astype(int)[0]
    src = np.rint(m.xyz_to_index(np.array([[seg.axis_coords()[a][idx[a]] for a in range(3)]]))).astype(int)[0]
    assert seg.data[idx[2], idx[1], idx[0]] == m.data[src[2], src[1], src[0]]


def test_cut_segment_keeps_the_highest_quarter_of_the_zone_then_low_passes():
    """Against brute force: the kept voxels are the zone's highest quarter (by its distances
    to the atoms and the map's values); without a low-pass the rest is zero; the box is the kept
    voxels' bounding box plus one; a low-pass after the mask is the mask's map blurred."""
    from cryosse.evaluate.conditions import cut_segment
    from cryosse.evaluate.zone import lowpass

    rng = np.random.default_rng(5)
    m = Map(rng.random((30, 34, 38)).astype(np.float32) + 0.5, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    xyz = np.array([[10.0, 12.0, 14.0], [14.0, 15.0, 16.0], [18.0, 15.0, 13.0]])
    seg, level = cut_segment(m, xyz, resolution_a=4.0, native_resolution_a=4.0, share=0.25)
    gz, gy, gx = np.indices(m.data.shape)
    pts = np.stack([gx, gy, gz], -1).astype(float)
    zone = np.min(np.linalg.norm(pts[..., None, :] - xyz, axis=-1), axis=-1) <= 3.5
    keep = zone & (m.data >= level)
    assert keep.sum() == pytest.approx(0.25 * zone.sum(), abs=1)
    assert np.isclose(seg.data.sum(), m.data[keep].sum(), rtol=1e-5)
    kept = np.argwhere(seg.data > 0)
    assert np.array_equal(kept.min(0), [1, 1, 1]) and np.array_equal(kept.max(0), np.asarray(seg.data.shape) - 2)
    low, _ = cut_segment(m, xyz, resolution_a=8.0, native_resolution_a=4.0, share=0.25)
    full = lowpass(m.with_data(np.where(keep, m.data, 0).astype(np.float32)), 8.0, 4.0)
    lo = np.argwhere(keep).min(0) - 1
    np.testing.assert_allclose(low.data, full.data[tuple(slice(a, a + n) for a, n in zip(lo, low.data.shape))],
                               atol=1e-6)
    assert (low.data > 0).sum() > (seg.data > 0).sum()


def test_beta_window_is_the_most_strand_rich_run(structures_dir):
    """Against a brute-force scan of every window of every chain of an embedded structure."""
    from cryosse import SHEET
    from cryosse.evaluate.conditions import beta_window
    from cryosse.io import protein_atoms, read_model
    from cryosse.prep.labels import residue_classes
    from cryosse.prep.sse import assign_sse

    path = sorted(structures_dir.glob("*.pdb.gz"))[0]
    st = read_model(path)
    sse = assign_sse(st)
    chain, i0, i1, n = beta_window(st, sse, window=30)
    atoms = protein_atoms(st)
    cls = residue_classes(atoms, sse)
    chains = [c for c, *_ in atoms.residues]
    best = 0
    for s in range(len(chains)):
        e = min(s + 30, len(chains))
        if chains[e - 1] == chains[s] and (e - s == 30 or e == len(chains)):
            best = max(best, int((cls[s:e] == SHEET).sum()))
    assert n == best == int((cls[i0:i1] == SHEET).sum())
    assert i1 - i0 <= 30 and set(chains[i0:i1]) == {chain}


def test_conditions_of_a_real_map_and_their_scores(shared_data, real_cases, tmp_path):
    """EMD-2566 chain 9 (3.2 Å, low-passed): the derived maps are what they say; the bundled
    model's row for the 1 Å segment is scored with its oracle and clean simulation."""
    from cryosse.evaluate.conditions import derive
    from cryosse.evaluate.robustness import score_conditions
    from cryosse.evaluate.zone import load_case
    from cryosse.inference import BUNDLED_CHECKPOINT
    from cryosse.io import read_map

    case = next(c for c in real_cases if c.name == "emd_2566_chain9")
    scored, st, sse, _, _ = load_case(case, shared_data)
    derived = {d.name: d for d in derive(case, read_map(shared_data / case.map), scored, st, sse)}
    assert {"deposited", "lowpass_8", "lowpass_10", "bfactor_+100", "bfactor_-100", "contour",
            "segment_9", "segment_9_1A"} <= set(derived)
    assert "lowpass_6" not in derived  # the case itself is low-passed to 6 Å
    seg = derived["segment_9_1A"].map
    assert seg.voxel_size_a == (1.0, 1.0, 1.0) and (seg.data == 0).mean() > 0.3
    assert (derived["contour"].map.data == 0).mean() > 0.5
    s = score_conditions(BUNDLED_CHECKPOINT, [case], shared_data, tmp_path, only=("segment_9_1A",),
                         progress=None)
    (row,) = s["rows"]
    assert row["scored"] == {"helix": True, "sheet": False}
    assert 0.5 < row["oracle"]["helix"] <= 1.0
    assert 0.3 < row["voxel"]["helix"] <= row["oracle"]["helix"] + 0.05
    assert 0.3 < row["clean_simulation"]["helix"] <= 1.0
    assert {"conditions.json", "conditions.md", "conditions.png"} <= {p.name for p in tmp_path.iterdir()}
    assert "segment_9_1A" in (tmp_path / "conditions.md").read_text()


def test_targets_count_floor_and_clean_gap():
    from cryosse.evaluate.robustness import targets

    def row(name, h, oh, ch, s=None, os_=None, cs=None):
        return {"case": "m", "condition": name, "kind": "x",
                "scored": {"helix": True, "sheet": s is not None},
                "voxel": {"helix": h, "sheet": s if s is not None else float("nan")},
                "oracle": {"helix": oh, "sheet": os_ if os_ is not None else float("nan")},
                "clean_simulation": {"helix": ch, "sheet": cs if cs is not None else float("nan")}}
    t = targets([row("a", 0.8, 0.9, 0.85, 0.5, 0.8, 0.55), row("b", 0.5, 0.9, 0.8)])
    assert t["classes"]["helix"]["ratio"] == pytest.approx(0.65 / 0.9)
    assert not t["classes"]["helix"]["met"] and not t["met"]
    assert t["below_floor"] == ["m/b/helix"]
    assert t["clean_gap"] == ["m/b/helix (+0.30)"]
    assert t["classes"]["sheet"]["rows"] == 1 and t["classes"]["sheet"]["ratio"] == pytest.approx(0.625)


def test_benchmarks_skip_without_the_real_maps(tmp_path):
    """A clone without ../shared: both real-map benchmarks say so and exit 0; the library
    function itself refuses the missing folder with a one-line error naming it."""
    import subprocess
    import sys

    from cryosse.errors import InputError
    from cryosse.evaluate.realmaps import cases_and_data

    root = Path(__file__).resolve().parents[1]
    for bench in ("bench_conditions.py", "bench_realmaps.py"):
        extra = ["-o", str(tmp_path / "out")] if bench == "bench_conditions.py" else []
        r = subprocess.run([sys.executable, str(root / "bench" / bench), "--data", str(tmp_path / "absent"),
                            *extra], capture_output=True, text=True)
        assert r.returncode == 0 and "skipped" in r.stdout, (bench, r.stdout, r.stderr)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="absent"):
        cases_and_data(root / "bench" / "real_maps.yaml", tmp_path / "absent")


def test_comparison_matches_rows_and_reports_both_models_targets():
    from cryosse.evaluate.robustness import format_comparison, targets

    def run(model, h, s):
        rows = [{"case": "m", "set": "report", "condition": c, "kind": "x",
                 "scored": {"helix": True, "sheet": c != "helixonly"},
                 "voxel": {"helix": h + k, "sheet": s + k}, "residue": {"helix": h, "sheet": s},
                 "oracle": {"helix": 0.8, "sheet": 0.8}, "clean_simulation": {"helix": 0.8, "sheet": 0.8}}
                for k, c in ((0.0, "deposited"), (0.05, "helixonly"))]
        return {"model": model, "rows": rows, "targets": {"report": targets(rows)}}

    old, new = run("old", 0.40, 0.32), run("new", 0.50, 0.25)
    new["rows"].append(dict(new["rows"][0], condition="only_in_new"))
    text = format_comparison(old, new)
    assert "| report | m | deposited | 0.40 (0.40) | 0.50 (0.50) | +0.10 | 0.32 (0.32) | 0.25 (0.25) | -0.07 |" in text
    assert "| report | m | helixonly | 0.45 (0.40) | 0.55 (0.50) | +0.10 | – | – | – |" in text
    assert "only_in_new" not in text  # rows are matched, not invented
    assert "| report | old | 0.53 (missed) | 0.40 (missed) | 3 of 3 | 3 of 3 |" in text
    # two checkpoints of one name (candidates' calibrated.pt): told apart by their folders
    from cryosse.evaluate.robustness import model_labels

    a, b = (dict(r, model="calibrated", checkpoint=f"/x/{d}/calibrated.pt") for r, d in ((old, "G"), (new, "H")))
    assert model_labels(a, b) == ("G/calibrated", "H/calibrated")
    assert "| report | m | deposited | " in format_comparison(a, b) and "helix G/calibrated | helix H/calibrated" in \
        format_comparison(a, b)
    assert model_labels(a, dict(b, checkpoint="/x/G/calibrated.pt")) == ("G/calibrated (previous)", "G/calibrated (new)")


def test_decision_counts_only_crossings_that_lose_more_than_the_tolerance():
    """The notebook's rule (experiment s3): a candidate ships when its mean target fraction beats
    the shipped model's and no row crosses the floor or the clean-simulation gap while losing
    more than 0.02; crossings by less are listed, not counted. Hand-computed cases."""
    from cryosse.evaluate.robustness import decide, format_decision, objective, targets

    def run(model, rows):
        full = [{"case": "m", "set": "selection", "condition": c, "kind": "x",
                 "scored": {"helix": True, "sheet": False},
                 "voxel": {"helix": v, "sheet": float("nan")}, "residue": {"helix": v, "sheet": float("nan")},
                 "oracle": {"helix": 1.0, "sheet": float("nan")},
                 "clean_simulation": {"helix": cs, "sheet": float("nan")}} for c, v, cs in rows]
        return {"model": model, "rows": full, "targets": {"selection": targets(full)}}

    shipped = run("old", [("a", 0.61, 0.65), ("b", 0.80, 0.89), ("c", 0.50, 0.80)])
    assert objective(shipped["targets"]["selection"]) == pytest.approx((0.61 + 0.80 + 0.50) / 3 / 0.85)
    # a: below the floor (0.60) by a 0.015 loss: within; b: past the gap (0.105 > 0.1), grown 0.015: within
    near = run("near", [("a", 0.595, 0.65), ("b", 0.785, 0.89), ("c", 0.70, 0.80)])
    d = decide(shipped, near)
    assert d["ships"] and d["against"] == [] and len(d["within_tolerance"]) == 2
    # the margin (after s8): a win of 0.003 in the objective is the seed spread, not enough
    slim = run("slim", [("a", 0.61, 0.65), ("b", 0.80, 0.89), ("c", 0.50 + 3 * 0.85 * 0.003, 0.80)])
    d = decide(shipped, slim)
    assert d["objective"]["candidate"] - d["objective"]["shipped"] == pytest.approx(0.003)
    assert not d["ships"] and d["against"] == [] and "at least 0.01 more needed" in format_decision(d, "o", "s")
    assert decide(shipped, slim, margin=0.0)["ships"]
    # the same crossings with 0.05 lost: both count, whatever the objective
    far = run("far", [("a", 0.56, 0.65), ("b", 0.75, 0.89), ("c", 0.95, 0.80)])
    d = decide(shipped, far)
    assert not d["ships"] and d["against"] == ["m/a/helix: below the floor, F1 0.050 lower",
                                               "m/b/helix: past the gap (0.140), 0.050 wider"]
    assert d["objective"]["candidate"] > d["objective"]["shipped"]
    assert "far does not ship" in format_decision(d, "old", "far")
    # no crossing but a lower objective: does not ship; a row already past the gap is not new
    worse = run("worse", [("a", 0.61, 0.65), ("b", 0.80, 0.89), ("c", 0.40, 0.80)])
    d = decide(shipped, worse)
    assert not d["ships"] and d["against"] == [] and d["within_tolerance"] == []
    with pytest.raises(ValueError, match="different selection rows"):
        decide(shipped, run("fewer", [("a", 0.61, 0.70)]))


def test_report_check_refuses_a_candidate_whose_report_set_falls_for_a_class():
    """The second half of the rule (after s8): scored once, the report set's F1 / oracle must not
    fall for either class. Hand-made rows: oracle 0.8 helix and 0.5 sheet."""
    from cryosse.evaluate.robustness import report_check

    def run(h, s):
        return {"rows": [{"case": "m", "set": "report", "condition": "deposited", "kind": "x",
                          "scored": {"helix": True, "sheet": True}, "voxel": {"helix": h, "sheet": s},
                          "oracle": {"helix": 0.8, "sheet": 0.5}, "clean_simulation": {"helix": 0.9, "sheet": 0.9}}]}

    assert report_check(run(0.52, 0.26), run(0.52, 0.30))["ships"]
    r = report_check(run(0.52, 0.26), run(0.56, 0.25))
    assert not r["ships"] and r["fell"] == ["sheet: 0.500 of the oracle against 0.520"], r
