"""OpenCV's uint8 steps around a super-resolution network (``dnn_superres``), in numpy.

The colour conversions (integer ``cvtColor`` between BGR and YCrCb), the float/uint8 level
conversions (``convertTo``) and the bilinear ``cv::resize`` that ``dnn_superres`` applies,
each bit-exact with OpenCV. The upscale pipeline (:func:`subpixel._upscale.pipeline.
opencv_levels`) and :mod:`subpixel.interop.opencv_pipeline` (its public home, with
:func:`~subpixel.interop.opencv_pipeline.opencv_upsample` and the full description) both
use these; this module depends on numpy only.

Example:
    >>> bgr = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)   # blue, red
    >>> bgr_to_ycrcb(bgr).tolist()
    [[[29, 107, 255], [76, 255, 85]]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["bgr_to_ycrcb", "from_unit", "resize_linear", "to_unit", "ycrcb_to_bgr"]

_SHIFT = 14
_HALF = 1 << (_SHIFT - 1)
# OpenCV's fixed-point coefficients (color_yuv.simd.hpp), scaled by 2**14.
_R2Y, _G2Y, _B2Y, _CR, _CB = 4899, 9617, 1868, 11682, 9241
_CR2R, _CR2G, _CB2G, _CB2B = 22987, -11698, -5636, 29049
_F255 = np.float32(255.0)
_INV255 = np.float32(1.0 / 255.0)


def _check_u8(image: np.ndarray, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"{what} must be a uint8 numpy array, got {getattr(image, 'dtype', image)}")
    if image.ndim < 1 or image.shape[-1] != 3:
        raise ValueError(f"{what} must have 3 channels last, got shape {image.shape}")


def _descale(x: np.ndarray) -> np.ndarray:
    return (x + _HALF) >> _SHIFT


def bgr_to_ycrcb(bgr: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)`` for uint8 ``(..., 3)`` arrays, bit-exact."""
    _check_u8(bgr, "bgr")
    b, g, r = (bgr[..., i].astype(np.int32) for i in range(3))
    y = _descale(r * _R2Y + g * _G2Y + b * _B2Y)
    cr = _descale((r - y) * _CR + (128 << _SHIFT))
    cb = _descale((b - y) * _CB + (128 << _SHIFT))
    return np.stack([y, cr, cb], axis=-1).clip(0, 255).astype(np.uint8)


def ycrcb_to_bgr(ycrcb: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)`` for uint8 ``(..., 3)`` arrays, bit-exact."""
    _check_u8(ycrcb, "ycrcb")
    y, cr, cb = (ycrcb[..., i].astype(np.int32) for i in range(3))
    cr, cb = cr - 128, cb - 128
    b = y + _descale(cb * _CB2B)
    g = y + _descale(cb * _CB2G + cr * _CR2G)
    r = y + _descale(cr * _CR2R)
    return np.stack([b, g, r], axis=-1).clip(0, 255).astype(np.uint8)


def to_unit(levels: np.ndarray) -> np.ndarray:
    """uint8 levels to float32 as ``Mat.convertTo(CV_32F, 1.0 / 255)``: ``level · f32(1/255)``."""
    return levels.astype(np.float32) * _INV255


def from_unit(x: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] to uint8 as ``Mat.convertTo(CV_8U, 255)``: round half to even, clip."""
    scaled = np.asarray(x, dtype=np.float32) * _F255
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _linear_taps(n: int, scale: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and the float32 weight of the second tap, as ``cv::resize`` builds them."""
    pos = (np.arange(n * scale) + 0.5) * (1.0 / scale) - 0.5  # float64, as OpenCV
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    frac[i0 < 0] = 0
    i0[i0 < 0] = 0
    last = i0 >= n - 1
    frac[last] = 0
    i0[last] = n - 1
    return i0, np.minimum(i0 + 1, n - 1), frac


def _lerp(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``fma(b - a, w, a)`` in float32 (float64 holds the product exactly)."""
    d = (b - a).astype(np.float64)
    return (a.astype(np.float64) + d * w).astype(np.float32)


def resize_linear(x: np.ndarray, scale: int) -> np.ndarray:
    """``cv2.resize(x, None, fx=scale, fy=scale)`` (bilinear) of a float32 image, bit-exact.

    Args:
        x: ``(H, W)`` or ``(H, W, C)`` float32.
        scale: integer upscaling factor.

    Returns:
        ``(scale·H, scale·W[, C])`` float32: horizontal pass, then vertical, each
        ``a + (b - a)·w`` with one rounding (OpenCV 5's kernel), on half-pixel centres.
        Channels are resized plane by plane, as ``dnn_superres`` resizes Cr and Cb
        (``cv2.resize`` on a multi-channel array rounds differently in the last bit).

    Example:
        >>> resize_linear(np.array([[0.0, 1.0]], np.float32), 2).tolist()
        [[0.0, 0.25, 0.75, 1.0], [0.0, 0.25, 0.75, 1.0]]
    """
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    a = np.asarray(x, dtype=np.float32)
    if a.ndim not in (2, 3) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    h, w = a.shape[:2]
    x0, x1, fx = _linear_taps(w, scale)
    y0, y1, fy = _linear_taps(h, scale)
    extra = (1,) * (a.ndim - 2)
    rows = _lerp(a[:, x0], a[:, x1], fx.reshape(1, -1, *extra))
    return _lerp(rows[y0], rows[y1], fy.reshape(-1, 1, *extra))
