"""Bicubic interpolation as polyphase filters: the 5 taps of every output phase.

Shared by the networks' bicubic residual (:class:`~subpixel.fast.FastESPCN`) and the
chroma of :class:`~subpixel.fast.FastUpscaler`.
"""

from __future__ import annotations

import numpy as np


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    ax = np.abs(x)
    return np.where(
        ax <= 1,
        (a + 2) * ax**3 - (a + 3) * ax**2 + 1,
        np.where(ax < 2, a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a, 0.0),
    )


def polyphase_taps(scale: int, a: float) -> np.ndarray:
    """Bicubic taps ``(s, 5)``: output phase ``i`` of LR pixel ``x`` reads ``x-2 .. x+2``.

    Output pixel ``s·x + i`` sits at input coordinate ``x + (i + 0.5)/s − 0.5`` (pixel
    centres, as MATLAB's ``imresize`` and ``align_corners=False``); ``a`` is Keys'
    parameter (−0.5 MATLAB, −0.75 OpenCV/PyTorch).

    Example:
        >>> polyphase_taps(2, -0.5).round(5).tolist()[0]
        [-0.02344, 0.22656, 0.86719, -0.07031, 0.0]
    """
    d = (np.arange(scale) + 0.5) / scale - 0.5
    offs = np.arange(-2, 3)
    taps = _cubic(offs[None, :] - d[:, None], a)
    return np.asarray(taps / taps.sum(axis=1, keepdims=True))
