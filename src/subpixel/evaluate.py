"""Benchmark evaluation by the super-resolution protocol.

For every image of a folder: load RGB, mod-crop to the scale, make the LR input with
MATLAB-style bicubic (:func:`subpixel.data.degrade`), super-resolve the Y channel with the
model, and score PSNR/SSIM on Y with ``scale`` pixels shaved from each border, against
plain bicubic upscaling of the same LR image. Grey images are replicated to RGB first.

Example:
    >>> import torch
    >>> from subpixel.models import get_model
    >>> img = torch.rand(3, 30, 30)
    >>> scores = evaluate_images(get_model("espcn", scale=3), [img], scale=3)
    >>> sorted(scores)
    ['bicubic_psnr', 'bicubic_ssim', 'images', 'psnr', 'ssim']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from subpixel.color import rgb_to_y
from subpixel.data import degrade, find_images, load_image, mod_crop
from subpixel.metrics import psnr, quantize, ssim
from subpixel.resize import imresize

__all__ = ["evaluate_folder", "evaluate_images", "super_resolve_y"]


@torch.no_grad()
def super_resolve_y(model: nn.Module, y_lr: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on a ``(1, H, W)`` or ``(N, 1, H, W)`` Y image; output clamped to [0, 1]."""
    device = next(model.parameters()).device
    batched = y_lr.dim() == 4
    x = y_lr if batched else y_lr[None]
    out = model(x.to(device)).clamp(0, 1).to(y_lr.device)
    return out if batched else out[0]


@torch.no_grad()
def evaluate_images(
    model: nn.Module, images: Sequence[torch.Tensor], *, scale: int, with_ssim: bool = True
) -> dict[str, Any]:
    """Mean PSNR/SSIM (Y, shave = scale) of ``model`` and of bicubic over HR ``images``.

    ``images`` are ``(3, H, W)`` RGB (or ``(1, H, W)`` grey) floats in [0, 1].
    """
    was_training = model.training
    model.eval()
    totals = {"psnr": 0.0, "ssim": 0.0, "bicubic_psnr": 0.0, "bicubic_ssim": 0.0}
    for img in images:
        hr = mod_crop(img if img.shape[0] == 3 else img.expand(3, -1, -1), scale).double()
        lr = degrade(hr, scale)
        y_hr = rgb_to_y(hr)
        y_sr = quantize(super_resolve_y(model, rgb_to_y(lr).float()).double())
        y_bic = quantize(rgb_to_y(quantize(imresize(lr, float(scale)))))
        totals["psnr"] += psnr(y_sr, y_hr, shave=scale)
        totals["bicubic_psnr"] += psnr(y_bic, y_hr, shave=scale)
        if with_ssim:
            totals["ssim"] += ssim(y_sr, y_hr, shave=scale)
            totals["bicubic_ssim"] += ssim(y_bic, y_hr, shave=scale)
    model.train(was_training)
    n = max(len(images), 1)
    out: dict[str, Any] = {k: v / n for k, v in totals.items()}
    out["images"] = len(images)
    return out


def evaluate_folder(
    model: nn.Module, folder: str | os.PathLike[str], *, scale: int
) -> dict[str, Any]:
    """:func:`evaluate_images` over every image found (recursively) in ``folder``."""
    images = [load_image(p) for p in find_images([Path(folder)])]
    return evaluate_images(model, images, scale=scale)
