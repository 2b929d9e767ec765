"""The MNIST convolutional autoencoder, with a sub-pixel or a transposed-convolution decoder.

The sub-pixel autoencoder of the companion article, in PyTorch:

* encoder: 3×3 conv to 16, ReLU, 2×2 max-pool, 3×3 conv to 32, ReLU, 2×2 max-pool
  (28×28 -> 7×7×32), flatten, dense to the ``latent`` code;
* decoder: dense back to 7×7×32 (ReLU), an upsampler to 32 channels at 14×14 (ReLU),
  an upsampler to 1 channel at 28×28, sigmoid.

Each upsampler is either

* ``"subpixel"``: a 3×3 convolution to ``C·4`` channels and a ×2 shuffle
  (:class:`subpixel.SubPixelConv2d`, ICNR-initialised), then one bias per output channel; or
* ``"transposed"``: its exact transposed twin, ``nn.ConvTranspose2d(kernel 6, stride 2,
  padding 2)`` with its bias.

The twins compute the same family of functions: a 3×3 convolution at low resolution followed
by a shuffle of factor 2 equals a transposed convolution with kernel ``3·2``, stride 2 and
padding ``(3 - 1 - 1)·2`` (see :func:`subpixel.convert.subpixel_to_transposed`), with the
same weights rearranged. The sub-pixel convolution has no bias of its own; its one bias per
output channel, added after the shuffle, is the transposed convolution's bias. So both
decoders have exactly the same parameter count and receptive field, and differ only in their
initialisation (ICNR versus PyTorch's default) and in how the computation is laid out.

Example:
    >>> import torch
    >>> ae = ConvAutoencoder(decoder="subpixel")
    >>> ae(torch.rand(2, 1, 28, 28)).shape
    torch.Size([2, 1, 28, 28])
    >>> n = lambda m: sum(p.numel() for p in m.parameters())
    >>> n(ae) == n(ConvAutoencoder(decoder="transposed"))
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from subpixel.layers import SubPixelConv2d

__all__ = [
    "UPSAMPLERS",
    "ConvAutoencoder",
    "SubPixelUpsample",
    "build_autoencoder",
    "make_upsampler",
]

#: The two kinds of learned ×r upsampling compared in this package's applications.
UPSAMPLERS = ("subpixel", "transposed")


class SubPixelUpsample(nn.Module):
    """``SubPixelConv2d`` without its per-sub-pixel bias, plus one bias per output channel.

    ``(N, C_in, H, W) -> (N, C_out, r·H, r·W)``. This is the sub-pixel form of
    ``nn.ConvTranspose2d(C_in, C_out, kernel_size·r, stride=r, padding=(kernel_size-1)//2·r)``
    with exactly its parameters: ``C_out·r²·C_in·k²`` weights and ``C_out`` biases (a
    ``SubPixelConv2d`` with ``bias=True`` would have ``C_out·r²``). The convolution is
    ICNR-initialised (nearest-neighbour upsampling at the start); the bias is drawn as
    ``nn.Conv2d`` draws its bias.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: the low-resolution kernel (odd; ``"same"`` padding).
        factor: the upsampling factor ``r``.
        bias: add the per-channel bias.

    Example:
        >>> import torch
        >>> up = SubPixelUpsample(8, 4, 3, 2)
        >>> up(torch.randn(1, 8, 5, 5)).shape
        torch.Size([1, 4, 10, 10])
        >>> sum(p.numel() for p in up.parameters()) == 4 * 4 * 8 * 9 + 4
        True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        factor: int = 2,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.factor = factor
        self.conv = SubPixelConv2d(in_channels, out_channels, kernel_size, factor, bias=False)
        self.bias: nn.Parameter | None = None
        if bias:
            bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


def make_upsampler(
    kind: str,
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 3,
    factor: int = 2,
    bias: bool = True,
) -> nn.Module:
    """A learned ×``factor`` upsampler: sub-pixel (ICNR) or its exact transposed twin.

    ``"subpixel"`` gives :class:`SubPixelUpsample`; ``"transposed"`` gives
    ``nn.ConvTranspose2d(in, out, kernel_size·factor, stride=factor,
    padding=(kernel_size - 1)//2·factor)`` (PyTorch's default initialisation). Both map
    ``(N, C_in, H, W)`` to ``(N, C_out, factor·H, factor·W)`` with the same parameters.

    Raises:
        ValueError: unknown ``kind`` or an even ``kernel_size``.

    Example:
        >>> make_upsampler("transposed", 32, 16)
        ConvTranspose2d(32, 16, kernel_size=(6, 6), stride=(2, 2), padding=(2, 2))
    """
    if kind not in UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {kind!r}")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    if kind == "subpixel":
        return SubPixelUpsample(in_channels, out_channels, kernel_size, factor, bias=bias)
    return nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size * factor,
        stride=factor,
        padding=(kernel_size - 1) // 2 * factor,
        bias=bias,
    )


class ConvAutoencoder(nn.Module):
    """The article's MNIST autoencoder: ``(N, 1, 28, 28)`` in [0, 1] to the same, sigmoid.

    Args:
        decoder: ``"subpixel"`` (ICNR sub-pixel convolutions) or ``"transposed"``.
        latent: size of the dense code between encoder and decoder.

    Attributes:
        checkerboard_factor: the factor of the last upsampler (2): the period at which its
            checkerboard shows in the output (see :mod:`subpixel.applications.checkerboard`).

    Example:
        >>> import torch
        >>> ae = ConvAutoencoder(decoder="transposed", latent=16)
        >>> ae.encode(torch.rand(3, 1, 28, 28)).shape
        torch.Size([3, 16])
    """

    checkerboard_factor = 2

    def __init__(self, decoder: str = "subpixel", *, latent: int = 64) -> None:
        super().__init__()
        if decoder not in UPSAMPLERS:
            raise ValueError(f"decoder must be one of {UPSAMPLERS}, got {decoder!r}")
        if isinstance(latent, bool) or not isinstance(latent, int) or latent < 1:
            raise ValueError(f"latent must be a positive int, got {latent!r}")
        self.decoder_kind = decoder
        self.latent = latent
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent, 32 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (32, 7, 7)),
            make_upsampler(decoder, 32, 32),
            nn.ReLU(),
            make_upsampler(decoder, 32, 1),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28) -> (N, latent)``."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"expected input of shape (N, 1, 28, 28), got {tuple(x.shape)}")
        out: torch.Tensor = self.encoder(x)
        return out

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, latent) -> (N, 1, 28, 28)`` in (0, 1)."""
        out: torch.Tensor = self.decoder(z)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def build_autoencoder(*, decoder: str = "subpixel", latent: int = 64) -> ConvAutoencoder:
    """Registry builder for ``get_model("autoencoder", decoder=..., latent=...)``."""
    return ConvAutoencoder(decoder, latent=latent)
