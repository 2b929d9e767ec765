"""BT.601 studio-range YCbCr against the formula, published 8-bit colour-bar values and inverses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subpixel.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb


def formula_ycbcr(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MATLAB's rgb2ycbcr for double images, written out (8-bit coefficients / 255)."""
    y = (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255
    cb = (128 - 37.797 * r - 74.203 * g + 112.0 * b) / 255
    cr = (128 + 112.0 * r - 93.786 * g - 18.214 * b) / 255
    return np.stack([y, cb, cr])


# 100 % colour bars in 8-bit BT.601 studio range (the standard table: R, G, B -> Y, Cb, Cr).
COLOUR_BARS = [
    ((1, 1, 1), (235, 128, 128)),  # white
    ((1, 1, 0), (210, 16, 146)),  # yellow
    ((0, 1, 1), (170, 166, 16)),  # cyan
    ((0, 1, 0), (145, 54, 34)),  # green
    ((1, 0, 1), (106, 202, 222)),  # magenta
    ((1, 0, 0), (81, 90, 240)),  # red
    ((0, 0, 1), (41, 240, 110)),  # blue
    ((0, 0, 0), (16, 128, 128)),  # black
]


def test_formula_float64() -> None:
    x = torch.rand(2, 3, 7, 5, dtype=torch.float64)
    want = np.stack([formula_ycbcr(*img.numpy()) for img in x])
    got = rgb_to_ycbcr(x)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-14)


def test_formula_float32_keeps_dtype() -> None:
    x = torch.rand(3, 6, 4, dtype=torch.float32)
    got = rgb_to_ycbcr(x)
    assert got.dtype == torch.float32
    want = formula_ycbcr(*x.double().numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("rgb", "ycc"), COLOUR_BARS)
def test_colour_bars_8bit(rgb: tuple[int, int, int], ycc: tuple[int, int, int]) -> None:
    x = torch.tensor(rgb, dtype=torch.float64)
    got = rgb_to_ycbcr(x, channel_dim=0) * 255
    assert np.round(got.numpy()).astype(int).tolist() == list(ycc)


def test_white_and_black_luma() -> None:
    white = torch.ones(1, 3, 2, 2, dtype=torch.float64)
    black = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(
        rgb_to_y(white),
        torch.full((1, 1, 2, 2), 235 / 255.0, dtype=torch.float64),
        rtol=0,
        atol=1e-15,
    )
    torch.testing.assert_close(
        rgb_to_y(black),
        torch.full((1, 1, 2, 2), 16 / 255.0, dtype=torch.float64),
        rtol=0,
        atol=1e-15,
    )


def test_red_exact_values() -> None:
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    got = (rgb_to_ycbcr(red, channel_dim=0) * 255).tolist()
    assert got == pytest.approx([81.481, 90.203, 240.0], abs=1e-12)


def test_round_trip_identity() -> None:
    x = torch.rand(4, 3, 9, 11, dtype=torch.float64)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, rtol=0, atol=1e-12)
    ycc = torch.rand(4, 3, 9, 11, dtype=torch.float64)
    torch.testing.assert_close(rgb_to_ycbcr(ycbcr_to_rgb(ycc)), ycc, rtol=0, atol=1e-12)


def test_inverse_matches_analytic_bt601() -> None:
    """The textbook inverse: R = 255/219 (Y-16) + 255/224·1.402 (Cr-128), etc. (8-bit levels).

    MATLAB's forward matrix is the BT.601 matrix rounded to 3 decimals, so agreement is ~1e-4.
    """
    ycc = torch.rand(3, 5, 5, dtype=torch.float64)
    y, cb, cr = (ycc * 255).numpy()
    kr, kb = 0.299, 0.114
    kg = 1 - kr - kb
    ys = 255 / 219 * (y - 16)
    cs = 255 / 224
    r = ys + cs * 2 * (1 - kr) * (cr - 128)
    b = ys + cs * 2 * (1 - kb) * (cb - 128)
    g = ys - cs * (2 * (1 - kb) * kb / kg * (cb - 128) + 2 * (1 - kr) * kr / kg * (cr - 128))
    want = np.stack([r, g, b]) / 255
    np.testing.assert_allclose(ycbcr_to_rgb(ycc).numpy(), want, rtol=0, atol=2e-4)


def test_no_clamping() -> None:
    ycc = torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64)  # Y below studio black
    rgb = ycbcr_to_rgb(ycc, channel_dim=0)
    assert (rgb < 0).all()
    out_of_range = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)
    back = ycbcr_to_rgb(rgb_to_ycbcr(out_of_range, channel_dim=0), channel_dim=0)
    torch.testing.assert_close(back, out_of_range, rtol=0, atol=1e-12)


def test_rgb_to_y_is_first_channel_and_keeps_dim() -> None:
    x = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    y = rgb_to_y(x)
    assert y.shape == (2, 1, 6, 7)
    torch.testing.assert_close(y, rgb_to_ycbcr(x)[:, :1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        y[:, 0].numpy(), formula_ycbcr(*x.numpy().transpose(1, 0, 2, 3))[0], atol=1e-14
    )


@pytest.mark.parametrize("channel_dim", [0, 1, 2, -1, -2, -3])
def test_channel_dim(channel_dim: int) -> None:
    base = torch.rand(3, 4, 5, dtype=torch.float64)  # channels first
    x = torch.movedim(base, 0, channel_dim)
    got = rgb_to_ycbcr(x, channel_dim=channel_dim)
    assert got.shape == x.shape
    torch.testing.assert_close(torch.movedim(got, channel_dim, 0), rgb_to_ycbcr(base))
    y = rgb_to_y(x, channel_dim=channel_dim)
    assert y.shape[channel_dim] == 1
    torch.testing.assert_close(ycbcr_to_rgb(got, channel_dim=channel_dim), x, rtol=0, atol=1e-12)


def test_numpy_input() -> None:
    x = np.random.default_rng(0).random((5, 4, 3))  # channels last
    got = rgb_to_ycbcr(x, channel_dim=-1)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float64
    np.testing.assert_allclose(
        np.moveaxis(got, -1, 0), formula_ycbcr(*np.moveaxis(x, -1, 0)), atol=1e-14
    )
    np.testing.assert_allclose(ycbcr_to_rgb(got, channel_dim=-1), x, atol=1e-12)
    assert rgb_to_y(x.astype(np.float32), channel_dim=-1).dtype == np.float32
    assert rgb_to_y(x, channel_dim=-1).shape == (5, 4, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(rgb_to_ycbcr(x.cuda()).cpu(), rgb_to_ycbcr(x))


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 5\)"):
        rgb_to_ycbcr(torch.rand(2, 4, 5, 5))
    with pytest.raises(ValueError, match="channel_dim"):
        rgb_to_y(torch.rand(3, 5), channel_dim=3)
    with pytest.raises(TypeError, match="floating"):
        rgb_to_ycbcr(torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(TypeError, match="floating"):
        ycbcr_to_rgb(np.zeros((3, 2, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="list"):
        rgb_to_y([[0.0], [0.0], [0.0]])  # type: ignore[type-var]
