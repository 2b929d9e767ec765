"""CPU time of FastUpscaler's non-network stages: compiled kernel against the PyTorch path.

The network is stubbed with phases computed once (same layout as the real one: planar for
fp32, pixel-major for int8), so what is timed is everything else: colour conversion, bicubic
chroma, colour matrix, clamping, rounding, shuffle and interleaving into uint8 RGB. Frames of
1920×1080 output (input 960×540, 640×360, 480×270 for ×2/×3/×4), OpenCV's pipeline (YCrCb,
bicubic a = -0.75) as in ``bench_espcn.py``. "torch" is the same upscaler with the compiled
kernel hidden. Best of N; 1 thread: ``time.thread_time``, more: wall clock.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_pipeline.py [--threads 1] [--rounds 15]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from subpixel.fast import FastUpscaler
from subpixel.fast._kernels import pipeline as k_pipeline
from subpixel.models.espcn import ESPCN

SIZES = {2: (960, 540), 3: (640, 360), 4: (480, 270)}


class _Pipe:
    color = "opencv-ycrcb"
    chroma = "bicubic-opencv"


def _image(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 23.0)[..., None]
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _best(fn: Callable[[], object], rounds: int, clock: Callable[[], float]) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    kernel = k_pipeline.kernel()
    print(
        f"non-network stages per 1920×1080 frame, {args.threads} thread(s), ms (best of "
        f"{args.rounds}); compiled kernel: {'yes' if kernel is not None else 'NOT BUILT'}"
        + (f", isa level {kernel.isa()}" if kernel is not None else "")
    )
    print("| scale | input | network | phases | torch | compiled | × |")
    print("|---|---|---|---|---|---|---|")
    for scale, (w, h) in SIZES.items():
        img = _image(w, h, scale)
        out = np.empty((h * scale, w * scale, 3), np.uint8)
        for precision in ("fp32", "int8"):
            up = FastUpscaler(ESPCN(scale).eval(), pipeline=_Pipe(), precision=precision)
            phases = up.net.phases(torch.rand(h, w))
            layout = "pixel-major" if phases.stride(1) == 1 else "planar"
            up.net.phases = lambda y, ph=phases: ph  # type: ignore[method-assign,misc]

            def frame(up: FastUpscaler = up, img: np.ndarray = img, out: np.ndarray = out) -> None:
                up(img, out)

            ours = _best(frame, args.rounds, clock)
            k_pipeline.kernel = lambda: None  # type: ignore[assignment]
            try:
                plain = _best(frame, args.rounds, clock)
            finally:
                k_pipeline.kernel = lambda: kernel  # type: ignore[assignment]
            ratio = plain / ours if kernel is not None else 1.0
            print(
                f"| ×{scale} | {w}x{h} | {precision} | {layout} | {plain:.2f} | {ours:.2f} "
                f"| {ratio:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
