"""``nn.Module`` wrappers whose ``forward`` calls the functions in :mod:`subpixel.ops`."""

from __future__ import annotations

import torch
from torch import nn

from subpixel.ops import DataFormat, Factor, ShuffleSpec, pixel_shuffle, pixel_unshuffle

__all__ = ["PixelShuffle", "PixelUnshuffle"]


class _Shuffle(nn.Module):
    def __init__(
        self, factor: Factor, order: str = "chw", data_format: DataFormat = "channels_first"
    ) -> None:
        super().__init__()
        spec = ShuffleSpec.make(factor, order)
        if data_format not in ("channels_first", "channels_last"):
            raise ValueError(
                f"data_format must be 'channels_first' or 'channels_last', got {data_format!r}"
            )
        self.factor: tuple[int, ...] = spec.factors
        self.order: str = spec.order
        self.data_format: DataFormat = data_format

    def extra_repr(self) -> str:
        fmt = "" if self.data_format == "channels_first" else f", data_format={self.data_format!r}"
        return f"factor={self.factor}, order={self.order!r}{fmt}"


class PixelShuffle(_Shuffle):
    """Depth to space in any channel order: ``(*B, C·∏r, *S) -> (*B, C, *(S·r))``.

    Example:
        >>> import torch
        >>> m = PixelShuffle(2, order="tensorflow")
        >>> m
        PixelShuffle(factor=(2, 2), order='hwc')
        >>> m(torch.randn(1, 12, 5, 5)).shape
        torch.Size([1, 3, 10, 10])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle(x, self.factor, order=self.order, data_format=self.data_format)


class PixelUnshuffle(_Shuffle):
    """Space to depth in any channel order: ``(*B, C, *S) -> (*B, C·∏r, *(S/r))``.

    Example:
        >>> import torch
        >>> PixelUnshuffle((2, 3))(torch.randn(1, 1, 4, 6)).shape
        torch.Size([1, 6, 2, 2])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_unshuffle(x, self.factor, order=self.order, data_format=self.data_format)
