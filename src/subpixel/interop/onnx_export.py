"""Export models to ONNX with every shuffle order mapped to the right ONNX operations.

ONNX has one depth-to-space operator, ``DepthToSpace``, with two modes (``CRD`` = our order
``"chw"``, PyTorch's; ``DCR`` = ``"hwc"``, TensorFlow's) and one space-to-depth operator,
``SpaceToDepth``, which is ``"hwc"`` only: writing PyTorch's ``pixel_unshuffle`` as
``SpaceToDepth`` (as some exporters have) silently reorders channels. :func:`to_onnx`
exports :class:`subpixel.PixelShuffle`/:class:`subpixel.PixelUnshuffle` modules as:

* 2-D, channels first, equal factors, order ``"chw"``: ``DepthToSpace(mode="CRD")``;
  order ``"hwc"``: ``DepthToSpace(mode="DCR")``; unshuffle in ``"hwc"``: ``SpaceToDepth``;
* anything else (``"cwh"``, ``"whc"``, unshuffle in ``"chw"``, rectangular factors, 1-D and
  3-D, channels last): the reshape → transpose → reshape that :mod:`subpixel.ops` computes,
  traced with symbolic sizes, so height and width stay dynamic.

The export uses PyTorch's TorchScript-based exporter (``dynamo=False``), which needs only the
``onnx`` package; ``onnxruntime`` is needed to check the result
(``pip install 'subpixel[onnx]'``).

Example:
    >>> import os, tempfile, torch, subpixel
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), subpixel.PixelShuffle(2))
    >>> path = to_onnx(net, os.path.join(tempfile.mkdtemp(), "net.onnx"))
    >>> onnx_ops(path)
    ['Conv', 'DepthToSpace']
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from subpixel._files import atomic_write_bytes
from subpixel.layers import PixelShuffle, PixelUnshuffle

__all__ = ["DEFAULT_OPSET", "check_onnx", "export_bytes", "onnx_ops", "to_onnx"]

#: The opset written by default (DepthToSpace CRD needs >= 11).
DEFAULT_OPSET = 17


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise ImportError(
            f"ONNX export needs the {module!r} package: pip install 'subpixel[onnx]'"
        ) from exc


class _DepthToSpace(torch.autograd.Function):
    """``DepthToSpace`` with an explicit mode, for the exporter."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, block: int, mode: str) -> torch.Tensor:
        order = "chw" if mode == "CRD" else "hwc"
        from subpixel.ops import pixel_shuffle

        return pixel_shuffle(x, block, order=order)

    @staticmethod
    def symbolic(g: Any, x: Any, block: int, mode: str) -> Any:
        return g.op("DepthToSpace", x, blocksize_i=block, mode_s=mode)


class _SpaceToDepth(torch.autograd.Function):
    """``SpaceToDepth`` (order ``"hwc"``), for the exporter."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, block: int) -> torch.Tensor:
        from subpixel.ops import pixel_unshuffle

        return pixel_unshuffle(x, block, order="hwc")

    @staticmethod
    def symbolic(g: Any, x: Any, block: int) -> Any:
        return g.op("SpaceToDepth", x, blocksize_i=block)


class _OnnxShuffle(nn.Module):
    """Stands in for a shuffle module during export, emitting one ONNX node."""

    def __init__(self, block: int, mode: str, inverse: bool) -> None:
        super().__init__()
        self.block, self.mode, self.inverse = block, mode, inverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inverse:
            out: torch.Tensor = _SpaceToDepth.apply(x, self.block)
        else:
            out = _DepthToSpace.apply(x, self.block, self.mode)
        return out


def _native(m: nn.Module, blocks: Collection[int] | None = None) -> _OnnxShuffle | None:
    """The single-node replacement of a shuffle module, or None to trace its reshapes.

    ``blocks``, when given, limits the replacement to those block sizes.
    """
    if not isinstance(m, (PixelShuffle, PixelUnshuffle)) or type(m) not in (
        PixelShuffle,
        PixelUnshuffle,
    ):
        return None
    factor = tuple(m.factor)
    if m.data_format != "channels_first" or len(factor) != 2 or factor[0] != factor[1]:
        return None
    if blocks is not None and factor[0] not in blocks:
        return None
    inverse = isinstance(m, PixelUnshuffle)
    if m.order == "hwc":
        return _OnnxShuffle(factor[0], "DCR", inverse)
    if m.order == "chw" and not inverse:
        return _OnnxShuffle(factor[0], "CRD", inverse)
    return None


def _swap_shuffles(model: nn.Module, blocks: Collection[int] | None = None) -> nn.Module:
    """A copy of ``model`` whose shuffles that map to one ONNX node are replaced by it.

    ``blocks``, when given, limits the replacement to shuffles with those block sizes.
    """
    root = _native(model, blocks)
    if root is not None:
        return root
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            new = _native(child, blocks)
            if new is not None:
                setattr(parent, name, new)
    return model


def _channels(model: nn.Module) -> int:
    channels = getattr(model, "channels", None)
    if isinstance(channels, int):
        return channels
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return int(m.in_channels)
    raise ValueError("cannot tell the model's input channels: pass input_shape=(N, C, H, W)")


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    input_shape: tuple[int, ...] | None = None,
) -> Path:
    """Export ``model`` to an ONNX file, written atomically.

    Args:
        model: the network, e.g. from ``get_model`` (input ``(N, C, H, W)`` in [0, 1]). It is
            exported in eval mode and not modified.
        path: the ``.onnx`` file to write.
        dynamic: batch, height and width dynamic (default); ``False`` fixes them to
            ``input_shape``.
        opset: the ONNX opset (>= 11).
        input_shape: the example input's shape; default ``(1, C, 16, 16)`` with ``C`` the
            model's ``channels`` attribute or its first convolution's input channels.

    Returns:
        ``Path(path)``. The graph's input is named ``"input"`` and its output ``"output"``.

    Raises:
        ImportError: naming the extra to install when ``onnx`` is missing.
        ValueError: an opset below 11, or a model whose input cannot be guessed.
    """
    _require("onnx")
    if not isinstance(opset, int) or opset < 11:
        raise ValueError(f"opset must be an int >= 11 (DepthToSpace CRD), got {opset!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    shape = input_shape or (1, _channels(model), 16, 16)
    axes = {0: "batch", 2: "height", 3: "width"}
    data = export_bytes(
        model,
        shape,
        opset=opset,
        input_axes=axes if dynamic else None,
        output_axes=axes if dynamic else None,
    )
    out = Path(path)
    atomic_write_bytes(out, data)
    return out


def export_bytes(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    opset: int = DEFAULT_OPSET,
    input_axes: dict[int, str] | None = None,
    output_axes: dict[int, str] | None = None,
    blocks: Collection[int] | None = None,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
) -> bytes:
    """The ONNX file :func:`to_onnx` writes, as bytes, with the layout left to the caller.

    Args:
        model: the network (exported in eval mode, not modified).
        input_shape: the example input's shape (of the graph's input, after ``wrap``).
        opset: the ONNX opset (>= 11).
        input_axes: the graph input's dynamic axes (index → name), or None for static.
        output_axes: the same for the output.
        blocks: only shuffles with these block sizes become ``DepthToSpace``/
            ``SpaceToDepth`` (default: all that can); the others are traced as reshapes.
        wrap: applied to the model after its shuffles are swapped, e.g. to permute the input.

    Returns:
        The serialized model: input ``"input"``, output ``"output"``.
    """
    _require("onnx")
    if not isinstance(opset, int) or opset < 11:
        raise ValueError(f"opset must be an int >= 11 (DepthToSpace CRD), got {opset!r}")
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params else torch.float32
    example = torch.rand(*input_shape, device=device, dtype=dtype)
    export_model = _swap_shuffles(model, blocks)
    if wrap is not None:
        export_model = wrap(export_model)
    was_training = model.training
    export_model.eval()
    dynamic_axes: dict[str, dict[int, str]] = {}
    if input_axes:
        dynamic_axes["input"] = input_axes
    if output_axes:
        dynamic_axes["output"] = output_axes
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation/tracer notes
            torch.onnx.export(
                export_model,
                (example,),
                buf,  # type: ignore[arg-type]  # a file object works (legacy exporter)
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=dynamic_axes or None,
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    return _normalize_perms(buf.getvalue())


def _normalize_perms(data: bytes) -> bytes:
    """``data`` with every ``Transpose`` ``perm`` made non-negative.

    The tracer copies ``movedim(-1, 1)`` as ``perm=[0, -1, 1, 2]``; onnxruntime accepts that,
    OpenCV's ``dnn`` does not (ONNX means axes ``0..rank-1``).
    """
    onnx = _require("onnx")
    proto = onnx.load_from_string(data)
    changed = False
    for node in proto.graph.node:
        if node.op_type != "Transpose":
            continue
        for attr in node.attribute:
            if attr.name == "perm" and any(p < 0 for p in attr.ints):
                rank = len(attr.ints)
                fixed = [p + rank if p < 0 else p for p in attr.ints]
                del attr.ints[:]
                attr.ints.extend(fixed)
                changed = True
    return proto.SerializeToString() if changed else data


def onnx_ops(path: str | os.PathLike[str]) -> list[str]:
    """The operators the data flows through in an ONNX file, in graph order.

    Size bookkeeping (``Shape`` and the arithmetic on its result that dynamic reshapes
    need) is left out: only nodes with an input computed from the graph's input count.
    """
    onnx = _require("onnx")
    graph = onnx.load(str(path)).graph
    data = {i.name for i in graph.input}
    ops: list[str] = []
    for node in graph.node:
        if node.op_type == "Shape" or not any(i in data for i in node.input):
            continue
        data.update(node.output)
        ops.append(node.op_type)
    return ops


def check_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    sizes: tuple[tuple[int, int], ...] = ((16, 16), (17, 23), (5, 9)),
    *,
    batch: int = 2,
    channels_last: bool = False,
) -> float:
    """Largest absolute difference between onnxruntime and PyTorch on random inputs.

    Args:
        model: the PyTorch model that was exported.
        path: the ONNX file.
        sizes: the input heights and widths to try (odd ones included by default).
        batch: the batch size.
        channels_last: the file's input is ``(N, H, W, C)`` (as written by
            :func:`subpixel.interop.opencv_onnx.to_dnn_superres`); its output is compared
            with the model's ``(N, C, sH, sW)`` all the same.

    Raises:
        ImportError: naming the extra when ``onnxruntime`` is missing.
    """
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    channels = session.get_inputs()[0].shape[3 if channels_last else 1]
    if not isinstance(channels, int):
        channels = _channels(model)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    was_training = model.training
    model.eval()
    worst = 0.0
    try:
        for h, w in sizes:
            x = torch.rand(batch, channels, h, w)
            with torch.no_grad():
                ref = model(x.to(device)).float().cpu().numpy()
            feed = x.permute(0, 2, 3, 1).contiguous() if channels_last else x
            (got,) = session.run(None, {"input": feed.numpy()})
            if got.shape != ref.shape:
                raise ValueError(
                    f"{path}: onnxruntime gives shape {got.shape} for input {tuple(x.shape)}, "
                    f"PyTorch {ref.shape}"
                )
            worst = max(worst, float(abs(got - ref).max()))
    finally:
        model.train(was_training)
    return worst
