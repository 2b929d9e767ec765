"""One thin wrapper per compiled kernel of :mod:`subpixel.fast` (``src/subpixel/_csrc``).

Each module loads its extension on first use (:func:`subpixel._compiled.load`), says
whether it was built (``available()``), and turns tensors into the buffers the C side
checks; it declines (returns ``False``/``None``, having done nothing) where the kernel is
missing or the arguments are not of the form it computes, so that the caller runs its
PyTorch path:

- :mod:`~subpixel.fast._kernels.pipeline`: the colour/chroma stages of
  :class:`~subpixel.fast.FastUpscaler` (``_csrc/pipeline.c``);
- :mod:`~subpixel.fast._kernels.conv_first`: ESPCN's first layer, one channel in, channels
  last out (``_csrc/conv_first.c``);
- :mod:`~subpixel.fast._kernels.winograd`: 3×3 layers by Winograd F(4×4, 3×3)
  (``_csrc/winograd.c``);
- :mod:`~subpixel.fast._kernels.conv3x3`: a direct 3×3 layer with few output channels
  (``_csrc/conv3x3.c``).

(OpenCV's uint8 steps, ``_csrc/opencv_levels.c``, are wrapped by :mod:`subpixel.fast._opencv`;
the shuffles' strided copy by :mod:`subpixel._copy`.)

Whether a kernel is used is decided once, from :class:`Built`, by whoever builds the network
(:func:`subpixel.backends.choose`, or :func:`~subpixel.fast.optimize_for_inference` for a
direct caller); the wrappers' declines are for arguments only.
"""

from __future__ import annotations

from dataclasses import dataclass

from subpixel import _compiled
from subpixel.fast._kernels import conv3x3, conv_first, pipeline, winograd

__all__ = ["Built", "conv3x3", "conv_first", "pipeline", "winograd"]


@dataclass(frozen=True)
class Built:
    """Which compiled kernels can run here: the input of the one decision about them.

    :func:`subpixel.backends.choose` reads :meth:`detect` once (tests inject their own) and
    hands it to the networks and :class:`~subpixel.fast.FastUpscaler` it builds, which use
    a kernel exactly when it says so and never probe on their own.

    Example:
        >>> Built().fp32_declines()
        'subpixel._conv_first was not built'
        >>> Built(conv_first=True, winograd=True).fp32_declines() is None
        True
    """

    conv_first: bool = False
    winograd: bool = False  # its SIMD copy (the portable one is slower than oneDNN)
    conv3x3: bool = False
    pipeline: bool = False
    opencv_levels: bool = False

    @classmethod
    def detect(cls) -> Built:
        """The kernels built for this Python, the Winograd one where a SIMD copy runs."""
        return cls(
            conv_first=conv_first.available(),
            winograd=winograd.simd(),
            conv3x3=conv3x3.available(),
            pipeline=pipeline.available(),
            opencv_levels=_compiled.load("opencv_levels") is not None,
        )

    def fp32_declines(self) -> str | None:
        """Why the fp32 network cannot run its layers on the compiled kernels (None: it can)."""
        if not self.conv_first:
            return "subpixel._conv_first was not built"
        if not self.winograd:
            return "subpixel._winograd was not built or has no SIMD copy for this CPU"
        return None
