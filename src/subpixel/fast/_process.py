"""Process-wide set-up, done once: glibc's malloc thresholds and NNPACK's thread pool.

:func:`tune_malloc` keeps large freed blocks in the heap; :func:`_nnpack_works` probes
NNPACK and sizes its pool at one thread, so that bands can call it side by side.
"""

from __future__ import annotations

import torch


def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Let glibc reuse freed large blocks instead of returning them to the OS at once.

    glibc serves allocations above its mmap threshold (adaptive, at most 32 MiB) with fresh
    ``mmap`` pages, zero-filled by the kernel at first touch: for a 1080p frame's 60 MB
    activations that costs ~20 ms per layer and frame, more than some convolutions. Raising
    the threshold (and the trim threshold) keeps them in the heap. Process-wide; harmless
    elsewhere; does nothing off glibc.

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


_MALLOC_TUNED = False


_NNPACK_OK: bool | None = None


def _nnpack_works() -> bool:
    """Whether NNPACK is built in, initialises and runs here (a tiny trial convolution).

    The trial runs with one intra-op thread: PyTorch sizes NNPACK's thread pool from
    ``torch.get_num_threads()`` at its first use, and a pool of one runs each call on the
    calling thread, so that :func:`_band_map` can run several calls at once.
    """
    global _NNPACK_OK
    if _NNPACK_OK is None:
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            _NNPACK_OK = bool(torch._nnpack_available())  # also initialises NNPACK
            if _NNPACK_OK:
                z = torch.zeros(1, 1, 4, 4)
                torch._nnpack_spatial_convolution(z, torch.zeros(1, 1, 3, 3), None, [1, 1])
        except (RuntimeError, AttributeError):
            _NNPACK_OK = False
        finally:
            torch.set_num_threads(threads)
    return _NNPACK_OK
