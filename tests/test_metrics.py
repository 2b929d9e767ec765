"""PSNR/SSIM against the formulas written out here, and the published bicubic baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from subpixel.metrics import gaussian_window, psnr, quantize, sr_protocol_scores, ssim
from subpixel.resize import imresize

# ---------------------------------------------------------------------------------------------
# References written out independently (numpy, float64).
# ---------------------------------------------------------------------------------------------


def ref_luma_255(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio luma on 8-bit levels from (3, H, W) RGB in [0, 1] (MATLAB rgb2ycbcr)."""
    r, g, b = rgb
    return 16 + 65.481 * r + 128.553 * g + 24.966 * b


def ref_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def ref_fspecial_gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``."""
    half = (size - 1) / 2
    y, x = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij")
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return h / h.sum()


def ref_filter2_valid(win: np.ndarray, img: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(win, img, 'valid')`` (correlation), summing shifted windows."""
    k = win.shape[0]
    out_h, out_w = img.shape[0] - k + 1, img.shape[1] - k + 1
    out = np.zeros((out_h, out_w))
    for dy in range(k):
        for dx in range(k):
            out += win[dy, dx] * img[dy : dy + out_h, dx : dx + out_w]
    return out


def ref_ssim_index(img1: np.ndarray, img2: np.ndarray, L: float = 255.0) -> float:
    """Wang et al.'s ssim_index.m (2004), default K = [0.01 0.03], Gaussian 11x11 σ=1.5."""
    c1 = (0.01 * L) ** 2
    c2 = (0.03 * L) ** 2
    window = ref_fspecial_gaussian()
    mu1 = ref_filter2_valid(window, img1)
    mu2 = ref_filter2_valid(window, img2)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = ref_filter2_valid(window, img1 * img1) - mu1_sq
    sigma2_sq = ref_filter2_valid(window, img2 * img2) - mu2_sq
    sigma12 = ref_filter2_valid(window, img1 * img2) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2)
    )
    return float(ssim_map.mean())


def levels(*shape: int, seed: int = 0) -> torch.Tensor:
    """A random 8-bit image on the [0, 1] scale, float64."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, size=shape).astype(np.float64) / 255)


def noisy(x: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quantize(x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype))


# ---------------------------------------------------------------------------------------------
# PSNR
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shave", [0, 1, 4])
def test_psnr_rgb_y_only_matches_formula(shave: int) -> None:
    hr = levels(3, 24, 20)
    sr = noisy(hr, 0.05)
    s = slice(shave, -shave or None)
    want = ref_psnr(ref_luma_255(sr.numpy())[s, s], ref_luma_255(hr.numpy())[s, s])
    assert psnr(sr, hr, shave=shave) == pytest.approx(want, abs=1e-10)


def test_psnr_all_channels_matches_formula() -> None:
    hr = levels(3, 16, 17)
    sr = noisy(hr, 0.03)
    want = ref_psnr(sr.numpy()[:, 2:-2, 2:-2] * 255, hr.numpy()[:, 2:-2, 2:-2] * 255)
    assert psnr(sr, hr, shave=2, y_only=False) == pytest.approx(want, abs=1e-10)


def test_psnr_single_channel_is_taken_as_luma() -> None:
    hr = levels(1, 20, 20)
    sr = noisy(hr, 0.02)
    want = ref_psnr(sr.numpy()[0] * 255, hr.numpy()[0] * 255)
    assert psnr(sr, hr) == pytest.approx(want, abs=1e-10)
    assert psnr(sr, hr, y_only=False) == pytest.approx(want, abs=1e-10)


def test_psnr_known_value_one_level_error() -> None:
    hr = torch.zeros(1, 10, 10, dtype=torch.float64)
    assert psnr(hr + 1 / 255, hr) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_batch_of_one_and_float32_accepted() -> None:
    hr = levels(3, 16, 16)
    sr = noisy(hr, 0.04)
    assert psnr(sr[None], hr[None], shave=2) == pytest.approx(psnr(sr, hr, shave=2), abs=1e-12)
    assert ssim(sr[None], hr[None]) == pytest.approx(ssim(sr, hr), abs=1e-12)
    # Float32 8-bit levels: the luma is computed in float64, so only the input rounding differs.
    assert psnr(sr.float(), hr.float()) == pytest.approx(psnr(sr, hr), abs=1e-4)


def test_data_range_is_a_scale_not_a_clip() -> None:
    hr = levels(3, 16, 16)
    sr = noisy(hr, 0.04)
    assert psnr(sr, hr, data_range=1.0) == pytest.approx(psnr(sr, hr), abs=1e-9)
    assert ssim(sr, hr, data_range=1.0) == pytest.approx(ssim(sr, hr), abs=1e-12)


def test_identical_images() -> None:
    hr = levels(3, 16, 16)
    assert psnr(hr, hr) == math.inf
    assert psnr(hr, hr, shave=3, y_only=False) == math.inf
    assert ssim(hr, hr) == 1.0
    assert ssim(hr, hr, y_only=False) == 1.0


# ---------------------------------------------------------------------------------------------
# SSIM
# ---------------------------------------------------------------------------------------------


def test_gaussian_window_is_fspecial() -> None:
    np.testing.assert_allclose(gaussian_window().numpy(), ref_fspecial_gaussian(), atol=1e-17)


@pytest.mark.parametrize(("sigma", "shave"), [(0.01, 0), (0.05, 2), (0.2, 3)])
def test_ssim_y_matches_wang_reference(sigma: float, shave: int) -> None:
    hr = levels(3, 30, 27, seed=3)
    sr = noisy(hr, sigma)
    s = slice(shave, -shave or None)
    want = ref_ssim_index(ref_luma_255(sr.numpy())[s, s], ref_luma_255(hr.numpy())[s, s])
    assert ssim(sr, hr, shave=shave) == pytest.approx(want, abs=1e-12)


def test_ssim_structured_image_matches_wang_reference() -> None:
    yy, xx = np.mgrid[0:40, 0:36]
    hr_np = (np.sin(xx / 3.0) * np.cos(yy / 5.0) + 1) / 2
    hr = quantize(torch.from_numpy(hr_np)[None])
    sr = quantize(imresize(imresize(hr, 0.5), 2))
    want = ref_ssim_index(sr.numpy()[0] * 255, hr.numpy()[0] * 255)
    got = ssim(sr, hr)
    assert got == pytest.approx(want, abs=1e-12)
    assert 0.5 < got < 1.0


def test_ssim_all_channels_is_channel_mean() -> None:
    hr = levels(3, 20, 22, seed=5)
    sr = noisy(hr, 0.08)
    want = np.mean([ref_ssim_index(sr.numpy()[c] * 255, hr.numpy()[c] * 255) for c in range(3)])
    assert ssim(sr, hr, y_only=False) == pytest.approx(want, abs=1e-12)


def test_ssim_is_symmetric_and_bounded() -> None:
    hr = levels(1, 24, 24, seed=6)
    sr = noisy(hr, 0.1)
    assert ssim(sr, hr) == pytest.approx(ssim(hr, sr), abs=1e-14)
    assert -1.0 <= ssim(sr, hr) < 1.0


# ---------------------------------------------------------------------------------------------
# Quantisation, the convenience wrapper, errors
# ---------------------------------------------------------------------------------------------


def test_quantize_rounds_half_away_and_saturates() -> None:
    x = torch.tensor([-0.3, 0.0, 126.5 / 255, 127.5 / 255, 0.999, 1.0, 7.0], dtype=torch.float64)
    assert (x[2] * 255).item() == 126.5  # precondition: an exact tie
    got = (quantize(x) * 255).tolist()
    assert got == [0.0, 0.0, 127.0, 128.0, 255.0, 255.0, 255.0]
    assert quantize(x.float()).dtype == torch.float32


def test_sr_protocol_scores() -> None:
    hr = levels(3, 26, 26, seed=7)
    sr = hr + 0.013 * torch.randn(hr.shape, dtype=torch.float64)  # not quantised
    q_sr = np.round(np.clip(sr.numpy(), 0, 1) * 255) / 255
    y_sr = ref_luma_255(q_sr)[3:-3, 3:-3]
    y_hr = ref_luma_255(hr.numpy())[3:-3, 3:-3]
    got_psnr, got_ssim = sr_protocol_scores(sr, hr, 3)
    assert got_psnr == pytest.approx(ref_psnr(y_sr, y_hr), abs=1e-10)
    assert got_ssim == pytest.approx(ref_ssim_index(y_sr, y_hr), abs=1e-12)
    raw = sr_protocol_scores(sr, hr, 3, quantize_inputs=False)
    assert raw[0] == pytest.approx(psnr(sr, hr, shave=3), abs=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    hr = levels(3, 32, 32)
    sr = noisy(hr, 0.05)
    assert psnr(sr.cuda(), hr.cuda(), shave=2) == pytest.approx(psnr(sr, hr, shave=2), abs=1e-10)
    assert ssim(sr.cuda(), hr.cuda(), shave=2) == pytest.approx(ssim(sr, hr, shave=2), abs=1e-12)


def test_errors() -> None:
    a = levels(3, 16, 16)
    with pytest.raises(ValueError, match=r"\(3, 16, 16\) vs \(3, 16, 15\)"):
        psnr(a, a[..., :15])
    with pytest.raises(ValueError, match=r"\(2, 3, 16, 16\)"):
        psnr(torch.stack([a, a]), torch.stack([a, a]))
    with pytest.raises(ValueError, match=r"\(2, 16, 16\)"):
        ssim(a[:2], a[:2])
    with pytest.raises(ValueError, match="shave"):
        psnr(a, a, shave=8)
    with pytest.raises(ValueError, match="shave"):
        psnr(a, a, shave=-1)
    with pytest.raises(ValueError, match="11x11"):
        ssim(a, a, shave=3)
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a, data_range=0)
    with pytest.raises(TypeError, match="floating"):
        psnr((a * 255).to(torch.uint8), (a * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="Tensor"):
        ssim(a.numpy(), a)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        sr_protocol_scores(a, a, 0)


# ---------------------------------------------------------------------------------------------
# THE reference check: bicubic baselines on Set5 / Set14
# ---------------------------------------------------------------------------------------------

SET5_BICUBIC = {2: 33.66, 3: 30.39, 4: 28.42}  # SRCNN (Dong et al. 2014), Table 1
SET14_BICUBIC = {2: 30.24, 3: 27.55, 4: 26.00}


def load_image(path: Path) -> torch.Tensor:
    """(C, H, W) float64 in [0, 1]; grayscale files stay 1-channel (scored as Y directly)."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L" if im.mode in ("L", "I;16", "1") else "RGB"))
    t = torch.from_numpy(arr.astype(np.float64) / 255)
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


def bicubic_protocol_psnr(paths: list[Path], scale: int) -> list[float]:
    """Mod-crop, LR = imresize(1/s) quantised, SR = imresize(s) quantised, Y PSNR, shave s."""
    out = []
    for path in paths:
        hr = load_image(path)
        h, w = hr.shape[-2:]
        hr = hr[:, : h - h % scale, : w - w % scale]
        lr = quantize(imresize(hr, 1 / scale))
        sr = quantize(imresize(lr, scale))
        out.append(psnr(sr, hr, shave=scale))
    return out


@pytest.mark.data
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_bicubic_baseline(data_dir: Path, scale: int) -> None:
    paths = sorted((data_dir / "sr" / "Set5").glob("*.png"))
    assert len(paths) == 5
    scores = bicubic_protocol_psnr(paths, scale)
    mean = float(np.mean(scores))
    print(f"Set5 x{scale} bicubic: {mean:.4f} dB (published {SET5_BICUBIC[scale]})")
    assert mean == pytest.approx(SET5_BICUBIC[scale], abs=0.03)


@pytest.mark.data
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_bicubic_srcnn_y_pipeline(data_dir: Path, scale: int) -> None:
    """SRCNN's demo pipeline: Y = uint8(rgb2ycbcr(img)), resized as single on Y alone.

    This is the exact computation behind the published numbers; it must agree to 0.01 dB.
    """
    scores = []
    for path in sorted((data_dir / "sr" / "Set5").glob("*.png")):
        rgb = load_image(path).numpy()
        y = np.floor(ref_luma_255(rgb) + 0.5) / 255  # rgb2ycbcr on uint8 rounds
        h, w = y.shape
        y = y[: h - h % scale, : w - w % scale]
        y_t = torch.from_numpy(y).float()[None]
        sr = quantize(imresize(imresize(y_t, 1 / scale), scale)).double()
        scores.append(psnr(sr, y_t.double(), shave=scale))
    mean = float(np.mean(scores))
    print(f"Set5 x{scale} bicubic (SRCNN Y pipeline): {mean:.4f} dB")
    assert mean == pytest.approx(SET5_BICUBIC[scale], abs=0.01)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set14_bicubic_baseline(data_dir: Path, scale: int) -> None:
    paths = sorted((data_dir / "sr" / "Set14").glob("*.png"))
    assert len(paths) == 14
    assert load_image(data_dir / "sr" / "Set14" / "bridge.png").shape[0] == 1
    mean = float(np.mean(bicubic_protocol_psnr(paths, scale)))
    print(f"Set14 x{scale} bicubic: {mean:.4f} dB (published ~{SET14_BICUBIC[scale]})")
    assert mean == pytest.approx(SET14_BICUBIC[scale], abs=0.1)
