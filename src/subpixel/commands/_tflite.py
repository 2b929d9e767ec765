"""``subpixel export --format tflite``: the Keras ESPCN on TensorFlow, exported, then checked.

The weights become a :class:`subpixel.keras.models.ESPCN` (the same network in Keras, see
docs/keras.md), which :func:`subpixel.keras.tflite.export_tflite` converts; the file is then
run with TensorFlow Lite's interpreter and compared with the PyTorch model the weights load
as. Keras takes its backend when first imported, so this module picks TensorFlow for the
process (a command may; the library never does) unless ``KERAS_BACKEND`` says otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from subpixel.cli import CliError
from subpixel.models.espcn import ESPCN

#: Largest |TFLite float32 - PyTorch| accepted on inputs in [0, 1].
FLOAT_TOLERANCE = 1e-4


def export(model: nn.Module, name: str, out: Path, args: argparse.Namespace) -> None:
    """Write ``out`` from ``args.weights`` (already loaded as ``model``) and check it."""
    if not isinstance(model, ESPCN):
        raise CliError(
            f"{args.weights}: TFLite export takes ESPCN-architecture weights (every bundled "
            f"model is one); this file holds {name!r}: export it with --format onnx"
        )
    _keras_on_tensorflow()
    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice, each call
        warnings.filterwarnings("ignore", "(?s).*tf.lite.Interpreter is deprecated")
        _export(model, model.scale, out, args)


def _export(model: nn.Module, scale: int, out: Path, args: argparse.Namespace) -> None:
    from subpixel.keras.models import espcn
    from subpixel.keras.tflite import calibration_inputs, export_tflite, float_parts, tflite_ops

    keras_model = espcn(scale, weights=args.weights)
    channels = int(keras_model.channels)
    shape = _input_shape(args.static, channels)
    calibration: list[np.ndarray] = []
    if args.int8:
        calibration = calibration_inputs(args.calibration, scale, channels=channels)
        parts = float_parts(keras_model)
        export_tflite(
            keras_model,
            out,
            quantize="int8",
            representative=calibration,
            input_shape=shape,
            **parts,
        )
    else:
        export_tflite(keras_model, out, input_shape=shape)
    print(f"{out}: {' -> '.join(tflite_ops(out))}")
    if args.no_check:
        return
    if args.int8:
        db, worst = _compare(model, out, calibration)
        print(
            f"TFLite int8 vs PyTorch float32 on the {len(calibration)} calibration patches: "
            f"PSNR {db:.1f} dB, max abs difference {worst:.2e}"
        )
        return
    _, worst = _compare(model, out, _probe_inputs(args.static, channels))
    print(f"TFLite vs PyTorch: max abs difference {worst:.2e}")
    if worst > FLOAT_TOLERANCE:
        raise CliError(f"{out}: TFLite differs from PyTorch by {worst:.2e}")


def _keras_on_tensorflow() -> None:
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up notices
    try:
        import keras
    except ImportError:
        raise CliError(
            "--format tflite needs Keras 3 and TensorFlow: pip install 'subpixel[keras]' "
            "tensorflow-cpu"
        ) from None
    backend = keras.config.backend()
    if backend != "tensorflow":
        raise CliError(
            f"--format tflite needs Keras's TensorFlow backend, and KERAS_BACKEND is {backend!r}: "
            "unset it or set it to tensorflow"
        )


def _input_shape(static: list[int] | None, channels: int) -> tuple[int | None, ...]:
    """``--static N C H W`` as TFLite's N H W C; dynamic batch and sizes by default."""
    if static is None:
        return (None, None, None, channels)
    n, c, h, w = static
    if c != channels:
        raise CliError(f"--static: the model takes {channels} channel(s), got C = {c}")
    return (n, h, w, c)


def _probe_inputs(static: list[int] | None, channels: int) -> list[np.ndarray]:
    """NHWC inputs in [0, 1] for the float check: the static shape, else two sizes (one odd)."""
    rng = np.random.default_rng(0)
    if static is not None:
        n, _, h, w = static
        sizes = [(n, h, w)]
    else:
        sizes = [(1, 16, 16), (2, 17, 23)]
    return [rng.random((n, h, w, channels), dtype=np.float32) for n, h, w in sizes]


def _compare(model: nn.Module, path: Path, inputs: list[np.ndarray]) -> tuple[float, float]:
    """PSNR (dB, outputs clipped to [0, 1]) and max |difference| of the file vs ``model``."""
    from subpixel.keras.tflite import run_tflite

    squared, count, worst = 0.0, 0, 0.0
    for x in inputs:
        got = run_tflite(path, x)
        with torch.no_grad():
            want = model.eval()(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        ref: Any = want.numpy()
        worst = max(worst, float(np.abs(got - ref).max()))
        err = np.clip(got, 0, 1).astype(np.float64) - np.clip(ref, 0, 1)
        squared += float((err**2).sum())
        count += err.size
    mse = squared / max(count, 1)
    return (math.inf if mse == 0 else 10 * math.log10(1 / mse)), worst
