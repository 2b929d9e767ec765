"""The original ``subpixel`` project's 4× colour face super-resolver, in PyTorch.

The TensorFlow project trained this generator on CelebA, 32×32 RGB crops to 128×128:

* 1×1 convolution to 64, leaky ReLU (0.2);
* 5×5 convolution to 64, leaky ReLU (0.2);
* 5×5 convolution to ``3·16`` channels;
* periodic shuffle ×4 in the project's own channel order, ``"cwh"`` (its
  ``PS(X, 4, color=True)``: input channel ``(c·4 + j)·4 + i`` feeds output ``(c, 4y+i, 4x+j)``;
  see :mod:`subpixel.ops`);
* tanh, so inputs and outputs are in [-1, 1].

The project wrote these stride-1 layers as ``deconv2d``; a stride-1 transposed convolution is a
convolution with a flipped kernel, so ``nn.Conv2d`` computes the same family of functions.
``init="original"`` draws every weight from N(0, 0.02²) with zero biases, as the project's
``deconv2d`` did; ``init="icnr"`` (the default) keeps PyTorch's initialisation for the first two
layers and initialises the last one by ICNR in the ``cwh`` order, so the untrained network is a
convolution followed by nearest-neighbour upsampling, free of checkerboard.

Example:
    >>> import torch
    >>> net = SubpixelFaces()
    >>> net(torch.rand(2, 3, 32, 32) * 2 - 1).shape
    torch.Size([2, 3, 128, 128])
    >>> net.shuffle
    PixelShuffle(factor=(4, 4), order='cwh')
"""

from __future__ import annotations

import torch
from torch import nn

from subpixel.init import icnr_
from subpixel.layers import PixelShuffle

__all__ = ["FACES_INITS", "SubpixelFaces", "build_subpixel_faces"]

#: Accepted values of ``init``.
FACES_INITS = ("icnr", "original")


class SubpixelFaces(nn.Module):
    """``(N, 3, h, w)`` in [-1, 1] to ``(N, 3, 4h, 4w)`` in [-1, 1] (trained on 32 -> 128).

    Args:
        features: width of the two hidden layers (64 in the original).
        order: the shuffle's channel order; ``"cwh"`` is the original project's.
        init: ``"icnr"`` or ``"original"`` (N(0, 0.02²) weights, zero biases).

    Attributes:
        scale: 4.
        channels: 3.
        checkerboard_factor: 4.
    """

    scale = 4
    channels = 3
    checkerboard_factor = 4

    def __init__(self, *, features: int = 64, order: str = "cwh", init: str = "icnr") -> None:
        super().__init__()
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise ValueError(f"features must be a positive int, got {features!r}")
        if init not in FACES_INITS:
            raise ValueError(f"init must be one of {FACES_INITS}, got {init!r}")
        self.order = order
        self.init = init
        self.body = nn.Sequential(
            nn.Conv2d(3, features, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(features, features, 5, padding=2),
            nn.LeakyReLU(0.2),
        )
        self.upsample = nn.Conv2d(features, 3 * 16, 5, padding=2)
        self.shuffle = PixelShuffle(4, order=order)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw all weights by ``self.init``."""
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for conv in convs:
            conv.reset_parameters()
            if self.init == "original":
                nn.init.normal_(conv.weight, 0.0, 0.02)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)
        if self.init == "icnr":
            icnr_(self.upsample.weight, 4, order=self.order, bias=self.upsample.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected RGB input of shape (N, 3, H, W), got {tuple(x.shape)}")
        return torch.tanh(self.shuffle(self.upsample(self.body(x))))


def build_subpixel_faces(
    *, features: int = 64, order: str = "cwh", init: str = "icnr"
) -> SubpixelFaces:
    """Registry builder for ``get_model("subpixel-faces", ...)``."""
    return SubpixelFaces(features=features, order=order, init=init)
