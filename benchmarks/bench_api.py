"""``subpixel.upscale`` as an application calls it, vs OpenCV ``dnn_superres``, same weights.

Frames per second for **1920×1080 output** (input 960×540 at ×2, 640×360 at ×3, 480×270 at
×4) of three calls on the same ``uint8`` RGB image, interleaved in one process (one call of
each per round, after warm-up calls, so that background load hits all alike):

``imported``
    ``subpixel.upscale(img, scale=s, weights="espcn_xS_imported.safetensors")``: OpenCV's
    ``ESPCN_xS.pb`` imported with ``subpixel import-opencv``, hence OpenCV's processing
    (uint8 YCrCb, bilinear chroma, its rounding, the graph's tanh output).
``bundled``
    ``subpixel.upscale(img, scale=s, weights=NAME)`` for each ``--bundled NAME`` (default
    ``DEFAULT``): bundled weights and the paper's processing.
``opencv``
    ``cv2.dnn_superres.DnnSuperResImpl.upsample`` with the same ``.pb`` (BGR in and out).

Each ``subpixel.upscale`` call loads its weights and picks its backend, as a one-off call
does. Both libraries get the same threads (``torch.set_num_threads``,
``cv2.setNumThreads``). Also printed: the largest difference, in grey levels, between
``imported`` and OpenCV's output (the parity target is one level).

Run:
    SUBPIXEL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_api.py --threads 2
    ... --tune-process     # with the process-wide settings the subpixel command makes
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_espcn.py

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _common import add_weights_option, data_root, median_fps, run_header, synthetic_frame


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4], choices=(2, 3, 4))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument(
        "--model",
        choices=("espcn", "fsrcnn"),
        default="espcn",
        help="OpenCV's ESPCN_xS.pb (default) or FSRCNN_xS.pb (no bundled column then)",
    )
    add_weights_option(
        p,
        "--bundled",
        ["DEFAULT"],
        "bundled weights to time (default: DEFAULT), one column each",
        metavar="NAME",
    )
    p.add_argument(
        "--tune-process",
        action="store_true",
        help="call subpixel.fast.tune_process() first, as the subpixel command does",
    )
    args = p.parse_args(argv)

    import cv2

    import subpixel
    from subpixel.cli import main as cli

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.tune_process:
        from subpixel.fast import tune_process

        tune_process()
    data = data_root()
    print(
        f"{run_header(args.threads)}, OpenCV {cv2.__version__}, load {os.getloadavg()[0]:.1f}, "
        f"tune_process: {args.tune_process}"
    )
    bundles = args.bundled if args.model == "espcn" else []
    heads = "".join(f" {b} (× OpenCV) |" for b in bundles)
    print(f"| scale | OpenCV | imported (× OpenCV) |{heads} max level diff |")
    print("|---|---|---|" + "---|" * len(bundles) + "---|")
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.scales:
            pb = data / "models" / f"opencv-{args.model}" / f"{args.model.upper()}_x{s}.pb"
            imported = Path(tmp) / f"{args.model}_x{s}_imported.safetensors"
            assert cli(["import-opencv", str(pb), "-o", str(imported)]) == 0
            sr = cv2.dnn_superres.DnnSuperResImpl_create()
            sr.readModel(str(pb))
            sr.setModel(args.model, s)
            img = synthetic_frame(s)
            bgr = np.ascontiguousarray(img[..., ::-1])
            diff = np.abs(
                subpixel.upscale(img, scale=s, weights=imported)[..., ::-1].astype(int)
                - sr.upsample(bgr).astype(int)
            ).max()
            fns: dict[str, Callable[[], object]] = {
                "opencv": lambda sr=sr, bgr=bgr: sr.upsample(bgr),
                "imported": lambda s=s, w=imported, img=img: subpixel.upscale(
                    img, scale=s, weights=w
                ),
            }
            for b in bundles:
                fns[b] = lambda s=s, img=img, b=b: subpixel.upscale(img, scale=s, weights=b)
            fps = median_fps(fns, args.rounds, args.warmup)
            cv = fps["opencv"]
            cols = "".join(f" {fps[b]:.2f} ({fps[b] / cv:.2f}×) |" for b in bundles)
            print(
                f"| ×{s} | {cv:.2f} | {fps['imported']:.2f} ({fps['imported'] / cv:.2f}×) |"
                f"{cols} {diff} |",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
