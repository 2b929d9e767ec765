""":func:`optimize_for_inference`: parse a model, pick the network for device and precision."""

from __future__ import annotations

import torch
from torch import nn

from subpixel.fast._fp32 import _CpuFp32
from subpixel.fast._int8 import _CpuInt8
from subpixel.fast._kernels import Built
from subpixel.fast._net import FastESPCN, _Net, _parse
from subpixel.fast._torch import _Torch

#: Precisions :func:`optimize_for_inference` accepts.
PRECISIONS = ("fp32", "int8")


def optimize_for_inference(
    model: nn.Module,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    calibration: torch.Tensor | None = None,
    kernels: Built | None = None,
) -> FastESPCN:
    """Prepare an ESPCN-like ``model`` for fast inference on ``device``.

    The model is read, never modified, and the process is left as it was (the process-wide
    settings that help are opt-in: :func:`subpixel.fast.tune_process`). The result maps
    ``(N, 1, h, w)`` float Y in [0, 1] to ``(N, 1, s·h, s·w)`` like ``model`` (see the
    module docstring for the kernels).

    Args:
        model: convolutions (odd square kernels, "same" zero padding, stride 1) with tanh
            or ReLU between them, one input channel, and a final shuffle to one channel:
            :class:`subpixel.models.espcn.ESPCN` with ``channels=1`` and its tanh/ReLU
            variants, in any shuffle order.
        device: ``"cpu"`` (the fast kernels) or another torch device (``"cuda"``: the
            model's layers in ``channels_last`` with cuDNN autotuning).
        precision: ``"fp32"`` or ``"int8"`` (CPU only).
        calibration: for int8 with ReLU activations, ``(N, 1, H, W)`` Y images whose
            activation maxima set the 8-bit ranges (default: built-in synthetic patterns of
            edges, lines and textures). tanh activations need none: their range is fixed.
        kernels: the compiled kernels to use (:class:`~subpixel.fast._kernels.Built`;
            default: those built here, :meth:`~subpixel.fast._kernels.Built.detect`).
            :func:`subpixel.backends.choose` passes its own, so that one decision holds.

    Returns:
        A :class:`FastESPCN`; its ``backend`` names the kernels used.

    Raises:
        ValueError: unknown precision, int8 off CPU, or a model this cannot run.

    Example:
        >>> import torch
        >>> from subpixel.models.espcn import ESPCN
        >>> fast = optimize_for_inference(ESPCN(scale=2), precision="int8")
        >>> fast(torch.rand(1, 1, 8, 8)).shape, fast.backend
        (torch.Size([1, 1, 16, 16]), 'cpu-onednn-int8, first layer fp32')
    """
    return build_network(
        model,
        _parse(model),
        device=device,
        precision=precision,
        calibration=calibration,
        kernels=kernels,
    )


def build_network(
    model: nn.Module,
    net: _Net,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    calibration: torch.Tensor | None = None,
    kernels: Built | None = None,
) -> FastESPCN:
    """:func:`optimize_for_inference` for a model already parsed (``net = _parse(model)``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dev = torch.device(device)
    if dev.type != "cpu":
        if precision == "int8":
            raise ValueError(f"precision='int8' runs on CPU only, not {dev}")
        return _Torch(model, net, dev, torch.float32)
    kernels = Built.detect() if kernels is None else kernels
    if precision == "int8":
        return _CpuInt8(net, calibration, kernels)
    return _CpuFp32(net, kernels)
