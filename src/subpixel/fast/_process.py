"""Process-wide set-up, only when the caller asks: glibc's malloc thresholds and NNPACK.

A library must not change its host process behind its back, so nothing here runs on
import or on use: :func:`tune_process` (what the ``subpixel`` command line calls) opts in to
both settings. :func:`tune_malloc` keeps large freed blocks in the heap; :func:`nnpack_enabled`
says whether NNPACK was probed and set up (its pool pinned at one thread, for the whole
process), which the fp32 network uses only where the compiled kernels are missing.

Example:
    >>> from subpixel.fast import malloc_tuned, tune_process
    >>> tune_process(malloc=True, nnpack=False)      # what `subpixel upscale` does first
    >>> malloc_tuned()
    True
"""

from __future__ import annotations

import torch

__all__ = ["malloc_tuned", "nnpack_enabled", "tune_malloc", "tune_process"]

_MALLOC_TUNED = False
_NNPACK_OK: bool | None = None  # None: not probed (the process was not opted in)


def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Let glibc reuse freed large blocks instead of returning them to the OS at once.

    glibc serves allocations above its mmap threshold (adaptive, at most 32 MiB) with fresh
    ``mmap`` pages, zero-filled by the kernel at first touch: for a 1080p frame's 60 MB
    activations that costs ~20 ms per layer and frame, more than some convolutions. Raising
    the threshold (and the trim threshold) keeps them in the heap. Process-wide, so only
    called on request (:func:`tune_process`); does nothing off glibc.

    Returns:
        Whether the setting was applied.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(-3, threshold)) and bool(libc.mallopt(-1, 2 * threshold))
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = ok
    return ok


def malloc_tuned() -> bool:
    """Whether :func:`tune_malloc` changed this process's malloc thresholds."""
    return _MALLOC_TUNED


def _probe_nnpack() -> bool:
    """Whether NNPACK is built in, initialises and runs here (a tiny trial convolution).

    The trial runs with one intra-op thread: PyTorch sizes NNPACK's thread pool from
    ``torch.get_num_threads()`` at its first use, and a pool of one runs each call on the
    calling thread, so that the bands can run several calls at once. The caller's thread
    count is restored.
    """
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ok = bool(torch._nnpack_available())  # also initialises NNPACK
        if ok:
            z = torch.zeros(1, 1, 4, 4)
            torch._nnpack_spatial_convolution(z, torch.zeros(1, 1, 3, 3), None, [1, 1])
    except (RuntimeError, AttributeError):
        ok = False
    finally:
        torch.set_num_threads(threads)
    return ok


def nnpack_enabled() -> bool:
    """Whether NNPACK was set up by :func:`tune_process` and runs here."""
    return bool(_NNPACK_OK)


def tune_process(*, malloc: bool = True, nnpack: bool = True) -> None:
    """Opt this process in to the fast path's process-wide settings (the CLI does).

    ``malloc``: :func:`tune_malloc`. ``nnpack``: set NNPACK's pool up with one thread
    (process-wide and permanent) so that fp32 networks without the compiled kernels may use
    its Winograd convolutions; without it they use oneDNN (same values, slower).
    """
    global _NNPACK_OK
    if malloc:
        tune_malloc()
    if nnpack and _NNPACK_OK is None:
        _NNPACK_OK = _probe_nnpack()
