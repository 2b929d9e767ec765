"""The compiled strided copy (``subpixel._strided_copy``) behind the shuffles, if built.

The data movement of a periodic shuffle is one permuted copy; the kernel does it blocked
and on several threads (see ``_csrc/strided_copy.c``). Without it the callers copy with
numpy/PyTorch (same bytes).

Example:
    >>> import torch
    >>> x = torch.arange(6.0).reshape(2, 3)
    >>> out = torch.empty(3, 2)
    >>> copy_into(out, x.t()) or out.copy_(x.t()) is not None
    True
    >>> out.tolist()
    [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

from subpixel import _compiled

__all__ = ["available", "copy_array", "copy_into"]

#: The kernel takes at most this many dimensions.
MAX_DIMS = 32


def kernel() -> ModuleType | None:
    """``subpixel._strided_copy``, loaded on first use; ``None`` if it was not built."""
    return _compiled.load("strided_copy")


def available() -> bool:
    """Whether the compiled strided copy was built for this Python."""
    return kernel() is not None


def copy_into(dst: torch.Tensor, src: torch.Tensor) -> bool:
    """Copy ``src`` into ``dst`` (same shape and dtype, CPU) with the compiled kernel.

    Returns False, having done nothing, when the kernel is missing or the tensors are not
    plain CPU tensors of one dtype and shape; the caller then copies another way.

    Raises:
        ValueError: ``dst``'s elements overlap in memory (an expanded tensor).
    """
    k = kernel()
    if (
        k is None
        or dst.shape != src.shape
        or dst.dtype != src.dtype
        or dst.dim() > MAX_DIMS
        or not (_compiled.plain_cpu_tensor(dst) and _compiled.plain_cpu_tensor(src))
    ):
        return False
    if dst.numel():
        k.copy(_compiled.buffer(dst), _compiled.buffer(src), torch.get_num_threads())
    return True


def copy_array(src: np.ndarray) -> np.ndarray | None:
    """A C-contiguous copy of ``src`` made by the compiled kernel, or None without it.

    Arrays of Python objects (which need reference counting) are left to numpy, and so
    are arrays of more than :data:`MAX_DIMS` dimensions.
    """
    k = kernel()
    if k is None or src.dtype.hasobject or src.ndim > MAX_DIMS:
        return None
    out = np.empty(src.shape, dtype=src.dtype)
    if out.size:
        raw = np.dtype((np.void, src.itemsize))  # bytes: any dtype exports as a buffer
        k.copy(out.view(raw), src.view(raw), torch.get_num_threads())
    return out
