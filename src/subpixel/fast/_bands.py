"""Bands of rows: how an image is cut, a band's im2col patches, and the band threads.

:func:`_band_map` runs independent bands on ``torch.get_num_threads()`` worker threads of
one intra-op thread each; the pools are rebuilt in a forked child.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

# Elements per band of rows: ~5k pixels keep a band's im2col matrix and outputs in L2/L3.
_BAND_PIXELS = 6144


def _bands(h: int, w: int) -> list[tuple[int, int]]:
    rows = max(1, min(h, _BAND_PIXELS // max(w, 1)))
    return [(r, min(h, r + rows)) for r in range(0, h, rows)]


def _im2col_band(padded: torch.Tensor, r0: int, r1: int, k: int, w: int, out: torch.Tensor) -> None:
    """Fill ``out`` ``(C·k·k, (r1 - r0)·w)`` with the k×k patches of rows ``r0:r1``.

    ``padded`` is ``(C, h + k - 1, w + k - 1)``, contiguous.
    """
    c, _, wp = padded.shape
    rows = r1 - r0
    src = padded[:, r0:]
    view = src.as_strided((c, k, k, rows, w), (src.stride(0), wp, 1, wp, 1))
    out.view(c, k, k, rows, w).copy_(view)


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _forget_pools() -> None:
    """In a forked child: the parent's worker threads do not exist there."""
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def _band_pool(threads: int) -> ThreadPoolExecutor:
    """``threads`` worker threads that each run PyTorch ops with one intra-op thread."""
    with _POOLS_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            caller = torch.get_num_threads()
            ready = threading.Barrier(threads + 1)

            def one_thread() -> None:
                torch.set_num_threads(1)  # this thread's OpenMP/MKL setting (thread-local)
                # PyTorch sets a thread's count once more, from a process-wide value, at the
                # thread's first use of its thread pool; get_num_threads() does that now,
                # while the value is 1 (else torch ops here would split over 2+ threads,
                # and elementwise ops give results that depend on the split)
                torch.get_num_threads()
                ready.wait()

            pool = ThreadPoolExecutor(threads, thread_name_prefix="subpixel-band")
            futures = [pool.submit(one_thread) for _ in range(threads)]
            ready.wait()
            for f in futures:
                f.result()
            # torch.set_num_threads also sets the default new threads start with: restore it
            torch.set_num_threads(caller)
            _POOLS[threads] = pool
        return pool


def _band_map(fn: Callable[[int, int], None], bands: list[tuple[int, int]]) -> None:
    """``fn(r0, r1)`` for every band, on ``torch.get_num_threads()`` threads of one each.

    The bands are independent; PyTorch's ops release the GIL, so two bands on two cores
    run truly in parallel, each in its own cache, without the synchronisation of splitting
    every operation over the threads.
    """
    threads = min(torch.get_num_threads(), len(bands))
    if threads <= 1 or threading.current_thread().name.startswith("subpixel-band"):
        for r0, r1 in bands:
            fn(r0, r1)
        return
    for f in [_band_pool(threads).submit(fn, r0, r1) for r0, r1 in bands]:
        f.result()
