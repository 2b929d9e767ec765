"""subpixel.convert: exact transposed <-> sub-pixel conversion, checked against PyTorch itself.

Every expected value comes from PyTorch's own ``nn.ConvTranspose{1,2,3}d`` (or from the
hand-computed numbers of ``docs/equivalence.md``), never from the code under test.
"""

from __future__ import annotations

import copy
import doctest
import itertools
import pickle
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import subpixel
import subpixel.convert as convert
from subpixel.convert import (
    ConversionReport,
    ConvTransposeAsSubPixel,
    replace_transposed_convs,
    subpixel_to_transposed,
    transposed_to_subpixel,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny convolutions run far faster on one thread, above all on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def out_len(n_in: int, k: int, s: int, p: int, op: int, d: int = 1) -> int:
    """PyTorch's documented output length of a transposed convolution."""
    return (n_in - 1) * s - 2 * p + d * (k - 1) + op + 1


def assert_same_f64(sp: nn.Module, ref: nn.Module, x: torch.Tensor, what: object) -> None:
    y_ref = ref(x)
    y = sp(x)
    assert y.shape == y_ref.shape, (what, y.shape, y_ref.shape)
    err = (y - y_ref).abs().max().item() if y.numel() else 0.0
    assert err <= 1e-10, (what, err)


def rel_err(y: torch.Tensor, y_ref: torch.Tensor) -> float:
    return ((y - y_ref).abs().max() / y_ref.abs().max().clamp_min(1e-30)).item()


# --- exhaustive and sampled grids -----------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_grid_1d_float64_exhaustive(stride: int) -> None:
    """kernel 1-7 × padding 0-3 × output_padding < stride × groups 1-2 × bias × 2 lengths."""
    checked = 0
    for k, p, groups, bias, n_in in itertools.product(
        range(1, 8), range(4), (1, 2), (True, False), (1, 4)
    ):
        for op in range(stride):
            if out_len(n_in, k, stride, p, op) < 1:
                continue
            ref = nn.ConvTranspose1d(
                2, 4, k, stride, p, op, groups=groups, bias=bias, dtype=torch.float64
            )
            x = torch.randn(2, 2, n_in, dtype=torch.float64)
            assert_same_f64(transposed_to_subpixel(ref), ref, x, (k, stride, p, op, groups, bias))
            checked += 1
    assert checked >= 150


def _random_config(rng: random.Random, n: int) -> dict[str, object]:
    """Per-axis kernel/stride/padding/output_padding that PyTorch accepts for size 3 inputs."""
    while True:
        k = tuple(rng.randint(1, 7) for _ in range(n))
        s = tuple(rng.randint(1, 4) for _ in range(n))
        p = tuple(rng.randint(0, 3) for _ in range(n))
        op = tuple(rng.randrange(si) for si in s)
        sizes = tuple(rng.randint(1, 4) for _ in range(n))
        if all(out_len(*a) >= 1 for a in zip(sizes, k, s, p, op, strict=True)):
            return {
                "kernel_size": k,
                "stride": s,
                "padding": p,
                "output_padding": op,
                "groups": rng.choice((1, 2)),
                "bias": rng.random() < 0.7,
                "sizes": sizes,
            }


@pytest.mark.parametrize(("n", "count"), [(2, 120), (3, 40)])
def test_grid_nd_float64_sampled(n: int, count: int) -> None:
    rng = random.Random(1000 + n)
    for _ in range(count):
        cfg = _random_config(rng, n)
        sizes = cfg.pop("sizes")
        ref = TRANSPOSED[n](2, 2, dtype=torch.float64, **cfg)  # type: ignore[arg-type]
        x = torch.randn(1, 2, *sizes, dtype=torch.float64)  # type: ignore[misc]
        assert_same_f64(transposed_to_subpixel(ref), ref, x, cfg)


def test_grid_dilation_float64() -> None:
    """Dilation is supported exactly (the dilated kernel becomes a dense one with zeros)."""
    rng = random.Random(7)
    for k, s, d in itertools.product(range(1, 5), range(1, 4), (2, 3)):
        p = rng.randint(0, 3)
        op = rng.randrange(max(s, d))
        n_in = 3
        if out_len(n_in, k, s, p, op, d) < 1:
            continue
        ref = nn.ConvTranspose1d(2, 2, k, s, p, op, dilation=d, dtype=torch.float64)
        x = torch.randn(2, 2, n_in, dtype=torch.float64)
        assert_same_f64(transposed_to_subpixel(ref), ref, x, (k, s, p, op, d))
    ref2 = nn.ConvTranspose2d(2, 4, (3, 2), (2, 3), (1, 0), (1, 2), groups=2, dilation=(2, 3))
    ref2 = ref2.double()
    assert_same_f64(transposed_to_subpixel(ref2), ref2, torch.randn(1, 2, 4, 3).double(), "2d")


@pytest.mark.parametrize(
    ("cls", "c_in", "c_out", "kw", "size"),
    [
        (nn.ConvTranspose1d, 16, 8, {"kernel_size": 7, "stride": 3, "padding": 2}, (11,)),
        (nn.ConvTranspose2d, 32, 16, {"kernel_size": 4, "stride": 2, "padding": 1}, (6, 7)),
        (
            nn.ConvTranspose2d,
            16,
            8,
            {"kernel_size": (5, 3), "stride": (3, 2), "output_padding": (2, 1), "groups": 2},
            (5, 6),
        ),
        (nn.ConvTranspose3d, 8, 4, {"kernel_size": 3, "stride": 2, "padding": 1}, (3, 4, 5)),
    ],
)
def test_float32_relative_bound(
    cls: type[nn.Module], c_in: int, c_out: int, kw: dict[str, object], size: tuple[int, ...]
) -> None:
    ref = cls(c_in, c_out, **kw)
    x = torch.randn(2, c_in, *size)
    with torch.no_grad():
        y_ref, y = ref(x), transposed_to_subpixel(ref)(x)
    assert y.shape == y_ref.shape
    assert rel_err(y, y_ref) <= 1e-5


# --- output_size, batching, gradients -------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kw", "size"),
    [
        (nn.ConvTranspose1d, {"kernel_size": 5, "stride": 3, "padding": 1}, (4,)),
        (nn.ConvTranspose1d, {"kernel_size": 2, "stride": 4, "padding": 3}, (5,)),
        (nn.ConvTranspose2d, {"kernel_size": (3, 4), "stride": (2, 3), "padding": (1, 2)}, (3, 4)),
        (
            nn.ConvTranspose3d,
            {"kernel_size": 3, "stride": (1, 2, 3), "output_padding": 0},
            (2,) * 3,
        ),
    ],
)
def test_output_size_matches_pytorch(
    cls: type[nn.Module], kw: dict[str, object], size: tuple[int, ...]
) -> None:
    ref = cls(2, 3, dtype=torch.float64, **kw)
    sp = transposed_to_subpixel(ref)  # type: ignore[arg-type]
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    low = ref(x).shape[2:]
    ranges = [range(lo, lo + s) for lo, s in zip(low, ref.stride, strict=True)]  # type: ignore[arg-type]
    for target in itertools.product(*ranges):
        y_ref = ref(x, output_size=list(target))
        y = sp(x, output_size=list(target))
        assert tuple(y.shape[2:]) == target
        assert (y - y_ref).abs().max().item() <= 1e-10, target
    full = [2, 3, *low]
    assert torch.allclose(sp(x, output_size=full), ref(x, output_size=full), atol=1e-10)
    too_big = [lo + s for lo, s in zip(low, ref.stride, strict=True)]  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ref(x, output_size=too_big)
    with pytest.raises(ValueError, match="not reachable"):
        sp(x, output_size=too_big)
    with pytest.raises(ValueError, match="entries"):
        sp(x, output_size=[1] * (len(size) + 1))


def test_unbatched_input() -> None:
    ref = nn.ConvTranspose2d(3, 2, 3, 2, 1, 1, dtype=torch.float64)
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    assert_same_f64(transposed_to_subpixel(ref), ref, x, "unbatched")


@pytest.mark.parametrize(
    "kw",
    [
        {"kernel_size": 4, "stride": 2, "padding": 1},
        {"kernel_size": (3, 5), "stride": (3, 2), "padding": (2, 1), "output_padding": (1, 1)},
        {"kernel_size": 3, "stride": 2, "groups": 2, "bias": False},
    ],
)
def test_backward_matches_pytorch(kw: dict[str, object]) -> None:
    ref = nn.ConvTranspose2d(4, 2, dtype=torch.float64, **kw)  # type: ignore[arg-type]
    sp = transposed_to_subpixel(ref)
    x = torch.randn(2, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(ref(x))
    (gx_ref,) = torch.autograd.grad(ref(x), x, g)
    (gx,) = torch.autograd.grad(sp(x), x, g)
    assert (gx - gx_ref).abs().max().item() <= 1e-10
    if ref.bias is not None:
        (gb_ref,) = torch.autograd.grad(ref(x), ref.bias, g)
        (gb,) = torch.autograd.grad(sp(x), sp.conv.bias, g)
        # Each original bias feeds the ∏stride channels of its block.
        assert torch.allclose(gb.view(2, -1).sum(1), gb_ref, atol=1e-10)


def test_gradcheck_float64() -> None:
    ref = nn.ConvTranspose1d(2, 2, 3, 2, 1, 1, dtype=torch.float64)
    sp = transposed_to_subpixel(ref)
    x = torch.randn(1, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sp, (x,))


def test_trainable_after_conversion() -> None:
    """A step of SGD on both forms, with mapped gradients, keeps them equal."""
    ref = nn.ConvTranspose1d(2, 3, 3, 2, 1, dtype=torch.float64)
    sp = transposed_to_subpixel(ref)
    x = torch.randn(4, 2, 6, dtype=torch.float64)
    for model in (ref, sp):
        model(x).square().sum().backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.01 * p.grad  # type: ignore[operator]
    # Taps that pad the kernel to a multiple of the stride get gradients too: the trained
    # sub-pixel layer is a superset of the transposed one, so compare only through ref.
    x2 = torch.randn(1, 2, 5, dtype=torch.float64)
    back = subpixel_to_transposed(sp) if _padding_taps_zero(sp) else None
    if back is not None:
        assert torch.allclose(back(x2), ref(x2), atol=1e-10)
    assert sp(x2).shape == ref(x2).shape


def _padding_taps_zero(sp: ConvTransposeAsSubPixel) -> bool:
    try:
        subpixel_to_transposed(sp)
    except ValueError:
        return False
    return True


# --- properties of the converted module -----------------------------------------------------


def test_module_structure_and_attributes() -> None:
    ref = nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False)
    sp = transposed_to_subpixel(ref)
    assert isinstance(sp.conv, nn.Conv2d)
    assert isinstance(sp.shuffle, subpixel.PixelShuffle)
    assert sp.conv.weight.shape == (256 * 4, 512, 2, 2)
    assert sp.conv.bias is None
    assert sp.conv.stride == (1, 1)
    for attr in ("in_channels", "out_channels", "stride", "padding", "output_padding", "groups"):
        assert getattr(sp, attr) == getattr(ref, attr), attr
    assert sp.kernel_size == ref.kernel_size
    assert "ConvTranspose" not in repr(sp.conv)


def test_original_untouched_and_flags_copied() -> None:
    ref = nn.ConvTranspose2d(3, 2, 3, 2).eval()
    ref.bias.requires_grad_(False)  # type: ignore[union-attr]
    before = copy.deepcopy(ref.state_dict())
    sp = transposed_to_subpixel(ref)
    with torch.no_grad():
        sp.conv.weight.add_(1.0)
    for key, value in ref.state_dict().items():
        assert torch.equal(value, before[key])
    assert not sp.training
    assert sp.conv.weight.requires_grad and not sp.conv.bias.requires_grad  # type: ignore[union-attr]


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_preserved(dtype: torch.dtype) -> None:
    ref = nn.ConvTranspose2d(2, 2, 3, 2, dtype=dtype)
    sp = transposed_to_subpixel(ref)
    assert sp.conv.weight.dtype == dtype
    x = torch.randn(1, 2, 4, 4, dtype=dtype)
    assert sp(x).dtype == dtype
    if dtype == torch.bfloat16:
        assert rel_err(sp(x).float(), ref(x).float()) < 3e-2


def test_state_dict_and_pickle_round_trip() -> None:
    ref = nn.ConvTranspose1d(2, 3, 5, 3, 1, 2)
    sp = transposed_to_subpixel(ref)
    clone = transposed_to_subpixel(nn.ConvTranspose1d(2, 3, 5, 3, 1, 2))
    clone.load_state_dict(sp.state_dict())
    x = torch.randn(1, 2, 6)
    assert torch.equal(clone(x), sp(x))
    again = pickle.loads(pickle.dumps(sp))
    assert torch.equal(again(x), sp(x))
    assert set(sp.state_dict()) == {"conv.weight", "conv.bias"}


def test_torch_export() -> None:
    ref = nn.ConvTranspose2d(2, 3, 4, 2, 1)
    sp = transposed_to_subpixel(ref).eval()
    x = torch.randn(1, 2, 5, 6)
    exported = torch.export.export(sp, (x,))
    assert torch.allclose(exported.module()(x), ref(x), atol=1e-5)


# --- errors ---------------------------------------------------------------------------------


def test_errors() -> None:
    with pytest.raises(TypeError, match="Conv2d"):
        transposed_to_subpixel(nn.Conv2d(2, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lazy"):
        transposed_to_subpixel(nn.LazyConvTranspose2d(4, 3, 2))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Conv2d"):
        subpixel_to_transposed(nn.Conv2d(2, 2, 3))


def test_lazy_module_after_first_forward() -> None:
    lazy = nn.LazyConvTranspose2d(4, 3, 2, dtype=torch.float64)
    x = torch.randn(1, 5, 3, 3, dtype=torch.float64)
    lazy(x)
    assert_same_f64(transposed_to_subpixel(lazy), lazy, x, "lazy")  # type: ignore[arg-type]


# --- the reverse ----------------------------------------------------------------------------


def test_round_trip_restores_the_layer() -> None:
    rng = random.Random(3)
    for n in (1, 2, 3):
        for _ in range(10 if n < 3 else 4):
            cfg = _random_config(rng, n)
            cfg.pop("sizes")
            ref = TRANSPOSED[n](2, 4, **cfg)  # type: ignore[arg-type]
            back = subpixel_to_transposed(transposed_to_subpixel(ref))
            assert type(back) is type(ref)
            for attr in ("kernel_size", "stride", "padding", "output_padding", "groups"):
                assert getattr(back, attr) == getattr(ref, attr), (attr, cfg)
            assert torch.equal(back.weight, ref.weight)
            if ref.bias is None:
                assert back.bias is None
            else:
                assert torch.equal(back.bias, ref.bias)


def test_round_trip_with_dilation() -> None:
    ref = nn.ConvTranspose2d(2, 2, 3, 2, 1, 2, dilation=(3, 2))
    back = subpixel_to_transposed(transposed_to_subpixel(ref))
    assert back.dilation == (3, 2) and back.kernel_size == (3, 3)
    assert torch.equal(back.weight, ref.weight)


def test_reverse_refuses_trained_padding_taps_and_bias() -> None:
    ref = nn.ConvTranspose1d(2, 2, 3, 2)  # kernel padded from 3 to 4 taps
    sp = transposed_to_subpixel(ref)
    with torch.no_grad():
        sp.conv.weight.add_(0.1)
    with pytest.raises(ValueError, match="padding taps"):
        subpixel_to_transposed(sp)
    sp = transposed_to_subpixel(ref)
    with torch.no_grad():
        sp.conv.bias[0] += 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match="bias"):
        subpixel_to_transposed(sp)


@pytest.mark.parametrize(
    ("cls", "kernel", "factor", "order", "padding", "groups"),
    [
        (subpixel.SubPixelConv1d, 3, 3, None, "same", 1),
        (subpixel.SubPixelConv1d, 4, 2, None, 0, 2),
        (subpixel.SubPixelConv2d, 3, 2, None, "same", 1),
        (subpixel.SubPixelConv2d, 3, (2, 3), "tensorflow", "same", 1),
        (subpixel.SubPixelConv2d, (3, 5), (3, 2), "cwh", (1, 4), 2),
        (subpixel.SubPixelConv2d, 2, 2, None, "valid", 1),
        (subpixel.SubPixelConv3d, 3, (1, 2, 2), "dhwc", 1, 1),
    ],
)
def test_subpixel_conv_to_transposed(
    cls: type[nn.Module],
    kernel: object,
    factor: object,
    order: str | None,
    padding: object,
    groups: int,
) -> None:
    n = {subpixel.SubPixelConv1d: 1, subpixel.SubPixelConv2d: 2, subpixel.SubPixelConv3d: 3}[cls]
    sp = cls(4, 2, kernel, factor, order=order, padding=padding, groups=groups, dtype=torch.float64)
    with torch.no_grad():  # keep ICNR's block-constant bias but make the weight generic
        sp.conv.weight.normal_()
    up = subpixel_to_transposed(sp)
    assert isinstance(up, TRANSPOSED[n])
    x = torch.randn(2, 4, *(4,) * n, dtype=torch.float64)
    assert_same_f64(up, sp, x, (cls, kernel, factor, order, padding))
    # ... and back again: the converted form of the transposed layer equals the original.
    assert_same_f64(transposed_to_subpixel(up), sp, x, "back")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"blur": True}, "blur"),
        ({"kernel_size": 4}, "even kernel"),
        ({"stride": 2, "padding": 1}, "stride"),
        ({"dilation": 2}, "dilation"),
        ({"padding": 3}, "exceeds"),
        ({"padding": 1, "padding_mode": "reflect"}, "padding_mode"),
        ({"init": "default"}, "bias"),
        ({"order": "hwc", "groups": 2, "init": "default", "bias": False}, "groups"),
    ],
)
def test_subpixel_conv_without_transposed_equivalent(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"kernel_size": 3, "padding": "same"} | kwargs
    sp = subpixel.SubPixelConv2d(4, 2, factor=2, **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        subpixel_to_transposed(sp)


# --- whole models -----------------------------------------------------------------------------


class DCGANGenerator(nn.Module):
    """Radford et al.'s generator, scaled down: 1x1 latent -> 32x32 image."""

    def __init__(self, nz: int = 8, ngf: int = 4) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class UNetDecoder(nn.Module):
    """A U-Net decoder: 2x2 stride-2 up-convolutions sized to odd skips by ``output_size``."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.up1 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2)
        self.conv1 = nn.Conv2d(4 * c, 2 * c, 3, padding=1)
        self.up2 = nn.ConvTranspose2d(2 * c, c, 3, 2, 1)
        self.conv2 = nn.Conv2d(2 * c, c, 3, padding=1)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(
        self, bottom: torch.Tensor, skip1: torch.Tensor, skip2: torch.Tensor
    ) -> torch.Tensor:
        x = self.up1(bottom, output_size=skip1.shape)
        x = F.relu(self.conv1(torch.cat([x, skip1], 1)))
        x = self.up2(x, output_size=skip2.shape)
        x = F.relu(self.conv2(torch.cat([x, skip2], 1)))
        return self.head(x)


def _check_model(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> ConversionReport:
    model = model.double().eval()
    new, report = replace_transposed_convs(model)
    xs = [x.double().requires_grad_() for x in inputs]
    y_ref = model(*xs)
    grads_ref = torch.autograd.grad(y_ref.square().sum(), xs)
    y = new(*xs)
    grads = torch.autograd.grad(y.square().sum(), xs)
    assert y.shape == y_ref.shape
    assert (y - y_ref).abs().max().item() <= 1e-10
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert (g - g_ref).abs().max().item() <= 1e-10
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in new.modules())
    return report


def test_dcgan_generator() -> None:
    report = _check_model(DCGANGenerator(), (torch.randn(2, 8, 1, 1),))
    assert [e.path for e in report.replaced] == ["main.0", "main.3", "main.6", "main.9"]
    assert report.left == []


def test_unet_decoder_with_output_size() -> None:
    c = 8
    inputs = (torch.randn(1, 4 * c, 3, 4), torch.randn(1, 2 * c, 7, 8), torch.randn(1, c, 13, 16))
    report = _check_model(UNetDecoder(c), inputs)
    assert [e.path for e in report.replaced] == ["up1", "up2"]


def test_not_inplace_leaves_model_alone_and_inplace_modifies() -> None:
    model = DCGANGenerator()
    state = copy.deepcopy(model.state_dict())
    new, _ = replace_transposed_convs(model)
    assert new is not model
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules()) == 4
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key])
    same, _ = replace_transposed_convs(model, inplace=True)
    assert same is model
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())


class _MyTransposed(nn.ConvTranspose2d):
    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        return 2 * super().forward(x, output_size)


def test_report_lists_what_was_left_and_why() -> None:
    shared = nn.ConvTranspose1d(2, 2, 2, 2)
    model = nn.ModuleDict(
        {
            "plain": nn.ConvTranspose3d(2, 2, 2, 2),
            "hooked": nn.utils.spectral_norm(nn.ConvTranspose2d(2, 2, 4, 2, 1)),
            "param": nn.utils.parametrizations.weight_norm(nn.ConvTranspose2d(2, 2, 4, 2, 1)),
            "sub": _MyTransposed(2, 2, 2, 2),
            "lazy": nn.LazyConvTranspose2d(2, 2, 2),
            "block": nn.Sequential(shared, nn.ReLU(), shared),
        }
    )
    new, report = replace_transposed_convs(model)
    by_path = {e.path: e for e in report}
    assert by_path["plain"].replaced and by_path["plain"].type == "ConvTranspose3d"
    assert "hook" in by_path["hooked"].reason
    assert "parametriz" in by_path["param"].reason
    assert "_MyTransposed" in by_path["sub"].reason
    assert "lazy" in by_path["lazy"].reason
    assert by_path["block.0"].replaced and by_path["block.2"].replaced
    assert new["block"][0] is new["block"][2]  # type: ignore[index]
    assert {e.path for e in report.left} == {"hooked", "param", "sub", "lazy"}
    assert isinstance(new["hooked"], nn.ConvTranspose2d)  # type: ignore[index]
    text = str(report)
    assert text.startswith("3 replaced, 4 left") and "block.2" in text


def test_model_that_is_a_transposed_conv() -> None:
    ref = nn.ConvTranspose2d(2, 2, 3, 2).double()
    new, report = replace_transposed_convs(ref)
    assert isinstance(new, ConvTransposeAsSubPixel) and report.entries[0].path == ""
    assert_same_f64(new, ref, torch.randn(1, 2, 3, 3).double(), "root")
    with pytest.raises(TypeError):
        replace_transposed_convs("model")  # type: ignore[arg-type]


# --- documentation ----------------------------------------------------------------------------


def test_equivalence_doc_example_runs_literally() -> None:
    result = doctest.testfile(
        str(DOCS / "equivalence.md"), module_relative=False, optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 5
    assert result.failed == 0


def test_docstring_examples() -> None:
    result = doctest.testmod(convert, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 5
    assert result.failed == 0


# --- transposed_to_phase_conv: size-exact upsamplers as one aligned convolution ---------------


def _size_exact_configs() -> Iterator[tuple[int, int, int, int, int]]:
    """(kernel, stride, padding, output_padding, dilation) with output = stride · input."""
    for s in (1, 2, 3, 4):
        for d in (1, 2):
            for k in range(1, 10):
                eff = d * (k - 1) + 1
                for p in range(0, eff):
                    op = s + 2 * p - eff
                    if 0 <= op < max(s, d):  # PyTorch's condition on output_padding
                        yield k, s, p, op, d


@pytest.mark.parametrize("n", [1, 2, 3])
def test_phase_conv_is_the_transposed_conv_shuffled_float64(n: int) -> None:
    configs = list(_size_exact_configs())
    assert len(configs) > 60
    rng = random.Random(n)
    for k, s, p, op, d in configs if n == 1 else rng.sample(configs, 25):
        groups = rng.choice([1, 2])
        up = TRANSPOSED[n](
            2 * groups,
            3 * groups,
            k,
            stride=s,
            padding=p,
            output_padding=op,
            dilation=d,
            groups=groups,
            bias=rng.random() < 0.7,
            dtype=torch.float64,
        )
        conv = convert.transposed_to_phase_conv(up)
        assert all(kk % 2 == 1 for kk in conv.kernel_size)  # odd, "same" padding, stride 1
        assert conv.padding == tuple(kk // 2 for kk in conv.kernel_size)
        x = torch.randn(2, 2 * groups, *([5, 4, 3][:n]), dtype=torch.float64)
        y = subpixel.pixel_shuffle(conv(x), s, order=convert.TORCH_ORDERS[n])
        ref = up(x)
        assert y.shape == ref.shape and ref.shape[2:] == tuple(s * m for m in x.shape[2:])
        assert (y - ref).abs().max().item() <= 1e-10, (k, s, p, op, d, groups)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_phase_conv_of_a_converted_module_folds_its_pad_and_crop_float64(n: int) -> None:
    """From :class:`ConvTransposeAsSubPixel`: as converted (against PyTorch's transposed
    convolution), and after its weights changed in that form (against its own pad, shuffle
    and crop, themselves tested against PyTorch above)."""
    rng = random.Random(10 + n)
    configs = [c for c in _size_exact_configs() if c[4] == 1]
    for k, s, p, op, _ in configs if n == 1 else rng.sample(configs, 20):
        up = TRANSPOSED[n](3, 2, k, stride=s, padding=p, output_padding=op, dtype=torch.float64)
        sp = transposed_to_subpixel(up)
        x = torch.randn(1, 3, *([6, 5, 4][:n]), dtype=torch.float64)
        for reference in (up, sp):
            if reference is sp:  # trained in sub-pixel form: every tap and phase bias free
                with torch.no_grad():
                    sp.conv.weight.normal_()
                    sp.conv.bias.normal_()
            conv = convert.transposed_to_phase_conv(sp)
            assert conv.padding == tuple(kk // 2 for kk in conv.kernel_size)
            y = subpixel.pixel_shuffle(conv(x), s, order=convert.TORCH_ORDERS[n])
            ref = reference(x)
            assert y.shape == ref.shape
            assert (y - ref).abs().max().item() <= 1e-10, (k, s, p, op)


def test_phase_conv_kernels_of_fsrcnn_and_refusals() -> None:
    sizes = {}
    for s in (2, 3, 4):
        p = -(-(9 - s) // 2)
        up = nn.ConvTranspose2d(56, 1, 9, stride=s, padding=p, output_padding=s + 2 * p - 9)
        sizes[s] = convert.transposed_to_phase_conv(up).kernel_size
    assert sizes == {2: (5, 5), 3: (3, 3), 4: (3, 3)}  # the fewest taps that reach every phase
    with pytest.raises(ValueError, match=r"axis 0 outputs \(H - 1\)·2 \+ 4, not 2·H"):
        convert.transposed_to_phase_conv(nn.ConvTranspose1d(1, 1, 4, stride=2))
    with pytest.raises(TypeError, match=r"expected nn\.ConvTranspose"):
        convert.transposed_to_phase_conv(nn.Conv2d(1, 1, 3))  # type: ignore[arg-type]
