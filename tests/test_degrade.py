"""subpixel.degrade: each step against an independent reference, seeding, presets, config."""

from __future__ import annotations

import dataclasses
import doctest
import io
import math
from typing import Any

import numpy as np
import pytest
import torch

import subpixel.degrade as degrade_module
from subpixel.color import rgb_to_ycbcr
from subpixel.data import degrade as bicubic_protocol
from subpixel.degrade import (
    CLEAN,
    JPEG,
    PHOTO,
    Applied,
    DegradationConfig,
    Downscale,
    GaussianBlur,
    Jpeg,
    MotionBlur,
    Noise,
    add_noise,
    apply_steps,
    blur,
    configure,
    degrade,
    degrade_patch,
    downscale,
    gaussian_kernel,
    jpeg,
    motion_kernel,
    preset,
    sample_steps,
)
from subpixel.metrics import quantize
from subpixel.resize import imresize

ndimage = pytest.importorskip("scipy.ndimage")
Image = pytest.importorskip("PIL.Image")


def smooth_image(h: int, w: int, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    """A float64 (3, h, w) RGB texture in [0, 1] (smoothed noise), on 8-bit levels."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random((3, h, w)), sigma=(0, sigma, sigma), mode="wrap")
    x = (x - x.min()) / (x.max() - x.min())
    return np.floor(x * 255 + 0.5) / 255


def per_channel(f: object, x: np.ndarray) -> np.ndarray:
    assert callable(f)
    return np.stack([f(c) for c in x])


def kernel_cov(k: np.ndarray) -> np.ndarray:
    """Second moments of a centred kernel in screen coordinates (x right, y up)."""
    ry, rx = k.shape[0] // 2, k.shape[1] // 2
    dy, dx = np.mgrid[-ry : ry + 1, -rx : rx + 1].astype(np.float64)
    up = -dy
    xy = (k * dx * up).sum()
    return np.array([[(k * dx * dx).sum(), xy], [xy, (k * up * up).sum()]])


# ---------------------------------------------------------------------------------------------
# Blur
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.4, 1.0, 2.7])
def test_isotropic_blur_equals_scipy_gaussian_filter(sigma: float) -> None:
    x = np.random.default_rng(1).random((3, 20, 23))
    k = gaussian_kernel(sigma)
    r = k.shape[0] // 2
    ref = per_channel(lambda c: ndimage.gaussian_filter(c, sigma, mode="reflect", radius=r), x)
    out = blur(torch.from_numpy(x), k).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_axis_aligned_anisotropic_blur_equals_scipy() -> None:
    x = np.random.default_rng(2).random((3, 16, 18))
    k = gaussian_kernel(2.0, 0.7, 0.0)  # sigma_x along columns, sigma_y along rows
    r = k.shape[0] // 2
    ref = per_channel(lambda c: ndimage.gaussian_filter(c, (0.7, 2.0), mode="reflect", radius=r), x)
    np.testing.assert_allclose(blur(torch.from_numpy(x), k).numpy(), ref, atol=1e-12)
    # Turning by 90 degrees swaps the axes.
    np.testing.assert_allclose(gaussian_kernel(0.7, 2.0, 90.0), k, atol=1e-15)


@pytest.mark.parametrize("angle", [0.0, 30.0, 45.0, 120.0])
def test_rotated_gaussian_kernel_has_the_requested_covariance(angle: float) -> None:
    sx, sy = 2.0, 0.8
    k = gaussian_kernel(sx, sy, angle)
    cov = kernel_cov(k)
    t = math.radians(angle)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    expected = rot @ np.diag([sx * sx, sy * sy]) @ rot.T
    np.testing.assert_allclose(cov, expected, atol=0.02)
    assert k.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)  # no shift


def test_blur_equals_direct_convolution_with_large_kernel_on_small_image() -> None:
    # Rotated (non-separable) kernel larger than the image: mirrored borders repeat.
    x = np.random.default_rng(3).random((3, 5, 7))
    k = gaussian_kernel(2.5, 1.0, 35.0)
    assert k.shape[0] > 7
    ref = per_channel(lambda c: ndimage.convolve(c, k, mode="reflect"), x)
    np.testing.assert_allclose(blur(torch.from_numpy(x), k).numpy(), ref, atol=1e-12)
    # A true convolution, not a correlation: checked with an asymmetric kernel.
    a = np.zeros((3, 5))
    a[0, 4], a[1, 2] = 1.0, 2.0
    ref = per_channel(lambda c: ndimage.convolve(c, a, mode="reflect"), x)
    np.testing.assert_allclose(blur(torch.from_numpy(x), a).numpy(), ref, atol=1e-12)


def test_blur_float32_and_constant_image() -> None:
    x = torch.full((3, 12, 12), 0.3)
    out = blur(x, motion_kernel(4.5, 20.0))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"odd sizes, got \(4, 4\)"):
        blur(x, np.ones((4, 4)) / 16)


@pytest.mark.parametrize("length", [1, 3, 5, 7])
def test_motion_blur_along_axes_is_a_box_filter(length: int) -> None:
    x = np.random.default_rng(4).random((3, 14, 15))
    horizontal = blur(torch.from_numpy(x), motion_kernel(length, 0.0)).numpy()
    ref = ndimage.uniform_filter1d(x, length, axis=-1, mode="reflect")
    np.testing.assert_allclose(horizontal, ref, atol=1e-12)
    vertical = blur(torch.from_numpy(x), motion_kernel(length, 90.0)).numpy()
    ref = ndimage.uniform_filter1d(x, length, axis=-2, mode="reflect")
    np.testing.assert_allclose(vertical, ref, atol=1e-12)


def test_motion_kernel_fractional_length_and_direction() -> None:
    np.testing.assert_allclose(motion_kernel(4.0, 0.0), [[0.125, 0.25, 0.25, 0.25, 0.125]])
    for angle in (30.0, 45.0, 100.0):
        k = motion_kernel(7.0, angle)
        assert k.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
        vals, vecs = np.linalg.eigh(kernel_cov(k))
        main = vecs[:, 1]
        measured = math.degrees(math.atan2(main[1], main[0])) % 180
        assert abs((measured - angle + 90) % 180 - 90) < 2.0
        assert vals[1] > 10 * vals[0]
    with pytest.raises(ValueError, match="length must be"):
        motion_kernel(0.5, 0.0)


# ---------------------------------------------------------------------------------------------
# Downscaling
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_area_is_the_block_mean(scale: int) -> None:
    x = np.random.default_rng(5).random((3, 12 * scale // 2, 6 * scale))
    out = downscale(torch.from_numpy(x), scale, "area").numpy()
    c, h, w = x.shape
    ref = np.zeros((c, h // scale, w // scale))
    for i in range(h // scale):
        for j in range(w // scale):
            ref[:, i, j] = x[:, i * scale : (i + 1) * scale, j * scale : (j + 1) * scale].mean(
                axis=(1, 2)
            )
    np.testing.assert_allclose(out, ref, atol=1e-14)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bilinear_matches_opencv_and_samples_linear_images_at_centres(scale: int) -> None:
    cv2 = pytest.importorskip("cv2")
    h, w = 8 * scale, 6 * scale
    x = np.random.default_rng(6).random((3, h, w)).astype(np.float32)
    out = downscale(torch.from_numpy(x), scale, "bilinear").numpy()
    ref = cv2.resize(x.transpose(1, 2, 0), (w // scale, h // scale), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(out, ref.transpose(2, 0, 1), atol=1e-6)
    # On a linear ramp, LR pixel i is the HR value at (i + 1/2) s - 1/2 (no antialiasing).
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = np.stack([0.01 * yy + 0.02 * xx, 0.5 - 0.01 * xx, 0.003 * yy])
    lr = downscale(torch.from_numpy(ramp), scale, "bilinear").numpy()
    ci = (np.arange(h // scale) + 0.5) * scale - 0.5
    cj = (np.arange(w // scale) + 0.5) * scale - 0.5
    ly, lx = np.meshgrid(ci, cj, indexing="ij")
    expected = np.stack([0.01 * ly + 0.02 * lx, 0.5 - 0.01 * lx, 0.003 * ly])
    np.testing.assert_allclose(lr, expected, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_is_the_projects_imresize(scale: int) -> None:
    x = torch.from_numpy(smooth_image(6 * scale, 5 * scale, seed=scale))
    assert torch.equal(downscale(x, scale, "bicubic"), imresize(x, 1.0 / scale))
    # A constant stays constant and a linear ramp is sampled at the centres (interior).
    flat = torch.full((3, 4 * scale, 4 * scale), 0.4, dtype=torch.float64)
    for method in ("bicubic", "bilinear", "area"):
        torch.testing.assert_close(downscale(flat, scale, method), flat[:, :4, :4])
    h = 12 * scale
    ramp = torch.arange(h, dtype=torch.float64).repeat(3, h, 1) / h
    lr = downscale(ramp, scale, "bicubic")[:, :, 2:-2]
    centres = ((torch.arange(12, dtype=torch.float64) + 0.5) * scale - 0.5) / h
    torch.testing.assert_close(lr, centres[2:-2].repeat(3, 12, 1), atol=1e-12, rtol=0)


def test_downscale_errors() -> None:
    x = torch.rand(3, 10, 12)
    with pytest.raises(ValueError, match="not a multiple of the scale 4"):
        downscale(x, 4, "area")
    with pytest.raises(ValueError, match="'lanczos'"):
        downscale(x, 2, "lanczos")


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [2.0, 8.0, 25.0])
def test_gaussian_noise_std_on_a_flat_image(sigma: float) -> None:
    x = torch.full((3, 96, 96), 0.5, dtype=torch.float64)
    n = (add_noise(x, "gaussian", sigma, grey=False, rng=np.random.default_rng(0)) - x).numpy()
    assert n.std() * 255 == pytest.approx(sigma, rel=0.02)
    assert abs(n.mean() * 255) < 0.05 * sigma
    # Independent channels.
    c = np.corrcoef(n.reshape(3, -1))
    assert np.abs(c[np.triu_indices(3, 1)]).max() < 0.05


@pytest.mark.parametrize("kind", ["gaussian", "poisson"])
def test_grey_noise_changes_only_luma(kind: str) -> None:
    x = torch.from_numpy(smooth_image(32, 32))
    y = add_noise(x, kind, 10.0, grey=True, rng=np.random.default_rng(1))
    n = y - x
    torch.testing.assert_close(n[0], n[1], atol=1e-12, rtol=0)
    torch.testing.assert_close(n[0], n[2], atol=1e-12, rtol=0)
    before, after = rgb_to_ycbcr(x), rgb_to_ycbcr(y)
    torch.testing.assert_close(after[1:], before[1:], atol=1e-12, rtol=0)  # Cb, Cr unchanged
    assert (after[0] - before[0]).abs().mean() > 1 / 255


@pytest.mark.parametrize("level", [0.25, 1.0])
def test_poisson_noise_is_signal_dependent(level: float) -> None:
    sigma = 6.0
    x = torch.full((3, 96, 96), level, dtype=torch.float64)
    n = (add_noise(x, "poisson", sigma, grey=False, rng=np.random.default_rng(2)) - x).numpy()
    assert n.std() * 255 == pytest.approx(sigma * math.sqrt(level), rel=0.03)
    assert abs(n.mean()) * 255 < 0.05 * sigma
    # Shot noise: counts of photons, peak = (255 / sigma)^2 at white.
    peak = (255 / sigma) ** 2
    counts = (n + level) * peak
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)


def test_noise_errors_and_zero() -> None:
    x = torch.rand(3, 4, 4)
    assert torch.equal(add_noise(x, "gaussian", 0.0, grey=False, rng=np.random.default_rng()), x)
    with pytest.raises(ValueError, match="'speckle'"):
        add_noise(x, "speckle", 1.0, grey=False, rng=np.random.default_rng())
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        add_noise(x, "gaussian", -1.0, grey=False, rng=np.random.default_rng())


# ---------------------------------------------------------------------------------------------
# JPEG
# ---------------------------------------------------------------------------------------------


def pillow_roundtrip(u8: np.ndarray, quality: int, subsampling: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_jpeg_equals_pillow_420_bit_for_bit(quality: int) -> None:
    x = smooth_image(40, 48, seed=quality, sigma=1.0)
    u8 = np.round(x.transpose(1, 2, 0) * 255).astype(np.uint8)
    ref = pillow_roundtrip(u8, quality, subsampling=2)
    for dtype in (torch.float32, torch.float64):
        out = jpeg(torch.from_numpy(x).to(dtype), quality)
        assert out.dtype == dtype
        got = np.round(out.double().numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        np.testing.assert_array_equal(got, ref)
    # 4:2:0 is not 4:4:4 on a colourful image.
    assert not np.array_equal(ref, pillow_roundtrip(u8, quality, subsampling=0))


def blockiness(x: np.ndarray) -> float:
    """Mean |gradient| across 8x8 block boundaries over the mean inside blocks (luma)."""
    y = np.tensordot([0.299, 0.587, 0.114], x, axes=1)
    dh = np.abs(np.diff(y, axis=1))
    dv = np.abs(np.diff(y, axis=0))
    on_h, on_v = np.arange(dh.shape[1]) % 8 == 7, np.arange(dv.shape[0]) % 8 == 7
    boundary = (dh[:, on_h].mean() + dv[on_v].mean()) / 2
    interior = (dh[:, ~on_h].mean() + dv[~on_v].mean()) / 2
    return float(boundary / interior)


def test_jpeg_shows_8x8_blocks_at_low_quality() -> None:
    x = smooth_image(64, 64, seed=7, sigma=3.0)
    assert 0.85 < blockiness(x) < 1.15
    assert blockiness(jpeg(torch.from_numpy(x), 30).numpy()) > 1.3
    with pytest.raises(ValueError, match=r"quality must be in 1\.\.100, got 0"):
        jpeg(torch.from_numpy(x), 0)


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_clean_is_todays_bicubic_protocol(scale: int, dtype: torch.dtype) -> None:
    hr = torch.from_numpy(smooth_image(12 * scale, 8 * scale, seed=scale)).to(dtype)
    lr, applied = degrade(hr, scale, CLEAN, scale)
    assert applied.steps == (Downscale("bicubic", scale),)
    assert lr.dtype == dtype
    assert torch.equal(lr, quantize(imresize(hr, 1.0 / scale)))
    assert torch.equal(lr, bicubic_protocol(hr, scale))


def test_same_seed_same_lr_and_replay() -> None:
    hr = torch.from_numpy(smooth_image(48, 48, seed=3)).float()
    outs = {}
    always = dataclasses.replace(PHOTO, clean_prob=0.0)  # clean draws are alike by design
    for seed in range(8):
        a = degrade(hr, 2, always, seed)
        b = degrade(hr, 2, always, np.random.default_rng(seed))
        assert torch.equal(a.lr, b.lr) and a.applied == b.applied
        assert torch.equal(apply_steps(hr, a.applied), a.lr)
        outs[seed] = a.lr
    for s in range(7):
        assert not torch.equal(outs[s], outs[s + 1])
    # A generator is advanced: two calls in a row differ.
    g = np.random.default_rng(0)
    assert degrade(hr, 2, always, g).applied != degrade(hr, 2, always, g).applied
    assert degrade(hr, 2, PHOTO, 5).applied == degrade(hr, 2, PHOTO, 5).applied


def test_lr_is_aligned_with_hr_blocks() -> None:
    # A bright s×s block at LR position (i, j): the LR response is centred on (i, j) whatever
    # the (point-symmetric) blur and the downscaler.
    for scale in (2, 3, 4):
        hr = torch.zeros(3, 16 * scale, 16 * scale, dtype=torch.float64)
        i, j = 7, 9
        hr[:, i * scale : (i + 1) * scale, j * scale : (j + 1) * scale] = 1.0
        for pre in (GaussianBlur(1.5, 0.6, 30.0), MotionBlur(5.0, 60.0)):
            for method in ("bicubic", "bilinear", "area"):
                lr = Downscale(method, scale).apply(pre.apply(hr))[0]
                yy, xx = torch.meshgrid(
                    torch.arange(16.0, dtype=torch.float64),
                    torch.arange(16.0, dtype=torch.float64),
                    indexing="ij",
                )
                total = lr.sum()
                assert float((lr * yy).sum() / total) == pytest.approx(i, abs=1e-9)
                assert float((lr * xx).sum() / total) == pytest.approx(j, abs=1e-9)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_dtypes_and_patch_function(scale: int) -> None:
    rng = np.random.default_rng(scale)
    patch = rng.integers(0, 256, (24 * scale, 12 * scale, 3), dtype=np.uint8)
    for seed in range(6):
        lr = degrade_patch(patch, scale, PHOTO, seed)
        assert lr.shape == (24, 12, 3) and lr.dtype == np.uint8
        hr = torch.from_numpy(patch.transpose(2, 0, 1).copy()).float() / 255
        ref = degrade(hr, scale, PHOTO, seed).lr
        np.testing.assert_array_equal(lr, np.round(ref.numpy() * 255).transpose(1, 2, 0))
    for method in ("bicubic", "bilinear", "area"):
        config = DegradationConfig(
            order=("downscale", "noise", "jpeg"),
            downscale_weights=((method, 1.0),),
            noise_prob=1.0,
            jpeg_prob=1.0,
            jpeg2_prob=1.0,
        )
        lr_t, applied = degrade(torch.rand(3, 8 * scale, 8 * scale), scale, config, 0)
        assert lr_t.shape == (3, 8, 8)
        assert applied.names == ("downscale", "noise", "jpeg", "jpeg")
        assert str(applied).startswith(f"downscale({method} ×{scale}) → noise(")


def test_steps_after_downscaling_and_scale_one() -> None:
    # Blur sizes are in LR pixels: multiplied by the scale only before the downscaling.
    before = DegradationConfig(order=("blur", "downscale"), blur_prob=1.0)
    after = DegradationConfig(order=("downscale", "blur"), blur_prob=1.0)
    for seed in range(20):
        b, a = sample_steps(before, 4, seed).steps[0], sample_steps(after, 4, seed).steps[1]
        assert isinstance(b, GaussianBlur | MotionBlur) and type(a) is type(b)
        if isinstance(b, GaussianBlur) and isinstance(a, GaussianBlur):
            assert b.sigma_x == pytest.approx(4 * a.sigma_x)
    # Scale 1 with noise only: the noise is on the image itself (denoising pairs).
    hr = torch.full((3, 64, 64), 0.5)
    config = DegradationConfig(
        order=("downscale", "noise"),
        noise_prob=1.0,
        noise_weights=(("gaussian", 1.0),),
        noise_sigma=(6.0, 6.0),
        noise_grey_prob=0.0,
    )
    lr, applied = degrade(hr, 1, config, 0)
    assert applied.steps[1] == Noise("gaussian", 6.0, False, applied.steps[1].seed)  # type: ignore[union-attr]
    assert float((lr - hr).std()) * 255 == pytest.approx(math.sqrt(36 + 1 / 12), rel=0.05)


def test_photo_statistics_over_many_draws() -> None:
    n, scale = 4000, 4
    rng = np.random.default_rng(123)
    draws = [sample_steps(PHOTO, scale, rng) for _ in range(n)]

    def near(count: int, p: float) -> bool:  # within 5 binomial standard deviations
        return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))

    kept = 1 - PHOTO.clean_prob  # the others are the protocol's bicubic only
    plain = [a for a in draws if a.steps == (Downscale("bicubic", scale),)]
    bicubic = dict(PHOTO.downscale_weights)["bicubic"] / sum(w for _, w in PHOTO.downscale_weights)
    chance = (1 - PHOTO.blur_prob) * bicubic * (1 - PHOTO.noise_prob) * (1 - PHOTO.jpeg_prob)
    assert PHOTO.clean_prob > 0 and near(len(plain), PHOTO.clean_prob + kept * chance)
    blurs = [s for a in draws for s in a if isinstance(s, GaussianBlur | MotionBlur)]
    assert near(len(blurs), kept * PHOTO.blur_prob)
    iso = [s for s in blurs if isinstance(s, GaussianBlur) and s.kind == "isotropic"]
    motion = [s for s in blurs if isinstance(s, MotionBlur)]
    m = len(blurs)
    assert abs(len(iso) / m - 0.5) < 0.05 and abs(len(motion) / m - 0.15) < 0.04
    lo, hi = PHOTO.blur_sigma
    sigmas = [
        v / scale for s in blurs if isinstance(s, GaussianBlur) for v in (s.sigma_x, s.sigma_y)
    ]
    assert lo <= min(sigmas) < lo + 0.02 and hi - 0.02 < max(sigmas) <= hi
    lengths = [s.length / scale for s in motion]
    assert PHOTO.motion_length[0] <= min(lengths) and max(lengths) <= PHOTO.motion_length[1]
    angles = [s.angle for s in blurs if not (isinstance(s, GaussianBlur) and s.kind == "isotropic")]
    assert 0 <= min(angles) < 5 and 175 < max(angles) < 180

    methods = [s.method for a in draws for s in a if isinstance(s, Downscale)]
    assert len(methods) == n and all(a.names.count("downscale") == 1 for a in draws)
    total = sum(w for _, w in PHOTO.downscale_weights)
    for method, weight in PHOTO.downscale_weights:
        extra = PHOTO.clean_prob if method == "bicubic" else 0.0
        assert near(methods.count(method), extra + kept * weight / total)

    noises = [s for a in draws for s in a if isinstance(s, Noise)]
    assert near(len(noises), kept * PHOTO.noise_prob)
    assert all(PHOTO.noise_sigma[0] <= s.sigma <= PHOTO.noise_sigma[1] for s in noises)
    assert abs(sum(s.grey for s in noises) / len(noises) - PHOTO.noise_grey_prob) < 0.05
    assert abs(sum(s.kind == "poisson" for s in noises) / len(noises) - 0.4) < 0.05
    assert len({s.seed for s in noises}) == len(noises)

    firsts = [a.steps[a.names.index("jpeg")].quality for a in draws if "jpeg" in a.names]  # type: ignore[union-attr]
    assert near(len(firsts), kept * PHOTO.jpeg_prob)
    assert min(firsts) == 30 and max(firsts) == 95
    seconds = [a.steps[-1].quality for a in draws if a.names.count("jpeg") == 2]  # type: ignore[union-attr]
    assert near(len(seconds), kept * PHOTO.jpeg_prob * PHOTO.jpeg2_prob)
    assert min(seconds) >= 60 and max(seconds) <= 95
    # The order is the configured one.
    rank = {name: k for k, name in enumerate(PHOTO.order)}
    assert all(list(a.names) == sorted(a.names, key=rank.__getitem__) for a in draws)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("blur_prob", 1.5),
        ("noise_prob", -0.1),
        ("jpeg2_prob", "often"),
        ("blur_sigma", (0.0, 1.0)),
        ("blur_sigma", (2.0, 1.0)),
        ("motion_length", (0.5, 2.0)),
        ("noise_sigma", (-1.0, 2.0)),
        ("jpeg_quality", (0, 90)),
        ("jpeg2_quality", (50, 101)),
        ("jpeg_quality", (30.5, 90)),
        ("downscale_weights", (("nearest", 1.0),)),
        ("downscale_weights", (("bicubic", 0.0),)),
        ("blur_weights", (("motion", -1.0), ("isotropic", 1.0))),
        ("noise_weights", (("gaussian", 1.0), ("gaussian", 1.0))),
        ("order", ("blur", "noise")),
        ("order", ("downscale", "sharpen")),
        ("order", ("downscale", "jpeg", "jpeg")),
    ],
)
def test_config_validation_names_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"DegradationConfig\.{field} "):
        dataclasses.replace(PHOTO, **{field: value})


def test_presets_and_boundary_errors() -> None:
    assert preset("photo") is PHOTO and preset("Clean") is CLEAN and preset("JPEG") is JPEG
    web = {"blur_prob": 0.0, "noise_prob": 0.15, "noise_sigma": [1, 4]}
    web["downscale_weights"] = [["bicubic", 0.8], ["bilinear", 0.1], ["area", 0.1]]
    assert configure("photo", web) == JPEG != PHOTO  # what the photo weights' ×3 run spelt out
    with pytest.raises(ValueError, match=r"'sharp'.*\['clean', 'jpeg', 'photo'\]"):
        preset("sharp")
    assert DegradationConfig(order=["downscale"]).order == ("downscale",)  # type: ignore[arg-type]
    hr = torch.rand(3, 12, 12)
    with pytest.raises(ValueError, match=r"12x12 is not a multiple of the scale 5"):
        degrade(hr, 5, CLEAN, 0)
    with pytest.raises(ValueError, match=r"\(3, H, W\), got shape \(1, 12, 12\)"):
        degrade(hr[:1], 2, CLEAN, 0)
    with pytest.raises(TypeError, match=r"dtype torch\.uint8"):
        degrade((hr * 255).to(torch.uint8), 2, CLEAN, 0)
    with pytest.raises(ValueError, match=r"scale must be an integer >= 1, got 2\.5"):
        degrade(hr, 2.5, CLEAN, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="rng must be"):
        degrade(hr, 2, CLEAN, 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="uint8"):
        degrade_patch(np.zeros((8, 8, 3)), 2, CLEAN, 0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        degrade_patch(np.zeros((8, 8), dtype=np.uint8), 2, CLEAN, 0)
    assert str(Applied((Downscale("area", 2), Jpeg(80)))) == "downscale(area ×2) → jpeg(q=80)"


def test_configure_replaces_fields_of_a_preset_and_checks_them() -> None:
    light = configure("photo", {"blur_prob": 0.1, "jpeg_quality": [50, 95], "order": ["downscale"]})
    assert light.blur_prob == 0.1 and light.jpeg_quality == (50, 95)
    assert light.order == ("downscale",) and light.noise_prob == PHOTO.noise_prob
    weights = configure("clean", {"downscale_weights": [["area", 1.0]]}).downscale_weights
    assert weights == (("area", 1.0),)
    assert configure("photo", {}) is PHOTO and configure("photo") is PHOTO
    with pytest.raises(ValueError, match=r"unknown degradation option 'sigma'; the options are"):
        configure("photo", {"sigma": 1.0})
    with pytest.raises(ValueError, match=r"DegradationConfig.noise_prob must be in \[0, 1\]"):
        configure("photo", {"noise_prob": -1})
    with pytest.raises(ValueError, match="unknown degradation preset"):
        configure("film", {"blur_prob": 0.0})


def test_docstring_examples() -> None:
    result = doctest.testmod(degrade_module)
    assert result.attempted > 10 and result.failed == 0
