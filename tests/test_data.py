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
