"""Optional compiled kernels (``src/subpixel/_csrc``), with a plain-Python answer when absent.

The package is complete without them: every caller has a PyTorch/numpy path that gives the
same values bit for bit. A source install builds them when a C compiler is present
(``setup.py`` marks them optional); :func:`available` says whether they were built.

Example:
    >>> import torch
    >>> from subpixel import _native
    >>> x = torch.arange(6.0).reshape(2, 3)
    >>> out = torch.empty(3, 2)
    >>> _native.copy_into(out, x.t()) or out.copy_(x.t()) is not None
    True
    >>> out.tolist()
    [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

_strided_copy: Any
try:
    from subpixel import _strided_copy  # type: ignore[no-redef]
except ImportError:  # no compiler at install time, or another Python (PYTHONPATH=src)
    _strided_copy = None

__all__ = ["available", "copy_array", "copy_into"]


def available() -> bool:
    """Whether the compiled strided copy was built for this Python."""
    return _strided_copy is not None


def _plain_cpu_tensor(t: torch.Tensor) -> bool:
    """Dense CPU storage whose bytes are its values (no lazy conjugate/negation bits)."""
    return (
        t.device.type == "cpu"
        and t.layout == torch.strided
        and not t.is_quantized
        and not t.is_conj()
        and not t.is_neg()
    )


def _pixels_apart(out: torch.Tensor) -> bool:
    """Whether no two pixels of ``out`` ``(rows, w, c)`` (channels contiguous) overlap.

    Each axis, smaller stride first, must step past everything the axes before it span.
    """
    reach = int(out.shape[2])
    for stride, n in sorted((out.stride(d), out.shape[d]) for d in (0, 1) if out.shape[d] > 1):
        if stride < reach:
            return False
        reach += (n - 1) * stride
    return True


def copy_into(dst: torch.Tensor, src: torch.Tensor) -> bool:
    """Copy ``src`` into ``dst`` (same shape and dtype, CPU) with the compiled kernel.

    Returns False, having done nothing, when the kernel is missing or the tensors are not
    plain CPU tensors of one dtype and shape; the caller then copies another way.
    """
    if (
        _strided_copy is None
        or dst.shape != src.shape
        or dst.dtype != src.dtype
        or not (_plain_cpu_tensor(dst) and _plain_cpu_tensor(src))
    ):
        return False
    size = src.element_size()
    _strided_copy.copy(
        dst.data_ptr(),
        tuple(s * size for s in dst.stride()),
        src.data_ptr(),
        tuple(s * size for s in src.stride()),
        tuple(src.shape),
        size,
        torch.get_num_threads(),
    )
    return True


def copy_array(src: np.ndarray) -> np.ndarray | None:
    """A C-contiguous copy of ``src`` made by the compiled kernel, or None without it.

    Arrays of Python objects (which need reference counting) are left to numpy.
    """
    if _strided_copy is None or src.dtype.hasobject:
        return None
    out = np.empty(src.shape, dtype=src.dtype)
    if out.size:
        _strided_copy.copy(
            out.ctypes.data,
            out.strides,
            src.ctypes.data,
            src.strides,
            src.shape,
            src.itemsize,
            torch.get_num_threads(),
        )
    return out


# -- the fused colour/chroma stages of subpixel.fast.FastUpscaler (_csrc/pipeline.c) ---------

_pipeline: Any
try:
    from subpixel import _pipeline  # type: ignore[no-redef]
except ImportError:
    _pipeline = None

__all__ += ["pipeline_available", "rgb_to_ycc", "ycc_to_rgb"]


def pipeline_available() -> bool:
    """Whether the compiled colour/chroma pipeline was built for this Python."""
    return _pipeline is not None


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
    if _pipeline is None or not _plain_cpu_tensor(src) or src.dim() != 3:
        return None
    if src.dtype == torch.uint8 and src.shape[2] == 3:
        h, w, _ = src.shape
        if src.stride(2) != 1 or src.stride(1) != 3:
            src = src.contiguous()
        row_stride = src.stride(0)
    elif src.dtype == torch.float32 and src.shape[0] == 3:
        _, h, w = src.shape
        src = src.contiguous()
        row_stride = w * 4
    else:
        return None
    if h == 0 or w == 0:
        return None
    y = torch.empty(h, w)
    c = torch.empty(2, h, w + 4)
    _pipeline.pre(
        src.data_ptr(),
        src.dtype == torch.uint8,
        row_stride,
        h,
        w,
        y.data_ptr(),
        c.data_ptr(),
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
    if _pipeline is None or chroma.dim() != 3 or out.dim() != 3 or phases.dim() != 2:
        return False
    _, h, wp = chroma.shape
    w = wp - 4
    n, s2 = phases.shape
    s = math.isqrt(s2)
    if (
        not all(_plain_cpu_tensor(t) for t in (phases, chroma, out))
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
    _pipeline.post(
        phases.data_ptr(),
        phases.stride(0),
        phases.stride(1),
        chroma.data_ptr(),
        h,
        w,
        s,
        taps,
        coef,
        y_range[0],
        y_range[1],
        top,
        replicate,
        out.data_ptr(),
        out.stride(0) * out.element_size(),
        out.dtype == torch.float32,
        torch.get_num_threads(),
    )
    return True


# -- 3x3 convolution with few output channels (_csrc/conv3x3.c) ------------------------------

_conv3x3: Any
try:
    from subpixel import _conv3x3  # type: ignore[no-redef]
except ImportError:
    _conv3x3 = None

__all__ += ["conv3x3_available", "conv3x3_pixels", "conv3x3_rows"]


def conv3x3_available() -> bool:
    """Whether the compiled 3x3 convolution was built for this Python."""
    return _conv3x3 is not None


def conv3x3_pixels(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor | None:
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
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if (
        _conv3x3 is None
        or x.dim() != 3
        or weight.dim() != 4
        or not all(_plain_cpu_tensor(t) for t in (x, weight, bias))
        or x.dtype not in (torch.float32, torch.bfloat16)
        or not weight.dtype == bias.dtype == torch.float32
        or tuple(weight.shape[1:]) != (x.shape[0], 3, 3)
        or tuple(bias.shape) != (weight.shape[0],)
        or not 1 <= weight.shape[0] <= 16
        or not 1 <= x.shape[0] <= 1024
        or x.shape[1] * x.shape[2] == 0
    ):
        return None
    c_in, h, w = x.shape
    c_out = int(weight.shape[0])
    weight = weight.contiguous()
    bias = bias.contiguous()
    out = torch.empty(h * w, c_out)
    cs, rs, ps = x.stride()
    _conv3x3.conv(
        x.data_ptr(),
        x.dtype == torch.bfloat16,
        rs,
        ps,
        cs,
        out.data_ptr(),
        w * c_out,
        c_out,
        1,
        h,
        w,
        c_in,
        c_out,
        weight.data_ptr(),
        bias.data_ptr(),
        torch.get_num_threads(),
    )
    return out


def conv3x3_rows(
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
    ``out`` float32 on the CPU, any strides; with ``accumulate`` the results are added to
    ``out``. Returns False, having written nothing, without the kernel or for other
    arguments.
    """
    if (
        _conv3x3 is None
        or x.dim() != 3
        or out.dim() != 3
        or weight.dim() != 4
        or not all(_plain_cpu_tensor(t) for t in (x, weight, bias, out))
        or not x.dtype == out.dtype == weight.dtype == bias.dtype == torch.float32
    ):
        return False
    rows, w, c_in = (int(s) for s in x.shape)
    c_out = int(weight.shape[0])
    if (
        rows < 3
        or w < 1
        or not 1 <= c_in <= 1024
        or not 1 <= c_out <= 16
        or tuple(weight.shape[1:]) != (c_in, 3, 3)
        or tuple(bias.shape) != (c_out,)
        or tuple(out.shape) != (rows - 2, w, c_out)
    ):
        return False
    weight = weight.contiguous()
    bias = bias.contiguous()
    rs, ps, cs = x.stride()
    _conv3x3.conv(
        x.data_ptr(),
        False,
        rs,
        ps,
        cs,
        out.data_ptr(),
        out.stride(0),
        out.stride(1),
        out.stride(2),
        rows - 2,
        w,
        c_in,
        c_out,
        weight.data_ptr(),
        bias.data_ptr(),
        int(threads),
        True,
        bool(accumulate),
    )
    return True


# -- the first layer of ESPCN: k×k, one channel in, channels-last out (_csrc/conv_first.c) --

_conv_first: Any
try:
    from subpixel import _conv_first  # type: ignore[no-redef]
except ImportError:
    _conv_first = None

__all__ += ["conv_first_available", "conv_first_rows"]


def conv_first_available() -> bool:
    """Whether the compiled one-channel k×k convolution was built for this Python."""
    return _conv_first is not None


def conv_first_rows(
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
    if weight.dim() == 4 and weight.shape[1] == 1:
        weight = weight[:, 0]
    if (
        _conv_first is None
        or padded.dim() != 2
        or weight.dim() != 3
        or out.dim() != 3
        or bias.dim() != 1
        or not all(_plain_cpu_tensor(t) for t in (padded, weight, bias, out))
        or not padded.dtype == weight.dtype == bias.dtype == out.dtype == torch.float32
    ):
        return False
    c_out, k, k2 = (int(s) for s in weight.shape)
    rows, width, c_out2 = (int(s) for s in out.shape)
    if (
        k != k2
        or not 1 <= k <= 11
        or not 1 <= c_out <= 256
        or c_out2 != c_out
        or bias.shape[0] != c_out
        or rows < 1
        or width < 1
        or tuple(padded.shape) != (rows + k - 1, width + k - 1)
        or (padded.stride(1) != 1 and padded.shape[1] > 1)
        or (out.stride(2) != 1 and c_out > 1)
    ):
        return False
    if not _pixels_apart(out):
        return False
    weight = weight.contiguous()
    bias = bias.contiguous()
    _conv_first.conv(
        padded.data_ptr(),
        padded.stride(0),
        out.data_ptr(),
        out.stride(0),
        out.stride(1),
        rows,
        width,
        k,
        c_out,
        weight.data_ptr(),
        bias.data_ptr(),
        bool(relu),
        int(threads),
    )
    return True


# -- 3×3 convolution by Winograd F(4×4, 3×3), channels last (_csrc/winograd.c) --------------

_winograd: Any
try:
    from subpixel import _winograd  # type: ignore[no-redef]
except ImportError:
    _winograd = None

__all__ += ["Winograd3x3", "winograd_available", "winograd_simd"]

#: Winograd's G for F(4, 3) (interpolation points 0, ±1, ±2, ∞): U = G g Gᵀ.
_WINOGRAD_G = (
    (1 / 4, 0.0, 0.0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0.0, 0.0, 1.0),
)


def winograd_available() -> bool:
    """Whether the compiled Winograd 3×3 convolution was built for this Python."""
    return _winograd is not None


def winograd_simd() -> bool:
    """Whether it runs a SIMD copy here (AVX2+FMA or AVX-512; its portable C copy is 4-6×
    slower, behind NNPACK's, e.g. on ARM)."""
    return _winograd is not None and int(_winograd.isa()) >= 1


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

    @classmethod
    def create(cls, weight: torch.Tensor, bias: torch.Tensor) -> Winograd3x3 | None:
        """The transformed weights, or None without the kernel or for other shapes.

        Args:
            weight: ``(c_out, c_in, 3, 3)``, ``c_in`` a multiple of 16 (≤ 4096),
                ``c_out`` ≤ 4096; bias: ``(c_out,)``.
        """
        if _winograd is None or weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
            return None
        c_out, c_in = int(weight.shape[0]), int(weight.shape[1])
        if c_in % 16 or not 16 <= c_in <= 4096 or not 1 <= c_out <= 4096:
            return None
        if tuple(bias.shape) != (c_out,):
            return None
        g = torch.tensor(_WINOGRAD_G, dtype=torch.float64)
        u = torch.einsum("ak,ockl,bl->abco", g, weight.detach().cpu().double(), g)
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
        if (
            x.dim() != 3
            or out.dim() != 3
            or not all(_plain_cpu_tensor(t) for t in (x, out))
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
            or not _pixels_apart(out)
        ):
            return False
        _winograd.conv(
            x.data_ptr(),
            x.stride(0),
            x.stride(1),
            out.data_ptr(),
            out.stride(0),
            out.stride(1),
            rows,
            w,
            c_in,
            self.c_out,
            int(self.u.shape[2]),
            self.u.data_ptr(),
            self.bias.data_ptr(),
            bool(relu),
            bool(accumulate),
            int(threads),
        )
        return True
