"""Load: one folder run over many small images, memory (RSS) and throughput.

Generates ``--images`` photo-like RGB PNGs (default 500 of 64×48) in a temporary folder and
upscales the folder exactly as ``subpixel upscale IN -o OUT --jobs J`` does (the same
planning, decode-ahead pool, threaded PNG encoder, atomic writes with fsync), reading the
resident set size (``VmRSS`` in ``/proc/self/status``) after every image (the inputs are
flushed to disk with ``os.sync()`` before the run starts). Prints RSS after
the first 50 images (warm-up done) and at the end, the largest RSS after image 50, and
images/s over the whole run and after image 50.

The weights are the bundled ESPCN ×3 when they exist, else a paper-size ESPCN ×3 with
random weights (the speed and memory are the same).

Run:
    .venv/bin/python benchmarks/bench_load.py
    .venv/bin/python benchmarks/bench_load.py --images 2000 --size 128x96 --jobs 2 --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from subpixel._upscale.batch import Job, plan_jobs, run_jobs
from subpixel.bundled import weights_path
from subpixel.models import get_model
from subpixel.serialization import save_weights
from subpixel.upscale import Upscaler


def rss_mb() -> float:
    """This process's resident set size in MB (``VmRSS``; Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def _weights(folder: Path) -> tuple[Path, str]:
    path = weights_path("espcn", 3)
    if path.exists():
        return path, "bundled ESPCN ×3"
    path = folder / "espcn_x3.safetensors"
    save_weights(path, get_model("espcn", scale=3).state_dict(), model="espcn", config={"scale": 3})
    return path, "paper-size ESPCN ×3, random weights"


def _images(folder: Path, n: int, w: int, h: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        coarse = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        img = np.asarray(
            Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16
        )
        img = np.clip(img + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i:05d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", default="64x48", help="WxH of the inputs (default 64x48)")
    parser.add_argument("--jobs", type=int, default=2, help="as `subpixel upscale --jobs`")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        weights, what = _weights(root)
        _images(root / "in", args.images, w, h)
        os.sync()  # else the first outputs' fsync also waits for the inputs just written
        start_rss = rss_mb()
        up = Upscaler(weights)
        rss: list[float] = []
        stamps: list[float] = []

        def image_fn(job: Job, decoded: object, wrap: object) -> None:
            up._upscale_file(job.src, job.dst, decoded=decoded, wrap_sink=wrap)  # type: ignore[arg-type]
            rss.append(rss_mb())
            stamps.append(time.perf_counter())

        t0 = time.perf_counter()
        summary = run_jobs(
            plan_jobs([root / "in"], root / "out"),
            image_fn=image_fn,
            video_fn=lambda job: None,
            overwrite=False,
            threads=args.jobs,
            report=print,
            progress=False,
        )
        total = time.perf_counter() - t0
    k = min(50, len(rss) - 1)
    steady = (len(rss) - 1 - k) / (stamps[-1] - stamps[k]) if len(rss) - 1 > k else float("nan")
    print(f"# bench_load {datetime.date.today()}  {platform.processor() or platform.machine()}")
    print(
        f"# {args.images} images {w}×{h} → ×3, {what}, --jobs {args.jobs}, {args.threads} thread(s)"
    )
    print(f"done {summary.done}, failed {summary.failed}")
    print(f"RSS before loading the model   {start_rss:8.1f} MB")
    print(f"RSS after image {k + 1:<4d}           {rss[k]:8.1f} MB")
    print(f"RSS at the end (image {len(rss)})    {rss[-1]:8.1f} MB")
    print(f"max RSS after image {k + 1:<4d}       {max(rss[k:]):8.1f} MB")
    print(f"growth after image {k + 1:<4d}        {max(rss[k:]) - rss[k]:8.1f} MB")
    print(f"images/s (whole run)          {summary.done / total:8.1f}")
    print(f"images/s (after image {k + 1})      {steady:8.1f}")


if __name__ == "__main__":
    main()
