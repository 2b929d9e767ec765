"""Fast ESPCN inference: fp32 Winograd and int8 VNNI on CPU, and a fused uint8 RGB pipeline.

:func:`optimize_for_inference` turns an ESPCN-like network (convolutions with tanh or ReLU
between them, then one periodic shuffle) into a callable that computes the same function
faster. On CPU:

``precision="fp32"``
    The image is cut into bands of rows; each band runs the whole network (with the rows
    its receptive field needs above and below) on one thread, the bands on
    ``torch.get_num_threads()`` threads at once, so activations stay in cache and no
    operation waits for the other threads. The 5×5 first layer (one input channel) is an
    im2col matrix product; the 3×3 layers use NNPACK's Winograd F(6×6, 3×3) convolution,
    bundled with PyTorch (oneDNN ``channels_last`` when NNPACK is missing). ``tanh`` is
    computed as ``2·sigmoid(2z) − 1``: the factors are folded into the weights and biases of
    the convolutions around it, the constant into the next bias with an exact correction at
    the image border (where zero padding differs), so only an in-place ``sigmoid`` remains,
    which PyTorch vectorises far better than ``tanh``. Results equal the plain model within
    float32 rounding and Winograd's error (~1e-6).
``precision="int8"``
    The convolutions run as oneDNN u8·s8 convolutions (AVX-512 VNNI where the CPU has it),
    weights symmetric per output channel, the last one with a float32 output. tanh
    activations are quantised with the fixed scale that maps [-1, 1] onto 0..255 (no
    calibration needed; the first layer stays float32 and tanh is applied in float). ReLU
    activations get one 8-bit range per channel, folded into the weights around them
    (cross-layer equalisation), calibrated on built-in synthetic images (patterns and
    photograph-like "dead leaves"); oneDNN then fuses ReLU and requantisation, and the
    first layer runs in int8 as well (on Y rounded to 8 bits) unless that costs the
    calibration output more than :data:`FIRST_LAYER_MIN_PSNR`. Weights are rounded to
    8 bits with GPTQ's error feedback on the calibration inputs' correlations, not to the
    nearest code (:func:`_gptq`). At the scales in :data:`LAST_LAYER_FP32_SCALES` (×2) the
    last convolution of a ReLU network runs with float32 sums on bfloat16 activations and
    weights (compiled kernel ``subpixel._conv3x3`` on CPU, else PyTorch).

:class:`FastUpscaler` is the whole Y-channel pipeline on ``uint8`` RGB images: colour
conversion, the network on Y, bicubic chroma, back to RGB and ``uint8``. On CPU, with the
compiled kernel (``subpixel._pipeline``, see :mod:`subpixel._native`), the colour
conversion is one pass over the input and the chroma's bicubic interpolation (an exact
polyphase filter), the colour matrix, the pixel shuffle, rounding and the interleaving into
``(H, W, 3)`` one pass over the output, row by row in cache (~2 ms per 1080p frame and
thread instead of ~20). Without it, and off CPU, the same steps are two small matrix
products per band of rows, written straight into the output array. Either reproduces the plain
pipeline (:mod:`subpixel.color`, the model clamped to [0, 1], :func:`subpixel.resize.imresize`
or ``F.interpolate`` bicubic chroma, clamp, round half up) within one grey level.

Threads: the fp32 network reads ``torch.get_num_threads()`` at every call and runs its
bands on that many worker threads of one intra-op thread each. NNPACK's own thread pool
(sized by PyTorch at its first use in a process) is created here with one thread, so that
the bands' calls run side by side; results do not depend on the thread count.

Example:
    >>> import numpy as np, torch
    >>> from subpixel.models.espcn import ESPCN
    >>> model = ESPCN(scale=3).eval()
    >>> fast = optimize_for_inference(model)
    >>> y = torch.rand(1, 1, 12, 10)
    >>> bool((fast(y) - model(y)).abs().max() < 1e-4)
    True
    >>> up = FastUpscaler(model)
    >>> up(np.zeros((12, 10, 3), np.uint8)).shape
    (36, 30, 3)
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from subpixel import _native
from subpixel.color import RGB_TO_YCBCR_MATRIX, YCBCR_OFFSET

__all__ = [
    "CHROMA_MODES",
    "COLOR_MODES",
    "FIRST_LAYER_MIN_PSNR",
    "LAST_LAYER_FP32_SCALES",
    "PRECISIONS",
    "FastESPCN",
    "FastUpscaler",
    "fast_upscaler_for",
    "optimize_for_inference",
    "polyphase_taps",
    "tune_malloc",
]

#: Precisions :func:`optimize_for_inference` accepts.
PRECISIONS = ("fp32", "int8")
#: Colour transforms :class:`FastUpscaler` knows by name (as :class:`Pipeline`'s ``color``).
COLOR_MODES = ("bt601-studio", "opencv-ycrcb")
#: Chroma resamplers :class:`FastUpscaler` knows by name (as :class:`Pipeline`'s ``chroma``).
CHROMA_MODES = ("bicubic-matlab", "bicubic-opencv")

# Elements per band of rows: ~5k pixels keep a band's im2col matrix and outputs in L2/L3.
_BAND_PIXELS = 6144


class _PipelineLike(Protocol):
    @property
    def color(self) -> str: ...

    @property
    def chroma(self) -> str: ...


# --------------------------------------------------------------------------------------
# Parsing the network
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    weight: torch.Tensor  # (co, ci, k, k) float64
    bias: torch.Tensor  # (co,) float64

    @property
    def k(self) -> int:
        return int(self.weight.shape[-1])


@dataclass(frozen=True)
class _Net:
    layers: tuple[_Layer, ...]
    activation: str  # between convolutions: "tanh" | "relu"
    out_act: str | None  # after the shuffle: None | "tanh" | "relu" | "sigmoid"
    scale: int
    residual: str | None = None  # None | "bicubic": + F.interpolate(x, bicubic) at the end


_ACT_NAMES: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.ReLU: "relu"}
_OUT_ACT_NAMES: dict[type[nn.Module], str | None] = {
    nn.Identity: None,
    nn.Tanh: "tanh",
    nn.ReLU: "relu",
    nn.Sigmoid: "sigmoid",
}


def _shuffle_permutation(shuffle: nn.Module, scale: int) -> torch.Tensor:
    """``perm[i·s + j]``: which input channel the shuffle puts on output pixel ``(i, j)``."""
    probe = torch.arange(scale * scale, dtype=torch.float32).view(1, -1, 1, 1)
    with torch.no_grad():
        out = shuffle(probe)
    if tuple(out.shape) != (1, 1, scale, scale):
        raise ValueError(f"the shuffle maps a (1, {scale * scale}, 1, 1) probe to {out.shape}")
    perm = out.flatten().round().long()
    if sorted(perm.tolist()) != list(range(scale * scale)):
        raise ValueError("the shuffle is not a channel permutation")
    return perm


def _parse(model: nn.Module) -> _Net:
    """The convolutions, activation and factor of an ESPCN-like ``model``.

    Raises:
        ValueError: if the model is not convolutions with one activation type between
            them (tanh or ReLU), one input channel, and a final shuffle to one channel.
    """
    residual = getattr(model, "residual", None)
    if residual not in (None, "bicubic"):
        raise ValueError(f"{type(model).__name__}: residual={residual!r} is not supported")
    leaves = [m for m in model.modules() if not list(m.children())]
    out_act: str | None = None
    if leaves and type(leaves[-1]) in _OUT_ACT_NAMES:  # an output activation after the shuffle
        out_act = _OUT_ACT_NAMES[type(leaves.pop())]
    if len(leaves) < 3:
        raise ValueError(f"{type(model).__name__} is not an ESPCN-like network")
    *body, shuffle = leaves
    convs = body[0::2]
    acts = body[1::2]
    if len(convs) != len(acts) + 1 or not all(isinstance(c, nn.Conv2d) for c in convs):
        raise ValueError(
            f"{type(model).__name__}: expected conv, activation, ..., conv, shuffle; "
            f"got {[type(m).__name__ for m in leaves]}"
        )
    names = {_ACT_NAMES.get(type(a)) for a in acts}
    if len(names) != 1 or None in names:
        raise ValueError(
            f"{type(model).__name__}: activations {[type(a).__name__ for a in acts]} are not "
            "all tanh or all ReLU"
        )
    activation = names.pop()
    assert activation is not None
    first = convs[0]
    assert isinstance(first, nn.Conv2d)
    if first.in_channels != 1:
        raise ValueError(
            f"{type(model).__name__}: the fast path runs Y-channel models (1 input channel), "
            f"this one takes {first.in_channels}"
        )
    layers = []
    prev = 1
    for conv in convs:
        assert isinstance(conv, nn.Conv2d)
        k = conv.kernel_size
        if (
            k[0] != k[1]
            or k[0] % 2 == 0
            or conv.stride != (1, 1)
            or conv.dilation != (1, 1)
            or conv.groups != 1
            or conv.padding != (k[0] // 2, k[1] // 2)
            or conv.padding_mode != "zeros"
            or conv.in_channels != prev
        ):
            raise ValueError(f"{type(model).__name__}: unsupported convolution {conv}")
        prev = conv.out_channels
        w = conv.weight.detach().to("cpu", torch.float64)
        b = (
            conv.bias.detach().to("cpu", torch.float64)
            if conv.bias is not None
            else torch.zeros(conv.out_channels, dtype=torch.float64)
        )
        layers.append(_Layer(w, b))
    scale = math.isqrt(prev)
    if scale * scale != prev:
        raise ValueError(f"{type(model).__name__}: last convolution has {prev} channels, not s²")
    model_scale = getattr(model, "scale", scale)
    if model_scale != scale:
        raise ValueError(f"{type(model).__name__}: scale {model_scale} but {prev} output channels")
    perm = _shuffle_permutation(shuffle, scale)
    last = layers[-1]
    layers[-1] = _Layer(last.weight[perm], last.bias[perm])
    return _Net(tuple(layers), activation, out_act, scale, residual)


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------


def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Let glibc reuse freed large blocks instead of returning them to the OS at once.

    glibc serves allocations above its mmap threshold (adaptive, at most 32 MiB) with fresh
    ``mmap`` pages, zero-filled by the kernel at first touch: for a 1080p frame's 60 MB
    activations that costs ~20 ms per layer and frame, more than some convolutions. Raising
    the threshold (and the trim threshold) keeps them in the heap. Process-wide; harmless
    elsewhere; does nothing off glibc.

    Returns:
        Whether the setting was applied.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(-3, threshold)) and bool(libc.mallopt(-1, 2 * threshold))
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok


_MALLOC_TUNED = False


def _bands(h: int, w: int) -> list[tuple[int, int]]:
    rows = max(1, min(h, _BAND_PIXELS // max(w, 1)))
    return [(r, min(h, r + rows)) for r in range(0, h, rows)]


def _im2col_band(padded: torch.Tensor, r0: int, r1: int, k: int, w: int, out: torch.Tensor) -> None:
    """Fill ``out`` ``(C·k·k, (r1 - r0)·w)`` with the k×k patches of rows ``r0:r1``.

    ``padded`` is ``(C, h + k - 1, w + k - 1)``, contiguous.
    """
    c, _, wp = padded.shape
    rows = r1 - r0
    src = padded[:, r0:]
    view = src.as_strided((c, k, k, rows, w), (src.stride(0), wp, 1, wp, 1))
    out.view(c, k, k, rows, w).copy_(view)


class _BorderFix:
    """``Σ W`` over the taps that fall outside the image, added on the border only.

    A convolution of ``2u - 1`` with zero padding equals a convolution of ``u`` (weights
    ``2W``, bias ``b - ΣW``) plus, near the border, ``ΣW`` over the taps outside the image.
    """

    def __init__(self, wsum: torch.Tensor) -> None:
        self.wsum = wsum  # (co, k, k) float64, summed over input channels
        self.r = int(wsum.shape[-1]) // 2
        self._cache: dict[tuple[int, int, str, str], list[tuple[slice, slice, torch.Tensor]]] = {}

    def _regions(self, h: int, w: int) -> list[tuple[slice, slice]]:
        r = self.r
        if h <= 2 * r or w <= 2 * r:
            return [(slice(0, h), slice(0, w))]
        return [
            (slice(0, r), slice(0, w)),
            (slice(h - r, h), slice(0, w)),
            (slice(r, h - r), slice(0, r)),
            (slice(r, h - r), slice(w - r, w)),
        ]

    def patches(
        self, h: int, w: int, dtype: torch.dtype, device: torch.device
    ) -> list[tuple[slice, slice, torch.Tensor]]:
        key = (h, w, str(dtype), str(device))
        hit = self._cache.get(key)  # bands on several threads may ask at once
        if hit is None:
            if len(self._cache) > 8:
                self._cache.clear()
            r = self.r
            out = []
            for rs, cs in self._regions(h, w):
                ys = torch.arange(rs.start - r, rs.stop + r)
                xs = torch.arange(cs.start - r, cs.stop + r)
                outside = ((ys < 0) | (ys >= h))[:, None] | ((xs < 0) | (xs >= w))[None, :]
                corr = F.conv2d(outside.double()[None, None], self.wsum[:, None])[0]
                out.append((rs, cs, corr.to(device, dtype)))
            self._cache[key] = hit = out
        return hit

    def apply_rows(self, z: torch.Tensor, row0: int, h: int, w: int) -> None:
        """Add the correction to ``z`` ``(1, co, n, w)``, rows ``row0:row0 + n`` of ``h``."""
        if self.r == 0:
            return
        n = z.shape[2]
        for rs, cs, corr in self.patches(h, w, z.dtype, z.device):
            a, b = max(rs.start, row0), min(rs.stop, row0 + n)
            if a < b:
                z[0, :, a - row0 : b - row0, cs] += corr[:, a - rs.start : b - rs.start]


# --------------------------------------------------------------------------------------
# The fast networks
# --------------------------------------------------------------------------------------


class FastESPCN:
    """An ESPCN-like network prepared for fast inference (see :func:`optimize_for_inference`).

    Calling it maps ``(N, 1, h, w)`` float Y in [0, 1] to ``(N, 1, s·h, s·w)`` as the model
    does (no clamping). :meth:`phases` gives the last layer's output for one image without
    shuffling it, as ``y_alpha · phases + y_beta`` (an affine map folded away by
    :class:`FastUpscaler`).

    Attributes:
        scale: the upscaling factor.
        precision: ``"fp32"`` or ``"int8"``.
        backend: a short description of the kernels used, e.g. ``"cpu-winograd-f4x4"``.
        device: where it runs.
        y_alpha, y_beta: the affine map from :meth:`phases` to the model's output.
    """

    scale: int
    precision: str
    backend: str
    device: torch.device
    y_alpha: float = 1.0
    y_beta: float = 0.0

    residual: str | None = None
    _res_w: tuple[torch.Tensor, torch.Tensor] | None = None
    _raw_ab: tuple[float, float] = (1.0, 0.0)
    _res_in_raw = False  # _raw_phases adds the residual itself

    def _raw_phases(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _setup_residual(self, net: _Net) -> None:
        """For ``residual="bicubic"``: the bicubic phases are added to the output phases."""
        self.residual = net.residual
        if net.residual is None:
            return
        s = net.scale
        self._raw_ab = (self.y_alpha, self.y_beta)  # applied before adding the residual
        self.y_alpha, self.y_beta = 1.0, 0.0
        taps = polyphase_taps(s, -0.75)  # F.interpolate's bicubic, replicated borders
        self._res_w = (
            torch.from_numpy(taps.reshape(s, 1, 1, 5)).float().to(self.device),
            torch.from_numpy(np.tile(taps, (s, 1)).reshape(s * s, 1, 5, 1)).float().to(self.device),
        )

    def phases(self, y: torch.Tensor) -> torch.Tensor:
        """The sub-pixel phases ``(h·w, s²)`` (column ``i·s + j``) of one ``(h, w)`` Y image.

        The result may be a transposed view; it is a new buffer the caller may modify.
        """
        p = self._raw_phases(y)
        if self._res_w is None or self._res_in_raw:
            return p
        h, w = y.shape
        s = self.scale
        a, b = self._raw_ab
        if a != 1.0 or b != 0.0:
            p.mul_(a).add_(b)
        padded = F.pad(y.float()[None, None], (2, 2, 2, 2), mode="replicate")
        wh, wv = self._res_w
        rx = F.conv2d(padded.contiguous(memory_format=torch.channels_last), wh)
        rxy = F.conv2d(rx, wv, groups=s)  # (1, s·s, h, w) channels last, channels (j, i)
        res = rxy.permute(0, 2, 3, 1).reshape(h * w, s, s).transpose(1, 2)
        p.unflatten(1, (s, s)).add_(res)
        return p

    @torch.no_grad()
    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 4 or y.shape[1] != 1:
            raise ValueError(f"expected a (N, 1, H, W) Y tensor, got shape {tuple(y.shape)}")
        n, _, h, w = y.shape
        s = self.scale
        outs = []
        for i in range(n):
            p = self.phases(y[i, 0].to(self.device, torch.float32))
            if self.y_alpha != 1.0 or self.y_beta != 0.0:
                p = p * self.y_alpha + self.y_beta
            img = p.reshape(h, w, s, s).permute(0, 2, 1, 3).reshape(1, 1, h * s, w * s)
            outs.append(img)
        return torch.cat(outs).to(y.dtype)


def _out_gain(out_act: str | None) -> tuple[float, float, float]:
    """``(g, alpha, beta)``: scale the last layer by ``g``; output = alpha·act(·) + beta.

    ``tanh(z) = 2·sigmoid(2z) − 1``: PyTorch's ``sigmoid`` is several times faster.
    """
    return (2.0, 2.0, -1.0) if out_act == "tanh" else (1.0, 1.0, 0.0)


def _apply_out(z: torch.Tensor, out_act: str | None) -> None:
    if out_act in ("tanh", "sigmoid"):
        z.sigmoid_()
    elif out_act == "relu":
        z.relu_()


_NNPACK_OK: bool | None = None


def _nnpack_works() -> bool:
    """Whether NNPACK is built in, initialises and runs here (a tiny trial convolution).

    The trial runs with one intra-op thread: PyTorch sizes NNPACK's thread pool from
    ``torch.get_num_threads()`` at its first use, and a pool of one runs each call on the
    calling thread, so that :func:`_band_map` can run several calls at once.
    """
    global _NNPACK_OK
    if _NNPACK_OK is None:
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            _NNPACK_OK = bool(torch._nnpack_available())  # also initialises NNPACK
            if _NNPACK_OK:
                z = torch.zeros(1, 1, 4, 4)
                torch._nnpack_spatial_convolution(z, torch.zeros(1, 1, 3, 3), None, [1, 1])
        except (RuntimeError, AttributeError):
            _NNPACK_OK = False
        finally:
            torch.set_num_threads(threads)
    return _NNPACK_OK


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools() -> None:
    """In a forked child: the parent's worker threads do not exist there."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _band_pool(threads: int) -> ThreadPoolExecutor:
    """``threads`` worker threads that each run PyTorch ops with one intra-op thread."""
    with _POOLS_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            caller = torch.get_num_threads()
            ready = threading.Barrier(threads + 1)

            def one_thread() -> None:
                torch.set_num_threads(1)  # this thread's OpenMP/MKL setting (thread-local)
                # PyTorch sets a thread's count once more, from a process-wide value, at the
                # thread's first use of its thread pool; get_num_threads() does that now,
                # while the value is 1 (else torch ops here would split over 2+ threads,
                # and elementwise ops give results that depend on the split)
                torch.get_num_threads()
                ready.wait()

            pool = ThreadPoolExecutor(threads, thread_name_prefix="subpixel-band")
            futures = [pool.submit(one_thread) for _ in range(threads)]
            ready.wait()
            for f in futures:
                f.result()
            # torch.set_num_threads also sets the default new threads start with: restore it
            torch.set_num_threads(caller)
            _POOLS[threads] = pool
        return pool


def _band_map(fn: Callable[[int, int], None], bands: list[tuple[int, int]]) -> None:
    """``fn(r0, r1)`` for every band, on ``torch.get_num_threads()`` threads of one each.

    The bands are independent; PyTorch's ops release the GIL, so two bands on two cores
    run truly in parallel, each in its own cache, without the synchronisation of splitting
    every operation over the threads.
    """
    threads = min(torch.get_num_threads(), len(bands))
    if threads <= 1 or threading.current_thread().name.startswith("subpixel-band"):
        for r0, r1 in bands:
            fn(r0, r1)
        return
    for f in [_band_pool(threads).submit(fn, r0, r1) for r0, r1 in bands]:
        f.result()


#: Rows per band of the fp32 network: about this many pixels (measured best on a 2-core
#: AVX-512 CPU for 1080p output: larger bands cost little cache, smaller ones more halo).
_NET_BAND_PIXELS = 40000


def _net_bands(h: int, w: int) -> list[tuple[int, int]]:
    """Row bands for :class:`_CpuFp32`: an even number, at least 4, ~:data:`_NET_BAND_PIXELS`.

    They depend on the image size only, so results do not change with the thread count.
    """
    n = max(4, round(h * w / _NET_BAND_PIXELS))
    n += n % 2
    rows = max(1, -(-h // n))
    return [(r, min(h, r + rows)) for r in range(0, h, rows)]


class _Conv3x3Rows(Protocol):
    """A 3×3 layer on channels-last rows: ``(rows, w, c_in)`` → ``(rows - 2, w, c_out)``."""

    c_out: int

    def __call__(
        self, x: torch.Tensor, out: torch.Tensor, relu: bool, *, accumulate: bool = False
    ) -> bool: ...


class _Direct3x3:
    """The last layer when it has ≤ 4 output channels (×2), computed directly.

    Winograd's products run on vectors of 16 output channels: with 4 of them, three
    quarters of the lanes are padding, and the direct kernel (one block of 4 channels ×
    32 pixels, ``_native.conv3x3_rows``) was measured ~28% faster on a 160×640 band.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight, self.bias = weight.float().contiguous(), bias.float().contiguous()
        self.c_out = int(weight.shape[0])

    @staticmethod
    def suits(weight: torch.Tensor) -> bool:
        return _native.conv3x3_available() and int(weight.shape[0]) <= 4

    def __call__(
        self, x: torch.Tensor, out: torch.Tensor, relu: bool, *, accumulate: bool = False
    ) -> bool:
        if relu:  # only ever the last layer
            return False
        return _native.conv3x3_rows(x, self.weight, self.bias, out, accumulate)


def _native_bands(h: int, w: int) -> list[tuple[int, int]]:
    """Row bands for the compiled path of :class:`_CpuFp32`: ~:data:`_NATIVE_BAND_PIXELS`.

    ``4m + 2`` rows each (the hidden 3×3 layer then computes whole 4-row Winograd tiles),
    at least 14 (on wide images fewer rows cost more in halo rows than they save in cache:
    270×3840 at ×2, 163 ms with 6 rows, 146 ms with 14), at least two bands; they depend
    on the image size only.
    """
    rows = max(14, round(_NATIVE_BAND_PIXELS / max(w, 1) / 4) * 4 + 2)
    rows = min(rows, max(2, (h + 1) // 2))
    return [(r, min(h, r + rows)) for r in range(0, h, rows)]


#: Output pixels per band of the compiled fp32 path: the first layer's output of a band
#: (64 channels) then stays in the L2/L3 cache for the next layer (measured best on a
#: 2-core AVX-512 CPU with 1 MB of L2 per core).
_NATIVE_BAND_PIXELS = 12000


class _CpuFp32(FastESPCN):
    """fp32 on CPU: the whole network band by band (rows, with halos) on all threads.

    With the compiled kernels (:mod:`subpixel._native`: ``conv_first`` and ``winograd``)
    each band runs the first layer directly and the 3×3 layers by Winograd F(4×4, 3×3),
    channels last, ReLU fused. Without them: the im2col first layer, NNPACK Winograd 3×3
    layers (oneDNN when NNPACK is missing) and the output activation. One band per thread,
    the bands in parallel.
    """

    def __init__(self, net: _Net) -> None:
        self.scale = net.scale
        self.precision = "fp32"
        self.device = torch.device("cpu")
        self.act = net.activation
        self.out_act = net.out_act
        tanh = self.act == "tanh"
        g_last, self.y_alpha, self.y_beta = _out_gain(net.out_act)
        first, *rest = net.layers
        # hidden tanh(z) = 2·σ(2z) − 1: scale by 2 and keep σ's argument.
        g = (2.0 if tanh else 1.0) if rest else g_last
        self.k1 = first.k
        self.w1 = (g * first.weight.reshape(first.weight.shape[0], -1)).float().contiguous()
        self.b1 = (g * first.bias)[:, None].float().contiguous()
        self.convs: list[tuple[torch.Tensor, torch.Tensor, int, _BorderFix | None]] = []
        for idx, layer in enumerate(rest):
            last = idx == len(rest) - 1
            g_out = g_last if last else (2.0 if tanh else 1.0)
            wt, b = layer.weight, layer.bias
            fix = None
            if tanh:  # the input is u = σ(·) with a = 2u − 1
                b = b - wt.sum((1, 2, 3))
                fix = _BorderFix(g_out * wt.sum(1))
                wt = 2.0 * wt
            self.convs.append(
                ((g_out * wt).float().contiguous(), (g_out * b).float().contiguous(), layer.k, fix)
            )
        self.single_layer = not rest
        self.c_out = int((self.convs[-1][0] if rest else self.w1).shape[0])
        # rows each layer's input needs above and below its output band
        self.halos = [sum(k // 2 for _, _, k, _ in self.convs[i:]) for i in range(len(rest) + 1)]
        self._setup_residual(net)
        self.winograd = self._compiled_layers()
        self._res_taps: torch.Tensor | None = None
        # NNPACK only without the compiled kernels (its set-up fixes its pool at one thread
        # for the whole process)
        self.nnpack = self.winograd is None and _nnpack_works()
        self.backend = "cpu-nnpack-winograd" if self.nnpack else "cpu-onednn"
        if self.winograd is not None:
            self.backend = "cpu-winograd-f4x4"
            if self.residual == "bicubic" and self._raw_ab == (1.0, 0.0) and not self.out_act:
                # the bicubic phases as one 5×5 filter per phase, run by the first-layer kernel
                # into the output, which the last layer then adds to
                taps = torch.from_numpy(polyphase_taps(self.scale, -0.75))
                k = torch.einsum("ia,jb->ijab", taps, taps).reshape(-1, 5, 5)
                self._res_taps = k.float().contiguous()
                self._res_in_raw = True

    def _compiled_layers(self) -> list[_Conv3x3Rows] | None:
        """The 3×3 layers for the compiled kernels, or None where they do not apply."""
        if not (_native.conv_first_available() and _native.winograd_simd() and self.convs):
            return None
        if self.k1 > 11:
            return None
        if not 1 <= self.w1.shape[0] <= 256:
            return None
        layers: list[_Conv3x3Rows] = []
        for idx, (wt, b, k, _) in enumerate(self.convs):
            conv: _Conv3x3Rows | None = None
            if k == 3 and idx == len(self.convs) - 1 and _Direct3x3.suits(wt):
                conv = _Direct3x3(wt, b)
            elif k == 3:
                conv = _native.Winograd3x3.create(wt, b)
            if conv is None:
                return None
            layers.append(conv)
        return layers

    def _activate(self, z: torch.Tensor) -> None:
        if self.act == "tanh":
            z.sigmoid_()
        else:
            z.relu_()

    def _conv(self, x: torch.Tensor, wt: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
        """``x`` ``(1, C, rows, w)``: rows − k + 1 output rows (zero padding on the sides)."""
        pad = k // 2
        if self.nnpack:
            return torch._nnpack_spatial_convolution(x, wt, b, [0, pad])
        xc = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(xc, wt, b, padding=(0, pad)).contiguous()

    def _band(self, padded: torch.Tensor, out: torch.Tensor, h: int, r0: int, r1: int) -> None:
        """Output rows ``r0:r1`` into ``out`` ``(c, h, w)``; ``padded`` is Y zero-padded."""
        w = out.shape[-1]
        k1 = self.k1
        halo = self.halos[0]
        lo, hi = r0 - halo, r1 + halo  # image rows of the first layer's output
        col = torch.empty(k1 * k1, (hi - lo) * w)
        _im2col_band(padded, r0, r0 + hi - lo, k1, w, col)
        x = torch.addmm(self.b1, self.w1, col).view(1, -1, hi - lo, w)
        if self.single_layer:
            _apply_out(x, self.out_act)
            out[:, r0:r1] = x[0]
            return
        for idx, (wt, b, k, fix) in enumerate(self.convs):
            self._activate(x)
            # rows outside the image are the next layer's zero padding
            if lo < 0:
                x[:, :, :-lo] = 0.0
            if hi > h:
                x[:, :, h - hi :] = 0.0
            x = self._conv(x, wt, b, k)
            lo, hi = lo + k // 2, hi - k // 2
            if fix is not None:
                fix.apply_rows(x, lo, h, w)
            if idx == len(self.convs) - 1:
                _apply_out(x, self.out_act)
        out[:, r0:r1] = x[0]

    def _band_compiled(
        self,
        padded: torch.Tensor,
        replicated: torch.Tensor | None,
        out: torch.Tensor,
        h: int,
        r0: int,
        r1: int,
    ) -> None:
        """:meth:`_band` with the compiled kernels, channels last; ``out`` is ``(h, w, c)``.

        ``replicated``: Y padded by 2 with its edges, for the residual (else None).
        """
        assert self.winograd is not None
        w = out.shape[1]
        relu = self.act == "relu"
        lo, hi = r0 - self.halos[0], r1 + self.halos[0]
        x = torch.empty(hi - lo, w, self.w1.shape[0])
        src = padded[0, r0 : r0 + hi - lo + self.k1 - 1]
        if not _native.conv_first_rows(
            src, self.w1.view(-1, self.k1, self.k1), self.b1[:, 0], x, relu
        ):
            raise RuntimeError("subpixel: the compiled first layer refused its arguments")
        for idx, (conv, (_, _, _, fix)) in enumerate(zip(self.winograd, self.convs, strict=True)):
            if not relu:
                self._activate(x)
            # rows outside the image are the next layer's zero padding
            if lo < 0:
                x[:-lo] = 0.0
            if hi > h:
                x[h - hi :] = 0.0
            last = idx == len(self.convs) - 1
            lo, hi = lo + 1, hi - 1
            z = out[lo:hi] if last else torch.empty(hi - lo, w, conv.c_out)
            residual = last and replicated is not None and self._res_taps is not None
            if residual:
                zeros = torch.zeros(conv.c_out)
                assert replicated is not None and self._res_taps is not None
                _native.conv_first_rows(replicated[r0 : r1 + 4], self._res_taps, zeros, z, False)
            if not conv(x, z, relu=relu and not last, accumulate=residual):
                raise RuntimeError("subpixel: a compiled 3×3 layer refused its arguments")
            if fix is not None:
                fix.apply_rows(z.permute(2, 0, 1)[None], lo, h, w)
            x = z
        _apply_out(x, self.out_act)

    def _raw_phases(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape
        r = self.k1 // 2
        v = r + self.halos[0]
        padded = F.pad(y.float()[None, None], (r, r, v, v))[0].contiguous()
        if self.winograd is not None:
            out = torch.empty(h, w, self.c_out)
            rep = None
            if self._res_in_raw:
                rep = F.pad(y.float()[None, None], (2, 2, 2, 2), mode="replicate")[0, 0]
            compiled = lambda r0, r1: self._band_compiled(padded, rep, out, h, r0, r1)  # noqa: E731
            _band_map(compiled, _native_bands(h, w))
            return out.view(h * w, self.c_out)
        out = torch.empty(self.c_out, h, w)
        bands = _net_bands(h, w)
        _band_map(lambda r0, r1: self._band(padded, out, h, r0, r1), bands)
        return out.view(self.c_out, h * w).t()


def _calibration_images() -> torch.Tensor:
    """Synthetic Y images (edges, lines, checkerboards, noise, waves) in studio range.

    ReLU activations peak at strong edges; these patterns reach at least the maxima that
    natural images (Set5, Set14, BSDS200) reach, within a few percent.
    """
    n = 64
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    g = torch.Generator().manual_seed(0)
    pats = [
        ((xx // 8 + yy // 8) % 2).double(),
        (xx > n // 2).double(),
        (yy > n // 2).double(),
        ((xx + yy) % 2).double(),
        (xx % 2).double(),
        (yy % 2).double(),
        ((xx - yy).abs() < 2).double(),
        torch.rand(n, n, generator=g, dtype=torch.float64),
        torch.sin(xx * 0.3) * torch.sin(yy * 0.2) * 0.5 + 0.5,
    ]
    pats += [1.0 - p for p in pats]
    return torch.stack(pats)[:, None] * (235.0 - 16.0) / 255.0 + 16.0 / 255.0


def _dead_leaves(n: int = 12, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Synthetic photograph-like Y images: the "dead leaves" model, lightly blurred.

    Random grey discs with radii distributed as ``r^-3`` occlude each other, which gives
    the edge statistics and the scale-invariant spectrum of natural images; a binomial
    blur stands in for the camera's optics. Studio range, ``(n, 1, size, size)`` float64.
    """
    g = torch.Generator().manual_seed(seed)
    ax = torch.arange(size, dtype=torch.float64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    rmin, rmax = 1.0, size / 3.0
    imgs = []
    for _ in range(n):
        img = torch.full((size, size), float(torch.rand(1, generator=g)), dtype=torch.float64)
        for u, cx, cy, v in torch.rand(400, 4, generator=g, dtype=torch.float64).tolist():
            r = (rmin**-2 + u * (rmax**-2 - rmin**-2)) ** -0.5
            cx, cy = cx * (size + 2 * r) - r, cy * (size + 2 * r) - r
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = v
        imgs.append(img)
    x = torch.stack(imgs)[:, None]
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16.0
    x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), (k[:, None] * k[None, :])[None, None])
    return x * (235.0 - 16.0) / 255.0 + 16.0 / 255.0


_CALIBRATION: dict[str, torch.Tensor] = {}


def _default_calibration() -> torch.Tensor:
    """The built-in calibration images: synthetic patterns and dead-leaves images.

    They set the 8-bit ranges and the input second moments that guide the weight rounding
    (:func:`_gptq`).
    """
    if "images" not in _CALIBRATION:
        _CALIBRATION["images"] = torch.cat([_calibration_images().double(), _dead_leaves()])
    return _CALIBRATION["images"]


def _relu_ranges(net: _Net, images: torch.Tensor) -> list[torch.Tensor]:
    """Per-channel 8-bit ranges of the hidden ReLU activations over ``images``.

    Each channel gets its own range (cross-layer equalisation: ReLU commutes with a
    positive per-channel scale, which is folded into the producing layer's weights and the
    consuming layer's input weights), so that a channel with small values is not quantised
    with the step of the largest channel. A range is the channel's calibration maximum, at
    least 1/4 and at most 1.05× the layer's largest maximum (rarer peaks of photographs
    clip: on Set5 that costs less than the coarser step of a wider range).
    """
    x = images.float()
    out = []
    for layer in net.layers[:-1]:
        x = F.relu(F.conv2d(x, layer.weight.float(), layer.bias.float(), padding=layer.k // 2))
        m = x.amax((0, 2, 3))
        top = m.max().clamp_min(1e-6)
        out.append(torch.minimum(torch.maximum(m, 0.25 * top), 1.05 * top).double())
    return out


def _input_moments(net: _Net, images: torch.Tensor) -> list[torch.Tensor]:
    """``E[x xᵀ]`` of every layer's input patches (``ci·k·k`` each) over ``images``.

    Patches at every other row and column (a quarter of them) are plenty and 4× cheaper.
    """
    x = images.float()
    out = []
    act = torch.tanh if net.activation == "tanh" else F.relu
    for idx, layer in enumerate(net.layers):
        n = layer.weight[0].numel()
        m = torch.zeros(n, n, dtype=torch.float64)
        count = 0
        for img in x.split(4):
            cols = F.unfold(img, layer.k, padding=layer.k // 2, stride=2)  # (b, n, L)
            cols = cols.transpose(1, 2).reshape(-1, n)
            m += (cols.T @ cols).double()
            count += cols.shape[0]
        out.append(m / max(count, 1))
        if idx < len(net.layers) - 1:
            x = act(F.conv2d(x, layer.weight.float(), layer.bias.float(), padding=layer.k // 2))
    return out


def _gptq(w: torch.Tensor, moments: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """int8 codes of ``w`` ``(co, n)`` (steps ``(co,)``) that keep ``w·x`` close on ``x``.

    Rounding each weight to its nearest code leaves errors that add up over the
    correlated inputs of a patch; here the weights are rounded one input at a time and the
    error is spread onto the not yet rounded ones, weighted by the inverse of the input
    second moments ``E[x xᵀ]`` (optimal brain quantisation as in GPTQ, Frantar et al.
    2022). On Set5 it turns OpenCV's ×2 ESPCN's 0.6 dB loss of an 8-bit first layer into
    0.01 dB.
    """
    w = w.double().clone()
    n = w.shape[1]
    h = moments.double() + 0.01 * float(moments.diagonal().mean().clamp_min(1e-12)) * torch.eye(
        n, dtype=torch.float64
    )
    # the inverse through triangular solves: cholesky_inverse crawls on denormal entries
    li = torch.linalg.solve_triangular(
        torch.linalg.cholesky(h), torch.eye(n, dtype=torch.float64), upper=False
    )
    u = torch.linalg.cholesky(li.T @ li, upper=True)
    st = step.double()[:, None]
    codes = torch.empty_like(w)
    for i in range(n):
        q = torch.round(w[:, i : i + 1] / st).clamp(-127, 127)
        codes[:, i : i + 1] = q
        err = (w[:, i : i + 1] - q * st) / u[i, i]
        w[:, i + 1 :] -= err * u[i : i + 1, i + 1 :]
    return codes


#: Scales at which int8 ReLU networks keep their last convolution in float32 (on the float
#: ReLU outputs of the one before; bfloat16 activations and weights, float32 sums). Set5,
#: bundled and OpenCV weights: the ×2 models lose 0.07-0.08 dB all in 8 bits, 0.023/0.043
#: dB so (0.023/0.037 with float32 activations and weights, ~20% slower);
#: ×3 and ×4 lose at most 0.03 dB all in 8 bits.
LAST_LAYER_FP32_SCALES: tuple[int, ...] = (2,)

#: Least PSNR (dB), on the calibration images, of the network with an 8-bit first layer
#: against float: below it the first layer stays float32. OpenCV's ×2 ESPCN, first-layer
#: weights rounded to nearest: 44 dB here, 0.6 dB lost on Set5; with :func:`_gptq`: 54 dB,
#: 0.02 dB. The other OpenCV and bundled models: 51-65 dB with :func:`_gptq`.
FIRST_LAYER_MIN_PSNR = 48.0


def _first_layer_tolerates_int8(
    net: _Net, w1q: torch.Tensor, images: torch.Tensor | None = None
) -> bool:
    """Whether 8-bit first-layer weights keep the output within :data:`FIRST_LAYER_MIN_PSNR`."""
    x = (_default_calibration() if images is None else images).float()
    outs = []
    for w_first in (net.layers[0].weight, w1q):
        z = x
        for idx, layer in enumerate(net.layers):
            wt = w_first if idx == 0 else layer.weight
            z = F.conv2d(z, wt.float(), layer.bias.float(), padding=layer.k // 2)
            if idx < len(net.layers) - 1:
                z = F.relu(z)
        outs.append(torch.tanh(z) if net.out_act == "tanh" else z)
    mse = float(((outs[0].clamp(0, 1) - outs[1].clamp(0, 1)) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-30)) >= FIRST_LAYER_MIN_PSNR


class _CpuInt8(FastESPCN):
    """int8 on CPU: oneDNN u8s8 convolutions (first and last layer possibly fp32), fp32 out."""

    def __init__(self, net: _Net, calibration: torch.Tensor | None = None) -> None:
        if len(net.layers) < 2:
            raise ValueError("int8 needs at least two convolutions")
        self.scale = net.scale
        self.precision = "int8"
        self.device = torch.device("cpu")
        self.backend = "cpu-onednn-int8"
        self.act = net.activation
        self.out_act = net.out_act
        g_last, self.y_alpha, self.y_beta = _out_gain(net.out_act)
        hidden = len(net.layers) - 1
        widths = [int(layer.weight.shape[0]) for layer in net.layers]
        # For each hidden activation: gain and offset on the producing layer's output (the
        # 8-bit code before rounding), the factor on the consuming layer's input channels,
        # and the (scale, zero point) the consumer reads the codes with.
        gains: list[torch.Tensor]
        in_scale: list[torch.Tensor]
        cal = _default_calibration() if calibration is None else calibration
        moments = _input_moments(net, cal)
        first, *rest = net.layers
        c1 = int(first.weight.shape[0])
        ws1 = first.weight.abs().amax((1, 2, 3)).clamp_min(1e-12) / 127.0
        if self.act == "tanh":
            # tanh's [-1, 1] onto 0..255: a = (q − 127)·2/255 with q = trunc(255·σ(2z)).
            gains = [torch.full((c,), 2.0, dtype=torch.float64) for c in widths[:-1]]
            offsets = [0.0] * hidden
            in_scale = [torch.ones(c, dtype=torch.float64) for c in widths[:-1]]
            self.x_q = [(2.0 / 255.0, 127)] * hidden
        else:
            # ReLU: a_c = q·R_c/255 for the calibrated range R_c, q = round(clamp(255z/R_c)).
            ranges = _relu_ranges(net, cal)
            gains = [255.0 / r for r in ranges]
            wq1 = _gptq(first.weight.reshape(c1, -1), moments[0], ws1).view(first.weight.shape)
            int8_first = _first_layer_tolerates_int8(
                net, wq1 * ws1[:, None, None, None], None if calibration is None else cal
            )
            # oneDNN rounds to nearest itself; the float first layer's codes are truncated
            offsets = [0.0 if int8_first else 0.5] + [0.0] * (hidden - 1)
            in_scale = ranges
            self.x_q = [(1.0 / 255.0, 0)] * hidden
        self.k1 = first.k
        self.first_q: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if self.act == "relu" and offsets[0] == 0.0:
            # ReLU nets: the first layer in int8 too, on Y rounded to 8 bits, ReLU and
            # requantisation fused (oneDNN), so no float activation is ever written.
            r1 = first.k // 2
            packed1 = torch.ops.onednn.qconv_prepack(
                wq1.to(torch.int8),
                (gains[0] * ws1).float(),
                1.0 / 255.0,
                0,
                [1, 1],
                [r1, r1],
                [1, 1],
                1,
                None,
            )
            self.first_q = (packed1, (gains[0] * ws1).float(), (gains[0] * first.bias).float())
        else:
            self.backend = "cpu-onednn-int8, first layer fp32"
        w1 = gains[0][:, None] * first.weight.reshape(first.weight.shape[0], -1)
        self.w1t = w1.t().float().contiguous()  # (k·k, c1): a band's output is channels last
        self.b1 = (gains[0] * first.bias + offsets[0])[None].float().contiguous()
        self.convs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]] = []
        # ReLU nets at ×2: the last layer in float32 on float activations (see
        # LAST_LAYER_FP32_SCALES)
        self.last_fp32: tuple[torch.Tensor, torch.Tensor, int] | None = None
        if self.act == "relu" and net.scale in LAST_LAYER_FP32_SCALES and len(rest) >= 2:
            last_layer = rest.pop()
            # on bfloat16 activations with bfloat16 weights (float32 sums): half the memory
            # traffic and AVX512-BF16 in the compiled kernel; Set5 loss 0.023/0.043 dB
            # (bundled/OpenCV weights) against 0.023/0.037 with float32 throughout
            self.last_fp32 = (
                (g_last * last_layer.weight).bfloat16().float().contiguous(),
                (g_last * last_layer.bias).float(),
                last_layer.k,
            )
            gains[len(rest)] = torch.ones_like(gains[len(rest)])  # float activations out
            self.backend += ", last layer bf16"
        for idx, layer in enumerate(rest):
            last = idx == len(rest) - 1
            co = int(layer.weight.shape[0])
            if last and self.last_fp32 is None:
                g = torch.full((co,), g_last, dtype=torch.float64)
            else:
                g = gains[idx + 1]
            off = 0.0 if last else offsets[idx + 1]
            wt = layer.weight * in_scale[idx][None, :, None, None]
            ws = wt.abs().amax((1, 2, 3)).clamp_min(1e-12) / 127.0
            k = layer.k
            d = in_scale[idx].repeat_interleave(k * k)  # code-domain inputs: x / R
            wq = _gptq(wt.reshape(co, -1), moments[idx + 1] / (d[:, None] * d[None, :]), ws)
            wq = wq.view(wt.shape).to(torch.int8)
            xs, xz = self.x_q[idx]
            packed = torch.ops.onednn.qconv_prepack(
                wq, (g * ws).float(), xs, xz, [1, 1], [k // 2, k // 2], [1, 1], 1, None
            )
            bias = (g * layer.bias + off).float().contiguous()
            self.convs.append((packed, (g * ws).float(), bias, k, co))
        self._setup_residual(net)

    def _quantize(self, z: torch.Tensor, q: torch.Tensor) -> None:
        """Activation and 8-bit code of a band ``z`` ``(n, c)`` (clobbered) into ``q``."""
        if self.act == "tanh":
            z.sigmoid_()
            z.mul_(255.0)
        else:
            z.clamp_(0.0, 255.0)
        q.copy_(z)

    def _first(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape
        k, r = self.k1, self.k1 // 2
        padded = F.pad(y[None, None], (r, r, r, r))[0].contiguous()
        c1 = self.w1t.shape[1]
        q = torch.empty(h * w, c1, dtype=torch.uint8)
        bands = _bands(h, w)
        n0 = (bands[0][1] - bands[0][0]) * w
        col = torch.empty(k * k, n0)
        zb = torch.empty(n0, c1)
        for r0, r1 in bands:
            n = (r1 - r0) * w
            u = col[:, :n]
            _im2col_band(padded, r0, r1, k, w, u)
            z = zb[:n]
            torch.addmm(self.b1, u.t(), self.w1t, out=z)
            self._quantize(z, q[r0 * w : r1 * w])
        return q

    def _qconv(
        self,
        x: torch.Tensor,
        xq: tuple[float, int],
        conv: tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int],
        codes: bool,
        relu: bool | None = None,
        out_dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """oneDNN u8·s8 convolution of channels-last codes ``x``: float, or ReLU'd codes."""
        packed, ws, b, k, co = conv
        relu = codes if relu is None else relu
        return torch.ops.onednn.qconv2d_pointwise(
            x, xq[0], xq[1], packed, ws, torch.zeros(co, dtype=torch.long), b,
            [1, 1], [k // 2, k // 2], [1, 1], 1, 1.0, 0,
            None if codes else out_dtype, "relu" if relu else "none", [], "",
        )  # fmt: skip

    def _raw_phases(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape
        if self.act == "relu":  # codes straight from oneDNN (ReLU and requantisation fused)
            if self.first_q is not None:
                y8 = torch.floor(y.float() * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)
                packed1, ws1, b1 = self.first_q
                x = self._qconv(
                    y8.view(1, 1, h, w),
                    (1.0 / 255.0, 0),
                    (packed1, ws1, b1, self.k1, int(ws1.shape[0])),
                    True,
                )
            else:
                x = self._first(y.float()).view(1, h, w, -1).permute(0, 3, 1, 2)
            for idx, conv in enumerate(self.convs):
                last = idx == len(self.convs) - 1
                lf = last and self.last_fp32 is not None  # bfloat16 activations out
                x = self._qconv(
                    x, self.x_q[idx], conv, not last, not last or lf,
                    torch.bfloat16 if lf else torch.float32,
                )  # fmt: skip
            if self.last_fp32 is not None:  # bfloat16 activations, channels last
                wl, bl, kl = self.last_fp32
                # compiled 3x3 kernel straight into pixel rows (~4x oneDNN's fp32 conv
                # with 4 outputs), else PyTorch in float32 (the same sums)
                zl = _native.conv3x3_pixels(x, wl, bl) if kl == 3 else None
                if zl is not None:
                    _apply_out(zl, self.out_act)
                    return zl
                x = F.conv2d(x.float(), wl, bl, padding=kl // 2)
            z = x.permute(0, 2, 3, 1).reshape(h * w, -1)
            _apply_out(z, self.out_act)
            return z
        q = self._first(y.float())
        wz = torch.zeros(1, dtype=torch.long)
        for idx, (packed, ws, b, k, co) in enumerate(self.convs):
            xs, xz = self.x_q[idx]
            x = q.view(1, h, w, -1).permute(0, 3, 1, 2)  # channels last
            z = torch.ops.onednn.qconv2d_pointwise(
                x, xs, xz, packed, ws, wz.expand(co), b, [1, 1], [k // 2, k // 2], [1, 1], 1,
                1.0, 0, torch.float32, "none", [], "",
            )  # fmt: skip
            z2 = z.permute(0, 2, 3, 1).reshape(h * w, co)  # channels last: a view
            if idx == len(self.convs) - 1:
                _apply_out(z2, self.out_act)
                return z2
            q = torch.empty(h * w, co, dtype=torch.uint8)
            for r0, r1 in _bands(h, w):
                self._quantize(z2[r0 * w : r1 * w], q[r0 * w : r1 * w])
        raise AssertionError("unreachable")


class _Torch(FastESPCN):
    """Any device: the model's own layers in ``channels_last`` (cuDNN on CUDA)."""

    def __init__(self, model: nn.Module, net: _Net, device: torch.device, dtype: torch.dtype):
        self.scale = net.scale
        self.precision = "fp32" if dtype == torch.float32 else str(dtype).replace("torch.", "")
        self.device = device
        self.dtype = dtype
        self.backend = f"{device.type}-torch-channels-last"
        self.model = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
        self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        leaves = [m for m in self.model.modules() if not list(m.children())]
        if type(leaves[-1]) in _OUT_ACT_NAMES:
            leaves.pop()
        self.body = leaves[:-1]
        self.out_act = net.out_act
        self.perm = _shuffle_permutation(leaves[-1], net.scale).to(device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._setup_residual(net)

    def _raw_phases(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape
        x = y.to(self.device, self.dtype)[None, None].contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            for m in self.body:
                x = m(x)
        p = x[0][self.perm].float().reshape(self.scale**2, h * w).t().contiguous()
        if self.out_act == "tanh":
            p.tanh_()
        else:
            _apply_out(p, self.out_act)
        return p


def optimize_for_inference(
    model: nn.Module,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    calibration: torch.Tensor | None = None,
    tune_memory: bool = True,
) -> FastESPCN:
    """Prepare an ESPCN-like ``model`` for fast inference on ``device``.

    The model is read, never modified. The result maps ``(N, 1, h, w)`` float Y in [0, 1]
    to ``(N, 1, s·h, s·w)`` like ``model`` (see the module docstring for the kernels).

    Args:
        model: convolutions (odd square kernels, "same" zero padding, stride 1) with tanh
            or ReLU between them, one input channel, and a final shuffle to one channel:
            :class:`subpixel.models.espcn.ESPCN` with ``channels=1`` and its tanh/ReLU
            variants, in any shuffle order.
        device: ``"cpu"`` (the fast kernels) or another torch device (``"cuda"``: the
            model's layers in ``channels_last`` with cuDNN autotuning).
        precision: ``"fp32"`` or ``"int8"`` (CPU only).
        calibration: for int8 with ReLU activations, ``(N, 1, H, W)`` Y images whose
            activation maxima set the 8-bit ranges (default: built-in synthetic patterns of
            edges, lines and textures). tanh activations need none: their range is fixed.
        tune_memory: on CPU, call :func:`tune_malloc` (process-wide; see there).

    Returns:
        A :class:`FastESPCN`; its ``backend`` names the kernels used.

    Raises:
        ValueError: unknown precision, int8 off CPU, or a model this cannot run.

    Example:
        >>> import torch
        >>> from subpixel.models.espcn import ESPCN
        >>> fast = optimize_for_inference(ESPCN(scale=2), precision="int8")
        >>> fast(torch.rand(1, 1, 8, 8)).shape, fast.backend
        (torch.Size([1, 1, 16, 16]), 'cpu-onednn-int8, first layer fp32')
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dev = torch.device(device)
    net = _parse(model)
    if tune_memory and dev.type == "cpu":
        tune_malloc()
    if dev.type != "cpu":
        if precision == "int8":
            raise ValueError(f"precision='int8' runs on CPU only, not {dev}")
        return _Torch(model, net, dev, torch.float32)
    if precision == "int8":
        return _CpuInt8(net, calibration)
    return _CpuFp32(net)


# --------------------------------------------------------------------------------------
# The fused RGB pipeline
# --------------------------------------------------------------------------------------


def _affine(color: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(S, s0, M, m0)``: ``ycc = S @ rgb + s0`` and ``rgb = M @ ycc + m0`` on [0, 1]."""
    if color == "bt601-studio":
        s = RGB_TO_YCBCR_MATRIX / 255.0
        s0 = YCBCR_OFFSET / 255.0
        m = np.linalg.inv(s)
        return s, s0, m, -m @ s0
    if color == "opencv-ycrcb":
        # OpenCV's COLOR_RGB2YCrCb / COLOR_YCrCb2RGB for float images (chroma order Cr, Cb).
        ky = np.array([0.299, 0.587, 0.114])
        s = np.stack([ky, 0.713 * (np.eye(3)[0] - ky), 0.564 * (np.eye(3)[2] - ky)])
        s0 = np.array([0.0, 0.5, 0.5])
        m = np.array([[1.0, 1.403, 0.0], [1.0, -0.714, -0.344], [1.0, 0.0, 1.773]])
        return s, s0, m, -m @ s0
    raise ValueError(f"unknown color {color!r}; expected one of {COLOR_MODES}")


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
    ax = np.abs(x)
    return np.where(
        ax <= 1,
        (a + 2) * ax**3 - (a + 3) * ax**2 + 1,
        np.where(ax < 2, a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a, 0.0),
    )


def polyphase_taps(scale: int, a: float) -> np.ndarray:
    """Bicubic taps ``(s, 5)``: output phase ``i`` of LR pixel ``x`` reads ``x-2 .. x+2``.

    Output pixel ``s·x + i`` sits at input coordinate ``x + (i + 0.5)/s − 0.5`` (pixel
    centres, as MATLAB's ``imresize`` and ``align_corners=False``); ``a`` is Keys'
    parameter (−0.5 MATLAB, −0.75 OpenCV/PyTorch).

    Example:
        >>> polyphase_taps(2, -0.5).round(5).tolist()[0]
        [-0.02344, 0.22656, 0.86719, -0.07031, 0.0]
    """
    d = (np.arange(scale) + 0.5) / scale - 0.5
    offs = np.arange(-2, 3)
    taps = _cubic(offs[None, :] - d[:, None], a)
    return np.asarray(taps / taps.sum(axis=1, keepdims=True))


def _pad_index(n: int, mode: str) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by 2 on both sides."""
    i = np.arange(-2, n + 2)
    if mode == "replicate":
        return torch.from_numpy(np.clip(i, 0, n - 1))
    j = np.mod(i, 2 * n)  # "symmetric": MATLAB's edge-including mirror
    return torch.from_numpy(np.where(j >= n, 2 * n - 1 - j, j))


class FastUpscaler:
    """The ESPCN Y-channel pipeline on ``uint8`` RGB, fused around a :class:`FastESPCN`.

    ``up(rgb)`` equals: RGB/255 → YCbCr (``color``) → model on Y, clamped to [0, 1] →
    bicubic chroma (``chroma``) → RGB, clamped → ``floor(255·x + 0.5)``, within one level.
    On CPU everything but the network runs in the compiled kernel where it was built
    (:func:`subpixel._native.pipeline_available`), else in PyTorch: same values within
    float32 rounding (a level apart on a few pixels in 10⁵).

    Args:
        model: an ESPCN-like model (see :func:`optimize_for_inference`), or a
            :class:`FastESPCN` already prepared.
        pipeline: an object with ``color`` and ``chroma`` attributes (such as
            :class:`subpixel.upscale.Pipeline`); default: the paper's, BT.601 studio range
            as MATLAB (``"bt601-studio"``) with MATLAB bicubic chroma (``"bicubic-matlab"``).
        device: where to run; ``precision``: ``"fp32"`` or ``"int8"`` (ignored when
            ``model`` is already a :class:`FastESPCN`).

    Raises:
        ValueError: unknown colour or chroma mode, or a model that cannot be fused.

    Example:
        >>> import numpy as np
        >>> from subpixel.models.espcn import ESPCN
        >>> up = FastUpscaler(ESPCN(scale=2), precision="int8")
        >>> up(np.full((4, 6, 3), 128, np.uint8)).shape
        (8, 12, 3)
    """

    def __init__(
        self,
        model: nn.Module | FastESPCN,
        *,
        pipeline: _PipelineLike | None = None,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
    ) -> None:
        self.net = (
            model
            if isinstance(model, FastESPCN)
            else optimize_for_inference(model, device=device, precision=precision)
        )
        color = pipeline.color if pipeline is not None else "bt601-studio"
        chroma = pipeline.chroma if pipeline is not None else "bicubic-matlab"
        if chroma not in CHROMA_MODES:
            raise ValueError(f"unknown chroma {chroma!r}; expected one of {CHROMA_MODES}")
        self.scale = s = self.net.scale
        self.device = self.net.device
        s_mat, s0, m, m0 = _affine(color)
        # pre: [Y, C1, C2] = S @ rgb + s0 (rgb in [0, 1]; S/255 for 8-bit input)
        self.pre_w = torch.from_numpy(s_mat).float().to(self.device)
        self.pre_w8 = torch.from_numpy(s_mat / 255.0).float().to(self.device)
        self.pre_b = torch.from_numpy(s0)[:, None].float().to(self.device)
        # post: columns (i, j, c) of an LR pixel's s×s output block.
        a = -0.5 if chroma == "bicubic-matlab" else -0.75
        self.pad_mode = "symmetric" if chroma == "bicubic-matlab" else "replicate"
        taps = polyphase_taps(s, a)  # (s, 5)
        eye = np.eye(s * s).reshape(s, s, s * s)
        wy = np.einsum("ijp,c->pijc", eye, m[:, 0]).reshape(s * s, 3 * s * s)
        # chroma: separable polyphase bicubic as two grouped convolutions (horizontal taps
        # per plane → phase j, vertical taps per (plane, j) → phase i), channels last, so
        # an LR pixel's 2·s² chroma values (q, j, i) sit together; a 2s²×3s² matrix mixes
        # them into the output colours.
        wh = np.tile(taps, (2, 1)).reshape(2 * s, 1, 1, 5)
        wv = np.tile(taps, (2 * s, 1)).reshape(2 * s * s, 1, 5, 1)
        self.chroma_w = (
            torch.from_numpy(wh).float().to(self.device),
            torch.from_numpy(wv).float().to(self.device),
        )
        eye_s = np.eye(s)
        wc = np.einsum("cq,jb,ia->qjaibc", m[:, 1:], eye_s, eye_s).reshape(2 * s * s, 3 * s * s)
        # the network gives Y = alpha·p + beta: clamp p to the preimage of [0, 1], fold the rest
        alpha, beta = self.net.y_alpha, self.net.y_beta
        self.p_range = (-beta / alpha, (1.0 - beta) / alpha)
        bias = np.tile(m0 + beta * m[:, 0], s * s)

        def post(gain: float, offset: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            return (
                torch.from_numpy(gain * alpha * wy).float().to(self.device),
                torch.from_numpy(gain * wc).float().to(self.device),
                torch.from_numpy(gain * bias + offset)[None].float().to(self.device),
            )

        # 8-bit output: levels, +0.5 so that truncation rounds half up; float: [0, 1]
        self.post8 = post(255.0, 0.5)
        self.post1 = post(1.0, 0.0)
        self._chunk = self.device.type == "cpu"
        # the same numbers for the compiled kernel (subpixel._native): pre rows Y, C1, C2 of
        # [r, g, b, offset]; post rows R, G, B of [kY, kC1, kC2, offset]
        pre = np.concatenate([s_mat, s0[:, None]], axis=1)
        self._pre_coef = {
            255.0: (pre * [1 / 255.0, 1 / 255.0, 1 / 255.0, 1.0]).ravel().tolist(),
            1.0: pre.ravel().tolist(),
        }
        k = np.concatenate([m[:, :1] * alpha, m[:, 1:], (m0 + beta * m[:, 0])[:, None]], axis=1)
        self._post_coef = {
            255.0: (255.0 * k + [0.0, 0.0, 0.0, 0.5]).ravel().tolist(),
            1.0: k.ravel().tolist(),
        }
        self._taps = taps.ravel().tolist()

    def _pad_chroma(self, c: torch.Tensor) -> torch.Tensor:
        """``(2, h, w)`` → ``(2, h + 4, w + 4)`` padded for the 5-tap filter."""
        _, h, w = c.shape
        if self.pad_mode == "replicate":
            return F.pad(c[None], (2, 2, 2, 2), mode="replicate")[0].contiguous()
        ih = _pad_index(h, "symmetric").to(c.device)
        iw = _pad_index(w, "symmetric").to(c.device)
        return c.index_select(1, ih).index_select(2, iw).contiguous()

    @torch.no_grad()
    def upscale_tensor(self, rgb: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``(h, w, 3)`` uint8 tensor → ``(s·h, s·w, 3)`` uint8 tensor (into ``out``)."""
        if rgb.dim() != 3 or rgb.shape[-1] != 3 or rgb.dtype != torch.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 image, got shape {tuple(rgb.shape)} {rgb.dtype}"
            )
        h, w, _ = rgb.shape
        s = self.scale
        if out is None:
            out = torch.empty(h * s, w * s, 3, dtype=torch.uint8, device=self.device)
        elif tuple(out.shape) != (h * s, w * s, 3) or out.dtype != torch.uint8:
            raise ValueError(f"out must be ({h * s}, {w * s}, 3) uint8, got {tuple(out.shape)}")
        if self._native(rgb, out, 255.0):
            return out
        x = rgb.to(self.device).reshape(h * w, 3).float()
        ycc = torch.addmm(self.pre_b, self.pre_w8, x.t())  # (3, h·w)
        self._post(ycc, h, w, out, self.post8, 255.0)
        return out

    def _native(self, src: torch.Tensor, out: torch.Tensor, top: float) -> bool:
        """The whole frame with the compiled kernels (:mod:`subpixel._native`), if present.

        ``src`` is ``(h, w, 3)`` uint8 (``top`` 255: rounded levels out) or ``(3, h, w)``
        float32 (``top`` 1: floats out). False, having done nothing, without the kernels.
        """
        if self.device.type != "cpu" or not _native.pipeline_available():
            return False
        replicate = self.pad_mode == "replicate"
        planes = _native.rgb_to_ycc(src, self._pre_coef[top], replicate)
        if planes is None:
            return False
        y, chroma = planes
        h, w = y.shape
        phases = self.net.phases(y)
        if not _native.ycc_to_rgb(
            phases, chroma, self._taps, self._post_coef[top], self.p_range, replicate, out, top
        ):
            post = self.post8 if top == 255.0 else self.post1
            self._finish(phases, chroma[:, :, 2:-2], h, w, out, post, top)
        return True

    @torch.no_grad()
    def block(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, h, w)`` float RGB in [0, 1] → ``(N, 3, s·h, s·w)`` float in [0, 1].

        Not rounded (the caller quantises); the result is a channels-last tensor.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) RGB, got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        s = self.scale
        out = torch.empty(n, h * s, w * s, 3, device=self.device)
        for i in range(n):
            planes = x[i].to(self.device, torch.float32)
            if self._native(planes, out[i], 1.0):
                continue
            ycc = torch.addmm(self.pre_b, self.pre_w, planes.reshape(3, h * w))
            self._post(ycc, h, w, out[i], self.post1, 1.0)
        return out.permute(0, 3, 1, 2)

    def _post(
        self,
        ycc: torch.Tensor,
        h: int,
        w: int,
        out: torch.Tensor,
        post: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        top: float,
    ) -> None:
        """Network on Y, then chroma, colour, shuffle and interleave into ``out`` (sH, sW, 3)."""
        phases = self.net.phases(ycc[0].view(h, w))  # (h·w, s²)
        self._finish(phases, ycc[1:].view(2, h, w), h, w, out, post, top)

    def _finish(
        self,
        phases: torch.Tensor,
        chroma: torch.Tensor,
        h: int,
        w: int,
        out: torch.Tensor,
        post: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        top: float,
    ) -> None:
        """Chroma ``(2, h, w)``, colour, shuffle and interleave into ``out`` (sH, sW, 3)."""
        s = self.scale
        wy, wc, bias = post
        padded = self._pad_chroma(chroma)[None]
        wh, wv = self.chroma_w
        cx = F.conv2d(padded.contiguous(memory_format=torch.channels_last), wh, groups=2)
        cxy = F.conv2d(cx, wv, groups=2 * s)  # (1, 2s², h, w), channels last
        chroma = cxy.permute(0, 2, 3, 1).reshape(h * w, 2 * s * s)
        bands = _bands(h, w) if self._chunk else [(0, h)]
        n0 = (bands[0][1] - bands[0][0]) * w
        pbuf = torch.empty(n0, 3 * s * s, device=self.device)
        for r0, r1 in bands:
            n = (r1 - r0) * w
            yb = phases[r0 * w : r1 * w].clamp_(*self.p_range)
            p = pbuf[:n]
            torch.addmm(bias, yb, wy, out=p)
            p.addmm_(chroma[r0 * w : r1 * w], wc)
            p.clamp_(0.0, top)
            dst = out[r0 * s : r1 * s].view(r1 - r0, s, w, 3 * s)
            dst.copy_(p.view(r1 - r0, w, s, 3 * s).permute(0, 2, 1, 3))

    def __call__(self, rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(h, w, 3)`` uint8 array → ``(s·h, s·w, 3)`` uint8 array (written into ``out``)."""
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3:
            raise ValueError(
                f"expected an (H, W, 3) uint8 array, got {getattr(rgb, 'shape', type(rgb))}"
            )
        src = torch.from_numpy(np.ascontiguousarray(rgb))
        if self.device.type == "cpu":
            dst = None if out is None else torch.from_numpy(out)
            res = self.upscale_tensor(src, dst)
            return out if out is not None else res.numpy()
        res = self.upscale_tensor(src)
        if out is not None:
            out[...] = res.cpu().numpy()
            return out
        return res.cpu().numpy()


def fast_upscaler_for(
    model: nn.Module,
    pipeline: _PipelineLike | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> FastUpscaler | None:
    """The :class:`FastUpscaler` for ``model``, or ``None`` if it is not ESPCN-like.

    For the upscaling tool: fp32 falls back (``None``) to the plain path, which computes the
    same thing more slowly; ``"int8"`` on a model it cannot run raises instead.

    Raises:
        ValueError: unknown precision, or int8 for a model or device it cannot run.

    Example:
        >>> from subpixel.models.espcn import ESPCN
        >>> fast_upscaler_for(ESPCN(2)).net.backend.startswith("cpu-")
        True
        >>> fast_upscaler_for(ESPCN(2, channels=3)) is None
        True
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    try:
        _parse(model)
    except ValueError as exc:
        if precision == "int8":
            raise ValueError(f"precision='int8' is not available for this model: {exc}") from None
        return None
    return FastUpscaler(model, pipeline=pipeline, device=device, precision=precision)
