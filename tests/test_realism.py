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


SEG = dict(segment_p=1.0, cut_p=0.0, domain_p=0.0, post_blur_p=0.0, tight_p=0.0, edge_sigma_a=(0.0, 0.0))


def _protein(sim, frac=0.8):
    return sim.data > np.quantile(sim.data, frac)


def test_segment_zeroes_outside_the_zone_and_keeps_labels_near_what_is_left(sim, rng):
    from scipy.ndimage import binary_dilation

    from cryosse.prep.realism import segment

    protein = _protein(sim)
    x, keep, box, p = segment(sim.data, protein, 2.0, rng, only(**SEG, segment_zone_a=(3.0, 3.0)))
    assert box is None and p["segment_zone_a"] == 3.0
    np.testing.assert_array_equal(x[protein], sim.data[protein])  # a 3 Å zone is the label zone itself
    assert np.all(x[~protein] == 0)
    np.testing.assert_array_equal(keep, binary_dilation(protein, iterations=2))  # 3 Å at 2 Å voxels
    # a cut keeps only the highest share of the zone: it cuts into the molecule's own density
    x, keep, _, p = segment(sim.data, protein, 2.0, np.random.default_rng(1),
                            only(**dict(SEG, cut_p=1.0), segment_zone_a=(3.0, 3.0), cut_keep=(0.3, 0.3)))
    assert (x[protein] != 0).mean() == pytest.approx(0.3, abs=0.01)
    assert x[x != 0].min() >= np.quantile(sim.data[protein], 0.7) - 1e-6


def test_segment_zones_follow_the_label_radius_of_the_data(sim, rng):
    """Labels made with another radius (here 6 Å): a zone of that radius is the label zone itself,
    a 2 Å zone shrinks it by two 2 Å voxels, and labels are kept within 6 Å of what is left (the
    radius is the datalist's ``label_radius_a``; 3 Å by default). Each of the three differs from
    what a 3 Å assumption gives."""
    from scipy.ndimage import binary_dilation, binary_erosion

    from cryosse.prep.realism import segment

    protein = _protein(sim, 0.6)
    x, keep, _, _ = segment(sim.data, protein, 2.0, rng, only(**SEG, segment_zone_a=(6.0, 6.0)), label_radius_a=6.0)
    assert np.all((x != 0) == (protein & (sim.data != 0)))
    np.testing.assert_array_equal(keep, binary_dilation(protein, iterations=3))  # 6 Å at 2 Å voxels
    x, _, _, _ = segment(sim.data, protein, 2.0, rng, only(**SEG, segment_zone_a=(2.0, 2.0)), label_radius_a=6.0)
    assert np.all((x != 0) == (binary_erosion(protein, iterations=2) & (sim.data != 0)))


def test_training_set_datalists_record_a_label_radius_that_is_not_the_default(tmp_path, structures_dir):
    """The radius reaches training through the datalist (``training-set`` writes it when it is
    not the default, so the default datalist and its hash stay as they were), and every sample
    loaded from it carries it; a radius that is not a number in (0, 20] Å is refused."""
    import json

    from cryosse.errors import InputError
    from cryosse.prep.dataset import load_datalist
    from cryosse.prep.trainingset import build_training_set
    from cryosse.train.loop import TrainConfig, _load_samples

    (tmp_path / "splits.tsv").write_text("id\tentry\tsplit\n1ahsa_A\t1ahsa\ttrain\n")
    for radius in (3.0, 2.0):
        out = tmp_path / f"ts{radius:g}"
        build_training_set(structures_dir / "structures.tsv", tmp_path / "splits.tsv", out, resolutions_a=(6.0,),
                           radius_a=radius)
        dl = load_datalist(out / "datalist.json")
        assert ("label_radius_a" in json.loads((out / "datalist.json").read_text())) == (radius != 3.0)
        s, = _load_samples(dl, "training", TrainConfig(voxel_size_a=2.0))
        assert s.label_radius_a == radius
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(json.loads((out / "datalist.json").read_text()), label_radius_a=-1)))
    with pytest.raises(InputError, match="label_radius_a must be a number in"):
        load_datalist(bad)


def test_segment_domain_low_pass_after_the_mask_and_tight_box(sim):
    from cryosse.prep.realism import segment

    protein = _protein(sim, 0.6)
    cfg = only(**dict(SEG, domain_p=1.0, tight_p=1.0, post_blur_p=1.0), segment_zone_a=(4.0, 4.0),
               domain_radius_a=(12.0, 12.0), tight_margin_a=(0.0, 0.0), post_blur_sigma_a=(2.0, 2.0))
    x, keep, box, p = segment(sim.data, protein, 2.0, np.random.default_rng(3), cfg)
    hard, _, _, _ = segment(sim.data, protein, 2.0, np.random.default_rng(3),
                            only(**dict(SEG, domain_p=1.0, tight_p=1.0), segment_zone_a=(4.0, 4.0),
                                 domain_radius_a=(12.0, 12.0), tight_margin_a=(0.0, 0.0)))
    kept = np.argwhere(hard != 0)
    # the region is one ball of 12 Å: at most 2 x 12 Å + a voxel across
    assert (kept.max(0) - kept.min(0)).max() * 2.0 <= 24.0 + 2.0
    # the tight box is the kept region's bounding box (margin 0)
    assert tuple(slice(int(a), int(b) + 1) for a, b in zip(kept.min(0), kept.max(0))) == box
    # low-pass after the mask: density leaks past the mask's edge, and the total is kept
    assert (x != 0).sum() > (hard != 0).sum()
    assert x.sum() == pytest.approx(hard.sum(), rel=1e-3)


def test_support_normalise_does_not_depend_on_how_much_of_the_box_is_zero(sim, rng):
    from cryosse.prep.realism import support_normalise

    x = sim.data + 0.05 * rng.standard_normal(sim.data.shape).astype(np.float32)
    zone = _protein(sim, 0.5)
    seg = np.where(zone, x, 0).astype(np.float32)
    small = seg[4:-4, 4:-4, 4:-4]  # the same segment in a tighter box
    a, b = support_normalise(seg, 2.0), support_normalise(small, 2.0)
    inner = zone[4:-4, 4:-4, 4:-4]
    np.testing.assert_allclose(a[4:-4, 4:-4, 4:-4][inner], b[inner], atol=1e-3)
    assert np.all(a[~zone] == 0)
    # statistics over the support: contrast and offset inside it do not matter
    c = support_normalise(np.where(zone, 3.0 * x + 5.0, 0).astype(np.float32), 2.0)
    np.testing.assert_allclose(a[zone], c[zone], atol=5e-3)
    # without exact zeros it is the local normalisation
    np.testing.assert_array_equal(support_normalise(x, 2.0), local_normalise(x, 2.0))


def test_belt_is_a_slab_of_medium_density_around_the_protein(sim):
    """The micelle / nanodisc belt: added density only within its reach of the protein zone
    (plus its soft edge), at about the drawn fraction of the protein's mean density, and
    confined to a slab: along the slab's normal the added density spans about its thickness."""
    from scipy.ndimage import distance_transform_edt

    zone = _protein(sim)
    cfg = only(belt_p=1.0, belt_thickness_a=(20.0, 20.0), belt_reach_a=(10.0, 10.0), belt_level=(0.4, 0.4))
    x, p = degrade(sim.data, zone, 2.0, np.random.default_rng(4), cfg)
    assert p["belt_level"] == 0.4 and p["belt_thickness_a"] == 20.0
    base = sim.data / sim.data.std()
    added = x - base
    assert added.min() > -1e-4
    far = distance_transform_edt(~zone, sampling=2.0) > 10.0 + 3 * 2.0 + 2.0  # reach + soft edge
    assert added[far].max() < 0.02 * base[zone].mean()
    strong = added > 0.2 * base[zone].mean()
    assert strong.any() and not (strong & far).any()
    # the slab: the strong belt's extent along its thinnest axis-free direction is about 20 Å
    pts = np.argwhere(strong) * 2.0
    c = pts - pts.mean(0)
    thin = np.sqrt(np.linalg.eigvalsh(c.T @ c / len(c))[0])
    assert thin * np.sqrt(12) == pytest.approx(20.0, rel=0.35)  # a uniform slab's sd is T / sqrt(12)
