"""The network as the fast paths see it.

An ESPCN-like model parsed into a list of float64 layers (:func:`_parse`), the
:class:`FastESPCN` base class every fast network derives from (phases, the bicubic
residual, the batched call), and the output activation folded into the last layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from subpixel.fast._polyphase import polyphase_taps


@dataclass(frozen=True)
class _Layer:
    weight: torch.Tensor  # (co, ci, k, k) float64
    bias: torch.Tensor  # (co,) float64

    @property
    def k(self) -> int:
        return int(self.weight.shape[-1])


@dataclass(frozen=True)
class _Net:
    layers: tuple[_Layer, ...]
    activation: str  # between convolutions: "tanh" | "relu"
    out_act: str | None  # after the shuffle: None | "tanh" | "relu" | "sigmoid"
    scale: int
    residual: str | None = None  # None | "bicubic": + F.interpolate(x, bicubic) at the end


_ACT_NAMES: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.ReLU: "relu"}
_OUT_ACT_NAMES: dict[type[nn.Module], str | None] = {
    nn.Identity: None,
    nn.Tanh: "tanh",
    nn.ReLU: "relu",
    nn.Sigmoid: "sigmoid",
}


def _shuffle_permutation(shuffle: nn.Module, scale: int) -> torch.Tensor:
    """``perm[i·s + j]``: which input channel the shuffle puts on output pixel ``(i, j)``."""
    probe = torch.arange(scale * scale, dtype=torch.float32).view(1, -1, 1, 1)
    with torch.no_grad():
        out = shuffle(probe)
    if tuple(out.shape) != (1, 1, scale, scale):
        raise ValueError(f"the shuffle maps a (1, {scale * scale}, 1, 1) probe to {out.shape}")
    perm = out.flatten().round().long()
    if sorted(perm.tolist()) != list(range(scale * scale)):
        raise ValueError("the shuffle is not a channel permutation")
    return perm


def _parse(model: nn.Module) -> _Net:
    """The convolutions, activation and factor of an ESPCN-like ``model``.

    Raises:
        ValueError: if the model is not convolutions with one activation type between
            them (tanh or ReLU), one input channel, and a final shuffle to one channel.
    """
    residual = getattr(model, "residual", None)
    if residual not in (None, "bicubic"):
        raise ValueError(f"{type(model).__name__}: residual={residual!r} is not supported")
    leaves = [m for m in model.modules() if not list(m.children())]
    out_act: str | None = None
    if leaves and type(leaves[-1]) in _OUT_ACT_NAMES:  # an output activation after the shuffle
        out_act = _OUT_ACT_NAMES[type(leaves.pop())]
    if len(leaves) < 3:
        raise ValueError(f"{type(model).__name__} is not an ESPCN-like network")
    *body, shuffle = leaves
    convs = body[0::2]
    acts = body[1::2]
    if len(convs) != len(acts) + 1 or not all(isinstance(c, nn.Conv2d) for c in convs):
        raise ValueError(
            f"{type(model).__name__}: expected conv, activation, ..., conv, shuffle; "
            f"got {[type(m).__name__ for m in leaves]}"
        )
    names = {_ACT_NAMES.get(type(a)) for a in acts}
    if len(names) != 1 or None in names:
        raise ValueError(
            f"{type(model).__name__}: activations {[type(a).__name__ for a in acts]} are not "
            "all tanh or all ReLU"
        )
    activation = names.pop()
    assert activation is not None
    first = convs[0]
    assert isinstance(first, nn.Conv2d)
    if first.in_channels != 1:
        raise ValueError(
            f"{type(model).__name__}: the fast path runs Y-channel models (1 input channel), "
            f"this one takes {first.in_channels}"
        )
    layers = []
    prev = 1
    for conv in convs:
        assert isinstance(conv, nn.Conv2d)
        k = conv.kernel_size
        if (
            k[0] != k[1]
            or k[0] % 2 == 0
            or conv.stride != (1, 1)
            or conv.dilation != (1, 1)
            or conv.groups != 1
            or conv.padding != (k[0] // 2, k[1] // 2)
            or conv.padding_mode != "zeros"
            or conv.in_channels != prev
        ):
            raise ValueError(f"{type(model).__name__}: unsupported convolution {conv}")
        prev = conv.out_channels
        w = conv.weight.detach().to("cpu", torch.float64)
        b = (
            conv.bias.detach().to("cpu", torch.float64)
            if conv.bias is not None
            else torch.zeros(conv.out_channels, dtype=torch.float64)
        )
        layers.append(_Layer(w, b))
    scale = math.isqrt(prev)
    if scale * scale != prev:
        raise ValueError(f"{type(model).__name__}: last convolution has {prev} channels, not s²")
    model_scale = getattr(model, "scale", scale)
    if model_scale != scale:
        raise ValueError(f"{type(model).__name__}: scale {model_scale} but {prev} output channels")
    perm = _shuffle_permutation(shuffle, scale)
    last = layers[-1]
    layers[-1] = _Layer(last.weight[perm], last.bias[perm])
    return _Net(tuple(layers), activation, out_act, scale, residual)


class FastESPCN:
    """An ESPCN-like network prepared for fast inference (see :func:`optimize_for_inference`).

    Calling it maps ``(N, 1, h, w)`` float Y in [0, 1] to ``(N, 1, s·h, s·w)`` as the model
    does (no clamping). :meth:`phases` gives the last layer's output for one image without
    shuffling it, as ``y_alpha · phases + y_beta`` (an affine map folded away by
    :class:`FastUpscaler`).

    Attributes:
        scale: the upscaling factor.
        precision: ``"fp32"`` or ``"int8"``.
        backend: a short description of the kernels used, e.g. ``"cpu-winograd-f4x4"``.
        device: where it runs.
        y_alpha, y_beta: the affine map from :meth:`phases` to the model's output.
    """

    scale: int
    precision: str
    backend: str
    device: torch.device
    y_alpha: float = 1.0
    y_beta: float = 0.0

    residual: str | None = None
    _res_w: tuple[torch.Tensor, torch.Tensor] | None = None
    _raw_ab: tuple[float, float] = (1.0, 0.0)
    _res_in_raw = False  # _raw_phases adds the residual itself

    def _raw_phases(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _setup_residual(self, net: _Net) -> None:
        """For ``residual="bicubic"``: the bicubic phases are added to the output phases."""
        self.residual = net.residual
        if net.residual is None:
            return
        s = net.scale
        self._raw_ab = (self.y_alpha, self.y_beta)  # applied before adding the residual
        self.y_alpha, self.y_beta = 1.0, 0.0
        taps = polyphase_taps(s, -0.75)  # F.interpolate's bicubic, replicated borders
        self._res_w = (
            torch.from_numpy(taps.reshape(s, 1, 1, 5)).float().to(self.device),
            torch.from_numpy(np.tile(taps, (s, 1)).reshape(s * s, 1, 5, 1)).float().to(self.device),
        )

    def phases(self, y: torch.Tensor) -> torch.Tensor:
        """The sub-pixel phases ``(h·w, s²)`` (column ``i·s + j``) of one ``(h, w)`` Y image.

        The result may be a transposed view; it is a new buffer the caller may modify.
        """
        p = self._raw_phases(y)
        if self._res_w is None or self._res_in_raw:
            return p
        h, w = y.shape
        s = self.scale
        a, b = self._raw_ab
        if a != 1.0 or b != 0.0:
            p.mul_(a).add_(b)
        padded = F.pad(y.float()[None, None], (2, 2, 2, 2), mode="replicate")
        wh, wv = self._res_w
        rx = F.conv2d(padded.contiguous(memory_format=torch.channels_last), wh)
        rxy = F.conv2d(rx, wv, groups=s)  # (1, s·s, h, w) channels last, channels (j, i)
        res = rxy.permute(0, 2, 3, 1).reshape(h * w, s, s).transpose(1, 2)
        p.unflatten(1, (s, s)).add_(res)
        return p

    @torch.no_grad()
    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 4 or y.shape[1] != 1:
            raise ValueError(f"expected a (N, 1, H, W) Y tensor, got shape {tuple(y.shape)}")
        n, _, h, w = y.shape
        s = self.scale
        outs = []
        for i in range(n):
            p = self.phases(y[i, 0].to(self.device, torch.float32))
            if self.y_alpha != 1.0 or self.y_beta != 0.0:
                p = p * self.y_alpha + self.y_beta
            img = p.reshape(h, w, s, s).permute(0, 2, 1, 3).reshape(1, 1, h * s, w * s)
            outs.append(img)
        return torch.cat(outs).to(y.dtype)


def _out_gain(out_act: str | None) -> tuple[float, float, float]:
    """``(g, alpha, beta)``: scale the last layer by ``g``; output = alpha·act(·) + beta.

    ``tanh(z) = 2·sigmoid(2z) − 1``: PyTorch's ``sigmoid`` is several times faster.
    """
    return (2.0, 2.0, -1.0) if out_act == "tanh" else (1.0, 1.0, 0.0)


def _apply_out(z: torch.Tensor, out_act: str | None) -> None:
    if out_act in ("tanh", "sigmoid"):
        z.sigmoid_()
    elif out_act == "relu":
        z.relu_()
