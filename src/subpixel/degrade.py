"""Realistic, seeded degradations for super-resolution training pairs (HR → degraded LR).

A model trained only on clean bicubic downscaling learns that every edge in its input is
sharp and every pixel noise-free, so on camera and web photos it sharpens JPEG blocks and
noise. :func:`degrade` makes the LR image the way such photos are made, each step optional
and drawn at random within the ranges of a :class:`DegradationConfig`:

1. ``"blur"``: isotropic or anisotropic (rotated) Gaussian, or a short motion blur (an
   antialiased line kernel at a random angle);
2. ``"downscale"`` by the integer scale: MATLAB-style antialiased bicubic
   (:func:`subpixel.resize.imresize`), plain bilinear (no antialiasing, as OpenCV's
   ``INTER_LINEAR``) or area (``scale × scale`` block means), chosen with weights;
3. ``"noise"``: Gaussian (sigma in 0–255 units) or Poisson (shot noise, signal dependent),
   in RGB or in luma only (the same value added to R, G and B);
4. ``"jpeg"``: Pillow's JPEG encoder and decoder in memory at a random quality, 4:2:0 chroma
   subsampling as cameras do, optionally followed by a second JPEG pass.

The steps run in ``config.order``. Blur sizes are given in **LR pixels** (so one preset fits
every scale) and multiplied by the scale when the blur runs before the downscaling; the
recorded steps hold the values actually used on the image they touched. Presets:
:data:`CLEAN` (bicubic only: the SR protocol, equal to :func:`subpixel.data.degrade` bit for
bit) and :data:`PHOTO` (camera and web photos: mild blur, all three downscalers, mild noise,
JPEG 30–95, sometimes a second pass).

Images are float ``(3, H, W)`` RGB tensors in ``[0, 1]`` (as :mod:`subpixel.data` holds them)
or, with :func:`degrade_patch`, ``uint8`` ``(H, W, 3)`` arrays. ``H`` and ``W`` must be
multiples of the scale: the LR is exactly ``H/scale × W/scale`` and LR pixel ``(i, j)``
covers HR pixels ``[i·s, (i+1)·s) × [j·s, (j+1)·s)`` (no step shifts the image). The LR is
on 8-bit levels, like a saved file. Degrade in RGB, then convert to Y if the model wants Y.

Randomness comes only from the ``numpy.random.Generator`` (or seed) passed in: the same seed
gives the same LR bit for bit, and the returned :class:`Applied` record replays it with
:func:`apply_steps`.

Example:
    >>> import torch
    >>> from subpixel.degrade import PHOTO, degrade
    >>> hr = torch.rand(3, 96, 96)
    >>> lr, applied = degrade(hr, 4, PHOTO, 0)
    >>> lr.shape
    torch.Size([3, 24, 24])
    >>> torch.equal(lr, degrade(hr, 4, PHOTO, 0).lr)
    True
    >>> applied.names[0] in ("blur", "downscale")
    True
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import torch

from subpixel.color import RGB_TO_YCBCR_MATRIX
from subpixel.metrics import quantize
from subpixel.resize import imresize

__all__ = [
    "CLEAN",
    "JPEG",
    "LUMA_WEIGHTS",
    "PHOTO",
    "PRESETS",
    "Applied",
    "DegradationConfig",
    "Degraded",
    "Downscale",
    "GaussianBlur",
    "Jpeg",
    "MotionBlur",
    "Noise",
    "Step",
    "add_noise",
    "apply_steps",
    "blur",
    "configure",
    "degrade",
    "degrade_patch",
    "downscale",
    "gaussian_kernel",
    "jpeg",
    "motion_kernel",
    "preset",
    "sample_steps",
]

STEPS = ("blur", "downscale", "noise", "jpeg")
BLUR_KINDS = ("isotropic", "anisotropic", "motion")
DOWNSCALERS = ("bicubic", "bilinear", "area")
NOISE_KINDS = ("gaussian", "poisson")

#: Luma weights of R, G, B (BT.601, summing to 1), from :mod:`subpixel.color`'s matrix.
LUMA_WEIGHTS: np.ndarray = RGB_TO_YCBCR_MATRIX[0] / RGB_TO_YCBCR_MATRIX[0].sum()

Weights = tuple[tuple[str, float], ...]
Range = tuple[float, float]


# ---------------------------------------------------------------------------------------------
# Kernels and steps (pure functions of an image and explicit parameters)
# ---------------------------------------------------------------------------------------------


def gaussian_kernel(
    sigma_x: float, sigma_y: float | None = None, angle: float = 0.0, *, truncate: float = 4.0
) -> np.ndarray:
    """A normalised, sampled 2-D Gaussian, possibly anisotropic and rotated.

    The covariance is ``R diag(sigma_x², sigma_y²) Rᵀ`` where ``R`` turns the x axis by
    ``angle`` degrees counter-clockwise as seen on screen (rows grow downwards). The kernel is
    square, ``2r + 1`` wide with ``r = ceil(truncate · max(sigma_x, sigma_y))``, and sums to 1.

    Args:
        sigma_x: Standard deviation along the rotated x axis, in pixels (> 0).
        sigma_y: Along the rotated y axis; ``None`` for ``sigma_x`` (isotropic).
        angle: Rotation in degrees.
        truncate: Radius in standard deviations.

    Returns:
        ``float64`` array ``(2r + 1, 2r + 1)`` indexed ``[dy + r, dx + r]``.

    Raises:
        ValueError: If a sigma is not positive and finite.

    Example:
        >>> k = gaussian_kernel(1.0)
        >>> k.shape, round(float(k.sum()), 12), bool((k == k.T).all())
        ((9, 9), 1.0, True)
    """
    sy = sigma_x if sigma_y is None else sigma_y
    for name, s in (("sigma_x", sigma_x), ("sigma_y", sy)):
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"gaussian_kernel: {name} must be positive and finite, got {s}")
    r = max(1, math.ceil(truncate * max(sigma_x, sy)))
    d = np.arange(-r, r + 1, dtype=np.float64)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    t = math.radians(angle)
    # Coordinates along the rotated axes; screen "up" is -dy.
    u = dx * math.cos(t) - dy * math.sin(t)
    v = dx * math.sin(t) + dy * math.cos(t)
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sy) ** 2))
    return k / k.sum()


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line kernel: motion blur over ``length`` pixels at ``angle`` degrees.

    The line segment is centred on the kernel's centre (the blur does not shift the image),
    turned ``angle`` degrees counter-clockwise from the x axis as seen on screen, and drawn
    antialiased: a pixel's weight is ``max(0, 1 - distance to the segment)``. Along an axis
    the weights sum to ``length`` before normalisation, so an odd integer length at
    ``angle=0`` is a box filter of that length; ``length=1`` is the identity.

    Args:
        length: Length of the motion in pixels (>= 1).
        angle: Direction in degrees.

    Returns:
        ``float64`` odd-sized square array, indexed ``[dy + r, dx + r]``, summing to 1.

    Raises:
        ValueError: If ``length`` is not a finite number >= 1.

    Example:
        >>> (motion_kernel(3, 0) * 3).tolist()
        [[1.0, 1.0, 1.0]]
        >>> motion_kernel(2, 90).shape
        (3, 1)
    """
    if not (math.isfinite(length) and length >= 1):
        raise ValueError(f"motion_kernel: length must be a finite number >= 1, got {length}")
    half = (length - 1) / 2
    r = math.floor(half) + 1
    d = np.arange(-r, r + 1, dtype=np.float64)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    t = math.radians(angle)
    along = dx * math.cos(t) - dy * math.sin(t)
    across = dx * math.sin(t) + dy * math.cos(t)
    dist = np.hypot(np.clip(np.abs(along) - half, 0, None), across)
    k = np.clip(1.0 - dist, 0, None)
    k[k < 1e-9] = 0.0  # rounding of cos/sin at multiples of 90°
    # Rows/columns that are all zero (a horizontal or vertical line) are trimmed.
    rows, cols = np.flatnonzero(k.any(axis=1)), np.flatnonzero(k.any(axis=0))
    ry = max(r - int(rows[0]), int(rows[-1]) - r)
    rx = max(r - int(cols[0]), int(cols[-1]) - r)
    k = k[r - ry : r + ry + 1, r - rx : r + rx + 1]
    return k / k.sum()


@lru_cache(maxsize=64)
def _symmetric_index(n: int, pad: int) -> torch.Tensor:
    """Indices of ``[-pad, n + pad)`` mirrored into ``[0, n)`` as MATLAB's ``'symmetric'``."""
    aux = np.concatenate([np.arange(n), np.arange(n)[::-1]])
    return torch.from_numpy(aux[np.mod(np.arange(-pad, n + pad), 2 * n)])


def _fft_len(n: int) -> int:
    """The smallest ``2^a · 3^b · 5^c >= n`` with ``b, c <= 1`` (sizes PyTorch's FFT does fast)."""
    m = n
    while True:
        k = m
        while k % 2 == 0:
            k //= 2
        if k in (1, 3, 5, 15):
            return m
        m += 1


def blur(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Convolve each channel of ``(C, H, W)`` with an odd-sized 2-D kernel, same size out.

    Borders are mirrored symmetrically (``d c b a | a b c d``, MATLAB's ``'symmetric'``, SciPy's
    ``mode="reflect"``), so a constant image stays constant. Computed as a true convolution
    with FFTs in ``x``'s dtype (``float32`` or ``float64``): the cost hardly depends on the
    kernel's size.

    Args:
        x: Floating-point tensor ``(C, H, W)``.
        kernel: 2-D array with odd height and width, centred.

    Returns:
        The blurred tensor, same shape and dtype.

    Raises:
        ValueError: If the kernel is not 2-D with odd sizes.

    Example:
        >>> x = torch.full((3, 8, 8), 0.5, dtype=torch.float64)
        >>> torch.allclose(blur(x, gaussian_kernel(1.5, 0.5, 30)), x)
        True
    """
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise ValueError(f"blur: the kernel must be 2-D with odd sizes, got {kernel.shape}")
    h, w = x.shape[-2], x.shape[-1]
    ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
    iy, ix = _symmetric_index(h, ry).to(x.device), _symmetric_index(w, rx).to(x.device)
    padded = x.index_select(-2, iy).index_select(-1, ix)
    # Linear convolution of the padded image: no wrap-around inside the kept window when the
    # FFT is at least as long as the padded image.
    size = (_fft_len(h + 2 * ry), _fft_len(w + 2 * rx))
    k = torch.as_tensor(kernel, dtype=x.dtype, device=x.device)
    spectrum = torch.fft.rfft2(padded, s=size) * torch.fft.rfft2(k, s=size)
    out = torch.fft.irfft2(spectrum, s=size)
    return out[..., 2 * ry : 2 * ry + h, 2 * rx : 2 * rx + w].contiguous()


def downscale(x: torch.Tensor, scale: int, method: str) -> torch.Tensor:
    """Shrink ``(C, H, W)`` by the integer ``scale`` with ``method``, keeping pixel centres aligned.

    - ``"bicubic"``: :func:`subpixel.resize.imresize` (MATLAB's antialiased bicubic);
    - ``"bilinear"``: bilinear interpolation without antialiasing (OpenCV ``INTER_LINEAR``,
      PyTorch ``align_corners=False``): LR pixel ``i`` samples HR position ``(i + ½)·s − ½``;
    - ``"area"``: the mean of each ``scale × scale`` block (OpenCV ``INTER_AREA``).

    Args:
        x: Floating-point tensor ``(C, H, W)``, ``H`` and ``W`` multiples of ``scale``.
        scale: Integer factor >= 1.
        method: One of ``"bicubic"``, ``"bilinear"``, ``"area"``.

    Returns:
        ``(C, H/scale, W/scale)``, same dtype.

    Raises:
        ValueError: If ``method`` is unknown or the size is not a multiple of ``scale``.

    Example:
        >>> downscale(torch.arange(16.0).reshape(1, 4, 4), 2, "area").tolist()
        [[[2.5, 4.5], [10.5, 12.5]]]
    """
    h, w = x.shape[-2], x.shape[-1]
    if h % scale or w % scale:
        raise ValueError(f"downscale: size {h}x{w} is not a multiple of the scale {scale}")
    if method == "bicubic":
        return imresize(x, 1.0 / scale)
    if method == "bilinear":
        size = (h // scale, w // scale)
        out = torch.nn.functional.interpolate(
            x[None], size=size, mode="bilinear", align_corners=False, antialias=False
        )
        return out[0]
    if method == "area":
        c = x.shape[0]
        return x.reshape(c, h // scale, scale, w // scale, scale).mean(dim=(2, 4))
    raise ValueError(f"downscale: method must be one of {DOWNSCALERS}, got {method!r}")


def add_noise(
    x: torch.Tensor, kind: str, sigma: float, *, grey: bool, rng: np.random.Generator
) -> torch.Tensor:
    """Add Gaussian or Poisson noise to RGB ``(3, H, W)`` in ``[0, 1]``; no clamping.

    - ``"gaussian"``: zero-mean, standard deviation ``sigma / 255``;
    - ``"poisson"``: shot noise ``Poisson(v · peak) / peak − v`` with ``peak = (255/sigma)²``
      photons at white, so the standard deviation is ``sigma/255 · sqrt(v)`` at level ``v``.

    With ``grey``, one noise plane (drawn on the BT.601 luma for Poisson) is added to R, G and
    B alike: only the luma changes (BT.601 Cb and Cr are exactly unchanged).

    Args:
        x: RGB tensor ``(3, H, W)``, ``float32`` or ``float64``.
        kind: ``"gaussian"`` or ``"poisson"``.
        sigma: Noise level in 0–255 units (Poisson: at white); >= 0.
        grey: Luma-only noise instead of independent noise per channel.
        rng: The source of the noise.

    Returns:
        ``x`` plus noise, same shape and dtype.

    Raises:
        ValueError: If ``kind`` is unknown or ``sigma`` is negative.

    Example:
        >>> x = torch.full((3, 64, 64), 0.5)
        >>> y = add_noise(x, "gaussian", 10.0, grey=False, rng=np.random.default_rng(0))
        >>> round(float((y - x).std() * 255))
        10
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"add_noise: kind must be one of {NOISE_KINDS}, got {kind!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"add_noise: sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return x.clone()
    shape = (1, *x.shape[1:]) if grey else tuple(x.shape)
    if kind == "gaussian":
        noise = rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma / 255.0)
    else:
        v = x.detach().cpu().double().numpy()
        if grey:
            v = np.tensordot(LUMA_WEIGHTS, v, axes=1)[None]
        v = np.clip(v, 0.0, None)
        peak = (255.0 / sigma) ** 2
        noise = rng.poisson(v * peak) / peak - v
    return x + torch.from_numpy(np.ascontiguousarray(noise)).to(x.device, x.dtype)


def _to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    # The levels of quantize(x) * 255: MATLAB's uint8(x * 255).
    levels = torch.floor(x.detach().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return np.ascontiguousarray(levels.permute(1, 2, 0).numpy())


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Save RGB ``(3, H, W)`` in ``[0, 1]`` as JPEG at ``quality`` in memory and decode it.

    The image is first quantised to 8 bits (clamped); Pillow encodes it with 4:2:0 chroma
    subsampling (as cameras do) and decodes it back to RGB.

    Args:
        x: RGB tensor ``(3, H, W)``, floating point.
        quality: JPEG quality, 1–100.

    Returns:
        The decoded image on 8-bit levels, same shape and dtype.

    Raises:
        ValueError: If ``quality`` is outside 1–100.
        ImportError: If Pillow is not installed.

    Example:
        >>> y = jpeg(torch.rand(3, 16, 16), 75)
        >>> y.shape, bool(torch.equal(y, torch.round(y * 255) / 255))
        (torch.Size([3, 16, 16]), True)
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"jpeg: quality must be in 1..100, got {quality}")
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is in the 'sr' extra
        raise ImportError("the JPEG degradation needs Pillow: pip install 'subpixel[sr]'") from e
    buf = io.BytesIO()
    Image.fromarray(_to_uint8_hwc(x)).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    with Image.open(buf) as im:
        decoded = np.asarray(im.convert("RGB"))
    out = torch.from_numpy(decoded.transpose(2, 0, 1).copy()).to(x.dtype) / 255
    return out.to(x.device)


# ---------------------------------------------------------------------------------------------
# Steps as records: what was drawn, replayable
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianBlur:
    """A Gaussian blur; sizes in pixels of the image it is applied to, ``angle`` in degrees."""

    sigma_x: float
    sigma_y: float
    angle: float = 0.0

    @property
    def kind(self) -> str:
        """``"isotropic"`` when both sigmas are equal, else ``"anisotropic"``."""
        return "isotropic" if self.sigma_x == self.sigma_y else "anisotropic"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Blur ``x`` (see :func:`blur`, :func:`gaussian_kernel`)."""
        return blur(x, gaussian_kernel(self.sigma_x, self.sigma_y, self.angle))

    def __str__(self) -> str:
        if self.kind == "isotropic":
            return f"blur(gaussian σ={self.sigma_x:.2f})"
        return f"blur(gaussian σ={self.sigma_x:.2f}×{self.sigma_y:.2f} θ={self.angle:.0f}°)"


@dataclass(frozen=True)
class MotionBlur:
    """A motion blur over ``length`` pixels in direction ``angle`` (degrees)."""

    length: float
    angle: float

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Blur ``x`` (see :func:`blur`, :func:`motion_kernel`)."""
        return blur(x, motion_kernel(self.length, self.angle))

    def __str__(self) -> str:
        return f"blur(motion {self.length:.2f}px θ={self.angle:.0f}°)"


@dataclass(frozen=True)
class Downscale:
    """Downscaling by the integer ``scale`` with ``method`` (see :func:`downscale`)."""

    method: str
    scale: int

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Downscale ``x``."""
        return downscale(x, self.scale, self.method)

    def __str__(self) -> str:
        return f"downscale({self.method} ×{self.scale})"


@dataclass(frozen=True)
class Noise:
    """Noise of ``kind`` and level ``sigma`` (0–255), luma-only if ``grey``, from ``seed``."""

    kind: str
    sigma: float
    grey: bool
    seed: int

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Add the noise (see :func:`add_noise`); the same ``seed`` gives the same noise."""
        return add_noise(
            x, self.kind, self.sigma, grey=self.grey, rng=np.random.default_rng(self.seed)
        )

    def __str__(self) -> str:
        return f"noise({self.kind} σ={self.sigma:.2f}{' grey' if self.grey else ''})"


@dataclass(frozen=True)
class Jpeg:
    """One JPEG save and load at ``quality`` (see :func:`jpeg`)."""

    quality: int

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """JPEG-compress ``x``."""
        return jpeg(x, self.quality)

    def __str__(self) -> str:
        return f"jpeg(q={self.quality})"


#: Any one recorded step.
Step: TypeAlias = GaussianBlur | MotionBlur | Downscale | Noise | Jpeg


@dataclass(frozen=True)
class Applied:
    """The steps drawn for one image, in the order they run; ``str()`` gives a one-liner.

    Example:
        >>> str(Applied((Downscale("area", 2), Jpeg(80))))
        'downscale(area ×2) → jpeg(q=80)'
    """

    steps: tuple[Step, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The step names: ``"blur"``, ``"downscale"``, ``"noise"``, ``"jpeg"`` (per pass)."""
        kinds = {GaussianBlur: "blur", MotionBlur: "blur", Downscale: "downscale"}
        return tuple(kinds.get(type(s), type(s).__name__.lower()) for s in self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __str__(self) -> str:
        return " → ".join(str(s) for s in self.steps)


# ---------------------------------------------------------------------------------------------
# Configuration and presets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DegradationConfig:
    """What :func:`degrade` may do, in which order, and within which ranges.

    The defaults are :data:`CLEAN`: bicubic downscaling only. Probabilities are per image;
    ``*_weights`` are ``(name, weight)`` pairs for a weighted random choice (weights need not
    sum to 1); ranges are ``(low, high)``, drawn uniformly (qualities as integers, both ends
    included).

    Attributes:
        clean_prob: Probability that an image gets the SR protocol's bicubic downscaling
            only (:data:`CLEAN`) instead of drawing the steps below, so that a model trained
            on the mixture still sees clean inputs and keeps their detail.
        order: The steps to run, a subset of ``("blur", "downscale", "noise", "jpeg")`` in any
            order that contains ``"downscale"``.
        blur_prob: Probability of the blur step.
        blur_weights: Weights of ``"isotropic"``, ``"anisotropic"`` and ``"motion"`` blur.
        blur_sigma: Gaussian sigma range in LR pixels (both sigmas when anisotropic; the angle
            is uniform in [0°, 180°)).
        motion_length: Motion length range in LR pixels (>= 1; uniform angle).
        downscale_weights: Weights of ``"bicubic"``, ``"bilinear"`` and ``"area"``.
        noise_prob: Probability of the noise step.
        noise_weights: Weights of ``"gaussian"`` and ``"poisson"`` noise.
        noise_sigma: Noise level range, 0–255 units (Poisson: the standard deviation at white).
        noise_grey_prob: Probability that the noise is luma-only rather than per channel.
        jpeg_prob: Probability of the JPEG step.
        jpeg_quality: Quality range of the first JPEG pass (1–100).
        jpeg2_prob: Probability of a second JPEG pass, given a first.
        jpeg2_quality: Quality range of the second pass.

    Raises:
        ValueError: Naming the field, when a value is out of its domain.

    Example:
        >>> DegradationConfig(order=("downscale", "jpeg"), jpeg_prob=1.0).jpeg_quality
        (30, 95)
        >>> DegradationConfig(blur_prob=2.0)
        Traceback (most recent call last):
        ...
        ValueError: DegradationConfig.blur_prob must be in [0, 1], got 2.0
    """

    order: tuple[str, ...] = ("blur", "downscale", "noise", "jpeg")
    clean_prob: float = 0.0
    blur_prob: float = 0.0
    blur_weights: Weights = (("isotropic", 0.5), ("anisotropic", 0.35), ("motion", 0.15))
    blur_sigma: Range = (0.2, 0.8)
    motion_length: Range = (1.0, 3.0)
    downscale_weights: Weights = (("bicubic", 1.0),)
    noise_prob: float = 0.0
    noise_weights: Weights = (("gaussian", 0.6), ("poisson", 0.4))
    noise_sigma: Range = (1.0, 8.0)
    noise_grey_prob: float = 0.4
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 95)
    jpeg2_prob: float = 0.0
    jpeg2_quality: tuple[int, int] = (60, 95)

    def __post_init__(self) -> None:
        order = tuple(self.order)
        object.__setattr__(self, "order", order)
        unknown = [s for s in order if s not in STEPS]
        if unknown or len(set(order)) != len(order) or "downscale" not in order:
            raise ValueError(
                f"DegradationConfig.order must hold distinct steps of {STEPS} including "
                f"'downscale', got {self.order!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_prob"):
                _check_prob(f.name, value)
        _check_weights("blur_weights", self.blur_weights, BLUR_KINDS)
        _check_weights("downscale_weights", self.downscale_weights, DOWNSCALERS)
        _check_weights("noise_weights", self.noise_weights, NOISE_KINDS)
        _check_range("blur_sigma", self.blur_sigma, low=0.0, strict=True)
        _check_range("motion_length", self.motion_length, low=1.0)
        _check_range("noise_sigma", self.noise_sigma, low=0.0)
        for name in ("jpeg_quality", "jpeg2_quality"):
            value = getattr(self, name)
            _check_range(name, value, low=1.0, high=100.0)
            if any(int(v) != v for v in value):
                raise ValueError(f"DegradationConfig.{name} must be integers, got {value!r}")


def _check_prob(name: str, value: object) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"DegradationConfig.{name} must be in [0, 1], got {value!r}")


def _check_weights(name: str, value: object, allowed: tuple[str, ...]) -> None:
    ok = isinstance(value, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and p[0] in allowed for p in value
    )
    if ok:
        assert isinstance(value, tuple)
        names = [p[0] for p in value]
        weights = [p[1] for p in value]
        ok = (
            len(set(names)) == len(names)
            and all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights)
            and sum(weights) > 0
        )
    if not ok:
        raise ValueError(
            f"DegradationConfig.{name} must be distinct (name, weight >= 0) pairs with names "
            f"from {allowed} and a positive total, got {value!r}"
        )


def _check_range(
    name: str, value: object, *, low: float, high: float = math.inf, strict: bool = False
) -> None:
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
    )
    if ok:
        assert isinstance(value, tuple)
        lo, hi = value
        ok = (lo > low if strict else lo >= low) and lo <= hi <= high
    if not ok:
        bound = f"> {low}" if strict else f">= {low}"
        upper = "" if math.isinf(high) else f" and <= {high}"
        raise ValueError(
            f"DegradationConfig.{name} must be a (low, high) pair with low {bound}, "
            f"low <= high{upper}; got {value!r}"
        )


#: The SR protocol: MATLAB bicubic downscaling only (equals :func:`subpixel.data.degrade`).
CLEAN = DegradationConfig(order=("downscale",), downscale_weights=(("bicubic", 1.0),))

#: Camera and web photos: 30 % of the images clean (bicubic only); the others get mild blur
#: (half of them), bicubic/bilinear/area downscaling (2:1:1), mild Gaussian or Poisson noise
#: (half, 40 % of it luma-only), JPEG at quality 30–95 (90 %) and a second pass at 60–95 for
#: a quarter of those. (Without the clean share, a model trained on it lost 1.9 dB on clean
#: Set5 ×3: it smoothed everything.)
PHOTO = DegradationConfig(
    order=("blur", "downscale", "noise", "jpeg"),
    clean_prob=0.3,
    blur_prob=0.5,
    blur_weights=(("isotropic", 0.5), ("anisotropic", 0.35), ("motion", 0.15)),
    blur_sigma=(0.2, 0.8),
    motion_length=(1.0, 3.0),
    downscale_weights=(("bicubic", 0.5), ("bilinear", 0.25), ("area", 0.25)),
    noise_prob=0.5,
    noise_weights=(("gaussian", 0.6), ("poisson", 0.4)),
    noise_sigma=(1.0, 8.0),
    noise_grey_prob=0.4,
    jpeg_prob=0.9,
    jpeg_quality=(30, 95),
    jpeg2_prob=0.25,
    jpeg2_quality=(60, 95),
)

#: Web and camera JPEGs: :data:`PHOTO` without blur, with less noise (15 %, σ 1–4) and
#: mostly bicubic downscaling. What the bundled ``photo`` weights are trained on: at ×3
#: (2,000 steps from ``fast``) it beat :data:`PHOTO` in every condition of
#: ``benchmarks/bench_photo.py`` on Set5 and Set14 (clean +0.28 / +0.17 dB, JPEG q70
#: +0.12 / +0.07, q50 +0.07 / +0.05, noise +0.23 / +0.13).
JPEG = DegradationConfig(
    order=PHOTO.order,
    clean_prob=PHOTO.clean_prob,
    blur_prob=0.0,
    downscale_weights=(("bicubic", 0.8), ("bilinear", 0.1), ("area", 0.1)),
    noise_prob=0.15,
    noise_weights=PHOTO.noise_weights,
    noise_sigma=(1.0, 4.0),
    noise_grey_prob=PHOTO.noise_grey_prob,
    jpeg_prob=PHOTO.jpeg_prob,
    jpeg_quality=PHOTO.jpeg_quality,
    jpeg2_prob=PHOTO.jpeg2_prob,
    jpeg2_quality=PHOTO.jpeg2_quality,
)

#: The named presets, for command-line options such as ``--degradation photo``.
PRESETS: dict[str, DegradationConfig] = {"clean": CLEAN, "photo": PHOTO, "jpeg": JPEG}


def preset(name: str) -> DegradationConfig:
    """The preset called ``name`` (case-insensitive): ``"clean"``, ``"photo"`` or ``"jpeg"``.

    Raises:
        ValueError: If there is no such preset; the message lists them.

    Example:
        >>> preset("PHOTO") is PHOTO
        True
    """
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown degradation preset {name!r}; choose one of {sorted(PRESETS)}"
        ) from None


def configure(name: str, options: Mapping[str, object] | None = None) -> DegradationConfig:
    """The preset called ``name`` with some of its fields replaced.

    ``options`` maps field names of :class:`DegradationConfig` to new values; lists (as JSON
    gives them, e.g. from ``subpixel train --degradation-option``) become tuples, so
    ``{"jpeg_quality": [50, 95]}`` works. The result is checked like any config.

    Raises:
        ValueError: For an unknown preset, an unknown field or a value out of its domain.

    Example:
        >>> configure("photo", {"blur_prob": 0.0, "jpeg_quality": [50, 95]}).jpeg_quality
        (50, 95)
        >>> configure("photo", {"blurr_prob": 0.1})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown degradation option 'blurr_prob'; the options are order, clean_prob, ...
    """
    base = preset(name)
    if not options:
        return base
    known = [f.name for f in fields(DegradationConfig)]
    for key in options:
        if key not in known:
            raise ValueError(
                f"unknown degradation option {key!r}; the options are {', '.join(known)}"
            )
    changes: dict[str, Any] = {k: _as_tuples(v) for k, v in options.items()}
    return replace(base, **changes)


def _as_tuples(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_as_tuples(v) for v in value)
    return value


# ---------------------------------------------------------------------------------------------
# Drawing and applying
# ---------------------------------------------------------------------------------------------


def _as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}"
    )


def _choose(weights: Weights, rng: np.random.Generator) -> str:
    options = [(n, float(w)) for n, w in weights if w > 0]
    if len(options) == 1:
        return options[0][0]
    u = rng.random() * sum(w for _, w in options)
    for name, w in options:
        u -= w
        if u < 0:
            return name
    return options[-1][0]  # u == total after rounding


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _quality(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(int(bounds[0]), int(bounds[1]), endpoint=True))


def sample_steps(config: DegradationConfig, scale: int, rng: np.random.Generator | int) -> Applied:
    """Draw the steps for one image from ``config`` (no image needed).

    Blur sizes, given in LR pixels in the config, are multiplied by ``scale`` when the blur
    runs before the downscaling.

    Args:
        config: The degradation configuration.
        scale: Integer SR factor >= 1.
        rng: A ``numpy.random.Generator``, or an int seed.

    Returns:
        The drawn steps, in order.

    Raises:
        ValueError: If ``scale`` is not an integer >= 1.

    Example:
        >>> sample_steps(CLEAN, 3, 0).steps
        (Downscale(method='bicubic', scale=3),)
    """
    scale = _check_scale(scale)
    gen = _as_rng(rng)
    if config.clean_prob and gen.random() < config.clean_prob:
        return Applied((Downscale("bicubic", scale),))
    steps: list[Step] = []
    for name in config.order:
        if name == "blur" and gen.random() < config.blur_prob:
            unit = scale if config.order.index("blur") < config.order.index("downscale") else 1
            kind = _choose(config.blur_weights, gen)
            if kind == "motion":
                length = max(1.0, _uniform(gen, config.motion_length) * unit)
                steps.append(MotionBlur(length, _uniform(gen, (0.0, 180.0))))
            elif kind == "isotropic":
                s = _uniform(gen, config.blur_sigma) * unit
                steps.append(GaussianBlur(s, s))
            else:
                sx = _uniform(gen, config.blur_sigma) * unit
                sy = _uniform(gen, config.blur_sigma) * unit
                steps.append(GaussianBlur(sx, sy, _uniform(gen, (0.0, 180.0))))
        elif name == "downscale":
            steps.append(Downscale(_choose(config.downscale_weights, gen), scale))
        elif name == "noise" and gen.random() < config.noise_prob:
            kind = _choose(config.noise_weights, gen)
            sigma = _uniform(gen, config.noise_sigma)
            grey = bool(gen.random() < config.noise_grey_prob)
            steps.append(Noise(kind, sigma, grey, int(gen.integers(2**63 - 1))))
        elif name == "jpeg" and gen.random() < config.jpeg_prob:
            steps.append(Jpeg(_quality(gen, config.jpeg_quality)))
            if gen.random() < config.jpeg2_prob:
                steps.append(Jpeg(_quality(gen, config.jpeg2_quality)))
    return Applied(tuple(steps))


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    return int(scale)


def _check_hr(hr: object, scale: int, name: str) -> torch.Tensor:
    if not isinstance(hr, torch.Tensor) or not hr.is_floating_point():
        what = f"dtype {hr.dtype}" if isinstance(hr, torch.Tensor) else type(hr).__name__
        raise TypeError(f"{name}: expected a floating-point (3, H, W) RGB tensor, got {what}")
    if hr.ndim != 3 or hr.shape[0] != 3 or hr.shape[1] < 1 or hr.shape[2] < 1:
        raise ValueError(f"{name}: expected an RGB tensor (3, H, W), got shape {tuple(hr.shape)}")
    if hr.shape[1] % scale or hr.shape[2] % scale:
        raise ValueError(
            f"{name}: HR size {hr.shape[1]}x{hr.shape[2]} is not a multiple of the scale "
            f"{scale}; crop it first (subpixel.data.mod_crop)"
        )
    return hr


def apply_steps(hr: torch.Tensor, applied: Applied) -> torch.Tensor:
    """Run recorded steps on ``hr`` and quantise the result to 8-bit levels.

    Replays :func:`degrade` exactly: ``apply_steps(hr, degrade(hr, s, c, seed).applied)``
    equals ``degrade(hr, s, c, seed).lr``.

    Args:
        hr: RGB tensor ``(3, H, W)`` in ``[0, 1]``, ``float32`` or ``float64``.
        applied: The steps, as :func:`sample_steps` draws them.

    Returns:
        The LR image on 8-bit levels, in ``hr``'s dtype.

    Example:
        >>> hr = torch.rand(3, 8, 8, dtype=torch.float64)
        >>> apply_steps(hr, Applied((Downscale("area", 2),))).shape
        torch.Size([3, 4, 4])
    """
    scale = math.prod(s.scale for s in applied if isinstance(s, Downscale))
    x = _check_hr(hr, scale, "apply_steps")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    for step in applied:
        x = step.apply(x)
    return quantize(x).to(hr.dtype)


class Degraded(NamedTuple):
    """The result of :func:`degrade`: the LR image and the steps that made it."""

    lr: torch.Tensor
    applied: Applied


def degrade(
    hr: torch.Tensor, scale: int, config: DegradationConfig, rng: np.random.Generator | int
) -> Degraded:
    """Make a degraded LR image from an HR image: draw steps from ``config`` and run them.

    Args:
        hr: RGB tensor ``(3, H, W)`` in ``[0, 1]`` (``float32`` or ``float64``), ``H`` and
            ``W`` multiples of ``scale``.
        scale: Integer SR factor >= 1.
        config: What to do (:data:`CLEAN`, :data:`PHOTO` or your own).
        rng: A ``numpy.random.Generator`` (advanced by the call) or an int seed.

    Returns:
        ``(lr, applied)``: LR ``(3, H/scale, W/scale)`` on 8-bit levels in ``hr``'s dtype,
        and the :class:`Applied` steps.

    Raises:
        TypeError: If ``hr`` is not a floating-point tensor or ``rng`` is not a generator/int.
        ValueError: If ``hr`` is not ``(3, H, W)`` with sizes multiple of ``scale``, or
            ``scale`` is not an integer >= 1.

    Example:
        >>> from subpixel.data import degrade as bicubic_protocol
        >>> hr = torch.rand(3, 12, 12)
        >>> torch.equal(degrade(hr, 3, CLEAN, 0).lr, bicubic_protocol(hr, 3))
        True
    """
    scale = _check_scale(scale)
    _check_hr(hr, scale, "degrade")
    applied = sample_steps(config, scale, rng)
    return Degraded(apply_steps(hr, applied), applied)


def degrade_patch(
    hr: np.ndarray, scale: int, config: DegradationConfig, rng: np.random.Generator | int
) -> np.ndarray:
    """:func:`degrade` for one ``uint8`` ``(H, W, 3)`` RGB patch; returns ``uint8`` LR.

    Computed in ``float32``. LR pixel ``(i, j)`` corresponds to HR pixels
    ``[i·s, (i+1)·s) × [j·s, (j+1)·s)``.

    Args:
        hr: ``uint8`` array ``(H, W, 3)``, ``H`` and ``W`` multiples of ``scale``.
        scale: Integer SR factor >= 1.
        config: What to do.
        rng: A ``numpy.random.Generator`` or an int seed.

    Returns:
        ``uint8`` array ``(H/scale, W/scale, 3)``.

    Raises:
        TypeError: If ``hr`` is not a ``uint8`` array.
        ValueError: If ``hr`` is not ``(H, W, 3)`` with sizes multiple of ``scale``.

    Example:
        >>> patch = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
        >>> degrade_patch(patch, 4, PHOTO, 1).shape
        (24, 24, 3)
    """
    if not isinstance(hr, np.ndarray) or hr.dtype != np.uint8:
        what = f"dtype {hr.dtype}" if isinstance(hr, np.ndarray) else type(hr).__name__
        raise TypeError(f"degrade_patch: expected a uint8 (H, W, 3) array, got {what}")
    if hr.ndim != 3 or hr.shape[2] != 3:
        raise ValueError(f"degrade_patch: expected an (H, W, 3) RGB array, got shape {hr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))).float() / 255
    lr, _ = degrade(x, scale, config, rng)
    return _to_uint8_hwc(lr)
