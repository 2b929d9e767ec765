"""Import the TensorFlow graphs of OpenCV's ``dnn_superres`` (ESPCN, FSRCNN) as subpixel models.

The ``.pb`` files that ``cv2.dnn_superres`` runs (``ESPCN_x{2,3,4}.pb``, ``FSRCNN_x*.pb``,
``FSRCNN-small_x*.pb``) are frozen NHWC graphs: a chain of ``Conv2D`` (kernels HWIO, padding
SAME) with biases and activations, a ``DepthToSpace`` in TensorFlow's order (``"hwc"``, ONNX
DCR), and a final transpose to NCHW. The graph is read with the protobuf-free reader of
:mod:`subpixel.interop.graphdef`, walked from its input placeholder, and the architecture and
scale are inferred from what is found (no per-file tables):

* **ESPCN**: convolutions with ReLU or tanh between them, the last to ``C·r²`` channels,
  ``DepthToSpace(r)``, optionally an activation after it (OpenCV's ESPCN graphs use ReLU
  inside and end in tanh). Built as :class:`subpixel.models.espcn.ESPCN` in PyTorch's order
  ``"chw"``: kernels HWIO → OIHW and the last convolution's output channels permuted with
  :func:`subpixel.convert_order` (``"hwc"`` → ``"chw"``; the identity for one channel).
* **FSRCNN**: the same chain with PReLU (written in the graph as ``relu(x) + α·(x - |x|)·½``):
  5×5 feature layer to ``d``, 1×1 shrink to ``s``, ``m`` 3×3 mapping layers, 1×1 expand to
  ``d``, and a ``K×K`` convolution to ``C·r²`` + ``DepthToSpace(r)`` + a bias per output
  channel. That last step is a transposed convolution with stride ``r``, kernel ``K·r`` and
  padding ``(K-1)/2·r`` (for OpenCV's ``K = 1``: kernel ``r``, no padding, no overlap);
  it is imported as that ``nn.ConvTranspose2d`` (via
  :func:`subpixel.convert.subpixel_to_transposed`) and, with ``upsampler="subpixel"`` (the
  default), converted back to the exactly equivalent sub-pixel form with
  :func:`subpixel.convert.transposed_to_subpixel`.

OpenCV feeds the network the Y plane of its own uint8 YCrCb and bilinear-resizes the chroma:
:func:`subpixel.interop.opencv_pipeline.opencv_upsample` reproduces that, and saved files say so
in their ``subpixel.pipeline`` metadata (:data:`PIPELINE`).

Example:
    >>> import os
    >>> pb = os.path.join(os.environ.get("SUBPIXEL_DATA", "/nonexistent"),
    ...                   "models/opencv-espcn/ESPCN_x3.pb")
    >>> if os.path.exists(pb):
    ...     model = load_opencv(pb)
    ...     print(type(model).__name__, model.scale)
    ... else:
    ...     print("ESPCN 3")
    ESPCN 3
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subpixel.convert import subpixel_to_transposed, transposed_to_subpixel
from subpixel.interop.graphdef import GraphDefError, NodeDef, load_graphdef
from subpixel.interop.opencv_pipeline import opencv_upsample
from subpixel.layers import SubPixelConv2d
from subpixel.models.espcn import ESPCN
from subpixel.models.fsrcnn import FSRCNN
from subpixel.ops import convert_order
from subpixel.serialization import save_weights

__all__ = [
    "PIPELINE",
    "GraphDefError",
    "ImportedModel",
    "import_opencv",
    "load_opencv",
    "opencv_upsample",
]

#: The ``subpixel.pipeline`` metadata of imported models: OpenCV's uint8 YCrCb conversion
#: and its bilinear chroma (``cv::resize`` default), see :mod:`.opencv_pipeline`.
PIPELINE: dict[str, str] = {"color": "opencv-ycrcb", "chroma": "bilinear-opencv"}

_UPSAMPLERS = ("transposed", "subpixel")


# --- the graph as a chain of layers -----------------------------------------------------------


@dataclass
class _Conv:
    weight: np.ndarray  # HWIO
    bias: np.ndarray | None = None


@dataclass(frozen=True)
class _Act:
    kind: str  # "relu", "tanh", "sigmoid", "prelu"
    slope: np.ndarray | None = None


@dataclass(frozen=True)
class _DepthToSpace:
    block: int


@dataclass(frozen=True)
class _Bias:
    value: np.ndarray


_Layer = _Conv | _Act | _DepthToSpace | _Bias
_SIMPLE_ACTS = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}


def _base(name: str) -> str:
    """``"^x"``/``"x:0"`` → ``"x"``."""
    return name.lstrip("^").split(":")[0]


@dataclass
class _Graph:
    path: Path
    nodes: dict[str, NodeDef]
    consumers: dict[str, list[NodeDef]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> _Graph:
        nodes = load_graphdef(path)
        g = cls(path, {n.name: n for n in nodes})
        for n in nodes:
            for i in n.inputs:
                if not i.startswith("^"):
                    g.consumers.setdefault(_base(i), []).append(n)
        return g

    def fail(self, msg: str) -> GraphDefError:
        return GraphDefError(f"{self.path}: {msg}")

    def const(self, name: str) -> np.ndarray:
        """The value of a ``Const`` node (through ``Identity`` nodes)."""
        node = self.nodes.get(_base(name))
        while node is not None and node.op == "Identity" and node.inputs:
            node = self.nodes.get(_base(node.inputs[0]))
        if node is None or node.op != "Const" or not isinstance(node.attr.get("value"), np.ndarray):
            raise self.fail(f"expected a constant for {name!r}")
        return np.asarray(node.attr["value"])

    def is_const(self, name: str) -> bool:
        try:
            self.const(name)
        except GraphDefError:
            return False
        return True

    def other_input(self, node: NodeDef, cur: str) -> str:
        others = [i for i in node.inputs if _base(i) != cur and not i.startswith("^")]
        if len(others) != 1:
            raise self.fail(f"node {node.name!r} ({node.op}) has unexpected inputs {node.inputs}")
        return others[0]


def _check_conv(g: _Graph, node: NodeDef) -> None:
    fmt = node.attr.get("data_format", "NHWC")
    strides = node.attr.get("strides", [1, 1, 1, 1])
    dilations = node.attr.get("dilations", [1, 1, 1, 1])
    if fmt != "NHWC" or list(strides) != [1, 1, 1, 1] or list(dilations) != [1, 1, 1, 1]:
        raise g.fail(
            f"Conv2D {node.name!r}: only NHWC, stride 1, dilation 1 is supported "
            f"(data_format={fmt}, strides={strides}, dilations={dilations})"
        )
    if node.attr.get("padding") != "SAME":
        raise g.fail(f"Conv2D {node.name!r}: only padding SAME is supported")


def _prelu(g: _Graph, cur: str, users: list[NodeDef]) -> tuple[_Act, str]:
    """Match ``relu(x) + (α · (x - |x|)) · c``: PReLU with slope ``2·c·α``."""
    by_op = {n.op: n for n in users}
    relu, absn, sub = by_op.get("Relu"), by_op.get("Abs"), by_op.get("Sub")
    if relu is None or absn is None or sub is None or len(users) != 3:
        raise g.fail(f"unrecognised activation after {cur!r}: {sorted(by_op)}")
    if [_base(i) for i in sub.inputs] != [cur, absn.name]:
        raise g.fail(f"unrecognised PReLU pattern at {sub.name!r}")
    slope = np.ones((), np.float32)
    tip = sub.name
    while True:
        after = g.consumers.get(tip, [])
        if len(after) != 1:
            raise g.fail(f"unrecognised PReLU pattern after {tip!r}")
        nxt = after[0]
        if nxt.op == "Mul":
            slope = slope * g.const(g.other_input(nxt, tip))
            tip = nxt.name
            continue
        if nxt.op in ("Add", "AddV2") and {_base(i) for i in nxt.inputs} == {tip, relu.name}:
            return _Act("prelu", (2 * slope).astype(np.float32).reshape(-1)), nxt.name
        raise g.fail(f"unrecognised PReLU pattern at {nxt.name!r} ({nxt.op})")


def _read_chain(path: Path) -> list[_Layer]:
    """Walk the graph from its placeholder to its end as a list of layers."""
    g = _Graph.read(path)
    inputs = [n for n in g.nodes.values() if n.op == "Placeholder"]
    if len(inputs) != 1:
        raise g.fail(f"expected one input placeholder, found {len(inputs)}")
    cur = inputs[0].name
    layers: list[_Layer] = []
    while True:
        users = g.consumers.get(cur, [])
        if not users:
            break
        if len(users) > 1:
            act, cur = _prelu(g, cur, users)
            layers.append(act)
            continue
        (node,) = users
        op = node.op
        if op == "Conv2D":
            _check_conv(g, node)
            if _base(node.inputs[0]) != cur:
                raise g.fail(f"Conv2D {node.name!r}: the data input is not {cur!r}")
            layers.append(_Conv(g.const(node.inputs[1]).astype(np.float32)))
        elif op in ("Add", "AddV2", "BiasAdd"):
            value = g.const(g.other_input(node, cur)).astype(np.float32).reshape(-1)
            last = layers[-1] if layers else None
            if isinstance(last, _Conv) and last.bias is None:
                last.bias = value
            elif isinstance(last, _DepthToSpace):
                layers.append(_Bias(value))
            else:
                raise g.fail(f"bias {node.name!r} ({op}) does not follow a convolution")
        elif op in _SIMPLE_ACTS:
            layers.append(_Act(_SIMPLE_ACTS[op]))
        elif op == "DepthToSpace":
            if node.attr.get("data_format", "NHWC") != "NHWC":
                raise g.fail(f"DepthToSpace {node.name!r}: only NHWC is supported")
            layers.append(_DepthToSpace(int(node.attr["block_size"])))
        elif op == "Transpose":
            perm = g.const(node.inputs[1]).tolist()
            if perm != [0, 3, 1, 2] or g.consumers.get(node.name):
                raise g.fail(f"Transpose {node.name!r} with perm {perm} inside the graph")
        elif op != "Identity":
            raise g.fail(f"unsupported operation {op!r} (node {node.name!r})")
        cur = node.name
    if not layers:
        raise g.fail("no layers found after the input placeholder")
    return layers


# --- building the models ----------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedModel:
    """A graph imported as a registered subpixel model.

    Attributes:
        model: the module, in eval mode (input ``(N, 1, H, W)`` Y in [0, 1]).
        name: its registry name (``"espcn"`` or ``"fsrcnn"``), for ``get_model``.
        config: the builder's keyword arguments (stored as ``subpixel.config``).
        algorithm: the name ``cv2.dnn_superres`` knows it by (``setModel(algorithm, scale)``).
        source: the ``.pb`` file it came from.
    """

    model: nn.Module
    name: str
    config: dict[str, Any]
    algorithm: str
    source: Path

    @property
    def scale(self) -> int:
        """The upscaling factor."""
        return int(self.config["scale"])

    def card(self) -> dict[str, Any]:
        """A model card: origin, file hash, size, and what to expect from the numbers."""
        data = self.source.read_bytes()
        return {
            "origin": "OpenCV dnn_superres TensorFlow graph, imported by subpixel.interop",
            "source_file": self.source.name,
            "source_sha256": hashlib.sha256(data).hexdigest(),
            "algorithm": self.algorithm,
            "scale": self.scale,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "input": "Y of OpenCV's uint8 YCrCb (full range), in [0, 1]",
            "notes": (
                "trained by the dnn_superres authors with their own degradation; see "
                "docs/results.md for scores under the subpixel protocol"
            ),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a ``.safetensors`` file that ``get_model(name, weights=path)`` loads.

        The metadata holds the model name, its config, a model card and the
        ``subpixel.pipeline`` of :data:`PIPELINE`. The file is written atomically.
        """
        save_weights(
            path,
            self.model.state_dict(),
            model=self.name,
            config=self.config,
            card=self.card(),
            extra={"subpixel.pipeline": json.dumps(PIPELINE, sort_keys=True)},
        )


def _oihw(w: np.ndarray) -> torch.Tensor:
    """TensorFlow ``Conv2D`` kernel ``(kh, kw, in, out)`` → PyTorch ``(out, in, kh, kw)``."""
    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))


def _split(path: Path, layers: list[_Layer]) -> tuple[list[_Conv], list[_Act], int, list[_Layer]]:
    """(convolutions, the activations after all but the last, block size, what follows)."""
    fail = lambda msg: GraphDefError(f"{path}: {msg}")  # noqa: E731
    try:
        d2s = next(i for i, layer in enumerate(layers) if isinstance(layer, _DepthToSpace))
    except StopIteration:
        raise fail("no DepthToSpace found: not an ESPCN/FSRCNN sub-pixel graph") from None
    body, tail = layers[:d2s], layers[d2s + 1 :]
    block = layers[d2s].block  # type: ignore[union-attr]
    convs = [layer for layer in body if isinstance(layer, _Conv)]
    acts = [layer for layer in body if isinstance(layer, _Act)]
    expected = [c for conv in convs[:-1] for c in (conv, None)] + [convs[-1]] if convs else []
    shape_ok = len(body) == len(expected) and all(
        isinstance(layer, _Conv) if want is not None else isinstance(layer, _Act)
        for layer, want in zip(body, expected, strict=True)
    )
    if not convs or not shape_ok:
        raise fail("expected convolutions with one activation between each, then DepthToSpace")
    for conv in convs:
        kh, kw = conv.weight.shape[:2]
        if kh != kw or kh % 2 == 0:
            raise fail(f"kernel {kh}×{kw}: only odd square kernels are supported")
    for a, b in itertools.pairwise(convs):
        if a.weight.shape[3] != b.weight.shape[2]:
            raise fail(f"channel mismatch between layers: {a.weight.shape} → {b.weight.shape}")
    channels = convs[0].weight.shape[2]
    if convs[-1].weight.shape[3] != channels * block * block:
        raise fail(
            f"the last convolution has {convs[-1].weight.shape[3]} outputs, "
            f"DepthToSpace({block}) of {channels} channel(s) needs {channels * block * block}"
        )
    return convs, acts, block, tail


def _espcn(path: Path, layers: list[_Layer]) -> tuple[nn.Module, dict[str, Any]]:
    convs, acts, r, tail = _split(path, layers)
    kinds = {a.kind for a in acts}
    if len(kinds) > 1:
        raise GraphDefError(f"{path}: mixed activations {sorted(kinds)} are not an ESPCN")
    out_act: str | None = None
    last = convs[-1]
    bias = last.bias if last.bias is not None else np.zeros(last.weight.shape[3], np.float32)
    for layer in tail:
        if isinstance(layer, _Bias):  # a bias after the shuffle = the same bias per sub-pixel
            bias = bias + np.tile(layer.value, r * r)
        elif isinstance(layer, _Act) and layer.kind != "prelu" and out_act is None:
            out_act = layer.kind
        else:
            raise GraphDefError(f"{path}: unsupported layer after DepthToSpace: {layer}")
    channels = int(convs[0].weight.shape[2])
    config: dict[str, Any] = {
        "scale": r,
        "channels": channels,
        "features": [int(c.weight.shape[3]) for c in convs[:-1]],
        "kernels": [int(c.weight.shape[0]) for c in convs],
        "activation": kinds.pop() if kinds else "relu",
        "order": "chw",
        "output_activation": out_act,
    }
    model = ESPCN(**config)
    state: dict[str, torch.Tensor] = {}
    for i, conv in enumerate(convs[:-1]):
        state[f"features.{2 * i}.weight"] = _oihw(conv.weight)
        b = conv.bias if conv.bias is not None else np.zeros(conv.weight.shape[3], np.float32)
        state[f"features.{2 * i}.bias"] = torch.from_numpy(b)
    # TensorFlow's DepthToSpace is order "hwc"; ours is "chw": permute the output channels.
    state["upsample.weight"] = convert_order(_oihw(last.weight), r, src="hwc", dst="chw")
    state["upsample.bias"] = convert_order(torch.from_numpy(bias), r, src="hwc", dst="chw")
    model.load_state_dict(state, strict=True)
    return model, config


def _fsrcnn(path: Path, layers: list[_Layer], upsampler: str) -> tuple[nn.Module, dict[str, Any]]:
    convs, acts, r, tail = _split(path, layers)
    fail = lambda msg: GraphDefError(f"{path}: {msg}")  # noqa: E731
    if any(a.kind != "prelu" for a in acts) or len(convs) < 4:
        raise fail("an FSRCNN needs PReLU after every layer but the last, and >= 4 layers")
    feat, shrink, *maps, expand, last = convs
    ks = [c.weight.shape[0] for c in convs]
    if ks[0] != 5 or ks[1] != 1 or any(k != 3 for k in ks[2:-2]) or ks[-2] != 1:
        raise fail(f"kernel sizes {ks}: FSRCNN needs 5, 1, 3 (mapping)..., 1, then any")
    d, s = int(feat.weight.shape[3]), int(shrink.weight.shape[3])
    if expand.weight.shape[3] != d:
        raise fail(f"the expanding layer has {expand.weight.shape[3]} outputs, not d = {d}")
    channels, k = int(feat.weight.shape[2]), int(last.weight.shape[0])
    post_bias = np.zeros(channels, np.float32)
    for layer in tail:
        if not isinstance(layer, _Bias) or layer.value.size not in (1, channels):
            raise fail(f"unsupported layer after DepthToSpace: {layer}")
        post_bias = post_bias + layer.value
    config: dict[str, Any] = {
        "scale": r,
        "channels": channels,
        "features": d,
        "shrink": s,
        "mapping": len(maps),
        "deconv_kernel": k * r,
        "upsampler": "transposed",
    }
    model = FSRCNN(**config)
    state: dict[str, torch.Tensor] = {}
    # (convolution, PReLU) module names, in graph order.
    names = [("feature.0", "feature.1"), ("shrink.0", "shrink.1")]
    names += [(f"mapping.{2 * i}", f"mapping.{2 * i + 1}") for i in range(len(maps))]
    names.append(("expand.0", "expand.1"))
    for (conv_name, act_name), conv, act in zip(names, convs[:-1], acts, strict=True):
        assert act.slope is not None
        state[f"{conv_name}.weight"] = _oihw(conv.weight)
        b = conv.bias if conv.bias is not None else np.zeros(conv.weight.shape[3], np.float32)
        state[f"{conv_name}.bias"] = torch.from_numpy(b)
        state[f"{act_name}.weight"] = torch.from_numpy(np.broadcast_to(act.slope, b.shape).copy())
    # The last convolution + DepthToSpace ("hwc") is a sub-pixel convolution; as a transposed
    # convolution it has stride r, kernel k·r and padding (k-1)/2·r.
    sub = SubPixelConv2d(d, channels, k, r, order="hwc", init="default", bias=last.bias is not None)
    with torch.no_grad():
        sub.conv.weight.copy_(_oihw(last.weight))
        if last.bias is not None:
            assert sub.conv.bias is not None
            sub.conv.bias.copy_(torch.from_numpy(last.bias))
    try:
        deconv = subpixel_to_transposed(sub)
    except ValueError as exc:
        raise fail(f"the upsampling layer has no transposed-convolution form ({exc})") from None
    target = model.upsample
    assert isinstance(target, nn.ConvTranspose2d)
    if (deconv.padding, deconv.output_padding) != (target.padding, target.output_padding):
        raise fail(f"unexpected transposed-convolution geometry {deconv}")
    assert isinstance(deconv, nn.ConvTranspose2d)
    bias = torch.from_numpy(post_bias)
    if deconv.bias is not None:
        bias = bias + deconv.bias.detach()
    state["upsample.weight"] = deconv.weight.detach()
    state["upsample.bias"] = bias
    model.load_state_dict(state, strict=True)
    if upsampler == "subpixel":
        assert isinstance(model.upsample, nn.ConvTranspose2d)
        model.upsample = transposed_to_subpixel(model.upsample)
        config["upsampler"] = "subpixel"
    return model, config


def import_opencv(path: str | os.PathLike[str], *, upsampler: str = "subpixel") -> ImportedModel:
    """Read an OpenCV ``dnn_superres`` ESPCN/FSRCNN ``.pb`` graph as a subpixel model.

    Args:
        path: the frozen TensorFlow graph.
        upsampler: for FSRCNN, ``"subpixel"`` (convolution + shuffle, the default) or
            ``"transposed"`` (``nn.ConvTranspose2d``); the two compute the same function.
            Ignored for ESPCN.

    Returns:
        An :class:`ImportedModel`; ``.save(out)`` writes it as ``.safetensors``.

    Raises:
        GraphDefError: (a ``ValueError``) naming the file: unreadable, or a graph that is
            not an ESPCN/FSRCNN chain of supported operations.

    Example:
        >>> import os
        >>> pb = os.path.join(os.environ.get("SUBPIXEL_DATA", "/nonexistent"),
        ...                   "models/opencv-fsrcnn/FSRCNN-small_x2.pb")
        >>> if os.path.exists(pb):
        ...     imp = import_opencv(pb)
        ...     print(imp.name, imp.config["features"], imp.config["mapping"], imp.scale)
        ... else:
        ...     print("fsrcnn 32 1 2")
        fsrcnn 32 1 2
    """
    if upsampler not in _UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {_UPSAMPLERS}, got {upsampler!r}")
    source = Path(path)
    layers = _read_chain(source)
    if any(isinstance(layer, _Act) and layer.kind == "prelu" for layer in layers):
        model, config = _fsrcnn(source, layers, upsampler)
        name = "fsrcnn"
    else:
        model, config = _espcn(source, layers)
        name = "espcn"
    model.eval()
    return ImportedModel(model, name, config, name, source)


def load_opencv(path: str | os.PathLike[str], *, upsampler: str = "subpixel") -> nn.Module:
    """The model of an OpenCV ``dnn_superres`` ``.pb`` file as a subpixel module (eval mode).

    Input ``(N, 1, H, W)`` Y in [0, 1], output ``(N, 1, s·H, s·W)``; see
    :func:`import_opencv` for the arguments and
    :func:`~subpixel.interop.opencv_pipeline.opencv_upsample` to run it on images as OpenCV
    does.
    """
    return import_opencv(path, upsampler=upsampler).model


def describe(imported: ImportedModel) -> Mapping[str, Any]:
    """A short summary for the command line (name, config, parameter count)."""
    return {
        "model": imported.name,
        "config": imported.config,
        "parameters": sum(p.numel() for p in imported.model.parameters()),
    }
