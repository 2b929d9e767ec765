"""The fused colour/chroma stages of :class:`~subpixel.fast.FastUpscaler` (``_csrc/pipeline.c``).

:func:`rgb_to_ycc` splits an image into Y and padded chroma planes; :func:`ycc_to_rgb`
makes the output from the network's phases and those planes (polyphase bicubic chroma,
colour matrix, clamping, rounding, interleaving), row by row in cache.

Example:
    >>> import torch
    >>> planes = rgb_to_ycc(torch.zeros(4, 5, 3, dtype=torch.uint8), [0.0] * 12, False)
    >>> planes is None or tuple(planes[1].shape) == (2, 4, 9)
    True
"""

from __future__ import annotations

import math
from types import ModuleType

import torch

from subpixel import _compiled

__all__ = ["available", "rgb_to_ycc", "ycc_to_rgb"]


def kernel() -> ModuleType | None:
    """``subpixel._pipeline``, loaded on first use; ``None`` if it was not built."""
    return _compiled.load("pipeline")


def available() -> bool:
    """Whether the compiled colour/chroma pipeline was built for this Python."""
    return kernel() is not None


def rgb_to_ycc(
    src: torch.Tensor, coef: list[float], replicate: bool
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Y and padded chroma planes of an image, or None without the compiled kernel.

    Args:
        src: ``(h, w, 3)`` uint8 or ``(3, h, w)`` float32 RGB, on the CPU.
        coef: 12 numbers, rows Y, C1, C2 of ``[r, g, b, offset]`` (``ycc = S @ rgb + s0``).
        replicate: pad the chroma's columns by replicating the edge (else MATLAB's mirror).

    Returns:
        ``(Y (h, w), C (2, h, w + 4))`` float32, C's rows padded by 2 columns on each side.
    """
    k = kernel()
    if k is None or not _compiled.plain_cpu_tensor(src) or src.dim() != 3:
        return None
    if src.dtype == torch.uint8 and src.shape[2] == 3:
        h, w, _ = src.shape
        if src.stride(2) != 1 or src.stride(1) != 3:
            src = src.contiguous()
    elif src.dtype == torch.float32 and src.shape[0] == 3:
        _, h, w = src.shape
        src = src.contiguous()
    else:
        return None
    if h == 0 or w == 0:
        return None
    y = torch.empty(h, w)
    c = torch.empty(2, h, w + 4)
    k.pre(
        _compiled.buffer(src),
        y.numpy(),
        c.numpy(),
        coef,
        replicate,
        torch.get_num_threads(),
    )
    return y, c


def ycc_to_rgb(
    phases: torch.Tensor,
    chroma: torch.Tensor,
    taps: list[float],
    coef: list[float],
    y_range: tuple[float, float],
    replicate: bool,
    out: torch.Tensor,
    top: float,
) -> bool:
    """Write ``out`` from the network's phases and :func:`rgb_to_ycc`'s chroma, in C.

    Each output value is ``clamp(k·[Y, C1, C2] + k0, 0, top)`` with ``Y`` the phase clamped
    to ``y_range`` and ``C`` the polyphase bicubic chroma (``taps`` ``(s, 5)``, symmetric or
    replicated rows), truncated for uint8 ``out``.

    Args:
        phases: ``(h·w, s²)`` float32 (any strides), column ``i·s + j``.
        chroma: ``(2, h, w + 4)`` float32 from :func:`rgb_to_ycc`.
        taps: ``s·5`` numbers; coef: 12 numbers, rows R, G, B of ``[kY, kC1, kC2, k0]``.
        out: ``(s·h, s·w, 3)`` uint8 or float32, pixels dense (any row stride).

    Returns:
        False, having done nothing, when the kernel is missing or a tensor does not fit.
    """
    k = kernel()
    if k is None or chroma.dim() != 3 or out.dim() != 3 or phases.dim() != 2:
        return False
    _, h, wp = chroma.shape
    w = wp - 4
    n, s2 = phases.shape
    s = math.isqrt(s2)
    if (
        not all(_compiled.plain_cpu_tensor(t) for t in (phases, chroma, out))
        or phases.dtype != torch.float32
        or chroma.dtype != torch.float32
        or out.dtype not in (torch.uint8, torch.float32)
        or not chroma.is_contiguous()
        or chroma.shape[0] != 2
        or s * s != s2
        or not 1 <= s <= 8
        or n != h * w
        or h * w == 0
        or tuple(out.shape) != (s * h, s * w, 3)
        or out.stride(2) != 1
        or out.stride(1) != 3
        or out.stride(0) < 3 * s * w  # rows must not overlap
        or len(taps) != 5 * s
    ):
        return False
    k.post(
        _compiled.buffer(phases),
        _compiled.buffer(chroma),
        taps,
        coef,
        y_range[0],
        y_range[1],
        top,
        replicate,
        _compiled.buffer(out),
        torch.get_num_threads(),
    )
    return True
