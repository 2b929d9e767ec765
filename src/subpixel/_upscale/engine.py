"""The per-block super-resolution step: colour split, model on Y, bicubic chroma and alpha.

:class:`Engine` wraps a model with its factor, :class:`~subpixel._upscale.pipeline.Pipeline`,
device and tile settings, and turns ``(N, H, W, C)`` arrays (C = 1 grey, 2 grey+alpha,
3 RGB, 4 RGBA) into their upscaled versions tile by tile. 8-bit RGB (and RGBA's colours)
with an ESPCN-like model take the fused uint8 path of :class:`~subpixel.fast.FastUpscaler`
(levels in, rounded levels out, no float copy of the image); everything else goes through
float blocks in [0, 1].

Example:
    >>> import numpy as np
    >>> from subpixel.models import get_model
    >>> eng = Engine(get_model("espcn", scale=2))
    >>> eng.run(np.zeros((1, 5, 7, 3), np.uint8)).shape
    (1, 10, 14, 3)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from subpixel._upscale.pipeline import Pipeline, opencv_levels
from subpixel._upscale.tiling import (
    MIN_OVERLAP,
    from_unit,
    iter_image_strips,
    iter_strips,
    receptive_radius,
    to_unit,
)
from subpixel.backends import Built, Choice, CpuCaps, Request, choose
from subpixel.fast import FastUpscaler, OpenCVUpscaler

__all__ = ["DEFAULT_TILE", "Engine"]

#: Default tile size in input pixels: ~70 MB of activations per ESPCN tile.
DEFAULT_TILE = 512

_LUMA = (0.299, 0.587, 0.114)


def _first_conv(model: nn.Module) -> nn.modules.conv._ConvNd | None:
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return m
    return None


def _infer_scale(model: nn.Module, channels: int, device: torch.device) -> int:
    scale = getattr(model, "scale", None)
    if isinstance(scale, int) and scale >= 1:
        return scale
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        out = model(torch.zeros(1, channels, 8, 8, device=device, dtype=dtype))
    if out.dim() != 4 or out.shape[-1] % 8 or out.shape[-1] != out.shape[-2]:
        raise ValueError(
            f"cannot tell the model's upscaling factor: an 8×8 input gave shape {tuple(out.shape)}"
        )
    return int(out.shape[-1]) // 8


class Engine:
    """A model ready to upscale arrays, tile by tile.

    Args:
        model: a super-resolution ``nn.Module`` taking ``(N, C, H, W)`` in [0, 1] with
            C = 1 (Y channel, like ESPCN) or 3 (RGB).
        pipeline: colour/chroma processing (default: the paper's).
        device: where the model runs (default: where its parameters are).
        tile: tile size in input pixels; ``0`` processes whole images.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"int8"``; with ``caps`` (the
            CPU's capabilities, default detected), what :func:`subpixel.backends.choose`
            picks the backend from (:attr:`backend`): ESPCN-like Y models run through
            :mod:`subpixel.fast` (same result, faster; bf16 and int8 approximate).
        kernels: the compiled kernels to use (default: those built here, :class:`Built`);
            the backend's network and the colour path use exactly these.

    Raises:
        ValueError: if the model's channels or factor cannot be used.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        pipeline: Pipeline | None = None,
        device: torch.device | str | None = None,
        tile: int = DEFAULT_TILE,
        precision: str = "auto",
        caps: CpuCaps | None = None,
        kernels: Built | None = None,
    ) -> None:
        if tile < 0:
            raise ValueError(f"tile must be >= 0 (0: no tiling), got {tile}")
        params = list(model.parameters())
        if not params:
            raise ValueError("the model has no parameters")
        self.device = torch.device(device) if device is not None else params[0].device
        self.model = model.to(self.device).eval()
        self.dtype = params[0].dtype
        conv = _first_conv(model)
        channels = int(getattr(model, "channels", conv.in_channels if conv is not None else 1))
        if channels not in (1, 3):
            raise ValueError(f"models with {channels} input channels are not supported (1 or 3)")
        self.channels = channels
        self.scale = _infer_scale(self.model, channels, self.device)
        self.pipeline = pipeline or Pipeline()
        self.tile = tile
        self.overlap = max(receptive_radius(model), MIN_OVERLAP)
        request = Request(
            self.model,
            self.pipeline,
            self.device,
            precision,
            caps or CpuCaps.detect(),
            kernels or Built.detect(),
        )
        #: The backend running the network, and why the faster ones declined (one decision).
        self.backend: Choice = choose(request)
        net, fused = self.backend.net, self.backend.fused is None
        self._fast_rgb = fused and not self.pipeline.opencv_exact
        # the fused RGB path around the network; outside it, only its network is used
        self.fast = (
            None
            if net is None
            else FastUpscaler(
                net,
                pipeline=self.pipeline if self._fast_rgb else None,
                kernels=self.backend.built,
            )
        )
        # OpenCV's exact uint8 steps, fused around the network (imported OpenCV models)
        self._fast_opencv = (
            OpenCVUpscaler(net) if net is not None and fused and not self._fast_rgb else None
        )

    def _model(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast is not None:
            return self.fast.net(x).clamp(0, 1)
        out: torch.Tensor = self.model(x.to(self.dtype))
        return out.float().clamp(0, 1)

    def _color(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale grey ``(N, 1, h, w)`` or RGB ``(N, 3, h, w)`` with the model."""
        p, s = self.pipeline, self.scale
        if self.channels == 3:
            if x.shape[1] == 3:
                return self._model(x)
            luma = torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)
            return (self._model(x.expand(-1, 3, -1, -1)) * luma).sum(dim=1, keepdim=True)
        if x.shape[1] == 1:
            return self._model(x)
        if self._fast_rgb:
            assert self.fast is not None
            return self.fast.block(x)
        y, chroma = p.split(x)
        return p.merge(self._model(y), p.resample(chroma, s)).clamp(0, 1)

    @torch.no_grad()
    def block(self, x: torch.Tensor) -> torch.Tensor:
        """Upscale one block ``(N, C, h, w)`` float32 in [0, 1]; C in 1..4 (alpha last)."""
        c = x.shape[1]
        if c in (1, 3):
            return self._color(x)
        k = 1 if c == 2 else 3
        alpha = self.pipeline.resample(x[:, k:], self.scale).clamp(0, 1)
        return torch.cat([self._color(x[:, :k]), alpha], dim=1)

    @torch.no_grad()
    def block_levels(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`block` for 8-bit input through :func:`~.pipeline.opencv_levels`.

        ``x`` holds ``level / 255``; the result holds the output levels ``/ 255``, which
        :func:`~.tiling.from_unit` turns back into the same levels.
        """
        if self.channels == 3:  # an RGB model has no Y plane to feed: the float path
            return self.block(x)
        levels = torch.round(x.float() * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

        def y_model(y: np.ndarray) -> np.ndarray:
            return self._model(torch.from_numpy(y).to(self.device)).cpu().numpy()

        out = opencv_levels(levels, y_model, self.scale)
        return torch.from_numpy(out).to(self.device).permute(0, 3, 1, 2).float() / 255

    def uses_rgb8(self, src: np.ndarray, out_dtype: np.dtype | None = None) -> bool:
        """Whether ``src`` ``(N, H, W, C)`` goes through the fused uint8 path (:meth:`rgb8`).

        8-bit RGB, and the colours of 8-bit RGBA (so that adding an alpha channel does not
        change them), when the model and pipeline have a fused path.
        """
        channels = (3, 4) if self._fast_rgb else ((3,) if self._fast_opencv else ())
        return (
            src.dtype == np.uint8
            and src.shape[-1] in channels
            and (out_dtype is None or np.dtype(out_dtype) == np.uint8)
        )

    @property
    def rgb8_tile(self) -> int:
        """Tile size of the fused 8-bit path: twice :attr:`tile` in float32 on the CPU.

        That path runs the network in row bands, so its memory grows with a tile's pixels far
        more slowly than the float route's; a 960×540 frame then fits one tile (×2 frames
        11% faster in benchmarks/bench_upscale.py).
        """
        fp32_cpu = self.backend.name == "cpu-fp32"
        return 2 * self.tile if self.tile and fp32_cpu else self.tile

    @property
    def fused_rgb8(self) -> bool:
        """Whether 8-bit RGB images go through the fused uint8 path, one image at a time."""
        return self._fast_rgb or self._fast_opencv is not None

    @torch.no_grad()
    def rgb8(self, lr: np.ndarray, sr: np.ndarray) -> None:
        """Upscale one ``(h, w, C)`` uint8 RGB(A) image into ``sr`` ``(s·h, s·w, C)`` uint8.

        Both may be views with row strides of larger arrays (tiles, strips). The colours
        are rounded in the fused kernel: within one level of :meth:`block` followed by
        rounding; alpha is :meth:`block`'s bicubic alpha, rounded the same way.
        """
        if self._fast_opencv is not None:  # OpenCV's steps: RGB only (uses_rgb8)
            src8 = torch.from_numpy(lr if lr.flags.writeable else lr.copy())
            self._fast_opencv.upscale_tensor(src8, torch.from_numpy(sr))
            return
        assert self.fast is not None
        if lr.shape[-1] == 4:
            colour = np.empty((*sr.shape[:2], 3), np.uint8)
            self.rgb8(lr[..., :3], colour)
            sr[..., :3] = colour
            alpha = torch.from_numpy(to_unit(lr[..., 3]))[None, None].to(self.device)
            up = self.pipeline.resample(alpha, self.scale)
            sr[..., 3] = from_unit(up[0, 0], np.dtype(np.uint8))
            return
        if not lr.flags.writeable:  # torch shares the memory and warns about read-only arrays
            lr = lr.copy()
        src = torch.from_numpy(lr)
        if self.device.type == "cpu":
            self.fast.upscale_tensor(src, torch.from_numpy(sr))
        else:
            sr[...] = self.fast.upscale_tensor(src).cpu().numpy()

    def strips(
        self, src: np.ndarray, *, out_dtype: np.dtype | None = None, tile: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Output strips of ``src`` ``(N, H, W, C)``; see :func:`tiling.iter_strips`."""
        if src.ndim != 4 or src.shape[-1] not in (1, 2, 3, 4):
            raise ValueError(f"expected (N, H, W, C) with C in 1..4, got shape {src.shape}")
        if self.uses_rgb8(src, out_dtype):
            return iter_image_strips(
                src,
                self.rgb8,
                scale=self.scale,
                tile=self.rgb8_tile if tile is None else tile,
                overlap=self.overlap,
            )
        exact = self.pipeline.opencv_exact and src.dtype == np.uint8
        return iter_strips(
            src,
            self.block_levels if exact else self.block,
            scale=self.scale,
            tile=self.tile if tile is None else tile,
            overlap=self.overlap,
            out_dtype=np.dtype(out_dtype or src.dtype),
            device=self.device,
        )

    def run(self, src: np.ndarray, *, tile: int | None = None) -> np.ndarray:
        """Upscale ``(N, H, W, C)`` into a new ``(N, s·H, s·W, C)`` array of the same dtype."""
        n, h, w, c = src.shape
        out = np.empty((n, h * self.scale, w * self.scale, c), dtype=src.dtype)
        if self.uses_rgb8(src):  # written in place, strip by strip
            t = self.rgb8_tile if tile is None else tile
            for _ in iter_image_strips(
                src, self.rgb8, scale=self.scale, tile=t, overlap=self.overlap, out=out
            ):
                pass
            return out
        for row, strip in self.strips(src, tile=tile):
            out[:, row : row + strip.shape[1]] = strip
        return out
