"""Keras 3 layers: the shuffle, its inverse, sub-pixel convolutions and their blur.

Twins of :mod:`subpixel.layers` for Keras (any backend). Each layer's ``call`` only calls
:mod:`subpixel.keras.ops` or Keras layers, every layer is registered for serialisation
(package ``"subpixel"``, so models using them save to ``.keras`` and load back), and the
channel ``order`` means what it means everywhere in subpixel (see :mod:`subpixel.ops`).
``data_format`` is Keras's: ``None`` is ``keras.config.image_data_format()``
(``"channels_last"`` unless configured).

Example:
    >>> import numpy as np
    >>> from subpixel.keras.layers import PixelShuffle, SubPixelConv2D
    >>> tuple(PixelShuffle(2, order="tensorflow")(np.zeros((1, 5, 5, 12))).shape)
    (1, 10, 10, 3)
    >>> layer = SubPixelConv2D(3, 3, 2)
    >>> tuple(layer(np.zeros((1, 8, 8, 16), "float32")).shape)
    (1, 16, 16, 3)
    >>> tuple(layer.conv.kernel.shape)             # HWIO, output channels in order "chw"
    (3, 3, 16, 12)
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np

from subpixel.keras.initializers import ICNR, TORCH_ORDERS
from subpixel.keras.ops import output_shape, pixel_shuffle, pixel_unshuffle, resolve_format
from subpixel.ops import Factor, ShuffleSpec, order_permutation

__all__ = [
    "Blur",
    "PixelShuffle",
    "PixelUnshuffle",
    "SubPixelConv1D",
    "SubPixelConv2D",
    "SubPixelConv3D",
]

_register = keras.saving.register_keras_serializable(package="subpixel")


def _factor_tuple(factor: Factor, ndim: int, what: str) -> tuple[int, ...]:
    if isinstance(factor, bool) or not isinstance(factor, (int, tuple, list)):
        raise TypeError(f"{what}: factor must be an int or a tuple of ints, got {factor!r}")
    factors = (factor,) * ndim if isinstance(factor, int) else tuple(factor)
    if len(factors) != ndim:
        raise ValueError(
            f"{what}: factor {factor!r} has {len(factors)} entries but the layer has "
            f"{ndim} spatial axes"
        )
    return factors


class _Shuffle(keras.layers.Layer):
    _inverse: ClassVar[bool]

    def __init__(
        self,
        factor: Factor,
        order: str = "chw",
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(factor, list):
            factor = tuple(factor)
        spec = ShuffleSpec.make(factor, order)
        self.factor: tuple[int, ...] = spec.factors
        self.order: str = spec.order
        self.data_format: str = resolve_format(data_format)

    def build(self, input_shape: Any) -> None:
        n = len(self.factor)
        if len(input_shape) < n + 2:
            raise ValueError(
                f"{type(self).__name__} with factor {self.factor} and order {self.order!r} "
                f"({n} spatial axes) needs inputs (batch, {n} spatial axes, channels), got "
                f"shape {tuple(input_shape)}; for 1-D or 3-D give factor as a tuple or an "
                "explicit order such as 'cw' or 'cdhw'"
            )
        self.compute_output_shape(input_shape)  # raises on a bad shape

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return output_shape(
            tuple(input_shape),
            self.factor,
            order=self.order,
            data_format=self.data_format,
            inverse=self._inverse,
        )

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {"factor": list(self.factor), "order": self.order, "data_format": self.data_format}
        )
        return config


@_register
class PixelShuffle(_Shuffle):
    """Depth to space in any channel order: ``(N, *S, C·∏r) -> (N, *(S·r), C)``.

    Args:
        factor: an int for every spatial axis or one per axis (outermost first).
        order: the channel order or an alias (default ``"chw"``, PyTorch's; TensorFlow's
            ``depth_to_space`` is ``"hwc"``/``"tensorflow"``). Its letters set the number of
            spatial axes: ``"cw"`` is 1-D, ``"chw"`` 2-D, ``"cdhw"`` 3-D.
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None`` (Keras's default).

    With ``order="hwc"``, channels last and a square 2-D factor the layer is one
    ``keras.ops.depth_to_space`` (one ``DEPTH_TO_SPACE`` operator in TensorFlow Lite);
    otherwise a reshape, a transpose and a reshape. The result is the same on every backend
    and equals :func:`subpixel.pixel_shuffle` bit for bit.

    Example:
        >>> import keras, numpy as np
        >>> x = np.arange(4.0).reshape(1, 1, 1, 4)
        >>> y = keras.ops.convert_to_numpy(PixelShuffle(2)(x))
        >>> y[0, :, :, 0].tolist()                           # PyTorch order: row-major block
        [[0.0, 1.0], [2.0, 3.0]]
        >>> tuple(PixelShuffle(2, "cw", data_format="channels_first")(np.zeros((1, 6, 5))).shape)
        (1, 3, 10)
    """

    _inverse = False

    def call(self, x: Any) -> Any:
        return pixel_shuffle(x, self.factor, order=self.order, data_format=self.data_format)


@_register
class PixelUnshuffle(_Shuffle):
    """Space to depth in any channel order: ``(N, *S, C) -> (N, *(S/r), C·∏r)``.

    The inverse of :class:`PixelShuffle` with the same arguments.

    Example:
        >>> import numpy as np
        >>> tuple(PixelUnshuffle((2, 3))(np.zeros((1, 4, 6, 1))).shape)
        (1, 2, 2, 6)
    """

    _inverse = True

    def call(self, x: Any) -> Any:
        return pixel_unshuffle(x, self.factor, order=self.order, data_format=self.data_format)


@_register
class Blur(keras.layers.Layer):
    """The blur of Sugawara et al. after a shuffle, as :class:`subpixel.Blur` computes it.

    Per axis with factor ``r``: replicate-pad ``r - 1`` on the leading side, then average a
    window of ``r`` with stride 1, so the shape is kept and
    ``y[o] = mean(x[max(o - t, 0)] for t in 0..r-1)``. An axis with factor 1 is left alone.

    Args:
        factor: an int for every spatial axis or one per axis (outermost first).
        ndim: the number of spatial axes, needed with an int factor (default 2).
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None``.

    Example:
        >>> import keras, numpy as np
        >>> y = Blur(2, ndim=1)(np.array([[[0.0], [2.0], [4.0], [8.0]]]))
        >>> keras.ops.convert_to_numpy(y)[0, :, 0].tolist()
        [0.0, 1.0, 3.0, 6.0]
    """

    def __init__(
        self,
        factor: Factor,
        ndim: int | None = None,
        data_format: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if ndim is None:
            ndim = 2 if isinstance(factor, int) else len(tuple(factor))
        if ndim not in TORCH_ORDERS:
            raise ValueError(f"Blur: ndim must be 1, 2 or 3, got {ndim}")
        factors = _factor_tuple(factor, ndim, "Blur")
        if any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in factors):
            raise ValueError(f"Blur: factor must be a positive int on every axis, got {factor!r}")
        self.factor: tuple[int, ...] = factors
        self.data_format: str = resolve_format(data_format)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return tuple(input_shape)

    def call(self, x: Any) -> Any:
        n = len(self.factor)
        if len(x.shape) != n + 2:
            raise ValueError(
                f"Blur with factor {self.factor} expects (N, *S, C) or (N, C, *S) with {n} "
                f"spatial axes, got shape {tuple(x.shape)}"
            )
        first_axis = 2 if self.data_format == "channels_first" else 1
        for k, r in enumerate(self.factor):
            if r == 1:
                continue
            axis = first_axis + k
            head = [slice(None)] * (n + 2)
            head[axis] = slice(0, 1)
            edge = x[tuple(head)]
            padded = keras.ops.concatenate([edge] * (r - 1) + [x], axis=axis)
            parts = []
            for t in range(r):
                index = [slice(None)] * (n + 2)
                index[axis] = slice(t, t - (r - 1) if t < r - 1 else None)
                parts.append(padded[tuple(index)])
            total = parts[0]
            for part in parts[1:]:
                total = total + part
            x = total / r
        return x

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            {"factor": list(self.factor), "ndim": len(self.factor), "data_format": self.data_format}
        )
        return config


_CONVS: dict[int, type[keras.layers.Layer]] = {
    1: keras.layers.Conv1D,
    2: keras.layers.Conv2D,
    3: keras.layers.Conv3D,
}
_INITS = ("icnr", "default")


class _SubPixelConv(keras.layers.Layer):
    """A convolution to ``filters·∏r`` channels followed by the periodic shuffle."""

    _ndim: ClassVar[int]

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, ...],
        factor: Factor,
        *,
        order: str | None = None,
        strides: int | tuple[int, ...] = 1,
        padding: str = "same",
        data_format: str | None = None,
        dilation_rate: int | tuple[int, ...] = 1,
        groups: int = 1,
        use_bias: bool = True,
        init: str = "icnr",
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        blur: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        name = type(self).__name__
        n = self._ndim
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"{name}: filters must be a positive int, got {filters!r}")
        if init not in _INITS:
            raise ValueError(f"{name}: init must be one of {_INITS}, got {init!r}")
        if isinstance(factor, list):
            factor = tuple(factor)
        factors = _factor_tuple(factor, n, name)
        spec = ShuffleSpec.make(factors, TORCH_ORDERS[n] if order is None else order)
        if spec.ndim != n:
            raise ValueError(f"{name}: order {order!r} is not an order for {n} spatial axes")
        self.filters = filters
        self.factor: tuple[int, ...] = spec.factors
        self.order: str = spec.order
        self.data_format: str = resolve_format(data_format)
        self.init = init
        self.use_blur = blur
        self._kernel_initializer = kernel_initializer
        self._bias_initializer = bias_initializer
        if init == "icnr" and groups > 1 and not self._blocks_within_groups(groups):
            raise ValueError(
                f"{name}: init='icnr' needs every shuffle block inside one convolution group, "
                f"but with order {spec.order!r}, filters {filters} and groups {groups} a "
                "block's channels fall in different groups; use a 'c'-first order with filters "
                "divisible by groups, or init='default'"
            )
        if init == "icnr":
            k_init: Any = ICNR(
                spec.factors,
                spec.order,
                "he_normal" if kernel_initializer is None else kernel_initializer,
            )
            b_init: Any = ICNR(spec.factors, spec.order, bias_initializer)
        else:
            k_init = "glorot_uniform" if kernel_initializer is None else kernel_initializer
            b_init = bias_initializer
        self.conv = _CONVS[n](
            filters * spec.block,
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=self.data_format,
            dilation_rate=dilation_rate,
            groups=groups,
            use_bias=use_bias,
            kernel_initializer=k_init,
            bias_initializer=b_init,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            name="conv",
        )
        self.shuffle = PixelShuffle(
            spec.factors, order=spec.order, data_format=self.data_format, name="shuffle"
        )
        self.blur = (
            Blur(spec.factors, ndim=n, data_format=self.data_format, name="blur") if blur else None
        )

    def _blocks_within_groups(self, groups: int) -> bool:
        """Whether every block's ``∏r`` channels sit in a single convolution group."""
        spec = ShuffleSpec.make(self.factor, self.order)
        total = self.filters * spec.block
        if total % groups:
            return False
        group_of = np.arange(total) // (total // groups)
        perm = order_permutation(total, spec.factors, src=spec.order, dst=TORCH_ORDERS[spec.ndim])
        blocks = group_of[perm].reshape(self.filters, spec.block)
        return bool((blocks == blocks[:, :1]).all())

    def build(self, input_shape: Any) -> None:
        self.conv.build(input_shape)
        conv_shape = self.conv.compute_output_shape(input_shape)
        self.shuffle.build(conv_shape)
        if self.blur is not None:
            self.blur.build(self.shuffle.compute_output_shape(conv_shape))

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, ...]:
        return self.shuffle.compute_output_shape(self.conv.compute_output_shape(input_shape))

    def call(self, x: Any) -> Any:
        y = self.shuffle(self.conv(x))
        return y if self.blur is None else self.blur(y)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        conv = self.conv

        def ser(obj: Any, kind: Any) -> Any:
            return kind.serialize(kind.get(obj)) if obj is not None else None

        config.update(
            {
                "filters": self.filters,
                "kernel_size": list(conv.kernel_size),
                "factor": list(self.factor),
                "order": self.order,
                "strides": list(conv.strides),
                "padding": conv.padding,
                "data_format": self.data_format,
                "dilation_rate": list(conv.dilation_rate),
                "groups": conv.groups,
                "use_bias": conv.use_bias,
                "init": self.init,
                "kernel_initializer": ser(self._kernel_initializer, keras.initializers),
                "bias_initializer": ser(self._bias_initializer, keras.initializers),
                "kernel_regularizer": ser(conv.kernel_regularizer, keras.regularizers),
                "bias_regularizer": ser(conv.bias_regularizer, keras.regularizers),
                "kernel_constraint": ser(conv.kernel_constraint, keras.constraints),
                "bias_constraint": ser(conv.bias_constraint, keras.constraints),
                "blur": self.use_blur,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> _SubPixelConv:
        config = dict(config)
        for key in ("kernel_size", "factor", "strides", "dilation_rate"):
            if isinstance(config.get(key), list):
                config[key] = tuple(config[key])
        return cls(**config)


_SHARED_DOC = """
    ``init="icnr"`` (the default) initialises the kernel by :class:`~subpixel.keras.ICNR`
    with ``kernel_initializer`` (default ``"he_normal"``) as the sub-kernel initializer, and
    makes the bias block-constant the same way; ``init="default"`` uses the initializers as
    given (kernel default ``"glorot_uniform"``, Keras's). ``order=None`` is PyTorch's order,
    so weights move from the PyTorch twin by transposing the kernel layout only
    (``(O, I, *k)`` -> ``(*k, I, O)``); ``order="tensorflow"`` gives TensorFlow's. The other
    arguments mean what they mean for Keras's convolution and are passed to ``self.conv``;
    ``blur=True`` appends :class:`Blur`. The sublayers are ``conv``, ``shuffle`` and
    ``blur`` (or ``None``).
"""


@_register
class SubPixelConv1D(_SubPixelConv):
    __doc__ = (
        """1-D sub-pixel convolution: ``Conv1D`` to ``filters·r`` channels, then the shuffle.

    ``(N, L, C_in) -> (N, L·r, filters)`` with ``padding="same"`` (channels last).
    """
        + _SHARED_DOC
        + """
    Example:
        >>> import numpy as np
        >>> tuple(SubPixelConv1D(2, 3, 3)(np.zeros((1, 10, 4), "float32")).shape)
        (1, 30, 2)
    """
    )

    _ndim = 1


@_register
class SubPixelConv2D(_SubPixelConv):
    __doc__ = (
        """2-D sub-pixel convolution (ESPCN's last layer): ``Conv2D`` to ``filters·r_h·r_w``.

    ``(N, H, W, C_in) -> (N, H·r_h, W·r_w, filters)`` with ``padding="same"``.
    """
        + _SHARED_DOC
        + """
    Example:
        >>> import numpy as np
        >>> m = SubPixelConv2D(3, 3, (2, 3), order="tensorflow", blur=True)
        >>> tuple(m(np.zeros((1, 8, 8, 64), "float32")).shape)
        (1, 16, 24, 3)
    """
    )

    _ndim = 2


@_register
class SubPixelConv3D(_SubPixelConv):
    __doc__ = (
        """3-D sub-pixel convolution: ``Conv3D`` to ``filters·r_d·r_h·r_w``, then the shuffle.

    ``(N, D, H, W, C_in) -> (N, D·r_d, H·r_h, W·r_w, filters)`` with ``padding="same"``.
    """
        + _SHARED_DOC
        + """
    Example:
        >>> import numpy as np
        >>> tuple(SubPixelConv3D(1, 3, (1, 2, 2))(np.zeros((1, 3, 4, 4, 2), "float32")).shape)
        (1, 3, 8, 8, 1)
    """
    )

    _ndim = 3
