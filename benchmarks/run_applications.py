"""Run the sub-pixel vs transposed grid of docs/applications.md and print its tables.

Every run is one ``subpixel experiment`` command, single-threaded, one after another:

* autoencoder: {mnist, fashion-mnist} × {subpixel, transposed} × seeds;
* dcgan: fashion-mnist × {subpixel, transposed} × seeds.

Results go to ``--out`` (default ``build/applications``, one folder per run); a run whose
``result.json`` exists is skipped, so an interrupted grid continues where it stopped.
``--docs DIR`` copies each run's ``result.json`` (as ``<run>.json``) and the seed-0 PNGs into
DIR, small files only. ``--collect-only`` just prints the tables from what is there.

Usage:
    python benchmarks/run_applications.py                        # the documented grid
    python benchmarks/run_applications.py --seeds 0 --ae-limit 5000 --gan-limit 2000
    python benchmarks/run_applications.py --collect-only --docs docs/applications
    python benchmarks/run_applications.py --timing               # step times, interleaved
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from subpixel.applications.experiments import summary_table

AE_KEYS = [
    "params",
    "seconds_per_epoch",
    "test_mse",
    "test_psnr",
    "checkerboard_init",
    "checkerboard_final",
    "checkerboard4_final",
]
GAN_KEYS = [
    "params",
    "seconds_per_epoch",
    "d_loss_final",
    "g_loss_final",
    "swd_final",
    "checkerboard_init",
    "checkerboard_final",
    "checkerboard4_final",
]
VARIANTS = ("subpixel", "transposed")


def _runs(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    runs: list[tuple[str, list[str]]] = []
    for dataset in ("mnist", "fashion-mnist"):
        for seed in args.seeds:
            for decoder in VARIANTS:
                name = f"autoencoder-{dataset}-{decoder}-seed{seed}"
                cmd = ["autoencoder", "--dataset", dataset, "--decoder", decoder]
                cmd += ["--epochs", str(args.ae_epochs), "--seed", str(seed)]
                if args.ae_limit:
                    cmd += ["--limit", str(args.ae_limit)]
                runs.append((name, cmd))
    for seed in args.seeds:
        for up in VARIANTS:
            name = f"dcgan-fashion-mnist-{up}-seed{seed}"
            cmd = ["dcgan", "--dataset", "fashion-mnist", "--upsampler", up]
            cmd += ["--epochs", str(args.gan_epochs), "--seed", str(seed)]
            if args.gan_limit:
                cmd += ["--limit", str(args.gan_limit)]
            runs.append((name, cmd))
    return runs


def _load(out: Path) -> list[dict[str, Any]]:
    results = []
    for path in sorted(out.glob("*/result.json")):
        data = json.loads(path.read_text())
        data["_run"] = path.parent.name
        results.append(data)
    return results


def _copy_to_docs(results: list[dict[str, Any]], out: Path, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    for r in results:
        run = r["_run"]
        clean = {k: v for k, v in r.items() if not k.startswith("_")}
        (docs / f"{run}.json").write_text(json.dumps(clean, indent=2) + "\n")
        if r.get("seed") == 0:
            for png in (out / run).glob("*.png"):
                shutil.copyfile(png, docs / f"{run}-{png.name}")


def timing(repeats: int = 30) -> str:
    """Markdown table: one training step of each model variant, interleaved, single-threaded.

    The variants take turns, so load from other processes hits them alike; the minimum over
    ``repeats`` is the least disturbed measurement and the median shows the spread.
    """
    import statistics
    import time

    import torch
    import torch.nn.functional as F

    from subpixel.models import get_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    cases: dict[str, Any] = {}
    for kind in VARIANTS:
        ae = get_model("autoencoder", decoder=kind)
        x = torch.rand(128, 1, 28, 28)
        cases[f"autoencoder {kind} (batch 128)"] = (ae, x, lambda m, x: F.mse_loss(m(x), x))
        gen = get_model("dcgan", upsampler=kind)
        z = torch.randn(64, 100)
        cases[f"dcgan generator {kind} (batch 64)"] = (gen, z, lambda m, z: m(z).square().mean())
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (model, inp, loss_fn) in cases.items():
            start = time.perf_counter()
            loss = loss_fn(model, inp)
            model.zero_grad(set_to_none=True)
            loss.backward()
            times[name].append(time.perf_counter() - start)
    lines = ["| model (forward + backward, 1 thread) | min ms | median ms |", "|---|---|---|"]
    for name, ts in times.items():
        lines.append(f"| {name} | {1e3 * min(ts):.1f} | {1e3 * statistics.median(ts):.1f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="build/applications", help="folder of run folders")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ae-epochs", type=int, default=3)
    p.add_argument("--ae-limit", type=int, default=None, help="autoencoder training images")
    p.add_argument("--gan-epochs", type=int, default=3)
    p.add_argument("--gan-limit", type=int, default=10000, help="DCGAN training images")
    p.add_argument("--docs", metavar="DIR", help="copy JSON and seed-0 PNGs here")
    p.add_argument("--collect-only", action="store_true", help="only print the tables")
    p.add_argument("--timing", action="store_true", help="only time one step of each variant")
    args = p.parse_args()
    if args.timing:
        print(timing())
        return 0

    out = Path(args.out)
    if not args.collect_only:
        if not os.environ.get("SUBPIXEL_DATA"):
            p.error("set SUBPIXEL_DATA to the folder holding mnist/ and fashion-mnist/")
        for name, cmd in _runs(args):
            if (out / name / "result.json").exists():
                print(f"skip {name} (done)", file=sys.stderr)
                continue
            full = [sys.executable, "-m", "subpixel", "experiment", *cmd]
            full += ["--out", str(out / name), "--threads", "1", "--no-progress"]
            print("+", " ".join(full[2:]), file=sys.stderr, flush=True)
            subprocess.run(full, check=True)

    results = _load(out)
    ae = [r for r in results if r["experiment"] == "autoencoder"]
    gan = [r for r in results if r["experiment"] == "dcgan"]
    print("## Autoencoder\n")
    print(summary_table(ae, AE_KEYS))
    print("\n## DCGAN\n")
    print(summary_table(gan, GAN_KEYS))
    if args.docs:
        _copy_to_docs(results, out, Path(args.docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
