"""The compiled Winograd F(4×4, 3×3) convolution (``subpixel.fast._kernels.winograd.Winograd3x3``,
_csrc/winograd.c) against ``torch.nn.functional.conv2d`` in float64.

Every instruction-set copy (on CPUs that have it), input channels 16-64, output channels
on both sides of 16 and 32 (the register blocks), heights and widths that do and do not
fill whole 4×4 tiles and blocks of 24 tiles, ReLU on and off, 1-3 threads, inputs and
outputs that are slices of larger tensors (the rest must stay untouched); and the
arguments it declines. Skipped, with the reason, where the extension was not built.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from subpixel.fast._kernels import winograd

pytestmark = pytest.mark.skipif(not winograd.available(), reason="subpixel._winograd was not built")


def _reference(x: torch.Tensor, wt: torch.Tensor, b: torch.Tensor, relu: bool) -> torch.Tensor:
    """``F.conv2d`` (rows valid, one zero column each side) in float64, channels last."""
    z = F.conv2d(x.double().permute(2, 0, 1)[None], wt.double(), b.double(), padding=(0, 1))
    z = z[0].permute(1, 2, 0)
    return z.relu() if relu else z


def _tolerance(x: torch.Tensor, wt: torch.Tensor) -> float:
    """float32 Winograd error bound: a few ulps of the largest sum of |products|."""
    bound = x.abs().max() * wt.abs().sum((1, 2, 3)).max()
    return 2e-6 * float(bound) + 1e-6


@pytest.fixture
def isa_module() -> Iterator[Any]:
    """The extension, its instruction-set limit restored afterwards."""
    from subpixel import _winograd

    limit = _winograd.set_isa(2)
    _winograd.set_isa(limit)
    yield _winograd
    _winograd.set_isa(limit)


CASES = [  # rows (input), width, c_in, c_out
    (3, 1, 16, 1),
    (6, 4, 16, 16),
    (7, 5, 32, 9),
    (10, 13, 64, 32),
    (9, 97, 32, 4),  # 25 tiles: a second block of one tile
    (20, 37, 48, 40),  # c_out padded to 48: 16-channel blocks
    (12, 30, 16, 64),
    (41, 101, 64, 33),
    (5, 200, 32, 16),
]


@pytest.mark.parametrize("isa", [0, 1, 2])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_equals_conv2d_float64(isa_module: Any, isa: int, case: tuple[int, ...]) -> None:
    rows, width, c_in, c_out = case
    isa_module.set_isa(isa)
    g = torch.Generator().manual_seed(sum(case) * 10 + isa)
    wt = torch.randn(c_out, c_in, 3, 3, generator=g)
    b = torch.randn(c_out, generator=g)
    conv = winograd.Winograd3x3.create(wt, b)
    assert conv is not None
    for relu in (False, True):
        x = torch.randn(rows, width, c_in, generator=g)
        out = torch.full((rows - 2, width, c_out), float("nan"))
        assert conv(x, out, relu=relu, threads=1 + (rows % 3))
        diff = (out.double() - _reference(x, wt, b, relu)).abs().max().item()
        assert diff <= _tolerance(x, wt), (relu, diff)


def test_slices_in_and_out_and_untouched_rest() -> None:
    """Input rows and pixels with gaps, output written into a window of a larger tensor."""
    g = torch.Generator().manual_seed(7)
    wt, b = torch.randn(9, 32, 3, 3, generator=g), torch.randn(9, generator=g)
    conv = winograd.Winograd3x3.create(wt, b)
    assert conv is not None
    big_in = torch.randn(30, 50, 40, generator=g)
    x = big_in[3:21:2, 5:45:2, 4:36]  # row stride 2·50·40, pixel stride 80, channels unit
    big_out = torch.full((20, 30, 12), -7.0)
    out = big_out[2:9, 4:24, 1:10]
    assert conv(x, out, relu=False)
    ref = _reference(x, wt, b, relu=False)
    assert (out.double() - ref).abs().max().item() <= _tolerance(x, wt)
    rest = big_out.clone()
    rest[2:9, 4:24, 1:10] = -7.0
    assert torch.equal(rest, torch.full_like(big_out, -7.0))


@pytest.mark.parametrize("c_out", [4, 16, 32])
def test_accumulate_adds_to_out_before_relu(c_out: int) -> None:
    g = torch.Generator().manual_seed(c_out)
    wt, b = torch.randn(c_out, 32, 3, 3, generator=g), torch.randn(c_out, generator=g)
    conv = winograd.Winograd3x3.create(wt, b)
    assert conv is not None
    x = torch.randn(11, 29, 32, generator=g)
    start = 20 * torch.randn(9, 29, c_out, generator=g)
    for relu in (False, True):
        out = start.clone()
        assert conv(x, out, relu=relu, accumulate=True)
        ref = _reference(x, wt, b, relu=False) + start.double()
        ref = ref.relu() if relu else ref
        assert (out.double() - ref).abs().max().item() <= _tolerance(x, wt) + 1e-5


def test_thread_counts_agree_bit_for_bit() -> None:
    """Each tile is computed the same way whichever thread takes it."""
    g = torch.Generator().manual_seed(3)
    wt, b = torch.randn(32, 64, 3, 3, generator=g), torch.randn(32, generator=g)
    conv = winograd.Winograd3x3.create(wt, b)
    assert conv is not None
    x = torch.randn(66, 150, 64, generator=g)
    outs = []
    for threads in (1, 2, 3):
        out = torch.empty(64, 150, 32)
        assert conv(x, out, relu=True, threads=threads)
        outs.append(out)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_declines_what_it_does_not_take() -> None:
    g = torch.Generator().manual_seed(0)
    assert winograd.Winograd3x3.create(torch.randn(4, 8, 3, 3), torch.randn(4)) is None  # c_in
    assert winograd.Winograd3x3.create(torch.randn(4, 16, 5, 5), torch.randn(4)) is None  # 5×5
    assert winograd.Winograd3x3.create(torch.randn(4, 16, 3, 3), torch.randn(5)) is None  # bias
    conv = winograd.Winograd3x3.create(torch.randn(4, 16, 3, 3, generator=g), torch.zeros(4))
    assert conv is not None
    x = torch.randn(6, 5, 16)
    out = torch.full((4, 5, 4), 3.0)
    assert not conv(x.double(), out, relu=False)  # dtype
    assert not conv(torch.randn(6, 5, 32), out, relu=False)  # channels
    assert not conv(x, torch.empty(5, 5, 4), relu=False)  # output rows
    assert not conv(x[:2], out[:0], relu=False)  # fewer than 3 rows
    assert not conv(x.transpose(0, 1), out, relu=False)  # shape (5, 6, 16)
    assert not conv(torch.randn(6, 16, 5).transpose(1, 2), out, relu=False)  # channel stride
    overlapping = torch.full((42,), 3.0).as_strided((4, 5, 4), (10, 2, 1))  # pixels share
    assert not conv(x, overlapping, relu=False)
    assert torch.equal(out, torch.full((4, 5, 4), 3.0))  # nothing written
