"""PyTorch's bicubic upsampling, exactly, for Keras: a fixed polyphase filter and a shuffle.

``torch.nn.functional.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)``
(the residual branch of :class:`subpixel.models.espcn.ESPCN`) samples the input at
``(o + 0.5)/s - 0.5`` for output pixel ``o`` with Keys' cubic kernel, ``a = -0.75``, and
clamps indices at the borders. For an integer factor the ``s`` output phases of each input
pixel have fixed fractional positions, so the whole resize is one stride-1 convolution with
a 5×5 kernel (replicate-padded by 2) to ``C·s_h·s_w`` channels followed by a periodic shuffle
(order ``"hwc"``: one ``CONV_2D`` and one ``DEPTH_TO_SPACE`` in TensorFlow Lite). Keras's
own ``resize(..., "bicubic")`` uses another kernel (``a = -0.5``) and is not a substitute.

The weights here are the exact phases, so the result equals PyTorch's bicubic computed in
float64 to float32 rounding (~5e-7) at every size. PyTorch in float32 computes each source
position as ``float32(1/s)·(o + 0.5) - 0.5`` in float32: exact for ``s = 2`` and ``4``, but
for ``s = 3`` the rounded ``1/3`` and the float32 rounding of the position make its weights
drift with the output coordinate ``o``; the two then differ by up to ~4e-6 at 150 output
pixels, ~2e-5 at 600 and ~9e-5 at 2100 (measured; see ``docs/keras.md``).

Example:
    >>> import keras, numpy as np, torch
    >>> x = np.random.default_rng(0).random((1, 6, 7, 2), dtype=np.float32)
    >>> y = keras.ops.convert_to_numpy(bicubic_upsample(x, 3))
    >>> ref = torch.nn.functional.interpolate(
    ...     torch.from_numpy(x).permute(0, 3, 1, 2), scale_factor=3, mode="bicubic",
    ...     align_corners=False).permute(0, 2, 3, 1).numpy()
    >>> bool(np.abs(y - ref).max() < 1e-6)
    True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import keras
import numpy as np

from subpixel.keras.ops import pixel_shuffle, resolve_format

__all__ = ["BicubicUpsampling2D", "bicubic_phase_weights", "bicubic_upsample"]

A = -0.75  # PyTorch's (and OpenCV's) bicubic coefficient
_TAPS = 5  # offsets -2..2 cover the 4 taps of every phase
_PAD = 2


def _cubic(x: float) -> float:
    """Keys' cubic convolution kernel with ``a = A``."""
    x = abs(x)
    if x <= 1:
        return ((A + 2) * x - (A + 3)) * x * x + 1
    if x < 2:
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    return 0.0


@lru_cache(maxsize=32)
def bicubic_phase_weights(scale: int) -> np.ndarray:
    """``(scale, 5)`` float64: the taps at input offsets ``-2..2`` of each output phase.

    Example:
        >>> bicubic_phase_weights(2).round(5).tolist()      # phases at -0.25 and +0.25
        [[-0.03516, 0.26172, 0.87891, -0.10547, 0.0], [0.0, -0.10547, 0.87891, 0.26172, -0.03516]]
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    out = np.zeros((scale, _TAPS))
    for phase in range(scale):
        real = (phase + 0.5) / scale - 0.5  # source position relative to the input pixel
        base = int(np.floor(real))
        t = real - base
        for k, w in enumerate((_cubic(t + 1), _cubic(t), _cubic(1 - t), _cubic(2 - t))):
            out[phase, base - 1 + k + _PAD] = w
    return out


def _scales(scale: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(scale, bool):
        raise ValueError(f"scale must be a positive int or a pair of them, got {scale!r}")
    pair = (scale, scale) if isinstance(scale, int) else tuple(scale)
    if len(pair) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in pair):
        raise ValueError(f"scale must be a positive int or a pair of them, got {scale!r}")
    return pair[0], pair[1]


@lru_cache(maxsize=32)
def _kernel(scale: tuple[int, int], channels: int) -> np.ndarray:
    """``(5, 5, C, C·s_h·s_w)`` float32, output channel ``(i·s_w + j)·C + c`` (order "hwc")."""
    s_h, s_w = scale
    wh, ww = bicubic_phase_weights(s_h), bicubic_phase_weights(s_w)
    k = np.zeros((_TAPS, _TAPS, channels, s_h, s_w, channels))
    for c in range(channels):
        k[:, :, c, :, :, c] = np.einsum("iy,jx->yxij", wh, ww)
    return k.reshape(_TAPS, _TAPS, channels, s_h * s_w * channels).astype(np.float32)


def _replicate_pad(x: Any, axis: int) -> Any:
    """``_PAD`` copies of the first and last slice along ``axis`` (clamped indexing)."""
    first = [slice(None)] * len(x.shape)
    last = [slice(None)] * len(x.shape)
    first[axis] = slice(0, 1)
    last[axis] = slice(-1, None)
    head, tail = x[tuple(first)], x[tuple(last)]
    return keras.ops.concatenate([head] * _PAD + [x] + [tail] * _PAD, axis=axis)


def bicubic_upsample(
    x: Any, scale: int | tuple[int, int], *, data_format: str | None = None
) -> Any:
    """Upsample ``(N, H, W, C)`` by an integer factor exactly as PyTorch's bicubic does.

    Args:
        x: a 4-D float tensor of the active backend, or a numpy array.
        scale: the factor, an int or ``(s_h, s_w)``.
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None`` (Keras's default).

    Returns:
        ``(N, s_h·H, s_w·W, C)`` (or channels first), equal to
        ``F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)``.

    Example:
        >>> import numpy as np
        >>> tuple(bicubic_upsample(np.zeros((2, 3, 1, 4), "float32"), 2,
        ...                        data_format="channels_first").shape)
        (2, 3, 2, 8)
    """
    fmt = resolve_format(data_format)
    pair = _scales(scale)
    if not isinstance(x, keras.KerasTensor):
        x = keras.ops.convert_to_tensor(x)
    if len(x.shape) != 4:
        raise ValueError(f"bicubic_upsample expects a 4-D tensor, got shape {tuple(x.shape)}")
    if fmt == "channels_first":
        x = keras.ops.transpose(x, (0, 2, 3, 1))
    channels = x.shape[-1]
    if channels is None:
        raise ValueError(f"the channel axis must have a known size, got shape {tuple(x.shape)}")
    kernel = keras.ops.convert_to_tensor(_kernel(pair, int(channels)), dtype=x.dtype)
    padded = _replicate_pad(_replicate_pad(x, 1), 2)
    phases = keras.ops.conv(padded, kernel, strides=1, padding="valid", data_format="channels_last")
    y = pixel_shuffle(phases, pair, order="hwc", data_format="channels_last")
    return keras.ops.transpose(y, (0, 3, 1, 2)) if fmt == "channels_first" else y


@keras.saving.register_keras_serializable(package="subpixel")
class BicubicUpsampling2D(keras.layers.Layer):
    """Layer form of :func:`bicubic_upsample` (no weights: the filter is fixed).

    Example:
        >>> import numpy as np
        >>> tuple(BicubicUpsampling2D(3)(np.zeros((1, 4, 5, 1), "float32")).shape)
        (1, 12, 15, 1)
    """

    def __init__(
        self, scale: int | tuple[int, int], data_format: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(scale, list):
            scale = (scale[0], scale[1])
        self.scale: tuple[int, int] = _scales(scale)
        self.data_format: str = resolve_format(data_format)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        shape = list(input_shape)
        first = 2 if self.data_format == "channels_first" else 1
        for k, s in enumerate(self.scale):
            if shape[first + k] is not None:
                shape[first + k] *= s
        return tuple(shape)

    def call(self, x: Any) -> Any:
        return bicubic_upsample(x, self.scale, data_format=self.data_format)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update({"scale": list(self.scale), "data_format": self.data_format})
        return config
