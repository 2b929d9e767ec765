"""Train an ESPCN in Keras 3 on a folder of images, with ``model.fit``, on any backend.

Patches are cut as ``subpixel train`` cuts them (Y channel, MATLAB bicubic degradation,
random flips and rotations: ``subpixel.data.PatchSampler``); the model is
``subpixel.keras.models.ESPCN`` (ReLU, bicubic residual, TensorFlow's shuffle order). The
result saves as ``.keras`` and, with ``--torch-out``, as a PyTorch weights file that
``subpixel upscale --weights`` takes.

    KERAS_BACKEND=jax python examples/keras_espcn.py --data ../shared/data/sr/T91 --steps 2000
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import torch

from subpixel.data import PatchSampler, find_images, load_image
from subpixel.keras.models import espcn
from subpixel.keras.weights import save_torch


def patches(
    folders: Sequence[Path], *, scale: int, patch: int, count: int, limit: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random (LR, HR) Y patches as float32 NHWC arrays."""
    paths = find_images(folders)[:limit]
    sampler = PatchSampler([load_image(p) for p in paths], scale=scale, patch=patch)
    lr, hr = sampler.batch(count, torch.Generator().manual_seed(seed))
    return lr.permute(0, 2, 3, 1).numpy(), hr.permute(0, 2, 3, 1).numpy()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    default = Path(os.environ.get("SUBPIXEL_DATA", "../shared/data")) / "sr" / "T91"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, nargs="+", default=[default], help="image folders")
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--patch", type=int, default=17, help="LR patch size (paper: 17)")
    p.add_argument("--limit-images", type=int, help="use only the first N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="save the trained model here (.keras)")
    p.add_argument("--torch-out", type=Path, help="save PyTorch weights here (.safetensors)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    lr, hr = patches(
        args.data,
        scale=args.scale,
        patch=args.patch,
        count=args.steps * args.batch_size,
        limit=args.limit_images,
        seed=args.seed,
    )
    model = espcn(args.scale, activation="relu", residual="bicubic")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    history = model.fit(lr, hr, batch_size=args.batch_size, epochs=1, verbose=0)
    loss = history.history["loss"][-1]
    print(f"ESPCN x{args.scale} on {keras.config.backend()}: loss {loss:.6f}, {args.steps} steps")
    if args.out:
        model.save(args.out)
        print(f"saved {args.out}")
    if args.torch_out:
        save_torch(model, args.torch_out)
        print(f"saved {args.torch_out} (subpixel upscale --weights {args.torch_out})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
