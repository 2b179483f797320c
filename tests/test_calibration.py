"""Calibration by a prior shift: the reweighting formula, prediction with class weights in the
card, the F1 grid against metrics computed independently, the fit, and the CLI's refusals."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cryosse.errors import InputError
from cryosse.inference.predictor import _labels_of, class_weights, reweight
from cryosse.io import Map
from cryosse.metrics import confusion, prf_from_confusion
from cryosse.research.calibration import WEIGHT_GRID, RowVoxels, f1_grid, fit


def _probs(n, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([1.0, 1.0, 1.0], n).astype(np.float32)  # other, helix, sheet
    return p[:, 0], p[:, 1], p[:, 2]


def test_reweight_is_the_normalised_prior_shift():
    o, h, s = _probs(5000)
    wh, ws = 0.7, 2.5
    hh, ss = h.copy(), s.copy()
    reweight(hh, ss, (wh, ws))
    z = o + wh * h + ws * s  # computed here from all three probabilities, not from 1 - h - s
    assert np.allclose(hh, wh * h / z, atol=1e-6) and np.allclose(ss, ws * s / z, atol=1e-6)
    assert np.all(hh + ss <= 1 + 1e-6)
    # the labels of the reweighted probabilities are the weighted argmax
    weighted = np.stack([o, wh * h, ws * s])
    expect = np.array([0, 1, 2])[np.argmax(weighted, axis=0)]
    assert np.mean(_labels_of(hh, ss) == expect) > 0.999  # ties only where float rounding decides
    zero_h, zero_s = np.zeros(3, np.float32), np.zeros(3, np.float32)
    reweight(zero_h, zero_s, (wh, ws))
    assert not zero_h.any() and not zero_s.any()  # outside the zone stays background


def test_class_weights_from_the_card():
    assert class_weights({}) is None
    assert class_weights({"class_weights": {"helix": 1.0, "sheet": 1.0}}) is None
    assert class_weights({"class_weights": {"helix": 1.5, "sheet": 2}}) == (1.5, 2.0)
    for bad in ({"helix": 0, "sheet": 1}, {"helix": -1, "sheet": 1}, {"helix": float("nan"), "sheet": 1}):
        with pytest.raises(InputError, match="class_weights"):
            class_weights({"class_weights": bad})


def test_prediction_applies_the_cards_weights(tmp_path):
    torch = pytest.importorskip("torch")
    from cryosse.inference import predict_map
    from cryosse.net.network import PRESETS, build_network

    torch.manual_seed(0)
    arch = dict(PRESETS["small"], n_classes=3, preset="small")
    net = build_network(arch)
    card = {"arch": arch, "classes": ["other", "helix", "sheet"], "voxel_size_a": 2.0,
            "data_voxel_size_a": 1.0, "tile": 32}
    m = Map(np.random.default_rng(1).normal(size=(24, 20, 28)).astype(np.float32), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    plain = predict_map(m, net, card)
    w = {"helix": 0.6, "sheet": 3.0}
    cal = predict_map(m, net, dict(card, class_weights=w))
    h, s = plain.helix_prob.data, plain.sheet_prob.data
    z = (1 - h - s) + w["helix"] * h + w["sheet"] * s
    assert np.allclose(cal.helix_prob.data, w["helix"] * h / z, atol=1e-5)
    assert np.allclose(cal.sheet_prob.data, w["sheet"] * s / z, atol=1e-5)
    assert (cal.labels.data == 2).sum() > (plain.labels.data == 2).sum()
    assert cal.summary["class_weights"] == w and plain.summary["class_weights"] is None


def _row(h, s, truth, scored=(True, True), oracle=(0.8, 0.8)):
    return RowVoxels("case", "cond", "selection", dict(zip(("helix", "sheet"), scored)),
                     dict(zip(("helix", "sheet"), oracle)), h, s, truth)


def test_f1_grid_matches_metrics_computed_from_labels():
    o, h, s = _probs(4000, seed=2)
    truth = np.random.default_rng(3).integers(0, 3, 4000).astype(np.uint8)
    table = f1_grid(_row(h, s, truth))
    for i, j in ((0, 0), (4, 4), (2, 9), (12, 5)):
        hh, ss = h.copy(), s.copy()
        reweight(hh, ss, (WEIGHT_GRID[i], WEIGHT_GRID[j]))
        labels = _labels_of(hh, ss).astype(np.uint8)  # codes 0, 1 helix, 2 sheet
        prf = prf_from_confusion(confusion(labels, truth))
        for k, c in enumerate(("helix", "sheet")):
            assert table[i, j, k] == pytest.approx(prf[c]["f1"], abs=2e-3)


def test_fit_finds_the_shift_that_an_underconfident_class_needs():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 30000).astype(np.uint8)
    # true sheet voxels: sheet 0.4 < other 0.5, so the argmax calls them other unless w_s > 1.25
    h = np.where(truth == 1, 0.7, 0.1).astype(np.float32)
    s = np.where(truth == 2, 0.4, 0.1).astype(np.float32)
    res = fit([_row(h, s, truth)])
    assert res["ratios_uncalibrated"]["sheet"] == 0.0
    assert 1.25 < res["class_weights"]["sheet"] < 1.5   # the smallest grid weight that suffices
    assert res["class_weights"]["helix"] == 1.0           # nothing to gain: ties go to 1
    assert res["objective"] > res["objective_uncalibrated"]
    # a calibrated network keeps weights of 1
    good = fit([_row(np.where(truth == 1, 0.8, 0.05).astype(np.float32),
                     np.where(truth == 2, 0.8, 0.05).astype(np.float32), truth)])
    assert good["class_weights"] == {"helix": 1.0, "sheet": 1.0}


def test_fit_ignores_a_class_no_row_scores():
    truth = np.array([0, 1, 1, 0] * 500, np.uint8)
    h = np.where(truth == 1, 0.45, 0.2).astype(np.float32)
    res = fit([_row(h, np.full_like(h, 0.05), truth, scored=(True, False), oracle=(0.8, float("nan")))])
    assert res["ratios"]["sheet"] is None and res["class_weights"]["helix"] > 1.0


def test_calibrate_cli_refuses_the_report_set(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cryosse.cli", "calibrate", "--checkpoint", "x.pt", "--cases",
                        "c.yaml", "--set", "report", "-o", str(tmp_path / "o.pt")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--set" in r.stderr and "report" in r.stderr
    assert not (tmp_path / "o.pt").exists()


def test_rows_round_trip_and_refit(tmp_path):
    from cryosse.research.calibration import load_rows, save_rows

    o, h, s = _probs(3000, seed=5)
    truth = np.random.default_rng(6).integers(0, 3, 3000).astype(np.uint8)
    rows = [_row(h, s, truth), _row(s, h, truth, scored=(True, False), oracle=(0.7, float("nan")))]
    save_rows(rows, tmp_path / "fit" / "rows.npz")
    back = load_rows(tmp_path / "fit" / "rows.npz")
    assert [(r.case, r.condition, r.scored) for r in back] == [(r.case, r.condition, r.scored) for r in rows]
    assert all(np.array_equal(a.h, b.h) and np.array_equal(a.truth, b.truth) for a, b in zip(rows, back))
    assert fit(back)["objective_grid"] == fit(rows)["objective_grid"]


def test_calibrate_cli_on_a_real_selection_case(shared_data, tmp_path, uncalibrated_bundled):
    """EMD-2566 chain 9 alone (alpha-rich: only helix is scored): the CLI fits, writes a
    calibrated copy whose card carries the weights and their provenance, refits from the kept
    voxels to the same weights, and refuses to calibrate the calibrated copy again."""
    from cryosse.inference import BUNDLED_CHECKPOINT
    from cryosse.net.checkpoint import load_checkpoint

    source = uncalibrated_bundled
    cases = tmp_path / "cases.yaml"
    cases.write_text(f"data: {shared_data}\ncases:\n  - name: emd_2566_chain9\n"
                     "    map: emd_2566_chain9/emd_2566_3j6b_chain9_crop.mrc\n"
                     "    model: emd_2566_chain9/3j6b_chain9.pdb\n    native_resolution_a: 3.2\n"
                     "    lowpass_a: 6.0\n    has_sheet: false\n    set: selection\n")
    out = tmp_path / "cal.pt"
    cli = [sys.executable, "-m", "cryosse.cli", "calibrate", "--cases", str(cases), "--device", "cpu"]
    r = subprocess.run(cli + ["--checkpoint", str(source), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _, card, _ = load_checkpoint(out)
    w = card["class_weights"]
    assert set(w) == {"helix", "sheet"} and all(v in WEIGHT_GRID for v in w.values())
    assert card["calibration"]["fitted_on"] == ["selection"] and card["calibration"]["rows"]
    assert card["calibration"]["objective"] >= card["calibration"]["objective_uncalibrated"]
    assert card["calibration"]["ratios"]["sheet"] is None  # no row scores sheet
    assert card["weights_dtype"] == "float16"  # the source's precision is kept
    rows = tmp_path / "cal_fit" / "rows.npz"
    assert rows.is_file() and (tmp_path / "cal_fit" / "conditions.json").is_file()
    again = tmp_path / "again.pt"
    r = subprocess.run(cli + ["--checkpoint", str(source), "--rows", str(rows), "-o", str(again)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert load_checkpoint(again)[1]["class_weights"] == w
    r = subprocess.run(cli + ["--checkpoint", str(BUNDLED_CHECKPOINT), "-o", str(tmp_path / "twice.pt")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "class_weights already" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("weights", [[1, 2], {"helix": "x", "sheet": 1}, {"coil": 2.0}, {"helix": float("inf")}])
def test_malformed_class_weights_are_one_line_errors(weights):
    with pytest.raises(InputError, match="class_weights"):
        class_weights({"class_weights": weights})


def test_a_rows_file_that_is_not_one_is_refused_naming_it(tmp_path):
    from cryosse.research.calibration import load_rows

    bad = tmp_path / "rows.npz"
    bad.write_bytes(b"PK\x03\x04 not really")
    for path in (bad, tmp_path / "absent.npz"):
        with pytest.raises(InputError) as e:
            load_rows(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
