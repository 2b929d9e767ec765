"""Image folders, the SR degradation and the patch sampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from subpixel.data import PatchSampler, degrade, find_images, load_image, mod_crop
from subpixel.resize import imresize


def test_find_images_recursive_and_filtered(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["a/x.png", "a/b/y.JPG", "a/b/z.webp", "a/notes.txt", "top.bmp"]:
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in find_images([tmp_path])]
    assert found == ["a/b/y.JPG", "a/b/z.webp", "a/x.png", "top.bmp"]


def test_find_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no images"):
        find_images([tmp_path])
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_images([tmp_path / "missing"])


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    arr = np.zeros((2, 3, 3), dtype=np.uint8)
    arr[0, 0] = 255
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    img.save(tmp_path / "r.png", exif=exif)
    x = load_image(tmp_path / "r.png")
    assert x.shape == (3, 3, 2)
    assert x[:, 0, 1].tolist() == [1.0, 1.0, 1.0]


def test_mod_crop_and_degrade_shapes() -> None:
    x = torch.rand(3, 31, 20)
    assert mod_crop(x, 3).shape == (3, 30, 18)
    lr = degrade(mod_crop(x, 3), 3)
    assert lr.shape == (3, 10, 6)
    assert torch.equal(lr, torch.round(lr * 255) / 255)


def test_patches_are_aligned_and_augmented_consistently() -> None:
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.random((1, 12, 12))).float()
    hr = imresize(coarse, 8.0).clamp(0, 1)  # smooth 96x96 image
    sampler = PatchSampler([hr], scale=2, patch=12, augment_scales=(), y_only=False)
    lr, hr_patch = sampler.batch(32, torch.Generator().manual_seed(0))
    assert lr.shape == (32, 1, 12, 12) and hr_patch.shape == (32, 1, 24, 24)
    # The LR patch is the degradation of its HR patch, away from the patch border.
    again = imresize(hr_patch.double(), 0.5)
    err = (again - lr.double())[..., 2:-2, 2:-2].abs().max()
    assert err < 3 / 255


def test_patch_sampler_is_deterministic_and_y_only() -> None:
    img = torch.rand(3, 60, 60)
    sampler = PatchSampler([img], scale=3, patch=10)
    a = sampler.batch(4, torch.Generator().manual_seed(5))
    b = sampler.batch(4, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (4, 1, 10, 10)
    assert len(sampler) == 5  # the image and its 4 downscaled copies


def test_patch_sampler_rejects_tiny_images() -> None:
    with pytest.raises(ValueError, match="at least 51"):
        PatchSampler([torch.rand(3, 20, 20)], scale=3, patch=17)


def _rgb_images(n: int = 2, size: tuple[int, int] = (72, 90)) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    # smooth content, like photos: low-resolution noise enlarged, on 8-bit levels
    return [
        torch.round(
            torch.nn.functional.interpolate(
                torch.rand(1, 3, size[0] // 6, size[1] // 6, generator=g),
                size=size,
                mode="bilinear",
                align_corners=False,
            )[0]
            * 255
        )
        / 255
        for _ in range(n)
    ]


def test_degraded_patches_follow_the_degradation_of_their_own_hr_patch() -> None:
    """With the CLEAN pipeline per patch, each LR patch is the protocol's LR of its HR patch."""
    from subpixel.degrade import CLEAN

    ds = PatchSampler(
        _rgb_images(), scale=3, patch=8, augment_scales=(), y_only=False, degradation=CLEAN
    )
    lr, hr = ds.batch(6, torch.Generator().manual_seed(0))
    assert lr.shape == (6, 3, 8, 8) and hr.shape == (6, 3, 24, 24)
    for b in range(6):
        torch.testing.assert_close(lr[b], degrade(hr[b], 3), rtol=0, atol=0)


def test_degraded_patches_are_seeded_by_the_generator_and_photo_differs_from_clean() -> None:
    from subpixel.color import rgb_to_y
    from subpixel.degrade import PHOTO

    images = _rgb_images()
    photo = PatchSampler(images, scale=2, patch=12, augment_scales=(0.8,), degradation=PHOTO)
    a = photo.batch(8, torch.Generator().manual_seed(5))
    b = photo.batch(8, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (8, 1, 12, 12) and a[1].shape == (8, 1, 24, 24)  # Y after degrading
    c = photo.batch(8, torch.Generator().manual_seed(6))
    assert not torch.equal(a[0], c[0])
    # the HR target stays clean: the Y of an aligned crop of an HR image
    clean_lr = torch.stack([rgb_to_y(degrade(_to_rgb_like(h), 2)) for h in a[1]])
    assert (a[0] - clean_lr).abs().mean() > 1e-3  # degraded, not the protocol's bicubic


def _to_rgb_like(y: torch.Tensor) -> torch.Tensor:
    return y.expand(3, -1, -1).contiguous()


def test_degradation_needs_rgb_images() -> None:
    from subpixel.degrade import PHOTO

    with pytest.raises(ValueError, match="RGB"):
        PatchSampler([torch.rand(1, 40, 40)], scale=2, patch=8, degradation=PHOTO)
