"""The network on any device (:class:`_Torch`): the model's own layers, channels last."""

from __future__ import annotations

import copy

import torch
from torch import nn

from subpixel.fast._net import _OUT_ACT_NAMES, FastESPCN, _apply_out, _Net, _shuffle_permutation


class _Torch(FastESPCN):
    """Any device: the model's own layers in ``channels_last`` (cuDNN on CUDA)."""

    def __init__(self, model: nn.Module, net: _Net, device: torch.device, dtype: torch.dtype):
        self.scale = net.scale
        self.precision = "fp32" if dtype == torch.float32 else str(dtype).replace("torch.", "")
        self.device = device
        self.dtype = dtype
        self.backend = f"{device.type}-torch-channels-last"
        self.model = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
        self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        leaves = [m for m in self.model.modules() if not list(m.children())]
        if type(leaves[-1]) in _OUT_ACT_NAMES:
            leaves.pop()
        self.body = leaves[:-1]
        self.out_act = net.out_act
        self.perm = _shuffle_permutation(leaves[-1], net.scale).to(device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._setup_residual(net)

    def _raw_phases(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape
        x = y.to(self.device, self.dtype)[None, None].contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            for m in self.body:
                x = m(x)
        p = x[0][self.perm].float().reshape(self.scale**2, h * w).t().contiguous()
        if self.out_act == "tanh":
            p.tanh_()
        else:
            _apply_out(p, self.out_act)
        return p
