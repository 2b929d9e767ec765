"""OpenCV ``dnn_superres``'s uint8 processing around a fast network (:class:`OpenCVUpscaler`).

Models imported from OpenCV (``subpixel import-opencv``, ``--weights ESPCN_x3.pb``) ask for
OpenCV's own steps: integer ``cvtColor(RGB2YCrCb)``, Y times ``1/255``, the network, Cr/Cb
by bilinear ``cv::resize``, each plane rounded half to even to uint8, integer
``cvtColor(YCrCb2RGB)`` (:mod:`subpixel.interop.opencv_pipeline` is the numpy reference,
bit-exact with OpenCV). The compiled kernel ``subpixel._opencv_levels`` (loaded on first
use) does those steps around a :class:`FastESPCN`'s phases, within one grey level of OpenCV
(where the float networks' last bits flip a rounding). Without the kernel
(:func:`opencv_kernel` is ``None``) callers run the numpy steps instead
(:func:`subpixel._upscale.pipeline.opencv_levels`).

Example:
    >>> import numpy as np
    >>> from subpixel.fast import optimize_for_inference
    >>> from subpixel.models.espcn import ESPCN
    >>> if opencv_kernel() is not None:
    ...     up = OpenCVUpscaler(optimize_for_inference(ESPCN(scale=2)))
    ...     assert up(np.zeros((4, 6, 3), np.uint8)).shape == (8, 12, 3)
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import torch

from subpixel import _compiled
from subpixel.fast._net import FastESPCN

__all__ = ["OpenCVUpscaler", "opencv_kernel"]


def opencv_kernel() -> ModuleType | None:
    """The compiled ``subpixel._opencv_levels`` module, imported once; ``None`` if not built."""
    return _compiled.load("opencv_levels")


class OpenCVUpscaler:
    """``dnn_superres``'s processing of ``(h, w, 3)`` uint8 RGB around ``net``, fused.

    Args:
        net: the prepared network (CPU).

    Raises:
        ValueError: ``net`` does not run on the CPU.
        ImportError: the compiled kernel was not built.
    """

    def __init__(self, net: FastESPCN) -> None:
        if net.device.type != "cpu":
            raise ValueError(f"OpenCV's fused steps run on the CPU, not {net.device}")
        kernel = opencv_kernel()
        if kernel is None:
            raise ImportError("subpixel._opencv_levels was not built (no C compiler?)")
        self._kernel = kernel
        self.net = net
        self.scale = net.scale
        self.device = net.device

    @torch.no_grad()
    def upscale_tensor(self, rgb: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``(h, w, 3)`` uint8 tensor → ``(s·h, s·w, 3)`` uint8 tensor (into ``out``)."""
        if rgb.dim() != 3 or rgb.shape[-1] != 3 or rgb.dtype != torch.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 image, got shape {tuple(rgb.shape)} {rgb.dtype}"
            )
        h, w, _ = rgb.shape
        s = self.scale
        if out is None:
            out = torch.empty(h * s, w * s, 3, dtype=torch.uint8)
        kernel, threads = self._kernel, torch.get_num_threads()
        src = np.ascontiguousarray(rgb.numpy())  # the kernel reads dense (h, w, 3) pixels
        y = np.empty((h, w), np.float32)
        cr = np.empty((h, w), np.uint8)
        cb = np.empty((h, w), np.uint8)
        kernel.pre(src, y, cr, cb, threads)
        phases = self.net.phases(torch.from_numpy(y))
        kernel.post(
            phases.numpy(), self.net.y_alpha, self.net.y_beta, cr, cb, s, out.numpy(), threads
        )
        return out

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``(h, w, 3)`` uint8 array → ``(s·h, s·w, 3)`` uint8 array."""
        return self.upscale_tensor(torch.from_numpy(np.ascontiguousarray(rgb))).numpy()
