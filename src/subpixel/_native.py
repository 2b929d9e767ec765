"""Optional compiled kernels (``src/subpixel/_csrc``), with a plain-Python answer when absent.

The package is complete without them: every caller has a PyTorch/numpy path that gives the
same values bit for bit. A source install builds them when a C compiler is present
(``setup.py`` marks them optional); :func:`available` says whether they were built.

Example:
    >>> import torch
    >>> from subpixel import _native
    >>> x = torch.arange(6.0).reshape(2, 3)
    >>> out = torch.empty(3, 2)
    >>> _native.copy_into(out, x.t()) or out.copy_(x.t()) is not None
    True
    >>> out.tolist()
    [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_strided_copy: Any
try:
    from subpixel import _strided_copy  # type: ignore[no-redef]
except ImportError:  # no compiler at install time, or another Python (PYTHONPATH=src)
    _strided_copy = None

__all__ = ["available", "copy_array", "copy_into"]


def available() -> bool:
    """Whether the compiled strided copy was built for this Python."""
    return _strided_copy is not None


def _plain_cpu_tensor(t: torch.Tensor) -> bool:
    """Dense CPU storage whose bytes are its values (no lazy conjugate/negation bits)."""
    return (
        t.device.type == "cpu"
        and t.layout == torch.strided
        and not t.is_quantized
        and not t.is_conj()
        and not t.is_neg()
    )


def copy_into(dst: torch.Tensor, src: torch.Tensor) -> bool:
    """Copy ``src`` into ``dst`` (same shape and dtype, CPU) with the compiled kernel.

    Returns False, having done nothing, when the kernel is missing or the tensors are not
    plain CPU tensors of one dtype and shape; the caller then copies another way.
    """
    if (
        _strided_copy is None
        or dst.shape != src.shape
        or dst.dtype != src.dtype
        or not (_plain_cpu_tensor(dst) and _plain_cpu_tensor(src))
    ):
        return False
    size = src.element_size()
    _strided_copy.copy(
        dst.data_ptr(),
        tuple(s * size for s in dst.stride()),
        src.data_ptr(),
        tuple(s * size for s in src.stride()),
        tuple(src.shape),
        size,
        torch.get_num_threads(),
    )
    return True


def copy_array(src: np.ndarray) -> np.ndarray | None:
    """A C-contiguous copy of ``src`` made by the compiled kernel, or None without it.

    Arrays of Python objects (which need reference counting) are left to numpy.
    """
    if _strided_copy is None or src.dtype.hasobject:
        return None
    out = np.empty(src.shape, dtype=src.dtype)
    if out.size:
        _strided_copy.copy(
            out.ctypes.data,
            out.strides,
            src.ctypes.data,
            src.strides,
            src.shape,
            src.itemsize,
            torch.get_num_threads(),
        )
    return out
