"""Quality vs speed: PSNR on Set5 and Set14 against 1080p-output frames/s on this CPU.

One point per model, at one scale (``--scale``, default 3):

speed (x)
    frames per second for **1920×1080 output** (input 960×540 at ×2, 640×360 at ×3, 480×270
    at ×4) of the full ``uint8`` RGB pipeline, measured as ``bench_api.py`` does: one
    process, ``--threads`` threads for both libraries (``torch.set_num_threads``,
    ``cv2.setNumThreads``), the same seeded synthetic frame, warm-up calls, then
    ``--rounds`` interleaved rounds (one call of every model per round) and the median.
    Ours: a reused ``subpixel.Upscaler(WEIGHTS, scale, precision=--precision)`` called on
    the RGB array (the model on Y, fused colour conversion and bicubic chroma). OpenCV:
    ``cv2.dnn_superres.DnnSuperResImpl.upsample`` on the BGR array with
    ``$SUBPIXEL_DATA/models/opencv-{espcn,fsrcnn}/*.pb``.
quality (y)
    PSNR (and SSIM) on the Y channel by the SR protocol, exactly as ``subpixel eval``
    (:func:`subpixel.evaluate.evaluate_images`: mod-crop, MATLAB bicubic LR, the model on Y,
    shave = scale), on Set5 and on Set14. OpenCV's graphs are scored as imported by
    ``subpixel import-opencv`` (the network on our Y; docs/results.md). With
    ``--opencv-psnr dnn`` they are scored instead on what ``dnn_superres`` itself returns
    for the protocol's LR image (its full-range YCrCb and bilinear chroma; within 0.05 dB).
published (hollow markers)
    the DIV2K-trained models of issue 16 (ETDS paper, CVPR 2023, Table 2), their PSNR
    moved to our protocol (published PSNR − their bicubic + our bicubic): **quality not
    measured** here. Their x (``--published-x``):

    ``ours`` (default)
        measured: the network's inference-form layer shapes (plain 3×3 convolutions of the
        paper's width and depth; ESPCN's 5-3-3) built as our ``espcn`` model on Y with ReLU
        and a bicubic residual, **untrained** (seeded random weights: speed does not depend on
        them), timed in the same rounds through ``Upscaler`` like our models: where that
        architecture would sit if we trained it. The published models are RGB in/out;
        on Y their first and last layers cost less, so this is a lower bound on their cost.
    ``macs``
        estimated: OpenCV ESPCN's measured frames/s × ESPCN's mult-adds / the model's (the
        paper's ×3 column: 7.1, 3.1, 9.8, 22.5 G), i.e. their speed if time were
        proportional to computation in OpenCV's runtime.

    Dotted lines mark their PSNR across the panel. ``--no-published`` leaves them out.

Also drawn: bicubic's PSNR (grey line) and 1× and 2× OpenCV ESPCN's frames/s (the speed bars
of issue 16: quality tier ≥ 1×, fast tier ≥ 2×).

Prints the table of points (name, kind, frames/s, × OpenCV ESPCN, Set5, Set14) and writes
the plot (``--plot``, default ``docs/quality_speed_x{scale}.png``) and optionally JSON.

Run (idle machine; about a minute):
    SUBPIXEL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_quality_speed.py \\
        --scale 3 --ours espcn=espcn fast=fast --json quality_speed_x3.json
(``NAME=runs/.../model.safetensors`` for weights not bundled yet, e.g. a quality tier.)
Quick check: ... --quick --plot /tmp/qs.png
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_espcn.py

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _common import (
    add_weights_option,
    data_root,
    median_fps,
    parse_specs,
    resolve_weights,
    run_header,
    synthetic_frame,
)

#: OpenCV's dnn_superres models: (folder, file stem, dnn_superres algorithm name).
OPENCV = {
    "espcn": ("opencv-espcn", "ESPCN", "espcn"),
    "fsrcnn": ("opencv-fsrcnn", "FSRCNN", "fsrcnn"),
    "fsrcnn-small": ("opencv-fsrcnn", "FSRCNN-small", "fsrcnn"),
}

#: Issue 16's "in our protocol" table: published DIV2K results (ETDS, CVPR 2023, Table 2)
#: moved to our protocol; {scale: (Set5, Set14)} PSNR, the mult-adds (G, ×3, 360×640 RGB in)
#: and the inference-form layer shapes (features, kernels) of each network. The shapes are
#: those that give the paper's parameter counts for RGB in/out (ESPCN 31k: 5-3-3 with 64-32;
#: ECBSR-M4C16 14k: six 3×3 convs, 16 wide; ABPN-M4C28 43k: seven, 28 wide; ECBSR-M6C40 98k:
#: eight, 40 wide); ``--published-x ours`` times them on Y, as our models run.
PUBLISHED: dict[str, tuple[float, dict[int, tuple[float, float]], tuple, tuple]] = {
    "ESPCN (DIV2K)": (
        7.1,
        {2: (36.60, 32.41), 3: (32.65, 29.25), 4: (30.49, 27.54)},
        (64, 32),
        (5, 3, 3),
    ),
    "ECBSR-M4C16": (
        3.1,
        {2: (36.91, 32.58), 3: (32.87, 29.43), 4: (30.70, 27.68)},
        (16,) * 5,
        (3,) * 6,
    ),
    "ABPN-M4C28": (
        9.8,
        {2: (37.09, 32.75), 3: (33.33, 29.62), 4: (31.15, 27.95)},
        (28,) * 6,
        (3,) * 7,
    ),
    "ECBSR-M6C40": (
        22.5,
        {2: (37.34, 32.97), 3: (33.47, 29.76), 4: (31.24, 28.08)},
        (40,) * 7,
        (3,) * 8,
    ),
}
ESPCN_MACS = 7.1
PUBLISHED_NOTE = "published (DIV2K), not measured"


def parse_ours(specs: list[str], scale: int) -> dict[str, str]:
    """``["NAME=WEIGHTS", ...]`` → ``{NAME: WEIGHTS}``, ``{scale}`` substituted, checked."""
    return {n: resolve_weights(w, scale) for n, w in parse_specs(specs, "--ours").items()}


def dnn_scores(sr, images: list[torch.Tensor], scale: int) -> dict[str, float]:
    """Mean Y PSNR/SSIM of ``dnn_superres`` on the protocol's LR (RGB in, RGB scored)."""
    from subpixel.color import rgb_to_y
    from subpixel.data import degrade, mod_crop
    from subpixel.metrics import psnr, quantize, ssim

    tot = {"psnr": 0.0, "ssim": 0.0}
    for img in images:
        hr = mod_crop(img if img.shape[0] == 3 else img.expand(3, -1, -1), scale).double()
        lr = degrade(hr, scale)
        bgr = (lr.flip(0).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        out = sr.upsample(np.ascontiguousarray(bgr))[..., ::-1].astype(np.float64) / 255
        y_sr = quantize(rgb_to_y(torch.from_numpy(out.transpose(2, 0, 1).copy())))
        y_hr = rgb_to_y(hr)
        tot["psnr"] += psnr(y_sr, y_hr, shave=scale) / len(images)
        tot["ssim"] += ssim(y_sr, y_hr, shave=scale) / len(images)
    return tot


def _place_labels(ax, items: list[tuple[str, float, float, str]]) -> None:
    """Label each point at the first of a few offsets that overlaps no label or marker."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    pts = [ax.transData.transform((x, y)) for _, x, y, _ in items]
    r = 6  # marker half-size in pixels (about)
    taken = [(px - r, py - r, px + r, py + r) for px, py in pts]
    for t in list(ax.texts):  # the labels already there (bicubic, the speed bars)
        b = t.get_window_extent(renderer)
        taken.append((b.x0, b.y0, b.x1, b.y1))
    offsets = [
        (6, 3, "left", "bottom"),
        (6, -3, "left", "top"),
        (-6, 3, "right", "bottom"),
        (-6, -3, "right", "top"),
        (6, 12, "left", "bottom"),
        (6, -12, "left", "top"),
        (-6, 12, "right", "bottom"),
        (-6, -12, "right", "top"),
    ]

    def clear(b) -> bool:
        return all(b.x1 < x0 or b.x0 > x1 or b.y1 < y0 or b.y0 > y1 for x0, y0, x1, y1 in taken)

    def place(text: str, x: float, y: float, color: str, offset: tuple[int, int, str, str]):
        dx, dy, ha, va = offset
        ann = ax.annotate(
            text,
            (x, y),
            textcoords="offset points",
            xytext=(dx, dy),
            ha=ha,
            va=va,
            fontsize=8.5,
            color=color,
        )
        return ann, ann.get_window_extent(renderer)

    for text, x, y, color in items:
        ann = None
        for offset in offsets:
            if ann is not None:
                ann.remove()
            ann, box = place(text, x, y, color, offset)
            if clear(box):
                break
        else:  # nowhere clear: keep the first place
            ann.remove()
            ann, box = place(text, x, y, color, offsets[0])
        taken.append((box.x0, box.y0, box.x1, box.y1))


def plot(
    points: list[dict], bicubic: dict, scale: int, header: str, path: Path, published_x: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cv = next(p["fps"] for p in points if p["name"] == "OpenCV ESPCN")
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ours = [p for p in points if p["kind"] == "ours"]
    labels: dict = {}
    for ax, set_name in zip(axes, ("Set5", "Set14"), strict=True):
        ys = [p[set_name] for p in points] + [bicubic[set_name]]
        for p in points:
            if p["kind"] == "published":
                ax.axhline(p[set_name], color="0.6", lw=0.8, ls=":", zorder=0)
                style = {"marker": "o", "mfc": "none", "mec": "0.35", "ms": 8, "mew": 1.5}
            elif p["kind"] == "opencv":
                style = {"marker": "s", "color": "0.25", "ms": 8}
            else:
                c = colors[ours.index(p) % len(colors)]
                style = {"marker": "o", "color": c, "ms": 9}
            ax.plot([p["fps"]], [p[set_name]], ls="none", **style)
        ax.axhline(bicubic[set_name], color="0.5", lw=1, ls="--", zorder=0)
        ax.annotate(
            "bicubic",
            (0.01, bicubic[set_name]),
            xycoords=("axes fraction", "data"),
            textcoords="offset points",
            xytext=(0, 3),
            fontsize=8,
            color="0.4",
        )
        for k in (1, 2):
            ax.axvline(k * cv, color="tab:red", lw=0.8, ls="--", alpha=0.6, zorder=0)
            ax.annotate(
                f"{k}× OpenCV ESPCN",
                (k * cv, 0.98),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                fontsize=8,
                color="tab:red",
                xytext=(-10, 0),
                textcoords="offset points",
            )
        fps = [p["fps"] for p in points]
        lo, hi = min(fps) / 1.35, max(fps) * 1.6
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ticks = [m * 10.0**e for e in range(-2, 4) for m in (1, 2, 3, 5)]
        ax.set_xticks([t for t in ticks if lo <= t <= hi])
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylim(min(ys) - 0.3, max(ys) + 0.35)
        ax.set_xlabel("frames/s, 1920×1080 output, full RGB pipeline (log scale)")
        ax.set_ylabel(f"PSNR (dB), Y, ×{scale}, our protocol")
        ax.set_title(f"{set_name} ×{scale}")
        ax.grid(alpha=0.3)
        # Measured points first: they get the first choice of place (after the layout).
        order = sorted(points, key=lambda p: p["kind"] == "published")
        labels[ax] = [
            (p["name"], p["fps"], p[set_name], "0.35" if p["kind"] == "published" else "k")
            for p in order
        ]
    handles = [
        plt.Line2D([], [], ls="none", marker="o", color=colors[0], ms=8, label="ours (measured)"),
        plt.Line2D([], [], ls="none", marker="s", color="0.25", ms=8, label="OpenCV (measured)"),
    ]
    if any(p["kind"] == "published" for p in points):
        handles.append(
            plt.Line2D(
                [],
                [],
                ls="none",
                marker="o",
                mfc="none",
                mec="0.35",
                ms=8,
                mew=1.5,
                label=PUBLISHED_NOTE
                + (
                    " (x: OpenCV ESPCN's fps × 7.1 G / mult-adds, estimated)"
                    if published_x == "macs"
                    else " (x: its layer shapes on Y, untrained, timed here)"
                ),
            )
        )
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(header, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.set_dpi(110)  # the saved resolution, so that label extents are measured as saved
    for ax, items in labels.items():
        _place_labels(ax, items)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", type=int, default=3, choices=(2, 3, 4))
    add_weights_option(
        p,
        "--ours",
        ["DEFAULT=DEFAULT"],
        "our models: bundled name or .safetensors path, {scale} substituted",
    )
    p.add_argument(
        "--opencv",
        nargs="+",
        default=["espcn", "fsrcnn"],
        choices=tuple(OPENCV),
        help="OpenCV models (espcn is always included: the reference)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="3 rounds, 1 warm-up (a check, not data)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("auto", "fp32", "bf16", "int8"),
        help="Upscaler precision for our models' speed (default fp32; PSNR is the model's)",
    )
    p.add_argument("--opencv-psnr", choices=("eval", "dnn"), default="eval")
    p.add_argument("--sets", nargs=2, default=["Set5", "Set14"], metavar=("SET5", "SET14"))
    p.add_argument("--no-published", action="store_true")
    p.add_argument(
        "--published-x",
        choices=("ours", "macs"),
        default="ours",
        help="x of the published points: their layer shapes timed here (ours), or OpenCV "
        "ESPCN's speed scaled by mult-adds (macs)",
    )
    p.add_argument("--plot", type=Path, help="PNG (default docs/quality_speed_x{scale}.png)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup = 3, 1

    import cv2

    from subpixel.data import find_images, load_image
    from subpixel.evaluate import evaluate_images
    from subpixel.upscale import Upscaler, load_upscaling_model

    s = args.scale
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    data = data_root()
    ours = parse_ours(args.ours, s)
    opencv_keys = ["espcn", *(k for k in args.opencv if k != "espcn")]
    header = (
        f"{run_header(args.threads)}, OpenCV {cv2.__version__}, ours {args.precision}, "
        f"median of {args.rounds} rounds, load {os.getloadavg()[0]:.1f}"
    )
    print(header, flush=True)

    # -- speed --------------------------------------------------------------------------------
    img = synthetic_frame(s)
    bgr = np.ascontiguousarray(img[..., ::-1])
    fns: dict[str, Callable[[], object]] = {}
    pbs: dict[str, Path] = {}
    srs = {}
    for key in opencv_keys:
        folder, stem, algo = OPENCV[key]
        pb = data / "models" / folder / f"{stem}_x{s}.pb"
        sr = cv2.dnn_superres.DnnSuperResImpl_create()
        sr.readModel(str(pb))
        sr.setModel(algo, s)
        name = f"OpenCV {stem}"
        pbs[name], srs[name] = pb, sr
        fns[name] = lambda sr=sr: sr.upsample(bgr)
    ups = {}
    for name, weights in ours.items():
        up = Upscaler(weights, s, precision=args.precision)
        ups[name] = up
        fns[name] = lambda up=up: up(img)
    shapes = {}
    if not args.no_published and args.published_x == "ours":
        from subpixel.models import get_model

        torch.manual_seed(0)
        for name, (_, _, features, kernels) in PUBLISHED.items():
            net = get_model(
                "espcn",
                scale=s,
                features=features,
                kernels=kernels,
                activation="relu",
                residual="bicubic",
            )
            up = Upscaler(net, s, precision=args.precision)
            shapes[name] = up
            fns[f"shape: {name}"] = lambda up=up: up(img)
    t0 = time.perf_counter()
    fps = median_fps(fns, args.rounds, args.warmup)
    print(f"timed in {time.perf_counter() - t0:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)

    # -- quality ------------------------------------------------------------------------------
    sets = {n: [load_image(q) for q in find_images([data / "sr" / n])] for n in args.sets}
    set5, set14 = args.sets
    points: list[dict] = []
    bicubic: dict[str, float] = {}
    t0 = time.perf_counter()
    for name in (*pbs, *ours):
        is_cv = name in pbs
        model = load_upscaling_model(pbs[name] if is_cv else ours[name], s)[0]
        pt: dict = {
            "name": name,
            "kind": "opencv" if is_cv else "ours",
            "weights": str(pbs[name] if is_cv else ours[name]),
            "params": sum(t.numel() for t in model.parameters()),
            "fps": fps[name],
        }
        if not is_cv:
            pt["backend"] = f"{ups[name].backend.name} ({ups[name].backend.kernels})"
        for label, set_name in (("Set5", set5), ("Set14", set14)):
            if is_cv and args.opencv_psnr == "dnn":
                sc = dnn_scores(srs[name], sets[set_name], s)
            else:
                sc = evaluate_images(model, sets[set_name], scale=s)
                bicubic[label] = sc["bicubic_psnr"]
            pt[label], pt[f"{label}_ssim"] = sc["psnr"], sc["ssim"]
        points.append(pt)
    print(f"scored in {time.perf_counter() - t0:.0f} s", flush=True)
    cv = fps["OpenCV ESPCN"]
    for pt in points:
        pt["ratio"] = pt["fps"] / cv
    if not args.no_published:
        for name, (macs, by_scale, features, kernels) in PUBLISHED.items():
            s5, s14 = by_scale[s]
            if args.published_x == "ours":
                x = fps[f"shape: {name}"]
                how = (
                    "PSNR published; fps measured here for its layer shapes on Y "
                    f"(features {list(features)}, kernels {list(kernels)}), untrained, "
                    f"backend {shapes[name].backend.name} ({shapes[name].backend.kernels})"
                )
            else:
                x = cv * ESPCN_MACS / macs
                how = "PSNR published; fps estimated: OpenCV ESPCN's × 7.1 G / mult-adds"
            points.append(
                {
                    "name": name,
                    "kind": "published",
                    "fps": x,
                    "ratio": x / cv,
                    "Set5": s5,
                    "Set14": s14,
                    "mult_adds_g_x3": macs,
                    "x": args.published_x,
                    "note": f"{PUBLISHED_NOTE}; {how}",
                }
            )

    print()
    print(f"×{s}, frames/s for 1920×1080 output ({args.threads} threads); PSNR Y, our protocol")
    print()
    print("| model | kind | params | frames/s | × OpenCV ESPCN | Set5 | Set14 |")
    print("|---|---|---|---|---|---|---|")
    print(f"| bicubic | – | – | – | – | {bicubic['Set5']:.2f} | {bicubic['Set14']:.2f} |")
    for pt in points:
        pub = pt["kind"] == "published"
        kind = PUBLISHED_NOTE if pub else f"measured ({pt['kind']})"
        params = f"{pt['params']:,}" if "params" in pt else "–"
        est = pub and pt["x"] == "macs"
        f = f"({pt['fps']:.1f} est.)" if est else f"{pt['fps']:.2f}"
        r = f"({pt['ratio']:.2f} est.)" if est else f"{pt['ratio']:.2f}"
        if pub and not est:
            f, r = f"{f} (shape, untrained)", f"{r} (shape)"
        print(
            f"| {pt['name']} | {kind} | {params} | {f} | {r} | {pt['Set5']:.2f} | "
            f"{pt['Set14']:.2f} |"
        )
    print()
    for pt in points:
        if pt["kind"] == "ours":
            print(f"{pt['name']}: backend {pt['backend']}, weights {pt['weights']}")
        elif pt["kind"] == "published":
            print(f"{pt['name']}: {pt['note']}")
    out = args.plot or Path(f"docs/quality_speed_x{s}.png")
    plot(points, bicubic, s, header, out, args.published_x)
    print(f"wrote {out}")
    if args.json:
        report = {"header": header, "scale": s, "bicubic": bicubic, "points": points}
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
