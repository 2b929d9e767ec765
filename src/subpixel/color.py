"""RGB ↔ YCbCr conversion, ITU-R BT.601 studio range, exactly as MATLAB's ``rgb2ycbcr``.

The super-resolution literature scores images on the luma channel produced by MATLAB's
``rgb2ycbcr`` for ``double`` images: RGB in ``[0, 1]`` maps to YCbCr on the same ``[0, 1]``
scale, with Y in ``[16/255, 235/255]`` and Cb, Cr in ``[16/255, 240/255]``::

    Y  = ( 16 + 65.481 R + 128.553 G +  24.966 B) / 255
    Cb = (128 - 37.797 R -  74.203 G + 112.000 B) / 255
    Cr = (128 + 112.000 R - 93.786 G -  18.214 B) / 255

:func:`ycbcr_to_rgb` is the exact inverse (the inverse of that matrix, as MATLAB's
``ycbcr2rgb``), without clamping. Nothing here rounds: values stay on the continuous scale
and the dtype is kept (``float64`` stays ``float64``).

Both ``torch.Tensor`` and ``numpy.ndarray`` inputs are accepted; the result has the input's
type, dtype and device.

Example:
    >>> import torch
    >>> from subpixel.color import rgb_to_y
    >>> white = torch.ones(3, 1, 1, dtype=torch.float64)
    >>> round(rgb_to_y(white).item() * 255, 10)
    235.0
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "COLOR_TRANSFORMS",
    "RGB_TO_YCBCR_MATRIX",
    "YCBCR_OFFSET",
    "color_transform",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
]

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)

#: MATLAB's ``rgb2ycbcr`` matrix for 8-bit levels (rows: Y, Cb, Cr; columns: R, G, B).
RGB_TO_YCBCR_MATRIX: np.ndarray = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
)
#: The offsets of Y, Cb, Cr in 8-bit levels.
YCBCR_OFFSET: np.ndarray = np.array([16.0, 128.0, 128.0], dtype=np.float64)

# On the [0, 1] scale: ycbcr = _FWD @ rgb + _OFF, rgb = _INV @ (ycbcr - _OFF).
_FWD = RGB_TO_YCBCR_MATRIX / 255.0
_OFF = YCBCR_OFFSET / 255.0
_INV = np.linalg.inv(_FWD)


#: The colour transforms :func:`color_transform` knows (a :class:`Pipeline`'s ``color``).
COLOR_TRANSFORMS = ("bt601-studio", "opencv-ycrcb")


def color_transform(color: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(forward, offset, inverse)``: ``ycc = forward @ rgb + offset`` on the [0, 1] scale.

    The one place the pipelines' colour matrices are written. ``"bt601-studio"``: MATLAB's
    ``rgb2ycbcr`` (this module's); ``"opencv-ycrcb"``: OpenCV's ``COLOR_RGB2YCrCb`` for
    float images (full range, chroma order Cr, Cb centred on 0.5) and its documented
    inverse, ``COLOR_YCrCb2RGB``. (OpenCV's 8-bit integer version is
    :mod:`subpixel.interop.opencv_pipeline`.)

    Example:
        >>> fwd, off, inv = color_transform("opencv-ycrcb")
        >>> (fwd @ [1.0, 1.0, 1.0] + off).round(3).tolist()          # white: Y 1, no chroma
        [1.0, 0.5, 0.5]

    Raises:
        ValueError: an unknown ``color``.
    """
    if color == "bt601-studio":
        return _FWD, _OFF, _INV
    if color == "opencv-ycrcb":
        y = np.array([0.299, 0.587, 0.114])
        fwd = np.stack([y, 0.713 * (np.eye(3)[0] - y), 0.564 * (np.eye(3)[2] - y)])
        inv = np.array([[1.0, 1.403, 0.0], [1.0, -0.714, -0.344], [1.0, 0.0, 1.773]])
        return fwd, np.array([0.0, 0.5, 0.5]), inv
    raise ValueError(f"unknown color {color!r}; expected one of {COLOR_TRANSFORMS}")


def _check(x: object, channels: int, channel_dim: int, name: str) -> None:
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
        shape = tuple(x.shape)
    elif isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
        shape = x.shape
    else:
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if not -len(shape) <= channel_dim < len(shape):
        raise ValueError(f"{name}: channel_dim={channel_dim} is out of range for shape {shape}")
    if shape[channel_dim] != channels:
        raise ValueError(
            f"{name}: expected {channels} channels on dim {channel_dim}, got shape {shape}"
        )


def _affine(x: ArrayT, matrix: np.ndarray, pre: np.ndarray, post: np.ndarray, dim: int) -> ArrayT:
    """``matrix @ (x - pre) + post`` along ``dim``, in ``x``'s own dtype and device."""
    if isinstance(x, torch.Tensor):
        m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
        a = torch.as_tensor(pre, dtype=x.dtype, device=x.device)
        b = torch.as_tensor(post, dtype=x.dtype, device=x.device)
        moved = torch.movedim(x, dim, -1)
        out = (moved - a) @ m.T + b
        return torch.movedim(out, -1, dim).contiguous()
    moved_np = np.moveaxis(x, dim, -1)
    m_np, a_np, b_np = (v.astype(x.dtype) for v in (matrix, pre, post))
    out_np = (moved_np - a_np) @ m_np.T + b_np
    return np.ascontiguousarray(np.moveaxis(out_np, -1, dim))


def rgb_to_ycbcr(x: ArrayT, *, channel_dim: int = -3) -> ArrayT:
    """Convert RGB in ``[0, 1]`` to BT.601 studio-range YCbCr on the ``[0, 1]`` scale.

    Identical to MATLAB's ``rgb2ycbcr`` for ``double`` images: ``Y = (16 + 65.481 R +
    128.553 G + 24.966 B) / 255`` and likewise for Cb, Cr (see the module docstring).
    No rounding, no clamping.

    Args:
        x: Floating-point tensor or array with 3 channels (R, G, B) on ``channel_dim``.
        channel_dim: The channel axis; ``-3`` for ``(..., C, H, W)``.

    Returns:
        YCbCr with the same shape, type, dtype and device as ``x``.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor or array.
        ValueError: If ``x`` does not have 3 channels on ``channel_dim``.

    Example:
        >>> import torch
        >>> red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        >>> [round(v, 3) for v in (rgb_to_ycbcr(red, channel_dim=0) * 255).tolist()]
        [81.481, 90.203, 240.0]
    """
    _check(x, 3, channel_dim, "rgb_to_ycbcr")
    return _affine(x, _FWD, np.zeros(3), _OFF, channel_dim)


def ycbcr_to_rgb(x: ArrayT, *, channel_dim: int = -3) -> ArrayT:
    """Convert BT.601 studio-range YCbCr on the ``[0, 1]`` scale back to RGB.

    The exact inverse of :func:`rgb_to_ycbcr` (the inverse of MATLAB's matrix, as
    ``ycbcr2rgb`` for ``double`` images). Out-of-gamut inputs give RGB outside ``[0, 1]``:
    nothing is clamped.

    Args:
        x: Floating-point tensor or array with 3 channels (Y, Cb, Cr) on ``channel_dim``.
        channel_dim: The channel axis; ``-3`` for ``(..., C, H, W)``.

    Returns:
        RGB with the same shape, type, dtype and device as ``x``.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor or array.
        ValueError: If ``x`` does not have 3 channels on ``channel_dim``.

    Example:
        >>> import torch
        >>> ycc = torch.tensor([235.0, 128.0, 128.0], dtype=torch.float64) / 255
        >>> [round(v, 12) for v in ycbcr_to_rgb(ycc, channel_dim=0).tolist()]
        [1.0, 1.0, 1.0]
    """
    _check(x, 3, channel_dim, "ycbcr_to_rgb")
    return _affine(x, _INV, _OFF, np.zeros(3), channel_dim)


def rgb_to_y(x: ArrayT, *, channel_dim: int = -3) -> ArrayT:
    """The BT.601 studio-range luma of RGB in ``[0, 1]``, keeping a size-1 channel axis.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255``, the first channel of MATLAB's
    ``rgb2ycbcr`` for ``double`` images; ``Y * 255`` lies in ``[16, 235]``. Not rounded.

    Args:
        x: Floating-point tensor or array with 3 channels (R, G, B) on ``channel_dim``.
        channel_dim: The channel axis; ``-3`` for ``(..., C, H, W)``.

    Returns:
        Y with the shape of ``x`` except size 1 on ``channel_dim``; same type, dtype, device.

    Raises:
        TypeError: If ``x`` is not a floating-point tensor or array.
        ValueError: If ``x`` does not have 3 channels on ``channel_dim``.

    Example:
        >>> import torch
        >>> rgb_to_y(torch.zeros(2, 3, 4, 4)).shape
        torch.Size([2, 1, 4, 4])
    """
    _check(x, 3, channel_dim, "rgb_to_y")
    return _affine(x, _FWD[:1], np.zeros(3), _OFF[:1], channel_dim)
