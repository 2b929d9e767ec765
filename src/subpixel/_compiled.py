"""The optional compiled kernels (``src/subpixel/_csrc``): loading them, handing them arrays.

Each kernel is an extension module ``subpixel._<name>``, imported on its first use by
:func:`load` (``import subpixel`` loads none of them). The package is complete without
them: every caller has a PyTorch/numpy path that gives the same values. A source install
builds them where a C compiler is present (``setup.py`` marks them optional);
:func:`built` says which were. One small wrapper per kernel:

=================  ==========================================  ==============================
kernel             wrapper                                     used by
=================  ==========================================  ==============================
``strided_copy``   :mod:`subpixel._copy`                       the shuffles (:mod:`subpixel.ops`)
``pipeline``       :mod:`subpixel.fast._kernels.pipeline`      :class:`~subpixel.fast.FastUpscaler`
``conv_first``     :mod:`subpixel.fast._kernels.conv_first`    the fp32 network's first layer
``winograd``       :mod:`subpixel.fast._kernels.winograd`      the fp32 network's 3×3 layers
``conv3x3``        :mod:`subpixel.fast._kernels.conv3x3`       the ×2 last layer (fp32, int8)
``opencv_levels``  :mod:`subpixel.fast._opencv`                OpenCV's uint8 steps
=================  ==========================================  ==============================

The kernels take their arrays as Python buffers (:func:`buffer`: a numpy view of a tensor's
memory) and check every shape, item format and stride against each other
(``_csrc/buffers.h``): a view that does not fit raises :class:`ValueError` instead of being
read out of bounds.

Example:
    >>> import torch
    >>> sorted(built()) == sorted(KERNELS)
    True
    >>> buffer(torch.zeros(2, 3, dtype=torch.bfloat16).t()).strides   # as 16-bit integers
    (2, 6)
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import numpy as np
import torch

__all__ = ["KERNELS", "buffer", "built", "load", "plain_cpu_tensor"]

#: The compiled kernels, as ``subpixel._<name>``.
KERNELS = ("strided_copy", "pipeline", "conv3x3", "conv_first", "winograd", "opencv_levels")


@functools.cache
def load(name: str) -> ModuleType | None:
    """The extension module ``subpixel._<name>``, imported once; ``None`` if it was not built.

    (Not built: no C compiler at install time, or another Python, e.g. ``PYTHONPATH=src``.)
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; expected one of {KERNELS}")
    try:
        return importlib.import_module(f"subpixel._{name}")
    except ImportError:
        return None


def built() -> dict[str, bool]:
    """Which of :data:`KERNELS` were built for this Python (importing them)."""
    return {name: load(name) is not None for name in KERNELS}


def plain_cpu_tensor(t: torch.Tensor) -> bool:
    """Dense CPU storage whose bytes are its values (no lazy conjugate/negation bits)."""
    return (
        t.device.type == "cpu"
        and t.layout == torch.strided
        and not t.is_quantized
        and not t.is_conj()
        and not t.is_neg()
    )


#: Integer types by size: the view of a tensor whose dtype numpy lacks (bfloat16, ...).
_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def buffer(t: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor's memory (its shape and strides), for a kernel.

    dtypes that numpy lacks (``bfloat16``, ...) are viewed as integers of their size.
    """
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy()
    try:
        return t.numpy()
    except TypeError:  # another dtype numpy lacks
        return t.view(_INT_OF_SIZE[t.element_size()]).numpy()
