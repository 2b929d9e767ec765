"""SubPixelConv1d/2d/3d and Blur, against plain torch functions and written-out formulas."""

from __future__ import annotations

import copy
import doctest
import itertools
import pickle
from collections.abc import Iterator, Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import subpixel
import subpixel.layers as layers
from orders_reference import channel_index, reference_shuffle
from subpixel import Blur, SubPixelConv1d, SubPixelConv2d, SubPixelConv3d

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
LAYER = {1: SubPixelConv1d, 2: SubPixelConv2d, 3: SubPixelConv3d}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blur_reference(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """y[o] = mean over t in the box [0, r) of x[max(o - t, 0)], axis by axis."""
    y = x
    for axis, r in enumerate(factors):
        dim = 2 + axis
        size = y.shape[dim]
        terms = []
        for t in range(r):
            idx = torch.clamp(torch.arange(size) - t, min=0)
            terms.append(y.index_select(dim, idx))
        y = torch.stack(terms).mean(0)
    return y


CASES = [
    (1, None, (3,)),
    (1, "wc", (2,)),
    (2, None, (2, 2)),
    (2, "tensorflow", (2, 3)),
    (2, "cwh", (3, 1)),
    (2, "whc", (1, 4)),
    (3, None, (1, 2, 2)),
    (3, "dhwc", (2, 1, 3)),
]


@pytest.mark.parametrize(("n", "order", "factors"), CASES)
def test_forward_is_conv_then_shuffle(n: int, order: str | None, factors: tuple[int, ...]) -> None:
    m = LAYER[n](3, 2, 3, factors, order=order, init="default", dtype=torch.float64)
    canonical = m.order
    assert canonical == (
        {1: "cw", 2: "chw", 3: "cdhw"}[n] if order is None else subpixel.ops.resolve_order(order, n)
    )
    x = torch.randn(2, 3, *(3,) * n, dtype=torch.float64)
    z = CONV[n](x, m.conv.weight, m.conv.bias, padding="same")
    expected = reference_shuffle(z, factors, canonical)
    y = m(x)
    assert y.shape == (2, 2, *(3 * f for f in factors))
    assert torch.allclose(y, expected, rtol=0, atol=1e-12)


def test_2d_default_order_is_torch_pixel_shuffle() -> None:
    m = SubPixelConv2d(4, 3, 3, 2, init="default")
    x = torch.randn(1, 4, 5, 6)
    expected = F.pixel_shuffle(F.conv2d(x, m.conv.weight, m.conv.bias, padding=1), 2)
    assert torch.allclose(m(x), expected, atol=1e-6)


@pytest.mark.parametrize(("n", "order", "factors"), CASES)
def test_icnr_layer_is_nearest_upsampling(
    n: int, order: str | None, factors: tuple[int, ...]
) -> None:
    m = LAYER[n](3, 2, 3, factors, order=order, dtype=torch.float64)  # init="icnr" by default
    x = torch.randn(2, 3, *(4,) * n, dtype=torch.float64)
    firsts = [channel_index(m.order, c, (0,) * n, 2, factors) for c in range(2)]
    plain = CONV[n](x, m.conv.weight[firsts], m.conv.bias[firsts], padding="same")  # type: ignore[index]
    expected = F.interpolate(plain, scale_factor=factors, mode="nearest")
    assert torch.allclose(m(x), expected, rtol=0, atol=1e-12)


def test_icnr_with_groups_in_a_c_first_order() -> None:
    m = SubPixelConv2d(4, 2, 3, 2, groups=2, dtype=torch.float64)
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    y = m(x)
    for i, j in itertools.product(range(2), range(2)):
        assert torch.allclose(y[..., i::2, j::2], y[..., ::2, ::2], rtol=0, atol=1e-12)


def test_init_default_is_pytorch_default() -> None:
    torch.manual_seed(1)
    m = SubPixelConv2d(4, 3, 3, 2, init="default")
    torch.manual_seed(1)
    ref = nn.Conv2d(4, 12, 3, padding="same")
    assert torch.equal(m.conv.weight, ref.weight)
    assert torch.equal(m.conv.bias, ref.bias)  # type: ignore[arg-type]


def test_reset_parameters_reapplies_icnr() -> None:
    m = SubPixelConv1d(2, 3, 3, 4)
    with torch.no_grad():
        m.conv.weight.normal_()
    m.reset_parameters()
    w = m.conv.weight.view(3, 4, 2, 3)
    assert torch.equal(w, w[:, :1].expand_as(w))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stride": 2, "padding": 1},
        {"dilation": 2, "padding": 2},
        {"groups": 2},
        {"padding": 1, "padding_mode": "reflect"},
        {"padding": (0, 1), "bias": False},
    ],
)
def test_conv_keywords_mean_what_they_mean_for_conv2d(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"padding": "same"} | kwargs
    m = SubPixelConv2d(4, 2, 3, (2, 3), init="default", dtype=torch.float64, **args)  # type: ignore[arg-type]
    ref = nn.Conv2d(4, 12, 3, dtype=torch.float64, **args)  # type: ignore[arg-type]
    ref.load_state_dict(m.conv.state_dict())
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64)
    assert torch.allclose(m(x), reference_shuffle(ref(x), (2, 3), "chw"), rtol=0, atol=1e-12)
    assert (m.conv.bias is None) == (args.get("bias") is False)


def test_device_and_dtype() -> None:
    m = SubPixelConv3d(2, 1, 1, 2, device="cpu", dtype=torch.float64)
    assert m.conv.weight.dtype == torch.float64 and m.conv.weight.device.type == "cpu"
    assert m(torch.randn(1, 2, 2, 2, 2, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: SubPixelConv2d(4, 2, 3, (2, 2, 2)), ValueError, "3 entries"),
        (lambda: SubPixelConv2d(4, 2, 3, "2"), TypeError, "factor"),
        (lambda: SubPixelConv2d(4, 2, 3, 2, order="cw"), ValueError, "spatial axes"),
        (lambda: SubPixelConv1d(4, 2, 3, 2, order="chw"), ValueError, "spatial axes"),
        (lambda: SubPixelConv2d(4, 2, 3, 2, init="xavier"), ValueError, "init"),
        (lambda: SubPixelConv2d(4, 0, 3, 2), ValueError, "out_channels"),
        (lambda: SubPixelConv2d(4, 2, 3, 0), ValueError, ">= 1"),
        (lambda: SubPixelConv2d(4, 2, 3, 2, order="hwc", groups=2), ValueError, "groups"),
        (lambda: SubPixelConv2d(4, 3, 3, 2, groups=2), ValueError, "groups"),
    ],
)
def test_errors(build: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build()  # type: ignore[operator]


def test_groups_with_mixing_order_allowed_without_icnr() -> None:
    m = SubPixelConv2d(4, 2, 3, 2, order="hwc", groups=2, init="default")
    assert m(torch.randn(1, 4, 3, 3)).shape == (1, 2, 6, 6)


def test_submodules_state_dict_pickle_and_gradcheck() -> None:
    m = SubPixelConv2d(2, 1, 3, (2, 3), order="tensorflow", blur=True, dtype=torch.float64)
    assert isinstance(m.conv, nn.Conv2d) and isinstance(m.shuffle, subpixel.PixelShuffle)
    assert isinstance(m.blur, Blur)
    assert set(m.state_dict()) == {"conv.weight", "conv.bias"}
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    other = SubPixelConv2d(2, 1, 3, (2, 3), order="tensorflow", blur=True, dtype=torch.float64)
    other.load_state_dict(m.state_dict())
    assert torch.equal(other(x), m(x))
    assert torch.equal(pickle.loads(pickle.dumps(m))(x), m(x))
    assert torch.equal(copy.deepcopy(m)(x), m(x))
    assert torch.autograd.gradcheck(m, (x,))


def test_torch_export() -> None:
    m = SubPixelConv2d(3, 2, 3, 2, blur=True).eval()
    x = torch.randn(1, 3, 5, 6)
    exported = torch.export.export(m, (x,))
    assert torch.allclose(exported.module()(x), m(x), atol=1e-6)


# --- Blur -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factors", [(2,), (3,), (5,), (2, 2), (3, 2), (1, 4), (2, 2, 2), (1, 2, 3)]
)
def test_blur_matches_the_formula(factors: tuple[int, ...]) -> None:
    n = len(factors)
    x = torch.randn(2, 3, *(6,) * n, dtype=torch.float64)
    y = Blur(factors)(x)
    assert y.shape == x.shape
    assert torch.allclose(y, blur_reference(x, factors), rtol=0, atol=1e-12)


def test_blur_r2_is_fastai_construction() -> None:
    fastai = nn.Sequential(nn.ReplicationPad2d((1, 0, 1, 0)), nn.AvgPool2d(2, stride=1))
    x = torch.randn(2, 3, 7, 5)
    assert torch.allclose(Blur(2)(x), fastai(x), atol=1e-6)


def test_blur_factor_one_is_identity_and_int_factor_ndim() -> None:
    x = torch.randn(1, 2, 4, 5)
    assert torch.equal(Blur(1)(x), x)
    assert Blur(3, ndim=3).factor == (3, 3, 3)
    assert Blur(2).factor == (2, 2)


def test_blur_errors() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 4, 4\)"):
        Blur(2)(torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match="ndim"):
        Blur(2, ndim=4)
    with pytest.raises(ValueError, match="positive"):
        Blur((2, 0))
    with pytest.raises(ValueError, match="entries"):
        Blur((2, 2), ndim=3)


def test_blur_layer_output() -> None:
    m = SubPixelConv1d(2, 3, 3, 4, blur=True, dtype=torch.float64)
    x = torch.randn(1, 2, 5, dtype=torch.float64)
    y = m(x)
    assert y.shape == (1, 3, 20)
    assert torch.allclose(y, blur_reference(m.shuffle(m.conv(x)), (4,)), rtol=0, atol=1e-12)


def test_docstring_examples() -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for obj in (Blur, SubPixelConv1d, SubPixelConv2d, SubPixelConv3d):
        for test in finder.find(obj, obj.__name__, globs=vars(layers).copy()):
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 8 and result.failed == 0
