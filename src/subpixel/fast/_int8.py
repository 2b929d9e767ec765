"""The int8 network on CPU (:class:`_CpuInt8`): oneDNN u8·s8 convolutions.

Weights rounded by GPTQ (:func:`_gptq`); the first layer in 8 bits only where it keeps
:data:`FIRST_LAYER_MIN_PSNR`; at :data:`LAST_LAYER_FP32_SCALES` the last layer in float32
sums on bfloat16.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from subpixel._cpu import CpuCaps
from subpixel.fast._bands import _bands, _im2col_band
from subpixel.fast._calibration import _default_calibration, _input_moments, _relu_ranges
from subpixel.fast._kernels import Built, conv3x3
from subpixel.fast._net import FastESPCN, _apply_out, _Net, _out_gain


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

    def __init__(self, net: _Net, calibration: torch.Tensor | None, kernels: Built) -> None:
        if len(net.layers) < 2:
            raise ValueError("int8 needs at least two convolutions")
        self.scale = net.scale
        self.precision = "int8"
        self.device = torch.device("cpu")
        self.backend = "cpu-onednn-int8"
        self.bf16_hardware = CpuCaps.detect().bf16
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
        # that layer by the compiled direct kernel where it runs (decided here, once)
        self.last_compiled = kernels.conv3x3
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
        # without BF16 hardware oneDNN's bfloat16 output runs a reference kernel (~100×
        # slower at ×2 on an AVX2 EPYC): float32 out, then the same rounding to bfloat16
        emulate = out_dtype == torch.bfloat16 and not self.bf16_hardware
        z = torch.ops.onednn.qconv2d_pointwise(
            x, xq[0], xq[1], packed, ws, torch.zeros(co, dtype=torch.long), b,
            [1, 1], [k // 2, k // 2], [1, 1], 1, 1.0, 0,
            None if codes else (torch.float32 if emulate else out_dtype),
            "relu" if relu else "none", [], "",
        )  # fmt: skip
        return z.to(torch.bfloat16) if emulate else z

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
                zl = conv3x3.pixels(x, wl, bl) if kl == 3 and self.last_compiled else None
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
