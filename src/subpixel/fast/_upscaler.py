"""The fused Y-channel pipeline on ``uint8`` RGB (:class:`FastUpscaler`).

Colour conversion, the network on Y, polyphase bicubic chroma, back to RGB and ``uint8``:
in the compiled kernel (:mod:`subpixel.fast._kernels.pipeline`) where built, else as
matrix products per band of rows.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from subpixel.color import COLOR_TRANSFORMS, color_transform
from subpixel.fast._bands import _bands
from subpixel.fast._kernels import Built
from subpixel.fast._kernels import pipeline as kernel
from subpixel.fast._net import FastESPCN
from subpixel.fast._optimize import optimize_for_inference
from subpixel.fast._polyphase import polyphase_taps

#: Colour transforms :class:`FastUpscaler` knows by name (as :class:`Pipeline`'s ``color``).
COLOR_MODES = COLOR_TRANSFORMS
#: Chroma resamplers :class:`FastUpscaler` knows by name (as :class:`Pipeline`'s ``chroma``).
CHROMA_MODES = ("bicubic-matlab", "bicubic-opencv")


class _PipelineLike(Protocol):
    @property
    def color(self) -> str: ...

    @property
    def chroma(self) -> str: ...


def _affine(color: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(S, s0, M, m0)``: ``ycc = S @ rgb + s0`` and ``rgb = M @ ycc + m0`` on [0, 1]."""
    s, s0, m = color_transform(color)  # ValueError for an unknown color
    return s, s0, m, -m @ s0


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
    On CPU everything but the network runs in the compiled kernel where ``kernels`` says it
    was built (:attr:`compiled`, decided once), else in PyTorch: same values within float32
    rounding (a level apart on a few pixels in 10⁵).

    Args:
        model: an ESPCN-like model (see :func:`optimize_for_inference`), or a
            :class:`FastESPCN` already prepared.
        pipeline: an object with ``color`` and ``chroma`` attributes (such as
            :class:`subpixel.upscale.Pipeline`); default: the paper's, BT.601 studio range
            as MATLAB (``"bt601-studio"``) with MATLAB bicubic chroma (``"bicubic-matlab"``).
        device: where to run; ``precision``: ``"fp32"`` or ``"int8"`` (ignored when
            ``model`` is already a :class:`FastESPCN`).
        kernels: the compiled kernels to use (default: those built here); the network
            built here gets the same.

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
        kernels: Built | None = None,
    ) -> None:
        kernels = Built.detect() if kernels is None else kernels
        self.net = (
            model
            if isinstance(model, FastESPCN)
            else optimize_for_inference(model, device=device, precision=precision, kernels=kernels)
        )
        color = pipeline.color if pipeline is not None else "bt601-studio"
        chroma = pipeline.chroma if pipeline is not None else "bicubic-matlab"
        if chroma not in CHROMA_MODES:
            raise ValueError(f"unknown chroma {chroma!r}; expected one of {CHROMA_MODES}")
        self.scale = s = self.net.scale
        self.device = self.net.device
        #: Whether the colour/chroma stages run in the compiled kernel (CPU, where built).
        self.compiled = self.device.type == "cpu" and kernels.pipeline
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
        # the same numbers for the compiled kernel (_kernels.pipeline): pre rows Y, C1, C2 of
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
        """The whole frame with the compiled kernel (:mod:`~subpixel.fast._kernels.pipeline`).

        ``src`` is ``(h, w, 3)`` uint8 (``top`` 255: rounded levels out) or ``(3, h, w)``
        float32 (``top`` 1: floats out). False, having done nothing, where :attr:`compiled`
        is not set (or the kernel declines the arrays: the PyTorch path then runs).
        """
        if not self.compiled:
            return False
        replicate = self.pad_mode == "replicate"
        planes = kernel.rgb_to_ycc(src, self._pre_coef[top], replicate)
        if planes is None:
            return False
        y, chroma = planes
        h, w = y.shape
        phases = self.net.phases(y)
        if not kernel.ycc_to_rgb(
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
