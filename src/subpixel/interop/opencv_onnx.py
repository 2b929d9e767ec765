"""ONNX files that OpenCV 5's ``cv2.dnn_superres.DnnSuperResImpl`` can run.

OpenCV 5 dropped its TensorFlow importer, and ``DnnSuperResImpl::readModel`` now reads ONNX
(``dnn::readNetFromONNX``). For the algorithms ``"espcn"``, ``"fsrcnn"`` and ``"lapsrn"``
(one code path; the name only selects it), ``upsample`` (opencv_contrib
``modules/dnn_superres/src/dnn_superres.cpp``, 5.x):

1. converts the BGR uint8 image to YCrCb and to float32 in [0, 1] (``preprocess_YCrCb``);
2. feeds the network the Y plane reshaped to **NHWC** ``(1, H, W, 1)``
   (``Y.reshape(1, {1, Y.rows, Y.cols, 1})``; no input name: the first input);
3. reads the first output through ``dnn::imagesFromBlob``, which needs a 4-D float32 blob
   and takes it as **NCHW** ``(1, 1, s·H, s·W)``;
4. resizes Cr and Cb by the ``scale`` given to ``setModel`` and merges them with that
   plane (``reconstruct_YCrCb``), so the output's size must be exactly ``scale`` times the
   input's.

A plain :func:`subpixel.interop.to_onnx` file takes ``(N, 1, H, W)``: given
``(1, H, W, 1)`` OpenCV's engine reads H as the channel axis and the output is not
``(1, 1, sH, sW)``, so the ``merge`` in step 4 fails (``mv[i].size == mv[0].size``).
:func:`to_dnn_superres` writes the same network behind a ``Transpose`` from NHWC, with
height and width dynamic. It also keeps ``DepthToSpace`` only for block sizes 2, 3 and 4:
creating a ``DnnSuperResImpl`` registers contrib's own ``DepthToSpace`` layer in place of
the ONNX one, which ignores ``mode`` (always TensorFlow's order, equal to PyTorch's for one
channel) and guesses the block from the channel count (right for 4, 9 and 16 channels
only); other factors are exported as reshape/transpose.

Only one-channel (Y) models fit this path: the ``"edsr"`` path feeds ``(1, 3, H, W)`` BGR
levels minus a mean, and any other name is refused by OpenCV. For a model of another kind
use ``cv2.dnn.readNetFromONNX`` on a :func:`~subpixel.interop.to_onnx` file.

Example:
    >>> import os, tempfile, torch, subpixel
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 9, 3, padding=1), subpixel.PixelShuffle(3))
    >>> info = to_dnn_superres(net, os.path.join(tempfile.mkdtemp(), "sr.onnx"))
    >>> info.scale, info.algorithm
    (3, 'espcn')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from subpixel._files import atomic_write_bytes
from subpixel.interop.onnx_export import DEFAULT_OPSET, _require, export_bytes

__all__ = [
    "DNN_SUPERRES_BLOCKS",
    "METADATA_KEY",
    "Y_ALGORITHMS",
    "DnnSuperResExport",
    "dnn_superres_scale",
    "to_dnn_superres",
]

#: The ``setModel`` names whose ``upsample`` runs a Y-channel network (one code path).
Y_ALGORITHMS = ("espcn", "fsrcnn", "lapsrn")

#: Block sizes that contrib's ``DepthToSpace`` layer handles for one channel (4, 9, 16).
DNN_SUPERRES_BLOCKS = (2, 3, 4)

#: The ONNX metadata key :func:`to_dnn_superres` writes (JSON ``algorithm`` and ``scale``).
METADATA_KEY = "subpixel.dnn_superres"


@dataclass(frozen=True)
class DnnSuperResExport:
    """What :func:`to_dnn_superres` wrote: pass ``algorithm`` and ``scale`` to ``setModel``."""

    path: Path
    algorithm: str
    scale: int

    def snippet(self) -> str:
        """The three OpenCV calls that run the file, as one line of Python."""
        return (
            f"sr = cv2.dnn_superres.DnnSuperResImpl_create(); sr.readModel({str(self.path)!r}); "
            f"sr.setModel({self.algorithm!r}, {self.scale}); out = sr.upsample(bgr)"
        )


class _FromNHWC(nn.Module):
    """Takes ``(N, H, W, C)``, runs ``model`` on ``(N, C, H, W)``; the output stays NCHW."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The permuted view has channels-last strides (with C = 1 it also counts as
        # contiguous): the convolutions would keep that memory format and the shuffles
        # take their channels-last path, traced as extra transposes. Re-stride it.
        nchw = x.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)
        out: torch.Tensor = self.model(nchw)
        return out


def dnn_superres_scale(model: nn.Module, *, probe: tuple[int, int] = (7, 5)) -> int:
    """The integer upscaling factor of a one-channel model, found by running it once.

    Raises:
        ValueError: the model does not map ``(1, 1, H, W)`` to ``(1, 1, s·H, s·W)``.
    """
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params else torch.float32
    h, w = probe
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.rand(1, 1, h, w, device=device, dtype=dtype))
    except RuntimeError as exc:
        raise ValueError(
            "dnn_superres feeds the network the Y plane only: the model must take one "
            f"channel ({str(exc).splitlines()[0]})"
        ) from None
    finally:
        model.train(was_training)
    shape = tuple(out.shape)
    scale = shape[2] // h if len(shape) == 4 else 0
    if len(shape) != 4 or shape[:2] != (1, 1) or scale < 1 or shape[2:] != (h * scale, w * scale):
        raise ValueError(
            "dnn_superres needs a model from (1, 1, H, W) to (1, 1, s·H, s·W); "
            f"({h}, {w}) gave {shape}"
        )
    return scale


def to_dnn_superres(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    algorithm: str = "espcn",
    opset: int = DEFAULT_OPSET,
    size: tuple[int, int] | None = None,
) -> DnnSuperResExport:
    """Export a Y-channel model for OpenCV 5's ``cv2.dnn_superres``, written atomically.

    Args:
        model: a one-channel network, ``(1, 1, H, W)`` in [0, 1] to ``(1, 1, s·H, s·W)``
            (e.g. from :func:`subpixel.interop.load_opencv` or ``get_model("espcn", ...)``);
            not modified.
        path: the ``.onnx`` file to write.
        algorithm: the ``setModel`` name recorded in the file's metadata, one of
            :data:`Y_ALGORITHMS` (they run the same code).
        opset: the ONNX opset (>= 11).
        size: fix the input to ``(1, H, W, 1)``; default: batch, height and width dynamic.

    Returns:
        The path, algorithm and scale. The graph's input ``"input"`` is ``(N, H, W, 1)``, its
        output ``"output"`` ``(N, 1, s·H, s·W)``; metadata ``subpixel.dnn_superres`` holds
        ``{"algorithm": ..., "scale": ...}``.

    Raises:
        ImportError: ``onnx`` is missing. ValueError: not a one-channel upscaler, a bad
        ``algorithm``, ``opset`` or ``size``.
    """
    onnx = _require("onnx")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if algorithm not in Y_ALGORITHMS:
        raise ValueError(
            f"algorithm must be one of {', '.join(Y_ALGORITHMS)} (the Y-channel path of "
            f"dnn_superres), got {algorithm!r}"
        )
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (H, W) with positive sides, got {size!r}")
    scale = dnn_superres_scale(model)
    h, w = size or (16, 16)
    dynamic = size is None
    data = export_bytes(
        model,
        (1, h, w, 1),
        opset=opset,
        input_axes={0: "batch", 1: "height", 2: "width"} if dynamic else None,
        output_axes={0: "batch", 2: "out_height", 3: "out_width"} if dynamic else None,
        blocks=DNN_SUPERRES_BLOCKS,
        wrap=_FromNHWC,
    )
    proto = onnx.load_from_string(data)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps({"algorithm": algorithm, "scale": scale})
    out = Path(path)
    atomic_write_bytes(out, proto.SerializeToString())
    return DnnSuperResExport(out, algorithm, scale)
