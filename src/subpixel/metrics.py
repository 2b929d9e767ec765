"""PSNR and SSIM under the super-resolution evaluation protocol.

The protocol of the SR literature (SRCNN, ESPCN, VDSR, ...): images are 8-bit; RGB images
are scored on the BT.601 studio-range luma channel (MATLAB's ``rgb2ycbcr``, Y in
``16..235``); ``scale`` pixels are shaved from every border; PSNR is
``10 log10(255² / MSE)`` and SSIM is Wang et al. (2004) with an 11×11 Gaussian window
(σ = 1.5), ``K1 = 0.01``, ``K2 = 0.03``, 'valid' filtering and the mean of the SSIM map
(MATLAB's ``ssim_index``). Everything is computed in ``float64``.

Inputs are one image as ``(C, H, W)`` or ``(1, C, H, W)`` with values in ``[0, 1]``:
RGB when ``C == 3``, already luma when ``C == 1``. **Quantise first**: the field scores
8-bit images, so pass ``quantize(x)`` (``round(clamp(x, 0, 1) * 255) / 255``) rather than
raw network output; :func:`sr_protocol_scores` does this for you.

Example:
    >>> import torch
    >>> from subpixel.metrics import psnr, ssim
    >>> hr = torch.full((3, 16, 16), 0.5)
    >>> sr = hr.clone(); sr[:, 0, 0] = 0.6
    >>> round(psnr(sr, hr, y_only=False), 2)
    44.08
    >>> psnr(hr, hr), ssim(hr, hr)
    (inf, 1.0)
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from subpixel.color import rgb_to_y

__all__ = ["gaussian_window", "psnr", "quantize", "sr_protocol_scores", "ssim"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels on the ``[0, 1]`` scale: ``round(clamp(x, 0, 1) * 255) / 255``.

    Matches MATLAB's ``uint8(x * 255)``: saturate, then round half away from zero (not
    ``torch.round``'s half-to-even).

    Args:
        x: Floating-point tensor of any shape.

    Returns:
        The quantised tensor, same dtype and device.

    Example:
        >>> quantize(torch.tensor([-0.1, 0.5, 1.2], dtype=torch.float64)).mul(255).tolist()
        [0.0, 128.0, 255.0]
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError("quantize: expected a floating-point tensor")
    # floor(v + 0.5) is MATLAB's round-half-away-from-zero for v >= 0.
    return torch.floor(x.clamp(0, 1) * 255 + 0.5) / 255


@lru_cache(maxsize=8)
def _gaussian_1d(size: int, sigma: float, device: str) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64, device=torch.device(device)) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: torch.Tensor) -> torch.Tensor:
    """'valid' correlation of the last two axes with ``fspecial('gaussian', 11, 1.5)``.

    That normalised 2-D Gaussian is the outer product of the normalised 1-D one, so filter
    separably, as 11 shifted multiply-adds per axis (float64 convolution is slow on CPU).
    """
    g = _gaussian_1d(SSIM_WINDOW, SSIM_SIGMA, str(x.device)).tolist()
    n = SSIM_WINDOW
    h, w = x.shape[-2:]
    rows = x[..., 0 : h - n + 1, :] * g[0]
    for k in range(1, n):
        rows.add_(x[..., k : h - n + 1 + k, :], alpha=g[k])
    out = rows[..., 0 : w - n + 1] * g[0]
    for k in range(1, n):
        out.add_(rows[..., k : w - n + 1 + k], alpha=g[k])
    return out


@lru_cache(maxsize=8)
def _window(size: int, sigma: float, device: str) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64, device=torch.device(device)) - (size - 1) / 2
    g = torch.exp(-(r * r) / (2 * sigma * sigma))
    w2 = g[:, None] * g[None, :]
    return w2 / w2.sum()


def gaussian_window(
    size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """MATLAB's ``fspecial('gaussian', size, sigma)``: a normalised ``float64`` 2-D Gaussian.

    Args:
        size: Window side.
        sigma: Standard deviation in pixels.
        device: Device of the result.

    Returns:
        A ``(size, size)`` tensor summing to 1 (cached; do not modify in place).

    Example:
        >>> round(gaussian_window().sum().item(), 12)
        1.0
    """
    return _window(int(size), float(sigma), str(torch.device(device)))


def _prepare(
    sr: torch.Tensor, hr: torch.Tensor, shave: int, data_range: float, y_only: bool, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate, convert to Y if asked, shave, scale to ``[0, data_range]``; ``(C, H, W)`` f64."""
    for label, t in (("sr", sr), ("hr", hr)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {label} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name}: {label} must be floating point in [0, 1], got {t.dtype}")
    if sr.shape != hr.shape:
        raise ValueError(f"{name}: sr and hr shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    shape = tuple(sr.shape)
    if sr.ndim == 4 and shape[0] == 1:
        sr, hr = sr[0], hr[0]
    if sr.ndim != 3 or sr.shape[0] not in (1, 3):
        raise ValueError(
            f"{name}: expected one image (C, H, W) or (1, C, H, W), C 1 or 3; got {shape}"
        )
    if not isinstance(shave, int) or shave < 0:
        raise ValueError(f"{name}: shave must be a non-negative int, got {shave!r}")
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"{name}: data_range must be positive, got {data_range}")
    sr = sr.to(torch.float64)
    hr = hr.to(sr.device, torch.float64)
    if y_only and sr.shape[0] == 3:
        sr, hr = rgb_to_y(sr), rgb_to_y(hr)
    h, w = sr.shape[-2:]
    if 2 * shave >= h or 2 * shave >= w:
        raise ValueError(f"{name}: shave={shave} leaves nothing of an image of shape {shape}")
    if shave:
        sr = sr[:, shave : h - shave, shave : w - shave]
        hr = hr[:, shave : h - shave, shave : w - shave]
    return sr * data_range, hr * data_range


def psnr(
    sr: torch.Tensor,
    hr: torch.Tensor,
    *,
    shave: int = 0,
    data_range: float = 255.0,
    y_only: bool = True,
) -> float:
    """Peak signal-to-noise ratio in dB under the SR protocol.

    ``10 log10(data_range² / MSE)`` in ``float64``, after converting RGB to BT.601 luma
    (when ``y_only``) and shaving ``shave`` pixels from every border. The ``[0, 1]`` inputs
    are scored on the ``0..data_range`` scale, so the value does not depend on
    ``data_range`` (255 by convention). Quantise both images to 8-bit levels first
    (:func:`quantize`), as the field does.

    Args:
        sr: Super-resolved image, ``(C, H, W)`` or ``(1, C, H, W)``, values in ``[0, 1]``.
        hr: Ground truth, same shape.
        shave: Pixels removed from every border before scoring (``scale`` in the protocol).
        data_range: Peak value of the scoring scale.
        y_only: Score the luma of RGB images; ignored for 1-channel images (already Y).

    Returns:
        PSNR in dB (``inf`` for identical images).

    Raises:
        TypeError: If an input is not a floating-point tensor.
        ValueError: On a shape mismatch, a bad shape, or a shave that leaves nothing.

    Example:
        >>> import torch
        >>> hr = torch.zeros(1, 8, 8, dtype=torch.float64)
        >>> round(psnr(hr + 1 / 255, hr), 4)  # one level of error everywhere
        48.1308
    """
    a, b = _prepare(sr, hr, shave, data_range, y_only, "psnr")
    mse = torch.mean((a - b) ** 2).item()
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def _ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """Wang et al.'s SSIM map with 'valid' Gaussian filtering; ``a``, ``b`` are ``(C, H, W)``."""
    stack = torch.stack([a, b, a * a, b * b, a * b])
    mu_a, mu_b, e_aa, e_bb, e_ab = _filter_valid(stack)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = e_aa - mu_aa
    var_b = e_bb - mu_bb
    cov = e_ab - mu_ab
    return ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_aa + mu_bb + c1) * (var_a + var_b + c2))


def ssim(
    sr: torch.Tensor,
    hr: torch.Tensor,
    *,
    shave: int = 0,
    data_range: float = 255.0,
    y_only: bool = True,
) -> float:
    """Structural similarity (Wang et al. 2004) under the SR protocol.

    MATLAB ``ssim_index`` settings: 11×11 Gaussian window with σ = 1.5, ``K1 = 0.01``,
    ``K2 = 0.03``, 'valid' filtering (no padding, no downsampling), mean of the SSIM map;
    ``float64``. RGB is converted to BT.601 luma when ``y_only``; otherwise the SSIM of each
    channel is averaged. Quantise both images to 8-bit levels first (:func:`quantize`).

    Args:
        sr: Super-resolved image, ``(C, H, W)`` or ``(1, C, H, W)``, values in ``[0, 1]``.
        hr: Ground truth, same shape.
        shave: Pixels removed from every border before scoring (``scale`` in the protocol).
        data_range: Peak value of the scoring scale (sets ``C1 = (K1 L)²``, ``C2 = (K2 L)²``).
        y_only: Score the luma of RGB images; ignored for 1-channel images (already Y).

    Returns:
        The mean SSIM (1.0 for identical images).

    Raises:
        TypeError: If an input is not a floating-point tensor.
        ValueError: On a shape mismatch, a bad shape, or an image smaller than 11×11 after
            shaving.

    Example:
        >>> import torch
        >>> hr = torch.rand(1, 32, 32, dtype=torch.float64)
        >>> ssim(hr, hr)
        1.0
        >>> ssim(hr * 0.5, hr) < 1.0
        True
    """
    a, b = _prepare(sr, hr, shave, data_range, y_only, "ssim")
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(
            f"ssim: needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after shave={shave}, "
            f"got shape {tuple(sr.shape)}"
        )
    if torch.equal(a, b):
        return 1.0
    return torch.mean(_ssim_map(a, b, data_range)).item()


def sr_protocol_scores(
    sr: torch.Tensor, hr: torch.Tensor, scale: int, *, quantize_inputs: bool = True
) -> tuple[float, float]:
    """``(PSNR, SSIM)`` of one image exactly as SR papers report them.

    Quantises both images to 8-bit levels (unless ``quantize_inputs=False``), scores the
    BT.601 luma of RGB images (1-channel images are taken as luma), and shaves ``scale``
    pixels from every border.

    Args:
        sr: Super-resolved image, ``(C, H, W)`` or ``(1, C, H, W)``, values in ``[0, 1]``.
        hr: Ground truth (mod-cropped to the SR size), same shape.
        scale: The upscaling factor; also the shave.
        quantize_inputs: Round both images to 8-bit levels first (the protocol).

    Returns:
        ``(psnr_db, ssim)``.

    Raises:
        TypeError: If an input is not a floating-point tensor.
        ValueError: On bad shapes or a non-positive ``scale``.

    Example:
        >>> import torch
        >>> hr = torch.rand(3, 24, 24)
        >>> sr_protocol_scores(hr, hr, 2)
        (inf, 1.0)
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"sr_protocol_scores: scale must be a positive int, got {scale!r}")
    if quantize_inputs:
        sr, hr = quantize(sr), quantize(hr)
    return psnr(sr, hr, shave=scale), ssim(sr, hr, shave=scale)
