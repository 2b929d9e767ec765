"""TensorFlow Lite exports of the bundled ESPCN scored on Set5 by the project's protocol.

Used by ``tests/keras_backend_tests.py`` (TensorFlow backend) and runnable by hand for the
table in ``docs/keras.md``::

    SUBPIXEL_DATA=../shared/data KERAS_BACKEND=tensorflow python tests/keras_tflite_set5.py 2 3 4

Each model is scored as :func:`subpixel.evaluate.evaluate_images` scores it (Y channel,
shave = scale, MATLAB bicubic degradation, 8-bit output), so the numbers are comparable with
the model cards. The int8 calibration data are LR patches of T91 (training images), never Set5.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import torch

from subpixel.color import rgb_to_y
from subpixel.data import degrade, find_images, load_image, mod_crop
from subpixel.evaluate import super_resolve_y
from subpixel.keras.models import espcn
from subpixel.keras.tflite import calibration_inputs, export_tflite, float_parts, run_tflite
from subpixel.metrics import psnr, quantize
from subpixel.models import get_model


class NHWCModel(torch.nn.Module):
    """A function on NHWC numpy arrays seen as a PyTorch module on NCHW tensors."""

    def __init__(self, fn: Callable[[np.ndarray], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # super_resolve_y asks for its device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = np.asarray(self.fn(x.permute(0, 2, 3, 1).numpy()), dtype=np.float32)
        return torch.from_numpy(y).permute(0, 3, 1, 2)


def set5_psnr(
    models: dict[str, torch.nn.Module], images: list[torch.Tensor], scale: int
) -> dict[str, float]:
    """Mean PSNR of each model, as :func:`subpixel.evaluate.evaluate_images` scores it (the
    same steps, written out so that the LR images are made once for all the models)."""
    totals = dict.fromkeys(models, 0.0)
    for img in images:
        hr = mod_crop(img if img.shape[0] == 3 else img.expand(3, -1, -1), scale).double()
        y_lr = rgb_to_y(degrade(hr, scale)).float()
        y_hr = rgb_to_y(hr)
        for name, model in models.items():
            y_sr = quantize(super_resolve_y(model, y_lr).double())
            totals[name] += psnr(y_sr, y_hr, shave=scale)
    return {name: total / len(images) for name, total in totals.items()}


def score(
    data: Path, scale: int, *, full_int8: bool = False, with_torch: bool = True
) -> dict[str, Any]:
    """PSNR on Set5 of PyTorch, Keras, TFLite float32 and TFLite int8 (and the max deviation
    of the float32 file from Keras over the Set5 inputs). ``full_int8`` adds the fully
    integer file; ``with_torch=False`` leaves out the PyTorch model."""
    set5 = [load_image(p) for p in find_images([data / "sr" / "Set5"])]
    keras_model = espcn(scale, weights="espcn")
    rep = calibration_inputs([data / "sr" / "T91"], scale)  # 64 patches, 20 images
    out: dict[str, Any] = {"scale": scale}
    with tempfile.TemporaryDirectory() as tmp:
        f32, q8, full = (Path(tmp) / name for name in ("f32.tflite", "int8.tflite", "full.tflite"))
        start = time.process_time()
        export_tflite(keras_model, f32)
        export_tflite(
            keras_model, q8, quantize="int8", representative=rep, **float_parts(keras_model)
        )
        if full_int8:
            export_tflite(keras_model, full, quantize="int8", representative=rep)
        out["convert_cpu_s"] = round(time.process_time() - start, 1)
        deviation = [0.0]

        def f32_vs_keras(x: np.ndarray) -> np.ndarray:
            y = run_tflite(f32, x)
            ref = keras.ops.convert_to_numpy(keras_model(x))
            deviation[0] = max(deviation[0], float(np.abs(y - ref).max()))
            return y

        runs: dict[str, torch.nn.Module] = {
            "keras": NHWCModel(lambda x: keras.ops.convert_to_numpy(keras_model(x))),
            "tflite_f32": NHWCModel(f32_vs_keras),
            "tflite_int8": NHWCModel(lambda x: run_tflite(q8, x)),
        }
        if with_torch:
            runs["torch"] = get_model("espcn", scale=scale, weights="espcn")
        if full_int8:
            runs["tflite_full_int8"] = NHWCModel(lambda x: run_tflite(full, x))
        out.update(set5_psnr(runs, set5, scale))
        out["f32_max_abs_vs_keras"] = deviation[0]
        out["sizes"] = {"f32": f32.stat().st_size, "int8": q8.stat().st_size}
    return out


if __name__ == "__main__":
    root = Path(os.environ.get("SUBPIXEL_DATA", "../shared/data"))
    for arg in sys.argv[1:] or ["3"]:
        print(json.dumps(score(root, int(arg), full_int8=True)))
