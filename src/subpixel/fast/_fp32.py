"""The fp32 network on CPU (:class:`_CpuFp32`), band by band on all threads.

Compiled kernels (first layer, Winograd F(4×4, 3×3), a direct 3×3 last layer) where
:mod:`subpixel.fast._kernels` has them, else im2col and NNPACK/oneDNN; tanh folded into
``sigmoid`` with an exact border correction (:class:`_BorderFix`).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from subpixel.fast._bands import _band_map, _im2col_band
from subpixel.fast._kernels import Built, conv3x3, conv_first, winograd
from subpixel.fast._net import FastESPCN, _apply_out, _Net, _out_gain
from subpixel.fast._polyphase import polyphase_taps
from subpixel.fast._process import nnpack_enabled


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
    32 pixels, :func:`~subpixel.fast._kernels.conv3x3.rows`) was measured ~28% faster on a
    160×640 band.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight, self.bias = weight.float().contiguous(), bias.float().contiguous()
        self.c_out = int(weight.shape[0])

    @staticmethod
    def suits(weight: torch.Tensor) -> bool:
        return int(weight.shape[0]) <= 4

    def __call__(
        self, x: torch.Tensor, out: torch.Tensor, relu: bool, *, accumulate: bool = False
    ) -> bool:
        if relu:  # only ever the last layer
            return False
        return conv3x3.rows(x, self.weight, self.bias, out, accumulate)


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

    With the compiled kernels (:mod:`subpixel.fast._kernels`: ``conv_first``, ``winograd``;
    used exactly when ``kernels`` says they run here, for every model whose layers they
    take: first layer k ≤ 11 with ≤ 256 channels, 3×3 layers) each band runs the first
    layer directly and the 3×3 layers by Winograd F(4×4, 3×3), channels last, ReLU fused.
    Without them: the im2col first layer, NNPACK Winograd 3×3 layers (oneDNN when NNPACK is
    missing) and the output activation. One band per thread, the bands in parallel.
    """

    def __init__(self, net: _Net, kernels: Built) -> None:
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
        # the same as (c, k, k) weights and a bias vector, for the compiled first layer
        self.w1_kk, self.b1_vec = self.w1.view(-1, self.k1, self.k1), self.b1[:, 0]
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
        self.winograd = self._compiled_layers(kernels)
        self._res_filter: tuple[torch.Tensor, torch.Tensor] | None = None  # taps, zero bias
        # NNPACK only without the compiled kernels, and only where the process opted in
        # (tune_process: its set-up fixes its pool at one thread for the whole process)
        self.nnpack = self.winograd is None and nnpack_enabled()
        self.backend = "cpu-nnpack-winograd" if self.nnpack else "cpu-onednn"
        if self.winograd is not None:
            self.backend = "cpu-winograd-f4x4"
            if self.residual == "bicubic" and self._raw_ab == (1.0, 0.0) and not self.out_act:
                # the bicubic phases as one 5×5 filter per phase, run by the first-layer kernel
                # into the output, which the last layer then adds to
                taps = torch.from_numpy(polyphase_taps(self.scale, -0.75))
                k = torch.einsum("ia,jb->ijab", taps, taps).reshape(-1, 5, 5)
                self._res_filter = (k.float().contiguous(), torch.zeros(k.shape[0]))
                self._res_in_raw = True

    def _compiled_layers(self, kernels: Built) -> list[_Conv3x3Rows] | None:
        """The 3×3 layers for the compiled kernels, or None where they do not apply."""
        if kernels.fp32_declines() is not None or not self.convs:
            return None
        if self.k1 > 11:
            return None
        if not 1 <= self.w1.shape[0] <= 256:
            return None
        layers: list[_Conv3x3Rows] = []
        for idx, (wt, b, k, _) in enumerate(self.convs):
            conv: _Conv3x3Rows | None = None
            if k == 3 and idx == len(self.convs) - 1 and kernels.conv3x3 and _Direct3x3.suits(wt):
                conv = _Direct3x3(wt, b)
            elif k == 3:
                conv = winograd.Winograd3x3.create(wt, b)
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
        if not conv_first.rows(src, self.w1_kk, self.b1_vec, x, relu):
            raise RuntimeError("subpixel: the compiled first layer refused its arguments")
        residual = replicated is not None and self._res_filter is not None
        if replicated is not None and self._res_filter is not None:
            # the bicubic phases first, by the same kernel: the last layer adds onto them
            taps, zeros = self._res_filter
            rows = replicated[r0 : r1 + 4]
            if not conv_first.rows(rows, taps, zeros, out[r0:r1], False):
                raise RuntimeError("subpixel: the compiled residual refused its arguments")
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
            if not conv(x, z, relu=relu and not last, accumulate=last and residual):
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
