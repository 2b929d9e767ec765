"""FSRCNN (Dong et al., ECCV 2016): shrink, map and expand in low resolution, then upsample.

The network ends in a transposed convolution with stride ``scale``. The same function can be
computed as a sub-pixel convolution (a low-resolution convolution to ``C·scale²`` channels and
a periodic shuffle, :func:`subpixel.convert.transposed_to_subpixel`); ``upsampler`` picks the
form, and both give the same output for the same weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from subpixel.convert import transposed_to_subpixel

__all__ = ["FSRCNN", "deconv_padding"]

_UPSAMPLERS = ("transposed", "subpixel")


def deconv_padding(kernel: int, scale: int) -> tuple[int, int]:
    """``(padding, output_padding)`` making a stride-``scale`` transposed conv output ``scale·H``.

    ``padding = ceil((kernel - scale) / 2)`` centres the kernel on each low-resolution pixel
    (for ``kernel == scale`` each input pixel fills its own ``scale×scale`` block) and
    ``output_padding = scale + 2·padding - kernel`` makes the size exact.

    Example:
        >>> deconv_padding(9, 3), deconv_padding(9, 2), deconv_padding(2, 2)
        ((3, 0), (4, 1), (0, 0))
    """
    if kernel < scale:
        raise ValueError(f"deconv kernel {kernel} must be >= scale {scale} (else holes appear)")
    padding = math.ceil((kernel - scale) / 2)
    return padding, scale + 2 * padding - kernel


class FSRCNN(nn.Module):
    """Fast SR-CNN: ``(N, C, H, W)`` in [0, 1] to ``(N, C, s·H, s·W)``.

    Layers, all in low resolution except the last: feature extraction (5×5 conv to
    ``features`` channels, PReLU), shrinking (1×1 to ``shrink``, PReLU), ``mapping`` layers of
    3×3 convs (PReLU), expanding (1×1 back to ``features``, PReLU), and the upsampler: a
    transposed convolution with stride ``scale`` and kernel ``deconv_kernel`` whose padding is
    :func:`deconv_padding`, so the output is exactly ``scale`` times the input. The paper's
    FSRCNN is ``features=56, shrink=12, mapping=4`` (FSRCNN-s: ``32, 5, 1``), kernel 9.

    Args:
        scale: upscaling factor (the transposed convolution's stride).
        channels: image channels in and out (1 for the Y channel).
        features: ``d``, the width of the feature and expanding layers.
        shrink: ``s``, the width of the mapping layers.
        mapping: ``m``, the number of 3×3 mapping layers.
        deconv_kernel: the transposed convolution's kernel size (``>= scale``).
        upsampler: ``"transposed"`` (``nn.ConvTranspose2d``) or ``"subpixel"`` (its exact
            sub-pixel form, :class:`subpixel.convert.ConvTransposeAsSubPixel`).

    Example:
        >>> import torch
        >>> FSRCNN(scale=3)(torch.rand(1, 1, 8, 10)).shape
        torch.Size([1, 1, 24, 30])
        >>> FSRCNN(scale=2, upsampler="subpixel").upsample.conv
        Conv2d(56, 4, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
    """

    def __init__(
        self,
        scale: int = 3,
        *,
        channels: int = 1,
        features: int = 56,
        shrink: int = 12,
        mapping: int = 4,
        deconv_kernel: int = 9,
        upsampler: str = "transposed",
    ) -> None:
        super().__init__()
        for name, value in (
            ("scale", scale),
            ("channels", channels),
            ("features", features),
            ("shrink", shrink),
            ("deconv_kernel", deconv_kernel),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"FSRCNN: {name} must be a positive int, got {value!r}")
        if isinstance(mapping, bool) or not isinstance(mapping, int) or mapping < 0:
            raise ValueError(f"FSRCNN: mapping must be an int >= 0, got {mapping!r}")
        if upsampler not in _UPSAMPLERS:
            raise ValueError(f"FSRCNN: upsampler must be one of {_UPSAMPLERS}, got {upsampler!r}")
        padding, output_padding = deconv_padding(deconv_kernel, scale)
        self.scale = scale
        self.channels = channels
        self.feature = nn.Sequential(
            nn.Conv2d(channels, features, 5, padding=2), nn.PReLU(features)
        )
        self.shrink = nn.Sequential(nn.Conv2d(features, shrink, 1), nn.PReLU(shrink))
        maps: list[nn.Module] = []
        for _ in range(mapping):
            maps += [nn.Conv2d(shrink, shrink, 3, padding=1), nn.PReLU(shrink)]
        self.mapping = nn.Sequential(*maps)
        self.expand = nn.Sequential(nn.Conv2d(shrink, features, 1), nn.PReLU(features))
        deconv = nn.ConvTranspose2d(
            features,
            channels,
            deconv_kernel,
            stride=scale,
            padding=padding,
            output_padding=output_padding,
        )
        self._init_weights(deconv)
        self.upsample: nn.Module = (
            deconv if upsampler == "transposed" else transposed_to_subpixel(deconv)
        )

    def _init_weights(self, deconv: nn.ConvTranspose2d) -> None:
        """He-normal convolutions, zero biases, N(0, 1e-3) transposed kernel (the paper's)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.out_channels * m.weight[0][0].numel()
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
                assert m.bias is not None
                nn.init.zeros_(m.bias)
        nn.init.normal_(deconv.weight, 0.0, 1e-3)
        assert deconv.bias is not None
        nn.init.zeros_(deconv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.upsample(self.expand(self.mapping(self.shrink(self.feature(x)))))
        return out
