"""Image folders and super-resolution training pairs.

Training pairs are cut from images prepared once: each HR image is loaded, optionally
shrunk by a few factors (the usual scale augmentation), mod-cropped to the scale, and its
LR version made with :func:`subpixel.resize.imresize` and quantised to 8 bits like a saved
file. Patches are then aligned crops of the cached HR/LR pair, flipped and rotated at
random, so a batch costs a few tensor slices: no worker processes are needed on 2 cores.

With a :class:`~subpixel.degrade.DegradationConfig` (``degradation=PHOTO``, say) the LR
patch is instead made from each HR patch when the batch is drawn (blur, a random
downscaler, noise, real JPEG: :func:`subpixel.degrade.degrade`), in RGB before any
conversion to Y, from a seed drawn from the batch's ``torch.Generator``: a resumed run
draws the same degradations.

Example:
    >>> import torch
    >>> hr = torch.rand(1, 60, 60)
    >>> ds = PatchSampler([hr], scale=3, patch=17, augment_scales=())
    >>> lr, hr = ds.batch(4, torch.Generator().manual_seed(0))
    >>> lr.shape, hr.shape
    (torch.Size([4, 1, 17, 17]), torch.Size([4, 1, 51, 51]))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from subpixel.color import rgb_to_y
from subpixel.degrade import DegradationConfig
from subpixel.degrade import degrade as degrade_randomly
from subpixel.metrics import quantize
from subpixel.resize import imresize

__all__ = [
    "IMAGE_EXTENSIONS",
    "PatchSampler",
    "degrade",
    "find_images",
    "load_image",
    "mod_crop",
    "quantize",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def find_images(folders: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """All images under ``folders`` (recursive, sorted); a file path is taken as is.

    Raises:
        FileNotFoundError: a folder does not exist.
        ValueError: no image was found.
    """
    found: list[Path] = []
    roots = [Path(f) for f in folders]
    for root in roots:
        if root.is_file():
            found.append(root)
            continue
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such folder")
        found += sorted(
            p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
    if not found:
        raise ValueError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {', '.join(map(str, roots))}"
        )
    return found


def load_image(path: str | os.PathLike[str], *, mode: str = "RGB") -> torch.Tensor:
    """Load an image as a float32 ``(C, H, W)`` tensor in [0, 1] (EXIF orientation applied).

    ``mode`` is a Pillow mode: ``"RGB"`` (grey images are replicated) or ``"L"``.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as raw:
        im = ImageOps.exif_transpose(raw)
        arr = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


def mod_crop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop ``(*, H, W)`` at the bottom/right so H and W are multiples of ``scale``."""
    h, w = x.shape[-2], x.shape[-1]
    return x[..., : h - h % scale, : w - w % scale]


def degrade(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The SR protocol's LR image: MATLAB bicubic downscale by ``scale``, then 8-bit levels."""
    return quantize(imresize(hr, 1.0 / scale))


class PatchSampler:
    """Random aligned (LR, HR) patch pairs from a list of ``(C, H, W)`` HR images.

    Args:
        images: HR images, float in [0, 1], ``(C, H, W)``; RGB is converted to Y when
            ``y_only``.
        scale: the SR factor.
        patch: LR patch size (HR patches are ``patch·scale``); the paper uses 17.
        augment_scales: extra downscaling factors applied to every HR image first.
        y_only: train on the BT.601 Y channel (the paper) instead of RGB.
        degradation: make each LR patch from its HR patch with this random degradation
            (RGB images only) instead of the protocol's cached bicubic LR.
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor],
        *,
        scale: int,
        patch: int = 17,
        augment_scales: Sequence[float] = (0.9, 0.8, 0.7, 0.6),
        y_only: bool = True,
        degradation: DegradationConfig | None = None,
    ) -> None:
        if scale < 1 or patch < 1:
            raise ValueError(f"scale and patch must be >= 1, got scale={scale}, patch={patch}")
        self.scale, self.patch = scale, patch
        self.y_only, self.degradation = y_only, degradation
        self.lr: list[torch.Tensor] = []
        self.hr: list[torch.Tensor] = []
        hp = patch * scale
        for img in images:
            if degradation is not None and img.shape[0] != 3:
                raise ValueError(f"degradation needs RGB images, got {img.shape[0]} channel(s)")
            for s in (1.0, *augment_scales):
                hr = quantize(imresize(img, s)) if s != 1.0 else img
                hr = mod_crop(hr, scale)
                if hr.shape[-2] < hp or hr.shape[-1] < hp:
                    continue
                if degradation is not None:  # LR made per patch in batch(); HR kept in RGB
                    self.hr.append(hr.contiguous())
                    continue
                lr = degrade(hr, scale)
                if y_only and hr.shape[0] == 3:
                    hr, lr = rgb_to_y(hr), rgb_to_y(lr)
                self.hr.append(hr.contiguous())
                self.lr.append(lr.contiguous())
        if not self.hr:
            raise ValueError(f"no image is at least {hp}×{hp} pixels: nothing to train on")
        sizes = [(h.shape[-2] // scale, h.shape[-1] // scale) for h in self.hr]
        areas = torch.tensor(
            [(h - patch + 1) * (w - patch + 1) for h, w in sizes], dtype=torch.float64
        )
        self._weights = areas / areas.sum()

    def __len__(self) -> int:
        return len(self.hr)

    def batch(self, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` random pairs: LR ``(B, C, p, p)`` and HR ``(B, C, p·s, p·s)``."""
        s, p = self.scale, self.patch
        idx = torch.multinomial(self._weights, size, replacement=True, generator=gen)
        u = torch.rand(size, 2, generator=gen, dtype=torch.float64)
        aug = torch.randint(0, 8, (size,), generator=gen)
        if self.degradation is not None:
            return self._degraded_batch(idx, u, aug, gen)
        lrs, hrs = [], []
        for b in range(size):
            lr_img, hr_img = self.lr[int(idx[b])], self.hr[int(idx[b])]
            y = int(u[b, 0] * (lr_img.shape[-2] - p + 1))
            x = int(u[b, 1] * (lr_img.shape[-1] - p + 1))
            lr = lr_img[:, y : y + p, x : x + p]
            hr = hr_img[:, y * s : (y + p) * s, x * s : (x + p) * s]
            lrs.append(_augment(lr, int(aug[b])))
            hrs.append(_augment(hr, int(aug[b])))
        return torch.stack(lrs), torch.stack(hrs)

    def _degraded_batch(
        self, idx: torch.Tensor, u: torch.Tensor, aug: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Aligned HR patches, flipped/rotated, each degraded to its LR patch in RGB."""
        assert self.degradation is not None
        s, p = self.scale, self.patch
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        rng = np.random.default_rng(seed)
        lrs, hrs = [], []
        for b in range(len(idx)):
            hr_img = self.hr[int(idx[b])]
            y = int(u[b, 0] * (hr_img.shape[-2] // s - p + 1)) * s
            x = int(u[b, 1] * (hr_img.shape[-1] // s - p + 1)) * s
            hr = _augment(hr_img[:, y : y + p * s, x : x + p * s], int(aug[b])).contiguous()
            lr = degrade_randomly(hr, s, self.degradation, rng).lr
            if self.y_only:
                hr, lr = rgb_to_y(hr), rgb_to_y(lr)
            lrs.append(lr)
            hrs.append(hr)
        return torch.stack(lrs), torch.stack(hrs)


def _augment(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips/rotations of the square ``(C, p, p)`` patch."""
    if k & 4:
        x = x.flip(-1)
    return torch.rot90(x, k & 3, dims=(-2, -1))
