"""Exact conversion between transposed convolutions and sub-pixel convolutions.

A transposed convolution with stride ``r`` computes, for each phase ``φ ∈ [0, r)`` of the
output, a stride-1 correlation of the input with the flipped sub-kernel ``w[φ + r·m]``
(Shi et al., "Is the deconvolution layer the same as a convolutional layer?"). Stacking the
``r`` phases as channels and shuffling them into place is therefore the same function as the
transposed convolution: a low-resolution convolution to ``C_out·∏r`` channels, the periodic
shuffle (PyTorch's order), and a crop that removes ``padding`` and sets the exact output size.
``docs/equivalence.md`` works through the derivation with numbers.

Public functions:

* :func:`transposed_to_subpixel`: ``nn.ConvTranspose{1,2,3}d`` -> :class:`ConvTransposeAsSubPixel`
  computing the same function for every input size (``output_size`` included).
* :func:`subpixel_to_transposed`: the reverse, for a converted module or a
  :class:`subpixel.SubPixelConv2d` (and 1-D/3-D), where a transposed convolution exists.
* :func:`transposed_to_phase_conv`: for a transposed convolution whose output is exactly
  ``stride`` times its input (as in FSRCNN or ESPCN-style upsamplers), one "same"-padded
  convolution whose output, shuffled, *is* the transposed convolution's: no pad or crop.
* :func:`replace_transposed_convs`: swap every transposed convolution of a model and report
  what was replaced and what was left, with the reason.

Example:
    >>> import torch, subpixel.convert
    >>> up = torch.nn.ConvTranspose2d(8, 4, kernel_size=4, stride=2, padding=1)
    >>> sp = subpixel.convert.transposed_to_subpixel(up)
    >>> x = torch.randn(1, 8, 5, 7)
    >>> sp(x).shape == up(x).shape
    True
    >>> bool((sp(x) - up(x)).abs().max() < 1e-5)
    True
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from subpixel.layers import PixelShuffle, _SubPixelConvNd
from subpixel.ops import TORCH_ORDERS, ShuffleSpec, convert_order

__all__ = [
    "ConvTransposeAsSubPixel",
    "ConversionReport",
    "ReportEntry",
    "replace_transposed_convs",
    "subpixel_to_transposed",
    "transposed_to_phase_conv",
    "transposed_to_subpixel",
]

TransposedConv = nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d
_TRANSPOSED: dict[int, type[nn.Module]] = {
    1: nn.ConvTranspose1d,
    2: nn.ConvTranspose2d,
    3: nn.ConvTranspose3d,
}
_CONVS: dict[int, type[nn.Conv1d] | type[nn.Conv2d] | type[nn.Conv3d]] = {
    1: nn.Conv1d,
    2: nn.Conv2d,
    3: nn.Conv3d,
}


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


# --- weight layout ----------------------------------------------------------------------------


def _dilate_kernel(w: torch.Tensor, dilation: Sequence[int]) -> torch.Tensor:
    """Insert ``d - 1`` zeros between taps: a dilated kernel as a dense one."""
    if all(d == 1 for d in dilation):
        return w
    k = w.shape[2:]
    size = [d * (ki - 1) + 1 for d, ki in zip(dilation, k, strict=True)]
    out = w.new_zeros((*w.shape[:2], *size))
    index = (slice(None), slice(None), *(slice(None, None, d) for d in dilation))
    out[index] = w
    return out


def _transposed_to_conv_weight(w: torch.Tensor, stride: Sequence[int], groups: int) -> torch.Tensor:
    """``(C_in, C_out/g, *k)`` -> ``(C_out·∏s, C_in/g, *ceil(k/s))``, PyTorch shuffle order.

    Output channel ``(c, φ_1..φ_n)`` (``c`` outermost) at tap ``j`` is
    ``w[ci, c, φ + s·(M - 1 - j)]``: the phase-``φ`` sub-kernel, flipped; taps beyond ``k``
    (the kernel zero-padded to a multiple of the stride) are zero.
    """
    n = len(stride)
    c_in, c_out_g = w.shape[:2]
    k = w.shape[2:]
    m = [_ceil_div(ki, si) for ki, si in zip(k, stride, strict=True)]
    pads: list[int] = []
    for mi, si, ki in zip(reversed(m), reversed(stride), reversed(k), strict=True):
        pads += [0, mi * si - ki]
    w = F.pad(w, pads)
    split = [x for mi, si in zip(m, stride, strict=True) for x in (mi, si)]
    w = w.reshape(groups, c_in // groups, c_out_g, *split)
    w = w.flip([3 + 2 * a for a in range(n)])
    perm = (0, 2, *(4 + 2 * a for a in range(n)), 1, *(3 + 2 * a for a in range(n)))
    block = math.prod(stride)
    return w.permute(perm).reshape(groups * c_out_g * block, c_in // groups, *m)


def _conv_to_transposed_weight(v: torch.Tensor, stride: Sequence[int], groups: int) -> torch.Tensor:
    """The inverse of :func:`_transposed_to_conv_weight`, kernel ``ceil(k/s)·s`` (unpadded)."""
    n = len(stride)
    total, c_in_g = v.shape[:2]
    m = v.shape[2:]
    block = math.prod(stride)
    c_out_g = total // block // groups
    v = v.reshape(groups, c_out_g, *stride, c_in_g, *m)
    inter = [x for a in range(n) for x in (3 + n + a, 2 + a)]
    w = v.permute(0, 2 + n, 1, *inter).flip([3 + 2 * a for a in range(n)])
    return w.reshape(groups * c_in_g, c_out_g, *(mi * si for mi, si in zip(m, stride, strict=True)))


# --- the converted module ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Per-axis pads and crops around ``conv -> shuffle`` for one output padding."""

    pre_crop: tuple[tuple[int, int], ...]  # removed from the input (left, right)
    pre_pad: tuple[int, ...]  # for F.pad (last axis first), zeros added to the input
    post_crop: tuple[tuple[int, int], ...]  # removed from the shuffled output (left, right)

    @property
    def needs_pre_crop(self) -> bool:
        return any(a or b for a, b in self.pre_crop)

    @property
    def needs_pre_pad(self) -> bool:
        return any(self.pre_pad)


def _lowres_pads(k: int, s: int, p: int, op: int) -> tuple[int, int]:
    """Zeros to add left/right of the input (negative: crop) before the stride-1 conv."""
    m = _ceil_div(k, s)
    left = m - 1 - p // s
    right = _ceil_div(k + op - p - s, s)
    return left, right


def _make_plan(
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
    conv_padding: Sequence[int],
) -> _Plan:
    pre_crop: list[tuple[int, int]] = []
    pads: list[tuple[int, int]] = []
    post_crop: list[tuple[int, int]] = []
    for k, s, p, op, c in zip(kernel, stride, padding, output_padding, conv_padding, strict=True):
        left, right = _lowres_pads(k, s, p, op)
        el, er = left - c, right - c
        pre_crop.append((max(0, -el), max(0, -er)))
        pads.append((max(0, el), max(0, er)))
        m = _ceil_div(k, s)
        # Shuffled length is (L + left + right - m + 1)·s; keep (L - 1)·s - 2p + k + op of it.
        crop_left = p % s
        crop_right = (left + right - m + 1) * s - crop_left + s + 2 * p - k - op
        post_crop.append((crop_left, crop_right))
    flat: list[int] = []
    for a, b in reversed(pads):
        flat += [a, b]
    return _Plan(tuple(pre_crop), tuple(flat), tuple(post_crop))


def _crop(x: torch.Tensor, crops: Sequence[tuple[int, int]]) -> torch.Tensor:
    n = len(crops)
    for axis, (a, b) in enumerate(crops):
        if a or b:
            dim = x.dim() - n + axis
            x = x.narrow(dim, a, x.shape[dim] - a - b)
    return x


class ConvTransposeAsSubPixel(nn.Module):
    """A transposed convolution computed as ``crop(shuffle(conv(pad(x))))``, exactly.

    Built by :func:`transposed_to_subpixel`; computes the same function as the
    ``nn.ConvTranspose{1,2,3}d`` it came from, for every input size, with or without a batch
    axis, and takes ``forward(x, output_size=...)`` as that module does. ``conv`` is a plain
    ``nn.Conv{1,2,3}d`` (stride 1) to ``out_channels·∏stride`` channels and ``shuffle`` a
    :class:`subpixel.PixelShuffle` in PyTorch's order; both are ordinary trainable modules.
    The attributes ``in_channels``, ``out_channels``, ``kernel_size``, ``stride``,
    ``padding``, ``output_padding``, ``dilation`` and ``groups`` repeat the original's.

    Example:
        >>> import torch
        >>> up = torch.nn.ConvTranspose1d(2, 3, kernel_size=5, stride=3, padding=1)
        >>> sp = transposed_to_subpixel(up)
        >>> sp.conv
        Conv1d(2, 9, kernel_size=(2,), stride=(1,), padding=(1,))
        >>> x = torch.randn(1, 2, 7)
        >>> y = up(x, output_size=[22])
        >>> bool((sp(x, output_size=[22]) - y).abs().max() < 1e-5), tuple(y.shape)
        (True, (1, 3, 22))
    """

    def __init__(
        self,
        conv: nn.Conv1d | nn.Conv2d | nn.Conv3d,
        *,
        kernel_size: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
        output_padding: Sequence[int],
        dilation: Sequence[int],
        out_channels: int,
    ) -> None:
        super().__init__()
        n = len(stride)
        self.conv = conv
        self.shuffle = PixelShuffle(tuple(stride), order=TORCH_ORDERS[n])
        self.in_channels: int = conv.in_channels
        self.out_channels: int = out_channels
        self.groups: int = conv.groups
        self.kernel_size: tuple[int, ...] = tuple(kernel_size)
        self.stride: tuple[int, ...] = tuple(stride)
        self.padding: tuple[int, ...] = tuple(padding)
        self.output_padding: tuple[int, ...] = tuple(output_padding)
        self.dilation: tuple[int, ...] = tuple(dilation)
        self._conv_padding: tuple[int, ...] = tuple(conv.padding)  # type: ignore[arg-type]
        self._plan = self._plan_for(self.output_padding)

    @property
    def _effective_kernel(self) -> tuple[int, ...]:
        return tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel_size, strict=True))

    def _plan_for(self, output_padding: Sequence[int]) -> _Plan:
        return _make_plan(
            self._effective_kernel,
            self.stride,
            self.padding,
            output_padding,
            self._conv_padding,
        )

    def _output_padding(self, x: torch.Tensor, output_size: Sequence[int]) -> tuple[int, ...]:
        """The output padding that gives ``output_size``, checked as ConvTranspose does."""
        n = len(self.stride)
        size = [int(s) for s in output_size]
        non_spatial = x.dim() - n
        if len(size) == non_spatial + n:
            size = size[non_spatial:]
        if len(size) != n:
            raise ValueError(
                f"output_size {list(output_size)} must have {n} or {non_spatial + n} entries "
                f"for input of shape {tuple(x.shape)}"
            )
        ops: list[int] = []
        for axis in range(n):
            length = x.shape[x.dim() - n + axis]
            s, p = self.stride[axis], self.padding[axis]
            low = (length - 1) * s - 2 * p + self._effective_kernel[axis]
            high = low + s - 1  # as nn.ConvTranspose*d checks it
            if not low <= size[axis] <= high:
                raise ValueError(
                    f"requested output_size {size} is not reachable from input of shape "
                    f"{tuple(x.shape)}: axis {axis} must be in [{low}, {high}]"
                )
            ops.append(size[axis] - low)
        return tuple(ops)

    def extra_repr(self) -> str:
        return (
            f"transposed: {self.in_channels}, {self.out_channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"output_padding={self.output_padding}, dilation={self.dilation}, "
            f"groups={self.groups}"
        )

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        plan = self._plan
        if output_size is not None:
            op = self._output_padding(x, output_size)
            if op != self.output_padding:
                plan = self._plan_for(op)
        if plan.needs_pre_crop:
            x = _crop(x, plan.pre_crop)
        if plan.needs_pre_pad:
            x = F.pad(x, plan.pre_pad)
        return _crop(self.shuffle(self.conv(x)), plan.post_crop)


def _tuple(value: object, n: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    return tuple(int(v) for v in value)  # type: ignore[attr-defined]


def _is_lazy(m: nn.Module) -> bool:
    return any(
        isinstance(p, nn.parameter.UninitializedParameter) for p in m.parameters(recurse=False)
    )


def _check_transposed(m: object) -> int:
    """The number of spatial axes of a supported transposed convolution, or raise."""
    n = next((n for n, cls in _TRANSPOSED.items() if isinstance(m, cls)), 0)
    if not n:
        raise TypeError(
            "expected nn.ConvTranspose1d, nn.ConvTranspose2d or nn.ConvTranspose3d, got "
            f"{type(m).__name__}"
        )
    assert isinstance(m, nn.modules.conv._ConvTransposeNd)
    if _is_lazy(m):
        raise ValueError(
            f"{type(m).__name__} has uninitialised (lazy) parameters: run a forward pass first"
        )
    if m.padding_mode != "zeros":
        raise ValueError(f"padding_mode {m.padding_mode!r} is not supported (only 'zeros')")
    return n


def transposed_to_subpixel(m: TransposedConv) -> ConvTransposeAsSubPixel:
    """Convert a transposed convolution to the exactly equivalent sub-pixel form.

    Every stride ``≥ 1``, kernel size (taps are zero-padded to a multiple of the stride),
    per-axis stride/kernel/padding, ``padding``, ``output_padding``, ``groups``, bias on or
    off and ``dilation`` (the dilated kernel becomes a dense one with zeros, which is exact but
    wastes their multiplications) are supported, and ``forward(x, output_size=...)`` works as
    on the original. The result matches the original to rounding: on the same device and
    dtype, within ``1e-5·max|y|`` in float32 and ``1e-10`` in float64 (tested). Parameters are
    copied, so the original is left untouched; ``requires_grad`` and the training flag carry
    over, hooks do not.

    Args:
        m: an ``nn.ConvTranspose1d``, ``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d``.

    Returns:
        A :class:`ConvTransposeAsSubPixel`.

    Raises:
        TypeError: ``m`` is not a transposed convolution.
        ValueError: uninitialised lazy parameters, or a ``padding_mode`` other than zeros.

    Example:
        >>> import torch
        >>> up = torch.nn.ConvTranspose2d(4, 2, kernel_size=(3, 2), stride=(2, 2), groups=2)
        >>> sp = transposed_to_subpixel(up)
        >>> sp.conv.weight.shape                # 2 channels · 4 phases, kernels ceil(k/s)
        torch.Size([8, 2, 2, 1])
        >>> x = torch.randn(3, 4, 5, 6)
        >>> bool((sp(x) - up(x)).abs().max() < 1e-5)
        True
    """
    n = _check_transposed(m)
    stride = _tuple(m.stride, n)
    padding = _tuple(m.padding, n)
    output_padding = _tuple(m.output_padding, n)
    dilation = _tuple(m.dilation, n)
    kernel = _tuple(m.kernel_size, n)
    weight = _dilate_kernel(m.weight.detach(), dilation)
    v = _transposed_to_conv_weight(weight, stride, m.groups)
    block = math.prod(stride)
    lowres_kernel = tuple(v.shape[2:])
    conv_padding = []
    for k, s, p, op in zip(weight.shape[2:], stride, padding, output_padding, strict=True):
        left, right = _lowres_pads(k, s, p, op)
        conv_padding.append(max(0, min(left, right)))
    conv = _CONVS[n](
        m.in_channels,
        m.out_channels * block,
        lowres_kernel,  # type: ignore[arg-type]
        stride=1,
        padding=tuple(conv_padding),  # type: ignore[arg-type]
        groups=m.groups,
        bias=m.bias is not None,
        device=m.weight.device,
        dtype=m.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(v)
        conv.weight.requires_grad_(m.weight.requires_grad)
        if m.bias is not None and conv.bias is not None:
            conv.bias.copy_(m.bias.detach().repeat_interleave(block))
            conv.bias.requires_grad_(m.bias.requires_grad)
    out = ConvTransposeAsSubPixel(
        conv,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        out_channels=m.out_channels,
    )
    return out.train(m.training)


def _phase_taps(k: int, s: int, p: int) -> tuple[int, torch.Tensor]:
    """``(R, taps)``: ``taps[φ, a]`` is the kernel tap that phase ``φ`` of output pixel
    ``s·r + φ`` takes from input ``r + a - R`` (``k``, one past the kernel, where none)."""
    ds = [d for phi in range(s) for d in range(-((phi + p) // s), (k - 1 - phi - p) // s + 1)]
    # d = r - n for the input n that reaches output s·r + φ through tap s·d + φ + p
    radius = max([0, *(abs(d) for d in ds)])
    taps = torch.full((s, 2 * radius + 1), k, dtype=torch.long)
    for phi in range(s):
        for a in range(2 * radius + 1):
            tap = s * (radius - a) + phi + p
            if 0 <= tap < k:
                taps[phi, a] = tap
    return radius, taps


def _check_size_exact(
    m: nn.Module,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
) -> None:
    for axis, (k, s, p, op) in enumerate(zip(kernel, stride, padding, output_padding, strict=True)):
        if k + op - 2 * p != s:
            raise ValueError(
                f"{type(m).__name__}: axis {axis} outputs (H - 1)·{s} + {k + op - 2 * p}, not "
                f"{s}·H (kernel {k}, padding {p}, output_padding {op}); use "
                "transposed_to_subpixel"
            )


def _aligned_phases(m: ConvTransposeAsSubPixel) -> nn.Conv1d | nn.Conv2d | nn.Conv3d:
    """:func:`transposed_to_phase_conv` of a converted module: its conv's phases re-aligned.

    On each axis, output ``s·r + i`` of ``crop(shuffle(conv(pad(x))))`` is phase
    ``φ = (i + L) mod s`` of conv output ``r + (i + L) // s`` (``L``: the crop on the left),
    whose tap ``t`` reads input ``r + base_i + t`` with ``base_i = (i + L) // s - c - P``
    (``c``: the conv's padding, ``P``: the pad on the left). The aligned convolution puts
    that weight at offset ``base_i + t`` of phase ``i``.
    """
    n = len(m.stride)
    kernel, stride = _tuple(m.kernel_size, n), m.stride
    _check_size_exact(m, _dilated(kernel, m.dilation), stride, m.padding, m.output_padding)
    plan = m._plan
    if plan.needs_pre_crop:
        raise ValueError(f"{m}: the input is cropped before the convolution; not aligned")
    conv = m.conv
    if conv.groups != 1:
        raise ValueError(f"{m}: grouped sub-pixel convolutions are not aligned")
    taps_m = _tuple(conv.kernel_size, n)
    pads = _tuple(conv.padding, n)
    maps = []  # per axis: (radius, phase source φ(i), tap index per (i, a); taps_m: zero)
    for axis in range(n):
        s, mk, c = stride[axis], taps_m[axis], pads[axis]
        left_pad = plan.pre_pad[2 * (n - 1 - axis)]  # F.pad lists the last axis first
        crop = plan.post_crop[axis][0]
        bases = [(i + crop) // s - c - left_pad for i in range(s)]
        radius = max(max(abs(b), abs(b + mk - 1)) for b in bases)
        taps = torch.full((s, 2 * radius + 1), mk, dtype=torch.long)
        for i, b in enumerate(bases):
            for t in range(mk):
                taps[i, radius + b + t] = t
        maps.append((radius, [(i + crop) % s for i in range(s)], taps))
    c_out, c_in = m.out_channels, conv.in_channels
    w = F.pad(conv.weight.detach(), [0, 1] * n).reshape(
        c_out, *stride, c_in, *(t + 1 for t in taps_m)
    )
    sizes = tuple(2 * r + 1 for r, _, _ in maps)
    out = w.new_zeros(c_out, *stride, c_in, *sizes)
    bias = conv.bias.detach().reshape(c_out, *stride) if conv.bias is not None else None
    new_bias = w.new_zeros(c_out, *stride)
    everything = slice(None)
    for phases in itertools.product(*(range(s) for s in stride)):
        src: tuple[slice | int, ...] = (everything, *(maps[a][1][i] for a, i in enumerate(phases)))
        dst: tuple[slice | int, ...] = (everything, *phases)
        block = w[src]  # (c_out, c_in, *(taps + 1))
        for axis, i in enumerate(phases):
            block = block.index_select(2 + axis, maps[axis][2][i].to(block.device))
        out[dst] = block
        if bias is not None:
            new_bias[dst] = bias[src]
    aligned = _CONVS[n](
        c_in,
        conv.out_channels,
        sizes,  # type: ignore[arg-type]
        padding=tuple(r for r, _, _ in maps),  # type: ignore[arg-type]
        bias=bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        aligned.weight.copy_(out.reshape(aligned.weight.shape))
        if aligned.bias is not None:
            aligned.bias.copy_(new_bias.flatten())
    return aligned.train(m.training)


def _dilated(kernel: Sequence[int], dilation: Sequence[int]) -> tuple[int, ...]:
    return tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))


def transposed_to_phase_conv(
    m: TransposedConv | ConvTransposeAsSubPixel,
) -> nn.Conv1d | nn.Conv2d | nn.Conv3d:
    """One stride-1 convolution whose shuffled output *is* ``m``'s, for size-exact upsamplers.

    Where a transposed convolution's output is exactly ``stride`` times its input
    (``kernel + output_padding - 2·padding == stride`` on every axis, as FSRCNN's and most
    learned upsamplers' are), output pixel ``s·r + φ`` of phase ``φ`` only needs the inputs
    around ``r``. So the transposed convolution equals ``pixel_shuffle(conv(x))`` (PyTorch's
    channel order) with a plain convolution of odd kernel ``2R + 1`` and padding ``R``, no pad
    or crop around it, which is what fast inference paths (and ``subpixel.fast``) want.
    Taps that a phase does not use are zero. Same values as ``m`` to float rounding (tested
    against PyTorch's transposed convolutions); :func:`transposed_to_subpixel` covers every
    other size. ``m`` may also be a :class:`ConvTransposeAsSubPixel` (say, trained in that
    form, so that no transposed convolution is equivalent any more): its convolution's
    phases are then re-aligned, the pad and crop around it folded into the taps.

    Raises:
        TypeError: ``m`` is not a transposed convolution.
        ValueError: the output is not exactly ``stride`` times the input, lazy parameters,
            or a ``padding_mode`` other than zeros.

    Example:
        >>> import torch
        >>> up = torch.nn.ConvTranspose2d(56, 1, kernel_size=9, stride=4, padding=3,
        ...                               output_padding=1)            # FSRCNN ×4
        >>> conv = transposed_to_phase_conv(up)
        >>> conv
        Conv2d(56, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        >>> x = torch.randn(1, 56, 5, 7)
        >>> bool((torch.nn.functional.pixel_shuffle(conv(x), 4) - up(x)).abs().max() < 1e-5)
        True
    """
    if isinstance(m, ConvTransposeAsSubPixel):
        return _aligned_phases(m)
    n = _check_transposed(m)
    stride = _tuple(m.stride, n)
    padding = _tuple(m.padding, n)
    output_padding = _tuple(m.output_padding, n)
    weight = _dilate_kernel(m.weight.detach(), _tuple(m.dilation, n))
    kernel = tuple(weight.shape[2:])
    _check_size_exact(m, kernel, stride, padding, output_padding)
    groups = m.groups
    c_in, c_out_g = weight.shape[:2]
    w = F.pad(weight, [0, 1] * n)  # one zero tap past the end: where a phase takes none
    radii = []
    for axis, (k, s, p) in enumerate(zip(kernel, stride, padding, strict=True)):
        radius, taps = _phase_taps(k, s, p)
        radii.append(radius)
        w = w.index_select(2 + axis, taps.flatten().to(w.device))
    split = [x for s, r in zip(stride, radii, strict=True) for x in (s, 2 * r + 1)]
    w = w.reshape(groups, c_in // groups, c_out_g, *split)
    perm = (0, 2, *(3 + 2 * a for a in range(n)), 1, *(4 + 2 * a for a in range(n)))
    block = math.prod(stride)
    w = w.permute(perm).reshape(
        groups * c_out_g * block, c_in // groups, *(2 * r + 1 for r in radii)
    )
    conv = _CONVS[n](
        m.in_channels,
        m.out_channels * block,
        tuple(2 * r + 1 for r in radii),  # type: ignore[arg-type]
        padding=tuple(radii),  # type: ignore[arg-type]
        groups=groups,
        bias=m.bias is not None,
        device=m.weight.device,
        dtype=m.weight.dtype,
    )
    with torch.no_grad():
        conv.weight.copy_(w)
        if m.bias is not None and conv.bias is not None:
            conv.bias.copy_(m.bias.detach().repeat_interleave(block))
    return conv.train(m.training)


# --- the reverse ------------------------------------------------------------------------------


def _block_constant_bias(bias: torch.Tensor, block: int, why: str) -> torch.Tensor:
    """``(C·block,)`` in PyTorch order -> ``(C,)``, or raise if a block has several values."""
    blocks = bias.detach().view(-1, block)
    if not bool((blocks == blocks[:, :1]).all()):
        raise ValueError(
            f"no transposed convolution is equivalent: {why} bias differs between the "
            "sub-pixels of a block, and a transposed convolution has one bias per channel"
        )
    return blocks[:, 0].clone()


def _build_transposed(
    n: int,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    *,
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    like: nn.Module,
) -> TransposedConv:
    c_in, c_out_g = weight.shape[:2]
    cls: Any = _TRANSPOSED[n]  # the stubs want fixed-length tuples per dimension
    out = cls(
        c_in,
        c_out_g * groups,
        tuple(weight.shape[2:]),
        stride=tuple(stride),
        padding=tuple(padding),
        output_padding=tuple(output_padding),
        groups=groups,
        bias=bias is not None,
        dilation=tuple(dilation),
        device=weight.device,
        dtype=weight.dtype,
    )
    params = dict(like.named_parameters())
    with torch.no_grad():
        out.weight.copy_(weight)
        out.weight.requires_grad_(params["conv.weight"].requires_grad)
        if bias is not None and out.bias is not None:
            out.bias.copy_(bias)
            out.bias.requires_grad_(params["conv.bias"].requires_grad)
    out.train(like.training)
    return out


def _from_converted(m: ConvTransposeAsSubPixel) -> TransposedConv:
    n = len(m.stride)
    block = math.prod(m.stride)
    dense = _conv_to_transposed_weight(m.conv.weight.detach(), m.stride, m.groups)
    k_eff = m._effective_kernel
    extra = tuple(slice(k, None) for k in k_eff)
    for axis, sl in enumerate(extra):
        index = (slice(None), slice(None), *(sl if a == axis else slice(None) for a in range(n)))
        if bool(dense[index].any()):
            raise ValueError(
                f"no transposed convolution with kernel {m.kernel_size} is equivalent: the "
                f"low-resolution kernel's padding taps (beyond {k_eff[axis]} on axis {axis}) "
                "are no longer zero"
            )
    dense = dense[(slice(None), slice(None), *(slice(None, k) for k in k_eff))]
    bias = None
    if m.conv.bias is not None:
        bias = _block_constant_bias(m.conv.bias, block, "the converted module's")
    weight, dilation = dense, (1,) * n
    lattice = (slice(None), slice(None), *(slice(None, None, d) for d in m.dilation))
    if any(d > 1 for d in m.dilation):
        sparse = dense[lattice]
        if torch.equal(_dilate_kernel(sparse, m.dilation), dense):
            weight, dilation = sparse, m.dilation
        elif any(op >= s for op, s in zip(m.output_padding, m.stride, strict=True)):
            raise ValueError(
                f"no transposed convolution is equivalent: the kernel is no longer dilated "
                f"and output_padding {m.output_padding} is not below stride {m.stride}"
            )
    return _build_transposed(
        n,
        weight.clone(),
        bias,
        stride=m.stride,
        padding=m.padding,
        output_padding=m.output_padding,
        dilation=dilation,
        groups=m.groups,
        like=m,
    )


def _symmetric_padding(conv: nn.Conv1d | nn.Conv2d | nn.Conv3d, name: str) -> tuple[int, ...]:
    n = conv.weight.ndim - 2
    kernel = _tuple(conv.kernel_size, n)
    if conv.padding == "valid":
        return (0,) * n
    if conv.padding == "same":
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(
                f"no transposed convolution is equivalent to {name}: padding='same' with the "
                f"even kernel {kernel} pads one more on the right than on the left, and a "
                "transposed convolution's padding is symmetric"
            )
        return tuple((k - 1) // 2 for k in kernel)
    return _tuple(conv.padding, n)


def _from_subpixel_conv(m: _SubPixelConvNd) -> TransposedConv:
    name = type(m).__name__
    conv = m.conv
    n = conv.weight.ndim - 2
    if not isinstance(m.blur, nn.Identity):
        raise ValueError(
            f"no transposed convolution is equivalent to {name} with blur=True: the "
            "replication padding of the blur is not shift-invariant at the borders"
        )
    for attr in ("stride", "dilation"):
        if any(v != 1 for v in _tuple(getattr(conv, attr), n)):
            raise ValueError(
                f"no transposed convolution is equivalent to {name} with conv {attr} "
                f"{getattr(conv, attr)}: only stride 1 and dilation 1 map to one"
            )
    if conv.padding_mode != "zeros":
        raise ValueError(
            f"no transposed convolution is equivalent to {name} with padding_mode "
            f"{conv.padding_mode!r}: transposed convolutions pad with zeros only"
        )
    kernel = _tuple(conv.kernel_size, n)
    pad = _symmetric_padding(conv, name)
    if any(p > k - 1 for p, k in zip(pad, kernel, strict=True)):
        raise ValueError(
            f"no transposed convolution is equivalent to {name}: padding {pad} exceeds "
            f"kernel_size - 1 for kernel {kernel}, which would need a negative padding"
        )
    spec = ShuffleSpec.make(m.factor, m.order)
    torch_order = TORCH_ORDERS[n]
    channels = conv.out_channels // spec.block
    groups = conv.groups
    group_of = torch.arange(conv.out_channels) // (conv.out_channels // groups)
    as_torch = convert_order(group_of, spec.factors, src=spec.order, dst=torch_order)
    wanted = (torch.arange(channels) // max(1, channels // groups)).repeat_interleave(spec.block)
    if channels % groups or not torch.equal(as_torch, wanted):
        raise ValueError(
            f"no transposed convolution is equivalent to {name}: with order {spec.order!r}, "
            f"{channels} output channels and groups {groups} the shuffle mixes convolution "
            "groups inside one output channel"
        )
    v = convert_order(conv.weight.detach(), spec.factors, src=spec.order, dst=torch_order)
    weight = _conv_to_transposed_weight(v, spec.factors, groups)
    bias = None
    if conv.bias is not None:
        b = convert_order(conv.bias.detach(), spec.factors, src=spec.order, dst=torch_order)
        bias = _block_constant_bias(b, spec.block, f"{name}'s")
    padding = tuple((k - 1 - p) * r for k, p, r in zip(kernel, pad, spec.factors, strict=True))
    return _build_transposed(
        n,
        weight.clone(),
        bias,
        stride=spec.factors,
        padding=padding,
        output_padding=(0,) * n,
        dilation=(1,) * n,
        groups=groups,
        like=m,
    )


def subpixel_to_transposed(m: nn.Module) -> TransposedConv:
    """Convert a sub-pixel convolution back to an equivalent ``nn.ConvTranspose{1,2,3}d``.

    Two kinds of module are accepted:

    * a :class:`ConvTransposeAsSubPixel` (from :func:`transposed_to_subpixel`): the original
      layer comes back, as long as training has kept the kernel's zero padding taps at zero
      and the bias equal over each block;
    * a :class:`subpixel.SubPixelConv1d`/``2d``/``3d`` without blur whose convolution has
      stride 1, dilation 1, zero padding ``P ≤ K - 1`` equal on both sides (``"same"`` with an
      odd kernel, ``"valid"`` or ints) and a bias equal over each block (ICNR gives that).
      The result has stride ``r``, kernel ``K·r`` and padding ``(K - 1 - P)·r`` per axis.

    Args:
        m: the module to convert.

    Returns:
        An ``nn.ConvTranspose{1,2,3}d`` computing the same function (to rounding).

    Raises:
        TypeError: ``m`` is neither kind of module.
        ValueError: no transposed convolution computes the same function; the message says
            why (asymmetric or too large padding, blur, stride/dilation, per-sub-pixel bias,
            groups mixed by the shuffle order, nonzero padding taps).

    Example:
        >>> import torch, subpixel
        >>> sp = subpixel.SubPixelConv2d(3, 2, 3, 2)          # ICNR: bias block-constant
        >>> up = subpixel_to_transposed(sp)
        >>> up
        ConvTranspose2d(3, 2, kernel_size=(6, 6), stride=(2, 2), padding=(2, 2))
        >>> x = torch.randn(1, 3, 5, 5)
        >>> bool((up(x) - sp(x)).abs().max() < 1e-5)
        True
    """
    if isinstance(m, ConvTransposeAsSubPixel):
        return _from_converted(m)
    if isinstance(m, _SubPixelConvNd):
        return _from_subpixel_conv(m)
    raise TypeError(
        f"expected a ConvTransposeAsSubPixel or a SubPixelConv1d/2d/3d, got {type(m).__name__}"
    )


# --- whole models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportEntry:
    """One transposed convolution found in a model.

    Attributes:
        path: its dotted name in the model (``""`` for the model itself).
        type: its class name.
        replaced: whether it was swapped for a :class:`ConvTransposeAsSubPixel`.
        reason: why it was left (empty when replaced).
    """

    path: str
    type: str
    replaced: bool
    reason: str = ""


@dataclass(frozen=True)
class ConversionReport:
    """What :func:`replace_transposed_convs` did, one entry per path, in module order."""

    entries: tuple[ReportEntry, ...]

    @property
    def replaced(self) -> list[ReportEntry]:
        """The entries that were swapped."""
        return [e for e in self.entries if e.replaced]

    @property
    def left(self) -> list[ReportEntry]:
        """The entries that were left in place, each with its reason."""
        return [e for e in self.entries if not e.replaced]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ReportEntry]:
        return iter(self.entries)

    def __str__(self) -> str:
        lines = [f"{len(self.replaced)} replaced, {len(self.left)} left"]
        for e in self.entries:
            what = "replaced" if e.replaced else f"left: {e.reason}"
            lines.append(f"  {e.path or '<root>'} ({e.type}): {what}")
        return "\n".join(lines)


def _why_not(m: nn.Module) -> str:
    """Why a transposed convolution must stay, or ``""`` if it can be replaced."""
    if type(m) not in _TRANSPOSED.values():
        if _is_lazy(m):
            return "lazy module with uninitialised parameters (run a forward pass first)"
        if hasattr(m, "parametrizations"):
            return (
                "parametrized (weight_norm/spectral_norm/...): converting would freeze the "
                "parametrization"
            )
        return f"subclass {type(m).__name__} may override forward"
    hooks = (
        m._forward_pre_hooks,
        m._forward_hooks,
        m._backward_hooks,
        getattr(m, "_backward_pre_hooks", {}),
    )
    if any(len(h) for h in hooks):
        return (
            "has forward/backward hooks (e.g. torch.nn.utils.spectral_norm or weight_norm): "
            "converting would drop them"
        )
    if m.padding_mode != "zeros":
        return f"padding_mode {m.padding_mode!r} is not supported"
    return ""


def replace_transposed_convs(
    model: nn.Module, *, inplace: bool = False
) -> tuple[nn.Module, ConversionReport]:
    """Swap every transposed convolution in ``model`` for its exact sub-pixel form.

    Walks all submodules; each ``nn.ConvTranspose{1,2,3}d`` becomes a
    :class:`ConvTransposeAsSubPixel` (a module used at several paths becomes one shared new
    module). Left in place, with the reason in the report: subclasses (they may override
    ``forward``), parametrized modules, modules with hooks (old-style ``spectral_norm``
    and ``weight_norm`` are hooks), and uninitialised lazy modules.

    Args:
        model: any module; it may itself be a transposed convolution.
        inplace: modify ``model`` itself. With ``False`` (default) a deep copy is converted and
            ``model`` is not touched.

    Returns:
        ``(converted model, report)``.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 4, 4, 2, 1), torch.nn.ReLU())
        >>> new, report = replace_transposed_convs(net)
        >>> print(report)
        1 replaced, 0 left
          0 (ConvTranspose2d): replaced
        >>> type(new[0]).__name__, type(net[0]).__name__
        ('ConvTransposeAsSubPixel', 'ConvTranspose2d')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    entries: list[ReportEntry] = []
    done: dict[int, tuple[nn.Module | None, str]] = {}

    def convert(m: nn.Module, path: str) -> nn.Module | None:
        key = id(m)
        if key not in done:
            reason = _why_not(m)
            done[key] = (None if reason else transposed_to_subpixel(m), reason)  # type: ignore[arg-type]
        new, reason = done[key]
        entries.append(ReportEntry(path, type(m).__name__, new is not None, reason))
        return new

    def visit(parent: nn.Module, prefix: str, seen: set[int]) -> None:
        if id(parent) in seen:
            return
        seen.add(id(parent))
        # parent._modules, not named_children(): a module shared by two names is seen twice.
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(child, nn.modules.conv._ConvTransposeNd):
                new = convert(child, path)
                if new is not None:
                    setattr(parent, name, new)
            else:
                visit(child, path, seen)

    if isinstance(model, nn.modules.conv._ConvTransposeNd):
        new = convert(model, "")
        return (model if new is None else new), ConversionReport(tuple(entries))
    visit(model, "", set())
    return model, ConversionReport(tuple(entries))
