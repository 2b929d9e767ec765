"""Initialisation for sub-pixel convolutions, in place like :mod:`torch.nn.init`.

ICNR (Aitken et al. 2017, "Checkerboard artifact free sub-pixel convolution") draws one
sub-kernel per output channel and gives it to every sub-pixel of that channel's block. The
convolution followed by the shuffle then computes exactly a plain convolution with the
sub-kernel followed by nearest-neighbour upsampling, so it starts free of checkerboard
artefacts. The block is found from the shuffle's ``order``: the same weight means the same
thing for every order only if each block gets a single sub-kernel, which is what this does.

Example:
    >>> import torch, subpixel.init
    >>> conv = torch.nn.Conv2d(3, 4 * 4, 3, padding=1)     # 4 channels after a 2x2 shuffle
    >>> _ = subpixel.init.icnr_(conv.weight, 2, bias=conv.bias)
    >>> y = torch.nn.functional.pixel_shuffle(conv(torch.randn(1, 3, 5, 5)), 2)
    >>> bool((y[..., 0::2, 0::2] == y[..., 1::2, 1::2]).all())   # every block is constant
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from subpixel.ops import TORCH_ORDERS, Factor, ShuffleSpec, convert_order

__all__ = ["icnr_"]


def _spec_for(weight: torch.Tensor, factor: Factor, order: str | None) -> ShuffleSpec:
    """Resolve the shuffle of a ``(C·∏r, C_in/groups, *k)`` weight and check its shape."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    n = weight.ndim - 2
    if n not in TORCH_ORDERS:
        raise ValueError(
            f"weight of shape {tuple(weight.shape)} is not a 1-, 2- or 3-D convolution weight "
            "(C_out, C_in/groups, *kernel)"
        )
    if order is None:
        order = TORCH_ORDERS[n]
    if isinstance(factor, int) and not isinstance(factor, bool):
        factor = (factor,) * n
    spec = ShuffleSpec.make(factor, order)
    if spec.ndim != n:
        raise ValueError(
            f"factor {spec.factors} / order {spec.order!r} are for {spec.ndim} spatial axes but "
            f"weight of shape {tuple(weight.shape)} has {n}"
        )
    if weight.shape[0] % spec.block:
        raise ValueError(
            f"weight of shape {tuple(weight.shape)}: output channels ({weight.shape[0]}) must be "
            f"a multiple of the product of the factors {spec.factors} ({spec.block})"
        )
    return spec


def icnr_(
    weight: torch.Tensor,
    factor: Factor,
    *,
    order: str | None = None,
    initializer: Callable[[torch.Tensor], Any] = nn.init.kaiming_normal_,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fill a sub-pixel convolution's weight by ICNR, in place; return ``weight``.

    One sub-kernel of shape ``(C, C_in/groups, *k)`` is drawn with ``initializer`` (which
    must fill its argument in place, as every ``torch.nn.init`` function does) and copied to
    all ``∏r`` output channels that the shuffle sends to the block of channel ``c``.
    Directly after this call, ``shuffle(conv(x))`` equals nearest-neighbour upsampling of a
    plain convolution with the sub-kernel.

    Args:
        weight: a convolution weight ``(C·∏r, C_in/groups, *k)`` with 1, 2 or 3 spatial axes.
        factor: the shuffle factor, an int or one per spatial axis (outermost first).
        order: the shuffle's channel order or an alias; ``None`` is PyTorch's order for the
            weight's dimension (``"cw"``, ``"chw"``, ``"cdhw"``).
        initializer: fills the sub-kernel in place; the default is He initialisation
            (``kaiming_normal_``, fan-in mode), as in the paper.
        bias: the convolution's bias ``(C·∏r,)``, if any. It is made block-constant in place:
            every channel of a block takes the value of the block's first sub-pixel, so a
            default-initialised bias keeps its distribution. A bias that is not
            block-constant would bring the checkerboard back.

    Returns:
        ``weight``, filled.

    Raises:
        TypeError: ``weight`` or ``bias`` is not a tensor.
        ValueError: the weight's shape does not fit ``factor``/``order``.

    Example:
        >>> import torch
        >>> w = torch.empty(3 * 6, 8, 3)               # 1-D, factor 6, 3 output channels
        >>> _ = icnr_(w, 6)
        >>> bool((w.view(3, 6, 8, 3) == w.view(3, 6, 8, 3)[:, :1]).all())
        True
        >>> w2 = torch.empty(2 * 4, 5, 3, 3)           # TensorFlow order: c is innermost
        >>> _ = icnr_(w2, (1, 4), order="hwc")
        >>> bool((w2.view(4, 2, 5, 3, 3) == w2.view(4, 2, 5, 3, 3)[:1]).all())
        True
    """
    spec = _spec_for(weight, factor, order)
    n = spec.ndim
    channels = weight.shape[0] // spec.block
    torch_order = TORCH_ORDERS[n]
    with torch.no_grad():
        sub = torch.empty((channels, *weight.shape[1:]), dtype=weight.dtype, device=weight.device)
        initializer(sub)
        # Torch order: channel (c, offsets) is c·∏r + offset, so repeating each sub-kernel
        # ∏r times fills the blocks; convert_order then moves it to the requested order.
        full = sub.repeat_interleave(spec.block, dim=0)
        full = convert_order(full, spec.factors, src=torch_order, dst=spec.order)
        weight.copy_(full)
        if bias is not None:
            if not isinstance(bias, torch.Tensor):
                raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
            if bias.shape != weight.shape[:1]:
                raise ValueError(
                    f"bias of shape {tuple(bias.shape)} does not match weight of shape "
                    f"{tuple(weight.shape)}: expected ({weight.shape[0]},)"
                )
            as_torch = convert_order(bias, spec.factors, src=spec.order, dst=torch_order)
            firsts = as_torch.view(channels, spec.block)[:, :1]
            block_const = firsts.expand(channels, spec.block).reshape(-1)
            bias.copy_(convert_order(block_const, spec.factors, src=torch_order, dst=spec.order))
    return weight
