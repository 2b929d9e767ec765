"""RepSR: a plain ESPCN-style network trained with re-parameterisable (ECBSR-style) blocks.

Each 3×3 convolution of a small ESPCN (3×3 convolutions and ReLU in low resolution, the last
one to ``C·s²`` channels, a periodic shuffle and a bicubic global residual) is trained as a
:class:`RepBlock` of linear branches (Zhang et al. 2021, "Edge-oriented Convolution Block
for Real-time Super Resolution on Mobile Devices"):

- a 3×3 convolution;
- a 1×1 convolution to ``expand·C_out`` channels, then a 3×3 convolution;
- three 1×1 convolutions, each followed by a fixed depthwise Sobel-x, Sobel-y or Laplacian
  filter with a learnable scale and bias per channel;
- the identity, where ``C_in == C_out``.

All branches are linear, so their sum is one 3×3 convolution. The 1×1 convolutions run on
the *zero-padded* input (their bias is thus present at the padding, as ECBSR's bias-valued
padding does), so the sum equals the collapsed 3×3 convolution with zero padding exactly,
borders included. :meth:`RepSR.collapse` returns that inference form as an
:class:`~subpixel.models.espcn.ESPCN` (``features=(C,)·M``, ``kernels=(3,)·(M+1)``), which
the fast path, ONNX export, evaluation and upscaling take unchanged.

Training runs each block as its collapsed kernel (computed from the branch parameters at
every forward, so gradients reach every branch): the function and its gradients are the
branches', at the cost of one convolution. :meth:`RepBlock.forward_branches` computes the
branches one by one (the reference).

Example:
    >>> import torch
    >>> net = RepSR(scale=3, features=16, blocks=3)
    >>> x = torch.rand(1, 1, 9, 7)
    >>> net(x).shape
    torch.Size([1, 1, 27, 21])
    >>> plain = net.collapse()
    >>> bool((plain(x) - net(x)).abs().max() < 1e-5)
    True
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.nn import functional as F

from subpixel.layers import PixelShuffle
from subpixel.models.espcn import _ACTIVATIONS, ESPCN

__all__ = ["EDGE_FILTERS", "RepBlock", "RepSR"]

#: The fixed depthwise filters of the edge branches: Sobel-x, Sobel-y, Laplacian.
EDGE_FILTERS = torch.tensor(
    [
        [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
        [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]],
        [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
    ]
)


class RepBlock(nn.Module):
    """A 3×3 convolution ``c_in → c_out`` trained as a sum of linear branches.

    Args:
        c_in: input channels.
        c_out: output channels.
        expand: width of the 1×1 → 3×3 branch, in multiples of ``c_out``.
        identity: add the input (only where ``c_in == c_out``); default: where possible.

    Example:
        >>> import torch
        >>> block = RepBlock(4, 4)
        >>> x = torch.rand(2, 4, 6, 5)
        >>> w, b = block.kernel()
        >>> w.shape, b.shape
        (torch.Size([4, 4, 3, 3]), torch.Size([4]))
        >>> ref = block.forward_branches(x)
        >>> bool((torch.nn.functional.conv2d(x, w, b, padding=1) - ref).abs().max() < 1e-5)
        True
    """

    edge_mask: torch.Tensor

    def __init__(self, c_in: int, c_out: int, *, expand: int = 2, identity: bool | None = None):
        super().__init__()
        if c_in < 1 or c_out < 1 or expand < 1:
            raise ValueError(f"c_in, c_out and expand must be >= 1, got {c_in}, {c_out}, {expand}")
        if identity and c_in != c_out:
            raise ValueError(f"an identity branch needs c_in == c_out, got {c_in} -> {c_out}")
        self.c_in, self.c_out = c_in, c_out
        self.identity = c_in == c_out if identity is None else identity
        self.conv3 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.expand = nn.Conv2d(c_in, expand * c_out, 1)
        self.expand3 = nn.Conv2d(expand * c_out, c_out, 3)
        self.edge_in = nn.Conv2d(c_in, 3 * c_out, 1)
        self.edge_scale = nn.Parameter(torch.randn(3 * c_out) * 1e-3)
        self.edge_bias = nn.Parameter(torch.randn(3 * c_out) * 1e-3)
        mask = EDGE_FILTERS[:, None].repeat_interleave(c_out, 0)  # (3·c_out, 1, 3, 3)
        self.register_buffer("edge_mask", mask, persistent=False)

    def edge_kernels(self) -> torch.Tensor:
        """The three edge branches' depthwise filters ``(3·c_out, 1, 3, 3)``, scaled."""
        return self.edge_scale[:, None, None, None] * self.edge_mask.to(self.edge_scale.dtype)

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The collapsed 3×3 convolution: weight ``(c_out, c_in, 3, 3)`` and bias ``(c_out,)``.

        Differentiable in every branch parameter.
        """
        weight = self.conv3.weight
        bias = self.conv3.bias
        assert bias is not None
        # 1×1 (w1, b1) then 3×3 (w3, b3): w3 ∘ w1, and b1 carried through every tap of w3
        w1, b1 = self.expand.weight[:, :, 0, 0], self.expand.bias
        w3, b3 = self.expand3.weight, self.expand3.bias
        assert b1 is not None and b3 is not None
        weight = weight + torch.einsum("omkl,mi->oikl", w3, w1)
        bias = bias + b3 + torch.einsum("omkl,m->o", w3, b1)
        # 1×1 (e, be) then depthwise k·scale (+ edge_bias), three groups of c_out summed
        e, be = self.edge_in.weight[:, :, 0, 0], self.edge_in.bias
        assert be is not None
        k = self.edge_kernels()[:, 0]  # (3·c_out, 3, 3)
        w_edge = (k[:, None] * e[:, :, None, None]).reshape(3, self.c_out, self.c_in, 3, 3)
        b_edge = (self.edge_bias + k.sum((1, 2)) * be).reshape(3, self.c_out)
        weight = weight + w_edge.sum(0)
        bias = bias + b_edge.sum(0)
        if self.identity:
            eye = torch.eye(self.c_out, dtype=weight.dtype, device=weight.device)
            weight = weight + F.pad(eye[:, :, None, None], (1, 1, 1, 1))
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block as its collapsed convolution (the branches' function and gradients)."""
        weight, bias = self.kernel()
        return F.conv2d(x, weight, bias, padding=1)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        """The branches computed one by one and summed (the reference for :meth:`kernel`)."""
        padded = F.pad(x, (1, 1, 1, 1))
        out = self.conv3(x) + self.expand3(self.expand(padded))
        edges = F.conv2d(
            self.edge_in(padded), self.edge_kernels(), self.edge_bias, groups=3 * self.c_out
        )
        out = out + edges.reshape(x.shape[0], 3, self.c_out, *edges.shape[-2:]).sum(1)
        if self.identity:
            out = out + x
        return out


class RepSR(nn.Module):
    """ESPCN with 3×3 layers trained as :class:`RepBlock` s; :meth:`collapse` makes the ESPCN.

    ``(N, C, H, W)`` in [0, 1] to ``(N, C, s·H, s·W)``: ``blocks`` hidden layers of
    ``features`` channels (ReLU), a last layer to ``C·s²`` channels, the periodic shuffle
    (``chw`` order) and, by default, the bicubic global residual of
    :class:`~subpixel.models.espcn.ESPCN`.

    Args:
        scale: upscaling factor.
        channels: image channels in and out (1: the Y channel).
        features: width ``C`` of the hidden layers.
        blocks: number ``M`` of hidden layers (the network has ``M + 1`` convolutions).
        expand: width of the blocks' 1×1 → 3×3 branch, in multiples of their output width.
        activation: between the layers: ``"relu"`` (default), ``"prelu"`` is refused (its
            slope is not a plain function of the collapsed ESPCN), others as ESPCN.
        residual: ``"bicubic"`` (default) or ``None``.

    Example:
        >>> import torch
        >>> RepSR(scale=2, features=16, blocks=2)(torch.rand(1, 1, 5, 6)).shape
        torch.Size([1, 1, 10, 12])
    """

    def __init__(
        self,
        scale: int = 3,
        *,
        channels: int = 1,
        features: int = 16,
        blocks: int = 8,
        expand: int = 2,
        activation: str = "relu",
        residual: str | None = "bicubic",
    ) -> None:
        super().__init__()
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale must be a positive int, got {scale!r}")
        if features < 1 or blocks < 1:
            raise ValueError(f"features and blocks must be >= 1, got {features}, {blocks}")
        if activation not in _ACTIVATIONS or activation == "prelu":
            allowed = sorted(set(_ACTIVATIONS) - {"prelu"})
            raise ValueError(f"unknown activation {activation!r}; choose from {allowed}")
        if residual not in (None, "bicubic"):
            raise ValueError(f"residual must be None or 'bicubic', got {residual!r}")
        self.scale, self.channels, self.features = scale, channels, features
        self.blocks, self.activation, self.residual = blocks, activation, residual
        widths = [channels, *([features] * blocks), channels * scale * scale]
        pairs = list(itertools.pairwise(widths))
        # The output layer never adds its input: at C·s² == features (×4 at 16 features) an
        # identity there would add the last ReLU features to the sub-pixel outputs, and the
        # first steps then kill that layer (measured: a ×4 run stuck 0.2 dB over bicubic).
        self.body = nn.ModuleList(
            RepBlock(c_in, c_out, expand=expand, identity=None if k < blocks else False)
            for k, (c_in, c_out) in enumerate(pairs)
        )
        self.act = _ACTIVATIONS[activation]()
        self.shuffle = PixelShuffle(scale, order="chw")
        self._init_weights()

    def _init_weights(self) -> None:
        for block in self.body[:-1]:
            assert isinstance(block, RepBlock)
            nn.init.kaiming_normal_(block.conv3.weight, mode="fan_out", nonlinearity="relu")
            assert block.conv3.bias is not None
            nn.init.zeros_(block.conv3.bias)
        last = self.body[-1]
        assert isinstance(last, RepBlock)
        # start near the bicubic residual, as ESPCN's last layer does
        nn.init.normal_(last.conv3.weight, 0.0, 1e-3)
        nn.init.zeros_(last.expand3.weight)
        assert last.expand3.bias is not None
        nn.init.zeros_(last.expand3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for idx, block in enumerate(self.body):
            out = block(out)
            if idx < len(self.body) - 1:
                out = self.act(out)
        return self._finish(x, out)

    def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
        """The network with every block's branches computed separately (the reference)."""
        out = x
        for idx, block in enumerate(self.body):
            assert isinstance(block, RepBlock)
            out = block.forward_branches(out)
            if idx < len(self.body) - 1:
                out = self.act(out)
        return self._finish(x, out)

    def _finish(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(out)
        if self.residual == "bicubic":
            out = out + F.interpolate(
                x, scale_factor=self.scale, mode="bicubic", align_corners=False
            )
        return out

    def espcn_config(self) -> dict[str, object]:
        """The :class:`~subpixel.models.espcn.ESPCN` options of the collapsed form."""
        return {
            "scale": self.scale,
            "channels": self.channels,
            "features": [self.features] * self.blocks,
            "kernels": [3] * (self.blocks + 1),
            "activation": self.activation,
            "residual": self.residual,
        }

    @torch.no_grad()
    def collapse(self) -> ESPCN:
        """The inference form: an :class:`ESPCN` computing the same function (eval mode).

        Kernels are summed in float64, then cast to the parameters' dtype.
        """
        plain = ESPCN(
            self.scale,
            channels=self.channels,
            features=[self.features] * self.blocks,
            kernels=[3] * (self.blocks + 1),
            activation=self.activation,
            residual=self.residual,
        )
        convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
        ref = next(self.parameters())
        plain.to(device=ref.device, dtype=ref.dtype)
        for block, conv in zip(self.body, convs, strict=True):
            assert isinstance(block, RepBlock)
            weight, bias = _kernel64(block)
            conv.weight.copy_(weight)
            assert conv.bias is not None
            conv.bias.copy_(bias)
        return plain.eval()


def _kernel64(block: RepBlock) -> tuple[torch.Tensor, torch.Tensor]:
    """``block.kernel()`` computed in float64 on a copy (the block is left as it is)."""
    twin = copy.deepcopy(block).double()
    return twin.kernel()
