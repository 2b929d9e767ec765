"""ESPCN training throughput and data-pipeline headroom.

Times the step of :func:`subpixel.train.train` (Adam, MSE, batch 64 by default) for LR
patch sizes 17 (the paper) and 24 at ×2, ×3 and ×4, split into its two parts:

``sample``
    :meth:`subpixel.data.PatchSampler.batch`: drawing ``batch`` random aligned LR/HR patch
    pairs with the 8 flips/rotations, on the CPU;
``step``
    forward, MSE loss, backward and Adam update on the sampled batch;

and reports patches/s of the whole training step (sample + step) and the *headroom*:
``step / sample``, how many times faster the sampler is than the model (above 1 the data
pipeline is not the bottleneck; on a GPU the step shrinks and the ratio tells whether one
CPU process can still feed it). Measurements are interleaved and reported as medians.

The sampler is built from ``$SUBPIXEL_DATA/sr/T91`` when available (the paper's training
set, with the default augmentation scales), else from 91 random 200×200 images.

Run:
    SUBPIXEL_DATA=/work/shared/data .venv/bin/python benchmarks/bench_train.py
    ... --threads 1 --batch 64 --patches 17 24 --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from subpixel.data import PatchSampler, find_images, load_image
from subpixel.models.espcn import ESPCN


def _images() -> tuple[list[torch.Tensor], str]:
    root = os.environ.get("SUBPIXEL_DATA")
    if root and (Path(root) / "sr" / "T91").is_dir():
        paths = find_images([Path(root) / "sr" / "T91"])
        return [load_image(p) for p in paths], f"T91 ({len(paths)} images)"
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 200, 200, generator=g) for _ in range(91)], "91 random 200×200"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_times(fns: dict[str, Callable[[], object]], rounds: int, device: torch.device) -> dict:
    for fn in fns.values():  # warm-up
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench(
    images: list[torch.Tensor],
    scale: int,
    patch: int,
    batch: int,
    rounds: int,
    device: torch.device,
) -> dict:
    """Median seconds of sampling, of the model step, and patches/s of both together."""
    sampler = PatchSampler(images, scale=scale, patch=patch)
    gen = torch.Generator().manual_seed(0)
    model = ESPCN(scale).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.functional.mse_loss
    fixed = sampler.batch(batch, gen)

    def sample() -> object:
        return sampler.batch(batch, gen)

    def step(pair: tuple[torch.Tensor, torch.Tensor] = fixed) -> object:
        lr, hr = pair
        loss = loss_fn(model(lr.to(device, non_blocking=True)), hr.to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    def full() -> object:
        return step(sampler.batch(batch, gen))

    med = _median_times({"sample": sample, "step": step, "full": full}, rounds, device)
    return {
        "scale": scale,
        "patch": patch,
        "sample_ms": med["sample"] * 1e3,
        "step_ms": med["step"] * 1e3,
        "full_ms": med["full"] * 1e3,
        "patches_per_s": batch / med["full"],
        "headroom": med["step"] / med["sample"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--patches", type=int, nargs="+", default=[17, 24])
    p.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images, source = _images()
    started = datetime.datetime.now().astimezone()
    print(
        f"{started:%Y-%m-%d %H:%M %Z}, device {device}, {args.threads} threads, torch "
        f"{torch.__version__}, batch {args.batch}, data {source}, load {os.getloadavg()}"
    )
    print("\n| scale | LR patch | sample ms | step ms | sample+step ms | patches/s | headroom |")
    print("|---|---|---|---|---|---|---|")
    for s in args.scales:
        for patch in args.patches:
            r = bench(images, s, patch, args.batch, args.rounds, device)
            print(
                f"| ×{s} | {patch} | {r['sample_ms']:.1f} | {r['step_ms']:.1f} | "
                f"{r['full_ms']:.1f} | {r['patches_per_s']:.0f} | {r['headroom']:.1f}× |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
