"""Simulation realism: make clean simulated density look like a native medium-resolution map.

Clean simulations differ from experimental maps in ways a network trained on them notices:
real maps have noise with a correlation length of a few Å, lower and uneven contrast
between protein and solvent, local resolution that varies across the map, negative ripples
from sharpening and CTF correction (EMD-5168 is band-passed so strongly that helices show as
thin hollow ridges), a low-frequency background, masks and contour
thresholds. :func:`degrade` applies a random draw of these effects to a density array; each
effect's parameters are drawn from :class:`RealismConfig` and returned, so every degraded
sample records how it was made. :func:`local_normalise` is the input normalisation that goes
with it: density minus its local mean over its local standard deviation, which removes the
global contrast, offset and solvent-fraction differences between simulated and real maps.

All sizes here are in voxels of the array given (the working grid), converted from Å by the
caller's ``voxel_size_a``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .labels import DEFAULT_RADIUS_A

__all__ = ["RealismConfig", "realism_problems", "degrade", "segment", "local_normalise", "support_normalise", "LOCAL_NORM_SIGMA_A"]

#: Width (Å) of the Gaussian window of :func:`local_normalise`: wider than a helix (~10 Å),
#: so the contrast between a helix and its surroundings survives.
LOCAL_NORM_SIGMA_A = 8.0


@dataclass(frozen=True)
class RealismConfig:
    """Probabilities and ranges of the effects (Å where the name says so)."""

    blur_p: float = 0.5
    blur_sigma_a: tuple[float, float] = (0.5, 2.0)        # extra Gaussian blur (lower resolution)
    local_res_p: float = 0.5
    local_res_sigma_a: tuple[float, float] = (1.5, 3.5)   # blur of the blurrier copy blended in
    local_res_scale_a: float = 12.0                       # correlation length of the blend weights
    highpass_p: float = 0.5
    highpass: tuple[float, float] = (0.3, 1.0)            # x - k blur(x): sharpened / band-passed maps,
    highpass_sigma_a: tuple[float, float] = (2.0, 6.0)    # negative ripples, hollow thin ridges
    noise_p: float = 0.85
    noise_sd: tuple[float, float] = (0.1, 1.2)            # relative to the signal's sd
    noise_corr_a: tuple[float, float] = (1.0, 3.0)        # correlation length of the noise
    background_p: float = 0.3
    background_sd: tuple[float, float] = (0.05, 0.5)
    background_scale_a: float = 15.0
    mask_p: float = 0.15                                  # zero all but a zone around the protein
    mask_zone_a: float = 6.0
    threshold_p: float = 0.3                              # contour-thresholded maps
    threshold_percentile: tuple[float, float] = (40.0, 90.0)
    scale: tuple[float, float] = (0.5, 2.0)               # amplitude
    offset_sd: float = 0.3                                # offset, in signal sd
    belt_p: float = 0.0                                   # a detergent micelle / nanodisc belt (off by default)
    belt_thickness_a: tuple[float, float] = (24.0, 40.0)  # slab across the protein
    belt_reach_a: tuple[float, float] = (8.0, 20.0)       # how far it reaches out from the protein
    belt_level: tuple[float, float] = (0.2, 0.6)          # its density, times the protein's mean
    # what users do to a map before they give it to the model (:func:`segment`); off by default
    segment_p: float = 0.0                                # segmented: zero outside a zone of the atoms
    segment_zone_a: tuple[float, float] = (2.0, 6.0)      # zone radius (ChimeraX volume zone)
    cut_p: float = 0.0                                    # of segments: a contour that cuts into the
    cut_keep: tuple[float, float] = (0.25, 0.8)           # molecule's own density (share of zone kept)
    domain_p: float = 0.0                                 # of segments: one domain / chain-sized region
    domain_radius_a: tuple[float, float] = (14.0, 32.0)   # ball around a random protein voxel
    edge_sigma_a: tuple[float, float] = (0.0, 1.5)        # soft mask edge (boundary smoothing)
    post_blur_p: float = 0.0                              # of segments: low-pass after masking
    post_blur_sigma_a: tuple[float, float] = (0.6, 2.0)
    tight_p: float = 0.0                                  # of segments: box cut tight around the segment
    tight_margin_a: tuple[float, float] = (0.0, 6.0)

    def scaled(self, strength: float) -> "RealismConfig":
        """This configuration with every probability multiplied by ``strength`` (0 to 1)."""
        s = float(min(max(strength, 0.0), 1.0))
        return RealismConfig(**{k: (v * s if k.endswith("_p") else v) for k, v in asdict(self).items()})


def realism_problems(params) -> list[tuple[str, str]]:
    """``(field, problem)`` for every entry of a run's ``realism_params`` that is not a
    :class:`RealismConfig` field or has the wrong kind of value: probabilities (``*_p``) in
    [0, 1], ranges as two finite numbers low <= high, other settings finite numbers >= 0."""
    import difflib
    from dataclasses import fields

    if not isinstance(params, dict):
        return [("realism_params", f"must map realism settings to values, got {type(params).__name__}")]
    defaults = {f.name: f.default for f in fields(RealismConfig)}
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
    out = []
    for k, v in params.items():
        where = f"realism_params.{k}"
        if k not in defaults:
            near = difflib.get_close_matches(str(k), defaults, n=1)
            out.append((where, "not a realism setting" + (f" (did you mean {near[0]}?)" if near else "")))
        elif isinstance(defaults[k], tuple):
            if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(number(x) for x in v)):
                out.append((where, f"must be a range [low, high] of two numbers, got {v!r}"))
            elif not v[0] <= v[1]:
                out.append((where, f"low must not be above high, got {v[0]:g}, {v[1]:g}"))
        elif not number(v):
            out.append((where, f"must be a number, got {v!r}"))
        elif k.endswith("_p") and not 0 <= v <= 1:
            out.append((where, f"is a probability: must lie in [0, 1], got {v:g}"))
        elif v < 0:
            out.append((where, f"must be >= 0, got {v:g}"))
    return out


def _gauss(x: np.ndarray, sigma_vox: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma_vox, mode="reflect", truncate=3.0) if sigma_vox > 0 else x


def _smooth_field(shape, scale_vox: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-sd Gaussian random field with correlation length ``scale_vox``, made cheaply on a
    coarse grid and interpolated up."""
    from scipy.ndimage import zoom

    step = max(1.0, scale_vox / 2)
    coarse = tuple(max(2, int(math.ceil(n / step)) + 1) for n in shape)
    f = rng.standard_normal(coarse).astype(np.float32)
    f = _gauss(f, 1.0)
    up = zoom(f, [n / c for n, c in zip(shape, coarse)], order=1)[tuple(slice(0, n) for n in shape)]
    up = up - up.mean()
    return up / (up.std() + 1e-6)


def _belt(x: np.ndarray, zone: np.ndarray, v: float, rng: np.random.Generator, cfg: RealismConfig,
          p: dict) -> np.ndarray:
    """Amorphous density around part of the protein, as a detergent micelle or a nanodisc
    leaves around a membrane protein's transmembrane helices: a slab of random orientation
    through the protein, reaching a few Å to 20 Å out from it, at a fraction of the protein's
    mean density, with soft edges and a lumpy texture. Added under the protein too (density
    adds)."""
    from scipy.ndimage import distance_transform_edt

    u = lambda lo_hi: float(rng.uniform(*lo_hi))  # noqa: E731
    p["belt_thickness_a"], p["belt_reach_a"], p["belt_level"] = (
        u(cfg.belt_thickness_a), u(cfg.belt_reach_a), u(cfg.belt_level))
    n = rng.standard_normal(3)
    n /= np.linalg.norm(n) or 1.0
    pts = np.argwhere(zone)
    c = pts[rng.integers(len(pts))] * v
    grid = np.ogrid[tuple(slice(0, k) for k in x.shape)]
    h = sum((g * v - ci) * ni for g, ci, ni in zip(grid, c, n))
    slab = np.abs(h) <= p["belt_thickness_a"] / 2
    near = distance_transform_edt(~zone, sampling=v) <= p["belt_reach_a"]
    region = (slab & near).astype(np.float32)
    lumps = np.clip(1.0 + 0.3 * _smooth_field(x.shape, 6.0 / v, rng), 0.0, None)
    level = p["belt_level"] * float(x[zone].mean())
    return _gauss(region, 2.0 / v) * lumps * level


def degrade(x: np.ndarray, protein: np.ndarray | None, voxel_size_a: float, rng: np.random.Generator,
            cfg: RealismConfig = RealismConfig(), zone: np.ndarray | None = None,
            label_radius_a: float = DEFAULT_RADIUS_A) -> tuple[np.ndarray, dict]:
    """A degraded copy of density ``x`` and the parameters drawn.

    ``protein``: boolean mask of voxels near atoms (the label map's non-background), used by
    the masking effect; None disables it. ``zone``: the voxels near any atom, for the belt
    (default ``protein``); ``label_radius_a``: the radius ``protein`` was made with (the mask's
    zone grows it to ``mask_zone_a``). The result is float32; its scale is arbitrary (feed it to
    :func:`local_normalise`).
    """
    v = float(voxel_size_a)
    x = x.astype(np.float32)
    sd = float(x.std()) or 1.0
    x = x / sd
    p: dict = {}
    u = lambda lo_hi: float(rng.uniform(*lo_hi))  # noqa: E731
    zone = protein if zone is None else zone
    if cfg.belt_p > 0 and zone is not None and zone.any() and rng.random() < cfg.belt_p:
        x = x + _belt(x, zone, v, rng, cfg, p)
    if rng.random() < cfg.blur_p:
        p["blur_sigma_a"] = u(cfg.blur_sigma_a)
        x = _gauss(x, p["blur_sigma_a"] / v)
    if rng.random() < cfg.local_res_p:
        p["local_res_sigma_a"] = u(cfg.local_res_sigma_a)
        w = 1 / (1 + np.exp(-2 * _smooth_field(x.shape, cfg.local_res_scale_a / v, rng)))
        x = w * x + (1 - w) * _gauss(x, p["local_res_sigma_a"] / v)
    signal_sd = float(x.std()) or 1.0
    if rng.random() < cfg.noise_p:
        p["noise_sd"], p["noise_corr_a"] = u(cfg.noise_sd), u(cfg.noise_corr_a)
        n = _gauss(rng.standard_normal(x.shape).astype(np.float32), p["noise_corr_a"] / v)
        x = x + (p["noise_sd"] * signal_sd / (float(n.std()) + 1e-6)) * n
    if rng.random() < cfg.background_p:
        p["background_sd"] = u(cfg.background_sd)
        x = x + p["background_sd"] * signal_sd * _smooth_field(x.shape, cfg.background_scale_a / v, rng)
    # sharpening / band-pass filtering acts on signal and noise alike: ringing noise
    if rng.random() < cfg.highpass_p:
        p["highpass"], p["highpass_sigma_a"] = u(cfg.highpass), u(cfg.highpass_sigma_a)
        x = x - p["highpass"] * _gauss(x, p["highpass_sigma_a"] / v)
    if protein is not None and protein.any() and rng.random() < cfg.mask_p:
        from scipy.ndimage import binary_dilation

        r = max(1, int(round((cfg.mask_zone_a - label_radius_a) / v)))
        zone = binary_dilation(protein, iterations=r)
        p["mask_zone_a"] = cfg.mask_zone_a
        x = np.where(zone, x, 0.0).astype(np.float32)
    if rng.random() < cfg.threshold_p:
        p["threshold_percentile"] = u(cfg.threshold_percentile)
        t = float(np.percentile(x, p["threshold_percentile"]))
        x = np.where(x > t, x, 0.0).astype(np.float32)
    p["scale"] = u(cfg.scale)
    p["offset"] = float(rng.normal(0, cfg.offset_sd))
    x = x * p["scale"] + p["offset"] * signal_sd
    return x.astype(np.float32), p


def segment(x: np.ndarray, protein: np.ndarray, voxel_size_a: float, rng: np.random.Generator,
            cfg: RealismConfig, label_radius_a: float = DEFAULT_RADIUS_A
            ) -> tuple[np.ndarray, np.ndarray | None, tuple[slice, ...] | None, dict]:
    """What users do to a map before prediction: segment it (zero outside a zone of the atoms,
    as ChimeraX ``volume zone`` does), sometimes with a contour that cuts into the molecule's
    own density or to one domain-sized region, a soft mask edge, a low-pass *after* masking, and
    a box cut tight around what is left.

    ``protein``: voxels within the label radius (``label_radius_a``) of any atom. Returns (density, label mask or
    None, tight box or None, parameters): labels should be kept only where the mask is true
    (voxels more than a label radius away from any density left carry no evidence); the box is
    the region of the array the user's map would hold (normalise it on its own)."""
    from scipy.ndimage import binary_dilation, binary_erosion

    p: dict = {}
    if not protein.any() or rng.random() >= cfg.segment_p:
        return x, None, None, p
    v = float(voxel_size_a)
    u = lambda lo_hi: float(rng.uniform(*lo_hi))  # noqa: E731
    p["segment_zone_a"] = u(cfg.segment_zone_a)
    # protein is the zone of the label radius; grow or shrink it to the drawn radius
    steps = int(round((p["segment_zone_a"] - label_radius_a) / v))
    zone = (binary_dilation(protein, iterations=steps) if steps > 0 else
            binary_erosion(protein, iterations=-steps) if steps < 0 else protein.copy())
    if not zone.any():
        zone = protein.copy()
    if rng.random() < cfg.domain_p:
        p["domain_radius_a"] = u(cfg.domain_radius_a)
        pts = np.argwhere(protein)
        c = pts[rng.integers(len(pts))]
        grid = np.ogrid[tuple(slice(0, n) for n in x.shape)]
        d2 = sum((g - ci) ** 2 for g, ci in zip(grid, c)) * v * v
        zone &= d2 <= p["domain_radius_a"] ** 2
    if rng.random() < cfg.cut_p:
        p["cut_keep"] = u(cfg.cut_keep)
        t = float(np.quantile(x[zone], 1.0 - p["cut_keep"]))
        zone &= x > t
    p["edge_sigma_a"] = u(cfg.edge_sigma_a)
    m = _gauss(zone.astype(np.float32), p["edge_sigma_a"] / v) if p["edge_sigma_a"] > 0.3 * v else zone
    x = (x * m).astype(np.float32)
    if rng.random() < cfg.post_blur_p:
        p["post_blur_sigma_a"] = u(cfg.post_blur_sigma_a)
        x = _gauss(x, p["post_blur_sigma_a"] / v)
    keep = binary_dilation(zone, iterations=max(1, int(round(label_radius_a / v))))
    box = None
    if rng.random() < cfg.tight_p:
        p["tight_margin_a"] = u(cfg.tight_margin_a)
        r = int(round(p["tight_margin_a"] / v))
        pts = np.argwhere(zone)
        lo, hi = np.maximum(pts.min(0) - r, 0), np.minimum(pts.max(0) + r + 1, x.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    return x.astype(np.float32), keep, box, p


def support_normalise(x: np.ndarray, voxel_size_a: float, sigma_a: float = LOCAL_NORM_SIGMA_A,
                      floor: float = 0.05) -> np.ndarray:
    """:func:`local_normalise` with the statistics taken over the map's support only (voxels
    that are not exactly zero): a normalised convolution. A segmented map (zero outside its
    mask) then looks the same whatever share of the box the mask covers; voxels outside the
    support stay 0, and so does everything beyond the box's edge (the windows are zero-padded),
    so cutting the box tighter around a segment does not change it. On a map without exact
    zeros this is :func:`local_normalise`."""
    from scipy.ndimage import gaussian_filter

    x = x.astype(np.float32)
    s = (x != 0).astype(np.float32)
    if s.all() or not s.any():
        return local_normalise(x, voxel_size_a, sigma_a, floor)
    sig = sigma_a / float(voxel_size_a)

    def g(a):
        return gaussian_filter(a, sig, mode="constant", cval=0.0, truncate=3.0)

    w = np.maximum(g(s), 1e-3)
    mean = g(x) / w
    var = np.maximum(g(x * x) / w - mean * mean, 0.0)
    sd_all = float(x[s > 0].std()) or 1.0
    out = (x - mean) / np.sqrt(var + (floor * sd_all) ** 2)
    return np.where(s > 0, out, 0.0).astype(np.float32)


def local_normalise(x: np.ndarray, voxel_size_a: float, sigma_a: float = LOCAL_NORM_SIGMA_A,
                    floor: float = 0.05) -> np.ndarray:
    """``(x - local mean) / local sd`` with a Gaussian window of ``sigma_a`` Å.

    The local sd is floored at ``floor`` times the array's overall sd so that flat solvent
    (exactly zero in simulations, masked in real maps) stays near zero instead of blowing up.
    """
    x = x.astype(np.float32)
    s = sigma_a / float(voxel_size_a)
    mean = _gauss(x, s)
    var = np.maximum(_gauss(x * x, s) - mean * mean, 0.0)
    sd_all = float(x.std()) or 1.0
    return ((x - mean) / np.sqrt(var + (floor * sd_all) ** 2)).astype(np.float32)
