"""A 3×3 convolution with few output channels, computed directly (``_csrc/conv3x3.c``).

ESPCN's last layer at ×2 (4 output channels), where Winograd's vectors of 16 output
channels would be three quarters padding: :func:`pixels` in the int8 network (bfloat16
activations, float32 sums), :func:`rows` in the fp32 one (channels-last rows with their
halo, accumulating onto the residual).

Example:
    >>> import torch, torch.nn.functional as F
    >>> x, w, b = torch.randn(1, 8, 5, 6), torch.randn(4, 8, 3, 3), torch.randn(4)
    >>> z = pixels(x, w, b)
    >>> ref = F.conv2d(x, w, b, padding=1)[0].permute(1, 2, 0).reshape(30, 4)
    >>> z is None or bool(torch.allclose(z, ref, atol=1e-4))
    True
"""

from __future__ import annotations

from types import ModuleType

import torch

from subpixel import _compiled

__all__ = ["available", "pixels", "rows"]


def kernel() -> ModuleType | None:
    """``subpixel._conv3x3``, loaded on first use; ``None`` if it was not built."""
    return _compiled.load("conv3x3")


def available() -> bool:
    """Whether the compiled 3x3 convolution was built for this Python."""
    return kernel() is not None


def pixels(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor | None:
    """``F.conv2d(x, weight, bias, padding=1)`` as ``(h·w, c_out)`` pixel rows, compiled.

    Args:
        x: ``(1, c_in, h, w)`` (or ``(c_in, h, w)``) float32 or bfloat16 on the CPU, any
            strides (channels last is read fastest). For bfloat16 the weights are rounded
            to bfloat16 too (products exact in float32; AVX512-BF16 where the CPU has it).
        weight: ``(c_out, c_in, 3, 3)`` float32, ``c_out <= 16``; bias: ``(c_out,)`` float32.

    Returns:
        ``(h·w, c_out)`` float32 (row ``y·w + x``), or None without the compiled kernel or
        for arguments it does not take (the caller then uses ``F.conv2d``).
    """
    k = kernel()
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if (
        k is None
        or x.dim() != 3
        or weight.dim() != 4
        or not all(_compiled.plain_cpu_tensor(t) for t in (x, weight, bias))
        or x.dtype not in (torch.float32, torch.bfloat16)
        or not weight.dtype == bias.dtype == torch.float32
        or tuple(weight.shape[1:]) != (x.shape[0], 3, 3)
        or tuple(bias.shape) != (weight.shape[0],)
        or not 1 <= weight.shape[0] <= 16
        or not 1 <= x.shape[0] <= 1024
        or x.shape[1] * x.shape[2] == 0
    ):
        return None
    _, h, w = x.shape
    c_out = int(weight.shape[0])
    out = torch.empty(h * w, c_out)
    k.conv(
        _compiled.buffer(x.permute(1, 2, 0)),  # (h, w, c_in)
        x.dtype == torch.bfloat16,
        out.numpy().reshape(h, w, c_out),
        _compiled.buffer(weight.contiguous()),
        _compiled.buffer(bias.contiguous()),
        torch.get_num_threads(),
    )
    return out


def rows(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    out: torch.Tensor,
    accumulate: bool = False,
    threads: int = 1,
) -> bool:
    """The 3×3 convolution of rows ``x`` ``(rows, w, c_in)`` into ``out`` ``(rows - 2, w, c_out)``.

    Rows "valid" (the input carries the rows above and below), one zero column left and
    right: ``F.conv2d(x, weight, bias, padding=(0, 1))`` channels last, computed directly
    (for the few output channels where Winograd's tiles waste most lanes). ``x`` and
    ``out`` float32 on the CPU, any strides (``out``'s elements apart); with
    ``accumulate`` the results are added to ``out``. Returns False, having written
    nothing, without the kernel or for other arguments.
    """
    k = kernel()
    if (
        k is None
        or x.dim() != 3
        or out.dim() != 3
        or weight.dim() != 4
        or not all(_compiled.plain_cpu_tensor(t) for t in (x, weight, bias, out))
        or not x.dtype == out.dtype == weight.dtype == bias.dtype == torch.float32
    ):
        return False
    n, w, c_in = (int(s) for s in x.shape)
    c_out = int(weight.shape[0])
    if (
        n < 3
        or w < 1
        or not 1 <= c_in <= 1024
        or not 1 <= c_out <= 16
        or tuple(weight.shape[1:]) != (c_in, 3, 3)
        or tuple(bias.shape) != (c_out,)
        or tuple(out.shape) != (n - 2, w, c_out)
    ):
        return False
    k.conv(
        _compiled.buffer(x),
        False,
        _compiled.buffer(out),
        _compiled.buffer(weight.contiguous()),
        _compiled.buffer(bias.contiguous()),
        int(threads),
        valid=True,
        accumulate=bool(accumulate),
    )
    return True
