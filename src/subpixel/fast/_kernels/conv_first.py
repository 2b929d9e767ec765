"""ESPCN's first layer: a k×k convolution of one channel, channels last (``_csrc/conv_first.c``).

It also writes the bicubic residual of the fp32 network (one 5×5 filter per phase) into
the output that the last layer then adds to.

Example:
    >>> import torch, torch.nn.functional as F
    >>> padded, w, b = torch.randn(8, 9), torch.randn(6, 5, 5), torch.randn(6)
    >>> out = torch.empty(4, 5, 6)
    >>> if rows(padded, w, b, out, relu=False):
    ...     ref = F.conv2d(padded[None, None], w[:, None], b)[0].permute(1, 2, 0)
    ...     assert torch.allclose(out, ref, atol=1e-4)
"""

from __future__ import annotations

from types import ModuleType

import torch

from subpixel import _compiled

__all__ = ["available", "rows"]


def kernel() -> ModuleType | None:
    """``subpixel._conv_first``, loaded on first use; ``None`` if it was not built."""
    return _compiled.load("conv_first")


def available() -> bool:
    """Whether the compiled one-channel k×k convolution was built for this Python."""
    return kernel() is not None


def pixels_apart(out: torch.Tensor) -> bool:
    """Whether no two pixels of ``out`` ``(rows, w, c)`` (channels contiguous) overlap.

    Each axis, smaller stride first, must step past everything the axes before it span.
    """
    reach = int(out.shape[2])
    for stride, n in sorted((out.stride(d), out.shape[d]) for d in (0, 1) if out.shape[d] > 1):
        if stride < reach:
            return False
        reach += (n - 1) * stride
    return True


def rows(
    padded: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    out: torch.Tensor,
    relu: bool,
    threads: int = 1,
) -> bool:
    """Write ``out[y, x, o] = act(bias[o] + Σ_{dy,dx<k} padded[y+dy, x+dx]·weight[o, dy, dx])``.

    The k×k convolution of one already zero-padded channel into ``c_out`` channels, written
    channels last: ``F.conv2d(padded[None, None], weight, bias)[0].permute(1, 2, 0)``
    (``act`` ReLU if ``relu``, else the identity), summed in float32 from the bias, tap by
    tap (fused multiply-adds with AVX2 or AVX-512; products rounded first on SSE2).

    Args:
        padded: ``(rows + k - 1, width + k - 1)`` float32 on the CPU, columns contiguous
            (any row stride): the input plane with its padding.
        weight: ``(c_out, k, k)`` or ``(c_out, 1, k, k)`` float32, ``1 <= k <= 11``,
            ``1 <= c_out <= 256``; bias: ``(c_out,)`` float32.
        out: ``(rows, width, c_out)`` float32, channels contiguous, any row and pixel
            strides that keep the pixels apart (e.g. a slice of a larger tensor). Must not
            overlap the inputs.
        relu: clamp the results at zero (NaN stays NaN).
        threads: threads to share the rows among (fewer for small jobs).

    Returns:
        True when done; False, having written nothing, when the kernel is missing or the
        arguments are not of this form (the caller then uses another path).
    """
    k = kernel()
    if weight.dim() == 4 and weight.shape[1] == 1:
        weight = weight[:, 0]
    if (
        k is None
        or padded.dim() != 2
        or weight.dim() != 3
        or out.dim() != 3
        or bias.dim() != 1
        or not all(_compiled.plain_cpu_tensor(t) for t in (padded, weight, bias, out))
        or not padded.dtype == weight.dtype == bias.dtype == out.dtype == torch.float32
    ):
        return False
    c_out, kh, kw = (int(s) for s in weight.shape)
    n, width, c_out2 = (int(s) for s in out.shape)
    if (
        kh != kw
        or not 1 <= kh <= 11
        or not 1 <= c_out <= 256
        or c_out2 != c_out
        or bias.shape[0] != c_out
        or n < 1
        or width < 1
        or tuple(padded.shape) != (n + kh - 1, width + kh - 1)
        or (padded.stride(1) != 1 and padded.shape[1] > 1)
        or (out.stride(2) != 1 and c_out > 1)
        or not pixels_apart(out)
    ):
        return False
    k.conv(
        _compiled.buffer(padded),
        _compiled.buffer(out),
        _compiled.buffer(weight.contiguous()),
        _compiled.buffer(bias.contiguous()),
        bool(relu),
        int(threads),
    )
    return True
