"""subpixel.applications.checkerboard: the score against its DFT definition (numpy.fft), laws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from subpixel import SubPixelConv2d
from subpixel.applications.checkerboard import checkerboard_energy, checkerboard_score


def _reference(x: np.ndarray, rh: int, rw: int) -> tuple[np.ndarray, np.ndarray]:
    """The definition, literally: energy at (m·H/r_h, n·W/r_w) ≠ (0, 0) and outside DC."""
    h, w = x.shape[-2:]
    energy = np.abs(np.fft.fft2(x)) ** 2
    periodic = sum(
        energy[..., m * h // rh, n * w // rw]
        for m in range(rh)
        for n in range(rw)
        if (m, n) != (0, 0)
    )
    total = energy.sum(axis=(-2, -1)) - energy[..., 0, 0]
    return np.asarray(periodic), total


@pytest.mark.parametrize(
    ("shape", "factor"),
    [((3, 12, 18), (2, 2)), ((2, 2, 12, 18), (3, 2)), ((12, 24), (4, 6)), ((5, 9, 9), (1, 3))],
)
def test_matches_fft_definition(shape: tuple[int, ...], factor: tuple[int, int]) -> None:
    x = np.random.default_rng(1).standard_normal(shape) + 3.0
    periodic, total = checkerboard_energy(torch.from_numpy(x), factor)
    ref_p, ref_t = _reference(x, *factor)
    np.testing.assert_allclose(periodic.numpy(), ref_p, rtol=1e-9)
    np.testing.assert_allclose(total.numpy(), ref_t, rtol=1e-9)
    expected = float(ref_p.sum() / ref_t.sum())
    assert checkerboard_score(torch.from_numpy(x), factor) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("r", [2, 3, 4])
@pytest.mark.parametrize("shift", [0, 1])
def test_nearest_upsampled_scores_zero(r: int, shift: int) -> None:
    low = torch.rand(6, 3, 7, 5, dtype=torch.float64)
    up = low.repeat_interleave(r, -2).repeat_interleave(r, -1).roll((shift, shift), (-2, -1))
    assert checkerboard_score(up, r) < 1e-12
    # The DFT definition agrees: the box filter's zeros sit exactly on the periodic bins...
    ref_p, ref_t = _reference(up.numpy(), r, r)
    assert float(ref_p.sum() / ref_t.sum()) < 1e-12
    # ...while nearest upsampling does leave energy elsewhere (its side lobes).
    energy = np.abs(np.fft.fft2(up.numpy())) ** 2
    assert energy[..., 1, 1].sum() > 1e-6  # (1, 1) is not a periodic bin: H/r = 7, W/r = 5


def test_icnr_layer_zero_default_and_transposed_not() -> None:
    x = torch.randn(4, 8, 9, 9)
    icnr = SubPixelConv2d(8, 3, 3, 2)
    assert checkerboard_score(icnr(x), 2) < 1e-12
    default = SubPixelConv2d(8, 3, 3, 2, init="default")
    assert checkerboard_score(default(x), 2) > 1e-3
    transposed = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)
    assert checkerboard_score(transposed(x), 2) > 1e-3


def test_pure_pattern_constant_and_noise() -> None:
    y, x = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    assert checkerboard_score((-1.0) ** (y + x), 2) == pytest.approx(1.0)
    assert checkerboard_score((-1.0) ** y + 5.0, 2) == pytest.approx(1.0)
    assert checkerboard_score(torch.full((2, 8, 8), 3.0), 2) == 0.0
    noise = torch.randn(2000, 16, 16, generator=torch.Generator().manual_seed(0))
    assert checkerboard_score(noise, 2) == pytest.approx(3 / 255, rel=0.05)


def test_invariant_to_offset_and_gain() -> None:
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    base = checkerboard_score(x, 2)
    assert checkerboard_score(2.5 * x - 7.0, 2) == pytest.approx(base, rel=1e-9)


def test_smooth_bilinear_low_but_not_zero() -> None:
    low = torch.rand(4, 1, 8, 8, dtype=torch.float64)
    up = F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
    score = checkerboard_score(up, 2)
    assert 0 < score < checkerboard_score(torch.rand(4, 1, 16, 16, dtype=torch.float64), 2)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"13×12 is not a multiple of the factor \(2, 2\)"):
        checkerboard_score(torch.rand(13, 12), 2)
    with pytest.raises(ValueError, match=r"\(\*, H, W\)"):
        checkerboard_score(torch.rand(12), 2)
    with pytest.raises(TypeError, match="real"):
        checkerboard_score(torch.rand(4, 4, dtype=torch.complex64), 2)
    with pytest.raises(TypeError, match="factor"):
        checkerboard_score(torch.rand(4, 4), (2, 2, 2))
    with pytest.raises(TypeError, match="factor"):
        checkerboard_score(torch.rand(4, 4), True)
    with pytest.raises(ValueError, match="factor must be >= 1"):
        checkerboard_score(torch.rand(4, 4), 0)
