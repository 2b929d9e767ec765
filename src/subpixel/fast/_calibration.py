"""Calibration for int8: built-in synthetic Y images and the statistics taken on them.

Patterns and "dead leaves" images (:func:`_default_calibration`); per-channel ranges of
the ReLU activations (:func:`_relu_ranges`) and every layer's input second moments
(:func:`_input_moments`, for the weight rounding of :func:`~subpixel.fast._int8._gptq`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from subpixel.fast._net import _Net


def _calibration_images() -> torch.Tensor:
    """Synthetic Y images (edges, lines, checkerboards, noise, waves) in studio range.

    ReLU activations peak at strong edges; these patterns reach at least the maxima that
    natural images (Set5, Set14, BSDS200) reach, within a few percent.
    """
    n = 64
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    g = torch.Generator().manual_seed(0)
    pats = [
        ((xx // 8 + yy // 8) % 2).double(),
        (xx > n // 2).double(),
        (yy > n // 2).double(),
        ((xx + yy) % 2).double(),
        (xx % 2).double(),
        (yy % 2).double(),
        ((xx - yy).abs() < 2).double(),
        torch.rand(n, n, generator=g, dtype=torch.float64),
        torch.sin(xx * 0.3) * torch.sin(yy * 0.2) * 0.5 + 0.5,
    ]
    pats += [1.0 - p for p in pats]
    return torch.stack(pats)[:, None] * (235.0 - 16.0) / 255.0 + 16.0 / 255.0


def _dead_leaves(n: int = 12, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Synthetic photograph-like Y images: the "dead leaves" model, lightly blurred.

    Random grey discs with radii distributed as ``r^-3`` occlude each other, which gives
    the edge statistics and the scale-invariant spectrum of natural images; a binomial
    blur stands in for the camera's optics. Studio range, ``(n, 1, size, size)`` float64.
    """
    g = torch.Generator().manual_seed(seed)
    ax = torch.arange(size, dtype=torch.float64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    rmin, rmax = 1.0, size / 3.0
    imgs = []
    for _ in range(n):
        img = torch.full((size, size), float(torch.rand(1, generator=g)), dtype=torch.float64)
        for u, cx, cy, v in torch.rand(400, 4, generator=g, dtype=torch.float64).tolist():
            r = (rmin**-2 + u * (rmax**-2 - rmin**-2)) ** -0.5
            cx, cy = cx * (size + 2 * r) - r, cy * (size + 2 * r) - r
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = v
        imgs.append(img)
    x = torch.stack(imgs)[:, None]
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64) / 16.0
    x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), (k[:, None] * k[None, :])[None, None])
    return x * (235.0 - 16.0) / 255.0 + 16.0 / 255.0


_CALIBRATION: dict[str, torch.Tensor] = {}


def _default_calibration() -> torch.Tensor:
    """The built-in calibration images: synthetic patterns and dead-leaves images.

    They set the 8-bit ranges and the input second moments that guide the weight rounding
    (:func:`_gptq`).
    """
    if "images" not in _CALIBRATION:
        _CALIBRATION["images"] = torch.cat([_calibration_images().double(), _dead_leaves()])
    return _CALIBRATION["images"]


def _relu_ranges(net: _Net, images: torch.Tensor) -> list[torch.Tensor]:
    """Per-channel 8-bit ranges of the hidden ReLU activations over ``images``.

    Each channel gets its own range (cross-layer equalisation: ReLU commutes with a
    positive per-channel scale, which is folded into the producing layer's weights and the
    consuming layer's input weights), so that a channel with small values is not quantised
    with the step of the largest channel. A range is the channel's calibration maximum, at
    least 1/4 and at most 1.05× the layer's largest maximum (rarer peaks of photographs
    clip: on Set5 that costs less than the coarser step of a wider range).
    """
    x = images.float()
    out = []
    for layer in net.layers[:-1]:
        x = F.relu(F.conv2d(x, layer.weight.float(), layer.bias.float(), padding=layer.k // 2))
        m = x.amax((0, 2, 3))
        top = m.max().clamp_min(1e-6)
        out.append(torch.minimum(torch.maximum(m, 0.25 * top), 1.05 * top).double())
    return out


def _input_moments(net: _Net, images: torch.Tensor) -> list[torch.Tensor]:
    """``E[x xᵀ]`` of every layer's input patches (``ci·k·k`` each) over ``images``.

    Patches at every other row and column (a quarter of them) are plenty and 4× cheaper.
    """
    x = images.float()
    out = []
    act = torch.tanh if net.activation == "tanh" else F.relu
    for idx, layer in enumerate(net.layers):
        n = layer.weight[0].numel()
        m = torch.zeros(n, n, dtype=torch.float64)
        count = 0
        for img in x.split(4):
            cols = F.unfold(img, layer.k, padding=layer.k // 2, stride=2)  # (b, n, L)
            cols = cols.transpose(1, 2).reshape(-1, n)
            m += (cols.T @ cols).double()
            count += cols.shape[0]
        out.append(m / max(count, 1))
        if idx < len(net.layers) - 1:
            x = act(F.conv2d(x, layer.weight.float(), layer.bias.float(), padding=layer.k // 2))
    return out
