"""Overlapped tiles whose stitched result equals the untiled result.

A model made of "same"-padded convolutions computes each output pixel from the input
pixels within its *receptive radius* (the sum of the convolutions' half-widths: 2 + 1 + 1
= 4 low-resolution pixels for ESPCN's 5-3-3 kernels). A tile processed with at least that
many extra input pixels on every inner side therefore produces, in its core, exactly what
the whole image would; at the image's own borders the tile's border is the image's border,
so the zero padding is the same. Bicubic resampling (support of 2 input pixels) is covered
by the same overlap. :func:`iter_strips` walks the image in rows of tiles and hands back
finished strips of output rows, so the caller can stream them to a file.

Example:
    >>> import numpy as np
    >>> from torch import nn
    >>> receptive_radius(nn.Sequential(nn.Conv2d(1, 4, 5), nn.Conv2d(4, 1, 3, dilation=2)))
    4
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

__all__ = [
    "MIN_OVERLAP",
    "from_unit",
    "iter_image_strips",
    "iter_strips",
    "receptive_radius",
    "to_unit",
]

#: The overlap bicubic resampling needs (its kernel reaches 2 input pixels, plus 1 spare).
MIN_OVERLAP = 3


def receptive_radius(model: nn.Module) -> int:
    """An upper bound of how far (in input pixels) an output pixel sees, from the convs.

    Sums ``dilation · (kernel - 1) / 2`` (rounded up, largest spatial axis) over every
    convolution of ``model``: each path through any graph of convolutions uses a subset of
    them, so the sum bounds every path. Assumes no strided (downsampling) convolutions,
    which is true of super-resolution networks that work at the input resolution.

    Args:
        model: any ``nn.Module``.

    Returns:
        The radius in input pixels (0 for a model without convolutions).
    """
    total = 0
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            reach = [(d * (k - 1) + 1) // 2 for k, d in zip(m.kernel_size, m.dilation, strict=True)]
            total += max(reach, default=0)
    return total


def to_unit(block: np.ndarray) -> np.ndarray:
    """uint8/uint16 levels (or floats in [0, 1]) as float32 in [0, 1]."""
    if block.dtype == np.uint8:
        return block.astype(np.float32) / np.float32(255)
    if block.dtype == np.uint16:
        return block.astype(np.float32) / np.float32(65535)
    return block.astype(np.float32, copy=False)


def from_unit(x: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """Clamp to [0, 1] and round to ``dtype``'s levels (half away from zero); floats stay."""
    x = x.clamp(0, 1)
    if dtype == np.uint8:
        return torch.floor(x * 255 + 0.5).to(torch.uint8).cpu().numpy()
    if dtype == np.uint16:
        return torch.floor(x * 65535 + 0.5).to(torch.int32).cpu().numpy().astype(np.uint16)
    return x.cpu().numpy().astype(dtype, copy=False)


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    if tile <= 0 or tile >= length:
        return [(0, length)]
    return [(a, min(a + tile, length)) for a in range(0, length, tile)]


def iter_strips(
    src: np.ndarray,
    block_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    scale: int,
    tile: int,
    overlap: int,
    out_dtype: np.dtype,
    device: torch.device,
) -> Iterator[tuple[int, np.ndarray]]:
    """Run ``block_fn`` over overlapped tiles of ``src`` and yield finished output strips.

    Args:
        src: input ``(N, H, W, C)`` of uint8, uint16 or float32 in [0, 1].
        block_fn: ``(N, C, h, w)`` float32 in [0, 1] on ``device`` → ``(N, C, s·h, s·w)``.
        scale: the integer factor ``s``.
        tile: tile size in input pixels (``<= 0``: one tile).
        overlap: extra input pixels around inner tile borders (use at least the model's
            :func:`receptive_radius` and :data:`MIN_OVERLAP`).
        out_dtype: dtype of the strips (uint8/uint16 are rounded, floats are clamped).
        device: where ``block_fn`` runs.

    Yields:
        ``(row, strip)``: the first output row and a ``(N, rows, s·W, C)`` array.
    """
    n, h, w, c = src.shape
    s = scale
    cols = _spans(w, tile)
    for y0, y1 in _spans(h, tile):
        strip = np.empty((n, (y1 - y0) * s, w * s, c), dtype=out_dtype)
        ya, yb = max(0, y0 - overlap), min(h, y1 + overlap)
        for x0, x1 in cols:
            xa, xb = max(0, x0 - overlap), min(w, x1 + overlap)
            block = torch.from_numpy(np.ascontiguousarray(to_unit(src[:, ya:yb, xa:xb])))
            out = block_fn(block.to(device).permute(0, 3, 1, 2))
            core = out[:, :, (y0 - ya) * s : (y1 - ya) * s, (x0 - xa) * s : (x1 - xa) * s].permute(
                0, 2, 3, 1
            )
            strip[:, :, x0 * s : x1 * s] = from_unit(core, out_dtype)
        yield y0 * s, strip


def iter_image_strips(
    src: np.ndarray,
    image_fn: Callable[[np.ndarray, np.ndarray], None],
    *,
    scale: int,
    tile: int,
    overlap: int,
    out: np.ndarray | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`iter_strips` for a function that upscales one image into a given output.

    The same tiles and overlap, but no conversion to float: ``image_fn(lr, sr)`` fills the
    ``(s·h, s·w, C)`` array ``sr`` from the ``(h, w, C)`` array ``lr``, both of ``src``'s
    dtype and possibly views with row strides of a larger array. A tile without overlap
    (an image in one tile) is written straight into the strip; others go through a buffer
    whose core is copied out.

    Args:
        src: input ``(N, H, W, C)``.
        image_fn: fills its second argument with the upscaled first one.
        scale, tile, overlap: as for :func:`iter_strips`.
        out: the whole ``(N, s·H, s·W, C)`` output to write into (the strips are then its
            views); default: a new array per strip.

    Yields:
        ``(row, strip)``: the first output row and a ``(N, rows, s·W, C)`` array of
        ``src``'s dtype.
    """
    n, h, w, c = src.shape
    s = scale
    cols = _spans(w, tile)
    for y0, y1 in _spans(h, tile):
        if out is None:
            strip = np.empty((n, (y1 - y0) * s, w * s, c), dtype=src.dtype)
        else:
            strip = out[:, y0 * s : y1 * s]
        ya, yb = max(0, y0 - overlap), min(h, y1 + overlap)
        for x0, x1 in cols:
            xa, xb = max(0, x0 - overlap), min(w, x1 + overlap)
            direct = (ya, yb, xa, xb) == (y0, y1, x0, x1)
            buf = None if direct else np.empty(((yb - ya) * s, (xb - xa) * s, c), src.dtype)
            for i in range(n):
                dst = strip[i, :, x0 * s : x1 * s]
                if buf is None:
                    image_fn(src[i, ya:yb, xa:xb], dst)
                else:
                    image_fn(src[i, ya:yb, xa:xb], buf)
                    dst[...] = buf[(y0 - ya) * s : (y1 - ya) * s, (x0 - xa) * s : (x1 - xa) * s]
        yield y0 * s, strip
