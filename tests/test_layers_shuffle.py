"""The shuffle modules: PixelShuffle and PixelUnshuffle."""

from __future__ import annotations

import copy
import io
import pickle
import warnings

import pytest
import torch

from subpixel import PixelShuffle, PixelUnshuffle, pixel_shuffle, pixel_unshuffle

CASES = [
    (2, "chw", "channels_first", (2, 12, 3, 5)),
    ((2, 3), "tensorflow", "channels_last", (2, 3, 5, 18)),
    (3, "cw", "channels_first", (4, 6, 7)),
    ((1, 2, 2), "whdc", "channels_last", (1, 2, 3, 4, 8)),
    (2, "caffe", "channels_first", (8, 3, 3)),  # no batch dimension
]


@pytest.mark.parametrize(("factor", "order", "data_format", "shape"), CASES)
def test_forward_calls_the_functions(
    factor: int | tuple[int, ...], order: str, data_format: str, shape: tuple[int, ...]
) -> None:
    x = torch.randn(shape)
    up = PixelShuffle(factor, order=order, data_format=data_format)  # type: ignore[arg-type]
    down = PixelUnshuffle(factor, order=order, data_format=data_format)  # type: ignore[arg-type]
    y = up(x)
    assert torch.equal(y, pixel_shuffle(x, factor, order=order, data_format=data_format))  # type: ignore[arg-type]
    assert torch.equal(down(y), x)
    assert torch.equal(down(y), pixel_unshuffle(y, factor, order=order, data_format=data_format))  # type: ignore[arg-type]


def test_matches_torch_modules() -> None:
    x = torch.randn(2, 18, 4, 5)
    assert torch.equal(PixelShuffle(3)(x), torch.nn.PixelShuffle(3)(x))
    y = torch.randn(2, 2, 6, 9)
    assert torch.equal(PixelUnshuffle(3)(y), torch.nn.PixelUnshuffle(3)(y))


def test_repr_shows_factor_and_order() -> None:
    assert repr(PixelShuffle(2, order="tensorflow")) == "PixelShuffle(factor=(2, 2), order='hwc')"
    assert repr(PixelUnshuffle((2, 3))) == "PixelUnshuffle(factor=(2, 3), order='chw')"
    r = repr(PixelShuffle((2,), order="wc", data_format="channels_last"))
    assert r == "PixelShuffle(factor=(2,), order='wc', data_format='channels_last')"
    m = PixelShuffle((1, 2, 3), order="torch")
    assert m.order == "cdhw"
    assert m.factor == (1, 2, 3)


@pytest.mark.parametrize(
    ("factor", "order", "data_format", "words"),
    [
        (2, "xyz", "channels_first", "order"),
        (0, "chw", "channels_first", ">= 1"),
        ((2, 2, 2), "chw", "channels_first", "entries"),
        (2, "chw", "NCHW", "data_format"),
    ],
)
def test_bad_arguments_fail_at_construction(
    factor: object, order: str, data_format: str, words: str
) -> None:
    for cls in (PixelShuffle, PixelUnshuffle):
        with pytest.raises(ValueError, match=words):
            cls(factor, order=order, data_format=data_format)  # type: ignore[arg-type]


def test_bad_input_names_shape_factor_and_order() -> None:
    with pytest.raises(ValueError) as info:
        PixelShuffle(2, order="hwc")(torch.zeros(1, 6, 4, 4))
    msg = str(info.value)
    assert "(1, 6, 4, 4)" in msg
    assert "(2, 2)" in msg
    assert "'hwc'" in msg


def test_state_dict_pickle_and_deepcopy() -> None:
    x = torch.randn(2, 3, 4, 5, 12)
    m = PixelShuffle((2, 3), order="wch", data_format="channels_last")
    expected = m(x)
    assert m.state_dict() == {}
    fresh = PixelShuffle((2, 3), order="wch", data_format="channels_last")
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh(x), expected)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert repr(clone) == repr(m)
        assert torch.equal(clone(x), expected)
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert torch.equal(loaded(x), expected)
    # Inside a model: the state dict holds the conv's tensors only, and round-trips.
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), PixelShuffle(2, order="hwc"))
    net2 = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), PixelShuffle(2, order="hwc"))
    net2.load_state_dict(net.state_dict())
    z = torch.randn(1, 3, 5, 5)
    assert torch.equal(net2(z), net(z))
    assert set(net.state_dict()) == {"0.weight", "0.bias"}


def test_gradients_flow_through_the_module() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), PixelShuffle(2, order="cwh"))
    out = net(torch.randn(2, 3, 5, 5))
    out.square().mean().backward()
    assert net[0].weight.grad is not None
    assert torch.isfinite(net[0].weight.grad).all()


def test_channels_last_memory_format() -> None:
    x = torch.randn(2, 12, 5, 7)
    m = PixelShuffle(2, order="hwc")
    y = m(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(y, m(x))
    assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    ("module", "shape"),
    [
        (PixelShuffle(2, order="hwc"), (2, 12, 5, 7)),
        (PixelUnshuffle((1, 2, 2), order="whdc", data_format="channels_last"), (2, 3, 4, 6, 5)),
        (PixelShuffle(3, order="cw"), (2, 6, 4)),
    ],
    ids=["shuffle-2d", "unshuffle-3d-last", "shuffle-1d"],
)
def test_torch_export(module: torch.nn.Module, shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    exported = torch.export.export(module, (x,))
    assert torch.equal(exported.module()(x), module(x))


def test_torch_export_dynamic_batch() -> None:
    m = PixelShuffle(2, order="cwh")
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(m, (torch.randn(2, 8, 3, 4),), dynamic_shapes=({0: batch},))
    x = torch.randn(5, 8, 3, 4)
    assert torch.equal(exported.module()(x), m(x))


def test_torch_compile() -> None:
    """One module through the default backend (inductor), one more through aot_eager."""
    x = torch.randn(2, 12, 5, 7)
    m = PixelShuffle(2, order="tensorflow")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Dynamo's lru_cache warning
        compiled = torch.compile(m, fullgraph=True)
        assert torch.equal(compiled(x), m(x))
    y = torch.randn(2, 3, 4, 6, 5, requires_grad=True)
    u = PixelUnshuffle((1, 2, 2), order="whdc", data_format="channels_last")
    fast = torch.compile(u, fullgraph=True, backend="aot_eager")
    out = fast(y)
    assert torch.equal(out, u(y))
    g = torch.randn_like(out)
    out.backward(g)
    assert y.grad is not None
    assert torch.equal(
        y.grad, pixel_shuffle(g, (1, 2, 2), order="whdc", data_format="channels_last")
    )
