"""The periodic shuffle for Keras 3, in every channel order, on every backend.

The same functions as :mod:`subpixel.ops` (same ``order`` strings and aliases, same
results bit for bit), written with ``keras.ops`` only, so they run on the TensorFlow, JAX and
PyTorch backends, inside ``tf.function``/``jax.jit``, and on symbolic ``keras.KerasTensor``
inputs while a functional model is built. Tensors of the active backend and numpy arrays are
accepted; the result is a tensor of the active backend.

One difference from :mod:`subpixel.ops`: ``data_format`` defaults to Keras's
``keras.config.image_data_format()`` (``"channels_last"`` unless configured), as in every
Keras layer, while the PyTorch functions default to ``"channels_first"``. The channel
**order** is a separate argument and means the same thing in both data formats.

``keras.ops.depth_to_space`` is *not* a safe substitute: it is TensorFlow's order
(``"hwc"``) on every backend with ``"channels_last"``, but with ``"channels_first"`` it is
``"hwc"`` on the TensorFlow backend and ``"chw"`` (PyTorch's) on the JAX and PyTorch
backends (Keras 3.15; see ``docs/keras.md``). This module calls it only for
``order="hwc"``, channels last, 2-D with a square factor, where every backend agrees; there it
becomes one ``DEPTH_TO_SPACE`` operator in a TensorFlow Lite export.

Example:
    >>> import keras, numpy as np
    >>> from subpixel.keras import ops
    >>> x = np.arange(4.0).reshape(1, 1, 1, 4)          # NHWC, one pixel, channels 0..3
    >>> to_np = keras.ops.convert_to_numpy
    >>> to_np(ops.pixel_shuffle(x, 2, order="chw"))[0, :, :, 0].tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    >>> to_np(ops.pixel_shuffle(x, 2, order="cwh"))[0, :, :, 0].tolist()
    [[0.0, 2.0], [1.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from subpixel.ops import SPATIAL_LETTERS, Factor, ShuffleSpec, order_permutation

__all__ = ["convert_order", "output_shape", "pixel_shuffle", "pixel_unshuffle", "resolve_format"]

Dim = Any  # an int, None (unknown, symbolic shapes) or a scalar tensor (dynamic sizes)


def resolve_format(data_format: str | None) -> str:
    """``data_format`` checked, with ``None`` meaning ``keras.config.image_data_format()``.

    Example:
        >>> resolve_format("channels_first")
        'channels_first'
    """
    fmt = keras.config.image_data_format() if data_format is None else data_format
    if fmt not in ("channels_first", "channels_last"):
        raise ValueError(
            f"data_format must be 'channels_first', 'channels_last' or None, got {data_format!r}"
        )
    return fmt


def _spec(shape: Sequence[Dim], factor: Factor, order: str, data_format: str) -> ShuffleSpec:
    try:
        return ShuffleSpec.make(factor, order)
    except ValueError as exc:
        raise ValueError(
            f"{exc} (shape {tuple(shape)}, factor {factor!r}, order {order!r}, "
            f"data_format {data_format!r})"
        ) from None


def _split(
    shape: Sequence[Dim], spec: ShuffleSpec, first: bool, data_format: str
) -> tuple[list[Dim], int, list[Dim]]:
    """``(batch dims, channels, spatial dims)`` of ``shape``; the channel axis must be known."""
    n = spec.ndim
    where = f"shape {tuple(shape)}, factor {spec.factors}, order {spec.order!r}, " + (
        f"data_format {data_format!r}"
    )
    if len(shape) < n + 1:
        raise ValueError(
            f"too few dimensions: {where} needs at least {n + 1} (channels and {n} spatial)"
        )
    nb = len(shape) - n - 1
    chans = shape[nb] if first else shape[-1]
    spatial = list(shape[nb + 1 :] if first else shape[nb:-1])
    if not isinstance(chans, (int, np.integer)):
        raise ValueError(f"the channel axis must have a known size: {where}")
    return list(shape[:nb]), int(chans), spatial


def _check_divisible(
    shape: Sequence[Dim], spec: ShuffleSpec, first: bool, inverse: bool, data_format: str
) -> None:
    _, chans, spatial = _split(shape, spec, first, data_format)
    where = (
        f"shape {tuple(shape)}, factor {spec.factors}, order {spec.order!r}, "
        f"data_format {data_format!r}"
    )
    if not inverse and chans % spec.block:
        raise ValueError(
            f"channels not divisible: {where}; the channel axis ({chans}) must be a multiple "
            f"of the product of the factors ({spec.block})"
        )
    if inverse:
        for s, r in zip(spatial, spec.factors, strict=True):
            if isinstance(s, (int, np.integer)) and s % r:
                raise ValueError(
                    f"spatial size not divisible: {where}; every spatial size must be a "
                    "multiple of its factor"
                )


def output_shape(
    shape: Sequence[int | None],
    factor: Factor,
    *,
    order: str = "chw",
    data_format: str | None = None,
    inverse: bool = False,
) -> tuple[int | None, ...]:
    """The shape that :func:`pixel_shuffle` (or, with ``inverse``, the unshuffle) returns.

    ``None`` (unknown) sizes stay unknown. Raises ``ValueError`` as the functions do.

    Example:
        >>> output_shape((None, 5, 7, 12), 2, order="hwc")
        (None, 10, 14, 3)
        >>> output_shape((None, 3, None, 8), (1, 2), data_format="channels_first", inverse=True)
        (None, 6, None, 4)
    """
    fmt = resolve_format(data_format)
    spec = _spec(shape, factor, order, fmt)
    first = fmt == "channels_first"
    _check_divisible(shape, spec, first, inverse, fmt)
    batch, chans, spatial = _split(shape, spec, first, fmt)
    if inverse:
        c_new = chans * spec.block
        s_new = [None if s is None else s // r for s, r in zip(spatial, spec.factors, strict=True)]
    else:
        c_new = chans // spec.block
        s_new = [None if s is None else s * r for s, r in zip(spatial, spec.factors, strict=True)]
    if first:
        return (*batch, c_new, *s_new)
    return (*batch, *s_new, c_new)


def _plan(
    shape: Sequence[Dim], spec: ShuffleSpec, first: bool, inverse: bool, data_format: str
) -> tuple[list[Dim], tuple[int, ...], list[Dim]]:
    """(view shape, permutation, output shape); sizes may be scalar tensors (TF graphs).

    The same plan as :mod:`subpixel.ops` builds for PyTorch: split the channel axis into the
    order's letters (or each spatial axis into ``(S/r, r)``), permute, merge.
    """
    n = spec.ndim
    batch, chans, spatial = _split(shape, spec, first, data_format)
    nb = len(batch)
    c_pos, s_pos = spec.letter_positions()
    if not inverse:
        c_out = chans // spec.block
        sizes = list(spec.sizes_in_order(c_out))
        f_base = nb if first else nb + n
        s_base = nb + n + 1 if first else nb
        view = [*batch, *sizes, *spatial] if first else [*batch, *spatial, *sizes]
        inter: list[int] = []
        for k in range(n):
            inter += [s_base + k, f_base + s_pos[k]]
        perm = (
            (*range(nb), f_base + c_pos, *inter) if first else (*range(nb), *inter, f_base + c_pos)
        )
        big = [s * r for s, r in zip(spatial, spec.factors, strict=True)]
        out = [*batch, c_out, *big] if first else [*batch, *big, c_out]
        return view, perm, out
    small = [s // r for s, r in zip(spatial, spec.factors, strict=True)]
    split: list[Dim] = []
    for s, r in zip(small, spec.factors, strict=True):
        split += [s, r]
    if first:
        view = [*batch, chans, *split]
        c_axis = nb
        s_axis = [nb + 1 + 2 * k for k in range(n)]
    else:
        view = [*batch, *split, chans]
        c_axis = nb + 2 * n
        s_axis = [nb + 2 * k for k in range(n)]
    letters = SPATIAL_LETTERS[n]
    factor_axes = [
        c_axis if letter == "c" else s_axis[letters.index(letter)] + 1 for letter in spec.order
    ]
    if first:
        perm = (*range(nb), *factor_axes, *s_axis)
        out = [*batch, chans * spec.block, *small]
    else:
        perm = (*range(nb), *s_axis, *factor_axes)
        out = [*batch, *small, chans * spec.block]
    return view, perm, out


def _uses_depth_to_space(x_ndim: int, spec: ShuffleSpec, first: bool) -> bool:
    """Where ``keras.ops.depth_to_space``/``space_to_depth`` agree on every backend."""
    return (
        x_ndim == 4
        and not first
        and spec.order == "hwc"
        and spec.factors[0] == spec.factors[1]
        and spec.factors[0] > 1
    )


def _apply(x: Any, spec: ShuffleSpec, first: bool, inverse: bool, data_format: str) -> Any:
    if _uses_depth_to_space(len(x.shape), spec, first):
        if inverse:
            return keras.ops.space_to_depth(x, spec.factors[0], data_format="channels_last")
        return keras.ops.depth_to_space(x, spec.factors[0], data_format="channels_last")
    view, perm, out = _plan(keras.ops.shape(x), spec, first, inverse, data_format)
    moved = keras.ops.transpose(keras.ops.reshape(x, view), perm)
    return keras.ops.reshape(moved, out)


class _ShuffleOp(keras.Operation):
    """The shuffle as a Keras operation, for symbolic inputs (functional model building)."""

    def __init__(self, spec: ShuffleSpec, data_format: str, inverse: bool) -> None:
        super().__init__()
        self.spec = spec
        self.data_format = data_format
        self.inverse = inverse

    def call(self, x: Any) -> Any:
        return _apply(
            x, self.spec, self.data_format == "channels_first", self.inverse, self.data_format
        )

    def compute_output_spec(self, x: Any) -> keras.KerasTensor:
        shape = output_shape(
            x.shape,
            self.spec.factors,
            order=self.spec.order,
            data_format=self.data_format,
            inverse=self.inverse,
        )
        return keras.KerasTensor(shape, dtype=x.dtype)


def _shuffle(x: Any, factor: Factor, order: str, data_format: str | None, inverse: bool) -> Any:
    fmt = resolve_format(data_format)
    if not isinstance(x, keras.KerasTensor) and not hasattr(x, "shape"):
        raise TypeError(f"expected a tensor or array, got {type(x).__name__}")
    if not isinstance(x, keras.KerasTensor):
        x = keras.ops.convert_to_tensor(x)
    shape = tuple(keras.ops.shape(x))
    spec = _spec(shape, factor, order, fmt)
    _check_divisible(shape, spec, fmt == "channels_first", inverse, fmt)
    if isinstance(x, keras.KerasTensor):
        return _ShuffleOp(spec, fmt, inverse).symbolic_call(x)
    return _apply(x, spec, fmt == "channels_first", inverse, fmt)


def pixel_shuffle(
    x: Any, factor: Factor, *, order: str = "chw", data_format: str | None = None
) -> Any:
    """Depth to space: ``(*B, *S, C·∏r) -> (*B, *(S·r), C)`` (channels last) in any order.

    Args:
        x: a tensor of the active Keras backend, a numpy array, or a ``keras.KerasTensor``.
        factor: an int for every spatial axis or a tuple, outermost axis first.
        order: how the input channel axis is factorised: ``"chw"`` (PyTorch, the default),
            ``"hwc"`` (TensorFlow ``depth_to_space``), ``"cwh"``, ... or an alias such as
            ``"tensorflow"``; its spatial letters set the number of spatial axes
            (see :mod:`subpixel.ops`).
        data_format: ``"channels_last"`` ``(*B, *S, C)``, ``"channels_first"``
            ``(*B, C, *S)``, or ``None`` for ``keras.config.image_data_format()``.

    Returns:
        A tensor of the active backend; bit for bit what :func:`subpixel.pixel_shuffle`
        returns for the same arguments (pure data movement).

    Raises:
        ValueError: channels not divisible by ``∏r``, a bad order/factor/data format, too
            few dimensions, or an unknown channel size; the message shows the shape.

    Example:
        >>> import numpy as np
        >>> y = pixel_shuffle(np.zeros((2, 5, 7, 3 * 6)), (2, 3), order="tensorflow")
        >>> tuple(y.shape)
        (2, 10, 21, 3)
        >>> tuple(pixel_shuffle(np.zeros((1, 10, 8)), 4, order="cw").shape)  # 1-D
        (1, 40, 2)
    """
    return _shuffle(x, factor, order, data_format, inverse=False)


def pixel_unshuffle(
    x: Any, factor: Factor, *, order: str = "chw", data_format: str | None = None
) -> Any:
    """Space to depth: ``(*B, *S, C) -> (*B, *(S/r), C·∏r)``, the inverse of :func:`pixel_shuffle`.

    ``order="hwc"`` with channels last is TensorFlow's ``space_to_depth``; ``order="chw"`` is
    PyTorch's ``pixel_unshuffle`` (in either data format).

    Example:
        >>> import keras, numpy as np
        >>> x = np.random.default_rng(0).normal(size=(1, 4, 6, 2)).astype("float32")
        >>> y = pixel_unshuffle(x, (2, 3), order="whc")
        >>> tuple(y.shape)
        (1, 2, 2, 12)
        >>> back = pixel_shuffle(y, (2, 3), order="whc")
        >>> bool(np.array_equal(keras.ops.convert_to_numpy(back), x))
        True
    """
    return _shuffle(x, factor, order, data_format, inverse=True)


def convert_order(x: Any, factor: Factor, *, src: str, dst: str, axis: int = -1) -> Any:
    """Permute ``axis`` so that shuffling in ``dst`` gives what shuffling in ``src`` gave.

    The Keras form of :func:`subpixel.convert_order`. The default ``axis=-1`` is the output
    channel axis of a Keras convolution kernel ``(*k, C_in, C·∏r)``, of its bias, and of
    channels-last activations. Works on symbolic tensors too.

    Example:
        >>> import keras, numpy as np
        >>> k = np.arange(12.0).reshape(1, 1, 1, 12)        # kernel trained for "hwc", C = 3
        >>> keras.ops.convert_to_numpy(convert_order(k, 2, src="hwc", dst="chw"))[0, 0, 0].tolist()
        [0.0, 3.0, 6.0, 9.0, 1.0, 4.0, 7.0, 10.0, 2.0, 5.0, 8.0, 11.0]
    """
    if not isinstance(x, keras.KerasTensor):
        x = keras.ops.convert_to_tensor(x)
    shape = tuple(keras.ops.shape(x))
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} out of range for shape {shape}")
    size = shape[axis]
    if not isinstance(size, (int, np.integer)):
        raise ValueError(f"axis {axis} of shape {shape} must have a known size")
    perm = order_permutation(int(size), factor, src=src, dst=dst)
    return keras.ops.take(x, keras.ops.convert_to_tensor(perm.astype("int32")), axis=axis)
