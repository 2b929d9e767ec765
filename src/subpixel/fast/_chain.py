"""Sub-pixel chains: any Y-channel model that is its layers in order, ending in an upsampler.

The compiled kernels take ESPCN-like networks only (:func:`subpixel.fast._net._parse`: 3×3
and first-layer convolutions with tanh or ReLU). Other small SR networks are still a
*chain*: convolutions ("same" zero padding, stride 1) and element-wise activations (PReLU,
ReLU, tanh...), then an upsampler, either a periodic shuffle or a transposed convolution
whose output is exactly ``scale`` times its input, as in FSRCNN. :func:`phase_chain` turns
such a model into a :class:`PhaseChain` (layers..., conv, PixelShuffle), the transposed
convolution replaced by its phase convolution
(:func:`subpixel.convert.transposed_to_phase_conv`), so that the last convolution's
channels are the output's sub-pixel phases: what :class:`~subpixel.fast._torch._Torch`
and the fused uint8 steps run (oneDNN ``channels_last`` on the CPU).

Whether the model's ``forward`` really is its layers in order cannot be read from the
modules, so :func:`phase_chain` runs both on a small random input and refuses the chain
when they differ.

Example:
    >>> import torch
    >>> from subpixel.models.fsrcnn import FSRCNN
    >>> model = FSRCNN(scale=4).eval()
    >>> chain = phase_chain(model)
    >>> chain[-2]
    Conv2d(56, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> x = torch.rand(1, 1, 9, 11)
    >>> bool((chain(x) - model(x)).abs().max() < 1e-5)
    True
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from subpixel.convert import ConvTransposeAsSubPixel, transposed_to_phase_conv
from subpixel.fast._bands import _band_map
from subpixel.fast._net import _OUT_ACT_NAMES, FastESPCN, _apply_out, _shuffle_permutation

__all__ = ["ELEMENTWISE", "PhaseChain", "phase_chain"]

#: The activations a chain may have between its convolutions (element-wise, per channel).
ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.PReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.SiLU,
    nn.Identity,
)

_PROBE = (1, 1, 11, 13)  # odd sizes: every phase and border of the probe differ


def _check_conv(m: nn.Module, prev: int) -> int:
    if not isinstance(m, nn.Conv2d):
        raise ValueError(f"{type(m).__name__} is not a convolution or an element-wise activation")
    k = m.kernel_size
    same = m.padding == (k[0] // 2, k[1] // 2) and k[0] % 2 == 1 and k[1] % 2 == 1
    if not same or m.stride != (1, 1) or m.dilation != (1, 1) or m.padding_mode != "zeros":
        raise ValueError(f"{m} is not a stride-1 convolution with 'same' zero padding")
    if m.in_channels != prev:
        raise ValueError(f"{m} takes {m.in_channels} channels after {prev}")
    return int(m.out_channels)


def _upsampler(m: nn.Module, prev: int, scale: int) -> list[nn.Module]:
    """The chain's last layers for upsampler ``m``: ``[phase conv, shuffle]`` or ``[shuffle]``."""
    if isinstance(m, nn.ConvTranspose2d | ConvTransposeAsSubPixel):
        if m.out_channels != 1 or m.groups != 1 or m.stride != (scale, scale):
            raise ValueError(f"{m}: expected one output channel and stride {scale}")
        return [transposed_to_phase_conv(m), nn.PixelShuffle(scale)]
    if prev != scale * scale:
        raise ValueError(f"{type(m).__name__} after {prev} channels: not a shuffle to 1 channel")
    _shuffle_permutation(m, scale)  # raises if it is not a periodic shuffle
    return [m]


def _leaves(module: nn.Module) -> list[nn.Module]:
    """The modules without children, in order; a converted transposed convolution is one."""
    if isinstance(module, ConvTransposeAsSubPixel) or not list(module.children()):
        return [module]
    return [leaf for child in module.children() for leaf in _leaves(child)]


def _ends_in_output_activation(leaves: list[nn.Module]) -> bool:
    """Whether the last leaf is an activation after the upsampler (not between layers)."""
    if len(leaves) < 2 or type(leaves[-1]) not in _OUT_ACT_NAMES:
        return False
    return not isinstance(leaves[-2], (nn.Conv2d, *ELEMENTWISE))


class PhaseChain(nn.Sequential):
    """The layers of a sub-pixel chain in order, and the ``scale`` its shuffle upsamples by."""

    def __init__(self, *layers: nn.Module, scale: int) -> None:
        super().__init__(*layers)
        self.scale = scale


def phase_chain(model: nn.Module) -> PhaseChain:
    """``model`` as a :class:`PhaseChain`: layers..., conv to s² phases, shuffle[, activation].

    Args:
        model: a Y-channel SR model (one channel in and out, ``model.scale`` set, no
            residual) whose forward applies its leaf modules in order: convolutions and
            :data:`ELEMENTWISE` activations, then a transposed convolution (or its
            :class:`~subpixel.convert.ConvTransposeAsSubPixel` form) or a shuffle,
            optionally one output activation (tanh, ReLU, sigmoid). Its weights are copied.

    Raises:
        ValueError: naming what does not fit, or when the chain computes something else
            than the model (on a random probe: the forward is not its layers in order).
    """
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"{type(model).__name__} has no integer scale attribute")
    if getattr(model, "residual", None) is not None:
        raise ValueError(f"{type(model).__name__}: residual={model.residual!r} is not a chain")
    leaves = _leaves(model)
    tail = [leaves.pop()] if _ends_in_output_activation(leaves) else []
    if len(leaves) < 2:
        raise ValueError(f"{type(model).__name__} is too short to be a sub-pixel chain")
    *body, up = leaves
    if not isinstance(body[0], nn.Conv2d) or body[0].in_channels != 1:
        raise ValueError(f"{type(model).__name__}: a chain starts with a 1-channel convolution")
    prev = 1
    for m in body:
        if not isinstance(m, ELEMENTWISE):
            prev = _check_conv(m, prev)
    layers = [*body, *_upsampler(up, prev, scale), *tail]
    chain = copy.deepcopy(PhaseChain(*layers, scale=scale)).eval()
    _check_same_function(model, chain)
    return chain


@torch.no_grad()
def _check_same_function(model: nn.Module, chain: nn.Sequential) -> None:
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    x = torch.rand(_PROBE, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    was_training = model.training
    model.eval()
    try:
        want = model(x)
    finally:
        model.train(was_training)
    got = chain.to(device, dtype)(x)
    bound = 1e-4 * max(1.0, float(want.abs().max()))
    if got.shape != want.shape or not math.isfinite(float(got.sum())):
        raise ValueError(f"{type(model).__name__}: its layers in order give {tuple(got.shape)}")
    if float((got - want).abs().max()) > bound:
        raise ValueError(f"{type(model).__name__}'s forward is not its layers in order")


def _radius(chain: nn.Sequential) -> int:
    """Rows of context a band needs above and below: the sum of the kernels' half-sizes."""
    return sum(m.kernel_size[0] // 2 for m in chain if isinstance(m, nn.Conv2d))


class _CpuChain(FastESPCN):
    """A sub-pixel chain on the CPU, band by band: PyTorch ``channels_last`` layers (oneDNN).

    Each band of rows runs the whole chain on one thread (its rows plus :func:`_radius`
    rows above and below, where the image has them, so that every output row sees what it
    sees in the whole image), the bands on ``torch.get_num_threads()`` threads at once.
    Small bands keep the wide layers' activations (56 channels for FSRCNN) in cache and
    under the allocator's reuse size, where a whole 1080p image's would be fresh memory,
    page-faulted in at every call.
    """

    def __init__(self, chain: PhaseChain, band_pixels: int = 0) -> None:
        self.scale = s = chain.scale
        self.precision = "fp32"
        self.device = torch.device("cpu")
        self.backend = "cpu-onednn-bands"
        layers = list(chain)
        self.out_act = _OUT_ACT_NAMES.get(type(layers[-1]))
        if self.out_act is not None or isinstance(layers[-1], nn.Identity):
            layers.pop()
        shuffle = layers.pop()
        last = layers[-1]
        assert isinstance(last, nn.Conv2d)
        perm = _shuffle_permutation(shuffle, s)
        phase_conv = copy.deepcopy(last)
        with torch.no_grad():  # channels in the phases' order (i·s + j)
            phase_conv.weight.copy_(last.weight[perm])
            if last.bias is not None and phase_conv.bias is not None:
                phase_conv.bias.copy_(last.bias[perm])
        body = nn.Sequential(*layers[:-1], phase_conv).float().eval()
        self.body = body.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.radius = _radius(body)
        self.band_pixels = band_pixels or _CHAIN_BAND_PIXELS

    def _bands(self, h: int, w: int) -> list[tuple[int, int]]:
        rows = max(2 * self.radius, self.band_pixels // max(w, 1), 1)
        rows = min(rows, max(1, (h + 1) // 2))  # at least two bands for two threads
        return [(r, min(h, r + rows)) for r in range(0, h, rows)]

    def _raw_phases(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape
        s, rad = self.scale, self.radius
        x = y.to(torch.float32)[None, None]
        out = torch.empty(h * w, s * s)

        def band(r0: int, r1: int) -> None:
            a, b = max(0, r0 - rad), min(h, r1 + rad)
            z = x[:, :, a:b].contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                for m in self.body:
                    z = m(z)
            # (1, s², rows, w) channels last is (rows, w, s²) in memory: the phases' rows
            out[r0 * w : r1 * w].view(r1 - r0, w, s * s).copy_(
                z[0, :, r0 - a : r1 - a].permute(1, 2, 0)
            )

        _band_map(band, self._bands(h, w))
        if self.out_act == "tanh":
            out.tanh_()
        else:
            _apply_out(out, self.out_act)
        return out


#: Pixels per band of :class:`_CpuChain`. Measured (OpenCV's FSRCNN, 1080p output, 2-core
#: AVX2 EPYC, ms per frame for 4k / 16k / 64k / 128k pixels / whole image on 2 threads):
#: ×2 267 / 240 / 181 / 198 / 248, ×3 140 / 104 / 88 / 86 / 106, ×4 75 / 54 / 44 / 44 / 61.
_CHAIN_BAND_PIXELS = 65536
