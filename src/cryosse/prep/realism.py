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

__all__ = ["RealismConfig", "degrade", "local_normalise", "LOCAL_NORM_SIGMA_A"]

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

    def scaled(self, strength: float) -> "RealismConfig":
        """This configuration with every probability multiplied by ``strength`` (0 to 1)."""
        s = float(min(max(strength, 0.0), 1.0))
        return RealismConfig(**{k: (v * s if k.endswith("_p") else v) for k, v in asdict(self).items()})


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


def degrade(x: np.ndarray, protein: np.ndarray | None, voxel_size_a: float, rng: np.random.Generator,
            cfg: RealismConfig = RealismConfig()) -> tuple[np.ndarray, dict]:
    """A degraded copy of density ``x`` and the parameters drawn.

    ``protein``: boolean mask of voxels near atoms (the label map's non-background), used by
    the masking effect; None disables it. The result is float32; its scale is arbitrary (feed
    it to :func:`local_normalise`).
    """
    v = float(voxel_size_a)
    x = x.astype(np.float32)
    sd = float(x.std()) or 1.0
    x = x / sd
    p: dict = {}
    u = lambda lo_hi: float(rng.uniform(*lo_hi))  # noqa: E731
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

        r = max(1, int(round((cfg.mask_zone_a - 3.0) / v)))
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
