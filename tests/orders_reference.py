"""An independent reference for the periodic shuffle, written from docs/orders.md.

The channel -> pixel mapping is the mixed-radix reading of the order string, one block
offset at a time; it shares no code with ``subpixel.ops``. Shared by the layer tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

SPATIAL = {1: "w", 2: "hw", 3: "dhw"}


def channel_index(
    order: str, c: int, offsets: Sequence[int], channels: int, factors: Sequence[int]
) -> int:
    """Input channel that feeds output channel ``c`` at block ``offsets`` (outermost first)."""
    spatial = SPATIAL[len(factors)]
    index = 0
    for letter in order:
        if letter == "c":
            index = index * channels + c
        else:
            axis = spatial.index(letter)
            index = index * factors[axis] + offsets[axis]
    return index


def reference_shuffle(z: torch.Tensor, factors: Sequence[int], order: str) -> torch.Tensor:
    """Depth to space of ``(N, C·∏r, *S)`` by the order table, one block offset at a time."""
    assert len(factors) == z.dim() - 2
    block = 1
    for f in factors:
        block *= f
    channels = z.shape[1] // block
    out = z.new_empty(
        (z.shape[0], channels, *(s * f for s, f in zip(z.shape[2:], factors, strict=True)))
    )
    for offsets in itertools.product(*(range(f) for f in factors)):
        idx = [channel_index(order, c, offsets, channels, factors) for c in range(channels)]
        where = (
            slice(None),
            slice(None),
            *(slice(o, None, f) for o, f in zip(offsets, factors, strict=True)),
        )
        out[where] = z[:, idx]
    return out
