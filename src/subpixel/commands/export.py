"""Export a model to ONNX or TensorFlow Lite, then check the file against PyTorch.

ONNX: the network as get_model returns it, with dynamic height and width. The graph takes
"input" (N, C, H, W) floats in [0, 1] and gives "output" (N, C, s·H, s·W). Shuffles in
PyTorch's order become DepthToSpace (mode CRD), TensorFlow's order DepthToSpace (DCR);
other orders are exported as reshape/transpose. When onnxruntime is installed the
file is checked against PyTorch on a few input sizes (odd ones included) and the largest
difference is printed. Needs 'subpixel[onnx]'.

--for dnn_superres writes a file for OpenCV 5's cv2.dnn_superres.DnnSuperResImpl (readModel
then setModel("espcn", scale)), which feeds the Y plane as NHWC (1, H, W, 1) and reads the
output as NCHW (1, 1, sH, sW): the graph takes "input" (N, H, W, 1) and gives "output"
(N, 1, sH, sW). One-channel models only (ESPCN, FSRCNN, imported OpenCV models).

--format tflite (the default for a .tflite output) writes TensorFlow Lite through Keras's
TensorFlow backend: builtin operators only, NHWC "input" (N, H, W, C) with dynamic sizes.
ESPCN-architecture weights only (every bundled model). --int8 quantises weights and
activations, calibrated on LR patches cut from --calibration images (training images,
never test images); an ESPCN's fixed bicubic skip stays float32 (docs/keras.md: fully
integer it costs 0.1-0.2 dB on Set5). The file is run with TFLite's interpreter and
compared with PyTorch: float32 must agree within 1e-4; for int8 the PSNR between the two
on the calibration patches is printed. Needs 'subpixel[keras]' and tensorflow.

examples:
  subpixel export --weights DEFAULT --scale 3 --format onnx -o espcn_x3.onnx
  subpixel export --weights fsrcnn_x2.safetensors --format onnx -o fsrcnn_x2.onnx --opset 13
  subpixel export --weights runs/x4/model.safetensors --format onnx -o m.onnx --static 1 1 64 64
  subpixel export --weights espcn_x3.safetensors --for dnn_superres -o ESPCN_x3.onnx
  subpixel export --weights DEFAULT --scale 2 -o espcn_x2.tflite
  subpixel export --weights photo --scale 4 -o photo_x4_int8.tflite --int8 --calibration T91/
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from subpixel.bundled import names as bundled_names
from subpixel.cli import CliError

#: What ``--format`` takes.
FORMATS = ("onnx", "tflite")
#: ``--opset`` when not given.
DEFAULT_OPSET = 17

if TYPE_CHECKING:
    from torch import nn


_BUNDLED = ", ".join(bundled_names())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        required=True,
        metavar="NAME|PATH",
        help=f"weights to export: bundled ({_BUNDLED}) or a .safetensors file",
    )
    p.add_argument("--scale", type=int, help="upscaling factor (default: the weights file's)")
    p.add_argument(
        "--model", default=None, help="architecture (default: the weights file's, else espcn)"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="output format (default: tflite for a .tflite output, else onnx)",
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--opset", type=int, default=None, help=f"ONNX opset, >= 11 (default {DEFAULT_OPSET})"
    )
    p.add_argument(
        "--static",
        type=int,
        nargs=4,
        metavar=("N", "C", "H", "W"),
        help="fix the input shape instead of dynamic batch, height and width (N C H W also "
        "for TFLite, whose input is N H W C)",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="tflite: int8 weights and activations (needs --calibration)",
    )
    p.add_argument(
        "--calibration",
        nargs="+",
        metavar="DIR",
        help="tflite --int8: training images (folders or files) to calibrate on; the first "
        "20 are used, 64 random LR patches of 32x32",
    )
    p.add_argument(
        "--for",
        dest="target",
        choices=("any", "dnn_superres"),
        default="any",
        help="the layout: any (NCHW in and out, default) or dnn_superres (OpenCV 5's "
        "DnnSuperResImpl: NHWC (N, H, W, 1) in, NCHW out; one-channel models)",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="skip the comparison with PyTorch (onnxruntime, TFLite)",
    )


def output_format(args: argparse.Namespace) -> str:
    """``--format``, else the output's suffix decides; options of the other format refused."""
    fmt = args.format or ("tflite" if Path(args.output).suffix.lower() == ".tflite" else "onnx")
    given = {
        "onnx": [("--opset", args.opset is not None), ("--for", args.target != "any")],
        "tflite": [("--int8", args.int8), ("--calibration", args.calibration is not None)],
    }
    for other, options in given.items():
        wrong = [name for name, on in options if on and other != fmt]
        if wrong:
            raise CliError(f"{', '.join(wrong)}: for --format {other}, not {fmt}")
    if args.int8 and not args.calibration:
        raise CliError("--int8 needs --calibration DIR: training images to calibrate on")
    if args.calibration and not args.int8:
        raise CliError("--calibration is for --int8 exports")
    return fmt


def run(args: argparse.Namespace) -> int:
    from subpixel.models import load_model

    fmt = output_format(args)
    out = Path(args.output)
    if not out.parent.is_dir():
        raise CliError(f"{out}: folder {out.parent} does not exist")
    if out.exists() and not args.overwrite:
        raise CliError(f"{out}: exists (use --overwrite to replace it)")
    config = {} if args.scale is None else {"scale": args.scale}
    model, name, _ = load_model(args.weights, model=args.model, **config)
    if fmt == "tflite":
        from subpixel.commands._tflite import export

        export(model, name, out, args)
        return 0
    return _onnx(model, name, out, args)


def _onnx(model: nn.Module, name: str, out: Path, args: argparse.Namespace) -> int:
    from subpixel.interop.onnx_export import check_onnx, onnx_ops, to_onnx

    opset = DEFAULT_OPSET if args.opset is None else args.opset
    superres = args.target == "dnn_superres"
    snippet = None
    try:
        if superres:
            snippet = _export_dnn_superres(model, out, name, opset, args.static)
        else:
            to_onnx(
                model,
                out,
                opset=opset,
                dynamic=args.static is None,
                input_shape=tuple(args.static) if args.static else None,
            )
    except ImportError as exc:
        raise CliError(str(exc)) from None
    print(f"{out}: {' -> '.join(onnx_ops(out))}")
    if not args.no_check:
        try:
            sizes = ((args.static[2], args.static[3]),) if args.static else ((16, 16), (17, 23))
            batch = args.static[0] if args.static else 2
            diff = check_onnx(model, out, sizes, batch=batch, channels_last=superres)
        except ImportError:
            print("onnxruntime is not installed: not checked (pip install 'subpixel[onnx]')")
        else:
            print(f"onnxruntime vs PyTorch: max abs difference {diff:.2e}")
            if diff > 1e-4:
                raise CliError(f"{out}: onnxruntime differs from PyTorch by {diff:.2e}")
    if snippet:
        print(f"OpenCV 5: {snippet}")
    return 0


def _export_dnn_superres(
    model: nn.Module, out: Path, name: str, opset: int, static: list[int] | None
) -> str:
    """``--for dnn_superres``: write the NHWC-input file; returns the OpenCV calls to run it."""
    from subpixel.interop.opencv_onnx import Y_ALGORITHMS, to_dnn_superres

    size = None
    if static:
        n, c, h, w = static
        if (n, c) != (1, 1):
            raise CliError(f"--for dnn_superres: --static must be 1 1 H W, got {n} {c} {h} {w}")
        size = (h, w)
    algorithm = name if name in Y_ALGORITHMS else "espcn"
    try:
        info = to_dnn_superres(model, out, algorithm=algorithm, opset=opset, size=size)
    except ValueError as exc:
        raise CliError(
            f"--for dnn_superres: {exc}; use a plain export with cv2.dnn.readNetFromONNX"
        ) from None
    return info.snippet()
