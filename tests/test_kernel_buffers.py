"""Every compiled kernel refuses arrays that do not fit, with a ValueError naming the array.

The kernels (``src/subpixel/_csrc``) take Python buffers and check their shapes, item
formats and strides against each other (``_csrc/buffers.h``); these tests hand each entry
point deliberately wrong views (another shape, a non-contiguous view where the kernel needs
contiguous data, another dtype, another number of dimensions, a read-only or self-
overlapping output, misaligned weights, a raw address) and expect an exception, never a
read out of bounds. A correct call is run first, so each case differs from a working one in
one array only. Kernels that were not built are skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from subpixel import _compiled
from subpixel.fast._kernels import winograd


@dataclass
class Entry:
    """One entry point: its working arrays and a call taking them by name."""

    kernel: str
    make: Callable[[], dict[str, np.ndarray]]
    call: Callable[[object, dict[str, np.ndarray]], object]


def _aligned(shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
    """float32 zeros starting ``offset`` bytes after a 64-byte boundary."""
    n = int(np.prod(shape))
    raw = np.zeros(4 * n + 128, np.uint8)
    skip = (-raw.ctypes.data) % 64 + offset
    return raw[skip : skip + 4 * n].view(np.float32).reshape(shape)


def _pre() -> dict[str, np.ndarray]:
    h, w = 5, 7
    return {
        "src": np.zeros((h, w, 3), np.uint8),
        "y": np.zeros((h, w), np.float32),
        "c": np.zeros((2, h, w + 4), np.float32),
    }


def _post() -> dict[str, np.ndarray]:
    h, w, s = 5, 7, 2
    return {
        "phases": np.zeros((h * w, s * s), np.float32),
        "c": np.zeros((2, h, w + 4), np.float32),
        "out": np.zeros((s * h, s * w, 3), np.uint8),
    }


def _conv3x3() -> dict[str, np.ndarray]:
    return {
        "in": np.zeros((6, 9, 8), np.float32),
        "out": np.zeros((4, 9, 4), np.float32),
        "weight": np.zeros((4, 8, 3, 3), np.float32),
        "bias": np.zeros(4, np.float32),
    }


def _conv_first() -> dict[str, np.ndarray]:
    k = 5
    return {
        "in": np.zeros((6 + k - 1, 9 + k - 1), np.float32),
        "out": np.zeros((6, 9, 12), np.float32),
        "weight": np.zeros((12, k, k), np.float32),
        "bias": np.zeros(12, np.float32),
    }


def _winograd() -> dict[str, np.ndarray]:
    return {
        "in": np.zeros((10, 9, 16), np.float32),
        "out": np.zeros((8, 9, 4), np.float32),
        "u": _aligned((36, 16, 16)),
        "bias": _aligned((16,)),
    }


def _copy() -> dict[str, np.ndarray]:
    src = np.arange(72, dtype=np.float32).reshape(3, 4, 6).transpose(1, 2, 0)
    return {"dst": np.zeros((4, 6, 3), np.float32), "src": src}


ENTRIES = {
    "pipeline.pre": Entry(
        "pipeline", _pre, lambda k, b: k.pre(b["src"], b["y"], b["c"], [0.1] * 12, False, 2)
    ),
    "pipeline.post": Entry(
        "pipeline",
        _post,
        lambda k, b: k.post(
            b["phases"], b["c"], [0.2] * 10, [0.3] * 12, 0.0, 1.0, 255.0, False, b["out"], 2
        ),
    ),
    "conv3x3.conv": Entry(
        "conv3x3",
        _conv3x3,
        lambda k, b: k.conv(b["in"], False, b["out"], b["weight"], b["bias"], 2, valid=True),
    ),
    "conv_first.conv": Entry(
        "conv_first",
        _conv_first,
        lambda k, b: k.conv(b["in"], b["out"], b["weight"], b["bias"], True, 2),
    ),
    "winograd.conv": Entry(
        "winograd",
        _winograd,
        lambda k, b: k.conv(b["in"], b["out"], b["u"], b["bias"], True, False, 2),
    ),
    "strided_copy.copy": Entry("strided_copy", _copy, lambda k, b: k.copy(b["dst"], b["src"], 2)),
}


def _kernel(entry: Entry) -> object:
    k = _compiled.load(entry.kernel)
    if k is None:
        pytest.skip(f"subpixel._{entry.kernel} was not built")
    return k


def _wrong(good: np.ndarray, how: str) -> np.ndarray:
    if how == "shape":
        return np.zeros(tuple(n + 1 for n in good.shape), good.dtype)
    if how == "stride":  # the same shape, its last dimension not contiguous
        wide = np.zeros((*good.shape[:-1], 2 * good.shape[-1]), good.dtype)
        return wide[..., ::2]
    if how == "dtype":
        return good.astype(np.float64 if good.dtype == np.float32 else np.int16)
    if how == "ndim":
        return good[..., None]
    if how == "read-only":
        bad = good.copy()
        bad.flags.writeable = False
        return bad
    if how == "overlap":  # every row the same memory
        return np.lib.stride_tricks.as_strided(good, strides=(0, *good.strides[1:]))
    raise AssertionError(how)


# (entry point, array, what is wrong, the error's pattern where it does not start with the
# array's name: a wrong size can show first as a mismatch with another array)
CASES = [
    ("pipeline.pre", "src", "shape", None),
    ("pipeline.pre", "src", "stride", None),
    ("pipeline.pre", "src", "dtype", None),
    ("pipeline.pre", "src", "ndim", None),
    ("pipeline.pre", "y", "shape", None),
    ("pipeline.pre", "y", "stride", None),
    ("pipeline.pre", "y", "dtype", None),
    ("pipeline.pre", "y", "read-only", None),
    ("pipeline.pre", "c", "shape", None),
    ("pipeline.pre", "c", "stride", None),
    ("pipeline.pre", "c", "ndim", None),
    ("pipeline.post", "phases", "shape", r"^(post|phases|c):"),
    ("pipeline.post", "phases", "dtype", None),
    ("pipeline.post", "phases", "ndim", None),
    ("pipeline.post", "c", "shape", r"^(phases|c):"),
    ("pipeline.post", "c", "stride", None),
    ("pipeline.post", "c", "dtype", None),
    ("pipeline.post", "out", "shape", None),
    ("pipeline.post", "out", "stride", None),
    ("pipeline.post", "out", "dtype", None),
    ("pipeline.post", "out", "read-only", None),
    ("pipeline.post", "out", "overlap", None),
    ("conv3x3.conv", "in", "shape", r"^(out|weight):"),
    ("conv3x3.conv", "in", "dtype", None),
    ("conv3x3.conv", "in", "ndim", None),
    ("conv3x3.conv", "out", "shape", r"^(out|conv):"),
    ("conv3x3.conv", "out", "dtype", None),
    ("conv3x3.conv", "out", "read-only", None),
    ("conv3x3.conv", "out", "overlap", None),
    ("conv3x3.conv", "weight", "shape", None),
    ("conv3x3.conv", "weight", "stride", None),
    ("conv3x3.conv", "weight", "dtype", None),
    ("conv3x3.conv", "bias", "shape", None),
    ("conv3x3.conv", "bias", "stride", None),
    ("conv_first.conv", "in", "shape", None),
    ("conv_first.conv", "in", "stride", None),
    ("conv_first.conv", "in", "dtype", None),
    ("conv_first.conv", "in", "ndim", None),
    ("conv_first.conv", "out", "shape", r"^(in|weight):"),
    ("conv_first.conv", "out", "stride", None),
    ("conv_first.conv", "out", "dtype", None),
    ("conv_first.conv", "out", "read-only", None),
    ("conv_first.conv", "out", "overlap", None),
    ("conv_first.conv", "weight", "shape", r"^(in|weight):"),
    ("conv_first.conv", "weight", "stride", None),
    ("conv_first.conv", "bias", "shape", None),
    ("conv_first.conv", "bias", "dtype", None),
    ("winograd.conv", "in", "shape", r"^(out|u|winograd\.conv):"),
    ("winograd.conv", "in", "stride", None),
    ("winograd.conv", "in", "dtype", None),
    ("winograd.conv", "in", "ndim", None),
    ("winograd.conv", "out", "shape", None),
    ("winograd.conv", "out", "stride", None),
    ("winograd.conv", "out", "dtype", None),
    ("winograd.conv", "out", "read-only", None),
    ("winograd.conv", "out", "overlap", None),
    ("winograd.conv", "u", "shape", r"^(u|winograd\.conv):"),
    ("winograd.conv", "u", "stride", r"^(u|winograd\.conv):"),
    ("winograd.conv", "u", "dtype", None),
    ("winograd.conv", "bias", "shape", None),
    ("strided_copy.copy", "dst", "shape", None),
    ("strided_copy.copy", "dst", "dtype", r"^copy:"),
    ("strided_copy.copy", "dst", "ndim", r"^copy:"),
    ("strided_copy.copy", "dst", "read-only", None),
    ("strided_copy.copy", "dst", "overlap", None),
]


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_the_working_call_works(entry: str) -> None:
    e = ENTRIES[entry]
    assert e.call(_kernel(e), e.make()) is None


@pytest.mark.parametrize(("entry", "name", "how", "pattern"), CASES)
def test_a_wrong_view_raises(entry: str, name: str, how: str, pattern: str | None) -> None:
    e = ENTRIES[entry]
    k = _kernel(e)
    arrays = e.make()
    arrays[name] = _wrong(arrays[name], how)
    with pytest.raises(ValueError, match=pattern or rf"^{name}:"):
        e.call(k, arrays)


@pytest.mark.parametrize("entry", list(ENTRIES))
def test_addresses_and_other_objects_are_refused(entry: str) -> None:
    """The old calling convention (integer addresses) and non-buffers raise, never crash."""
    e = ENTRIES[entry]
    k = _kernel(e)
    for name in e.make():
        for bad in (12345678, [0.0, 1.0], None):
            arrays = e.make()
            arrays[name] = bad  # type: ignore[assignment]
            with pytest.raises((ValueError, TypeError)):
                e.call(k, arrays)


def test_misaligned_and_odd_byte_strides() -> None:
    """Winograd's weights must be 64-byte aligned; float strides must be whole floats."""
    k = _kernel(ENTRIES["winograd.conv"])
    arrays = _winograd()
    arrays["u"] = _aligned((36, 16, 16), offset=4)
    with pytest.raises(ValueError, match=r"^u: .*aligned"):
        ENTRIES["winograd.conv"].call(k, arrays)
    arrays = _winograd()
    arrays["bias"] = _aligned((16,), offset=8)
    with pytest.raises(ValueError, match=r"^bias: .*aligned"):
        ENTRIES["winograd.conv"].call(k, arrays)
    k = _kernel(ENTRIES["pipeline.post"])
    arrays = _post()
    arrays["phases"] = _odd_rows()
    with pytest.raises(ValueError, match=r"^phases: .*multiple"):
        ENTRIES["pipeline.post"].call(k, arrays)


def _odd_rows() -> np.ndarray:
    """(35, 4) float32 whose rows are 18 bytes apart (a view of a byte buffer)."""
    raw = np.zeros(18 * 35 + 16, np.uint8)
    return np.ndarray((35, 4), np.float32, buffer=raw, offset=0, strides=(18, 4))


def test_bfloat16_input_must_be_16_bit() -> None:
    """conv3x3's bfloat16 input comes as 16-bit integers; float32 there is refused."""
    e = ENTRIES["conv3x3.conv"]
    k = _kernel(e)
    b = _conv3x3()
    with pytest.raises(ValueError, match=r"^in: .*format"):
        k.conv(b["in"], True, np.zeros((6, 9, 4), np.float32), b["weight"], b["bias"], 1)
    half = np.zeros((6, 9, 8), np.int16)
    k.conv(half, True, np.zeros((6, 9, 4), np.float32), b["weight"], b["bias"], 1)


def test_the_wrappers_pass_views_the_kernels_accept() -> None:
    """Through the Python wrappers, strided tensor views reach the kernels as buffers."""
    import torch

    if not winograd.available():
        pytest.skip("subpixel._winograd was not built")
    conv = winograd.Winograd3x3.create(torch.randn(4, 16, 3, 3), torch.randn(4))
    assert conv is not None
    x = torch.randn(10, 18, 32)[:, ::2, 8:24]  # pixel stride 64, channels contiguous
    big = torch.zeros(8, 9, 12)
    assert conv(x, big[:, :, 4:8], relu=False)
    assert big[:, :, :4].eq(0).all() and big[:, :, 8:].eq(0).all()
