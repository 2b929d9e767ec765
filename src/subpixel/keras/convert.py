"""Keras transposed convolutions as exactly equivalent sub-pixel convolutions.

The Keras form of :mod:`subpixel.convert` (``docs/equivalence.md`` derives it): a transposed
convolution with stride ``s`` is, phase by phase, a stride-1 convolution with the flipped
sub-kernels ``w[φ + s·m]``; stacking the ``∏s`` phases as channels and shuffling them into
place computes the same function. :func:`transposed_to_subpixel` turns a built
``keras.layers.Conv1DTranspose``/``Conv2DTranspose``/``Conv3DTranspose`` into a
:class:`ConvTransposeAsSubPixel`: zero-pad (or crop) the input, a low-resolution
``Conv{1,2,3}D`` (stride 1, ``"valid"``) to ``filters·∏s`` channels, a
:class:`~subpixel.keras.layers.PixelShuffle`, and a crop. Every configuration Keras accepts is
covered: ``padding="valid"``/``"same"``, any strides and kernel sizes per axis,
``output_padding`` (``None`` or per axis), ``dilation_rate`` (Keras allows it only with
stride 1), bias, activation, both data formats. Keras defines the output window (the same on
every backend): the full transposed convolution, of length ``(L - 1)·s + k`` per axis
(``k`` the dilated kernel), is cropped by ``k - 1 - left`` on the left and extended or cropped
on the right, with ``(left, right)`` the padding that Keras's JAX backend passes to
``jax.lax.conv_transpose``; :func:`keras_window` computes it.

Example:
    >>> import keras, numpy as np
    >>> up = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same")
    >>> x = np.random.default_rng(0).normal(size=(1, 5, 7, 8)).astype("float32")
    >>> y = keras.ops.convert_to_numpy(up(x))
    >>> sp = transposed_to_subpixel(up)
    >>> z = keras.ops.convert_to_numpy(sp(x))
    >>> z.shape == y.shape, bool(np.abs(z - y).max() < 1e-5)
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import torch

from subpixel.convert import _dilate_kernel, _transposed_to_conv_weight
from subpixel.keras.layers import PixelShuffle
from subpixel.keras.ops import resolve_format
from subpixel.keras.weights import kernel_from_torch, kernel_to_torch
from subpixel.ops import SPATIAL_LETTERS, convert_order

__all__ = [
    "ConvTransposeAsSubPixel",
    "keras_window",
    "replace_transposed_convs",
    "transposed_to_subpixel",
]

_CONVS: dict[int, type[keras.layers.Layer]] = {
    1: keras.layers.Conv1D,
    2: keras.layers.Conv2D,
    3: keras.layers.Conv3D,
}
_TRANSPOSED: dict[int, Any] = {
    1: keras.layers.Conv1DTranspose,
    2: keras.layers.Conv2DTranspose,
    3: keras.layers.Conv3DTranspose,
}


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def keras_window(
    kernel: int, stride: int, padding: str, output_padding: int | None, dilation: int = 1
) -> tuple[int, int]:
    """``(left, right)``: Keras's padding of the stride-dilated input, per axis.

    A Keras transposed convolution is the correlation of the input, dilated by ``stride``
    and zero-padded by ``left``/``right``, with the flipped (dilated) kernel of size ``k``;
    the output has ``(L - 1)·stride + 1 + left + right - k + 1`` pixels. This is Keras 3's
    definition (its JAX backend passes these pads to ``jax.lax.conv_transpose``; the
    TensorFlow and PyTorch backends compute the same window).

    Example:
        >>> keras_window(4, 2, "same", None)          # output 2·L: crop 1 on each side
        (2, 2)
        >>> keras_window(3, 2, "valid", None)         # output 2·L + 1: the full convolution
        (2, 2)
    """
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        op = max(k, stride) - k if output_padding is None else output_padding
        return k - 1, k - 1 + op
    pad_len = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k - 1)
    return left, pad_len - left


@dataclass(frozen=True)
class _AxisPlan:
    low_kernel: int  # ceil(k/s) taps of the low-resolution kernel
    pad: tuple[int, int]  # zeros added to the input (negative: cropped)
    crop: tuple[int, int]  # removed from the shuffled output
    growth: int  # output length = L·s + growth


def _axis_plan(k: int, s: int, left: int, right: int) -> _AxisPlan:
    m = _ceil_div(k, s)
    a = k - 1 - left  # full-convolution index of the first output pixel
    growth = (right - (k - 1)) + k - s - a  # O - L·s, the same for every L
    q, phase = divmod(a, s)
    pad_left = m - 1 - q
    pad_right = _ceil_div(phase + growth, s) - pad_left + m - 1
    crop_right = (pad_left + pad_right - m + 1) * s - phase - growth
    return _AxisPlan(m, (pad_left, pad_right), (phase, crop_right), growth)


@keras.saving.register_keras_serializable(package="subpixel")
class ConvTransposeAsSubPixel(keras.layers.Layer):
    """A transposed convolution computed as ``crop(shuffle(conv(pad(x))))``, exactly.

    Built by :func:`transposed_to_subpixel`. ``conv`` is a plain ``Conv{1,2,3}D`` (stride 1,
    ``"valid"``) to ``filters·∏strides`` channels, ``shuffle`` a
    :class:`~subpixel.keras.layers.PixelShuffle` (TensorFlow's order ``"hwc"`` channels
    last, PyTorch's ``"chw"`` channels first); both train as usual.

    Args:
        filters: output channels.
        kernel_size: the low-resolution kernel, ``ceil(k/s)`` per axis.
        strides: the transposed convolution's strides (the shuffle factor).
        pads: per axis, ``(left, right)`` zeros added to the input (negative: cropped).
        crops: per axis, ``(left, right)`` pixels removed from the shuffled output.
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None``.
        use_bias, activation: as for the convolution.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: Sequence[int],
        strides: Sequence[int],
        pads: Sequence[Sequence[int]],
        crops: Sequence[Sequence[int]],
        data_format: str | None = None,
        use_bias: bool = True,
        activation: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        n = len(strides)
        if n not in _CONVS or len(kernel_size) != n or len(pads) != n or len(crops) != n:
            raise ValueError(
                f"kernel_size {kernel_size}, strides {strides}, pads {pads} and crops {crops} "
                "must have 1, 2 or 3 entries each"
            )
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = tuple(int(s) for s in strides)
        self.pads = tuple((int(a), int(b)) for a, b in pads)
        self.crops = tuple((int(a), int(b)) for a, b in crops)
        self.data_format: str = resolve_format(data_format)
        first = self.data_format == "channels_first"
        self.order = "c" + SPATIAL_LETTERS[n] if first else SPATIAL_LETTERS[n] + "c"
        self.conv = _CONVS[n](
            self.filters * math.prod(self.strides),
            self.kernel_size,
            padding="valid",
            data_format=self.data_format,
            use_bias=use_bias,
            activation=activation,
            name="conv",
        )
        self.shuffle = PixelShuffle(
            self.strides, order=self.order, data_format=self.data_format, name="shuffle"
        )

    def _spatial_axis(self, k: int) -> int:
        return (2 if self.data_format == "channels_first" else 1) + k

    def _padded_shape(self, input_shape: Any) -> list[int | None]:
        shape = list(input_shape)
        for k, (a, b) in enumerate(self.pads):
            axis = self._spatial_axis(k)
            if shape[axis] is not None:
                shape[axis] += a + b
        return shape

    def build(self, input_shape: Any) -> None:
        padded = self._padded_shape(input_shape)
        self.conv.build(padded)
        self.shuffle.build(self.conv.compute_output_shape(padded))

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        shape: list[Any] = list(
            self.shuffle.compute_output_shape(
                self.conv.compute_output_shape(self._padded_shape(input_shape))
            )
        )
        for k, (a, b) in enumerate(self.crops):
            axis = self._spatial_axis(k)
            if shape[axis] is not None:
                shape[axis] -= a + b
        return tuple(shape)

    def _crop(self, x: Any, crops: Sequence[tuple[int, int]]) -> Any:
        index = [slice(None)] * len(x.shape)
        for k, (a, b) in enumerate(crops):
            if a or b:
                index[self._spatial_axis(k)] = slice(a, -b if b else None)
        return x[tuple(index)]

    def call(self, x: Any) -> Any:
        n = len(self.strides)
        crops = [(max(0, -a), max(0, -b)) for a, b in self.pads]
        if any(a or b for a, b in crops):
            x = self._crop(x, crops)
        pads = [(max(0, a), max(0, b)) for a, b in self.pads]
        if any(a or b for a, b in pads):
            width = [(0, 0)] * (n + 2)
            for k, pair in enumerate(pads):
                width[self._spatial_axis(k)] = pair
            x = keras.ops.pad(x, width)
        return self._crop(self.shuffle(self.conv(x)), self.crops)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": list(self.kernel_size),
                "strides": list(self.strides),
                "pads": [list(p) for p in self.pads],
                "crops": [list(c) for c in self.crops],
                "data_format": self.data_format,
                "use_bias": self.conv.use_bias,
                "activation": keras.activations.serialize(self.conv.activation),
            }
        )
        return config


def _check_transposed(layer: Any) -> int:
    n = next((n for n, cls in _TRANSPOSED.items() if isinstance(layer, cls)), 0)
    if not n:
        raise TypeError(
            "expected keras.layers.Conv1DTranspose, Conv2DTranspose or Conv3DTranspose, got "
            f"{type(layer).__name__}"
        )
    if not layer.built:
        raise ValueError(f"{layer.name} is not built: call it on an input (or build it) first")
    return n


def transposed_to_subpixel(layer: keras.layers.Layer) -> ConvTransposeAsSubPixel:
    """Convert a built Keras transposed convolution to the exactly equivalent sub-pixel form.

    Args:
        layer: a built ``keras.layers.Conv1DTranspose``, ``Conv2DTranspose`` or
            ``Conv3DTranspose`` (any padding, strides, output padding, dilation, bias,
            activation, data format that Keras accepts).

    Returns:
        A built :class:`ConvTransposeAsSubPixel` computing the same function for every input
        size (to float32 rounding: within ~1e-6 of the output's scale, tested against each
        backend's own layer). The weights are copied; the original is left as it was.

    Raises:
        TypeError: not a transposed convolution. ValueError: not built.

    Example:
        >>> import keras
        >>> up = keras.layers.Conv2DTranspose(3, (5, 3), strides=(3, 2), padding="valid")
        >>> up.build((None, None, None, 8))
        >>> sp = transposed_to_subpixel(up)
        >>> tuple(sp.conv.kernel.shape)                 # ceil(k/s) taps, 3·(3·2) channels
        (2, 2, 8, 18)
    """
    n = _check_transposed(layer)
    strides = tuple(int(s) for s in layer.strides)
    dilation = tuple(int(d) for d in layer.dilation_rate)
    kernel = tuple(int(k) for k in layer.kernel_size)
    out_pad = layer.output_padding
    out_pads: tuple[int | None, ...] = (None,) * n if out_pad is None else tuple(out_pad)
    plans = []
    for k, s, op, d in zip(kernel, strides, out_pads, dilation, strict=True):
        left, right = keras_window(k, s, layer.padding, op, d)
        plans.append(_axis_plan((k - 1) * d + 1, s, left, right))
    # Keras (*k, out, in) -> PyTorch's transposed layout (in, out, *k), dilated densely.
    w = torch.from_numpy(kernel_to_torch(layer.kernel))
    w = _dilate_kernel(w, dilation)
    low = _transposed_to_conv_weight(w, strides, 1)  # (out·∏s, in, *m), PyTorch order
    spatial = SPATIAL_LETTERS[n]
    first = layer.data_format == "channels_first"
    order = "c" + spatial if first else spatial + "c"
    torch_order = "c" + spatial
    low_np = convert_order(low.numpy(), strides, src=torch_order, dst=order, dim=0)
    out = ConvTransposeAsSubPixel(
        layer.filters,
        [p.low_kernel for p in plans],
        strides,
        [p.pad for p in plans],
        [p.crop for p in plans],
        data_format=layer.data_format,
        use_bias=layer.use_bias,
        activation=keras.activations.serialize(layer.activation),
        name=f"{layer.name}_subpixel",
        dtype=layer.dtype_policy,
    )
    in_channels = int(layer.kernel.shape[-1])
    shape: list[int | None] = [None] * (n + 2)
    shape[1 if first else n + 1] = in_channels
    out.build(tuple(shape))
    values = [kernel_from_torch(low_np)]
    if layer.use_bias:
        bias = np.repeat(np.asarray(keras.ops.convert_to_numpy(layer.bias)), math.prod(strides))
        values.append(convert_order(bias, strides, src=torch_order, dst=order))
    out.conv.set_weights(values)
    out.trainable = layer.trainable
    return out


def replace_transposed_convs(model: keras.Model) -> tuple[keras.Model, list[str]]:
    """A copy of a functional or Sequential model with every transposed convolution converted.

    Other layers are **shared** with ``model`` (same objects, same weights), as
    ``keras.models.clone_model`` does with a ``clone_function`` that returns its argument.

    Returns:
        ``(new model, names of the converted layers)``.

    Example:
        >>> import keras, numpy as np
        >>> up = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", name="up")
        >>> net = keras.Sequential([keras.Input((7, 7, 8)), up, keras.layers.ReLU()])
        >>> new, names = replace_transposed_convs(net)
        >>> names, [type(layer).__name__ for layer in new.layers]
        (['up'], ['ConvTransposeAsSubPixel', 'ReLU'])
        >>> x = np.random.default_rng(0).random((2, 7, 7, 8), dtype="float32")
        >>> bool(keras.ops.max(keras.ops.abs(new(x) - net(x))) < 1e-5)
        True
    """
    converted: list[str] = []

    def clone(layer: Any) -> Any:
        if any(isinstance(layer, cls) for cls in _TRANSPOSED.values()):
            converted.append(layer.name)
            return transposed_to_subpixel(layer)
        return layer

    new = keras.models.clone_model(model, clone_function=clone)
    return new, converted
