"""The IDX file format of MNIST and Fashion-MNIST, read strictly.

An IDX file is a 4-byte magic number, one big-endian ``uint32`` per dimension, then the
array in C order, big-endian. The magic is two zero bytes, a type code and the number of
dimensions:

=========  ===========  =========
type code  numpy dtype  itemsize
=========  ===========  =========
``0x08``   ``uint8``    1
``0x09``   ``int8``     1
``0x0B``   ``>i2``      2
``0x0C``   ``>i4``      4
``0x0D``   ``>f4``      4
``0x0E``   ``>f8``      8
=========  ===========  =========

MNIST's images are ``0x00000803`` (uint8, 3 dims: N × 28 × 28) and its labels
``0x00000801`` (uint8, N). Files may be gzipped (``.gz``, as distributed). Anything
malformed (bad magic, truncated header or data, bytes after the data, a broken gzip
stream) is refused with a one-line :class:`ValueError` that names the file.

Example:
    >>> import gzip, os, struct, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny-idx1-ubyte.gz")
    >>> with gzip.open(path, "wb") as fh:
    ...     _ = fh.write(struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([7, 2, 1]))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["IDX_DTYPES", "load_mnist", "mnist_files", "read_idx"]

#: IDX type code -> numpy dtype (big-endian where it matters).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

Split = Literal["train", "test"]
_PREFIX = {"train": "train", "test": "t10k"}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic."""
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as gz:
                return gz.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array in native byte order.

    Args:
        path: the ``.idx`` / ``-ubyte`` file, or its ``.gz``.

    Returns:
        An array of the file's dtype (``uint8`` for MNIST) and shape.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a well-formed IDX file; the message names the file and
            the problem (bad magic, unknown type code, truncated header or data, extra bytes,
            corrupt gzip).

    Example:
        >>> import os, struct, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "a.idx")
        >>> header = struct.pack(">BBBBII", 0, 0, 0x0B, 2, 1, 2)    # int16, shape (1, 2)
        >>> _ = open(p, "wb").write(header + bytes([1, 0, 255, 255]))
        >>> read_idx(p)
        array([[256,  -1]], dtype=int16)
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such IDX file")
    raw = _read_bytes(p)
    if len(raw) < 4:
        raise ValueError(f"{p}: truncated IDX header ({len(raw)} bytes, need at least 4)")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 or zero1:
        raise ValueError(
            f"{p}: bad IDX magic 0x{raw[:4].hex()} (the first two bytes must be zero); "
            "not an IDX file"
        )
    if code not in IDX_DTYPES:
        raise ValueError(
            f"{p}: bad IDX magic 0x{raw[:4].hex()}: unknown type code 0x{code:02x} "
            f"(known: {', '.join(f'0x{c:02x}' for c in IDX_DTYPES)})"
        )
    if ndim == 0:
        raise ValueError(f"{p}: bad IDX magic 0x{raw[:4].hex()}: zero dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{p}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"the file has {len(raw)}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    need = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    have = len(raw) - header
    if have < need:
        raise ValueError(
            f"{p}: truncated IDX data: shape {dims} of {dtype.name} needs {need} bytes, "
            f"the file has {have}"
        )
    if have > need:
        raise ValueError(
            f"{p}: {have - need} unexpected bytes after the IDX data of shape {dims}; "
            "wrong dimensions in the header?"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=need // dtype.itemsize, offset=header)
    return arr.reshape(dims).astype(dtype.newbyteorder("="), copy=True)


def mnist_files(root: str | os.PathLike[str], split: Split) -> tuple[Path, Path]:
    """The (images, labels) files of ``split`` in ``root``, gzipped or not.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        FileNotFoundError: a file is missing (the message lists the names looked for).
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (expected the MNIST idx files)")
    found: list[Path] = []
    for kind in ("images-idx3", "labels-idx1"):
        names = [f"{_PREFIX[split]}-{kind}-ubyte{ext}" for ext in (".gz", "")]
        hits = [folder / n for n in names if (folder / n).is_file()]
        if not hits:
            raise FileNotFoundError(f"{folder}: missing {' or '.join(names)}")
        found.append(hits[0])
    return found[0], found[1]


def load_mnist(
    root: str | os.PathLike[str], split: Split = "train", *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST-format images and labels (MNIST, Fashion-MNIST, KMNIST...).

    Args:
        root: folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.
        split: ``"train"`` or ``"test"`` (the ``t10k`` files).
        limit: keep only the first ``limit`` examples.

    Returns:
        ``(images, labels)``: ``uint8`` arrays ``(N, H, W)`` and ``(N,)``.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is malformed, or images are not 3-D / labels not 1-D / their
            counts differ (the message names the file).
    """
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    images_path, labels_path = mnist_files(root, split)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(
            f"{images_path}: wrong IDX dimensions: images must be 3-D (N, H, W), "
            f"got shape {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: wrong IDX dimensions: labels must be 1-D (N,), "
            f"got shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images "
            f"in {images_path.name}"
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels
