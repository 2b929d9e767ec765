"""OpenCV ``dnn_superres`` pre- and post-processing, reproduced bit for bit in numpy.

``cv2.dnn_superres.DnnSuperResImpl.upsample`` runs an ESPCN/FSRCNN graph like this
(``modules/dnn_superres/src/dnn_superres.cpp``, checked against OpenCV 5.0's wheel):

1. ``cvtColor(BGR2YCrCb)`` on the **uint8** image (integer arithmetic, 14-bit coefficients,
   full range: ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cr = 0.713 (R - Y) + 128``,
   ``Cb = 0.564 (B - Y) + 128``), then ``convertTo(CV_32F, 1/255)``: each level times the
   float32 constant ``1/255``;
2. the network on the Y plane, ``(1, 1, H, W)`` in [0, 1];
3. Cr and Cb upscaled with ``cv::resize(..., scale, scale)`` whose default interpolation is
   **bilinear** (``INTER_LINEAR``: half-pixel centres, replicated border), in float32;
4. the three planes merged, ``convertTo(CV_8U, 255)``: times 255 in float32, rounded half
   to even, saturated to 0..255;
5. ``cvtColor(YCrCb2BGR)`` on uint8 (integer arithmetic again).

A single-channel (grey) uint8 image skips the colour steps: ``Y = level · (1/255)``, and
the output is ``round(255 · model(Y))``.

Every step here equals OpenCV's to the bit (the colour conversions were checked on all
2²⁴ colours, the resize on random images), so :func:`opencv_upsample` differs from
``DnnSuperResImpl.upsample`` only where the network's float32 output itself differs
between PyTorch and OpenCV's ``dnn`` (≈1e-6) and that flips a rounding: at most one grey
level, on a handful of pixels.

Example:
    >>> import numpy as np, torch
    >>> bgr = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)   # blue, red
    >>> bgr_to_ycrcb(bgr).tolist()
    [[[29, 107, 255], [76, 255, 85]]]
    >>> ycrcb_to_bgr(bgr_to_ycrcb(bgr)).tolist()
    [[[254, 0, 0], [0, 0, 254]]]
    >>> opencv_upsample(torch.nn.Upsample(scale_factor=2), bgr).shape
    (2, 4, 3)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "bgr_to_ycrcb",
    "from_unit",
    "opencv_upsample",
    "resize_linear",
    "to_unit",
    "ycrcb_to_bgr",
]

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


@torch.no_grad()
def _run_y(model: nn.Module, y: np.ndarray, device: torch.device | str | None) -> np.ndarray:
    params = list(model.parameters())
    dev = torch.device(device) if device is not None else (params[0].device if params else "cpu")
    x = torch.from_numpy(np.ascontiguousarray(y))[None, None].to(dev)
    out = model(x)
    if out.dim() != 4 or out.shape[:2] != (1, 1):
        raise ValueError(
            f"the model must map (1, 1, H, W) to (1, 1, sH, sW), got {tuple(out.shape)}"
        )
    return out[0, 0].float().cpu().numpy()


def opencv_upsample(
    model: nn.Module,
    image: np.ndarray,
    *,
    order: str = "bgr",
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Upscale a uint8 image exactly as ``cv2.dnn_superres.DnnSuperResImpl.upsample`` does.

    Args:
        model: a Y-channel model, ``(1, 1, H, W)`` in [0, 1] to ``(1, 1, s·H, s·W)`` (e.g.
            from :func:`subpixel.interop.load_opencv`); it is run in its current mode.
        image: ``(H, W, 3)`` colour or ``(H, W)`` grey, uint8.
        order: ``"bgr"`` (OpenCV's) or ``"rgb"``: the channel order of ``image`` and of the
            result.
        device: where to run the model (default: where its parameters are).

    Returns:
        ``(s·H, s·W, 3)`` or ``(s·H, s·W)`` uint8, in ``order``.

    Raises:
        TypeError: ``image`` is not uint8. ValueError: bad shape, order or model output.

    Example:
        >>> import torch
        >>> grey = np.array([[0, 128], [255, 64]], np.uint8)
        >>> opencv_upsample(torch.nn.Upsample(scale_factor=2), grey)[0].tolist()
        [0, 0, 128, 128]
    """
    if order not in ("bgr", "rgb"):
        raise ValueError(f"order must be 'bgr' or 'rgb', got {order!r}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', image)}")
    if image.ndim == 2:
        return from_unit(_run_y(model, to_unit(image), device))
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) or (H, W), got shape {image.shape}")
    bgr = image if order == "bgr" else image[..., ::-1]
    ycc = to_unit(bgr_to_ycrcb(bgr))
    y_sr = _run_y(model, ycc[..., 0], device)
    scale = y_sr.shape[0] // image.shape[0]
    if y_sr.shape != (image.shape[0] * scale, image.shape[1] * scale):
        raise ValueError(
            f"the model output {y_sr.shape} is not an integer multiple of the input "
            f"{image.shape[:2]}"
        )
    chroma = resize_linear(ycc[..., 1:], scale)
    merged = from_unit(np.concatenate([y_sr[..., None], chroma], axis=-1))
    out = ycrcb_to_bgr(merged)
    return out if order == "bgr" else np.ascontiguousarray(out[..., ::-1])
