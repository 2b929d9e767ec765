"""subpixel.init.icnr_: checked against nearest-neighbour upsampling of a plain convolution.

The channel -> pixel mapping used here is written from the order table of
``docs/orders.md`` (mixed radix over the order string), independently of ``subpixel.ops``.
"""

from __future__ import annotations

import doctest
import itertools

import pytest
import torch
import torch.nn.functional as F

import subpixel.init
from orders_reference import channel_index, reference_shuffle
from subpixel.init import icnr_

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


CASES = [
    (1, "cw", (3,)),
    (1, "wc", (2,)),
    (1, "cw", (1,)),
    (2, "chw", (2, 2)),
    (2, "hwc", (2, 3)),
    (2, "cwh", (3, 2)),
    (2, "whc", (1, 4)),
    (2, "hcw", (2, 3)),
    (2, "wch", (3, 1)),
    (3, "cdhw", (1, 2, 3)),
    (3, "dhwc", (2, 2, 2)),
    (3, "cwhd", (2, 1, 3)),
    (3, "hdcw", (3, 2, 1)),
]


@pytest.mark.parametrize(("n", "order", "factors"), CASES)
def test_icnr_is_nearest_upsampling_of_a_plain_conv(
    n: int, order: str, factors: tuple[int, ...]
) -> None:
    channels, c_in, k = 3, 2, 3
    block = 1
    for f in factors:
        block *= f
    weight = torch.empty(channels * block, c_in, *(k,) * n, dtype=torch.float64)
    bias = torch.randn(channels * block, dtype=torch.float64)
    out = icnr_(weight, factors, order=order, bias=bias)
    assert out is weight
    x = torch.randn(2, c_in, *(4,) * n, dtype=torch.float64)
    y = reference_shuffle(CONV[n](x, weight, bias, padding="same"), factors, order)

    # Every sub-pixel of every block has the very same weights and bias ...
    for c in range(channels):
        idx = [
            channel_index(order, c, offsets, channels, factors)
            for offsets in itertools.product(*(range(f) for f in factors))
        ]
        assert torch.equal(weight[idx], weight[idx[:1]].expand_as(weight[idx])), c
        assert torch.equal(bias[idx], bias[idx[:1]].expand(len(idx))), c
    # ... so every output inside a block is the same (to the conv backend's rounding) ...
    for offsets in itertools.product(*(range(f) for f in factors)):
        where = (..., *(slice(o, None, f) for o, f in zip(offsets, factors, strict=True)))
        first = (..., *(slice(0, None, f) for f in factors))
        assert torch.allclose(y[where], y[first], rtol=0, atol=1e-12), offsets

    # ... and the layer is nearest-neighbour upsampling of a conv with the sub-kernel.
    firsts = [channel_index(order, c, (0,) * n, channels, factors) for c in range(channels)]
    plain = CONV[n](x, weight[firsts], bias[firsts], padding="same")
    expected = F.interpolate(plain, scale_factor=factors, mode="nearest")
    assert torch.allclose(y, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", ["tensorflow", "caffe", "keras-article", "torch"])
def test_icnr_accepts_aliases(order: str) -> None:
    weight = torch.empty(4 * 6, 3, 3, 3)
    icnr_(weight, (2, 3), order=order)
    canonical = {"tensorflow": "hwc", "caffe": "cwh", "keras-article": "whc", "torch": "chw"}
    idx = [
        [channel_index(canonical[order], c, (i, j), 4, (2, 3)) for i in range(2) for j in range(3)]
        for c in range(4)
    ]
    for c in range(4):
        rows = weight[idx[c]]
        assert torch.equal(rows, rows[:1].expand_as(rows))


def test_default_order_is_pytorch_order() -> None:
    for n in (1, 2, 3):
        weight = torch.empty(2 * 2**n, 1, *(1,) * n)
        icnr_(weight, 2)
        assert torch.equal(weight.view(2, 2**n), weight.view(2, 2**n)[:, :1].expand(2, 2**n))


def test_bias_takes_each_blocks_first_value() -> None:
    bias = torch.arange(2 * 6, dtype=torch.float64)
    icnr_(torch.empty(12, 1, 1, 1), (2, 3), order="hwc", bias=bias)
    # hwc: channel (i·3 + j)·2 + c, so the block of c starts at channel c.
    assert bias.tolist() == [0.0, 1.0] * 6


def test_initializer_gets_the_sub_kernel_shape() -> None:
    seen: list[tuple[int, ...]] = []

    def init(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape))
        return t.fill_(0.5)

    weight = torch.empty(5 * 4, 3, 3, 2)
    icnr_(weight, 2, initializer=init)
    assert seen == [(5, 3, 3, 2)]
    assert torch.all(weight == 0.5)


def test_default_initializer_is_he_normal() -> None:
    weight = torch.empty(64 * 4, 64, 3, 3)
    icnr_(weight, 2)
    expected_std = (2.0 / (64 * 9)) ** 0.5
    sub = weight[::4]
    assert abs(sub.std().item() / expected_std - 1) < 0.03
    assert abs(sub.mean().item()) < 0.01 * expected_std * 10


def test_parameter_in_place_without_autograd_history() -> None:
    conv = torch.nn.Conv2d(3, 12, 3)
    out = icnr_(conv.weight, 2, bias=conv.bias)
    assert out is conv.weight and out.grad_fn is None and out.requires_grad


@pytest.mark.parametrize(
    ("shape", "factor", "order", "match"),
    [
        ((7, 2, 3, 3), 2, None, "multiple"),
        ((8, 2), 2, None, "1-, 2- or 3-D"),
        ((8, 2, 3, 3), (2, 2, 2), None, "axes"),
        ((8, 2, 3, 3), 2, "cdhw", "spatial axes"),
        ((8, 2, 3, 3), 0, None, ">= 1"),
    ],
)
def test_errors(
    shape: tuple[int, ...], factor: int | tuple[int, ...], order: str | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        icnr_(torch.empty(shape), factor, order=order)


def test_type_errors_and_bias_shape() -> None:
    with pytest.raises(TypeError):
        icnr_([[1.0]], 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"bias of shape \(5,\)"):
        icnr_(torch.empty(8, 1, 3, 3), 2, bias=torch.empty(5))


def test_docstring_examples() -> None:
    result = doctest.testmod(subpixel.init)
    assert result.attempted > 3 and result.failed == 0
