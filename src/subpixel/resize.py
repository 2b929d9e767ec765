"""MATLAB-compatible bicubic ``imresize`` for tensors.

Super-resolution results are only comparable when the low-resolution inputs are made the
way MATLAB's ``imresize(img, scale, 'bicubic')`` makes them: a Keys cubic kernel with
``a = -0.5``, widened by ``1/scale`` when downscaling (antialiasing), symmetric (mirrored)
borders, output size ``ceil(scale * size)``, and the dimension with the smallest scale
resized first. :func:`imresize` reproduces that computation for ``double``/``single``
images (no rounding or clamping inside).

Each axis is resized by a precomputed ``(out, in)`` weight matrix (MATLAB's
``contributions``, with the mirrored taps folded in), applied as a matrix product; the
matrices are cached per ``(in, out, scale, antialias, dtype, device)``.

Example:
    >>> import torch
    >>> from subpixel.resize import imresize
    >>> x = torch.rand(2, 3, 10, 7, dtype=torch.float64)
    >>> imresize(x, 0.5).shape
    torch.Size([2, 3, 5, 4])
    >>> imresize(x, size=(20, 14)).shape
    torch.Size([2, 3, 20, 14])
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = ["cubic", "imresize", "resize_matrix"]


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, ``a = -0.5``), support ``[-2, 2]``.

    Args:
        x: Sample positions.

    Returns:
        The kernel values, as ``float64``.

    Example:
        >>> cubic(np.array([0.0, 0.5, 1.0, 1.5, 2.0])).tolist()
        [1.0, 0.5625, 0.0, -0.0625, 0.0]
    """
    a = np.abs(np.asarray(x, dtype=np.float64))
    a2, a3 = a * a, a * a * a
    inner = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1)
    outer = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))
    return inner + outer


@lru_cache(maxsize=256)
def _matrix_np(in_len: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)[:, None]  # MATLAB's 1-based output index
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    idx = left + np.arange(taps, dtype=np.float64)[None, :]  # 1-based input indices
    weights = scale * cubic(scale * (u - idx)) if shrink else cubic(u - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: MATLAB's aux = [1:in, in:-1:1] indexed with mod(idx - 1, 2 in).
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    rows = np.broadcast_to(np.arange(out_len)[:, None], cols.shape)
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(matrix, (rows, cols), weights)
    matrix.setflags(write=False)
    return matrix


@lru_cache(maxsize=256)
def _matrix_cached(
    in_len: int, out_len: int, scale: float, antialias: bool, dtype: torch.dtype, device: str
) -> torch.Tensor:
    m = _matrix_np(in_len, out_len, scale, antialias)
    return torch.tensor(m, dtype=dtype, device=torch.device(device))


def resize_matrix(
    in_len: int,
    out_len: int,
    scale: float,
    *,
    antialias: bool = True,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The ``(out_len, in_len)`` matrix that resizes one axis as MATLAB's bicubic ``imresize``.

    Row ``i`` holds MATLAB's ``contributions`` weights for output pixel ``i`` (normalised to
    sum 1), with taps falling outside ``[0, in_len)`` mirrored back symmetrically and
    accumulated. Cached; do not modify the result in place.

    Args:
        in_len: Input length along the axis (>= 1).
        out_len: Output length along the axis (>= 1).
        scale: The scale factor MATLAB uses for this axis (``out/in`` when a size is given).
        antialias: Widen the kernel by ``1/scale`` when ``scale < 1``.
        dtype: Floating dtype of the result.
        device: Device of the result.

    Returns:
        The weight matrix.

    Raises:
        ValueError: If a length is < 1 or ``scale`` is not a positive finite number.

    Example:
        >>> resize_matrix(4, 8, 2.0).sum(dim=1).allclose(torch.ones(8, dtype=torch.float64))
        True
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"resize_matrix: lengths must be >= 1, got in={in_len}, out={out_len}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"resize_matrix: scale must be positive and finite, got {scale}")
    return _matrix_cached(
        int(in_len), int(out_len), float(scale), bool(antialias), dtype, str(torch.device(device))
    )


def _scales_and_size(
    shape: tuple[int, int],
    scale: float | tuple[float, float] | None,
    size: tuple[int, int] | None,
) -> tuple[tuple[float, float], tuple[int, int]]:
    h, w = shape
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of `scale` and `size`")
    if size is not None:
        if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
            raise ValueError(f"imresize: size must be two positive ints, got {size}")
        out = (int(size[0]), int(size[1]))
        return (out[0] / h, out[1] / w), out
    assert scale is not None
    pair = (float(scale), float(scale)) if isinstance(scale, (int, float)) else scale
    if len(pair) != 2 or not all(math.isfinite(s) and s > 0 for s in pair):
        raise ValueError(f"imresize: scale must be positive and finite, got {scale}")
    sh, sw = float(pair[0]), float(pair[1])
    return (sh, sw), (math.ceil(sh * h), math.ceil(sw * w))


def imresize(
    x: torch.Tensor,
    scale: float | tuple[float, float] | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """Resize the last two axes with MATLAB's ``imresize(x, scale, 'bicubic')``.

    Cubic kernel ``a = -0.5``; when downscaling with ``antialias`` the kernel is widened by
    ``1/scale`` (as MATLAB); borders are padded symmetrically (MATLAB's index mirroring);
    the output is ``ceil(scale * H) x ceil(scale * W)``, or ``size``. As in MATLAB, the axis
    with the smaller scale is resized first (rows first on a tie). Computed in ``x``'s dtype
    with weights built in ``float64``; no rounding or clamping, so quantise afterwards
    (``round(clamp(y, 0, 1) * 255) / 255``) when 8-bit images are wanted.

    Args:
        x: Floating-point tensor ``(*, H, W)`` (any leading dims), on any device.
        scale: One factor for both axes, or ``(scale_h, scale_w)``.
        size: Output ``(H_out, W_out)`` instead of ``scale``; the factors become
            ``H_out/H`` and ``W_out/W``, as in MATLAB.
        antialias: Widen the kernel when downscaling (MATLAB's ``'Antialiasing'``, default on).

    Returns:
        The resized tensor, same dtype and device, shape ``(*, H_out, W_out)``.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor.
        ValueError: If ``x`` has fewer than 2 dims or an empty spatial axis, or if neither or
            both of ``scale``/``size`` are given, or they are not positive.

    Example:
        >>> import torch
        >>> x = torch.full((1, 5, 5), 0.25, dtype=torch.float64)
        >>> y = imresize(x, 1 / 3)
        >>> tuple(y.shape), torch.allclose(y, torch.full_like(y, 0.25))
        ((1, 2, 2), True)
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"imresize: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"imresize: expected a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 2 or x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(
            f"imresize: expected a (*, H, W) tensor with H, W >= 1, got {tuple(x.shape)}"
        )
    (sh, sw), (oh, ow) = _scales_and_size((x.shape[-2], x.shape[-1]), scale, size)
    h, w = x.shape[-2], x.shape[-1]
    # Compute types below float32 (half, bfloat16) in float32 and cast back.
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()

    def rows(t: torch.Tensor) -> torch.Tensor:
        m = resize_matrix(h, oh, sh, antialias=antialias, dtype=t.dtype, device=t.device)
        return torch.matmul(m, t)

    def cols(t: torch.Tensor) -> torch.Tensor:
        m = resize_matrix(w, ow, sw, antialias=antialias, dtype=t.dtype, device=t.device)
        return torch.matmul(t, m.T)

    out = cols(rows(work)) if sh <= sw else rows(cols(work))
    return out.to(x.dtype)
