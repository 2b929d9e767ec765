"""Train a super-resolution model on folders of images.

LR inputs are made from the HR images with MATLAB-style bicubic downscaling (the field's
protocol), or with --degradation photo as camera and web photos are made (blur, bicubic,
bilinear or area downscaling, noise, real JPEG at quality 30-95: subpixel.degrade), so the
model learns not to sharpen JPEG blocks and noise; patches are cut, flipped and rotated at
random. Progress, validation PSNR,
checkpoints (atomic) and a log/plot go to --out; the final weights are
OUT/model.safetensors with a model card (OUT/model.md).

examples:
  subpixel train --data T91 BSDS200 --val Set5 Set14 --scale 3 --out runs/x3 --minutes 20
  subpixel train --data photos/ --scale 2 --out runs/x2 --steps 20000 --batch-size 32
  subpixel train ... --resume            # continue an interrupted run exactly
  torchrun --nproc_per_node=2 -m subpixel train ...   # data-parallel
  subpixel train --model subpixel-faces --data img_align_celeba --crop 128 --out runs/faces
  subpixel train --faces --model repsr --option features=32 --data lfw --split lfw ...  # faces
  subpixel train --model repsr --option features=16 --option blocks=8 --loss l1 \
      --finetune-mse-fraction 0.2 --ema 0.999 ...   # saved collapsed, as an espcn
  subpixel train ... --degradation photo --init-from runs/x3/model.safetensors  # photo model
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from subpixel.cli import CliError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="training folders")
    p.add_argument(
        "--scale", type=int, choices=(2, 3, 4), help="upscaling factor (subpixel-faces: 4)"
    )
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--model", default="espcn", help="architecture (default: espcn)")
    p.add_argument("--val", nargs="+", default=[], metavar="DIR", help="validation folders")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="train for about M minutes")
    budget.add_argument(
        "--steps",
        type=int,
        help="train for N steps (default 10000; with --resume: as recorded, or a new length)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="patches per step (default 64)")
    p.add_argument(
        "--patch-size", type=int, default=17, help="LR patch size; HR is ×scale (default 17)"
    )
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (Adam, cosine)")
    p.add_argument("--loss", choices=("mse", "l1"), default="mse", help="loss (default mse)")
    p.add_argument("--activation", default=None, help="model activation (espcn: tanh, relu...)")
    p.add_argument(
        "--residual",
        choices=("bicubic",),
        default=None,
        help="espcn: add bicubic upscaling of the input to the output (learn the detail only)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model option, VALUE as JSON or a string (repsr: features=16, blocks=8, expand=2)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="validate and save an exponential moving average of the weights (e.g. 0.999)",
    )
    p.add_argument(
        "--finetune-mse-fraction",
        type=float,
        default=0.0,
        metavar="F",
        help="train the last fraction F of the steps with MSE (after --loss l1, say)",
    )
    p.add_argument(
        "--degradation",
        choices=("clean", "photo", "jpeg"),
        default="clean",
        type=str.lower,
        help="how LR inputs are made: clean (MATLAB bicubic, the protocol; default), photo "
        "(random blur, downscaler, noise and JPEG per patch) or jpeg (web JPEGs: no blur, "
        "light noise; the bundled photo weights'); see subpixel.degrade",
    )
    p.add_argument(
        "--degradation-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one field of the --degradation preset, VALUE as JSON "
        "(e.g. blur_prob=0.1, jpeg_quality=[40,95]; fields: subpixel.degrade.DegradationConfig)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--val-every", type=int, default=1000, help="validate every N steps")
    p.add_argument("--checkpoint-every", type=int, default=500, help="checkpoint every N steps")
    p.add_argument(
        "--init-from",
        metavar="WEIGHTS",
        help="start from the fitting tensors of a .safetensors (a run's model or checkpoint); "
        "the commands that made it go on this run's card",
    )
    p.add_argument("--no-scale-augment", action="store_true", help="no 0.6-0.9 HR downscaling")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    faces = p.add_argument_group(
        "faces: 4× RGB face models on whole 32×32 -> 128×128 centre crops "
        "(subpixel.applications.faces_training)"
    )
    faces.add_argument(
        "--faces",
        action="store_true",
        help="train --model repsr/espcn with the faces trainer (implied by subpixel-faces)",
    )
    faces.add_argument(
        "--crop", type=int, default=128, help="centre crop before 128×128 -> 32×32 (default 128)"
    )
    faces.add_argument(
        "--sample-every", type=int, default=500, help="write a sample grid every N steps"
    )
    faces.add_argument(
        "--split",
        choices=("lfw",),
        help="train on the training people of the person split, validate on the held-out",
    )
    faces.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flips, scale/shift/colour jitter (default: off for subpixel-faces, else on)",
    )
    faces.add_argument(
        "--beta1", type=float, help="Adam beta1 (default: 0.5 for subpixel-faces, else 0.9)"
    )


def parse_options(items: list[str], flag: str = "--option") -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict; a VALUE that parses as JSON is taken as JSON.

    Example:
        >>> parse_options(["features=16", "activation=relu", "kernels=[3, 3]"])
        {'features': 16, 'activation': 'relu', 'kernels': [3, 3]}
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _run_faces(args: argparse.Namespace) -> int:
    import torch

    from subpixel.applications.faces_training import FacesConfig, train_faces

    if args.scale not in (None, 4):
        raise CliError(f"--scale {args.scale}: the faces trainer upscales by 4 only")
    if getattr(args, "degradation", "clean") != "clean" or args.degradation_option:
        raise CliError("--degradation: the faces trainer uses the project's bicubic only")
    if args.threads:
        torch.set_num_threads(args.threads)
    argv = getattr(args, "_argv", None) or sys.argv[1:]
    options = parse_options(args.option)
    if args.activation:
        options["activation"] = args.activation
    if args.residual:
        options["residual"] = args.residual
    try:
        cfg = FacesConfig(
            data=tuple(args.data),
            out=args.out,
            crop=args.crop,
            steps=args.steps,
            minutes=args.minutes,
            batch_size=args.batch_size,
            lr=args.lr if any(a == "--lr" or a.startswith("--lr=") for a in argv) else None,
            beta1=args.beta1,
            sample_every=args.sample_every,
            checkpoint_every=args.checkpoint_every,
            seed=args.seed,
            device=args.device,
            resume=args.resume,
            progress=not args.no_progress,
            command=shlex.join(["subpixel", *argv]),
            model=args.model,
            model_options=options,
            split=args.split,
            val_every=args.val_every,
            loss=args.loss,
            finetune_mse_fraction=args.finetune_mse_fraction,
            ema=args.ema,
            augment=args.augment,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    result = train_faces(cfg)
    print(
        f"weights: {result.model_path}  ({result.steps} steps, {result.seconds / 60:.1f} min, "
        f"loss {result.first_loss:.4g} -> {result.last_loss:.4g})"
    )
    print(f"samples: {result.samples[-1].parent}")
    for name, m in result.metrics.items():
        print(f"  held-out {name}: PSNR RGB {m['psnr_rgb']:.2f} dB, Y {m['psnr_y']:.2f} dB")
    return 0


def run(args: argparse.Namespace) -> int:
    import torch

    from subpixel.train import TrainConfig, train

    if args.model == "subpixel-faces" or args.faces:
        return _run_faces(args)
    if args.scale is None:
        raise CliError(f"--scale is required for model {args.model!r}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available")
    options = parse_options(args.option)
    if args.activation:
        options["activation"] = args.activation
    if args.residual:
        options["residual"] = args.residual
    argv = getattr(args, "_argv", None) or sys.argv[1:]
    cfg = TrainConfig(
        data=tuple(args.data),
        scale=args.scale,
        out=args.out,
        model=args.model,
        model_options=options,
        val=tuple(args.val),
        steps=args.steps if args.steps or args.minutes or args.resume else 10000,
        minutes=args.minutes,
        batch_size=args.batch_size,
        patch=args.patch_size,
        lr=args.lr,
        loss=args.loss,
        seed=args.seed,
        device=args.device,
        val_every=args.val_every,
        checkpoint_every=args.checkpoint_every,
        augment_scales=() if args.no_scale_augment else (0.9, 0.8, 0.7, 0.6),
        init_from=args.init_from,
        ema=args.ema,
        finetune_mse_fraction=args.finetune_mse_fraction,
        degradation=args.degradation,
        degradation_options=parse_options(args.degradation_option, "--degradation-option"),
        resume=args.resume,
        progress=not args.no_progress,
        command=shlex.join(["subpixel", *argv]),
    )
    result = train(cfg)
    if not result.main_process:
        return 0
    print(f"weights: {result.model_path}  ({result.steps} steps, {result.seconds / 60:.1f} min)")
    for name, m in result.metrics.items():
        print(f"  {name}: PSNR {m['psnr']:.2f} dB (bicubic {m['bicubic_psnr']:.2f})")
    return 0
