"""subpixel.applications.idx: the IDX reader, against hand-packed files and the real MNIST files."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from subpixel.applications.idx import load_mnist, mnist_files, read_idx

# Published facts about the real files (independent of this reader).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _pack(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def _write(path: Path, data: bytes, *, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("code", "fmt", "values"),
    [
        (0x08, "B", [0, 1, 255, 7, 8, 9]),
        (0x09, "b", [-128, -1, 0, 1, 127, 5]),
        (0x0B, "h", [-32768, -2, 0, 256, 32767, 3]),
        (0x0C, "i", [-(2**31), -5, 0, 65536, 2**31 - 1, 4]),
        (0x0D, "f", [-1.5, 0.0, 0.25, 3.0e10, 1e-20, 2.0]),
        (0x0E, "d", [-1.5, 0.0, 0.1, 1e300, -1e-300, 2.0]),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_every_type_code_big_endian(
    tmp_path: Path, code: int, fmt: str, values: list[float], gz: bool
) -> None:
    payload = struct.pack(f">{len(values)}{fmt}", *values)
    path = _write(tmp_path / "x.idx", _pack(code, (2, 3), payload), gz=gz)
    arr = read_idx(path)
    assert arr.shape == (2, 3)
    assert arr.dtype.isnative
    np.testing.assert_array_equal(arr.ravel(), np.array(values, dtype=arr.dtype))


def test_three_dims_c_order(tmp_path: Path) -> None:
    data = bytes(range(24))
    arr = read_idx(_write(tmp_path / "a.idx", _pack(0x08, (2, 3, 4), data)))
    assert arr.shape == (2, 3, 4)
    assert arr[1, 2, 3] == 23 and arr[0, 1, 0] == 4


def test_empty_array(tmp_path: Path) -> None:
    arr = read_idx(_write(tmp_path / "e.idx", _pack(0x08, (0, 28, 28), b"")))
    assert arr.shape == (0, 28, 28)


# --- malformed files: one-line ValueError naming the file -----------------------------------


def _bad(tmp_path: Path, data: bytes, match: str, *, gz: bool = False) -> None:
    path = _write(tmp_path / "broken-idx3-ubyte", data, gz=gz)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "\n" not in msg


def test_bad_magic(tmp_path: Path) -> None:
    _bad(tmp_path, b"\x1f\x00\x08\x01" + bytes(8), "bad IDX magic")
    _bad(tmp_path, b"PK\x03\x04" + bytes(8), "bad IDX magic")


def test_unknown_type_code(tmp_path: Path) -> None:
    _bad(tmp_path, _pack(0x0A, (1,), b"\x00"), "unknown type code 0x0a")


def test_zero_dimensions(tmp_path: Path) -> None:
    _bad(tmp_path, b"\x00\x00\x08\x00", "zero dimensions")


def test_truncated_header(tmp_path: Path) -> None:
    _bad(tmp_path, b"\x00\x00", "truncated IDX header")
    _bad(tmp_path, _pack(0x08, (60000, 28, 28), b"")[:10], "truncated IDX header")


def test_truncated_data(tmp_path: Path) -> None:
    _bad(tmp_path, _pack(0x08, (3, 28, 28), bytes(2 * 784)), "truncated IDX data")
    _bad(tmp_path, _pack(0x0C, (2,), bytes(7)), "truncated IDX data", gz=True)


def test_extra_bytes_mean_wrong_dims(tmp_path: Path) -> None:
    _bad(tmp_path, _pack(0x08, (2, 2), bytes(5)), "1 unexpected bytes .*wrong dimensions")


def test_truncated_gzip(tmp_path: Path) -> None:
    full = gzip.compress(_pack(0x08, (100, 28, 28), bytes(range(256)) * 307))
    _bad(tmp_path, full[: len(full) // 2], "corrupt or truncated gzip")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such IDX file"):
        read_idx(tmp_path / "nope.gz")


# --- load_mnist ---------------------------------------------------------------------------


def _mnist_dir(tmp_path: Path, n: int = 5, *, image_dims: tuple[int, ...] | None = None) -> Path:
    folder = tmp_path / "fake"
    folder.mkdir()
    dims = image_dims or (n, 28, 28)
    images = np.arange(int(np.prod(dims)), dtype=np.int64) % 256
    for split in ("train", "t10k"):
        _write(
            folder / f"{split}-images-idx3-ubyte.gz",
            _pack(0x08, dims, images.astype(np.uint8).tobytes()),
            gz=True,
        )
        _write(folder / f"{split}-labels-idx1-ubyte", _pack(0x08, (n,), bytes(range(n))))
    return folder


def test_load_mnist_gz_and_plain(tmp_path: Path) -> None:
    images, labels = load_mnist(_mnist_dir(tmp_path), "test", limit=3)
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, [0, 1, 2])
    assert images[0, 0, 5] == 5 and images[1, 0, 0] == 784 % 256


def test_load_mnist_wrong_dims(tmp_path: Path) -> None:
    folder = _mnist_dir(tmp_path, 4, image_dims=(4, 784))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: wrong IDX dimensions"):
        load_mnist(folder)


def test_load_mnist_count_mismatch(tmp_path: Path) -> None:
    folder = _mnist_dir(tmp_path, 4)
    _write(folder / "train-labels-idx1-ubyte", _pack(0x08, (3,), bytes(3)))
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        load_mnist(folder, "train")


def test_load_mnist_missing_and_bad_args(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_mnist(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match=r"missing train-images-idx3-ubyte\.gz"):
        load_mnist(tmp_path)
    with pytest.raises(ValueError, match="split"):
        mnist_files(tmp_path, "val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        load_mnist(tmp_path, limit=0)


# --- the real files -----------------------------------------------------------------------


@pytest.mark.data
def test_real_mnist(data_dir: Path) -> None:
    root = data_dir / "mnist"
    images, labels = load_mnist(root, "train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    test_images, test_labels = load_mnist(root, "test")
    assert test_images.shape == (10000, 28, 28)
    assert test_labels[:3].tolist() == [7, 2, 1]
    assert np.bincount(test_labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    # Byte-for-byte against a plain parse: the pixels are the bytes after the 16-byte header.
    with gzip.open(root / "t10k-images-idx3-ubyte.gz", "rb") as fh:
        raw = fh.read()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert hashlib.sha256(test_images.tobytes()).digest() == hashlib.sha256(raw[16:]).digest()


@pytest.mark.data
def test_real_fashion_mnist(data_dir: Path) -> None:
    images, labels = load_mnist(data_dir / "fashion-mnist", "train", limit=1000)
    assert images.shape == (1000, 28, 28)
    assert labels[0] == 9  # the first Fashion-MNIST training image is an ankle boot
    _, all_labels = load_mnist(data_dir / "fashion-mnist", "test")
    assert np.bincount(all_labels).tolist() == [1000] * 10


@pytest.mark.data
def test_real_file_truncated(data_dir: Path, tmp_path: Path) -> None:
    raw = gzip.decompress((data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())
    cut = _write(tmp_path / "t10k-labels-idx1-ubyte", raw[:-10])
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: truncated IDX data"):
        read_idx(cut)
