"""A DCGAN for 28×28 images whose generator upsamples by sub-pixel or transposed convolution.

Generator (Radford et al. 2016, sized for MNIST-like data): ``z`` (``latent_dim``) -> dense to
``2F×7×7`` -> batch norm, ReLU -> ×2 upsampler to ``F`` channels (14×14) -> batch norm, ReLU
-> ×2 upsampler to ``channels`` (28×28) -> tanh, so images are in [-1, 1]. The upsamplers come
from :func:`subpixel.models.autoencoder.make_upsampler`: ``"subpixel"`` (3×3 convolution,
×2 shuffle, ICNR) or ``"transposed"`` (its exact twin ``ConvTranspose2d(kernel 6, stride 2,
padding 2)``); everything else is identical, parameter counts included. (The usual DCGAN uses
kernel 4 with padding 1, whose sub-pixel form would need an asymmetric 2×2 kernel; kernel 6
keeps the two variants exact counterparts.)

Discriminator: 4×4 stride-2 convolution to ``F`` (leaky ReLU 0.2), 4×4 stride-2 convolution to
``2F``, batch norm, leaky ReLU, dense to one logit (use ``BCEWithLogitsLoss``).

Both parts come from one registry entry::

    get_model("dcgan", upsampler="subpixel")              # the generator
    get_model("dcgan", part="discriminator")              # the discriminator

Example:
    >>> import torch
    >>> g = build_dcgan(upsampler="transposed")
    >>> d = build_dcgan(part="discriminator")
    >>> x = g(torch.randn(5, 100))
    >>> x.shape, d(x).shape
    (torch.Size([5, 1, 28, 28]), torch.Size([5, 1]))
"""

from __future__ import annotations

import torch
from torch import nn

from subpixel.models.autoencoder import UPSAMPLERS, make_upsampler

__all__ = ["PARTS", "DCGANDiscriminator", "DCGANGenerator", "build_dcgan"]

#: The values of ``part`` accepted by :func:`dcgan`.
PARTS = ("generator", "discriminator")


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class DCGANGenerator(nn.Module):
    """``(N, latent_dim)`` noise to ``(N, channels, 28, 28)`` images in [-1, 1].

    Args:
        upsampler: ``"subpixel"`` or ``"transposed"``.
        latent_dim: size of the noise vector.
        features: ``F``, the width of the 14×14 stage (the 7×7 stage has ``2F``).
        channels: image channels.

    Attributes:
        checkerboard_factor: the factor of the last upsampler (2).
    """

    checkerboard_factor = 2

    def __init__(
        self,
        upsampler: str = "subpixel",
        *,
        latent_dim: int = 100,
        features: int = 64,
        channels: int = 1,
    ) -> None:
        super().__init__()
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        self.upsampler = upsampler
        self.latent_dim = _positive("latent_dim", latent_dim)
        f = _positive("features", features)
        self.channels = _positive("channels", channels)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * f * 7 * 7, bias=False),
            nn.Unflatten(1, (2 * f, 7, 7)),
            nn.BatchNorm2d(2 * f),
            nn.ReLU(),
            make_upsampler(upsampler, 2 * f, f, bias=False),
            nn.BatchNorm2d(f),
            nn.ReLU(),
            make_upsampler(upsampler, f, channels),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"expected noise of shape (N, {self.latent_dim}), got {tuple(z.shape)}"
            )
        out: torch.Tensor = self.net(z)
        return out


class DCGANDiscriminator(nn.Module):
    """``(N, channels, 28, 28)`` images in [-1, 1] to ``(N, 1)`` logits (real > 0).

    Args:
        features: width of the first convolution (the second has twice as many).
        channels: image channels.
    """

    def __init__(self, *, features: int = 64, channels: int = 1) -> None:
        super().__init__()
        f = _positive("features", features)
        self.channels = _positive("channels", channels)
        self.net = nn.Sequential(
            nn.Conv2d(channels, f, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(f, 2 * f, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * f),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * f * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, 28, 28):
            raise ValueError(
                f"expected images of shape (N, {self.channels}, 28, 28), got {tuple(x.shape)}"
            )
        out: torch.Tensor = self.net(x)
        return out


def build_dcgan(
    *,
    part: str = "generator",
    upsampler: str = "subpixel",
    latent_dim: int = 100,
    features: int = 64,
    channels: int = 1,
) -> nn.Module:
    """Registry builder: the generator (default) or, with ``part="discriminator"``, the critic.

    ``upsampler`` and ``latent_dim`` only matter for the generator.

    Raises:
        ValueError: unknown ``part`` or ``upsampler``, or a non-positive size.
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if part == "discriminator":
        if upsampler not in UPSAMPLERS:
            raise ValueError(f"upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
        return DCGANDiscriminator(features=features, channels=channels)
    return DCGANGenerator(upsampler, latent_dim=latent_dim, features=features, channels=channels)
