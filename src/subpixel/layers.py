"""``nn.Module`` wrappers whose ``forward`` calls the functions in :mod:`subpixel.ops`."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from subpixel.init import icnr_
from subpixel.ops import (
    TORCH_ORDERS,
    DataFormat,
    Factor,
    ShuffleSpec,
    convert_order,
    pixel_shuffle,
    pixel_unshuffle,
)

__all__ = [
    "Blur",
    "PixelShuffle",
    "PixelUnshuffle",
    "SubPixelConv1d",
    "SubPixelConv2d",
    "SubPixelConv3d",
]


class _Shuffle(nn.Module):
    def __init__(
        self, factor: Factor, order: str = "chw", data_format: DataFormat = "channels_first"
    ) -> None:
        super().__init__()
        spec = ShuffleSpec.make(factor, order)
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(
                f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}"
            )
        self.factor: tuple[int, ...] = spec.factors
        self.order: str = spec.order
        self.data_format: DataFormat = data_format

    def extra_repr(self) -> str:
        fmt = "" if self.data_format == "channels_first" else f", data_format={self.data_format!r}"
        return f"factor={self.factor}, order={self.order!r}{fmt}"


class PixelShuffle(_Shuffle):
    """Depth to space in any channel order: ``(*B, C·∏r, *S) -> (*B, C, *(S·r))``.

    Example:
        >>> import torch
        >>> m = PixelShuffle(2, order="tensorflow")
        >>> m
        PixelShuffle(factor=(2, 2), order='hwc')
        >>> m(torch.randn(1, 12, 5, 5)).shape
        torch.Size([1, 3, 10, 10])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle(x, self.factor, order=self.order, data_format=self.data_format)


class PixelUnshuffle(_Shuffle):
    """Space to depth in any channel order: ``(*B, C, *S) -> (*B, C·∏r, *(S/r))``.

    Example:
        >>> import torch
        >>> PixelUnshuffle((2, 3))(torch.randn(1, 1, 4, 6)).shape
        torch.Size([1, 6, 2, 2])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_unshuffle(x, self.factor, order=self.order, data_format=self.data_format)


# --- Sub-pixel convolution layers (conv -> shuffle [-> blur]) --------------------------------

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
_INITS = ("icnr", "default")


def _factor_tuple(factor: Factor, ndim: int, what: str) -> tuple[int, ...]:
    """``factor`` as one int per spatial axis, checked against ``ndim``."""
    if isinstance(factor, bool) or not isinstance(factor, (int, tuple, list)):
        raise TypeError(f"{what}: factor must be an int or a tuple of ints, got {factor!r}")
    factors = (factor,) * ndim if isinstance(factor, int) else tuple(factor)
    if len(factors) != ndim:
        raise ValueError(
            f"{what}: factor {factor!r} has {len(factors)} entries but the layer has "
            f"{ndim} spatial axes"
        )
    return factors


class Blur(nn.Module):
    """The blur of Sugawara et al. that removes what is left of the checkerboard.

    For factor ``r`` on an axis the input is replication-padded by ``r - 1`` on the leading
    side (left/top/front) and 0 on the trailing side, then averaged over a window of ``r``
    with stride 1, so the output has the input's shape and ``y[o] = mean(x[clamp(o - t, 0)]
    for t in 0..r-1)``. For ``r = 2`` in 2-D it is fastai's ``PixelShuffle_ICNR`` blur,
    ``ReplicationPad2d((1, 0, 1, 0))`` followed by ``AvgPool2d(2, stride=1)``; an axis with
    factor 1 is left alone.

    Args:
        factor: an int for every axis or one per spatial axis (outermost first).
        ndim: the number of spatial axes, needed with an int factor (default 2).

    Shape:
        ``(N, C, *S) -> (N, C, *S)`` with ``len(S) == ndim``.

    Example:
        >>> import torch
        >>> Blur(2, ndim=1)(torch.tensor([[[0.0, 2.0, 4.0, 8.0]]]))
        tensor([[[0., 1., 3., 6.]]])
    """

    def __init__(self, factor: Factor, ndim: int | None = None) -> None:
        super().__init__()
        if ndim is None:
            ndim = 2 if isinstance(factor, int) else len(tuple(factor))
        if ndim not in TORCH_ORDERS:
            raise ValueError(f"Blur: ndim must be 1, 2 or 3, got {ndim}")
        factors = _factor_tuple(factor, ndim, "Blur")
        if any(not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in factors):
            raise ValueError(f"Blur: factor must be a positive int on every axis, got {factor!r}")
        self.factor: tuple[int, ...] = factors
        pads: list[int] = []
        for f in reversed(factors):  # F.pad lists the last axis first
            pads += [f - 1, 0]
        self._pads: list[int] = pads

    def extra_repr(self) -> str:
        return f"factor={self.factor}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.factor)
        if x.dim() != n + 2:
            raise ValueError(
                f"Blur with factor {self.factor} expects (N, C, *S) with {n} spatial axes, "
                f"got shape {tuple(x.shape)}"
            )
        y = F.pad(x, self._pads, mode="replicate")
        if n == 1:
            return F.avg_pool1d(y, self.factor, stride=1)
        if n == 2:
            return F.avg_pool2d(y, self.factor, stride=1)
        return F.avg_pool3d(y, self.factor, stride=1)


class _SubPixelConvNd(nn.Module):
    """A convolution to ``out_channels·∏r`` channels followed by the periodic shuffle."""

    _ndim: ClassVar[int]
    _conv_cls: ClassVar[type[nn.Conv1d] | type[nn.Conv2d] | type[nn.Conv3d]]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        factor: Factor,
        *,
        order: str | None = None,
        padding: str | int | tuple[int, ...] = "same",
        bias: bool = True,
        init: str = "icnr",
        blur: bool = False,
        stride: int | tuple[int, ...] = 1,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        padding_mode: PaddingMode = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        n = self._ndim
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        if init not in _INITS:
            raise ValueError(f"{name}: init must be one of {_INITS}, got {init!r}")
        factors = _factor_tuple(factor, n, name)
        spec = ShuffleSpec.make(factors, TORCH_ORDERS[n] if order is None else order)
        if spec.ndim != n:
            raise ValueError(f"{name}: order {order!r} is not an order for {n} spatial axes")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.factor: tuple[int, ...] = spec.factors
        self.order: str = spec.order
        self.init: str = init
        self.conv = self._conv_cls(
            in_channels,
            out_channels * spec.block,
            kernel_size,  # type: ignore[arg-type]
            stride=stride,  # type: ignore[arg-type]
            padding=padding,  # type: ignore[arg-type]
            dilation=dilation,  # type: ignore[arg-type]
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        if init == "icnr" and groups > 1 and not self._blocks_within_groups():
            raise ValueError(
                f"{name}: init='icnr' needs every shuffle block inside one convolution group, "
                f"but with order {spec.order!r}, out_channels {out_channels} and groups {groups} "
                "a block's channels fall in different groups; use a 'c'-first order with "
                "out_channels divisible by groups, or init='default'"
            )
        self.shuffle = PixelShuffle(spec.factors, order=spec.order)
        self.blur: nn.Module = Blur(spec.factors) if blur else nn.Identity()
        if init == "icnr":  # the conv is already initialised as nn.Conv*d does it
            icnr_(self.conv.weight, self.factor, order=self.order, bias=self.conv.bias)

    def _blocks_within_groups(self) -> bool:
        """Whether every block's ``∏r`` channels sit in a single convolution group."""
        spec = ShuffleSpec.make(self.factor, self.order)
        total = self.out_channels * spec.block
        group_of = torch.arange(total) // (total // self.conv.groups)
        # convert_order with src=order, dst=torch: position c·∏r + offset holds the group of
        # the channel that the shuffle sends to (c, offset).
        as_torch = convert_order(
            group_of, spec.factors, src=spec.order, dst=TORCH_ORDERS[spec.ndim]
        )
        blocks = as_torch.view(self.out_channels, spec.block)
        return bool((blocks == blocks[:, :1]).all())

    def reset_parameters(self) -> None:
        """Re-initialise: PyTorch's default for the convolution, then ICNR if ``init='icnr'``."""
        self.conv.reset_parameters()
        if self.init == "icnr":
            icnr_(self.conv.weight, self.factor, order=self.order, bias=self.conv.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, factor={self.factor}, "
            f"order={self.order!r}, init={self.init!r}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.shuffle(self.conv(x)))


class SubPixelConv1d(_SubPixelConvNd):
    """1-D sub-pixel convolution: ``Conv1d`` to ``C·r`` channels, then the shuffle.

    ``(N, C_in, L) -> (N, C_out, L·r)`` with ``padding="same"``. The keyword arguments
    ``stride``, ``dilation``, ``groups``, ``padding``, ``padding_mode``, ``bias``, ``device``
    and ``dtype`` mean what they mean for ``nn.Conv1d`` and are passed to ``self.conv``;
    ``order=None`` is PyTorch's order ``"cw"``. ``init="icnr"`` (the default) initialises by
    :func:`subpixel.init.icnr_`, ``"default"`` keeps ``nn.Conv1d``'s initialisation;
    ``blur=True`` appends :class:`Blur`.

    Example:
        >>> import torch
        >>> m = SubPixelConv1d(4, 2, 3, 3)
        >>> m(torch.randn(1, 4, 10)).shape
        torch.Size([1, 2, 30])
        >>> m.conv.weight.shape
        torch.Size([6, 4, 3])
    """

    _ndim = 1
    _conv_cls = nn.Conv1d


class SubPixelConv2d(_SubPixelConvNd):
    """2-D sub-pixel convolution (ESPCN's last layer): ``Conv2d`` to ``C·r_h·r_w``, shuffle.

    ``(N, C_in, H, W) -> (N, C_out, H·r_h, W·r_w)`` with ``padding="same"``. The keyword
    arguments ``stride``, ``dilation``, ``groups``, ``padding``, ``padding_mode``, ``bias``,
    ``device`` and ``dtype`` mean what they mean for ``nn.Conv2d``; ``order=None`` is
    PyTorch's ``"chw"`` (``"tensorflow"`` gives ``"hwc"``, the order of TensorFlow's
    ``depth_to_space``). ``init="icnr"`` initialises by :func:`subpixel.init.icnr_`;
    ``blur=True`` appends :class:`Blur`.

    Example:
        >>> import torch
        >>> m = SubPixelConv2d(64, 3, 3, (2, 3), order="tensorflow", blur=True)
        >>> m(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 3, 16, 24])
        >>> m.shuffle
        PixelShuffle(factor=(2, 3), order='hwc')
    """

    _ndim = 2
    _conv_cls = nn.Conv2d


class SubPixelConv3d(_SubPixelConvNd):
    """3-D sub-pixel convolution: ``Conv3d`` to ``C·r_d·r_h·r_w`` channels, then the shuffle.

    ``(N, C_in, D, H, W) -> (N, C_out, D·r_d, H·r_h, W·r_w)`` with ``padding="same"``;
    ``order=None`` is PyTorch's ``"cdhw"``. Other arguments as in :class:`SubPixelConv2d`.

    Example:
        >>> import torch
        >>> SubPixelConv3d(2, 1, 3, (1, 2, 2))(torch.randn(1, 2, 3, 4, 4)).shape
        torch.Size([1, 1, 3, 8, 8])
    """

    _ndim = 3
    _conv_cls = nn.Conv3d
