"""Sub-pixel chains (:mod:`subpixel.fast._chain`): FSRCNN-like models on the CPU in bands.

References are the models' own PyTorch layers in float64 (``nn.ConvTranspose2d`` for the
upsampler), never the code under test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from subpixel.fast._chain import _CpuChain, phase_chain
from subpixel.models.espcn import ESPCN
from subpixel.models.fsrcnn import FSRCNN


def _randomised(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # every layer active, PReLU slopes of both signs
            p.copy_(torch.randn(p.shape, generator=g) * (0.15 if p.dim() > 1 else 0.1))
    return model.eval()


def _reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.double()(x.double()).float()
    model.float()
    return out


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("upsampler", ["transposed", "subpixel"])
def test_fsrcnn_as_a_phase_chain_is_the_model(scale: int, upsampler: str) -> None:
    model = _randomised(FSRCNN(scale, upsampler=upsampler), scale)
    chain = phase_chain(model)
    assert type(chain[-1]).__name__ == "PixelShuffle" and chain[-2].out_channels == scale**2
    x = torch.rand(1, 1, 17, 22)
    with torch.no_grad():
        got = chain(x)
    assert float((got - _reference(model, x)).abs().max()) < 1e-5
    assert all(p.data_ptr() != q.data_ptr() for p in chain.parameters() for q in model.parameters())


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("band_pixels", [1, 60, 10**6])  # a band per 2R rows, a few, two
def test_bands_give_the_whole_image_result(scale: int, band_pixels: int) -> None:
    model = _randomised(FSRCNN(scale, features=16, shrink=8, mapping=2), 10 + scale)
    net = _CpuChain(phase_chain(model), band_pixels)
    h, w = 37, 29
    assert len(net._bands(h, w)) >= 2
    y = torch.rand(h, w)
    assert float((net(y[None, None]) - _reference(model, y[None, None])).abs().max()) < 1e-5


def test_output_activation_and_shuffle_order_are_kept() -> None:
    model = _randomised(ESPCN(3, activation="prelu", output_activation="tanh", order="hwc"), 1)
    net = _CpuChain(phase_chain(model), 50)
    y = torch.rand(1, 1, 21, 18)
    assert float((net(y) - _reference(model, y)).abs().max()) < 1e-5


class _Reordered(nn.Module):
    """Layers registered in one order and applied in another: not a chain."""

    scale = 2

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.b(self.act(self.a(x))))


class _ActLate(nn.Module):
    """Registered as conv, ReLU, conv, shuffle; applied as conv, conv, ReLU, shuffle."""

    scale = 2

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.b(self.a(x))))


def test_what_is_not_a_chain_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="starts with a 1-channel convolution"):
        phase_chain(_Reordered())  # registered b (4 → 4) first
    bad = _Reordered()
    bad.b = nn.Conv2d(1, 4, 3, padding=1)  # 1 → 4 then a: 1 → 4 again
    with pytest.raises(ValueError, match="takes 1 channels after 4"):
        phase_chain(bad)
    with pytest.raises(ValueError, match="forward is not its layers in order"):
        phase_chain(_randomised(_ActLate(), 0))
    with pytest.raises(ValueError, match="residual"):
        phase_chain(ESPCN(2, residual="bicubic"))
    with pytest.raises(ValueError, match="1-channel"):
        phase_chain(ESPCN(2, channels=3))
    strided = FSRCNN(2)
    strided.mapping[0].stride = (2, 2)
    with pytest.raises(ValueError, match="stride-1 convolution"):
        phase_chain(strided)
    loose = FSRCNN(2)
    loose.upsample = nn.ConvTranspose2d(56, 1, 4, stride=2)  # 2·H + 2 pixels out
    with pytest.raises(ValueError, match=r"outputs \(H - 1\)·2 \+ 4, not 2·H"):
        phase_chain(loose)
