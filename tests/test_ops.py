"""Tests of :mod:`subpixel.ops` against references that do not use the code under test.

The references are:

* an explicit loop over output elements that evaluates the index formula of
  ``docs/orders.md`` (every order, 1-, 2- and 3-D, both data formats): the input
  channel feeding output ``(c, y·r+i, ...)`` is the mixed-radix number whose digits are
  ``c`` and the block offsets, read in the order string's order;
* PyTorch's own ``pixel_shuffle`` / ``pixel_unshuffle`` for ``chw``;
* the reshape/transpose formulas of the ONNX ``DepthToSpace`` (DCR, CRD) and
  ``SpaceToDepth`` specifications, written out here;
* a literal numpy port of the original TensorFlow ``subpixel`` project's ``PS``;
* the worked example of ``orders.md`` for ``convert_order``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import orders_reference
from subpixel import convert_order, order_permutation, pixel_shuffle, pixel_unshuffle
from subpixel.ops import ORDER_ALIASES, ShuffleSpec, resolve_order

SPATIAL = {1: "w", 2: "hw", 3: "dhw"}
ORDERS = {n: ["".join(p) for p in itertools.permutations("c" + SPATIAL[n])] for n in SPATIAL}
ALL_ORDERS = [(n, o) for n in SPATIAL for o in ORDERS[n]]
# Factors per dimension: 1, 2, 3 and rectangular ones (an int means the same on every axis).
FACTORS: dict[int, list[int | tuple[int, ...]]] = {
    1: [1, 2, 3, (4,)],
    2: [1, 2, 3, (2, 3), (3, 1)],
    3: [1, 2, 3, (1, 2, 3), (3, 2, 1)],
}
# Small, unequal spatial sizes so that a mixed-up axis cannot go unnoticed.
SMALL = {1: (3,), 2: (2, 3), 3: (2, 1, 3)}
BATCHES = [(), (2,), (1, 2)]
FORMATS = ["channels_first", "channels_last"]
GRID = [(n, o, f) for n in SPATIAL for o in ORDERS[n] for f in FACTORS[n]]


def _factors(factor: int | Sequence[int], n: int) -> tuple[int, ...]:
    return (factor,) * n if isinstance(factor, int) else tuple(factor)


def _id(value: object) -> str:
    return str(value).replace(" ", "")


# --- The independent reference: the index formula as an explicit loop ----------------------


def _layout(
    shape: Sequence[int], n: int, channels_first: bool
) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    nb = len(shape) - n - 1
    if channels_first:
        return tuple(shape[:nb]), shape[nb], tuple(shape[nb + 1 :])
    return tuple(shape[:nb]), shape[-1], tuple(shape[nb:-1])


def _at(batch: tuple[int, ...], c: int, pos: Sequence[int], channels_first: bool) -> tuple:
    return (*batch, c, *pos) if channels_first else (*batch, *pos, c)


def reference_shuffle(
    x: np.ndarray, factors: tuple[int, ...], order: str, channels_first: bool
) -> np.ndarray:
    """Depth to space by visiting every output element (orders.md's index formula)."""
    n = len(factors)
    letters = SPATIAL[n]
    batch, c_in, small = _layout(x.shape, n, channels_first)
    c_out = c_in // math.prod(factors)
    big = tuple(s * r for s, r in zip(small, factors, strict=True))
    radix = {"c": c_out} | {letters[a]: factors[a] for a in range(n)}
    out_shape = (*batch, c_out, *big) if channels_first else (*batch, *big, c_out)
    out = np.empty(out_shape, dtype=x.dtype)
    for b in itertools.product(*map(range, batch)):
        for c in range(c_out):
            for pos in itertools.product(*map(range, big)):
                digit = {"c": c} | {letters[a]: pos[a] % factors[a] for a in range(n)}
                k = 0
                for letter in order:  # outermost letter first: a mixed-radix number
                    k = k * radix[letter] + digit[letter]
                src = tuple(p // r for p, r in zip(pos, factors, strict=True))
                out[_at(b, c, pos, channels_first)] = x[_at(b, k, src, channels_first)]
    return out


def reference_unshuffle(
    y: np.ndarray, factors: tuple[int, ...], order: str, channels_first: bool
) -> np.ndarray:
    """Space to depth by visiting every output element and decoding its channel index."""
    n = len(factors)
    letters = SPATIAL[n]
    batch, c_out, big = _layout(y.shape, n, channels_first)
    small = tuple(s // r for s, r in zip(big, factors, strict=True))
    radix = {"c": c_out} | {letters[a]: factors[a] for a in range(n)}
    c_in = c_out * math.prod(factors)
    out_shape = (*batch, c_in, *small) if channels_first else (*batch, *small, c_in)
    out = np.empty(out_shape, dtype=y.dtype)
    for b in itertools.product(*map(range, batch)):
        for k in range(c_in):
            digit = {}
            rest = k
            for letter in reversed(order):  # innermost letter is the least significant digit
                digit[letter] = rest % radix[letter]
                rest //= radix[letter]
            for spos in itertools.product(*map(range, small)):
                pos = tuple(
                    s * r + digit[letters[a]]
                    for a, (s, r) in enumerate(zip(spos, factors, strict=True))
                )
                out[_at(b, k, spos, channels_first)] = y[_at(b, digit["c"], pos, channels_first)]
    return out


def _shuffled_shape(
    batch: tuple[int, ...], channels: int, small: tuple[int, ...], channels_first: bool
) -> tuple[int, ...]:
    return (*batch, channels, *small) if channels_first else (*batch, *small, channels)


def _unique(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Distinct values in a random arrangement: any misplaced element shows."""
    return rng.permutation(math.prod(shape)).reshape(shape).astype(np.float64)


@pytest.mark.parametrize("batch", BATCHES, ids=_id)
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(("n", "order", "factor"), GRID, ids=_id)
def test_shuffle_and_unshuffle_match_index_loop(
    n: int, order: str, factor: int | tuple[int, ...], data_format: str, batch: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(0)
    factors = _factors(factor, n)
    first = data_format == "channels_first"
    channels = 2 * math.prod(factors)
    x = _unique(_shuffled_shape(batch, channels, SMALL[n], first), rng)
    expected = reference_shuffle(x, factors, order, first)

    got_np = pixel_shuffle(x, factor, order=order, data_format=data_format)
    assert isinstance(got_np, np.ndarray)
    np.testing.assert_array_equal(got_np, expected)
    got_t = pixel_shuffle(torch.from_numpy(x), factor, order=order, data_format=data_format)
    assert torch.equal(got_t, torch.from_numpy(expected))

    # Unshuffle on an unrelated input of the large shape, against the decoding loop.
    y = _unique(expected.shape, rng)
    expected_y = reference_unshuffle(y, factors, order, first)
    assert expected_y.shape == x.shape
    np.testing.assert_array_equal(
        pixel_unshuffle(y, factor, order=order, data_format=data_format), expected_y
    )
    got_y = pixel_unshuffle(torch.from_numpy(y), factor, order=order, data_format=data_format)
    assert torch.equal(got_y, torch.from_numpy(expected_y))


def test_reference_loops_are_inverse() -> None:
    """The two loops are written independently; check they agree with each other."""
    rng = np.random.default_rng(1)
    for n, order in ALL_ORDERS:
        factors = (2, 3, 1)[:n] if n > 1 else (3,)
        x = _unique(_shuffled_shape((2,), 2 * math.prod(factors), SMALL[n], True), rng)
        y = reference_shuffle(x, factors, order, True)
        np.testing.assert_array_equal(reference_unshuffle(y, factors, order, True), x)


def test_orders_md_two_d_table() -> None:
    """The 2-D table of orders.md, input channel for (c, i, j), C=2, r=(2, 3)."""
    C, rh, rw = 2, 2, 3
    formulas = {
        "chw": lambda c, i, j: (c * rh + i) * rw + j,
        "hwc": lambda c, i, j: (i * rw + j) * C + c,
        "cwh": lambda c, i, j: (c * rw + j) * rh + i,
        "whc": lambda c, i, j: (j * rh + i) * C + c,
    }
    x = np.arange(C * rh * rw).reshape(C * rh * rw, 1, 1)
    for order, formula in formulas.items():
        y = pixel_shuffle(x, (rh, rw), order=order)
        for c, i, j in itertools.product(range(C), range(rh), range(rw)):
            assert y[c, i, j] == formula(c, i, j), (order, c, i, j)


# --- dtypes, devices, memory layouts ---------------------------------------------------------

TORCH_DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.complex64,
    torch.int8,
    torch.uint8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
]
DTYPE_CASES = [(1, "wc", (3,)), (2, "hwc", (2, 3)), (2, "chw", 2), (3, "hcwd", (1, 2, 3))]


def _random_tensor(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bool:
        return torch.rand(shape) > 0.5
    if dtype.is_floating_point or dtype.is_complex:
        return torch.randn(shape, dtype=dtype)
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max, tuple(shape), dtype=dtype)


def _index_reference(
    x: torch.Tensor, factors: tuple[int, ...], order: str, first: bool, inverse: bool
) -> torch.Tensor:
    """Any dtype: run the loop on element indices, then gather."""
    idx = np.arange(x.numel()).reshape(tuple(x.shape))
    ref = reference_unshuffle if inverse else reference_shuffle
    where = ref(idx, factors, order, first)
    return x.reshape(-1)[torch.from_numpy(where.reshape(-1))].reshape(where.shape)


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize(("n", "order", "factor"), DTYPE_CASES, ids=_id)
def test_torch_dtypes(
    n: int, order: str, factor: int | tuple[int, ...], data_format: str, dtype: torch.dtype
) -> None:
    factors = _factors(factor, n)
    first = data_format == "channels_first"
    x = _random_tensor(_shuffled_shape((2,), 3 * math.prod(factors), SMALL[n], first), dtype)
    y = pixel_shuffle(x, factor, order=order, data_format=data_format)
    assert y.dtype == dtype
    assert torch.equal(y, _index_reference(x, factors, order, first, False))
    z = pixel_unshuffle(y, factor, order=order, data_format=data_format)
    assert z.dtype == dtype
    assert torch.equal(z, x)
    w = _random_tensor(y.shape, dtype)
    assert torch.equal(
        pixel_unshuffle(w, factor, order=order, data_format=data_format),
        _index_reference(w, factors, order, first, True),
    )


NUMPY_DTYPES = [
    np.float16,
    np.float32,
    np.longdouble,
    np.complex128,
    np.int8,
    np.uint16,
    np.int64,
    np.bool_,
    ">f4",  # big-endian: torch cannot hold it
    "<U3",  # strings: torch cannot hold them either
    "datetime64[s]",
    object,
]


@pytest.mark.parametrize("dtype", NUMPY_DTYPES, ids=str)
@pytest.mark.parametrize("data_format", FORMATS)
def test_numpy_dtypes_without_torch(dtype: object, data_format: str) -> None:
    """NumPy in, NumPy out, for dtypes torch cannot represent (so no torch round trip)."""
    first = data_format == "channels_first"
    shape = _shuffled_shape((2,), 2 * 6, (2, 3), first)
    idx = np.arange(math.prod(shape)).reshape(shape)
    x = idx.astype(dtype)
    for order in ORDERS[2]:
        y = pixel_shuffle(x, (2, 3), order=order, data_format=data_format)
        assert isinstance(y, np.ndarray)
        assert y.dtype == x.dtype
        np.testing.assert_array_equal(y, reference_shuffle(x, (2, 3), order, first))
        back = pixel_unshuffle(y, (2, 3), order=order, data_format=data_format)
        assert back.dtype == x.dtype
        np.testing.assert_array_equal(back, x)


def test_numpy_does_not_call_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("numpy input went through torch")

    for name in ("from_numpy", "as_tensor", "tensor"):
        monkeypatch.setattr(torch, name, forbidden)
    x = np.arange(2 * 12 * 2 * 3).reshape(2, 12, 2, 3)
    y = pixel_shuffle(x, 2, order="hwc")
    np.testing.assert_array_equal(pixel_unshuffle(y, 2, order="hwc"), x)


def test_numpy_non_contiguous_inputs() -> None:
    rng = np.random.default_rng(2)
    base = _unique((2, 24, 6, 8), rng)
    for x in (base[:, :, ::2, ::2], np.flip(base, axis=(1, 3)), base.transpose(0, 1, 3, 2)):
        for order in ORDERS[2]:
            expected = reference_shuffle(np.ascontiguousarray(x), (2, 2), order, True)
            np.testing.assert_array_equal(pixel_shuffle(x, 2, order=order), expected)


@pytest.mark.parametrize(("n", "order"), ALL_ORDERS, ids=_id)
def test_torch_memory_formats_and_strides(n: int, order: str) -> None:
    """channels_last(_3d), sliced, transposed and expanded inputs give identical values."""
    spatial = (4, 6, 2)[:n]
    x = torch.randn(2, 2**n * 3, *spatial)
    variants = [x[..., :], x.transpose(-1, -2).contiguous().transpose(-1, -2)]
    if n == 2:
        variants.append(x.contiguous(memory_format=torch.channels_last))
    if n == 3:
        variants.append(x.contiguous(memory_format=torch.channels_last_3d))
    variants.append(x[:1].expand(2, *x.shape[1:]))
    big = torch.randn(2, 2**n * 3, *(2 * s for s in spatial))
    variants.append(big[(..., *(slice(None, None, 2) for _ in spatial))])
    for v in variants:
        for fmt in FORMATS:
            arg = v if fmt == "channels_first" else v.movedim(1, -1)
            arg_dense = arg.contiguous()
            y = pixel_shuffle(arg, 2, order=order, data_format=fmt)
            assert torch.equal(y, pixel_shuffle(arg_dense, 2, order=order, data_format=fmt))
            u = pixel_unshuffle(y, 2, order=order, data_format=fmt)
            assert torch.equal(u, arg_dense)
            z = pixel_unshuffle(arg, (1,) * n, order=order, data_format=fmt)
            assert torch.equal(z, arg_dense)


def test_channels_last_memory_format_output_matches_pytorch() -> None:
    """A channels_last input keeps its memory format, as in PyTorch, with the same values."""
    x = torch.randn(2, 12, 5, 7).contiguous(memory_format=torch.channels_last)
    for order in ORDERS[2]:
        y = pixel_shuffle(x, 2, order=order)
        assert torch.equal(y, pixel_shuffle(x.contiguous(), 2, order=order))
        assert y.is_contiguous(memory_format=torch.channels_last)
        u = pixel_unshuffle(y, 2, order=order)
        assert torch.equal(u, x)
        assert u.is_contiguous(memory_format=torch.channels_last)
    x3 = torch.randn(2, 16, 3, 5, 7).contiguous(memory_format=torch.channels_last_3d)
    y3 = pixel_shuffle(x3, 2, order="dhwc")
    assert torch.equal(y3, pixel_shuffle(x3.contiguous(), 2, order="dhwc"))
    assert y3.is_contiguous(memory_format=torch.channels_last_3d)
    ref = F.pixel_shuffle(x, 2)
    got = pixel_shuffle(x, 2)
    assert torch.equal(got, ref)
    assert got.stride() == ref.stride()


# Large enough for the CPU fast paths (the compiled strided copy, or without it split
# copies and PyTorch's channels-last kernel), which tiny tensors skip. The reference is the
# order table applied one block offset at a time (tests/orders_reference.py).
BIG_SMALL = {1: (2048,), 2: (32, 32), 3: (8, 8, 8)}


def _table_shuffle(
    x: torch.Tensor, factors: tuple[int, ...], order: str, first: bool
) -> torch.Tensor:
    """Reference depth to space of a (B, ...) tensor in either data format."""
    cf = x if first else x.movedim(-1, 1)
    y = orders_reference.reference_shuffle(cf, factors, order)
    return y if first else y.movedim(1, -1).contiguous()


@pytest.mark.parametrize("native", [True, False], ids=["native", "fallback"])
@pytest.mark.parametrize("factor", [2, 3, "rect"])
@pytest.mark.parametrize(("n", "order"), ALL_ORDERS, ids=_id)
def test_fast_paths_match_order_table(
    n: int, order: str, factor: int | str, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from subpixel import _copy

    if native and not _copy.available():
        pytest.skip("compiled strided copy not built (no C compiler at install time)")
    if not native:
        monkeypatch.setattr(_copy, "kernel", lambda: None)
    factors = (2, 3, 1)[:n] if factor == "rect" and n > 1 else (3,) if factor == "rect" else None
    factors = factors or (int(factor),) * n
    batch = (2,)
    small = BIG_SMALL[n] if math.prod(factors) <= 8 else tuple(s // 2 for s in BIG_SMALL[n])
    c = -(-(1 << 17) // (2 * math.prod(factors) * math.prod(small)))  # about 2**17 elements
    for fmt, dtype in itertools.product(FORMATS, (torch.float32, torch.int16)):
        first = fmt == "channels_first"
        x = _random_tensor(_shuffled_shape(batch, c * math.prod(factors), small, first), dtype)
        assert x.numel() >= 1 << 16
        ref = _table_shuffle(x, factors, order, first)
        y = pixel_shuffle(x, factors, order=order, data_format=fmt)
        assert torch.equal(y, ref)
        np.testing.assert_array_equal(
            pixel_shuffle(x.numpy(), factors, order=order, data_format=fmt), ref.numpy()
        )
        # the inverse, on the reference's output: must give x back exactly
        assert torch.equal(pixel_unshuffle(ref, factors, order=order, data_format=fmt), x)
        np.testing.assert_array_equal(
            pixel_unshuffle(ref.numpy(), factors, order=order, data_format=fmt), x.numpy()
        )


def test_split_copy_is_used_where_intended() -> None:
    from subpixel.ops import _plan, _split_dims

    def dims(shape: tuple[int, ...], order: str, first: bool, inverse: bool) -> tuple[int, ...]:
        spec = ShuffleSpec.make(2, order)
        view, perm, _ = _plan(shape, spec, first, inverse)
        src = torch.empty(shape).reshape(view).permute(perm)
        return _split_dims(src.shape, src.stride())

    # channels-last "chw" unshuffle: (B, H', W', C, r_h, r_w), the two factor axes split.
    assert dims((2, 64, 64, 16), "chw", False, True) == (4, 5)
    # channels-last "hcw" shuffle: (B, H, r_h, W, r_w, C) with C=16: r_w split.
    assert dims((2, 32, 32, 64), "hcw", False, False) == (4,)
    # channels-first shuffles keep one plain copy (long rows under r_w).
    assert dims((2, 64, 32, 32), "chw", True, False) == ()
    assert dims((2, 64, 32, 32), "hwc", True, False) == ()


def test_fast_paths_batch_dims_and_autograd() -> None:
    for batch in [(), (2, 1)]:
        x = torch.randn(*batch, 32, 32, 64)
        ref = pixel_shuffle(x.numpy(), 2, data_format="channels_last")
        np.testing.assert_array_equal(pixel_shuffle(x, 2, data_format="channels_last"), ref)
        y = torch.randn(*batch, 64, 64, 16)
        np.testing.assert_array_equal(
            pixel_unshuffle(y, 2, data_format="channels_last"),
            pixel_unshuffle(y.numpy(), 2, data_format="channels_last"),
        )
    x = torch.randn(1, 64, 64, 16, requires_grad=True)
    y = pixel_unshuffle(x, 2, order="cwh", data_format="channels_last")
    with torch.no_grad():
        assert torch.equal(y, pixel_unshuffle(x, 2, order="cwh", data_format="channels_last"))
    g = torch.randn_like(y)
    y.backward(g)
    assert x.grad is not None
    assert torch.equal(x.grad, pixel_shuffle(g, 2, order="cwh", data_format="channels_last"))


def test_meta_device() -> None:
    x = torch.empty(2, 3 * 8, 4, 5, 6, device="meta")
    y = pixel_shuffle(x, 2, order="whdc", data_format="channels_first")
    assert y.device.type == "meta"
    assert y.shape == (2, 3, 8, 10, 12)
    assert pixel_unshuffle(y, 2, order="whdc").shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("n", "order"), ALL_ORDERS, ids=_id)
def test_cuda_matches_cpu(n: int, order: str) -> None:
    for fmt in FORMATS:
        first = fmt == "channels_first"
        x = torch.randn(_shuffled_shape((2,), 3 * 2**n, (3, 4, 5)[:n], first))
        y = pixel_shuffle(x.cuda(), 2, order=order, data_format=fmt)
        assert y.is_cuda
        assert torch.equal(y.cpu(), pixel_shuffle(x, 2, order=order, data_format=fmt))
        assert torch.equal(pixel_unshuffle(y, 2, order=order, data_format=fmt).cpu(), x)


def test_empty_tensors() -> None:
    for shape in [(0, 8, 3, 3), (2, 8, 0, 3), (2, 0, 3, 3)]:
        x = torch.empty(shape)
        y = pixel_shuffle(x, 2, order="hwc")
        assert y.shape == (shape[0], shape[1] // 4, shape[2] * 2, shape[3] * 2)
        assert pixel_unshuffle(y, 2, order="hwc").shape == shape
        assert pixel_shuffle(x.numpy(), 2, order="cwh").shape == y.shape


# --- PyTorch, ONNX, TensorFlow and the original project ----------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.bool], ids=str)
@pytest.mark.parametrize("batch", [(), (2,), (2, 1), (1, 2, 1)], ids=_id)
@pytest.mark.parametrize("r", [1, 2, 3])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=str)
def test_chw_equals_pytorch(
    r: int, batch: tuple[int, ...], dtype: torch.dtype, memory_format: torch.memory_format
) -> None:
    x = _random_tensor((*batch, 2 * r * r, 3, 5), dtype)
    if len(batch) == 1:
        x = x.contiguous(memory_format=memory_format)
    ref = F.pixel_shuffle(x, r)
    for order in ("chw", "torch", "pytorch", "CHW"):
        assert torch.equal(pixel_shuffle(x, r, order=order), ref)
    y = _random_tensor((*batch, 2, 3 * r, 5 * r), dtype)
    if len(batch) == 1:
        y = y.contiguous(memory_format=memory_format)
    assert torch.equal(pixel_unshuffle(y, r), F.pixel_unshuffle(y, r))
    assert torch.equal(pixel_unshuffle(y, (r, r), order="torch"), F.pixel_unshuffle(y, r))
    # The module forms too.
    assert torch.equal(torch.nn.PixelShuffle(r)(x), pixel_shuffle(x, r))


def onnx_depth_to_space(x: np.ndarray, bs: int, mode: str) -> np.ndarray:
    """The ONNX specification's DepthToSpace, written out (NCHW)."""
    b, c, h, w = x.shape
    if mode == "DCR":
        tmp = np.reshape(x, [b, bs, bs, c // bs**2, h, w])
        tmp = np.transpose(tmp, [0, 3, 4, 1, 5, 2])
    else:  # CRD
        tmp = np.reshape(x, [b, c // bs**2, bs, bs, h, w])
        tmp = np.transpose(tmp, [0, 1, 4, 2, 5, 3])
    return np.reshape(tmp, [b, c // bs**2, h * bs, w * bs])


def onnx_space_to_depth(x: np.ndarray, bs: int) -> np.ndarray:
    """The ONNX specification's SpaceToDepth, written out (NCHW)."""
    b, c, h, w = x.shape
    tmp = np.reshape(x, [b, c, h // bs, bs, w // bs, bs])
    tmp = np.transpose(tmp, [0, 3, 5, 1, 2, 4])
    return np.reshape(tmp, [b, c * bs**2, h // bs, w // bs])


def tf_depth_to_space_nhwc(x: np.ndarray, bs: int) -> np.ndarray:
    """TensorFlow ``depth_to_space`` (NHWC) as its documentation describes it."""
    b, h, w, c = x.shape
    tmp = np.reshape(x, [b, h, w, bs, bs, c // bs**2])
    tmp = np.transpose(tmp, [0, 1, 3, 2, 4, 5])
    return np.reshape(tmp, [b, h * bs, w * bs, c // bs**2])


@pytest.mark.parametrize("bs", [1, 2, 3, 4])
@pytest.mark.parametrize("b", [1, 2])
@pytest.mark.parametrize("c", [1, 3])
def test_onnx_and_tensorflow_formulas(bs: int, b: int, c: int) -> None:
    rng = np.random.default_rng(3)
    x = _unique((b, c * bs * bs, 3, 4), rng)
    dcr = onnx_depth_to_space(x, bs, "DCR")
    crd = onnx_depth_to_space(x, bs, "CRD")
    for alias in ("hwc", "onnx-dcr", "dcr", "tensorflow", "tf"):
        np.testing.assert_array_equal(pixel_shuffle(x, bs, order=alias), dcr)
        assert torch.equal(pixel_shuffle(torch.from_numpy(x), bs, order=alias), torch.tensor(dcr))
    for alias in ("chw", "onnx-crd", "crd", "einops"):
        np.testing.assert_array_equal(pixel_shuffle(x, bs, order=alias), crd)
    y = _unique((b, c, 3 * bs, 4 * bs), rng)
    np.testing.assert_array_equal(pixel_unshuffle(y, bs, order="hwc"), onnx_space_to_depth(y, bs))
    np.testing.assert_array_equal(
        pixel_unshuffle(y, bs, order="tensorflow"), onnx_space_to_depth(y, bs)
    )
    xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(
        pixel_shuffle(xl, bs, order="tensorflow", data_format="channels_last"),
        tf_depth_to_space_nhwc(xl, bs),
    )


# A literal numpy port of the original TensorFlow project's phase shift. The old TF API is
# tf.split(axis, num, value) and tf.concat(axis, values). tf.squeeze(x) drops *every* size-1
# axis, which breaks the code for bsize == 1 (or a == 1, b == 1); the port squeezes axis 1
# only, which is what the code means. The original source has a transpose of the two r axes
# right after the first reshape (``tf.transpose(X, (0, 1, 2, 4, 3))  # bsize, a, b, 1, 1``);
# that transpose is what makes the block column-major ("cwh"). Without it (see
# ``_phase_shift_without_transpose``) the code would be PyTorch's row-major "chw".


def _phase_shift(I: np.ndarray, r: int, transpose: bool = True) -> np.ndarray:
    bsize, a, b, _c = I.shape
    X = np.reshape(I, (bsize, a, b, r, r))
    if transpose:
        X = np.transpose(X, (0, 1, 2, 4, 3))  # bsize, a, b, 1, 1
    X = np.split(X, a, axis=1)  # a, [bsize, b, r, r]
    X = np.concatenate([np.squeeze(x, axis=1) for x in X], axis=2)  # bsize, b, a*r, r
    X = np.split(X, b, axis=1)  # b, [bsize, a*r, r]
    X = np.concatenate([np.squeeze(x, axis=1) for x in X], axis=2)  # bsize, a*r, b*r
    return np.reshape(X, (bsize, a * r, b * r, 1))


def PS(X: np.ndarray, r: int, color: bool = False, transpose: bool = True) -> np.ndarray:
    if color:
        Xc = np.split(X, 3, axis=3)  # split channels into 3 groups of r*r (NHWC)
        return np.concatenate([_phase_shift(x, r, transpose) for x in Xc], axis=3)
    return _phase_shift(X, r, transpose)


@pytest.mark.parametrize("r", [1, 2, 3, 4])
@pytest.mark.parametrize("bsize", [1, 3])
def test_original_subpixel_ps_is_cwh(r: int, bsize: int) -> None:
    rng = np.random.default_rng(4)
    x = _unique((bsize, 3, 5, 3 * r * r), rng)
    ps = PS(x, r, color=True)
    np.testing.assert_array_equal(pixel_shuffle(x, r, order="cwh", data_format="channels_last"), ps)
    for alias in ("subpixel-tf", "caffe", "realsr"):
        np.testing.assert_array_equal(
            pixel_shuffle(x, r, order=alias, data_format="channels_last"), ps
        )
    np.testing.assert_array_equal(
        pixel_unshuffle(ps, r, order="cwh", data_format="channels_last"), x
    )
    y = x[..., : r * r]  # one output channel: cwh and whc coincide
    for order in ("cwh", "whc", "keras-article"):
        np.testing.assert_array_equal(
            pixel_shuffle(y, r, order=order, data_format="channels_last"), PS(y, r)
        )
    # Without the transpose line the same code is the row-major order.
    np.testing.assert_array_equal(
        pixel_shuffle(x, r, order="chw", data_format="channels_last"),
        PS(x, r, color=True, transpose=False),
    )
    if r > 1:
        assert not np.array_equal(pixel_shuffle(x, r, order="chw", data_format="channels_last"), ps)


def test_aliases_resolve_for_every_dimension() -> None:
    expected = {
        "torch": {1: "cw", 2: "chw", 3: "cdhw"},
        "tensorflow": {1: "wc", 2: "hwc", 3: "dhwc"},
        "caffe": {1: "cw", 2: "cwh", 3: "cwhd"},
        "keras-article": {1: "wc", 2: "whc", 3: "whdc"},
    }
    for alias, per_n in expected.items():
        for n, order in per_n.items():
            assert resolve_order(alias, n) == order
            assert ShuffleSpec.make((2,) * n, alias).order == order
    assert ShuffleSpec.make(2, "tensorflow").order == "hwc"  # an int factor means 2-D
    assert set(ORDER_ALIASES) >= {"torch", "tensorflow", "onnx-dcr", "onnx-crd", "caffe"}


# --- Inverse laws (hypothesis) ------------------------------------------------------------


@st.composite
def shuffle_cases(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], str, str]:
    n = draw(st.integers(1, 3))
    order = draw(st.sampled_from(ORDERS[n]))
    factors = tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    batch = tuple(draw(st.lists(st.integers(1, 2), min_size=0, max_size=2)))
    small = tuple(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    c = draw(st.integers(1, 3))
    fmt = draw(st.sampled_from(FORMATS))
    shape = _shuffled_shape(batch, c * math.prod(factors), small, fmt == "channels_first")
    return shape, factors, order, fmt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shuffle_cases(), st.sampled_from(["float32", "int64", "bool"]))
def test_inverse_laws(case: tuple, dtype: str) -> None:
    shape, factors, order, fmt = case
    x = np.random.default_rng(len(shape)).integers(0, 100, shape).astype(dtype)
    xt = torch.from_numpy(x)
    # unshuffle(shuffle(x)) == x
    y = pixel_shuffle(xt, factors, order=order, data_format=fmt)
    assert torch.equal(pixel_unshuffle(y, factors, order=order, data_format=fmt), xt)
    # shuffle(unshuffle(z)) == z, on the large shape
    z = torch.from_numpy(np.flip(x).copy())
    z = pixel_shuffle(z, factors, order=order, data_format=fmt)
    u = pixel_unshuffle(z, factors, order=order, data_format=fmt)
    assert torch.equal(pixel_shuffle(u, factors, order=order, data_format=fmt), z)
    # numpy and torch agree
    np.testing.assert_array_equal(pixel_shuffle(x, factors, order=order, data_format=fmt), y)
    np.testing.assert_array_equal(
        pixel_unshuffle(z.numpy(), factors, order=order, data_format=fmt), u.numpy()
    )


# --- Autograd ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "factor", "data_format"),
    [
        ("chw", 2, "channels_first"),
        ("hwc", (2, 3), "channels_last"),
        ("cwh", 3, "channels_first"),
        ("wc", 2, "channels_last"),
        ("dchw", (1, 2, 2), "channels_first"),
    ],
)
def test_gradcheck(order: str, factor: int | tuple[int, ...], data_format: str) -> None:
    n = len(order) - 1
    factors = _factors(factor, n)
    first = data_format == "channels_first"
    x = torch.randn(
        _shuffled_shape((), 2 * math.prod(factors), (2, 3, 2)[:n], first),
        dtype=torch.float64,
        requires_grad=True,
    )
    assert torch.autograd.gradcheck(
        lambda t: pixel_shuffle(t, factor, order=order, data_format=data_format), (x,)
    )
    y = pixel_shuffle(x, factor, order=order, data_format=data_format).detach()
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t: pixel_unshuffle(t, factor, order=order, data_format=data_format), (y,)
    )
    if order == "chw":
        assert torch.autograd.gradgradcheck(
            lambda t: pixel_shuffle(t, factor, order=order, data_format=data_format), (x,)
        )


def test_gradient_is_the_inverse_shuffle() -> None:
    x = torch.randn(2, 12, 3, 4, requires_grad=True)
    g = torch.randn(2, 3, 6, 8)
    pixel_shuffle(x, 2, order="cwh").backward(g)
    assert x.grad is not None
    assert torch.equal(x.grad, pixel_unshuffle(g, 2, order="cwh"))


# --- convert_order --------------------------------------------------------------------------


def test_convert_order_worked_example() -> None:
    """orders.md: hwc -> chw, C=3, r=2: new channel c·4 + (i·2+j) takes old (i·2+j)·3 + c."""
    expected = [(i * 2 + j) * 3 + c for c in range(3) for i in range(2) for j in range(2)]
    assert order_permutation(12, 2, src="hwc", dst="chw").tolist() == expected
    w = torch.randn(12, 5, 3, 3)
    b = torch.randn(12)
    new_w = convert_order(w, 2, src="hwc", dst="chw")
    new_b = convert_order(b, 2, src="tensorflow", dst="torch")
    for c, i, j in itertools.product(range(3), range(2), range(2)):
        assert torch.equal(new_w[c * 4 + i * 2 + j], w[(i * 2 + j) * 3 + c])
        assert torch.equal(new_b[c * 4 + i * 2 + j], b[(i * 2 + j) * 3 + c])
    np.testing.assert_array_equal(convert_order(w.numpy(), 2, src="hwc", dst="chw"), new_w)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_convert_order_law_for_every_pair(n: int) -> None:
    factors = (2, 3, 1)[:n] if n > 1 else (3,)
    channels = 2 * math.prod(factors)
    for first, batch in itertools.product((True, False), ((), (2,))):
        shape = _shuffled_shape(batch, channels, (2, 1, 2)[:n], first)
        t = torch.randn(shape)
        dim = len(batch) if first else -1
        fmt = "channels_first" if first else "channels_last"
        shuffled = {o: pixel_shuffle(t, factors, order=o, data_format=fmt) for o in ORDERS[n]}
        for src, dst in itertools.product(ORDERS[n], repeat=2):
            converted = convert_order(t, factors, src=src, dst=dst, dim=dim)
            got = pixel_shuffle(converted, factors, order=dst, data_format=fmt)
            assert torch.equal(got, shuffled[src]), (src, dst, fmt, batch)


def test_convert_order_on_a_convolution() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 2 * 6, 3, padding=1).double()
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    before = pixel_shuffle(conv(x), (2, 3), order="cwh")
    with torch.no_grad():
        conv.weight.copy_(convert_order(conv.weight, (2, 3), src="cwh", dst="chw"))
        conv.bias.copy_(convert_order(conv.bias, (2, 3), src="cwh", dst="chw"))
    after = pixel_shuffle(conv(x), (2, 3), order="chw")
    torch.testing.assert_close(after, before, rtol=0, atol=1e-12)


def test_convert_order_round_trip_and_errors() -> None:
    t = torch.randn(5, 24, 3)
    back = convert_order(
        convert_order(t, 2, src="dhwc", dst="cwhd", dim=1), 2, src="cwhd", dst="dhwc", dim=1
    )
    assert torch.equal(back, t)
    assert torch.equal(convert_order(t, 2, src="dhwc", dst="dhwc", dim=-2), t)
    with pytest.raises(ValueError, match="dim 3"):
        convert_order(t, 2, src="chw", dst="hwc", dim=3)
    with pytest.raises(ValueError, match="not divisible"):
        convert_order(t, 5, src="chw", dst="hwc", dim=1)
    with pytest.raises(ValueError):
        convert_order(t, 2, src="chw", dst="dhwc", dim=1)


# --- Errors ---------------------------------------------------------------------------------

ERROR_CASES = [
    # (function, shape, factor, order, data_format, words)
    (pixel_shuffle, (1, 5, 4, 4), 2, "chw", "channels_first", "divisible"),
    (pixel_shuffle, (1, 4, 4, 5), (2, 2), "hwc", "channels_last", "divisible"),
    (pixel_shuffle, (2, 12, 3, 3, 3), 2, "cdhw", "channels_first", "divisible"),
    (pixel_unshuffle, (1, 3, 5, 4), 2, "chw", "channels_first", "divisible"),
    (pixel_unshuffle, (1, 4, 6, 3), (2, 4), "whc", "channels_last", "divisible"),
    (pixel_shuffle, (1, 4, 4, 4), 2, "chx", "channels_first", "order"),
    (pixel_shuffle, (1, 4, 4, 4), 2, "chhw", "channels_first", "order"),
    (pixel_shuffle, (1, 4, 4, 4), 2, "hw", "channels_first", "order"),
    (pixel_shuffle, (1, 4, 4, 4), 2, "no-such-alias", "channels_first", "order"),
    (pixel_shuffle, (1, 4, 4, 4), 0, "chw", "channels_first", ">= 1"),
    (pixel_unshuffle, (1, 4, 4, 4), (2, -1), "chw", "channels_first", ">= 1"),
    (pixel_shuffle, (1, 4, 4, 4), (2, 2, 2), "chw", "channels_first", "entries"),
    (pixel_shuffle, (1, 4, 4, 4), (2,), "chw", "channels_first", "entries"),
    (pixel_shuffle, (1, 4, 4, 4), (2, 2, 2, 2), "torch", "channels_first", "entries"),
    (pixel_shuffle, (4, 4), 2, "chw", "channels_first", "too few"),
    (pixel_unshuffle, (8, 4, 4), 2, "cdhw", "channels_last", "too few"),
    (pixel_shuffle, (1, 4, 4, 4), 2, "chw", "nchw", "data_format"),
]


@pytest.mark.parametrize(("fn", "shape", "factor", "order", "data_format", "words"), ERROR_CASES)
@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_error_messages_name_shape_factor_and_order(
    fn: object,
    shape: tuple[int, ...],
    factor: object,
    order: str,
    data_format: str,
    words: str,
    kind: str,
) -> None:
    x = torch.zeros(shape) if kind == "torch" else np.zeros(shape)
    with pytest.raises(ValueError) as info:
        fn(x, factor, order=order, data_format=data_format)  # type: ignore[operator]
    msg = str(info.value)
    assert words in msg
    assert str(tuple(shape)) in msg, msg
    n = len(order) - 1 if order not in ORDER_ALIASES else 2
    assert repr(factor) in msg or str(_factors(factor, n)) in msg, msg  # type: ignore[arg-type]
    assert repr(order) in msg, msg


def test_type_errors() -> None:
    with pytest.raises(TypeError):
        pixel_shuffle([[1, 2]], 1)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        pixel_shuffle(torch.zeros(1, 4, 2, 2), 2.0)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        pixel_shuffle(torch.zeros(1, 4, 2, 2), True)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        pixel_shuffle(torch.zeros(1, 4, 2, 2), 2, order=None)  # type: ignore[call-overload]


def test_numpy_integer_factors_and_lists() -> None:
    x = torch.randn(1, 12, 2, 2)
    ref = pixel_shuffle(x, (2, 3), order="hwc")
    assert torch.equal(pixel_shuffle(x, [2, 3], order="hwc"), ref)
    assert torch.equal(pixel_shuffle(x, (np.int64(2), np.int32(3)), order="hwc"), ref)
    assert torch.equal(pixel_shuffle(x, 2, order=" HWC "), pixel_shuffle(x, 2, order="hwc"))
