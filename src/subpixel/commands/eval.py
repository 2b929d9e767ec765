"""Evaluate a model by the super-resolution protocol on folders of HR images.

Each image is mod-cropped to the scale, degraded with MATLAB-style bicubic, super-resolved
(Y channel through the model) and scored on Y with `scale` pixels shaved from each border,
next to plain bicubic upscaling.

examples:
  subpixel eval --weights DEFAULT --scale 3 --data Set5 Set14
  subpixel eval --weights runs/x3/model.safetensors --scale 3 --data Set5 --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from subpixel.bundled import names as bundled_names

_BUNDLED = ", ".join(bundled_names())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--weights",
        required=True,
        metavar="NAME|PATH",
        help=f"bundled weights ({_BUNDLED}) or a .safetensors file",
    )
    p.add_argument("--scale", type=int, required=True, help="upscaling factor")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="HR image folders")
    p.add_argument(
        "--model", default=None, help="architecture (default: the weights file's, else espcn)"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--json", action="store_true", help="print only a JSON object")


def run(args: argparse.Namespace) -> int:
    from subpixel.evaluate import evaluate_folder
    from subpixel.models import load_model

    model = load_model(args.weights, model=args.model, scale=args.scale).model
    model = model.to(args.device)
    results = {}
    for folder in args.data:
        results[Path(folder).name] = evaluate_folder(model, folder, scale=args.scale)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'data':<12} {'images':>6} {'PSNR':>7} {'SSIM':>7} {'bicubic':>8} {'SSIM':>7}")
    for name, m in results.items():
        print(
            f"{name:<12} {m['images']:>6} {m['psnr']:>7.2f} {m['ssim']:>7.4f} "
            f"{m['bicubic_psnr']:>8.2f} {m['bicubic_ssim']:>7.4f}"
        )
    return 0
