"""Super-resolution of degraded photos: PSNR/SSIM when the LR input is JPEG-compressed or noisy.

The SR protocol (``subpixel eval``) with the LR input degraded further, as camera and web
photos are. For every HR image of each set (Set5, Set14): replicate grey to RGB, mod-crop to
the scale, make the protocol's LR (MATLAB-style antialiased bicubic, 8-bit levels:
:func:`subpixel.data.degrade`), then one LR input per **condition**:

``clean``
    that LR as is (the protocol; shows the cost of a photo model on clean inputs);
``jpeg Q`` (Q = 90, 70, 50 by default)
    that LR saved as JPEG at quality Q by Pillow, 4:2:0 chroma subsampling, in memory, and
    decoded (:func:`subpixel.degrade.jpeg`);
``noise σ`` (σ = 5/255 by default)
    that LR plus zero-mean Gaussian noise of standard deviation σ, independent per R, G, B
    pixel (:func:`subpixel.degrade.add_noise`), then clamped and rounded to 8-bit levels.
    The generator is seeded per image (``numpy.random.default_rng([seed, scale,
    crc32(set/file)])``), so every method sees the same noisy LR and runs are repeatable.

Methods, each given the same degraded ``uint8`` RGB LR image:

``bicubic``
    MATLAB-style bicubic upscaling of the RGB LR (:func:`subpixel.resize.imresize`), as
    ``subpixel eval``'s bicubic column;
``NAME=WEIGHTS`` (``--weights``, any number)
    ``subpixel.Upscaler(WEIGHTS, scale)`` on the RGB LR, as an application calls it: the
    model on Y, chroma by the pipeline (bicubic), RGB ``uint8`` out. ``WEIGHTS`` is a bundled
    name (``DEFAULT``, ``espcn``...) or a ``.safetensors`` path; ``{scale}`` in it is replaced
    by the scale (``photo=runs/photo_x{scale}/model.safetensors``).

Scores: PSNR and SSIM on the BT.601 studio-range Y channel (of the 8-bit RGB output,
rounded to 8-bit levels, as ``subpixel eval``'s bicubic column) against the HR image's Y,
``scale`` pixels shaved from every border (:mod:`subpixel.metrics`); the mean over the
images of a set. Note: ``subpixel eval`` runs a model on the Y of the LR and scores its
Y output; here the model gets the RGB image and the score is on the Y of the RGB result,
whose rounding to 8-bit RGB moves PSNR by a few hundredths of a dB. The script prints both
for the clean condition (``subpixel eval`` column of the check lines), so the two tables
can be tied together.

Gains: the last ``--weights`` method (``--gain-of``, e.g. ``photo``) minus every other
method, in PSNR dB; the issue 17 targets are checked when methods called ``DEFAULT`` and
``photo`` are present.

Run (idle machine, 2 threads; a few minutes):
    SUBPIXEL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_photo.py \\
        --weights DEFAULT=DEFAULT photo=runs/photo_x{scale}/model.safetensors \\
        --json bench_photo.json
Quick check:
    ... --scales 3 --sets Set5 --weights DEFAULT=DEFAULT photo=espcn
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_espcn.py

import argparse
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from _common import (
    add_weights_option,
    data_root,
    parse_specs,
    resolve_weights,
    run_header,
    to_uint8_hwc,
)

#: The issue 17 targets: JPEG 50 and 70, photo >= +0.5 dB over bicubic and DEFAULT;
#: clean, photo >= DEFAULT - 0.5 dB.
TARGET_JPEG_GAIN = 0.5
TARGET_JPEG_QUALITIES = (50, 70)
TARGET_CLEAN_LOSS = 0.5


@dataclass(frozen=True)
class Condition:
    """One way of degrading the protocol's LR image further."""

    name: str  # "clean", "jpeg70", "noise5"
    label: str  # for tables
    jpeg: int | None = None
    noise: float | None = None  # sigma in 0-255 units


def conditions(qualities: list[int], sigmas: list[float]) -> list[Condition]:
    """``clean``, then JPEG from the highest quality down, then noise."""
    out = [Condition("clean", "clean (bicubic LR)")]
    out += [Condition(f"jpeg{q}", f"JPEG q{q}", jpeg=q) for q in sorted(qualities, reverse=True)]
    out += [Condition(f"noise{s:g}", f"noise σ={s:g}/255", noise=s) for s in sigmas]
    return out


def degraded_lr(lr: torch.Tensor, cond: Condition, rng: np.random.Generator) -> torch.Tensor:
    """``lr`` (RGB ``(3, h, w)`` float64 on 8-bit levels) degraded by ``cond``; 8-bit levels."""
    from subpixel.degrade import add_noise, jpeg
    from subpixel.metrics import quantize

    if cond.jpeg is not None:
        return jpeg(lr, cond.jpeg)
    if cond.noise is not None:
        return quantize(add_noise(lr, "gaussian", cond.noise, grey=False, rng=rng))
    return lr


def y_of_uint8(rgb: np.ndarray) -> torch.Tensor:
    """Y (``(1, H, W)`` float64, rounded to 8-bit levels) of a uint8 ``(H, W, 3)`` image."""
    from subpixel.color import rgb_to_y
    from subpixel.metrics import quantize

    x = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float64) / 255.0)
    return quantize(rgb_to_y(x))


def set_folders(args: argparse.Namespace) -> list[Path]:
    if args.data:
        return [Path(d) for d in args.data]
    root = data_root() / "sr"
    return [root / s for s in args.sets]


def run_scale(
    scale: int,
    folders: list[Path],
    conds: list[Condition],
    methods: dict[str, str],
    args: argparse.Namespace,
) -> dict:
    """Every set × condition × method at ``scale``: means and per-image scores."""
    from subpixel.color import rgb_to_y
    from subpixel.data import degrade, find_images, load_image, mod_crop
    from subpixel.evaluate import super_resolve_y
    from subpixel.metrics import psnr, quantize, ssim
    from subpixel.resize import imresize
    from subpixel.upscale import Upscaler, load_upscaling_model

    ups = {
        name: Upscaler(resolve_weights(w, scale), scale, precision=args.precision)
        for name, w in methods.items()
    }
    # The Y-only models of `subpixel eval`, for the clean check.
    y_models = {
        name: load_upscaling_model(resolve_weights(w, scale), scale)[0]
        for name, w in methods.items()
    }
    for m in y_models.values():
        m.eval()
    names = ["bicubic", *methods]
    result: dict = {
        "sets": {},
        "backends": {n: f"{up.backend.name} ({up.backend.kernels})" for n, up in ups.items()},
    }
    for folder in folders:
        paths = find_images([folder])[: args.limit or None]
        per_image: list[dict] = []
        eval_check = {n: 0.0 for n in methods}
        for path in paths:
            img = load_image(path)
            img = img if img.shape[0] == 3 else img.expand(3, -1, -1)
            hr = mod_crop(img, scale).double()
            y_hr = rgb_to_y(hr)
            lr = degrade(hr, scale)
            key = f"{folder.name}/{path.name}"
            for n, model in y_models.items():
                y_sr = quantize(super_resolve_y(model, rgb_to_y(lr).float()).double())
                eval_check[n] += psnr(y_sr, y_hr, shave=scale) / len(paths)
            row: dict = {"image": key, "scores": {}}
            for cond in conds:
                rng = np.random.default_rng([args.seed, scale, zlib.crc32(key.encode())])
                lr_c = degraded_lr(lr, cond, rng)
                lr_u8 = to_uint8_hwc(lr_c)
                outs = {"bicubic": to_uint8_hwc(quantize(imresize(lr_c, float(scale))))}
                for n, up in ups.items():
                    outs[n] = up(lr_u8)
                scores = {}
                for n in names:
                    y_sr = y_of_uint8(outs[n])
                    scores[n] = {
                        "psnr": psnr(y_sr, y_hr, shave=scale),
                        "ssim": ssim(y_sr, y_hr, shave=scale),
                    }
                row["scores"][cond.name] = scores
            per_image.append(row)
        means = {
            c.name: {
                n: {
                    k: float(np.mean([r["scores"][c.name][n][k] for r in per_image]))
                    for k in ("psnr", "ssim")
                }
                for n in names
            }
            for c in conds
        }
        result["sets"][folder.name] = {
            "images": len(per_image),
            "means": means,
            "subpixel_eval_clean_psnr": eval_check,
            "per_image": per_image,
        }
    return result


def markdown(scale: int, res: dict, conds: list[Condition], names: list[str], gain_of: str | None):
    others = [n for n in names if n != gain_of] if gain_of else []
    head = ["set", "LR input", *(f"{n} PSNR / SSIM" for n in names)]
    head += [f"{gain_of} − {o}" for o in others]
    lines = [f"### ×{scale}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for set_name, s in res["sets"].items():
        for c in conds:
            m = s["means"][c.name]
            cells = [f"{set_name}", c.label]
            cells += [f"{m[n]['psnr']:.2f} / {m[n]['ssim']:.4f}" for n in names]
            cells += [f"{m[gain_of]['psnr'] - m[o]['psnr']:+.2f}" for o in others]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(scale: int, res: dict) -> list[str]:
    """Issue 17's targets for methods named ``photo`` and ``DEFAULT``."""
    out = []
    for set_name, s in res["sets"].items():
        m = s["means"]
        for q in TARGET_JPEG_QUALITIES:
            if f"jpeg{q}" not in m:
                continue
            g = {
                o: m[f"jpeg{q}"]["photo"]["psnr"] - m[f"jpeg{q}"][o]["psnr"]
                for o in ("bicubic", "DEFAULT")
            }
            ok = min(g.values()) >= TARGET_JPEG_GAIN
            out.append(
                f"- ×{scale} {set_name} JPEG q{q}: photo − bicubic {g['bicubic']:+.2f}, "
                f"photo − DEFAULT {g['DEFAULT']:+.2f} dB (target ≥ +{TARGET_JPEG_GAIN}): "
                f"{'met' if ok else 'NOT met'}"
            )
        d = m["clean"]["photo"]["psnr"] - m["clean"]["DEFAULT"]["psnr"]
        out.append(
            f"- ×{scale} {set_name} clean: photo − DEFAULT {d:+.2f} dB "
            f"(target ≥ −{TARGET_CLEAN_LOSS}): {'met' if d >= -TARGET_CLEAN_LOSS else 'NOT met'}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], choices=(2, 3, 4))
    add_weights_option(
        p,
        "--weights",
        ["DEFAULT=DEFAULT"],
        "methods besides bicubic: bundled name or .safetensors path, {scale} substituted "
        "(default: DEFAULT=DEFAULT)",
        nargs="*",
    )
    p.add_argument("--sets", nargs="+", default=["Set5", "Set14"], help="under $SUBPIXEL_DATA/sr")
    p.add_argument("--data", nargs="+", metavar="DIR", help="HR folders (instead of --sets)")
    p.add_argument("--jpeg", type=int, nargs="*", default=[50, 70, 90], help="JPEG qualities")
    p.add_argument("--noise", type=float, nargs="*", default=[5.0], help="σ in 0-255 units")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("auto", "fp32", "bf16", "int8"),
        help="Upscaler precision (default fp32: the exact model)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="first N images per set (0: all)")
    p.add_argument("--gain-of", default=None, help="method whose gains are shown (default: last)")
    p.add_argument("--json", type=Path, help="write all scores (means and per image) here")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    methods = parse_specs(args.weights, "--weights", taken=("bicubic",))
    names = ["bicubic", *methods]
    gain_of = args.gain_of or (list(methods)[-1] if methods else None)
    if gain_of is not None and gain_of not in names:
        raise SystemExit(f"--gain-of {gain_of!r}: not one of {names}")
    for s in args.scales:  # fail early on a missing file
        for w in methods.values():
            resolve_weights(w, s)
    folders = set_folders(args)
    conds = conditions(args.jpeg, args.noise)
    start = time.perf_counter()
    print(f"{run_header(args.threads)}, precision {args.precision}, seed {args.seed}")
    print("methods: " + ", ".join(f"{n} = {w}" for n, w in methods.items()))
    report: dict = {
        "protocol": "Y PSNR/SSIM, shave=scale; LR = MATLAB bicubic, then the condition",
        "conditions": {c.name: c.label for c in conds},
        "methods": methods,
        "precision": args.precision,
        "seed": args.seed,
        "scales": {},
    }
    for s in args.scales:
        res = run_scale(s, folders, conds, methods, args)
        report["scales"][str(s)] = res
        print()
        print(markdown(s, res, conds, names, gain_of))
        print()
        for set_name, st in res["sets"].items():
            for n, v in st["subpixel_eval_clean_psnr"].items():
                rgb = st["means"]["clean"][n]["psnr"]
                print(
                    f"check ×{s} {set_name} {n}: clean PSNR here {rgb:.3f}, subpixel eval "
                    f"(model on Y) {v:.3f} ({rgb - v:+.3f} dB); backend {res['backends'][n]}"
                )
        if {"photo", "DEFAULT"} <= set(methods):
            print("\nissue 17 targets:")
            print("\n".join(target_lines(s, res)))
        print(flush=True)
    print(f"{time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
