"""The compiled strided copy (``subpixel._copy``) against numpy's and PyTorch's own copies.

Random shapes, permutations, slices with negative and non-unit steps, odd item sizes and
byte-misaligned views; sizes on both sides of the threshold where the copy goes
multi-threaded and pre-maps its output. Skipped, with the reason, where the extension was
not built (no C compiler at install time); the pure-Python paths are tested everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subpixel import _copy

pytestmark = pytest.mark.skipif(
    not _copy.available(), reason="compiled strided copy not built (no C compiler)"
)

DTYPES = ["u1", "<i2", ">f4", "<f8", "<c16", "S3", "V5"]


def _random_view(rng: np.random.Generator, dtype: str, big: bool) -> np.ndarray:
    ndim = int(rng.integers(1, 7))
    hi = 40 if big else 7
    shape = tuple(int(v) for v in rng.integers(1, hi, ndim))
    while np.prod(shape) > (1 << 19):  # big: up to half a million elements
        shape = tuple(max(1, s // 2) for s in shape)
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    base = np.frombuffer(rng.bytes(size), dtype=dtype).reshape(shape)
    view = base.transpose(rng.permutation(ndim))
    steps = tuple(slice(None, None, int(rng.choice([1, 1, -1, 2]))) for _ in range(ndim))
    return view[steps]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_copy_array_equals_numpy(dtype: str, big: bool) -> None:
    rng = np.random.default_rng(sum(map(ord, dtype)) + big)
    for _ in range(40 if big else 300):
        view = _random_view(rng, dtype, big)
        got = _copy.copy_array(view)
        assert got is not None
        want = np.ascontiguousarray(view)
        assert got.flags.c_contiguous and got.dtype == view.dtype and got.shape == view.shape
        assert got.tobytes() == want.tobytes()  # bytes: NaN payloads and void types too


def test_misaligned_and_zero_sized() -> None:
    raw = np.frombuffer(np.random.default_rng(0).bytes(4 * 1001), dtype=np.uint8)
    view = raw[1:4001].view("<f4").reshape(40, 25)[:, ::3].T  # strides not multiples of 4
    got = _copy.copy_array(view)
    assert got is not None and got.tobytes() == np.ascontiguousarray(view).tobytes()
    empty = np.zeros((3, 0, 4), np.float32).transpose(2, 0, 1)
    got = _copy.copy_array(empty)
    assert got is not None and got.shape == (4, 3, 0)


def test_object_arrays_are_left_to_numpy() -> None:
    assert _copy.copy_array(np.array([[1, "a"], [None, 2.0]], dtype=object).T) is None


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_copy_into_torch_large(threads: int) -> None:
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # 8 MiB float32 and 16 MiB int64 outputs: pre-mapped (huge pages where possible)
        x = torch.randn(64, 2, 2, 64, 64).permute(0, 3, 1, 4, 2)
        out = torch.empty(x.shape)
        assert _copy.copy_into(out, x)
        assert torch.equal(out, x.contiguous())
        y = torch.randint(-(2**40), 2**40, (2, 1024, 1024), dtype=torch.int64).transpose(1, 2)
        out64 = torch.empty(y.shape, dtype=torch.int64)
        assert _copy.copy_into(out64, y)
        assert torch.equal(out64, y.contiguous())
        # into a destination with its own strides (channels last)
        z = torch.randn(4, 64, 32, 32)
        dst = torch.empty_like(z, memory_format=torch.channels_last)
        assert _copy.copy_into(dst, z)
        assert torch.equal(dst, z)
    finally:
        torch.set_num_threads(torch_threads)


def test_copy_into_refuses_what_it_cannot_copy() -> None:
    x = torch.randn(3, 4, dtype=torch.complex64)
    out = torch.empty(3, 4, dtype=torch.complex64)
    assert not _copy.copy_into(out, x.conj())  # lazy conjugate: the bytes are not the values
    assert not _copy.copy_into(torch.empty(3, 4), x.real.t().contiguous().t()[:, :3])
    assert not _copy.copy_into(torch.empty(3, 4, dtype=torch.float64), x.real)
