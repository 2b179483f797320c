"""Simulation realism and the real-map benchmark: properties checked against analytic
expectations (noise level, ripples, thresholds, invariance of the local normalisation,
Gaussian low-pass composition) and, when ../shared is present, real maps with their models."""
from __future__ import annotations

import numpy as np
import pytest

from cryosse.prep.density import simulate_density
from cryosse.io import read_model
from cryosse.prep.realism import RealismConfig, degrade, local_normalise

OFF = dict(blur_p=0, local_res_p=0, highpass_p=0, noise_p=0, background_p=0, mask_p=0, threshold_p=0,
           scale=(1.0, 1.0), offset_sd=0.0)


@pytest.fixture(scope="module")
def sim(structures_dir):
    return simulate_density(read_model(structures_dir / "1a8o.pdb.gz"), 6.0, 2.0)


def only(**kw) -> RealismConfig:
    return RealismConfig(**dict(OFF, **kw))


def test_all_effects_off_is_identity_up_to_scale(sim):
    x, p = degrade(sim.data, None, 2.0, np.random.default_rng(0), only())
    assert p == {"scale": 1.0, "offset": 0.0}
    np.testing.assert_allclose(x * sim.data.std(), sim.data, rtol=1e-5, atol=1e-6)


def test_noise_has_the_drawn_level_and_correlation(sim):
    cfg = only(noise_p=1.0, noise_sd=(0.7, 0.7), noise_corr_a=(2.0, 2.0))
    x, p = degrade(sim.data, None, 2.0, np.random.default_rng(1), cfg)
    noise = x - sim.data / sim.data.std()
    assert noise.std() == pytest.approx(0.7, rel=0.02)
    # correlated: neighbouring voxels (2 Å apart, sigma 1 voxel) correlate exp(-1/4) = 0.78
    c = np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1]
    assert c == pytest.approx(np.exp(-0.25), abs=0.05)


def test_sharpening_makes_negative_ripples_and_threshold_zeroes_the_rest(sim):
    assert sim.data.min() >= -1e-6
    x, _ = degrade(sim.data, None, 2.0, np.random.default_rng(2), only(highpass_p=1.0, highpass=(0.5, 0.5)))
    assert x.min() < -0.1 * x.max()
    noisy = sim.data + 0.01 * np.random.default_rng(4).standard_normal(sim.data.shape).astype(np.float32)
    x, p = degrade(noisy, None, 2.0, np.random.default_rng(3), only(threshold_p=1.0, threshold_percentile=(80, 80)))
    assert (x == 0).mean() == pytest.approx(0.80, abs=0.01)


def test_mask_keeps_only_the_zone(sim, rng):
    protein = np.zeros(sim.data.shape, bool)
    protein[10:14, 10:14, 10:14] = True
    x, p = degrade(sim.data + 1.0, protein, 2.0, rng, only(mask_p=1.0))
    assert "mask_zone_a" in p
    assert np.all(x[protein] != 0) and x[0, 0, 0] == 0


def test_parameters_are_recorded_and_reproducible(sim):
    a, pa = degrade(sim.data, None, 2.0, np.random.default_rng(7), RealismConfig())
    b, pb = degrade(sim.data, None, 2.0, np.random.default_rng(7), RealismConfig())
    assert pa == pb and np.array_equal(a, b)
    assert RealismConfig().scaled(0.0).noise_p == 0 and RealismConfig().scaled(0.5).noise_p == pytest.approx(0.425)


def test_local_normalise_ignores_contrast_and_offset(sim, rng):
    x = sim.data + 0.05 * rng.standard_normal(sim.data.shape).astype(np.float32)
    a = local_normalise(x, 2.0)
    b = local_normalise(3.7 * x - 12.0, 2.0)
    np.testing.assert_allclose(a, b, atol=5e-3)
    assert abs(float(a.mean())) < 0.2


def test_lowpass_composes_like_simulation(structures_dir):
    """A 4 Å simulation low-passed to 8 Å equals an 8 Å simulation (Gaussians compose)."""
    from cryosse.evaluate.zone import lowpass

    st = read_model(structures_dir / "1a8o.pdb.gz")
    hi = simulate_density(st, 4.0, 1.0, padding_a=24.0)
    lo = simulate_density(st, 8.0, 1.0, padding_a=24.0)
    assert hi.data.shape == lo.data.shape
    c = np.corrcoef(lowpass(hi, 8.0, 4.0).data.ravel(), lo.data.ravel())[0, 1]
    assert c > 0.995


def test_real_map_labels_line_up_with_density(shared_data, real_cases):
    """On real maps the voxels labelled helix (from the fitted model) are denser than the
    scored zone's background: the truth sits on the density."""
    from cryosse.evaluate.zone import load_case

    for case in real_cases:
        if case.name == "emd_0093":
            continue  # 220^3: covered by the benchmark
        m, st, sse, truth, mask = load_case(case, shared_data)
        helix = m.data[(truth.data == 1) & mask].mean()
        background = m.data[(truth.data == 0) & mask].mean()
        assert helix > background + 0.5 * m.data[mask].std(), case.name


def test_simulate_with_realism_records_its_parameters(structures_dir, tmp_path):
    import json

    from cryosse.cli import main
    from cryosse.io import read_map

    model = str(structures_dir / "1a8o.pdb.gz")
    assert main(["simulate", model, "--resolution", "7", "--voxel-size", "2", "-o", str(tmp_path / "clean.mrc")]) == 0
    for k in (1, 2):
        assert main(["simulate", model, "--resolution", "7", "--voxel-size", "2", "--realism-seed", "5",
                     "-o", str(tmp_path / f"real{k}.mrc")]) == 0
    rec = json.loads((tmp_path / "real1.mrc.realism.json").read_text())
    assert rec["seed"] == 5 and rec["resolution_a"] == 7 and "scale" in rec["effects"]
    a, b, c = (read_map(tmp_path / n).data for n in ("real1.mrc", "real2.mrc", "clean.mrc"))
    assert np.array_equal(a, b) and a.shape == c.shape and not np.allclose(a, c)
