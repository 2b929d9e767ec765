"""Sub-pixel versus transposed convolution: train one configuration and measure it.

Reads the MNIST-format idx files (gzipped) from --data, default $SUBPIXEL_DATA/<dataset>;
writes result.json (flat keys: params, seconds_per_epoch, checkerboard_init,
checkerboard_final, test_mse, test_psnr, ...), PNG grids and the weights into --out, and
prints a table. Runs single-threaded unless --threads says otherwise; --seed makes a run
reproducible. The checkerboard score is defined in docs/applications.md.

examples:
  subpixel experiment autoencoder --dataset mnist --decoder subpixel --epochs 3 --seed 0
  subpixel experiment autoencoder --dataset fashion-mnist --decoder transposed --limit 20000
  subpixel experiment dcgan --dataset fashion-mnist --upsampler subpixel --epochs 3 --limit 10000
  python benchmarks/run_applications.py      # the whole grid, several seeds, and the tables
  subpixel experiment faces --weights runs/faces_repsr/model.safetensors \
      --original runs/faces_original/model.safetensors --out runs/faces_eval

The faces experiment trains nothing: it scores 4× face super-resolution on the held-out
people of the LFW person split (default data $SUBPIXEL_DATA/faces/lfw; 128×128 centre crops,
32×32 input by MATLAB bicubic, PSNR/SSIM in RGB and Y with 4 pixels shaved) for bicubic, the
DEFAULT general ×4 model, the original model and a face model, and writes result.json and
grid.png (input | bicubic | DEFAULT | original | ours | ground truth).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from subpixel.cli import CliError

_SHOWN = {
    "autoencoder": (
        "params",
        "seconds_per_epoch",
        "test_mse",
        "test_psnr",
        "checkerboard_init",
        "checkerboard_final",
        "checkerboard_data",
    ),
    "dcgan": (
        "params",
        "seconds_per_epoch",
        "d_loss_final",
        "g_loss_final",
        "swd_final",
        "swd_data",
        "checkerboard_init",
        "checkerboard_final",
        "checkerboard_data",
    ),
}


def _common(p: argparse.ArgumentParser, default_dataset: str | None) -> None:
    from subpixel.applications.experiments import DATASETS

    p.add_argument(
        "--dataset",
        choices=DATASETS,
        required=default_dataset is None,
        default=default_dataset,
        help="which idx data set" + (f" (default {default_dataset})" if default_dataset else ""),
    )
    p.add_argument("--epochs", type=int, default=None, help="passes over the training set")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="output folder (default subpixel-experiments/NAME)")
    p.add_argument("--data", metavar="DIR", help="idx folder (default $SUBPIXEL_DATA/<dataset>)")
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N training images")
    p.add_argument("--test-limit", type=int, metavar="N", help="use only the first N test images")
    p.add_argument("--batch-size", type=int, default=None, help="images per step")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    ae = sub.add_parser(
        "autoencoder",
        help="MNIST conv autoencoder, sub-pixel or transposed decoder",
        description="Train the autoencoder; report test MSE/PSNR, time and checkerboard.",
    )
    _common(ae, None)
    ae.add_argument("--decoder", choices=("subpixel", "transposed"), required=True)
    ae.add_argument("--latent", type=int, default=64, help="code size (default 64)")
    gan = sub.add_parser(
        "dcgan",
        help="DCGAN on 28×28 images, sub-pixel or transposed generator",
        description="Train the DCGAN; report losses, sliced Wasserstein distance, time and "
        "checkerboard of fixed-noise samples.",
    )
    _common(gan, "fashion-mnist")
    gan.add_argument("--upsampler", choices=("subpixel", "transposed"), required=True)
    faces = sub.add_parser(
        "faces",
        help="4× face super-resolution on held-out people: bicubic, DEFAULT, original, ours",
        description="Score bicubic, the DEFAULT general ×4 model, the original project's face "
        "model and a face model on the held-out people of the LFW person split; write "
        "result.json and grid.png.",
    )
    faces.add_argument(
        "--data", metavar="DIR", help="face folder (default $SUBPIXEL_DATA/faces/lfw)"
    )
    faces.add_argument(
        "--out", metavar="DIR", help="output folder (default subpixel-experiments/faces)"
    )
    faces.add_argument("--weights", metavar="PATH", help="the face model (.safetensors) to score")
    faces.add_argument("--original", metavar="PATH", help="a subpixel-faces weights file")
    faces.add_argument(
        "--split",
        choices=("lfw", "none"),
        default="lfw",
        help="lfw: the held-out people (default); none: every image of --data",
    )
    faces.add_argument("--crop", type=int, default=128, help="centre crop before 128×128")
    faces.add_argument("--every", type=int, default=1, help="keep every N-th image")
    faces.add_argument("--limit", type=int, metavar="N", help="keep at most N images")
    faces.add_argument("--grid", type=int, default=8, help="faces in grid.png (default 8)")
    faces.add_argument("--no-default", action="store_true", help="skip the DEFAULT ×4 model")
    faces.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    names = ("epochs", "batch_size", "lr")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _run_faces(args: argparse.Namespace, command: str) -> int:
    from subpixel.applications.faces_eval import (
        FacesExperimentConfig,
        run_faces_experiment,
        summary,
    )

    try:
        cfg = FacesExperimentConfig(
            data=args.data,
            out=args.out,
            weights=args.weights,
            original=args.original,
            split=args.split,
            crop=args.crop,
            every=args.every,
            limit=args.limit,
            default=not args.no_default,
            grid=args.grid,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    result = run_faces_experiment(cfg, command=command)
    print(f"faces: {result['images']} images of {result['people']} people ({result['split']})")
    print(summary(result))
    print(f"results: {args.out or 'subpixel-experiments/faces'}/result.json")
    return 0


def run(args: argparse.Namespace) -> int:
    import torch

    from subpixel.applications.experiments import (
        AutoencoderConfig,
        DCGANConfig,
        run_autoencoder,
        run_dcgan,
    )

    if args.threads is not None:
        if args.threads < 1:
            raise CliError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    argv = getattr(args, "_argv", None) or sys.argv[1:]
    command = shlex.join(["subpixel", *argv])
    if args.experiment == "faces":
        return _run_faces(args, command)
    common = {
        "dataset": args.dataset,
        "seed": args.seed,
        "out": args.out,
        "data": args.data,
        "limit": args.limit,
        "test_limit": args.test_limit,
        "progress": not args.no_progress,
        **_options(args),
    }
    if args.experiment == "autoencoder":
        cfg = AutoencoderConfig(decoder=args.decoder, latent=args.latent, **common)
        result = run_autoencoder(cfg, command=command)
        name, variant = cfg.name, cfg.decoder
    else:
        gcfg = DCGANConfig(upsampler=args.upsampler, **common)
        result = run_dcgan(gcfg, command=command)
        name, variant = gcfg.name, gcfg.upsampler
    print(f"{name}: {result['epochs']} epoch(s) on {result['train_images']} images ({variant})")
    for key in _SHOWN[args.experiment]:
        value = result[key]
        text = f"{value:,}" if isinstance(value, int) else f"{value:.6g}"
        print(f"  {key:<20} {text}")
    out = args.out or f"subpixel-experiments/{name}"
    print(f"results: {out}/result.json")
    return 0
