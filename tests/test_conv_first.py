"""The compiled first ESPCN layer (``subpixel.fast._kernels.conv_first.rows``, _csrc/conv_first.c)
against ``torch.nn.functional.conv2d`` in float64.

Every instruction-set copy (on CPUs that have it), kernel sizes 1-9, channel counts that
are and are not multiples of the vector widths, widths on both sides of the pixel blocks,
ReLU on and off, 1-3 threads, outputs written into slices of larger tensors (the rest
must stay untouched), inputs that are slices too; and the arguments it declines. Skipped,
with the reason, where the extension was not built (no C compiler at install time).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from subpixel.fast._kernels import conv_first

pytestmark = pytest.mark.skipif(
    not conv_first.available(), reason="subpixel._conv_first was not built"
)

ROWS = (1, 3, 8)
WIDTHS = (1, 5, 16, 33, 200)


def _reference(padded: torch.Tensor, wt: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``F.conv2d`` in float64 as (rows, width, c_out)."""
    z = F.conv2d(padded.double()[None, None], wt.double()[:, None], b.double())
    return z[0].permute(1, 2, 0)


@pytest.fixture
def isa_limit() -> Iterator[Any]:
    """Restores the module's instruction-set limit and torch's threads afterwards."""
    from subpixel import _conv_first

    limit = _conv_first.set_isa(2)
    _conv_first.set_isa(limit)
    threads = torch.get_num_threads()
    yield _conv_first
    _conv_first.set_isa(limit)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("c_out", [1, 7, 16, 17, 64, 100])
@pytest.mark.parametrize("k", [1, 3, 5, 9])
def test_equals_conv2d_float64(isa_limit: Any, k: int, c_out: int) -> None:
    g = torch.Generator().manual_seed(k * 1000 + c_out)
    wt = torch.randn(c_out, k, k, generator=g)
    b = torch.randn(c_out, generator=g)
    for i, width in enumerate(WIDTHS):
        rows = ROWS[(i + k) % len(ROWS)]
        hp, wp = rows + k - 1, width + k - 1
        # the input is a slice too (row stride wp + 3) every other width
        plane = torch.randn(hp + 2, wp + 3, generator=g)
        padded = plane[1 : 1 + hp, 2 : 2 + wp] if i % 2 else plane[:hp, :wp].contiguous()
        ref = _reference(padded, wt, b)
        mag = _reference(padded.abs(), wt.abs(), b.abs())  # scale of the terms summed
        tol = 1e-5 * mag + 1e-6
        for isa in (0, 1, 2):
            isa_limit.set_isa(isa)
            assert isa_limit.isa() <= isa
            for relu in (False, True):
                want = ref.clamp(min=0.0) if relu else ref
                for threads in (1, 2, 3):
                    sliced = (isa + threads + relu) % 2 == 1
                    if sliced:  # into a slice of a larger tensor, NaN around it
                        big = torch.full((rows + 2, width + 3, c_out + 5), math.nan)
                        out = big[1 : 1 + rows, 2 : 2 + width, 3 : 3 + c_out]
                    else:
                        out = torch.full((rows, width, c_out), math.nan)
                    assert conv_first.rows(padded, wt, b, out, relu, threads)
                    err = (out.double() - want).abs()
                    assert bool((err <= tol).all()), (isa, relu, threads, width, err.max())
                    if sliced:
                        mask = torch.ones(big.shape, dtype=torch.bool)
                        mask[1 : 1 + rows, 2 : 2 + width, 3 : 3 + c_out] = False
                        assert bool(big[mask].isnan().all())  # untouched


def test_weight_layout_bias_only_and_nan(isa_limit: Any) -> None:
    """(c_out, 1, k, k) weights as F.conv2d takes them; zero weights give the bias (ReLU'd);
    ReLU keeps NaN (as torch.relu does)."""
    g = torch.Generator().manual_seed(7)
    padded = torch.randn(14, 40, generator=g)
    wt = torch.randn(20, 1, 5, 5, generator=g)
    b = torch.randn(20, generator=g)
    out = torch.empty(10, 36, 20)
    assert conv_first.rows(padded, wt, b, out, False)
    ref = F.conv2d(padded.double()[None, None], wt.double(), b.double())[0].permute(1, 2, 0)
    assert torch.allclose(out.double(), ref, rtol=1e-5, atol=1e-5)
    columns = torch.empty(36, 10, 20).transpose(0, 1)  # pixel stride > row stride: taken
    assert conv_first.rows(padded, wt, b, columns, False)
    assert torch.allclose(columns.double(), ref, rtol=1e-5, atol=1e-5)
    assert conv_first.rows(padded, torch.zeros(20, 5, 5), b, out, True)
    assert torch.equal(out, b.clamp(min=0.0).expand(10, 36, 20))
    padded[4, 7] = math.nan  # reaches outputs (y, x) with y <= 4 < y + 5, x <= 7 < x + 5
    for isa in (0, 1, 2):
        isa_limit.set_isa(isa)
        assert conv_first.rows(padded, wt, b, out, True)
        assert bool(out[0:5, 3:8].isnan().all())
        assert int(out.isnan().sum()) == 5 * 5 * 20


def test_declined_arguments_write_nothing() -> None:
    padded = torch.randn(8, 12)
    wt = torch.randn(16, 3, 3)
    b = torch.randn(16)
    out = torch.full((6, 10, 16), 5.0)

    def declined(*args: object) -> bool:
        return not conv_first.rows(*args)  # type: ignore[arg-type]

    assert declined(padded.double(), wt, b, out, True)
    assert declined(padded, wt.double(), b, out, True)
    assert declined(padded, wt, b.half(), out, True)
    assert declined(padded, wt, b, out.double(), True)
    assert declined(padded, wt, b, torch.empty(6, 10, 16, dtype=torch.bfloat16), True)
    assert declined(padded[:, :11], wt, b, out, True)  # padded shape does not match out
    assert declined(padded[:7], wt, b, out, True)
    assert declined(padded[None], wt, b, out, True)
    assert declined(padded.t().contiguous().t(), wt, b, out, True)  # columns not contiguous
    assert declined(padded, torch.randn(16, 3, 2), b, out, True)  # not square
    assert declined(padded, torch.randn(16, 2, 3, 3), b, out, True)  # two input channels
    assert declined(padded, wt, torch.randn(15), out, True)
    assert declined(padded, wt, b, out[..., :15], True)  # c_out mismatch
    assert declined(padded, wt, b, out.permute(1, 0, 2), True)  # (10, 6, 16): shape
    chan_first = torch.empty(16, 6, 10).permute(1, 2, 0)  # channels not contiguous
    assert declined(padded, wt, b, chan_first, True)
    overlap = torch.empty(6 * 10 * 16).as_strided((6, 10, 16), (16, 8, 1))
    assert declined(padded, wt, b, overlap, True)  # pixels overlap
    overlap = torch.empty(6 * 10 * 16).as_strided((6, 10, 16), (100, 16, 1))
    assert declined(padded, wt, b, overlap, True)  # rows overlap
    assert declined(torch.randn(18, 22), torch.randn(16, 13, 13), b, out, True)  # k > 11
    big = torch.randn(300, 3, 3)
    assert declined(padded, big, torch.randn(300), torch.empty(6, 10, 300), True)  # c_out
    assert declined(torch.randn(2, 12), wt, b, torch.empty(0, 10, 16), True)  # no rows
    assert declined(padded.to_sparse(), wt, b, out, True)
    assert torch.equal(out, torch.full((6, 10, 16), 5.0))  # nothing written
