"""MATLAB-compatible bicubic imresize against a literal, loop-based port of MATLAB's algorithm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from subpixel.resize import cubic, imresize, resize_matrix

# ---------------------------------------------------------------------------------------------
# Reference: a plain port of MATLAB's imresize.m (R2013-era, 'bicubic'), written with loops and
# MATLAB's 1-based indices, independent of subpixel.resize.
# ---------------------------------------------------------------------------------------------


def ref_cubic(x: float) -> float:
    """MATLAB imresize.m ``cubic``."""
    absx = abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    f = 0.0
    if absx <= 1:
        f += 1.5 * absx3 - 2.5 * absx2 + 1
    if 1 < absx <= 2:
        f += -0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2
    return f


def ref_contributions(
    in_length: int, out_length: int, scale: float, antialiasing: bool
) -> tuple[list[list[float]], list[list[int]]]:
    """MATLAB imresize.m ``contributions`` with ``kernel = @cubic``, ``kernel_width = 4``."""
    kernel_width = 4.0
    if scale < 1 and antialiasing:

        def h(x: float) -> float:
            return scale * ref_cubic(scale * x)

        kernel_width = kernel_width / scale
    else:
        h = ref_cubic
    weights: list[list[float]] = []
    indices: list[list[int]] = []
    p_taps = math.ceil(kernel_width) + 2
    for x in range(1, out_length + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - kernel_width / 2)
        row_idx = [left + p for p in range(p_taps)]
        row_w = [h(u - j) for j in row_idx]
        total = sum(row_w)
        weights.append([w / total for w in row_w])
        indices.append(row_idx)
    aux = list(range(1, in_length + 1)) + list(range(in_length, 0, -1))
    indices = [[aux[(j - 1) % len(aux)] for j in row] for row in indices]
    # kill = find(~any(weights, 1)): drop tap columns whose weight is zero for every output.
    keep = [p for p in range(p_taps) if any(row[p] != 0 for row in weights)]
    weights = [[row[p] for p in keep] for row in weights]
    indices = [[row[p] for p in keep] for row in indices]
    return weights, indices


def ref_resize_along_dim(
    img: np.ndarray, dim: int, weights: list[list[float]], indices: list[list[int]]
) -> np.ndarray:
    """MATLAB ``resizeAlongDim`` for a 2-D double image, one output pixel at a time."""
    out_length = len(weights)
    if dim == 0:
        out = np.zeros((out_length, img.shape[1]))
        for i in range(out_length):
            for c in range(img.shape[1]):
                acc = 0.0
                for w, j in zip(weights[i], indices[i], strict=True):
                    acc += w * img[j - 1, c]
                out[i, c] = acc
    else:
        out = np.zeros((img.shape[0], out_length))
        for r in range(img.shape[0]):
            for i in range(out_length):
                acc = 0.0
                for w, j in zip(weights[i], indices[i], strict=True):
                    acc += w * img[r, j - 1]
                out[r, i] = acc
    return out


def ref_imresize(
    img: np.ndarray,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    antialiasing: bool = True,
) -> np.ndarray:
    """MATLAB ``imresize(img, scale)`` / ``imresize(img, [rows cols])``, 'bicubic', 2-D double."""
    in_size = img.shape
    if size is not None:
        scales = [size[0] / in_size[0], size[1] / in_size[1]]
        out_size = [size[0], size[1]]
    else:
        assert scale is not None
        scales = [scale, scale] if isinstance(scale, (int, float)) else list(scale)
        out_size = [math.ceil(scales[0] * in_size[0]), math.ceil(scales[1] * in_size[1])]
    # [~, order] = sort(scale): stable, ascending -> the smallest scale first, rows on ties.
    order = sorted(range(2), key=lambda k: scales[k])
    out = img
    for dim in order:
        w, idx = ref_contributions(in_size[dim], out_size[dim], scales[dim], antialiasing)
        out = ref_resize_along_dim(out, dim, w, idx)
    return out


# ---------------------------------------------------------------------------------------------

SCALES = [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.6, 1.7]
SIZES = [(12, 9), (7, 13), (16, 16)]


@pytest.mark.parametrize("scale", SCALES, ids=lambda s: f"{s:.3g}")
@pytest.mark.parametrize("hw", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_matlab_port(scale: float, hw: tuple[int, int]) -> None:
    img = np.random.default_rng(hash((scale, hw)) % 2**32).random(hw)
    want = ref_imresize(img, scale)
    got = imresize(torch.from_numpy(img), scale)
    assert got.dtype == torch.float64
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 0.6, 3])
def test_no_antialias_matches_matlab_port(scale: float) -> None:
    img = np.random.default_rng(1).random((11, 10))
    want = ref_imresize(img, scale, antialiasing=False)
    got = imresize(torch.from_numpy(img), scale, antialias=False)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(5, 20), (24, 4), (9, 9), (1, 3)])
def test_size_argument_matches_matlab_port(size: tuple[int, int]) -> None:
    """Different scales per axis: exercises MATLAB's smallest-scale-first order."""
    img = np.random.default_rng(2).random((9, 10))
    want = ref_imresize(img, size=size)
    got = imresize(torch.from_numpy(img), size=size)
    assert tuple(got.shape) == size
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


def test_scale_pair_matches_matlab_port() -> None:
    img = np.random.default_rng(3).random((10, 8))
    want = ref_imresize(img, (2.5, 0.4))
    got = imresize(torch.from_numpy(img), (2.5, 0.4))
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    scale=st.sampled_from([0.2, 0.25, 0.3, 0.45, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0]),
    seed=st.integers(0, 2**16),
)
def test_matches_matlab_port_property(h: int, w: int, scale: float, seed: int) -> None:
    img = np.random.default_rng(seed).random((h, w))
    want = ref_imresize(img, scale)
    got = imresize(torch.from_numpy(img), scale)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


def test_batch_dims_resize_each_image() -> None:
    x = torch.rand(2, 3, 10, 7, dtype=torch.float64)
    got = imresize(x, 1 / 3)
    assert got.shape == (2, 3, 4, 3)
    for n in range(2):
        for c in range(3):
            want = ref_imresize(x[n, c].numpy(), 1 / 3)
            np.testing.assert_allclose(got[n, c].numpy(), want, rtol=0, atol=1e-12)
    assert imresize(torch.rand(5, 6, dtype=torch.float64), 2).shape == (10, 12)
    assert imresize(torch.rand(1, 2, 2, 5, 6), 2).shape == (1, 2, 2, 10, 12)


def test_float32_close_to_float64_reference() -> None:
    img = np.random.default_rng(4).random((13, 11))
    got = imresize(torch.from_numpy(img).float(), 1 / 4)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref_imresize(img, 1 / 4), rtol=0, atol=1e-6)


def test_half_precision_kept() -> None:
    x = torch.rand(8, 8, dtype=torch.float64)
    got = imresize(x.to(torch.bfloat16), 2)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.double(), imresize(x, 2), rtol=0, atol=3e-2)


def test_known_x2_weights() -> None:
    """×2 bicubic taps are (-3, 29, 111, -9)/128; at the border two taps fold onto pixel 1."""
    m = resize_matrix(6, 12, 2.0)
    np.testing.assert_allclose(m[4, :4].numpy(), np.array([-3, 29, 111, -9]) / 128, atol=1e-15)
    np.testing.assert_allclose(m[5, 1:5].numpy(), np.array([-9, 111, 29, -3]) / 128, atol=1e-15)
    # Output 1: taps at input 0 and -1 mirror onto 1 and 2 (1-based): (29+111)/128, (-9-3)/128.
    np.testing.assert_allclose(m[0, :3].numpy(), [140 / 128, -12 / 128, 0.0], atol=1e-15)


def test_cubic_kernel_values() -> None:
    xs = np.linspace(-2.5, 2.5, 41)
    np.testing.assert_allclose(cubic(xs), [ref_cubic(v) for v in xs], rtol=0, atol=1e-15)


def test_identity_at_scale_one() -> None:
    x = torch.rand(2, 9, 7, dtype=torch.float64)
    assert torch.equal(imresize(x, 1.0), x)
    assert torch.equal(imresize(x, size=(9, 7)), x)
    x32 = x.float()
    assert torch.equal(imresize(x32, 1), x32)


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 0.6, 1.7, 3])
def test_constant_stays_constant(scale: float) -> None:
    x = torch.full((2, 13, 10), 0.37, dtype=torch.float64)
    y = imresize(x, scale)
    torch.testing.assert_close(y, torch.full_like(y, 0.37), rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    ("hw", "scale", "want"),
    [
        ((7, 13), 1 / 2, (4, 7)),
        ((7, 13), 1 / 3, (3, 5)),
        ((7, 13), 1.7, (12, 23)),  # ceil(11.9), ceil(22.1)
        ((10, 10), 0.6, (6, 6)),
        ((256, 255), 1 / 4, (64, 64)),
        ((1, 1), 3, (3, 3)),
    ],
)
def test_output_size_ceil_rule(hw: tuple[int, int], scale: float, want: tuple[int, int]) -> None:
    assert tuple(imresize(torch.zeros(hw), scale).shape) == want


def test_rows_of_weight_matrices_sum_to_one() -> None:
    for n_in, n_out, s in [(10, 5, 0.5), (10, 30, 3.0), (7, 4, 0.6), (3, 1, 1 / 3)]:
        m = resize_matrix(n_in, n_out, s)
        assert m.shape == (n_out, n_in)
        torch.testing.assert_close(m.sum(1), torch.ones(n_out, dtype=torch.float64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x = torch.rand(2, 3, 17, 12, dtype=torch.float64)
    for s in (1 / 3, 2.0):
        torch.testing.assert_close(imresize(x.cuda(), s).cpu(), imresize(x, s))


def test_errors() -> None:
    x = torch.rand(4, 4)
    with pytest.raises(TypeError, match="floating"):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), 2)
    with pytest.raises(TypeError, match="Tensor"):
        imresize(np.zeros((4, 4)), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(4,\)"):
        imresize(torch.rand(4), 2)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(x, 2, size=(8, 8))
    with pytest.raises(ValueError, match="positive"):
        imresize(x, -2)
    with pytest.raises(ValueError, match="positive"):
        imresize(x, float("nan"))
    with pytest.raises(ValueError, match="size"):
        imresize(x, size=(0, 3))
    with pytest.raises(ValueError, match="H, W >= 1"):
        imresize(torch.rand(0, 4), 2)
