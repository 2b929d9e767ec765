"""3×3 convolutions by Winograd F(4×4, 3×3), channels last (``_csrc/winograd.c``).

The hidden and last layers of the fp32 network (:class:`Winograd3x3`); :func:`simd` says
whether the SIMD copy runs here (the network uses the compiled path only then).
"""

from __future__ import annotations

import math
from types import ModuleType

import torch

from subpixel import _compiled
from subpixel.fast._kernels.conv_first import pixels_apart

__all__ = ["Winograd3x3", "available", "simd"]

#: Winograd's G for F(4, 3) (interpolation points 0, ±1, ±2, ∞): U = G g Gᵀ.
_WINOGRAD_G = (
    (1 / 4, 0.0, 0.0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0.0, 0.0, 1.0),
)


def kernel() -> ModuleType | None:
    """``subpixel._winograd``, loaded on first use; ``None`` if it was not built."""
    return _compiled.load("winograd")


def available() -> bool:
    """Whether the compiled Winograd 3×3 convolution was built for this Python."""
    return kernel() is not None


def simd() -> bool:
    """Whether it runs a SIMD copy here (AVX2+FMA or AVX-512; its portable C copy is 4-6×
    slower, behind NNPACK's, e.g. on ARM)."""
    k = kernel()
    return k is not None and int(k.isa()) >= 1


def _aligned_zeros(*shape: int) -> torch.Tensor:
    """float32 zeros whose first element is 64-byte aligned (the kernel loads whole vectors)."""
    n = math.prod(shape)
    buf = torch.zeros(n + 16)
    skip = (-buf.data_ptr() // 4) % 16
    return buf[skip : skip + n].view(shape)


class Winograd3x3:
    """A 3×3 convolution (stride 1, one column of zeros left and right), channels last.

    ``conv(x, out, relu)`` writes ``out[y, x, o] = act(b[o] + Σ in[y+dy, x+dx-1, c] W[o, c,
    dy, dx])`` for the ``rows - 2`` output rows that have all three input rows, i.e.
    ``F.conv2d(x, W, b, padding=(0, 1))`` in channels-last layout, by Winograd's F(4×4, 3×3)
    (2.25 multiply-adds per output and weight instead of 9). The weights are transformed
    once, in float64.

    Example:
        >>> import torch, torch.nn.functional as F
        >>> w, b = torch.randn(8, 16, 3, 3), torch.randn(8)
        >>> conv = Winograd3x3.create(w, b)
        >>> x = torch.randn(10, 7, 16)
        >>> out = torch.empty(8, 7, 8)
        >>> if conv is not None and conv(x, out, relu=False):
        ...     ref = F.conv2d(x.permute(2, 0, 1)[None], w, b, padding=(0, 1))[0]
        ...     assert torch.allclose(out, ref.permute(1, 2, 0), atol=1e-4)
    """

    def __init__(self, u: torch.Tensor, bias: torch.Tensor, c_in: int, c_out: int) -> None:
        self.u, self.bias, self.c_in, self.c_out = u, bias, c_in, c_out
        self._u, self._bias = u.numpy(), bias.numpy()  # the kernel's views, made once

    @classmethod
    def create(cls, weight: torch.Tensor, bias: torch.Tensor) -> Winograd3x3 | None:
        """The transformed weights, or None without the kernel or for other shapes.

        Args:
            weight: ``(c_out, c_in, 3, 3)``, ``c_in`` a multiple of 16 (≤ 4096),
                ``c_out`` ≤ 4096; bias: ``(c_out,)``.
        """
        if kernel() is None or weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
            return None
        c_out, c_in = int(weight.shape[0]), int(weight.shape[1])
        if c_in % 16 or not 16 <= c_in <= 4096 or not 1 <= c_out <= 4096:
            return None
        if tuple(bias.shape) != (c_out,):
            return None
        g = torch.tensor(_WINOGRAD_G, dtype=torch.float64)
        u = (g @ weight.detach().cpu().double() @ g.t()).permute(2, 3, 1, 0)  # G·w·Gᵀ: (a, b, c, o)
        c_pad = -(-c_out // 16) * 16
        u_pad = _aligned_zeros(36, c_in, c_pad)
        u_pad[:, :, :c_out] = u.reshape(36, c_in, c_out)
        b_pad = _aligned_zeros(c_pad)
        b_pad[:c_out] = bias.detach().cpu().double()
        return cls(u_pad, b_pad, c_in, c_out)

    def __call__(
        self,
        x: torch.Tensor,
        out: torch.Tensor,
        relu: bool,
        threads: int = 1,
        accumulate: bool = False,
    ) -> bool:
        """Convolve ``x`` ``(rows, w, c_in)`` into ``out`` ``(rows - 2, w, c_out)``.

        Both float32 on the CPU with channels contiguous (any row and pixel strides; ``out``
        must not overlap ``x``). With ``accumulate`` the result is added to ``out``'s
        values (before the ReLU). Returns False, having written nothing, for other
        arguments.
        """
        k = kernel()
        if (
            k is None
            or x.dim() != 3
            or out.dim() != 3
            or not all(_compiled.plain_cpu_tensor(t) for t in (x, out))
            or not x.dtype == out.dtype == torch.float32
        ):
            return False
        rows, w, c_in = (int(s) for s in x.shape)
        if (
            c_in != self.c_in
            or rows < 3
            or w < 1
            or tuple(out.shape) != (rows - 2, w, self.c_out)
            or x.stride(2) != 1
            or (out.stride(2) != 1 and self.c_out > 1)
            or not pixels_apart(out)
        ):
            return False
        k.conv(
            _compiled.buffer(x),
            _compiled.buffer(out),
            self._u,
            self._bias,
            bool(relu),
            bool(accumulate),
            int(threads),
        )
        return True
