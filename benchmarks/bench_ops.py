"""Speed of subpixel.pixel_shuffle / pixel_unshuffle next to the memory-copy bound.

For every channel order (all arrangements of ``c`` and the spatial letters), every number
of spatial axes (1, 2, 3) and both data formats, times the shuffle and the unshuffle of a
float32 tensor of about ``--mb`` megabytes, next to ``x.clone()`` of the same tensor (a
fresh allocation plus one full copy: the memory-copy bound for an out-of-place op) and,
for ``chw``, next to ``torch.nn.functional.pixel_shuffle`` / ``pixel_unshuffle``. Each
case alternates op and clone ``--repeats`` times after a warm-up and reports medians, so a
change in machine load hits both sides alike.

Usage:
    python benchmarks/bench_ops.py                      # CPU (and CUDA when present)
    python benchmarks/bench_ops.py --threads 2 --mb 64 --repeats 5 --markdown
    python benchmarks/bench_ops.py --n 2 --orders chw hwc --device cpu

Target: every case within 1.1x of clone's time, and chw never slower than PyTorch's own
function. Results and the machine they came from: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import subpixel
from subpixel import _copy

SPATIAL = {1: "w", 2: "hw", 3: "dhw"}
# (batch, output channels, small spatial sizes) giving 16 Mi elements (64 MB of float32) at r=2.
BASE_SHAPES = {1: (8, 16, (65536,)), 2: (4, 16, (256, 256)), 3: (1, 16, (32, 64, 64))}
TARGET_RATIO = 1.1
# Environment variables that change how fresh memory is mapped (printed with the results).
MEMORY_ENV = ("SUBPIXEL_NO_HUGEPAGES", "THP_MEM_ALLOC_ENABLE", "MALLOC_MMAP_THRESHOLD_")


@dataclass
class Row:
    device: str
    n: int
    order: str
    data_format: str
    op: str
    shape: tuple[int, ...]
    ms: float
    clone_ms: float
    torch_ms: float | None

    @property
    def ratio(self) -> float:
        return self.ms / self.clone_ms

    @property
    def vs_torch(self) -> float | None:
        return None if self.torch_ms is None else self.ms / self.torch_ms


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _time(fn: Callable[[], object], device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def measure(fns: dict[str, Callable[[], object]], device: str, repeats: int) -> dict[str, float]:
    """Median milliseconds of each function, run round-robin after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            times[key].append(_time(fn, device))
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def shapes(n: int, factor: int, mb: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Channels-first (small, large) shapes: the shuffle's input and output."""
    batch, c, small = BASE_SHAPES[n]
    scale = max(1, round(mb / 64))
    batch *= scale
    if factor != 2:  # keep the element count near the target
        small = (*small[:-1], max(1, small[-1] * 2**n // factor**n))
    x = (batch, c * factor**n, *small)
    y = (batch, c, *(s * factor for s in small))
    return x, y


def _torch_reference(op: str, first: bool, factor: int) -> Callable[[torch.Tensor], object]:
    fn = F.pixel_shuffle if op == "shuffle" else F.pixel_unshuffle
    if first:
        return lambda t: fn(t, factor)
    # channels_last data: PyTorch's kernel on the NCHW view, i.e. memory format channels_last
    return lambda t: fn(t.permute(0, 3, 1, 2), factor).permute(0, 2, 3, 1)


def run_case(
    device: str,
    n: int,
    order: str,
    data_format: str,
    op: str,
    factor: int,
    mb: float,
    repeats: int,
) -> Row:
    first = data_format == "channels_first"
    small, large = shapes(n, factor, mb)
    shape = small if op == "shuffle" else large
    if not first:
        shape = (shape[0], *shape[2:], shape[1])
    x = torch.randn(shape, device=device)
    fn = subpixel.pixel_shuffle if op == "shuffle" else subpixel.pixel_unshuffle
    fns: dict[str, Callable[[], object]] = {
        "op": lambda: fn(x, factor, order=order, data_format=data_format),
        "clone": x.clone,
    }
    if n == 2 and order == "chw":
        ref = _torch_reference(op, first, factor)
        fns["torch"] = lambda: ref(x)
        assert torch.equal(fns["op"](), fns["torch"]())  # type: ignore[arg-type]
    ms = measure(fns, device, repeats)
    return Row(device, n, order, data_format, op, shape, ms["op"], ms["clone"], ms.get("torch"))


def machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


def print_header(args: argparse.Namespace) -> None:
    print(f"# subpixel {subpixel.__version__} bench_ops.py, {datetime.date.today()}")
    print(
        f"# torch {torch.__version__}, python {platform.python_version()}, CPU {machine()}, "
        f"torch threads {torch.get_num_threads()}"
    )
    if torch.cuda.is_available():
        print(f"# CUDA device {torch.cuda.get_device_name()}")
    print(f"# command: {' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}")
    print(f"# ~{args.mb:g} MB float32, factor {args.factor}, medians of {args.repeats} repeats")
    print(f"# compiled strided copy: {'yes' if _copy.available() else 'no (PyTorch copies)'}")
    print(f"# memory: {memory_settings()}")


def memory_settings() -> str:
    """The settings that decide how fresh memory is mapped (they move every number here)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp = f.read().strip()
    except OSError:
        thp = "unknown"
    env = {k: os.environ[k] for k in MEMORY_ENV if k in os.environ}
    return f"transparent_hugepage {thp}; env {env or 'default'}"


def warm_up(device: str, mb: float) -> None:
    """First-use costs of the process (allocator growth, the kernel's first huge pages),
    which would otherwise land on the first row."""
    x = torch.randn(int(mb * 2**20) // 4, device=device).reshape(-1, 64, 16, 16)
    for _ in range(3):
        subpixel.pixel_shuffle(x, 2)
        x.clone()
    _sync(device)


def format_row(row: Row, markdown: bool) -> str:
    torch_ms = "" if row.torch_ms is None else f"{row.torch_ms:.1f}"
    vs = "" if row.vs_torch is None else f"{row.vs_torch:.2f}"
    flag = "" if row.ratio <= TARGET_RATIO else " *"
    if row.vs_torch is not None and row.vs_torch > 1.0:
        flag += " !"
    cells = [
        row.device,
        str(row.n),
        row.order,
        row.data_format.replace("channels_", ""),
        row.op,
        "x".join(map(str, row.shape)),
        f"{row.ms:.1f}",
        f"{row.clone_ms:.1f}",
        f"{row.ratio:.2f}{flag}",
        torch_ms,
        vs,
    ]
    if markdown:
        return "| " + " | ".join(cells) + " |"
    return "  ".join(f"{c:>14}" if i == 5 else f"{c:>9}" for i, c in enumerate(cells))


HEADER = [
    "device",
    "n",
    "order",
    "format",
    "op",
    "shape",
    "ms",
    "clone ms",
    "ratio",
    "torch ms",
    "vs torch",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--mb", type=float, default=64.0, help="tensor size (64 to 256)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument("--orders", nargs="+", default=None, help="default: every order")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
    print_header(args)
    if args.markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
    else:
        print("  ".join(f"{c:>14}" if i == 5 else f"{c:>9}" for i, c in enumerate(HEADER)))
    rows: list[Row] = []
    start = time.perf_counter()
    for device in devices:
        warm_up(device, args.mb)
    for device, n in itertools.product(devices, args.n):
        orders = args.orders or ["".join(p) for p in itertools.permutations("c" + SPATIAL[n])]
        for order in orders:
            if len(order) != n + 1:
                continue
            for data_format, op in itertools.product(
                ("channels_first", "channels_last"), ("shuffle", "unshuffle")
            ):
                row = run_case(
                    device, n, order, data_format, op, args.factor, args.mb, args.repeats
                )
                rows.append(row)
                print(format_row(row, args.markdown), flush=True)
    if not rows:
        return 0
    elapsed = time.perf_counter() - start
    ratios = [r.ratio for r in rows]
    slow = [r for r in rows if r.ratio > TARGET_RATIO]
    behind = [r for r in rows if r.vs_torch is not None and r.vs_torch > 1.0]
    print(
        f"# {len(rows)} cases in {elapsed:.0f} s; ratio to clone: median "
        f"{statistics.median(ratios):.2f}, best {min(ratios):.2f}, worst {max(ratios):.2f}; "
        f"{len(slow)} over {TARGET_RATIO} (*); chw slower than torch (!): {len(behind)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
