"""ESPCN (Shi et al., CVPR 2016): convolutions in low resolution, then one periodic shuffle."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from subpixel.layers import PixelShuffle

__all__ = ["ESPCN", "check_config"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "prelu": nn.PReLU,
    "leaky_relu": nn.LeakyReLU,
}


def check_config(
    scale: int,
    features: Sequence[int],
    kernels: Sequence[int],
    activation: str,
    output_activation: str | None,
    residual: str | None,
) -> None:
    """Refuse an ESPCN configuration that no framework's ESPCN can build (``ValueError``).

    Shared by :class:`ESPCN` and its Keras twin (:mod:`subpixel.keras.models`).

    Example:
        >>> check_config(3, (64, 32), (5, 3), "tanh", None, None)
        Traceback (most recent call last):
        ...
        ValueError: kernels (5, 3) must have one more entry than features (64, 32)
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if len(kernels) != len(features) + 1:
        raise ValueError(
            f"kernels {tuple(kernels)} must have one more entry than features {tuple(features)}"
        )
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}")
    if output_activation is not None and output_activation not in _ACTIVATIONS:
        raise ValueError(
            f"unknown output_activation {output_activation!r}; choose from "
            f"{sorted(_ACTIVATIONS)} or None"
        )
    if residual not in (None, "bicubic"):
        raise ValueError(f"residual must be None or 'bicubic', got {residual!r}")
    if any(k % 2 == 0 for k in kernels):
        raise ValueError(f"kernel sizes must be odd for 'same' padding, got {tuple(kernels)}")


class ESPCN(nn.Module):
    """The efficient sub-pixel CNN: ``(N, C, H, W)`` in [0, 1] to ``(N, C, s·H, s·W)``.

    The paper's network is the default: kernels 5-3-3, features 64-32, tanh, the last
    convolution to ``C·s²`` channels followed by the shuffle (PyTorch ``chw`` order), one
    (Y) channel in and out. Convolutions are zero-padded ("same"), so any input size works.

    Args:
        scale: upscaling factor (the shuffle factor).
        channels: image channels in and out (1 for the Y channel, 3 for RGB).
        features: widths of the hidden layers.
        kernels: kernel sizes, one more than ``features``.
        activation: ``"tanh"`` (paper), ``"relu"``, ``"prelu"`` or ``"leaky_relu"``.
        order: the shuffle's channel order (see :mod:`subpixel.ops`).
        output_activation: ``None`` (the paper: none) or an activation name applied after
            the shuffle (OpenCV's ``dnn_superres`` ESPCN graphs end in ``"tanh"``).
        residual: ``None`` (the paper) or ``"bicubic"``: add the bicubic upscaling of the
            input (PyTorch ``interpolate``, a = -0.75) to the output, so the convolutions
            learn only the missing detail. Same parameter count; trains much faster.

    Example:
        >>> import torch
        >>> ESPCN(scale=3)(torch.rand(1, 1, 8, 10)).shape
        torch.Size([1, 1, 24, 30])
    """

    def __init__(
        self,
        scale: int = 3,
        *,
        channels: int = 1,
        features: Sequence[int] = (64, 32),
        kernels: Sequence[int] = (5, 3, 3),
        activation: str = "tanh",
        order: str = "chw",
        output_activation: str | None = None,
        residual: str | None = None,
    ) -> None:
        super().__init__()
        check_config(scale, features, kernels, activation, output_activation, residual)
        self.scale = scale
        self.channels = channels
        self.residual = residual
        widths = [channels, *features]
        layers: list[nn.Module] = []
        for c_in, c_out, k in zip(widths[:-1], widths[1:], kernels[:-1], strict=True):
            layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2), _ACTIVATIONS[activation]()]
        self.features = nn.Sequential(*layers)
        k = kernels[-1]
        self.upsample = nn.Conv2d(widths[-1], channels * scale * scale, k, padding=k // 2)
        self.shuffle = PixelShuffle(scale, order=order)
        self.output: nn.Module = (
            nn.Identity() if output_activation is None else _ACTIVATIONS[output_activation]()
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(
                    m.weight, 0.0, (2.0 / (m.out_channels * m.weight[0][0].numel())) ** 0.5
                )
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.upsample.weight, 0.0, 1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.output(self.shuffle(self.upsample(self.features(x))))
        if self.residual == "bicubic":
            out = out + F.interpolate(
                x, scale_factor=self.scale, mode="bicubic", align_corners=False
            )
        return out
